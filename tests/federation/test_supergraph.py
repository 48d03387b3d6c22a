"""deltagate in a real Apollo Federation v2 supergraph: composed by ``@apollo/composition`` with a
second subgraph that extends ``LegalPerson``, served by ``@apollo/gateway``, each in a process of
its own (deltagate on the seeded PostgreSQL). A query across both subgraphs comes back with
deltagate's data as deltagate decides it for the caller whose headers the gateway passed on:
masked where masked, null where withheld or where the look-up is refused, and audited."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.audit import database_dsn
from tests.conftest import Seeded, token
from tests.gateway.audit.test_api import EVENTS, unique_app
from tests.gateway.edge.test_cli import serving

pytestmark = pytest.mark.slow

TOOLS = Path(__file__).resolve().parents[2] / "tools"
FEDERATION = TOOLS / "federation"
OPENING = "OS-ENTERPRISE-OPENING"

QUERY = """
query OpeningApplications {
  openingApplications {
    id
    applicant {
      uscc name address licenceStatus
      legalRepresentative { idNumber name birthDate ethnicity }
    }
    contact { idNumber name }
  }
}
"""


@pytest.fixture(scope="module")
def node() -> str:
    """Node, with tools/federation's packages installed (``tools/ensure-federation.sh``)."""
    found = shutil.which("node")
    if found is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not on PATH: the federation gateway test needs Node 20+")
    subprocess.run(["sh", str(TOOLS / "ensure-federation.sh")], check=True, timeout=600)
    return found


@contextmanager
def node_process(node: str, script: str, **env: str) -> Iterator[str]:
    """``node script`` until the block ends (SIGTERM, then SIGKILL), yielding the URL it
    prints once ready ("ready <url>")."""
    process = subprocess.Popen(
        [node, script],
        cwd=FEDERATION,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                line = process.stdout.readline().decode()
                if not line:
                    break  # the process ended
                lines.append(line)
                if line.startswith("ready "):
                    yield line.split()[1]
                    return
            elif process.poll() is not None:
                break
        if process.poll() is not None:  # ended: the rest of what it said, without blocking
            lines.append(process.stdout.read().decode())
        raise AssertionError(f"{script} did not start:\n{''.join(lines)}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()


def represented_elsewhere(seeded: Seeded, region: str, not_from: str) -> tuple[dict[str, Any], Any]:
    """An enterprise of ``region`` and its representative, whose home is neither ``region``
    nor ``not_from``."""
    data = seeded.dataset
    for index in range(data.enterprise_count(region)):
        home, rep = data.representative_of(region, index)
        if home not in (region, not_from):
            return data.enterprise(region, index), data.person(home, rep)
    raise AssertionError(f"no enterprise of {region} has a representative from elsewhere")


def test_a_query_across_the_supergraph_keeps_deltagates_decisions_and_audit(
    seeded: Seeded, node: str, tmp_path: Path
) -> None:
    data = seeded.dataset
    # A Jiangsu enterprise whose representative lives in a third region, and an own-region one.
    applicant, representative = represented_elsewhere(seeded, "JS", "SH")
    local = data.enterprise("SH", 3)
    own, other = data.person("SH", 4), data.person("JS", 4)
    nobody = data.person_id("JS", 10_001)  # valid, and nobody's
    applications = [
        {"id": "A1", "uscc": applicant["uscc"], "contact": own["id_number"]},
        {"id": "A2", "uscc": local["uscc"], "contact": other["id_number"]},
        {"id": "A3", "uscc": local["uscc"], "contact": nobody},
    ]
    app = unique_app("counter-sh")
    caller = token("SH", "one_stop_app", app=app)
    with (
        serving(seeded, tmp_path, DELTAGATE_AUDIT_DSN=database_dsn(seeded.dsn)) as deltagate,
        node_process(node, "licences.mjs", LICENCE_APPLICATIONS=json.dumps(applications)) as lic,
        node_process(
            node,
            "gateway.mjs",
            SUBGRAPHS=json.dumps(
                [
                    {"name": "deltagate", "url": f"{deltagate.base}/graphql"},
                    {"name": "licences", "url": lic},
                ]
            ),
            # Composition reads deltagate's _service { sdl }, which touches no data.
            SDL_AUTHORIZATION=f"Bearer {token('SH', 'public_portal', app='composition')}",
        ) as supergraph,
    ):
        response = httpx.post(
            supergraph,
            json={"query": QUERY},
            headers={"Authorization": f"Bearer {caller}", "X-Matter-Code": OPENING},
            timeout=30,
        )
        anonymous = httpx.post(supergraph, json={"query": QUERY}, timeout=30)
        audit = httpx.post(
            f"{deltagate.base}/graphql",
            json={"query": EVENTS, "variables": {"filter": {"callerApp": app}}},
            headers={"Authorization": f"Bearer {token('NATIONAL', 'auditor')}"},
            timeout=10,
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    first, second, third = body["data"]["openingApplications"]

    # deltagate's data, with the licensing office's own field beside it.
    assert first["applicant"]["uscc"] == applicant["uscc"]
    assert first["applicant"]["name"] == applicant["name"]
    assert first["applicant"]["address"] == applicant["address"]
    assert first["applicant"]["licenceStatus"] == f"LICENSED-{applicant['uscc'][-4:]}"
    assert second["applicant"]["name"] == local["name"]
    # deltagate's decisions for this caller: another region's person masked (the ID number
    # and the birth date), the negative-listed ethnicity withheld.
    rep = first["applicant"]["legalRepresentative"]
    assert rep["idNumber"] == representative["id_number"][:6] + "*" * 12
    assert rep["birthDate"] == representative["birth_date"][:4] + "-**-**"
    assert rep["ethnicity"] is None
    # _entities by ID number: answered where the caller sees the number in clear (its own
    # region under its matter), null otherwise, as naturalPerson(idNumber:) would be. The
    # gateway keeps the key it came with; deltagate's null reads the same for a person of
    # another region and for a number nobody holds.
    assert first["contact"] == {"idNumber": own["id_number"], "name": own["name"]}
    assert second["contact"] == {"idNumber": other["id_number"], "name": None}
    assert third["contact"] == {"idNumber": nobody, "name": None}

    # Without the caller's headers deltagate answers nothing.
    # Without the caller's headers deltagate refuses the gateway's requests: the other
    # subgraph's fields and nothing of deltagate's.
    refused = anonymous.json()
    assert {e["extensions"]["code"] for e in refused["errors"]} == {"UNAUTHENTICATED"}
    for item in refused["data"]["openingApplications"]:
        assert item["applicant"]["licenceStatus"].startswith("LICENSED-")
        assert item["applicant"]["name"] is None
        assert item["applicant"]["legalRepresentative"] is None
        assert item["contact"]["name"] is None

    # deltagate audited the caller's access, under the caller's matter.
    assert audit.status_code == 200, audit.text
    recorded = [edge["node"] for edge in audit.json()["data"]["auditEvents"]["edges"]]
    assert recorded, "no audit event for the supergraph's caller"
    assert {event["matterCode"] for event in recorded} == {OPENING}
    subjects = {subject for event in recorded for subject in event["subjects"]}
    assert {applicant["uscc"], local["uscc"], own["id_number"], other["id_number"]} <= subjects
    assert representative["id_number"] in subjects
