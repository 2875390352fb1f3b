"""Pure formatting: core objects in, DataFrames / Markdown / HTML / plotly figures out.

No gradio here and no I/O beyond what a report function of the core does itself
(:func:`inspection_text`), so every function is testable without a browser. Handlers in
``tabs/`` call the core, then one of these.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from tokmap_ui.cmc.arena import ArenaPanel

# Plain symbols (DejaVu has them), not emoji: headless and minimal Linux setups lack emoji fonts.
STATUS_ICONS = {"queued": "…", "running": "▶", "succeeded": "✓", "failed": "✗", "cancelled": "■",
                "interrupted": "!"}


def readable_tokens(vocab: Any) -> tuple[str, ...]:
    """Token strings as people read them: byte-level tokens decoded (``Ã«`` → ``ë``), marker kept.

    Example: GPT-2's ``ĠbeÃ«indigd`` reads ``Ġbeëindigd``; other vocabularies keep their raw strings.
    """
    from tokmap_ui.vocab import WordMarker

    if vocab.marker is not WordMarker.GPT2:
        return tuple(vocab.tokens)
    special = vocab.is_special
    return tuple(raw if special[i] or not text and not start else ("Ġ" if start else "") + text
                 for i, (raw, text, start) in enumerate(zip(vocab.tokens, vocab.canonical,
                                                            vocab.starts_word.tolist())))


def code_block(text: str) -> str:
    """Text as a fenced Markdown block (backticks inside cannot end it)."""
    return f"````text\n{text}\n````"


def inspection_text(artifact: Any) -> str:
    """The core's inspection report of an artifact (tokenizer, model, dictionary or text), as text."""
    from pathlib import Path

    path = Path(artifact.path)
    if artifact.kind in ("tokenizer", "model"):
        from tokmap_ui.io.tokenizers import inspect_tokenizer_file

        text = inspect_tokenizer_file(path).to_text()
        if artifact.kind == "model":
            from tokmap_ui.io.files import read_text

            config = json.loads(read_text(path / "config.json", "model config"))
            arch = ", ".join(config.get("architectures") or [config.get("model_type", "?")])
            dims = {k: config[k] for k in ("hidden_size", "n_embd", "num_hidden_layers", "n_layer", "vocab_size")
                    if k in config}
            text = f"Model: {arch} {dims}\n" + text
        return text
    if artifact.kind == "dictionary":
        from tokmap_ui.io.dictionaries import inspect_dictionary_file

        return inspect_dictionary_file(path).to_text()
    from tokmap_ui.io.files import read_text_lines

    lines = read_text_lines(path, "text file")
    words = sum(len(line.split()) for line in lines)
    return f"Text: {path.name}\n  {len(lines):,} lines, {words:,} words, {path.stat().st_size / 1e6:.2f} MB"


# ---------------------------------------------------------------- project

def artifacts_frame(artifacts: Sequence[Any], selected_ids: Iterable[int]) -> pd.DataFrame:
    """One row per artifact: id, role, kind, name, whether selected, where it lives."""
    chosen = set(selected_ids)
    rows = [{"id": a.id, "role": a.meta.get("role", ""), "kind": a.kind, "name": a.name,
             "selected": "✓" if a.id in chosen else "", "bundled": "yes" if a.meta.get("bundled") else "",
             "path": str(a.path)} for a in artifacts]
    return pd.DataFrame(rows, columns=["id", "role", "kind", "name", "selected", "bundled", "path"])


# ---------------------------------------------------------------- map & explore

def coverage_figure(by_method: dict[str, int], title: str = "Coverage per method") -> Any:
    """A horizontal bar per entry method: how many target tokens it mapped (and the share)."""
    import plotly.graph_objects as go

    items = sorted(by_method.items(), key=lambda kv: kv[1])
    total = max(sum(by_method.values()), 1)
    fig = go.Figure(go.Bar(x=[n for _, n in items], y=[m for m, _ in items], orientation="h",
                           text=[f"{n:,} ({n / total:.1%})" for _, n in items], textposition="auto",
                           marker_color="#4c78a8"))
    fig.update_layout(title=title, height=260, margin=dict(l=10, r=10, t=40, b=30), xaxis_title="target tokens")
    return fig


