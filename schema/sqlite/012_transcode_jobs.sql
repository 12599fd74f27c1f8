-- instastore embedded schema version 12: the transcode queue (video that plays in every
-- browser). Released: never edit; add the next number instead.

-- Videos waiting for their browser-safe rendition (see schema/cql/012_transcode_jobs.cql).
-- Serves: the workers' list of jobs (oldest photo first), one job by photo id.
CREATE TABLE transcode_jobs (
    photo_id INTEGER PRIMARY KEY,
    replaces TEXT,
    queued_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    holder TEXT,
    lease_until_ms INTEGER
);
