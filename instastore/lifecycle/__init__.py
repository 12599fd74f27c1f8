"""The blob lifecycle: what happens to a photo's bytes after its upload landed them.

- ``volumes``: the needle format, writing and scanning a volume, and reading the bytes
  behind any locator a record holds (every read of a photo's bytes goes through it);
- ``references``: which blobs and needles the records point at, the one reading of the
  records every job below decides from;
- ``packing``: landed blobs into volumes (``instastore pack``), crash-safe by manifests;
- ``compaction``: volumes rewritten without their dead needles (``instastore compact``);
- ``purge``: photos deleted past their undo window go for good (``instastore purge``);
- ``gc``: blobs no record points at, and crashed writes' leftovers (``instastore gc``);
- ``stats``: what the stores hold (``instastore storage stats``).

Imports go one way, in that order (``volumes`` below ``references`` below the jobs, and
``gc`` reads ``packing``'s manifests and ``compaction``'s threshold); the key shapes they
share with the blob adapters are ``instastore.storage.keys``. Nothing here speaks HTTP.
"""
