"""Map & explore tab: build a token map as a job, see its coverage, explore it on the token map plot.

Building runs ``explore-map`` as a background job (:func:`tokmap_ui.workbench.start_map_job`);
the app's timer follows it and opens the new map when it is done. The plot
(:class:`~tokmap_ui.ui.components.TokenMapPlot`) shows source and target tokens in one 2-D
layout, coloured by language, method or review status; a click or a search opens the token's
entry: its mapped source tokens with weights, its nearest neighbours on both sides (cosine over
the source embeddings and the rows the map initialises) and the dictionary evidence. The review
queue and entry actions live in :mod:`tokmap_ui.ui.tabs.review`.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from tokmap_ui.errors import TokmapError
from tokmap_ui.mapping.baselines import MapMethod
from tokmap_ui.projection import TARGET
from tokmap_ui.ui.components import (TokenMapPlot, colour_by_category, colour_by_side, empty_payload, parse_click,
                                     parse_lasso, parse_search, plot_payload, plot_update)
from tokmap_ui.ui.components.token_map_plot import MAX_CATEGORIES, PALETTE, REVIEW_COLOURS, Colouring
from tokmap_ui.ui.render import EntryView, coverage_figure, entry_markdown, job_fraction
from tokmap_ui.ui.state import AppContext, MapView, Session
from tokmap_ui.workbench import LAYOUTS, MapJobConfig, start_map_job

COLOUR_BY = ("language", "method", "review status")
MAX_LABELS = 60_000  # hover labels are sent with the map up to this many points
NEIGHBOURS = 6


def point_categories(view: MapView, by: str) -> Any:
    """The colouring of every point of the view's layout: by side, entry method or review status.

    Method and status colourings are cached on the view with the review event they reflect; after
    review actions only the points of the entries changed since are recoloured, so a decision
    shows on a 100k-point plot in milliseconds.
    """
    if by == "language":
        return colour_by_side(view.layout)
    key, now = f"colouring:{by}", view.reviewed.last_event_id
    cached = view.extras.get(key)
    if cached is not None and cached[1] == now:
        return cached[0]
    if cached is None:
        colouring = _colouring_from_scratch(view, by)
    else:
        changed = {e.target_id for e in view.reviewed.store.map_events(view.map_id, since=cached[1])}
        colouring = _recoloured(view, by, cached[0], sorted(changed))
    view.extras[key] = (colouring, now)
    return colouring


def _category(view: MapView, by: str, target_id: int) -> str:
    entry = view.reviewed.entry(target_id)
    return entry.status if by == "review status" else entry.method


def _colouring_from_scratch(view: MapView, by: str) -> Any:
    layout = view.layout
    values = np.full(len(layout.ids), "source", dtype=object)
    rows = np.flatnonzero(layout.sides == TARGET)
    entries = view.reviewed.base.entries
    decisions = view.reviewed.decisions()
    for row in rows.tolist():
        t = int(layout.ids[row])
        entry = view.reviewed.entry(t) if t in decisions else entries[t]
        values[row] = entry.status if by == "review status" else entry.method
    colours = dict(REVIEW_COLOURS, source="#c7c7c7") if by == "review status" else {"source": "#c7c7c7"}
    return colour_by_category(values.tolist(), by, colours)


def _recoloured(view: MapView, by: str, old: Any, target_ids: list[int]) -> Any:
    """``old`` with the points of ``target_ids`` given their current category (a new name gets a colour)."""
    if not target_ids:
        return old
    codes, names, colours = old.codes.copy(), list(old.names), list(old.colours)
    rows = view.layout.points_of("target", target_ids)
    for target_id, row in zip(target_ids, rows.tolist()):
        if row < 0:
            continue
        name = _category(view, by, target_id)
        if name not in names:
            if "other" in names or len(names) >= MAX_CATEGORIES:
                name = "other" if "other" in names else names[-1]
            else:
                names.append(name)
                colours.append(REVIEW_COLOURS.get(name) or PALETTE[len(names) % len(PALETTE)])
        codes[row] = names.index(name)
    return Colouring(codes, names, colours, old.title)


def neighbour_indexes(view: MapView) -> tuple[Any, Any, Any] | None:
    """(source index, target index, target rows) over the source model's embeddings, or None without a model."""
    from pathlib import Path

    if "indexes" not in view.extras:
        source = view.extras.get("source_path")
        if not source or not (Path(source) / "config.json").is_file():
            view.extras["indexes"] = None
        else:
            from tokmap_ui.projection import NeighbourIndex
            from tokmap_ui.workbench import source_rows

            rows = source_rows(Path(source), view.reviewed.base.source.vocab_size)   # (V_s, D)
            target_rows = view.reviewed.base.apply_to_rows(rows)                        # (V_t, D)
            view.extras["indexes"] = (NeighbourIndex(rows), NeighbourIndex(target_rows), target_rows.numpy())
    return view.extras["indexes"]


