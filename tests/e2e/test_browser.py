"""The browser faces in real headless Chromium, against a real ``switchboard serve``.

The demo page's widget, the Chats view and a sub-agent's chat tab, driven the way a
person would: typing, clicking the chips, opening a second tab, losing the server.
Every test also holds the pages to "no console errors" and "no token in any URL".
Screenshots of the widget and of the Chats view are written to ``docs/screenshots``.
"""

from __future__ import annotations

import importlib.resources
import itertools
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Locator, Page, async_playwright, expect

from server.auth import issue_token

from .conftest import ROOT, ServerProcess, headers

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"

# Long enough for background work to be seen running (a call takes about 1.5 s).
RUNNING_SCALE = "0.5"

HOURS = "What are your opening hours?"
OUTREACH = "Reach every patient who hasn't completed onboarding"
ROLLUP = (
    "Agent 1 called Alice — she's getting back to us today. "
    "Agent 2 left a voicemail for Bob. "
    "Agent 3 learned that Carol has moved and no longer needs services."
)
PRIOR_AUTH = "Start a prior authorization for Ozempic for Dana"
TERMINAL_STATES = ("completed", "failed", "cancelled", "interrupted")

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

expect.set_options(timeout=20_000)


@dataclass
class Browsing:
    """Browser contexts (one per person) that record console errors and request URLs."""

    browser: Browser
    server: ServerProcess
    errors: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    contexts: list[BrowserContext] = field(default_factory=list)

    async def person(self, **options: Any) -> BrowserContext:
        """A new browser profile: its own storage, so its own demo person."""
        context = await self.browser.new_context(base_url=self.server.http, **options)
        context.on("console", self._console)
        context.on("weberror", lambda error: self.errors.append(f"page error: {error.error}"))
        context.on("request", lambda request: self.urls.append(request.url))
        self.contexts.append(context)
        return context

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def assert_clean(self, *, allowed: tuple[str, ...] = ()) -> None:
        """No console error (but the *allowed* ones), and no credential in a URL."""
        errors = [e for e in self.errors if not any(a in e for a in allowed)]
        assert errors == []
        assert self.urls, "the browser made no request at all"
        for url in self.urls:
            # A JWT starts with the base64 of '{"' ("eyJ"); none may travel in a URL.
            assert "eyJ" not in url, url
            assert "token=" not in url.lower(), url


@pytest.fixture
def chromium() -> Path:
    """Chromium's path; skips without it, and fails instead under ``CI=true``."""
    if not CHROMIUM.exists():
        reason = f"Chromium is not installed at {CHROMIUM}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires the browser tests to run")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def browsing_for(browser: Browser, server: ServerProcess) -> Browsing:
    return Browsing(browser, server)


# -- the widget, seen from the page ------------------------------------------------------


def widget(page: Page) -> Locator:
    return page.locator("switchboard-chat")


def messages(page: Page, **attributes: str) -> Locator:
    selector = "".join(
        f'[data-{key.replace("_", "-")}="{value}"]' for key, value in attributes.items()
    )
    return widget(page).locator(f"li.msg{selector}")


def chips(page: Page) -> Locator:
    return widget(page).locator("li.chip[data-task-id]")


async def open_demo(context: BrowserContext) -> Page:
    page = await context.new_page()
    await page.goto("/")
    await expect(widget(page).locator(".status")).to_have_attribute("data-state", "open")
    return page


async def say(page: Page, text: str) -> None:
    box = widget(page).locator("textarea")
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")


async def page_token(page: Page) -> str:
    token = await page.evaluate("localStorage.getItem('switchboard.token')")
    assert isinstance(token, str)
    assert token
    return token


async def shown_seqs(page: Page) -> list[int]:
    seqs = await messages(page).evaluate_all("nodes => nodes.map(n => n.dataset.seq ?? null)")
    assert None not in seqs, "a message is still waiting for the server"
    return [int(seq) for seq in seqs]


async def stored_events(server: ServerProcess, token: str, conversation_id: str) -> list[Any]:
    async with httpx.AsyncClient(base_url=server.http) as client:
        answer = await client.get(
            f"/v1/conversations/{conversation_id}/events",
            params={"after": 0, "limit": 1000},
            headers=headers(token),
        )
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


