"""The review panel of Map & explore: queue, entry actions, keyboard shortcuts, reviewer, progress (issue 8).

The queue is a filtered *page* of the map's entries by priority (frequency in the project's
target text × uncertainty; :func:`tokmap_ui.mapping.review_queue.review_queue`). Actions go
through :class:`~tokmap_ui.mapping.review.ReviewedMap` (append-only audit log, optimistic
versions): a stale write shows the other reviewer's change via ``gr.Error``. The reviewer's name
is asked once per session. Keyboard shortcuts (shown on screen) click the action buttons.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import partial
from typing import Any

import gradio as gr

from tokmap_ui.errors import TokmapError
from tokmap_ui.mapping.review_queue import QueueFilter, review_progress, review_queue, token_frequencies
from tokmap_ui.ui.render import entry_markdown, queue_frame, review_progress_markdown
from tokmap_ui.ui.state import AppContext, MapView, Session
from tokmap_ui.ui.tabs.explore import entry_view

PAGE = 50
STATUSES = ("auto", "approved", "edited", "rejected", "flagged")
ACTIONS = ("approve", "reject", "flag", "edit", "comment", "reset", "undo")
KEYS = {"a": "approve", "r": "reject", "f": "flag", "j": "next", "k": "previous", "u": "undo"}
SHORTCUTS_JS = """
if (!window.__tokmapReviewKeys) {
  window.__tokmapReviewKeys = true;
  const ids = {a: 'review-approve', r: 'review-reject', f: 'review-flag', j: 'review-next', n: 'review-next',
               k: 'review-prev', p: 'review-prev', u: 'review-undo'};
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' ||
        t.tagName === 'SELECT' || t.isContentEditable))) return;
    const id = ids[(e.key || '').toLowerCase()];
    const button = id && document.getElementById(id);
    if (!button || button.offsetParent === null) return;  // only while the Map & explore tab is shown
    e.preventDefault();
    button.click();
  });
}
"""


def parse_sources(text: str, source_tokens: Sequence[str]) -> list[tuple[int, float]]:
    """Sources typed by a reviewer: ``"Ġkat 0.7, #2345 0.3"`` → ``[(id, 0.7), (2345, 0.3)]``.

    Each comma-separated item is a token (exact text; ``Ġ``/``▁`` prefixes are tried too) or
    ``#id``, optionally followed by a weight (default 1).

    Example:
        >>> parse_sources("b 2, #0", ["a", "b"])
        [(1, 2.0), (0, 1.0)]
    """
    index = {t: i for i, t in enumerate(source_tokens)}
    out = []
    for item in (s.strip() for s in (text or "").split(",")):
        if not item:
            continue
        match = re.fullmatch(r"(.+?)\s+([0-9]*\.?[0-9]+)", item)
        name, weight = (match.group(1), float(match.group(2))) if match else (item, 1.0)
        if re.fullmatch(r"#\d+", name):
            token_id = int(name[1:])
            if token_id >= len(source_tokens):
                raise gr.Error(f"source id {token_id} is outside 0-{len(source_tokens) - 1}.")
        else:
            token_id = next((index[c] for c in (name, "Ġ" + name, "▁" + name) if c in index), None)
            if token_id is None:
                raise gr.Error(f"'{name}' is not a source token. Fix: type its exact text or #id "
                               "(click a source point to see ids).")
        out.append((token_id, weight))
    return out


def sources_text(view: MapView, target_id: int) -> str:
    """The entry's sources in the form :func:`parse_sources` reads (to prefill the edit box)."""
    entry = view.reviewed.entry(target_id)
    return ", ".join(f"#{i} {w:.3g}" for i, w in entry.sources)


