"""Serving a request: what the operator's log says of a failure the caller only sees as INTERNAL;
the request's header lines as the server hands them over (any case, a name sent twice) and the
answer's own lines."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.edge.app import GatewayApp, create_app
from gateway.edge.auth import mint_token
from gateway.edge.settings import Settings
from resolvers.context import GatewayContext
from resolvers.loaders import Loaders
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

QUERY = "query($u: ID!) { legalPerson(uscc: $u) { name } }"


async def test_an_unexpected_field_failure_is_logged_with_the_trace_id_the_caller_got(
    seeded: Seeded, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(client.gateway.sources["JS"], "fetch", broken)
        with caplog.at_level(logging.ERROR, logger="deltagate.errors"):
            body = await client.query(
                QUERY, {"u": seeded.dataset.uscc("JS", 0)}, token=token("SH", "one_stop_app")
            )
    assert body["errors"][0]["extensions"]["code"] == "INTERNAL"
    trace_id = body["extensions"]["traceId"]
    assert f"unexpected error at ['legalPerson'] (trace {trace_id})" in caplog.text


async def test_an_unexpected_failure_before_execution_is_logged_with_the_trace_id_the_caller_got(
    seeded: Seeded, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:

        def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("a bug in the policy engine")

        monkeypatch.setattr(client.gateway.policy, "begin", broken)
        with caplog.at_level(logging.ERROR, logger="deltagate.errors"):
            response = await client.post("{ __typename }", token=token("SH", "one_stop_app"))
    assert response.status_code == 500
    body = response.json()
    assert "data" not in body
    assert body["errors"] == [{"message": "internal error", "extensions": {"code": "INTERNAL"}}]
    trace_id = body["extensions"]["traceId"]
    assert f"unexpected error (trace {trace_id})" in caplog.text
    assert "a bug in the policy engine" in caplog.text  # the operator gets the traceback


# -- the request as the server hands it over: header lines, repeated and in any case ----------


class Exchange:
    """One ``POST /graphql`` sent to the ASGI app as a server sends it: raw header lines."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name: bytes) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)

    def json(self) -> Any:
        return orjson.loads(self.body)


async def exchange(
    app: GatewayApp,
    lines: list[tuple[bytes, bytes]],
    query: str = "{ __typename }",
    variables: dict[str, Any] | None = None,
    *,
    client: tuple[str, int] | None = ("127.0.0.1", 40000),
) -> Exchange:
    body = orjson.dumps({"query": query, "variables": variables or {}})
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/graphql", "raw_path": b"/graphql", "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 80),
        "headers": [(b"content-length", str(len(body)).encode()), *lines],
    }  # fmt: skip
    if client is not None:
        scope["client"] = client
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    return Exchange(start["status"], start["headers"], b"".join(m["body"] for m in bodies))


JSON_BODY = (b"content-type", b"application/json")
SH_APP = token("SH", "one_stop_app")


