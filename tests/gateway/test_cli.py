"""The deltagate command: tokens, policy explanations, seeding, and a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.auth import TokenVerifier
from gateway.cli import main
from gateway.synthetic import region_dsn
from tests.conftest import JWT_SECRET, MASK_SECRET, PERSONS, SEED, Seeded, token


def test_token_mints_what_the_gateway_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DELTAGATE_JWT_SECRET", JWT_SECRET)
    code = main(["token", "--sub", "counter-9", "--region", "zj", "--role", "one_stop_app",
                 "--role", "public_portal", "--ttl", "60"])  # fmt: skip
    assert code == 0
    caller = TokenVerifier(hs256_secret=JWT_SECRET).verify(
        "Bearer " + capsys.readouterr().out.strip()
    )
    assert caller.app == "counter-9"
    assert caller.region == "ZJ"
    assert caller.roles == ("one_stop_app", "public_portal")


def test_token_without_a_secret_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DELTAGATE_JWT_SECRET", raising=False)
    assert main(["token", "--sub", "a", "--region", "SH", "--role", "x"]) == 2
    assert "DELTAGATE_JWT_SECRET" in capsys.readouterr().err


def test_policy_explain_prints_the_decision_and_its_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["policy", "explain", "--sub", "jh", "--region", "JS", "--roles",
                 "joint_handling_officer", "--matter", "JH-HUKOU-MIGRATION",
                 "--field", "NaturalPerson.ethnicity", "--owner", "AH"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("decision: WITHHELD")
    assert "NEGATIVE_LIST" in out
    assert "policy.csv" in out


def test_seed_reports_rows_and_sizes(seeded: Seeded, capsys: pytest.CaptureFixture[str]) -> None:
    # The same persons and seed as the session's data: the database is rebuilt identical.
    code = main(["seed", "--dsn", seeded.dsn, "--persons", str(PERSONS), "--seed", str(SEED),
                 "--regions", "ZJ"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"ZJ: {PERSONS} person")
    assert "MiB" in out


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_serve_runs_a_real_server_from_a_config_file(seeded: Seeded, tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "gateway.toml"
    lines = ["[gateway]", 'host = "127.0.0.1"', f"port = {port}"]
    for region in ("SH", "JS", "ZJ", "AH"):
        lines += [f"[sources.{region}]", f'dsn = "{region_dsn(seeded.dsn, region)}"']
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    env = {**os.environ, "DELTAGATE_JWT_SECRET": JWT_SECRET, "DELTAGATE_MASK_SECRET": MASK_SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        ready = httpx.get(f"{base}/readyz", timeout=5)
        answer = httpx.post(
            f"{base}/graphql",
            json={
                "query": "query($u: ID!) { legalPerson(uscc: $u) { name } }",
                "variables": {"u": seeded.dataset.uscc("AH", 1)},
            },
            headers={"Authorization": f"Bearer {token('SH', 'one_stop_app')}"},
            timeout=5,
        )
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0].decode()
    assert ready.status_code == 200, output
    assert (
        answer.json()["data"]["legalPerson"]["name"] == seeded.dataset.enterprise("AH", 1)["name"]
    )
    # A graceful stop: uvicorn finishes the lifespan, then re-raises the SIGTERM it caught.
    assert "Application shutdown complete" in output
    assert server.returncode in (0, -15), output
