"""Decoding images for their renditions: at the size the renditions need, with no
full-size copy of the pixels besides the decode, and still upright, in proportion and
in the right colours.

Peak memory is measured in a process of its own (Pillow allocates pixels outside
Python's allocator, so tracemalloc does not see them: the peak resident size does), and
only bounded, never timed. Linux only (/proc), as the service."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageOps, ImageStat

from instastore import media

from .. import samples

MAX_PIXELS = 50_000_000  # the default max_image_pixels

PEAK = """
import sys
from pathlib import Path
from instastore import media

def high_water():  # VmHWM: this process's peak resident size, unlike ru_maxrss not
    for line in Path("/proc/self/status").read_text().splitlines():  # kept across exec
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024

path, fmt = Path(sys.argv[1]), sys.argv[2]
before = high_water()
processed = media.process_image(path, media.TYPES[fmt], int(sys.argv[3]))
print(high_water() - before, processed.width, processed.height)
"""


def decode_peak(path: Path, fmt: str) -> tuple[int, int, int]:
    """(bytes the decode added to the peak resident size, width, height)."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), fmt, str(MAX_PIXELS)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    peak, width, height = (int(word) for word in out.split())
    return peak, width, height


@pytest.mark.parametrize("mode, bound", [("RGB", 8), ("RGBA", 10)])
def test_a_9_megapixel_png_decodes_in_a_few_bytes_a_pixel(tmp_path, mode, bound):
    """A 35 KB PNG of 3000 x 3000 pixels took 155 MiB (18 bytes a pixel: four or five
    full-size copies alive at once). Its decode is 4 bytes a pixel; with transparency,
    one more full-size image to lay it over white."""
    path = tmp_path / "nine.png"
    image = Image.new(mode, (3000, 3000), (200, 80, 40, 128)[: len(mode)])
    for x in range(0, 3000, 16):
        image.putpixel((x, x), (0, 0, 0, 255)[: len(mode)])
    image.save(path, "PNG")
    peak, width, height = decode_peak(path, "png")
    assert (width, height) == (3000, 3000)
    assert peak < bound * 3000 * 3000, f"{peak / 2**20:.0f} MiB"


def test_a_49_megapixel_jpeg_never_decodes_at_full_size(tmp_path):
    """7000 x 7000 took 784 MiB; decoded at half size (Pillow's draft) it needs about
    49 MB of pixels, under 2 bytes a pixel of the picture."""
    gradient = Image.linear_gradient("L").resize((7000, 7000))
    picture = Image.merge(
        "RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_90), gradient)
    )
    path = tmp_path / "big.jpg"
    picture.save(path, "JPEG", quality=85)
    del picture, gradient
    peak, width, height = decode_peak(path, "jpeg")
    assert (width, height) == (7000, 7000)
    assert peak < 2 * 7000 * 7000, f"{peak / 2**20:.0f} MiB"


def test_a_49_megapixel_png_with_transparency_is_reduced_without_a_full_size_copy(tmp_path):
    """Pillow reduces an image with alpha through a premultiplied copy of all of it (8
    bytes a pixel at peak): reduced a band of rows at a time, the decode is about all."""
    path = tmp_path / "big.png"
    image = Image.new("RGBA", (7000, 7000), (10, 20, 30, 128))
    image.paste((200, 0, 0, 255), (0, 0, 3500, 7000))
    image.save(path, "PNG")
    del image
    peak, width, height = decode_peak(path, "png")
    assert (width, height) == (7000, 7000)
    assert peak < 6 * 7000 * 7000, f"{peak / 2**20:.0f} MiB"


def test_reducing_in_bands_gives_what_pillow_gives_whole():
    image = Image.new("RGBA", (1001, 777), (0, 0, 0, 0))
    image.paste((10, 200, 30, 255), (300, 100, 700, 500))
    image.paste((250, 20, 30, 77), (0, 400, 1001, 777))
    for factor in (2, 3, 5):
        assert media._reduce(image, factor).tobytes() == image.reduce(factor).tobytes()