@dataclass
class EntryView:
    """What the entry panel shows about one token (filled by the tab from core calls)."""

    side: str
    token_id: int
    token: str
    method: str = ""
    status: str = ""
    sources: list[tuple[int, str, float]] = field(default_factory=list)   # (id, token, weight)
    evidence: list[str] = field(default_factory=list)
    comment: str = ""
    reviewer: str = ""
    version: int = 0
    near_source: list[tuple[str, float]] = field(default_factory=list)
    near_target: list[tuple[str, float]] = field(default_factory=list)
    used_by: list[tuple[int, str, float]] = field(default_factory=list)   # source side: targets using it
    conflict: dict[str, Any] | None = None


def _tok(text: str) -> str:
    return f"`{text.replace('`', 'ˋ')}`" if text else "`∅`"


def _plain(token: str) -> str:
    """A raw token as read: byte-level text decoded (``ĠbeÃ«indigd`` → ``Ġbeëindigd``), others as they are."""
    from tokmap_ui.vocab import bytelevel_to_bytes

    data = bytelevel_to_bytes(token) if any(ord(c) > 0x7F for c in token) else None
    try:
        text = data.decode("utf-8") if data is not None else token
    except UnicodeDecodeError:
        return token
    return "Ġ" + text[1:] if text.startswith(" ") else text


def _pivot_hop(item: dict[str, Any]) -> str:
    """``through `Ġsluiten` (71%) → `close` 60%, `shut` 40%`` from a parsed ``pivot:`` evidence item."""
    to = ", ".join(f"{_tok(_plain(str(t)))} {float(w):.0%}" for t, w in item.get("to", []))
    why = f" — hop {item.get('hop', 1) + 1}: " + "; ".join(map(html.escape, map(str, item.get("why") or [])))
    return f"through pivot {_tok(_plain(str(item.get('via', ''))))} ({float(item.get('share', 0)):.0%}) → {to}{why if item.get('why') else ''}"


def pivot_path_markdown(token: str, evidence: Sequence[Any]) -> str:
    """The pivot path of a composed entry: ``fy token → nl tokens → en tokens``, one line per hop ('' if none).

    Example:
        >>> pivot_path_markdown("Ġslute", ["chain:dictionary→dictionary",
        ...     'pivot:{"hop":1,"via":"Ġsluiten","share":1.0,"to":[["close",0.6],["shut",0.4]]}'])
        '**Pivot path** (dictionary → dictionary): `Ġslute` → `Ġsluiten` (100%) → `close` (60%), `shut` (40%)'
    """
    from tokmap_ui.mapping.compose import parse_pivot_item

    items = [p for p in map(parse_pivot_item, evidence) if p is not None]
    if not items:
        return ""
    chain = next((str(e)[len("chain:"):] for e in evidence if str(e).startswith("chain:")), "")
    lines = []
    for hop in sorted({int(p.get("hop", 1)) for p in items}):
        step = [p for p in items if int(p.get("hop", 1)) == hop]
        pivots = ", ".join(f"{_tok(_plain(str(p.get('via', ''))))} ({float(p.get('share', 0)):.0%})" for p in step)
        best: dict[str, float] = {}
        for p in step:  # the final tokens this hop leads to, weighted by the pivot's share
            for t, w in p.get("to", []):
                best[str(t)] = best.get(str(t), 0.0) + float(p.get("share", 0)) * float(w)
        top = sorted(best.items(), key=lambda x: -x[1])[:4]
        ends = ", ".join(f"{_tok(_plain(t))} ({w / max(sum(best.values()), 1e-9):.0%})" for t, w in top)
        lines.append(f"{_tok(_plain(token)) if hop == 1 else '…'} → {pivots} → {ends}")
    head = f"**Pivot path** ({chain.replace('→', ' → ')})" if chain else "**Pivot path**"
    return head + ": " + "<br>".join(lines)


