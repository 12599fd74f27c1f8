"""Real media made on the spot for tests: images with Pillow, videos with PyAV."""

from __future__ import annotations

import io
import struct
import zlib

import av
from PIL import Image

GPS_TAG = 0x8825
ORIENTATION_TAG = 0x0112


def image(fmt: str = "JPEG", size=(640, 480), color=(200, 80, 40), *, exif_gps: bool = False, orientation: int | None = None) -> bytes:
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


def video(container: str = "mp4", codec: str = "mpeg4", size=(96, 64), frames: int = 12) -> bytes:
    out = io.BytesIO()
    fmt = {"mp4": "mp4", "mov": "mov", "webm": "webm"}[container]
    with av.open(out, mode="w", format=fmt) as c:
        stream = c.add_stream(codec, rate=12)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
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
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
