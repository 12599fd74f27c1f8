"""Real media made on the spot for tests: images with Pillow, videos with PyAV."""

from __future__ import annotations

import io
import struct
import zlib

import av
from PIL import Image

GPS_TAG = 0x8825
ORIENTATION_TAG = 0x0112


def image(
    fmt: str = "JPEG",
    size=(640, 480),
    color=(200, 80, 40),
    *,
    exif_gps: bool = False,
    orientation: int | None = None,
) -> bytes:
    mode = "RGBA" if fmt in ("PNG", "WEBP") else "RGB"
    img = Image.new(mode, size, color + ((255,) if mode == "RGBA" else ()))
    for x in range(0, size[0], 16):  # some structure, so encoders have work to do
        img.putpixel((x, x * size[1] // size[0]), (0, 0, 0) + ((255,) if mode == "RGBA" else ()))
    out = io.BytesIO()
    kwargs = {}
    if exif_gps or orientation:
        exif = Image.Exif()
        if orientation:
            exif[ORIENTATION_TAG] = orientation
        if exif_gps:
            exif[GPS_TAG] = {1: "N", 2: (52.0, 22.0, 1.0), 3: "E", 4: (4.0, 53.0, 2.0)}
        kwargs["exif"] = exif
    if fmt == "GIF":
        frames = [img.convert("P"), Image.new("RGB", size, (0, 90, 200)).convert("P")]
        frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    else:
        img.save(out, fmt, **kwargs)
    return out.getvalue()


def video(
    container: str = "mp4",
    codec: str = "h264",
    size=(96, 64),
    frames: int = 12,
    metadata: dict[str, str] | None = None,
    stream_metadata: dict[str, str] | None = None,
    *,
    options: dict[str, str] | None = None,
    rotation: int | None = None,
) -> bytes:
    """A short video (H.264 by default: what the service stream-copies, so its "video"
    rendition exists on upload); ``options`` go to the muxer (e.g. a fragmented MP4),
    ``rotation`` is a display matrix in degrees (a phone's portrait video)."""
    out = io.BytesIO()
    fmt = {"mp4": "mp4", "mov": "mov", "webm": "webm"}[container]
    with av.open(out, mode="w", format=fmt, options=options or {}) as c:
        c.metadata.update(metadata or {})
        stream = c.add_stream(codec, rate=12)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.metadata.update(stream_metadata or {})
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            frame = av.VideoFrame.from_image(Image.new("RGB", size, (i * 20 % 255, 100, 150)))
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
    return out.getvalue()


def png_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A small PNG whose header claims a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def picture(size=(1200, 900), seed: int = 1) -> bytes:
    """A JPEG that looks like something (sky, sea, sun, boats), for screenshots."""
    import random

    from PIL import ImageDraw

    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    top, bottom = (
        (rng.randrange(120, 255), rng.randrange(80, 160), rng.randrange(60, 140)),
        (40, 90, 150),
    )
    for y in range(h):
        t = y / h
        draw.line(
            [(0, y), (w, y)],
            fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)),
        )
    sun = (rng.randrange(w // 5, 4 * w // 5), h // 3)
    draw.ellipse(
        (sun[0] - h // 8, sun[1] - h // 8, sun[0] + h // 8, sun[1] + h // 8), fill=(255, 220, 120)
    )
    draw.rectangle((0, int(h * 0.62), w, h), fill=(20, 60, 110))
    for _ in range(4):
        x, y = rng.randrange(w), rng.randrange(int(h * 0.65), int(h * 0.9))
        draw.polygon([(x, y), (x + w // 10, y), (x + w // 14, y + h // 20)], fill=(240, 240, 235))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=88)
    return out.getvalue()


LOCATION = "+37.7858-122.4064/"  # where the "uploader" stood, in ISO 6709
VIDEO_METADATA = {
    "location": LOCATION,  # QuickTime's ©xyz atom
    "com.apple.quicktime.location.ISO6709": "+37.7858-122.4064+012.000/",  # the iPhone's mdta key
    "make": "Apple",
    "model": "iPhone 15 Pro",
    "title": "Secret Title Atom",
    "comment": "shot at home",
    "creation_time": "2024-05-06T07:08:09Z",
}


def video_with_metadata(
    container: str = "mov", codec: str = "h264", size=(96, 64), frames: int = 12
) -> bytes:
    """A video carrying the uploader's location and device in global and stream metadata."""
    return video(
        container,
        codec,
        size,
        frames,
        metadata=VIDEO_METADATA,
        stream_metadata={"handler_name": "Core Media Video of my iPhone"},
    )


def mjpeg_mov(frame_size=(9000, 9000), declared=None) -> bytes:
    """A QuickTime file of one MJPEG frame of ``frame_size`` (grey, so it compresses to
    under 1 MB), in a track that declares ``declared`` (default: the frame size)."""
    jpeg = io.BytesIO()
    Image.new("L", frame_size, 128).save(jpeg, "JPEG", quality=50)
    out = io.BytesIO()
    with av.open(out, "w", format="mov") as c:
        stream = c.add_stream("mjpeg", rate=1)
        stream.width, stream.height = declared or frame_size
        stream.pix_fmt = "yuvj420p"
        packet = av.Packet(jpeg.getvalue())
        packet.stream = stream
        packet.pts = packet.dts = 0
        packet.is_keyframe = True
        c.mux(packet)
    return out.getvalue()


def clip(
    container: str = "mp4",
    codec: str = "h264",
    size=(64, 48),
    frames: int = 12,
    *,
    rate: int = 12,
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    audio: str | None = None,
    vfr: bool = False,
    metadata: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
) -> bytes:
    """A short video whose frames show a red top-left quadrant on blue (so a turn shows),
    with ``audio`` (an encoder name) beside it, ``vfr``: frames at irregular times."""
    from fractions import Fraction

    out = io.BytesIO()
    fmt = {"mp4": "mp4", "mov": "mov", "webm": "webm", "mkv": "matroska"}[container]
    width, height = size
    picture = Image.new("RGB", size, (20, 40, 220))
    picture.paste((230, 20, 20), (0, 0, width // 2, height // 2))
    with av.open(out, mode="w", format=fmt) as c:
        c.metadata.update(metadata or {})
        stream = c.add_stream(codec, rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = pix_fmt
        stream.codec_context.options = codec_options or {}
        if vfr:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = None
        if audio is not None:
            sound = c.add_stream(audio, rate=48000)
            sound.layout = "stereo"
        at = 0
        for i in range(frames):
            frame = av.VideoFrame.from_image(picture).reformat(format=pix_fmt)
            if vfr:  # 40 ms, 120 ms, 40 ms, ...: 12.5 and 8.3 frames a second in turn
                frame.pts, frame.time_base = at, Fraction(1, 1000)
                at += 40 if i % 2 == 0 else 120
            for packet in stream.encode(frame):
                c.mux(packet)
        for packet in stream.encode():
            c.mux(packet)
        if sound is not None:
            seconds = frames / rate
            samples_left = int(48000 * seconds)
            pts = 0
            while samples_left > 0:
                n = min(1024, samples_left)
                tone = av.AudioFrame(format="fltp", layout="stereo", samples=n)
                for plane in tone.planes:
                    plane.update(bytes(plane.buffer_size))
                tone.sample_rate, tone.pts = 48000, pts
                pts += n
                samples_left -= n
                for packet in sound.encode(tone):
                    c.mux(packet)
            for packet in sound.encode():
                c.mux(packet)
    return out.getvalue()


def audio_only(container: str = "mp4") -> bytes:
    """A second of AAC in a video container, and no picture at all."""
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as c:
        sound = c.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for n in range(48):
            tone = av.AudioFrame(format="fltp", layout="stereo", samples=1000)
            for plane in tone.planes:
                plane.update(bytes(plane.buffer_size))
            tone.sample_rate, tone.pts = 48000, n * 1000
            c.mux(sound.encode(tone))
        c.mux(sound.encode(None))
    return out.getvalue()
