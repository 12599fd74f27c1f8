"""/metrics: every family, parsed with prometheus-client's own parser,
moving as requests are made, on both adapters; the public port serves it for the metrics
token only (upload outcomes are no stranger's business); the listener of its own that
keeps it off the public port; the sums over the workers of ``serve --workers 2``; a
job's textfile."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import sys

import aiohttp
import pytest
from instastore.server.app import create_app, metrics_app
from prometheus_client.parser import text_string_to_metric_families

from ..factories import Api, problem, sign_up
from ..samples import image
from ..serving import free_port, serve

FAMILIES = {
    "instastore_http_requests",
    "instastore_http_request_duration_seconds",
    "instastore_http_requests_in_flight",
    "instastore_store_operations",
    "instastore_store_operation_duration_seconds",
    "instastore_cache_lookups",
    "instastore_uploads",
    "instastore_upload_bytes",
    "instastore_upload_processing_seconds",
    "instastore_media_bytes_served",
    "instastore_job_runs",
    "instastore_job_items",
    "instastore_jobs_running",
    "instastore_job_last_success_timestamp_seconds",
    "instastore_event_loop_lag_seconds",
    "instastore_event_loop_lag_check_seconds",
}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """(sample name, labels) -> value, from the text format, by prometheus-client's parser."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(values: dict, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in values.items() if n == name and want <= ls)


async def scrape(http) -> tuple[dict, set[str]]:
    return await scrape_with(http, {})


async def scrape_with(http, headers: dict) -> tuple[dict, set[str]]:
    resp = await http.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    text = await resp.text()
    return samples(text), {f.name for f in text_string_to_metric_families(text)}


@pytest.fixture
async def operator(aiohttp_client, api: Api):
    """What an operator scrapes: the /metrics listener of the process ``api`` runs in."""
    return await aiohttp_client(metrics_app(api.settings))


async def test_every_family_is_there_and_moves_with_requests(api: Api, operator):
    before, families = await scrape(operator)
    assert families >= FAMILIES, f"missing: {sorted(FAMILIES - families)}"
    store = "webhdfs" if api.settings.uses_cluster else "files"
    metadata = "cassandra" if api.settings.uses_cluster else "sqlite"

    _, headers = await api.user()
    data = image(color=(random.randrange(256), random.randrange(256), 7))  # bytes of its own
    photo = await api.photo(headers, data, "metrics sunset")
    again = await api.photo(headers, data, "the same bytes again")  # deduplicated
    thumb = await api.get(photo["media"]["thumb"])
    assert thumb.status == 200
    served = len(await thumb.read())
    original = await api.get(photo["media"]["original"], headers=headers)
    assert await original.read() == data
    assert (await api.get("/v1/timeline", headers=headers)).status == 200
    assert (await api.get("/v1/search/photos", params={"q": "sunset"})).status == 200
    await problem(await api.get("/v1/photos/12345"), 404)
    await problem(await api.get("/no/such/path"), 404)

    after, _ = await scrape(operator)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    upload = {"route": "/v1/photos", "method": "POST", "status": "201"}
    assert moved("instastore_http_requests_total", **upload) == 2
    assert moved("instastore_http_requests_total", route="/v1/photos/{photo_id}", status="404") == 1
    assert moved("instastore_http_requests_total", route="(unmatched)", status="404") == 1
    assert moved("instastore_http_request_duration_seconds_count", route="/v1/timeline") == 1
    assert moved("instastore_uploads_total", outcome="stored") == 1
    assert moved("instastore_uploads_total", outcome="deduplicated") == 1
    assert moved("instastore_upload_bytes_total") == 2 * len(data)
    assert moved("instastore_upload_processing_seconds_count") == 2
    assert moved("instastore_media_bytes_served_total", rendition="thumb") == served
    assert moved("instastore_media_bytes_served_total", rendition="original") == len(data)
    assert moved("instastore_store_operations_total", store=metadata, outcome="ok") > 0
    assert moved("instastore_store_operations_total", store=store, operation="put") >= 3
    assert moved("instastore_store_operations_total", store=store, operation="open") >= 1
    assert moved("instastore_cache_lookups_total", cache="photo_records") >= 2
    assert again["id"] != photo["id"]


async def test_a_store_error_is_counted_with_its_outcome(api: Api, operator):
    before, _ = await scrape(operator)
    await problem(await api.get("/v1/users/nobody-here"), 404)
    after, _ = await scrape(operator)
    metadata = "cassandra" if api.settings.uses_cluster else "sqlite"
    reads = total(after, "instastore_store_operations_total", store=metadata) - total(
        before, "instastore_store_operations_total", store=metadata
    )
    assert reads >= 1  # the user lookup that found no one: a store call that answered


async def test_the_event_loop_lag_is_measured(api: Api, operator):
    before, _ = await scrape(operator)
    await asyncio.sleep(1.2)
    after, _ = await scrape(operator)
    checks = "instastore_event_loop_lag_check_seconds_count"
    assert total(after, checks) - total(before, checks) >= 1