def evidence_line(item: Any) -> str:
    """One evidence item in words: ``pair:cat→kat:2`` → ``dictionary pair cat → kat (×2)``."""
    from tokmap_ui.mapping.compose import parse_pivot_item

    text = str(item)
    kind, _, rest = text.partition(":")
    if (pivot := parse_pivot_item(text) if kind == "pivot" else None) is not None:
        return _pivot_hop(pivot)
    if kind == "chain":
        return "composed through a pivot: " + " ∘ ".join(html.escape(m) for m in rest.split("→")) + " (method per hop)"
    if kind == "pair":
        pair, _, count = rest.rpartition(":")
        return f"dictionary pair **{html.escape(pair.replace('→', ' → '))}** (×{count})"
    if kind == "pairs":
        return f"{rest} dictionary pairs reach this token"
    if kind == "nn":
        token, _, sim = rest.rpartition(":")
        return f"neighbour in the subword space: {_tok(token)} (similarity {sim})"
    return html.escape(text)


def entry_markdown(view: EntryView) -> str:
    """The entry panel: the token, its sources with weights, neighbours, evidence, review state."""
    if view.side == "source":
        lines = [f"### source token #{view.token_id} {_tok(view.token)}"]
        if view.used_by:
            lines.append("**Target tokens mapped to it:** " + ", ".join(
                f"{_tok(t)} #{i} ({w:.0%})" for i, t, w in view.used_by))
    else:
        lines = [f"### target token #{view.token_id} {_tok(view.token)}",
                 f"**status:** {view.status} · **method:** {view.method} · version {view.version}"
                 + (f" · last reviewer: {html.escape(view.reviewer)}" if view.reviewer else "")]
        if view.conflict:
            lines.append("**⚠ conflict:** a re-run changed the proposal under this decision.")
        if view.sources:
            lines += ["", "| source token | id | weight |", "|---|---:|---:|"]
            lines += [f"| {_tok(t)} | {i} | {w:.1%} |" for i, t, w in view.sources]
        else:
            lines.append("**unmapped**: conversion uses its fallback row.")
        if view.comment:
            lines.append(f"\n> {html.escape(view.comment)}")
    if view.near_source or view.near_target:
        lines.append("")
        if view.near_source:
            lines.append("**Nearest source tokens:** " + ", ".join(f"{_tok(t)} ({s:.2f})" for t, s in view.near_source))
        if view.near_target:
            lines.append("**Nearest target tokens:** " + ", ".join(f"{_tok(t)} ({s:.2f})" for t, s in view.near_target))
    path = pivot_path_markdown(view.token, view.evidence) if view.side != "source" else ""
    if path:
        lines += ["", path]
    if view.evidence:
        lines += ["", "**Evidence:**"] + [f"- {evidence_line(e)}" for e in view.evidence[:8]]
    return "\n".join(lines)


def queue_frame(items: Sequence[Any], source_tokens: Sequence[str],
                target_tokens: Sequence[str] | None = None) -> pd.DataFrame:
    """A page of the review queue (items from :func:`tokmap_ui.mapping.review_queue.review_queue`)."""
    def top(entry: Any) -> str:
        if not entry.sources:
            return ""
        i, w = max(entry.sources, key=lambda s: s[1])
        total = sum(x for _, x in entry.sources) or 1.0
        return f"{source_tokens[i] if i < len(source_tokens) else i} ({w / total:.0%})"

    rows = [{"rank": it.rank, "id": it.target_id, "status": it.entry.status,
             "token": target_tokens[it.target_id] if target_tokens else it.entry.target_token,
             "method": it.entry.method, "top source": top(it.entry), "uncertainty": it.uncertainty,
             "frequency": it.frequency, "reviewer": it.reviewer} for it in items]
    return pd.DataFrame(rows, columns=["rank", "id", "token", "status", "method", "top source", "uncertainty",
                                       "frequency", "reviewer"])


def review_progress_markdown(progress: Any) -> str:
    """``reviewed 3/16,000 (0.0%) · approved 2 · rejected 1 …`` for the review panel."""
    share = 100.0 * progress.reviewed / progress.total if progress.total else 0.0
    parts = [f"**reviewed {progress.reviewed:,}/{progress.total:,} ({share:.1f}%)**"]
    parts += [f"{s} {n:,}" for s, n in progress.by_status.items() if s != "auto"]
    if progress.conflicts:
        parts.append(f"⚠ conflicts {progress.conflicts}")
    return " · ".join(parts)


