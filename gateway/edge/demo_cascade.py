"""``deltagate demo --cascade``: two provincial gateways and the delta gateway over them, locally.

::

                       callers (tokens printed), GraphiQL
                                     |
                     deltagate-delta :8000  (policy, audit DB)
                 kind = "gateway" /        \\ kind = "gateway"
              deltagate-sh :8001            deltagate-js :8002
         (policy, audit DB, [upper])    (policy, audit DB, [upper])
                  |                               |
           embedded PostgreSQL             embedded PostgreSQL
           deltagate_sh                    deltagate_js

Each province is a ``deltagate serve`` process of its own, over its own embedded
PostgreSQL (its region's database and its audit database), with its own copy of
the policy files, secrets and audit log; it knows the delta gateway only as a
service token and, as its ``[upper]``, the platform it asks for keys of other
provinces (so a Jiangsu enterprise's representative from Shanghai is reached).
The delta gateway runs in this process, over the provinces (``kind = "gateway"``,
a service token each) and an audit database of its own; it signs a delegation for
each caller with a key made for the run, which the provinces trust (their
``[delegation]``), so each province decides for the delta's caller. SIGTERM or Ctrl-C stops
every process and server it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from gateway.core.errors import ConfigError

__all__ = ["PROVINCES", "cascade_examples", "run_cascade"]

#: The provinces the demo starts, each a gateway of its own.
PROVINCES = ("SH", "JS")
#: The delta gateway's id: its service identity at the provinces.
TOP_ID = "deltagate-delta"
#: The matter every service request is made under (the provinces decide for it).
MATTER = "JH-HUKOU-MIGRATION"
#: The delta gateway's roles at a province: it may act for others (delegation), and hands
#: on what a joint-handling officer may see, which its own policy narrows per caller.
SERVICE_ROLES = ("joint_handling_officer", "delta_platform")
#: The name each province gives the delta gateway as its upper-level source.
UPPER_CODE = "YRD"
#: The ``kid`` of the delta gateway's delegation key.
SIGNING_KEY_ID = "deltagate-delta-demo"
#: Seconds a province may take to answer /healthz after it starts.
START_TIMEOUT = 60


#: Registers something to stop when the demo ends (processes, servers, files).
StopLater = Callable[[Callable[[], Any]], None]


@dataclass
class Province:
    """One provincial gateway of the demo."""

    region: str
    port: int
    folder: Path
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    @property
    def gateway_id(self) -> str:
        """Its ``[delegation] id``: the audience of the delegations the delta sends it."""
        return f"deltagate-{self.region.lower()}"


def cascade_examples(dataset: Any) -> dict[str, str]:
    """Keys whose answers cross the two provinces: a Jiangsu enterprise whose representative
    is from Shanghai, and a Shanghai person with a residence in Jiangsu."""
    enterprise = next(
        dataset.enterprise("JS", i)
        for i in range(dataset.enterprise_count("JS"))
        if dataset.representative_of("JS", i)[0] == "SH"
    )
    person = next(
        p for p in dataset.persons("SH")
        if any(r["region"] == "JS" for r in dataset.residences_of(p["id_number"]))
    )  # fmt: skip
    return {"uscc": enterprise["uscc"], "idNumber": person["id_number"]}


def run_cascade(args: argparse.Namespace, exit_on_signal: Callable[..., None]) -> int:
    """Start the provinces, then serve the delta gateway until SIGTERM or Ctrl-C."""
    from gateway.edge.embedded import DEFAULT_DATA_DIR

    base = Path(args.data_dir or DEFAULT_DATA_DIR)
    work = Path(tempfile.mkdtemp(prefix="deltagate-cascade-"))
    signal.signal(signal.SIGTERM, exit_on_signal)
    with _stopped_at_exit() as stop_later:
        stop_later(lambda: shutil.rmtree(work, ignore_errors=True))
        return _run(args, base, work, stop_later)


@contextmanager
def _stopped_at_exit() -> Iterator[StopLater]:
    """Collects what to stop; stops it in reverse order however the block ends."""
    stops: list[Callable[[], Any]] = []
    try:
        yield stops.append
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception as exc:  # one failing must not keep the others running
                print(f"deltagate demo: while stopping: {exc}", file=sys.stderr)


def _run(args: argparse.Namespace, base: Path, work: Path, stop_later: StopLater) -> int:
    import uvicorn

    from gateway.audit import create_database
    from gateway.edge.app import Gateway, create_app
    from gateway.edge.auth import mint_token
    from gateway.edge.cli import DEMO_TOKEN_LIFETIME, print_demo_callers
    from gateway.edge.embedded import start_embedded
    from gateway.edge.settings import DelegationSettings, Settings, SourceSettings
    from gateway.synthetic import Dataset, region_dsn, seed_regions
    from policies import SHIPPED_POLICY_DIR

    top_secret = os.environ.get("DELTAGATE_JWT_SECRET") or secrets.token_urlsafe(32)
    # The delta gateway's delegation key, made for the run; the provinces trust its JWKS.
    signing_key = _delegation_key(work)
    top_url = f"http://127.0.0.1:{args.port}/graphql"
    provinces = [
        Province(region, args.port + 1 + i, work / region.lower())
        for i, region in enumerate(PROVINCES)
    ]
    for province in provinces:
        data_dir = Path(f"{base}-{province.region.lower()}")
        print(f"{province.region}: embedded PostgreSQL in {data_dir} ...", flush=True)
        server = start_embedded(data_dir)
        stop_later(server.close)
        asyncio.run(seed_regions(server.uri, args.persons, args.seed, [province.region]))
        audit_dsn = asyncio.run(create_database(server.uri))
        province.folder.mkdir(parents=True)
        shutil.copytree(SHIPPED_POLICY_DIR, province.folder / "policies")
        config = province.folder / "gateway.toml"
        config.write_text(
            _province_config(province, region_dsn(server.uri, province.region), audit_dsn, top_url),
            encoding="utf-8",
        )
        upper_token = mint_token(
            sub=f"deltagate-{province.region.lower()}", region=province.region,
            roles=["joint_handling_officer"], secret=top_secret, ttl=DEMO_TOKEN_LIFETIME,
        )  # fmt: skip
        env = {
            # Nothing of this shell's DELTAGATE_* (a DSN, a secret) reaches a province.
            **{k: v for k, v in os.environ.items() if not k.startswith("DELTAGATE_")},
            "DELTAGATE_JWT_SECRET": province.jwt_secret,
            "DELTAGATE_MASK_SECRET": secrets.token_urlsafe(32),
            "DELTAGATE_UPPER_TOKEN": upper_token,
        }
        log: IO[bytes] = (province.folder / "gateway.log").open("wb")
        province.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.edge.cli", "serve", "--config", str(config)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        stop_later(_stopper(province.process, log))
    for province in provinces:
        _wait_until_serving(province)

    top_dir = Path(f"{base}-delta")
    print(f"delta gateway: embedded PostgreSQL in {top_dir} (its audit database) ...", flush=True)
    top_server = start_embedded(top_dir)
    stop_later(top_server.close)
    top_audit = asyncio.run(create_database(top_server.uri))
    shutil.copytree(SHIPPED_POLICY_DIR, work / "delta-policies")
    sources = tuple(
        SourceSettings(
            region=p.region,
            kind="gateway",
            url=p.url,
            matter=MATTER,
            timeout=5.0,
            breaker_reset=2.0,
            delegation_audience=p.gateway_id,
            token=mint_token(
                sub=TOP_ID,
                region="NATIONAL",
                roles=list(SERVICE_ROLES),
                secret=p.jwt_secret,
                ttl=DEMO_TOKEN_LIFETIME,
            ),
        )
        for p in provinces
    )
    settings = Settings(
        delegation=DelegationSettings(
            id=TOP_ID, signing_key=signing_key, signing_key_id=SIGNING_KEY_ID
        ),
        mode="development",
        host="127.0.0.1",
        port=args.port,
        jwt_secret=top_secret,
        mask_secret=os.environ.get("DELTAGATE_MASK_SECRET") or secrets.token_urlsafe(32),
        max_token_lifetime=DEMO_TOKEN_LIFETIME,
        policy_dir=work / "delta-policies",
        sources=sources,
        audit_dsn=top_audit,
    ).check()
    dataset = Dataset(args.persons, args.seed)
    print()
    print("deltagate demo --cascade: development mode, bound to 127.0.0.1 only.")
    for p in provinces:
        print(f"  province {p.region}: {p.url} (files and log in {p.folder})")
    print(f"  delta gateway over them, GraphiQL: {top_url}")
    print(f"Mint more tokens for the top with: DELTAGATE_JWT_SECRET={top_secret} deltagate token")
    print()
    print_demo_callers(top_url, top_secret, int(settings.max_token_lifetime), dataset)
    examples = cascade_examples(dataset)
    print()
    print("A query that crosses the provinces (as the Jiangsu officer, matter JH-HUKOU-MIGRATION):")
    print(_CROSSING.format(**examples))
    print()
    uvicorn.run(
        create_app(Gateway.from_settings(settings)),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="info",
    )
    return 0


_CROSSING = """  {{ legalPerson(uscc: "{uscc}") {{ name region
      legalRepresentative {{ name householdRegion }} creditRecords {{ region kind }} }}
    naturalPerson(idNumber: "{idNumber}") {{ name residences {{ region address }} }} }}"""


def _delegation_key(work: Path) -> Path:
    """An EC P-256 key for the delta's delegations (``work/delta-signing.pem``) and the JWKS
    of its public part the provinces trust (``work/delta-jwks.json``)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from gateway.core.delegation import public_jwks

    key = ec.generate_private_key(ec.SECP256R1())
    path = work / "delta-signing.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    jwks = public_jwks(key, SIGNING_KEY_ID)
    (work / "delta-jwks.json").write_text(json.dumps(jwks), encoding="utf-8")
    return path