async def screenshot(page: Page, name: str) -> None:
    """Take the screenshot; it replaces the committed one only when asked to
    (``SWITCHBOARD_UPDATE_SCREENSHOTS=1``), so that test runs leave the tree clean."""
    await page.evaluate("window.scrollTo(0, 0)")
    image = await page.screenshot()
    assert image[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("SWITCHBOARD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / name).write_bytes(image)


# -- tests ---------------------------------------------------------------------------------


AXE = importlib.resources.files("axe_playwright_python") / "axe.min.js"
"""axe-core (MPL-2.0), as the ``axe-playwright-python`` wheel carries it: nothing fetched."""
AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


async def axe_violations(page: Page) -> list[str]:
    """What axe-core finds on *page* (its shadow roots included), one line a node."""
    await page.evaluate(AXE.read_text())
    found = await page.evaluate(
        "rules => axe.run(document, {runOnly: {type: 'tag', values: rules}})", AXE_RULES
    )
    return [
        f"{v['id']} ({v['impact']}): {node['target']}: {node.get('failureSummary', '')}"
        for v in found["violations"]
        for node in v["nodes"]
    ]


@pytest.mark.browser
@pytest.mark.parametrize(
    ("width", "height", "scheme"), [(1280, 800, "light"), (390, 844, "light"), (1280, 800, "dark")]
)
async def test_the_demo_page_the_chats_view_and_a_sub_agent_chat_pass_axe(
    browser: Browser, server_factory: Any, width: int, height: int, scheme: str
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    # The pages forbid inline script (CSP): axe is evaluated through the browser's
    # own debugging channel instead, so the policy stays as served.
    context = await browsing.person(
        viewport={"width": width, "height": height}, color_scheme=scheme, bypass_csp=True
    )
    page = await open_demo(context)
    await say(page, PRIOR_AUTH)
    await expect(chips(page)).to_have_count(1)
    await expect(messages(page, role="agent", kind="reply")).to_have_count(1)
    assert await axe_violations(page) == []

    async with context.expect_page() as opened:
        await chips(page).locator("a.chip-open").click()
    tab = await opened.value
    await expect(widget(tab).locator(".status")).to_have_attribute("data-state", "open")
    await expect(messages(tab).first).to_be_visible()
    assert await axe_violations(tab) == []

    chats = await context.new_page()
    await chats.goto("/chats")
    await expect(chats.locator("li.task-chat")).to_have_count(1)
    assert await axe_violations(chats) == []
    await chats.locator("li.task-chat a.chat-link").click()
    await expect(widget(chats).locator(".status")).to_have_attribute("data-state", "open")
    await expect(messages(chats, kind="step").first).to_be_visible()
    assert await axe_violations(chats) == []
    browsing.assert_clean()


@pytest.mark.browser
@pytest.mark.model
async def test_a_reply_streams_into_the_widget_as_a_real_model_writes_it(
    browser: Browser, server_factory: Any, local_model_url: str
) -> None:
    from server.local_model import MODEL_NAME

    server = server_factory(
        SWITCHBOARD_LLM_URL=local_model_url,
        SWITCHBOARD_LLM_MODEL=MODEL_NAME,
        SWITCHBOARD_LLM_JSON="true",
    )
    browsing = browsing_for(browser, server)
    page = await open_demo(await browsing.person())
    # Every text a reply being written showed, in order, as the page rendered it.
    await page.evaluate(
        """() => {
          const root = document.querySelector("switchboard-chat").shadowRoot;
          window.streamed = [];
          new MutationObserver(() => {
            for (const node of root.querySelectorAll("li.msg.streaming .text")) {
              const text = node.textContent;
              if (window.streamed.at(-1) !== text) window.streamed.push(text);
            }
          }).observe(root, { subtree: true, childList: true, characterData: true });
        }"""
    )
    await say(page, PRIOR_AUTH)
    reply = messages(page, role="agent", kind="reply").first
    await expect(reply).to_have_attribute("data-seq", re.compile(r"^\d+$"), timeout=60_000)
    final = (await reply.locator(".text").text_content() or "").strip()
    streamed: list[str] = await page.evaluate("window.streamed")
    assert len(streamed) >= 2, streamed  # shown piece by piece, not at once
    for shorter, longer in itertools.pairwise(streamed):
        assert longer.startswith(shorter), (shorter, longer)
    assert streamed[-1].strip() == final
    # The stored message took the preview's place: nothing is left half-written.
    await expect(widget(page).locator("li.msg.streaming")).to_have_count(0)
    await expect(messages(page, role="agent", kind="reply")).to_have_count(1)
    browsing.assert_clean()


@pytest.mark.browser
async def test_a_question_is_answered_and_the_widget_is_keyboard_usable(
    browser: Browser, server: ServerProcess
) -> None:
    browsing = browsing_for(browser, server)
    page = await open_demo(await browsing.person())
    await expect(widget(page).locator("ol.messages")).to_have_attribute("aria-live", "polite")

    # Keyboard only: focus the box, type, Enter sends; Tab reaches the Send button.
    box = widget(page).locator("textarea")
    await box.focus()
    await page.keyboard.type(HOURS)
    await page.keyboard.press("Enter")
    await expect(messages(page, role="user").locator(".text")).to_have_text([HOURS])
    answer = messages(page, role="agent", kind="reply")
    await expect(answer).to_have_count(1)
    await expect(answer).to_contain_text("Monday to Friday")
    assert await shown_seqs(page) == sorted(set(await shown_seqs(page)))

    await box.focus()
    await page.keyboard.press("Tab")
    focused = await page.evaluate(
        "() => { const a = document.activeElement.shadowRoot?.activeElement;"
        " return a ? [a.className, getComputedStyle(a).outlineStyle] : null; }"
    )
    assert focused == ["send", "solid"], focused

    # A suggested prompt is typed into the box, not sent behind the person's back.
    await page.get_by_role("button", name=PRIOR_AUTH).click()
    await expect(box).to_have_value(PRIOR_AUTH)
    await expect(messages(page, role="user")).to_have_count(1)
    browsing.assert_clean()


async def focused_in_widget(page: Page, selector: str = "*") -> str | None:
    """The outline style of what has the focus inside the widget, if it matches
    *selector*; ``None`` if nothing there has it, or something else does."""
    found = await page.evaluate(
        "selector => { const a = document.activeElement?.shadowRoot?.activeElement;"
        " return a && a.matches(selector) ? getComputedStyle(a).outlineStyle : null; }",
        selector,
    )
    return None if found is None else str(found)


async def tab_to(page: Page, selector: str, *, presses: int = 40) -> None:
    """Press Tab until the focus is on the widget's element matching *selector*; its
    focus ring must show."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        outline = await focused_in_widget(page, selector)
        if outline is not None:
            assert outline != "none", f"{selector} has the focus but shows no ring"
            return
    raise AssertionError(f"Tab never reached {selector}")


@pytest.mark.browser
async def test_the_prior_auth_story_by_keyboard_alone(
    browser: Browser, server_factory: Any
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE="2")
    browsing = browsing_for(browser, server)
    context = await browsing.person()
    page = await open_demo(context)
    await tab_to(page, "textarea")
    await page.keyboard.type(PRIOR_AUTH)
    await page.keyboard.press("Enter")
    chip = chips(page)
    await expect(chip).to_have_count(1)
    await expect(chip).to_have_attribute("data-state", re.compile("submitted|working"))

    # The sub-agent's chat, opened from the card with Enter, in a new tab.
    await tab_to(page, ".chip-open")
    async with context.expect_page() as opened:
        await page.keyboard.press("Enter")
    tab = await opened.value
    await expect(tab.locator("#title")).to_have_text("Prior auth: Ozempic for Dana W.")
    await tab.close()

    # A status question, typed; then the work cancelled from its card.
    await page.bring_to_front()
    await tab_to(page, "textarea")
    await page.keyboard.type("How is Dana's prior auth going?")
    await page.keyboard.press("Enter")
    await expect(messages(page, role="agent", kind="reply")).to_have_count(2)
    await tab_to(page, ".chip-cancel")
    await page.keyboard.press("Enter")
    await expect(chip).to_have_attribute("data-state", "cancelled")
    assert await focused_in_widget(page) is not None  # the focus was not lost
    browsing.assert_clean()


@pytest.mark.browser
async def test_the_widget_reads_on_a_phone(browser: Browser, server: ServerProcess) -> None:
    browsing = browsing_for(browser, server)
    context = await browsing.person(viewport={"width": 390, "height": 844}, has_touch=True)
    page = await open_demo(context)
    box = widget(page).locator("textarea")
    # 16px inputs: phones do not zoom into them.
    assert await box.evaluate("b => getComputedStyle(b).fontSize") == "16px"
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    await say(page, HOURS)
    await expect(messages(page, role="agent")).to_contain_text(["Monday to Friday"])
    bubble = await messages(page, role="agent").first.bounding_box()
    assert bubble is not None
    assert bubble["x"] >= 0
    assert bubble["x"] + bubble["width"] <= 390
    browsing.assert_clean()


@pytest.mark.browser
@pytest.mark.timeout(90)
async def test_outreach_chips_go_from_working_to_completed_then_the_roll_up(
    browser: Browser, server_factory: Any
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    context = await browsing.person(viewport={"width": 1280, "height": 1000})
    page = await open_demo(context)
    # The Chats view is open before the work starts: what it shows next comes live.
    chats = await context.new_page()
    await chats.goto("/chats")
    await expect(chats.locator('li.conversation[data-kind="conversation"]')).to_have_count(1)
    await expect(chats.locator("li.task-chat")).to_have_count(0)

    await page.get_by_role("button", name=OUTREACH).click()
    await widget(page).locator("textarea").press("Enter")
    await expect(chips(page)).to_have_count(3)
    await expect(chips(page).and_(page.locator('[data-state="working"]'))).to_have_count(3)
    await expect(chips(page).locator(".chip-cancel")).to_have_count(3)
    await expect(chats.locator("li.task-chat")).to_have_count(3)

    await expect(chips(page).and_(page.locator('[data-state="completed"]'))).to_have_count(3)
    await expect(chips(page).locator(".chip-cancel")).to_have_count(0)
    followup = messages(page, kind="followup")
    await expect(followup).to_have_count(1)
    await expect(followup.locator(".text")).to_have_text(ROLLUP)
    await expect(followup.locator(".badge")).to_have_text("Update")
    await expect(chats.locator('li.task-chat[data-state="completed"]')).to_have_count(3)
    # Started in one go, so no order among them; each links to its own chat.
    links = chats.locator("li.task-chat a.chat-link")
    assert sorted(await links.all_inner_texts()) == [
        "Call Alice M.",
        "Call Bob T.",
        "Call Carol S.",
    ]
    for href in await links.evaluate_all("links => links.map(a => a.getAttribute('href'))"):
        assert href.startswith("/chats/chat")
    await screenshot(page, "widget.png")
    await chats.bring_to_front()
    await screenshot(chats, "chats.png")
    browsing.assert_clean()


def chats_requests(browsing: Browsing) -> list[str]:
    """The HTTP requests for the chat list (``GET /v1/chats``): polling, if any."""
    return [u for u in browsing.urls if re.search(r"/v1/chats(\?|$)", u)]


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_the_chats_view_is_live_filters_marks_news_and_opens_a_chat_in_place(
    browser: Browser, server_factory: Any
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    context = await browsing.person(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = await open_demo(context)
    chats = await context.new_page()
    await chats.goto("/chats")
    await expect(chats.locator("#status")).to_have_attribute("data-state", "live")
    await expect(chats.locator('li.conversation[data-kind="conversation"]')).to_have_count(1)
    assert chats_requests(browsing) == []

    # A new task appears within a second of its card in the widget, with no request.
    await say(page, PRIOR_AUTH)
    await expect(chips(page)).to_have_count(1)
    started = anyio.current_time()
    task_chat = chats.locator("li.task-chat")
    await expect(task_chat).to_have_count(1, timeout=5_000)
    took = anyio.current_time() - started
    assert took < 1.0, f"the Chats view showed the task {took:.2f} s after the widget"
    await expect(task_chat).to_have_attribute("data-state", "working")
    # Never opened: it has news.
    await expect(task_chat).to_have_attribute("data-unread", "true")
    await expect(task_chat.locator(".unread")).to_be_visible()

    # Filters: a working task is under Running, not under Done.
    await chats.get_by_role("radio", name=re.compile(r"^Done")).check()
    await expect(task_chat).to_have_count(0)
    await expect(chats.locator("#no-match")).to_be_visible()
    await chats.get_by_role("radio", name=re.compile(r"^Running")).check()
    await expect(task_chat).to_have_count(1)
    await expect(chats.get_by_role("radio", name=re.compile(r"^Running"))).to_be_checked()
    # Search: by title, or nothing.
    await chats.get_by_label("Search chats").fill("no such thing")
    await expect(task_chat).to_have_count(0)
    await chats.get_by_label("Search chats").fill("ozempic")
    await expect(task_chat).to_have_count(1)
    await chats.get_by_label("Search chats").fill("")
    await chats.get_by_role("radio", name=re.compile(r"^All")).check()

    # Opened with the keyboard, in place: the same page, the panel shows the sub-agent.
    pages_before = len(context.pages)
    link = task_chat.locator("a.chat-link")
    await link.focus()
    await chats.keyboard.press("Enter")
    panel = chats.locator("#panel")
    await expect(panel).to_be_visible()
    assert chats.url == f"{server.http}/chats"
    assert len(context.pages) == pages_before
    await expect(chats.locator("#panel-title")).to_be_focused()
    await expect(chats.locator("#panel-title")).to_have_text("Prior auth: Ozempic for Dana W.")
    await expect(widget(chats).locator(".status")).to_have_attribute("data-state", "open")
    await expect(task_chat).to_have_attribute("data-unread", "false")
    # The sub-agent's steps, each with its time; the owner's controls are there.
    step = messages(chats, kind="step", action="tool.called")
    await expect(step).to_have_count(1)
    await expect(step.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-"))
    await expect(widget(chats).locator("textarea")).to_be_visible()
    assert await axe_violations(chats) == []
    await screenshot(chats, "chats-open.png")

    # While it is open its news is read; closed, later news marks it again.
    await chats.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    await expect(link).to_be_focused()
    await expect(task_chat).to_have_attribute("data-state", "completed", timeout=60_000)
    await expect(task_chat).to_have_attribute("data-unread", "true")
    await chats.get_by_role("radio", name=re.compile(r"^Done")).check()
    await expect(task_chat).to_have_count(1)

    # A reload keeps what was read: the marker comes from this browser's storage.
    await link.click()
    await expect(task_chat).to_have_attribute("data-unread", "false")
    await chats.reload()
    await expect(chats.locator("li.task-chat")).to_have_attribute("data-unread", "false")
    assert chats_requests(browsing) == [], "the Chats view polled"
    browsing.assert_clean()


@pytest.mark.browser
async def test_a_sub_agent_chat_opens_in_a_new_tab_and_runs_live(
    browser: Browser, server_factory: Any
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    context = await browsing.person()
    page = await open_demo(context)
    await say(page, PRIOR_AUTH)
    chip = chips(page)
    await expect(chip).to_have_count(1)
    link = chip.locator("a.chip-open")
    await expect(link).to_have_attribute("target", "_blank")

    async with context.expect_page() as opened:
        await link.click()
    tab = await opened.value
    assert tab.url.startswith(f"{server.http}/chats/chat")
    await expect(widget(tab).locator(".status")).to_have_attribute("data-state", "open")
    await expect(tab.locator("#title")).to_have_text("Prior auth: Ozempic for Dana W.")
    await expect(tab.locator("#state")).to_have_attribute("data-state", "working")
    # History first: what the sub-agent was asked to do.
    await expect(messages(tab).first).to_contain_text("prior authorization for Ozempic")
    before = await messages(tab).count()

    # The owner instructs the sub-agent from its tab.
    await say(tab, "Mark it urgent")
    await expect(messages(tab, role="user").last).to_contain_text("Mark it urgent")

    # Then the work finishes while the tab watches.
    await expect(tab.locator("#state")).to_have_attribute("data-state", "completed")
    await expect(messages(tab, role="agent").filter(has_text="Approved")).to_have_count(1)
    # Acknowledged once, when it arrived (the payer honouring it is timing-dependent
    # here; tests/agents/test_live_instructions.py checks it deterministically).
    await expect(
        messages(tab, role="agent").filter(has_text="Noted: mark it urgent")
    ).to_have_count(1)
    assert await messages(tab).count() > before + 1
    await expect(widget(tab).locator("textarea")).to_be_disabled()
    seqs = await shown_seqs(tab)
    assert seqs == sorted(set(seqs))
    # The conversation heard about it too, instruction included.
    await expect(messages(page, kind="followup")).to_contain_text(["approved"])
    browsing.assert_clean()


@pytest.mark.browser
async def test_a_task_is_cancelled_from_its_chip(browser: Browser, server_factory: Any) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    page = await open_demo(await browsing.person())
    await say(page, PRIOR_AUTH)
    chip = chips(page)
    await expect(chip).to_have_attribute("data-state", "working")
    await chip.get_by_role("button", name="Cancel: Prior auth: Ozempic for Dana W.").click()
    await expect(chip).to_have_attribute("data-state", "cancelled")
    await expect(chip.locator(".chip-state")).to_have_text("Cancelled")
    await expect(chip.locator(".chip-cancel")).to_have_count(0)

    # The server agrees, and nothing about it changes afterwards.
    token = await page_token(page)
    conversation_id = await widget(page).get_attribute("conversation-id")
    async with httpx.AsyncClient(base_url=server.http) as client:
        answer = await client.get(
            "/v1/tasks", params={"conversation_id": conversation_id}, headers=headers(token)
        )
    assert [task["state"] for task in answer.json()["tasks"]] == ["cancelled"]
    await anyio.sleep(3)  # past when the payer would have answered
    await expect(chip).to_have_attribute("data-state", "cancelled")
    browsing.assert_clean()


@pytest.mark.browser
async def test_the_owner_cancels_from_the_sub_agent_chat_tab(
    browser: Browser, server_factory: Any
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    context = await browsing.person()
    page = await open_demo(context)
    await say(page, PRIOR_AUTH)
    await expect(chips(page)).to_have_attribute("data-state", "working")
    tab = await context.new_page()
    await tab.goto(await chips(page).locator("a.chip-open").get_attribute("href") or "")
    await expect(tab.locator("#state")).to_have_attribute("data-state", "working")
    await widget(tab).get_by_role("button", name="Cancel: Prior auth: Ozempic for Dana W.").click()
    await expect(tab.locator("#state")).to_have_attribute("data-state", "cancelled")
    await expect(tab.locator("#state")).to_have_text("Cancelled")
    await expect(widget(tab).locator("textarea")).to_be_disabled()
    # The conversation's chip follows.
    await expect(chips(page)).to_have_attribute("data-state", "cancelled")
    browsing.assert_clean()


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_the_widget_comes_back_after_a_restart_without_gaps_or_duplicates(
    browser: Browser, server_factory: Any
) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    page = await open_demo(await browsing.person())
    status = widget(page).locator(".status")
    await say(page, HOURS)
    await expect(messages(page, role="agent")).to_have_count(1)
    await say(page, PRIOR_AUTH)
    chip = chips(page)
    await expect(chip).to_have_attribute("data-state", "working")

    # SIGTERM: the server closes the socket with 1001; the task is stopped and stored
    # while the widget is away, so what it shows next can only come from the resume.
    await anyio.to_thread.run_sync(server.stop)
    await expect(status).to_have_attribute("data-state", "reconnecting")
    await expect(status).to_have_text("Reconnecting…")
    await anyio.to_thread.run_sync(server.start)  # same port, same database
    await expect(status).to_have_attribute("data-state", "open", timeout=30_000)

    token = await page_token(page)
    conversation_id = await widget(page).get_attribute("conversation-id")
    assert conversation_id
    async with httpx.AsyncClient(base_url=server.http) as client:
        answer = await client.get(
            "/v1/tasks", params={"conversation_id": conversation_id}, headers=headers(token)
        )
    (task,) = answer.json()["tasks"]
    assert task["state"] in TERMINAL_STATES
    await expect(chip).to_have_attribute("data-state", task["state"])

    # The conversation goes on over the new socket.
    await say(page, HOURS)
    await expect(messages(page, role="agent", kind="reply")).to_contain_text(
        ["Monday to Friday", "prior authorization", "Monday to Friday"]
    )

    # Every stored message is shown exactly once, in order; none is missing.
    events = await stored_events(server, token, conversation_id)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    stored = [event["seq"] for event in events if event["type"] == "message"]
    await expect(messages(page)).to_have_count(len(stored))
    assert await shown_seqs(page) == stored
    # The browser reports each refused connection attempt while the server is down.
    browsing.assert_clean(allowed=("WebSocket connection to", "ERR_CONNECTION_REFUSED"))


@pytest.mark.browser
async def test_a_second_window_takes_the_conversation_over(
    browser: Browser, server: ServerProcess
) -> None:
    browsing = browsing_for(browser, server)
    context = await browsing.person()
    first = await open_demo(context)
    await say(first, HOURS)
    await expect(messages(first, role="agent")).to_have_count(1)

    # Same person, same conversation: one live connection, the newest one (4409).
    second = await open_demo(context)
    await expect(messages(second, role="agent")).to_have_count(1)
    status = widget(first).locator(".status")
    await expect(status).to_have_attribute("data-state", "closed")
    await expect(status).to_have_attribute("data-code", "4409")
    await expect(status).to_have_text("This conversation is open in another window.")
    await anyio.sleep(2)  # it stays stopped: no reconnecting tug of war
    await expect(status).to_have_attribute("data-state", "closed")

    await widget(first).get_by_role("button", name="Use here").click()
    await expect(status).to_have_attribute("data-state", "open")
    await expect(widget(second).locator(".status")).to_have_attribute("data-code", "4409")
    await say(first, HOURS)
    await expect(messages(first, role="agent")).to_have_count(2)
    assert await shown_seqs(first) == [1, 2, 3, 4]
    browsing.assert_clean()


@pytest.mark.browser
async def test_a_refused_token_is_replaced_and_the_conversation_resumes(
    browser: Browser, server: ServerProcess
) -> None:
    browsing = browsing_for(browser, server)
    page = await open_demo(await browsing.person())
    await say(page, HOURS)
    await expect(messages(page, role="agent")).to_have_count(1)
    sub = await page.evaluate("localStorage.getItem('switchboard.sub')")
    forged = issue_token(
        "not-the-servers-secret-0123456789abcdef", workspace="demo", sub=sub, role="person"
    )
    await page.evaluate(f"localStorage.setItem('switchboard.token', {forged!r})")

    # The socket refuses it (4401); the page gets a new token and carries on.
    await page.context.add_init_script(
        "window.closes = [];"
        "addEventListener('switchboard-close', (e) => window.closes.push(e.detail.code));"
    )
    await page.reload()
    await expect(widget(page).locator(".status")).to_have_attribute("data-state", "open")
    await expect(messages(page, role="agent")).to_have_count(1)
    assert await page_token(page) != forged
    assert await page.evaluate("window.closes") == [4401]
    await say(page, HOURS)
    await expect(messages(page, role="agent")).to_have_count(2)
    assert await shown_seqs(page) == [1, 2, 3, 4]
    browsing.assert_clean()


@pytest.mark.browser
async def test_another_person_sees_not_found(browser: Browser, server: ServerProcess) -> None:
    browsing = browsing_for(browser, server)
    owner = await open_demo(await browsing.person())
    await say(owner, PRIOR_AUTH)
    await expect(chips(owner)).to_have_count(1)
    href = await chips(owner).locator("a.chip-open").get_attribute("href")
    assert href is not None
    chat_path = href.removeprefix(server.http)
    assert chat_path.startswith("/chats/")

    # Another browser profile is another demo person.
    stranger = await (await browsing.person()).new_page()
    await stranger.goto(chat_path)
    not_found = stranger.locator("p.not-found")
    await expect(not_found).to_be_visible()
    await expect(not_found).to_have_text("not found")
    await expect(widget(stranger)).to_be_hidden()
    await expect(stranger.get_by_text("Prior auth")).to_have_count(0)
    assert await page_token(stranger) != await page_token(owner)

    # Not in their Chats view either, and a made-up id looks exactly the same.
    await stranger.goto("/chats")
    await expect(stranger.locator("#empty")).to_be_visible()
    await expect(stranger.locator("li.task-chat")).to_have_count(0)
    await stranger.goto("/chats/chat_doesnotexist0000000000")
    await expect(stranger.locator("p.not-found")).to_have_text("not found")
    browsing.assert_clean()


async def test_demo_tokens_only_in_demo_mode(server_factory: Any) -> None:
    demo = server_factory()
    async with httpx.AsyncClient(base_url=demo.http) as client:
        first = await client.post("/demo/token", json={})
        assert first.status_code == 200
        body = first.json()
        assert body["workspace"] == "demo"
        assert body["sub"].startswith("demo-")
        again = await client.post("/demo/token", json={"sub": body["sub"], "name": "Pat"})
        assert again.json()["sub"] == body["sub"]
        chats = await client.get("/v1/chats", headers=headers(again.json()["token"]))
        assert chats.status_code == 200
        # Only a sub of the demo's own shape: never an arbitrary principal.
        assert (await client.post("/demo/token", json={"sub": "pat"})).status_code == 400
        assert (await client.post("/demo/token", content=b"[1]")).status_code == 400
        page = await client.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text
        assert (await client.get("/static/widget.js")).status_code == 200
    await anyio.to_thread.run_sync(demo.stop)

    production = server_factory(SWITCHBOARD_SECRET="a-real-secret-that-is-long-enough-0123456789")
    async with httpx.AsyncClient(base_url=production.http) as client:
        assert (await client.post("/demo/token", json={})).status_code == 404
        assert (await client.get("/chats")).status_code == 200


# -- the three stories, on a desktop and on a phone ----------------------------------------
#
# Each is held to what makes the page usable: the message area keeps a usable height
# however many cards there are, nothing overflows sideways, the cards never slide under
# the message box, the conversation keeps at most one progress line per task, and a
# research result shows its structure. The screenshots in docs/screenshots come from here.

RESEARCH = "Look up and cross-reference the records for Dana, Evan, Farah, Gus and Hana"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
USABLE_LOG_PX = 160


async def check_layout(page: Page, width: int) -> None:
    """The message area stays usable and every card is above the message box."""
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    root = widget(page)
    log = await root.locator(".log").bounding_box()
    composer = await root.locator("form.composer").bounding_box()
    assert log is not None
    assert composer is not None
    assert log["height"] >= USABLE_LOG_PX, log
    assert log["x"] >= 0
    assert log["x"] + log["width"] <= width + 0.5
    tasks = root.locator("details.tasks")
    if await tasks.is_visible():
        box = await tasks.bounding_box()
        assert box is not None
        # The cards' box ends where the message box begins: never behind it.
        assert box["y"] + box["height"] <= composer["y"] + 0.5, (box, composer)
        assert box["y"] >= log["y"] + log["height"] - 0.5, (box, log)


async def at_most_one_progress_line_per_task(page: Page) -> None:
    ids = await messages(page, kind="progress").evaluate_all(
        "nodes => nodes.map(n => n.dataset.taskId ?? '')"
    )
    assert len(ids) == len(set(ids)), ids


@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.timeout(120)
async def test_outreach_story(browser: Browser, server_factory: Any, viewport: str) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    size = VIEWPORTS[viewport]
    page = await open_demo(await browsing.person(viewport=size, has_touch=viewport == "phone"))
    await say(page, OUTREACH)
    await expect(chips(page)).to_have_count(3)
    await expect(chips(page).locator(".chip-agent").first).not_to_be_empty()
    await expect(chips(page).locator(".chip-elapsed").first).to_have_text(re.compile(r"^\d+ s$"))
    await check_layout(page, size["width"])
    await expect(chips(page).and_(page.locator('[data-state="completed"]'))).to_have_count(3)
    await expect(messages(page, kind="followup")).to_have_count(1)
    await at_most_one_progress_line_per_task(page)
    await check_layout(page, size["width"])
    await screenshot(page, f"outreach-{viewport}.png")
    browsing.assert_clean()


@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.timeout(120)
async def test_prior_auth_story(browser: Browser, server_factory: Any, viewport: str) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    size = VIEWPORTS[viewport]
    page = await open_demo(await browsing.person(viewport=size, has_touch=viewport == "phone"))
    await say(page, PRIOR_AUTH)
    card = chips(page)
    await expect(card).to_have_attribute("data-state", "working")
    await expect(card.locator(".chip-detail")).not_to_be_empty()
    await say(page, "What's happening with the Ozempic request?")
    await check_layout(page, size["width"])
    await expect(card).to_have_attribute("data-state", "completed")
    await expect(messages(page, kind="followup")).to_contain_text(["approved"])
    await at_most_one_progress_line_per_task(page)
    await screenshot(page, f"prior-auth-{viewport}.png")
    browsing.assert_clean()


@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
@pytest.mark.timeout(120)
async def test_research_story(browser: Browser, server_factory: Any, viewport: str) -> None:
    server = server_factory(SWITCHBOARD_TOOL_LATENCY_SCALE=RUNNING_SCALE)
    browsing = browsing_for(browser, server)
    size = VIEWPORTS[viewport]
    page = await open_demo(await browsing.person(viewport=size, has_touch=viewport == "phone"))
    await say(page, RESEARCH)
    await expect(chips(page)).to_have_count(5)
    # Five cards: the message area still has room, the cards scroll in their own box.
    await check_layout(page, size["width"])
    await expect(chips(page).and_(page.locator('[data-state="completed"]'))).to_have_count(5)
    # Many cards: the ended ones fold to a line each.
    await expect(chips(page).and_(page.locator('[data-folded="true"]'))).to_have_count(5)
    followup = messages(page, kind="followup")
    await expect(followup).to_have_count(1)
    # The cross-referenced summary is structured: a list, not a block of text.
    await expect(followup.locator(".text ul > li").first).to_be_visible()
    assert await followup.locator(".text ul > li").count() >= 3
    await at_most_one_progress_line_per_task(page)
    await check_layout(page, size["width"])
    await screenshot(page, f"research-{viewport}.png")


@pytest.mark.browser
async def test_the_widget_renews_its_token_through_the_host_pages_callback(
    browser: Browser, server: ServerProcess
) -> None:
    from server.settings import DEVELOPMENT_SECRET

    browsing = browsing_for(browser, server)
    page = await (await browsing.person()).new_page()
    minted: list[str] = []

    def mint(sub: str) -> str:
        # The host's backend: a short-lived token for its signed-in person.
        minted.append(
            issue_token(DEVELOPMENT_SECRET, workspace="demo", sub=sub, role="person", ttl=4)
        )
        return minted[-1]

    await page.expose_function("mintToken", mint)
    # A bare host page: the browser's own favicon request is no console error of ours.
    await page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    await page.goto("/healthz")
    await page.evaluate(
        """async () => {
          await import("/static/widget.js");
          window.closes = [];
          for (const [id, renews] of [["renewing", true], ["plain", false]]) {
            const chat = document.createElement("switchboard-chat");
            chat.id = id;
            chat.addEventListener(
              "switchboard-close", (e) => window.closes.push([id, e.detail.code]));
            if (renews) chat.tokenCallback = () => window.mintToken("host-" + id);
            chat.token = await window.mintToken("host-" + id);
            document.body.append(chat);
          }
        }"""
    )
    renewing, plain = page.locator("#renewing"), page.locator("#plain")
    for chat in (renewing, plain):
        await expect(chat.locator(".status")).to_have_attribute("data-state", "open")
    # Past two lives of a token: the one without a callback ends at its expiry (4401).
    await anyio.sleep(9)
    await expect(plain.locator(".status")).to_have_attribute("data-code", "4401")
    await expect(renewing.locator(".status")).to_have_attribute("data-state", "open")
    assert await page.evaluate("window.closes") == [["plain", 4401]]
    assert len(minted) >= 4  # two first tokens, and at least two renewals
    box = renewing.locator("textarea")
    await box.fill(HOURS)
    await box.press("Enter")
    answer = renewing.locator("li.msg[data-role='agent']")
    await expect(answer).to_contain_text("Monday to Friday")
    browsing.assert_clean()
