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
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from gateway.edge.app import Gateway, create_app
from gateway.edge.cli import graphiql_link
from tests.browser import Offline, serving
from tests.conftest import Seeded, gateway_settings, token

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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
    """A development gateway over the seeded regions on a loopback port, for this test only."""
    gateway = Gateway.from_settings(gateway_settings(seeded.dsn, rate_limits=False))
    with serving(create_app(gateway)) as url:
        yield url


@pytest.mark.slow
def test_graphiql_runs_an_operation_with_a_demo_callers_headers_offline(
    gateway_url: str, seeded: Seeded, browser: Browser
) -> None:
    enterprise = seeded.dataset.cross_region_enterprise("JS")
    headers = {
        "Authorization": "Bearer " + token("JS", "joint_handling_officer", app="jh-js"),
        "X-Matter-Code": "JH-HUKOU-MIGRATION",
    }
    network = Offline(gateway_url)

    page = network.attach(browser.new_page(viewport={"width": 1440, "height": 760}))
    try:
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
        violations = network.violations(page)
        screenshots = os.environ.get("DELTAGATE_SCREENSHOTS")
        if screenshots:
            page.screenshot(path=str(Path(screenshots) / "graphiql.png"))
    finally:
        page.close()

    assert enterprise["name"] in shown
    assert "legalRepresentative" in shown
    assert "UNAUTHENTICATED" not in shown  # the link's token was sent
    assert network.elsewhere == []
    requested = network.requested
    assert all(url.startswith(gateway_url + "/") for url in requested if "data:" not in url)
    assert any(url.endswith("/graphql") for url in requested)
    assert any("/graphiql/static/vendor/graphiql.min.js" in url for url in requested)
    assert violations == []
    assert network.problems == []  # no script error, nothing refused
