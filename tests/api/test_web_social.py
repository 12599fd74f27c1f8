"""The social loop on the web page in Chromium: bob comments on ada's photo naming @ada and
names her in a title of his own; ada sees the unread badge, opens her activity, finds the
comment and the mention, follows the event to the photo and deletes the comment as its
owner; the comments page with "More comments"; a private account declines a follow
request; a photo, a comment and an account reported from their menus, and an account
blocked and unblocked from its profile's menu and one's blocks list. Screenshots of the
activity screen, the photo viewer with its comments, a report form and the blocks list,
at desktop and phone sizes, go where test_web_page's do."""

from __future__ import annotations

import uuid

import pytest

from .. import samples
from .test_web_page import (  # noqa: F401
    PHONE,
    WAIT_MS,
    base_url,
    browser,
    new_page,
    playwright_api,
    screenshots,
    sign_up,
    upload,
)

pytestmark = pytest.mark.timeout(300)


def log_in(page, username):
    page.goto("/#/login")
    page.fill("#username", username)
    page.fill("#password", "correct horse battery")
    page.click("button[type=submit]")
    page.wait_for_selector("#nav >> text=Upload")


def api_post(page, path, body):
    """A JSON POST with the page's own session, as its script would send it."""
    return page.evaluate(
        """async ([path, body]) => {
             const r = await fetch(path, {method: "POST", body: JSON.stringify(body),
               headers: {"Content-Type": "application/json",
                         "Authorization": "Bearer " + localStorage.getItem("token")}});
             return [r.status, r.status === 204 ? null : await r.json()];
           }""",
        [path, body],
    )


def api_get(page, path):
    return page.evaluate(
        """async (path) => {
             const token = localStorage.getItem("token");
             const r = await fetch(path, {headers: {"Authorization": "Bearer " + token}});
             return [r.status, await r.json()];
           }""",
        path,
    )


def read_to_the_end(page):
    """Click the activity screen's "More" until it has no more to read."""
    idle = ".activity-page button.more:not([disabled])"
    page.wait_for_selector(idle, state="attached")
    while page.locator(".activity-page button.more").is_visible():
        page.click(".activity-page button.more")
        page.wait_for_selector(idle, state="attached")


