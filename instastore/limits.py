"""The core's fixed limits: sizes, counts and time windows that are not settings.

Each constant carries its unit and the reason for its value. What an operator may tune
is a setting in ``instastore.config`` (declared once there, documented in the README);
what is here is fixed by design: the bounds a client can run into, the core's cache
windows and the timeline's read sizes. I/O chunk sizes stay beside the code that streams
(``instastore.uploads``, the adapters), the storage adapters keep their own read sizes
and retries, and the server its protocol guards (``server/guard.py``). No I/O here.
"""

from __future__ import annotations

from datetime import timedelta

# Accounts (instastore.accounts)
MIN_PASSWORD_CHARS = 8  # characters
MAX_PASSWORD_CHARS = 1024  # characters: argon2 takes any length; this bounds the work per request
PASSWORD_HASH_LANES = 4  # argon2id lanes (parallelism) of a password hash: RFC 9106's 4
PASSWORD_HASH_TIME_COST = 3  # argon2id passes, the default of the setting (RFC 9106's second)
PASSWORD_HASH_MEMORY_KIB = 65536  # argon2id memory, the default of the setting (64 MiB)
MAX_DISPLAY_NAME_CHARS = 100  # characters
MAX_LOGIN_NAME_CHARS = 64  # longer than any username: refused before any hashing or lookup
TOKEN_BYTES = 32  # random bytes of a session token (256 bits: not guessable)
# A session's last use is written at most this often, so authenticating costs no write
# per request; the list of one's sessions shows it to the minute.
SESSION_TOUCH_EVERY = timedelta(minutes=1)
MAX_SESSIONS_LISTED = 100  # the newest sessions GET /v1/me/sessions shows (all are revocable)

# Account search (instastore.social): a prefix names one partition of usernames_by_prefix
# on Cassandra, the usernames that share their first this many characters (every
# username has at least 3), so a shorter prefix is refused rather than read from 39.
USERNAME_PREFIX_CHARS = 2

# Paged lists: a limit of more digits is refused before int() reads it; any larger
# than the max_page_size setting is clamped to it.
MAX_LIMIT_DIGITS = 9

# The log-in throttle (instastore.ratelimit): its memory of good addresses, per process
KNOWN_ACCOUNTS = 100_000  # accounts whose good addresses the log-in throttle remembers
KNOWN_ADDRESSES = 8  # addresses remembered per account (the latest ones)

# Search (instastore.search)
MAX_TERMS_PER_TITLE = 32  # index rows written with one photo; titles are short
MAX_TERM_LENGTH = 64  # characters; longer "words" are noise, not search terms
MAX_QUERY_CHARS = 200  # characters of a search query: more words than any title indexes

# Uploads (instastore.uploads) and the batch jobs (instastore.lifecycle)
IDEMPOTENCY_TTL = timedelta(days=1)  # a key answers with its photo this long after its last write
MAX_IDEMPOTENCY_KEY = 128  # characters
# A retried upload may adopt the blobs its first attempt saved for as long as its
# Idempotency-Key's claim lives; an hour more covers an upload still being written.
ORPHAN_GRACE = IDEMPOTENCY_TTL + timedelta(hours=1)
PURGE_BATCH = 100  # queue entries handled per round of the purge job
# Video and audio packets of one video (instastore.media). Remuxing costs ~4 us of CPU a
# packet here, and a 256 MB upload of tiny packets holds ~20 million (90 s of CPU);
# 500,000 is over two hours of 60 fps video with its audio, and about 2 s of remux.
MAX_VIDEO_PACKETS = 500_000
# Frame rate a video may declare (instastore.video.probe): phones' slow motion is 240.
MAX_VIDEO_FPS = 240
# Tries of one transcode job: a job whose worker died this many times while holding it
# marks its video failed rather than stop the next worker too. A decoder that crashes or
# runs out of memory fails the video at once (it runs in a child process); this bounds
# what is left, e.g. a host that keeps rebooting mid-job, so it is generous.
MAX_TRANSCODE_ATTEMPTS = 20

