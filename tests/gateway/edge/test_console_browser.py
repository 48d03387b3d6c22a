"""The auditor console in a real headless Chromium, with nothing reachable but the gateway.

One development gateway for the module, over the seeded regions and an audit database of its
own, served on a loopback port; Debian's ``chromium`` under Playwright (``tests/browser.py``).
Before the first test the demo's callers send the README's example operations ("normal demo
traffic"). Every page fails its test on any request to another origin, any script error and
anything the Content-Security-Policy blocked.

``DELTAGATE_SCREENSHOTS=docs`` also saves the event list and an event's detail, in English
and in Chinese, as ``docs/console-*.png`` (``tools/screenshots.py``).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gateway.audit import create_database
from gateway.edge.app import Gateway, create_app
from gateway.synthetic import Dataset
from gateway.telemetry.span_table import init_span_table
from resolvers.console_settings import ConsoleSettings
from tests.browser import Offline, serving
from tests.conftest import Seeded, gateway_settings, token

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]

#: The module's own audit database: the signals look at every event of the last hour, so no
#: other module's traffic may be in it.
AUDIT_DATABASE = "deltagate_audit_console"
TRACE_UI = "http://traces.invalid/trace/{traceId}"  # shown as a link, never followed
BURST_APP = "bulk-sh"

AUDITOR = token("NATIONAL", "auditor", app="audit-national")
OFFICER = token("JS", "joint_handling_officer", app="jh-js")
COUNTER = token("SH", "one_stop_app", app="counter-sh")
PORTAL = token("AH", "public_portal", app="portal-ah")

EVENTS_QUERY = """query Events($filter: AuditEventFilter, $after: String) {
  auditEvents(filter: $filter, first: 100, after: $after) {
    edges { node { id at traceId callerApp callerRegion actingGateway roles matterCode
      matterName operationName operationType documentHash policyVersion subjects hash
      decisions { field owner decision } } }
    pageInfo { hasNextPage endCursor } } }"""

EVENT_QUERY = """query Event($id: ID!) {
  auditEvent(id: $id) { id traceId decisions { field owner decision count grade reason }
    trace { externalUrl spans { kind region name } } } }"""


@dataclass(frozen=True)
class Console:
    """The running gateway and what the demo traffic did."""

    url: str
    dataset: Dataset
    enterprise: dict[str, Any]  # a JS enterprise the joint-handling officer looked up
    person: dict[str, Any]  # a SH person the counter looked up: the citizen of these tests
    officer_trace: str  # the trace id of the officer's request


def _graphql(
    url: str, bearer: str, query: str, variables: dict[str, Any], matter: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {bearer}"}
    if matter:
        headers["X-Matter-Code"] = matter
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return dict(response.json())


def _example(name: str) -> str:
    return (ROOT / "examples" / name).read_text(encoding="utf-8")


def _demo_traffic(url: str, dataset: Dataset) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The README's examples as the demo's callers send them, a few times each."""
    enterprise = dataset.cross_region_enterprise("JS")
    person = dataset.cross_region_person("SH")
    officer = _graphql(
        url,
        OFFICER,
        _example("credit-check.graphql"),
        {"uscc": enterprise["uscc"]},
        "JH-HUKOU-MIGRATION",
    )
    assert officer["data"]["legalPerson"]["name"] == enterprise["name"]
    for index in range(3):
        found = _graphql(
            url,
            COUNTER,
            _example("counter-lookup.graphql"),
            {"idNumber": person["id_number"] if index == 0 else dataset.person_id("SH", index)},
            "OS-ENTERPRISE-OPENING",
        )
        assert "errors" not in found
    other = dataset.cross_region_enterprise("AH")
    assert "errors" not in _graphql(
        url, PORTAL, _example("credit-check.graphql"), {"uscc": other["uscc"]}
    )
    return enterprise, person, officer["extensions"]["traceId"]


@pytest.fixture(scope="module")
def console(seeded: Seeded) -> Iterator[Console]:
    audit_dsn = asyncio.run(create_database(seeded.dsn, AUDIT_DATABASE, fresh=True))
    asyncio.run(init_span_table(audit_dsn))
    settings = gateway_settings(
        seeded.dsn,
        rate_limits=False,
        audit_dsn=audit_dsn,
        # Every hour a working hour: OUTSIDE_HOURS must not depend on when the tests run.
        console=ConsoleSettings(
            trace_url_template=TRACE_UI,
            work_start=dt.time(0, 0),
            work_end=dt.time(23, 59, 59, 999999),
            working_days=frozenset(range(1, 8)),
            verify_min_interval=0.1,
            # Each test's traffic shows on the next front page, not 15 s later.
            signals_ttl=0,
        ),
    )
    with serving(create_app(Gateway.from_settings(settings))) as url:
        enterprise, person, trace = _demo_traffic(url, seeded.dataset)
        yield Console(url, seeded.dataset, enterprise, person, trace)


