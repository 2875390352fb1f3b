"""CMC decoding: combination, KV caches with rollback, trailing-window re-encode, sampling, stop strings, evaluation."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from tokenizers import processors

from tests.models import gpt2_tokenizer, llama_tokenizer, tiny_pair
from tests.tiny import build_bytelevel_bpe, build_metaspace_unigram, corpus_lines, fast
from tokmap_ui.cmc.combine import Centre, DeltaShift, index_from_token_map
from tokmap_ui.cmc.decode import CmcPair, GenerateConfig, encode_prompt, sample
from tokmap_ui.cmc.evaluate import evaluate_cmc
from tokmap_ui.cmc.explain import explain_step, format_explanation
from tokmap_ui.cmc.fastlm import FastLM, make_runner, supported
from tokmap_ui.cmc.runner import CachedLM
from tokmap_ui.cmc.sync import DeltaTokens, Detokenizer, last_stable_boundary
from tokmap_ui.errors import ConfigError, TokenMapError
from tokmap_ui.mapping.pmmined import build_pmmined_map
from tokmap_ui.mapping.tokenmap import MapEntry, TokenMap, VocabRef
from tokmap_ui.vocab import Vocabulary

PROMPTS = ["the cat sat on", "de kat", "a small red ball while children", "Zürich"]


@pytest.fixture(scope="module")
def models():
    """Host (Llama BPE, byte fallback) and two deltas: same vocabulary, and GPT-2 byte-level BPE."""
    host, htok = tiny_pair("llama", seed=1)
    same, _ = tiny_pair("llama", seed=2)
    other, otok = tiny_pair("gpt2", seed=3)
    token_map = build_pmmined_map(Vocabulary.from_tokenizer(htok), Vocabulary.from_tokenizer(otok))
    return {"host": host, "htok": htok, "same": same, "other": other, "otok": otok, "map": token_map}


# ---------------------------------------------------------------- the combination

def test_identity_shift_with_mean_centre_keeps_the_training_distribution():
    host, delta = torch.randn(3, 7), torch.randn(3, 7)
    combined = DeltaShift.identity(7).combine(host, delta, 1.0)
    # softmax(log_softmax(host) + delta − mean) == softmax(host + delta): the centre is a per-row constant
    assert torch.allclose(torch.softmax(combined, -1), torch.softmax(host + delta, -1), atol=1e-6)


def test_unmapped_host_tokens_get_a_neutral_zero_shift():
    index = torch.tensor([2, -1, 0, -1])
    shift = DeltaShift.from_index(index, host_size=5, delta_real=3)
    delta = torch.tensor([[1.0, 2.0, 6.0]])                  # mean 3
    assert shift.shift(delta).tolist() == [[3.0, 0.0, -2.0, 0.0, 0.0]]
    raw = DeltaShift.from_index(index, host_size=5, delta_real=3, centre=Centre.NONE)
    assert raw.shift(delta).tolist() == [[6.0, 0.0, 1.0, 0.0, 0.0]]
    full = DeltaShift.from_index(torch.tensor([2, 1, 0]), host_size=3, delta_real=3)  # every host token mapped
    assert full.shift(delta).tolist() == [[3.0, -1.0, -2.0]]


def test_index_from_token_map_and_weighted_maps():
    entries = (MapEntry(0, "a", ((2, 1.0),), "exact"), MapEntry(1, "b", (), "unmapped"),
               MapEntry(2, "c", ((0, 1.0), (1, 3.0)), "manual"))
    tm = TokenMap("manual", VocabRef("h", 3, ""), VocabRef("d", 3, ""), {}, entries)
    with pytest.raises(TokenMapError, match="sources"):
        index_from_token_map(tm)
    shift = DeltaShift.from_token_map(tm, host_size=3, delta_real=3, centre="none")
    out = shift.shift(torch.tensor([[4.0, 8.0, 1.0]]))
    assert out.tolist() == [[1.0, 0.0, 7.0]]                  # row 2 = 0.25·4 + 0.75·8
    one = TokenMap("pm-mined", VocabRef("h", 2, ""), VocabRef("d", 3, ""), {}, entries[:2])
    assert index_from_token_map(one).tolist() == [2, -1]
    with pytest.raises(TokenMapError, match="outside the delta"):
        DeltaShift.from_index(torch.tensor([5]), host_size=2, delta_real=3)


def test_a_delta_with_another_vocabulary_needs_a_map(models):
    with pytest.raises(TokenMapError, match="pmmined"):
        CmcPair(models["host"], models["htok"], models["other"], models["otok"])


# ---------------------------------------------------------------- the stream sync (trailing window)

def _tokenizers():
    trimmed = build_bytelevel_bpe()
    trimmed.post_processor = processors.ByteLevel(trim_offsets=True)
    return {"gpt2": gpt2_tokenizer(), "llama-prepend": llama_tokenizer(),
            "metaspace": fast(build_metaspace_unigram(), unk_token="<unk>", bos_token="<s>", eos_token="</s>"),
            "gpt2-trim-offsets": fast(trimmed, eos_token="<|endoftext|>")}


@pytest.mark.parametrize("name", list(_tokenizers()))
def test_delta_view_equals_a_full_reencode_while_reencoding_only_a_window(name):
    tok = _tokenizers()[name]
    rng = random.Random(0)
    texts = corpus_lines(30) + ["Hello  world\n\nfoo   bar 猫 🙂 end", "a\tb\n c", "  leading", "x" * 40 + " y"]
    full_cost = windowed = 0
    for text in texts:
        for cut in (0, 4):
            stream = DeltaTokens(tok, text[:cut], verify=True)   # verify: compare with a full re-encode every step
            pos = cut
            while pos < len(text):
                pos = min(len(text), pos + rng.randint(1, 4))
                keep, new = stream.update(text[:pos])
                assert stream.ids[keep:] == new
                full_cost += pos
            windowed += stream.reencoded_chars
    assert windowed < full_cost / 4  # only trailing windows were re-encoded, not the whole text


def test_delta_tokens_rolls_back_only_the_changed_tail():
    tok = gpt2_tokenizer()
    stream = DeltaTokens(tok, "the c")
    before = list(stream.ids)
    keep, new = stream.update("the ca")
    assert keep >= len(before) - 1 and stream.ids[:keep] == before[:keep]
    assert last_stable_boundary("the cat sat", 11) == 7 and last_stable_boundary("abc", 3) == 0


def test_detokenizer_keeps_leading_spaces_and_waits_for_whole_characters():
    tok = llama_tokenizer()
    prompt = encode_prompt(tok, "de kat")
    generated = tok("de kat zat 猫 op", add_special_tokens=False)["input_ids"][len(prompt) - 1:]
    detok = Detokenizer(tok, prompt)
    pieces = [detok.push(t) for t in generated]
    assert "".join(pieces) == detok.text == " zat 猫 op"
    assert "\ufffd" not in "".join(pieces)  # byte-fallback pieces of 猫 were held back until complete


# ---------------------------------------------------------------- KV cache with rollback

@pytest.mark.parametrize("family,runner", [("gpt2", CachedLM), ("llama", CachedLM), ("gpt2", FastLM),
                                           ("llama", FastLM)])
def test_cached_runners_with_rollbacks_equal_a_fresh_forward(family, runner):
    model, _ = tiny_pair(family)  # the tiny Llama has grouped-query attention (2 heads, 1 KV head)
    assert supported(model)
    lm = runner(model, pad_id=0)
    rng = random.Random(1)
    lm.start([[rng.randrange(3, 300) for _ in range(n)] for n in (3, 6, 1)])
    for _ in range(8):
        keep = [len(ids) - (rng.choice([0, 1, 2]) if len(ids) > 2 else 0) for ids in lm.ids]
        new = [[rng.randrange(3, 300) for _ in range(rng.choice([0, 1, 2]))] for _ in lm.ids]
        last = lm.step(keep, new)
        for r, ids in enumerate(lm.ids):
            with torch.no_grad():
                fresh = model(torch.tensor([ids])).logits[0, -1]
            assert torch.allclose(fresh, last[r], atol=1e-5)


def test_fast_runner_only_for_models_it_reproduces():
    model, _ = tiny_pair("bert")
    assert not supported(model)
    gpt2, _ = tiny_pair("gpt2")
    assert isinstance(make_runner(gpt2), FastLM)
    gpt2.train()
    assert type(make_runner(gpt2)) is CachedLM  # dropout active: use the model's own forward
    gpt2.eval()
    lm = FastLM(gpt2, head_dtype=torch.bfloat16)
    last = lm.start([[5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(last[0], gpt2(torch.tensor([[5, 6, 7]])).logits[0, -1], atol=0.05)


# ---------------------------------------------------------------- decoding

@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_alpha_zero_reproduces_host_generate_greedy(family):
    host, tok = tiny_pair(family, seed=1)
    delta, _ = tiny_pair(family, seed=2)
    pair = CmcPair(host, tok, delta, tok)
    results = pair.generate(PROMPTS[:3], GenerateConfig(alpha=0.0, max_new_tokens=10, batch_size=3, stop_at_eos=False,
                                                        explain=1))
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    enc = tok(PROMPTS[:3], return_tensors="pt", padding=True)
    out = host.generate(**enc, do_sample=False, max_new_tokens=10, pad_token_id=tok.pad_token_id, eos_token_id=None,
                        output_logits=True, return_dict_in_generate=True)
    width = enc["input_ids"].shape[1]
    for i, result in enumerate(results):
        assert result.token_ids == out.sequences[i, width:].tolist()
        reference = torch.log_softmax(out.logits[0][i].float(), -1)
        ours = result.explanations[0].host_top[0]
        assert ours.token_id == int(reference.argmax()) and ours.host_logprob == pytest.approx(float(reference.max()), abs=1e-5)
        assert ours.shift == 0.0


def _slow_decode(pair: CmcPair, prompt: str, steps: int, alpha: float) -> list[int]:
    """Reference: no KV cache, the delta re-encodes the whole text every step."""
    ids = encode_prompt(pair.host_tok, prompt)
    detok = Detokenizer(pair.host_tok, ids)
    gen: list[int] = []
    for _ in range(steps):
        with torch.no_grad():
            host_logits = pair.host(torch.tensor([ids + gen])).logits[:, -1]
            if pair.same_vocab:
                d_ids = ids + gen
            else:
                d_ids = list(pair.delta_tok(prompt + detok.text)["input_ids"]) or [pair.delta_tok.eos_token_id]
            delta_logits = pair.delta(torch.tensor([d_ids])).logits[:, -1]
        scores = pair.shift.combine(host_logits, delta_logits, alpha)[0]
        scores[pair.host_vocab_len:] = float("-inf")
        token = int(scores.argmax())
        gen.append(token)
        detok.push(token)
    return gen


@pytest.mark.parametrize("which", ["same", "other"])
def test_cached_batched_decoding_equals_a_slow_full_recompute(models, which):
    delta_tok = models["htok"] if which == "same" else models["otok"]
    token_map = None if which == "same" else models["map"]
    pair = CmcPair(models["host"], models["htok"], models[which], delta_tok, token_map)
    config = GenerateConfig(alpha=1.5, max_new_tokens=12, batch_size=4, stop_at_eos=False, verify_sync=True)
    results = pair.generate(PROMPTS, config)
    for prompt, result in zip(PROMPTS, results):
        assert result.token_ids == _slow_decode(pair, prompt, 12, 1.5)
    threaded = pair.generate(PROMPTS, dataclasses.replace(config, overlap=True, batch_size=3))
    assert [r.token_ids for r in threaded] == [r.token_ids for r in results]  # same tokens, delta on a thread
    assert any(r.token_ids != g.token_ids for r, g in
               zip(results, pair.generate(PROMPTS, GenerateConfig(alpha=0.0, max_new_tokens=12, stop_at_eos=False))))


def test_sampling_is_seeded_and_filters_work(models):
    pair = CmcPair(models["host"], models["htok"], models["other"], models["otok"], models["map"])
    hot = GenerateConfig(alpha=1.0, temperature=1.0, max_new_tokens=8, seed=7, stop_at_eos=False)
    first = [r.token_ids for r in pair.generate(PROMPTS, hot)]
    assert first == [r.token_ids for r in pair.generate(PROMPTS, hot)]
    other_seed = GenerateConfig(alpha=1.0, temperature=1.0, max_new_tokens=8, seed=8, stop_at_eos=False)
    assert first != [r.token_ids for r in pair.generate(PROMPTS, other_seed)]
    greedy = [r.token_ids for r in pair.generate(PROMPTS, GenerateConfig(max_new_tokens=8, stop_at_eos=False))]
    for narrow in (dict(top_k=1), dict(top_p=1e-6)):
        cfg = GenerateConfig(temperature=1.0, max_new_tokens=8, seed=3, stop_at_eos=False, **narrow)
        assert [r.token_ids for r in pair.generate(PROMPTS, cfg)] == greedy
    scores = torch.tensor([[0.0, 10.0, 9.0, -5.0]])
    generator = torch.Generator().manual_seed(0)
    draws = {int(sample(scores, 1.0, 0.9, 0, generator)) for _ in range(50)}
    assert draws <= {1, 2} and len(draws) == 2


def test_stop_strings_and_streaming(models):
    pair = CmcPair(models["host"], models["htok"], models["same"], models["htok"])
    base = pair.generate(PROMPTS[:2], GenerateConfig(max_new_tokens=16, stop_at_eos=False))
    stop = base[0].text[3:5]
    assert stop.strip()
    config = GenerateConfig(max_new_tokens=16, stop_at_eos=False, stop=(stop,))
    results = pair.generate(PROMPTS[:2], config)
    assert results[0].finish_reason == "stop" and stop not in results[0].text
    assert base[0].text.startswith(results[0].text)
    streamed: dict[int, str] = {}
    finished = {}
    for event in pair.stream(PROMPTS[:2], config):
        streamed[event.index] = streamed.get(event.index, "") + event.text
        if event.finished:
            finished[event.index] = event.finish_reason
    assert [streamed[i] for i in range(2)] == [r.text for r in results]
    assert finished == {0: "stop", 1: results[1].finish_reason}
    with pytest.raises(ConfigError, match="empty stop"):
        pair.generate(["x"], GenerateConfig(stop=("",)))


def test_arena_panels_equal_separate_runs_alone_and_with_the_delta(models):
    from tokmap_ui.cmc.arena import ALONE, WITH_DELTA, ArenaConfig, run_arena

    pairs = {"same": CmcPair(models["host"], models["htok"], models["same"], models["htok"]),
             "other": CmcPair(models["host"], models["htok"], models["other"], models["otok"], models["map"])}
    settings = GenerateConfig(max_new_tokens=8, stop_at_eos=False, temperature=0.8, seed=3)
    states = list(run_arena(pairs, PROMPTS[0], ArenaConfig(alpha=2.0, generate=settings, explain_k=3)))
    panels = states[-1].panels
    assert states[-1].finished and len(states) > 8  # one state per round of events, panels grow together
    assert [(p.host, p.variant) for p in panels] == [("same", ALONE), ("same", WITH_DELTA),
                                                     ("other", ALONE), ("other", WITH_DELTA)]
    for panel in panels:  # each panel is exactly the run it stands for
        alpha = 0.0 if panel.variant == ALONE else 2.0
        expected = pairs[panel.host].generate([PROMPTS[0]], dataclasses.replace(settings, alpha=alpha))[0]
        assert panel.text == expected.text
        assert len(panel.steps) == (0 if panel.variant == ALONE else len(expected.token_ids))
    assert panels[0].text == panels[2].text  # the same host alone, whatever the delta


def test_explain_lists_host_top_tokens_and_the_shift():
    host = torch.log_softmax(torch.tensor([3.0, 2.0, 1.0, 0.0]), -1)
    step = explain_step(0, host, torch.tensor([-5.0, 0.0, 0.0, 4.0]), chosen=3, k=2, tokenizer=gpt2_tokenizer())
    assert [t.token_id for t in step.host_top] == [0, 1]
    assert step.chosen.host_rank == 3 and step.chosen.combined_rank == 0
    assert step.host_top[0].shift == -5.0 and step.combined_top[0].token_id == 3
    assert "[raised]" in format_explanation([step])


# ---------------------------------------------------------------- evaluation

def test_evaluation_alpha_zero_equals_host_and_cross_vocab_matches_prefix_reencode(models):
    texts = corpus_lines(6)
    same = CmcPair(models["host"], models["htok"], models["same"], models["htok"])
    report = evaluate_cmc(same, {"a": texts}, alpha=0.0)
    assert report.sets[0].host_loss_per_byte == pytest.approx(report.sets[0].combined_loss_per_byte)

    pair = CmcPair(models["host"], models["htok"], models["other"], models["otok"], models["map"])
    got = evaluate_cmc(pair, {"a": texts}, alpha=1.0).sets[0]
    htok, otok = models["htok"], models["otok"]
    nats = 0.0
    for text in texts:  # slow reference: at each position the delta reads a fresh encoding of the prefix text
        ids = [htok.bos_token_id] + htok(text, add_special_tokens=False)["input_ids"]
        detok = Detokenizer(htok, ids[:1])
        with torch.no_grad():
            host_lp = torch.log_softmax(models["host"](torch.tensor([ids])).logits[0].float(), -1)
            for t in range(len(ids) - 1):
                d_ids = [otok.eos_token_id] + otok(detok.text)["input_ids"]
                d_logits = models["other"](torch.tensor([d_ids])).logits[:, -1]
                combined = torch.log_softmax(host_lp[t] + pair.shift.shift(d_logits)[0], -1)
                nats -= float(combined[ids[t + 1]])
                detok.push(ids[t + 1])
    assert got.combined_loss_per_byte == pytest.approx(nats / sum(len(t.encode()) for t in texts), rel=1e-4)
    assert got.host_loss_per_byte != got.combined_loss_per_byte


def test_cli_generate_streams_one_prompt_and_explains_a_batch(tmp_path, capsys):
    from tests.models import save_pair
    from tokmap_ui.cli import main

    host, tok = tiny_pair("gpt2", seed=1)
    delta, _ = tiny_pair("gpt2", seed=2)
    save_pair(host, tok, tmp_path / "host")
    save_pair(delta, tok, tmp_path / "delta")   # a plain causal LM works as a delta too (no cmc.json: alpha 1)
    assert main(["generate", "--host", str(tmp_path / "host"), "--delta", str(tmp_path / "delta"),
                 "--prompt", "the cat", "--max-new-tokens", "4"]) == 0
    streamed = capsys.readouterr().out
    expected = CmcPair(host, tok, delta, tok).generate(["the cat"], GenerateConfig(max_new_tokens=4))[0].text
    assert streamed == "the cat" + expected + "\n"
    assert main(["generate", "--host", str(tmp_path / "host"), "--prompt", "a", "--prompt", "b",
                 "--max-new-tokens", "2", "--explain", "3", "--temperature", "0.7", "--top-p", "0.9"]) == 0
    out = capsys.readouterr().out
    assert out.count("=== ") == 2 and "step 1: chose" in out and "shift  +0.00" in out
