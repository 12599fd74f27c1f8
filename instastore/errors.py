"""The one exception tree of instastore.

Every error the core, the storage adapters or the cluster tooling raise on purpose is an
``InstastoreError``. Adapters translate driver and WebHDFS failures into this tree at the
boundary (``raise ... from exc``), so no ``cassandra.*`` exception or raw WebHDFS status
escapes ``instastore.storage``. The server maps these classes to HTTP statuses in one table.

    InstastoreError
    ├── ConfigError            a setting is missing or malformed
    ├── InvalidInput           the caller sent something unusable (400)
    │   ├── BadCursor          an opaque page cursor did not decode
    │   ├── TooLarge           an upload or body past its size limit (413)
    │   ├── UnsupportedMedia   not an image or video type we accept (415)
    │   ├── InvalidMedia       an accepted type that does not decode (422)
    │   └── RequestTimeout     the client stopped sending its request (408)
    ├── NotAuthenticated       no valid bearer token (401)
    ├── RateLimited            too many requests; retry_after seconds (429)
    ├── Overloaded             the service sheds this request; retry_after seconds (503)
    ├── NotAllowed             the caller may not do this (403)
    ├── NotFound               no such user, photo or blob (404)
    │   └── Gone               it existed, and is past its undelete window (410)
    ├── Blocklisted            bytes an operator took down, uploaded again (451)
    ├── Conflict               the thing already exists (409)
    │   ├── InProgress         another request is making it; retry_after seconds (409)
    │   └── LimitReached       the caller is at a cap of its own, e.g. max_following (409)
    ├── StorageError           a store failed in a way the caller cannot fix
    │   ├── Unavailable        a store cannot be reached right now (503); retry later
    │   │   └── OutcomeUnknown a write timed out: it may or may not have happened (503)
    │   └── CorruptRecord      a stored record does not decode
    │       └── CorruptNeedle  a needle in a volume fails its checks (instastore.lifecycle.volumes)
    └── ClusterError           the local cluster tool failed (not used by the service)
"""


class InstastoreError(Exception):
    """Base of every error instastore raises on purpose."""


class ConfigError(InstastoreError):
    """A setting is missing or malformed."""


class InvalidInput(InstastoreError):
    """The caller sent something unusable."""


class BadCursor(InvalidInput):
    """An opaque page cursor did not decode."""


class TooLarge(InvalidInput):
    """An upload or body past its size limit."""


class UnsupportedMedia(InvalidInput):
    """Not an image or video type the service accepts."""


class InvalidMedia(InvalidInput):
    """An accepted type whose bytes do not decode (truncated, corrupt, a bomb)."""


class RequestTimeout(InvalidInput):
    """The client stopped sending its request (headers or body) for too long."""


class NotAuthenticated(InstastoreError):
    """No valid bearer token."""


class RateLimited(InstastoreError):
    """Too many requests; the same call may succeed after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(InstastoreError):
    """The service sheds this request to stay responsive; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotAllowed(InstastoreError):
    """The caller may not do this (not the owner, not a follower, ...)."""


class NotFound(InstastoreError):
    """No such user, photo or blob."""


class Gone(NotFound):
    """It existed, and is past its undelete window."""


class Blocklisted(InstastoreError):
    """An upload of bytes an operator took down (``instastore.moderation``)."""


class Conflict(InstastoreError):
    """The thing to create already exists."""


class InProgress(Conflict):
    """Another request is making the same thing (an upload holding the same
    Idempotency-Key); the same call may succeed after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LimitReached(Conflict):
    """The caller is at a cap on what it may hold (the accounts it follows:
    ``max_following``): the same call succeeds once it holds fewer. The message names
    the cap."""


class StorageError(InstastoreError):
    """A store failed in a way the caller cannot fix."""


class Unavailable(StorageError):
    """A store cannot be reached right now; the same call may succeed later."""


class OutcomeUnknown(Unavailable):
    """A write timed out or its connection broke after it was sent: it may have happened,
    may happen later (a logged batch replayed from Cassandra's batch log), or never.
    Never undo or acknowledge on this: settle it (retry an idempotent write, read back)
    or leave what depends on it in place."""


class CorruptRecord(StorageError):
    """A stored record does not decode."""


class CorruptNeedle(CorruptRecord):
    """A needle's header or payload fails its checksum or length, in a volume being
    scanned or in the bytes about to be packed into one."""


class ClusterError(InstastoreError):
    """The local cluster tool (``instastore cluster``) failed; the message is one line,
    ``detail`` may carry the tail of a node's log."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail
