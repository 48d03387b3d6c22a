"""The auditor console's page at ``/console`` and its assets, served by the gateway itself.

Like GraphiQL (``gateway.edge.graphiql``), the page loads nothing from elsewhere: its
HTML, script, styles and images are files under ``static/console/``, served under
``/console/static/``, with a Content-Security-Policy that allows only the gateway's
own origin, no inline script or style and no eval. The page signs in with a bearer
token it keeps in memory or ``sessionStorage`` and sends in the ``Authorization``
header (never a cookie), so the routes here need no authentication: they hold no data.
On by default outside production, in production only with ``[console] enabled``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from gateway.edge.graphiql import CONTENT_SECURITY_POLICY, STATIC

__all__ = ["CONSOLE_STATIC", "ConsolePage"]

CONSOLE_STATIC = STATIC / "console"

#: The files the console may serve, by suffix; anything else under the folder is not served.
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".LICENSE": "text/plain; charset=utf-8",
}

#: The page's headers: the same policy as GraphiQL's, and no Referer (a token may be typed
#: into the page, never into its URL, but nothing is lost by sending none).
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


class ConsolePage:
    """``index.html`` and the assets beside it, read once when the app is built.

    Only regular files under the folder with a known suffix are served, by their path
    relative to it: no listing, no ``..``, no file outside.
    """

    def __init__(self, root: Path = CONSOLE_STATIC) -> None:
        self.root = root
        self.assets: dict[str, tuple[bytes, str, str]] = {}
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                media = MEDIA_TYPES.get(path.suffix)
                if media is None or not path.is_file() or path.is_symlink():
                    continue
                body = path.read_bytes()
                name = path.relative_to(root).as_posix()
                self.assets[name] = (body, media, hashlib.sha256(body).hexdigest()[:16])
        index = self.assets.get("index.html")
        self.html = index[0] if index is not None else _MISSING

    async def page(self, request: Request) -> Response:
        return HTMLResponse(self.html, headers=PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        found = self.assets.get(request.path_params["path"])
        if found is None:
            return PlainTextResponse("not found", status_code=404)
        body, media, version = found
        versioned = request.query_params.get("v") == version
        return Response(
            body,
            media_type=media,
            headers={
                "Cache-Control": "public, max-age=31536000, immutable" if versioned else "no-cache",
                "X-Content-Type-Options": "nosniff",
            },
        )


_MISSING = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deltagate auditor console</title></head>
<body><h1>deltagate auditor console</h1><p>The console's page is not installed.</p></body></html>
"""
