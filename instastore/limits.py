"""The core's fixed limits: sizes, counts and time windows that are not settings.

Each constant carries its unit and the reason for its value. What an operator may tune
is a setting in ``instastore.config`` (declared once there, documented in the README);
what is here is fixed by design. Storage adapters keep their own I/O tuning (page sizes
of their reads, retries) beside the code that uses it. This module never does I/O.
"""

from __future__ import annotations

# Reading photos
OVERFETCH_ROUNDS = 8  # store reads per page while skipping deleted or invisible photos

# In-process caches (instastore.hotcache)
RECORD_TTL_S = 5.0  # seconds a photo or owner record is reused: how stale other processes may be
MAX_RECORDS = 100_000  # records per cache before it is emptied (a few hundred bytes each)
MAX_ITEM_BYTES = 2 * 2**20  # larger renditions (originals, videos) always stream from the store

# The home timeline (instastore.timeline, instastore.merge)
TIMELINE_FRESH_S = 5.0  # seconds followee lists and newest ids are served without a refresh...
TIMELINE_STALE_MAX_S = 60.0  # ...then refreshed in the background, served meanwhile up to this age
TIMELINE_CACHE_ITEMS = 200_000  # entries per timeline cache before it is emptied (ints, lists)
FOLLOWEES_PAGE = 1000  # rows per read of the followee list
MAX_FOLLOWEES = 10_000  # followees considered; beyond this the oldest follows are ignored
PREFETCH = 12  # followees' rows read concurrently with the one at the top of the merge heap
FIRST_READ = 4  # ids asked of a followee at first: most give a page one or two photos
TOP_WINDOW = 100  # newest candidate photos ranked for "top" (about 5 pages of 20)
RANKED_TTL_S = 10.0  # seconds a ranked "top" window is reused (new likes re-rank after it)
