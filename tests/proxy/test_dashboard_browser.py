"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

One browser for the module, with a fresh profile; one proxy in front of the emulator. Each
test signs in through the page, watches the proxy's real state change (a 429 from the
emulator, requests, spend, a key made, used with the openai SDK and revoked) and checks the
page logged no console error, loaded nothing from elsewhere and kept no key in its URL,
storage or text. Screenshots of each view go to the test's directory, and to ``docs/img/``
with ``MODELYARD_DOCS_SCREENSHOTS=1`` (docs/dashboard.md shows them).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import pytest_asyncio
from modelyard.testing import Deployment, EmulatorServer, Faults

from .conftest import MASTER_KEY, azure, running_proxy

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
DOCS_IMG = Path(__file__).parents[2] / "docs" / "img"
# Read at import: the tests themselves run in a clean environment (modelyard_clean_env).
TO_DOCS = os.environ.get("MODELYARD_DOCS_SCREENSHOTS") == "1"
PRICES = {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}
HELLO = [{"role": "user", "content": "Hello there"}]
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """Debian's chromium, headless, with a profile of its own (a persistent context).

    Playwright's async API: its sync API keeps an event loop running in the test's thread,
    which the async fixtures of the other tests cannot share.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `./dev test` installs it (apt-get install chromium).")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        context = await p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1280, "height": 860}, service_workers="block",
        )  # fmt: skip
        try:
            yield context
        finally:
            await context.close()


@pytest.fixture(scope="module")
def dashboard(emulator_server: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A proxy with one model group of two deployments (priority 1 and 2) and a second group."""
    emulator = emulator_server.emulator
    for name in ("ui-east", "ui-west", "ui-mini"):
        emulator.add_deployment(Deployment(name, rpm=600, tpm=200_000))
    api_base = emulator_server.url
    entries = [("gpt-4o", "ui-east", 1), ("gpt-4o", "ui-west", 2), ("gpt-4o-mini", "ui-mini", None)]
    config = {
        "model_list": [
            {"model_name": group, "model_info": {"id": name},
             "litellm_params": {**azure(api_base, name), **PRICES, **({"order": order} if order else {})}}
            for group, name, order in entries
        ],
        "router_settings": {"num_retries": 1, "cooldown_time": 20},
        "modelyard_settings": {"store_path": str(tmp_path_factory.mktemp("store") / "store.db")},
    }  # fmt: skip
    with running_proxy(config) as proxy:
        yield proxy


class Watched:
    """A page with its console errors, the hosts it asked and the answers it got."""

    def __init__(self, page: Any, proxy: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        self.hosts: set[str] = set()
        self.responses: list[Any] = []
        self.answers: list[tuple[str, str]] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.hosts.add(re.sub(r"^(\w+://[^/]+).*$", r"\1", r.url)))
        page.on("response", lambda r: self.responses.append(r))
        page.on("dialog", lambda d: d.accept())
        self.url = proxy.url

    async def read(self) -> None:
        """Read the bodies of the answers seen so far."""
        while self.responses:
            response = self.responses.pop(0)
            try:
                self.answers.append((response.url, await response.text()))
            except Exception:  # a body the browser did not keep (a 304, a redirect)
                self.answers.append((response.url, ""))

    async def check(self, *secrets: str) -> None:
        """No console error, nothing from elsewhere, no key in the URL, storage, page or answers."""
        page = self.page
        await self.read()
        assert self.errors == []
        assert self.hosts == {self.url}
        assert MASTER_KEY not in page.url
        storage = await page.evaluate("() => JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])")
        assert storage == "[[],[]]"
        assert await page.evaluate("() => document.cookie") == ""  # the session cookie is HttpOnly
        cookie = next(c["value"] for c in await page.context.cookies() if c["name"] == "modelyard_ui")
        text = await page.content() + "".join(body for url, body in self.answers)
        for secret in (MASTER_KEY, cookie, *secrets):
            assert secret not in text


