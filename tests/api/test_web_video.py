"""Every kind of video plays in headless Chromium from the web page: uploaded through the
page's form, made browser-safe by the server's transcode worker, opened in the page's
viewer, where the video element reaches readyState >= 2 (it has a frame to show) and its
currentTime advances while it plays, the right way up."""

from __future__ import annotations

import time
import uuid

import pytest

from .. import samples
from .test_web_page import (  # noqa: F401
    WAIT_MS,
    base_url,
    browser,
    new_page,
    playwright_api,
    sign_up,
    upload,
)

pytestmark = pytest.mark.timeout(600)
SIZE = (160, 120)  # landscape as stored
# name -> (the clip: 2 s, shown portrait?)
CLIPS = {
    "hevc-mov-rotated-with-location": (
        lambda: samples.clip(
            "mov",
            "libx265",
            SIZE,
            24,
            rotation=-90,
            audio="aac",
            metadata=samples.VIDEO_METADATA,
        ),
        True,
    ),
    "vp9-in-mp4": (lambda: samples.clip("mp4", "libvpx-vp9", SIZE, 24, audio="libopus"), False),
    "prores": (lambda: samples.clip("mov", "prores_ks", SIZE, 24, pix_fmt="yuv422p10le"), False),
    "h264-odd-size": (
        lambda: samples.clip("mp4", "libx264", (161, 119), 24, pix_fmt="yuv444p"),
        False,
    ),
    "h264-10-bit": (lambda: samples.clip("mp4", "libx264", SIZE, 24, pix_fmt="yuv420p10le"), False),
    "h264-variable-rate": (lambda: samples.clip("mp4", "h264", SIZE, 24, vfr=True), False),
    "h264-no-audio-portrait": (lambda: samples.clip("mov", "h264", SIZE, 24, rotation=90), True),
}
STATE = """() => { const v = document.querySelector('.viewer video');
  return {src: v.currentSrc, readyState: v.readyState, networkState: v.networkState,
          error: v.error && [v.error.code, v.error.message], time: v.currentTime}; }"""
READY_WAIT_S = 120  # the server's one transcode worker takes them in turn


def wait_until_ready(page, username: str, titles: set[str]) -> None:
    deadline = time.monotonic() + READY_WAIT_S
    while True:
        items = page.evaluate(
            "async (u) => (await (await fetch(`/v1/users/${u}/photos?limit=50`)).json()).items",
            username,
        )
        status = {i["title"]: i.get("video_status") for i in items if i["title"] in titles}
        if set(status) == titles and set(status.values()) == {"ready"}:
            return
        assert time.monotonic() < deadline, status
        assert "failed" not in status.values(), status
        time.sleep(1)


def test_every_kind_of_video_plays_in_chromium_from_the_web_page(browser, base_url, tmp_path):  # noqa: F811
    user = f"vid{uuid.uuid4().hex[:6]}"
    page = new_page(browser, base_url)
    sign_up(page, user)
    for name, (make, _) in CLIPS.items():
        path = tmp_path / f"{name}.bin"
        path.write_bytes(make())
        upload(page, path, name)
    wait_until_ready(page, user, set(CLIPS))
    for name, (_, portrait) in CLIPS.items():
        page.goto(f"/#/u/{user}")
        page.reload()  # the page shows the list as it was when it was last at this address
        page.locator(".card", has_text=name).locator("img.thumb").click()
        page.locator(".viewer video").wait_for(state="attached")
        try:
            page.wait_for_function(
                "() => document.querySelector('.viewer video').readyState >= 2", timeout=WAIT_MS
            )
        except playwright_api.TimeoutError:
            pytest.fail(f"{name} never had a frame to show: {page.evaluate(STATE)}")
        page.evaluate(
            "() => { const v = document.querySelector('.viewer video'); v.muted = true; v.play(); }"
        )
        page.wait_for_function(
            "() => document.querySelector('.viewer video').currentTime > 0.5", timeout=WAIT_MS
        )
        width, height = page.evaluate(
            "() => [document.querySelector('.viewer video').videoWidth, "
            "document.querySelector('.viewer video').videoHeight]"
        )
        assert (height > width) == portrait, (name, width, height)
        page.keyboard.press("Escape")
