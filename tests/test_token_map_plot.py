"""Token map plot without a browser: payload encoding, updates, colours, event parsing, handlers.

The browser half (drawing, real clicks and lassos) is tests/e2e/test_token_map_plot_e2e.py.
"""

from __future__ import annotations

import json

import gradio as gr
import numpy as np
import pytest

from tokmap_ui.projection import Projection
from tokmap_ui.ui.components import token_map_plot as tmp
from tokmap_ui.ui.components.token_map_demo import ISLAND, demo_blocks, demo_data
from tokmap_ui.ui.components.token_map_plot import (REVIEW_COLOURS, TokenMapPlot, colour_by_category,
                                                     colour_by_side, decode_array, decode_payload,
                                                     encode_array, parse_click, parse_lasso, parse_search,
                                                     plot_payload, plot_update)


def make_projection(n_source: int = 3, n_target: int = 4, ids: np.ndarray | None = None) -> Projection:
    n = n_source + n_target
    coords = np.arange(2 * n, dtype=np.float32).reshape(n, 2) / 3
    sides = np.array([0] * n_source + [1] * n_target, np.uint8)
    if ids is None:
        ids = np.concatenate([np.arange(n_source), np.arange(n_target)])
    return Projection(coords, sides, ids, "0123456789abcdef", "pca")


@pytest.mark.parametrize("dtype", ["float32", "int32", "uint8"])
def test_encode_decode_roundtrip_little_endian(dtype):
    values = np.array([0, 1, 7, 200], dtype=dtype)
    text = encode_array(values, dtype)
    assert isinstance(text, str)
    np.testing.assert_array_equal(decode_array(text, dtype), values)
    assert encode_array(np.array([1], ">i4"), "int32") == encode_array(np.array([1], "<i4"), "int32") == "AQAAAA=="


def test_full_payload_decodes_to_the_projection():
    proj = make_projection()
    value = plot_payload(proj, highlight=[1, 99], focus=5)
    json.dumps(value)  # plain JSON: no numpy scalars anywhere
    assert value["format"] == "tokmap.map-plot/1" and value["key"] == proj.key and value["n"] == 7
    assert value["ids"] is None  # each side is 0..k-1: ids do not travel
    arrays = decode_payload(value)
    np.testing.assert_array_equal(arrays["xy"], proj.coords)
    np.testing.assert_array_equal(arrays["ids"], proj.ids)
    np.testing.assert_array_equal(arrays["sides"], proj.sides)
    np.testing.assert_array_equal(arrays["codes"], proj.sides)  # default colouring: by side
    assert value["colour"]["names"] == ["source", "target"] and value["colour"]["title"] == "language"
    assert value["highlight"] == [1] and value["focus"] == 5 and value["labels"] is None


def test_explicit_ids_travel_when_not_a_whole_vocabulary():
    proj = make_projection(ids=np.array([5, 9, 2, 0, 1, 2, 40]))
    value = plot_payload(proj)
    assert value["ids"] is not None
    np.testing.assert_array_equal(decode_payload(value)["ids"], proj.ids)
    with pytest.raises(ValueError, match="int32"):
        plot_payload(make_projection(ids=np.array([0, 1, 2, 0, 1, 2, 2**40])))


def test_payload_for_50k_plus_50k_stays_small():
    data = demo_data(50_000)
    value = plot_payload(data.projection, labels=data.labels)
    size = len(json.dumps(value).encode())
    # 100k float32 pairs (800 kB) + sides + colour codes, base64: ~1.33 MB; JSON lists would be ~3x.
    assert size < 1.5e6, size
    assert value["labels"] is None and value["labels_dropped"] is True  # above MAX_LABEL_POINTS
    small = plot_payload(demo_data(100).projection, labels=demo_data(100).labels)
    assert small["labels"][100] == "lonely" and small["labels_dropped"] is False


def test_update_sends_only_what_changed():
    proj = make_projection()
    update = plot_update(proj, focus=2)
    assert "xy" not in update and "colour" not in update and "highlight" not in update
    assert update["focus"] == 2 and update["key"] == proj.key
    assert plot_update(proj, focus=2)["seq"] != update["seq"]  # the same focus again still re-centres
    assert plot_update(proj, focus=70)["focus"] is None and plot_update(proj, focus=None)["focus"] is None
    assert plot_update(proj, highlight=np.array([6, -1, 3]))["highlight"] == [6, 3]
    recoloured = plot_update(proj, colours=colour_by_category(["a", "b", "a", "a", "c", "b", "a"], "x"))
    assert decode_array(recoloured["colour"]["codes"], "uint8").tolist() == [0, 1, 0, 0, 2, 1, 0]
    with pytest.raises(ValueError, match="3 labels for 7 points"):
        plot_update(proj, labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="colouring"):
        plot_update(proj, colours=colour_by_category(["a"] * 3))


