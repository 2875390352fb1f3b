"""UI handlers called as plain functions (no server, no browser) on a tiny demo workspace.

The module fixture opens a workspace with the demo project plus two tiny LMs
(``tests/api/workspace.py``) and builds one FVT map with its PCA layout in-process
(``python -m tokmap_ui.workbench explore-map`` run as ``main([...])``).
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import pandas as pd
import pytest

from tests.api.workspace import prepare_demo
from tokmap_ui.project import DEMO_PROJECT, Role, selected
from tokmap_ui.ui.components import decode_payload
from tokmap_ui.cmc.arena import ArenaPanel
from tokmap_ui.ui.render import (EntryView, arena_html, coverage_figure, entry_markdown, evidence_line,
                                 loss_figure, loss_frame, readable_tokens, results_frame)
from tokmap_ui.ui.state import AppContext, ObjectCache, Session
from tokmap_ui.ui.tabs.cmc import CmcTab
from tokmap_ui.ui.tabs.explore import ExploreTab, find_token
from tokmap_ui.ui.tabs.finetune import FinetuneTab, run_summary
from tokmap_ui.ui.tabs.jobs import JobsTab
from tokmap_ui.ui.tabs.project import ProjectTab
from tokmap_ui.ui.tabs.review import ReviewPanel, parse_sources


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """(ctx, map_id): the demo workspace with tiny models and one FVT map with a PCA layout."""
    from tokmap_ui import workbench

    home = tmp_path_factory.mktemp("ui-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TOKMAP_HOME", str(home))
        ctx = AppContext.open(home)
        prepare_demo(ctx.store, tmp_path_factory.mktemp("models"))
        store = ctx.store
        source, target = selected(store, DEMO_PROJECT, Role.SOURCE), selected(store, DEMO_PROJECT, Role.TARGET)
        code = workbench.main(["explore-map", "--project", DEMO_PROJECT, "--source", str(source.path),
                               "--target", str(target.path), "--method", "fvt", "--layout", "pca",
                               "--name", "fvt-map", "--out", str(home / "run")])
    assert code == 0
    yield ctx, store.list_token_maps(DEMO_PROJECT)[-1].id
    store.close()


def session_with_map(ctx, map_id) -> Session:
    session = Session()
    ExploreTab(ctx).open_map(map_id, "language", session)
    return session


# ---------------------------------------------------------------- Project & data

def test_project_values_show_the_demo_selection(ws):
    ctx, _ = ws
    values = ProjectTab(ctx).project_values(Session())
    table = values[2]
    assert isinstance(table, pd.DataFrame) and "tiny-gpt2" in set(table["name"])
    source_pick, source_summary = values[3], values[4]
    assert source_pick["value"] == selected(ctx.store, DEMO_PROJECT, Role.SOURCE).id
    assert "GPT2LMHeadModel" in source_summary and "vocabulary" in source_summary


def test_bad_upload_shows_the_core_message_and_changes_nothing(ws, tmp_path):
    ctx, _ = ws
    tab = ProjectTab(ctx)
    before = [a.id for a in ctx.store.list_artifacts(DEMO_PROJECT)]
    chosen = selected(ctx.store, DEMO_PROJECT, Role.TARGET).id
    bad = tmp_path / "tokenizer.json"
    bad.write_bytes(b"\x00\x01binary\xff")
    with pytest.raises(gr.Error, match="tokenizer.json"):
        tab.add_upload("target", str(bad), Session())
    dictionary = tmp_path / "dict.tsv"
    dictionary.write_text("only-one-column\n", encoding="utf-8")
    with pytest.raises(gr.Error, match="dict.tsv"):
        tab.add_upload("dictionary", str(dictionary), Session())
    assert [a.id for a in ctx.store.list_artifacts(DEMO_PROJECT)] == before
    assert selected(ctx.store, DEMO_PROJECT, Role.TARGET).id == chosen
    assert not any((ctx.store.project_dir(DEMO_PROJECT) / "inputs" / "target").glob("tokenizer*"))


def test_train_tokenizer_and_choose_back(ws, tmp_path):
    from tests.tiny import corpus_lines

    ctx, _ = ws
    tab = ProjectTab(ctx)
    original = selected(ctx.store, DEMO_PROJECT, Role.TARGET).id
    text = tmp_path / "nl.txt"
    text.write_text("\n".join(corpus_lines(200)), encoding="utf-8")
    values = tab.train_tokenizer(str(text), 300, "wordpiece", Session())
    trained = selected(ctx.store, DEMO_PROJECT, Role.TARGET)
    assert trained.id != original and trained.meta["trained"]["algorithm"] == "wordpiece"
    assert "WordPiece" in values[6]  # the target panel's summary
    tab.choose("target", original, Session())
    assert selected(ctx.store, DEMO_PROJECT, Role.TARGET).id == original


def test_create_and_open_projects(ws):
    ctx, _ = ws
    tab = ProjectTab(ctx)
    session = Session()
    values = tab.create_project("empty one", session)
    assert session.project == "empty one" and "No source yet" in values[4]
    with pytest.raises(gr.Error, match="already exists"):
        tab.create_project("Empty One", session)
    with pytest.raises(gr.Error, match="no project"):
        tab.open_project("nope", session)
    tab.open_project(DEMO_PROJECT, session)
    assert session.project == DEMO_PROJECT


# ---------------------------------------------------------------- Map & explore

def test_open_map_click_search_and_entry(ws):
    ctx, map_id = ws
    tab = ExploreTab(ctx)
    session = Session()
    _, figure, payload, info = tab.open_map(map_id, "language", session)
    assert session.map_id == map_id and "fvt" in info
    arrays = decode_payload(payload)
    view = ctx.map_view(map_id)
    assert len(arrays["ids"]) == len(view.source_tokens) + len(view.target_tokens)
    assert "fvt" in {bar.y for bar in figure.data}.pop()
    point = int(view.layout.point_of("target", 300))
    session, text = tab.on_click(session, {"point": point})
    assert text.startswith("### target token #300") and "Nearest source tokens" in text
    assert session.entry == 300
    session, update, text = tab.on_search(session, {"query": "target #301"})
    assert update["focus"] == view.layout.point_of("target", 301) and "#301" in text
    rows = [int(view.layout.point_of("target", t)) for t in (300, 301)] + [int(view.layout.point_of("source", 2))]
    summary = tab.on_lasso(session, {"points": rows})
    assert summary.startswith("**3 points selected**: 1 source, 2 target (fvt 2)") and view.target_tokens[300] in summary
    _, text = tab.show_entry("source", 5, session)
    assert text.startswith("### source token #5")
    with pytest.raises(gr.Error, match="outside"):
        tab.show_entry("target", 10**6, session)
    with pytest.raises(gr.Error, match="No map is open"):
        tab.show_entry("target", 1, Session())


def test_recolour_by_method_and_status(ws):
    ctx, map_id = ws
    tab = ExploreTab(ctx)
    session = session_with_map(ctx, map_id)
    by_method = tab.recolour("method", session)
    assert "xy" not in by_method and "fvt" in by_method["colour"]["names"]
    by_status = tab.recolour("review status", session)
    assert set(by_status["colour"]["names"]) >= {"source", "auto"}


def test_plot_colours_follow_review_actions_incrementally(ws):
    from tokmap_ui.ui.components.token_map_plot import decode_array
    from tokmap_ui.ui.tabs.explore import _colouring_from_scratch

    ctx, map_id = ws
    tab, panel = ExploreTab(ctx), ReviewPanel(ctx)
    session = session_with_map(ctx, map_id)
    panel.set_reviewer("cleo", session)
    tab.recolour("review status", session)  # cached at the current event
    panel.open(77, session)
    panel.act("reject", "", "", session)
    panel.open(78, session)
    panel.act("edit", "#5 1", "", session)
    assert tab.recolour_after_review("language", session) == gr.skip()  # side colours do not change
    view = ctx.map_view(map_id)
    for by, expected in (("review status", {77: "rejected", 78: "edited"}), ("method", {78: "manual"})):
        colour = tab.recolour_after_review(by, session)["colour"]
        names = [colour["names"][c] for c in decode_array(colour["codes"], "uint8")]
        for target, name in expected.items():
            assert names[view.layout.point_of("target", target)] == name
        scratch = _colouring_from_scratch(view, by)  # the incremental update agrees with a full recount
        assert names == [scratch.names[c] for c in scratch.codes]
    panel.act("undo", "", "", session)
    panel.act("undo", "", "", session)


def test_find_token_by_text_and_id(ws):
    ctx, map_id = ws
    view = ctx.map_view(map_id)
    word = next(t for t in view.target_tokens if t.startswith("Ġ") and len(t) > 4 and t[1:] not in view.target_tokens)
    assert find_token(view, word) == ("target", view.target_tokens.index(word))
    assert find_token(view, word[1:]) == ("target", view.target_tokens.index(word))
    assert find_token(view, "source #3") == ("source", 3)
    assert find_token(view, "no such token at all")[1] is None


# ---------------------------------------------------------------- review

def test_review_actions_queue_undo_and_stale_edits(ws):
    from tokmap_ui.io.review_workspace import open_reviewed_map

    ctx, map_id = ws
    panel = ReviewPanel(ctx)
    session = session_with_map(ctx, map_id)
    panel.open(40, session)
    with pytest.raises(gr.Error, match="Who is reviewing"):
        panel.act("approve", "", "", session)
    session, who, ask = panel.set_reviewer("  ana ", session)
    assert session.reviewer == "ana" and "ana" in who and ask["visible"] is False

    panel.queue([], [], False, "any", "", session)
    first = session.queue[0]
    panel.open(first, session)
    panel.act("approve", "", "", session)
    assert ctx.map_view(map_id).reviewed.entry(first).status == "approved"
    assert session.entry == session.queue[1]  # approving moves on to the next entry
    session, table, progress = panel.queue(["approved"], [], False, "any", "", session)
    assert list(table["id"]) == [first] and "reviewed 1/" in progress

    panel.open(41, session)
    _, text, sources, _ = panel.act("edit", "#3 2, #4 1", "looks odd", session)
    entry = ctx.map_view(map_id).reviewed.entry(41)
    assert entry.status == "edited" and dict(entry.sources) == {3: 2.0, 4: 1.0} and entry.comment == "looks odd"
    assert "#3 2" in sources and "edited" in text
    panel.act("undo", "", "", session)
    assert ctx.map_view(map_id).reviewed.entry(41).status == "auto"
    with pytest.raises(gr.Error, match="not a source token"):
        panel.act("edit", "no-such-token 1", "", session)

    open_reviewed_map(ctx.store, map_id).flag(42, "bob")  # another reviewer, behind this view's back
    panel.open(42, session)
    view = ctx.map_view(map_id)
    view.reviewed._states.pop(42, None)  # simulate a view that read the entry before bob's change
    view.reviewed._decisions.pop(42, None)
    with pytest.raises(gr.Error, match="bob"):
        panel.act("reject", "", "", session)


def test_parse_sources_tokens_ids_and_weights():
    tokens = ["a", "Ġkat", "##s"]
    assert parse_sources("kat 0.5, #2, a 2", tokens) == [(1, 0.5), (2, 1.0), (0, 2.0)]
    assert parse_sources("", tokens) == []
    with pytest.raises(gr.Error, match="outside"):
        parse_sources("#9", tokens)


# ---------------------------------------------------------------- fine-tune, CMC, jobs

def test_finetune_tab_guards_and_summaries(ws):
    from tokmap_ui.store import JobStatus

    ctx, _ = ws
    tab = FinetuneTab(ctx)
    with pytest.raises(gr.Error, match="no init method"):
        tab.start([], 5, 2, 32, 1e-3, Session())
    with pytest.raises(gr.Error, match="'reviewed' uses the map"):
        tab.start(["reviewed"], 5, 2, 32, 1e-3, Session())
    ctx.store.create_project("no runs")
    curves, table, status = tab.poll(Session(project="no runs"))
    assert status == "No runs yet."
    assert curves.layout.title.text == "Training loss of all runs" and isinstance(table, pd.DataFrame)
    job = ctx.store.create_job("compare-init", {"argv": ["init-run", "--method", "fvt", "--out", "/x"]},
                               project=DEMO_PROJECT)
    job = ctx.store.update_job(job.id, status=JobStatus.RUNNING)
    job = ctx.store.update_job(job.id, progress={"step": 4, "total_steps": 8, "evals": [[0, 2.5, 9.0], [4, 2.0, 8.0]],
                                                 "losses": [[1, 9.0], [2, 8.5]]})
    row = run_summary(job)
    assert row["method"] == "fvt" and row["before"] == 2.5 and row["after"] == 2.0 and row["steps"] == "4/8"
    ctx.store.update_job(job.id, status=JobStatus.CANCELLED)
    with pytest.raises(gr.Error, match="has no model yet"):
        tab.download(job.id, Session())


def test_cmc_compatibility_and_arena_stream(ws, tmp_path):
    from tokmap_ui.train.delta import DeltaConfig, train_delta

    ctx, _ = ws
    tab = CmcTab(ctx)
    session = Session()
    template, hosts, data, _ = tab.refresh(session)
    report = tab.compatibility(template["value"], hosts["value"], session)
    assert "tiny-llama → delta" in report and "approximate" in report
    data_path = ctx.store.get_artifact(data["value"]).path
    result = train_delta(DeltaConfig(template=str(ctx.store.get_artifact(template["value"]).path), data=str(data_path),
                                     task="unlearn", out=str(tmp_path / "delta-run"), steps=2, batch_size=2,
                                     block_size=32, checkpoint_every=0))
    outputs = list(tab.arena("the cat", str(result.delta_dir), hosts["value"], 1.0, 0.0, 1.0, 0, 6, 0, False))
    assert len(outputs) > 2  # streamed: several partial updates before the last
    grid, shifts = outputs[-1]
    cards = 2 * len(hosts["value"])  # each host alone and host + delta
    assert cards >= 4 and grid.count('class="arena-card"') == cards and grid.count('data-done="true"') == cards
    assert "host + delta" in grid and "host alone" in grid
    assert shifts.count("class=\"shift-token\"") >= 6 and "most boosted" in shifts
    with pytest.raises(gr.Error, match="Pick a trained delta"):
        list(tab.arena("x", None, hosts["value"], 1.0, 0.0, 1.0, 0, 4, 0, False))


def test_jobs_tab_lists_and_explains_errors(ws):
    ctx, _ = ws
    tab = JobsTab(ctx)
    table, detail = tab.list_jobs(Session())
    assert list(table.columns)[:3] == ["id", "kind", "status"] and "Select a job" in detail
    with pytest.raises(gr.Error, match="no job"):
        tab.cancel(987654, Session())
    with pytest.raises(gr.Error, match="Select a job"):
        tab.resume(None, Session())


# ---------------------------------------------------------------- render and state

def test_render_functions():
    view = EntryView("target", 7, "Ġkat", "dictionary", "approved", [(3, "Ġcat", 0.75), (9, "Ġkitten", 0.25)],
                     ["pair:cat→kat:2", "nn:Ġdog:0.8"], "fine", "ana", 2, [("Ġcat", 0.9)], [("Ġpoes", 0.8)])
    text = entry_markdown(view)
    assert "target token #7" in text and "| `Ġcat` | 3 | 75.0% |" in text and "**cat → kat** (×2)" in text
    assert "last reviewer: ana" in text and "Nearest target tokens:** `Ġpoes` (0.80)" in text
    assert evidence_line("fvt:a|b") == "fvt:a|b"
    fig = coverage_figure({"dictionary": 6, "fvt": 2})
    assert list(fig.data[0].y) == ["fvt", "dictionary"]
    frame = loss_frame([("#1 fvt", [[1, 3.0], [2, float("nan")]]), ("#2 mean", [[1, 4.0]])])
    assert frame.to_dict("records") == [{"step": 1.0, "loss": 3.0, "run": "#1 fvt"},
                                       {"step": 1.0, "loss": 4.0, "run": "#2 mean"}]
    assert [t.name for t in loss_figure(frame).data] == ["#1 fvt", "#2 mean"]
    assert loss_figure(loss_frame([])).layout.annotations  # "No runs yet"
    results = results_frame([{"job": 1, "method": "fvt", "status": "succeeded", "before": 2.0, "after": 1.5}])
    assert results.iloc[0]["improvement"] == "0.5000"
    html = arena_html("<p>", [ArenaPanel("h", "host alone", "x<y", True)])
    assert "&lt;p&gt;" in html and "x&lt;y" in html


def test_readable_tokens_decode_byte_level():
    from tokmap_ui.io.demo_kit import demo_kit_paths
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.vocab import Vocabulary

    vocab = Vocabulary.from_tokenizer(load_tokenizer(demo_kit_paths().tokenizers["nl-bpe"]))
    readable = readable_tokens(vocab)
    assert readable[0] == "<s>" and len(readable) == len(vocab)
    i = next(i for i, t in enumerate(vocab.tokens) if "Ã«" in t)
    assert "ë" in readable[i] and "Ã" not in readable[i]


def test_object_cache_builds_each_key_once():
    cache, calls = ObjectCache(max_items=2), []
    for key in ("a", "a", "b", "c", "a"):
        cache.get(key, lambda k=key: calls.append(k) or k.upper())
    assert calls == ["a", "b", "c", "a"]  # "a" was evicted by "c" (LRU of 2)
    with pytest.raises(ZeroDivisionError):
        cache.get("bad", lambda: 1 / 0)
    assert cache.get("bad", lambda: 5) == 5  # a failed build is retried, not cached
