-- instastore embedded schema version 11: comments on photos (schema/cql/011_comments.cql).
-- Released: never edit; add 012_... instead.

-- A photo's comments, oldest first; the count is a COUNT over the primary key's prefix
-- (exact: one transaction writes or removes a comment). Deleting one removes it for good.
-- Serves: a photo's comments, paged by comment id; one comment by id; comment counts.
-- Usernames by prefix need no table here: users.username is UNIQUE, so its index
-- serves a range of names.
CREATE TABLE comments (
    photo_id INTEGER NOT NULL,
    comment_id INTEGER NOT NULL,
    author_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (photo_id, comment_id)
) WITHOUT ROWID;
