"""Two gateway processes as two replicas: one quota between them, one policy roll-out for both.

Each test starts two real ``deltagate serve`` processes on loopback ports over
the session's seeded PostgreSQL, sharing a real ``redis-server`` and a policy
folder of their own, and stops them at the end. Request loops are bounded in
count and in time; bounds on what is admitted follow from the quota's
arithmetic, never from how fast this machine is.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from policies import SHIPPED_POLICY_DIR
from tests.conftest import Seeded, token
from tests.gateway.edge.test_cli import ServerProcess, serving
from tests.redis_server import RedisServer

PING = {"query": "query Ping { __typename }"}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    """One client for every request: a client per request spends longer on its own set-up
    (TLS context included) than the gateway on its answer."""
    with httpx.Client(timeout=10) as shared:
        yield shared


def policy_copy(tmp_path: Path, quotas: str) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(SHIPPED_POLICY_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__*"))
    (directory / "quotas.toml").write_text(quotas, encoding="utf-8")
    return directory


@contextmanager
def two_gateways(
    seeded: Seeded, tmp_path: Path, config: list[str], **env: str
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two ``deltagate serve`` processes with the same configuration, stopped after."""
    with ExitStack() as stack:
        servers = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            servers.append(stack.enter_context(serving(seeded, folder, config=config, **env)))
        yield servers[0], servers[1]


def post(client: httpx.Client, server: ServerProcess, bearer: str) -> int:
    answer = client.post(
        f"{server.base}/graphql", json=PING, headers={"Authorization": f"Bearer {bearer}"}
    )
    return answer.status_code


