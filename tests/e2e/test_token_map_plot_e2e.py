"""The token map plot in a real browser: draw, click a point, lasso a region, search, recolour.

Runs the standalone demo (``token_map_demo.demo_blocks``) with 2,000 + 2,000 synthetic points whose
landmarks are known: the lone target token 0 ("lonely") at (-25, -25) and an island of 25 target
tokens around (25, 25). Mouse events are real (``page.mouse``), aimed with the plot's own axes.
"""

from __future__ import annotations

import pytest

from tokmap_ui.ui.components.token_map_demo import ISLAND, demo_blocks

pytestmark = pytest.mark.e2e
N = 2000
READY = "#map .tmp-root[data-ready]:not([data-ready=''])"


def _textbox(page, elem_id: str) -> str:
    return page.eval_on_selector(f"#{elem_id} textarea, #{elem_id} input", "el => el.value")


def _lasso(page, corners: list[tuple[float, float]], steps: int = 8) -> None:
    """Drag a closed lasso through data-space corners."""
    pixels = [page.evaluate("([x, y]) => document.querySelector('#map .tmp-plot').tokmap.toPixel(x, y)", c)
              for c in corners]
    pixels.append(pixels[0])
    page.mouse.move(*pixels[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(pixels, pixels[1:]):
        for step in range(1, steps + 1):
            page.mouse.move(x0 + (x1 - x0) * step / steps, y0 + (y1 - y0) * step / steps)
    page.mouse.up()


@pytest.fixture
def demo_page(page, launch_blocks):
    page.goto(launch_blocks(demo_blocks(N)))
    page.wait_for_selector(READY, timeout=60_000)
    return page


def test_click_lasso_search_and_recolour(demo_page, screenshot):
    page = demo_page
    assert page.text_content("#map .tmp-status").startswith(f"{2 * N:,} points")
    names = page.evaluate("document.querySelector('#map .tmp-plot').data.map(t => t.name)")
    assert names[:2] == [f"source ({N:,})", f"target ({N:,})"]

    # Click the lone point: the Python handler's entry (label + neighbours) appears in the DOM.
    lonely = page.evaluate("document.querySelector('#map .tmp-plot').tokmap.pixelOf(%d)" % N)
    page.mouse.click(*lonely)
    page.wait_for_function("document.querySelector('#entry').innerText.includes('target #0')")
    entry = page.inner_text("#entry")
    assert "lonely" in entry and "nearest source" in entry and "nearest target" in entry

    # Lasso the island: exactly its 25 target tokens, the last 25 target ids.
    _lasso(page, [(22.5, 22.5), (27.5, 22.5), (27.5, 27.5), (22.5, 27.5)])
    page.wait_for_function("document.querySelector('#selection textarea').value.includes('selected')")
    selection = _textbox(page, "selection")
    assert selection.startswith(f"{ISLAND} points selected: 0 source, {ISLAND} target"), selection
    assert f"{N - ISLAND}" in selection  # first target id of the island
    screenshot(page, "token_map_plot_lasso")

    # A click in lasso mode also fires an empty plotly_selected: it must not wipe the selection.
    page.mouse.click(*lonely)
    page.wait_for_timeout(1500)
    assert _textbox(page, "selection") == selection

    # Search a token: Python resolves it, the plot centres on it and rings it.
    page.fill("#map .tmp-search", "island_3")
    page.press("#map .tmp-search", "Enter")
    page.wait_for_function("document.querySelector('#search-result textarea').value.startsWith('found')")
    assert _textbox(page, "search-result") == f"found target #{N - ISLAND + 3}"
    page.wait_for_function("document.querySelector('#map .tmp-root').dataset.focus !== undefined")
    x_range = page.evaluate("document.querySelector('#map .tmp-plot')._fullLayout.xaxis.range")
    assert 22 < (x_range[0] + x_range[1]) / 2 < 28 and x_range[1] - x_range[0] < 10
    assert "found: target" in page.text_content("#map .tmp-status")
    screenshot(page, "token_map_plot_search")

    # A token that looks like markup is escaped in hover text and shown verbatim in the status.
    page.fill("#map .tmp-search", "<s>")
    page.press("#map .tmp-search", "Enter")
    page.wait_for_function("document.querySelector('#search-result textarea').value === 'found source #0'")
    page.wait_for_function("document.querySelector('#map .tmp-status').textContent.includes('source #0 <s>')")
    hover = page.evaluate("document.querySelector('#map .tmp-plot').data[0].text[0]")
    assert hover == "source #0 &lt;s&gt;"

    # Unknown token: a message, the map stays.
    page.fill("#map .tmp-search", "no-such-token")
    page.press("#map .tmp-search", "Enter")
    page.wait_for_function("document.querySelector('#search-result textarea').value.includes('not on the map')")

    # Recolour by cluster: new legend from an update that carries no coordinates.
    page.get_by_label("cluster").check()
    page.wait_for_function("document.querySelector('#map .tmp-plot').data.some(t => t.name.startsWith('landmark'))")
    names = page.evaluate("document.querySelector('#map .tmp-plot').data.map(t => t.name)")
    assert f"landmark ({ISLAND + 1})" in names and any(n.startswith("blob ") for n in names)
    screenshot(page, "token_map_plot_clusters")
    assert page.errors == []
