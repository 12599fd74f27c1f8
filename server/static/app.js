// instastore's web page: a small single-page app on the public /v1 API.
// SECURITY: every user-supplied string reaches the page through textContent or
// attributes set with setAttribute on elements we create: never through innerHTML.
"use strict";

const state = { token: localStorage.getItem("token"), me: JSON.parse(localStorage.getItem("me") || "null") };
const main = document.getElementById("main");
let pageToken = 0; // bumps on navigation so late responses of an old page are dropped

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function toast(message) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3500);
}

class ApiError extends Error {
  constructor(problem) { super(problem.detail || problem.title || "request failed"); this.problem = problem; }
}

async function api(method, path, body) {
  const headers = {};
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const init = { method, headers };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
  const resp = await fetch(path, init);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({ detail: resp.statusText }));
  if (!resp.ok) {
    if (resp.status === 401 && state.token && path !== "/v1/sessions") { logout(false); }
    throw new ApiError(data);
  }
  return data;
}

function upload(file, title, visibility, onProgress) {
  // XMLHttpRequest, not fetch: it reports upload progress.
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("title", title);
    form.append("visibility", visibility);
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/photos");
    xhr.setRequestHeader("Authorization", "Bearer " + state.token);
    xhr.setRequestHeader("Idempotency-Key", crypto.randomUUID ? crypto.randomUUID() : String(Math.random()));
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    xhr.onload = () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (_) { data = { detail: xhr.statusText }; }
      if (xhr.status >= 200 && xhr.status < 300) resolve(data); else reject(new ApiError(data));
    };
    xhr.onerror = () => reject(new ApiError({ detail: "the upload did not reach the server" }));
    xhr.send(form);
  });
}

function saveSession(token, me) {
  state.token = token; state.me = me;
  localStorage.setItem("token", token); localStorage.setItem("me", JSON.stringify(me));
}

async function logout(callApi = true) {
  if (callApi && state.token) { try { await api("DELETE", "/v1/sessions/current"); } catch (_) { /* gone already */ } }
  state.token = null; state.me = null;
  localStorage.removeItem("token"); localStorage.removeItem("me");
  renderNav();
  location.hash = "#/login";
}

function renderNav() {
  const nav = document.getElementById("nav");
  nav.replaceChildren();
  if (state.me) {
    nav.append(
      h("a", { href: "#/upload", class: "primary" }, "Upload"),
      h("a", { href: "#/activity", "data-nav": "activity", "aria-label": "Activity" }, "Activity",
        h("span", { id: "unread-badge", class: "unread", hidden: true })),
      h("a", { href: "#/u/" + encodeURIComponent(state.me.username) }, "@" + state.me.username),
      h("a", { href: "#/logout", onclick: (e) => { e.preventDefault(); logout(); } }, "Log out"),
    );
  } else {
    nav.append(h("a", { href: "#/login" }, "Log in"), h("a", { href: "#/signup", class: "primary" }, "Sign up"));
  }
}

// ---- the unread badge -----------------------------------------------------------------

const UNREAD_POLL_MS = 60_000; // a minute: the badge is a hint, each look costs the server a read

function paintUnread(count, more) {
  const badge = document.getElementById("unread-badge");
  if (!badge) return;
  badge.textContent = more ? count + "+" : String(count);
  badge.hidden = count === 0;
  badge.parentElement.setAttribute("aria-label", count ? `Activity, ${badge.textContent} unread` : "Activity");
}

async function refreshUnread() {
  if (!state.token) return;
  try { const found = await api("GET", "/v1/activity/unread"); paintUnread(found.unread, found.more); }
  catch (_) { /* the badge stays as it was; the next look tries again */ }
}
setInterval(() => { if (!document.hidden) refreshUnread(); }, UNREAD_POLL_MS);

// ---- titles and comments: @mentions and #tags as links --------------------------------

