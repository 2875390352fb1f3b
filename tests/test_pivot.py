"""The West Frisian pivot's glue: compare-init arms from precomputed maps, language-pair presets,
and the pivot path in the explorer's entry panel."""

from __future__ import annotations

import types

import pytest

from tests.models import gpt2_folder, text_splits
from tests.tiny import make_bytelevel_bpe
from tokmap_ui.cli import main
from tokmap_ui.errors import ConfigError
from tokmap_ui.io.tokenizers import load_tokenizer
from tokmap_ui.io.tokenmaps import save_token_map
from tokmap_ui.mapping.baselines import MapMethod, build_baseline
from tokmap_ui.train.compare import CompareConfig, compare_init


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A tiny GPT-2 on a 300-token byte-level BPE, a 400-token target tokenizer, train/valid text."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("kit")
    model = gpt2_folder(root / "model", make_bytelevel_bpe(root / "src-tok", vocab_size=300), n_embd=16)
    train, valid = text_splits(root, 50, 10)
    return types.SimpleNamespace(model=model, target=make_bytelevel_bpe(root / "tgt-tok", vocab_size=400),
                                 train=train, valid=valid, source_tok=AutoTokenizer.from_pretrained(model))


def test_compare_config_takes_named_maps():
    base = dict(model="m", target_tokenizer="t", train="a", valid="b", out="o")
    CompareConfig(**base, methods=("tiktotok-pivot", "random"), maps=(("tiktotok-pivot", "p.json"),)).validate()
    CompareConfig(**base, methods=("tiktotok",), maps=(("tiktotok", "d.json"),)).validate()  # no dictionary needed
    with pytest.raises(ConfigError, match="--map tiktotok-pivot=FILE"):
        CompareConfig(**base, methods=("tiktotok-pivot",)).validate()


def test_an_arm_converts_with_the_given_map(kit, tmp_path, one_torch_thread):
    source = kit.source_tok
    # a mean map under a new arm name: if the arm built its own map, by_method would not be all "mean"
    token_map = build_baseline(MapMethod.MEAN, source, load_tokenizer(kit.target))
    path = save_token_map(token_map, tmp_path / "given.json")
    config = CompareConfig(model=str(kit.model), target_tokenizer=str(kit.target), train=str(kit.train),
                           valid=str(kit.valid), out=str(tmp_path / "cmp"), methods=("given-map",), steps=1,
                           batch_size=1, block_size=16, eval_every=1, max_eval_texts=2, maps=(("given-map", str(path)),))
    result = compare_init(config)
    assert result.arms[0].method == "given-map"
    assert result.arms[0].by_method == token_map.stats["by_method"]
    assert (tmp_path / "cmp" / "runs" / "given-map" / "converted" / "config.json").is_file()


def test_compare_cli_rejects_a_malformed_map_option(kit, tmp_path, capsys):
    code = main(["compare-init", "--model", str(kit.model), "--target-tokenizer", str(kit.target), "--train",
                 str(kit.train), "--valid", str(kit.valid), "--methods", "x", "--map", "x", "--out", str(tmp_path)])
    assert code == 2 and "NAME=FILE" in capsys.readouterr().err


# ---------------------------------------------------------------- presets, the pivot map job, the entry panel

from tests.tiny import from_tokens  # noqa: E402
from tokmap_ui.presets import (PRESETS, apply_preset, dictionary_columns, get_preset, pivot_for_job,  # noqa: E402
                               preset_choices, preset_markdown)
from tokmap_ui.project import Role, add_kit_item, role_artifacts, selected  # noqa: E402
from tokmap_ui.store import Store  # noqa: E402


def test_preset_registry():
    assert [key for _, key in preset_choices()] == ["en-nl", "en-fy-via-nl", "nl-fy"]
    assert get_preset("en-fy-via-nl").via.tokenizer == "nl-bpe" and PRESETS["en-nl"].via is None
    with pytest.raises(ConfigError, match="en-fy-via-nl"):
        get_preset("fy-en")
    assert "pivot: `nl-bpe`" in preset_markdown("en-fy-via-nl") and "Pick" in preset_markdown(None)


def test_apply_preset_selects_kit_inputs_and_the_pivot():
    from tokmap_ui.workbench import _dictionary_argv

    with Store.open() as store:
        store.create_project("fy")
        apply_preset(store, "fy", "en-fy-via-nl")
        names = {role: selected(store, "fy", role).name for role in
                 (Role.SOURCE, Role.TARGET, Role.DICTIONARY, Role.TRAIN_TEXT, Role.VALID_TEXT)}
        assert names == {Role.SOURCE: "tiny-en-gpt2", Role.TARGET: "fy-bpe", Role.DICTIONARY: "en-nl (en → nl)",
                         Role.TRAIN_TEXT: "fy/train", Role.VALID_TEXT: "fy/valid"}
        pivot = pivot_for_job(store, "fy")
        assert pivot is not None and pivot.tokenizer.endswith("nl-bpe") and (pivot.src_col, pivot.tgt_col) == ("nl", "fy")
        dictionary = selected(store, "fy", Role.DICTIONARY)
        argv = _dictionary_argv(store, "fy", dictionary, "tiktotok")
        assert argv[argv.index("--src-col") + 1] == "en" and argv[argv.index("--via-dictionary") + 1].endswith("fy-nl.tsv")
        assert "--via-tokenizer" not in _dictionary_argv(store, "fy", dictionary, "fvt")
        count = len(store.list_artifacts("fy"))
        apply_preset(store, "fy", "nl-fy")                 # Dutch tokenizer as a bare source, fy-nl read nl → fy
        source, dictionary = selected(store, "fy", Role.SOURCE), selected(store, "fy", Role.DICTIONARY)
        assert (source.name, source.kind) == ("nl-bpe", "tokenizer")
        assert dictionary_columns(dictionary) == ("nl", "fy") and pivot_for_job(store, "fy") is None
        apply_preset(store, "fy", "en-fy-via-nl")          # back again: nothing registered twice
        assert len(store.list_artifacts("fy")) == count + 2  # nl-bpe source and fy-nl (nl → fy) were new
        assert pivot_for_job(store, "fy") is not None
        add_kit_item(store, "fy", Role.TARGET, "nl-bpe")   # another target: the pivot no longer applies
        assert pivot_for_job(store, "fy") is None
        assert len(role_artifacts(store, "fy", Role.DICTIONARY)) == 2