async def test_a_metrics_port_keeps_metrics_off_the_public_port(aiohttp_client, embedded_settings):
    settings = dataclasses.replace(embedded_settings, metrics_port=free_port())
    public = await aiohttp_client(create_app(settings))
    body = await problem(await public.get("/metrics"), 404)
    unknown = await problem(await public.get("/no/such/path"), 404)
    assert body == unknown  # what is not served here looks like any path that is not there
    private = await aiohttp_client(metrics_app(settings))
    assert (await public.get("/healthz")).status == 200
    values, families = await scrape(private)
    assert families >= FAMILIES
    assert total(values, "instastore_http_requests_total", route="/healthz") >= 1


async def test_the_public_port_serves_metrics_for_the_metrics_token_only(
    aiohttp_client, embedded_settings
):
    """Upload outcomes on /metrics tell whoever reads them that an upload's bytes were
    stored already (by anyone, private accounts included): the public port answers 401
    without the metrics token, with another token and with a user's, and to everyone
    when no metrics token is set."""
    token = "operators-only-" + "x" * 20
    public = await aiohttp_client(
        create_app(dataclasses.replace(embedded_settings, metrics_token=token))
    )
    _, user = await sign_up(public)
    refusals = [{}, {"Authorization": "Bearer not-it"}, user, {"Authorization": f"Basic {token}"}]
    for headers in refusals:
        body = await problem(await public.get("/metrics", headers=headers), 401)
        assert "metrics_token" in body["detail"]
    _, families = await scrape_with(public, {"Authorization": f"Bearer {token}"})
    assert families >= FAMILIES and "instastore_uploads" in families

    unset = await aiohttp_client(create_app(embedded_settings))
    assert embedded_settings.metrics_token == ""
    for headers in [{}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}]:
        await problem(await unset.get("/metrics", headers=headers), 401)


def test_metrics_port_is_checked():
    from instastore.config import Settings
    from instastore.errors import ConfigError

    with pytest.raises(ConfigError, match="metrics_port"):
        Settings(port=8080, metrics_port=8080)
    with pytest.raises(ConfigError, match="metrics_port"):
        Settings(metrics_port=70000)


async def test_workers_add_up_on_any_worker(tmp_path):
    """``serve --workers 2``: requests land on both workers (SO_REUSEPORT), and /metrics,
    on its own port, answers the sum over both."""
    metrics_port = free_port()
    env = {
        "INSTASTORE_DATA_DIR": str(tmp_path / "data"),
        "INSTASTORE_WORKERS": "2",
        "INSTASTORE_METRICS_PORT": str(metrics_port),
    }
    with serve(env, tmp_path / "serve.log") as port:
        base = f"http://127.0.0.1:{port}"
        requests = 40
        async with aiohttp.ClientSession(base) as http:
            await _until_both_workers_serve(http, f"http://127.0.0.1:{metrics_port}")
            before = await _scrape_url(f"http://127.0.0.1:{metrics_port}/metrics")
            for _ in range(requests):
                # A new connection each time, so the kernel spreads them over the workers.
                async with aiohttp.ClientSession(base) as fresh:
                    assert (await fresh.get("/healthz")).status == 200
            await sign_up(http)
            resp = await http.get("/metrics")
            assert resp.status == 404  # off the public port
        after = await _scrape_url(f"http://127.0.0.1:{metrics_port}/metrics")
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    counted = total(after, "instastore_http_requests_total", **healthz) - total(
        before, "instastore_http_requests_total", **healthz
    )
    assert counted == requests
    assert total(after, "instastore_http_requests_total", route="/v1/users", status="201") == 1


async def _scrape_url(url: str) -> dict:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return samples(await resp.text())


async def _until_both_workers_serve(http, metrics_base: str) -> None:
    """Both workers have started (each writes its loop-lag files once it runs)."""
    for _ in range(100):
        values = await _scrape_url(f"{metrics_base}/metrics")
        if total(values, "instastore_event_loop_lag_check_seconds_count") >= 4:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the workers did not start measuring")


def test_a_job_writes_its_metrics_file(tmp_path):
    """`instastore purge --metrics-file`: the run, its outcome and its progress, for
    node_exporter's textfile collector."""
    path = tmp_path / "purge.prom"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "instastore",
            "purge",
            "--data-dir",
            str(tmp_path / "data"),
            "--metrics-file",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    values = samples(path.read_text())
    assert total(values, "instastore_job_runs_total", job="purge", outcome="ok") == 1
    assert total(values, "instastore_job_items_total", job="purge") == 0  # nothing was due
    assert total(values, "instastore_jobs_running", job="purge") == 0
    assert total(values, "instastore_job_last_success_timestamp_seconds", job="purge") > 0
    assert total(values, "instastore_store_operations_total", store="sqlite") > 0
