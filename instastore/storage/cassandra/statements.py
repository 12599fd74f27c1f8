"""Every CQL statement the Cassandra metadata adapter runs, each a named constant.

Each module-level upper-case name is one statement, prepared once at connect
(``statements()``). The tables and columns they name are those of ``schema/cql``;
``tests/unit/test_cql_statements.py`` parses every statement here and checks each against the
migrations, without a cluster. Grouped by the port whose methods run them. Only text
lives here: the adapter (``metadata.py``) binds the values and runs them.
"""

from __future__ import annotations

import re

PING = "SELECT release_version FROM system.local"  # Cassandra's own table; run unprepared

# AccountStore: users, users_by_name

# Written once: a user id that holds another user is a conflict, never overwritten.
INSERT_USER = (
    "INSERT INTO users (user_id, username, password_hash, display_name, private, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
)
CLAIM_NAME = "INSERT INTO users_by_name (username, user_id) VALUES (?, ?) IF NOT EXISTS"
DELETE_USER = "DELETE FROM users WHERE user_id = ?"
UPDATE_USER = "UPDATE users SET display_name = ?, private = ? WHERE user_id = ?"
SET_PASSWORD_HASH = "UPDATE users SET password_hash = ? WHERE user_id = ?"
GET_USER = (
    "SELECT user_id, username, password_hash, display_name, private, created_at FROM users "
    "WHERE user_id = ?"
)
USER_ID_BY_NAME = "SELECT user_id FROM users_by_name WHERE username = ?"

# AccountStore: usernames_by_prefix (its rows name a user id beside the name, so an
# attempt that loses the name's claim never overwrites the winner's row)
INDEX_USERNAME = "INSERT INTO usernames_by_prefix (prefix, username, user_id) VALUES (?, ?, ?)"
UNINDEX_USERNAME = (
    "DELETE FROM usernames_by_prefix WHERE prefix = ? AND username = ? AND user_id = ?"
)
USERNAMES_FROM = (
    "SELECT username, user_id FROM usernames_by_prefix "
    "WHERE prefix = ? AND username >= ? AND username < ? LIMIT ?"
)
# schema 011's backfill (migrate.py): every claimed name, in token order
SCAN_USERNAMES = (
    "SELECT token(username) AS t, username, user_id FROM users_by_name "
    "WHERE token(username) > ? LIMIT ?"
)

# AccountStore: sessions, user_sessions (written together, with one TTL). A session read
# ends with its TTL, in seconds (read by position: the driver names it after the call).

CREATE_SESSION = (
    "INSERT INTO sessions (token_hash, user_id, created_at, session_id, last_used_at, address) "
    "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
)
INDEX_SESSION = (
    "INSERT INTO user_sessions (user_id, session_id, token_hash, created_at, last_used_at, "
    "address) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
)
GET_SESSION = (
    "SELECT user_id, session_id, created_at, last_used_at, address, TTL(user_id) "
    "FROM sessions WHERE token_hash = ?"
)
TOUCH_SESSION = "UPDATE sessions USING TTL ? SET last_used_at = ? WHERE token_hash = ?"
TOUCH_USER_SESSION = (
    "UPDATE user_sessions USING TTL ? SET last_used_at = ? WHERE user_id = ? AND session_id = ?"
)
USER_SESSIONS = (
    "SELECT session_id, token_hash, created_at, last_used_at, address, TTL(token_hash) "
    "FROM user_sessions WHERE user_id = ? AND session_id < ? LIMIT ?"
)
USER_SESSION_TOKEN = "SELECT token_hash FROM user_sessions WHERE user_id = ? AND session_id = ?"
DELETE_SESSION = "DELETE FROM sessions WHERE token_hash = ?"
UNINDEX_SESSION = "DELETE FROM user_sessions WHERE user_id = ? AND session_id = ?"

# PhotoStore: photos, user_photos, user_photo_buckets, user_latest, photo_counts,
# hidden_photos, purge_queue

