"""Which operations are audited, and the event that records one.

DESIGN.md: every operation that returns data of grade L2 or above writes one
event. An operation "touched" such data when the policy decided an L2+ field
for at least one record it read, whatever the decision: a request for
personal data that was withheld is an access attempt, and an auditor looking
for who tried to see a person wants it too. Reads of the audit log itself are
recorded as well (see ``resolvers.audit``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.audit.events import AuditEvent
from gateway.core.types import Caller

#: Data of this grade and above is audited (L2: internal data and every grade of personal data).
AUDITED_FROM_GRADE = 2


def touches_audited_data(decisions: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any decision of an operation's policy summary covers L2+ data it read."""
    for entry in decisions:
        grade = entry.get("grade")
        if entry.get("count") and grade:
            audited = _AUDITED.get(grade)
            if audited is None:
                audited = int(grade.removeprefix("L")) >= AUDITED_FROM_GRADE
            if audited:
                return True
    return False


#: The grades a summary names, worked out once (any other is worked out where it is met).
_AUDITED = {f"L{grade}": grade >= AUDITED_FROM_GRADE for grade in range(1, 5)}


def operation_event(
    *,
    trace_id: str,
    caller: Caller,
    matter_code: str | None,
    matter_name: str | None,
    operation_name: str | None,
    operation_type: str | None,
    document_hash: str,
    policy_version: str | None,
    subjects: Iterable[str],
    decisions: Sequence[Mapping[str, Any]],
    receipts: Sequence[Mapping[str, Any]] = (),
) -> AuditEvent:
    """The event of one operation, timed now.

    The caller's ``acting`` (the upper gateway of a delegated request) is recorded
    beside it; ``receipts`` are the lower gateways' receipts for this operation.
    """
    return AuditEvent(
        at=dt.datetime.now(dt.UTC),
        trace_id=trace_id,
        caller_app=caller.app,
        caller_region=caller.region,
        roles=caller.roles,
        matter_code=matter_code,
        matter_name=matter_name,
        operation_name=operation_name,
        operation_type=operation_type,
        document_hash=document_hash,
        policy_version=policy_version,
        subjects=tuple(sorted(set(subjects))),
        decisions=tuple(decisions),
        acting=caller.acting,
        receipts=tuple(receipts),
    )
