"""Through the gateway: every access to L2+ data leaves one event, which auditors and the data
subject can read, each only what is theirs to read."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from tests.client import GatewayClient, serve
from tests.conftest import Seeded, gateway_settings, token

JH = "JH-HUKOU-MIGRATION"

PERSONS = """
query CaseFiles($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { name phone } }
"""

EVENTS = """
query Events($filter: AuditEventFilter, $first: Int! = 20, $after: String) {
  auditEvents(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id at traceId callerApp callerRegion roles matterCode matterName
                          operationName documentHash subjects hash
                          decisions { field owner decision count grade reason } } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

HISTORY = """
query($id: ID!) {
  accessHistory(idNumber: $id) {
    at callerApp callerRegion matterCode matterName released { field decision owner }
  }
}
"""


def unique_app(prefix: str) -> str:
    """A caller app id no other test uses, so its events can be picked out of the shared log."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def auditor() -> str:
    return token("NATIONAL", "auditor", app="audit-national")


async def events(client: GatewayClient, **conditions: Any) -> list[dict[str, Any]]:
    body = await client.query(EVENTS, {"filter": conditions}, token=auditor())
    assert "errors" not in body, body["errors"]
    return [edge["node"] for edge in body["data"]["auditEvents"]["edges"]]


def fifty_ids(seeded: Seeded) -> list[str]:
    return [
        seeded.dataset.person(region, i)["id_number"]
        for i in range(13)
        for region in ("SH", "JS", "ZJ", "AH")
    ][:50]


async def test_one_event_lists_all_fifty_persons_and_each_sees_it(seeded: Seeded) -> None:
    ids = fifty_ids(seeded)
    app = unique_app("jh-js")
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            PERSONS, {"ids": ids}, token=token("JS", "joint_handling_officer", app=app), matter=JH
        )
        assert all(person["name"] for person in body["data"]["naturalPersons"])
        trace_id = body["extensions"]["traceId"]

        [found] = await events(client, callerApp=app)
        assert found["traceId"] == trace_id
        assert sorted(found["subjects"]) == sorted(ids)
        assert (found["callerRegion"], found["roles"]) == ("JS", ["joint_handling_officer"])
        assert (found["matterCode"], found["matterName"]) == (JH, "户口迁移")
        assert found["operationName"] == "CaseFiles"
        # The document is named by the SHA-256 of its text, as registered operations are.
        assert found["documentHash"] == hashlib.sha256(PERSONS.encode()).hexdigest()
        names = {(d["field"], d["owner"]): d for d in found["decisions"]}
        assert names["NaturalPerson.name", "SH"]["decision"] == "CLEAR"
        assert (
            sum(d["count"] for d in found["decisions"] if d["field"] == "NaturalPerson.name") == 50
        )

        for id_number in ids:
            history = await client.query(
                HISTORY, {"id": id_number}, token=token("SH", "citizen", subject=id_number)
            )
            [access] = [a for a in history["data"]["accessHistory"] if a["callerApp"] == app]
            assert access["at"] == found["at"]
            assert access["matterName"] == "户口迁移"
            released = {(r["field"], r["decision"]) for r in access["released"]}
            assert ("NaturalPerson.name", "CLEAR") in released


async def test_an_audit_event_and_its_trace_lead_to_each_other(seeded: Seeded) -> None:
    app = unique_app("counter")
    person = seeded.dataset.person("SH", 3)
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($id: ID!) { naturalPerson(idNumber: $id) { name } }",
            {"id": person["id_number"]},
            token=token("SH", "one_stop_app", app=app),
            matter="OS-ENTERPRISE-OPENING",
        )
        [by_app] = await events(client, callerApp=app)
        [by_trace] = await events(client, traceId=body["extensions"]["traceId"])
    assert by_app == by_trace
    assert by_trace["subjects"] == [person["id_number"]]


async def test_a_caller_cannot_put_its_event_in_another_callers_trace(seeded: Seeded) -> None:
    officer, portal = unique_app("jh-js"), unique_app("portal")
    person = seeded.dataset.person("JS", 4)["id_number"]
    async with serve(gateway_settings(seeded.dsn)) as client:
        first = await client.query(
            PERSONS, {"ids": [person]}, token=token("JS", "joint_handling_officer", app=officer),
            matter=JH,
        )  # fmt: skip
        officers_trace = first["extensions"]["traceId"]
        # The portal sends the officer's trace id as its own traceparent.
        copied = await client.post(
            "query($i: ID!) { naturalPerson(idNumber: $i) { name } }",
            {"i": person},
            token=token("AH", "public_portal", app=portal),
            headers={"traceparent": f"00-{officers_trace}-00f067aa0ba902b7-01"},
        )
        by_trace = await events(client, traceId=officers_trace)
        [portals] = await events(client, callerApp=portal)
    assert copied.status_code == 200
    assert [event["callerApp"] for event in by_trace] == [officer]
    assert portals["traceId"] == copied.json()["extensions"]["traceId"] != officers_trace


async def test_operations_on_public_data_only_write_no_event(seeded: Seeded) -> None:
    app = unique_app("portal")
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($u: ID!) { legalPerson(uscc: $u) { name status creditRecords { kind } } }",
            {"u": seeded.dataset.uscc("ZJ", 2)},
            token=token("AH", "public_portal", app=app),
        )
        assert body["data"]["legalPerson"]["name"]
        assert await events(client, callerApp=app) == []


async def test_a_request_for_withheld_personal_data_is_recorded_as_an_attempt(
    seeded: Seeded,
) -> None:
    app = unique_app("curious")
    person = seeded.dataset.person("JS", 4)
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(
            "query($id: ID!) { naturalPerson(idNumber: $id) { phone } }",
            {"id": person["id_number"]},
            token=token("JS", "public_portal", app=app),
        )
        # Not even whether the ID number is in the register: the look-up itself is withheld.
        assert body["data"]["naturalPerson"] is None
        [found] = await events(client, callerApp=app)
    assert found["subjects"] == [person["id_number"]]
    [lookup] = [d for d in found["decisions"] if d["field"] == "NaturalPerson.idNumber"]
    assert (lookup["decision"], lookup["reason"], lookup["grade"]) == (
        "WITHHELD",
        "NO_MATTER",
        "L3",
    )


@pytest.mark.parametrize(
    "caller",
    [
        token("SH", "one_stop_app"),
        token("SH", "citizen", subject="11010519491231002X"),
        token("NATIONAL", "public_portal"),
    ],
)
async def test_only_auditors_read_the_audit_log(seeded: Seeded, caller: str) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(EVENTS, {}, token=caller, matter=None)
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


async def test_reading_the_audit_log_is_itself_audited(seeded: Seeded) -> None:
    subject = seeded.dataset.person("ZJ", 5)["id_number"]
    reader = unique_app("auditor")
    async with serve(gateway_settings(seeded.dsn)) as client:
        first = await client.query(
            "query WhoSaw($s: String!) {"
            " auditEvents(filter: {subjectId: $s}) { edges { node { at } } } }",
            {"s": subject},
            token=token("NATIONAL", "auditor", app=reader),
        )
        [read] = await events(client, callerApp=reader)
    assert read["traceId"] == first["extensions"]["traceId"]
    assert read["operationName"] == "WhoSaw"
    assert read["subjects"] == [subject]
    assert [(d["field"], d["decision"]) for d in read["decisions"]] == [
        ("Query.auditEvents", "CLEAR")
    ]


@pytest.mark.parametrize(
    ("caller", "why"),
    [
        (token("SH", "citizen", subject="360426199101010071"), "another citizen"),
        (token("SH", "public_portal", subject="11010519491231002X"), "no citizen role"),
        (token("SH", "citizen"), "no subject claim"),
        (token("NATIONAL", "auditor"), "an auditor"),
    ],
)
async def test_access_history_is_for_the_citizen_alone(
    seeded: Seeded, caller: str, why: str
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        body = await client.query(HISTORY, {"id": "11010519491231002X"}, token=caller)
    assert body["data"] is None, why
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"], why


async def test_pages_and_filters(seeded: Seeded) -> None:
    app = unique_app("pager")
    ids = fifty_ids(seeded)[:5]
    officer = token("JS", "joint_handling_officer", app=app)
    async with serve(gateway_settings(seeded.dsn)) as client:
        traces = []
        for id_number in ids:
            body = await client.query(PERSONS, {"ids": [id_number]}, token=officer, matter=JH)
            traces.append(body["extensions"]["traceId"])
        seen: list[str] = []
        after = None
        while True:
            body = await client.query(
                EVENTS, {"filter": {"callerApp": app}, "first": 2, "after": after}, token=auditor()
            )
            page = body["data"]["auditEvents"]
            seen += [edge["node"]["traceId"] for edge in page["edges"]]
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["pageInfo"]["endCursor"]
        assert seen == list(reversed(traces))  # newest first, each once

        day = (await events(client, traceId=traces[0]))[0]["at"][:10]
        at = (await events(client, traceId=traces[2]))[0]["at"]
        assert len(await events(client, callerApp=app, matterCode=JH, **{"from": day})) == 5
        assert await events(client, callerApp=app, to="2000-01-01") == []
        assert len(await events(client, callerApp=app, **{"from": at, "to": at})) == 1
        assert len(await events(client, callerApp=app, subjectId=ids[1])) == 1


@pytest.mark.parametrize(
    ("variables", "code", "argument"),
    [
        ({"filter": {"traceId": "not-a-trace"}}, "BAD_REQUEST", "traceId"),
        ({"filter": {"from": "yesterday"}}, "BAD_REQUEST", "from"),
        ({"filter": {"subjectId": "123"}}, "INVALID_ID", "subjectId"),
        ({"after": "forged-cursor"}, "BAD_REQUEST", "after"),
        ({"first": 101}, "BATCH_TOO_LARGE", "first"),
    ],
)
async def test_bad_arguments_are_refused_with_their_name(
    seeded: Seeded, variables: dict[str, Any], code: str, argument: str
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        # A page too large is refused before execution (400), the others as field errors.
        body = (await client.post(EVENTS, variables, token=auditor())).json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"]["argument"] == argument


async def test_without_an_audit_database_personal_data_is_refused(seeded: Seeded) -> None:
    person = seeded.dataset.person("SH", 6)
    async with serve(gateway_settings(seeded.dsn, audit_dsn=None)) as client:
        personal = await client.post(
            "query($id: ID!) { naturalPerson(idNumber: $id) { name } }",
            {"id": person["id_number"]},
            token=token("SH", "one_stop_app"),
            matter="OS-ENTERPRISE-OPENING",
        )
        public = await client.query(
            "query($u: ID!) { legalPerson(uscc: $u) { name } }",
            {"u": seeded.dataset.uscc("SH", 6)},
            token=token("SH", "one_stop_app"),
        )
    assert personal.status_code == 503
    assert "data" not in personal.json()
    assert person["name"] not in personal.text
    assert personal.json()["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
    assert public["data"]["legalPerson"]["name"]


PAGED_HISTORY = """
query($id: ID!, $first: Int!, $after: String) {
  accessHistory(idNumber: $id, first: $first, after: $after) { cursor at callerApp }
}
"""


async def test_a_citizen_pages_back_through_the_whole_history(seeded: Seeded) -> None:
    id_number = seeded.dataset.person("ZJ", 7)["id_number"]
    app = unique_app("history")
    citizen = token("ZJ", "citizen", subject=id_number)
    async with serve(gateway_settings(seeded.dsn)) as client:
        for _ in range(5):
            body = await client.query(
                PERSONS, {"ids": [id_number]},
                token=token("JS", "joint_handling_officer", app=app), matter=JH,
            )  # fmt: skip
            assert body["data"]["naturalPersons"][0]["name"]
        pages, after = [], None
        while True:
            body = await client.query(
                PAGED_HISTORY, {"id": id_number, "first": 2, "after": after}, token=citizen
            )
            page = body["data"]["accessHistory"]
            if not page:
                break
            assert len(page) <= 2
            pages.append(page)
            after = page[-1]["cursor"]
        bad = await client.query(
            PAGED_HISTORY, {"id": id_number, "first": 2, "after": "not-a-cursor"}, token=citizen
        )
    records = [record for page in pages for record in page]
    assert len({record["cursor"] for record in records}) == len(records)  # no record twice
    ours = [record for record in records if record["callerApp"] == app]
    assert len(ours) == 5
    assert [r["at"] for r in records] == sorted((r["at"] for r in records), reverse=True)
    [error] = bad["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert error["extensions"]["argument"] == "after"
