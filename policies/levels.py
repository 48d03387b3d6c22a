"""The cascade's rule for decisions: of the upper's and the lower's, the stricter wins.

A ``gateway`` source's rows come from a lower gateway that has already decided
every value with its own policy: a value it masked arrives masked, one it
withheld arrives ``None``. The upper's policy then applies on top, so the value
released is always the stricter of the two (a mask of a masked value leaves it
as it is; nothing unmasks). The upper's *record* of the decision must say so
too: an upper that would clear a field the lower masked did not release it in
clear, and its audit event and response must not claim it did. ``stricter``
raises each of the upper's decisions to the lower's where the lower's was
stricter, with reason ``DECIDED_BELOW``.

The lower tells its decisions per field coordinate (its ``extensions.policy``):
they are matched here by field coordinate and owning region, whatever the
subject type, the safe side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from policies.decisions import Decision, Reason

__all__ = ["stricter"]

_RANK = {Decision.CLEAR: 0, Decision.MASKED: 1, Decision.WITHHELD: 2}


def stricter(
    fields: Iterable[Mapping[str, Any]], below: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The upper's decision entries, each raised to the lower's decision where that was stricter.

    Args:
        fields: the upper's summary entries (``{"field", "owner", "decision", ...}``).
        below: the lower gateways' masked and withheld decisions,
            ``{"field", "owner", "decision"}``, ``owner`` the region the upper asked.
    """
    strictest: dict[tuple[str, str], Decision] = {}
    for entry in below:
        try:
            decision = Decision(entry["decision"])
        except (KeyError, ValueError):
            continue
        key = (str(entry.get("field")), str(entry.get("owner")))
        if _RANK[decision] > _RANK[strictest.get(key, Decision.CLEAR)]:
            strictest[key] = decision
    out = []
    for entry in fields:
        lower = strictest.get((str(entry["field"]), str(entry.get("owner"))))
        if lower is not None and _RANK[lower] > _RANK[Decision(entry["decision"])]:
            raised = {**entry, "decision": lower.value, "reason": Reason.DECIDED_BELOW.value}
            raised["rule"] = None  # the upper's mask rule, if any, did not decide it
            out.append(raised)
        else:
            out.append(dict(entry))
    return out
