"""Media: recognise uploads by their bytes, validate and decode them, make renditions.

Images (JPEG, PNG, WebP, GIF): Pillow, with the decompression-bomb limit enforced as an
error, EXIF orientation applied, and every metadata block (EXIF with GPS, XMP, ICC,
comments) absent from the renditions, which are re-encoded from pixels. An image is
decoded only as large as its renditions need, and no full-size copy of its pixels is made
besides the decode (see ``_decoded``): memory, not CPU, is what many large uploads at once
run out of. Videos (MP4, WebM, QuickTime): PyAV probes them, checks the frame size, duration, frame
count and frame rate the container declares before decoding anything (and makes the
decoder refuse bigger frames whatever the container says), takes a poster frame turned
upright, and, when the upload already is H.264 and AAC that every browser plays, copies
those streams (no re-encoding) into an MP4 "video" rendition with no global or stream
metadata (``instastore.video``): the QuickTime location atom, device make and model,
titles and creation times stay in the original, which is for its owner only. Any other
video gets its rendition from the transcode queue, after the upload is answered
(``Processed.transcode``). The copy is a file beside the upload
(videos go up to the upload limit: never held in memory); ``derived_path`` names it and
whoever discards the upload removes it too. The declared content type of an upload is
never trusted. Everything here is CPU-bound and blocking: callers run it on a pool of
threads with a bounded queue (``Uploads.decoding``), never on the event loop.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

from instastore.errors import InvalidMedia, UnsupportedMedia
from instastore.model import Kind
from instastore.video.probe import VideoLimits

if TYPE_CHECKING:
    from instastore.config import Settings

# SECURITY: a decompression bomb is an error, never a warning that lets decoding go on.
warnings.simplefilter("error", Image.DecompressionBombWarning)

SNIFF_BYTES = 64  # enough of the head of a file to recognise every accepted format
THUMB_PX = 150  # square thumbnail edge
LARGE_PX = 1080  # longest edge of the feed rendition
JPEG_QUALITY = 85
# Renditions are resampled from at least twice their pixels on each edge (Pillow's own
# reducing gap in thumbnail()), so an image is decoded, or reduced, to no less than that:
# a 7000 x 7000 JPEG decodes at 3500 x 3500 (49 MB of pixels, not 196 MB).
REDUCING_GAP = 2
REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA")  # Image.reduce averages these channels
REDUCE_BAND_ROWS = 64  # rows of the reduced image made at a time from one with alpha
# EXIF orientation -> the transpose that shows the picture upright.
ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
SWAPPING_TURNS = {
    Image.Transpose.TRANSPOSE,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSVERSE,
    Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True)
class MediaType:
    kind: Kind
    format: str  # jpeg, png, webp, gif, mp4, webm, quicktime
    content_type: str
    extension: str


TYPES = {
    "jpeg": MediaType(Kind.PHOTO, "jpeg", "image/jpeg", "jpg"),
    "png": MediaType(Kind.PHOTO, "png", "image/png", "png"),
    "webp": MediaType(Kind.PHOTO, "webp", "image/webp", "webp"),
    "gif": MediaType(Kind.PHOTO, "gif", "image/gif", "gif"),
    "mp4": MediaType(Kind.VIDEO, "mp4", "video/mp4", "mp4"),
    "webm": MediaType(Kind.VIDEO, "webm", "video/webm", "webm"),
    "quicktime": MediaType(Kind.VIDEO, "quicktime", "video/quicktime", "mov"),
}
# ISO base media brands of MP4 video (ftyp major brand).
VIDEO_BRANDS = {
    b"isom",
    b"iso2",
    b"iso3",
    b"iso4",
    b"iso5",
    b"iso6",
    b"mp41",
    b"mp42",
    b"avc1",
    b"M4V ",
    b"M4VH",
    b"M4VP",
    b"dash",
    b"mmp4",
    b"3gp4",
    b"3gp5",
    b"3gp6",
    b"3g2a",
    b"f4v ",
}
PILLOW_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF"}


def sniff(head: bytes) -> MediaType:
    """The media type of a file from its first bytes; ``UnsupportedMedia`` otherwise."""
    if head.startswith(b"\xff\xd8\xff"):
        return TYPES["jpeg"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return TYPES["png"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return TYPES["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return TYPES["webp"]
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand == b"qt  ":
            return TYPES["quicktime"]
        if brand in VIDEO_BRANDS:
            return TYPES["mp4"]
        # Other ISO-BMFF brands are images (HEIC, AVIF) or audio: not accepted.
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return TYPES["quicktime"]
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:SNIFF_BYTES]:
        return TYPES["webm"]
    raise UnsupportedMedia(
        "not a supported image or video: send JPEG, PNG, WebP or GIF images, or MP4, WebM or "
        "QuickTime video"
    )


DERIVED = ("video",)  # names of the files made beside an upload (see derived_path)


@dataclass(frozen=True)
class RenditionBytes:
    name: str  # thumb, large, poster, video
    data: bytes  # empty when the bytes are in ``path``
    content_type: str
    width: int
    height: int
    extension: str = "jpg"
    path: Path | None = None  # a file beside the upload, for renditions too big for memory
    file_size: int = 0  # of ``path``

    @property
    def size(self) -> int:
        return self.file_size if self.path is not None else len(self.data)


def derived_path(upload: Path, name: str) -> Path:
    """Where the rendition ``name`` made from ``upload`` is written: beside it."""
    return upload.with_name(f"{upload.name}.{name}")


@dataclass
class Processed:
    width: int
    height: int
    duration_s: float | None = None
    renditions: list[RenditionBytes] = field(default_factory=list)
    transcode: str | None = None  # why a video's "video" rendition is left to the queue


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    # Re-encoded from pixels with no exif/icc/comment arguments: no metadata survives.
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue()


def _rgb(image: Image.Image) -> Image.Image:
    """``image`` in RGB, transparency over white: ``image`` itself when it is RGB already,
    else one new image (no copy of the pixels on the way: they may be full-size)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        if image.mode != "RGBA":
            image = image.convert("RGBA")
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image)  # an RGBA mask: its alpha band
        return background
    return image.convert("RGB")


