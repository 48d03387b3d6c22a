"""Delegated requests: an upper gateway's service token plus a delegation for its caller.

A request from an upper gateway in the cascade carries two tokens:
``Authorization: Bearer <service token>`` (the upper's own identity, checked by
``TokenVerifier`` like any caller's) and ``X-Delegation: <delegation token>``
(``gateway.core.delegation``: the original caller, the matter, signed by the
upper's own key). The request is then decided for the original caller, under
the delegation's matter, and accepted only if

- the delegation verifies (a trusted upper's key, this gateway's id as
  audience, not expired, at most 60 s, its ``jti`` not seen before), and
- the service token is the acting gateway's own (its ``sub`` is the
  delegation's ``act.sub``), and holds a role allowed to act for others
  (``[delegation] acting_roles``, by default ``delta_platform``): a plain app
  with a stolen delegation cannot pass itself off as the upper.

Every refusal is ``Unauthenticated`` (HTTP 401, no data). A request without
a delegation is decided for the service token's own identity, as before; a
gateway with no ``[delegation]`` configured refuses any request that carries
one, rather than deciding it for the identity of the token alone.

The trace: a delegated request continues the upper's trace, from the
``traceparent`` inside the delegation (signed by the upper, so it names the
upper's own operation), and its audit event is filed under the same trace id
as the upper's. Any other caller's ``traceparent`` is only linked (see
``gateway.telemetry.spans``): an unsigned header never chooses the trace id an
audit event is filed under.

Kept apart from ``auth.py`` (one concept per module): that module checks one
bearer token, this one binds two of them together.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from gateway.core.delegation import DelegationVerifier
from gateway.core.errors import Unauthenticated
from gateway.core.types import Caller
from gateway.edge.auth import TokenVerifier, caller_from_claims

__all__ = [
    "DEFAULT_ACTING_ROLES",
    "DELEGATION_HEADER",
    "MATTER_HEADER",
    "DelegationGate",
    "Identity",
    "delegated_caller",
    "identify",
]

#: The header a delegation travels in, beside the upper's own ``Authorization``.
DELEGATION_HEADER = "x-delegation"
#: The header naming the matter (事项) a request is made under.
MATTER_HEADER = "x-matter-code"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request is decided for, and who sent it.

    Attributes:
        service: the bearer token's own identity (quotas are its).
        caller: the caller decided for: ``service``, or the caller an upper acts for.
        matter: the matter the request is made under.
        traceparent: the signed trace context of a delegation: the trace to continue.
    """

    service: Caller
    caller: Caller
    matter: str | None
    traceparent: str | None = None


#: The roles that let a service token act for others, unless configured otherwise.
DEFAULT_ACTING_ROLES = ("delta_platform",)


class DelegationGate:
    """Turns a service caller and its delegation into the caller the request is decided for.

    Args:
        verifier: checks the delegation tokens sent to this gateway.
        acting_roles: a service token must hold one of these to act for others.
        regions: the home regions an original caller may have (``caller_regions``).
    """

    def __init__(
        self,
        verifier: DelegationVerifier,
        *,
        acting_roles: Collection[str] = DEFAULT_ACTING_ROLES,
        regions: Collection[str],
    ) -> None:
        self.verifier = verifier
        self.acting_roles = frozenset(acting_roles)
        self.regions = frozenset(regions)

    def accept(self, service: Caller, token: str, matter: str | None) -> Identity:
        """The original caller, the matter and the trace of a delegated request.

        ``matter`` is the request's ``X-Matter-Code``, if any: it must agree with
        the delegation's, which the upper signed (the header alone is not).
        """
        # The role first: a token that may not act for others does not spend a jti.
        if not self.acting_roles.intersection(service.roles):
            raise Unauthenticated("this caller may not act for others")
        delegation = self.verifier.verify(token)
        if delegation.acting != service.app:
            raise Unauthenticated("the delegation was issued by another gateway")
        if matter is not None and matter != delegation.matter:
            raise Unauthenticated("the matter differs from the delegation's")
        claims = {
            "sub": delegation.sub,
            "region": delegation.region,
            "roles": list(delegation.roles),
        }
        caller = caller_from_claims(claims, self.regions)
        acting = Caller(
            app=caller.app, region=caller.region, roles=caller.roles, acting=delegation.acting
        )
        return Identity(service, acting, delegation.matter, delegation.traceparent)


def identify(
    verifier: TokenVerifier, gate: DelegationGate | None, headers: Mapping[str, str]
) -> Identity:
    """Who a request is decided for: its bearer token's identity, or the caller it acts for.

    Raises:
        Unauthenticated: a missing or bad token, or a delegation refused.
    """
    service = verifier.verify(headers.get("authorization"))
    matter = headers.get(MATTER_HEADER, "").strip() or None
    return delegated_caller(gate, service, headers.get(DELEGATION_HEADER), matter)


def delegated_caller(
    gate: DelegationGate | None, service: Caller, token: str | None, matter: str | None
) -> Identity:
    """The caller and matter a request is decided for, with or without a delegation."""
    if token is None or not token.strip():
        return Identity(service, service, matter)
    if gate is None:
        # Deciding for the service identity alone could release more than the
        # upper meant its caller to see: refuse instead.
        raise Unauthenticated("this gateway accepts no delegations")
    return gate.accept(service, token, matter)
