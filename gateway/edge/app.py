"""The ASGI app: ``POST /graphql``, GraphiQL outside production, the auditor console
(``/console``, on by default outside production), health, readiness, metrics.

``create_app`` serves a ``Gateway`` (``gateway.edge.pipeline``: one request
from its headers to its answer) built from settings (``gateway.edge.build``),
and owns its parts for its lifetime: it starts them, watches the policy files
and closes the pools and the audit store on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.core.errors import MethodNotAllowed
from gateway.edge import heap
from gateway.edge.console import ConsolePage
from gateway.edge.console_export import export_csv
from gateway.edge.graphiql import GraphiQLPage
from gateway.edge.pipeline import Gateway
from gateway.edge.responses import json_response, request_error
from policies import PolicyStatus

__all__ = ["Gateway", "GatewayApp", "create_app"]


class GatewayApp:
    """The ASGI app: ``POST /graphql`` straight to the gateway, everything else (and the
    lifespan) through the Starlette app of the other routes.

    Operations are nearly every request a gateway serves, and Starlette's middleware and
    router layers (four coroutine frames and an exception-handler wrapper each way)
    cost a single-record look-up about a tenth of its own CPU. ``Gateway.execute`` never
    raises, reads the scope's headers itself and sends its own ASGI messages, so neither
    those layers nor Starlette's ``Request`` and ``Response`` add anything to it.
    """

    __slots__ = ("_gateway", "_other")

    def __init__(self, gateway: Gateway, other: ASGIApp) -> None:
        self._gateway = gateway
        self._other = other

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and _route_path(scope) == "/graphql"
        ):
            answer = await self._gateway.execute(scope, receive)
            await answer.send(send)
            return
        await self._other(scope, receive, send)


def _route_path(scope: Scope) -> Any:
    # As Starlette's router matches (``starlette._utils.get_route_path``): the path below
    # the mount point the server was told of (``--root-path``).
    path = scope["path"]
    root = scope.get("root_path", "")
    if not root or not path.startswith(root):
        return path
    if path == root:
        return ""
    return path[len(root) :] if path[len(root)] == "/" else path


def create_app(gateway: Gateway) -> GatewayApp:
    """The ASGI app serving ``gateway``; closes its sources on shutdown."""
    production = gateway.settings.production
    # GraphiQL and its assets are served by the gateway (no CDN: extranets reach none), and
    # only outside production: there neither the page nor its static route exists.
    graphiql = None if production else GraphiQLPage()

    async def graphql(request: Request) -> Response:
        if request.method == "GET":
            # Operations come by POST only: GET would put personal keys in URLs and logs,
            # and could never run a mutation anyway (GraphQL over HTTP: 405).
            if "query" in request.query_params:
                return request_error(MethodNotAllowed("send GraphQL operations with POST, not GET"))
            if graphiql is None:
                return request_error(
                    MethodNotAllowed("GraphiQL is off in production mode; send POST")
                )
            return graphiql.page()
        # Not reached by a POST: ``GatewayApp`` answers those before the router sees them.
        answer = await gateway.execute(request.scope, request.receive)
        return answer.response()

    def report_policy(status: PolicyStatus) -> None:
        gateway.metrics.set_policy(status.version, failed=status.error is not None)

    async def metrics(_: Request) -> Response:
        gateway.metrics.refresh_breakers(gateway.reachable)
        report_policy(gateway.policy.status)
        body, content_type = gateway.metrics.render()
        return Response(body, media_type=content_type)

    async def healthz(_: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(_: Request) -> Response:
        report = await gateway.ready()
        # Ready means this replica can serve: a valid policy loaded, and its audit store
        # reachable where one is configured (without it, personal data is refused). A
        # region that is down is shared by every replica: taking them all out of the
        # Service would hide the regions still up, while a replica answers that region's
        # fields at once with SOURCE_UNAVAILABLE (its breaker). It is listed, not counted.
        # A policy file that fails to reload leaves the previous policy in force: reported,
        # not a reason to take every replica out of rotation at once either.
        ok = report["audit"] != "unavailable" and report["policy"]["ready"]
        degraded = any(state != "ok" for state in report["sources"].values())
        report["status"] = "unavailable" if not ok else "degraded" if degraded else "ok"
        return json_response(report, 200 if ok else 503)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        heap.settle()
        watcher = asyncio.create_task(gateway.policy.watch(report_policy))
        try:
            yield
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await gateway.close()

    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if graphiql is not None:
        routes.append(Route("/graphiql/static/{path:path}", graphiql.asset, methods=["GET"]))
    if gateway.settings.serves_console:
        # The auditor console: on by default outside production, by [console] enabled in it.
        console = ConsolePage()

        async def export(request: Request) -> Response:
            return await export_csv(gateway, request)

        routes += [
            Route("/console", console.page, methods=["GET"]),
            Route("/console/static/{path:path}", console.asset, methods=["GET"]),
            Route("/console/export.csv", export, methods=["GET"]),
        ]
    return GatewayApp(gateway, Starlette(routes=routes, lifespan=lifespan))