async def shot(page: Any, name: str, tmp_path: Path) -> None:
    await page.screenshot(path=str(tmp_path / f"dashboard-{name}.png"), full_page=True)
    if TO_DOCS:
        DOCS_IMG.mkdir(exist_ok=True)
        await page.screenshot(path=str(DOCS_IMG / f"dashboard-{name}.png"), full_page=True)


@pytest_asyncio.fixture(loop_scope="module")
async def ui(browser: Any, dashboard: Any) -> AsyncIterator[Watched]:
    """A new tab on ``/ui``, signed in through the sign-in form (or already, by the cookie)."""
    page = await browser.new_page()
    watched = Watched(page, dashboard)
    await page.goto(f"{dashboard.url}/ui")
    await page.wait_for_selector("#signin:not([hidden]), #nav:not([hidden])")
    if await page.locator("#signin-form").is_visible():
        await page.fill("#signin-key", MASTER_KEY)
        await page.click("#signin button[type=submit]")
    await page.wait_for_selector("#nav:not([hidden])")
    assert await page.input_value("#signin-key") == ""  # the key left the field at once
    yield watched
    await page.close()


def client(proxy: Any, key: str = MASTER_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)


async def test_sign_in_then_both_deployments_and_a_429_cooling_one_down(
    browser: Any, dashboard: Any, emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    page = await browser.new_page()
    watched = Watched(page, dashboard)
    await page.goto(f"{dashboard.url}/ui")
    await page.wait_for_selector("#signin-form")
    assert not await page.locator("#nav").is_visible() and not await page.locator("#view-deployments").is_visible()
    await page.fill("#signin-key", "sk-wrong-key-wrong-key-wrong")
    await shot(page, "signin", tmp_path)
    with client(dashboard) as c:
        c.chat.completions.create(model="gpt-4o", messages=HELLO)  # ui-east (priority 1)
        c.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    await page.fill("#signin-key", MASTER_KEY)
    await page.click("#signin button[type=submit]")
    group = page.locator("table[data-group='gpt-4o']")
    await group.wait_for()
    assert await group.locator("tr[data-deployment]").evaluate_all("rows => rows.map(r => r.dataset.deployment)") == ["ui-east", "ui-west"]
    east = group.locator("tr[data-deployment='ui-east']")
    assert await east.locator("[data-status]").get_attribute("data-status") == "healthy"
    assert await east.locator("meter").count() == 2  # requests and tokens left, as bars
    emulator_server.emulator.deployments["ui-east"].faults = Faults(script=[429], retry_after=20)
    with client(dashboard) as c:
        c.chat.completions.create(model="gpt-4o", messages=HELLO)  # ui-east answers 429, ui-west serves
    await east.locator("[data-status='cooling_down']").wait_for(timeout=5000)  # the page polls every 2 s
    assert re.fullmatch(r"1\d\.\d s|20\.0 s", await east.locator("td").nth(5).inner_text())
    assert await group.locator("tr[data-deployment='ui-west'] [data-status]").get_attribute("data-status") == "healthy"
    chat = page.locator("#plugins tbody tr", has_text="azure_chat")
    assert "modelyard-azure-chat" in await chat.inner_text() and await chat.locator("[class='badge loaded']").count() == 1
    await shot(page, "deployments", tmp_path)
    await watched.check()
    await page.close()


async def test_traffic_shows_requests_latency_and_errors(ui: Watched, dashboard: Any, emulator_server: EmulatorServer, tmp_path: Path) -> None:
    mini = emulator_server.emulator.deployments["ui-mini"]
    with client(dashboard) as c:
        for _ in range(12):
            c.chat.completions.create(model="gpt-4o", messages=HELLO)
        mini.faults = Faults(error_rate=1.0, error_status=500, latency=0.05)
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                c.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
        mini.faults = Faults()
        for _ in range(4):
            c.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    page = ui.page
    await page.click("nav a[data-view=traffic]")
    row = page.locator("#traffic-table tr[data-group='gpt-4o-mini']")
    # The newest second is still filling: the page shows it within one or two of its 2-second polls.
    await page.wait_for_function(
        "() => { const r = document.querySelector(\"#traffic-table tr[data-group='gpt-4o-mini']\");"
        " return r !== null && Number(r.cells[1].textContent) >= 6; }", timeout=8000,
    )  # fmt: skip
    await page.wait_for_function("() => document.querySelectorAll('#chart-rps canvas').length === 1")
    cells = await row.locator("td").all_inner_texts()
    assert int(cells[1]) >= 6 and float(cells[5].rstrip("%")) > 0  # two of its calls failed
    assert await page.locator("#chart-p99 canvas").count() == 1 and await page.locator("#chart-errors canvas").count() == 1
    await page.wait_for_timeout(300)
    await shot(page, "traffic", tmp_path)
    await ui.check()


async def test_spend_appears_after_requests(ui: Watched, dashboard: Any, tmp_path: Path) -> None:
    with client(dashboard) as c:
        for _ in range(3):
            c.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    page = ui.page
    await page.click("nav a[data-view=spend]")
    await page.locator("#spend-model tbody tr", has_text="gpt-4o-mini").wait_for(timeout=5000)
    total = await page.inner_text("#spend-total")
    assert re.search(r"Total \$0\.0\d+ over \d+ requests", total), total
    assert await page.locator("#spend-deployment tbody tr", has_text="ui-mini").count() == 1
    assert await page.locator("#spend-key tbody tr", has_text="master key").count() == 1
    assert await page.locator("#chart-spend canvas").count() == 1
    await page.click("#spend-form button[data-days='30']")
    await page.locator("#spend-day tbody tr").first.wait_for()
    await shot(page, "spend", tmp_path)
    await ui.check()


async def test_a_key_made_in_the_page_works_with_the_openai_sdk_until_revoked(ui: Watched, dashboard: Any, tmp_path: Path) -> None:
    page = ui.page
    await page.click("nav a[data-view=keys]")
    await page.fill("#team-alias", "search")
    await page.fill("#team-budget", "50")
    await page.click("#team-form button[type=submit]")
    await page.locator("#teams tbody tr", has_text="search").wait_for()
    await page.fill("#key-alias", "browser-app")
    await page.select_option("#key-team", label="search")
    await page.fill("#key-budget", "5")
    await page.click("#key-form button[type=submit]")
    await page.wait_for_selector("#new-key:not([hidden])")
    key = await page.inner_text("#new-key-value")
    assert key.startswith("sk-") and len(key) > 30
    row = page.locator("#keys tbody tr[data-key-alias='browser-app']")
    assert await row.locator("code").inner_text() == f"sk-...{key[-4:]}"
    with client(dashboard, key) as c:
        reply = c.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.choices[0].message.content
    await page.click("#new-key-done")
    assert await page.inner_text("#new-key-value") == "" and key not in await page.content()  # shown once
    await page.click("nav a[data-view=deployments]")
    await page.click("nav a[data-view=keys]")
    await row.locator("meter").wait_for()
    assert re.search(r"\$0\.0\d+ of \$5\.00", await row.locator("td").nth(4).inner_text())  # the call's cost against its budget
    await shot(page, "keys", tmp_path)
    await row.locator("button", has_text="Revoke").click()
    await row.wait_for(state="detached")
    with client(dashboard, key) as c, pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="gpt-4o-mini", messages=HELLO)
    await ui.read()
    ui.answers = [(url, body) for url, body in ui.answers if not (url.endswith("/ui/api/keys") and key in body)]
    assert len(ui.answers) > 3  # only the answer that made the key held it
    await ui.check(key)


async def test_sign_out_ends_the_session(ui: Watched, dashboard: Any) -> None:
    page = ui.page
    await ui.check()
    await page.click("#signout")
    await page.wait_for_selector("#signin-form")
    assert [c for c in await page.context.cookies() if c["name"] == "modelyard_ui"] == []
    status = await page.evaluate("async () => (await fetch('/ui/api/deployments')).status")
    assert status == 401
    await page.reload()
    await page.wait_for_selector("#signin-form")
    ui.errors = [e for e in ui.errors if "401" not in e]  # the fetch above, refused as it should be
    assert ui.errors == []