# Written once: an id that holds another photo is a conflict, never "saved already".
INSERT_PHOTO = "INSERT INTO photos (photo_id, record) VALUES (?, ?) IF NOT EXISTS"
INSERT_USER_PHOTO = "INSERT INTO user_photos (user_id, bucket, photo_id) VALUES (?, ?, ?)"
INSERT_USER_BUCKET = "INSERT INTO user_photo_buckets (user_id, bucket) VALUES (?, ?)"
SET_LATEST = "INSERT INTO user_latest (user_id, photo_id) VALUES (?, ?) USING TIMESTAMP ?"
GET_PHOTO = "SELECT record, deleted_at FROM photos WHERE photo_id = ?"
# A page's records (or counts) in one read of up to 100 keys: the coordinator asks each
# replica set, the client decodes one answer instead of making a request per photo.
GET_PHOTOS = "SELECT photo_id, record, deleted_at FROM photos WHERE photo_id IN ?"
SCAN_PHOTOS = (
    "SELECT token(photo_id) AS t, record, deleted_at FROM photos WHERE token(photo_id) > ? LIMIT ?"
)
USER_BUCKETS = "SELECT bucket FROM user_photo_buckets WHERE user_id = ? AND bucket <= ? LIMIT ?"
USER_PHOTOS = (
    "SELECT photo_id FROM user_photos WHERE user_id = ? AND bucket = ? AND photo_id < ? LIMIT ?"
)
SET_DELETED = "UPDATE photos SET deleted_at = ? WHERE photo_id = ?"
ENQUEUE_PURGE = "INSERT INTO purge_queue (shard, day, photo_id) VALUES (?, ?, ?)"
DEQUEUE_PURGE = "DELETE FROM purge_queue WHERE shard = ? AND day = ? AND photo_id = ?"
DUE_PURGES = "SELECT day, photo_id FROM purge_queue WHERE shard = ? AND day <= ? LIMIT ?"
DELETE_PHOTO = "DELETE FROM photos WHERE photo_id = ?"
DELETE_USER_PHOTO = "DELETE FROM user_photos WHERE user_id = ? AND bucket = ? AND photo_id = ?"
LATEST = "SELECT user_id, photo_id FROM user_latest WHERE user_id IN ?"
ADD_PHOTOS = "UPDATE photo_counts SET photos = photos + ? WHERE user_id = ?"
COUNT_PHOTOS = "SELECT photos FROM photo_counts WHERE user_id = ?"
HIDE_PHOTO = "INSERT INTO hidden_photos (user_id, visibility, photo_id) VALUES (?, ?, ?)"
UNHIDE_PHOTO = "DELETE FROM hidden_photos WHERE user_id = ? AND visibility = ? AND photo_id = ?"
COUNT_HIDDEN = (
    "SELECT visibility, COUNT(*) AS hidden FROM hidden_photos WHERE user_id = ? GROUP BY visibility"
)

# FollowGraph: user_follows, user_followers, follow_counts, follow_requests

INSERT_FOLLOW = "INSERT INTO user_follows (user_id, followee_id, created_at) VALUES (?, ?, ?)"
INSERT_FOLLOWER = "INSERT INTO user_followers (user_id, follower_id, created_at) VALUES (?, ?, ?)"
DELETE_FOLLOW = "DELETE FROM user_follows WHERE user_id = ? AND followee_id = ?"
DELETE_FOLLOWER = "DELETE FROM user_followers WHERE user_id = ? AND follower_id = ?"
IS_FOLLOWING = "SELECT followee_id FROM user_follows WHERE user_id = ? AND followee_id = ?"
FOLLOWING = "SELECT followee_id FROM user_follows WHERE user_id = ? AND followee_id > ? LIMIT ?"
FOLLOWERS = "SELECT follower_id FROM user_followers WHERE user_id = ? AND follower_id > ? LIMIT ?"
COUNT_FOLLOWS = "SELECT followers, following FROM follow_counts WHERE user_id = ?"
ADD_FOLLOWERS = "UPDATE follow_counts SET followers = followers + ? WHERE user_id = ?"
ADD_FOLLOWING = "UPDATE follow_counts SET following = following + ? WHERE user_id = ?"
ADD_REQUEST = (
    "INSERT INTO follow_requests (user_id, requester_id, created_at) VALUES (?, ?, ?) IF NOT EXISTS"
)
REMOVE_REQUEST = "DELETE FROM follow_requests WHERE user_id = ? AND requester_id = ? IF EXISTS"
REQUESTS = "SELECT requester_id FROM follow_requests WHERE user_id = ? AND requester_id > ? LIMIT ?"
HAS_REQUEST = "SELECT requester_id FROM follow_requests WHERE user_id = ? AND requester_id = ?"

# SearchIndex (written by PhotoStore): title_terms, term_buckets

