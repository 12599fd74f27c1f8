"""Settings: declared once, read from the environment and flags, documented, secrets masked."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from instastore import config
from instastore.config import Settings
from instastore.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults_are_the_embedded_store():
    settings = Settings()
    assert not settings.uses_cluster
    assert settings.port == 8080


def test_environment_is_read_with_the_prefix_and_converted():
    settings = Settings.from_sources(
        {"INSTASTORE_PORT": "9999", "INSTASTORE_DATA_DIR": "/tmp/x", "PORT": "1"}
    )
    assert settings.port == 9999
    assert settings.data_dir == Path("/tmp/x")


def test_flags_win_over_the_environment():
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    args = parser.parse_args(
        ["--port", "7001", "--cassandra-hosts", "a,b ,", "--webhdfs-url", "http://nn:9870"]
    )
    settings = config.settings_from_args(args, environ={"INSTASTORE_PORT": "9999"})
    assert settings.port == 7001
    assert settings.uses_cluster
    assert settings.cassandra_contact_points == ["a", "b"]


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"INSTASTORE_PORT": "eighty"}, "INSTASTORE_PORT must be int"),
        ({"INSTASTORE_PORT": "70000"}, "port must be between"),
        ({"INSTASTORE_REPLICATION_FACTOR": "0"}, "at least 1"),
        ({"INSTASTORE_LOG_LEVEL": "LOUD"}, "log_level"),
        ({"INSTASTORE_CASSANDRA_HOSTS": "127.0.0.1"}, "go together"),
        ({"INSTASTORE_WORKER_ID": "9000"}, "worker_id must be auto or between"),
        ({"INSTASTORE_WORKER_ID": "seven"}, "worker_id must be auto or a number"),
        ({"INSTASTORE_DRAIN_SECONDS": "-1"}, "drain_seconds and shutdown_timeout must be 0"),
        ({"INSTASTORE_SHUTDOWN_TIMEOUT": "-0.5"}, "drain_seconds and shutdown_timeout must"),
        ({"INSTASTORE_SIGNUPS_PER_ADDRESS": "0"}, "signups_per_address must be at least 1"),
        ({"INSTASTORE_WORKERS": "0"}, "workers must be 1-64"),
        ({"INSTASTORE_WORKER_ID": "8191", "INSTASTORE_WORKERS": "2"}, "worker_id \\+ workers"),
        ({"INSTASTORE_MEDIA_CACHE_BYTES": "-1"}, "media_cache_bytes"),
        ({"INSTASTORE_MAX_PAGE_SIZE": "0"}, "max_page_size must be at least 1"),
        ({"INSTASTORE_RETENTION_DAYS": "-1"}, "retention_days"),
        ({"INSTASTORE_HEADER_TIMEOUT": "0"}, "header_timeout must be more than 0"),
        ({"INSTASTORE_BODY_TIMEOUT": "soon"}, "INSTASTORE_BODY_TIMEOUT must be float"),
        (
            {"INSTASTORE_MAX_CONNECTIONS_PER_ADDRESS": "0"},
            "max_connections_per_address must be at least 1",
        ),
        ({"INSTASTORE_PASSWORD_HASH_QUEUE": "-1"}, "password_hash_queue"),
        ({"INSTASTORE_DECODE_THREADS": "0"}, "decode_threads must be at least 1"),
        ({"INSTASTORE_DECODE_QUEUE": "-1"}, "decode_queue must be 0 or more"),
        ({"INSTASTORE_PASSWORD_HASH_TIME_COST": "0"}, "password_hash_time_cost must be at least 1"),
        (
            {"INSTASTORE_PASSWORD_HASH_MEMORY_KIB": "16"},
            "password_hash_memory_kib must be at least 32",
        ),
        ({"INSTASTORE_HDFS_BLOCK_READS": "maybe"}, "HDFS_BLOCK_READS must be true or false"),
        ({"INSTASTORE_HDFS_DATANODES": "dn1:9864,dn2"}, "hdfs_datanodes entries are host:port"),
        ({"INSTASTORE_HDFS_DATANODES": "dn1:99999"}, "hdfs_datanodes entries are host:port"),
        ({"INSTASTORE_CASSANDRA_SPECULATIVE_DELAY": "0"}, "speculative_delay must be more than 0"),
        (
            {"INSTASTORE_CASSANDRA_REQUEST_TIMEOUT": "0.2"},
            "less than cassandra_request_timeout \\(0.2\\), not 0.25",
        ),
        ({"INSTASTORE_CASSANDRA_REQUEST_TIMEOUT": "soon"}, "REQUEST_TIMEOUT must be float"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(environ, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_sources(environ)


def test_consistency_follows_the_replication_factor_unless_set():
    assert Settings().consistency == "LOCAL_ONE"
    assert Settings(replication_factor=3).consistency == "LOCAL_QUORUM"
    assert (
        Settings(replication_factor=3, cassandra_consistency="each_quorum").consistency
        == "EACH_QUORUM"
    )
    with pytest.raises(ConfigError, match="cassandra_consistency must be one of"):
        Settings(cassandra_consistency="most")


def test_secrets_are_masked_in_repr():
    settings = Settings(cassandra_password="hunter2")
    assert "hunter2" not in repr(settings)
    assert "cassandra_password='***'" in repr(settings)


def test_every_setting_is_documented_in_the_readme():
    readme = README.read_text()
    missing = [
        env for env, _help, _default in config.documented_settings() if f"`{env}`" not in readme
    ]
    assert not missing, f"settings missing from README.md: {missing}"


@pytest.mark.parametrize(
    "keyspace", ["Upper", "has-dash", "1starts_with_digit", "x; DROP KEYSPACE y"]
)
def test_a_keyspace_name_that_is_not_a_cql_identifier_is_refused(keyspace):
    from instastore.storage.cassandra.migrate import keyspace_cql

    with pytest.raises(ConfigError, match="lower-case CQL identifier"):
        keyspace_cql(Settings(cassandra_keyspace=keyspace))


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("ON", True), ("0", False), ("no", False)]
)
def test_a_yes_or_no_setting_reads_the_usual_words(raw, value):
    settings = Settings.from_sources(environ={"INSTASTORE_HDFS_BLOCK_READS": raw})
    assert settings.hdfs_block_reads is value


@pytest.mark.parametrize(
    ("raw", "base"),
    [
        ("", None),
        ("https://photos.example", "https://photos.example"),
        ("https://photos.example/", "https://photos.example"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
    ],
)
def test_public_url_is_an_origin(raw, base):
    assert Settings(public_url=raw).public_base == base


@pytest.mark.parametrize(
    "raw",
    [
        "photos.example",
        "ftp://photos.example",
        "https://photos.example/app",
        "https://photos.example/?a=1",
        "https://photos.example#top",
        "https://user@photos.example",
        'https://photos.example"><script>',
        "https://photos.example:port",
        "javascript:alert(1)",
    ],
)
def test_public_url_refuses_anything_but_an_origin(raw):
    with pytest.raises(ConfigError, match="public_url must be an http or https origin"):
        Settings(public_url=raw)
