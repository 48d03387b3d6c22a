"""The auditor console's GraphQL: an auditor finds the request that touched a subject, opens it,
sees every decision and its waterfall, verifies the chain and reads the misuse signals; no other
token learns anything from these fields, and a citizen reads only their own history."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from gateway.audit import CHINA_TIME
from resolvers.console_settings import ConsoleSettings
from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token
from tests.gateway.audit.test_api import auditor, unique_app

OS = "OS-ENTERPRISE-OPENING"

LOOKUP = "query CounterLookup($id: ID!) { naturalPerson(idNumber: $id) { name phone } }"

FIND = """
query Find($filter: AuditEventFilter) {
  auditEvents(filter: $filter, first: 100) { edges { node { id traceId callerApp subjects } } }
}
"""

DETAIL = """
query Detail($id: ID!) {
  auditEvent(id: $id) {
    id callerApp actingGateway operationName operationType documentHash subjects
    decisions { field owner decision grade clearance rule reason count }
    trace { traceId durationMs externalUrl
            spans { spanId parentId name kind region startMs durationMs error
                    attributes { key value } } }
  }
}
"""

SESSION = "{ consoleSession { view callerApp subject roles } }"
SIGNALS = """
{ misuseSignals { kind callerApp subjectId count threshold from to
                  filter { callerApp subjectId outsideWorkingHours from to } } }
"""
STATUS = """
{ auditChainStatus { headId headHash maxRange
                     lastVerification { ok fromId toId checked problems byApp } } }
