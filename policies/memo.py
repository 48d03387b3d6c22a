"""What operations' policies work out alike, kept across operations of one policy snapshot.

An operation's masking plans (which fields of a type, owner and kind of
subject are clear, masked or withheld), the layout of its summary (its
entries, sorted, without their counts) and whether the caller may see a
record's owner depend only on the policy files and on who asks: the caller's
region, its roles with the matter each may use, and the matter. A steady
stream of similar requests works each out once, here, instead of once per
request.

One memo belongs to one ``PolicySnapshot`` (``PolicyEngine`` makes a new one
with every reload, so a reloaded policy never answers from the old one), and
every key starts with who asks (``OperationPolicy._who``). Only answers are
kept: an evaluation that fails raises before anything is stored. Each table is
bounded: when full it is emptied (refilling costs one operation's work), so no
caller can grow it without limit, whatever documents it sends.
"""

from __future__ import annotations

from typing import Any

from policies.snapshot import PolicySnapshot


class DecisionMemo:
    """Bounded tables of one snapshot's per-caller work (see the module docstring).

    Args:
        snapshot: the policy whose work is kept; nothing of another is ever stored.
        limit: the most entries each table keeps.
    """

    __slots__ = ("layouts", "limit", "owners", "plans", "snapshot")

    def __init__(self, snapshot: PolicySnapshot, limit: int) -> None:
        self.snapshot = snapshot
        self.limit = limit
        self.plans: dict[Any, Any] = {}
        self.layouts: dict[Any, Any] = {}
        self.owners: dict[Any, bool] = {}

    def keep(self, table: dict[Any, Any], key: Any, value: Any) -> None:
        """Store ``value`` under ``key`` in one of the tables, emptying it first when full."""
        if len(table) >= self.limit:
            table.clear()
        table[key] = value
