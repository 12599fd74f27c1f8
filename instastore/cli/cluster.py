"""``instastore cluster ...``: the local Cassandra + HDFS cluster for development and
tests (``instastore.cluster``): start and stop it, look at it, run Cassandra's and
Hadoop's own tools against it, and add, remove, replace or repair its nodes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from instastore.cli import logs
from instastore.errors import ClusterError

if TYPE_CHECKING:  # imported where a command needs them, so `instastore --help` stays quick
    import subprocess

    from instastore.cluster import LocalCluster


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cluster = commands.add_parser(
        "cluster", help="a local Cassandra + HDFS cluster for development and tests"
    )
    cluster.add_argument(
        "--dir",
        type=Path,
        default=None,
        help=(
            "cluster folder (default: $INSTASTORE_CLUSTER_DIR or ~/.local/state/instastore/cluster)"
        ),
    )
    actions = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")

    up = actions.add_parser("up", help="start the cluster and wait until it is ready")
    up.add_argument("--cassandra-nodes", type=int, default=1, metavar="N")
    up.add_argument("--datanodes", type=int, default=1, metavar="M")
    up.add_argument(
        "--first-address",
        default="127.0.0.1",
        help="address of Cassandra node 1; node i takes the next ones",
    )
    up.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="added to every port, to run a second cluster beside the first",
    )
    up.add_argument(
        "--cassandra-heap", default="1g", help="heap of each Cassandra node (-Xms and -Xmx)"
    )
    up.add_argument("--hdfs-heap", default="256m", help="maximum heap of each HDFS daemon")
    up.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for readiness")
    up.set_defaults(run=_cluster_up)

    actions.add_parser("status", help="show each node, its pid, memory and endpoint").set_defaults(
        run=_cluster_status
    )
    actions.add_parser(
        "env", help="print the INSTASTORE_* settings that point the service at this cluster"
    ).set_defaults(run=_cluster_env)

    down = actions.add_parser(
        "down", help="stop every node (SIGTERM, then SIGKILL after a timeout)"
    )
    down.add_argument("--wipe", action="store_true", help="also delete the cluster's data and logs")
    down.set_defaults(run=_cluster_down)

    tool = actions.add_parser("nodetool", help="run Cassandra's nodetool against a node")
    tool.add_argument(
        "--node", default=None, help="Cassandra node name (default: the first running one)"
    )
    tool.add_argument("args", nargs=argparse.REMAINDER, help="nodetool arguments, e.g. status")
    tool.set_defaults(run=_cluster_nodetool)

    hdfs_tool = actions.add_parser(
        "hdfs", help="run Hadoop's own tools: dfs, dfsadmin, fsck or ec (e.g. hdfs dfs -ls /)"
    )
    hdfs_tool.add_argument("tool", choices=["dfs", "dfsadmin", "fsck", "ec"])
    hdfs_tool.add_argument("args", nargs=argparse.REMAINDER)
    hdfs_tool.set_defaults(run=_cluster_hdfs)

    logs = actions.add_parser("logs", help="print the tail of a node's log (or every node's)")
    logs.add_argument("node", nargs="?", help="node name, e.g. cassandra1, namenode, datanode2")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("--path", action="store_true", help="print the log files' paths only")
    logs.set_defaults(run=_cluster_logs)

    kill = actions.add_parser("kill", help="SIGKILL one node, as a crash would")
    kill.add_argument("node")
    kill.set_defaults(run=_cluster_kill)

    start = actions.add_parser("start", help="start one stopped node again and wait for readiness")
    start.add_argument("node")
    start.set_defaults(run=_cluster_start)

    add = actions.add_parser(
        "add",
        help="join one more node to the running cluster: a Cassandra node bootstraps (then "
        "cleanup runs on the others), a DataNode registers (then the balancer runs)",
    )
    add.add_argument("kind", choices=["cassandra", "datanode"])
    add.set_defaults(run=_cluster_add)
    remove = actions.add_parser(
        "remove",
        help="take a node out with its data moved first (nodetool decommission; DataNode "
        "decommissioning); refused below the replication factor",
    )
    remove.add_argument("node")
    remove.set_defaults(run=_cluster_remove)
    replace = actions.add_parser(
        "replace", help="replace a dead Cassandra node by a new one that takes its ranges"
    )
    replace.add_argument("node")
    replace.set_defaults(run=_cluster_replace)
    actions.add_parser(
        "repair", help="nodetool repair -pr -full on every Cassandra node, one after the other"
    ).set_defaults(run=_cluster_repair)


def local_cluster(args: argparse.Namespace) -> LocalCluster:
    from instastore.cluster import LocalCluster, default_cluster_dir

    return LocalCluster(args.dir or default_cluster_dir())


def _cluster_up(args: argparse.Namespace) -> None:
    from instastore.cluster import ClusterSpec

    logs.configure("WARNING")
    cluster = local_cluster(args)
    spec = ClusterSpec(
        cassandra_nodes=args.cassandra_nodes,
        datanodes=args.datanodes,
        first_address=args.first_address,
        port_offset=args.port_offset,
        cassandra_heap=args.cassandra_heap,
        hdfs_heap=args.hdfs_heap,
    )
    print(
        f"starting {spec.cassandra_nodes} Cassandra node(s) and {spec.datanodes} DataNode(s) in "
        f"{cluster.root} ...",
        flush=True,
    )
    started = cluster.up(spec, timeout=args.timeout)
    print("ready" if started else "already running", flush=True)
    _print_status(cluster)


def _print_status(cluster: LocalCluster) -> None:
    rows = cluster.status()
    if not rows:
        print(f"no cluster in {cluster.root}")
        return
    for r in rows:
        rss = f"{r['rss_mb']} MB" if r["rss_mb"] is not None else "-"
        print(
            f"{r['name']:<11} {r['state']:<8} pid {r['pid'] or '-'!s:<8} rss {rss:<8} "
            f"{r['endpoint']}"
        )


def _cluster_status(args: argparse.Namespace) -> int:
    cluster = local_cluster(args)
    _print_status(cluster)
    return 0 if cluster.daemons() and len(cluster.running()) == len(cluster.daemons()) else 3


def _cluster_env(args: argparse.Namespace) -> None:
    cluster = local_cluster(args)
    if not cluster.daemons():
        raise ClusterError(f"no cluster in {cluster.root}; run `instastore cluster up`")
    for key, value in cluster.client_settings().items():
        print(f"export {key}={value}")


def _cluster_down(args: argparse.Namespace) -> None:
    cluster = local_cluster(args)
    killed = cluster.down(wipe=args.wipe)
    note = f" ({len(killed)} needed SIGKILL)" if killed else ""
    print(f"stopped{note}" + (f"; removed {cluster.root}" if args.wipe else ""))


def _passthrough(done: subprocess.CompletedProcess[Any]) -> int:
    """Hand a Java tool's output (text or bytes) and exit code on as they are."""
    for stream, output in ((sys.stdout, done.stdout), (sys.stderr, done.stderr)):
        if isinstance(output, bytes):
            stream.flush()
            stream.buffer.write(output)
            stream.buffer.flush()
        else:
            stream.write(output)
    return done.returncode


