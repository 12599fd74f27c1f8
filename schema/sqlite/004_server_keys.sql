-- instastore embedded schema version 4: secrets shared by every worker of a deployment.
-- Released: never edit; add 005_... instead.

-- Secrets by name, made by whichever worker starts first (INSERT OR IGNORE).
-- Serves: the key that seals page cursors (instastore/paging.py), read once at start.
CREATE TABLE server_keys (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL
) WITHOUT ROWID;
