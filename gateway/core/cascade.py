"""The request an upper gateway serves, as its ``gateway`` sources see it.

In the 国—省—市 cascade each request to a lower gateway carries a delegation
for the caller the upper serves, and the lower's answer carries a receipt for
the audit event it wrote. Sources are built once and shared by every request,
so what belongs to one request travels in a context variable: the edge sets
:class:`CascadeRequest` around executing an operation (``acting_for``), the
``gateway`` sources read the caller, matter and trace context from it and
add each lower's receipt and masked or withheld decisions to it, and the edge
writes the receipts into its own audit event and records, per field, the
stricter of its own decision and the lower's. ``asyncio.gather`` copies the
context into the tasks it starts, and the copy holds the same object, so what
a loader's task adds is seen by the request.

Nothing here imports the rest of the project beyond ``gateway.core``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from gateway.core.types import Caller

__all__ = [
    "DEPTH_HEADER",
    "MAX_DEPTH",
    "CascadeRequest",
    "acting_for",
    "current_request",
    "depth_of",
]

#: The header a gateway source sends with the depth of its request below (1 from the top).
DEPTH_HEADER = "X-Deltagate-Depth"
#: The most gateways one request may pass through: the 国—省—市 cascade needs 3 or 4.
MAX_DEPTH = 8


@dataclass(slots=True)
class CascadeRequest:
    """One request as the upper serves it.

    Attributes:
        caller: the original caller (whom a delegation names).
        matter: the matter the caller asked under, if any.
        traceparent: the W3C trace context of the upper's operation: the lower
            continues this trace (it travels signed, inside the delegation).
        receipts: the receipts of the lower gateways' audit events for this
            request, ``{"gateway", "region", "seq", "hash"}`` each, as they arrive.
        below: the lower gateways' masked and withheld decisions for this request,
            ``{"field", "owner", "decision"}`` each, ``owner`` the region asked: the
            upper records the stricter of its own and these (``policies.levels``).
        depth: the gateways this request passed through before this one (its
            ``X-Deltagate-Depth``; 0 from a caller): a gateway source refuses to go
            deeper than ``MAX_DEPTH``, which ends a loop of misconfigured gateways
            (two that are each other's ``[upper]``) at once instead of at a timeout.
    """

    caller: Caller
    matter: str | None
    traceparent: str | None
    receipts: list[Mapping[str, Any]] = field(default_factory=list)
    below: list[Mapping[str, Any]] = field(default_factory=list)
    depth: int = 0


_CURRENT: ContextVar[CascadeRequest | None] = ContextVar("deltagate_cascade", default=None)


def current_request() -> CascadeRequest | None:
    """The request being served, or None outside one (a readiness ping)."""
    return _CURRENT.get()


def depth_of(header: str | None) -> int:
    """The depth an ``X-Deltagate-Depth`` header gives (0 when absent or not a count).

    Anyone can send it; a caller that claims a depth only shortens its own request.
    """
    if header is None or not header.isdigit():
        return 0
    return min(int(header[:3]), MAX_DEPTH + 1)


def acting_for(request: CascadeRequest) -> _Acting:
    """Make ``request`` the current one while the ``with`` block runs."""
    return _Acting(request)


class _Acting:
    """``acting_for``'s block (a class, not a generator: every request enters one)."""

    __slots__ = ("_request", "_token")

    def __init__(self, request: CascadeRequest) -> None:
        self._request = request
        self._token: Token[CascadeRequest | None] | None = None

    def __enter__(self) -> CascadeRequest:
        self._token = _CURRENT.set(self._request)
        return self._request

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._token is not None:
            _CURRENT.reset(self._token)