def _save(tokenizer, folder):
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_explore_map_job_builds_a_pivot_map(tmp_path):
    from tokmap_ui.io.tokenmaps import load_token_map
    from tokmap_ui.mapping.compose import parse_pivot_item
    from tokmap_ui.workbench import main as job

    fy = _save(from_tokens(["[UNK]", "slute", "mar", "kat", "tsjerke", "hûs"], "wordlevel", specials=("[UNK]",)),
               tmp_path / "fy")
    nl = _save(from_tokens(["[UNK]", "sluiten", "maar", "kat", "kerk", "huis"], "wordlevel", specials=("[UNK]",)),
               tmp_path / "nl")
    en = _save(from_tokens(["[UNK]", "[CLS]", "[SEP]", "close", "shut", "but", "cat", "church", "house"], "wordpiece",
                           specials=("[UNK]", "[CLS]", "[SEP]")), tmp_path / "en")
    (tmp_path / "fy-nl.tsv").write_text("fy\tnl\nslute\tsluiten\nmar\tmaar\nkat\tkat\ntsjerke\tkerk\nhûs\thuis\n",
                                        encoding="utf-8")
    (tmp_path / "en-nl.tsv").write_text("en\tnl\nclose\tsluiten\nshut\tsluiten\nbut\tmaar\ncat\tkat\nchurch\tkerk\n"
                                        "house\thuis\n", encoding="utf-8")
    with Store.open() as store:
        store.create_project("p")
    code = job(["explore-map", "--project", "p", "--source", en, "--target", fy, "--dictionary",
                str(tmp_path / "en-nl.tsv"), "--layout", "none", "--name", "fy-en", "--out", str(tmp_path / "out"),
                "--via-tokenizer", nl, "--via-dictionary", str(tmp_path / "fy-nl.tsv"), "--via-src-col", "nl",
                "--via-tgt-col", "fy"])
    assert code == 0
    token_map = load_token_map(tmp_path / "out" / "fy-en.json.gz")
    assert token_map.kind == "pivot"
    entry = token_map.entries[2]  # "mar"
    assert entry.sources == ((5, 1.0),) and entry.evidence[0] == "chain:dictionary→dictionary"
    assert parse_pivot_item(entry.evidence[1])["via"] == "maar"


def test_entry_panel_shows_the_pivot_path():
    from tokmap_ui.mapping.compose import pivot_item
    from tokmap_ui.ui.render import EntryView, entry_markdown, evidence_line

    evidence = ["chain:dictionary→neighbour", pivot_item(1, "Ġsluiten", 0.75, [("close", 0.6), ("shut", 0.4)],
                                                          ["pair:close→sluiten:2"]),
                pivot_item(1, "ĠafsluitÃ«n", 0.25, [("lock", 1.0)]), "pair:sluiten→slute:1"]
    view = EntryView("target", 12, "Ġslute", "neighbour", "auto", [(3, "close", 0.6)], evidence)
    text = entry_markdown(view)
    assert "**Pivot path** (dictionary → neighbour)" in text
    # byte-level text decoded; final tokens weighted by their pivot's share, strongest first
    assert "`Ġslute` → `Ġsluiten` (75%), `Ġafsluitën` (25%) → `close` (45%), `shut` (30%), `lock` (25%)" in text
    assert "hop 2: pair:close→sluiten:2" in evidence_line(evidence[1])
    assert "dictionary ∘ neighbour" in evidence_line(evidence[0])
    plain = entry_markdown(EntryView("target", 1, "x", "dictionary", "auto", [], ["pair:a→b:1"]))
    assert "Pivot path" not in plain


def test_project_tab_preset_dropdown_handler(tmp_path):
    import gradio as gr

    from tokmap_ui.ui.state import AppContext, Session
    from tokmap_ui.ui.tabs.project import PANELS, ProjectTab

    ctx = AppContext.open(tmp_path / "home")
    try:
        ctx.store.create_project("pairs")
        tab, session = ProjectTab(ctx), Session(project="pairs")
        with pytest.raises(gr.Error, match="language pair"):
            tab.use_preset(None, session)
        values = tab.use_preset("nl-fy", session)
        target_pick = values[3 + 2 * PANELS.index(Role.TARGET)]
        assert target_pick["value"] == selected(ctx.store, "pairs", Role.TARGET).id
        assert selected(ctx.store, "pairs", Role.TARGET).name == "fy-bpe"
        assert ctx.store.get_project("pairs").settings["preset"] == "nl-fy"
    finally:
        ctx.store.close()