def test_colour_by_category_orders_and_limits():
    colouring = colour_by_category(["approved", "auto", "auto", "flagged"], "review", REVIEW_COLOURS)
    assert colouring.names == ["auto", "approved", "flagged"]
    assert colouring.colours == [REVIEW_COLOURS["auto"], REVIEW_COLOURS["approved"], REVIEW_COLOURS["flagged"]]
    assert colouring.codes.dtype == np.uint8 and colouring.codes.tolist() == [1, 0, 0, 2]
    fixed = colour_by_category(["b", "a", "c"], order=["c", "a"])
    assert fixed.names == ["c", "a", "b"]
    many = colour_by_category([f"m{i % 40}" for i in range(400)])
    assert len(many.names) == tmp.MAX_CATEGORIES and many.names[-1] == "other"
    assert int(many.codes.max()) == tmp.MAX_CATEGORIES - 1 and len(set(many.colours)) > 10
    side = colour_by_side(make_projection())
    assert side.codes.tolist() == [0, 0, 0, 1, 1, 1, 1] and side.colours == list(tmp.SIDE_COLOURS)


def test_parse_events_from_dicts_and_event_data():
    proj = make_projection()
    click = parse_click(gr.EventData(None, {"point": 4, "side": "source", "id": 99}), proj)
    assert (click.point, click.side, click.id) == (4, "target", 1)  # the projection is authoritative
    assert parse_click({"point": 4, "side": "target", "id": 1}).id == 1
    with pytest.raises(ValueError, match="not on this map"):
        parse_click({"point": 7}, proj)
    with pytest.raises(ValueError, match="without a point"):
        parse_click({"side": "target"})

    selection = parse_lasso(gr.EventData(None, {"points": [6, 0, 3, 3, 12]}), proj)
    assert selection.points.tolist() == [0, 3, 6] and len(selection) == 3
    assert selection.ids_on("source").tolist() == [0] and selection.ids_on("target").tolist() == [0, 3]
    raw = parse_lasso({"points": [1, 5], "sides": [0, 1], "ids": [1, 2]})
    assert raw.ids_on("target").tolist() == [2]
    with pytest.raises(ValueError, match="differ in length"):
        parse_lasso({"points": [1, 5], "sides": [0], "ids": [1, 2]})
    assert len(parse_lasso({}, proj)) == 0
    assert parse_search({"query": "  kat "}) == "kat"


def test_component_serves_local_plotly_and_declares_events():
    with gr.Blocks() as demo:
        plot = TokenMapPlot(plot_payload(make_projection()), elem_id="m", height=300)
    config = plot.get_config()
    path = tmp.plotly_js_path()
    assert f"/gradio_api/file={path}" in config["head"] and path.stat().st_size > 1_000_000
    assert gr.utils.is_static_file(str(path))
    assert config["props"]["height"] == 300 and config["apply_default_css"] is False
    assert "${value}" not in config["html_template"]  # the template never re-renders the plot div
    js = config["js_on_load"]
    for event in ("'click'", "'lasso'", "'search'"):
        assert f"trigger({event}" in js
    assert "ev.points.length === 0) return" in js  # the empty selection after a click is ignored
    assert callable(plot.lasso) and callable(plot.search)
    assert TokenMapPlot().value["key"] is None  # empty map placeholder
    demo.close()


def _handler(demo: gr.Blocks, name: str):
    return next(fn.fn for fn in demo.fns.values() if fn.fn is not None and fn.fn.__name__ == name)


def test_demo_handlers_without_a_browser():
    n = 40
    demo = demo_blocks(n)
    on_click, on_lasso = _handler(demo, "on_click"), _handler(demo, "on_lasso")
    on_search, on_colour = _handler(demo, "on_search"), _handler(demo, "on_colour")
    entry = on_click(gr.EventData(None, {"point": n}))
    assert "target #0" in entry and "lonely" in entry and "nearest source" in entry
    island = list(range(2 * n - ISLAND, 2 * n))
    assert on_lasso(gr.EventData(None, {"points": island})).startswith(f"{ISLAND} points selected: 0 source")
    update, message = on_search(gr.EventData(None, {"query": "island_3"}))
    assert update["focus"] == 2 * n - ISLAND + 3 and "xy" not in update and message.startswith("found target")
    assert on_search(gr.EventData(None, {"query": "source #7"}))[0]["focus"] == 7
    assert "not on the map" in on_search(gr.EventData(None, {"query": "zzz"}))[1]
    assert "landmark" in on_colour("cluster")["colour"]["names"]
    demo.close()
