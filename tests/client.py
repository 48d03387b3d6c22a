"""A test client for a gateway served in-process, as a caller would use it over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from gateway.edge.app import Gateway, create_app
from gateway.edge.settings import Settings
from gateway.sources import QueryObserver

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


class GatewayClient:
    """Posts GraphQL operations with a bearer token and an optional matter code."""

    def __init__(self, http: httpx.AsyncClient, gateway: Gateway) -> None:
        self.http = http
        self.gateway = gateway

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None,
        matter: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if matter is not None:
            sent["X-Matter-Code"] = matter
        return await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=sent
        )

    async def query(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None,
        matter: str | None = None,
    ) -> dict[str, Any]:
        """The response body of a request that must be answered 200."""
        response = await self.post(query, variables, token=token, matter=matter)
        assert response.status_code == 200, response.text
        return response.json()


@asynccontextmanager
async def serve(
    settings: Settings,
    observer: QueryObserver | None = None,
    *,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[GatewayClient]:
    """A gateway built from ``settings``, served in-process until the block ends."""
    gateway = Gateway.from_settings(settings, observer=observer, tracer_provider=tracer_provider)
    app = create_app(gateway)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://deltagate") as http:
            yield GatewayClient(http, gateway)
    finally:
        await gateway.close()


@contextmanager
def serve_on(loop: asyncio.AbstractEventLoop, settings: Settings) -> Iterator[GatewayClient]:
    """``serve`` for synchronous tests (hypothesis drives them): entered and left on ``loop``."""
    context = serve(settings)
    client = loop.run_until_complete(context.__aenter__())
    try:
        yield client
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
