"""The web UI in a real browser: Debian's Chromium driven by Playwright, against ``opsloom up``.

One ``opsloom up`` process serves ``web_workflows.py`` on a temporary SQLite file; users are
made with the CLI beforehand, as an administrator would. Every page a test opens is saved as a
screenshot under ``tests/e2e/artifacts/`` (or ``$OPSLOOM_E2E_ARTIFACTS``), and a test fails on
any console error or uncaught page error. Every page is checked with axe-core (vendored under
``vendor/axe-core``, from npm with its licence): no serious or critical violation. Without
Chromium the tests skip, except on CI (``CI=true``), where they fail: ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from peers import ROOT, wait_until
from playwright.sync_api import expect, sync_playwright
from webserver import ADMIN_TOKEN, Server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

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
ARTIFACTS = Path(os.environ.get("OPSLOOM_E2E_ARTIFACTS", ROOT / "tests" / "e2e" / "artifacts"))
EXAMPLES = ROOT / "examples"
#: The most the runs list may weigh with everything it loads (HTML, scripts, styles).
PAGE_WEIGHT_LIMIT = 300_000
#: axe-core, evaluated in a page through the DevTools protocol (the pages' CSP allows no
#: injected script tag, rightly).
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
#: Violations of these impacts fail a page.
BLOCKING_IMPACTS = ("serious", "critical")


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "Chromium is not installed (apt-get install chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + "; .ci/run installs it")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Tab:
    """A browser page that records console errors and saves screenshots by name."""

    def __init__(self, page: Any, server: Server) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        #: Console errors a test provokes on purpose (the browser logs every 4xx page).
        self.expected: list[str] = []
        page.on(
            "console",
            lambda msg: (
                self.errors.append(f"console {msg.type}: {msg.text}")
                if msg.type == "error"
                else None
            ),
        )
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.server.url + path)
        self.page.wait_for_load_state("load")
        return response

    def shot(self, name: str, tolerate: tuple[str, ...] = ()) -> None:
        """Check the page with axe-core, then save its screenshot as ``name``."""
        self.accessible(name, tolerate)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def accessible(self, name: str, tolerate: tuple[str, ...] = ()) -> None:
        """Run axe-core on the page as it is now; fail on any serious or critical violation.

        ``tolerate`` names rules that a vendored page (Swagger UI) breaks in its own markup.
        """
        if not self.page.evaluate("typeof window.axe === 'object'"):
            self.page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
        found = self.page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                .map(v => ({id: v.id, impact: v.impact, help: v.help,
                            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))"""
        )
        blocking = [v for v in found if v["impact"] in BLOCKING_IMPACTS and v["id"] not in tolerate]
        assert blocking == [], f"{name}: " + "\n".join(
            f"{v['impact']} {v['id']}: {v['help']} at {v['nodes']}" for v in blocking
        )

    def sign_in(self, user: str) -> None:
        self.goto("/signin")
        self.page.get_by_label("API token").fill(self.server.tokens[user])
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page).to_have_url(re.compile(r"/runs$"))


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = Tab(context.new_page(), server)
    try:
        yield opened
        unexpected = [e for e in opened.errors if not any(x in e for x in opened.expected)]
        assert unexpected == [], "\n".join(unexpected)
    finally:
        context.close()


