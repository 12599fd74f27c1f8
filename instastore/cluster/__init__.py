"""A local Apache Cassandra + HDFS cluster for development, tests and benchmarks.

``instastore cluster up|status|down|nodetool|logs`` resolves the jars from Maven Central
once (cached outside the repository), writes each node's configuration from the templates
beside this module, starts the JVMs with bounded heaps, waits until they are really ready,
and records pids, ports and folders in a state file. It is tooling for this machine: the
service itself never imports it.
"""

from instastore.cluster.manager import ClusterSpec, LocalCluster, default_cluster_dir

__all__ = ["ClusterSpec", "LocalCluster", "default_cluster_dir"]
