"""``deltagate policy explain``: a decision and the lines of policy behind it.

For a data steward or an auditor asking "why did this caller get this field
like that?": the text names the catalog grade, the negative list, each Casbin
question asked and the ``policy.csv`` line that answered it, the matter check,
and the decision. It asks the policy exactly as a request would.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.core.errors import Forbidden
from gateway.core.types import Caller
from policies.decisions import evaluate
from policies.engine import PolicyEngine


def explain(
    engine: PolicyEngine,
    *,
    app: str,
    region: str,
    roles: str | Sequence[str],
    matter: str | None,
    coordinate: str,
    owner: str,
    subject_type: str | None = None,
) -> str:
    """The decision for one field of one owning region, and the rule lines that produced it.

    Args:
        engine: the engine whose policy in force is asked.
        app: the caller's app id (shown only; apps have no grants of their own).
        region: the caller's region (SH/JS/ZJ/AH/NATIONAL).
        roles: the caller's roles, a sequence or a comma-separated string.
        matter: the matter code, or None.
        coordinate: the field, e.g. ``NaturalPerson.phone``.
        owner: the region that keeps the data.
        subject_type: for credit records, ``NATURAL_PERSON`` or ``LEGAL_PERSON``.

    Raises:
        PolicyError: no valid policy is loaded.

    Example output::

        decision: MASKED (grade L3, clearance L2, rule PHONE, ONE_ABOVE_CLEARANCE)
        field: NaturalPerson.phone owned by JS
        caller: app counter-01, region SH, roles one_stop_app
        matter: OS-ENTERPRISE-OPENING 企业开办 (matters.toml: may be used by one_stop_app)
        policy: version 3c23a81bc731
        steps:
          grade L3, mask PHONE (catalog.toml NaturalPerson.phone)
          ...
    """
    role_list = (
        [r.strip() for r in roles.split(",") if r.strip()]
        if isinstance(roles, str)
        else list(roles)
    )
    caller = Caller(app=app, region=region, roles=tuple(role_list))
    head = [
        f"field: {coordinate} owned by {owner}"
        + (f" (a record about a {subject_type})" if subject_type else ""),
        f"caller: app {app}, region {region}, roles {', '.join(role_list) or '(none)'}",
    ]
    try:
        policy = engine.begin(caller, matter)
    except Forbidden as exc:
        version = engine.snapshot.version
        lines = [f"decision: FORBIDDEN ({exc.message})", *head]
        lines += [f"matter: {matter} (matters.toml)", f"policy: version {version}"]
        return "\n".join(lines)
    if policy.matter is not None:
        allowed = ", ".join(sorted(policy.matter.roles))
        head.append(
            f"matter: {policy.matter.code} {policy.matter.name}"
            f" (matters.toml: may be used by {allowed})"
        )
    else:
        head.append("matter: none")
    head.append(f"policy: version {policy.policy_version}")
    steps: list[str] = []
    decision = evaluate(
        policy.snapshot,
        home=region,
        roles=policy.role_matters,
        coordinate=coordinate,
        owner=owner,
        natural_person=subject_type == "NATURAL_PERSON",
        trace=steps,
    )
    return "\n".join(
        [f"decision: {decision.describe()}", *head, "steps:", *(f"  {s}" for s in steps)]
    )
