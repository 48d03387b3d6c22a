"""The ``deltagate`` command: serve, run the demo, seed data, mint tokens, explain policy,
print the cascade's delegation JWKS, and check, read or reconcile the audit log."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.audit import add_audit_commands
from gateway.core.errors import ConfigError, GatewayError
from gateway.telemetry.span_table import init_span_table

if TYPE_CHECKING:
    from gateway.edge.settings import Settings
    from gateway.synthetic import Dataset

logger = logging.getLogger("deltagate")

#: Who the demo prints a token for: (app, region, roles, matter, what it is for).
DEMO_CALLERS = (
    ("counter-sh", "SH", ("one_stop_app",), "OS-ENTERPRISE-OPENING", "一网通办 counter, Shanghai"),
    ("jh-js", "JS", ("joint_handling_officer",), "JH-HUKOU-MIGRATION", "跨省通办 officer, Jiangsu"),
    ("portal-ah", "AH", ("public_portal",), None, "public credit portal, Anhui"),
    ("audit-national", "NATIONAL", ("auditor",), None, "auditor, national level"),
)

#: The demo's tokens last a working day: it serves only 127.0.0.1, in development mode.
DEMO_TOKEN_LIFETIME = 8 * 3600


def graphiql_link(base: str, headers: Mapping[str, str]) -> str:
    """A link to GraphiQL at ``base`` (``.../graphql``) with ``headers`` in its headers editor.

    The page's ``graphiql-init.js`` reads them back from ``?headers=`` (URL-encoded JSON).
    """
    return f"{base}?headers={urllib.parse.quote(json.dumps(headers))}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Both log their whole configuration at INFO; only their warnings concern an operator.
    logging.getLogger("casbin").setLevel(logging.WARNING)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # httpx logs every request of a gateway source at INFO: one line per hop and batch.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.run(args) or 0)
    except ConfigError as exc:
        print(f"deltagate: configuration error: {exc}", file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(f"deltagate: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deltagate", description="GraphQL gateway for Yangtze River Delta data sharing."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the gateway from a configuration file")
    serve.add_argument("--config", type=Path, help="gateway.toml (see gateway/edge/settings.py)")
    serve.add_argument("--host", help="override gateway.host")
    serve.add_argument("--port", type=int, help="override gateway.port")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(run=_serve)

    demo = commands.add_parser(
        "demo", help="embedded PostgreSQL, seeded data and GraphiQL on 127.0.0.1"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--persons", type=int, default=1000, help="persons per region")
    demo.add_argument("--seed", type=int, default=20240601)
    demo.add_argument("--data-dir", type=Path, help="the embedded server's data folder")
    demo.add_argument(
        "--cascade",
        action="store_true",
        help="two provincial gateways (SH, JS; ports +1, +2) and the delta gateway over them",
    )
    demo.add_argument(
        "--seed-burst",
        action="store_true",
        help="before serving, let the app burst-demo look up more distinct persons than the"
        " console's distinct-subjects threshold (a misuse signal to look at)",
    )
    demo.set_defaults(run=_demo)

    seed = commands.add_parser("seed", help="create and fill the four regional databases")
    seed.add_argument("--dsn", required=True, help="a server DSN with the right to create DBs")
    seed.add_argument("--persons", type=int, required=True, help="persons per region")
    seed.add_argument("--seed", type=int, default=20240601)
    seed.add_argument("--regions", default="SH,JS,ZJ,AH", help="comma-separated region codes")
    seed.set_defaults(run=_seed)

    token = commands.add_parser(
        "token", help="mint a development token (HS256 with DELTAGATE_JWT_SECRET)"
    )
    token.add_argument("--sub", required=True, help="the caller app id")
    token.add_argument("--region", required=True, help="SH, JS, ZJ, AH or NATIONAL")
    token.add_argument("--role", action="append", required=True, help="a role (repeatable)")
    token.add_argument("--subject", help="for a citizen: the ID number the token speaks for")
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.set_defaults(run=_token)

    delegation = commands.add_parser("delegation", help="the cascade's delegation keys")
    delegation_commands = delegation.add_subparsers(dest="delegation_command", required=True)
    jwks = delegation_commands.add_parser(
        "jwks", help="print the JWKS (public part) a lower gateway puts in its trusted_jwks file"
    )
    jwks.add_argument("--key", type=Path, required=True, help="the upper's PEM private key")
    jwks.add_argument("--kid", required=True, help="the key's id ([delegation] signing_key_id)")
    jwks.set_defaults(run=_delegation_jwks)

    policy = commands.add_parser("policy", help="ask the access policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    explain = policy_commands.add_parser("explain", help="a decision and the rules behind it")
    explain.add_argument("--sub", default="cli", help="the caller app id")
    explain.add_argument("--region", required=True, help="the caller's region")
    explain.add_argument("--roles", required=True, help="comma-separated roles")
    explain.add_argument("--matter", help="the matter code (X-Matter-Code)")
    explain.add_argument("--field", required=True, help="e.g. NaturalPerson.phone")
    explain.add_argument("--owner", required=True, help="the region that keeps the data")
    explain.add_argument("--subject-type", choices=("NATURAL_PERSON", "LEGAL_PERSON"))
    explain.add_argument("--policy-dir", type=Path, help="default: the shipped policies/")
    explain.set_defaults(run=_explain)

    operations = commands.add_parser("operations", help="the manifest of registered operations")
    operation_commands = operations.add_subparsers(dest="operations_command", required=True)
    register = operation_commands.add_parser(
        "register", help="check documents against the schema and limits, add them to the manifest"
    )
    register.add_argument("files", nargs="+", type=Path, metavar="FILE.graphql")
    listing = operation_commands.add_parser("list", help="the registered operations")
    for command in (register, listing):
        command.add_argument("--manifest", type=Path, help="default: operations.manifest")
        command.add_argument("--config", type=Path, help="gateway.toml: its manifest and limits")
    register.set_defaults(run=_register_operations)
    listing.set_defaults(run=_list_operations)

    add_audit_commands(commands, also_init=(init_span_table,))

    spans = commands.add_parser("spans", help="the stored spans of audited operations")
    span_commands = spans.add_subparsers(dest="spans_command", required=True)
    prune = span_commands.add_parser(
        "prune", help="delete spans past their retention (as audit_span's owner, on a schedule)"
    )
    prune.add_argument("--dsn", help="the audit database (default: DELTAGATE_AUDIT_DSN)")
    prune.add_argument("--days", type=float, default=30.0, help="keep this many days (30)")
    prune.add_argument("--max-rows", type=int, default=1_000_000, help="keep at most (1000000)")
    prune.set_defaults(run=_prune_spans)
    return parser


# -- serve -------------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.edge.settings import load_settings

    settings = load_settings(args.config)  # fail here, with a clear message, not in a worker
    if args.config is not None:
        os.environ["DELTAGATE_CONFIG"] = str(args.config.resolve())
    if not settings.production and not settings.mask_secret:
        # Each worker builds its own gateway: without one secret for them all, a cursor
        # made by one worker would be refused by the next.
        os.environ["DELTAGATE_MASK_SECRET"] = secrets.token_urlsafe(32)
    host = args.host or settings.host
    port = args.port or settings.port
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here and /metrics, whichever worker answers, adds
        # them all up. Set before the workers start: they read it when they import the client.
        metrics_dir = tempfile.mkdtemp(prefix="deltagate-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    # HTTPS, and with [tls] client_ca mutual TLS: a client without a certificate from that
    # CA fails the handshake, before any request (or bearer token) is read.
    tls = settings.tls.uvicorn_options() if settings.tls is not None else {}
    try:
        uvicorn.run(
            "gateway.edge.asgi:create",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            log_level="info",
            access_log=False,
            **tls,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


# -- demo --------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from gateway.edge.embedded import DEFAULT_DATA_DIR, start_embedded

    if args.cascade:
        from gateway.edge.demo_cascade import run_cascade

        return run_cascade(args, _exit_on_signal)
    data_dir = args.data_dir or DEFAULT_DATA_DIR
    print(f"Starting the embedded PostgreSQL in {data_dir} ...", flush=True)
    server = start_embedded(data_dir)
    # uvicorn shuts down on SIGTERM and then raises the signal again with the handler it
    # found: by default that ends the process on the spot, past the ``finally`` below and
    # with the embedded server left running. As an exit instead, the server goes with it.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        return _serve_demo(args, server.uri)
    finally:
        server.close()  # Ctrl-C or SIGTERM ends uvicorn.run, and the server goes with it


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _serve_demo(args: argparse.Namespace, dsn: str) -> int:
    import uvicorn

    from gateway.audit import create_database
    from gateway.edge.app import Gateway, create_app
    from gateway.synthetic import Dataset, seed_regions

    print(f"Seeding {args.persons} persons per region (seed {args.seed}) ...", flush=True)
    report = asyncio.run(seed_regions(dsn, args.persons, args.seed))
    print(f"Seeded in {report.elapsed:.1f} s.")
    audit_dsn = asyncio.run(create_database(dsn))
    asyncio.run(init_span_table(audit_dsn))

    settings = demo_settings(dsn, audit_dsn, args.port, os.environ)
    secret = settings.jwt_secret
    if secret is None:  # demo_settings always makes one; this narrows the type
        raise ConfigError("the demo needs an HS256 secret")
    dataset = Dataset(args.persons, args.seed)
    if getattr(args, "seed_burst", False):
        from gateway.edge.demo_burst import BURST_APP, seed_burst

        requests = asyncio.run(seed_burst(settings, dataset))
        print(f"Seeded a burst: {BURST_APP} made {requests} audited requests.")
    base = f"http://127.0.0.1:{args.port}/graphql"
    print()
    print("deltagate demo: development mode, bound to 127.0.0.1 only (development secrets).")
    print(f"GraphiQL: {base}")
    print(f"Auditor console: http://127.0.0.1:{args.port}/console (sign in with the auditor's"
          " or the citizen's token)")  # fmt: skip
    print(f"Mint more tokens with: DELTAGATE_JWT_SECRET={secret} deltagate token --help")
    print()
    print_demo_callers(base, secret, int(settings.max_token_lifetime), dataset)
    person = dataset.cross_region_person("SH")
    enterprise = dataset.cross_region_enterprise("JS")
    print()
    print("Keys to try:")
    print(f"  an enterprise in JS with a representative from elsewhere: {enterprise['uscc']}")
    print(f"  a person of SH with records in another region: {person['id_number']}")
    print("  example operations: examples/*.graphql (README: Example operations)")
    print(f"Audit log: deltagate audit tail --dsn '{audit_dsn}' (or audit verify)")
    print()
    gateway = Gateway.from_settings(settings)
    uvicorn.run(
        create_app(gateway),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="info",
    )
    return 0


def print_demo_callers(base: str, secret: str, ttl: int, dataset: Dataset) -> None:
    """Print a token and a GraphiQL link for each demo caller (and a citizen's own token)."""
    from gateway.edge.auth import mint_token

    person = dataset.cross_region_person("SH")
    callers = [(*caller, None) for caller in DEMO_CALLERS]
    # A citizen's own token speaks for one person: the one suggested with the keys to try.
    callers.append(("citizen-app", "SH", ("citizen",), None, "a citizen (accessHistory)",
                    person["id_number"]))  # fmt: skip
    for app, region, roles, matter, what, subject in callers:
        minted = mint_token(
            sub=app, region=region, roles=roles, secret=secret, ttl=ttl, subject=subject
        )
        headers = {"Authorization": f"Bearer {minted}"}
        if matter:
            headers["X-Matter-Code"] = matter
        link = graphiql_link(base, headers)
        print(f"{what}: roles {', '.join(roles)}, matter {matter or '(none)'}")
        print(f"  token: {minted}")
        if subject:
            print(f"  ID number (the citizen's own): {subject}")
        print(f"  GraphiQL with these headers: {link}")


def demo_settings(dsn: str, audit_dsn: str, port: int, env: Mapping[str, str]) -> Settings:
    """The demo's settings over the embedded server, with secrets made for this run.

    A secret from the environment is used as given; any other is generated
    here, never taken from the source, where every reader would find it.
    """
    from gateway.core.types import DELTA_REGIONS
    from gateway.edge.settings import Settings, local_sources
    from gateway.synthetic import region_dsn
    from resolvers.console_settings import ConsoleSettings

    return Settings(
        mode="development",
        host="127.0.0.1",
        port=port,
        jwt_secret=env.get("DELTAGATE_JWT_SECRET") or secrets.token_urlsafe(32),
        mask_secret=env.get("DELTAGATE_MASK_SECRET") or secrets.token_urlsafe(32),
        max_token_lifetime=DEMO_TOKEN_LIFETIME,
        sources=local_sources({r: region_dsn(dsn, r) for r in DELTA_REGIONS}),
        audit_dsn=audit_dsn,
        # A demo is tried at any hour: a few dozen requests by one app at night are not yet
        # a signal (production keeps the default, 10).
        console=ConsoleSettings(outside_hours_threshold=50),
    ).check()


# -- seed, token, policy -----------------------------------------------------------------------


def _prune_spans(args: argparse.Namespace) -> int:
    import asyncpg

    from gateway.telemetry.span_table import prune_spans

    dsn = args.dsn or os.environ.get("DELTAGATE_AUDIT_DSN")
    if not dsn:
        raise ConfigError("name the audit database with --dsn or DELTAGATE_AUDIT_DSN")
    if args.days <= 0 or args.max_rows < 0:
        raise ConfigError("--days must be positive and --max-rows not negative")
    try:
        gone = asyncio.run(prune_spans(dsn, args.days * 86400.0, args.max_rows))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise GatewayError(f"spans prune failed: {exc}") from None
    print(f"spans pruned: {gone}")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from gateway.synthetic import seed_regions

    regions = [r.strip().upper() for r in args.regions.split(",") if r.strip()]
    report = asyncio.run(seed_regions(args.dsn, args.persons, args.seed, regions))
    for region in regions:
        rows = ", ".join(f"{n} {entity}" for entity, n in report.rows[region].items())
        size = report.database_bytes[region] / 2**20
        print(f"{region}: {rows}; {size:.0f} MiB; {report.seconds[region]:.1f} s")
    total = sum(report.database_bytes.values()) / 2**20
    print(f"total: {total:.0f} MiB in {report.elapsed:.1f} s")
    return 0


def _token(args: argparse.Namespace) -> int:
    from gateway.edge.auth import mint_token

    secret = os.environ.get("DELTAGATE_JWT_SECRET")
    if not secret:
        raise ConfigError("set DELTAGATE_JWT_SECRET to the gateway's HS256 secret")
    print(
        mint_token(
            sub=args.sub,
            region=args.region.upper(),
            roles=args.role,
            secret=secret,
            ttl=args.ttl,
            subject=args.subject,
        )
    )
    return 0


def _delegation_jwks(args: argparse.Namespace) -> int:
    from gateway.core.delegation import load_signing_key, public_jwks

    if not args.kid.strip():
        raise ConfigError("--kid must name the key")
    print(json.dumps(public_jwks(load_signing_key(args.key), args.kid), indent=2))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from policies import SHIPPED_POLICY_DIR, PolicyEngine, explain, resolve_mask_secret

    engine = PolicyEngine.from_directory(
        args.policy_dir or SHIPPED_POLICY_DIR,
        mask_secret=resolve_mask_secret(os.environ.get("DELTAGATE_MASK_SECRET"), dev_mode=True),
        strict=True,
    )
    print(
        explain(
            engine,
            app=args.sub,
            region=args.region.upper(),
            roles=args.roles,
            matter=args.matter,
            coordinate=args.field,
            owner=args.owner.upper(),
            subject_type=args.subject_type,
        )
    )
    return 0


# -- operations --------------------------------------------------------------------------------


def _manifest_settings(args: argparse.Namespace) -> tuple[Path, Settings]:
    from gateway.edge.settings import load_settings

    settings = load_settings(args.config, check=False)
    manifest = args.manifest or settings.operations_manifest
    if manifest is None:
        raise ConfigError("name the manifest: --manifest, or operations.manifest in --config")
    return manifest, settings


def _register_operations(args: argparse.Namespace) -> int:
    from gateway.edge.documents import DocumentGuard
    from gateway.edge.operations import register
    from schema import build_schema

    manifest, settings = _manifest_settings(args)
    guard = DocumentGuard(build_schema()._schema, settings.limits, production=settings.production)
    for entry in register(manifest, args.files, guard):
        state = "registered" if entry.new else "already registered"
        print(f"{entry.sha256}  {entry.file}  {', '.join(entry.names)}  ({state})")
    print(f"manifest: {manifest}")
    return 0


def _list_operations(args: argparse.Namespace) -> int:
    from gateway.edge.operations import load_manifest

    manifest, _ = _manifest_settings(args)
    for digest, entry in load_manifest(manifest).items():
        fields = (str(entry.get(key, "")) for key in ("name", "file", "registeredAt"))
        print("  ".join((digest, *fields)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