INSERT_TERM = "INSERT INTO title_terms (term, bucket, photo_id) VALUES (?, ?, ?)"
INSERT_TERM_BUCKET = "INSERT INTO term_buckets (term, bucket) VALUES (?, ?)"
DELETE_TERM = "DELETE FROM title_terms WHERE term = ? AND bucket = ? AND photo_id = ?"
TERM_BUCKETS = "SELECT bucket FROM term_buckets WHERE term = ? AND bucket <= ? LIMIT ?"
TERM_POSTINGS = (
    "SELECT photo_id FROM title_terms WHERE term = ? AND bucket = ? AND photo_id < ? LIMIT ?"
)
TERM_HAS = "SELECT photo_id FROM title_terms WHERE term = ? AND bucket = ? AND photo_id IN ?"

# LikeStore (purged by PhotoStore): likes, like_counts

LIKE = "INSERT INTO likes (photo_id, user_id, created_at) VALUES (?, ?, ?) IF NOT EXISTS"
UNLIKE = "DELETE FROM likes WHERE photo_id = ? AND user_id = ? IF EXISTS"
ADD_LIKES = "UPDATE like_counts SET likes = likes + ? WHERE photo_id = ?"
LIKE_COUNTS = "SELECT photo_id, likes FROM like_counts WHERE photo_id IN ?"
DELETE_LIKES = "DELETE FROM likes WHERE photo_id = ?"
DELETE_LIKE_COUNT = "DELETE FROM like_counts WHERE photo_id = ?"

# InboxStore: timeline_inbox, user_latest.fanned_to, fanout_queue, inbox_backfills

INBOX = (
    "SELECT photo_id FROM timeline_inbox WHERE reader_id = ? AND photo_id < ? AND photo_id > ? "
    "LIMIT ?"
)
ADD_TO_INBOX = (
    "INSERT INTO timeline_inbox (reader_id, photo_id, owner_id) VALUES (?, ?, ?) USING TTL ?"
)
LATEST_MARKS = "SELECT user_id, photo_id, fanned_to FROM user_latest WHERE user_id IN ?"
# Cell timestamp = the marked photo's time: a mark written late never lowers a higher one.
MARK_FANNED = "UPDATE user_latest USING TIMESTAMP ? SET fanned_to = ? WHERE user_id = ?"
QUEUE_FANOUT = "INSERT INTO fanout_queue (shard, owner_id, photo_id) VALUES (?, ?, ?)"
PENDING_FANOUTS = "SELECT photo_id FROM fanout_queue WHERE shard = ? AND owner_id = ?"
QUEUED_FANOUTS = "SELECT owner_id, photo_id FROM fanout_queue WHERE shard = ? LIMIT ?"
FORGET_FANOUT = "DELETE FROM fanout_queue WHERE shard = ? AND owner_id = ? AND photo_id = ?"
ADD_BACKFILL = "INSERT INTO inbox_backfills (reader_id, followee_id, since) VALUES (?, ?, ?)"
BACKFILLS = "SELECT followee_id, since FROM inbox_backfills WHERE reader_id = ?"
FORGET_BACKFILL = (
    "DELETE FROM inbox_backfills WHERE reader_id = ? AND followee_id = ? AND since = ?"
)
FORGET_BACKFILLS = "DELETE FROM inbox_backfills WHERE reader_id = ? AND followee_id = ?"
# LikeStore: who likes a photo, and which of a page's photos one user likes (a
# multi-partition IN with the clustering key fixed: one statement for a page)

LIKERS = "SELECT user_id FROM likes WHERE photo_id = ? AND user_id > ? LIMIT ?"
LIKED_BY = "SELECT photo_id FROM likes WHERE photo_id IN ? AND user_id = ?"

# CommentStore (purged by PhotoStore): comments_by_photo, comment_buckets, comment_counts

ADD_COMMENT = (
    "INSERT INTO comments_by_photo (photo_id, bucket, comment_id, author_id, text, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS"
)
ADD_COMMENT_BUCKET = "INSERT INTO comment_buckets (photo_id, bucket) VALUES (?, ?)"
GET_COMMENT = (
    "SELECT comment_id, author_id, text, created_at FROM comments_by_photo "
    "WHERE photo_id = ? AND bucket = ? AND comment_id = ?"
)
COMMENT_BUCKETS = "SELECT bucket FROM comment_buckets WHERE photo_id = ? AND bucket >= ? LIMIT ?"
COMMENTS = (
    "SELECT comment_id, author_id, text, created_at FROM comments_by_photo "
    "WHERE photo_id = ? AND bucket = ? AND comment_id > ? LIMIT ?"
)
DELETE_COMMENT = (
    "DELETE FROM comments_by_photo WHERE photo_id = ? AND bucket = ? AND comment_id = ? IF EXISTS"
)
ADD_COMMENTS = "UPDATE comment_counts SET comments = comments + ? WHERE photo_id = ?"
COMMENT_COUNTS = "SELECT photo_id, comments FROM comment_counts WHERE photo_id IN ?"
DELETE_COMMENT_PARTITION = "DELETE FROM comments_by_photo WHERE photo_id = ? AND bucket = ?"
DELETE_COMMENT_BUCKETS = "DELETE FROM comment_buckets WHERE photo_id = ?"
DELETE_COMMENT_COUNT = "DELETE FROM comment_counts WHERE photo_id = ?"

