"""Baselines (identical, fvt, mean, random) and the shared steps: specials by role, identical text, FVT."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.test_tiktotok import en_tokenizer, nl_tokenizer
from tokmap_ui.mapping.baselines import (MapMethod, build_baseline, fvt_sources, identical_sources,
                                         neighbour_candidates, special_sources, word_ids)
from tokmap_ui.vocab import Vocabulary


def wordpiece(vocab: dict[str, int], lowercase: bool = False, **specials: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    if lowercase:
        tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", **specials)


def bytelevel(vocab: dict[str, int], merges: list[tuple[str, str]], **specials: str) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(vocab, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


@pytest.fixture(scope="module")
def pair():
    """Source: uncased WordPiece with BERT specials. Target: byte-level BPE with RoBERTa specials."""
    src = wordpiece({"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "kat": 5, "##ten": 6, "cafe": 7,
                     "(": 8, "2024": 9, "ten": 10, "k": 11, "##at": 12, "[unused0]": 13},
                    lowercase=True, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    letters = {c: i for i, c in enumerate("abcdefghijklmnopqrstuvwxyzĠ()0124Ã©KC", start=5)}
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, **letters}
    merges = [("Ġ", "k"), ("Ġk", "a"), ("Ġka", "t"), ("t", "e"), ("te", "n"), ("Ġ", "K"), ("ĠK", "a"), ("ĠKa", "t"),
              ("Ã", "©"), ("Ġ", "C"), ("ĠC", "a"), ("ĠCa", "f"), ("ĠCaf", "Ã©"), ("2", "0"), ("20", "2"), ("202", "4"), ("Ġ", "2024"), ("a", "t")]
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    tgt = bytelevel(vocab, merges, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
                    mask_token="<mask>")
    return src, tgt, Vocabulary.from_tokenizer(src), Vocabulary.from_tokenizer(tgt)


def test_specials_by_role_with_stand_ins(pair):
    src, tgt, source, target = pair
    found = special_sources(target, source)
    assert found[target.id_of("<s>")] == (source.id_of("[CLS]"), "role:bos->cls")
    assert found[target.id_of("</s>")] == (source.id_of("[SEP]"), "role:eos->sep")
    assert found[target.id_of("<pad>")][0] == source.id_of("[PAD]")
    assert found[target.id_of("<mask>")][0] == source.id_of("[MASK]")
    assert found[target.id_of("<unk>")][0] == source.id_of("[UNK]")


def test_identical_across_markers_case_and_accents(pair):
    src, tgt, source, target = pair
    same = identical_sources(target, source, src)
    assert same[target.id_of("Ġkat")] == source.id_of("kat")            # Ġkat = WordPiece word-start kat
    assert same[target.id_of("ĠKat")] == source.id_of("kat")            # the source is uncased
    assert same[target.id_of("ten")] == source.id_of("##ten")           # continuation = ##ten
    assert same[target.id_of("ĠCafÃ©")] == source.id_of("cafe")          # ... and strips accents
    assert same[target.id_of("(")] == source.id_of("(")                 # punctuation across the flag
    assert same[target.id_of("2024")] == source.id_of("2024")
    assert target.id_of("<s>") not in same                               # specials are never "identical"


def test_fvt_keeps_continuations_as_continuations(pair):
    src, tgt, source, target = pair
    split = fvt_sources(target, source, src)
    assert split[target.id_of("Ġkat")] == [source.id_of("kat")]
    assert split[target.id_of("ten")] == [source.id_of("##ten")]        # not the word-initial "ten"
    assert split[target.id_of("at")] == [source.id_of("##at")]
    assert target.id_of("<s>") not in split


def test_word_ids_drop_unknowns_and_bare_markers(pair):
    src, tgt, source, target = pair
    assert word_ids(src, source, ["katten", "日本"]) == [[source.id_of("kat"), source.id_of("##ten")], []]
    assert word_ids(tgt, target, ["kat"]) == [[target.id_of("Ġkat")]]
    assert neighbour_candidates(source)[source.id_of("kat")]
    assert not neighbour_candidates(source)[source.id_of("[unused0]")]
    assert not neighbour_candidates(source)[source.id_of("[CLS]")]


def test_each_baseline(pair):
    src, tgt, source, target = pair
    identical = build_baseline("identical", src, tgt)
    entry = identical.entries[target.id_of("Ġkat")]
    assert (entry.method, entry.sources) == ("identical", ((source.id_of("kat"), 1.0),))
    assert identical.entries[target.id_of("Ġk")].method in ("identical", "mean")
    assert identical.entries[target.id_of("</s>")].method == "special"

    fvt = build_baseline(MapMethod.FVT, src, tgt)
    entry = fvt.entries[target.id_of("Ġkat")]
    assert entry.method == "fvt" and entry.evidence == ("fvt:kat",)
    assert all(abs(sum(w for _, w in e.sources) - 1) < 1e-6 for e in fvt.entries if e.sources)

    mean = build_baseline("mean", src, tgt)
    assert set(mean.stats["by_method"]) == {"mean", "special"}
    assert all(not e.sources for e in mean.entries if e.method == "mean")

    rnd = build_baseline("random", src, tgt)
    assert rnd.stats["by_method"] == {"random": len(target)}
    assert all(not e.sources for e in rnd.entries) and rnd.entries[0].evidence


def test_baselines_on_trained_tokenizers_cover_every_token():
    src, tgt = en_tokenizer(), nl_tokenizer()
    for method in ("identical", "fvt", "mean", "random"):
        tm = build_baseline(method, src, tgt)
        assert len(tm.entries) == len(tgt) and tm.kind == method
        assert sum(tm.stats["by_method"].values()) == len(tgt)
