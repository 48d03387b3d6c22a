"""Checking the audit log: walk every chain and every checkpoint, whatever store keeps them.

``check_log`` reads the checkpoints in order, then every event chain by chain in
``seq`` order (an ``AuditLog`` hands both over from one consistent snapshot),
and stops at the first thing that is missing, altered or out of place, naming it
(``chain:seq`` of an event, or the checkpoint's number).

Per chain: events 1, 2, 3, ... without gaps, each hash recomputed, each linked
to the one before; an event that refers to a stored decisions list is hashed
with that list (an edited or missing list is named in the report). Per
checkpoint (``gateway.audit.checkpoints``): numbered without gaps and linked,
its hash and Merkle root recomputed, its signature checked with the checkpoint
secret, and no chain's head going backwards from one checkpoint to the next.
Then every head a checkpoint recorded must still be in its chain with that hash:
this catches the deletion of a chain's newest events, or of a whole chain, that
a checkpoint covered. The report also carries the store's guards (for
PostgreSQL, the append-only and link triggers) and whether each is in place, and
the newest checkpoint; an ``anchor`` (an event written down earlier) must still
be there too.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field

from gateway.audit.checkpoints import Checkpoint, Head, merkle_root
from gateway.audit.decision_sets import list_digest
from gateway.audit.events import GENESIS, StoredEvent

__all__ = ["Break", "VerifyReport", "check_chain", "check_log"]


@dataclass(frozen=True, slots=True)
class Break:
    """The first place the log does not hold.

    Attributes:
        chain: the event's chain, or None for a checkpoint.
        seq: the event's number in its chain, or the checkpoint's number.
        kind: for an event ``missing``, ``altered``, ``reordered``, ``not linked``,
            ``unverifiable``, ``removed`` (a head a checkpoint recorded is gone or
            changed) or ``anchor``; for a checkpoint ``missing``, ``altered``,
            ``not linked``, ``forged`` (its signature does not match) or
            ``backwards`` (a chain's head went back).
        detail: one sentence for the report.
    """

    chain: str | None
    seq: int
    kind: str
    detail: str

    @property
    def where(self) -> str:
        return f"checkpoint {self.seq}" if self.chain is None else f"event {self.chain}:{self.seq}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What ``verify`` found.

    Attributes:
        events: how many events were checked and found intact.
        chains: how many chains they are in.
        checkpoints: how many checkpoints were checked and found intact.
        head: the newest event (by ``id``), None for an empty log.
        checkpoint: (seq, hash) of the newest checkpoint, None if there is none.
        uncovered: events no checkpoint covers yet (written after the newest).
        broken: the first break, None if the log holds.
        guards: each expected trigger and whether it is there and enabled.
        secret: where the checkpoint secret came from, for the report.
    """

    events: int
    head: Head | None
    broken: Break | None
    chains: int = 0
    checkpoints: int = 0
    checkpoint: tuple[int, str] | None = None
    uncovered: int = 0
    guards: dict[str, bool] = field(default_factory=dict)
    secret: str = ""

    @property
    def ok(self) -> bool:
        return self.broken is None and all(self.guards.values())

    def lines(self) -> list[str]:
        out = []
        if self.broken is None:
            out.append(f"chains intact: {self.events} events in {self.chains} chains")
            out.append(f"checkpoints intact: {self.checkpoints}")
        else:
            b = self.broken
            out.append(f"log BROKEN at {b.where} ({b.kind}): {b.detail}")
        if self.head is not None:
            out.append(f"newest event: {self.head.chain}:{self.head.seq}, hash {self.head.hash}")
        if self.checkpoint is not None:
            out.append(f"newest checkpoint: {self.checkpoint[0]}, hash {self.checkpoint[1]}")
        if self.uncovered:
            out.append(
                f"{self.uncovered} events written after the newest checkpoint"
                " (a later checkpoint will cover them)"
            )
        if self.secret:
            out.append(f"checkpoint signatures checked with {self.secret}")
        for name, enabled in self.guards.items():
            out.append(f"guard {name}: {'enabled' if enabled else 'MISSING OR DISABLED'}")
        return out


def _check(event: StoredEvent, expected: int, prev: str) -> Break | None:
    chain, seq = event.chain, event.seq
    if seq != expected:
        return Break(
            chain,
            expected,
            "missing",
            f"event {expected} is missing (after event {expected - 1} comes event {seq})",
        )
    try:
        intact = event.verify_hash()
    except ValueError:
        missing = f"this platform has no {event.hash_algorithm} hash"
        return Break(chain, seq, "unverifiable", missing)
    linked = event.prev_hash == prev
    if not intact and not linked:
        return Break(
            chain, seq, "reordered", "neither its contents nor its link to the event before match"
        )
    if not intact:
        return Break(chain, seq, "altered", _altered(event))
    if not linked:
        return Break(chain, seq, "not linked", f"it does not carry the hash of event {seq - 1}")
    return None


def _altered(event: StoredEvent) -> str:
    """What an altered event's report says: its stored list, if that is what changed."""
    stored = event.decision_set
    if stored is not None and list_digest(event.event.decisions) != stored:
        what = "is missing" if not event.event.decisions else "was edited"
        return (
            f"its contents do not match its hash: its decisions list {stored} {what}"
            " (every event that refers to it breaks)"
        )
    return "its contents do not match its hash"


def _check_checkpoint(
    checkpoint: Checkpoint, expected: int, prev: str, secret: bytes
) -> Break | None:
    seq = checkpoint.seq
    if seq != expected:
        return Break(None, expected, "missing", f"checkpoint {expected} is missing")
    try:
        intact = checkpoint.expected_hash() == checkpoint.hash and checkpoint.root == merkle_root(
            checkpoint.heads, checkpoint.hash_algorithm
        )
    except ValueError:
        return Break(None, seq, "unverifiable", f"no {checkpoint.hash_algorithm} hash here")
    if not intact:
        return Break(None, seq, "altered", "its contents or root do not match its hash")
    if checkpoint.prev_hash != prev:
        return Break(None, seq, "not linked", f"it does not carry the hash of checkpoint {seq - 1}")
    if not checkpoint.signed_with(secret):
        return Break(
            None, seq, "forged",
            "its signature does not match (is the checkpoint secret the gateway's?)",
        )  # fmt: skip
    return None


async def check_log(
    events: AsyncIterable[StoredEvent],
    checkpoints: AsyncIterable[Checkpoint],
    *,
    secret: bytes,
    anchor: Head | None = None,
    guards: dict[str, bool] | None = None,
    secret_source: str = "",
) -> VerifyReport:
    """Walk ``checkpoints`` (in ``seq`` order), then ``events`` (chain by chain, each in
    ``seq`` order), and report the first break.

    Every ``AuditLog.verify`` ends here, so the log's rules are checked one way
    whatever keeps it.

    Args:
        events: every stored event, ordered by (chain, seq).
        checkpoints: every checkpoint, oldest first.
        secret: the checkpoint secret the signatures must match.
        anchor: an event written down earlier; it must still be there with that hash.
        guards: the store's guards and whether each is in place (none: {}).
        secret_source: where ``secret`` came from, for the report.
    """
    broken: Break | None = None
    # Every head a checkpoint recorded, per chain: seq -> hash.
    recorded: dict[str, dict[int, str]] = {}
    newest: dict[str, int] = {}
    counted = 0
    prev = GENESIS
    through = 0
    last: tuple[int, str] | None = None
    async for checkpoint in checkpoints:
        if broken is not None:
            continue
        broken = _check_checkpoint(checkpoint, counted + 1, prev, secret)
        for head in checkpoint.heads:
            if broken is not None:
                break
            if head.seq < newest.get(head.chain, 0):
                broken = Break(
                    None, checkpoint.seq, "backwards",
                    f"chain {head.chain} went back from event {newest[head.chain]} to {head.seq}",
                )  # fmt: skip
            elif recorded.get(head.chain, {}).get(head.seq, head.hash) != head.hash:
                broken = Break(
                    None, checkpoint.seq, "backwards",
                    f"event {head.chain}:{head.seq} has another hash than an earlier checkpoint's",
                )  # fmt: skip
            newest[head.chain] = head.seq
            recorded.setdefault(head.chain, {})[head.seq] = head.hash
        if broken is None:
            counted += 1
            prev = checkpoint.hash
            through = checkpoint.through_id
            last = (checkpoint.seq, checkpoint.hash)

    if anchor is not None:
        recorded.setdefault(anchor.chain, {}).setdefault(anchor.seq, anchor.hash)
    walk = await _check_events(events, recorded, anchor, through, stop=broken is not None)
    broken = broken or walk.broken
    if broken is None:
        for chain, heads in sorted(recorded.items()):
            if heads:
                seq = min(heads)
                anchored = anchor is not None and (chain, seq) == (anchor.chain, anchor.seq)
                kind = "anchor" if anchored else "removed"
                broken = Break(
                    chain, seq, kind,
                    "the event a checkpoint recorded as this chain's head is no longer in the log"
                    if kind == "removed" else "the anchored event is no longer in the log",
                )  # fmt: skip
                break
    return VerifyReport(
        events=walk.events,
        chains=walk.chains,
        head=walk.newest,
        broken=broken,
        checkpoints=counted,
        checkpoint=last,
        uncovered=walk.uncovered,
        guards=dict(guards or {}),
        secret=secret_source,
    )


@dataclass
class _Walk:
    events: int = 0
    chains: int = 0
    newest: Head | None = None
    newest_id: int = -1
    uncovered: int = 0
    broken: Break | None = None


async def _check_events(
    events: AsyncIterable[StoredEvent],
    recorded: dict[str, dict[int, str]],
    anchor: Head | None,
    through: int,
    *,
    stop: bool,
) -> _Walk:
    """Walk the chains; remove from ``recorded`` every head found intact with its hash."""
    walk = _Walk()
    chain: str | None = None
    expected, prev = 1, GENESIS
    async for event in events:
        if event.id > walk.newest_id:
            walk.newest_id = event.id
            walk.newest = Head(event.chain, event.seq, event.hash)
        if stop or walk.broken is not None:
            continue
        if event.chain != chain:
            chain, expected, prev = event.chain, 1, GENESIS
            walk.chains += 1
        walk.broken = _check(event, expected, prev)
        if walk.broken is not None:
            continue
        wanted = recorded.get(event.chain, {}).pop(event.seq, None)
        if wanted is not None and wanted != event.hash:
            is_anchor = anchor is not None and (event.chain, event.seq) == (
                anchor.chain, anchor.seq,
            )  # fmt: skip
            walk.broken = Break(
                event.chain, event.seq, "anchor" if is_anchor else "removed",
                "its hash is not the one "
                + ("written down" if is_anchor else "a checkpoint recorded")
                + " (the chain was rewritten)",
            )  # fmt: skip
            continue
        walk.events += 1
        walk.uncovered += event.id > through
        expected, prev = event.seq + 1, event.hash
    return walk


async def check_chain(
    events: AsyncIterable[StoredEvent],
    *,
    anchor: Head | None = None,
    guards: dict[str, bool] | None = None,
) -> VerifyReport:
    """``check_log`` for a store without checkpoints (its events' chains alone)."""
    return await check_log(events, _none(), secret=b"", anchor=anchor, guards=guards)


async def _none() -> AsyncIterator[Checkpoint]:
    none: tuple[Checkpoint, ...] = ()
    for checkpoint in none:
        yield checkpoint