def entry_view(view: MapView, side: str, token_id: int) -> EntryView:
    """Gather what the entry panel shows for one token (core calls only; formatting is render's)."""
    src, tgt = view.source_tokens, view.target_tokens
    indexes = neighbour_indexes(view)
    if side == "source":
        out = EntryView("source", token_id, src[token_id] if token_id < len(src) else str(token_id))
        rows, cols, weights = view.reviewed.base.weight_arrays()
        users = np.flatnonzero(cols == token_id)
        best = users[np.argsort(-weights[users])][:10]
        out.used_by = [(int(rows[j]), tgt[int(rows[j])], float(weights[j])) for j in best]
        query = indexes[0].unit[token_id][None] if indexes else None
    else:
        entry = view.reviewed.entry(token_id)
        state, decision = view.reviewed.state(token_id), view.reviewed.decision(token_id)
        total = sum(w for _, w in entry.sources) or 1.0
        out = EntryView("target", token_id, tgt[token_id], entry.method, entry.status,
                        [(i, src[i] if i < len(src) else str(i), w / total)
                         for i, w in sorted(entry.sources, key=lambda s: -s[1])][:12],
                        [str(e) for e in entry.evidence], entry.comment, decision.by if decision else "",
                        state.version if state else 0, conflict=decision.conflict if decision else None)
        query = indexes[2][token_id][None] if indexes else None
    if indexes is not None:
        for name, index, tokens in (("near_source", indexes[0], src), ("near_target", indexes[1], tgt)):
            ids, sims = index.search_vectors(query, NEIGHBOURS + 1)
            near = [(tokens[int(i)], float(s)) for i, s in zip(ids[0], sims[0])
                    if i >= 0 and not (int(i) == token_id and (name == "near_target") == (side == "target"))]
            setattr(out, name, near[:NEIGHBOURS])
    return out