// The server's rule for an @name (instastore/text.py, _MENTION): "@" not inside a word or
// an e-mail address, then 3-30 of letters, digits, "_" and "."; dots that end it are the
// sentence's. Only names the API resolved (its "mentions" list) link: others stay text.
const MENTION = /(?<![A-Za-z0-9_.@])@([A-Za-z0-9_.]{3,30})(?![A-Za-z0-9_.@])/g;
// A #tag, as the server reads one (instastore/tags.py, _TAG): "#" not inside a word (nor
// after "&" or another "#"), then letters and digits. It links to the tag's page.
const TAG = /(?<![\p{L}\p{N}\p{M}_&#])#([\p{L}\p{N}]{1,64})/gu;

// The nodes of ``text`` with its mentions and tags as links; the rest as text nodes.
function richText(text, mentions = []) {
  const known = new Set(mentions.map((m) => m.username));
  const found = [];
  for (const m of text.matchAll(MENTION)) {
    const name = m[1].replace(/\.+$/, "");
    if (name.length < 3 || !known.has(name.toLowerCase())) continue;
    found.push({ at: m.index, end: m.index + 1 + name.length,
                 node: h("a", { class: "mention", href: "#/u/" + encodeURIComponent(name.toLowerCase()) }, "@" + name) });
  }
  for (const m of text.matchAll(TAG)) {
    found.push({ at: m.index, end: m.index + m[0].length,
                 node: h("a", { class: "tag", href: "#/tag/" + encodeURIComponent(m[1]) }, m[0]) });
  }
  found.sort((a, b) => a.at - b.at);
  const nodes = [];
  let pos = 0;
  for (const link of found) {
    if (link.at < pos) continue;
    if (link.at > pos) nodes.push(text.slice(pos, link.at));
    nodes.push(link.node);
    pos = link.end;
  }
  if (pos < text.length) nodes.push(text.slice(pos));
  return nodes;
}

// ---- media viewer ---------------------------------------------------------------------

function photoMedia(photo) {
  // A video without its browser-safe rendition yet (or ever) shows its poster and why.
  const waiting = photo.kind === "video" && !photo.media.video;
  const content = waiting
    ? h("figure", {}, h("img", { src: photo.media.poster, alt: photo.title }),
        h("figcaption", { class: "video-status" },
          photo.video_status === "failed" ? `This video could not be prepared${photo.video_failure ? ": " + photo.video_failure : "."}` : "This video is being prepared; try again in a minute."))
    : photo.kind === "video"
    ? h("video", { src: photo.media.video, poster: photo.media.poster, controls: true, autoplay: true, playsinline: true })
    : h("img", { src: photo.media.large, alt: photo.title });
  return h("div", { class: "viewer-media" }, content);
}

// The photo beside its title and comments: in the viewer over a page, or on its own page.
function photoView(photo, options = {}) {
  return h("div", { class: "viewer-body" }, photoMedia(photo), photoPanel(photo, options));
}

function openViewer(photo, options = {}) {
  const esc = (e) => { if (e.key === "Escape") close(); };
  // A link followed from the viewer (an @name, a #tag, even to the page under it) leaves
  // it, as does a move back or forward.
  const close = () => {
    overlay.remove();
    document.removeEventListener("keydown", esc);
    window.removeEventListener("hashchange", close);
  };
  const body = photoView(photo, options);
  const overlay = h("div", { class: "viewer", role: "dialog", "aria-label": photo.title,
                             onclick: (e) => { if (e.target === overlay || e.target.closest("a[href]")) close(); } },
    h("button", { class: "close", "aria-label": "Close", onclick: close }, "×"), body);
  document.addEventListener("keydown", esc);
  window.addEventListener("hashchange", close);
  document.body.append(overlay);
}

// ---- comments -------------------------------------------------------------------------

const COMMENTS_PAGE = 20;

// The panel beside a photo: who posted it, its title, its comments oldest first (a page at
// a time, "More comments" for the next), a form to add one, and Delete on each comment the
// viewer wrote or that is on the viewer's own photo. ``onChange`` hears of a changed count.
function photoPanel(photo, { onChange = () => {}, highlight = null } = {}) {
  const me = state.me && state.me.username;
  const ownPhoto = Boolean(me && photo.owner && photo.owner.username === me);
  const countLabel = h("p", { class: "comment-count" });
  const paintCount = () => { countLabel.textContent = plural(photo.comments || 0, "comment"); };
  const changed = (delta) => { photo.comments = Math.max(0, (photo.comments || 0) + delta); paintCount(); onChange(photo); };
  paintCount();
  const list = h("ol", { class: "comments", "aria-label": "Comments" });
  const posted = h("ol", { class: "comments", "aria-label": "Your new comments" }); // past the pages read so far
  const moreButton = h("button", { class: "button more", type: "button", hidden: true }, "More comments");
  const shown = new Map(); // comment id -> its item, wherever it is
  let cursor = null;

  function commentItem(comment) {
    const author = comment.author && comment.author.username;
    const item = h("li", { class: "comment", "data-comment-id": comment.id },
      author ? h("a", { class: "author", href: "#/u/" + encodeURIComponent(author) }, "@" + author)
             : h("span", { class: "author" }, "someone"),
      " ", h("span", { class: "text" }, richText(comment.text, comment.mentions)));
    if (comment.id === highlight) item.classList.add("highlight");
    if (me && (author === me || ownPhoto)) {
      item.append(h("button", { class: "link", type: "button", "data-action": "delete-comment", onclick: async () => {
        try {
          await api("DELETE", `/v1/photos/${photo.id}/comments/${comment.id}`);
          item.remove(); shown.delete(comment.id); changed(-1); toast("Comment deleted");
        } catch (err) { toast(err.message); }
      } }, "Delete"));
    }
    if (me && author && author !== me) {
      item.append(menuButton("Report", "report-comment", item,
        (close) => reportForm(`/v1/photos/${photo.id}/comments/${comment.id}/report`, "comment", close), "link"));
    }
    return item;
  }

  async function more() {
    moreButton.disabled = true;
    try {
      const page = await api("GET", `/v1/photos/${photo.id}/comments?` + q({ cursor, limit: COMMENTS_PAGE }));
      for (const comment of page.items) {
        if (shown.has(comment.id)) shown.get(comment.id).remove(); // posted here, now in its place
        const item = commentItem(comment);
        shown.set(comment.id, item); list.append(item);
        if (comment.id === highlight) requestAnimationFrame(() => item.scrollIntoView({ block: "center" }));
      }
      cursor = page.next_cursor; moreButton.hidden = !cursor;
    } catch (err) { toast(err.message); }
    finally { moreButton.disabled = false; }
  }
  moreButton.addEventListener("click", more);
  more();

  let form = null;
  if (me) {
    const input = h("input", { class: "comment-input", name: "text", placeholder: "Add a comment…",
                               "aria-label": "Add a comment", autocomplete: "off", required: true });
    form = h("form", { class: "comment-form" }, input, h("button", { class: "button primary", type: "submit" }, "Post"));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const comment = await api("POST", `/v1/photos/${photo.id}/comments`, { text: input.value });
        const item = commentItem(comment);
        shown.set(comment.id, item); posted.append(item);
        input.value = ""; changed(+1);
      } catch (err) { toast(err.message); }
    });
  }
  const owner = photo.owner && photo.owner.username;
  const head = h("div", { class: "panel-head" },
    owner ? h("a", { class: "owner", href: "#/u/" + encodeURIComponent(owner) }, "@" + owner) : null,
    h("p", { class: "title" }, richText(photo.title, photo.mentions)));
  if (shareable(photo)) head.append(menuButton("Share", "share", head, () => shareMenu(photo)));
  if (me && !ownPhoto) {
    head.append(menuButton("Report", "report-photo", head,
      (close) => reportForm(`/v1/photos/${photo.id}/report`, "photo", close)));
  }
  return h("aside", { class: "photo-panel", "aria-label": "About this photo" },
    head, countLabel, list, moreButton, posted, form);
}

