-- instastore embedded schema version 8: which photos only followers, or only their
-- owner, may see. Released: never edit; add 009_... instead.

-- A row per photo whose visibility is followers or private, kept until the photo is
-- purged (counted with photos, so deleted ones drop out of the count). Applying this file
-- also fills it from every photo record stored so far (storage/embedded/metadata.py).
-- Serves: each viewer's count of a profile's photos.
CREATE TABLE hidden_photos (
    user_id INTEGER NOT NULL,
    photo_id INTEGER NOT NULL,
    visibility TEXT NOT NULL,
    PRIMARY KEY (user_id, photo_id)
) WITHOUT ROWID;
