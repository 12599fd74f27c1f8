"""Guards at the protocol level: the bounds aiohttp's server does not set by itself.

- ``header_timeout``: a new connection must send its first request's headers in time,
  or it gets 408 (if it sent anything) and is closed. Later requests on a kept-alive
  connection are bounded by ``idle_timeout`` (aiohttp's keep-alive timer closes a
  connection whose next request has not fully arrived by then).
- ``body_timeout``: while a handler runs, a request body that gets no byte for this long
  (while the server is ready to read) fails the handler's read with ``RequestTimeout``
  (408, then close); a response the client takes nothing of for this long is aborted.
- ``max_connections`` (lowered to fit ``RLIMIT_NOFILE``) and
  ``max_connections_per_address``: a connection past either is answered 503 at once,
  without reading a request, and closed after a short linger (what the client sends
  meanwhile is read and dropped, so it sees the answer rather than a reset).
- Every answer aiohttp gives by itself (a malformed request line or header, headers too
  long, an exception outside the middlewares, an ``Expect`` it does not know) is a
  problem document, like every other error.

aiohttp (3.14) has no supported hook for any of this: ``GuardedRunner`` (an
``AppRunner``) builds a ``GuardedServer`` (a ``web.Server``) whose protocol is
``GuardedHandler``, a small subclass of aiohttp's ``RequestHandler`` overriding
connection_made/lost, data_received, pause/resume_writing, resume_reading,
handle_error and finish_response. It reads a few of the base class's attributes (``_loop``,
``_request_count``, ``_reading_paused``, ``_force_close``, ``_manager``);
tests/api/test_hostile_clients.py pins each behaviour, so an aiohttp upgrade that moves them
fails there. This module never touches storage.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import resource
from collections import Counter
from dataclasses import dataclass
from typing import cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from instastore.server.problems import from_http_exception, problem, problem_bytes

from instastore.config import Settings
from instastore.errors import RequestTimeout

log = logging.getLogger(__name__)

FD_RESERVE = 64  # descriptors kept for storage connections, logs and listening sockets
FDS_PER_CONNECTION = 2  # the socket, and a file or store connection its request may open
SHED_LINGER_S = 1.0  # a refused connection is read (and dropped) this long, then closed
MAX_LINGERING = 256  # refused connections lingering at once; past it, refused with a reset
SHED_RETRY_AFTER_S = 1
MAX_DETAIL_CHARS = 200  # of aiohttp's description of a malformed request


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_connections_per_address: int
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # proxies in front

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.header_timeout,
            settings.body_timeout,
            fit_descriptor_limit(settings.max_connections),
            settings.max_connections_per_address,
            settings.trusted_networks,
        )


def is_trusted(
    address: str, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    """Is ``address`` one of the proxies named in ``trusted_proxies``?"""
    if not trusted:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def fit_descriptor_limit(wanted: int) -> int:
    """``wanted`` connections, or fewer when RLIMIT_NOFILE would run out first: past it
    accept() fails and the listening socket stalls for everyone."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    fits = max(1, (soft - FD_RESERVE) // FDS_PER_CONNECTION)
    if fits < wanted:
        log.warning(
            "max_connections lowered from %d to %d to fit RLIMIT_NOFILE=%d", wanted, fits, soft
        )
    return min(wanted, fits)


SHUTDOWN_GRACE_S = 0.05  # seconds a request still running at the shutdown deadline gets


class GuardedRunner(web.AppRunner):
    """An AppRunner whose server is a ``GuardedServer``."""

    __slots__ = ("_limits",)

    def __init__(self, app: web.Application, limits: Limits, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> GuardedServer:
        plain = await super()._make_server()  # starts the application, as AppRunner does
        kwargs = {**self._kwargs, "handler_cancellation": plain.handler_cancellation}
        return GuardedServer(
            self._limits, plain.request_handler, request_factory=plain.request_factory, **kwargs
        )


class GuardedServer(web.Server):
    """Counts connections per address and in total; makes ``GuardedHandler``s."""

    def __init__(self, limits: Limits, handler, *, request_factory, **kwargs) -> None:
        def watched_request(message, payload, protocol, writer, task):
            protocol.watch(payload)  # a handler starts: its body and response may stall
            return request_factory(message, payload, protocol, writer, task)

        super().__init__(handler, request_factory=watched_request, **kwargs)
        self.limits = limits
        self.lingering = 0
        self._open = 0
        self._by_address: Counter[str] = Counter()

    def __call__(self) -> GuardedHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)

    def admit(self, address: str) -> str | None:
        """Count a new connection in, or say why it is refused."""
        # SECURITY: one client cannot take every connection (and descriptor) for itself;
        # a trusted proxy carries many clients' connections, and only the total caps it.
        if self._by_address[address] >= self.limits.max_connections_per_address and not is_trusted(
            address, self.limits.trusted
        ):
            return (
                f"too many connections from {address}: "
                f"at most {self.limits.max_connections_per_address}"
            )
        if self._open >= self.limits.max_connections:
            return "the server is at its connection limit"
        self._open += 1
        self._by_address[address] += 1
        return None

    def release(self, address: str) -> None:
        self._open -= 1
        self._by_address[address] -= 1
        if not self._by_address[address]:
            del self._by_address[address]