// ---- menus: share, report, block -------------------------------------------------------

// A button that opens ``build(close)``'s menu at the end of ``container`` and closes it
// on a second click (or when the menu calls ``close``).
function menuButton(label, action, container, build, kind = "button") {
  let menu = null;
  const button = h("button", { class: kind, type: "button", "aria-expanded": "false", "data-action": action }, label);
  const close = () => { if (menu) { menu.remove(); menu = null; } button.setAttribute("aria-expanded", "false"); };
  button.addEventListener("click", () => {
    if (menu) { close(); return; }
    menu = build(close);
    container.append(menu);
    button.setAttribute("aria-expanded", "true");
  });
  return button;
}

// The reasons the API takes (instastore/moderation.py, REASONS), in the reporter's words.
const REPORT_REASONS = [
  ["spam", "Spam"],
  ["nudity", "Nudity or sexual activity"],
  ["violence", "Violence or dangerous acts"],
  ["harassment", "Bullying or harassment"],
  ["hate", "Hate speech or symbols"],
  ["self_harm", "Suicide or self-injury"],
  ["intellectual_property", "Intellectual property violation"],
  ["other", "Something else"],
];
const MAX_REPORT_TEXT = 500; // the API's MAX_NOTE_CHARS

// A report of a photo, a comment or an account: a reason and optional words, for the
// operators (the reported account is not told).
function reportForm(path, noun, close) {
  const reason = h("select", { name: "reason", "aria-label": "Reason", required: true },
    h("option", { value: "" }, `Why report this ${noun}?`),
    REPORT_REASONS.map(([value, label]) => h("option", { value }, label)));
  const text = h("input", { name: "text", maxlength: MAX_REPORT_TEXT, autocomplete: "off",
                            placeholder: "Anything else (optional)", "aria-label": "Details" });
  const form = h("form", { class: "report-form", "aria-label": `Report this ${noun}` },
    reason, text,
    h("div", { class: "row" },
      h("button", { class: "button primary", type: "submit" }, "Report"),
      h("button", { class: "button", type: "button", onclick: close }, "Cancel")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { reason: reason.value };
    if (text.value.trim()) body.text = text.value;
    try {
      await api("POST", path, body);
      close();
      toast(`Thanks: the ${noun} is reported to the operators`);
    } catch (err) { toast(err.message); }
  });
  return form;
}

