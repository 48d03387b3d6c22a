"""``deltagate audit init``, ``verify``, ``tail`` and ``reconcile``.

Each works on the audit database named by ``--dsn`` (default: ``DELTAGATE_AUDIT_DSN``),
through the ``AuditLog`` interface (``verify``, ``read``) opened for reading only.
``init``, run as the role that is to own the tables, creates them with their
indexes and guards (idempotent), and brings a log of the earlier single-chain
layout forward (its events become the chain ``single``, unchanged); the
gateway's own role runs no DDL. ``verify`` checks the checkpoints' signatures
with ``DELTAGATE_AUDIT_CHECKPOINT_SECRET`` (the gateway's; without it, the
development secret) and exits 0 if every chain and checkpoint holds and the
guards are in place, 1 if not. ``reconcile`` reads the logs of two levels of
the cascade (``--upper DSN --lower REGION=DSN ...``) and exits 1 if anything
does not reconcile (``gateway.audit.reconcile``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import asyncpg
import orjson

from gateway.audit.checkpoints import DEVELOPMENT_SECRET, SECRET_VARIABLE, Head
from gateway.audit.events import CHINA_TIME, LEGACY_CHAIN, StoredEvent
from gateway.audit.log import AuditLog, EventQuery
from gateway.audit.postgres import GUARDS, PostgresAuditLog, init_schema
from gateway.audit.reconcile import ReconcileReport, reconcile
from gateway.audit.verify import VerifyReport
from gateway.core.errors import AuditUnavailable, ConfigError, GatewayError


def add_audit_commands(
    commands: Any, also_init: Sequence[Callable[[str], Awaitable[None]]] = ()
) -> None:
    """Add the ``audit`` command and its subcommands to the CLI's subparsers.

    ``also_init``: more tables of the audit database that ``audit init`` creates (each
    called with its DSN after the log's own), such as the span store's.
    """
    audit = commands.add_parser("audit", help="check and read the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    dsn_help = "the audit database (default: DELTAGATE_AUDIT_DSN)"

    init = audit_commands.add_parser(
        "init",
        help="create the tables, their indexes and guards, or bring a single-chain log"
        " forward (run as the role that is to own them)",
    )
    init.add_argument("--dsn", help=dsn_help)
    init.set_defaults(run=run_init, also_init=tuple(also_init))

    check = audit_commands.add_parser(
        "verify",
        help="walk every hash chain and checkpoint; report the first missing or altered one"
        f" (checkpoint secret: {SECRET_VARIABLE})",
    )
    check.add_argument("--dsn", help=dsn_help)
    check.add_argument(
        "--anchor",
        metavar="CHAIN:SEQ:HASH",
        help="an event printed by an earlier verify: it must still be in the log, unchanged",
    )
    check.set_defaults(run=run_verify)

    recent = audit_commands.add_parser("tail", help="print the newest events")
    recent.add_argument("--dsn", help=dsn_help)
    recent.add_argument("-n", type=int, default=20, help="how many (default 20)")
    recent.add_argument("--json", action="store_true", help="one JSON object per line")
    recent.set_defaults(run=run_tail)

    check_links = audit_commands.add_parser(
        "reconcile",
        help="check the cascade: each release above has the event below its receipt names",
    )
    check_links.add_argument("--upper", required=True, help="the upper gateway's audit database")
    check_links.add_argument(
        "--lower",
        action="append",
        required=True,
        metavar="REGION=DSN",
        help="a region the upper reaches through a lower gateway, and its audit database"
        " (repeatable)",
    )
    check_links.add_argument(
        "--since", help="start of the window, ISO 8601 (no offset: China time; default 24 h ago)"
    )
    check_links.add_argument("--until", help="end of the window, ISO 8601 (default: now)")
    check_links.add_argument(
        "--acting", help="the upper's [delegation] id: orphans are events made for it"
    )
    check_links.set_defaults(run=run_reconcile)


def _dsn(args: argparse.Namespace) -> str:
    dsn = args.dsn or os.environ.get("DELTAGATE_AUDIT_DSN")
    if not dsn:
        raise ConfigError("name the audit database with --dsn or DELTAGATE_AUDIT_DSN")
    return str(dsn)


def _anchor(text: str | None) -> Head | None:
    """``CHAIN:SEQ:HASH``; ``SEQ:HASH`` (a head of the single-chain layout) names the
    chain that log became."""
    if text is None:
        return None
    parts = text.split(":")
    if len(parts) == 2:
        parts.insert(0, LEGACY_CHAIN)
    if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or len(parts[2]) != 64:
        raise ConfigError("--anchor takes CHAIN:SEQ:HASH, as verify prints the newest event")
    return Head(parts[0], int(parts[1]), parts[2].lower())


async def _init(dsn: str, also: Sequence[Callable[[str], Awaitable[None]]]) -> bool:
    """``init_schema``, then the other tables' own (the span store's); whether it migrated."""
    migrated = await init_schema(dsn)
    for init in also:
        await init(dsn)
    return migrated


def run_init(args: argparse.Namespace) -> int:
    try:
        migrated = asyncio.run(_init(_dsn(args), getattr(args, "also_init", ())))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # Most often "must be owner": init is for the role that is to own the tables.
        raise GatewayError(f"audit init failed: {exc}") from None
    if migrated:
        print(
            "brought the single-chain log forward: its events are now the chain"
            f" {LEGACY_CHAIN!r}, unchanged (an anchor SEQ:HASH still verifies)"
        )
    print(
        "audit log ready: tables audit_event, audit_checkpoint, audit_decision_set;"
        f" guards {', '.join(GUARDS)}"
    )
    return 0


def _secret() -> tuple[bytes, str]:
    configured = os.environ.get(SECRET_VARIABLE)
    if configured:
        return configured.encode(), SECRET_VARIABLE
    return DEVELOPMENT_SECRET, f"the development secret ({SECRET_VARIABLE} is not set)"


def _open(dsn: str, secret: bytes = DEVELOPMENT_SECRET) -> PostgresAuditLog:
    # Reading only: a log whose guard was turned off must still be readable, to look into it.
    return PostgresAuditLog(dsn, timeout=10.0, guards_required=False, checkpoint_secret=secret)


# No ``start``: it would connect once more just to log a warning; the first use connects.
async def _verify(log: PostgresAuditLog, anchor: Head | None, source: str) -> VerifyReport:
    try:
        return await log.verify(anchor=anchor, secret_source=source)
    finally:
        await log.close()


async def _tail(log: AuditLog, count: int) -> list[StoredEvent]:
    try:
        newest = await log.read(EventQuery(limit=count))
    except AuditUnavailable as exc:
        raise GatewayError(log.problem or str(exc)) from None
    finally:
        await log.close()
    return list(reversed(newest))


def run_verify(args: argparse.Namespace) -> int:
    anchor = _anchor(args.anchor)
    secret, source = _secret()
    report = asyncio.run(_verify(_open(_dsn(args), secret), anchor, source))
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


def run_tail(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ConfigError("-n must be at least 1")
    for event in asyncio.run(_tail(_open(_dsn(args)), args.n)):
        print(orjson.dumps(as_json(event)).decode() if args.json else describe(event))
    return 0


def as_json(stored: StoredEvent) -> dict[str, Any]:
    """An event as a JSON object (the fields auditors read, and the chain's)."""
    event = stored.event
    return {
        "id": stored.id,
        "chain": stored.chain,
        "seq": stored.seq,
        "at": event.at.astimezone(CHINA_TIME).isoformat(timespec="microseconds"),
        "traceId": event.trace_id,
        "callerApp": event.caller_app,
        "callerRegion": event.caller_region,
        "roles": list(event.roles),
        "matterCode": event.matter_code,
        "operationName": event.operation_name,
        "documentHash": event.document_hash,
        "policyVersion": event.policy_version,
        "subjects": list(event.subjects),
        "decisions": list(event.decisions),
        "actingGateway": event.acting,
        "receipts": list(event.receipts),
        "hashAlgorithm": stored.hash_algorithm,
        "hash": stored.hash,
    }


def describe(stored: StoredEvent) -> str:
    """One line per event: chain:number, time, who, matter, operation, how much, trace."""
    event = stored.event
    at = event.at.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M:%S")
    released = _released(event.decisions)
    acting = f" via {event.acting}" if event.acting else ""
    receipts = f", {len(event.receipts)} receipts" if event.receipts else ""
    return (
        f"{stored.chain}:{stored.seq} {at} {event.caller_app}{acting} ({event.caller_region};"
        f" {','.join(event.roles)}) matter {event.matter_code or '-'}"
        f" op {event.operation_name or '-'}: {len(event.subjects)} subjects, {released}{receipts}"
        f" trace {event.trace_id}"
    )


def _released(decisions: Sequence[Any]) -> str:
    totals = {"CLEAR": 0, "MASKED": 0, "WITHHELD": 0}
    for entry in decisions:
        if entry.get("decision") in totals:
            totals[entry["decision"]] += int(entry.get("count", 0))
    return ", ".join(f"{n} {decision.lower()}" for decision, n in totals.items())


def _time(text: str | None, default: dt.datetime, option: str) -> dt.datetime:
    if text is None:
        return default
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} takes an ISO 8601 time, e.g. 2024-06-01T09:00+08:00") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=CHINA_TIME)


