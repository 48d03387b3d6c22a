"""The latency one cascade hop adds: Q1 and Q2 through the delta gateway against the province.

    python -m bench.cascade [--persons 10000] [--rounds 3] [--duration 5] [--concurrency 1]

Two ``deltagate serve`` processes on loopback, one worker each, as deployed
except for tokens (development mode, HS256) and tracing (off in both, so the
hop is what differs):

- the province: Shanghai's gateway over the SH database, audit log on;
- the top: the delta gateway whose only source is that province (``kind =
  "gateway"``, a service token), audit log on (a database of its own), signing a
  delegation (ES256) for each caller that the province checks (``--no-delegation``:
  the province decides for the top's service identity instead).

The operations are Q1 and Q2 of ``bench.workload`` with keys of the province's
own (a Shanghai person; 50 Shanghai enterprises), so both answer the same data
(checked before timing). Each (operation, target) cell is driven by
``bench.loadgen`` at ``--concurrency`` connections; the cells are interleaved
(province, top, province, top, ...) over ``--rounds`` rounds and the medians
reported, so drift of a shared machine falls on both alike. The added latency is
top minus province, per percentile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from bench.servers import ROOT, Server, Variant
from bench.workload import Q1, Q2, Operation
from gateway.edge.auth import mint_token
from gateway.synthetic import Dataset

JWT_SECRET = "bench-cascade-jwt-secret-0123456789abcdefgh"
MASK_SECRET = "bench-cascade-mask-secret-0123456789abcdefgh"
REGION = "SH"
SERVE = Variant(key="serve", label="deltagate serve", command=("gateway.edge.cli", "serve"))


def _shanghai_person(dataset: Dataset, rng: random.Random, _: int) -> dict[str, Any]:
    return {"idNumber": dataset.person_id(REGION, rng.randrange(dataset.person_count(REGION)))}


def _shanghai_enterprises(dataset: Dataset, rng: random.Random, size: int) -> dict[str, Any]:
    count = dataset.enterprise_count(REGION)
    return {"usccs": [dataset.uscc(REGION, i) for i in rng.sample(range(count), size)]}


def _shapes() -> list[Operation]:
    from dataclasses import replace

    return [
        replace(Q1, variables=_shanghai_person),
        replace(Q2, variables=_shanghai_enterprises),
    ]


def _delegation_files(folder: Path) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from gateway.core.delegation import public_jwks

    key = ec.generate_private_key(ec.SECP256R1())
    pem = folder / "top-signing.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    jwks = folder / "top-jwks.json"
    jwks.write_text(json.dumps(public_jwks(key, "bench-top")), encoding="utf-8")
    return pem, jwks


def _configs(
    folder: Path, dsn: str, audits: tuple[str, str], province_url: str, delegation: bool
) -> None:
    """``province.toml`` and ``top.toml`` in ``folder``."""
    from gateway.synthetic import region_dsn

    pem, jwks = _delegation_files(folder)
    # No span store (production's default, with the console off): tracing is off, and the
    # audit databases made here have no span table, so a store would fail an INSERT and
    # log a warning for every audited request in both processes.
    province = [
        "[limits]", "rate_limits = false", "[console]", "keep_spans = false",
        f"[sources.{REGION}]", f"dsn = {json.dumps(region_dsn(dsn, REGION))}",
        "[audit]", f"dsn = {json.dumps(audits[0])}",
    ]  # fmt: skip
    top = [
        "[limits]", "rate_limits = false", "[console]", "keep_spans = false",
        f"[sources.{REGION}]", 'kind = "gateway"', f"url = {json.dumps(province_url)}",
        'token_env = "DELTAGATE_UPSTREAM_TOKEN_SH"', 'matter = "JH-HUKOU-MIGRATION"',
        "[audit]", f"dsn = {json.dumps(audits[1])}",
    ]  # fmt: skip
    if delegation:
        province += [
            "[delegation]", 'id = "deltagate-sh"', f"trusted_jwks = {json.dumps(str(jwks))}",
            'trusted_issuers = ["deltagate-delta"]',
        ]  # fmt: skip
        top.insert(top.index("[audit]"), 'delegation_audience = "deltagate-sh"')
        top += [
            "[delegation]", 'id = "deltagate-delta"', f"signing_key = {json.dumps(str(pem))}",
            'signing_key_id = "bench-top"',
        ]  # fmt: skip
    for name, lines in (("province", province), ("top", top)):
        (folder / f"{name}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _headers(operation: Operation) -> dict[str, str]:
    caller = operation.caller
    token = mint_token(
        sub=caller.app, region=caller.region, roles=list(caller.roles), secret=JWT_SECRET,
        ttl=3600,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if caller.matter:
        headers["X-Matter-Code"] = caller.matter
    return headers


def _post(url: str, body: bytes, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(f"{url}/graphql", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return orjson.loads(response.read())


def _check(servers: dict[str, Server], operation: Operation, bodies: list[bytes]) -> None:
    """The top must answer what the province answers (data and errors), or timing means little."""
    headers = _headers(operation)
    for body in bodies[:10]:
        answers = {name: _post(s.url, body, headers) for name, s in servers.items()}
        if answers["province"].get("data") != answers["top"].get("data"):
            raise SystemExit(
                f"{operation.key}: the top and the province answer differently:\n"
                f"{answers['province']}\n{answers['top']}"
            )
        if "errors" in answers["top"]:
            raise SystemExit(f"{operation.key}: {answers['top']['errors']}")


def _drive(server: Server, spec: Path, args: argparse.Namespace) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "bench.loadgen", "--port", str(server.port),
        "--requests", str(spec), "--concurrency", str(args.concurrency),
        "--warmup", str(args.warmup), "--duration", str(args.duration),
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    result: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    if result["errors"]:
        raise SystemExit(
            f"{server.variant.key}: {result['errors']} errors: {result['error_sample']}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cascade", description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--no-delegation", dest="delegation", action="store_false")
    args = parser.parse_args()

    from bench.database import ensure_seeded, start
    from gateway.audit import create_database

    data_dir = args.data_dir or Path(tempfile.gettempdir()) / f"deltagate-bench-pg-{args.persons}"
    database = start(data_dir)
    asyncio.run(ensure_seeded(database.dsn, args.persons, args.seed))
    audits = (
        asyncio.run(create_database(database.dsn, "deltagate_audit_province", fresh=True)),
        asyncio.run(create_database(database.dsn, "deltagate_audit_top", fresh=True)),
    )
    dataset = Dataset(args.persons, args.seed)
    env = {
        "DELTAGATE_JWT_SECRET": JWT_SECRET,
        "DELTAGATE_MASK_SECRET": MASK_SECRET,
        "OTEL_TRACES_EXPORTER": "none",
    }
    with tempfile.TemporaryDirectory(prefix="deltagate-bench-cascade-") as work:
        folder = Path(work)
        service = mint_token(
            sub="deltagate-delta", region="NATIONAL",
            roles=["joint_handling_officer", "delta_platform"], secret=JWT_SECRET, ttl=3600,
        )  # fmt: skip
        servers = {
            "province": Server(SERVE, folder / "province.toml", env, folder),
            "top": Server(
                SERVE, folder / "top.toml", {**env, "DELTAGATE_UPSTREAM_TOKEN_SH": service}, folder
            ),
        }
        for name, server in servers.items():
            server.log_path = folder / f"{name}.log"
        _configs(
            folder, database.dsn, audits, f"{servers['province'].url}/graphql", args.delegation
        )
        try:
            for server in servers.values():
                server.start()
                server.wait_ready()
            results = _measure(servers, dataset, args, folder)
        finally:
            for server in servers.values():
                server.stop()
    _report(results, args)


def _measure(
    servers: dict[str, Server], dataset: Dataset, args: argparse.Namespace, folder: Path
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    specs = {}
    for operation in _shapes():
        bodies = operation.bodies(dataset, 400, args.seed)
        _check(servers, operation, bodies)
        spec = folder / f"{operation.key}.json"
        spec.write_bytes(
            orjson.dumps(
                {
                    "path": "/graphql",
                    "headers": _headers(operation),
                    "bodies": [b.decode() for b in bodies],
                }
            )
        )
        specs[operation.key] = spec
    for round_ in range(args.rounds):
        for key, spec in specs.items():
            for name, server in servers.items():
                result = _drive(server, spec, args)
                results.setdefault((key, name), []).append(result)
                latency = result["latency_ms"]
                print(
                    f"round {round_ + 1} {key} {name:8} p50 {latency['p50']:7.2f} ms"
                    f"  p99 {latency['p99']:7.2f} ms  {result['throughput']:7.1f}/s",
                    flush=True,
                )
    return results


def _report(results: dict[tuple[str, str], list[dict[str, Any]]], args: argparse.Namespace) -> None:
    def median(key: str, name: str, what: str) -> float:
        return float(statistics.median(r["latency_ms"][what] for r in results[(key, name)]))

    print()
    print(
        f"one hop, {args.rounds} rounds x {args.duration:g} s per cell, concurrency "
        f"{args.concurrency}, delegation {'on' if args.delegation else 'off'}; medians, ms"
    )
    print(f"{'':4} {'province p50':>13} {'top p50':>9} {'added':>7}   "
          f"{'province p99':>13} {'top p99':>9} {'added':>7}")  # fmt: skip
    for key in ("Q1", "Q2"):
        row = [median(key, name, q) for q in ("p50", "p99") for name in ("province", "top")]
        print(
            f"{key:4} {row[0]:13.2f} {row[1]:9.2f} {row[1] - row[0]:7.2f}   "
            f"{row[2]:13.2f} {row[3]:9.2f} {row[3] - row[2]:7.2f}"
        )


if __name__ == "__main__":
    main()