def test_signin__token_becomes_an_http_only_session_and_signout_ends_it(tab: Tab) -> None:
    tab.goto("/runs")
    expect(tab.page).to_have_url(re.compile(r"/signin\?next=/runs$"))
    tab.shot("signin")
    tab.expected.append("status of 401")
    tab.page.get_by_label("API token").fill("not-a-token")
    tab.page.get_by_role("button", name="Sign in").click()
    expect(tab.page.get_by_role("alert")).to_contain_text("not valid")
    tab.sign_in("olga")
    [cookie] = [c for c in tab.page.context.cookies() if c["name"] == "opsloom_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert tab.page.evaluate("document.cookie").find("opsloom_session") == -1
    tab.page.get_by_role("button", name="Sign out").click()
    expect(tab.page).to_have_url(re.compile(r"/signin$"))
    tab.goto("/runs")
    expect(tab.page).to_have_url(re.compile(r"/signin"))


def test_start__a_run_started_from_the_ui_reaches_completed_without_reloading(
    tab: Tab, server: Server
) -> None:
    tab.sign_in("olga")
    tab.goto("/workflows")
    tab.shot("workflows")
    tab.page.get_by_label("Workflow").select_option("tick")
    tab.page.get_by_label("Input (JSON)").fill('{"start": 40}')
    tab.page.get_by_role("button", name="Start").click()
    expect(tab.page).to_have_url(re.compile(r"/runs/[^/?]+\?notice=started$"))
    # A mark on the document: a reload or a navigation would wipe it.
    tab.page.evaluate("window.stillTheSamePage = true")
    status = tab.page.locator("#run-status")
    expect(tab.page.get_by_role("button", name="Cancel run")).to_be_visible()
    expect(status).to_have_text("completed", timeout=30_000)
    # The actions follow the status: nothing is left to cancel.
    expect(tab.page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert tab.page.evaluate("window.stillTheSamePage") is True
    expect(tab.page.locator("pre").nth(1)).to_contain_text('"count": 42')
    expect(tab.page.locator(".gantt .bar")).to_have_count(3)  # two steps and the timer
    tab.shot("run-completed")


def test_runs_list__shows_a_new_run_and_its_end_without_reloading(tab: Tab, server: Server) -> None:
    tab.sign_in("vic")
    tab.goto("/runs?workflow=tick")
    tab.page.evaluate("window.stillTheSamePage = true")
    run_id = server.start("tick", {"start": 7})
    row = tab.page.locator("tr", has=tab.page.get_by_role("link", name=run_id))
    expect(row).to_be_visible(timeout=15_000)
    expect(row.locator(".badge")).to_have_text("completed", timeout=30_000)
    expect(tab.page.locator(".counts a", has_text="completed")).not_to_contain_text("completed 0")
    assert tab.page.evaluate("window.stillTheSamePage") is True


def test_failed_run__shows_the_failing_attempt_and_its_error(tab: Tab, server: Server) -> None:
    run_id = server.start("breaks", "/data")
    wait_until(lambda: server.status(run_id) == "failed", "the run to fail", 30)
    tab.sign_in("olga")
    tab.goto("/runs?status=failed")
    tab.page.get_by_role("link", name=run_id).click()
    expect(tab.page.locator("#run-status")).to_have_text("failed")
    failure = tab.page.locator(".attempt-error")
    expect(failure).to_contain_text("Attempt 2 failed")
    expect(failure).to_contain_text("OSError")
    expect(failure).to_contain_text("no space left on /data")
    expect(tab.page.get_by_role("button", name="Retry run")).to_be_visible()
    tab.shot("run-failed")


def test_approval__decided_in_the_inbox_moves_the_run_on(tab: Tab, server: Server) -> None:
    run_id = server.start("change", "payments")

    def pending() -> bool:
        with server.api() as api:
            found = api.get("/approvals", params={"status": "pending"}).json()
            return any(r["run_id"] == run_id for r in found)

    wait_until(pending, "the approval request", 30)
    tab.sign_in("alice")
    tab.goto("/approvals")
    task = tab.page.locator("article.task", has_text="Restart payments")
    expect(task).to_be_visible()
    expect(task.locator(".countdown")).to_contain_text(re.compile(r"due in (59|60) m"))
    expect(task.get_by_role("link", name=run_id)).to_be_visible()
    tab.shot("approvals")
    task.get_by_label("Reason").fill("safe during the window")
    task.get_by_role("button", name="Approve").click()
    expect(tab.page.get_by_role("status")).to_contain_text("approved")
    wait_until(lambda: server.status(run_id) == "completed", "the run to move on", 30)
    tab.goto(f"/runs/{run_id}")
    expect(tab.page.locator("#run-status")).to_have_text("completed")
    expect(tab.page.locator("pre").nth(1)).to_contain_text("approved")


def test_viewer__sees_no_action_and_a_forged_post_is_refused(tab: Tab, server: Server) -> None:
    waiting = server.start("change", "viewer-check")
    wait_until(lambda: server.status(waiting) == "waiting", "the run to wait", 30)
    tab.sign_in("vic")
    for path in ("/runs", f"/runs/{waiting}", "/workflows", "/approvals", "/triggers", "/deploy"):
        tab.goto(path)
        assert tab.page.locator("main form[method=post]").count() == 0, path
    tab.shot("viewer-run")
    before = len(httpx.get(f"{server.url}/api/v1/runs", headers=admin(), timeout=10).json())
    for form in ({"workflow": "tick"}, {"workflow": "tick", "csrf": "forged"}):
        answer = tab.page.request.post(f"{server.url}/runs", form=form)
        assert answer.status == 403, answer.text()
    csrf = tab.page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    refused = tab.page.request.post(f"{server.url}/runs/{waiting}/cancel", form={"csrf": csrf})
    assert refused.status == 403
    assert "operator" in refused.text()
    after = len(httpx.get(f"{server.url}/api/v1/runs", headers=admin(), timeout=10).json())
    assert after == before
    assert server.status(waiting) == "waiting"


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def test_deploy__problems_at_their_line_then_every_example_graph_and_a_runs_path(
    tab: Tab, server: Server
) -> None:
    tab.sign_in("olga")
    tab.expected.append("status of 422")  # the answer to an invalid document
    tab.goto("/deploy")
    broken = (EXAMPLES / "disk-cleanup.yaml").read_text().replace("switch:", "swich:", 1)
    tab.page.get_by_label("Document").fill(broken)
    tab.page.get_by_role("button", name="Validate and deploy").click()
    expect(tab.page.get_by_role("alert")).to_contain_text("not valid")
    line = broken.splitlines().index("  - assess:") + 1
    expect(tab.page.locator("li.has-problem").first).to_be_visible()
    marked = tab.page.locator("li.has-problem").first.get_attribute("id")
    assert marked is not None
    assert abs(int(marked[1:]) - line) <= 1, (marked, line)
    tab.shot("deploy-problems")
    for example in sorted(EXAMPLES.glob("*.yaml")):
        tab.goto("/deploy")
        text = example.read_text()
        tab.page.get_by_label("Document").fill(text)
        tab.page.get_by_role("button", name="Validate and deploy").click()
        expect(tab.page).to_have_url(re.compile(r"/documents/"))
        top = re.findall(r"^  - (\w+):$", text.split("\ndo:\n", 1)[1], flags=re.M)
        graph = tab.page.locator("figure.graph > ol.flow > li.node")
        expect(graph).to_have_count(len(top))
        for name in top:
            node = tab.page.locator(f"figure.graph [data-pointer$='/{name}']").first
            expect(node).to_be_visible()
        tab.shot(f"document-{example.stem}")
    # A start form built from the document's input schema: one labelled field per property.
    tab.goto("/documents/ops/disk-cleanup/1.0.0")
    tab.page.get_by_label("host").fill("web-1")
    tab.page.get_by_label("usage").fill("42")
    tab.page.get_by_role("button", name="Start").click()
    expect(tab.page).to_have_url(re.compile(r"/runs/[^/?]+\?notice=started$"))
    expect(tab.page.locator("pre").first).to_contain_text('"usage": 42')
    alert = {"alert": {"name": "HighErrorRate", "service": "checkout", "errorRate": 0.2}}
    run_id = server.start("ops/incident-triage", alert)
    wait_until(lambda: server.status(run_id) == "completed", "the document run", 30)
    tab.goto(f"/runs/{run_id}")
    taken = tab.page.locator("figure.graph li.node[data-state=taken]")
    for pointer in ("/do/0/classify", "/do/1/notify/fork/branches/0/chat", "/do/3/summarize"):
        expect(taken.and_(tab.page.locator(f"[data-pointer='{pointer}']"))).to_have_count(1)
    tab.shot("run-document-path")


@pytest.mark.timeout(360)  # a dozen pages, each checked by axe-core on a shared machine
def test_pages__every_page_renders_without_console_errors(tab: Tab, server: Server) -> None:
    run_id = server.start("tick", {"start": 1})
    family = server.start("family", 2, run_id="teams/db/family-1")
    wait_until(lambda: server.status(family) == "completed", "the tree of runs", 30)
    tab.sign_in("admin")
    weight = 0

    def count(response: Any) -> None:
        nonlocal weight
        weight += len(response.body())

    tab.page.on("response", count)
    elsewhere = fetched_elsewhere(tab, server)
    tab.page.on(
        "response",
        lambda r: tab.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    tab.goto("/runs")
    tab.page.remove_listener("response", count)
    assert weight <= PAGE_WEIGHT_LIMIT, f"the runs list weighs {weight} bytes"
    tab.shot("runs")
    for name, path in [
        ("runs-filtered", "/runs?status=completed&q=1"),
        ("run", f"/runs/{run_id}"),
        ("run-tree", f"/runs/{family}"),
        ("workflows", "/workflows"),
        ("approvals", "/approvals"),
        ("events", "/events"),
        ("triggers", "/triggers"),
        ("connections", "/connections"),
        ("analytics", "/analytics?since=1h"),
        ("audit", "/audit?verify=1"),
        ("deploy", "/deploy"),
    ]:
        assert tab.goto(path).status == 200, path
        tab.shot(name)
    # A run id holding '/' has its page, and its tree lists the six runs below it.
    tab.goto(f"/runs/{family}")
    expect(tab.page.locator("h1")).to_contain_text("family")
    expect(tab.page.locator("ul.tree li")).to_have_count(7)
    tab.page.locator("ul.tree ul ul a").first.click()
    expect(tab.page.locator("ol.ancestors a").first).to_have_text(family)
    expect(tab.page.locator("main")).to_be_visible()
    tab.goto("/audit?verify=1")
    expect(tab.page.get_by_role("status")).to_contain_text("intact")
    assert elsewhere == []


def fetched_elsewhere(tab: Tab, server: Server) -> list[str]:
    """URLs the tab fetches from anywhere but the server (none: the UI works air-gapped)."""
    elsewhere: list[str] = []
    here = (server.url, "data:", "blob:")
    tab.page.on("request", lambda r: None if r.url.startswith(here) else elsewhere.append(r.url))
    return elsewhere


def test_api_docs__swagger_ui_and_redoc_from_the_server_alone(tab: Tab, server: Server) -> None:
    elsewhere = fetched_elsewhere(tab, server)
    tab.goto("/docs")
    expect(tab.page.locator(".swagger-ui .info")).to_contain_text("opsloom")
    # Swagger UI's own markup nests buttons and draws white on light badges.
    tab.shot("api-docs", tolerate=("nested-interactive", "color-contrast"))
    tab.goto("/redoc")
    expect(tab.page.locator(".api-info h1")).to_contain_text("opsloom")
    tab.shot("api-redoc")
    assert elsewhere == []


def test_keyboard__fields_have_labels_and_tab_reaches_the_content(tab: Tab) -> None:
    tab.goto("/signin")
    # The token field has the focus: type the token and press Enter, no mouse.
    tab.page.keyboard.type(ADMIN_TOKEN)
    tab.page.keyboard.press("Enter")
    expect(tab.page).to_have_url(re.compile(r"/runs$"))
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to content"
    tab.page.keyboard.press("Enter")
    assert tab.page.evaluate("document.activeElement.id") == "main"
    for path in ("/runs", "/workflows", "/approvals", "/events", "/deploy"):
        tab.goto(path)
        unlabelled = tab.page.evaluate(
            """() => [...document.querySelectorAll(
                'input:not([type=hidden]), select, textarea')]
              .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
              .map(el => el.name)"""
        )
        assert unlabelled == [], (path, unlabelled)