def test_comments_mentions_and_activity(browser, base_url, tmp_path, screenshots):  # noqa: F811
    ada, bob = f"ada{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"
    (tmp_path / "harbour.jpg").write_bytes(samples.picture((1600, 1200), seed=11))
    (tmp_path / "dunes.jpg").write_bytes(samples.picture((1200, 1500), seed=12))
    a = new_page(browser, base_url)
    sign_up(a, ada)
    upload(a, tmp_path / "harbour.jpg", "Harbour at dawn #sunrise")
    photo_id = a.locator(".card", has_text="Harbour at dawn").get_attribute("data-photo-id")
    assert a.locator("#unread-badge").is_hidden()

    b = new_page(browser, base_url)
    sign_up(b, bob)
    upload(b, tmp_path / "dunes.jpg", f"Dunes, for @{ada.upper()} and @nobody_here")
    dunes = b.locator(".card", has_text="Dunes")
    dunes_id = dunes.get_attribute("data-photo-id")
    # The title's mention links to ada's page; a name nobody holds stays text.
    assert dunes.locator("a.mention").get_attribute("href") == f"#/u/{ada}"
    assert dunes.locator("a.mention").inner_text() == f"@{ada.upper()}"
    assert dunes.locator("a.mention").count() == 1

    b.goto(f"/#/u/{ada}")
    card = b.locator(".card", has_text="Harbour at dawn")
    assert card.locator("a.tag").inner_text() == "#sunrise"
    assert card.locator("button.comments-button .count").inner_text() == "0"
    card.locator("button.comments-button").click()
    viewer = b.locator(".viewer")
    viewer.locator(".comment-count >> text=0 comments").wait_for()
    evil = "<img src=x onerror=alert(1)>"
    text = f"Lovely light @{ada} {evil} #harbour"
    viewer.locator(".comment-input").fill(text)
    viewer.locator(".comment-form button[type=submit]").click()
    mine = viewer.locator(".comment", has_text="Lovely light")
    mine.wait_for()
    viewer.locator(".comment-count >> text=1 comment").wait_for()
    assert mine.locator(".text").inner_text() == text  # the markup shown as text
    assert mine.locator("img").count() == 0
    assert mine.locator("a.mention").get_attribute("href") == f"#/u/{ada}"
    assert mine.locator("a.tag").get_attribute("href") == "#/tag/harbour"
    assert mine.locator("[data-action=delete-comment]").count() == 1  # its author may
    viewer.locator("[data-action=share]").click()  # the photo is public: it has a page
    assert viewer.locator(".share-url").input_value() == f"{base_url}/p/{photo_id}"
    b.keyboard.press("Escape")
    assert card.locator("button.comments-button .count").inner_text() == "1"
    card.locator("a.tag").click()  # a tag opens its page: the photos it files
    b.wait_for_selector(".tag-page h1 >> text=#sunrise")
    b.wait_for_selector(".tag-page .card .title >> text=Harbour at dawn")
    assert b.locator(".tag-page .card").count() == 1

    # Ada: the badge counts bob's comment and his mention (no event for the title's
    # unknown name, none for her own upload).
    a.goto(f"/#/u/{ada}")
    a.wait_for_selector("#unread-badge:not([hidden])")
    assert a.locator("#unread-badge").inner_text() == "2"
    a.click("#nav a[data-nav=activity]")
    events = a.locator(".activity .event")
    events.nth(1).wait_for()
    assert [e.get_attribute("data-kind") for e in events.all()] == ["comment", "mention"]
    assert a.locator(".event.unread").count() == 2  # as they were when opened
    screenshots.mkdir(parents=True, exist_ok=True)
    a.screenshot(path=str(screenshots / "activity-desktop.png"))
    comment_event, mention_event = events.nth(0), events.nth(1)
    assert comment_event.locator(".what").inner_text() == (
        f"@{bob} commented on your photo “Harbour at dawn #sunrise”"
    )
    assert mention_event.locator(".what").inner_text() == (
        f"@{bob} mentioned you in “Dunes, for @{ada.upper()} and @nobody_here”"
    )
    assert mention_event.locator("a.actor").get_attribute("href") == f"#/u/{bob}"
    a.locator("#unread-badge").wait_for(state="hidden")  # seen: read
    status, mark = api_post(a, "/v1/activity/read", {})
    assert status == 200 and mark["unread"] == 0
    a.reload()
    a.locator(".activity .event").nth(1).wait_for()
    assert a.locator(".event.unread").count() == 0

    # Twenty mentions more, in comments on bob's own photo: the badge counts them; the
    # screen shows a page of twenty, unread, and "More" the two read before.
    for i in range(20):
        status, _ = api_post(b, f"/v1/photos/{dunes_id}/comments", {"text": f"@{ada} {i}"})
        assert status == 201
    a.goto(f"/#/u/{ada}")
    a.wait_for_selector("#unread-badge:not([hidden])")
    assert a.locator("#unread-badge").inner_text() == "20"
    a.click("#nav a[data-nav=activity]")
    a.locator(".activity .event").nth(19).wait_for()
    read_to_the_end(a)
    kinds = [e.get_attribute("data-kind") for e in a.locator(".activity .event").all()]
    assert kinds == ["mention"] * 20 + ["comment", "mention"]
    assert a.locator(".event.unread").count() == 20
    assert a.locator(".event").nth(0).locator(".what").inner_text() == (
        f"@{bob} mentioned you in a comment on “Dunes, for @{ada.upper()} and @nobody_here”"
    )

    # Twenty comments of ada's own after bob's: a page holds twenty, "More comments" the rest.
    for i in range(20):
        status, _ = api_post(a, f"/v1/photos/{photo_id}/comments", {"text": f"note {i + 1}"})
        assert status == 201
    a.locator(".event[data-kind=comment] a.photo-link").click()
    a.wait_for_selector(".photo-route .comment.highlight >> text=Lovely light")
    route = a.locator(".photo-route")
    assert route.locator(".comment-count").inner_text() == "21 comments"
    assert route.locator(".comment").count() == 20
    assert route.locator(".comment .author").first.inner_text() == f"@{bob}"  # oldest first
    route.locator("button.more >> text=More comments").click()
    route.locator(".comment >> text=note 20").wait_for()
    assert route.locator(".comment").count() == 21 and route.locator("button.more").is_hidden()
    # The photo's owner may delete any comment on it.
    assert route.locator("[data-action=delete-comment]").count() == 21

    b.goto(f"/#/u/{ada}")
    b.locator(".card", has_text="Harbour at dawn").locator("button.comments-button").click()
    b.locator(".viewer .comment >> text=note 1").first.wait_for()
    # Bob may delete his own comment only.
    assert b.locator(".viewer [data-action=delete-comment]").count() == 1
    b.wait_for_function("[...document.images].every(i => i.complete)")
    b.screenshot(path=str(screenshots / "viewer-desktop.png"))
    b.locator(".viewer .comment a.mention").first.click()  # leaves the viewer for the account
    b.wait_for_selector(".viewer", state="detached")
    b.wait_for_selector(f".profile-head .owner >> text=@{ada}")
    phone = new_page(browser, base_url, PHONE)
    log_in(phone, bob)
    phone.goto(f"/#/photo/{photo_id}")
    phone.locator(".photo-route .comment >> text=Lovely light").wait_for()
    phone.wait_for_function("[...document.images].every(i => i.complete)")
    phone.screenshot(path=str(screenshots / "viewer-phone.png"))
    phone_ada = new_page(browser, base_url, PHONE)
    log_in(phone_ada, ada)
    phone_ada.goto("/#/activity")
    phone_ada.locator(".activity .event").nth(1).wait_for()
    phone_ada.screenshot(path=str(screenshots / "activity-phone.png"))

    route.locator(".comment", has_text="Lovely light").locator(
        "[data-action=delete-comment]"
    ).click()
    a.wait_for_selector("#toast >> text=Comment deleted")
    assert route.locator(".comment-count").inner_text() == "20 comments"
    assert route.locator(".comment", has_text="Lovely light").count() == 0
    # The comment gone, its event goes from ada's activity; the title's mention stays.
    a.goto("/#/activity")
    a.locator(".activity .event").first.wait_for()
    read_to_the_end(a)
    kinds = [e.get_attribute("data-kind") for e in a.locator(".activity .event").all()]
    assert kinds == ["mention"] * 21
    phone.reload()
    phone.locator(".photo-route .comment >> text=note 1").first.wait_for()
    assert phone.locator(".comment", has_text="Lovely light").count() == 0


