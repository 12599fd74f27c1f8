-- instastore embedded schema version 6: the pack queue (issue 12).
-- Released: never edit; add 007_... instead.

-- Photos that may still have landed blobs: every save of a photo record queues it in the
-- same transaction; the packer drops a photo once its record has none or is gone.
-- Serves: the packer (`instastore pack`), every queued photo, oldest first.
CREATE TABLE pack_queue (
    photo_id INTEGER PRIMARY KEY
);

-- Every photo stored so far joins the queue (the packer drops the packed ones on its next
-- run), so the queue holds every record with landed blobs from the start.
INSERT INTO pack_queue (photo_id) SELECT photo_id FROM photos;
