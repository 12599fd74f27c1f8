"""At the media module: the viewers' copy of a video carries
no metadata and is streamed from a file, and a video's declared frame size is checked
before anything is decoded."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from instastore import media
from instastore.errors import InvalidMedia
from instastore.uploads import Received
from instastore.video import probe, rendition

from .. import samples

MAX_PIXELS = 50_000_000  # the default max_image_pixels


def upload(tmp_path: Path, data: bytes) -> tuple[Path, media.MediaType]:
    path = tmp_path / "upload-test"
    path.write_bytes(data)
    return path, media.sniff(data[: media.SNIFF_BYTES])


LOCATION_NEEDLES = (
    b"\xa9xyz",
    b"37.7858",
    b"com.apple.quicktime",
    b"iPhone",
    b"Secret Title Atom",
    b"Lavf6",
)


def assert_no_metadata(copy: Path, frames: int = 12) -> None:
    data = copy.read_bytes()
    for needle in LOCATION_NEEDLES:
        assert needle not in data  # (a bare "Lavf", the muxer's name without its version, may stay)
    with av.open(str(copy)) as played:
        left = {
            k: v
            for k, v in played.metadata.items()
            if k not in ("major_brand", "minor_version", "compatible_brands")
        }
        assert left == {}
        assert [s.type for s in played.streams] == ["video"]  # no data track
        for stream in played.streams:
            assert "creation_time" not in stream.metadata
            assert "handler_name" not in stream.metadata or "iPhone" not in str(stream.metadata)
        assert sum(1 for _ in played.decode(video=0)) == frames


@pytest.mark.parametrize("container", ["mov", "mp4"])
def test_an_h264_upload_is_stream_copied_into_mp4_without_metadata(tmp_path, container):
    data = samples.video_with_metadata(container, "h264")
    assert b"iPhone" in data
    path, media_type = upload(tmp_path, data)
    processed = media.process(path, media_type, MAX_PIXELS)
    assert processed.transcode is None
    (video,) = [r for r in processed.renditions if r.name == "video"]
    assert video.path == media.derived_path(path, "video") and video.data == b""
    assert (video.extension, video.content_type) == ("mp4", "video/mp4")
    assert video.size == video.path.stat().st_size
    assert_no_metadata(video.path)


@pytest.mark.parametrize(
    "container, codec", [("mov", "mpeg4"), ("webm", "libvpx"), ("mov", "libx265")]
)
def test_other_codecs_are_left_to_the_queue_whose_rendition_drops_metadata(
    tmp_path, container, codec
):
    from instastore.video import child

    path, media_type = upload(tmp_path, samples.video_with_metadata(container, codec))
    processed = media.process(path, media_type, MAX_PIXELS)
    assert processed.transcode is not None
    assert "video" not in {r.name for r in processed.renditions}
    assert not media.derived_path(path, "video").exists()
    target = tmp_path / "rendition.mp4"
    made = child.make(path, target, media.video_limits(MAX_PIXELS))
    assert (made.width, made.height, made.size) == (96, 64, target.stat().st_size)
    assert_no_metadata(target)


def test_discarding_an_upload_removes_the_video_copy_too(tmp_path):
    path, media_type = upload(tmp_path, samples.video("mp4", "h264"))
    media.process(path, media_type, MAX_PIXELS)
    assert media.derived_path(path, "video").exists()
    Received(path, 0, "", b"").discard()
    assert list(tmp_path.iterdir()) == []


def test_a_video_that_does_not_remux_leaves_no_copy(tmp_path):
    data = samples.video("mp4", frames=48)
    path, media_type = upload(
        tmp_path, data[: len(data) * 2 // 3]
    )  # the index is at the end: cut off
    with pytest.raises(InvalidMedia):
        media.process(path, media_type, MAX_PIXELS)
    assert not media.derived_path(path, "video").exists()


def test_declared_huge_frames_are_refused_before_decoding(tmp_path):
    path, media_type = upload(tmp_path, samples.mjpeg_mov((9000, 9000)))
    started = time.process_time()
    with pytest.raises(InvalidMedia, match="declares 9000x9000 frames"):
        media.process(path, media_type, MAX_PIXELS)
    # Decoding that frame takes 2 s of CPU (on FFmpeg's threads too: process time) and 120 MB here.
    assert time.process_time() - started < 0.5
    assert not media.derived_path(path, "video").exists()


def test_a_track_declaring_small_frames_in_front_of_huge_ones_is_refused(tmp_path):
    """FFmpeg's parser reads the frame header while probing, so the size checked is the
    frame's own; the decoder's max_pixels would refuse it otherwise."""
    path, media_type = upload(tmp_path, samples.mjpeg_mov((9000, 9000), declared=(64, 64)))
    started = time.process_time()
    with pytest.raises(InvalidMedia, match="9000x9000"):
        media.process(path, media_type, MAX_PIXELS)
    assert time.process_time() - started < 0.5


def test_frames_under_the_limit_still_pass(tmp_path):
    path, media_type = upload(tmp_path, samples.mjpeg_mov((640, 480)))
    processed = media.process(path, media_type, MAX_PIXELS)
    assert (processed.width, processed.height) == (640, 480)
    with pytest.raises(InvalidMedia, match="declares 640x480"):
        media.process(path, media_type, 640 * 480 - 1)


def test_a_video_declaring_too_many_frames_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "MAX_VIDEO_PACKETS", 100)  # 120 frames stand in for millions
    path, media_type = upload(tmp_path, samples.video("mp4", frames=120))
    with pytest.raises(InvalidMedia, match="declares 120 frames"):
        media.process(path, media_type, MAX_PIXELS)
    assert not media.derived_path(path, "video").exists()


def test_a_video_hiding_its_frame_count_is_stopped_while_copying(tmp_path, monkeypatch):
    """A fragmented MP4 declares no frame count: the copy counts packets as it goes."""
    monkeypatch.setattr(rendition, "MAX_VIDEO_PACKETS", 100)
    fragmented = samples.video(
        "mp4", "h264", (32, 32), 120, options={"movflags": "frag_keyframe+empty_moov"}
    )
    path, media_type = upload(tmp_path, fragmented)
    with av.open(str(path)) as probe:
        assert probe.streams.video[0].frames == 0
    with pytest.raises(InvalidMedia, match="over 100 packets"):
        media.process(path, media_type, MAX_PIXELS)
    assert not media.derived_path(path, "video").exists()


def test_the_video_copy_keeps_the_display_rotation(tmp_path):
    """A phone's portrait video is stored landscape with a display matrix: not metadata
    about the uploader, and the copy must keep it to play upright."""
    path, media_type = upload(tmp_path, samples.video("mp4", "h264", frames=6, rotation=90))
    media.process(path, media_type, MAX_PIXELS)
    with av.open(str(media.derived_path(path, "video"))) as played:
        assert next(played.decode(video=0)).rotation == 90