def test_a_private_account_declines_a_follow_request(browser, base_url):  # noqa: F811
    cleo, dan = f"cleo{uuid.uuid4().hex[:6]}", f"dan{uuid.uuid4().hex[:6]}"
    c = new_page(browser, base_url)
    sign_up(c, cleo)
    c.goto(f"/#/u/{cleo}")
    c.click("[data-action=privacy] >> text=Make account private")
    c.wait_for_selector("[data-action=privacy] >> text=Make account public")
    assert c.locator(".profile-head [data-private]").is_visible()

    d = new_page(browser, base_url)
    sign_up(d, dan)
    d.goto(f"/#/u/{cleo}")
    d.click("[data-action=follow] >> text=Follow")
    d.wait_for_selector("[data-action=follow] >> text=Requested")

    c.goto("/#/activity")
    request = c.locator(".event[data-kind=request]")
    request.wait_for()
    assert request.locator(".what").inner_text().startswith(f"@{dan} asked to follow you")
    request.locator("a", has_text="answer on your profile").click()
    item = c.locator(f".requests li[data-username={dan}]")
    item.wait_for()
    item.locator("[data-action=decline]").click()
    c.wait_for_selector(f"#toast >> text=Declined @{dan}")
    assert c.locator(".requests-section").is_hidden()
    assert api_get(c, "/v1/me/requests") == [200, {"items": [], "next_cursor": None}]
    c.goto("/#/activity")
    c.wait_for_selector(".activity-page .empty")  # a declined request is no event

    d.reload()
    d.wait_for_selector("[data-action=follow]:text-is('Follow')")  # he may ask again


