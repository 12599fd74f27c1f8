-- instastore embedded schema version 5: content dedupe (issue 12 item 3).
-- Released: never edit; add 006_... instead.

-- The sha256 of an original upload -> the photo whose stored renditions an upload of the
-- same bytes reuses (its "donor"): a photo id, never locators (packing never makes it
-- stale). Serves: the donor of an upload's bytes (instastore/uploads.py).
CREATE TABLE content_index (
    sha256 TEXT PRIMARY KEY,
    photo_id INTEGER NOT NULL
) WITHOUT ROWID;
