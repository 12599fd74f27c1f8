-- instastore embedded schema version 10: the home timeline's inboxes (fan-out on write).
-- Released: never edit; add 011_... instead.

-- Each reader's inbox: followees' photo ids fanned out on upload or backfilled on a new
-- follow, each kept until expires_ms (its photo's time + INBOX_DAYS).
-- Serves: a timeline page.
CREATE TABLE timeline_inbox (
    reader_id INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    owner_id INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    PRIMARY KEY (reader_id, photo_id)
) WITHOUT ROWID;

-- How far each poster's fan-out is done (see the cluster schema's user_latest.fanned_to).
CREATE TABLE fanout_marks (
    user_id INTEGER PRIMARY KEY,
    fanned_to INTEGER NOT NULL
);

-- Photos whose fan-out is not known to be done. Serves: fan-outs; the sweep.
CREATE TABLE fanout_queue (
    owner_id INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    PRIMARY KEY (owner_id, photo_id)
) WITHOUT ROWID;

-- New follows whose followee's recent photos are not yet in the reader's inbox.
CREATE TABLE inbox_backfills (
    reader_id INTEGER NOT NULL,
    followee_id INTEGER NOT NULL,
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (reader_id, followee_id, since_ms)
) WITHOUT ROWID;
