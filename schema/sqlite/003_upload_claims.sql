-- instastore embedded schema version 3: an Idempotency-Key claim that a retry can take over.
-- Released: never edit; add 004_... instead.

-- claimed_ms: when the holder claimed or last renewed the key (with photo_id, the version
-- a takeover is conditional on); intent: the photo record the holder is about to save.
ALTER TABLE idempotency_keys ADD COLUMN claimed_ms INTEGER;
ALTER TABLE idempotency_keys ADD COLUMN intent BLOB;
