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
sends a list's body only while it does not know it to be stored
(``KnownSets``, a bounded memo filled once a batch has committed); the lists go
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


def list_digest(decisions: Sequence[Mapping[str, Any]]) -> str:
    """The digest of a decisions list (``verify`` recomputes it to name an edited list)."""
    return digest_of(orjson.dumps(list(decisions), option=orjson.OPT_SORT_KEYS))


class KnownSets:
    """The digests a writer knows to be stored, the most recently used kept (bounded).

    Only a committed batch adds to it: a list whose statement failed is sent again.
    A list once stored stays (its table is append-only), so a digest here can only go
    stale if someone turned the guard off and deleted it; ``verify`` names such an event.
    """

    def __init__(self, limit: int = KNOWN_LIMIT) -> None:
        self._limit = limit
        self._known: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, digest: object) -> bool:
        if digest in self._known:
            self._known.move_to_end(digest)  # type: ignore[arg-type]
            return True
        return False

    def __len__(self) -> int:
        return len(self._known)

    def add(self, digests: Sequence[str]) -> None:
        for digest in digests:
            self._known[digest] = None
            self._known.move_to_end(digest)
        while len(self._known) > self._limit:
            self._known.popitem(last=False)

    def clear(self) -> None:
        self._known.clear()


@dataclass(frozen=True, slots=True)
class Batch:
    """One INSERT's arguments: the events' records with their lists by reference
    (``events``), the lists not known to be stored (``lists``), and their digests."""

    events: str
    lists: str
    new: tuple[str, ...]


def batch(stored: Sequence[StoredEvent], known: KnownSets) -> Batch:
    """The arguments of ``sql.INSERT`` for ``stored`` (linked events with their records)."""
    records: list[bytes] = []
    lists: dict[str, bytes] = {}
    for event in stored:
        body = orjson.dumps(list(event.event.decisions), option=orjson.OPT_SORT_KEYS)
        digest = digest_of(body)
        # The record is the canonical form plus the hash: the list sits there under
        # "decisions" exactly as dumped above; the reference takes its place.
        inline = b'"decisions":' + body
        at = event.record.find(inline)
        if at < 0:  # not expected; an inline list is stored as it always was
            records.append(event.record)
            continue
        reference = b'"decisionSet":"' + digest.encode() + b'"'
        records.append(event.record[:at] + reference + event.record[at + len(inline) :])
        if digest not in lists and digest not in known:
            lists[digest] = b'{"digest":"' + digest.encode() + b'","decisions":' + body + b"}"
    return Batch(
        events=(b"[" + b",".join(records) + b"]").decode(),
        lists=(b"[" + b",".join(lists.values()) + b"]").decode(),
        new=tuple(lists),
    )
