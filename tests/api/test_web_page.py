"""The web page in a real browser (Debian's Chromium driven by Playwright): two people
sign up, upload a photo and a video, follow, see the photo in the other's timeline, like
it, search it, delete and restore it; a title with <script> shows as text. Screenshots of
the main pages at desktop and phone sizes go to the test's temporary folder, or to
docs/screenshots/ (the README's) with INSTASTORE_REFRESH_SCREENSHOTS=1."""

from __future__ import annotations

import importlib
import os
import shutil
import uuid
from pathlib import Path

import pytest

from .. import samples
from ..required import missing
from ..serving import serve

try:
    playwright_api = importlib.import_module("playwright.sync_api")
except ImportError:  # under CI a missing browser driver fails the module, never skips it
    missing("pip install playwright (the test extra)", allow_module_level=True)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
README_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    data = tmp_path_factory.mktemp("web")
    with serve({"INSTASTORE_DATA_DIR": str(data)}, data / "serve.log") as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    """Where the screenshots go: the tracked README images only when asked to refresh them."""
    if os.environ.get("INSTASTORE_REFRESH_SCREENSHOTS") == "1":
        return README_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium is needed at {CHROMIUM} (apt-get install chromium; scripts/bootstrap does)"
        )
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


def new_page(browser, base_url, viewport=DESKTOP):
    page = browser.new_context(viewport=viewport, base_url=base_url).new_page()
    page.on(
        "dialog",
        lambda dialog: pytest.fail(f"a dialog opened: {dialog.message!r} (script injection?)"),
    )
    return page


def sign_up(page, username):
    page.goto("/#/signup")
    page.fill("#username", username)
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("#nav >> text=Upload")


def upload(page, path, title, expect_error=None):
    page.goto("/#/upload")
    page.set_input_files("#file", str(path))
    page.fill("#title", title)
    page.click("button[type=submit]")
    if expect_error:
        page.wait_for_selector(f".error >> text={expect_error}")
        return
    page.wait_for_selector(f".card .title >> text={title}")


def test_two_people_use_the_web_page(browser, base_url, tmp_path, screenshots):
    alice, bob = f"alice{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"
    photo_path, video_path, bad_path = (
        tmp_path / "harbour.jpg",
        tmp_path / "clip.mp4",
        tmp_path / "notes.txt",
    )
    photo_path.write_bytes(samples.picture((1600, 1200), seed=1))
    (tmp_path / "other.jpg").write_bytes(samples.picture((1200, 1200), seed=5))
    video_path.write_bytes(samples.video("mp4", "libx264", size=(320, 240), frames=48))
    bad_path.write_bytes(b"just some text, not a photo")
    evil = '<script>alert("x")</script> <img src=x onerror=alert(1)>'

    a = new_page(browser, base_url)
    sign_up(a, alice)
    upload(a, photo_path, "Harbour at dawn")
    upload(a, video_path, "A short clip")
    upload(a, tmp_path / "other.jpg", evil)
    upload(a, bad_path, "nope", expect_error="not a supported image or video")

    b = new_page(browser, base_url)
    sign_up(b, bob)
    b.goto(f"/#/u/{alice}")
    b.click("[data-action=follow]")
    b.wait_for_selector("[data-action=follow] >> text=Unfollow")
    b.goto("/#/?order=recent")
    b.wait_for_selector(".card .title >> text=Harbour at dawn")
    titles = b.locator(".card .title").all_text_contents()
    assert titles == [evil, "A short clip", "Harbour at dawn"]  # the markup is shown as text
    assert b.locator(".card script").count() == 0 and b.locator(".card img[src=x]").count() == 0

    harbour = b.locator(".card", has_text="Harbour at dawn")
    harbour.locator("button.like").click()
    harbour.locator("button.like[aria-pressed=true]").wait_for()
    assert harbour.locator("button.like").inner_text() == "♥ 1"

    b.fill("#search-q", "harbour DAWN")
    b.press("#search-q", "Enter")
    b.wait_for_selector("h1 >> text=Photos matching")
    b.wait_for_selector(".card .title >> text=Harbour at dawn")
    assert b.locator(".card").count() == 1

    b.goto("/#/?order=recent")
    b.locator(".card", has_text="A short clip").locator("img.thumb").click()
    video = b.locator(".viewer video")
    video.wait_for()
    b.wait_for_function("document.querySelector('.viewer video').readyState >= 2", timeout=20_000)
    assert b.evaluate("document.querySelector('.viewer video').duration") == pytest.approx(
        4.0, abs=0.5
    )
    b.evaluate("document.querySelector('.viewer video').currentTime = 3")  # seeking: byte ranges
    b.wait_for_function(
        "document.querySelector('.viewer video').currentTime >= 2.9", timeout=20_000
    )
    b.keyboard.press("Escape")

    a.goto(f"/#/u/{alice}")
    card = a.locator(".card", has_text="Harbour at dawn")
    card.locator("button", has_text="Delete").click()
    a.wait_for_selector("[data-deleted=true] >> text=Restore")
    b.goto(f"/#/u/{alice}")
    b.wait_for_selector(".card .title >> text=A short clip")
    assert "Harbour at dawn" not in b.locator(".card .title").all_text_contents()
    a.locator("[data-deleted=true] button", has_text="Restore").click()
    a.wait_for_selector(".card .title >> text=Harbour at dawn")

    screenshots.mkdir(parents=True, exist_ok=True)
    b.goto("/#/?order=recent")
    b.wait_for_selector(".card .title >> text=Harbour at dawn")
    b.wait_for_function("[...document.images].every(i => i.complete)")
    b.screenshot(path=str(screenshots / "timeline-desktop.png"))
    phone = new_page(browser, base_url, PHONE)
    phone.goto("/#/login")
    phone.fill("#username", bob)
    phone.fill("#password", "correct horse battery")
    phone.click("button[type=submit]")
    phone.wait_for_selector(".card .title >> text=Harbour at dawn")
    phone.goto(f"/#/u/{alice}")
    phone.wait_for_selector(".card .title >> text=Harbour at dawn")
    phone.wait_for_function("[...document.images].every(i => i.complete)")
    phone.screenshot(path=str(screenshots / "profile-phone.png"))
    a.screenshot(path=str(screenshots / "profile-desktop.png"))
    phone.goto("/#/upload")
    phone.screenshot(path=str(screenshots / "upload-phone.png"))


def test_the_page_is_served_with_a_content_security_policy(base_url):
    import urllib.request

    with urllib.request.urlopen(base_url + "/") as resp:
        csp = resp.headers["Content-Security-Policy"]
        html = resp.read().decode()
    assert (
        "script-src 'self'" in csp
        and "frame-ancestors 'none'" in csp
        and "unsafe-inline" not in csp
    )
    assert '<script src="/static/app.js" defer></script>' in html
    with urllib.request.urlopen(base_url + "/static/app.js") as resp:
        assert "innerHTML" not in resp.read().decode().replace("never through innerHTML", "")