// The menu of another account's profile: block (asked once more) and report.
function accountMenu(username, wrap) {
  return (close) => {
    const name = encodeURIComponent(username);
    const menu = h("div", { class: "account-menu", role: "group", "aria-label": "Account" });
    const block = h("button", { class: "button", type: "button", "data-action": "block" }, `Block @${username}`);
    block.addEventListener("click", () => {
      menu.replaceChildren(
        h("p", {}, `Block @${username}? Neither of you will see the other's profile, photos or comments, `,
          "and the follows between you end. They are not told."),
        h("div", { class: "row" },
          h("button", { class: "button primary", type: "button", "data-action": "confirm-block", onclick: async () => {
            try {
              await api("PUT", `/v1/users/${name}/block`);
              wrap.replaceChildren(blockedNotice(username));
              toast(`You blocked @${username}`);
            } catch (err) { toast(err.message); }
          } }, "Block"),
          h("button", { class: "button", type: "button", onclick: close }, "Cancel")));
    });
    const report = h("button", { class: "button", type: "button", "data-action": "report-account", onclick: () => {
      menu.replaceChildren(reportForm(`/v1/users/${name}/report`, "account", close));
    } }, `Report @${username}`);
    menu.append(block, report);
    return menu;
  };
}

// What a profile shows once its viewer blocked it: the account is missing to them now.
function blockedNotice(username) {
  const unblock = h("button", { class: "button", type: "button", "data-action": "unblock" }, "Unblock");
  const notice = h("div", { class: "blocked-notice" },
    h("p", {}, `You blocked @${username}. You can unblock them here or in your blocked accounts.`), unblock);
  unblock.addEventListener("click", async () => {
    try {
      await api("DELETE", `/v1/users/${encodeURIComponent(username)}/block`);
      toast(`Unblocked @${username}`);
      route();
    } catch (err) { toast(err.message); }
  });
  return notice;
}

// The accounts I block, a page at a time, each to unblock (on my own profile).
function blocksSection() {
  return accountsSection({ name: "blocks", heading: "Blocked accounts", moreLabel: "More blocked accounts",
                           path: "/v1/me/blocks", itemOf: (user, done) => ["@" + user.username, " ",
    h("button", { class: "button", type: "button", "data-action": "unblock", onclick: async () => {
      try {
        await api("DELETE", `/v1/users/${encodeURIComponent(user.username)}/block`);
        done(); toast(`Unblocked @${user.username}`);
      } catch (err) { toast(err.message); }
    } }, "Unblock")] });
}

// ---- sharing --------------------------------------------------------------------------

// The share intents of the platforms that take a URL: the same as the photo page's
// (server/previews.py, INTENTS; tests/api/test_web_page.py checks they agree).
const SHARE_INTENTS = [
  ["x", "X (Twitter)", "https://twitter.com/intent/tweet?url={url}&text={title}"],
  ["facebook", "Facebook", "https://www.facebook.com/sharer/sharer.php?u={url}"],
  ["tumblr", "Tumblr", "https://www.tumblr.com/widgets/share/tool?canonicalUrl={url}&title={title}&posttype=link"],
  ["pinterest", "Pinterest", "https://www.pinterest.com/pin/create/button/?url={url}&media={image}&description={title}"],
  ["reddit", "Reddit", "https://www.reddit.com/submit?url={url}&title={title}"],
  ["linkedin", "LinkedIn", "https://www.linkedin.com/sharing/share-offsite/?url={url}"],
  ["email", "Email", "mailto:?subject={title}&body={url}"],
];

// Only a public photo of a public account has a page: anyone else's answers 404 to the
// crawlers a link is pasted for.
const shareable = (photo) => photo.visibility === "public" && photo.owner && photo.owner.username && !photo.owner.private;

function shareMenu(photo) {
  const url = location.origin + "/p/" + photo.id;
  const values = { url, title: photo.title, image: photo.media.large ? location.origin + photo.media.large : "" };
  const field = h("input", { class: "share-url", readonly: true, value: url, "aria-label": "Link to this photo" });
  const copy = h("button", { class: "button primary", type: "button", "data-copy": url, onclick: async () => {
    try { await navigator.clipboard.writeText(url); toast("Link copied"); }
    catch (_) { field.focus(); field.select(); toast("Press Ctrl+C (⌘C) to copy the link"); }
  } }, "Copy link");
  const intents = SHARE_INTENTS.map(([key, label, template]) => h("a", {
    class: "button", "data-share": key, target: "_blank", rel: "noopener noreferrer",
    href: template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(values[name])),
  }, label));
  return h("div", { class: "share-menu", role: "group", "aria-label": "Share" },
    h("div", { class: "share" }, field, copy),
    h("div", { class: "intents" }, intents, h("a", { class: "button", href: "/p/" + photo.id }, "Photo page")));
}

// ---- photo cards ---------------------------------------------------------------------