class ReviewPanel:
    """Queue, actions and progress for the map open in the session."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def _view(self, session: Session) -> MapView:
        if session.map_id is None:
            raise gr.Error("No map is open: build or pick one first.")
        return self.ctx.map_view(session.map_id)

    def _frequencies(self, view: MapView, session: Session) -> Any:
        from tokmap_ui.io.files import read_text_lines
        from tokmap_ui.project import Role, selected

        text, target = selected(self.ctx.store, session.project, Role.TRAIN_TEXT), \
            selected(self.ctx.store, session.project, Role.TARGET)
        if text is None or target is None or target.sha256 is None:
            return None
        key = f"freq:{text.sha256}:{view.reviewed.base.target.sha256}"
        if key in view.extras:
            return view.extras[key]
        tokenizer = self.ctx.tokenizer(target)
        if len(tokenizer) != view.reviewed.base.target.vocab_size:
            return None  # the project's target changed since the map was built
        lines = read_text_lines(text.path, "training text")[:20_000]
        view.extras[key] = token_frequencies(tokenizer, lines, view.reviewed.base.target.vocab_size)
        return view.extras[key]

    # ------------------------------------------------------------------ handlers
    def set_reviewer(self, name: str, session: Session) -> tuple[Session, str, Any]:
        """Remember the reviewer's name for this session."""
        if not (name or "").strip():
            raise gr.Error("Type your name: every decision is logged with its reviewer.")
        session.reviewer = name.strip()
        return session, f"Reviewing as **{session.reviewer}**", gr.update(visible=False)

    def queue(self, status: list[str], method: list[str], low: bool, backed: str, search: str,
              session: Session) -> tuple[Session, Any, str]:
        """A page of the review queue with the filters, and the review progress."""
        if session.map_id is None:
            return session, None, "*No map open.*"
        view = self._view(session)
        filters = QueueFilter(status=tuple(status) or None, method=tuple(method) or None,
                              low_confidence=True if low else None,
                              dictionary_backed={"yes": True, "no": False}.get(backed), search=search or None)
        items = review_queue(view.reviewed, filters, frequencies=self._frequencies(view, session),
                             source_tokens=view.source_tokens, limit=PAGE)
        session.queue = [it.target_id for it in items]
        progress = review_progress_markdown(review_progress(view.reviewed))
        return session, queue_frame(items, view.source_tokens, view.target_tokens), progress

    def pick_row(self, session: Session, evt: gr.SelectData) -> tuple[Session, str, str, str]:
        """A click on a queue row opens that entry."""
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if not 0 <= int(row) < len(session.queue):
            raise gr.Error("That row is no longer in the queue: refresh it.")
        return self.open(session.queue[int(row)], session)

    def open(self, target_id: int, session: Session) -> tuple[Session, str, str, str]:
        view = self._view(session)
        session.entry = int(target_id)
        entry = view.reviewed.entry(session.entry)
        return session, entry_markdown(entry_view(view, "target", session.entry)), \
            sources_text(view, session.entry), entry.comment

    def step(self, delta: int, session: Session) -> tuple[Session, str, str, str]:
        """Next (+1) or previous (-1) entry of the queue page."""
        if not session.queue:
            raise gr.Error("The queue is empty: change the filters.")
        here = session.queue.index(session.entry) if session.entry in session.queue else -1
        return self.open(session.queue[max(0, min(len(session.queue) - 1, here + delta))], session)

    def act(self, action: str, sources: str, comment: str, session: Session) -> tuple[Session, str, str, str]:
        """approve / reject / flag / edit (sources) / comment / reset / undo on the open entry."""
        if not session.reviewer:
            raise gr.Error("Who is reviewing? Type your name in 'Reviewer' first (asked once per session).")
        view = self._view(session)
        if action != "undo" and session.entry is None:
            raise gr.Error("Open an entry first: click a target point or a queue row.")
        status = {"approve": "approved", "reject": "rejected", "flag": "flagged", "reset": "auto"}.get(action)
        try:
            with view.lock:
                if action == "undo":
                    undone = view.reviewed.undo(session.reviewer)
                    session.entry = undone[-1].target_id if undone else session.entry
                elif action == "edit":
                    view.reviewed.edit(session.entry, session.reviewer, parse_sources(sources, view.source_tokens),
                                       comment=comment or None)
                elif action == "comment":
                    view.reviewed.change(session.entry, session.reviewer, comment=comment or "")
                elif status is not None:
                    view.reviewed.change(session.entry, session.reviewer, status=status)
                else:
                    raise gr.Error(f"unknown action '{action}'; use one of {', '.join(ACTIONS)}.")
        except TokmapError as err:  # StaleEditError names the other reviewer's change
            raise gr.Error(str(err)) from None
        if action in ("approve", "reject", "flag") and session.entry in session.queue[:-1]:
            return self.step(+1, session)
        if session.entry is None:
            return session, "*Nothing to undo.*", "", ""
        return self.open(session.entry, session)

    # ------------------------------------------------------------------ layout
    def build(self, session: gr.State, explore: Any) -> None:
        gr.Markdown("### Review")
        with gr.Row(visible=True) as ask:
            name = gr.Textbox(label="Reviewer (asked once per session)", placeholder="your name", scale=3,
                              elem_id="reviewer-name")
            start = gr.Button("Start reviewing", scale=1, elem_id="reviewer-set")
        who = gr.Markdown("", elem_id="reviewer-who")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=320):
                buttons = {}
                with gr.Row():
                    for action, label in (("approve", "✓ Approve (a)"), ("reject", "✗ Reject (r)"),
                                          ("flag", "⚑ Flag (f)")):
                        buttons[action] = gr.Button(label, size="sm", elem_id=f"review-{action}")
                with gr.Row():
                    prev = gr.Button("◀ Previous (k)", size="sm", elem_id="review-prev")
                    nxt = gr.Button("Next (j) ▶", size="sm", elem_id="review-next")
                    buttons["undo"] = gr.Button("↶ Undo (u)", size="sm", elem_id="review-undo")
                sources = gr.Textbox(label="Sources (edit: `token weight, #id weight`)", elem_id="review-sources")
                comment = gr.Textbox(label="Comment", elem_id="review-comment")
                with gr.Row():
                    buttons["edit"] = gr.Button("Save edit", size="sm", elem_id="review-edit")
                    buttons["comment"] = gr.Button("Save comment", size="sm")
                    buttons["reset"] = gr.Button("Back to proposal", size="sm")
                gr.HTML("<div class='kbd-help' style='font-size:0.9em;color:#555'>Keyboard: <kbd>a</kbd> approve · "
                        "<kbd>r</kbd> reject · <kbd>f</kbd> flag · <kbd>j</kbd> next · <kbd>k</kbd> previous · "
                        "<kbd>u</kbd> undo (outside text fields)</div>", js_on_load=SHORTCUTS_JS,
                        elem_id="review-keys")
            with gr.Column(scale=2):
                with gr.Row():
                    status = gr.CheckboxGroup(list(STATUSES), label="Status", scale=3)
                    backed = gr.Radio(["any", "yes", "no"], value="any", label="Dictionary-backed", scale=2)
                with gr.Row():
                    method = gr.Dropdown(["special", "identical", "dictionary", "aligned", "neighbour", "fvt", "mean",
                                          "random", "unmapped", "manual", "pm-mined", "exact", "byte"],
                                         multiselect=True, label="Method", scale=3)
                    low = gr.Checkbox(label="Low confidence only", scale=1)
                    search = gr.Textbox(label="Search", placeholder="token, comment, source or id", scale=2)
                self.progress = gr.Markdown(elem_id="review-progress")
                self.table = gr.Dataframe(queue_frame([], []), interactive=False, max_height=380,
                                          elem_id="review-queue", wrap=False)
        filters = [status, method, low, backed, search, session]
        entry_out = [session, explore.entry, sources, comment]
        queue_out = [session, self.table, self.progress]
        start.click(self.set_reviewer, [name, session], [session, who, ask], api_name="set_reviewer")
        name.submit(self.set_reviewer, [name, session], [session, who, ask], api_visibility="private")
        refresh = dict(fn=self.queue, inputs=filters, outputs=queue_out, api_visibility="private",
                       show_progress="hidden")
        for widget in (status, method, low, backed):
            widget.change(**refresh)
        search.submit(self.queue, filters, queue_out, api_name="review_queue")
        explore.opened.then(**refresh)
        self.table.select(self.pick_row, session, entry_out, api_visibility="private")
        prev.click(partial(self.step, -1), session, entry_out, api_visibility="private")
        nxt.click(partial(self.step, +1), session, entry_out, api_visibility="private")
        # After an action: the entry first (the reviewer reads it), then the queue and the plot's colours.
        recolour = dict(fn=explore.recolour_after_review, inputs=[explore.colour_by, session], outputs=explore.plot,
                        api_visibility="private", show_progress="hidden")
        action_box = gr.Textbox(visible=False)
        for action, button in buttons.items():
            button.click(partial(self.act, action), [sources, comment, session], entry_out,
                         api_visibility="private").then(**refresh).then(**recolour)
        action_box.submit(self.act, [action_box, sources, comment, session], entry_out, api_name="review") \
            .then(**refresh).then(**recolour)
