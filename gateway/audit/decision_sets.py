"""Decision lists stored once, by their digest: what the writer sends for a batch of events.

An event's ``decisions`` (one entry per field coordinate and owning region) is
most of its size, and the same list recurs in many events: the same document
asked by the same kind of caller about data of the same owners. PostgreSQL
keeps each distinct list once, in ``audit_decision_set`` (content-addressed,
append-only), and an event refers to its list by digest (``decision_set``)
instead of carrying a copy. The event's hash still covers the whole list (its
canonical form, ``events.canonical``, is unchanged): ``verify`` joins the list
back in and recomputes it, so an edited list breaks every event that uses it.

The digest is SHA-256 over the list's canonical bytes (the same bytes the
event's canonical form holds: ``orjson`` with sorted keys), in hex. A writer
sends a list inline the first time it meets it (a list that never repeats is
not worth a row of its own), stores it with the next event that has it and
refers to it from then on, sending only the digest once it knows it stored
(``KnownSets``, a bounded memo filled once a batch has committed). The lists go
in the same statement as the events that refer to them (``sql.INSERT``, ``ON
CONFLICT DO NOTHING``), so an event is never committed without its list.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.audit.events import StoredEvent

__all__ = ["Batch", "KnownSets", "batch", "digest_of", "list_digest"]

#: Distinct lists a writer remembers as stored: a few documents times caller kinds times
#: owners; 64 bytes of digest each, so the memo stays under a megabyte.
KNOWN_LIMIT = 8192


def digest_of(body: bytes) -> str:
    """The digest a list is stored under, from its canonical bytes."""
    return hashlib.sha256(body).hexdigest()


def list_json(decisions: Sequence[Mapping[str, Any]]) -> bytes:
    """A decisions list's canonical bytes (as in its event's canonical form)."""
    return orjson.dumps(list(decisions), option=orjson.OPT_SORT_KEYS)


def list_digest(decisions: Sequence[Mapping[str, Any]]) -> str:
    """The digest of a decisions list (``verify`` recomputes it to name an edited list)."""
    return digest_of(list_json(decisions))


#: Where a record's list begins.
_KEY = b'"decisions":'


class KnownSets:
    """The lists a writer has met: seen once (sent inline), or known stored (sent by digest).

    The most recently used are kept (bounded). A list seen for the first time goes
    inline in its event: a list that never repeats (the counts of a long list vary with
    the data) then costs what it always did, not a row of its own as well. From its
    second event on it is stored, once, and referred to. Only a committed batch makes a
    list known stored: one whose statement failed is sent again. A list once stored
    stays (its table is append-only), so a digest here can only go stale if someone
    turned the guard off and deleted it; ``verify`` names such an event.
    """

    def __init__(self, limit: int = KNOWN_LIMIT) -> None:
        self._limit = limit
        #: digest -> stored (True) or seen once (False).
        self._known: OrderedDict[str, bool] = OrderedDict()

    def state(self, digest: str) -> bool | None:
        """True if known stored, False if seen once, None if not met (or forgotten)."""
        stored = self._known.get(digest)
        if stored is not None:
            self._known.move_to_end(digest)
        return stored

    def __contains__(self, digest: object) -> bool:
        """Whether ``digest`` is known stored."""
        return isinstance(digest, str) and self.state(digest) is True

    def __len__(self) -> int:
        return len(self._known)

    def saw(self, digests: Sequence[str]) -> None:
        """Remember ``digests`` as seen once (their events carried them inline)."""
        for digest in digests:
            self._known.setdefault(digest, False)
        self._trim()

    def add(self, digests: Sequence[str]) -> None:
        """Remember ``digests`` as stored (their batch has committed)."""
        for digest in digests:
            self._known[digest] = True
            self._known.move_to_end(digest)
        self._trim()

    def clear(self) -> None:
        self._known.clear()

    def _trim(self) -> None:
        while len(self._known) > self._limit:
            self._known.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Batch:
    """One INSERT's arguments: the events' records (``events``: a list met before by
    reference, one met for the first time inline), the lists to store (``lists``), both
    JSON arrays in UTF-8, their digests (``new``), and the digests met for the first time
    (``seen``)."""

    events: bytes
    lists: bytes
    new: tuple[str, ...]
    seen: tuple[str, ...] = ()


def batch(stored: Sequence[StoredEvent], known: KnownSets) -> Batch:
    """The arguments of ``sql.INSERT`` for ``stored`` (linked events with their records)."""
    records: list[bytes] = []
    lists: dict[str, bytes] = {}
    seen: dict[str, None] = {}
    for event in stored:
        body = event.decisions_json or list_json(event.event.decisions)
        digest = digest_of(body)
        state = known.state(digest)
        if state is None and digest not in seen:
            seen[digest] = None  # the first time: inline, as the record already has it
            records.append(event.record)
            continue
        # The record is the canonical form plus the hash: the list sits there under
        # "decisions" exactly as dumped above; the reference takes its place. The first
        # '"decisions":' is the key (a quote inside a string is escaped).
        at = event.record.find(_KEY)
        end = at + len(_KEY) + len(body)
        if at < 0 or not event.record.startswith(body, at + len(_KEY)):
            records.append(event.record)  # not expected; inline, as it always was
            continue
        reference = b'"decisionSet":"' + digest.encode() + b'"'
        records.append(event.record[:at] + reference + event.record[end:])
        if state is not True and digest not in lists:
            lists[digest] = b'{"digest":"' + digest.encode() + b'","decisions":' + body + b"}"
    return Batch(
        events=b"[" + b",".join(records) + b"]",
        lists=b"[" + b",".join(lists.values()) + b"]",
        new=tuple(lists),
        seen=tuple(seen),
    )
