"""The browser-safe rendition of a video and its poster frame.

The rendition is MP4 with H.264 (High profile, yuv420p, 8-bit) and AAC, faststart (the
index first, so playback starts before the whole file arrives), and no metadata: no
global or stream tags, no data tracks (they carry GPS too), no "encoder" tag. An upload
that already is that is stream-copied (``remux``); any other is decoded and encoded
(``transcode``): turned upright (the display matrix applied to the pixels, so every
player shows it the same way), scaled to at most RENDITION_EDGE_PX on its longest side,
resampled to a constant frame rate of at most ``max_fps``, peak bitrate ``max_bitrate``,
x264 on one thread (a transcode costs one core). Blocking and CPU-bound: run on a worker
thread or in a child process (``instastore.video.child``), never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from instastore.errors import InvalidMedia
from instastore.limits import MAX_VIDEO_PACKETS
from instastore.video.probe import Probe, VideoLimits, rendition_size

if TYPE_CHECKING:
    from av.container import InputContainer, OutputContainer
    from av.video.frame import VideoFrame

CONTENT_TYPE = "video/mp4"
EXTENSION = "mp4"
# SECURITY: the rendition's container writes no metadata: no "encoder" tag (bitexact).
MP4_OPTIONS = {"movflags": "faststart", "fflags": "+bitexact"}
X264_PRESET = "veryfast"  # ~3x the speed of "medium" for ~10 % more bytes at one quality
X264_CRF = "23"  # x264's default quality; the bitrate cap bounds the worst case
AUDIO_BITRATE = 128_000  # bits per second, AAC-LC stereo
AUDIO_RATES = (48_000, 44_100)  # AAC sample rates browsers decode everywhere
# Turns (counterclockwise degrees) as FFmpeg filters, as its own autorotate does them.
TURNS: dict[int, list[tuple[str, str]]] = {
    0: [],
    90: [("transpose", "cclock")],
    180: [("hflip", ""), ("vflip", "")],
    270: [("transpose", "clock")],
}


@dataclass(frozen=True)
class Made:
    width: int
    height: int
    size: int  # bytes


def poster(first: VideoFrame, rotation: int) -> Image.Image:
    """The first frame as a picture, turned upright."""
    # PyAV's stub leaves to_image unannotated; it returns a PIL image.
    image: Image.Image = first.to_image()  # type: ignore[no-untyped-call]
    if rotation:
        image = image.rotate(rotation, expand=True)  # counterclockwise, as the turn
    return image


def _mp4(target: Path) -> OutputContainer:
    import av

    return av.open(str(target), "w", format="mp4", options=MP4_OPTIONS)


def remux(source: Path, target: Path, found: Probe) -> Made:
    """Copy the H.264 and AAC streams of ``source`` into an MP4 ``target``, dropping
    every other stream and all metadata. The display matrix stays (players apply it)."""
    import av

    try:
        with av.open(str(source)) as inp, _mp4(target) as out:
            kept = [inp.streams.video[0], *inp.streams.audio[:1]]
            copies = {s.index: out.add_stream_from_template(s) for s in kept}
            for copy in copies.values():
                copy.metadata.clear()  # language, handler names, creation times
            for count, packet in enumerate(inp.demux(kept)):
                if count >= MAX_VIDEO_PACKETS:  # the container declared fewer, or nothing
                    raise InvalidMedia(f"the video has over {MAX_VIDEO_PACKETS:,} packets")
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = copies[packet.stream.index]
                out.mux(packet)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Made(*found.shown, target.stat().st_size)


def _fps(found: Probe, limits: VideoLimits) -> Fraction:
    rate = Fraction(found.fps).limit_denominator(1001) if found.fps else Fraction(limits.max_fps)
    return min(rate, Fraction(limits.max_fps))


def _video_graph(inp: InputContainer, found: Probe, size: tuple[int, int], fps: Fraction) -> Any:
    """Decoded frames -> upright, scaled, constant-rate yuv420p frames (FFmpeg filters)."""
    import av

    graph = av.filter.Graph()
    chain = [graph.add_buffer(template=inp.streams.video[0])]
    chain += [graph.add(name, arg) for name, arg in TURNS[found.rotation]]
    chain.append(graph.add("scale", f"{size[0]}:{size[1]}"))
    chain.append(graph.add("fps", f"fps={fps.numerator}/{fps.denominator}"))
    chain.append(graph.add("format", "yuv420p"))
    chain.append(graph.add("buffersink"))
    graph.link_nodes(*chain).configure()
    return graph


def _drain(graph: Any) -> list[VideoFrame]:
    import av

    frames = []
    while True:
        try:
            frames.append(graph.vpull())
        except (av.BlockingIOError, av.EOFError):
            return frames


def transcode(source: Path, target: Path, found: Probe, limits: VideoLimits) -> Made:
    """Decode ``source`` and encode its browser-safe rendition into ``target``."""
    import av

    size = rendition_size(found)
    fps = _fps(found, limits)
    try:
        with av.open(str(source)) as inp, _mp4(target) as out:
            vin = inp.streams.video[0]
            vin.codec_context.options = {"max_pixels": str(limits.max_pixels)}
            vin.codec_context.thread_count = 1
            ain = inp.streams.audio[0] if inp.streams.audio else None
            vout = out.add_stream("libx264", rate=fps)
            vout.width, vout.height = size
            vout.pix_fmt = "yuv420p"
            vout.codec_context.thread_count = 1
            vout.codec_context.options = {
                "profile": "high",
                "preset": X264_PRESET,
                "crf": X264_CRF,
                "maxrate": str(limits.max_bitrate),
                "bufsize": str(2 * limits.max_bitrate),
            }
            aout = None
            if ain is not None:
                rate = ain.codec_context.sample_rate
                aout = out.add_stream("aac", rate=rate if rate in AUDIO_RATES else AUDIO_RATES[0])
                aout.layout = "mono" if ain.codec_context.channels == 1 else "stereo"
                aout.bit_rate = AUDIO_BITRATE
            graph = _video_graph(inp, found, size, fps)
            kept = [vin] if ain is None else [vin, ain]
            for count, packet in enumerate(inp.demux(kept)):
                if count >= MAX_VIDEO_PACKETS:
                    raise InvalidMedia(f"the video has over {MAX_VIDEO_PACKETS:,} packets")
                for frame in packet.decode():
                    if packet.stream is vin:
                        graph.push(frame)
                        for upright in _drain(graph):
                            out.mux(vout.encode(upright))
                    elif aout is not None and isinstance(frame, av.AudioFrame):
                        frame.pts = None  # the encoder counts samples itself
                        out.mux(aout.encode(frame))
            graph.push(None)
            for upright in _drain(graph):
                out.mux(vout.encode(upright))
            out.mux(vout.encode(None))
            if aout is not None:
                out.mux(aout.encode(None))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return Made(*size, target.stat().st_size)


def inspect(source: Path, fmt: str, limits: VideoLimits) -> tuple[Probe, Image.Image]:
    """Check a video's bounds, decode its first frame only, and say what it is; with its
    poster, upright. ``InvalidMedia`` (the reason a client may read) for anything refused
    or undecodable."""
    import av

    from instastore.video.probe import check_bounds, probe

    try:
        with av.open(str(source)) as container:
            if not container.streams.video:
                raise InvalidMedia("the video has no video stream")
            stream = container.streams.video[0]
            duration = check_bounds(container, stream, fmt, limits)
            first = next(container.decode(stream), None)
            if first is None:
                raise InvalidMedia("the video has no decodable frame")
            if first.width * first.height > limits.max_pixels:
                raise InvalidMedia(
                    f"video frames of {first.width}x{first.height} are over the pixel limit"
                )
            found = probe(container, stream, first, duration)
            return found, poster(first, found.rotation)
    except InvalidMedia:
        raise
    except (av.FFmpegError, StopIteration, ValueError, OSError) as exc:
        # strerror, not str(exc): FFmpeg's message names the temporary file.
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise InvalidMedia(
            f"the {fmt} video does not decode within {limits.max_pixels:,} pixels a frame: {reason}"
        ) from exc
