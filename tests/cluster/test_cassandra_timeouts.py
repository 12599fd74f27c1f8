"""How long a Cassandra request may take, and which ones the driver may send twice
(instastore/storage/cassandra/session.py), on the real local cluster.

A request of the service is bounded by ``cassandra_request_timeout``; migrations and
batch jobs' scans are not. Only statements that may run twice are marked idempotent:
the driver sends those to another coordinator when the first is slow (speculative
execution) or its connection breaks. What this buys when a node dies under load is
measured on the 3 + 3 cluster in tests/faults/test_cluster_faults.py.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import pytest
from cassandra.cluster import EXEC_PROFILE_DEFAULT
from cassandra.connection import ConnectionShutdown
from cassandra.policies import ConstantSpeculativeExecutionPolicy, RetryPolicy
from cassandra.query import SimpleStatement

from instastore.errors import Unavailable
from instastore.storage.cassandra.metadata import CassandraMetadataStore
from instastore.storage.cassandra.migrate import migrate
from instastore.storage.cassandra.session import BATCH, WRITES, FailFastRetryPolicy, build_cluster

from ..factories import make_photo, new_id

pytestmark = pytest.mark.cassandra

# Run twice, these may do their work twice (counters) or answer "not applied" to their
# own first run (lightweight transactions): never sent twice by the driver.
NOT_IDEMPOTENT = {
    "insert_user",
    "claim_name",
    "insert_photo",
    "add_photos",
    "add_followers",
    "add_following",
    "add_request",
    "remove_request",
    "like",
    "unlike",
    "add_likes",
    "claim_key",
    "take_over_key",
    "renew_key",
    "renew_key_intent",
    "release_key",
    "server_key",
    "take_lease",
    "renew_lease",
    "release_lease",
    "switch_locators",
    "add_comment",
    "delete_comment",
    "add_comments",
    "queue_transcode",
    "claim_transcode",
    "renew_transcode",
    "claim_event",
}


async def test_only_statements_that_may_run_twice_are_marked_idempotent(cluster_settings):
    store = await CassandraMetadataStore.connect(cluster_settings)
    try:
        marked = {store.names[text]: st.is_idempotent for text, st in store.q.items()}
    finally:
        await store.close()
    assert {name for name, idempotent in marked.items() if not idempotent} == NOT_IDEMPOTENT
    assert marked["get_photo"] and marked["insert_user_photo"] and marked["delete_like_count"]


async def test_a_request_is_bounded_by_the_timeout_and_a_batch_job_is_not(cluster_settings):
    """With a request timeout shorter than any answer, a request fails at once with
    Unavailable; the batch jobs' scans and a migration still run to the end."""
    photo = make_photo(new_id())
    store = await CassandraMetadataStore.connect(cluster_settings)
    try:
        await store.save_photo(photo, [])
        await store.set_deleted(photo, datetime.now(UTC))
    finally:
        await store.close()
    tight = dataclasses.replace(
        cluster_settings, cassandra_request_timeout=0.0002, cassandra_speculative_delay=0.0001
    )
    store = await CassandraMetadataStore.connect(tight)
    try:
        started = time.monotonic()
        with pytest.raises(Unavailable, match="Client request timeout"):
            await store.get_photo(photo.id)
        assert time.monotonic() - started < 1.0
        assert photo.id in [p.id async for p in store.scan_photos()]
        due = await store.due_purges(datetime.now(UTC).date(), 1000)
        assert photo.id in [entry.photo_id for entry in due]
        assert photo.id in [i async for i in store.pack_queue()]
    finally:
        await store.close()
    driver = build_cluster(tight)
    try:
        assert migrate(driver.connect(), tight, progress=lambda line: None) == []
    finally:
        driver.shutdown()


def test_the_profiles_bound_requests_and_speculate_only_in_the_default_one(cluster_settings):
    driver = build_cluster(cluster_settings)
    default = driver.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
    batch = driver.profile_manager.profiles[BATCH]
    assert default.request_timeout == cluster_settings.cassandra_request_timeout == 5.0
    assert driver.profile_manager.profiles[WRITES].request_timeout == 12.0
    assert isinstance(default.speculative_execution_policy, ConstantSpeculativeExecutionPolicy)
    assert default.speculative_execution_policy.delay == 0.25
    assert batch.request_timeout == 60.0
    assert not isinstance(batch.speculative_execution_policy, ConstantSpeculativeExecutionPolicy)


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_broken_connection_sends_only_an_idempotent_statement_elsewhere(idempotent):
    policy = FailFastRetryPolicy()
    statement = SimpleStatement("UPDATE t SET v = 1 WHERE k = 1", is_idempotent=idempotent)
    decision, _ = policy.on_request_error(statement, None, ConnectionShutdown("gone"), 0)
    assert decision == (RetryPolicy.RETRY_NEXT_HOST if idempotent else RetryPolicy.RETHROW)
    timed_out, _ = policy.on_write_timeout(statement, None, "SIMPLE", 2, 1, 0)
    assert timed_out == (RetryPolicy.RETRY_NEXT_HOST if idempotent else RetryPolicy.RETHROW)
    again, _ = policy.on_read_timeout(statement, None, 2, 1, False, 1)
    assert again == RetryPolicy.RETHROW  # once, not in a loop


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_server_error_sends_only_an_idempotent_statement_elsewhere(idempotent):
    """A server error may follow a statement that ran in part (a counter update counted
    once already): only an idempotent statement is sent again. An overloaded or
    bootstrapping coordinator ran nothing: anything may go to the next one."""
    from cassandra.protocol import OverloadedErrorMessage, ServerError

    policy = FailFastRetryPolicy()
    statement = SimpleStatement("UPDATE c SET n = n + 1 WHERE k = 1", is_idempotent=idempotent)
    failed, _ = policy.on_request_error(statement, None, ServerError(0, "boom", {}), 0)
    assert failed == (RetryPolicy.RETRY_NEXT_HOST if idempotent else RetryPolicy.RETHROW)
    refused = OverloadedErrorMessage(0x1001, "overloaded", {})
    assert policy.on_request_error(statement, None, refused, 0)[0] == RetryPolicy.RETRY_NEXT_HOST
