-- instastore embedded schema version 7: leases and shared limits (many processes on one
-- data folder). Released: never edit; add 008_... instead.

-- Named leases, one holder at a time across the processes sharing this database: worker
-- numbers ("worker/<n>") and the storage job lock ("job"). A lease is held while
-- expires_ms is ahead of the clock; high_ms is the last millisecond its holders may have
-- put into an id (kept after release and expiry).
-- Serves: taking, renewing and releasing a lease.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT,
    since_ms INTEGER,
    expires_ms INTEGER,
    high_ms INTEGER NOT NULL DEFAULT 0
);

-- Hits against a limit shared by every process (see schema/cql/007_leases.cql).
-- Serves: the shared rate limits; rows older than two minutes are removed as new ones come.
CREATE TABLE limit_hits (
    key TEXT NOT NULL,
    minute INTEGER NOT NULL,
    hit INTEGER PRIMARY KEY AUTOINCREMENT
);
CREATE INDEX limit_hits_by_key ON limit_hits (key, minute);
CREATE INDEX limit_hits_by_minute ON limit_hits (minute);
