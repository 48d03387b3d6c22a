"""The deltagate command: tokens, policy explanations, seeding, and a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from gateway.edge.auth import TokenVerifier
from gateway.edge.cli import demo_settings, main
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


def test_the_demo_makes_its_secrets_for_each_run(seeded: Seeded) -> None:
    root = Path(__file__).resolve().parents[3]
    sources = [
        path.read_text(encoding="utf-8")
        for package in ("gateway", "policies", "resolvers", "schema")
        for path in (root / package).rglob("*")
        if path.suffix in (".py", ".toml", ".csv", ".conf")
    ]
    runs = [demo_settings(seeded.dsn, seeded.dsn, 8000, {}) for _ in range(2)]
    secrets = [secret for run in runs for secret in (run.jwt_secret, run.mask_secret)]
    assert all(secret and len(secret) >= 32 for secret in secrets)
    assert len(set(secrets)) == 4  # per run, and the token key is not the mask key
    assert [s for s in secrets if s and any(s in text for text in sources)] == []
    given = demo_settings(seeded.dsn, seeded.dsn, 8000, {"DELTAGATE_MASK_SECRET": MASK_SECRET})
    assert given.mask_secret == MASK_SECRET  # the environment still wins


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


class ServerProcess:
    """``deltagate serve`` in a process of its own; ``output`` and ``returncode`` once stopped."""

    def __init__(self, base: str, process: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.output = ""
        self.returncode: int | None = None
        self._process = process

    def stop(self) -> None:
        """Stop the server now (SIGTERM), before the block ends."""
        self._process.terminate()
        self._process.wait(timeout=10)


@contextmanager
def serving(
    seeded: Seeded,
    tmp_path: Path,
    *args: str,
    config: Sequence[str] = (),
    regions: Sequence[str] = ("SH", "JS", "ZJ", "AH"),
    **env: str,
) -> Iterator[ServerProcess]:
    """A server over the seeded ``regions``, answering ``/healthz``, stopped with SIGTERM after."""
    port = free_port()
    path = tmp_path / "gateway.toml"
    lines = ["[gateway]", 'host = "127.0.0.1"', f"port = {port}", *config]
    for region in regions:
        lines += [f"[sources.{region}]", f'dsn = "{region_dsn(seeded.dsn, region)}"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    environment = {**os.environ, "DELTAGATE_JWT_SECRET": JWT_SECRET,
                   "DELTAGATE_MASK_SECRET": MASK_SECRET, **env}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "gateway.edge.cli", "serve", "--config", str(path), *args],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process = ServerProcess(f"http://127.0.0.1:{port}", server)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{process.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield process
    finally:
        server.terminate()
        process.output = server.communicate(timeout=10)[0].decode()
        process.returncode = server.returncode


@pytest.mark.slow
def test_serve_runs_a_real_server_from_a_config_file(seeded: Seeded, tmp_path: Path) -> None:
    with serving(seeded, tmp_path) as server:
        ready = httpx.get(f"{server.base}/readyz", timeout=5)
        answer = httpx.post(
            f"{server.base}/graphql",
            json={
                "query": "query($u: ID!) { legalPerson(uscc: $u) { name } }",
                "variables": {"u": seeded.dataset.uscc("AH", 1)},
            },
            headers={"Authorization": f"Bearer {token('SH', 'one_stop_app')}"},
            timeout=5,
        )
    output = server.output
    assert ready.status_code == 200, output
    assert (
        answer.json()["data"]["legalPerson"]["name"] == seeded.dataset.enterprise("AH", 1)["name"]
    )
    # A graceful stop: uvicorn finishes the lifespan, then re-raises the SIGTERM it caught.
    assert "Application shutdown complete" in output
    assert server.returncode in (0, -15), output


@pytest.mark.slow
def test_workers_without_a_mask_secret_share_the_one_serve_generates(
    seeded: Seeded, tmp_path: Path
) -> None:
    # Each worker builds its own gateway; a cursor one made must page on at any other.
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    search = """query($name: String!, $after: String) {
      searchLegalPersons(name: $name, first: 1, after: $after) { pageInfo { endCursor } } }"""
    name = seeded.dataset.enterprise("SH", 0)["name"][:1]
    headers = {"Authorization": f"Bearer {token('SH', 'public_portal')}"}
    with serving(
        seeded, tmp_path, "--workers", "2", config=["[limits]", "rate_limits = false"],
        DELTAGATE_MASK_SECRET="", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    ) as server:  # fmt: skip

        def page(after: str | None) -> dict[str, object]:
            body = {"query": search, "variables": {"name": name, "after": after}}
            return httpx.post(
                f"{server.base}/graphql", json=body, headers=headers, timeout=5
            ).json()

        cursor = page(None)["data"]["searchLegalPersons"]["pageInfo"]["endCursor"]  # type: ignore[index]
        answers = []
        with ThreadPoolExecutor(max_workers=16) as pool:
            for _ in range(10):
                answers += list(pool.map(page, [cursor] * 32))
                if len(list(metrics_dir.glob("counter_*.db"))) == 2:
                    break
    assert len(list(metrics_dir.glob("counter_*.db"))) == 2, server.output  # both answered
    assert [a for a in answers if "errors" in a] == []
