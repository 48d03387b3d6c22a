"""``deltagate demo --cascade``: two provincial gateways and the delta gateway over them.

The demo is run as a user runs it; a query crossing the provinces is asked at the
top with a token it printed, then SIGTERM (as a service manager or a container
runtime stops it) must stop every process and embedded server it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from gateway.edge.demo_cascade import PROVINCES, cascade_examples
from gateway.synthetic import Dataset
from tests.conftest import embedded_data_dir
from tests.gateway.edge.test_cli import free_port
from tests.gateway.edge.test_embedded import _postmaster

pytestmark = pytest.mark.slow

PERSONS = 30
SEED = 20240601
CROSSING = """query($u: ID!, $id: ID!) {
  legalPerson(uscc: $u) { name legalRepresentative { name householdRegion } }
  naturalPerson(idNumber: $id) { name residences { region } } }"""


@pytest.fixture
def base() -> Iterator[Path]:
    if os.environ.get("DELTAGATE_TEST_DSN"):
        pytest.skip("starts embedded servers of its own")
    data = embedded_data_dir("-cascade")
    yield data
    for suffix in ("-sh", "-js", "-delta"):  # a failed test leaves no server behind either
        left = _postmaster(Path(f"{data}{suffix}"))
        if left is not None:
            left.terminate()
            left.wait(30)


def test_the_cascade_demo_answers_across_provinces_and_sigterm_stops_everything(
    base: Path,
) -> None:
    port = free_port()
    with subprocess.Popen(
        [sys.executable, "-m", "gateway.edge.cli", "demo", "--cascade", "--persons",
         str(PERSONS), "--seed", str(SEED), "--port", str(port), "--data-dir", str(base)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as demo:  # fmt: skip
        seen: list[str] = []
        try:
            assert demo.stdout is not None
            for line in demo.stdout:  # until the top serves
                seen.append(line)
                if "Uvicorn running" in line:
                    break
            output = "".join(seen)
            officer = seen[next(i for i, s in enumerate(seen) if "officer, Jiangsu" in s) + 1]
            bearer = officer.split("token:", 1)[1].strip()
            provinces = [c for c in psutil.Process(demo.pid).children() if "serve" in c.cmdline()]
            assert len(provinces) == len(PROVINCES), output
            examples = cascade_examples(Dataset(PERSONS, SEED))
            answer = httpx.post(
                f"http://127.0.0.1:{port}/graphql",
                json={"query": CROSSING, "variables": {"u": examples["uscc"],
                                                       "id": examples["idNumber"]}},
                headers={"Authorization": f"Bearer {bearer}",
                         "X-Matter-Code": "JH-HUKOU-MIGRATION"},
                timeout=30,
            ).json()  # fmt: skip
            demo.send_signal(signal.SIGTERM)
            demo.wait(90)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait(30)
    assert "errors" not in answer, answer
    representative = answer["data"]["legalPerson"]["legalRepresentative"]
    assert representative["householdRegion"] == "SH"  # Jiangsu's enterprise, Shanghai's person
    assert "JS" in {r["region"] for r in answer["data"]["naturalPerson"]["residences"]}
    assert "GraphiQL" in output
    assert [p for p in provinces if p.is_running() and p.status() != "zombie"] == []
    for suffix in ("-sh", "-js", "-delta"):
        assert _postmaster(Path(f"{base}{suffix}")) is None, suffix
