"""Map evaluation: coverage summary, held-out translation precision (exact cases), and ``evaluate-map``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.models import save_pair, tiny_model
from tests.test_tiktotok import LEXICON, cli, en_tokenizer, nl_tokenizer, write_kit  # noqa: F401 (fixture)
from tokmap_ui.dictionary import Dictionary
from tokmap_ui.errors import DictionaryError, TokenMapError
from tokmap_ui.mapping.baselines import build_baseline
from tokmap_ui.mapping.evaluate import summarise_map, target_rows, translation_precision
from tokmap_ui.mapping.tokenmap import MapEntry, TokenMap, VocabRef
from tokmap_ui.vocab import Vocabulary

EN = ["[UNK]", "cat", "dog", "house", "tree", "bird"]
NL = ["<unk>", "kat", "hond", "huis", "boom", "vogel"]
PAIRS = Dictionary.from_pairs(list(zip(EN[1:], NL[1:])), "en", "nl", name="held.tsv")


def wordlevel(words: list[str]) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=words[0])


@pytest.fixture(scope="module")
def toy():
    src, tgt = wordlevel(EN), wordlevel(NL)
    return src, tgt, Vocabulary.from_tokenizer(src), Vocabulary.from_tokenizer(tgt)


def manual_map(source, target, sources_of) -> TokenMap:
    entries = [MapEntry(i, target.tokens[i], tuple(sources_of(i)), "manual" if sources_of(i) else "unmapped")
               for i in range(len(target))]
    return TokenMap("manual", VocabRef.of(target), VocabRef.of(source), {}, tuple(entries))


def test_perfect_wrong_and_mean_maps(toy):
    src, tgt, source, target = toy
    rows = torch.eye(6)
    perfect = manual_map(source, target, lambda i: [(i, 1.0)])
    score = translation_precision(perfect, rows, src, tgt, PAIRS, (1, 5), source=source, target=target)
    assert (score.queries, score.candidates, score.skipped) == (5, 5, 0)
    assert score.p_at == {1: 1.0, 5: 1.0}
    shifted = manual_map(source, target, lambda i: [(i % 5 + 1, 1.0)] if i else [])
    assert translation_precision(shifted, rows, src, tgt, PAIRS, (1,)).p_at[1] == 0.0
    # half-right: each target row is the average of the right row and a wrong one -> still ranked first
    blend = manual_map(source, target, lambda i: [(i, 0.6), (i % 5 + 1, 0.4)] if i else [])
    assert translation_precision(blend, rows, src, tgt, PAIRS, (1,)).p_at[1] == 1.0
    # the mean map gives every query the same vector: at best the one whose answer sorts first
    mean = build_baseline("mean", src, tgt, source, target)
    score = translation_precision(mean, rows, src, tgt, PAIRS, (1, 5))
    assert score.p_at[1] <= 0.2 and score.p_at[5] == 1.0


def test_any_valid_translation_counts_and_multiword_words_average(toy):
    src, tgt, source, target = toy
    rows = torch.eye(6)
    # boom -> bird (one of its two listed translations: a hit); huis -> dog (its answer is tree: a miss);
    # the phrase "kat kat hond" is the mean of its tokens' rows, nearest to cat (a hit).
    pairs = Dictionary.from_pairs([("tree", "boom"), ("bird", "boom"), ("cat", "kat kat hond"), ("dog", "hond"),
                                   ("tree", "huis")])
    wrong = {4: 5, 3: 2}
    tm = manual_map(source, target, lambda i: [(wrong.get(i, i), 1.0)])
    score = translation_precision(tm, rows, src, tgt, pairs, (1, 2))
    assert (score.queries, score.candidates) == (4, 4)
    assert score.p_at[1] == pytest.approx(3 / 4)


def test_random_entries_are_seeded_rows(toy):
    src, tgt, source, target = toy
    rnd = build_baseline("random", src, tgt, source, target)
    a = target_rows(rnd, torch.eye(6), random_std=0.5, seed=3)
    b = target_rows(rnd, torch.eye(6), random_std=0.5, seed=3)
    assert torch.equal(a, b) and a.std() > 0.2
    assert not torch.equal(a, target_rows(rnd, torch.eye(6), random_std=0.5, seed=4))


def test_bad_inputs(toy):
    src, tgt, source, target = toy
    perfect = manual_map(source, target, lambda i: [(i, 1.0)])
    with pytest.raises(DictionaryError, match="no word pairs"):
        translation_precision(perfect, torch.eye(6), src, tgt, Dictionary.from_pairs([]))
    with pytest.raises(TokenMapError, match="source table has 4 rows"):
        translation_precision(perfect, torch.eye(6)[:4], src, tgt, PAIRS)
    with pytest.raises(TokenMapError, match="does not fit the target vocabulary"):  # map made for another tokenizer
        translation_precision(perfect, torch.eye(6), src, wordlevel(NL[:5] + ["uil"]), PAIRS)


def test_summary_counts_methods(toy):
    src, tgt, source, target = toy
    summary = summarise_map(build_baseline("identical", src, tgt, source, target))
    data = summary.to_dict()
    assert data["entries"] == 6 and sum(data["by_method"].values()) == 6
    assert abs(sum(data["coverage"].values()) - 1) < 1e-3
    assert "identical map" in summary.to_text()


def test_tiktotok_beats_baselines_on_tiny_held_out_pairs():
    """On the tiny kit the dictionary carries knowledge no baseline has (a smoke test of the claim)."""
    from tokmap_ui.mapping.tiktotok import MappingConfig, build_token_map

    src, tgt = en_tokenizer(), nl_tokenizer()
    source, target = Vocabulary.from_tokenizer(src), Vocabulary.from_tokenizer(tgt)
    rows = torch.from_numpy(np.random.default_rng(0).normal(size=(len(source), 32)).astype(np.float32))
    pairs = Dictionary.from_pairs(LEXICON, "en", "nl")
    scores = {}
    for method in ("tiktotok", "fvt", "mean"):
        tm = build_token_map(src, tgt, pairs, MappingConfig(method=method, space_dim=8), source=source, target=target)
        scores[method] = translation_precision(tm, rows, src, tgt, pairs, (1,), source=source, target=target).p_at[1]
    assert scores["tiktotok"] > max(scores["fvt"], scores["mean"]) + 0.2, scores


def test_cli_evaluate_map(tmp_path, cli, capsys):  # noqa: F811
    src, tgt = en_tokenizer(), nl_tokenizer()
    en, nl, dictionary, held = write_kit(tmp_path, (src, tgt))
    model_dir = save_pair(tiny_model("bert", len(src), src, head="base"), src, tmp_path / "model")
    out = tmp_path / "map.json.gz"
    assert cli(["map", "--source-model", str(model_dir), "--target-tokenizer", str(nl), "--dictionary",
                str(dictionary), "--space-dim", "8", "--out", str(out), "--eval-pairs", str(held)]) == 0
    printed = capsys.readouterr().out
    assert "held-out translation: P@1" in printed and "note:" not in printed
    # the map remembers its target tokenizer's path, so --target-tokenizer may be left out
    assert cli(["evaluate-map", str(out), "--source-model", str(model_dir), "--pairs", str(held), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["translation"]["queries"] == 6 and 0 <= report["translation"]["p@1"] <= 1
    assert report["summary"]["kind"] == "tiktotok"
    # a pair file in the wrong direction still loads (it is evaluation), a missing model is one clear line
    code = cli(["evaluate-map", str(out), "--source-model", str(tmp_path / "nope"), "--pairs", str(held)])
    err = capsys.readouterr().err
    assert code == 2 and "not found" in err and "Traceback" not in err
