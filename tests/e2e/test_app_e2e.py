"""The whole app in headless chromium: every tab's main path on the demo project, with screenshots.

The workspace is the demo project plus two tiny LMs (``tests/api/workspace.py``) so the jobs
finish in seconds on 2 CPU cores. One test walks the tabs in order, as a user would: build a
Tik-to-Tok map (a job) and click a point of the plot to see its entry, review it with the
keyboard, start a fine-tune comparison and cancel it, train a delta (a job) and run the arena,
then check the Jobs tab, also after a page reload. Screenshots of each tab go to
``tests/e2e/screenshots/app_*.png``.
"""

from __future__ import annotations

import pytest

from tests.api.workspace import prepare_demo

MAP_READY = "#token-map .tmp-root[data-ready]:not([data-ready=''])"
JOB_S = 240_000  # ms: generous, the machine is shared


@pytest.fixture
def app_url(tmp_path, launch_blocks, monkeypatch):
    from tokmap_ui.ui import build_app

    home = tmp_path / "workspace"
    monkeypatch.setenv("TOKMAP_HOME", str(home))
    demo = build_app(home, poll_s=1.0)
    prepare_demo(demo.tokmap_context.store, tmp_path / "models")
    return launch_blocks(demo)


def text_of(page, selector: str) -> str:
    return page.inner_text(selector)


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(300)


def fill_number(page, elem_id: str, value: str) -> None:
    box = page.locator(f"#{elem_id} input").first
    box.fill(value)
    box.press("Tab")


