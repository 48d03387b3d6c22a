"""The GraphiQL page: same-origin assets only, under a Content-Security-Policy, in development."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from gateway.edge.graphiql import CONTENT_SECURITY_POLICY
from tests.client import serve
from tests.conftest import Seeded, gateway_settings
from tests.gateway.edge.test_auth import jwk, new_rsa_key, write_jwks

PAGE = "http://testserver/graphql"


class _References(HTMLParser):
    """Every URL the page loads by itself (scripts, stylesheets, icons) and every inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(str(values[name]))
        self._in_script = tag == "script" and "src" not in values

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def references(html: str) -> _References:
    parser = _References()
    parser.feed(html)
    return parser


async def test_the_page_loads_only_assets_of_its_own_origin_under_a_strict_csp(
    seeded: Seeded,
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        page = await client.http.get("/graphql")
        found = references(page.text)
        assets = {url: await client.http.get(urljoin(PAGE, url)) for url in found.urls}
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    policy = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no inline script, no eval
    assert page.headers["referrer-policy"] == "no-referrer"  # the demo's URLs carry a token
    assert found.inline_scripts == 0
    scripts = [url for url in found.urls if ".js" in url]
    assert [Path(urlsplit(u).path).name for u in scripts] == [
        "react.production.min.js",
        "react-dom.production.min.js",
        "graphiql.min.js",
        "plugin-explorer.umd.js",
        "graphiql-init.js",
    ]
    for url, asset in assets.items():
        if url.startswith("data:"):
            continue
        assert urlsplit(urljoin(PAGE, url)).netloc == "testserver", url
        assert asset.status_code == 200, url
        kind = "text/javascript" if ".js" in url else "text/css"
        assert asset.headers["content-type"].startswith(kind), url
        # The URL carries the content's digest: a new build is a new URL, so a year is safe.
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable", url


async def test_only_named_assets_are_served_and_an_unversioned_one_is_revalidated(
    seeded: Seeded,
) -> None:
    async with serve(gateway_settings(seeded.dsn)) as client:
        init = await client.http.get("/graphiql/static/graphiql-init.js")
        licence = await client.http.get("/graphiql/static/vendor/licenses/graphiql.LICENSE")
        template = await client.http.get("/graphiql/static/graphiql.html")
        outside = await client.http.get("/graphiql/static/../app.py")
        source = await client.http.get("/graphiql/static/%2e%2e/graphiql.py")
    assert init.status_code == 200
    assert "createFetcher" in init.text
    assert init.headers["cache-control"] == "no-cache"
    assert licence.status_code == 200
    assert "MIT License" in licence.text
    assert template.status_code == 404
    assert outside.status_code == 404
    assert source.status_code == 404


async def test_production_serves_neither_graphiql_nor_its_assets(
    seeded: Seeded, tmp_path: Path
) -> None:
    write_jwks(tmp_path / "jwks.json", jwk(new_rsa_key(), "k1"))
    production = gateway_settings(
        seeded.dsn, mode="production", jwt_secret=None, jwks_path=tmp_path / "jwks.json"
    )
    async with serve(production) as client:
        page = await client.http.get("/graphql")
        asset = await client.http.get("/graphiql/static/vendor/graphiql.min.js")
    assert page.status_code == 405
    assert asset.status_code == 404
