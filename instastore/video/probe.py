"""What a video is, read from its container and its first frame, and the bounds checked
before anything past the first frame is decoded: frame size (the decoder refuses bigger
frames too), duration, declared frames and frame rate. ``browser_safe`` says whether the
upload already is what every browser plays, so a stream copy is its rendition."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from instastore.errors import InvalidMedia
from instastore.limits import MAX_VIDEO_FPS, MAX_VIDEO_PACKETS

if TYPE_CHECKING:  # PyAV is imported where a video is processed, not at start-up
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

RENDITION_EDGE_PX = 1080  # longest side of the browser-safe rendition
# H.264 profiles every browser decodes (Chrome, Firefox, Safari; Android's MediaCodec).
SAFE_PROFILES = {"Baseline", "Constrained Baseline", "Main", "High"}
SAFE_PIX_FMTS = {"yuv420p", "yuvj420p"}  # 8-bit 4:2:0
SAFE_AUDIO = {"aac"}
FPS_SLACK = 1.01  # a 30.0 cap passes 29.97 and a container's rounding of 30


@dataclass(frozen=True)
class VideoLimits:
    """The bounds of an accepted video and of its rendition (from the settings)."""

    max_pixels: int
    max_seconds: int
    max_fps: int  # of the rendition
    max_bitrate: int  # bits per second, of the rendition
    nice: int = 10  # the transcoding child's niceness (behind the server's own work)


@dataclass(frozen=True)
class Probe:
    codec: str
    profile: str | None
    pix_fmt: str | None
    width: int  # as stored, before rotation
    height: int
    rotation: int  # degrees counterclockwise the picture is turned to be upright: 0, 90, 180, 270
    fps: float | None
    bit_rate: int | None  # of the video stream, bits per second
    duration_s: float | None
    audio: str | None  # codec of the first audio stream; None: no audio

    @property
    def shown(self) -> tuple[int, int]:
        """Width and height once rotated upright."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


def duration_of(container: InputContainer, stream: VideoStream) -> float | None:
    import av

    if container.duration:
        return float(container.duration / av.time_base)
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def rate_of(stream: VideoStream) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else None


def check_bounds(
    container: InputContainer, stream: VideoStream, fmt: str, limits: VideoLimits
) -> float | None:
    """Refuse what the container declares past the limits, before decoding anything;
    the duration it declares. The decoder is set to refuse bigger frames too."""
    declared = sum(s.frames for s in container.streams if s.type in ("video", "audio"))
    if declared > MAX_VIDEO_PACKETS:
        raise InvalidMedia(
            f"the {fmt} video declares {declared:,} frames, over {MAX_VIDEO_PACKETS:,}"
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limits.max_pixels:
        raise InvalidMedia(
            f"the {fmt} video declares {width}x{height} frames, over the limit of "
            f"{limits.max_pixels:,} pixels"
        )
    duration = duration_of(container, stream)
    if duration is not None and duration > limits.max_seconds:
        raise InvalidMedia(
            f"the {fmt} video lasts {duration:,.0f} s, over the limit of {limits.max_seconds:,} s"
        )
    fps = rate_of(stream)
    if fps is not None and fps > MAX_VIDEO_FPS:
        raise InvalidMedia(
            f"the {fmt} video declares {fps:,.0f} frames a second, over {MAX_VIDEO_FPS}"
        )
    # SECURITY: the decoder refuses any frame past the limit too, whatever the container
    # declared (a small stsd in front of huge JPEG frames).
    stream.codec_context.options = {"max_pixels": str(limits.max_pixels)}
    return duration


def upright_turn(frame: VideoFrame) -> int:
    """The counterclockwise turn (0, 90, 180, 270) that shows ``frame`` upright: its
    display matrix, as players apply it (a phone held upright writes one)."""
    rotation = getattr(frame, "rotation", 0) or 0
    return round(rotation / 90) % 4 * 90


def probe(
    container: InputContainer, stream: VideoStream, first: VideoFrame, duration: float | None
) -> Probe:
    ctx = stream.codec_context
    bit_rate = stream.bit_rate or None
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return Probe(
        codec=ctx.name,
        profile=ctx.profile,
        pix_fmt=ctx.pix_fmt,
        width=first.width,
        height=first.height,
        rotation=upright_turn(first),
        fps=rate_of(stream),
        bit_rate=bit_rate,
        duration_s=duration,
        audio=audio,
    )


def transcode_reason(found: Probe, limits: VideoLimits) -> str | None:
    """Why ``found`` must be transcoded for every browser to play it; None when a stream
    copy into MP4 is its browser-safe rendition already (phones that record H.264)."""
    if found.codec != "h264":
        return f"{found.codec} video"
    if found.profile not in SAFE_PROFILES or found.pix_fmt not in SAFE_PIX_FMTS:
        return f"H.264 {found.profile} {found.pix_fmt}"
    if found.audio is not None and found.audio not in SAFE_AUDIO:
        return f"{found.audio} audio"
    if max(found.width, found.height) > RENDITION_EDGE_PX:
        return f"{found.width}x{found.height} frames"
    if found.width % 2 or found.height % 2:
        return f"odd frame size {found.width}x{found.height}"
    if found.fps is None or found.fps > limits.max_fps * FPS_SLACK:
        return f"{found.fps or 'unknown'} frames a second"
    if found.bit_rate is None or found.bit_rate > limits.max_bitrate:
        return f"bitrate {found.bit_rate or 'unknown'}"
    return None


def rendition_size(found: Probe) -> tuple[int, int]:
    """Width and height of the transcoded rendition: upright, longest side at most
    RENDITION_EDGE_PX, both even (4:2:0 chroma)."""
    width, height = found.shown
    scale = min(Fraction(1), Fraction(RENDITION_EDGE_PX, max(width, height)))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)
