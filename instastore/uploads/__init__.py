"""Uploads: stream to a temporary file under a size cap while hashing, recognise and
process the media off the event loop, write the blobs, then the metadata.

- ``receive``: the upload to local disk, hashed on the way (``receive``, ``Received``),
  and the clean-up of what crashed processes left there;
- ``checks``: the title, visibility and Idempotency-Key an upload comes with;
- ``idempotency``: the Idempotency-Key protocol (``Fence``);
- ``dedupe``: an upload of bytes stored already reuses them (``Dedupe``);
- ``service``: ``Uploads``, which makes a photo of a received upload (where its blobs
  go is the storage port's ``instastore.storage.keys.blob_key``).
"""

from instastore.uploads.checks import check_idempotency_key, check_title, check_visibility
from instastore.uploads.receive import Received, receive, remove_abandoned_uploads
from instastore.uploads.service import Uploads

__all__ = [
    "Received",
    "Uploads",
    "check_idempotency_key",
    "check_title",
    "check_visibility",
    "receive",
    "remove_abandoned_uploads",
]
