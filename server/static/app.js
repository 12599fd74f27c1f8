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
      h("a", { href: "#/u/" + encodeURIComponent(state.me.username) }, "@" + state.me.username),
      h("a", { href: "#/logout", onclick: (e) => { e.preventDefault(); logout(); } }, "Log out"),
    );
  } else {
    nav.append(h("a", { href: "#/login" }, "Log in"), h("a", { href: "#/signup", class: "primary" }, "Sign up"));
  }
}

// ---- media viewer ---------------------------------------------------------------------

function openViewer(photo) {
  const close = () => overlay.remove();
  // A video without its browser-safe rendition yet (or ever) shows its poster and why.
  const waiting = photo.kind === "video" && !photo.media.video;
  const content = waiting
    ? h("figure", {}, h("img", { src: photo.media.poster, alt: photo.title }),
        h("figcaption", { class: "video-status" },
          photo.video_status === "failed" ? `This video could not be prepared${photo.video_failure ? ": " + photo.video_failure : "."}` : "This video is being prepared; try again in a minute."))
    : photo.kind === "video"
    ? h("video", { src: photo.media.video, poster: photo.media.poster, controls: true, autoplay: true, playsinline: true })
    : h("img", { src: photo.media.large, alt: photo.title });
  const overlay = h("div", { class: "viewer", role: "dialog", "aria-label": photo.title,
                             onclick: (e) => { if (e.target === overlay) close(); } },
    h("button", { class: "close", "aria-label": "Close", onclick: close }, "×"), content);
  document.addEventListener("keydown", function esc(e) {
    if (e.key === "Escape") { close(); document.removeEventListener("keydown", esc); }
  });
  document.body.append(overlay);
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
  const actions = h("div", { class: "actions" }, likeButton,
    photo.kind === "video" ? h("span", { class: "badge" }, "video") : null,
    photo.visibility !== "public" ? h("span", { class: "badge" }, photo.visibility) : null);
  const card = h("article", { class: "card", "data-photo-id": photo.id },
    h("img", { class: "thumb", src: photo.media.thumb, alt: photo.title, loading: "lazy", onclick: () => openViewer(photo) }),
    h("div", { class: "meta" },
      h("span", { class: "title" }, photo.title),
      photo.owner && photo.owner.username
        ? h("a", { class: "owner", href: "#/u/" + encodeURIComponent(photo.owner.username) }, "@" + photo.owner.username)
        : null,
      actions));
  if (shareable(photo)) {
    let menu = null;
    const share = h("button", { class: "button", type: "button", "aria-expanded": "false", "data-action": "share" }, "Share");
    share.addEventListener("click", () => {
      if (menu) { menu.remove(); menu = null; } else { menu = shareMenu(photo); card.append(menu); }
      share.setAttribute("aria-expanded", String(Boolean(menu)));
    });
    actions.append(share);
  }
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
      profile.private ? h("span", { class: "badge" }, "private") : null,
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
      head.append(button);
    }
    wrap.append(head);
    if (own) {
      const list = h("ul", { class: "requests" });
      const requests = await api("GET", "/v1/me/requests");
      for (const user of requests.items) {
        list.append(h("li", {}, "@" + user.username + " asks to follow you ",
          h("button", { class: "button", onclick: async (e) => {
            await api("POST", `/v1/me/requests/${encodeURIComponent(user.username)}/approve`);
            e.target.closest("li").remove(); toast("Approved");
          } }, "Approve")));
      }
      if (requests.items.length) wrap.append(h("h2", {}, "Follow requests"), list);
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

function searchPage(query) {
  document.getElementById("search-q").value = query;
  return h("section", {},
    h("h1", {}, "Photos matching “", query, "”"),
    pagedGrid((cursor) => api("GET", "/v1/search/photos?" + q({ q: query, cursor, limit: 24 })),
              { empty: "No photo title has all of these words." }));
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
  else page = homePage(params.get("order"));
  main.replaceChildren(page);
  window.scrollTo(0, 0);
}

document.getElementById("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const value = document.getElementById("search-q").value.trim();
  if (value) location.hash = "#/search?" + q({ q: value });
});
window.addEventListener("hashchange", route);
renderNav();
route();