def halves(fmt: str, size: tuple[int, int], orientation: int | None) -> bytes:
    """Red on the stored left half, blue on the right, with an EXIF orientation."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0] // 2, size[1]))
    if fmt == "GIF":
        image = image.convert("P")
    out = io.BytesIO()
    kwargs = {}
    if orientation:
        exif = Image.Exif()
        exif[samples.ORIENTATION_TAG] = orientation
        kwargs["exif"] = exif
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def colour_at(image: Image.Image, x: float, y: float) -> tuple[int, int, int]:
    """The colour at a point given as fractions of the width and height."""
    pixel = image.convert("RGB").getpixel((int(x * image.width), int(y * image.height)))
    assert isinstance(pixel, tuple)
    return pixel[0], pixel[1], pixel[2]


def near(colour: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(colour, expected, strict=True))


RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_an_image_decoded_small_keeps_its_size_orientation_and_colours(tmp_path, fmt):
    """4400 x 3300: a JPEG decodes at half size, the others are reduced by 2 (a GIF's
    palette is turned into colours first, never averaged as indices). Orientation 6
    shows it turned a quarter clockwise: the stored left half on top."""
    orientation = None if fmt == "GIF" else 6  # GIF carries no EXIF
    path = tmp_path / "upload"
    path.write_bytes(halves(fmt, (4400, 3300), orientation))
    processed = media.process_image(path, media.TYPES[fmt.lower()], MAX_PIXELS)
    renditions = {r.name: Image.open(io.BytesIO(r.data)) for r in processed.renditions}
    large, thumb = renditions["large"], renditions["thumb"]
    assert thumb.size == (150, 150)
    if orientation:
        assert (processed.width, processed.height) == (3300, 4400)
        assert large.size == (810, 1080)
        first, second = colour_at(large, 0.5, 0.25), colour_at(large, 0.5, 0.75)
    else:
        assert (processed.width, processed.height) == (4400, 3300)
        assert large.size == (1080, 810)
        first, second = colour_at(large, 0.25, 0.5), colour_at(large, 0.75, 0.5)
    assert near(first, RED) and near(second, BLUE), (first, second)
    assert len(large.getexif()) == 0 and len(thumb.getexif()) == 0


def test_transparency_of_a_reduced_image_is_white(tmp_path):
    image = Image.new("RGBA", (4400, 3300), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (2200, 0, 4400, 3300))
    path = tmp_path / "upload"
    image.save(path, "PNG")
    processed = media.process_image(path, media.TYPES["png"], MAX_PIXELS)
    large = Image.open(io.BytesIO(processed.renditions[1].data))
    assert near(colour_at(large, 0.25, 0.5), (255, 255, 255))
    assert near(colour_at(large, 0.75, 0.5), BLUE)


def levels_apart(a: Image.Image, b: Image.Image) -> float:
    """The mean difference of two pictures of one size, in levels (of 255) a channel."""
    difference = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(difference).mean) / 3


def thumbnails(tmp_path: Path, picture: Image.Image) -> tuple[Image.Image, Image.Image]:
    """(the thumbnail an upload of ``picture`` gets, one cut from all its pixels)."""
    path = tmp_path / "upload"
    picture.save(path, "PNG")
    processed = media.process_image(path, media.TYPES["png"], MAX_PIXELS)
    thumb = next(r for r in processed.renditions if r.name == "thumb")
    fair = ImageOps.fit(picture, (media.THUMB_PX, media.THUMB_PX), Image.Resampling.LANCZOS)
    return Image.open(io.BytesIO(thumb.data)), fair


def test_a_thumbnail_cut_from_the_large_rendition_looks_like_one_cut_from_every_pixel(
    tmp_path,
):
    """The thumbnail is resampled from the large rendition (1080 pixels), not from the
    decode (here 3600 x 2700): no more apart from a thumbnail of the whole picture than
    JPEG's own encoding puts it (1.3 levels either way)."""
    picture = Image.open(io.BytesIO(samples.picture((3600, 2700)))).convert("RGB")
    thumb, fair = thumbnails(tmp_path, picture)
    assert levels_apart(thumb, fair) < 2


def test_the_thumbnail_of_a_thin_panorama_is_cut_from_the_decode(tmp_path):
    """6000 x 500: the large rendition is 1080 x 90, too thin for a 150-pixel square, so
    the thumbnail comes from the decode. Its 10-pixel stripes cut from the large one
    would be 25 levels apart from the fair thumbnail's."""
    picture = Image.new("RGB", (6000, 500), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    for top in range(0, 500, 20):
        draw.rectangle((0, top, 6000, top + 9), fill=(0, 0, 0))
    thumb, fair = thumbnails(tmp_path, picture)
    assert levels_apart(thumb, fair) < 6