function deletedIds() { return JSON.parse(localStorage.getItem("deleted") || "[]"); }
function rememberDeleted(id, add) {
  const ids = new Set(deletedIds());
  if (add) ids.add(id); else ids.delete(id);
  localStorage.setItem("deleted", JSON.stringify([...ids]));
}

// A speech bubble drawn as SVG: the emoji may have no font where the page is read.
function bubbleIcon() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const path = document.createElementNS(ns, "path");
  for (const [key, value] of Object.entries({ viewBox: "0 0 24 24", width: 15, height: 15, "aria-hidden": "true" })) svg.setAttribute(key, value);
  for (const [key, value] of Object.entries({ d: "M4 4h16v11H10l-5 4v-4H4z", fill: "none", stroke: "currentColor",
                                               "stroke-width": 2, "stroke-linejoin": "round" })) path.setAttribute(key, value);
  svg.append(path);
  return svg;
}

function photoCard(photo, { own = false } = {}) {
  let liked = false;
  let likes = photo.likes || 0;
  const likeButton = h("button", { class: "like", "aria-pressed": "false", "aria-label": "Like" });
  const paintLike = () => { likeButton.textContent = (liked ? "♥ " : "♡ ") + likes; likeButton.setAttribute("aria-pressed", String(liked)); };
  paintLike();
  likeButton.addEventListener("click", async () => {
    if (!state.token) { location.hash = "#/login"; return; }
    try {
      const result = await api(liked ? "DELETE" : "PUT", `/v1/photos/${photo.id}/like`);
      liked = result.liked; likes = result.likes; paintLike();
    } catch (err) { toast(err.message); }
  });
  const commentCount = h("span", { class: "count" });
  const commentsButton = h("button", { class: "comments-button", type: "button", "aria-label": "Comments" },
    bubbleIcon(), commentCount);
  const paintComments = () => { commentCount.textContent = String(photo.comments || 0); };
  paintComments();
  const view = () => openViewer(photo, { onChange: paintComments });
  commentsButton.addEventListener("click", view);
  const actions = h("div", { class: "actions" }, likeButton, commentsButton,
    photo.kind === "video" ? h("span", { class: "badge" }, "video") : null,
    photo.visibility !== "public" ? h("span", { class: "badge" }, photo.visibility) : null);
  const card = h("article", { class: "card", "data-photo-id": photo.id },
    h("img", { class: "thumb", src: photo.media.thumb, alt: photo.title, loading: "lazy", onclick: view }),
    h("div", { class: "meta" },
      h("span", { class: "title" }, richText(photo.title, photo.mentions)),
      photo.owner && photo.owner.username
        ? h("a", { class: "owner", href: "#/u/" + encodeURIComponent(photo.owner.username) }, "@" + photo.owner.username)
        : null,
      actions));
  if (shareable(photo)) actions.append(menuButton("Share", "share", card, () => shareMenu(photo)));
  if (own) {
    const del = h("button", { class: "button", onclick: async () => {
      try {
        await api("DELETE", `/v1/photos/${photo.id}`);
        rememberDeleted(photo.id, true);
        card.replaceWith(deletedCard(photo));
      } catch (err) { toast(err.message); }
    } }, "Delete");
    actions.append(del);
  }
  return card;
}

function deletedCard(photo) {
  const card = h("article", { class: "card", "data-photo-id": photo.id, "data-deleted": "true" },
    h("div", { class: "meta" },
      h("span", { class: "title" }, photo.title || "Deleted photo"),
      h("span", { class: "owner" }, "Deleted: you can restore it for 30 days."),
      h("button", { class: "button", onclick: async () => {
        try {
          const restored = await api("POST", `/v1/photos/${photo.id}/restore`);
          rememberDeleted(photo.id, false);
          card.replaceWith(photoCard(restored, { own: true }));
          toast("Restored");
        } catch (err) { toast(err.message); if (err.problem && err.problem.status === 410) { rememberDeleted(photo.id, false); card.remove(); } }
      } }, "Restore")));
  return card;
}

// Infinite scroll: fetch pages through the API's cursors while the sentinel is visible.
function pagedGrid(fetchPage, { own = false, empty = "Nothing here yet." } = {}) {
  const grid = h("div", { class: "grid" });
  const sentinel = h("div", { id: "sentinel" });
  const wrap = h("div", {}, grid, sentinel);
  let cursor = null, done = false, busy = false, any = false;
  const token = pageToken;
  async function more() {
    if (busy || done || token !== pageToken) return;
    busy = true;
    try {
      const page = await fetchPage(cursor);
      if (token !== pageToken) return;
      for (const photo of page.items) grid.append(photoCard(photo, { own }));
      any = any || page.items.length > 0;
      cursor = page.next_cursor; done = !cursor;
      if (done && !any) wrap.replaceChildren(h("p", { class: "empty" }, empty));
    } catch (err) { toast(err.message); done = true; }
    finally { busy = false; }
    if (!done && sentinel.getBoundingClientRect().top < innerHeight + 400) more();
  }
  new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) more(); }, { rootMargin: "400px" })
    .observe(sentinel);
  more();
  return wrap;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v)).toString();

