"""GraphiQL in a real headless Chromium, with nothing reachable but the gateway.

Debian's ``chromium`` (``tools/ensure-chromium.sh``, run by ``make test``) driven by Playwright
for Python. The page opens a link as ``deltagate demo`` prints it, runs an operation with
that caller's headers and must show the answer; every request the page makes is recorded,
and one to any other origin is refused and fails the test.

``DELTAGATE_SCREENSHOTS=docs`` also saves what the browser shows as ``docs/graphiql.png``
(``tools/screenshots.py``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from gateway.edge.app import Gateway, create_app
from gateway.edge.cli import graphiql_link
from tests.conftest import Seeded, gateway_settings, token

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Nothing of Chromium's own may go out either: no updates, sync, QUIC probes or first-run pages.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# The README's example, as the Jiangsu joint-handling officer of the demo would send it.
OPERATION = """query Enterprise($uscc: ID!) {
  legalPerson(uscc: $uscc) {
    name
    legalRepresentative { name householdRegion }
    creditRecords { kind decidedOn region }
  }
}"""


@pytest.fixture
def gateway_url(seeded: Seeded) -> Iterator[str]:
    """A development gateway over the seeded regions, served by uvicorn on a free loopback
    port in a thread of its own; stopped when the test ends, also when it failed."""
    gateway = Gateway.from_settings(gateway_settings(seeded.dsn, rate_limits=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(gateway), loop="asyncio", log_level="warning", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(1000):  # uvicorn offers no event for it
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            pytest.fail("the gateway did not start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@pytest.mark.slow
def test_graphiql_runs_an_operation_with_a_demo_callers_headers_offline(
    gateway_url: str, seeded: Seeded
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: run `sh tools/ensure-chromium.sh` (make test does)")
    from playwright.sync_api import Route, sync_playwright

    enterprise = seeded.dataset.cross_region_enterprise("JS")
    headers = {
        "Authorization": "Bearer " + token("JS", "joint_handling_officer", app="jh-js"),
        "X-Matter-Code": "JH-HUKOU-MIGRATION",
    }
    requested: list[str] = []
    elsewhere: list[str] = []
    problems: list[str] = []

    def only_the_gateway(route: Route) -> None:
        # Offline as on an extranet: whatever is not the gateway is refused, and remembered.
        url = route.request.url
        if url.startswith(gateway_url + "/") or url.startswith("data:"):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 760})
            page.route("**/*", only_the_gateway)
            # What the Content-Security-Policy blocked, as the page itself is told of it.
            page.add_init_script(
                "window.__violations = [];"
                " document.addEventListener('securitypolicyviolation', (e) =>"
                " window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page.on("request", lambda request: requested.append(request.url))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type == "error" else None,
            )
            page.goto(graphiql_link(f"{gateway_url}/graphql", headers))
            editor = page.locator(".graphiql-query-editor .CodeMirror")
            editor.wait_for(timeout=20_000)
            # GraphiQL's editors are CodeMirror 5: set the text as typing would leave it.
            page.evaluate(
                "([query, variables]) => {"
                " document.querySelector('.graphiql-query-editor .CodeMirror')"
                ".CodeMirror.setValue(query);"
                " document.querySelector('.graphiql-editor-tool .CodeMirror')"
                ".CodeMirror.setValue(variables); }",
                [OPERATION, f'{{"uscc": "{enterprise["uscc"]}"}}'],
            )
            page.locator("button.graphiql-execute-button").click()
            result = page.locator(".graphiql-response")
            result.get_by_text(enterprise["name"]).wait_for(timeout=20_000)
            shown = result.inner_text()
            # The explorer plugin, also vendored, lists the schema's root fields.
            page.get_by_label("Show GraphiQL Explorer").click()
            explorer = page.locator(".graphiql-explorer-root")
            explorer.get_by_text("naturalPerson", exact=True).wait_for(timeout=10_000)
            violations = page.evaluate("window.__violations")
            screenshots = os.environ.get("DELTAGATE_SCREENSHOTS")
            if screenshots:
                page.screenshot(path=str(Path(screenshots) / "graphiql.png"))
        finally:
            browser.close()

    assert enterprise["name"] in shown
    assert "legalRepresentative" in shown
    assert "UNAUTHENTICATED" not in shown  # the link's token was sent
    assert elsewhere == []
    assert all(url.startswith(gateway_url + "/") for url in requested if "data:" not in url)
    assert any(url.endswith("/graphql") for url in requested)
    assert any("/graphiql/static/vendor/graphiql.min.js" in url for url in requested)
    assert violations == []
    assert problems == []  # no script error, nothing refused
