"""Registered operations: the manifest, ``deltagate operations register``, and a gateway that
runs registered documents only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gateway.core.errors import ConfigError
from gateway.edge.cli import main
from gateway.edge.documents import DocumentGuard
from gateway.edge.operations import register
from gateway.edge.query_limits import Limits
from schema import build_schema
from tests.client import serve
from tests.conftest import Seeded, gateway_settings, token

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PORTAL = token("AH", "public_portal", app="portal-ah")
CREDIT_CHECK = (EXAMPLES / "credit-check.graphql").read_text(encoding="utf-8")


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def guard(limits: Limits | None = None) -> DocumentGuard:
    return DocumentGuard(build_schema()._schema, limits or Limits())


def test_register_adds_checked_documents_by_their_hash(tmp_path: Path) -> None:
    manifest = tmp_path / "operations.json"
    files = [EXAMPLES / "credit-check.graphql", EXAMPLES / "joint-handling-list.graphql"]
    done = register(manifest, files, guard())
    assert [(e.names, e.new) for e in done] == [
        (("CreditCheck",), True), (("JointHandlingList",), True),
    ]  # fmt: skip
    operations = json.loads(manifest.read_text(encoding="utf-8"))["operations"]
    assert operations[sha256(CREDIT_CHECK)]["document"] == CREDIT_CHECK
    assert operations[sha256(CREDIT_CHECK)]["file"] == "credit-check.graphql"
    again = register(manifest, files[:1], guard())
    assert [e.new for e in again] == [False]
    assert len(json.loads(manifest.read_text(encoding="utf-8"))["operations"]) == 2


@pytest.mark.parametrize(
    ("document", "limits", "reason"),
    [
        ("{ legalPerson(uscc: 1) { nope } }", None, "Cannot query field 'nope'"),
        ("{ legalPerson(uscc: ", None, "Syntax Error"),
        ("fragment F on LegalPerson { name }", None, "is not valid: Fragment 'F' is never used"),
        (CREDIT_CHECK, Limits(max_depth=2), "3 levels deep"),
    ],
    ids=["invalid", "syntax", "no-operation", "over-a-limit"],
)
def test_register_refuses_what_a_request_would_be_refused_and_writes_nothing(
    tmp_path: Path, document: str, limits: Limits | None, reason: str
) -> None:
    good, bad = tmp_path / "good.graphql", tmp_path / "bad.graphql"
    good.write_text(CREDIT_CHECK, encoding="utf-8")
    bad.write_text(document, encoding="utf-8")
    manifest = tmp_path / "operations.json"
    with pytest.raises(ConfigError, match=reason):
        register(manifest, [good, bad], guard(limits))
    assert not manifest.exists()


def test_the_register_command_prints_each_hash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "operations.json"
    file = EXAMPLES / "counter-lookup.graphql"
    assert main(["operations", "register", str(file), "--manifest", str(manifest)]) == 0
    digest = sha256(file.read_text(encoding="utf-8"))
    assert f"{digest}  {file}  CounterLookup  (registered)" in capsys.readouterr().out
    assert main(["operations", "list", "--manifest", str(manifest)]) == 0
    assert capsys.readouterr().out.startswith(f"{digest}  CounterLookup  counter-lookup.graphql")
    assert main(["operations", "register", str(file)]) == 2  # no manifest named
    assert "--manifest" in capsys.readouterr().err


def test_the_register_command_reads_manifest_and_limits_from_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('[operations]\nmanifest = "ops.json"\n[limits]\nmax_depth = 2\n')
    code = main(["operations", "register", str(EXAMPLES / "credit-check.graphql"),
                 "--config", str(config)])  # fmt: skip
    assert code == 2
    assert "3 levels deep" in capsys.readouterr().err
    shallow = tmp_path / "shallow.graphql"
    shallow.write_text("query Shallow($u: ID!) { legalPerson(uscc: $u) { name } }\n")
    assert main(["operations", "register", str(shallow), "--config", str(config)]) == 0
    assert (tmp_path / "ops.json").exists()


async def test_a_gateway_with_a_manifest_runs_registered_operations_only(
    seeded: Seeded, tmp_path: Path
) -> None:
    manifest = tmp_path / "operations.json"
    register(manifest, [EXAMPLES / "credit-check.graphql"], guard())
    settings = gateway_settings(seeded.dsn, operations_manifest=manifest, policy_reload_interval=0)
    uscc = {"uscc": seeded.dataset.uscc("ZJ", 3)}
    lookup = (EXAMPLES / "counter-lookup.graphql").read_text(encoding="utf-8")
    async with serve(settings) as client:
        registered = await client.query(CREDIT_CHECK, uscc, token=PORTAL)
        assert registered["data"]["legalPerson"]["uscc"] == uscc["uscc"]

        # Byte for byte: the same operation with other white space is another document.
        for document in (lookup, CREDIT_CHECK.strip(), "{ __typename }"):
            response = await client.post(document, uscc, token=PORTAL)
            assert response.status_code == 403
            [error] = response.json()["errors"]
            assert error["extensions"] == {"code": "FORBIDDEN", "sha256": sha256(document)}
            assert sha256(document) in error["message"]

        # As a persisted query: the hash alone.
        persisted = await client.http.post(
            "/graphql",
            json={"variables": uscc, "extensions": {"persistedQuery": {"version": 1,
                  "sha256Hash": sha256(CREDIT_CHECK)}}},
            headers={"Authorization": f"Bearer {PORTAL}"},
        )  # fmt: skip
        assert persisted.json()["data"] == registered["data"]
        unknown = await client.http.post(
            "/graphql",
            json={"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}},
            headers={"Authorization": f"Bearer {PORTAL}"},
        )
        assert unknown.status_code == 403
        assert unknown.json()["errors"][0]["extensions"]["sha256"] == "0" * 64
        mismatch = await client.http.post(
            "/graphql",
            json={"query": CREDIT_CHECK, "variables": uscc,
                  "extensions": {"persistedQuery": {"sha256Hash": sha256(lookup)}}},
            headers={"Authorization": f"Bearer {PORTAL}"},
        )  # fmt: skip
        assert mismatch.status_code == 400

        # Registered while the gateway runs: accepted without a restart.
        register(manifest, [EXAMPLES / "counter-lookup.graphql"], guard())
        person = {"idNumber": seeded.dataset.person_id("SH", 1)}
        # As the example's caller sends it: a Shanghai counter app under its matter.
        clerk = token("SH", "one_stop_app", app="counter-sh")
        answer = await client.query(lookup, person, token=clerk, matter="OS-ENTERPRISE-OPENING")
        assert answer["data"]["naturalPerson"] is not None

        # A manifest broken by hand leaves the registered operations in force.
        manifest.write_text("{ not json", encoding="utf-8")
        again = await client.query(lookup, person, token=clerk, matter="OS-ENTERPRISE-OPENING")
        assert again["data"]["naturalPerson"]


def test_a_gateway_refuses_to_start_without_its_manifest(seeded: Seeded, tmp_path: Path) -> None:
    from gateway.edge.app import Gateway

    settings = gateway_settings(seeded.dsn, operations_manifest=tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="operations manifest"):
        Gateway.from_settings(settings)


def test_a_manifest_entry_must_match_its_document(tmp_path: Path) -> None:
    from gateway.edge.operations import load_manifest

    manifest = tmp_path / "operations.json"
    register(manifest, [EXAMPLES / "credit-check.graphql"], guard())
    raw = json.loads(manifest.read_text(encoding="utf-8"))
    [entry] = raw["operations"].values()
    entry["document"] = entry["document"].replace("name", "name phone")
    manifest.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ConfigError, match="does not match its document"):
        load_manifest(manifest)
