"""A standalone Blocks showing :class:`TokenMapPlot` on synthetic tokens (tests, bench, a look).

``python -m tokmap_ui.ui.components.token_map_demo 50000`` serves 50k + 50k points.

The synthetic map has blobs of source and target tokens (source token 0 is labelled ``<s>``, to
check escaping) plus two landmarks the browser tests rely on: a lone target token labelled ``lonely`` far below-left of everything, and an *island*
of 25 target tokens labelled ``island_0`` .. ``island_24`` far above-right. Vectors are the 2-D
positions lifted into ``dim`` random Fourier features, so map neighbours are vector neighbours, as
with a real UMAP layout.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

import gradio as gr
import numpy as np

from tokmap_ui.projection import SOURCE, TARGET, NeighbourIndex, Projection
from tokmap_ui.ui.components.token_map_plot import (MAX_LABEL_POINTS, TokenMapPlot, colour_by_category,
                                                     colour_by_side, parse_click, parse_lasso, parse_search,
                                                     plot_payload, plot_update)

ISLAND = 25
_SYLLABLES = ("ka", "to", "ne", "ri", "mu", "sa", "lo", "vi", "de", "he", "an", "ij", "og", "un", "zw")


@dataclass(frozen=True, eq=False)
class DemoData:
    projection: Projection
    vectors: np.ndarray  # (N, dim) float32, rows as in the projection
    labels: list[str]
    clusters: np.ndarray  # (N,) int: blob number; -1 for the landmarks


def demo_data(n_points: int, dim: int = 32, seed: int = 0) -> DemoData:
    """``n_points`` source and ``n_points`` target tokens (n_points >= 30) in blobs + landmarks."""
    if n_points < ISLAND + 5:
        raise ValueError(f"n_points must be at least {ISLAND + 5}")
    rng = np.random.default_rng(seed)
    n = 2 * n_points
    centres = rng.uniform(-10, 10, size=(12, 2))
    clusters = rng.integers(0, len(centres), n)
    coords = (centres[clusters] + rng.normal(scale=1.2, size=(n, 2))).astype(np.float32)  # (N, 2)
    sides = np.repeat(np.array([SOURCE, TARGET], np.uint8), n_points)
    ids = np.concatenate([np.arange(n_points), np.arange(n_points)])
    lonely = n_points  # target token 0
    island = np.arange(n - ISLAND, n)  # the last 25 target tokens
    coords[lonely] = (-25.0, -25.0)
    coords[island] = np.array([25.0, 25.0]) + rng.normal(scale=0.4, size=(ISLAND, 2))
    clusters[lonely] = -1
    clusters[island] = -1
    # Random Fourier features: cosine similarity of the vectors falls with map distance (RBF-like).
    freqs = rng.normal(scale=0.5, size=(2, dim)).astype(np.float32)
    phases = rng.uniform(0, 2 * np.pi, size=dim).astype(np.float32)
    vectors = np.cos(coords @ freqs + phases).astype(np.float32)  # (N, dim)
    picks, lengths = rng.integers(0, len(_SYLLABLES), size=(n, 3)), rng.integers(1, 4, size=n)
    words = ["".join(_SYLLABLES[k] for k in row[:m]) for row, m in zip(picks.tolist(), lengths.tolist())]
    labels = [("▁" if i % 3 else "") + w for i, w in enumerate(words)]
    labels[lonely] = "lonely"
    labels[0] = "<s>"  # special tokens look like markup: hover text must escape them
    for j, p in enumerate(island):
        labels[p] = f"island_{j}"
    key = f"{n_points:08x}{seed:08x}{dim:08x}".ljust(32, "0")
    return DemoData(Projection(coords, sides, ids, key, "synthetic"), vectors, labels, clusters)


def demo_blocks(n_points: int = 2000, *, dim: int = 32, seed: int = 0, labels: bool = True,
                max_label_points: int = MAX_LABEL_POINTS, queue: bool = True) -> gr.Blocks:
    """A Blocks with the map, an entry panel (click), a selection box (lasso) and colour choice.

    ``labels`` sends hover labels (up to ``max_label_points`` points, see ``plot_payload``);
    ``queue=False`` runs the click and lasso handlers outside Gradio's queue.

    Element ids: ``map`` (the plot), ``entry`` (click result), ``selection`` (lasso result),
    ``search-result``, ``colour-by``.
    """
    data = demo_data(n_points, dim, seed)
    proj = data.projection
    side_rows = [np.flatnonzero(proj.sides == s) for s in (SOURCE, TARGET)]
    indexes = [NeighbourIndex(data.vectors[rows]) for rows in side_rows]  # per side, built once
    label_point = {label: i for i, label in enumerate(data.labels)}

    def on_click(evt: gr.EventData) -> str:
        click = parse_click(evt, proj)
        lines = [f"### {click.side} #{click.id} `{data.labels[click.point]}`"]
        for side, rows, index in zip(("source", "target"), side_rows, indexes):
            found, sims = index.search_vectors(data.vectors[click.point][None], 6)
            near = [f"`{data.labels[rows[j]]}` ({s:.2f})" for j, s in zip(found[0], sims[0])
                    if j >= 0 and rows[j] != click.point][:5]
            lines.append(f"- nearest {side}: " + ", ".join(near))
        return "\n".join(lines)

    def on_lasso(evt: gr.EventData) -> str:
        sel = parse_lasso(evt, proj)
        src, tgt = sel.ids_on("source"), sel.ids_on("target")
        return (f"{len(sel)} points selected: {len(src)} source, {len(tgt)} target; "
                f"first target ids: {tgt[:5].tolist()}")

    def on_search(evt: gr.EventData):
        query = parse_search(evt)
        point = label_point.get(query)
        match = re.fullmatch(r"(source|target)\s*#\s*(\d+)", query)
        if point is None and match:
            point = proj.point_of(match.group(1), int(match.group(2)))
        if point is None:
            return gr.update(), f"'{query}' is not on the map."
        return plot_update(proj, focus=point), f"found {proj.side_name(point)} #{proj.ids[point]}"

    def on_colour(by: str):
        if by == "cluster":
            names = np.where(data.clusters < 0, "landmark", np.char.add("blob ", data.clusters.astype(str)))
            return plot_update(proj, colours=colour_by_category(names, "cluster"))
        return plot_update(proj, colours=colour_by_side(proj))

    with gr.Blocks(title="token map plot demo") as demo:
        colour_by = gr.Radio(["language", "cluster"], value="language", label="Colour by", elem_id="colour-by")
        payload = plot_payload(proj, labels=data.labels if labels else None, max_label_points=max_label_points)
        plot = TokenMapPlot(payload, elem_id="map",
                            height=520, title=f"{n_points:,} source + {n_points:,} target tokens")
        with gr.Row():
            entry = gr.Markdown("Click a point.", elem_id="entry")
            with gr.Column():
                selection = gr.Textbox(label="Lasso selection", elem_id="selection", interactive=False)
                found = gr.Textbox(label="Search", elem_id="search-result", interactive=False)
        plot.click(on_click, None, entry, api_visibility="private", queue=queue)
        plot.lasso(on_lasso, None, selection, api_visibility="private", queue=queue)
        plot.search(on_search, None, [plot, found], api_visibility="private")
        colour_by.change(on_colour, colour_by, plot, api_visibility="private")
    return demo


if __name__ == "__main__":  # pragma: no cover - manual look
    demo_blocks(int(sys.argv[1]) if len(sys.argv) > 1 else 2000).launch()
