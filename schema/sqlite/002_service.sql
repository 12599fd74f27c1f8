-- instastore embedded schema version 2: sessions, follow requests, idempotency keys.
-- Released: never edit; add 003_... instead.

-- Sessions by the sha256 of their bearer token. Serves: authentication; logout.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);

-- Pending follow requests to private accounts.
CREATE TABLE follow_requests (
    user_id INTEGER NOT NULL,
    requester_id INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, requester_id)
) WITHOUT ROWID;

-- Idempotency-Key of an upload -> the photo it created.
CREATE TABLE idempotency_keys (
    user_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    photo_id INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) WITHOUT ROWID;