// ---- pages ---------------------------------------------------------------------------

function authPage(kind) {
  const isSignup = kind === "signup";
  const error = h("p", { class: "error", role: "alert" });
  const form = h("form", { class: "panel", "aria-label": isSignup ? "Sign up" : "Log in" },
    h("h1", {}, isSignup ? "Create an account" : "Log in"),
    h("label", { for: "username" }, "Username"),
    h("input", { id: "username", name: "username", autocomplete: "username", required: true }),
    isSignup ? h("label", { for: "display_name" }, "Display name (optional)") : null,
    isSignup ? h("input", { id: "display_name", name: "display_name" }) : null,
    h("label", { for: "password" }, "Password"),
    h("input", { id: "password", name: "password", type: "password", required: true,
                 autocomplete: isSignup ? "new-password" : "current-password" }),
    h("button", { class: "button primary", type: "submit" }, isSignup ? "Sign up" : "Log in"),
    error,
    h("p", {}, isSignup ? h("a", { href: "#/login" }, "Have an account? Log in")
                        : h("a", { href: "#/signup" }, "New here? Sign up")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    try {
      if (isSignup) await api("POST", "/v1/users", data);
      const session = await api("POST", "/v1/sessions", { username: data.username, password: data.password });
      saveSession(session.token, session.user);
      renderNav();
      location.hash = "#/";
    } catch (err) { error.textContent = err.message; }
  });
  return form;
}

function homePage(order) {
  if (!state.me) { location.hash = "#/login"; return h("div"); }
  order = order === "recent" ? "recent" : "top";
  const tab = (name, label) => h("a", { class: "button", href: "#/?order=" + name, "aria-pressed": String(order === name) }, label);
  return h("section", {},
    h("div", { class: "tabs" }, tab("top", "Top"), tab("recent", "Recent")),
    pagedGrid((cursor) => api("GET", "/v1/timeline?" + q({ order, cursor, limit: 24 })),
              { empty: "Follow someone to fill your timeline: search for photos above." }));
}

function uploadPage() {
  if (!state.me) { location.hash = "#/login"; return h("div"); }
  const error = h("p", { class: "error", role: "alert" });
  const bar = h("progress", { max: 1, value: 0, hidden: true });
  const file = h("input", { id: "file", name: "file", type: "file", required: true, accept: "image/*,video/*" });
  const form = h("form", { class: "panel", "aria-label": "Upload" },
    h("h1", {}, "Upload a photo or video"),
    h("label", { for: "file" }, "File (or drop it here)"), file,
    h("label", { for: "title" }, "Title"), h("input", { id: "title", name: "title", required: true, maxlength: 200 }),
    h("label", { for: "visibility" }, "Who can see it"),
    h("select", { id: "visibility", name: "visibility" },
      h("option", { value: "public" }, "Everyone"), h("option", { value: "followers" }, "Followers"),
      h("option", { value: "private" }, "Only me")),
    h("button", { class: "button primary", type: "submit" }, "Upload"), bar, error);
  form.addEventListener("dragover", (e) => e.preventDefault());
  form.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer.files.length) file.files = e.dataTransfer.files; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = ""; bar.hidden = false; bar.value = 0;
    try {
      await upload(file.files[0], form.title.value, form.visibility.value, (p) => { bar.value = p; });
      toast("Uploaded");
      location.hash = "#/u/" + encodeURIComponent(state.me.username);
    } catch (err) { error.textContent = err.message; bar.hidden = true; }
  });
  return form;
}

