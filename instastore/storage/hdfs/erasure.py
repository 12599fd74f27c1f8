"""Erasure coding of the sealed-volume folder (the warm tier, as Facebook's f4 does).

Owns the choice of policy from the number of DataNodes and the ``hdfs_ec_policy``
setting. Sealed volumes are written whole (one CREATE, closed) into
``<hdfs_root>/<hdfs_volume_dir>``; files there inherit the folder's policy. A policy with
d data and p parity units spreads each block group over d + p DataNodes, so it needs that
many; below 3 DataNodes the folder keeps plain replication. Raw bytes per stored byte:
1.5 for XOR-2-1 and RS-6-3, 1.67 for RS-3-2, against 3 at replication 3.

This module never changes a folder that already has a policy: files keep the policy
they were written with, and an operator's explicit ``hdfs ec -setPolicy`` wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUTO = "auto"  # choose from the number of live DataNodes
REPLICATION = "replication"  # no erasure coding: blocks replicated hdfs_replication times

# (fewest DataNodes, policy), most DataNodes first: the widest policy that fits.
POLICIES_BY_DATANODES = ((9, "RS-6-3-1024k"), (5, "RS-3-2-1024k"), (3, "XOR-2-1-1024k"))


def policy_for(datanodes: int) -> str | None:
    """The erasure-coding policy for a cluster of ``datanodes``, or None (replication)."""
    for fewest, policy in POLICIES_BY_DATANODES:
        if datanodes >= fewest:
            return policy
    return None


def width(policy: str) -> int:
    """DataNodes one block group of ``policy`` spreads over (data + parity units):
    RS-6-3-1024k -> 9; 0 for a name of another shape."""
    parts = policy.split("-")
    if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]) + int(parts[2])
    return 0


def wanted_policy(setting: str, datanodes: int) -> str | None:
    """What the setting asks for on a cluster with ``datanodes`` live: a policy name, or
    None for plain replication."""
    if setting == AUTO:
        return policy_for(datanodes)
    if setting == REPLICATION:
        return None
    return setting


@dataclass(frozen=True)
class VolumeFolder:
    """What the sealed-volume folder has, against what the settings want."""

    path: str
    policy: str | None  # None: replication
    wanted: str | None
    live_datanodes: int

    @property
    def as_wanted(self) -> bool:
        return self.policy == self.wanted

    def describe(self) -> str:
        return self.policy or REPLICATION

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "policy": self.describe(),
            "wanted": self.wanted or REPLICATION,
            "live_datanodes": self.live_datanodes,
        }
