-- instastore embedded schema version 9: a user's sessions, listed and ended together.
-- Released: never edit; add 010_... instead.

-- Each session's id (an id of instastore/ids.py), when it was made and last used (written
-- at most once a minute), and the address it logged in from. Sessions made before this
-- version have none of these: they end here, and their users log in again.
-- Serves: authentication; GET /v1/me/sessions; revoking one; log out everywhere.
ALTER TABLE sessions ADD COLUMN session_id INTEGER;
ALTER TABLE sessions ADD COLUMN created_ms INTEGER;
ALTER TABLE sessions ADD COLUMN last_used_ms INTEGER;
ALTER TABLE sessions ADD COLUMN address TEXT NOT NULL DEFAULT '';
DELETE FROM sessions;
CREATE UNIQUE INDEX sessions_by_user ON sessions (user_id, session_id);
