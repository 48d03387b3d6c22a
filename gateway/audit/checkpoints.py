"""Checkpoints: signed Merkle roots that bind the heads of every chain of the audit log.

Each writer keeps a chain of its own (``gateway.audit.events``), so no chain can
show that its newest events, or the whole chain, were removed. Checkpoints can:
every few seconds (``[audit] checkpoint_interval``), and when a writer closes,
one writer records the head (chain, seq, hash) of every chain that moved since
the previous checkpoint, the Merkle root over those heads, the hash of the
previous checkpoint, and an HMAC of the checkpoint's own hash with a secret the
gateway and the operator hold (``DELTAGATE_AUDIT_CHECKPOINT_SECRET``). The
checkpoints form a hash chain of their own, so the newest one binds, through its
predecessors, every head ever recorded. ``deltagate audit verify`` recomputes
each root, hash and signature, and checks that every recorded head is still in
its chain with that hash and that no chain's head went backwards.

What checkpoints cannot show: events written after the newest checkpoint (at
most one interval's worth, plus a writer that died without closing) can be
removed unseen, as a single chain's newest events could be without an anchor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from gateway.audit.events import utc_text
from gateway.core.errors import ConfigError

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "DEVELOPMENT_SECRET",
    "SECRET_VARIABLE",
    "Checkpoint",
    "Head",
    "checkpoint_secret",
    "merkle_root",
    "seal",
    "stored_checkpoint",
]

logger = logging.getLogger("deltagate.audit")

#: The checkpoint secret of development mode when none is set. It is public (it is
#: here): checkpoints signed with it prove nothing against someone who can write to
#: the audit database. Production requires ``DELTAGATE_AUDIT_CHECKPOINT_SECRET``. A
#: fixed value rather than a random one so that a development log verifies after a
#: restart (the demo keeps its audit database).
DEVELOPMENT_SECRET = b"deltagate-development-checkpoints"

#: Where a checkpoint secret comes from, for the gateway and ``deltagate audit verify``.
SECRET_VARIABLE = "DELTAGATE_AUDIT_CHECKPOINT_SECRET"


@dataclass(frozen=True, slots=True, order=True)
class Head:
    """A chain's newest event as a checkpoint records it."""

    chain: str
    seq: int
    hash: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """One checkpoint, as stored.

    Attributes:
        seq: its number, from 1 without gaps.
        at: when it was written (UTC).
        through_id: every event with an ``id`` up to this one is covered (the
            next checkpoint looks at the events after it).
        heads: the heads of the chains that moved since the previous checkpoint,
            sorted by chain.
        root: the Merkle root over ``heads`` (``merkle_root``).
        hash_algorithm: of the root, the hash and the HMAC (as the events').
        prev_hash: the previous checkpoint's hash (``GENESIS`` for the first).
        hash: the hash of its canonical form.
        signature: the HMAC of ``hash`` with the checkpoint secret.
    """

    seq: int
    at: dt.datetime
    through_id: int
    heads: tuple[Head, ...]
    root: str
    hash_algorithm: str
    prev_hash: str
    hash: str
    signature: str

    def canonical(self) -> bytes:
        """The bytes its hash is taken over: every field but the hash and the signature."""
        return _canonical(
            self.seq, self.at, self.through_id, self.heads, self.root, self.hash_algorithm,
            self.prev_hash,
        )  # fmt: skip

    def expected_hash(self) -> str:
        return hashlib.new(self.hash_algorithm, self.canonical()).hexdigest()

    def signed_with(self, secret: bytes) -> bool:
        """Whether ``signature`` is the HMAC of ``hash`` with ``secret`` (constant time)."""
        return hmac.compare_digest(self.signature, _sign(secret, self.hash, self.hash_algorithm))

    def heads_json(self) -> str:
        return orjson.dumps([[h.chain, h.seq, h.hash] for h in self.heads]).decode()


def _canonical(
    seq: int,
    at: dt.datetime,
    through_id: int,
    heads: Iterable[Head],
    root: str,
    algorithm: str,
    prev_hash: str,
) -> bytes:
    return orjson.dumps(
        {
            "seq": seq,
            "at": utc_text(at),
            "throughId": through_id,
            "heads": [[h.chain, h.seq, h.hash] for h in heads],
            "root": root,
            "hashAlgorithm": algorithm,
            "prevHash": prev_hash,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def _sign(secret: bytes, digest: str, algorithm: str) -> str:
    return hmac.new(secret, digest.encode(), algorithm).hexdigest()


def merkle_root(heads: Iterable[Head], algorithm: str) -> str:
    """The Merkle root over ``heads`` sorted by chain (hex).

    A leaf is the hash of ``0x00 chain:seq:hash``, an inner node the hash of ``0x01``
    and its two children; an odd node is carried up as it is. Distinct prefixes keep
    a leaf from passing for an inner node. No heads: the hash of nothing.
    """
    level = [
        hashlib.new(algorithm, b"\x00" + f"{h.chain}:{h.seq}:{h.hash}".encode()).digest()
        for h in sorted(heads)
    ]
    if not level:
        return hashlib.new(algorithm, b"").hexdigest()
    while len(level) > 1:
        paired = [
            hashlib.new(algorithm, b"\x01" + level[i] + level[i + 1]).digest()
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0].hex()


def seal(
    *,
    seq: int,
    at: dt.datetime,
    through_id: int,
    heads: Iterable[Head],
    prev_hash: str,
    algorithm: str,
    secret: bytes,
) -> Checkpoint:
    """The checkpoint numbered ``seq`` over ``heads``: rooted, hashed and signed."""
    ordered = tuple(sorted(heads))
    root = merkle_root(ordered, algorithm)
    body = _canonical(seq, at, through_id, ordered, root, algorithm, prev_hash)
    digest = hashlib.new(algorithm, body).hexdigest()
    return Checkpoint(
        seq=seq, at=at, through_id=through_id, heads=ordered, root=root,
        hash_algorithm=algorithm, prev_hash=prev_hash, hash=digest,
        signature=_sign(secret, digest, algorithm),
    )  # fmt: skip


def stored_checkpoint(record: Mapping[str, Any] | asyncpg.Record) -> Checkpoint:
    """A row of ``audit_checkpoint`` as a ``Checkpoint``."""
    heads = record["heads"]
    if isinstance(heads, str | bytes):
        heads = orjson.loads(heads)
    return Checkpoint(
        seq=record["seq"],
        at=record["at"],
        through_id=record["through_id"],
        heads=tuple(Head(str(c), int(s), str(h)) for c, s, h in heads),
        root=record["root"],
        hash_algorithm=record["hash_algorithm"],
        prev_hash=record["prev_hash"],
        hash=record["hash"],
        signature=record["signature"],
    )


def checkpoint_secret(configured: str | bytes | None, *, dev_mode: bool) -> bytes:
    """The secret checkpoints are signed with: the configured one, else (development
    mode only) ``DEVELOPMENT_SECRET``.

    Raises:
        ConfigError: none is configured outside development mode.
    """
    if configured:
        return configured.encode("utf-8") if isinstance(configured, str) else configured
    if dev_mode:
        logger.warning(
            "no %s: audit checkpoints are signed with the public development secret",
            SECRET_VARIABLE,
        )
        return DEVELOPMENT_SECRET
    raise ConfigError(f"{SECRET_VARIABLE} must be set outside development mode")