def _province_config(province: Province, dsn: str, audit_dsn: str, upper: str) -> str:
    lines = [
        "[gateway]", 'mode = "development"', 'host = "127.0.0.1"', f"port = {province.port}",
        "[auth]", f"max_token_lifetime = {8 * 3600}",
        "[policy]", 'directory = "policies"',
        f"[sources.{province.region}]", f"dsn = {json.dumps(dsn)}",
        "[audit]", f"dsn = {json.dumps(audit_dsn)}",
        # It decides each request of the delta for the delta's caller (its delegation).
        "[delegation]", f'id = "{province.gateway_id}"', 'trusted_jwks = "../delta-jwks.json"',
        f'trusted_issuers = ["{TOP_ID}"]',
        # Keys of other provinces (a representative from Shanghai) are asked of the delta.
        "[upper]", f"url = {json.dumps(upper)}", 'token_env = "DELTAGATE_UPPER_TOKEN"',
        f'code = "{UPPER_CODE}"', f'matter = "{MATTER}"',
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _wait_until_serving(province: Province) -> None:
    import httpx

    health = province.url.replace("/graphql", "/healthz")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if province.process is not None and province.process.poll() is not None:
            log = province.folder / "gateway.log"
            raise ConfigError(f"the {province.region} gateway exited; see {log}")
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise ConfigError(f"the {province.region} gateway did not start within {START_TIMEOUT} s")


def _stopper(process: subprocess.Popen[bytes], log: IO[bytes]) -> Callable[[], None]:
    def stop() -> None:
        if process.poll() is None:
            process.terminate()  # SIGTERM: it finishes its requests and audit events
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        log.close()

    return stop
