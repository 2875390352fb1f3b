"""Tik-to-Tok mapping: the five steps, provenance, caching, bad input, and the ``map`` CLI.

Everything runs on tiny tokenizers trained in-process on made-up English and Dutch sentences
(an English WordPiece as the source, a RoBERTa-style Dutch byte-level BPE as the target) and a
hand-written English-Dutch lexicon. The builders here are imported by test_baselines.py and
test_evaluate_map.py too.
"""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from tokmap_ui.dictionary import Dictionary
from tokmap_ui.errors import ConfigError, DictionaryError
from tokmap_ui.io.cache import ArrayCache
from tokmap_ui.mapping.subword_space import SpaceMethod
from tokmap_ui.mapping.tiktotok import (MAP_METHODS, MapMethod, MappingConfig, build_token_map, dictionary_counts,
                                        direction_score, run_mapping)
from tokmap_ui.vocab import Vocabulary

LEXICON = [  # (en, nl)
    ("cat", "kat"), ("cats", "katten"), ("dog", "hond"), ("dogs", "honden"), ("house", "huis"),
    ("houses", "huizen"), ("garden", "tuin"), ("gardens", "tuinen"), ("window", "raam"), ("windows", "ramen"),
    ("green", "groen"), ("red", "rood"), ("small", "klein"), ("big", "groot"), ("old", "oud"), ("new", "nieuw"),
    ("child", "kind"), ("children", "kinderen"), ("day", "dag"), ("days", "dagen"), ("evening", "avond"),
    ("light", "licht"), ("water", "water"), ("school", "school"), ("book", "boek"), ("books", "boeken"),
    ("table", "tafel"), ("tables", "tafels"), ("chair", "stoel"), ("chairs", "stoelen"), ("door", "deur"),
    ("doors", "deuren"), ("street", "straat"), ("city", "stad"), ("tree", "boom"), ("trees", "bomen"),
    ("bird", "vogel"), ("birds", "vogels"), ("sun", "zon"), ("moon", "maan"), ("walk", "wandelen"),
    ("run", "rennen"), ("read", "lezen"), ("write", "schrijven"), ("play", "spelen"), ("eat", "eten"),
    ("drink", "drinken"), ("sleep", "slapen"), ("the", "de"), ("and", "en"), ("with", "met"), ("in", "in"),
    ("on", "op"), ("near", "bij"), ("word", "woord"), ("words", "woorden"), ("language", "taal"),
    ("languages", "talen"), ("beautiful", "mooi"), ("good", "goed"), ("friend", "vriend"),
    ("friends", "vrienden"), ("hand", "hand"), ("head", "hoofd"), ("teacher", "leraar"), ("teachers", "leraren"),
]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def sentences(words: list[str], n: int = 400, seed: int = 0) -> list[str]:
    """``n`` made-up sentences of 4-10 words drawn from ``words``, some with a number."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        line = [rng.choice(words) for _ in range(rng.randint(4, 10))]
        if i % 7 == 0:
            line.append(str(rng.choice([2024, 3, 15, 100])))
        lines.append(" ".join(line) + rng.choice([".", "!", ","]))
    return lines


def en_tokenizer(vocab_size: int = 250) -> PreTrainedTokenizerFast:
    """Source: an uncased English WordPiece with BERT specials."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator(sentences([e for e, _ in LEXICON]), trainers.WordPieceTrainer(
        vocab_size=vocab_size, show_progress=False, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")


