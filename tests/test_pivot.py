"""The West Frisian pivot's glue: compare-init arms from precomputed maps, language-pair presets,
and the pivot path in the explorer's entry panel."""

from __future__ import annotations

import types

import pytest
import torch

from tests.tiny import corpus_lines, make_bytelevel_bpe
from tokmap_ui.cli import main
from tokmap_ui.errors import ConfigError
from tokmap_ui.io.tokenizers import load_tokenizer
from tokmap_ui.io.tokenmaps import save_token_map
from tokmap_ui.mapping.baselines import MapMethod, build_baseline
from tokmap_ui.train.compare import CompareConfig, compare_init


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A tiny GPT-2 on a 300-token byte-level BPE, a 400-token target tokenizer, train/valid text."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("kit")
    source_tok = AutoTokenizer.from_pretrained(make_bytelevel_bpe(root / "src-tok", vocab_size=300))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(source_tok), n_layer=1, n_embd=16, n_head=2, n_positions=64,
                                       bos_token_id=0, eos_token_id=0))
    model.save_pretrained(root / "model")
    source_tok.save_pretrained(root / "model")
    target = make_bytelevel_bpe(root / "tgt-tok", vocab_size=400)
    lines = corpus_lines(60)
    (root / "train.txt").write_text("\n".join(lines[:50]) + "\n", encoding="utf-8")
    (root / "valid.txt").write_text("\n".join(lines[50:]) + "\n", encoding="utf-8")
    return types.SimpleNamespace(model=root / "model", target=target, train=root / "train.txt",
                                 valid=root / "valid.txt", source_tok=source_tok)


def test_compare_config_takes_named_maps():
    base = dict(model="m", target_tokenizer="t", train="a", valid="b", out="o")
    CompareConfig(**base, methods=("tiktotok-pivot", "random"), maps=(("tiktotok-pivot", "p.json"),)).validate()
    CompareConfig(**base, methods=("tiktotok",), maps=(("tiktotok", "d.json"),)).validate()  # no dictionary needed
    with pytest.raises(ConfigError, match="--map tiktotok-pivot=FILE"):
        CompareConfig(**base, methods=("tiktotok-pivot",)).validate()


def test_an_arm_converts_with_the_given_map(kit, tmp_path):
    torch.set_num_threads(1)
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