# IdempotencyStore: idempotency_keys

CLAIM_KEY = (
    "INSERT INTO idempotency_keys (user_id, key, photo_id, claimed_at) VALUES (?, ?, ?, ?) "
    "IF NOT EXISTS USING TTL ?"
)
TAKE_OVER_KEY = (
    "UPDATE idempotency_keys USING TTL ? SET photo_id = ?, claimed_at = ?, intent = null "
    "WHERE user_id = ? AND key = ? IF photo_id = ? AND claimed_at = ?"
)
# photo_id is written again so that all of the row's cells share the new TTL.
RENEW_KEY = (
    "UPDATE idempotency_keys USING TTL ? SET photo_id = ?, claimed_at = ? "
    "WHERE user_id = ? AND key = ? IF photo_id = ?"
)
RENEW_KEY_INTENT = (
    "UPDATE idempotency_keys USING TTL ? SET photo_id = ?, claimed_at = ?, intent = ? "
    "WHERE user_id = ? AND key = ? IF photo_id = ?"
)
RELEASE_KEY = "DELETE FROM idempotency_keys WHERE user_id = ? AND key = ? IF photo_id = ?"

# KeyStore: server_keys

SERVER_KEY = "INSERT INTO server_keys (name, secret) VALUES (?, ?) IF NOT EXISTS"

# LeaseStore: leases (taken, renewed and released with a conditional batch: the holder
# cell, under the lease's TTL, is the condition; since and high_ms outlive it), limit_hits

TAKE_LEASE = "UPDATE leases USING TTL ? SET holder = ? WHERE name = ? IF holder = null"
RENEW_LEASE = "UPDATE leases USING TTL ? SET holder = ? WHERE name = ? IF holder = ?"
RELEASE_LEASE = "DELETE holder FROM leases WHERE name = ? IF holder = ?"
SET_LEASE_SINCE = "UPDATE leases SET since = ? WHERE name = ?"
SET_LEASE_HIGH = "UPDATE leases SET high_ms = ? WHERE name = ?"
READ_LEASE = "SELECT holder, since, high_ms FROM leases WHERE name = ?"  # at LOCAL_SERIAL
ADD_LIMIT_HIT = "INSERT INTO limit_hits (key, minute, hit) VALUES (?, ?, ?)"
LIMIT_HITS = "SELECT hit FROM limit_hits WHERE key = ? AND minute = ? LIMIT ?"
LIMIT_HITS_THROUGH = "SELECT hit FROM limit_hits WHERE key = ? AND minute = ? AND hit <= ? LIMIT ?"
REMOVE_LIMIT_HIT = "DELETE FROM limit_hits WHERE key = ? AND minute = ? AND hit = ?"

# PhotoStore: content_index (dedupe)

CONTENT_DONOR = "SELECT photo_id FROM content_index WHERE sha256 = ?"
SET_CONTENT_DONOR = "INSERT INTO content_index (sha256, photo_id) VALUES (?, ?)"


_TABLE = re.compile(r"\b(FROM|INTO|UPDATE)\s+(?!\w+\.)(\w+)")


def qualified(statement: str, keyspace: str) -> str:
    """``statement`` with its table named in ``keyspace`` (``FROM photos`` becomes ``FROM
    ks.photos``). Statements are prepared this way, on a session with no keyspace set:
    Cassandra 5 warns of every statement prepared under ``USE <keyspace>`` (or with the
    keyspace given beside it) as an anti-pattern, since its table is then ambiguous."""
    return _TABLE.sub(lambda m: f"{m[1]} {keyspace}.{m[2]}", statement)


def statements() -> dict[str, str]:
    """Every statement to prepare, by its constant's name in lower case (the ``what`` of
    its errors)."""
    return {
        name.lower(): value
        for name, value in globals().items()
        if name.isupper() and isinstance(value, str) and name != "PING"
    }