@contextmanager
def opened(
    browser: Browser, console: Console, width: int = 1280, height: int = 800
) -> Iterator[tuple[Page, Offline]]:
    """A fresh browser context (its own sessionStorage and localStorage) on ``/console``."""
    context = browser.new_context(
        viewport={"width": width, "height": height}, accept_downloads=True, locale="en-US"
    )
    network = Offline(console.url)
    try:
        page = network.attach(context.new_page())
        page.goto(f"{console.url}/console")
        page.locator("#token").wait_for(timeout=10_000)
        yield page, network
    finally:
        context.close()


def sign_in(page: Page, bearer: str) -> None:
    page.locator("#token").fill(bearer)
    page.locator("form.sign-in button[type=submit]").click()


def assert_offline(page: Page, network: Offline, *, refused: tuple[int, ...] = ()) -> None:
    """Nothing but the gateway was asked, nothing was blocked, no script failed; ``refused``
    names the HTTP statuses the test itself provoked (Chromium logs each as an error)."""
    expected = {f"the server responded with a status of {status}" for status in refused}
    assert network.elsewhere == []
    assert network.violations(page) == []
    assert [p for p in network.problems if not any(e in p for e in expected)] == []
    assert any(url.endswith("/graphql") for url in network.requested)


def screenshot(page: Page, name: str, *, full_page: bool = False) -> None:
    folder = os.environ.get("DELTAGATE_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / name), full_page=full_page)


def table_rows(page: Page, selector: str) -> list[list[str]]:
    return list(
        page.evaluate(
            "(selector) => [...document.querySelectorAll(selector + ' tbody tr')]"
            ".map((row) => [...row.cells].map((cell) => cell.innerText.trim()))",
            selector,
        )
    )


def audit_events(console: Console, given: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event ``auditEvents`` returns for a filter, newest first (all pages)."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        answer = _graphql(console.url, AUDITOR, EVENTS_QUERY, {"filter": given, "after": after})
        page = answer["data"]["auditEvents"]
        found += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return found
        after = page["pageInfo"]["endCursor"]


# -- who may use it -------------------------------------------------------------------------------


def test_a_token_that_is_neither_an_auditors_nor_a_citizens_is_refused(
    console: Console, browser: Browser
) -> None:
    with opened(browser, console) as (page, network):
        sign_in(page, COUNTER)
        alert = page.locator("#alert")
        alert.wait_for(timeout=10_000)
        refused = alert.inner_text()
        nav_hidden = page.locator("#nav").is_hidden()
        form_back = page.locator("#token").is_visible()
        kept = page.evaluate("sessionStorage.getItem('deltagate.console.token')")
        sign_in(page, COUNTER[:-4] + "AAAA")  # a forged signature
        page.locator("#alert[data-code=UNAUTHENTICATED]").wait_for(timeout=10_000)
        assert_offline(page, network, refused=(401,))
    assert "FORBIDDEN" in refused
    assert "neither the auditor role" in refused
    assert nav_hidden
    assert form_back
    assert kept is None  # a refused token is not kept
    # What the page would have asked is refused by the gateway too, whatever the page does.
    answer = _graphql(console.url, COUNTER, EVENTS_QUERY, {"filter": None, "after": None})
    assert answer["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    export = httpx.get(
        f"{console.url}/console/export.csv", headers={"Authorization": f"Bearer {COUNTER}"}
    )
    assert export.status_code == 403


def test_a_citizen_sees_only_their_own_access_history(console: Console, browser: Browser) -> None:
    own = console.person["id_number"]
    citizen = token("SH", "citizen", app="citizen-app", subject=own)
    with opened(browser, console) as (page, network):
        sign_in(page, citizen)
        page.locator("table.history").wait_for(timeout=10_000)
        heading = page.locator("main h2").first.inner_text()
        shown = table_rows(page, "table.history")
        links = [link for link in page.locator("#nav a").all() if link.is_visible()]
        visible_nav = [link.get_attribute("data-view") for link in links]
        # The auditor's views are not for this token: the page goes back to the history.
        page.evaluate("window.location.hash = '#/events'")
        page.wait_for_function("window.location.hash === '#/history'")
        page.locator("table.history").wait_for()
        asked = [body for body in network.posted if "auditEvents" in body]
        assert_offline(page, network)
    history = _graphql(
        console.url,
        citizen,
        "query($id: ID!) { accessHistory(idNumber: $id) { callerApp matterCode } }",
        {"id": own},
    )["data"]["accessHistory"]
    assert own in heading
    assert visible_nav == ["history"]
    assert asked == []
    # What the page lists is the citizen's own history: the counter read them, nobody else did.
    assert len(shown) == len(history) >= 1
    assert [row[1].split(" ")[0] for row in shown] == [h["callerApp"] for h in history]
    assert {h["callerApp"] for h in history} == {"counter-sh"}
    # Another person's history and the audit log stay closed to this token.
    stranger = next(
        other for index in range(3, 9) if (other := console.dataset.person_id("SH", index)) != own
    )
    other = _graphql(
        console.url,
        citizen,
        "query($id: ID!) { accessHistory(idNumber: $id) { at } }",
        {"id": stranger},
    )
    assert other["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    log = _graphql(console.url, citizen, EVENTS_QUERY, {"filter": None, "after": None})
    assert log["errors"][0]["extensions"]["code"] == "FORBIDDEN"


# -- the auditor ----------------------------------------------------------------------------------


def test_normal_demo_traffic_raises_no_misuse_signal(console: Console, browser: Browser) -> None:
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals").wait_for(timeout=10_000)
        cards = page.locator("article.signal").count()
        assert_offline(page, network)
    assert cards == 0


def test_an_auditor_goes_from_a_subject_to_the_request_its_decisions_and_its_waterfall(
    console: Console, browser: Browser
) -> None:
    uscc = console.enterprise["uscc"]
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals, article.signal").first.wait_for(timeout=10_000)
        page.locator("#nav a[data-view=events]").click()
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        screenshot(page, "console-events-en.png")
        page.locator("#language").click()
        page.locator("table.events th", has_text="调用方").wait_for()
        screenshot(page, "console-events-zh.png")
        page.locator("#language").click()
        page.locator("#filter-subjectId").fill(uscc)
        page.locator("#search").click()
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        page.wait_for_function(
            "(uscc) => [...document.querySelectorAll('table.events tbody tr')]"
            ".every((row) => row.innerText.includes(uscc))",
            arg=uscc,
        )
        listed = table_rows(page, "table.events")
        officer_row = page.locator("table.events tbody tr", has_text="jh-js")
        officer_row.locator("a").first.click()
        page.locator("table.decisions").wait_for(timeout=10_000)
        page.locator(".waterfall").wait_for(timeout=10_000)
        event_id = page.evaluate("decodeURIComponent(window.location.hash.split('/')[2])")
        decisions = table_rows(page, "table.decisions")
        kinds = page.evaluate(
            "[...document.querySelectorAll('.waterfall .span-row')].map((r) => r.dataset.kind)"
        )
        steps = page.locator(".waterfall").inner_text()
        external = page.locator("#external-trace").get_attribute("href")
        operation = page.locator("dd[data-fact=operationName]").inner_text()
        screenshot(page, "console-detail-en.png", full_page=True)
        page.locator("#language").click()
        page.locator("h2", has_text="请求内部经过").wait_for()
        screenshot(page, "console-detail-zh.png", full_page=True)
        chinese = page.locator("table.decisions thead").inner_text()
        page.locator("#language").click()
        assert_offline(page, network)

    # The list holds the officer's request (and the console's own audited searches of it).
    assert any("jh-js" in row[2] and uscc in row[5] for row in listed)
    assert {row[2].split(" ")[0] for row in listed} <= {"jh-js", "audit-national"}
    event = _graphql(console.url, AUDITOR, EVENT_QUERY, {"id": event_id})["data"]["auditEvent"]
    assert event["traceId"] == console.officer_trace
    assert operation == "CreditCheck"
    # The page shows every decision the API recorded, as recorded.
    assert [(row[0], row[1], row[2]) for row in decisions] == [
        (d["field"], d["owner"] or "—", d["decision"].lower()) for d in event["decisions"]
    ]
    assert any(row[0] == "LegalPerson.name" and row[1] == "JS" for row in decisions)
    assert "字段" in chinese
    assert "数据所属地区" in chinese
    # The request as it ran: the operation, loader batches (each one backend round trip, the
    # query's marks on the batch's row), the audit write.
    assert kinds[0] == "OPERATION"
    assert {"LOADER_BATCH", "AUDIT_WRITE"} <= set(kinds)
    assert len(kinds) == len(event["trace"]["spans"])
    regions = {span["region"] for span in event["trace"]["spans"] if span["region"]}
    assert "JS" in regions
    assert all(f"· {region}" in steps for region in regions)
    assert external == TRACE_UI.replace("{traceId}", console.officer_trace)


def test_the_csv_export_holds_the_listed_events_and_is_itself_an_audited_access(
    console: Console, browser: Browser
) -> None:
    uscc = console.enterprise["uscc"]
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals, article.signal").first.wait_for(timeout=10_000)
        page.locator("#nav a[data-view=events]").click()
        page.locator("#filter-subjectId").fill(uscc)
        page.locator("#search").click()
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        with page.expect_download() as downloading:
            page.locator("#export").click()
        download = downloading.value
        text = Path(download.path()).read_text(encoding="utf-8-sig")
        note = page.locator("#exported").inner_text()
        # Searching again lists the export among the events of that subject.
        page.locator("#search").click()
        page.locator("table.events tbody tr", has_text="ConsoleExport").wait_for(timeout=10_000)
        assert_offline(page, network)

    rows = list(csv.DictReader(io.StringIO(text)))
    assert download.suggested_filename.startswith("audit-events-")
    assert str(len(rows)) in note
    listed = audit_events(console, {"subjectId": uscc})
    # Everything newer than the export's newest row is the console's own audited reading,
    # the export among it; the rest is the export, row for row.
    newest = next(index for index, node in enumerate(listed) if node["id"] == rows[0]["id"])
    assert {node["callerApp"] for node in listed[:newest]} == {"audit-national"}
    assert any(node["operationName"] == "ConsoleExport" for node in listed[:newest])
    assert len(listed[newest:]) == len(rows)
    for node, row in zip(listed[newest:], rows, strict=True):
        assert row["id"] == node["id"]
        assert row["at"] == node["at"]
        assert row["traceId"] == node["traceId"]
        assert row["callerApp"] == node["callerApp"]
        assert row["operationName"] == (node["operationName"] or "")
        assert row["subjects"] == ";".join(node["subjects"])
        assert row["decisions"] == ";".join(
            f"{d['field']}@{d['owner'] or '-'}={d['decision']}" for d in node["decisions"]
        )
        assert row["hash"] == node["hash"]
    assert any(row["callerApp"] == "jh-js" for row in rows)


def test_a_burst_of_lookups_by_one_app_raises_the_distinct_subjects_signal(
    console: Console, browser: Browser
) -> None:
    burst = token("SH", "one_stop_app", app=BURST_APP)
    looked_up = 0
    for start in (10, 60, 110):
        ids = [console.dataset.person_id("SH", index) for index in range(start, start + 50)]
        answer = _graphql(
            console.url,
            burst,
            "query Bulk($ids: [ID!]!) { naturalPersons(idNumbers: $ids) { name } }",
            {"ids": ids},
            "OS-ENTERPRISE-OPENING",
        )
        assert "errors" not in answer
        looked_up += len(ids)
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("article.signal").first.wait_for(timeout=10_000)
        cards = page.locator("article.signal")
        raised = [
            (card.get_attribute("data-kind"), card.locator("dd[data-fact=signalApp]").inner_text())
            for card in cards.all()
        ]
        observed = int(cards.first.locator("dd[data-fact=signalValue]").inner_text())
        cards.first.locator("button.show-events").click()
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        filtered_by = page.locator("#filter-callerApp").input_value()
        behind = table_rows(page, "table.events")
        assert_offline(page, network)
    # One signal, for the burst's app only: the demo's own callers raise none.
    assert raised == [("DISTINCT_SUBJECTS", BURST_APP)]
    assert observed == looked_up
    assert filtered_by == BURST_APP
    assert len(behind) == 3
    assert all(row[2].startswith(BURST_APP) for row in behind)


def test_the_chain_is_verified_on_request(console: Console, browser: Browser) -> None:
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals, article.signal").first.wait_for(timeout=10_000)
        page.locator("#nav a[data-view=chain]").click()
        page.locator("#verify").wait_for(timeout=10_000)
        page.locator("#verify-from").fill("1")
        page.locator("#verify").click()
        result = page.locator(".verification[data-ok]")
        result.wait_for(timeout=10_000)
        ok = result.get_attribute("data-ok")
        checked = int(page.locator(".verification dd[data-fact=checked]").inner_text())
        assert_offline(page, network)
    assert ok == "true"
    assert checked >= 5  # the demo traffic, the burst, the console's own reads


@pytest.mark.parametrize(
    ("given", "control"),
    [({"region": "SH"}, "#filter-region"), ({"decision": "MASKED"}, "#filter-decision")],
)
def test_the_region_and_decision_filters_list_what_audit_events_lists(
    console: Console, browser: Browser, given: dict[str, str], control: str
) -> None:
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals, article.signal").first.wait_for(timeout=10_000)
        page.locator("#nav a[data-view=events]").click()
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        field = page.locator(control)
        if control == "#filter-region":
            field.fill(given["region"])
        else:
            field.select_option(given["decision"])
        page.locator("#search").click()
        page.locator("table.events tbody tr, #no-events").first.wait_for(timeout=10_000)
        listed = [row[0] for row in table_rows(page, "table.events")]
        assert_offline(page, network)
    # The console's own reads release nothing a region keeps, nor anything masked: this list
    # stays put while it is read.
    expected = [node["id"] for node in audit_events(console, given)]
    assert listed == expected
    assert listed  # the demo's look-ups read Shanghai's data and had fields masked
    assert len(listed) < len(audit_events(console, {}))


def test_the_event_list_pages_back_in_time(console: Console, browser: Browser) -> None:
    # More than a page of events, whatever ran before: the counter looks one person up again.
    for _ in range(max(0, 25 - len(audit_events(console, {})))):
        found = _graphql(
            console.url,
            COUNTER,
            _example("counter-lookup.graphql"),
            {"idNumber": console.person["id_number"]},
            "OS-ENTERPRISE-OPENING",
        )
        assert "errors" not in found
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals, article.signal").first.wait_for(timeout=10_000)
        page.locator("#nav a[data-view=events]").click()
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        first = [int(row[0]) for row in table_rows(page, "table.events")]
        page.locator("#older").click()
        page.locator("#page-number", has_text="Page 2").wait_for(timeout=10_000)
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        second = [int(row[0]) for row in table_rows(page, "table.events")]
        page.locator("#newest").click()
        page.locator("#page-number", has_text="Page 1").wait_for(timeout=10_000)
        assert_offline(page, network)
    assert len(first) == 20
    assert second
    assert first == sorted(first, reverse=True)
    assert max(second) < min(first)  # older events, none repeated


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_the_event_list_and_detail_fit_the_screen(
    console: Console, browser: Browser, width: int, height: int
) -> None:
    with opened(browser, console, width, height) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals, article.signal").first.wait_for(timeout=10_000)
        page.locator("#nav a[data-view=events]").click()
        page.locator("table.events tbody tr").first.wait_for(timeout=10_000)
        list_width = page.evaluate("document.documentElement.scrollWidth")
        page.locator("table.events tbody tr a").first.click()
        page.locator("table.decisions").wait_for(timeout=10_000)
        detail_width = page.evaluate("document.documentElement.scrollWidth")
        assert_offline(page, network)
    # No sideways scrolling: every column fits or wraps.
    assert list_width <= width
    assert detail_width <= width


def test_the_chosen_language_is_remembered_and_the_token_stays_in_the_tab(
    console: Console, browser: Browser
) -> None:
    with opened(browser, console) as (page, network):
        sign_in(page, AUDITOR)
        page.locator("#no-signals, article.signal").first.wait_for(timeout=10_000)
        page.locator("#language").click()
        page.reload()
        page.locator("#nav a[data-view=events]", has_text="审计事件").wait_for(timeout=10_000)
        lang = page.evaluate("document.documentElement.lang")
        cookies = page.context.cookies()
        stored = page.evaluate("Object.keys(localStorage)")
        # Every label exists in both languages.
        unmatched = page.evaluate(
            "import('./console/static/i18n.js').then(({ tables }) => {"
            " const { en, zh } = tables();"
            " return Object.keys(en).filter((k) => !(k in zh))"
            ".concat(Object.keys(zh).filter((k) => !(k in en))); })"
        )
        page.locator("#sign-out").click()
        page.locator("#token").wait_for()
        kept = page.evaluate("sessionStorage.length")
        assert_offline(page, network)
    assert lang == "zh-CN"
    assert cookies == []
    assert stored == ["deltagate.console.lang"]  # the language only, never the token
    assert kept == 0
    assert unmatched == []