# Reading photos
OVERFETCH_ROUNDS = 8  # store reads per page while skipping deleted or invisible photos

# In-process caches (instastore.hotcache)
RECORD_TTL_S = 5.0  # seconds a photo or owner record is reused: how stale other processes may be
# Other processes keep a photo record up to RECORD_TTL_S; a media read that began before
# the packer switched it may still be reading the landed blob: the packer and compaction
# wait twice that, in seconds, before removing what they moved.
LANDED_GRACE_S = 2 * RECORD_TTL_S
MAX_RECORDS = 100_000  # records per cache before it is emptied (a few hundred bytes each)
MAX_ITEM_BYTES = 2 * 2**20  # larger renditions (originals, videos) always stream from the store

# The home timeline (instastore.timeline, instastore.merge)
TIMELINE_FRESH_S = 5.0  # seconds followee lists and newest ids are served without a refresh...
TIMELINE_STALE_MAX_S = 60.0  # ...then refreshed in the background, served meanwhile up to this age
TIMELINE_CACHE_ITEMS = 200_000  # entries per timeline cache before it is emptied (ints, lists)
# Stale newest ids one page starts a background refresh of (in reads of 100 keys): at 7,500
# followees, refreshing every one at once (75 reads, 7,500 cache writes) landed on the
# pages served meanwhile as a tail of 240 ms; a slice a page spreads the same work over the
# next pages, and the entries, refreshed at different moments, go stale at different ones.
NEWEST_REFRESH_KEYS = 500
# Rows per read of a followee list. The timeline reads the whole list, cut nowhere: what
# bounds it is the max_following setting (7,500 by default: 8 reads), which follows racing
# on several hosts may pass by a few, and which an operator may lower below what users
# follow already; neither hides a followee.
FOLLOWEES_PAGE = 1000
PREFETCH = 12  # followees' rows read concurrently with the one at the top of the merge heap
FIRST_READ = 4  # ids asked of a followee at first: most give a page one or two photos
# Followees' rows one timeline page may read, whatever its cursor (one query each, at most
# a page of ids): a first page reads ~26 at 2,000 followees, a deep one would read them all.
PAGE_READS = 128
SCAN_IDS = 101  # ids a deep scan keeps in its cursor (a page of 100 and one): ~1.2 KB sealed
# Newest candidate photos ranked for "top" (about 5 pages of 20); the pages after the
# window go on newest first from below its oldest candidate, as "recent" pages do.
TOP_WINDOW = 100
RANKED_TTL_S = 10.0  # seconds a ranked "top" window is reused (new likes re-rank after it)

# Fan-out on write (instastore.fanout): the inboxes hold the last inbox_days of photos.
FANOUT_IDS = 100  # photo ids a fan-out writes to all followers before raising the mark
FOLLOWERS_PAGE = 1000  # followers read at a time by a fan-out (rows written: this x ids)
FANOUT_SWEEP_S = 30.0  # how often each serving process runs fan-outs left queued...
FANOUT_SWEEP_AFTER_S = 60.0  # ...those queued longer than this (younger: still under way)
FANOUT_SWEEP_OWNERS = 50  # owners one sweep fans out
# Inbox rows live inbox_days by their photo's time; readers count on them for one day
# less, so a replica's clock ahead of the reader's never expires a row counted on.
INBOX_SLACK = timedelta(days=1)

# Hashtags (instastore.tags)
MAX_TAGS_PER_TITLE = 30  # tags indexed per title, Instagram's own limit; the rest stay text
TAG_PREFIX_CHARS = 2  # a tag search's shortest prefix: one range of one tags_by_prefix row
MAX_TAGS_LISTED = 20  # tags one prefix search answers at most (each is checked, see tags)
TAG_SEARCH_ROUNDS = 3  # reads of candidate tags one prefix search makes at most
TITLE_EDIT_ROUNDS = 3  # times a title edit brings its indexes to the record before giving up