function profilePage(username) {
  const wrap = h("section", {});
  const token = pageToken;
  (async () => {
    let profile;
    try { profile = await api("GET", "/v1/users/" + encodeURIComponent(username)); }
    catch (err) { wrap.append(h("p", { class: "empty" }, err.message)); return; }
    if (token !== pageToken) return;
    const own = state.me && state.me.username === profile.username;
    const head = h("div", { class: "profile-head" },
      h("h1", {}, profile.display_name || profile.username),
      h("span", { class: "owner" }, "@" + profile.username),
      h("span", { class: "badge", "data-private": "", hidden: !profile.private }, "private"),
      h("div", { class: "counts" },
        h("span", {}, plural(profile.counts.photos, "photo")),
        h("span", {}, plural(profile.counts.followers, "follower")),
        h("span", {}, profile.counts.following + " following")));
    if (state.me && !own) {
      const viewer = profile.viewer || {};
      let status = viewer.following ? "following" : viewer.requested ? "requested" : "none";
      const button = h("button", { class: "button primary", "data-action": "follow" });
      const paint = () => { button.textContent = status === "following" ? "Unfollow" : status === "requested" ? "Requested" : "Follow"; };
      paint();
      button.addEventListener("click", async () => {
        try {
          if (status === "none") status = (await api("PUT", `/v1/users/${encodeURIComponent(username)}/follow`)).state;
          else { await api("DELETE", `/v1/users/${encodeURIComponent(username)}/follow`); status = "none"; }
          paint();
        } catch (err) { toast(err.message); }
      });
      const more = menuButton("⋯", "account-menu", head, accountMenu(profile.username, wrap));
      more.setAttribute("aria-label", "More for @" + profile.username);
      head.append(button, more);
    }
    if (own) head.append(privacyButton(profile, head));
    wrap.append(head);
    if (own) {
      wrap.append(requestsSection(), blocksSection());
      const deleted = deletedIds();
      if (deleted.length) {
        const grid = h("div", { class: "grid" }, deleted.map((id) => deletedCard({ id, title: "" })));
        wrap.append(h("h2", {}, "Recently deleted"), grid);
      }
    }
    wrap.append(pagedGrid((cursor) => api("GET", `/v1/users/${encodeURIComponent(username)}/photos?` + q({ cursor, limit: 24 })),
                          { own, empty: profile.private && !own ? "This account is private." : "No photos yet." }));
  })();
  return wrap;
}

// A private account's photos and lists are for its followers, whom it approves.
function privacyButton(profile, head) {
  const button = h("button", { class: "button", type: "button", "data-action": "privacy" });
  const paint = () => {
    button.textContent = profile.private ? "Make account public" : "Make account private";
    head.querySelector("[data-private]").hidden = !profile.private;
  };
  button.addEventListener("click", async () => {
    try {
      const me = await api("PATCH", "/v1/me", { private: !profile.private });
      profile.private = me.private; paint();
      toast(me.private ? "Your account is private: you approve who follows you" : "Your account is public");
    } catch (err) { toast(err.message); }
  });
  queueMicrotask(paint);
  return button;
}

// The follow requests to my account, newest first, each to approve or decline.
function requestsSection() {
  const answer = (user, done, how) => async () => {
    const name = encodeURIComponent(user.username);
    try {
      if (how === "approve") await api("POST", `/v1/me/requests/${name}/approve`);
      else await api("DELETE", `/v1/me/requests/${name}`);
      done();
      toast(how === "approve" ? `@${user.username} follows you now` : `Declined @${user.username}`);
    } catch (err) { toast(err.message); }
  };
  return accountsSection({ name: "requests", heading: "Follow requests", moreLabel: "More requests",
                           path: "/v1/me/requests", itemOf: (user, done) => [
    h("a", { href: "#/u/" + encodeURIComponent(user.username) }, "@" + user.username), " asks to follow you ",
    h("button", { class: "button primary", type: "button", "data-action": "approve", onclick: answer(user, done, "approve") }, "Approve"),
    h("button", { class: "button", type: "button", "data-action": "decline", onclick: answer(user, done, "decline") }, "Decline")] });
}

// A list of accounts on my own profile, a page at a time, hidden while empty: each item
// is ``itemOf(user, done)``, where ``done`` takes it away once it is answered.
function accountsSection({ name, heading, moreLabel, path, itemOf }) {
  const list = h("ul", { class: name, "aria-label": heading });
  const moreButton = h("button", { class: "button more", type: "button", hidden: true }, moreLabel);
  const section = h("section", { class: name + "-section", hidden: true }, h("h2", {}, heading), list, moreButton);
  let cursor = null;
  const settle = () => { section.hidden = list.children.length === 0 && moreButton.hidden; };
  async function more() {
    try {
      const page = await api("GET", path + "?" + q({ cursor, limit: 20 }));
      for (const user of page.items) {
        const item = h("li", { "data-username": user.username });
        item.append(...itemOf(user, () => { item.remove(); settle(); }));
        list.append(item);
      }
      cursor = page.next_cursor; moreButton.hidden = !cursor; settle();
    } catch (err) { toast(err.message); }
  }
  moreButton.addEventListener("click", more);
  more();
  return section;
}

// ---- activity -------------------------------------------------------------------------

const ACTIVITY_PAGE = 20;

function ago(iso) {
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 60) return "just now";
  for (const [size, unit] of [[86400 * 7, "w"], [86400, "d"], [3600, "h"], [60, "m"]]) {
    if (seconds >= size) return Math.floor(seconds / size) + unit;
  }
  return "";
}

