"""Reads straight from a DataNode's data-transfer port: HDFS's own DataTransferProtocol
(``OP_READ_BLOCK``), the protocol Hadoop's Java client reads blocks with, for files that
never change once closed (sealed volumes).

A WebHDFS read is two HTTP requests (the NameNode names a DataNode, then the DataNode's
HTTP server opens the file through a client of its own, which asks the NameNode again
where the blocks are). Here the block map of a file (its blocks, their ids and
generation stamps, and where their replicas are: ``GET_BLOCK_LOCATIONS``; for an
erasure-coded file also its cell size and data units, from ``GETFILESTATUS``) is asked
for once and kept, and a needle is one TCP request to a DataNode that holds its bytes:
no NameNode and no HTTP server on the way (Haystack's and f4's read: the location of a
volume is cached, a photo is one read from a storage machine).

- ``blockmap``: the block map of a file, striping, and the block reads of a range;
- ``reader``: one ``OP_READ_BLOCK`` from one DataNode, every chunk checked (the wire
  format is in its docstring);
- ``connections``: connections to DataNodes kept between reads;
- ``proto``: the few proto2 fields the reader needs, encoded and decoded by hand.
"""

from instastore.storage.hdfs.datatransfer.blockmap import (
    Block,
    BlockMap,
    BlockReadError,
    Read,
    Striping,
)
from instastore.storage.hdfs.datatransfer.connections import Connections
from instastore.storage.hdfs.datatransfer.reader import read_block, read_request

__all__ = [
    "Block",
    "BlockMap",
    "BlockReadError",
    "Connections",
    "Read",
    "Striping",
    "read_block",
    "read_request",
]
