"""The cascade end to end: a delta gateway over two provincial gateways, three processes.

Each gateway is a ``deltagate serve`` process on loopback with its own data
(its region's database), its own audit database and its own policy folder:

- Jiangsu and Zhejiang serve their own region; they trust the delta gateway's
  delegation key (its JWKS, printed by ``deltagate delegation jwks``) and grade
  ``NaturalPerson.phone`` L4, so a Shanghai officer gets it masked from them;
- the delta gateway serves Shanghai from its own database and reaches JS and
  ZJ through their gateways, delegating each request for its caller; its own
  policy denies the officer ``NaturalPerson.householdAddress``, which the
  provinces would release.

Spans of all three go to one OTLP collector in this test. One set-up serves
every test; the one that deletes an audit event runs last.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.audit import EventQuery, PostgresAuditLog, StoredEvent, create_database
from gateway.core.delegation import mint_delegation
from policies import SHIPPED_POLICY_DIR
from tests.conftest import Seeded, token
from tests.gateway.edge.test_cli import ServerProcess, serving

pytestmark = pytest.mark.slow

TOP = "deltagate-delta"
PROVINCES = {"JS": "deltagate-js", "ZJ": "deltagate-zj"}
KID = "delta-1"
MATTER = "JH-HUKOU-MIGRATION"
OFFICER_APP = "jh-officer-sh"
QUERY = """query Move($ids: [ID!]!) {
  naturalPersons(idNumbers: $ids) { idNumber name phone householdAddress } }"""


class Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint keeping (service name, trace id) of every span posted."""

    spans: list[tuple[str, str]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource_spans.scope_spans:
                type(self).spans += [(service, span.trace_id.hex()) for span in scope.spans]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Cascade:
    top: ServerProcess
    provinces: dict[str, ServerProcess]
    audit: dict[str, str]  # "TOP", "JS", "ZJ": audit DSNs
    key: ec.EllipticCurvePrivateKey
    spans: list[tuple[str, str]]
    persons: dict[str, list[str]]
    answer: dict[str, Any]  # the top's answer to QUERY for the officer
    window: tuple[float, float]  # epoch seconds around it


def officer() -> str:
    return token("SH", "joint_handling_officer", app=OFFICER_APP)


def service_token() -> str:
    """The delta gateway's own token at the provinces: it may act for others, nothing more."""
    return token("NATIONAL", "delta_platform", app=TOP)


def policy_folder(folder: Path, edit: str, old: str, new: str) -> Path:
    """A copy of the shipped policies with one file's line changed."""
    shutil.copytree(SHIPPED_POLICY_DIR, folder)
    path = folder / edit
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return folder


def post(server: ServerProcess, query: str, variables: dict[str, Any], **headers: str) -> Any:
    return httpx.post(
        f"{server.base}/graphql",
        json={"query": query, "variables": variables},
        headers=headers,
        timeout=20,
    )


def requests_from_top(province: ServerProcess) -> float:
    """The province's ``deltagate_requests_total`` for the delta gateway's token."""
    text = httpx.get(f"{province.base}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("deltagate_requests_total{") and f'app="{TOP}"' in line
    )


def events(dsn: str, trace_id: str) -> list[StoredEvent]:
    async def read() -> list[StoredEvent]:
        log = PostgresAuditLog(dsn, guards_required=False)
        try:
            return await log.read(EventQuery(trace_id=trace_id, limit=50))
        finally:
            await log.close()

    return asyncio.run(read())


def reconcile(cascade: Cascade) -> subprocess.CompletedProcess[str]:
    since, until = cascade.window
    command = [
        sys.executable, "-m", "gateway.edge.cli", "audit", "reconcile",
        "--upper", cascade.audit["TOP"], "--acting", TOP,
        "--since", time_text(since), "--until", time_text(until),
    ]  # fmt: skip
    for region in PROVINCES:
        command += ["--lower", f"{region}={cascade.audit[region]}"]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def time_text(epoch: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat()


@pytest.fixture(scope="module")
def cascade(seeded: Seeded, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cascade]:
    folder = tmp_path_factory.mktemp("cascade")
    handler = type("Handler", (Collector,), {"spans": []})
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    with ExitStack() as stack:
        stack.callback(collector.server_close)
        stack.callback(collector.shutdown)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = folder / "delta-key.pem"
        pem.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        jwks = subprocess.run(
            [sys.executable, "-m", "gateway.edge.cli", "delegation", "jwks",
             "--key", str(pem), "--kid", KID],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        (folder / "delta-jwks.json").write_text(jwks, encoding="utf-8")
        audit = {
            name: asyncio.run(create_database(seeded.dsn, f"deltagate_audit_{name.lower()}",
                                              fresh=True))
            for name in ("TOP", *PROVINCES)
        }  # fmt: skip
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        }
        provinces = {}
        for region, gateway_id in PROVINCES.items():
            home = folder / region.lower()
            home.mkdir()
            # The province grades the phone L4: one above the officer's L3, so masked.
            policies = policy_folder(
                home / "policies", "catalog.toml",
                'phone = { grade = "L3", mask = "PHONE" }',
                'phone = { grade = "L4", mask = "PHONE" }',
            )  # fmt: skip
            config = [
                "[limits]", "rate_limits = false",
                "[delegation]", f'id = "{gateway_id}"',
                f'trusted_jwks = "{folder / "delta-jwks.json"}"', f'trusted_issuers = ["{TOP}"]',
            ]  # fmt: skip
            provinces[region] = stack.enter_context(
                serving(
                    seeded,
                    home,
                    config=config,
                    regions=(region,),
                    DELTAGATE_AUDIT_DSN=audit[region],
                    DELTAGATE_POLICY_DIR=str(policies),
                    OTEL_SERVICE_NAME=gateway_id,
                    **otel,
                )
            )
        home = folder / "top"
        home.mkdir()
        # The top denies the officer the household address, which the provinces release.
        policies = policy_folder(
            home / "policies", "policy.csv",
            "p, joint_handling_officer, own, JH-HUKOU-MIGRATION, *, L4, allow",
            "p, joint_handling_officer, own, JH-HUKOU-MIGRATION, *, L4, allow\n"
            "p, joint_handling_officer, *, *, NaturalPerson.householdAddress, *, deny",
        )  # fmt: skip
        config = [
            "[limits]", "rate_limits = false",
            "[delegation]", f'id = "{TOP}"', f'signing_key = "{pem}"', f'signing_key_id = "{KID}"',
        ]  # fmt: skip
        tokens = {}
        for region, gateway_id in PROVINCES.items():
            config += [
                f"[sources.{region}]", 'kind = "gateway"',
                f'url = "{provinces[region].base}/graphql"',
                f'token_env = "DELTAGATE_UPSTREAM_TOKEN_{region}"',
                f'delegation_audience = "{gateway_id}"', "breaker_failures = 5",
            ]  # fmt: skip
            tokens[f"DELTAGATE_UPSTREAM_TOKEN_{region}"] = service_token()
        top = stack.enter_context(
            serving(
                seeded,
                home,
                config=config,
                regions=("SH",),
                DELTAGATE_AUDIT_DSN=audit["TOP"],
                DELTAGATE_POLICY_DIR=str(policies),
                OTEL_SERVICE_NAME=TOP,
                **otel,
                **tokens,
            )
        )
        persons = {
            region: [seeded.dataset.person_id(region, i) for i in range(3)]
            for region in ("SH", *PROVINCES)
        }
        ids = [key for keys in persons.values() for key in keys]
        started = time.time()
        response = post(top, QUERY, {"ids": ids}, Authorization=f"Bearer {officer()}",
                        **{"X-Matter-Code": MATTER})  # fmt: skip
        assert response.status_code == 200, response.text + top.output
        finished = time.time()  # both levels' events were committed before the answer
        yield Cascade(
            top, provinces, audit, key, handler.spans, persons, response.json(),
            (started - 1, finished),
        )  # fmt: skip


def by_id(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["idNumber"]: p for p in answer["data"]["naturalPersons"] if p is not None}


def test_one_query_through_the_top_returns_both_provinces_data(
    cascade: Cascade, seeded: Seeded
) -> None:
    assert "errors" not in cascade.answer, cascade.answer["errors"]
    found = by_id(cascade.answer)
    for region in ("SH", *PROVINCES):
        for i, key in enumerate(cascade.persons[region]):
            assert found[key]["name"] == seeded.dataset.person(region, i)["name"]


def test_a_field_a_province_masks_stays_masked_though_the_top_would_clear_it(
    cascade: Cascade, seeded: Seeded
) -> None:
    found = by_id(cascade.answer)
    for region in PROVINCES:
        for i, key in enumerate(cascade.persons[region]):
            clear = seeded.dataset.person(region, i)["phone"]
            assert found[key]["phone"] != clear
            assert "*" in found[key]["phone"]
    # The top's own Shanghai phones are clear to the officer: its policy would clear them.
    sh = seeded.dataset.person("SH", 0)
    assert found[cascade.persons["SH"][0]]["phone"] == sh["phone"]
    # ... and the top records the JS and ZJ phones as masked (decided below), not clear.
    trace = cascade.answer["extensions"]["traceId"]
    (event,) = events(cascade.audit["TOP"], trace)
    phone = {
        e["owner"]: (e["decision"], e["reason"])
        for e in event.event.decisions
        if e["field"] == "NaturalPerson.phone"
    }
    assert phone["JS"] == phone["ZJ"] == ("MASKED", "DECIDED_BELOW")
    assert phone["SH"][0] == "CLEAR"


def test_a_field_the_top_withholds_is_withheld_though_the_province_would_clear_it(
    cascade: Cascade,
) -> None:
    found = by_id(cascade.answer)
    assert all(person["householdAddress"] is None for person in found.values())
    trace = cascade.answer["extensions"]["traceId"]
    for region in PROVINCES:
        (event,) = events(cascade.audit[region], trace)
        decided = {e["field"]: e["decision"] for e in event.event.decisions}
        assert decided["NaturalPerson.householdAddress"] == "CLEAR"  # released below


def test_each_province_records_the_caller_the_matter_and_the_acting_gateway(
    cascade: Cascade,
) -> None:
    trace = cascade.answer["extensions"]["traceId"]
    (top,) = events(cascade.audit["TOP"], trace)
    assert top.event.caller_app == OFFICER_APP
    assert top.event.acting is None
    receipts = {r["region"]: r for r in top.event.receipts}
    assert set(receipts) == set(PROVINCES)
    for region, gateway_id in PROVINCES.items():
        (event,) = events(cascade.audit[region], trace)
        assert event.event.caller_app == OFFICER_APP
        assert event.event.caller_region == "SH"
        assert event.event.roles == ("joint_handling_officer",)
        assert event.event.matter_code == MATTER
        assert event.event.acting == TOP
        assert set(event.event.subjects) == set(cascade.persons[region])
        assert receipts[region] == {
            "gateway": gateway_id, "region": region, "chain": event.chain, "seq": event.seq,
            "hash": event.hash,
        }  # fmt: skip


def test_the_trace_id_is_the_same_in_all_three_gateways_spans_and_events(
    cascade: Cascade,
) -> None:
    trace = cascade.answer["extensions"]["traceId"]
    services = {TOP, *PROVINCES.values()}
    for _ in range(100):
        if services <= {s for s, t in cascade.spans if t == trace}:
            break
        time.sleep(0.1)
    assert services <= {s for s, t in cascade.spans if t == trace}
    for name in ("TOP", *PROVINCES):
        assert [e.event.trace_id for e in events(cascade.audit[name], trace)] == [trace]


def test_upstream_requests_per_operation_do_not_grow_with_the_keys(
    cascade: Cascade, seeded: Seeded
) -> None:
    query = "query($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { idNumber name } }"
    counts = []
    for n in (2, 40):
        ids = [seeded.dataset.person_id(r, i) for r in PROVINCES for i in range(n)]
        before = {r: requests_from_top(p) for r, p in cascade.provinces.items()}
        response = post(cascade.top, query, {"ids": ids}, Authorization=f"Bearer {officer()}",
                        **{"X-Matter-Code": MATTER})  # fmt: skip
        assert "errors" not in response.json()
        counts.append({r: requests_from_top(p) - before[r] for r, p in cascade.provinces.items()})
    assert counts[0] == counts[1] == {"JS": 1, "ZJ": 1}


def delegation(key: Any, audience: str = "deltagate-js", **changes: Any) -> str:
    options: dict[str, Any] = {
        "key": key, "kid": KID, "issuer": TOP, "audience": audience, "sub": OFFICER_APP,
        "region": "SH", "roles": ["joint_handling_officer"], "matter": MATTER,
    }  # fmt: skip
    return mint_delegation(**{**options, **changes})


@pytest.mark.parametrize("case", ["forged", "expired", "wrong audience", "replayed"])
def test_a_bad_delegation_is_refused_by_the_province_with_401_and_no_data(
    cascade: Cascade, case: str
) -> None:
    js = cascade.provinces["JS"]
    if case == "forged":
        sent = delegation(ec.generate_private_key(ec.SECP256R1()))
    elif case == "expired":
        sent = delegation(cascade.key, now=time.time() - 300)
    elif case == "wrong audience":
        sent = delegation(cascade.key, audience="deltagate-zj")
    else:
        sent = delegation(cascade.key)
        first = post(js, QUERY, {"ids": cascade.persons["JS"]}, **headers(sent))
        assert first.status_code == 200, first.text
    response = post(js, QUERY, {"ids": cascade.persons["JS"]}, **headers(sent))
    body = response.json()
    assert response.status_code == 401, case
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


def headers(delegated: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {service_token()}",
        "X-Matter-Code": MATTER,
        "X-Delegation": delegated,
    }


def test_a_direct_call_without_delegation_is_decided_for_the_gateways_own_identity(
    cascade: Cascade, seeded: Seeded
) -> None:
    js = cascade.provinces["JS"]
    # Without the matter: the gateway's identity may use none (it would be FORBIDDEN).
    own = {"Authorization": f"Bearer {service_token()}"}
    direct = post(js, QUERY, {"ids": cascade.persons["JS"][:1]}, **own).json()
    delegated = post(
        js, QUERY, {"ids": cascade.persons["JS"][:1]}, **headers(delegation(cascade.key))
    ).json()
    # The gateway's own token holds no grant: the public's L1, where a person's record is
    # not even looked up by its ID number (L3); for the officer it is.
    assert direct["data"]["naturalPersons"] == [None]
    assert direct["extensions"]["backendQueries"] == 0
    assert "auditReceipt" not in direct["extensions"]
    person = delegated["data"]["naturalPersons"][0]
    assert person["name"] == seeded.dataset.person("JS", 0)["name"]
    assert delegated["extensions"]["auditReceipt"]["gateway"] == "deltagate-js"


def test_a_forged_trace_context_header_does_not_choose_the_provinces_trace(
    cascade: Cascade,
) -> None:
    forged = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    sent = {**headers(delegation(cascade.key)), "traceparent": forged}
    body = post(cascade.provinces["JS"], QUERY, {"ids": cascade.persons["JS"][:1]}, **sent)
    # Only the traceparent signed inside a delegation is continued; this one was not signed.
    assert body.json()["extensions"]["traceId"] != "ab" * 16


def test_the_delegation_jwks_command_prints_the_public_key_only(cascade: Cascade) -> None:
    printed = json.loads(jwks_text(cascade))
    (entry,) = printed["keys"]
    assert (entry["kid"], entry["alg"]) == (KID, "ES256")
    assert "d" not in entry  # no private part
    public = jwt.PyJWK(entry).key.public_numbers()
    assert public == cascade.key.public_key().public_numbers()


def jwks_text(cascade: Cascade) -> str:
    pem = cascade.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return subprocess.run(
        [sys.executable, "-m", "gateway.edge.cli", "delegation", "jwks", "--key", "/dev/stdin",
         "--kid", KID],
        input=pem.decode(), capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip


AUDIT_QUERY = """query($t: String!) { auditEvents(filter: {traceId: $t}) { edges { node {
  callerApp matterCode actingGateway receipts { gateway region chain seq hash } } } } }"""


def test_auditors_read_the_acting_gateway_below_and_the_receipts_above(
    cascade: Cascade,
) -> None:
    trace = cascade.answer["extensions"]["traceId"]
    auditor = {"Authorization": f"Bearer {token('NATIONAL', 'auditor', app='audit-national')}"}
    [above] = post(cascade.top, AUDIT_QUERY, {"t": trace}, **auditor).json()["data"]["auditEvents"][
        "edges"
    ]
    assert above["node"]["actingGateway"] is None
    assert {r["region"]: r["gateway"] for r in above["node"]["receipts"]} == PROVINCES
    [below] = post(cascade.provinces["JS"], AUDIT_QUERY, {"t": trace}, **auditor).json()["data"][
        "auditEvents"
    ]["edges"]
    assert below["node"] == {
        "callerApp": OFFICER_APP, "matterCode": MATTER, "actingGateway": TOP, "receipts": [],
    }  # fmt: skip
    (js,) = [r for r in above["node"]["receipts"] if r["region"] == "JS"]
    (kept,) = events(cascade.audit["JS"], trace)
    assert (js["chain"], js["seq"]) == (kept.chain, kept.seq)


def test_reconcile_passes_then_reports_an_event_deleted_at_a_province(
    cascade: Cascade, seeded: Seeded
) -> None:
    passed = reconcile(cascade)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "1 upper events, 2 receipts" in passed.stdout
    assert passed.stdout.rstrip().endswith("reconciled")
    trace = cascade.answer["extensions"]["traceId"]
    (event,) = events(cascade.audit["JS"], trace)
    asyncio.run(delete_event(cascade.audit["JS"], event.id))
    failed = reconcile(cascade)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "missing: upper " in failed.stdout
    assert f"JS {event.chain}:{event.seq}, which is not there" in failed.stdout


async def delete_event(dsn: str, event_id: int) -> None:
    """What only the table's owner (or a superuser) can do: turn the guard off, delete, restore."""
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            await connection.execute(
                "ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only"
            )
            await connection.execute("DELETE FROM audit_event WHERE id = $1", event_id)
            await connection.execute(
                "ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only"
            )
    finally:
        await connection.close()