# PhotoStore.switch_locators (the packer): only the record read, and only while live
SWITCH_LOCATORS = (
    "UPDATE photos SET record = ? WHERE photo_id = ? IF record = ? AND deleted_at = null"
)

# PhotoStore: pack_queue, pack_queue_buckets (the packer's work list). A photo's
# pack_queue partition is photo_id >> PACK_BUCKET_SHIFT: about 8.7 minutes of ids.

PACK_BUCKET_SHIFT = 42

QUEUE_PACK = "INSERT INTO pack_queue (bucket, photo_id) VALUES (?, ?)"
QUEUE_PACK_BUCKET = "INSERT INTO pack_queue_buckets (shard, bucket) VALUES (0, ?)"
PACK_QUEUE_BUCKETS = "SELECT bucket FROM pack_queue_buckets WHERE shard = 0 AND bucket > ? LIMIT ?"
PACK_QUEUE = "SELECT photo_id FROM pack_queue WHERE bucket = ? AND photo_id > ? LIMIT ?"
UNQUEUE_PACK = "DELETE FROM pack_queue WHERE bucket = ? AND photo_id = ?"
UNQUEUE_PACK_BUCKET = "DELETE FROM pack_queue_buckets WHERE shard = 0 AND bucket = ?"
# schema 006's backfill (migrate.py): every photo id, in token order
SCAN_PHOTO_IDS = (
    "SELECT token(photo_id) AS t, photo_id FROM photos WHERE token(photo_id) > ? LIMIT ?"
)

# PhotoStore.finish_video runs SWITCH_LOCATORS (the record read, only while live).

# TranscodeQueue: transcode_jobs (one partition, shard 0). A claim is conditional on the
# attempts, lease and holder read (the holder so that a try after an unknown outcome
# recognises its own claim); a job deleted meanwhile has null attempts: not claimed.
QUEUE_TRANSCODE = (
    "INSERT INTO transcode_jobs (shard, photo_id, replaces, queued_at, attempts) "
    "VALUES (0, ?, ?, ?, 0) IF NOT EXISTS"
)
TRANSCODE_JOBS = (
    "SELECT photo_id, replaces, queued_at, attempts, holder, lease_until FROM transcode_jobs "
    "WHERE shard = 0 AND photo_id > ? LIMIT ?"
)
TRANSCODE_JOB = (
    "SELECT photo_id, replaces, queued_at, attempts, holder, lease_until FROM transcode_jobs "
    "WHERE shard = 0 AND photo_id = ?"
)
CLAIM_TRANSCODE = (
    "UPDATE transcode_jobs SET holder = ?, lease_until = ?, attempts = ? "
    "WHERE shard = 0 AND photo_id = ? IF attempts = ? AND lease_until = ? AND holder = ?"
)
RENEW_TRANSCODE = (
    "UPDATE transcode_jobs SET lease_until = ? WHERE shard = 0 AND photo_id = ? IF holder = ?"
)
FORGET_TRANSCODE = "DELETE FROM transcode_jobs WHERE shard = 0 AND photo_id = ?"

# BlockStore: user_blocks, user_blockers (written and removed together in logged batches)
BLOCK = "INSERT INTO user_blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?)"
INDEX_BLOCKER = "INSERT INTO user_blockers (user_id, blocker_id) VALUES (?, ?)"
UNBLOCK = "DELETE FROM user_blocks WHERE user_id = ? AND blocked_id = ?"
UNINDEX_BLOCKER = "DELETE FROM user_blockers WHERE user_id = ? AND blocker_id = ?"
IS_BLOCKING = "SELECT blocked_id FROM user_blocks WHERE user_id = ? AND blocked_id = ?"
BLOCKED = "SELECT blocked_id FROM user_blocks WHERE user_id = ? AND blocked_id > ? LIMIT ?"
BLOCKED_AMONG = "SELECT blocked_id FROM user_blocks WHERE user_id = ? AND blocked_id IN ?"
BLOCKERS_AMONG = "SELECT blocker_id FROM user_blockers WHERE user_id = ? AND blocker_id IN ?"

