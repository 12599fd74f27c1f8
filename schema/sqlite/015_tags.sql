-- instastore embedded schema version 15: hashtags and title edits (schema/cql/015_tags.cql).
-- Released: never edit; add the next number instead.

-- The photos of each (folded) tag; the index serves the removal of a photo's rows.
-- Serves: a tag's photos, newest first (paged by photo id); tags by prefix (in order);
-- a title edit's and a purge's removals.
CREATE TABLE tag_photos (
    tag TEXT NOT NULL,
    photo_id INTEGER NOT NULL,
    PRIMARY KEY (tag, photo_id)
) WITHOUT ROWID;
CREATE INDEX tag_photos_by_photo ON tag_photos (photo_id, tag);

-- Serves: a title edit's removal of a photo's old terms (and purge's of all of them)
-- without a scan of the title index.
CREATE INDEX title_terms_by_photo ON title_terms (photo_id, term);