class GuardedHandler(RequestHandler):
    """aiohttp's HTTP/1 protocol with the timeouts, the connection caps and problem
    documents for the errors it answers by itself."""

    __slots__ = (
        "_address",
        "_admitted",
        "_body",
        "_got_bytes",
        "_guard",
        "_last_read",
        "_stalled",
        "_timer",
        "_write_paused_at",
    )

    def __init__(self, manager: GuardedServer, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager  # aiohttp drops its _manager on close; the count needs it
        self._address = ""
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._body = None  # the request body the running handler may read
        self._got_bytes = False
        self._last_read = 0.0
        self._write_paused_at: float | None = None
        self._stalled = False

    # -- connections ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._address = peer[0] if isinstance(peer, tuple) else ""
        refusal = self._guard.admit(self._address)
        if refusal is not None:
            # a stream server's transports are asyncio.Transport (write, abort, write_eof)
            self._refuse(cast(asyncio.Transport, transport), refusal)
            return
        self._admitted = True
        super().connection_made(transport)
        self._timer = self._loop.call_later(self._guard.limits.header_timeout, self._head_timed_out)

    # -- shutting down: a request in flight finishes, its body still arriving ---------

    def close(self) -> None:
        """aiohttp's close() drops every byte that arrives after it, the rest of an
        upload's body too: a connection with a request in flight stays open until its
        answer, which closes it (the draining hook in server/app.py)."""
        if self._request_in_progress:
            return
        super().close()

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 (aiohttp's)
        """aiohttp's shutdown stops reading at once: first let a request in flight,
        whose body may still be arriving, finish within ``timeout``."""
        deadline = self._loop.time() + (timeout or 0.0)
        while self._request_in_progress and self._loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        # aiohttp reads a timeout of 0 as none at all: past the deadline, a moment more,
        # then what still runs is cancelled.
        await super().shutdown(max(SHUTDOWN_GRACE_S, deadline - self._loop.time()))

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._admitted:
            self._admitted = False
            self._guard.release(self._address)
        super().connection_lost(exc)

    def _refuse(self, transport: asyncio.Transport, why: str) -> None:
        self._manager = None  # no request will run: aiohttp's connection_lost has nothing to undo
        self._force_close = True  # data_received drops whatever arrives
        if self._guard.lingering >= MAX_LINGERING:
            transport.abort()
            return
        log.info("refused a connection: %s", why)
        self._guard.lingering += 1
        transport.write(
            problem_bytes(503, "overloaded", why, {"Retry-After": str(SHED_RETRY_AFTER_S)})
        )
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(SHED_LINGER_S, self._end_refusal, transport)

    def _end_refusal(self, transport: asyncio.BaseTransport) -> None:
        self._guard.lingering -= 1
        transport.close()

    # -- reading ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._last_read = self._loop.time()
        super().data_received(data)

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._request_count or self.transport is None:
            return  # the first request arrived; later ones are the keep-alive timer's
        if self._got_bytes:
            detail = (
                f"the request headers did not arrive within {self._guard.limits.header_timeout:g} s"
            )
            self.transport.write(problem_bytes(408, "request-timeout", detail))
        self.force_close()

    # -- a running handler: its body and its response must keep moving ------------------

    def watch(self, payload) -> None:
        self._body = payload
        self._last_read = self._loop.time()
        self._arm(self._guard.limits.body_timeout)

    def pause_writing(self) -> None:
        super().pause_writing()
        self._write_paused_at = self._loop.time()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._write_paused_at = None

    def resume_reading(self, resume_parser: bool = True) -> None:
        super().resume_reading(resume_parser)
        self._last_read = (
            self._loop.time()
        )  # while the server did not read, no time ran against the client

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(max(delay, 0.01), self._check_stall)

    def _check_stall(self) -> None:
        self._timer = None
        if self.transport is None or self._body is None:
            return
        now, limit = self._loop.time(), self._guard.limits.body_timeout
        if self._write_paused_at is not None and now - self._write_paused_at >= limit:
            log.info(
                "aborted a response to %s: the client took nothing for %g s", self._address, limit
            )
            self.transport.abort()  # close() would wait for the buffer the client does not take
            return
        deadlines = [now + limit]
        if not self._reading_paused and not self._body.is_eof():
            if now - self._last_read >= limit:
                self._stalled = True
                self._body.set_exception(
                    RequestTimeout(f"the request body stalled: no byte for {limit:g} s")
                )
                return
            deadlines.append(self._last_read + limit)
        if self._write_paused_at is not None:
            deadlines.append(self._write_paused_at + limit)
        self._arm(min(deadlines) - now)

    async def finish_response(self, request, resp, start_time):
        if isinstance(resp, web.HTTPException) and resp.status >= 400:
            resp = from_http_exception(resp)  # raised outside the middlewares (an unknown Expect)
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            self._body = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._stalled:
                self.force_close()  # the 408 is written; the rest of the body is not coming

    # -- errors aiohttp answers by itself -------------------------------------------------

    def handle_error(
        self,
        request,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("the response is under way; no error answer can follow")
        if status >= 500:
            self.log_exception("error handling a request from %s", request.remote, exc_info=exc)
            response = problem(status, "internal", "internal error")
        else:
            said = re.sub(r"\s+", " ", str(message or exc or "")).strip()[:MAX_DETAIL_CHARS]
            log.info("malformed request from %s: %s", request.remote, said)
            response = problem(status, "malformed-request", f"malformed HTTP request: {said}")
        response.force_close()
        return response
