"""CMC delta training: zero start, losses and guard, data errors, template cache, resume, saved folder, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.models import save_pair, tiny_pair
from tests.tiny import corpus_lines
from tokmap_ui.cli import main
from tokmap_ui.errors import ConfigError, InputFileError
from tokmap_ui.io.deltas import load_delta
from tokmap_ui.train.data import IGNORE_INDEX
from tokmap_ui.train.delta import DeltaConfig, train_delta
from tokmap_ui.train.delta_data import (OPEN_INSTRUCT, TemplateCache, collate, instruct_examples, read_jsonl,
                                        unlearn_examples)
from tokmap_ui.train.delta_model import build_delta, combined_logprobs, token_losses, unlearn_loss


def _write_unlearn(path, n=80):
    with open(path, "w", encoding="utf-8") as handle:
        for i, line in enumerate(corpus_lines(n)):
            # forget = the English sentences, retain = the Dutch ones (tests/tiny.py alternates them)
            handle.write(json.dumps({"text": line, "split": "forget" if i % 2 else "retain"}) + "\n")
    return path


def _small_config(tmp_path) -> str:
    """A delta smaller than the tiny preset, to keep training tests fast."""
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=7).save_pretrained(tmp_path / "small-delta")
    return str(tmp_path / "small-delta" / "config.json")


# ---------------------------------------------------------------- the delta model

@pytest.mark.parametrize("family,tie", [("gpt2", True), ("llama", True), ("llama", False)])
def test_step_zero_combination_equals_the_template_exactly(family, tie):
    template, tok = tiny_pair(family, tie=tie)
    delta, preset = build_delta(template, tok, "tiny")
    assert preset == "tiny" and type(delta).__name__ == type(template).__name__
    head, table = delta.get_output_embeddings().weight, delta.get_input_embeddings().weight
    assert not delta.config.tie_word_embeddings and head.data_ptr() != table.data_ptr()
    assert float(head.detach().abs().sum()) == 0.0 and float(table.detach().abs().sum()) > 0.0  # zeroing the head kept the inputs
    ids = torch.tensor([tok("the cat sat on the mat")["input_ids"]])
    with torch.no_grad():
        t_lp = torch.log_softmax(template(ids).logits.float(), -1)
        combined = combined_logprobs(t_lp, delta(ids).logits, 1.0)
    assert torch.equal(combined, t_lp) or torch.allclose(combined, t_lp, atol=1e-7)
    assert delta.config.vocab_size == template.config.vocab_size


def test_preset_from_config_file_and_vocab_mismatch(tmp_path):
    template, tok = tiny_pair("gpt2")
    from transformers import GPT2Config

    GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=7).save_pretrained(tmp_path / "cfg")
    delta, _ = build_delta(template, tok, str(tmp_path / "cfg" / "config.json"))
    assert delta.config.n_layer == 2 and delta.config.vocab_size == len(tok)  # the template's rows, not the file's
    assert float(delta.get_output_embeddings().weight.detach().abs().sum()) == 0
    other, otok = tiny_pair("llama")
    save_pair(other, otok, tmp_path / "other")
    with pytest.raises(Exception, match="vocabulary rows"):
        build_delta(template, tok, str(tmp_path / "other"))
    with pytest.raises(ConfigError, match="preset"):
        build_delta(template, tok, "huge")


@pytest.mark.parametrize("guard,grads", [("target", [-0.5, 0.5]), ("clamp", [-0.5, 0.0])])
def test_forget_guard_bounds_the_ascent(guard, grads):
    ce_f = torch.tensor([[1.0, 5.0]], requires_grad=True)
    t_f = torch.tensor([[1.0, 1.0]])
    ce_r = torch.tensor([[2.0]], requires_grad=True)
    parts = unlearn_loss(ce_f, t_f, torch.ones(1, 2, dtype=torch.bool), ce_r, torch.ones(1, 1, dtype=torch.bool),
                         forget_margin=2.0, guard=guard)
    parts["loss"].backward()
    # token 0 (loss = template's) is pushed up; token 1 (4 nats above, past the 2-nat target) gets no
    # more ascent: "clamp" leaves it, "target" pulls it back
    assert ce_f.grad.tolist() == [grads] and ce_r.grad.tolist() == [[1.0]]
    assert float(parts["forget_gain"].detach()) == 2.0
    with pytest.raises(ConfigError, match="guard"):
        unlearn_loss(ce_f, t_f, torch.ones(1, 2, dtype=torch.bool), ce_r, torch.ones(1, 1, dtype=torch.bool),
                     forget_margin=2.0, guard="none")


def test_token_losses_score_only_labelled_next_tokens():
    lp = torch.log_softmax(torch.randn(1, 3, 4), -1)
    labels = torch.tensor([[IGNORE_INDEX, 2, 1]])
    ce, ce_t, mask = token_losses(lp, lp, labels)
    assert mask.tolist() == [[True, True]]
    assert ce[0, 0] == pytest.approx(-float(lp[0, 0, 2])) and torch.equal(ce, ce_t)


# ---------------------------------------------------------------- data

def test_instruct_examples_mask_the_prompt(tmp_path):
    _, tok = tiny_pair("gpt2")
    path = tmp_path / "i.jsonl"
    path.write_text(json.dumps({"instruction": "Say", "input": "the cat", "output": " de kat"}) + "\n\n", "utf-8")
    (example,), dropped = instruct_examples(tok, read_jsonl(path, "instruct"), 64, "open-instruct")
    prompt = tok(OPEN_INSTRUCT.format(query="Say\nthe cat"), add_special_tokens=False)["input_ids"]
    response = tok(" de kat", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert dropped == 0 and list(example.input_ids) == [tok.bos_token_id] + prompt + response
    assert list(example.labels) == [IGNORE_INDEX] * (1 + len(prompt)) + response
    batch = collate([example, example], pad_id=0)
    assert batch["labels"].shape == batch["input_ids"].shape


@pytest.mark.parametrize("line,task,problem", [
    ("{not json", "unlearn", "not valid JSON"),
    ('["a"]', "unlearn", "not an object"),
    ('{"text": "x"}', "unlearn", "lacks the field 'split'"),
    ('{"text": "x", "split": "keep"}', "unlearn", "split 'keep'"),
    ('{"text": 3, "split": "forget"}', "unlearn", "must be a string"),
    ('{"instruction": "x"}', "instruct", "lacks the field 'output'"),
])
def test_bad_data_lines_name_the_line(tmp_path, line, task, problem):
    path = tmp_path / "bad.jsonl"
    good = '{"text": "fine", "split": "retain"}' if task == "unlearn" else '{"instruction": "a", "output": "b"}'
    path.write_text(good + "\n" + line + "\n", "utf-8")
    with pytest.raises(InputFileError) as err:
        read_jsonl(path, task)
    assert err.value.line == 2 and problem in str(err.value) and "Fix:" in str(err.value)


def test_unlearn_needs_both_splits(tmp_path):
    _, tok = tiny_pair("gpt2")
    path = tmp_path / "u.jsonl"
    path.write_text('{"text": "only this", "split": "forget"}\n', "utf-8")
    with pytest.raises(InputFileError, match="retain"):
        unlearn_examples(tok, read_jsonl(path, "unlearn"), 32, path)


def test_template_cache_topk_keeps_top_values_and_the_target():
    logp = torch.log_softmax(torch.randn(1, 5, 50) * 3, -1)
    labels = torch.tensor([[1, 2, 3, 4, 49]])
    cache = TemplateCache("topk", vocab=50, n_tokens=5, k=4)
    got = cache.get([("p", 0)], [5], 5, lambda: logp, labels)
    top = torch.topk(logp[0], 4, dim=-1)
    assert torch.allclose(got[0].gather(-1, top.indices), top.values)
    assert torch.allclose(got[0, :4].gather(-1, labels[0, 1:].unsqueeze(-1)), logp[0, :4].gather(-1, labels[0, 1:].unsqueeze(-1)))
    assert torch.allclose(got[0].exp().sum(-1), torch.ones(5), atol=0.05)  # the tail keeps the mass
    again = cache.get([("p", 0)], [5], 5, lambda: pytest.fail("recomputed"), labels)
    assert torch.equal(got, again) and cache.hits == 1 and cache.misses == 1
    assert TemplateCache("auto", 50, 10, max_mb=1).mode == "full" and TemplateCache("auto", 10**6, 10**4, max_mb=1).mode == "topk"


# ---------------------------------------------------------------- the training loop

def test_unlearning_raises_forget_loss_saves_a_loadable_delta_and_resumes_exactly(tmp_path):
    template, tok = tiny_pair("gpt2", seed=1)
    data = _write_unlearn(tmp_path / "u.jsonl", 30)  # few blocks: 6 steps of 4 go round more than once
    common = dict(template="tiny-template", data=str(data), task="unlearn", steps=6, block_size=24, batch_size=4,
                  lr=3e-3, checkpoint_every=3, delta_config=_small_config(tmp_path))
    events = []
    result = train_delta(DeltaConfig(out=str(tmp_path / "a"), **common), template, tok, on_event=events.append)
    steps = [e for e in events if e["event"] == "step"]
    assert steps[0]["forget_gain"] == pytest.approx(0.0, abs=1e-3)  # step 1: the unchanged template (fp16 cache)
    assert steps[-1]["forget_gain"] > steps[0]["forget_gain"] + 0.1
    assert result.template_cache["hits"] > 0 and events[-1]["event"] == "done"
    model, dtok, info = load_delta(tmp_path / "a")            # the run folder is accepted
    assert info["task"] == "unlearn" and info["alpha"] == 1.0 and info["steps"] == 6
    assert info["template"]["vocab_size"] == len(tok) and len(info["template"]["sha256"]) == 64
    assert (tmp_path / "a" / "delta" / "model.safetensors").is_file() and len(dtok) == len(tok)
    assert not list((tmp_path / "a" / "delta").glob("*.bin"))

    # stop after step 1, then resume to step 6: the same weights as the 6 straight steps of run "a"
    import dataclasses

    half = DeltaConfig(out=str(tmp_path / "c"), **common)
    train_delta(dataclasses.replace(half, max_minutes=1e-9), template, tok)
    resumed = train_delta(dataclasses.replace(half, resume=True), template, tok)
    assert resumed.start_step == 1 and resumed.steps_done == 6
    a = load_file(str(tmp_path / "a" / "delta" / "model.safetensors"))
    c = load_file(str(tmp_path / "c" / "delta" / "model.safetensors"))
    assert a.keys() == c.keys() and all(torch.allclose(a[k], c[k], atol=1e-6) for k in a)
    with pytest.raises(ConfigError, match="resume"):
        train_delta(DeltaConfig(out=str(tmp_path / "a"), **common), template, tok)


def test_instruct_training_fits_the_responses(tmp_path):
    template, tok = tiny_pair("llama", seed=1)
    path = tmp_path / "i.jsonl"
    rows = [{"instruction": "Translate", "input": en, "output": nl} for en, nl in
            [("the cat", "de kat"), ("the dog", "de hond"), ("the garden", "de tuin")]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    events = []
    train_delta(DeltaConfig(template="t", data=str(path), task="instruct", out=str(tmp_path / "r"), steps=12,
                            batch_size=3, lr=1e-2, template_cache="none"), template, tok, on_event=events.append)
    losses = [e["loss"] for e in events if e["event"] == "step"]
    assert losses[-1] < losses[0] - 0.5
    _, _, info = load_delta(tmp_path / "r" / "delta")
    assert info["prompt_format"] == "open-instruct"


def test_cli_delta_train_generate_and_eval(tmp_path, capsys, monkeypatch):
    import tokmap_ui.cli as cli

    if "tokmap_ui.cli.delta" not in cli.COMMAND_MODULES:  # until the lead registers the module
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ("tokmap_ui.cli.delta",))
    template, tok = tiny_pair("gpt2", seed=1)
    save_pair(template, tok, tmp_path / "template")
    host, htok = tiny_pair("llama", seed=4)
    save_pair(host, htok, tmp_path / "host")
    data = _write_unlearn(tmp_path / "u.jsonl", 40)
    assert main(["delta-train", "--template", str(tmp_path / "template"), "--data", str(data), "--task", "unlearn",
                 "--steps", "2", "--block-size", "16", "--batch", "2", "--out", str(tmp_path / "run"),
                 "--delta-config", _small_config(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["generate", "--host", str(tmp_path / "template"), "--delta", str(tmp_path / "run"),
                 "--prompt", "the cat", "--max-new-tokens", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["alpha"] == 1.0 and len(out["results"][0]["token_ids"]) == 3
    forget = tmp_path / "f.txt"
    forget.write_text("\n".join(corpus_lines(4)) + "\n", "utf-8")
    assert main(["cmc-eval", "--host", str(tmp_path / "host"), "--delta", str(tmp_path / "run"), "--map", "pm-mined",
                 "--forget", str(forget), "--retain", str(forget), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in report["sets"]] == ["forget", "retain"] and report["mapping"]["kind"] == "one-to-one"
    # a different vocabulary without a map is a clear error, not a traceback
    assert main(["generate", "--host", str(tmp_path / "host"), "--delta", str(tmp_path / "run"),
                 "--prompt", "x"]) == 2
    assert "pmmined" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "split": "forget"}\n{oops\n', "utf-8")
    assert main(["delta-train", "--template", str(tmp_path / "template"), "--data", str(bad), "--task", "unlearn",
                 "--out", str(tmp_path / "run2")]) == 2
    assert "line 2" in capsys.readouterr().err
