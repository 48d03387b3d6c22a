"""The console's page and CSV export over HTTP: the page loads nothing from elsewhere; the export
gives an auditor the rows auditEvents gives for the same filter, is itself an audited access,
is safe to open in a spreadsheet, and gives anyone else nothing."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx

from gateway.audit import CHINA_TIME, AuditEvent, StoredEvent
from gateway.edge.console import ConsolePage
from gateway.edge.console_export import COLUMNS, csv_row, safe_cell
from gateway.edge.graphiql import CONTENT_SECURITY_POLICY
from resolvers.console_settings import ConsoleSettings
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.audit.test_api import auditor, unique_app
from tests.gateway.edge.test_auth import jwk, new_rsa_key, write_jwks

OS = "OS-ENTERPRISE-OPENING"
LOOKUP = "query CounterLookup($id: ID!) { naturalPerson(idNumber: $id) { name phone } }"
EVENTS = """
query Events($filter: AuditEventFilter, $after: String) {
  auditEvents(filter: $filter, first: 100, after: $after) {
    edges { node { id at traceId callerApp subjects operationName
                   decisions { field owner decision } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""


async def export(
    client: GatewayClient, params: dict[str, str], bearer: str | None
) -> httpx.Response:
    headers = {} if bearer is None else {"Authorization": f"Bearer {bearer}"}
    return await client.http.get("/console/export.csv", params=params, headers=headers)


def rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.removeprefix("\ufeff"))))


async def all_events(client: GatewayClient, conditions: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = None
    while True:
        body = await client.query(EVENTS, {"filter": conditions, "after": after}, token=auditor())
        page = body["data"]["auditEvents"]
        found += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


async def test_the_export_holds_the_rows_audit_events_gives_and_is_itself_an_audited_access(
    seeded: Seeded,
) -> None:
    app = unique_app("counter-sh")
    counter = token("SH", "one_stop_app", app=app)
    people = [seeded.dataset.person("SH", i)["id_number"] for i in range(50, 53)]
    async with serve(gateway_settings(seeded.dsn)) as client:
        for person in people:
            await client.query(LOOKUP, {"id": person}, token=counter, matter=OS)
        expected = await all_events(client, {"callerApp": app})
        response = await export(client, {"callerApp": app}, auditor())
        got = rows(response)
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"].startswith(
            'attachment; filename="audit-events-'
        )
        assert list(got[0]) == list(COLUMNS)
        assert [r["id"] for r in got] == [e["id"] for e in expected]
        assert len(got) == 3
        for row, event in zip(got, expected, strict=True):
            assert (row["at"], row["traceId"], row["callerApp"]) == (
                event["at"], event["traceId"], event["callerApp"])  # fmt: skip
            assert row["subjects"].split(";") == event["subjects"]
            assert row["decisions"] == ";".join(
                f"{d['field']}@{d['owner'] or '-'}={d['decision']}" for d in event["decisions"]
            )
        # The same for a subject's filter.
        by_subject = rows(
            await export(client, {"subjectId": people[1], "callerApp": app}, auditor())
        )
        assert [r["subjects"] for r in by_subject] == [people[1]]

        # Each export is an event of its own, naming what it listed, in its own trace.
        exports = await all_events(client, {"traceId": response.headers["x-trace-id"]})
        [event] = exports
        assert event["operationName"] == "ConsoleExport"
        assert event["callerApp"] == "audit-national"
        assert sorted(event["subjects"]) == sorted(people)


async def test_only_an_auditor_token_in_the_header_exports(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        missing = await export(client, {}, None)
        assert missing.status_code == 401
        assert missing.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        counter = await export(client, {}, token("SH", "one_stop_app"))
        assert counter.status_code == 403
        assert "text/csv" not in counter.headers["content-type"]
        assert counter.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        citizen = seeded.dataset.person("SH", 3)["id_number"]
        mine = await export(client, {"subjectId": citizen}, token("SH", "citizen", subject=citizen))
        assert mine.status_code == 403
        # A token as a cookie or a parameter is no token.
        cookie = await client.http.get(
            "/console/export.csv", headers={"Cookie": f"token={auditor()}"}
        )
        assert cookie.status_code == 401


async def test_bad_parameters_are_refused_naming_them(seeded: Seeded) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        for params, argument in (
            ({"subjectId": "110101199003077777"}, "subjectId"),
            ({"decision": "MAYBE"}, "decision"),
            ({"from": "yesterday"}, "from"),
            ({"region": "XX"}, "region"),
            ({"token": "x"}, "token"),
            ({"outsideWorkingHours": "1"}, "outsideWorkingHours"),
        ):
            response = await export(client, params, auditor())
            assert response.status_code == 400, params
            error = response.json()["errors"][0]
            assert error["extensions"]["code"] in ("BAD_REQUEST", "INVALID_ID")
            assert error["extensions"].get("argument") == argument, params


async def test_an_export_over_the_bound_is_cut_and_says_so(seeded: Seeded) -> None:
    app = unique_app("counter-sh")
    counter = token("SH", "one_stop_app", app=app)
    settings = gateway_settings(seeded.dsn, console=ConsoleSettings(export_max_rows=2))
    async with serve(settings) as client:
        for index in range(3):
            person = seeded.dataset.person("SH", 60 + index)["id_number"]
            await client.query(LOOKUP, {"id": person}, token=counter, matter=OS)
        response = await export(client, {"callerApp": app}, auditor())
        assert response.headers["x-deltagate-truncated"] == "true"
        lines = response.content.decode("utf-8").strip().split("\r\n")
        assert len(lines) == 1 + 2 + 1
        assert lines[-1] == "# truncated at 2 rows"


def test_cells_a_spreadsheet_would_run_are_quoted() -> None:
    assert [safe_cell(v) for v in ("=1+1", "+1", "-2", "@SUM(A1)", "\tx", "plain", None, 3)] == [
        "'=1+1", "'+1", "'-2", "'@SUM(A1)", "'\tx", "plain", "", "3",
    ]  # fmt: skip
    import datetime as dt

    event = AuditEvent(
        at=dt.datetime(2024, 6, 1, 1, 30, tzinfo=dt.UTC),
        trace_id="0" * 32,
        caller_app='=HYPERLINK("http://evil.example")',
        caller_region="SH",
        roles=("one_stop_app",),
        matter_code=None,
        matter_name="-cmd",
        operation_name="@x",
        operation_type="query",
        document_hash="a" * 64,
        policy_version=None,
        subjects=(),
        decisions=(),
    )
    stored = StoredEvent(
        chain="c1", seq=7, id=7, event=event, hash_algorithm="sha256", prev_hash="0" * 64,
        hash="b" * 64,
    )  # fmt: skip
    row = dict(zip(COLUMNS, csv_row(stored), strict=True))
    assert row["callerApp"].startswith("'=")
    assert row["matterName"] == "'-cmd"
    assert row["operationName"] == "'@x"
    assert row["at"] == dt.datetime(2024, 6, 1, 9, 30, tzinfo=CHINA_TIME).isoformat(
        timespec="microseconds"
    )


async def test_the_page_is_served_with_a_policy_that_allows_only_the_gateway(
    seeded: Seeded,
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        page = await client.http.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "set-cookie" not in page.headers
        for path in ("/console/static/../../app.py", "/console/static/nothing.js"):
            assert (await client.http.get(path)).status_code == 404


async def test_production_serves_no_console_unless_enabled(seeded: Seeded, tmp_path: Path) -> None:
    write_jwks(tmp_path / "jwks.json", jwk(new_rsa_key(), "k1"))
    for enabled, status in ((None, 404), (True, 200)):
        production = gateway_settings(
            seeded.dsn, mode="production", jwt_secret=None, jwks_path=tmp_path / "jwks.json",
            console=ConsoleSettings(enabled=enabled),
        )  # fmt: skip
        async with serve(production) as client:
            assert (await client.http.get("/console")).status_code == status
            exported = await client.http.get("/console/export.csv")
            assert exported.status_code == (404 if enabled is None else 401)
    off = gateway_settings(seeded.dsn, console=ConsoleSettings(enabled=False))
    async with serve(off) as client:
        assert (await client.http.get("/console")).status_code == 404


def test_the_page_serves_the_files_of_its_folder_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>c</title>", encoding="utf-8")
    (tmp_path / "app.js").write_text("console.log(1)", encoding="utf-8")
    (tmp_path / "notes.py").write_text("secret = 1", encoding="utf-8")
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "logo.svg").write_text("<svg/>", encoding="utf-8")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.js"
    outside.write_text("x", encoding="utf-8")
    (tmp_path / "link.js").symlink_to(outside)
    page = ConsolePage(tmp_path)
    assert sorted(page.assets) == ["app.js", "img/logo.svg", "index.html"]
    assert page.html.startswith(b"<!doctype html>")
    assert page.assets["app.js"][1] == "text/javascript; charset=utf-8"


def test_the_placeholder_page_is_there() -> None:
    assert b"<!doctype html>" in ConsolePage().html.lower()