"""
VERIFY = """
mutation Verify($from: ID, $to: ID) {
  verifyAuditChain(fromId: $from, toId: $to) { ok fromId toId checked problems byApp }
}
"""


def settings(seeded: Seeded, **console: Any) -> Any:
    return gateway_settings(seeded.dsn, console=ConsoleSettings(**console))


async def ask(client: GatewayClient, query: str, variables: dict[str, Any] | None = None, *,
              as_: str | None = None) -> dict[str, Any]:  # fmt: skip
    return await client.query(query, variables, token=as_ or auditor())


def data(body: dict[str, Any]) -> Any:
    assert "errors" not in body, body["errors"]
    return body["data"]


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors", [])]


async def looked_up(
    client: GatewayClient, seeded: Seeded, app: str, index: int = 0
) -> tuple[str, str]:
    """A counter looks a person up; (their ID number, the response's trace id)."""
    person = seeded.dataset.person("SH", index)["id_number"]
    body = await client.query(LOOKUP, {"id": person}, token=token("SH", "one_stop_app", app=app),
                              matter=OS)  # fmt: skip
    assert data(body)["naturalPerson"]["name"]
    return person, body["extensions"]["traceId"]


async def test_an_auditor_finds_the_request_that_touched_a_subject_and_sees_inside_it(
    seeded: Seeded,
) -> None:
    app = unique_app("counter-sh")
    traces = settings(seeded, trace_url_template="https://traces.example/t/{traceId}")
    async with serve(traces) as client:
        person, trace_id = await looked_up(client, seeded, app)
        await client.gateway.console.spans.flush()

        found = data(await ask(client, FIND, {"filter": {"subjectId": person, "callerApp": app}}))
        [event] = [edge["node"] for edge in found["auditEvents"]["edges"]]
        assert event["traceId"] == trace_id

        detail = data(await ask(client, DETAIL, {"id": event["id"]}))["auditEvent"]
        assert (detail["operationName"], detail["operationType"]) == ("CounterLookup", "query")
        assert detail["actingGateway"] is None  # the caller came directly
        phone = [d for d in detail["decisions"] if d["field"] == "NaturalPerson.phone"]
        assert phone
        assert all(d["grade"] and d["reason"] for d in phone)
        assert any(d["clearance"] for d in detail["decisions"])

        trace = detail["trace"]
        assert trace["traceId"] == trace_id
        assert trace["externalUrl"] == f"https://traces.example/t/{trace_id}"
        kinds = {span["kind"] for span in trace["spans"]}
        assert {"OPERATION", "LOADER_BATCH", "AUDIT_WRITE"} <= kinds
        # Each loader batch is one backend round trip, its query's marks on the batch's row.
        for span in trace["spans"]:
            if span["kind"] == "LOADER_BATCH":
                marks = {a["key"]: a["value"] for a in span["attributes"]}
                assert marks["db.system"] == "postgresql"
                assert "db.response.returned_rows" in marks
        [root] = [span for span in trace["spans"] if span["parentId"] is None]
        assert trace["spans"][0] == root
        assert root["startMs"] == 0
        ids = {span["spanId"] for span in trace["spans"]}
        assert all(span["parentId"] in ids for span in trace["spans"] if span is not root)
        batches = [span for span in trace["spans"] if span["kind"] == "LOADER_BATCH"]
        assert {"SH"} <= {span["region"] for span in batches}
        for span in trace["spans"]:
            assert 0 <= span["startMs"] <= trace["durationMs"] + 1
            # No personal value in what the waterfall shows.
            assert person not in str(span)


async def test_region_and_decision_filters_narrow_to_the_events_with_such_a_decision(
    seeded: Seeded,
) -> None:
    app = unique_app("counter-sh")
    async with serve(settings(seeded)) as client:
        _person, _ = await looked_up(client, seeded, app)
        found = data(await ask(client, FIND, {"filter": {"callerApp": app}}))
        [event] = [e["node"] for e in found["auditEvents"]["edges"]]
        detail = data(await ask(client, DETAIL, {"id": event["id"]}))["auditEvent"]
        held = {(d["owner"], d["decision"]) for d in detail["decisions"]}
        owner, decision = sorted(held)[0]
        hit = {"callerApp": app, "region": owner, "decision": decision}
        assert len(data(await ask(client, FIND, {"filter": hit}))["auditEvents"]["edges"]) == 1
        absent = [(o, d) for o in ("SH", "JS", "ZJ", "AH")
                  for d in ("CLEAR", "MASKED", "WITHHELD") if (o, d) not in held]  # fmt: skip
        miss = {"callerApp": app, "region": absent[0][0], "decision": absent[0][1]}
        assert data(await ask(client, FIND, {"filter": miss}))["auditEvents"]["edges"] == []

        bad = await ask(client, FIND, {"filter": {"region": "XX"}})
        assert codes(bad) == ["BAD_REQUEST"]
        assert bad["errors"][0]["extensions"]["argument"] == "region"


async def test_outside_working_hours_is_decided_in_china_standard_time(seeded: Seeded) -> None:
    app = unique_app("counter-sh")
    now = dt.datetime.now(CHINA_TIME)
    around_now = f"{max(now.hour - 1, 0):02d}:00-{min(now.hour + 2, 24):02d}:00"
    every_day = list(range(1, 8))
    within = settings(seeded, **_hours(around_now, every_day))
    async with serve(within) as client:
        await looked_up(client, seeded, app)
        query = {"filter": {"callerApp": app, "outsideWorkingHours": True}}
        assert data(await ask(client, FIND, query))["auditEvents"]["edges"] == []
    # The same event, with no working day at all: outside working hours.
    outside = settings(seeded, **_hours(around_now, []))
    async with serve(outside) as client:
        assert len(data(await ask(client, FIND, query))["auditEvents"]["edges"]) == 1


def _hours(text: str, days: list[int]) -> dict[str, Any]:
    table = ConsoleSettings.from_table({"working_hours": text, "working_days": days})
    return {"work_start": table.work_start, "work_end": table.work_end,
            "working_days": table.working_days}  # fmt: skip


async def test_a_burst_by_one_app_raises_the_distinct_subjects_signal_and_normal_traffic_none(
    seeded: Seeded,
) -> None:
    burst, normal = unique_app("burst"), unique_app("counter-sh")
    # Working hours all week, all day: this test is about the burst, whatever the hour.
    config = {"distinct_subjects_threshold": 5, **_hours("00:00-24:00", list(range(1, 8)))}
    async with serve(settings(seeded, **config)) as client:
        for index in range(2):
            await looked_up(client, seeded, normal, index)
        for index in range(8):
            await looked_up(client, seeded, burst, 10 + index)

        raised = data(await ask(client, SIGNALS))["misuseSignals"]
        apps = {signal["callerApp"] for signal in raised}
        assert normal not in apps
        [signal] = [s for s in raised if s["callerApp"] == burst]
        assert (signal["kind"], signal["count"], signal["threshold"]) == ("DISTINCT_SUBJECTS", 8, 5)

        # The signal's filter lists the events behind it.
        behind = {k: v for k, v in signal["filter"].items() if v is not None}
        edges = data(await ask(client, FIND, {"filter": behind}))["auditEvents"]["edges"]
        assert len(edges) == 8
        assert {e["node"]["callerApp"] for e in edges} == {burst}


async def test_one_subject_read_by_many_apps_raises_a_signal_naming_it(seeded: Seeded) -> None:
    config = {"apps_per_subject_threshold": 2, **_hours("00:00-24:00", list(range(1, 8)))}
    async with serve(settings(seeded, **config)) as client:
        for _ in range(3):
            person, _ = await looked_up(client, seeded, unique_app("counter"), 40)
        raised = data(await ask(client, SIGNALS))["misuseSignals"]
        [signal] = [s for s in raised if s["subjectId"] == person]
        assert signal["kind"] == "SUBJECT_MANY_APPS"
        assert signal["count"] >= 3


async def test_verifying_a_range_is_bounded_spaced_and_remembered(seeded: Seeded) -> None:
    async with serve(settings(seeded, verify_max_range=5, verify_min_interval=60.0)) as client:
        app = unique_app("counter-sh")
        for index in range(3):
            await looked_up(client, seeded, app, 20 + index)
        head = int(data(await ask(client, STATUS))["auditChainStatus"]["headId"])

        too_many = await ask(client, VERIFY, {"from": "1", "to": str(head)})
        assert head < 6 or codes(too_many) == ["BATCH_TOO_LARGE"]

        done = data(await ask(client, VERIFY, {"from": str(head - 2), "to": str(head)}))
        result = done["verifyAuditChain"]
        assert result["ok"]
        assert result["checked"] == 3
        assert result["problems"] == []
        assert (result["fromId"], result["toId"]) == (str(head - 2), str(head))

        again = await ask(client, VERIFY, {"from": str(head - 1), "to": str(head)})
        assert codes(again) == ["RATE_LIMITED"]

        status = data(await ask(client, STATUS))["auditChainStatus"]
        assert status["lastVerification"] == {**result}
        assert status["maxRange"] == 5


async def test_the_console_fields_refuse_every_token_but_an_auditors(seeded: Seeded) -> None:
    counter = token("SH", "one_stop_app", app=unique_app("counter-sh"))
    async with serve(settings(seeded)) as client:
        for query, variables in (
            (DETAIL, {"id": "1"}), (SIGNALS, None), (STATUS, None), (VERIFY, None),
        ):  # fmt: skip
            body = await ask(client, query, variables, as_=counter)
            assert codes(body) == ["FORBIDDEN"], query
            assert not any((body.get("data") or {}).values())


async def test_the_session_tells_the_page_which_view_a_token_gets(seeded: Seeded) -> None:
    citizen = seeded.dataset.person("SH", 3)["id_number"]
    async with serve(settings(seeded)) as client:
        assert data(await ask(client, SESSION))["consoleSession"]["view"] == "AUDITOR"
        mine = data(await ask(client, SESSION, as_=token("SH", "citizen", subject=citizen)))
        assert mine["consoleSession"]["view"] == "CITIZEN"
        assert mine["consoleSession"]["subject"] == citizen
        other = data(await ask(client, SESSION, as_=token("SH", "one_stop_app")))
        assert other["consoleSession"] == {
            "view": "NONE", "callerApp": "test-app", "subject": None, "roles": ["one_stop_app"],
        }  # fmt: skip


async def test_a_citizen_reads_only_their_own_history_and_learns_nothing_of_others(
    seeded: Seeded,
) -> None:
    history = "query($id: ID!) { accessHistory(idNumber: $id) { callerApp } }"
    app = unique_app("counter-sh")
    async with serve(settings(seeded)) as client:
        mine, _ = await looked_up(client, seeded, app, 30)
        read_by_someone, _ = await looked_up(client, seeded, app, 31)
        never_read = seeded.dataset.person("SH", 299)["id_number"]
        citizen = token("SH", "citizen", subject=mine)
        own = data(await ask(client, history, {"id": mine}, as_=citizen))["accessHistory"]
        assert app in {record["callerApp"] for record in own}
        refusals = [await ask(client, history, {"id": other}, as_=citizen)
                    for other in (read_by_someone, never_read)]  # fmt: skip
        assert [codes(body) for body in refusals] == [["FORBIDDEN"], ["FORBIDDEN"]]
        assert refusals[0]["errors"][0]["message"] == refusals[1]["errors"][0]["message"]


def test_console_settings_refuse_what_they_cannot_use() -> None:
    import pytest

    from gateway.core.errors import ConfigError

    for table in (
        {"working_hours": "18:00-08:30"}, {"working_hours": "9-5"}, {"working_days": [0]},
        {"export_max_rows": 0}, {"trace_url_template": "https://x.example/"},
        {"enabled": "yes"}, {"unknown": 1},
    ):  # fmt: skip
        with pytest.raises(ConfigError):
            ConsoleSettings.from_table(table)
    parsed = ConsoleSettings.from_table({"working_hours": "09:00-17:30", "working_days": [1, 2]})
    assert dataclasses.replace(parsed).working_hours == "09:00-17:30"
    assert ConsoleSettings().serves_page(production=False)
    assert not ConsoleSettings().serves_page(production=True)
    assert ConsoleSettings(enabled=True).serves_page(production=True)