# ---------------------------------------------------------------- jobs

def job_fraction(job: Any) -> float | None:
    """How far a job is, 0..1, from its progress record (None when unknown)."""
    p = job.progress or {}
    total = p.get("total_steps")
    step = p.get("step")
    if isinstance(total, (int, float)) and total and isinstance(step, (int, float)):
        return max(0.0, min(1.0, float(step) / float(total)))
    return 1.0 if job.status.value == "succeeded" else None


def jobs_frame(jobs: Sequence[Any]) -> pd.DataFrame:
    """One row per job, newest first: id, kind, status, progress, message, created, error."""
    rows = []
    for job in jobs:
        frac = job_fraction(job)
        p = job.progress or {}
        rows.append({"id": job.id, "kind": job.kind, "status": f"{STATUS_ICONS.get(job.status.value, '')} "
                     f"{job.status.value}", "progress": "" if frac is None else f"{frac:.0%}",
                     "message": (f"loss {p['loss']:.3f}" if isinstance(p.get("loss"), (int, float))
                                 else str(p.get("message") or ""))[:80],
                     "created": job.created.replace("T", " ")[:19], "error": (job.error or "")[:120]})
    return pd.DataFrame(rows, columns=["id", "kind", "status", "progress", "message", "created", "error"])


def job_markdown(job: Any, log_lines: Sequence[str]) -> str:
    """One job's details: status, command, artifacts, error, and the tail of its log."""
    frac = job_fraction(job)
    argv = " ".join(job.config.get("argv", []))
    lines = [f"### job {job.id}: {job.kind} — {STATUS_ICONS.get(job.status.value, '')} {job.status.value}"
             + (f" ({frac:.0%})" if frac is not None else ""),
             f"`{html.escape(argv[:300])}`"]
    if job.error:
        lines.append(f"**error:** {html.escape(job.error)}")
    if job.artifacts:
        lines.append("**artifacts:** " + ", ".join(f"{a.get('kind')}: `{a.get('path')}`" for a in job.artifacts))
    if job.progress.get("attempt", 1) > 1:
        lines.append(f"attempt {job.progress['attempt']} (resumed)")
    lines.append("**log (last lines):**")
    lines.append(code_block("\n".join(log_lines) if log_lines else "(no output yet)"))
    return "\n\n".join(lines)


# ---------------------------------------------------------------- convert & fine-tune

def loss_frame(runs: Sequence[tuple[str, Sequence[Sequence[float]]]]) -> pd.DataFrame:
    """Loss curves of several runs in long form (step, loss, run) for one ``gr.LinePlot``."""
    rows = [(float(step), float(loss), label) for label, curve in runs for step, loss in curve
            if step is not None and isinstance(loss, (int, float)) and math.isfinite(float(loss))]
    # Typed columns even when empty: the plot reads its axis types from the first value it gets.
    return pd.DataFrame({"step": pd.Series([r[0] for r in rows], dtype="float64"),
                         "loss": pd.Series([r[1] for r in rows], dtype="float64"),
                         "run": pd.Series([r[2] for r in rows], dtype="object")})


def loss_figure(frame: pd.DataFrame, title: str = "Training loss of all runs") -> Any:
    """One line per run (plotly; redrawn whole on each update, so runs added later appear too)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for run, part in frame.groupby("run", sort=False):
        fig.add_trace(go.Scatter(x=part["step"], y=part["loss"], mode="lines", name=str(run)))
    fig.update_layout(title=title, height=330, margin=dict(l=40, r=10, t=40, b=40), xaxis_title="step",
                      yaxis_title="loss", legend_title_text="run", uirevision="loss", showlegend=True)
    if frame.empty:
        fig.add_annotation(text="No runs yet: start some on the left.", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return fig


def results_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Results of an init comparison: run, status, steps, loss per byte before/after and the gain."""
    out = []
    for r in rows:
        before, after = r.get("before"), r.get("after")
        gain = (before - after) if isinstance(before, (int, float)) and isinstance(after, (int, float)) else None
        out.append({"job": r["job"], "method": r["method"], "status": r["status"], "steps": r.get("steps", ""),
                    "loss/byte before": _num(before), "loss/byte after": _num(after), "improvement": _num(gain)})
    return pd.DataFrame(out, columns=["job", "method", "status", "steps", "loss/byte before", "loss/byte after",
                                      "improvement"])


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) and math.isfinite(value) else ""