def bearer(value: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {value}".encode())


@pytest.fixture
async def app(seeded: Seeded) -> AsyncIterator[GatewayApp]:
    async with serve(gateway_settings(seeded.dsn)) as client:
        yield create_app(client.gateway)  # the gateway is started; no second lifespan


async def test_header_names_are_read_in_any_case(app: GatewayApp, seeded: Seeded) -> None:
    answer = await exchange(
        app,
        [(b"Content-Type", b"application/json"), (b"AUTHORIZATION", f"Bearer {SH_APP}".encode()),
         (b"X-Matter-Code", b"NO-SUCH-MATTER"), (b"Accept", b"application/json")],
    )  # fmt: skip
    # The matter was read (forbidden), so was the token before it, and the answer is JSON.
    assert answer.status == 403
    assert answer.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert answer.header(b"content-type") == b"application/json"


async def test_a_repeated_authorization_header_is_decided_by_its_first_value(
    app: GatewayApp, seeded: Seeded
) -> None:
    uscc = seeded.dataset.uscc("JS", 0)
    forged = mint_token(
        sub="intruder", region="SH", roles=["one_stop_app"], secret="x" * 40 + "-not-the-secret"
    )
    refused = await exchange(app, [JSON_BODY, bearer(forged), bearer(SH_APP)], QUERY, {"u": uscc})
    empty_first = await exchange(
        app, [JSON_BODY, (b"authorization", b""), bearer(SH_APP)], QUERY, {"u": uscc}
    )
    answered = await exchange(app, [JSON_BODY, bearer(SH_APP), bearer(forged)], QUERY, {"u": uscc})
    for answer in (refused, empty_first):
        assert answer.status == 401
        assert "data" not in answer.json()
        assert answer.header(b"www-authenticate") == b"Bearer"
        assert answer.header(b"connection") == b"close"  # refused before its body was read
    assert answered.status == 200
    assert answered.json()["data"]["legalPerson"]["name"]
    assert answered.header(b"connection") is None


async def test_a_repeated_matter_header_is_decided_by_its_first_value(app: GatewayApp) -> None:
    lines = [JSON_BODY, bearer(SH_APP)]
    allowed = (b"x-matter-code", b"OS-ENTERPRISE-OPENING")
    unknown = (b"x-matter-code", b"NO-SUCH-MATTER")
    assert (await exchange(app, [*lines, allowed])).status == 200
    assert (await exchange(app, [*lines, unknown, allowed])).status == 403
    assert (await exchange(app, [*lines, allowed, unknown])).status == 200


async def test_the_answer_carries_its_length_and_media_type(app: GatewayApp) -> None:
    lines = [JSON_BODY, bearer(SH_APP)]
    modern = await exchange(app, lines)
    legacy = await exchange(app, [*lines, (b"accept", b"application/json")])
    refused = await exchange(app, [*lines, (b"accept", b"text/html")])
    for answer in (modern, legacy, refused):
        assert answer.header(b"content-length") == str(len(answer.body)).encode()
    assert modern.header(b"content-type") == b"application/graphql-response+json"
    assert legacy.header(b"content-type") == b"application/json"
    assert (refused.status, refused.header(b"content-type")) == (406, b"application/json")
    assert modern.json()["data"] == {"__typename": "Query"}


async def test_a_request_without_a_client_address_is_admitted_under_one_shared_name(
    app: GatewayApp,
) -> None:
    answer = await exchange(app, [JSON_BODY, bearer(SH_APP)], client=None)
    assert answer.status == 200


async def test_a_repeated_traceparent_links_only_the_first(seeded: Seeded) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    first, second = "4bf92f3577b34da6a3ce929d0e0e4736", "0af7651916cd43dd8448eb211c80319c"
    lines = [JSON_BODY, bearer(SH_APP)]
    try:
        async with serve(gateway_settings(seeded.dsn), tracer_provider=provider) as client:
            app = create_app(client.gateway)
            linked = await exchange(
                app,
                [*lines, (b"traceparent", f"00-{first}-00f067aa0ba902b7-01".encode()),
                 (b"traceparent", f"00-{second}-00f067aa0ba902b7-01".encode())],
            )  # fmt: skip
            alone = await exchange(app, lines)
    finally:
        provider.shutdown()
    spans = {format(s.context.trace_id, "032x"): s for s in exporter.get_finished_spans()}
    [link] = spans[linked.json()["extensions"]["traceId"]].links
    assert format(link.context.trace_id, "032x") == first
    assert spans[alone.json()["extensions"]["traceId"]].links == ()
    assert first not in spans  # linked, never adopted
    assert second not in spans


# -- group commit: the audit writer waits for operations still running, never for ended ones ---

OFFICER = token("JS", "joint_handling_officer", app="jh-js")
HUKOU_MATTER = "JH-HUKOU-MIGRATION"
PERSON = "query($i: ID!) { naturalPerson(idNumber: $i) { name } }"


def gathering_settings(seeded: Seeded) -> Settings:
    """Settings whose audit writer would wait far longer than a test may take (past the
    bound an operator may set): a wait that should not happen hangs into ``asyncio.timeout``
    instead of passing slowly."""
    return replace(gateway_settings(seeded.dsn), audit_gather=30.0)


async def test_operations_running_together_share_one_audit_commit(seeded: Seeded) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    people = [seeded.dataset.cross_region_person(region)["id_number"] for region in ("AH", "ZJ")]
    try:
        settings = gathering_settings(seeded)
        async with serve(settings, tracer_provider=provider) as client:
            async with asyncio.timeout(10):
                bodies = await asyncio.gather(
                    *(client.query(PERSON, {"i": person}, token=OFFICER, matter=HUKOU_MATTER)
                      for person in people)
                )  # fmt: skip
    finally:
        provider.shutdown()
    assert all(body["data"]["naturalPerson"]["name"] for body in bodies)
    writes = [s for s in exporter.get_finished_spans() if s.name == "audit.write"]
    # The first event waited for the second operation instead of being committed alone.
    assert [span.attributes["deltagate.audit.batch"] for span in writes] == [2, 2]


async def test_an_operation_that_failed_is_not_waited_for(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = seeded.dataset.cross_region_person("AH")["id_number"]
    async with serve(gathering_settings(seeded)) as client:
        execute = client.gateway.schema.execute_prepared
        calls = 0

        async def failing_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug in execution")
            return await execute(*args, **kwargs)

        monkeypatch.setattr(client.gateway.schema, "execute_prepared", failing_once)
        async with asyncio.timeout(10):
            failed = await client.post(PERSON, {"i": person}, token=OFFICER, matter=HUKOU_MATTER)
            # Had the failed one stayed announced, this write would wait out the long gather.
            body = await client.query(PERSON, {"i": person}, token=OFFICER, matter=HUKOU_MATTER)
    assert failed.status_code == 500
    assert body["data"]["naturalPerson"]["name"]


async def test_an_answered_operation_leaves_nothing_for_the_garbage_collector(
    seeded: Seeded,
) -> None:
    # A request's context, its loaders and the rows they read are freed as it ends, by
    # reference counting: left to the collector, they made its passes long enough to stall
    # every request in flight (the p99 tail).
    lookup = (
        "query CounterLookup($id: ID!) { naturalPerson(idNumber: $id) {"
        " name phone residences { region address } } }"
    )
    person = seeded.dataset.person("SH", 12)
    async with serve(gateway_settings(seeded.dsn)) as client:
        await client.query(lookup, {"id": person["id_number"]}, token=token("SH", "one_stop_app"),
                           matter="OS-ENTERPRISE-OPENING")  # fmt: skip
        gc.collect()
        gc.disable()
        try:
            for index in range(3):
                body = await client.query(
                    lookup, {"id": seeded.dataset.person("SH", 20 + index)["id_number"]},
                    token=token("SH", "one_stop_app"), matter="OS-ENTERPRISE-OPENING",
                )  # fmt: skip
                assert body["data"]["naturalPerson"]["name"]
            left = [o for o in gc.get_objects() if isinstance(o, (GatewayContext, Loaders))]
        finally:
            gc.enable()
    assert left == []