// What an event says: who did what, linking the account and the photo it is about.
function activityItem(event) {
  const actor = event.actor.username;
  const who = h("a", { class: "actor", href: "#/u/" + encodeURIComponent(actor) }, "@" + actor);
  const photoLink = () => h("a", { class: "photo-link",
    href: "#/photo/" + event.photo.id + (event.comment_id ? "?" + q({ comment: event.comment_id }) : "") },
    "“", event.photo.title, "”");
  const me = encodeURIComponent(state.me.username);
  const says = {
    like: () => [who, " liked your photo ", photoLink()],
    comment: () => [who, " commented on your photo ", photoLink()],
    mention: () => [who, event.comment_id ? " mentioned you in a comment on " : " mentioned you in ", photoLink()],
    follow: () => [who, " started following you"],
    request: () => [who, " asked to follow you: ", h("a", { href: "#/u/" + me }, "answer on your profile")],
    approved: () => [who, " approved your follow request"],
  }[event.kind] || (() => [who, " ", event.kind]);
  return h("li", { class: "event" + (event.unread ? " unread" : ""), "data-kind": event.kind, "data-event-id": event.id },
    h("span", { class: "what" }, says()),
    h("time", { datetime: event.created_at, title: new Date(event.created_at).toLocaleString() }, ago(event.created_at)));
}

// The inbox, newest first, a page at a time; seeing its first page marks it read.
function activityPage() {
  if (!state.me) { location.hash = "#/login"; return h("div"); }
  const list = h("ol", { class: "activity", "aria-label": "Activity" });
  const moreButton = h("button", { class: "button more", type: "button", hidden: true }, "More");
  const wrap = h("section", { class: "activity-page" }, h("h1", {}, "Activity"), list, moreButton);
  const token = pageToken;
  let cursor = null, first = true;
  async function more() {
    moreButton.disabled = true;
    try {
      const page = await api("GET", "/v1/activity?" + q({ cursor, limit: ACTIVITY_PAGE }));
      if (token !== pageToken) return;
      for (const event of page.items) list.append(activityItem(event));
      cursor = page.next_cursor; moreButton.hidden = !cursor;
      if (first) {
        first = false;
        if (!list.children.length && !cursor) wrap.append(h("p", { class: "empty" }, "Nothing yet: likes, comments, mentions and follows show here."));
        if (page.items.length) {
          const mark = await api("POST", "/v1/activity/read", { up_to: page.items[0].id });
          paintUnread(mark.unread, mark.more);
        }
      }
    } catch (err) { toast(err.message); }
    finally { moreButton.disabled = false; }
  }
  moreButton.addEventListener("click", more);
  more();
  return wrap;
}

// A photo on a page of its own (the activity screen links here), with its comments.
function photoPage(id, highlight) {
  const wrap = h("section", { class: "photo-route" });
  const token = pageToken;
  (async () => {
    try {
      const photo = await api("GET", "/v1/photos/" + encodeURIComponent(id));
      if (token !== pageToken) return;
      wrap.append(photoView(photo, { highlight }));
    } catch (err) { wrap.append(h("p", { class: "empty" }, err.message)); }
  })();
  return wrap;
}

function searchPage(query) {
  document.getElementById("search-q").value = query;
  return h("section", {},
    h("h1", {}, "Photos matching “", query, "”"),
    pagedGrid((cursor) => api("GET", "/v1/search/photos?" + q({ q: query, cursor, limit: 24 })),
              { empty: "No photo title has all of these words." }));
}

// A tag's photos, newest first (the server folds the tag as search folds words).
function tagPage(tag) {
  return h("section", { class: "tag-page" },
    h("h1", {}, "#", tag),
    pagedGrid((cursor) => api("GET", "/v1/tags/" + encodeURIComponent(tag) + "/photos?" + q({ cursor, limit: 24 })),
              { empty: "No photo you may see is tagged so." }));
}

function route() {
  pageToken += 1;
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = (path || "/").split("/").filter(Boolean).map(decodeURIComponent);
  let page;
  if (parts[0] === "login") page = authPage("login");
  else if (parts[0] === "signup") page = authPage("signup");
  else if (parts[0] === "upload") page = uploadPage();
  else if (parts[0] === "u" && parts[1]) page = profilePage(parts[1]);
  else if (parts[0] === "search") page = searchPage(params.get("q") || "");
  else if (parts[0] === "tag" && parts[1]) page = tagPage(parts[1]);
  else if (parts[0] === "activity") page = activityPage();
  else if (parts[0] === "photo" && parts[1]) page = photoPage(parts[1], params.get("comment"));
  else page = homePage(params.get("order"));
  main.replaceChildren(page);
  window.scrollTo(0, 0);
  if (parts[0] !== "activity") refreshUnread();
}

document.getElementById("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = document.getElementById("search-q").value.trim();
  if (value) location.hash = "#/search?" + q({ q: value });
});
window.addEventListener("hashchange", route);
renderNav();
route();
