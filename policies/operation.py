"""The policy of one GraphQL operation: decisions memoised, rows masked in bulk.

``PolicyEngine.begin`` makes one per operation. Every (field coordinate,
owning region) is decided once, on first use, and the answer is kept for the
rest of the operation, so Casbin is consulted a bounded number of times per
operation however many rows come back. ``apply`` turns those decisions into a
plan per (type, owner, kind of subject) — a short list of (row key, action) —
and runs it over the rows in one loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import PolicyError
from gateway.core.types import Caller, Row
from policies.decisions import Decision, FieldDecision, evaluate
from policies.grades import NATURAL_PERSON, snake_case
from policies.masks import MaskFunction
from policies.matters import Matter
from policies.memo import DecisionMemo
from policies.snapshot import PolicySnapshot

logger = logging.getLogger("deltagate.policies")

#: A memo key: (coordinate, owner, about a natural person).
DecisionKey = tuple[str, str, bool]
#: What ``apply`` does to one row key: mask with the function, or withhold (None).
_Change = tuple[str, MaskFunction | None]


@dataclass(frozen=True, slots=True, eq=False)
class Changes:
    """What ``apply`` does to the rows of one type, owner and kind of subject, by row key:
    mask with the function, or withhold (None); a key not listed is released as it is.

    Compared and hashed as the object it is: one per masking plan (so per snapshot, who
    asks, type, owner, kind of subject and selection), and a caller may key work of its
    own that follows from it by it, for as long as it keeps it.
    """

    by_key: Mapping[str, MaskFunction | None]


#: A masking plan: the changes, the decisions it counts (keys and decisions, in the order
#: taken) and the changes by row key (``changes``).
_Plan = tuple[
    tuple[_Change, ...],
    tuple[DecisionKey, ...],
    tuple[FieldDecision, ...],
    Changes,
]


class OperationPolicy:
    """Decisions for one operation of one caller under one matter.

    Not shared between operations, and not safe to share between threads.
    Create it with ``PolicyEngine.begin(caller, matter_code)``.

    Example (in a resolver, after the loader returned raw rows)::

        policy = info.context.policy
        if not policy.allows("NaturalPerson.residences", person_region):
            return None
        rows = policy.apply("Residence", region, raw_rows)
    """

    __slots__ = (
        "_counts",
        "_decisions",
        "_memo",
        "_plans",
        "_roles",
        "_shared",
        "_who",
        "caller",
        "matter",
        "snapshot",
    )

    def __init__(
        self,
        *,
        snapshot: PolicySnapshot,
        caller: Caller,
        matter: Matter | None,
        role_matters: tuple[tuple[str, str], ...],
        shared: MutableMapping[Any, FieldDecision] | None = None,
        memo: DecisionMemo | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.caller = caller
        self.matter = matter
        self._roles = role_matters
        self._shared = shared
        # Work kept across operations: only that of this very snapshot.
        self._memo = memo if memo is not None and memo.snapshot is snapshot else None
        # Who asks, as far as any decision can tell: the prefix of every memo key. A rule
        # that reads more of the caller (the citizen's own subject) must add it here too.
        self._who = (caller.region, role_matters, matter.code if matter is not None else None)
        self._decisions: dict[DecisionKey, FieldDecision] = {}
        self._counts: dict[DecisionKey, int] = {}
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    @property
    def matter_code(self) -> str | None:
        return self.matter.code if self.matter is not None else None

    @property
    def role_matters(self) -> tuple[tuple[str, str], ...]:
        """Each of the caller's roles with the matter code it may use here (``""`` if none)."""
        return self._roles

    @property
    def policy_version(self) -> str:
        """The version of the policy files that decided (for audit records)."""
        return self.snapshot.version

    def decide(
        self, coordinate: str, owner_region: str, *, subject_type: str | None = None
    ) -> FieldDecision:
        """The decision for a field coordinate of data kept by ``owner_region``.

        ``subject_type`` matters for credit records only: ``NATURAL_PERSON``
        raises the grade to the catalog's floor for personal data. An unknown
        coordinate or owner is withheld.
        """
        return self._decide((coordinate, owner_region, subject_type == NATURAL_PERSON))

    def allows(self, coordinate: str, owner_region: str) -> bool:
        """Whether to follow a link field (``NaturalPerson.residences``, ...) at all.

        True when the link is released, clear or masked; the records it leads to
        are then decided field by field by ``apply``. Counted in the summary.
        """
        key = (coordinate, owner_region, False)
        decision = self._decide(key)
        self._counts[key] = self._counts.get(key, 0) + 1
        return decision.released

    def looks_up(self, coordinate: str, owner_region: str) -> bool:
        """Whether a look-up by the key field ``coordinate`` may be answered at all.

        Answering "is there a record for this ID number in region R" tells the
        caller that the number belongs to somebody: a use of the key field as
        much as reading it. So a look-up is answered only where the caller would
        see the key field of R's records in clear; a caller who would see it
        masked could otherwise confirm a guess at the masked part. Counted in
        the summary (one per key asked), so the attempt is audited whatever the
        answer.
        """
        key = (coordinate, owner_region, False)
        decision = self._decide(key)
        self._counts[key] = self._counts.get(key, 0) + 1
        return decision.decision is Decision.CLEAR

    def apply(
        self,
        type_name: str,
        owner_region: str,
        rows: Sequence[Row],
        *,
        fields: Collection[str] | None = None,
    ) -> list[Row]:
        """New rows with every graded field of ``type_name`` kept, masked or set to None.

        The input rows are not changed (the loaders cache them raw). Keys the
        catalog does not grade for this type (internal keys such as
        ``legal_rep_id``) pass through untouched. Credit-record rows are grouped
        by ``subject_type``: anything but ``LEGAL_PERSON`` counts as about a
        natural person, the safe side.

        Args:
            type_name: the GraphQL type of the rows, e.g. ``NaturalPerson``.
            owner_region: the region whose source returned the rows.
            rows: rows in the unified vocabulary.
            fields: the GraphQL fields the operation selects on this type. When
                given, only those are decided and counted; graded fields not
                listed are set to None without a decision, and a listed field
                the catalog does not know is withheld. When None, every graded
                field is decided.

        Raises:
            PolicyError: the type is not in the catalog.
        """
        if not rows:
            return []
        selected = None if fields is None else frozenset(fields)
        if self._type(type_name).natural_person_min_grade is None:
            changes, keys, _, _ = self._plan(type_name, owner_region, False, selected)
            out = _run(changes, rows)
            self._count(keys, len(rows))
            return out
        # Records about either kind of subject: a plan per kind, made when first needed.
        plans: dict[bool, _Plan] = {}
        seen = {False: 0, True: 0}
        out = []
        for row in rows:
            about = about_person(row)
            plan = plans.get(about)
            if plan is None:
                plan = plans[about] = self._plan(type_name, owner_region, about, selected)
            seen[about] += 1
            new = row.copy()
            for key, mask in plan[0]:
                value = new.get(key)
                if value is not None:
                    new[key] = None if mask is None else mask(value)
            out.append(new)
        for about, plan in plans.items():
            self._count(plan[1], seen[about])
        return out

    def record(
        self,
        type_name: str,
        owner_region: str,
        rows: Sequence[Row],
        *,
        fields: Collection[str] | None = None,
    ) -> None:
        """Decide and count for ``rows`` exactly what ``apply`` would, without copying them.

        For an executor that masks each value as it copies it into the response
        (``changes``): the rows stay raw, so nothing but that copy may read their
        graded fields. Arguments and errors as ``apply``.
        """
        if not rows:
            return
        selected = None if fields is None else frozenset(fields)
        if self._type(type_name).natural_person_min_grade is None:
            self._count(self._plan(type_name, owner_region, False, selected)[1], len(rows))
            return
        seen: dict[bool, int] = {}  # in the order ``apply`` makes the plans
        for row in rows:
            about = about_person(row)
            seen[about] = seen.get(about, 0) + 1
        for about, count in seen.items():
            self._count(self._plan(type_name, owner_region, about, selected)[1], count)

    def changes(
        self,
        type_name: str,
        owner_region: str,
        row: Row,
        *,
        fields: Collection[str] | None = None,
    ) -> Changes:
        """What ``apply`` does to ``row`` (``Changes``).

        The same for every row of the type, owner and kind of subject (``about_person``)
        that ``record`` saw, so a caller may keep it per (type, owner, kind). Call it only
        for rows ``record`` counted: it decides nothing they did not.
        """
        about = self._type(type_name).natural_person_min_grade is not None and about_person(row)
        selected = None if fields is None else frozenset(fields)
        return self._plan(type_name, owner_region, about, selected)[3]

    def summary(self, *, include_clear: bool = False) -> dict[str, Any]:
        """What this operation decided, JSON-ready, for the response's ``extensions``.

        One entry per (field coordinate, owning region[, subject type]) the
        operation touched, masked and withheld ones only unless ``include_clear``
        (audit records want all). ``count`` is the number of rows (or, for link
        fields, parent records) the decision was applied to.
        """
        decisions = self._decisions
        memo = self._memo
        layout = None
        if memo is not None:
            # The entries follow from the set of keys decided (and who asks), in whatever
            # order they were taken: only the counts differ from one operation to the next.
            layout_key = (self._who, include_clear, frozenset(decisions))
            layout = memo.layouts.get(layout_key)
        if layout is None:
            layout = tuple(
                (key, _entry(key, decision))
                for key, decision in sorted(decisions.items())
                if include_clear or decision.decision is not Decision.CLEAR
            )
            if memo is not None:
                memo.keep(memo.layouts, layout_key, layout)
        counts = self._counts
        return {
            "policyVersion": self.snapshot.version,
            "matter": self.matter_code,
            "fields": [{**entry, "count": counts.get(key, 0)} for key, entry in layout],
        }

    def explained(self, summary: Mapping[str, Any]) -> dict[str, Any]:
        """The caller's view of ``summary``: masked and withheld entries only, and each
        entry's owner named only where the caller may see the owner.

        A record's owner is a value too: a person's is their household region.
        An explanation that named the owner of a withheld ``householdRegion``
        would carry what the decision withheld. So where the type's
        ``owner_field`` of that owner is not clear to the caller, ``owner`` is
        null, and entries that then read alike are added up. The audit event
        keeps the full summary.
        """
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for entry in summary["fields"]:
            if entry["decision"] == Decision.CLEAR:
                continue
            shown = dict(entry)
            if not self._owner_visible(entry):
                shown["owner"] = None
            key = tuple((k, v) for k, v in shown.items() if k != "count")
            found = merged.get(key)
            if found is None:
                merged[key] = shown
            else:
                found["count"] += shown["count"]
        return {**summary, "fields": list(merged.values())}

    # -- internals -----------------------------------------------------------

    def names_owner(self, type_name: str, owner_region: str, *, about_person: bool = False) -> bool:
        """Whether the caller may be told that ``owner_region`` keeps a ``type_name`` record:
        only where it may see the type's ``owner_field`` of that region in clear. Not a
        decision of the operation (not counted or listed)."""
        memo = self._memo
        if memo is not None:
            memo_key = (self._who, type_name, owner_region, about_person)
            found = memo.owners.get(memo_key)
            if found is not None:
                return found
        type_spec = self.snapshot.catalog.types.get(type_name)
        if type_spec is None or type_spec.owner_field is None:
            visible = False
        else:
            key = (f"{type_name}.{type_spec.owner_field}", owner_region, about_person)
            visible = self._decide(key, remember=False).decision is Decision.CLEAR
        if memo is not None:
            memo.keep(memo.owners, memo_key, visible)
        return visible

    def _owner_visible(self, entry: Mapping[str, Any]) -> bool:
        type_name = entry["field"].partition(".")[0]
        about_person = entry.get("subjectType") == NATURAL_PERSON
        return self.names_owner(type_name, entry["owner"], about_person=about_person)

    def _decide(self, key: DecisionKey, *, remember: bool = True) -> FieldDecision:
        found = self._decisions.get(key)
        if found is not None:
            return found
        # Everything a decision depends on besides the files (the shared cache is
        # emptied on reload). A rule that reads the citizen's own subject must add it here.
        shared_key = (self.caller.region, self._roles, *key)
        found = self._shared.get(shared_key) if self._shared is not None else None
        if found is None:
            coordinate, owner, about_person = key
            try:
                found = evaluate(
                    self.snapshot,
                    home=self.caller.region,
                    roles=self._roles,
                    coordinate=coordinate,
                    owner=owner,
                    natural_person=about_person,
                )
            except Exception as exc:
                # Fail closed: no decision, no data. The detail stays in the log.
                logger.exception("policy evaluation failed for %s owned by %s", coordinate, owner)
                raise PolicyError("the access policy could not be evaluated") from exc
            if self._shared is not None:
                self._shared[shared_key] = found
        if remember:  # a decision asked only to explain another is not one of the operation's
            self._decisions[key] = found
        return found

    def _type(self, type_name: str) -> Any:
        type_spec = self.snapshot.catalog.types.get(type_name)
        if type_spec is None:
            raise PolicyError(f"type {type_name} has no grades in the policy catalog")
        return type_spec

    def _plan(
        self, type_name: str, owner: str, about_person: bool, selected: frozenset[str] | None
    ) -> _Plan:
        plan_key = (type_name, owner, about_person, selected)
        plan = self._plans.get(plan_key)
        if plan is not None:
            return plan
        memo = self._memo
        if memo is not None:
            kept: _Plan | None = memo.plans.get((self._who, plan_key))
            if kept is not None:
                plan = kept
                # Made by an earlier operation of the same caller's kind: its decisions
                # become this operation's, in the order they were taken.
                taken = self._decisions
                for key, decision in zip(plan[1], plan[2], strict=True):
                    if key not in taken:
                        taken[key] = decision
                self._plans[plan_key] = plan
                return plan
        specs = self.snapshot.catalog.types[type_name].fields
        masks: Mapping[str, MaskFunction] = self.snapshot.masks
        changes: list[_Change] = []
        keys: list[DecisionKey] = []
        decisions: list[FieldDecision] = []
        for spec in specs.values():
            if spec.link:
                continue  # followed or not through allows(); no value in the row
            if selected is not None and spec.name not in selected:
                changes.append((spec.key, None))  # not asked for: never released
                continue
            key = (spec.coordinate, owner, about_person)
            decision = self._decide(key)
            keys.append(key)
            decisions.append(decision)
            if decision.decision is Decision.MASKED and decision.rule is not None:
                changes.append((spec.key, masks[decision.rule]))
            elif decision.decision is not Decision.CLEAR:
                changes.append((spec.key, None))
        for name in sorted((selected or frozenset()) - specs.keys()):
            key = (f"{type_name}.{name}", owner, about_person)
            # Not in the catalog: withheld, and listed in the summary.
            decisions.append(self._decide(key))
            keys.append(key)
            changes.append((snake_case(name), None))
        # By row key, as running the changes in order leaves each key: a key listed twice
        # (a catalog key, then an unknown field's, always withheld) ends withheld.
        by_key: dict[str, MaskFunction | None] = {}
        for row_key, mask in changes:
            by_key[row_key] = None if row_key in by_key else mask
        plan = (tuple(changes), tuple(keys), tuple(decisions), Changes(by_key))
        self._plans[plan_key] = plan
        if memo is not None:
            memo.keep(memo.plans, (self._who, plan_key), plan)
        return plan

    def _count(self, keys: Sequence[DecisionKey], rows: int) -> None:
        counts = self._counts
        for key in keys:
            counts[key] = counts.get(key, 0) + rows


def about_person(row: Row) -> bool:
    """Whether a record counts as about a natural person: anything but an enterprise's
    record does (the safe side)."""
    return row.get("subject_type") != "LEGAL_PERSON"


def _run(changes: Sequence[_Change], rows: Sequence[Row]) -> list[Row]:
    """Copy each row, then withhold or mask the planned keys: the one per-row loop."""
    if not changes:
        return [row.copy() for row in rows]
    out = []
    for row in rows:
        new = row.copy()
        for key, mask in changes:
            value = new.get(key)
            if value is not None:
                new[key] = None if mask is None else mask(value)
        out.append(new)
    return out


@functools.lru_cache(maxsize=4096)
def _entry(key: DecisionKey, decision: FieldDecision) -> dict[str, Any]:
    """A summary entry without its count; the same few entries recur in every operation, so
    each is written once (callers copy it)."""
    coordinate, owner, about_person = key
    entry = {"field": coordinate, "owner": owner, **decision.as_dict()}
    if about_person:
        entry["subjectType"] = NATURAL_PERSON
    return entry
