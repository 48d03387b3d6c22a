"""Admission: how many requests one client address may have in flight before they are admitted.

A request is admitted once its token has verified and its whole body has
arrived (within ``[limits] body_timeout``). Until then it costs a connection
and a little memory and proves nothing about its sender, so each client
address may hold at most ``max_unauthenticated_per_client`` such requests at
once; more are refused at once (HTTP 429, ``RATE_LIMITED``), before any token
check or body read. Behind a proxy every caller shares the proxy's address:
size the limit for it there, or let the ingress limit per client instead.
"""

from __future__ import annotations

from types import TracebackType

from gateway.core.errors import RateLimited

__all__ = ["Admission"]


class Admission:
    """Counts each client address's requests not yet admitted.

    ::

        admission = Admission(16)
        with admission.pending("203.0.113.7"):
            ...  # verify the token, read the body
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._pending: dict[str, int] = {}

    def pending(self, address: str) -> _Pending:
        """Hold one of ``address``'s places while the ``with`` block runs.

        Raises (on entering the block):
            RateLimited: ``address`` already holds ``limit`` places.
        """
        return _Pending(self, address)


class _Pending:
    """One place of an address, held while its ``with`` block runs (a class, not a generator:
    every request enters one)."""

    __slots__ = ("_address", "_admission")

    def __init__(self, admission: Admission, address: str) -> None:
        self._admission = admission
        self._address = address

    def __enter__(self) -> None:
        admission, address = self._admission, self._address
        held = admission._pending.get(address, 0)
        if held >= admission.limit:
            raise RateLimited(
                f"this client has {held} requests waiting to be admitted;"
                f" at most {admission.limit} are allowed",
                limit="unauthenticatedPerClient",
                maximum=admission.limit,
                retryAfter=1,
            )
        admission._pending[address] = held + 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        pending, address = self._admission._pending, self._address
        left = pending[address] - 1
        if left:
            pending[address] = left
        else:
            del pending[address]