def _lowers(pairs: Sequence[str]) -> dict[str, str]:
    lowers: dict[str, str] = {}
    for pair in pairs:
        region, _, dsn = pair.partition("=")
        region = region.strip().upper()
        if not region or not dsn:
            raise ConfigError(f"--lower takes REGION=DSN, not {pair!r}")
        if region in lowers:
            raise ConfigError(f"--lower names {region} twice")
        lowers[region] = dsn
    return lowers


async def _reconcile(
    upper: AuditLog, lowers: Mapping[str, AuditLog], args: argparse.Namespace
) -> ReconcileReport:
    now = dt.datetime.now(dt.UTC)
    until = _time(args.until, now, "--until")
    since = _time(args.since, until - dt.timedelta(hours=24), "--since")
    if since >= until:
        raise ConfigError("--since must be before --until")
    try:
        return await reconcile(upper, lowers, since=since, until=until, acting=args.acting)
    except AuditUnavailable as exc:
        problems = [log.problem for log in (upper, *lowers.values()) if log.problem]
        raise GatewayError("; ".join(problems) or str(exc)) from None
    finally:
        for log in (upper, *lowers.values()):
            await log.close()


def run_reconcile(args: argparse.Namespace) -> int:
    lowers = {region: _open(dsn) for region, dsn in _lowers(args.lower).items()}
    report = asyncio.run(_reconcile(_open(args.upper), lowers, args))
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1
