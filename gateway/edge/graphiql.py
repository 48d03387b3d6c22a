"""GraphiQL served by the gateway itself, for networks cut off from the internet.

Government extranets (政务外网) usually reach no CDN, so the page at ``GET /graphql``
loads nothing but files the gateway serves under ``/graphiql/static/``: the browser builds
of React, ReactDOM, GraphiQL and its explorer plugin vendored in ``static/vendor/`` (their
versions, sizes and SHA-256 sums in ``static/vendor/manifest.json``, refreshed by
``tools/refresh-graphiql.py``), and the page's own ``graphiql-init.js`` and CSS. No inline
script, so the page's Content-Security-Policy allows only the gateway's own origin.

Each asset is referenced with ``?v=`` and the first characters of its SHA-256: the URL
changes with the content, so browsers may keep an asset for a year.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC", "GraphiQLPage"]

STATIC = Path(__file__).resolve().parent / "static"

#: Where the page (at ``/graphql``) finds its assets, relative to itself: ``/graphiql/static/``,
#: and still right behind a reverse proxy that mounts the gateway under a path.
ASSET_PREFIX = "graphiql/static/"

#: Everything from the gateway's own origin, with no 'unsafe-inline' and no 'unsafe-eval':
#: GraphiQL 3.9's build sets styles through the DOM (allowed), never through inline ``<style>``
#: or ``style=""`` markup, and the browser test fails on any violation. Its fonts and a few
#: icons are ``data:`` URLs inside its CSS.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "font-src 'self' data:",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)

_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".LICENSE": "text/plain; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_OURS = ("graphiql-init.js", "graphiql-page.css")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_./-]+)\}")
_FOREVER = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # the first 16 hex digits of its SHA-256


def _load(root: Path, name: str) -> Asset:
    body = (root / name).read_bytes()
    return Asset(body, _MEDIA_TYPES[Path(name).suffix], hashlib.sha256(body).hexdigest()[:16])


class GraphiQLPage:
    """The page and its assets, read once when the app is built.

    Only files named here are served: the page's own, and those in the vendored manifest
    (builds and licences), never an arbitrary path under ``static/``.
    """

    def __init__(self, root: Path = STATIC) -> None:
        manifest = json.loads((root / "vendor" / "manifest.json").read_text(encoding="utf-8"))
        names = [*_OURS, "vendor/manifest.json"]
        names += [f"vendor/{entry['file']}" for entry in manifest["files"]]
        self.assets = {name: _load(root, name) for name in names}
        template = (root / "graphiql.html").read_text(encoding="utf-8")
        self.html = _PLACEHOLDER.sub(self._url, template)

    def _url(self, match: re.Match[str]) -> str:
        name = match.group(1)
        return f"{ASSET_PREFIX}{name}?v={self.assets[name].version}"

    def page(self) -> Response:
        return HTMLResponse(
            self.html,
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                # The demo's links carry a bearer token in the page's URL: no Referer may
                # repeat it, not even to the gateway's own access log.
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    async def asset(self, request: Request) -> Response:
        asset = self.assets.get(request.path_params["path"])
        if asset is None:
            return PlainTextResponse("not found", status_code=404)
        versioned = request.query_params.get("v") == asset.version
        return Response(
            asset.body,
            media_type=asset.media_type,
            headers={
                "Cache-Control": _FOREVER if versioned else "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )
