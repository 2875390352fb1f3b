"""The token map: a ``gr.HTML`` component drawing a Projection with plotly Scattergl.

``gr.Plot`` has no click or select events in Gradio 6, so the map is a custom HTML component
(``token_map_plot.js`` beside this file) running the ``plotly.min.js`` of the plotly wheel, served
by Gradio as a static file (offline). It sends three events to Python, read with ``gr.EventData``:

* ``plot.click(fn)``: one point; ``parse_click(evt, projection)`` -> :class:`PointClick`.
* ``plot.lasso(fn)``: a lasso or box selection; ``parse_lasso(evt, projection)`` -> :class:`Selection`.
* ``plot.search(fn)``: Enter in the search field; ``parse_search(evt)`` -> the query text.

Value protocol ``tokmap.map-plot/1`` (a dict; build it with :func:`plot_payload`)::

    {"format", "key": projection key, "n": N,
     "xy": base64 float32 (N, 2), "ids": base64 int32 (N,) or null (k-th of a side = token k),
     "sides": base64 uint8 (N,),
     "colour": {"codes": base64 uint8 (N,), "names": [...], "colours": ["#rrggbb"...], "title"},
     "labels": [N strings] (optional hover text), "highlight": [points], "focus": point | None}

Base64 typed arrays keep 50k+50k points at ~1.3 MB (JSON lists would be ~3x). A value *without*
``xy`` (:func:`plot_update`) changes the map already drawn (same ``key``): colours, highlight,
labels or a "fly to this point" focus, without resending coordinates.

Never make the plot an *input* of a listener: that would upload the whole value back.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import gradio as gr
import numpy as np

from tokmap_ui.projection import SIDE_NAMES, Projection

FORMAT = "tokmap.map-plot/1"
HERE = Path(__file__).resolve().parent
SIDE_COLOURS = ("#1f77b4", "#ff7f0e")  # source blue, target orange
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#637939", "#ad494a", "#7b4173", "#3182bd")
REVIEW_COLOURS = {"auto": "#9e9e9e", "approved": "#2ca02c", "rejected": "#d62728",
                  "flagged": "#ff7f0e", "edited": "#9467bd"}
MAX_CATEGORIES = 24  # more legend entries than this are unreadable: the rest become "other"
MAX_LABEL_POINTS = 20_000  # hover labels beyond this cost more first-paint time than they are worth
_UNSET: Any = object()
_seq = itertools.count(1)


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` inside the installed plotly wheel."""
    import plotly

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: reinstall plotly (`pip install plotly`)")
    return path


# ---------------------------------------------------------------- payload


@dataclass(frozen=True, eq=False)
class Colouring:
    """A colour category per point: ``codes (N,) uint8`` index into ``names``/``colours``."""

    codes: np.ndarray
    names: list[str]
    colours: list[str]
    title: str = ""


def colour_by_side(projection: Projection) -> Colouring:
    """Source and target tokens in two colours (legend: the side names)."""
    return Colouring(projection.sides.astype(np.uint8), list(SIDE_NAMES), list(SIDE_COLOURS), "language")


def colour_by_category(values: Sequence[str], title: str = "", colours: Mapping[str, str] | None = None,
                       order: Sequence[str] | None = None) -> Colouring:
    """One colour per distinct value (method, review status, ...), most frequent first.

    Example:
        >>> c = colour_by_category(["auto", "approved", "auto"], "review", REVIEW_COLOURS)
        >>> c.codes.tolist(), c.names, c.colours
        ([0, 1, 0], ['auto', 'approved'], ['#9e9e9e', '#2ca02c'])
    """
    values = np.asarray(values, dtype=object).astype(str)
    names, counts = np.unique(values, return_counts=True)
    if order is None:
        ranked = [str(n) for n, _ in sorted(zip(names, counts), key=lambda t: (-t[1], t[0]))]
    else:
        ranked = [n for n in order if n in set(names)] + sorted(set(names) - set(order))
    if len(ranked) > MAX_CATEGORIES:
        ranked = ranked[: MAX_CATEGORIES - 1] + ["other"]
    code_of = {name: i for i, name in enumerate(ranked)}
    other = code_of.get("other", len(ranked) - 1)
    codes = np.array([code_of.get(v, other) for v in values], dtype=np.uint8)
    spare = iter(c for c in itertools.cycle(PALETTE))
    palette = [(colours or {}).get(name) or next(spare) for name in ranked]
    return Colouring(codes, ranked, palette, title)


def encode_array(array: Any, dtype: str) -> str:
    """Base64 of the little-endian bytes of ``array`` as ``dtype`` (what JS typed arrays read)."""
    arr = np.ascontiguousarray(np.asarray(array), dtype=np.dtype(dtype).newbyteorder("<"))
    return base64.b64encode(arr.tobytes()).decode("ascii")


def decode_array(data: str, dtype: str) -> np.ndarray:
    """Inverse of :func:`encode_array` (tests and tools)."""
    return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


def _colour(colouring: Colouring, n: int) -> dict[str, Any]:
    codes = np.asarray(colouring.codes)
    if codes.shape != (n,) or (n and int(codes.max()) >= len(colouring.names)):
        raise ValueError(f"colouring has shape {codes.shape} / {len(colouring.names)} names for {n} points")
    if len(colouring.colours) != len(colouring.names):
        raise ValueError("colouring needs one colour per name")
    return {"codes": encode_array(codes, "uint8"), "names": [str(x) for x in colouring.names],
            "colours": [str(x) for x in colouring.colours], "title": colouring.title}


def _points(points: Any, n: int) -> list[int]:
    arr = np.asarray([] if points is None else points, dtype=np.int64).reshape(-1)
    return [int(p) for p in arr if 0 <= p < n]


def plot_update(projection: Projection, *, colours: Colouring | None = None, labels: Any = _UNSET,
                highlight: Any = _UNSET, focus: Any = _UNSET) -> dict[str, Any]:
    """A value changing the map already drawn: only the given fields are sent.

    ``focus`` is a point row (see ``Projection.point_of``) to centre on and ring; ``None`` clears
    it. ``highlight`` is a list of point rows drawn larger in yellow; ``None`` or ``[]`` clears.
    """
    n = len(projection.coords)
    value: dict[str, Any] = {"format": FORMAT, "key": projection.key, "n": n, "seq": next(_seq)}
    if colours is not None:
        value["colour"] = _colour(colours, n)
    if labels is not _UNSET:
        if labels is not None and len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} points")
        value["labels"] = None if labels is None else [str(x) for x in labels]
    if highlight is not _UNSET:
        value["highlight"] = _points(highlight, n)
    if focus is not _UNSET:
        value["focus"] = None if focus is None or not 0 <= int(focus) < n else int(focus)
    return value


def _implicit_ids(projection: Projection) -> bool:
    """True when the k-th point of each side is token k (a whole vocabulary): ids need not travel."""
    for side in np.unique(projection.sides):
        ids = projection.ids[projection.sides == side]
        if not np.array_equal(ids, np.arange(len(ids))):
            return False
    return True


def plot_payload(projection: Projection, colours: Colouring | None = None, *, labels: Any = None,
                 highlight: Any = None, focus: int | None = None,
                 max_label_points: int = MAX_LABEL_POINTS) -> dict[str, Any]:
    """The full value for :class:`TokenMapPlot`: coordinates, ids, sides, colours (+ labels).

    ``labels`` (one string per point) become the hover text only up to ``max_label_points``
    points: at 50k + 50k they add ~1 MB (+35%) to the payload and slow the first paint, so larger
    maps hover with "side #id" and the entry panel (click) shows the token. ``ids`` are omitted
    (``null``) when each side's points are tokens 0, 1, 2, ... in order.

    Example:
        >>> import numpy as np
        >>> proj = Projection(np.zeros((3, 2), np.float32), np.array([0, 1, 1], np.uint8),
        ...                   np.array([5, 0, 1]), "ab" * 8, "pca")
        >>> value = plot_payload(proj)
        >>> decode_array(value["ids"], "int32").tolist(), value["colour"]["names"]
        ([5, 0, 1], ['source', 'target'])
    """
    n = len(projection.coords)
    if n and (projection.ids.min() < np.iinfo(np.int32).min or projection.ids.max() > np.iinfo(np.int32).max):
        raise ValueError("token ids must fit in int32")
    dropped = labels is not None and n > max_label_points
    value = plot_update(projection, colours=colours or colour_by_side(projection),
                        labels=None if dropped else labels, highlight=highlight, focus=focus)
    value.update(xy=encode_array(projection.coords.astype(np.float32).reshape(n, 2), "float32"),
                 ids=None if _implicit_ids(projection) else encode_array(projection.ids, "int32"),
                 sides=encode_array(projection.sides, "uint8"), labels_dropped=dropped)
    return value


def empty_payload(message: str = "No map yet: build one first.") -> dict[str, Any]:
    """A value that shows ``message`` instead of a map."""
    return {"format": FORMAT, "key": None, "message": message}


def decode_payload(value: Mapping[str, Any]) -> dict[str, Any]:
    """The arrays of a full value, decoded: xy (N, 2), ids, sides, codes (tests and tools)."""
    n = int(value["n"])
    sides = decode_array(value["sides"], "uint8")
    if value.get("ids") is None:  # implicit: the k-th point of a side is token k
        ids = np.zeros(n, np.int32)
        for side in np.unique(sides):
            ids[sides == side] = np.arange(int((sides == side).sum()))
    else:
        ids = decode_array(value["ids"], "int32")
    out = {"xy": decode_array(value["xy"], "float32").reshape(n, 2), "ids": ids, "sides": sides}
    if "colour" in value:
        out["codes"] = decode_array(value["colour"]["codes"], "uint8")
    return out


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class PointClick:
    """One clicked point: its row in the projection, side name and token id."""

    point: int
    side: str
    id: int


