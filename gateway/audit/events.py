"""Audit events and the hash chain that links them.

One event records one GraphQL operation that touched data of grade L2 or
above: when, which trace, who (app, region, roles), for which matter, which
operation (its name and the SHA-256 of its document), whose data (the subject
identifiers: ID numbers and USCCs) and what was released per field coordinate
and owning region (clear, masked or withheld, with counts).

The chains: every writer (a gateway worker process) appends to a chain of its
own, named at random when it starts (``chain``). Within a chain, events are
numbered 1, 2, 3, ... (``seq``) and each carries the hash of the one before
(``prev_hash``; event 1 carries 64 zeros). An event's hash is taken over its
canonical form: a JSON object of every stored field but the hash itself (the
chain's name included), keys sorted, no whitespace, UTF-8 (see
``canonical``). The events of a log of the earlier single-chain layout form
the chain ``LEGACY_CHAIN`` and keep the form they were hashed in (without the
chain's name). The database also numbers every event across chains (``id``,
not hashed): the order auditors read in. The
algorithm is SM3 (GB/T 32905-2016, the national standard hash) where the
platform's ``hashlib`` offers it (OpenSSL 1.1.1 and later), else SHA-256; it is
recorded in every event, so a chain written on one platform verifies on
another that has the same algorithm.

Editing an event changes its hash; deleting one leaves a gap in its chain's
``seq`` and a ``prev_hash`` that matches nothing; reordering breaks the links.
Removing a chain's newest events, or a whole chain, is not detected by the
chains alone: the signed checkpoints (``gateway.audit.checkpoints``) are what
catch it, for every event a checkpoint covered.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

#: The chain's hash: SM3 where available (the national standard), else SHA-256.
HASH_ALGORITHM = "sm3" if "sm3" in hashlib.algorithms_available else "sha256"

#: The ``prev_hash`` of the first event.
GENESIS = "0" * 64

#: The chain that the events of a single-chain log become (``deltagate audit init``): their
#: canonical form is the one they were hashed in, without the chain's name. No writer
#: appends to it (writers' chains are named by ``new_chain_name``).
LEGACY_CHAIN = "single"

#: China Standard Time: how times are shown to auditors and read from filters without an offset.
CHINA_TIME = dt.timezone(dt.timedelta(hours=8), "CST")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """What one operation did, before it is numbered and chained.

    Attributes:
        at: when the operation was answered (UTC).
        trace_id: the operation's W3C trace id (32 hex digits), as in its response.
        caller_app: the caller application (the token's ``sub``).
        caller_region: the caller's home region, or ``NATIONAL``.
        roles: the caller's roles.
        matter_code: the matter (事项) named in ``X-Matter-Code``, if any.
        matter_name: its registered name, as it was when the event was written.
        operation_name: the GraphQL operation's name, if it has one.
        operation_type: ``query`` (or ``mutation``, ``subscription``).
        document_hash: SHA-256 of the document text.
        policy_version: the version of the policy files that decided.
        subjects: the ID numbers and USCCs whose records the operation read, sorted.
        decisions: per field coordinate and owning region, what was released:
            ``{"field", "owner", "decision", "grade", "reason", "count", ...}``.
        acting: in the cascade, the upper gateway that acted for the caller (its
            ``[delegation] id``); None for a caller that called directly.
        receipts: the receipts of the lower gateways' events for this operation,
            ``{"gateway", "region", "seq", "hash"}`` each (``deltagate audit reconcile``
            checks each against the lower's log).
    """

    at: dt.datetime
    trace_id: str
    caller_app: str
    caller_region: str
    roles: tuple[str, ...]
    matter_code: str | None
    matter_name: str | None
    operation_name: str | None
    operation_type: str | None
    document_hash: str
    policy_version: str | None
    subjects: tuple[str, ...]
    decisions: tuple[Mapping[str, Any], ...]
    acting: str | None = None
    receipts: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """An event as the audit database keeps it: numbered and chained.

    Attributes:
        chain: the chain it is in (its writer's).
        seq: its number in that chain, from 1 without gaps.
        event: what it records.
        hash_algorithm: ``sm3`` or ``sha256``.
        prev_hash: the hash of event ``seq - 1`` of the chain (``GENESIS`` for event 1).
        hash: the hash of this event's canonical form.
        id: its number across all chains, given by the database as it is stored
            (increasing, with gaps; not hashed): the order of reads and cursors.
            0 until stored.
        record: the canonical form with the hash added, as the writer sends it
            (empty for an event read back).
        decision_set: the digest of the stored list its decisions were read from
            (``gateway.audit.decision_sets``; not hashed), None if it carries them.
        decisions_json: the decisions list's canonical bytes, as in ``record`` (the
            writer's, for its digest; empty for an event read back).
    """

    chain: str
    seq: int
    event: AuditEvent
    hash_algorithm: str
    prev_hash: str
    hash: str
    id: int = 0
    record: bytes = field(default=b"", repr=False, compare=False)
    decision_set: str | None = field(default=None, compare=False)
    decisions_json: bytes = field(default=b"", repr=False, compare=False)

    def verify_hash(self) -> bool:
        """Whether the stored hash is the hash of the stored contents."""
        return self.hash == chain_hash(
            self.chain, self.seq, self.event, self.hash_algorithm, self.prev_hash
        )


def utc_text(at: dt.datetime) -> str:
    """The canonical text of a time: UTC, microseconds (what ``timestamptz`` keeps)."""
    return at.astimezone(dt.UTC).isoformat(timespec="microseconds")


def new_chain_name() -> str:
    """A writer's chain name: random, so that no two writers share one, and saying nothing
    about the machine or person behind it."""
    return secrets.token_hex(8)


def canonical(chain: str, seq: int, event: AuditEvent, algorithm: str, prev_hash: str) -> bytes:
    """The bytes an event's hash is taken over: every stored field but the hash (and ``id``).

    A JSON object of those fields, keys sorted, no whitespace (orjson with sorted
    keys, as ``canonical_form`` builds it). ``acting`` and ``receipts`` (the cascade's)
    are there only when set, and ``chain`` only outside the single chain of a log
    brought forward: an event written before they existed hashes as it did then, so a
    log brought forward by ``deltagate audit init`` still verifies. Setting either on
    such an event (or clearing it on another) changes its hash all the same.
    """
    head, decisions, tail = _parts(chain, seq, event, algorithm, prev_hash)
    return head + decisions + tail


def canonical_form(
    chain: str, seq: int, event: AuditEvent, algorithm: str, prev_hash: str
) -> dict[str, Any]:
    """The object whose sorted-key JSON is an event's ``canonical`` form (its definition:
    ``canonical`` builds the same bytes in parts, to dump the decisions list once)."""
    form: dict[str, Any] = {} if chain == LEGACY_CHAIN else {"chain": chain}
    form.update(
        {
            "seq": seq,
            "at": utc_text(event.at),
            "traceId": event.trace_id,
            "callerApp": event.caller_app,
            "callerRegion": event.caller_region,
            "roles": list(event.roles),
            "matterCode": event.matter_code,
            "matterName": event.matter_name,
            "operationName": event.operation_name,
            "operationType": event.operation_type,
            "documentHash": event.document_hash,
            "policyVersion": event.policy_version,
            "subjects": list(event.subjects),
            "decisions": list(event.decisions),
            "hashAlgorithm": algorithm,
            "prevHash": prev_hash,
        }
    )
    if event.acting is not None:
        form["acting"] = event.acting
    if event.receipts:
        form["receipts"] = list(event.receipts)
    return form


def _parts(
    chain: str, seq: int, event: AuditEvent, algorithm: str, prev_hash: str
) -> tuple[bytes, bytes, bytes]:
    """The canonical form in three parts: what precedes the decisions list (up to and
    including its key), the list (its sorted-key JSON, the bytes its digest is taken
    over: ``decision_sets``), and what follows it.

    The keys before ``decisions`` in sorted order (``acting``, ``at``, ``callerApp``,
    ``callerRegion``, ``chain``) and those after it are dumped apart, each group in its
    sorted order, and joined: the bytes of the whole object dumped with sorted keys
    (``tests/gateway/audit/test_events.py`` holds them to ``canonical_form``).
    """
    head: dict[str, Any] = {} if event.acting is None else {"acting": event.acting}
    head["at"] = utc_text(event.at)
    head["callerApp"] = event.caller_app
    head["callerRegion"] = event.caller_region
    if chain != LEGACY_CHAIN:
        head["chain"] = chain
    tail: dict[str, Any] = {
        "documentHash": event.document_hash,
        "hashAlgorithm": algorithm,
        "matterCode": event.matter_code,
        "matterName": event.matter_name,
        "operationName": event.operation_name,
        "operationType": event.operation_type,
        "policyVersion": event.policy_version,
        "prevHash": prev_hash,
    }
    if event.receipts:
        tail["receipts"] = list(event.receipts)
    tail["roles"] = list(event.roles)
    tail["seq"] = seq
    tail["subjects"] = list(event.subjects)
    tail["traceId"] = event.trace_id
    # Both groups are built in sorted order; what they hold needs no sorting, but for
    # the keys of the receipts (and of the decisions, dumped sorted).
    first = orjson.dumps(head)
    rest = orjson.dumps(tail, option=orjson.OPT_SORT_KEYS) if event.receipts else orjson.dumps(tail)
    decisions = orjson.dumps(list(event.decisions), option=orjson.OPT_SORT_KEYS)
    return first[:-1] + b',"decisions":', decisions, b"," + rest[1:]


#: One hash object per algorithm, copied for each event: ``hashlib.new`` looks the
#: algorithm up in OpenSSL on every call (for SM3 too: it is not among those hashlib keeps).
_EMPTY: dict[str, hashlib._Hash] = {}


def _digest(algorithm: str, body: bytes) -> str:
    empty = _EMPTY.get(algorithm)
    if empty is None:
        empty = _EMPTY[algorithm] = hashlib.new(algorithm)
    hasher = empty.copy()
    hasher.update(body)
    return hasher.hexdigest()


def chain_hash(chain: str, seq: int, event: AuditEvent, algorithm: str, prev_hash: str) -> str:
    """The hex hash of an event at position ``seq`` of ``chain`` following ``prev_hash``.

    Raises:
        ValueError: the platform has no such algorithm (``sm3`` needs OpenSSL 1.1.1+).
    """
    return _digest(algorithm, canonical(chain, seq, event, algorithm, prev_hash))


def link(
    chain: str,
    events: Sequence[AuditEvent],
    after: tuple[int, str],
    algorithm: str = HASH_ALGORITHM,
) -> list[StoredEvent]:
    """Number and link ``events`` in ``chain`` after its event ``after`` = (seq, hash);
    (0, GENESIS) for a new chain."""
    seq, prev = after
    out = []
    for event in events:
        seq += 1
        head, decisions, tail = _parts(chain, seq, event, algorithm, prev)
        body = head + decisions + tail
        digest = _digest(algorithm, body)
        # The same object with the hash added ("hash" sorts last): what the INSERT reads.
        # The chain's name is in it too, also for the legacy chain (first: jsonb keeps
        # no order).
        if chain == LEGACY_CHAIN:
            body = b'{"chain":' + orjson.dumps(chain) + b"," + body[1:]
        record = body[:-1] + b',"hash":"' + digest.encode() + b'"}'
        out.append(StoredEvent(chain=chain, seq=seq, event=event, hash_algorithm=algorithm,
                               prev_hash=prev, hash=digest, record=record,
                               decisions_json=decisions))  # fmt: skip
        prev = digest
    return out