def bpe_tokenizer(lines: list[str], vocab_size: int = 300, specials: bool = True) -> PreTrainedTokenizerFast:
    """Target: a byte-level BPE on ``lines``; RoBERTa specials (``<s>`` 0 ... ``<mask>`` 4) unless ``specials=False``."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                                       special_tokens=ROBERTA_SPECIALS if specials else []))
    if not specials:
        return PreTrainedTokenizerFast(tokenizer_object=tok)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>")


def nl_tokenizer(vocab_size: int = 300, specials: bool = True) -> PreTrainedTokenizerFast:
    return bpe_tokenizer(sentences([n for _, n in LEXICON], seed=1), vocab_size, specials)


def lexicon(pairs=LEXICON) -> Dictionary:
    return Dictionary.from_pairs(pairs, "en", "nl", name="lexicon.tsv")


@pytest.fixture(scope="module")
def tokenizers():
    return en_tokenizer(), nl_tokenizer()


def test_steps_provenance_and_weights(tokenizers):
    src, tgt = tokenizers
    source, target = Vocabulary.from_tokenizer(src), Vocabulary.from_tokenizer(tgt)
    run = run_mapping(src, tgt, lexicon(), MappingConfig(space_dim=16), source=source, target=target)
    tm = run.token_map
    assert tm.kind == "tiktotok" and len(tm.entries) == len(target)
    assert sum(tm.stats["by_method"].values()) == len(target)
    # 1. specials by role: <s> is bos/cls -> [CLS]; </s> -> [SEP]; the rest by name.
    expect = {"<s>": "[CLS]", "</s>": "[SEP]", "<pad>": "[PAD]", "<unk>": "[UNK]", "<mask>": "[MASK]"}
    for t, s in expect.items():
        entry = tm.entries[target.id_of(t)]
        assert entry.method == "special" and entry.sources == ((source.id_of(s), 1.0),)
    # 2. a word that is one token on both sides maps to its translation, with the pair as evidence.
    whole = [(e, n) for e, n in LEXICON if source.id_of(e) is not None and target.id_of("Ġ" + n) is not None]
    assert whole, "the tiny tokenizers should keep some whole words"
    for e, n in whole:
        entry = tm.entries[target.id_of("Ġ" + n)]
        assert entry.method == "dictionary"
        assert entry.sources[0][0] == source.id_of(e), (n, entry)
        assert any(ev.startswith(f"pair:{e}→{n}") for ev in entry.evidence)
    # numbers are identical strings (or dictionary-reached with the identical token as evidence)
    two = target.id_of("2024") or target.id_of("Ġ2024")
    if two is not None and source.id_of("2024") is not None:
        assert source.id_of("2024") in dict(tm.entries[two].sources)
    # every entry: normalised weights, sorted, provenance
    methods = set()
    for entry in tm.entries:
        methods.add(entry.method)
        if entry.sources:
            assert math.isclose(sum(w for _, w in entry.sources), 1.0, rel_tol=1e-4)
            assert entry.evidence
    assert {"special", "dictionary", "neighbour"} <= methods
    assert {"vocabularies", "dictionary", "neighbours"} <= set(run.timings)


def test_neighbour_entries_use_softmax_of_similarity(tokenizers):
    src, tgt = tokenizers
    config = MappingConfig(space_dim=16, top_k=3, temperature=0.2)
    tm = build_token_map(src, tgt, lexicon(), config)
    neighbours = [e for e in tm.entries if e.method == "neighbour"]
    assert neighbours
    for entry in neighbours[:20]:
        assert 1 <= len(entry.sources) <= 3
        sims = np.array([float(ev.rsplit(":", 1)[1]) for ev in entry.evidence])
        expected = np.exp((sims - sims.max()) / 0.2)
        expected /= expected.sum()
        assert np.allclose([w for _, w in entry.sources], expected, atol=2e-3)


def test_multi_token_pairs_split_half_all_to_all_half_in_order():
    src_vocab = {"[UNK]": 0, "cat": 1, "##s": 2, "dog": 3}
    tgt_vocab = {"[UNK]": 0, "kat": 1, "##ten": 2, "hond": 3, "##en": 4, "##je": 5}

    def wordpiece(vocab):
        tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")

    src, tgt = wordpiece(src_vocab), wordpiece(tgt_vocab)
    source, target = Vocabulary.from_tokenizer(src), Vocabulary.from_tokenizer(tgt)
    pairs = Dictionary.from_pairs([("cats", "katten"), ("dog", "hondenje")])
    found = dictionary_counts(pairs, src, tgt, source, target, MappingConfig(case_variants=False))
    c = found.counts.toarray()
    # cats=[cat, ##s], katten=[kat, ##ten]: all-to-all 0.25 each, in order 0.5 on the diagonal.
    assert c[1, 1] == pytest.approx(0.75) and c[2, 2] == pytest.approx(0.75)
    assert c[1, 2] == pytest.approx(0.25) and c[2, 1] == pytest.approx(0.25)
    # dog=[dog], hondenje=[hond, ##en, ##je]: each target token gets the whole weight from dog.
    assert c[3, 3] == pytest.approx(1.0) and c[4, 3] == pytest.approx(1.0) and c[5, 3] == pytest.approx(1.0)
    assert found.used == 2 and found.skipped == 0
    assert found.pairs_per_target[1] == 1


def test_whole_words_first_and_text_start_forms():
    from tests.test_baselines import bytelevel

    src = PreTrainedTokenizerFast(tokenizer_object=_wordpiece({"[UNK]": 0, "cat": 1, "##s": 2, ",": 3, "##,": 4}),
                                  unk_token="[UNK]")
    letters = {c: i for i, c in enumerate("aeknstKĠ,", start=1)}
    merges = [("Ġ", "k"), ("Ġk", "a"), ("Ġka", "t"), ("t", "e"), ("te", "n"), ("K", "a"), ("Ka", "t")]
    vocab = {"<unk>": 0, **letters}
    for left, right in merges:
        vocab[left + right] = len(vocab)
    tgt = bytelevel(vocab, merges, unk_token="<unk>")
    source, target = Vocabulary.from_tokenizer(src), Vocabulary.from_tokenizer(tgt)
    pairs = Dictionary.from_pairs([("cat", "kat"), ("cats", "katten"), (",", ",")], "en", "nl")
    config = MappingConfig(space_dim=2, whole_words_first=False, text_start_variants=False, check_direction=False)
    mixed = build_token_map(src, tgt, pairs, config, source=source, target=target)
    assert len(mixed.entries[target.id_of("Ġkat")].sources) == 2          # cat and ##s (from "cats")
    config = MappingConfig(space_dim=2, whole_words_first=True, text_start_variants=True, check_direction=False)
    tm = build_token_map(src, tgt, pairs, config, source=source, target=target)
    entry = tm.entries[target.id_of("Ġkat")]
    assert entry.sources == ((source.id_of("cat"), 1.0),) and entry.evidence[0] == "whole-word pairs:1"
    assert tm.entries[target.id_of("ten")].method == "dictionary"           # only split evidence: still used
    # "Kat" is how the word is written at the start of a text (no space before it)
    start = tm.entries[target.id_of("Kat")]
    assert start.method == "dictionary" and start.sources[0][0] == source.id_of("cat")
    # punctuation is copied, never learnt from pairs, and never from the untrained WordPiece "##,"
    comma = tm.entries[target.id_of(",")]
    assert (comma.method, comma.sources) == ("identical", ((source.id_of(","), 1.0),))


def _wordpiece(vocab: dict[str, int]) -> Tokenizer:
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


def test_space_is_cached_and_runs_are_deterministic(tokenizers, tmp_path):
    src, tgt = tokenizers
    cache = ArrayCache(tmp_path / "cache")
    config = MappingConfig(space_dim=16)
    first = run_mapping(src, tgt, lexicon(), config, cache=cache)
    second = run_mapping(src, tgt, lexicon(), config, cache=cache)
    assert "space" in first.timings and "space (cached)" in second.timings
    assert first.token_map.entries == second.token_map.entries


def test_space_methods_and_text(tokenizers):
    src, tgt = tokenizers
    en = sentences([e for e, _ in LEXICON], n=100, seed=5)
    nl = sentences([n for _, n in LEXICON], n=100, seed=6)
    for space in SpaceMethod:
        tm = build_token_map(src, tgt, lexicon(), MappingConfig(space=space, space_dim=8),
                             source_text=en, target_text=nl)
        assert tm.stats["by_method"].get("neighbour", 0) > 0
        assert tm.params["space"] == space.value


def test_registry_covers_every_method(tokenizers):
    src, tgt = tokenizers
    assert set(MAP_METHODS) == set(MapMethod)
    for method in MapMethod:
        tm = build_token_map(src, tgt, lexicon(), MappingConfig(method=method, space_dim=8))
        assert tm.kind == method.value and len(tm.entries) == len(tgt)


# ----------------------------------------------------------------------------- bad input

def test_empty_dictionary_is_refused_with_a_way_out(tokenizers):
    src, tgt = tokenizers
    with pytest.raises(DictionaryError, match="no word pairs.*--method fvt"):
        build_token_map(src, tgt, Dictionary.from_pairs([], name="empty.tsv"))
    # the baselines need no dictionary
    assert build_token_map(src, tgt, None, MappingConfig(method="fvt")).kind == "fvt"


def test_reversed_dictionary_is_detected(tokenizers):
    src, tgt = tokenizers
    source, target = Vocabulary.from_tokenizer(src), Vocabulary.from_tokenizer(tgt)
    assert direction_score(lexicon(), src, tgt, source, target) > 0.1
    reversed_ = lexicon().reversed()
    assert direction_score(reversed_, src, tgt, source, target) < -0.1
    with pytest.raises(DictionaryError, match=r"looks reversed \(nl → en\).*--swap"):
        build_token_map(src, tgt, reversed_)
    # told to, it maps anyway
    assert build_token_map(src, tgt, reversed_, MappingConfig(check_direction=False, space_dim=8)).entries


GREEK = str.maketrans("abcdefghijklmnopqrstuvwxyz", "αβψδεφγηιξκλμνοπθρστυωςχϑζ")


def test_vocabularies_with_nothing_in_common(tokenizers):
    src, _ = tokenizers
    greek_pairs = [(e, n.translate(GREEK)) for e, n in LEXICON if n.translate(GREEK) != n]
    greek_lines = [" ".join(n for _, n in random.Random(i).sample(greek_pairs, 6)) for i in range(300)]
    tgt = bpe_tokenizer(greek_lines, vocab_size=300)
    run = run_mapping(src, tgt, lexicon(greek_pairs), MappingConfig(space_dim=8))
    assert "identical" not in run.token_map.stats["by_method"]
    assert any("share no token text" in note for note in run.notes)
    assert run.token_map.stats["by_method"]["dictionary"] > 0
    # ... and a dictionary neither tokenizer can read on its side: a clear error, not an empty map.
    unreadable = Dictionary.from_pairs([(n, n) for _, n in greek_pairs], name="greek-greek.tsv")
    with pytest.raises(DictionaryError, match="none of its .* pairs could be tokenised"):
        build_token_map(src, tgt, unreadable, MappingConfig(check_direction=False))


def test_target_tokenizer_without_specials_is_a_note(tokenizers):
    src, _ = tokenizers
    tgt = nl_tokenizer(specials=False)
    run = run_mapping(src, tgt, lexicon(), MappingConfig(space_dim=8))
    assert "special" not in run.token_map.stats["by_method"]
    assert any("declares no special tokens" in note for note in run.notes)
    assert run.token_map.stats["notes"] == run.notes


@pytest.mark.parametrize("bad", [{"top_k": 0}, {"temperature": 0}, {"in_order_share": 2}, {"space": "glove"}])
def test_config_is_checked(bad):
    with pytest.raises((ConfigError, ValueError)):
        MappingConfig(**bad)


# ----------------------------------------------------------------------------- CLI

def write_kit(tmp_path, tokenizers):
    """Save the tiny tokenizers, a dictionary TSV and a held-out TSV; return their paths."""
    src, tgt = tokenizers
    src.save_pretrained(tmp_path / "en-tok")
    tgt.save_pretrained(tmp_path / "nl-tok")
    (tmp_path / "dict.tsv").write_text("en\tnl\n" + "".join(f"{e}\t{n}\n" for e, n in LEXICON[:-6]), "utf-8")
    (tmp_path / "held.tsv").write_text("en\tnl\n" + "".join(f"{e}\t{n}\n" for e, n in LEXICON[-6:]), "utf-8")
    return tmp_path / "en-tok", tmp_path / "nl-tok", tmp_path / "dict.tsv", tmp_path / "held.tsv"


@pytest.fixture
def cli(monkeypatch):
    import tokmap_ui.cli as cli_module

    if "tokmap_ui.cli.mapping" not in cli_module.COMMAND_MODULES:
        monkeypatch.setattr(cli_module, "COMMAND_MODULES", cli_module.COMMAND_MODULES + ("tokmap_ui.cli.mapping",))
    return cli_module.main


def test_cli_map_writes_a_loadable_map(tmp_path, tokenizers, cli, capsys):
    from tokmap_ui.io.tokenmaps import load_token_map

    en, nl, dictionary, _ = write_kit(tmp_path, tokenizers)
    out = tmp_path / "map.json"
    code = cli(["map", "--source-tokenizer", str(en), "--target-tokenizer", str(nl), "--dictionary",
                str(dictionary), "--top-k", "2", "--space-dim", "8", "--set", "whole_words_first=false",
                "--set", "in_order_share=0.25", "--out", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    tm = load_token_map(out)
    assert tm.kind == "tiktotok" and tm.params["top_k"] == 2
    assert tm.params["whole_words_first"] is False and tm.params["in_order_share"] == 0.25
    assert summary["by_method"] == tm.stats["by_method"] and "dictionary" in summary["seconds"]
    assert max(len(e.sources) for e in tm.entries if e.method == "neighbour") <= 2


def test_cli_map_errors_are_one_line(tmp_path, tokenizers, cli, capsys):
    en, nl, dictionary, _ = write_kit(tmp_path, tokenizers)
    out = tmp_path / "map.json"
    # the columns read the wrong way round
    code = cli(["map", "--source-tokenizer", str(en), "--target-tokenizer", str(nl), "--dictionary",
                str(dictionary), "--swap", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "looks reversed" in err and "--swap" in err and "Traceback" not in err
    assert not out.exists()
    # a misspelt --set field
    code = cli(["map", "--source-tokenizer", str(en), "--target-tokenizer", str(nl), "--dictionary",
                str(dictionary), "--set", "top_kk=3", "--out", str(out)])
    assert code == 2 and "FIELD=VALUE" in capsys.readouterr().err
    # no source tokenizer at all
    code = cli(["map", "--target-tokenizer", str(nl), "--dictionary", str(dictionary), "--out", str(out)])
    assert code == 2 and "--source-tokenizer" in capsys.readouterr().err