def report_through(page, form, reason, path, text=""):
    """Fill a report form and send it; the request the page made and its answer."""
    form.locator("select[name=reason]").select_option(reason)
    if text:
        form.locator("input[name=text]").fill(text)
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith(path)
    ) as sent:
        form.locator("button[type=submit]").click()
    return sent.value.request.post_data_json, sent.value.status


def test_block_and_report_from_the_menus(browser, base_url, tmp_path, screenshots):  # noqa: F811
    eve, fay = f"eve{uuid.uuid4().hex[:6]}", f"fay{uuid.uuid4().hex[:6]}"
    (tmp_path / "cliffs.jpg").write_bytes(samples.picture((1400, 1000), seed=21))
    e = new_page(browser, base_url)
    sign_up(e, eve)
    upload(e, tmp_path / "cliffs.jpg", "Cliffs in fog")
    photo_id = e.locator(".card", has_text="Cliffs in fog").get_attribute("data-photo-id")
    status, eves = api_post(e, f"/v1/photos/{photo_id}/comments", {"text": "thanks for looking"})
    assert status == 201
    f = new_page(browser, base_url)
    sign_up(f, fay)
    status, _ = api_post(f, f"/v1/photos/{photo_id}/comments", {"text": "buy followers here"})
    assert status == 201

    # Fay reports the photo from its menu: a reason is needed before anything is sent.
    f.goto(f"/#/photo/{photo_id}")
    panel = f.locator(".photo-route .photo-panel")
    panel.locator("[data-action=report-photo]").click()
    form = panel.locator("form.report-form")
    form.locator("button[type=submit]").click()
    assert form.locator("select[name=reason]:invalid").count() == 1  # nothing sent
    body, status = report_through(
        f, form, "spam", f"/v1/photos/{photo_id}/report", "  it is an ad  "
    )
    assert (body, status) == ({"reason": "spam", "text": "  it is an ad  "}, 204)
    f.wait_for_selector("#toast >> text=Thanks: the photo is reported to the operators")
    assert form.count() == 0  # the menu closed
    # A comment's menu: eve's may be reported; fay's own has no Report.
    theirs = panel.locator(".comment", has_text="thanks for looking")
    assert (
        panel.locator(".comment", has_text="buy followers")
        .locator("[data-action=report-comment]")
        .count()
        == 0
    )
    theirs.locator("[data-action=report-comment]").click()
    path = f"/v1/photos/{photo_id}/comments/{eves['id']}/report"
    body, status = report_through(f, theirs.locator("form.report-form"), "harassment", path)
    assert (body, status) == ({"reason": "harassment"}, 204)
    f.wait_for_selector("#toast >> text=Thanks: the comment is reported to the operators")
    # The account, from its profile's menu.
    f.goto(f"/#/u/{eve}")
    f.click(f"[aria-label='More for @{eve}']")
    f.click("[data-action=report-account]")
    form = f.locator(".profile-head form.report-form")
    body, status = report_through(f, form, "other", f"/v1/users/{eve}/report", "impersonation")
    assert (body, status) == ({"reason": "other", "text": "impersonation"}, 204)
    # Past reports_per_minute (10), the page says what the server said.
    for _ in range(7):
        assert api_post(f, f"/v1/users/{eve}/report", {"reason": "spam"})[0] == 204
    f.click(f"[aria-label='More for @{eve}']")
    f.click("[data-action=report-account]")
    body, status = report_through(f, form, "spam", f"/v1/users/{eve}/report")
    assert status == 429
    f.wait_for_selector("#toast >> text=too many reports")

    # Eve: her own photo has no Report; fay's comment on it has.
    e.goto(f"/#/photo/{photo_id}")
    panel = e.locator(".photo-route .photo-panel")
    panel.locator(".comment >> text=buy followers here").wait_for()
    assert panel.locator("[data-action=report-photo]").count() == 0
    assert (
        panel.locator(".comment", has_text="buy followers")
        .locator("[data-action=report-comment]")
        .count()
        == 1
    )
    assert (
        panel.locator(".comment", has_text="thanks for looking")
        .locator("[data-action=report-comment]")
        .count()
        == 0
    )
    # She blocks fay from fay's profile menu, asked once more.
    e.goto(f"/#/u/{fay}")
    e.click(f"[aria-label='More for @{fay}']")
    e.click("[data-action=block]")
    e.wait_for_selector(f".account-menu >> text=Block @{fay}?")
    e.click("[data-action=confirm-block]")
    e.wait_for_selector(f".blocked-notice >> text=You blocked @{fay}")
    assert api_get(e, f"/v1/users/{fay}")[0] == 404  # each is missing to the other
    assert api_get(f, f"/v1/users/{eve}")[0] == 404
    assert api_get(f, f"/v1/photos/{photo_id}/comments")[0] == 404
    f.reload()  # still on eve's profile, which the block took away
    assert api_get(f, f"/v1/users/{eve}")[1]["detail"] == f"no user {eve!r}"
    f.locator(".empty", has_text=f"no user {eve!r}").wait_for()
    # The notice unblocks at once, and the profile is back with its menu.
    e.click(".blocked-notice [data-action=unblock]")
    e.wait_for_selector(f"#toast >> text=Unblocked @{fay}")
    e.wait_for_selector(f".profile-head .owner >> text=@{fay}")
    # Blocked again; her own profile lists fay under Blocked accounts, to unblock there.
    e.click(f"[aria-label='More for @{fay}']")
    e.click("[data-action=block]")
    e.click("[data-action=confirm-block]")
    e.wait_for_selector(".blocked-notice")
    e.goto(f"/#/u/{eve}")
    item = e.locator(f".blocks li[data-username={fay}]")
    item.wait_for()
    assert api_get(e, "/v1/me/blocks")[1]["items"][0]["username"] == fay
    # Her photo's comment count leaves out fay's comment, as its list does.
    count = e.locator(".card", has_text="Cliffs in fog").locator(".comments-button .count")
    assert count.inner_text() == "1"
    screenshots.mkdir(parents=True, exist_ok=True)
    phone = new_page(browser, base_url, PHONE)
    log_in(phone, eve)
    phone.goto(f"/#/u/{eve}")
    phone.locator(f".blocks li[data-username={fay}]").wait_for()
    phone.screenshot(path=str(screenshots / "blocks-phone.png"))
    item.locator("[data-action=unblock]").click()
    e.wait_for_selector(f"#toast >> text=Unblocked @{fay}")
    assert e.locator(".blocks-section").is_hidden()
    assert api_get(e, "/v1/me/blocks") == [200, {"items": [], "next_cursor": None}]
    assert api_get(f, f"/v1/users/{eve}")[0] == 200
    # The report form in the viewer, for the README.
    f.reload()  # eve's profile again, shown now
    f.locator(".card", has_text="Cliffs in fog").locator("button.comments-button").click()
    f.locator(".viewer [data-action=report-photo]").click()
    f.locator(".viewer form.report-form select").select_option("spam")
    f.wait_for_function("[...document.images].every(i => i.complete)")
    f.screenshot(path=str(screenshots / "report-desktop.png"))