def _reduction(size: tuple[int, int]) -> int:
    """The whole factor a picture of ``size`` can be shrunk by and still give both
    renditions from at least REDUCING_GAP times their pixels: its longest edge stays at
    least that many times LARGE_PX, its shortest that many times THUMB_PX (the square
    thumbnail's crop)."""
    longest, shortest = max(size), min(size)
    return max(1, min(longest // (REDUCING_GAP * LARGE_PX), shortest // (REDUCING_GAP * THUMB_PX)))


def _reduced(image: Image.Image) -> Image.Image:
    """A decoded picture averaged down by ``_reduction`` (Image.reduce), in RGB. While
    this runs the full-size pixels and the reduced ones are alive, nothing more."""
    factor = _reduction(image.size)
    if factor == 1:
        return _rgb(image)
    if image.mode not in REDUCIBLE_MODES:  # averaging palette indices would mix colours
        image = image.convert("RGBA" if image.has_transparency_data else "RGB")
    return _rgb(_reduce(image, factor))


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)``; with transparency, a band of rows at a time: Pillow
    reduces such an image through a premultiplied copy of all of it."""
    if image.mode not in ("RGBA", "LA"):
        return image.reduce(factor)
    width, height = image.size
    reduced = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    rows = factor * REDUCE_BAND_ROWS  # a multiple of the factor: the same blocks as whole
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(top + rows, height)))
        reduced.paste(band.reduce(factor), (0, top // factor))
    return reduced


def _decoded(image: ImageFile.ImageFile) -> Image.Image:
    """An opened image decoded at the size its renditions need, in RGB. A JPEG decodes
    at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling: Pillow's draft), so its
    full-size pixels never exist; other formats decode whole and are then reduced."""
    factor = _reduction(image.size)
    if factor > 1:  # every format but JPEG ignores a draft
        image.draft(None, (image.width // factor, image.height // factor))
    image.load()  # decodes everything now: a truncated file fails here
    return _reduced(image)


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """The turn or flip the EXIF orientation asks for (read after loading: a PNG's eXIf
    chunk may come after its pixels)."""
    return ORIENTATIONS.get(image.getexif().get(ExifTags.Base.Orientation, 1))


def _within(size: tuple[int, int], edge: int) -> tuple[int, int] | None:
    """``size`` scaled down so that its longest edge is ``edge``; None if it fits."""
    width, height = size
    if max(size) <= edge:
        return None
    scale = edge / max(size)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _thumb_source(image: Image.Image, large: Image.Image) -> Image.Image:
    """What the thumbnail is cut from: the large rendition when its shortest edge (the
    square crop's) still has REDUCING_GAP times the thumbnail's pixels, as for every
    picture but the thinnest panoramas: resampling its pixels, not the decode's (two to
    four times as many on each edge), was most of a thumbnail's cost. Else the decode."""
    return large if min(large.size) >= REDUCING_GAP * THUMB_PX else image


def renditions_of(
    image: Image.Image,
    shown: tuple[int, int] | None = None,
    turn: Image.Transpose | None = None,
) -> list[RenditionBytes]:
    """A square thumbnail and a large rendition (longest edge at most LARGE_PX) of a
    picture ``shown`` wide and high once ``turn`` (its orientation) is applied.
    ``image`` is that picture before the turn, possibly decoded or reduced to a smaller
    size (``shown`` is then the full size). The renditions are turned, not ``image``:
    a turn of a full-size image would be one more full-size copy."""
    image = _rgb(image)
    shown = shown or image.size
    swaps = turn in SWAPPING_TURNS
    large = image
    if (size := _within(shown, LARGE_PX)) is not None:
        unturned = (size[1], size[0]) if swaps else size
        large = image.resize(unturned, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    thumb = ImageOps.fit(
        _thumb_source(image, large), (THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS
    )
    if turn is not None:
        thumb, large = thumb.transpose(turn), large.transpose(turn)
    return [
        RenditionBytes("thumb", _jpeg(thumb), "image/jpeg", *thumb.size),
        RenditionBytes("large", _jpeg(large), "image/jpeg", *large.size),
    ]


def process_image(path: Path, media_type: MediaType, max_pixels: int) -> Processed:
    try:
        with Image.open(path, formats=[PILLOW_FORMATS[media_type.format]]) as image:
            width, height = image.size  # from the header: the decode may be smaller
            if width * height > max_pixels:
                raise InvalidMedia(
                    f"image is {width}x{height} pixels, over the limit of "
                    f"{max_pixels:,} (decompression bomb?)"
                )
            decoded = _decoded(image)
            turn = _orientation(image)
            if decoded is not image:
                image.close()  # its full-size pixels: the renditions need only ``decoded``
            shown = (height, width) if turn in SWAPPING_TURNS else (width, height)
            return Processed(*shown, None, renditions_of(decoded, shown, turn))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidMedia(f"image refused as a decompression bomb: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidMedia(f"the {media_type.format.upper()} image does not decode") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        reason = str(exc).replace(str(path), "the upload")
        raise InvalidMedia(
            f"the {media_type.format.upper()} image does not decode: {reason}"
        ) from exc


def video_limits(max_pixels: int, settings: Settings | None = None) -> VideoLimits:
    """The bounds of a video from the settings (their defaults without any)."""
    from instastore.config import Settings

    settings = settings or Settings()
    return VideoLimits(
        max_pixels,
        settings.max_video_seconds,
        settings.video_max_fps,
        settings.video_max_bitrate,
        settings.transcode_nice,
    )


def process_video(path: Path, media_type: MediaType, limits: VideoLimits) -> Processed:
    """Bounds checked, the first frame decoded for the poster (upright), and the
    browser-safe "video" rendition made now when a stream copy is all it takes; else
    ``Processed.transcode`` says why the transcode queue must make it."""
    from instastore.video import rendition
    from instastore.video.probe import transcode_reason

    found, poster = rendition.inspect(path, media_type.format, limits)
    renditions = renditions_of(poster)
    large = next(r for r in renditions if r.name == "large")
    renditions.append(
        RenditionBytes("poster", large.data, large.content_type, large.width, large.height)
    )
    reason = transcode_reason(found, limits)
    if reason is None:
        import av

        target = derived_path(path, "video")
        try:
            made = rendition.remux(path, target, found)
        except (av.FFmpegError, ValueError, OSError) as exc:
            why = getattr(exc, "strerror", None) or type(exc).__name__
            raise InvalidMedia(f"the {media_type.format} video does not decode: {why}") from exc
        renditions.append(
            RenditionBytes(
                "video",
                b"",
                rendition.CONTENT_TYPE,
                made.width,
                made.height,
                rendition.EXTENSION,
                target,
                made.size,
            )
        )
    duration = round(found.duration_s, 3) if found.duration_s else None
    return Processed(*found.shown, duration, renditions, transcode=reason)


def process(
    path: Path, media_type: MediaType, max_pixels: int, settings: Settings | None = None
) -> Processed:
    if media_type.kind is Kind.PHOTO:
        return process_image(path, media_type, max_pixels)
    return process_video(path, media_type, video_limits(max_pixels, settings))