def metric(client: httpx.Client, server: ServerProcess, name: str, **labels: str) -> float | None:
    """One sample of ``/metrics``, or None when it is not there."""
    text = client.get(f"{server.base}/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def ready(client: httpx.Client, server: ServerProcess) -> tuple[int, dict[str, Any]]:
    answer = client.get(f"{server.base}/readyz")
    return answer.status_code, answer.json()


def wait_for(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check()`` held, polling; fails after ``seconds``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s")
        time.sleep(0.1)
    return time.monotonic() - started


def hammer(
    client: httpx.Client,
    servers: tuple[ServerProcess, ServerProcess],
    bearer: str,
    *,
    count: int,
    seconds: float,
) -> tuple[dict[str, list[int]], float]:
    """Requests to each server in turn, ``count`` at most within ``seconds``; statuses, time."""
    statuses: dict[str, list[int]] = {server.base: [] for server in servers}
    started = time.monotonic()
    for i in range(count):
        if time.monotonic() - started > seconds:
            break
        server = servers[i % 2]
        statuses[server.base].append(post(client, server, bearer))
    return statuses, time.monotonic() - started


@pytest.mark.slow
def test_two_replicas_hold_an_app_to_one_quota(
    seeded: Seeded, tmp_path: Path, redis_server: RedisServer, client: httpx.Client
) -> None:
    app, rate, burst = "replicated-counter", 4.0, 8
    quotas = f"[apps.{app}]\nrate = {rate}\nburst = {burst}\n"
    directory = policy_copy(tmp_path, quotas)
    with Redis.from_url(redis_server.url) as admin:
        admin.flushdb()
    bearer = token("SH", "one_stop_app", app=app)
    with two_gateways(
        seeded, tmp_path, [],
        DELTAGATE_POLICY_DIR=str(directory), DELTAGATE_RATE_LIMIT_URL=redis_server.url,
    ) as servers:  # fmt: skip
        statuses, elapsed = hammer(client, servers, bearer, count=400, seconds=4.0)
        fallbacks = [
            metric(client, s, "deltagate_rate_limit_store_fallbacks_total") for s in servers
        ]
        states = [ready(client, s)[1]["rateLimitStore"] for s in servers]
    every = [status for answers in statuses.values() for status in answers]
    assert set(every) == {200, 429}
    admitted = every.count(200)
    # The sum over both replicas stays within one quota: the burst, and the rate over the
    # time the requests took (Redis's clock runs between the first and the last of them).
    # Buckets per process would have let through up to twice as many.
    assert burst <= admitted <= burst + rate * elapsed, (admitted, elapsed)
    assert all(200 in answers and 429 in answers for answers in statuses.values())
    assert fallbacks == [0.0, 0.0]
    assert states == ["ok", "ok"]


@pytest.mark.slow
def test_replicas_answer_and_still_limit_while_the_store_is_down(
    seeded: Seeded, tmp_path: Path, client: httpx.Client
) -> None:
    app, rate, burst = "outage-counter", 1.0, 10
    directory = policy_copy(tmp_path, f"[apps.{app}]\nrate = {rate}\nburst = {burst}\n")
    bearer = token("SH", "one_stop_app", app=app)
    store = RedisServer()
    try:
        store.start()
        with two_gateways(
            seeded, tmp_path, ["[limits]", "rate_limit_processes = 2"],
            DELTAGATE_POLICY_DIR=str(directory), DELTAGATE_RATE_LIMIT_URL=store.url,
        ) as servers:  # fmt: skip
            assert [post(client, servers[i % 2], bearer) for i in range(4)] == [200] * 4

            store.stop()
            statuses, elapsed = hammer(client, servers, bearer, count=200, seconds=3.0)
            every = [status for answers in statuses.values() for status in answers]
            # Never a 500, never unlimited: each replica allows its half of the quota.
            assert set(every) == {200, 429}
            assert every.count(200) <= burst + 2 * (rate / 2) * elapsed
            for server in servers:
                assert metric(client, server, "deltagate_rate_limit_store_fallbacks_total") > 0
                status, report = ready(client, server)
                assert (status, report["rateLimitStore"]) == (200, "unavailable")

            store.start()  # back (empty): within a second or so both share its buckets again
            with Redis.from_url(store.url) as admin:

                def shared_again() -> bool:
                    for server in servers:
                        post(client, server, bearer)
                    return admin.exists(f"deltagate:ratelimit:{app}") == 1

                wait_for(shared_again, 15)
            before = [
                metric(client, s, "deltagate_rate_limit_store_fallbacks_total") for s in servers
            ]
            time.sleep(1.5)  # past the fall-back's pause: every replica asks the store again
            for server in servers:
                post(client, server, bearer)
            after = [
                metric(client, s, "deltagate_rate_limit_store_fallbacks_total") for s in servers
            ]
            for server in servers:
                assert ready(client, server)[1]["rateLimitStore"] == "ok"
        assert after == before
    finally:
        store.close()


@pytest.mark.slow
def test_replicas_switch_policy_together_and_keep_it_when_a_file_breaks(
    seeded: Seeded, tmp_path: Path, client: httpx.Client
) -> None:
    interval = 0.5
    directory = policy_copy(tmp_path, "[default]\nrate = 50\nburst = 100\n")
    with two_gateways(
        seeded, tmp_path, ["[policy]", f"reload_interval = {interval}"],
        DELTAGATE_POLICY_DIR=str(directory),
    ) as servers:  # fmt: skip

        def versions() -> list[str | None]:
            return [ready(client, server)[1]["policy"]["version"] for server in servers]

        (old, other) = versions()
        assert old is not None
        assert other == old
        assert [metric(client, s, "deltagate_policy_info", version=old) for s in servers] == [
            1.0,
            1.0,
        ]

        with (directory / "policy.csv").open("a", encoding="utf-8") as policy:
            policy.write("p, public_portal, *, *, LegalPerson.*, L1, allow\n")
        took = wait_for(lambda: len(set(versions()) - {old}) == 1 and old not in versions(), 10)
        new = versions()[0]
        assert new != old
        # Within the reload interval, give or take a loaded machine's scheduling.
        assert took < interval + 5
        for server in servers:
            assert metric(client, server, "deltagate_policy_info", version=new) == 1.0
            assert metric(client, server, "deltagate_policy_info", version=old) is None
            assert metric(client, server, "deltagate_policy_reload_failed") == 0.0

        (directory / "matters.toml").write_text("[[[ not toml\n", encoding="utf-8")
        wait_for(lambda: all(ready(client, s)[1]["policy"]["error"] for s in servers), 10)
        for server in servers:
            status, report = ready(client, server)
            # The previous version stays in force, named, with the error; still in rotation.
            assert status == 200
            assert report["policy"]["version"] == new
            assert "matters.toml" in report["policy"]["error"]
            assert metric(client, server, "deltagate_policy_info", version=new) == 1.0
            assert metric(client, server, "deltagate_policy_reload_failed") == 1.0
            assert post(client, server, token("AH", "public_portal", app="portal")) == 200