def _progress(line: str) -> None:
    print(line, flush=True)


def _cluster_add(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    logs.configure("WARNING")
    cluster = local_cluster(args)
    add = operations.add_cassandra if args.kind == "cassandra" else operations.add_datanode
    node = add(cluster, progress=_progress)
    print(f"{node.name} joined")
    _print_status(cluster)


def _cluster_remove(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    logs.configure("WARNING")
    cluster = local_cluster(args)
    operations.remove(cluster, args.node, progress=_progress)
    print(f"{args.node} removed")
    _print_status(cluster)


def _cluster_replace(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    logs.configure("WARNING")
    cluster = local_cluster(args)
    node = operations.replace(cluster, args.node, progress=_progress)
    print(f"{args.node} replaced by {node.name}")
    _print_status(cluster)


def _cluster_repair(args: argparse.Namespace) -> None:
    from instastore.cluster import operations

    logs.configure("WARNING")
    operations.repair(local_cluster(args), progress=_progress)
    print("repaired")


def _cluster_nodetool(args: argparse.Namespace) -> int:
    return _passthrough(local_cluster(args).nodetool(args.args, node=args.node))


def _cluster_hdfs(args: argparse.Namespace) -> int:
    return _passthrough(
        local_cluster(args).hdfs_tool(args.tool, args.args, binary=True)
    )  # -cat of a JPEG


def _cluster_logs(args: argparse.Namespace) -> None:
    from instastore.cluster.processes import tail

    cluster = local_cluster(args)
    daemons = [cluster.node(args.node)] if args.node else cluster.daemons()
    for daemon in daemons:
        for path in daemon.logs:
            if args.path:
                print(path)
            else:
                print(f"==> {daemon.name}: {path} <==")
                print(tail(path, args.lines))


def _cluster_kill(args: argparse.Namespace) -> None:
    local_cluster(args).kill_node(args.node)
    print(f"killed {args.node}")


def _cluster_start(args: argparse.Namespace) -> None:
    local_cluster(args).start_node(args.node)
    print(f"started {args.node}; cluster ready")