# ModerationStore: reports and hidden_items (one partition each, shard 0), content_blocklist
ADD_REPORT = (
    "INSERT INTO reports (shard, kind, item_id, reporter_id, reason, note, created_at) "
    "VALUES (0, ?, ?, ?, ?, ?, ?)"
)
REPORTS = (
    "SELECT kind, item_id, reporter_id, reason, note, created_at FROM reports "
    "WHERE shard = 0 AND (kind, item_id, reporter_id) > (?, ?, ?) LIMIT ?"
)
RESOLVE_REPORTS = "DELETE FROM reports WHERE shard = 0 AND kind = ? AND item_id = ?"
HIDE_ITEM = "INSERT INTO hidden_items (shard, item_id, kind, hidden_at) VALUES (0, ?, ?, ?)"
SHOW_ITEM = "DELETE FROM hidden_items WHERE shard = 0 AND item_id = ?"
HIDDEN_AMONG = "SELECT item_id, kind FROM hidden_items WHERE shard = 0 AND item_id IN ?"
ADD_TO_BLOCKLIST = "INSERT INTO content_blocklist (sha256, photo_id, added_at) VALUES (?, ?, ?)"
BLOCKLISTED = "SELECT photo_id FROM content_blocklist WHERE sha256 = ?"


# ActivityStore: activity_by_user (each row under a TTL ending when its event is
# activity_days old), activity_keys (the event ids of actions without one, claimed),
# activity_seen (the read mark, written with the cell timestamp of its id: it only rises)

ADD_EVENT = (
    "INSERT INTO activity_by_user (user_id, event_id, kind, actor_id, photo_id, comment_id) "
    "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?"
)
EVENTS = (
    "SELECT event_id, kind, actor_id, photo_id, comment_id FROM activity_by_user "
    "WHERE user_id = ? AND event_id < ? AND event_id > ? LIMIT ?"
)
CLAIM_EVENT = (
    "INSERT INTO activity_keys (user_id, action, event_id) VALUES (?, ?, ?) "
    "IF NOT EXISTS USING TTL ?"
)
SEEN_MARK = "SELECT seen_id FROM activity_seen WHERE user_id = ?"
MARK_SEEN = "UPDATE activity_seen USING TIMESTAMP ? SET seen_id = ? WHERE user_id = ?"

# TagIndex: tag_photos, tag_buckets, tags_by_prefix, photo_index (the rows an edit or an
# upload's tags wrote for a photo); a title edit's record write is SWITCH_LOCATORS (the
# record read, only while live).

INSERT_TAG = "INSERT INTO tag_photos (tag, bucket, photo_id) VALUES (?, ?, ?)"
INSERT_TAG_BUCKET = "INSERT INTO tag_buckets (tag, bucket) VALUES (?, ?)"
INDEX_TAG_NAME = "INSERT INTO tags_by_prefix (prefix, tag) VALUES (?, ?)"
DELETE_TAG = "DELETE FROM tag_photos WHERE tag = ? AND bucket = ? AND photo_id = ?"
TAG_BUCKETS = "SELECT bucket FROM tag_buckets WHERE tag = ? AND bucket <= ? LIMIT ?"
TAG_PHOTOS = "SELECT photo_id FROM tag_photos WHERE tag = ? AND bucket = ? AND photo_id < ? LIMIT ?"
TAGS_FROM = "SELECT tag FROM tags_by_prefix WHERE prefix = ? AND tag >= ? AND tag < ? LIMIT ?"
REMEMBER_INDEXED = "INSERT INTO photo_index (photo_id, kind, value) VALUES (?, ?, ?)"
INDEXED = "SELECT kind, value FROM photo_index WHERE photo_id = ?"
FORGET_INDEXED = "DELETE FROM photo_index WHERE photo_id = ? AND kind = ? AND value = ?"


# Counts as a viewer sees them: what the accounts a block stands between the viewer and
# (its walls: few) did, left out of a profile's follow counts and a photo's like and
# comment counts. Each reads one partition of the user or the photo.
BLOCKERS = "SELECT blocker_id FROM user_blockers WHERE user_id = ? AND blocker_id > ? LIMIT ?"
FOLLOWERS_AMONG = "SELECT follower_id FROM user_followers WHERE user_id = ? AND follower_id IN ?"
FOLLOWING_AMONG = "SELECT followee_id FROM user_follows WHERE user_id = ? AND followee_id IN ?"
LIKERS_AMONG = "SELECT user_id FROM likes WHERE photo_id = ? AND user_id IN ?"
# Filtered inside the photo's own bucket partitions (author_id is no key column, and
# Cassandra takes no IN on such a column): one read per photo with comments and per
# account walled off, for viewers with blocks only. The next step, if blockers read
# photos with many comments, is a table of a photo's comments by author.
COMMENTS_BY_AMONG = (
    "SELECT comment_id FROM comments_by_photo "
    "WHERE photo_id = ? AND bucket IN ? AND author_id = ? ALLOW FILTERING"
)
