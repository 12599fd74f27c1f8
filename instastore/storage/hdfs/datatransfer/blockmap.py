"""The block map of a file: its blocks, their ids and generation stamps, and where
their replicas are (the NameNode's ``GET_BLOCK_LOCATIONS``), and for an erasure-coded
file how it is striped (from ``GETFILESTATUS``); and the block reads that make up a
range of the file.

An erasure-coded block group is striped: cell ``c`` of the group (``cell_size`` bytes)
is in internal block ``c % data_units``, whose id is the group's plus that index, at
``(c // data_units) * cell_size``. The NameNode lists a group's DataNodes in index order
while the group is whole; which one holds which index is confirmed by asking (a
DataNode without it answers "replica not found") and remembered. A group missing a data
block is not decoded here: that read fails over to WebHDFS, whose DataNode reconstructs
it from parity.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]


class BlockReadError(Exception):
    """One replica could not serve a read (gone, refused, replica not found, a bad
    checksum, a broken stream): the caller tries another, or WebHDFS."""


@dataclass(frozen=True)
class Striping:
    cell_size: int
    data_units: int


@dataclass(frozen=True)
class Block:
    """One block of a file (a block group, when striped): where it starts in the file,
    its length there, and the transfer addresses (``ip:port``) of its DataNodes."""

    pool: str
    block_id: int
    generation: int
    start: int
    length: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Read:
    """One contiguous read of ``length`` bytes at ``offset`` in one (internal) block,
    with the DataNodes to try, in order."""

    pool: str
    block_id: int
    generation: int
    offset: int
    length: int
    addresses: tuple[str, ...]


@dataclass
class BlockMap:
    length: int
    blocks: tuple[Block, ...]
    striping: Striping | None = None
    # internal block id -> the address that served it (striped groups: confirmed indexes)
    holders: dict[int, str] = field(default_factory=dict)
    # when the NameNode gave this map (time.monotonic()), and the (internal) blocks that no
    # DataNode in it served since: reads of those go to WebHDFS until the map is asked again
    fetched: float = field(default_factory=time.monotonic, compare=False)
    unserved: set[int] = field(default_factory=set, compare=False)

    def age(self) -> float:
        return time.monotonic() - self.fetched

    @classmethod
    def from_json(cls, located: Json, status: Json) -> BlockMap:
        """From the NameNode's ``GET_BLOCK_LOCATIONS`` (its ``LocatedBlocks``) and the
        file's ``GETFILESTATUS`` (its erasure-coding policy, if any)."""
        blocks = tuple(
            Block(
                pool=str(b["block"]["blockPoolId"]),
                block_id=int(b["block"]["blockId"]),
                generation=int(b["block"]["generationStamp"]),
                start=int(b["startOffset"]),
                length=int(b["block"]["numBytes"]),
                addresses=tuple(f"{d['ipAddr']}:{d['xferPort']}" for d in b["locations"]),
            )
            for b in located["locatedBlocks"]
        )
        policy = status.get("ecPolicyObj") or {}
        striping = None
        if status.get("ecBit") or any(b.block_id < 0 for b in blocks):
            if not (policy.get("cellSize") and policy.get("numDataUnits")):
                # A block group read as a plain block would serve another cell's bytes.
                raise BlockReadError("an erasure-coded file without its cell layout")
            striping = Striping(int(policy["cellSize"]), int(policy["numDataUnits"]))
        length = int(located["fileLength"])
        covered = 0
        for block in blocks:
            if block.start != covered:
                raise BlockReadError(f"a block map with a gap at byte {covered}")
            covered += block.length
        if covered != length:
            raise BlockReadError(f"a block map of {covered} bytes for a file of {length}")
        return cls(length, blocks, striping)

    def reads(self, offset: int, length: int) -> Iterator[Read]:
        """The block reads that make up ``length`` bytes from ``offset`` of the file."""
        end = offset + length
        for block in self.blocks:
            lo, hi = max(offset, block.start), min(end, block.start + block.length)
            if lo >= hi:
                continue
            if self.striping is None:
                yield Read(
                    block.pool,
                    block.block_id,
                    block.generation,
                    lo - block.start,
                    hi - lo,
                    self._ordered(block.block_id, block.addresses),
                )
            else:
                yield from self._striped(block, lo - block.start, hi - block.start)

    def _striped(self, group: Block, lo: int, hi: int) -> Iterator[Read]:
        assert self.striping is not None
        cell, units = self.striping.cell_size, self.striping.data_units
        while lo < hi:
            index, stripe = (lo // cell) % units, lo // (cell * units)
            n = min(hi - lo, cell - lo % cell)
            guess = group.addresses[index : index + 1]  # index order while the group is whole
            internal = group.block_id + index
            yield Read(
                group.pool,
                internal,
                group.generation,
                stripe * cell + lo % cell,
                n,
                self._ordered(internal, guess + group.addresses),
            )
            lo += n

    def _ordered(self, block_id: int, addresses: tuple[str, ...]) -> tuple[str, ...]:
        known = self.holders.get(block_id)
        first = (known,) if known is not None else ()
        return tuple(dict.fromkeys(first + addresses))  # no address twice, order kept