@dataclass(frozen=True, eq=False)
class Selection:
    """Lasso-selected points: rows (K,), sides (K,) uint8 and token ids (K,)."""

    points: np.ndarray
    sides: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.points)

    def ids_on(self, side: str) -> np.ndarray:
        """Token ids of the selected points on one side ("source" or "target")."""
        return self.ids[self.sides == SIDE_NAMES.index(side)]


def _data(event: Any) -> Mapping[str, Any]:
    data = getattr(event, "_data", event)  # gr.EventData keeps the JS payload in _data
    if not isinstance(data, Mapping):
        raise ValueError(f"expected an event payload dict, got {type(data).__name__}")
    return data


def parse_click(event: Any, projection: Projection | None = None) -> PointClick:
    """A ``click`` event (``gr.EventData`` or its dict) as a PointClick.

    With ``projection`` the side and id are read from it (the browser only picks the row), and
    a row outside the map raises ValueError.
    """
    data = _data(event)
    try:
        point = int(data["point"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"click event without a point: {dict(data)!r}") from None
    if projection is not None:
        if not 0 <= point < len(projection.coords):
            raise ValueError(f"clicked point {point} is not on this map (stale page? reload it)")
        return PointClick(point, projection.side_name(point), int(projection.ids[point]))
    return PointClick(point, str(data.get("side", "")), int(data.get("id", -1)))


def parse_lasso(event: Any, projection: Projection | None = None) -> Selection:
    """A ``lasso`` event as a Selection (rows checked against ``projection`` when given)."""
    data = _data(event)
    points = np.asarray(data.get("points") or [], dtype=np.int64).reshape(-1)
    if projection is not None:
        points = np.unique(points[(points >= 0) & (points < len(projection.coords))])
        return Selection(points, projection.sides[points], projection.ids[points].astype(np.int64))
    sides = np.asarray(data.get("sides") or [], dtype=np.uint8).reshape(-1)
    ids = np.asarray(data.get("ids") or [], dtype=np.int64).reshape(-1)
    if not len(sides) == len(ids) == len(points):
        raise ValueError("lasso event: points, sides and ids differ in length")
    return Selection(points, sides, ids)


def parse_search(event: Any) -> str:
    """The text typed in the plot's search field."""
    return str(_data(event).get("query", "")).strip()


# ---------------------------------------------------------------- component

_static_done = False


def plotly_js_url() -> str:
    """The URL Gradio serves the wheel's plotly.min.js at (registering it as a static file)."""
    global _static_done
    path = plotly_js_path()
    if not _static_done:  # serve exactly this one file, not the whole plotly package folder
        gr.set_static_paths([path])
        _static_done = True
    return f"/gradio_api/file={quote(str(path))}"


TEMPLATE = """<div class="tmp-root">
  <div class="tmp-bar">
    <input class="tmp-search" type="search" placeholder="Search a token, press Enter"
           aria-label="Search a token" style="display: ${search ? 'block' : 'none'}">
    <span class="tmp-status" role="status">Loading the map…</span>
  </div>
  <div class="tmp-plot" style="height: ${height}px"></div>
</div>"""


class TokenMapPlot(gr.HTML):
    """The token map component; value from :func:`plot_payload` / :func:`plot_update`.

    Args:
        value: a payload dict (or None for an empty map).
        height: plot height in pixels.
        title: title drawn above the plot.
        dragmode: plotly drag mode at start: "lasso" (default; scroll zooms), "select", "pan", "zoom".
        search: show the search field (sends ``search`` events).
        **kwargs: passed to ``gr.HTML`` (elem_id, visible, ...).

    Example:
        >>> plot = TokenMapPlot(plot_payload(projection), elem_id="map")      # doctest: +SKIP
        >>> plot.click(on_click, None, entry_panel)                           # doctest: +SKIP
    """

    def __init__(self, value: dict[str, Any] | None = None, *, height: int = 560, title: str = "",
                 dragmode: str = "lasso", search: bool = True, **kwargs: Any):
        super().__init__(value=value if value is not None else empty_payload(), html_template=TEMPLATE,
                         css_template=(HERE / "token_map_plot.css").read_text(encoding="utf-8"),
                         js_on_load=(HERE / "token_map_plot.js").read_text(encoding="utf-8"),
                         head=f'<script src="{plotly_js_url()}"></script>', apply_default_css=False,
                         height=int(height), title=title, dragmode=dragmode, search=bool(search), **kwargs)

    def api_info(self) -> dict[str, Any]:
        return {"type": "object", "description": "tokmap.map-plot/1 payload"}