class ExploreTab:
    """Widgets and handlers of the Map & explore tab."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def _view(self, session: Session) -> MapView:
        if session.map_id is None:
            raise gr.Error("No map is open: build one (or pick one from the list) first.")
        try:
            return self.ctx.map_view(session.map_id)
        except TokmapError as err:
            raise gr.Error(str(err)) from None

    def map_choices(self, session: Session) -> list[tuple[str, int]]:
        maps = self.ctx.store.list_token_maps(session.project)
        return [(f"#{m.id} {m.name}", m.id) for m in reversed(maps)]

    # ------------------------------------------------------------------ handlers
    def build_map(self, method: str, top_k: float, temperature: float, layout: str,
                  session: Session) -> tuple[Session, str]:
        """Start a map-building job on the project's selected inputs."""
        try:
            config = MapJobConfig(method=method, top_k=int(top_k), temperature=float(temperature), layout=layout)
            session.map_job = start_map_job(self.ctx.store, session.project, config)
        except TokmapError as err:
            raise gr.Error(str(err)) from None
        return session, f"map job {session.map_job} started: {method}, layout {layout}. Follow it here or in Jobs."

    def poll(self, session: Session) -> tuple[Session, str, Any]:
        """Timer tick: the map job's progress; when it has finished, select the new map."""
        if session.map_job is None:
            return session, gr.update(), gr.update()
        from tokmap_ui.jobs import poll

        job = poll(self.ctx.store, session.map_job)
        frac = job_fraction(job)
        status = (f"map job {job.id}: {job.status.value}" + (f" {frac:.0%}" if frac is not None else "")
                  + (f" — {job.progress.get('message')}" if job.progress.get("message") else "")
                  + (f" — {job.error}" if job.error else ""))
        if not job.status.finished:
            return session, status, gr.update()
        map_id = job.progress.get("done", {}).get("map_id")
        if map_id is None or session.map_id == map_id:  # failed, or the new map is open: stop following
            session.map_job = None
            return session, status, gr.update()
        # Sent again on every tick until open_map has run (an update lost in transit is simply resent).
        return session, status, gr.update(choices=self.map_choices(session), value=map_id)

    def open_map(self, map_id: int | None, colour_by: str, session: Session) -> list[Any]:
        """Open a stored map: coverage chart, plot, info; the review panel refreshes after."""
        if map_id is None:
            return [session, None, empty_payload(), "*No map yet: build one above.*"]
        session.map_id, session.entry = int(map_id), None
        view = self._view(session)
        neighbour_indexes(view)  # built now so the first click answers fast
        stats = view.reviewed.base.compute_stats()
        info = (f"**{view.reviewed.record.name}** ({view.reviewed.base.kind}): {stats['entries']:,} target tokens, "
                f"{stats['mapped']:,} mapped, source vocabulary {view.reviewed.base.source.vocab_size:,}")
        if view.layout is None:
            return [session, coverage_figure(stats["by_method"]),
                    empty_payload("This map has no layout (the source has no embeddings)."), info]
        labels = None
        if len(view.layout.ids) <= MAX_LABELS:
            labels = [(view.source_tokens if s != TARGET else view.target_tokens)[int(i)]
                      for s, i in zip(view.layout.sides.tolist(), view.layout.ids.tolist())]
        payload = plot_payload(view.layout, point_categories(view, colour_by), labels=labels)
        return [session, coverage_figure(stats["by_method"]), payload, info]

    def recolour(self, colour_by: str, session: Session) -> Any:
        view = self._view(session)
        if view.layout is None:
            return gr.update()
        return plot_update(view.layout, colours=point_categories(view, colour_by))

    def recolour_after_review(self, colour_by: str, session: Session) -> Any:
        """After a review action: the plot's colours follow when they show status or method."""
        if colour_by == "language" or session.map_id is None:
            return gr.skip()
        return self.recolour(colour_by, session)

    def show_entry(self, side: str, token_id: float, session: Session) -> tuple[Session, str]:
        """The entry panel of one token (``side``: target or source)."""
        view = self._view(session)
        token_id = int(token_id)
        size = len(view.target_tokens if side == "target" else view.source_tokens)
        if not 0 <= token_id < size:
            raise gr.Error(f"{side} token id {token_id} is outside 0-{size - 1}.")
        if side == "target":
            session.entry = token_id
        return session, entry_markdown(entry_view(view, side, token_id))

    def on_click(self, session: Session, evt: gr.EventData) -> tuple[Session, str]:
        view = self._view(session)
        try:
            click = parse_click(evt, view.layout)
        except ValueError as err:
            raise gr.Error(str(err)) from None
        return self.show_entry(click.side, click.id, session)

    def on_lasso(self, session: Session, evt: gr.EventData) -> str:
        """A lasso selection: how many tokens of each side, and the selected target tokens' methods."""
        from collections import Counter

        view = self._view(session)
        selection = parse_lasso(evt, view.layout)
        targets = selection.ids_on("target").tolist()
        methods = Counter(view.reviewed.entry(t).method for t in targets)
        shown = ", ".join(f"`{view.target_tokens[t]}`" for t in targets[:24])
        return (f"**{len(selection):,} points selected**: {len(selection.ids_on('source')):,} source, "
                f"{len(targets):,} target" + (f" ({', '.join(f'{m} {n}' for m, n in methods.most_common())})"
                                               if methods else "") + (f"\n\ntarget tokens: {shown}" if shown else ""))

    def on_search(self, session: Session, evt: gr.EventData) -> tuple[Session, Any, str]:
        """Find a token (exact text, or ``target #12`` / ``source #12``), fly to it and open its entry."""
        view = self._view(session)
        query = parse_search(evt)
        side, token_id = find_token(view, query)
        if token_id is None:
            return session, gr.update(), f"*'{query}' is not a token of this map.*"
        session, text = self.show_entry(side, token_id, session)
        point = view.layout.point_of(side, token_id) if view.layout is not None else None
        return session, plot_update(view.layout, focus=point) if point is not None else gr.update(), text

    # ------------------------------------------------------------------ layout
    def build(self, session: gr.State, timer: gr.Timer) -> None:
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                gr.Markdown("### Build a map\nFrom the project's source, target tokenizer and dictionary.")
                method = gr.Dropdown([m.value for m in MapMethod], value="tiktotok", label="Method")
                with gr.Row():
                    top_k = gr.Slider(1, 10, value=3, step=1, label="k (neighbours)")
                    temperature = gr.Number(0.1, label="Temperature", minimum=0.001)
                layout = gr.Radio(list(LAYOUTS), value="pca", label="Layout (umap: ~1 min per 25k tokens)")
                build = gr.Button("Build map (job)", variant="primary", elem_id="build-map")
                self.status = gr.Textbox(label="Status", interactive=False, lines=2, elem_id="map-status")
            with gr.Column(scale=2):
                self.coverage = gr.Plot(label="Coverage per method", elem_id="coverage")
        with gr.Row():
            self.maps = gr.Dropdown(label="Map", choices=[], interactive=True, scale=2, elem_id="map-choice",
                                    allow_custom_value=True)
            self.colour_by = gr.Radio(list(COLOUR_BY), value="language", label="Colour by", scale=2,
                                      elem_id="colour-by")
        self.info = gr.Markdown(elem_id="map-info")
        self.plot = TokenMapPlot(elem_id="token-map", height=540, title="source and target tokens")
        with gr.Row():
            side = gr.Radio(["target", "source"], value="target", label="Side", scale=1)
            token_id = gr.Number(label="Token id", precision=0, scale=1)
            show = gr.Button("Show entry", scale=1)
        self.selection = gr.Markdown("*Drag a lasso on the plot to select tokens.*", elem_id="selection")
        self.entry = gr.Markdown("*Click a point (or search a token in the plot) to see its entry.*",
                                 elem_id="entry")
        self.open_outputs = [session, self.coverage, self.plot, self.info]
        build.click(self.build_map, [method, top_k, temperature, layout, session], [session, self.status],
                    api_name="build_map", show_progress_on=self.status)
        timer.tick(self.poll, session, [session, self.status, self.maps], api_visibility="private",
                   show_progress="hidden")
        self.opened = self.maps.change(self.open_map, [self.maps, self.colour_by, session], self.open_outputs,
                                       api_name="open_map", show_progress_on=self.info)
        self.colour_by.input(self.recolour, [self.colour_by, session], self.plot, api_visibility="private")
        show.click(self.show_entry, [side, token_id, session], [session, self.entry], api_name="map_entry")
        self.plot.click(self.on_click, session, [session, self.entry], api_visibility="private",
                        show_progress="hidden")
        self.plot.lasso(self.on_lasso, session, self.selection, api_visibility="private", show_progress="hidden")
        self.plot.search(self.on_search, session, [session, self.plot, self.entry], api_visibility="private",
                         show_progress="hidden")

    def refresh(self, session: Session) -> list[Any]:
        """On page load or project change: the project's maps, newest first, the newest opened."""
        choices = self.map_choices(session)
        value = session.map_id if session.map_id in {c[1] for c in choices} else (choices[0][1] if choices else None)
        return [gr.update(choices=choices, value=value)]


def find_token(view: MapView, query: str) -> tuple[str, int | None]:
    """``("target", id)`` of a token by its exact text (target first, then source), or ``side #id``."""
    import re

    match = re.fullmatch(r"(source|target)\s*#\s*(\d+)", query.strip())
    if match:
        side, token_id = match.group(1), int(match.group(2))
        size = len(view.target_tokens if side == "target" else view.source_tokens)
        return side, token_id if token_id < size else None
    for side, tokens in (("target", view.target_tokens), ("source", view.source_tokens)):
        for candidate in (query, "Ġ" + query, "▁" + query):
            if candidate in tokens:
                return side, tokens.index(candidate)
    return "target", None
