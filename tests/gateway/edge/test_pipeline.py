"""Serving a request: what the operator's log says of a failure the caller only sees as INTERNAL."""

from __future__ import annotations

import logging

import pytest

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
