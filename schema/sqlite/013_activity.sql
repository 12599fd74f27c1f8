-- instastore embedded schema version 13: each user's activity inbox
-- (schema/cql/013_activity.cql). Released: never edit; add 014_... instead.

-- A user's events, newest first, each kept until until_ms (its event id's time plus
-- activity_days): readers skip rows past it, and each write removes the user's expired
-- rows. Serves: a page of the inbox; the unread count.
CREATE TABLE activity (
    user_id INTEGER NOT NULL,
    event_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor_id INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    comment_id INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, event_id)
) WITHOUT ROWID;
-- Serves: the removal of a user's expired rows (a range, not a scan of the inbox).
CREATE INDEX activity_expiry ON activity (user_id, until_ms);

-- The event id of each action that has no id of its own, held until until_ms.
-- Serves: the id of a like's, follow's, request's or approval's event.
CREATE TABLE activity_keys (
    user_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    event_id INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, action)
) WITHOUT ROWID;
-- Serves: the removal of a user's expired claims.
CREATE INDEX activity_keys_expiry ON activity_keys (user_id, until_ms);

-- How far each user has read their inbox (only ever raised).
-- Serves: the unread count; marking the inbox read.
CREATE TABLE activity_seen (
    user_id INTEGER PRIMARY KEY,
    seen_id INTEGER NOT NULL
);