# ---------------------------------------------------------------- cross-model control

def compat_markdown(host: str, report: Any) -> str:
    """A PM-MinED compatibility report of one host as Markdown."""
    share = lambda n: f"{100 * n / max(report.total, 1):.1f}%"  # noqa: E731
    counts = " · ".join(f"{k} {v:,} ({share(v)})" for k, v in report.counts.items())
    return f"#### {html.escape(host)} → delta\n{report.total:,} host tokens: {counts}\n\n" + code_block(report.to_text())


def arena_html(prompt: str, panels: Sequence[ArenaPanel]) -> str:
    """Side-by-side output cards, two per host (alone, + delta), in a responsive grid."""
    cards = []
    for p in panels:
        state = "done" if p.done else "generating…"
        cards.append(
            f'<div class="arena-card" data-host="{html.escape(p.host)}" data-variant="{html.escape(p.variant)}" '
            f'data-done="{str(p.done).lower()}" style="border:1px solid #ccc;border-radius:8px;padding:8px;'
            f'background:{"#f6fff6" if "delta" in p.variant else "#f7f7fb"}">'
            f'<div style="font-weight:600">{html.escape(p.host)} — {html.escape(p.variant)} '
            f'<span style="font-weight:400;color:#777">({state}{"; " + html.escape(p.note) if p.note else ""})</span>'
            f'</div><div class="arena-text" style="white-space:pre-wrap;overflow-wrap:anywhere;font-family:monospace;'
            f'margin-top:4px">'
            f'<span style="color:#888">{html.escape(prompt)}</span>{html.escape(p.text)}</div></div>')
    return ('<div class="arena-grid" style="display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px">'
            + "".join(cards) + "</div>")


def token_shift_html(host: str, explanations: Sequence[Any], max_steps: int = 64) -> str:
    """Per generated token: green when the delta boosted it, red when it suppressed it; the tooltip
    lists the host's top tokens with the delta's shift on each."""
    spans = []
    for step in explanations[:max_steps]:
        shift = step.chosen.shift
        alpha = min(1.0, abs(shift) / 4.0)
        colour = f"rgba(44,160,44,{alpha:.2f})" if shift > 0 else f"rgba(214,39,40,{alpha:.2f})"
        tip = "; ".join(f"{t.token!r} {t.host_logprob:.2f}{t.shift:+.2f} → #{t.combined_rank}" for t in step.host_top)
        spans.append(f'<span class="shift-token" title="{html.escape(tip)}" data-shift="{shift:.3f}" '
                     f'style="background:{colour};border-radius:3px;padding:0 1px">{html.escape(step.chosen.token)}'
                     f"</span>")
    boosted, suppressed = _extremes(explanations)
    return (f'<div class="token-shifts" style="overflow-wrap:anywhere;margin-bottom:8px"><div style="font-weight:600">{html.escape(host)} + delta: what the delta '
            f'changed (green = boosted, red = suppressed; hover for the host\'s top tokens)</div>'
            f'<div style="font-family:monospace;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.7">'
            f'{"".join(spans)}</div>'
            f"<div><b>most boosted:</b> {boosted}</div><div><b>most suppressed:</b> {suppressed}</div></div>")


def _extremes(explanations: Sequence[Any], k: int = 6) -> tuple[str, str]:
    """The host-top tokens the delta pushed most up and most down, over all steps."""
    best: dict[str, float] = {}
    for step in explanations:
        for t in (*step.host_top, *step.combined_top):
            if abs(t.shift) > abs(best.get(t.token, 0.0)):
                best[t.token] = t.shift
    ranked = sorted(best.items(), key=lambda kv: kv[1])
    fmt = lambda items: ", ".join(f"<code>{html.escape(repr(t))}</code> {s:+.2f}" for t, s in items) or "—"  # noqa: E731
    return fmt([kv for kv in reversed(ranked) if kv[1] > 0][:k]), fmt([kv for kv in ranked if kv[1] < 0][:k])
