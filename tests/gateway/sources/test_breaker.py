"""The circuit breaker: after repeated failures a region fails fast, and a trial call heals it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.errors import InvalidInput, SourceUnavailable
from gateway.edge.settings import shipped_mapping
from gateway.sources import BreakerState, CircuitBreaker, PostgresSource
from gateway.synthetic import region_dsn
from tests.conftest import Seeded


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def source(dsn: str, mapping: Path) -> PostgresSource:
    from gateway.sources.mapping import load_mapping

    return PostgresSource("JS", dsn, load_mapping(mapping), timeout=1.0)


def counting(inner: PostgresSource) -> list[str]:
    """Record every call that reaches the backend."""
    calls: list[str] = []
    original = inner.fetch

    async def fetch(
        entity: str, field: str, values: list[str], *, columns: Any = None
    ) -> list[dict[str, object]]:
        calls.append(entity)
        return await original(entity, field, values, columns=columns)

    inner.fetch = fetch  # type: ignore[method-assign]
    return calls


async def test_an_unreachable_region_opens_the_breaker_then_fails_fast() -> None:
    inner = source("postgresql://nobody@127.0.0.1:9/none", shipped_mapping("JS"))
    calls = counting(inner)
    clock = Clock()
    breaker = CircuitBreaker(inner, failures=2, reset_after=5.0, clock=clock)
    for _ in range(2):
        with pytest.raises(SourceUnavailable):
            await breaker.fetch("person", "id_number", ["x"])
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(SourceUnavailable) as refused:
        await breaker.fetch("person", "id_number", ["x"])
    assert refused.value.region == "JS"
    assert len(calls) == 2  # the third call never reached the backend
    clock.now += 5.0
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(SourceUnavailable):
        await breaker.fetch("person", "id_number", ["x"])  # the trial fails: open again
    assert len(calls) == 3
    assert breaker.state is BreakerState.OPEN
    await breaker.close()


async def test_a_successful_trial_closes_the_breaker(seeded: Seeded) -> None:
    clock = Clock()
    inner = source(region_dsn(seeded.dsn, "JS"), shipped_mapping("JS"))
    breaker = CircuitBreaker(inner, failures=1, reset_after=1.0, clock=clock)
    person = seeded.dataset.person("JS", 0)
    # Open it by hand, as a failure would.
    breaker._opened_at = clock.now
    with pytest.raises(SourceUnavailable):
        await breaker.fetch("person", "id_number", [person["id_number"]])
    clock.now += 1.0
    rows = await breaker.fetch("person", "id_number", [person["id_number"]])
    assert [row["name"] for row in rows] == [person["name"]]
    assert breaker.state is BreakerState.CLOSED
    await breaker.close()


async def test_readiness_probes_reach_the_backend_even_when_open(seeded: Seeded) -> None:
    clock = Clock()
    breaker = CircuitBreaker(
        source(region_dsn(seeded.dsn, "JS"), shipped_mapping("JS")), reset_after=60.0, clock=clock
    )
    breaker._opened_at = clock.now
    await breaker.ping()  # the region answers: the breaker closes without waiting
    assert breaker.state is BreakerState.CLOSED
    await breaker.close()


@pytest.mark.parametrize(
    ("entity", "value"),
    [
        ("search", "\x00"),  # NUL: PostgreSQL's text cannot hold it (22021)
        ("search", "上海\x00"),
        ("search", "\ud800"),  # a lone surrogate: UTF-8 cannot encode it (the driver refuses)
        ("person", "31010119900101\x001X"),
    ],
    ids=["nul", "nul-after-text", "surrogate", "nul-key"],
)
async def test_a_value_the_backend_refuses_is_the_callers_error_and_never_opens_the_breaker(
    seeded: Seeded, entity: str, value: str
) -> None:
    # The edge refuses such values before any SQL; this is the source's own line of defence.
    breaker = CircuitBreaker(
        source(region_dsn(seeded.dsn, "JS"), shipped_mapping("JS")), failures=2, reset_after=60.0
    )

    async def send() -> object:
        if entity == "search":
            return await breaker.search("enterprise", "name", value, after=None, limit=3)
        return await breaker.fetch("person", "id_number", [value])

    for _ in range(5):
        with pytest.raises(InvalidInput) as refused:
            await send()
        assert not isinstance(refused.value, SourceUnavailable)
        assert "JS" not in refused.value.message
    assert breaker.state is BreakerState.CLOSED
    person = seeded.dataset.person("JS", 0)
    rows = await breaker.fetch("person", "id_number", [person["id_number"]])
    assert [row["name"] for row in rows] == [person["name"]]
    await breaker.close()


async def test_lookups_asked_together_count_and_fail_fast_as_one_call(seeded: Seeded) -> None:
    clock = Clock()
    inner = source("postgresql://nobody@127.0.0.1:9/none", shipped_mapping("JS"))
    calls: list[int] = []
    original = inner.fetch_many

    async def fetch_many(
        lookups: list[tuple[str, str, list[str]]], *, columns: Any = None
    ) -> list[list[dict]]:
        calls.append(len(lookups))
        return await original(lookups, columns=columns)

    inner.fetch_many = fetch_many  # type: ignore[method-assign,assignment]
    breaker = CircuitBreaker(inner, failures=1, reset_after=5.0, clock=clock)
    both = [("residence", "person_id", ["x"]), ("social_insurance", "person_id", ["x"])]
    with pytest.raises(SourceUnavailable):
        await breaker.fetch_many(both)
    assert breaker.state is BreakerState.OPEN  # one failed round trip is one failure
    with pytest.raises(SourceUnavailable):
        await breaker.fetch_many(both)
    assert calls == [2]  # the second never reached the backend
    await breaker.close()
    # A trial that succeeds closes it.
    person = seeded.dataset.person("JS", 0)["id_number"]
    healthy = CircuitBreaker(
        source(region_dsn(seeded.dsn, "JS"), shipped_mapping("JS")), failures=1, clock=clock
    )
    healthy._opened_at = clock.now - 10.0
    residences, insurance = await healthy.fetch_many(
        [("residence", "person_id", [person]), ("social_insurance", "person_id", [person])]
    )
    assert all(row["person_id"] == person for row in [*residences, *insurance])
    assert healthy.state is BreakerState.CLOSED
    await healthy.close()
