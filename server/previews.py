"""What other platforms read of a photo: its permalink page (server-rendered HTML with
Open Graph and Twitter Card tags, readable without script), its oEmbed 1.0 document,
and the share intents of the platforms that take a URL.

Everything here is made from a card seen by an anonymous viewer (``Viewing.card(None,
...)``, in ``handlers/share.py``): what a crawler may read is what a stranger may see,
never what the person who pasted the link sees. Every user-supplied string (titles,
display names) is escaped for the place it lands (``html.escape`` with quotes in text
and attributes, percent-encoding in URLs) and shown isolated in ``<bdi>``, so
right-to-left text does not reorder the words around it. No rule about who may see what
lives here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from instastore.server import views

from instastore.model import Kind, Rendition
from instastore.viewing import PhotoCard

SITE_NAME = "instastore"
PAGE_MAX_AGE_S = 300  # how long a crawler's cache may keep a page after a photo goes private
# Share intents of the platforms that take a URL (Flickr and Instagram take none: they
# want the bytes uploaded). {url}, {title} and {image} are filled in percent-encoded.
INTENTS: tuple[tuple[str, str, str], ...] = (
    ("x", "X (Twitter)", "https://twitter.com/intent/tweet?url={url}&text={title}"),
    ("facebook", "Facebook", "https://www.facebook.com/sharer/sharer.php?u={url}"),
    (
        "tumblr",
        "Tumblr",
        "https://www.tumblr.com/widgets/share/tool?canonicalUrl={url}&title={title}&posttype=link",
    ),
    (
        "pinterest",
        "Pinterest",
        "https://www.pinterest.com/pin/create/button/?url={url}&media={image}&description={title}",
    ),
    ("reddit", "Reddit", "https://www.reddit.com/submit?url={url}&title={title}"),
    ("linkedin", "LinkedIn", "https://www.linkedin.com/sharing/share-offsite/?url={url}"),
    ("email", "Email", "mailto:?subject={title}&body={url}"),
)


# What encodeURIComponent leaves as it is: the web app's share links are the page's.
URL_SAFE = "!'()*"


def esc(value: object) -> str:
    # SECURITY: every value written into the HTML goes through here: <, >, &, " and '.
    return html.escape(str(value), quote=True)


def playable_video(card: PhotoCard) -> Rendition | None:
    """The video a page's og:video and an embed point at: the viewer-safe copy this
    card's viewer may fetch (None for a photo, or a video stored before the copy
    existed). The one place that chooses it."""
    if card.photo.kind is not Kind.VIDEO:
        return None
    return next((r for r in card.renditions if r.name == "video"), None)


def rendition(card: PhotoCard, name: str) -> Rendition | None:
    return next((r for r in card.renditions if r.name == name), None)


def permalink(base: str, photo_id: int) -> str:
    return f"{base}/p/{photo_id}"


def oembed_link(base: str, photo_id: int) -> str:
    return f"{base}/oembed?url={quote(permalink(base, photo_id), safe='')}&format=json"


@dataclass(frozen=True)
class Preview:
    """A photo as the page and the oEmbed document show it."""

    card: PhotoCard
    base: str  # the public base URL, without a trailing slash

    @property
    def url(self) -> str:
        return permalink(self.base, self.card.photo.id)

    @property
    def title(self) -> str:
        return self.card.photo.title

    @property
    def username(self) -> str:
        return self.card.owner.username if self.card.owner else ""

    @property
    def author(self) -> str:
        owner = self.card.owner
        return (owner.display_name or owner.username) if owner else ""

    @property
    def author_url(self) -> str:
        return f"{self.base}/#/u/{quote(self.username, safe='')}"

    def media(self, item: Rendition) -> str:
        """The rendition's URL on this host (as the page's own <img> loads it)."""
        return views.media_url(self.card, item.name)

    def absolute(self, item: Rendition) -> str:
        return self.base + self.media(item)

    @property
    def image(self) -> Rendition | None:
        return rendition(self.card, "large")

    @property
    def description(self) -> str:
        what = "A video" if self.card.photo.kind is Kind.VIDEO else "A photo"
        by = f" by {self.author} (@{self.username})" if self.username else ""
        return f"{what}{by} on {SITE_NAME}"

    def intents(self) -> list[tuple[str, str, str]]:
        """(key, label, href) of each share intent, its values percent-encoded."""
        image = self.image
        values = {
            "url": quote(self.url, safe=URL_SAFE),
            "title": quote(self.title, safe=URL_SAFE),
            "image": quote(self.absolute(image), safe=URL_SAFE) if image else "",
        }
        return [(key, label, link.format(**values)) for key, label, link in INTENTS]


def _meta(kind: str, name: str, content: object) -> str:
    return f'<meta {kind}="{esc(name)}" content="{esc(content)}">'


def head_tags(preview: Preview) -> list[str]:
    """The Open Graph and Twitter Card tags, the canonical link and the oEmbed link."""
    card, image, video = preview.card, preview.image, playable_video(preview.card)
    secure = preview.base.startswith("https:")
    tags = [
        f'<link rel="canonical" href="{esc(preview.url)}">',
        f'<link rel="alternate" type="application/json+oembed" '
        f'href="{esc(oembed_link(preview.base, card.photo.id))}" title="{esc(preview.title)}">',
        _meta("name", "description", preview.description),
        _meta("property", "og:site_name", SITE_NAME),
        _meta("property", "og:type", "video.other" if video else "website"),
        _meta("property", "og:title", preview.title),
        _meta("property", "og:description", preview.description),
        _meta("property", "og:url", preview.url),
    ]
    if preview.author:
        tags.append(_meta("name", "author", preview.author))
    if image is not None:
        tags += [
            _meta("property", "og:image", preview.absolute(image)),
            *(
                [_meta("property", "og:image:secure_url", preview.absolute(image))]
                if secure
                else []
            ),
            _meta("property", "og:image:type", image.content_type),
            _meta("property", "og:image:width", image.width),
            _meta("property", "og:image:height", image.height),
            _meta("property", "og:image:alt", preview.title),
        ]
    if video is not None:
        tags += [
            _meta("property", "og:video", preview.absolute(video)),
            *(
                [_meta("property", "og:video:secure_url", preview.absolute(video))]
                if secure
                else []
            ),
            _meta("property", "og:video:type", video.content_type),
            _meta("property", "og:video:width", video.width),
            _meta("property", "og:video:height", video.height),
        ]
    tags += [
        _meta("name", "twitter:card", "summary_large_image"),
        _meta("name", "twitter:title", preview.title),
        _meta("name", "twitter:description", preview.description),
    ]
    if image is not None:
        tags += [
            _meta("name", "twitter:image", preview.absolute(image)),
            _meta("name", "twitter:image:alt", preview.title),
        ]
    return tags


def _figure(preview: Preview) -> str:
    image, video = preview.image, playable_video(preview.card)
    if video is not None:
        poster = f' poster="{esc(preview.media(image))}"' if image else ""
        return (
            f'<video controls playsinline preload="metadata" src="{esc(preview.media(video))}"'
            f'{poster} width="{esc(video.width)}" height="{esc(video.height)}"></video>'
        )
    if image is None:
        return ""
    return (
        f'<img src="{esc(preview.media(image))}" width="{esc(image.width)}" '
        f'height="{esc(image.height)}" alt="{esc(preview.title)}">'
    )


def _share(preview: Preview) -> str:
    links = "".join(
        f'<a class="button" data-share="{esc(key)}" href="{esc(href)}" target="_blank" '
        f'rel="noopener noreferrer">{esc(label)}</a>'
        for key, label, href in preview.intents()
    )
    return (
        '<section class="share" aria-label="Share">'
        f'<input class="share-url" readonly value="{esc(preview.url)}" '
        'aria-label="Link to this photo">'
        f'<button type="button" class="button primary" data-copy="{esc(preview.url)}" hidden>'
        "Copy link</button>"
        f'<div class="intents">{links}</div></section>'
    )


def page_html(preview: Preview) -> str:
    """The permalink page: everything a reader and a crawler need is in the HTML; the
    one script only adds a copy-to-clipboard button."""
    photo = preview.card.photo
    created = photo.created_at
    byline = ""
    if preview.username:
        byline = (
            f'<p class="byline">by <a rel="author" href="{esc(preview.author_url)}">'
            f'<bdi class="author">{esc(preview.author)}</bdi></a> '
            f'<span class="handle">@{esc(preview.username)}</span> · '
        )
    else:
        byline = '<p class="byline">'
    byline += (
        f'<time datetime="{esc(views.iso(created))}">'
        f"{esc(f'{created.day} {created:%B %Y}')}</time></p>"
    )
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en" prefix="og: https://ogp.me/ns#">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(preview.title)} · {esc(SITE_NAME)}</title>",
            *head_tags(preview),
            '<link rel="stylesheet" href="/static/style.css">',
            '<script src="/static/share.js" defer></script>',
            "</head>",
            "<body>",
            f'<header class="bar"><a class="brand" href="/">{esc(SITE_NAME)}</a></header>',
            '<main class="permalink">',
            f'<article class="photo-page" data-photo-id="{esc(photo.id)}">',
            f"<figure>{_figure(preview)}</figure>",
            f'<h1 class="title"><bdi>{esc(preview.title)}</bdi></h1>',
            byline,
            _share(preview),
            "</article>",
            "</main>",
            '<div id="toast" role="status" hidden></div>',
            "</body>",
            "</html>",
            "",
        ]
    )


def _fit(width: int, height: int, max_width: int | None, max_height: int | None) -> float:
    """The scale (at most 1) that fits width x height within the bounds given."""
    scale = 1.0
    if max_width is not None:
        scale = min(scale, max_width / width)
    if max_height is not None:
        scale = min(scale, max_height / height)
    return scale


def _fits(item: Rendition, max_width: int | None, max_height: int | None) -> bool:
    return (
        bool(item.width and item.height)
        and _fit(item.width or 1, item.height or 1, max_width, max_height) >= 1
    )


def oembed(preview: Preview, max_width: int | None, max_height: int | None) -> dict[str, Any]:
    """The oEmbed 1.0 document (oembed.com, 2.3.4): ``photo`` with the largest
    rendition within maxwidth x maxheight, ``rich`` (an HTML5 <video>, scaled to fit)
    for a video with a viewer-safe copy, and ``link`` when no rendition fits (a photo's
    url, width and height must be the image's own: nothing is resized on request)."""
    document: dict[str, Any] = {
        "version": "1.0",
        "type": "link",
        "title": preview.title,
        "provider_name": SITE_NAME,
        "provider_url": preview.base + "/",
        "cache_age": PAGE_MAX_AGE_S,
    }
    if preview.username:
        document["author_name"] = preview.author
        document["author_url"] = preview.author_url
    thumb = rendition(preview.card, "thumb")
    if thumb is not None and _fits(thumb, max_width, max_height):
        document |= {
            "thumbnail_url": preview.absolute(thumb),
            "thumbnail_width": thumb.width,
            "thumbnail_height": thumb.height,
        }
    video = playable_video(preview.card)
    if video is not None and video.width and video.height:
        scale = _fit(video.width, video.height, max_width, max_height)
        width, height = max(1, int(video.width * scale)), max(1, int(video.height * scale))
        image = preview.image
        poster = f' poster="{esc(preview.absolute(image))}"' if image else ""
        document |= {
            "type": "rich",
            "html": (
                '<video controls playsinline preload="metadata" '
                f'src="{esc(preview.absolute(video))}"{poster} width="{width}" '
                f'height="{height}" title="{esc(preview.title)}">'
                f'<a href="{esc(preview.url)}">{esc(preview.title)}</a></video>'
            ),
            "width": width,
            "height": height,
        }
        return document
    fitting = [
        r for r in (preview.image, thumb) if r is not None and _fits(r, max_width, max_height)
    ]
    if fitting:
        best = fitting[0]
        document |= {
            "type": "photo",
            "url": preview.absolute(best),
            "width": best.width,
            "height": best.height,
        }
    return document
