"""Connections to DataNodes' data-transfer ports, kept between block reads."""

from __future__ import annotations

import asyncio
import time

CONNECT_TIMEOUT_S = 5.0
IDLE_S = 3.0  # a connection kept longer is not used again (the DataNode waits 4 s)
IDLE_PER_DATANODE = 16  # connections kept per DataNode, at most

Kept = tuple[float, asyncio.StreamReader, asyncio.StreamWriter]  # since when, the connection


class Connections:
    """Connections to DataNodes' transfer ports kept between reads, as Hadoop's client
    keeps them (its ``PeerCache``): after a read of a whole range and the client's
    CHECKSUM_OK, the DataNode waits ``dfs.datanode.socket.reuse.keepalive`` (4 s) for the
    next op on the same connection, so the next read skips the TCP handshake and the
    DataNode's new thread. A connection idle for ``idle_s`` is not used again (Hadoop's
    ``dfs.client.socketcache.expiryMsec`` is 3 s, under the DataNode's 4), nor one seen
    closed or reset at the other end; one the DataNode closed unseen costs one failed
    write and a new connection, never the read. At most every ``idle_s``, a keep or take
    closes the connections past their time to every DataNode, so none stays open
    half-closed for long, and a read does not walk them all."""

    def __init__(self, idle_s: float = IDLE_S, per_datanode: int = IDLE_PER_DATANODE) -> None:
        self.idle_s = idle_s
        self.per_datanode = per_datanode
        self._idle: dict[str, list[Kept]] = {}
        self._swept = time.monotonic()
        self.closed = False
        self.opened = 0  # connections made and kept ones used (metrics for tests and benches)
        self.reused = 0

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._idle.values())

    async def open(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, _, port = address.rpartition(":")
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT_S
        )
        self.opened += 1
        return reader, writer

    def take(self, address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The most recently kept connection to ``address`` that is still young and not
        closed at the other end (as far as this side has seen), if any."""
        young_from = self._sweep()
        kept = self._idle.get(address, [])
        while kept:
            since, reader, writer = kept.pop()
            if since >= young_from and usable(reader, writer):
                self.reused += 1
                return reader, writer
            writer.close()
        self._idle.pop(address, None)
        return None

    def give(
        self, address: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Keep the connection of a read that went to the end (a pool that keeps none, or
        is closed, closes it)."""
        if self.closed or not usable(reader, writer):
            writer.close()
            return
        self._sweep()
        kept = self._idle.setdefault(address, [])
        kept.append((time.monotonic(), reader, writer))
        while len(kept) > self.per_datanode:
            kept.pop(0)[2].close()
        if not kept:
            del self._idle[address]

    def _sweep(self) -> float:
        """Close the kept connections past their time or seen closed, to every DataNode,
        if the last sweep is ``idle_s`` old; the time from which a connection is young."""
        now = time.monotonic()
        young_from = now - self.idle_s
        if now - self._swept < self.idle_s:
            return young_from
        self._swept = now
        for address, kept in list(self._idle.items()):
            keep = []
            for item in kept:
                since, reader, writer = item
                if since >= young_from and usable(reader, writer):
                    keep.append(item)
                else:
                    writer.close()
            if keep:
                self._idle[address] = keep
            else:
                del self._idle[address]
        return young_from

    def close(self) -> None:
        self.closed = True
        for kept in self._idle.values():
            for _, _, writer in kept:
                writer.close()
        self._idle.clear()


def usable(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Not seen closed or reset at the other end, nor closing here."""
    return not (reader.at_eof() or reader.exception() is not None or writer.is_closing())
