"""The storage ports' shape: one port per aggregate under the names agreed for them, and
a core that takes the ports it uses, never the whole ``Stores``."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

import instastore
from instastore.storage import ports

# The modules that compose the core from the stores (entry points), the only ones that
# may hold a whole Stores. Outside the core: storage/ (the adapters) and cluster/ (tooling:
# cluster/backups.py holds a whole Stores for its restore checks).
COMPOSERS = {"cli", "__main__.py", "services.py"}
OUTSIDE_THE_CORE = {"storage", "cluster"}


def test_stores_holds_each_port_under_its_aggregate_name():
    hints = typing.get_type_hints(ports.Stores)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(ports.Stores)}
    assert fields == {
        "accounts": ports.AccountStore,
        "photos": ports.PhotoPorts,
        "graph": ports.FollowGraph,
        "search": ports.SearchIndex,
        "likes": ports.LikeStore,
        "inbox": ports.InboxStore,
        "comments": ports.CommentStore,
        "claims": ports.IdempotencyStore,
        "keys": ports.KeyStore,
        "leases": ports.LeaseStore,
        "transcodes": ports.TranscodeQueue,
        "activity": ports.ActivityStore,
        "blobs": ports.BlobStore,
        "metadata": ports.Backend,
        "blocks": ports.BlockStore,
        "moderation": ports.ModerationStore,
        "tags": ports.TagIndex,
    }


def test_no_method_is_in_two_metadata_ports():
    every = [
        ports.AccountStore,
        ports.PhotoStore,
        ports.PurgeQueue,
        ports.PhotoScan,
        ports.PackQueue,
        ports.LocatorSwitch,
        ports.VideoFinish,
        ports.ContentIndex,
        ports.FollowGraph,
        ports.SearchIndex,
        ports.LikeStore,
        ports.InboxStore,
        ports.CommentStore,
        ports.IdempotencyStore,
        ports.KeyStore,
        ports.LeaseStore,
        ports.TranscodeQueue,
        ports.ActivityStore,
        ports.Backend,
        ports.BlockStore,
        ports.ModerationStore,
    ]
    methods = [name for port in every for name in vars(port) if not name.startswith("_")]
    assert len(methods) == len(set(methods))


def test_core_modules_take_ports_not_the_whole_stores():
    core = Path(instastore.__file__).parent
    for path in sorted(core.rglob("*.py")):
        top = path.relative_to(core).parts[0]
        if top in COMPOSERS or top in OUTSIDE_THE_CORE:
            continue
        names = {
            alias.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module == "instastore.storage.ports"
            for alias in node.names
        }
        assert not names & {"Stores", "MetadataStore"}, path


def test_photo_ports_are_every_metadata_photo_port_and_nothing_else():
    parts = (
        ports.PhotoStore,
        ports.PurgeQueue,
        ports.PhotoScan,
        ports.PackQueue,
        ports.LocatorSwitch,
        ports.VideoFinish,
        ports.ContentIndex,
    )
    assert ports.PhotoPorts.__bases__[: len(parts)] == parts
    assert set(parts) < set(ports.MetadataStore.__mro__)
    assert not [name for name in vars(ports.PhotoPorts) if not name.startswith("_")]
