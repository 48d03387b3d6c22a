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

from collections.abc import Iterator
from contextlib import contextmanager

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

    @contextmanager
    def pending(self, address: str) -> Iterator[None]:
        """Hold one of ``address``'s places while the block runs.

        Raises:
            RateLimited: ``address`` already holds ``limit`` places.
        """
        held = self._pending.get(address, 0)
        if held >= self.limit:
            raise RateLimited(
                f"this client has {held} requests waiting to be admitted;"
                f" at most {self.limit} are allowed",
                limit="unauthenticatedPerClient",
                maximum=self.limit,
                retryAfter=1,
            )
        self._pending[address] = held + 1
        try:
            yield
        finally:
            left = self._pending[address] - 1
            if left:
                self._pending[address] = left
            else:
                del self._pending[address]
