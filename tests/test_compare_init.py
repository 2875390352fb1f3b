"""compare-init: each init method's arm, the steps-to-reference number, the table, the plots, the CLI."""

from __future__ import annotations

import argparse
import json
import types

import pytest

from tests.models import gpt2_folder, text_splits
from tests.tiny import make_bytelevel_bpe
from tokmap_ui.errors import ConfigError
from tokmap_ui.train.compare import (ArmResult, CompareConfig, compare_init, curves_png, results_table,
                                     steps_to_reach, summarise)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A tiny fp16 GPT-2 on a 300-token byte-level BPE, a 400-token target tokenizer, train/valid text."""
    root = tmp_path_factory.mktemp("kit")
    gpt2_folder(root / "model", make_bytelevel_bpe(root / "src-tok", vocab_size=300), fp16=True)
    target = make_bytelevel_bpe(root / "tgt-tok", vocab_size=400)
    text_splits(root, 100, 20)
    return types.SimpleNamespace(model=root / "model", target=target, train=root / "train.txt",
                                 valid=root / "valid.txt")


def _arm(method: str, curve: list[tuple[int, float]]) -> ArmResult:
    return ArmResult(method, curve, tokens_per_s=100.0, convert_s=0.1, train_s=1.0, by_method={})


def test_steps_to_reach_interpolates_and_reports_never():
    curve = [(0, 3.0), (10, 2.0), (20, 1.0)]
    assert steps_to_reach(curve, 1.5) == 15.0
    assert steps_to_reach(curve, 3.5) == 0.0
    assert steps_to_reach(curve, 0.5) is None
    assert steps_to_reach(curve, 2.0) == 10.0


def test_summary_table_and_png_from_known_curves(tmp_path):
    config = CompareConfig(model="m", target_tokenizer="t", train="a", valid="b", out=str(tmp_path),
                           methods=("tiktotok", "random"), dictionary="d.tsv", steps=40)
    arms = [_arm("tiktotok", [(0, 2.0), (10, 1.5), (20, 1.2), (40, 1.0)]),
            _arm("random", [(0, 4.0), (10, 3.0), (20, 2.0), (40, 1.5)])]
    result = summarise(config, arms)
    assert result.steps_to_reference == 10.0 and result.fraction_of_budget == 0.25
    table = results_table(result)
    assert "| tiktotok | 2.0000 | 1.0000 | -1.0000 |" in table and "0.250 of the 40-step budget" in table
    assert json.loads(json.dumps(result.to_dict()))["arms"][1]["loss_per_byte_final"] == 1.5
    png = curves_png(result)
    assert png.startswith(b"\x89PNG")
    never = summarise(config, [_arm("tiktotok", [(0, 2.0), (40, 1.9)]), arms[1]])
    assert never.steps_to_reference is None and "did not reach" in results_table(never)


def test_config_refuses_unknown_method_and_tiktotok_without_dictionary():
    base = dict(model="m", target_tokenizer="t", train="a", valid="b", out="o")
    with pytest.raises(ConfigError, match="unknown"):
        CompareConfig(**base, methods=("nope",)).validate()
    with pytest.raises(ConfigError, match="dictionary"):
        CompareConfig(**base, methods=("tiktotok", "random")).validate()
    with pytest.raises(ConfigError, match="twice"):
        CompareConfig(**base, methods=("fvt", "fvt")).validate()


def test_two_methods_three_steps_write_every_output(kit, tmp_path):
    out = tmp_path / "cmp"
    config = CompareConfig(model=str(kit.model), target_tokenizer=str(kit.target), train=str(kit.train),
                           valid=str(kit.valid), out=str(out), methods=("fvt", "random"), steps=3, batch_size=2,
                           block_size=32, lr=3e-3, eval_every=1, max_eval_texts=8)
    events = []
    result = compare_init(config, on_event=events.append)
    assert [a.method for a in result.arms] == ["fvt", "random"]
    for arm in result.arms:
        assert [s for s, _ in arm.curve] == [0, 1, 2, 3]
        assert all(v > 0 for _, v in arm.curve)  # NaN (an fp16 AdamW step) fails this
        assert (out / "runs" / arm.method / "finetune" / "model" / "config.json").is_file()
    assert {e["method"] for e in events if e["event"] == "eval"} == {"fvt", "random"}
    data = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert data["first_method"] == "fvt" and len(data["arms"]) == 2
    assert "| random |" in (out / "table.md").read_text(encoding="utf-8")
    assert "plotly" in (out / "curves.html").read_text(encoding="utf-8")
    assert (out / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_cli_registers_and_reports_bad_input(kit, tmp_path, capsys):
    from tokmap_ui.cli import compare

    parser = argparse.ArgumentParser()
    compare.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare-init", "--model", str(kit.model), "--target-tokenizer", str(kit.target),
                              "--train", str(kit.train), "--valid", str(kit.valid), "--methods", "tiktotok",
                              "--out", str(tmp_path / "o")])
    assert args.steps == 60 and args.methods == ["tiktotok"]
    with pytest.raises(ConfigError, match="dictionary"):
        args.run(args)
