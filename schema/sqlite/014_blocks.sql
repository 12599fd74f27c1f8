-- instastore embedded schema version 14: blocks, reports, hidden items and the content
-- blocklist (schema/cql/014_blocks.cql). Released: never edit; add the next number instead.

-- Whom a user blocks; the index serves "which of these owners block the viewer". A block,
-- and the follows and requests it ends, are one transaction.
-- Serves: a user's blocks (paged by blocked id); every visibility decision.
CREATE TABLE blocks (
    blocker_id INTEGER NOT NULL,
    blocked_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) WITHOUT ROWID;
CREATE INDEX blocks_by_blocked ON blocks (blocked_id, blocker_id);

-- Open reports, one per reporter and item, grouped by item.
-- Serves: `instastore moderation list`; resolving an item's reports.
CREATE TABLE reports (
    kind TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    reporter_id INTEGER NOT NULL,
    reason TEXT NOT NULL,
    note TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, item_id, reporter_id)
) WITHOUT ROWID;

-- Items an operator hid. Serves: every visibility decision; restore.
CREATE TABLE hidden_items (
    item_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    hidden_ms INTEGER NOT NULL
);

-- Originals taken down with --blocklist. Serves: the upload's check of its hash.
CREATE TABLE content_blocklist (
    sha256 TEXT PRIMARY KEY,
    photo_id INTEGER NOT NULL,
    added_ms INTEGER NOT NULL
) WITHOUT ROWID;
