-- instastore embedded schema version 1 (SQLite). Released: never edit; add 002_... instead.
-- The same records and semantics as schema/cql/001_initial.cql; SQLite's indexes replace
-- Cassandra's bucketed wide rows. Times are integer milliseconds since the Unix epoch.

-- Users by id and (unique) by name. Serves: profile, login, photo owners.
CREATE TABLE users (
    user_id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    private INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER
);

-- Photo records (msgpack) with deleted_at in its own column. Serves: fetch one photo.
CREATE TABLE photos (
    photo_id INTEGER PRIMARY KEY,
    record BLOB NOT NULL,
    deleted_ms INTEGER
);

-- UserPhoto. Serves: a user's photos newest first; the timeline merge.
CREATE TABLE user_photos (
    user_id INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    PRIMARY KEY (user_id, photo_id)
) WITHOUT ROWID;

-- UserFollow in both directions (the index serves "followers").
CREATE TABLE follows (
    follower_id INTEGER NOT NULL,
    followee_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
) WITHOUT ROWID;
CREATE INDEX follows_by_followee ON follows (followee_id, follower_id);

-- Title search: the same normalised terms as the cluster's inverted index.
CREATE TABLE title_terms (
    term TEXT NOT NULL,
    photo_id INTEGER NOT NULL,
    PRIMARY KEY (term, photo_id)
) WITHOUT ROWID;

-- Likes (the count is a COUNT over the primary key's prefix).
CREATE TABLE likes (
    photo_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (photo_id, user_id)
) WITHOUT ROWID;

-- Pending purges by day of deletion. Serves: the purge job.
CREATE TABLE purge_queue (
    day TEXT NOT NULL,
    photo_id INTEGER NOT NULL,
    PRIMARY KEY (day, photo_id)
) WITHOUT ROWID;
