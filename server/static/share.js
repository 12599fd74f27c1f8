// The photo page's one script (/p/{id}): a "Copy link" button. The page reads, and its
// share links work, without it.
// SECURITY: it sets text only, never HTML.
"use strict";

function shareToast(message) {
  const t = document.getElementById("toast");
  if (!t) return;
  t.textContent = message;
  t.hidden = false;
  clearTimeout(shareToast.timer);
  shareToast.timer = setTimeout(() => { t.hidden = true; }, 3500);
}

async function copyLink(url, field) {
  try {
    await navigator.clipboard.writeText(url);
    shareToast("Link copied");
  } catch (_) {
    // No clipboard (an insecure origin, or permission refused): select it for the reader.
    if (field) { field.focus(); field.select(); }
    shareToast("Press Ctrl+C (⌘C) to copy the link");
  }
}

for (const button of document.querySelectorAll("button[data-copy]")) {
  const field = button.closest(".share") && button.closest(".share").querySelector(".share-url");
  button.hidden = false;
  button.addEventListener("click", () => copyLink(button.dataset.copy, field));
}