def wait_or_report(page, condition: str, shown: str, timeout: int = 60_000) -> None:
    """Wait for ``condition``; on a timeout fail with what ``shown`` displays, not a bare timeout."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"{condition} not reached in {timeout} ms; {shown} shows: {text_of(page, shown)!r}") \
            from None


def test_every_tab_on_the_demo_project(page, app_url, screenshot):
    page.goto(app_url)
    page.wait_for_function("document.querySelector('#summary-source')?.innerText?.includes('GPT2LMHeadModel')",
                           timeout=60_000)
    assert "nl-bpe" in page.input_value("#pick-target input")
    assert "en-nl" in text_of(page, "#summary-dictionary")
    screenshot(page, "app_project")

    # ---- Map & explore: build a map as a job; the timer opens it when done.
    open_tab(page, "Map & explore")
    page.click("#build-map")
    page.wait_for_function("document.querySelector('#map-status textarea')?.value?.includes('map job')")
    page.wait_for_selector(MAP_READY, timeout=JOB_S)
    assert "target tokens" in text_of(page, "#map-info")
    page.wait_for_function("document.querySelector('#coverage')?.innerText?.includes('dictionary')", timeout=30_000)
    # Click a target point with the real mouse, aimed with the plot's own axes.
    page.evaluate("document.querySelector('#token-map .tmp-plot').scrollIntoView({block: 'center'})")
    page.wait_for_timeout(500)
    target_row = page.evaluate("(() => { const s = document.querySelector('#token-map .tmp-plot').tokmap.state;"
                               " for (let i = s.n - 1; i >= 0; i--) if (s.sides[i] === 1 && s.ids[i] % 97 === 5)"
                               " return i; })()")
    page.mouse.click(*page.evaluate(f"document.querySelector('#token-map .tmp-plot').tokmap.pixelOf({target_row})"))
    page.wait_for_function("document.querySelector('#entry')?.innerText?.includes('token #')", timeout=15_000)
    clicked = int(page.evaluate("document.querySelector('#token-map .tmp-root').dataset.clicked"))
    side, token_id = page.evaluate(f"(() => {{ const s = document.querySelector('#token-map .tmp-plot').tokmap.state;"
                                   f" return [s.sides[{clicked}], s.ids[{clicked}]]; }})()")
    entry = text_of(page, "#entry")
    assert entry.startswith(f"{['source', 'target'][side]} token #{token_id}")
    assert "Nearest source tokens" in entry and "Nearest target tokens" in entry
    if side == 1:
        assert "status: auto" in entry and "Evidence" in entry

    # Search flies to a token and opens it.
    page.fill("#token-map .tmp-search", "target #7")
    page.press("#token-map .tmp-search", "Enter")
    page.wait_for_function("document.querySelector('#entry')?.innerText?.startsWith('target token #7')")

    # Review with the keyboard once the reviewer's name is given.
    page.fill("#reviewer-name textarea, #reviewer-name input", "e2e reviewer")
    page.click("#reviewer-set")
    page.wait_for_function("document.querySelector('#reviewer-who')?.innerText?.includes('e2e reviewer')")
    page.locator("#colour-by").get_by_label("review status").check()
    traces = "document.querySelector('#token-map .tmp-plot').data.map(t => t.name).join('|')"
    page.wait_for_function(f"{traces}.includes('auto (')")
    page.click("#map-info")  # focus outside any text field
    page.keyboard.press("f")
    page.wait_for_function("document.querySelector('#entry')?.innerText?.includes('status: flagged')")
    page.wait_for_function(f"{traces}.includes('flagged (1)')")  # the plot's colours follow the decision
    page.keyboard.press("u")
    page.wait_for_function("document.querySelector('#entry')?.innerText?.includes('status: auto')")
    page.wait_for_function(f"!{traces}.includes('flagged')")
    page.wait_for_function("document.querySelector('#review-queue')?.innerText?.includes('dictionary')")
    page.wait_for_function("document.querySelector('#review-progress')?.innerText?.includes('reviewed 0/16,000')")
    assert "a approve" in text_of(page, "#review-keys")
    screenshot(page, "app_map")

    # ---- Convert & fine-tune: one run, live curve, then cancel.
    open_tab(page, "Convert & fine-tune")
    for name in ("tiktotok", "random"):
        page.locator("#init-methods").get_by_label(name).uncheck()
    fill_number(page, "ft-steps", "20000")  # far more than can run before the cancel, even on a fast machine
    page.get_by_text("Training settings").click()
    page.get_by_label("Block (tokens)").fill("32")
    page.click("#ft-start")
    page.wait_for_function("document.querySelector('#ft-status textarea')?.value?.includes('fvt')")
    page.wait_for_function("document.querySelector('#ft-results')?.innerText?.match(/\\b[1-9]\\d*\\/20000\\b/)",
                           timeout=JOB_S)
    page.wait_for_timeout(2500)  # a few more steps for the curve
    screenshot(page, "app_finetune_running")
    page.click("#ft-cancel")
    page.wait_for_function("document.querySelector('#ft-status textarea')?.value?.includes('cancelled jobs')",
                           timeout=60_000)
    wait_or_report(page, "document.querySelector('#ft-results')?.innerText?.includes('cancelled')", "#ft-results")
    traces = page.evaluate("document.querySelector('#ft-curves .js-plotly-plot')._fullData"
                           ".map(t => [t.name, t._length])")
    assert len(traces) == 1 and traces[0][0].endswith("fvt") and traces[0][1] >= 2, traces
    screenshot(page, "app_finetune")

    # ---- Cross-model control: train a delta (job), compatibility, the arena.
    open_tab(page, "Cross-model control")
    fill_number(page, "cmc-steps", "6")
    page.click("#cmc-train")
    page.wait_for_function("document.querySelector('#cmc-status textarea, #cmc-status input')?.value"
                           "?.includes('succeeded')", timeout=JOB_S)
    page.get_by_role("button", name="PM-MinED compatibility report").click()
    page.wait_for_function("document.querySelector('#cmc-compat')?.innerText?.includes('tiny-llama')")
    page.click("#cmc-run")
    # two cards per host (alone, + delta); the demo project has the kit's hosts besides the test's
    page.wait_for_function("(() => { const c = [...document.querySelectorAll('#arena .arena-card')];"
                           " return c.length >= 4 && c.every(x => x.dataset.done === 'true'); })()",
                           timeout=120_000)
    page.wait_for_selector("#arena-shifts .shift-token")
    cards = page.locator("#arena .arena-card")
    assert cards.count() % 2 == 0
    assert {cards.nth(i).get_attribute("data-variant") for i in range(cards.count())} == {"host alone", "host + delta"}
    assert "most boosted" in text_of(page, "#arena-shifts")
    screenshot(page, "app_cmc")

    # ---- Jobs: all three jobs, details and log; still there after a reload.
    open_tab(page, "Jobs")
    page.wait_for_function("['map', 'compare-init', 'delta-train'].every("
                           "k => document.querySelector('#jobs-table')?.innerText?.includes(k))")
    fill_number(page, "jobs-id", "1")
    page.get_by_role("button", name="Show").click()
    page.wait_for_function("document.querySelector('#jobs-detail')?.innerText?.includes('explore-map')")
    screenshot(page, "app_jobs")
    page.reload()
    open_tab(page, "Jobs")
    page.wait_for_function("document.querySelector('#jobs-table')?.innerText?.includes('delta-train')")
    assert page.errors == []
