"""PM-MinED: reference mode equals a literal port of the CMC loop; the default mode's additions; report; CLI."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
from rapidfuzz.distance import Levenshtein
from tokenizers import Tokenizer, models, pre_tokenizers

from tests.tiny import (build_bytelevel_bpe, build_llama_bpe, build_metaspace_unigram, build_wordpiece, fast,
                        make_bytelevel_bpe, make_llama_bpe)
from tokmap_ui.errors import TokenMapError
from tokmap_ui.io.tokenmaps import load_token_map
from tokmap_ui.mapping import pmmined
from tokmap_ui.mapping.pmmined import (PmMinedConfig, PrefixIndex, build_pmmined_map, build_pmmined_map_cached,
                                       compatibility_report)
from tokmap_ui.vocab import Vocabulary

_spec = importlib.util.spec_from_file_location(
    "pmmined_literal", Path(__file__).resolve().parents[1] / "bench" / "pmmined_literal.py")
literal = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(literal)

REF = PmMinedConfig(reference=True)


# ------------------------------------------------------------------ vocabularies

_CACHE: dict[str, Vocabulary] = {}


def tiny(name: str) -> Vocabulary:
    """Tiny real tokenizers of each family (built once per test session)."""
    if name not in _CACHE:
        makers = {
            "llama": lambda: fast(build_llama_bpe(500), unk_token="<unk>", bos_token="<s>", eos_token="</s>"),
            "llama400": lambda: fast(build_llama_bpe(400), unk_token="<unk>", bos_token="<s>", eos_token="</s>"),
            "unigram": lambda: fast(build_metaspace_unigram(300), unk_token="<unk>", bos_token="<s>",
                                    eos_token="</s>", pad_token="<pad>"),
            "gpt": lambda: fast(build_bytelevel_bpe(400), eos_token="<|endoftext|>"),
            "wordpiece": lambda: fast(build_wordpiece(400), unk_token="[UNK]", pad_token="[PAD]",
                                      cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"),
        }
        _CACHE[name] = Vocabulary.from_tokenizer(makers[name](), name)
    return _CACHE[name]


def word_vocab(tokens: list[str], specials: list[str] = (), metaspace: bool = False, name: str = "words",
               added: list[str] = ()) -> Vocabulary:
    """A vocabulary with exactly these tokens in this id order (WordLevel model)."""
    model = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=tokens[0]))
    if metaspace:
        model.pre_tokenizer = pre_tokenizers.Metaspace()
    if specials:
        model.add_special_tokens(list(specials))
    if added:
        model.add_tokens(list(added))
    return Vocabulary.from_tokenizer(fast(model), name)


def random_vocab(rng: random.Random, size: int, shared: list[str] = ()) -> list[str]:
    """Random strings over a small alphabet so that prefixes, ties and the bare ▁ are frequent."""
    alphabet = ["a", "b", "c", "▁", "▁", "<", ">", "x", "é", "中", "\n"]
    tokens = {"<unk>", "<s>", "</s>", "▁", "▁▁", "<0x41>", "<?>", "a", "b"}
    tokens.update(rng.sample(list(shared), min(len(shared), size // 2)) if shared else [])
    while len(tokens) < size:
        tokens.add("".join(rng.choices(alphabet, k=rng.choice((1, 2, 2, 3, 3, 4, 5, 7)))))
    rest = sorted(tokens - {"<unk>", "<s>", "</s>"})
    rng.shuffle(rest)
    return ["<unk>", "<s>", "</s>"] + rest


def ids_of(token_map) -> list[int]:
    return [e.sources[0][0] if e.sources else -1 for e in token_map.entries]


def assert_matches_literal(host: Vocabulary, delta: Vocabulary) -> None:
    ours = build_pmmined_map(host, delta, REF)
    specials = {t for t, s in zip(host.tokens, host.is_special.tolist()) if s}
    expected = literal.literal_pmmined(list(host.tokens), specials, list(delta.tokens))
    for entry, (want_id, flag) in zip(ours.entries, expected):
        want_id = want_id if want_id < len(delta) else -1  # the one deliberate difference (see pmmined.py)
        got = entry.sources[0][0] if entry.sources else -1
        assert got == want_id, (entry.target_id, entry.target_token, got, want_id)
        assert (entry.method in ("exact", "special", "byte")) == (flag == 1 and want_id >= 0), entry
        if entry.method == "pm-mined":
            assert entry.evidence == (Levenshtein.distance(entry.target_token, delta.tokens[got]),)


# ------------------------------------------------------------------ reference mode = the literal loop

@pytest.mark.parametrize("host", ["llama", "unigram", "gpt", "wordpiece"])
@pytest.mark.parametrize("delta", ["llama", "llama400", "unigram", "gpt", "wordpiece"])
def test_reference_mode_equals_literal_loop_on_real_tokenizers(host, delta):
    assert_matches_literal(tiny(host), tiny(delta))


@pytest.mark.parametrize("seed", range(6))
def test_reference_mode_equals_literal_loop_on_random_vocabularies(seed):
    rng = random.Random(seed)
    delta_tokens = random_vocab(rng, 400)
    host_tokens = random_vocab(rng, 300 + 50 * seed, shared=delta_tokens)
    delta = word_vocab(delta_tokens, ["<unk>", "<s>", "</s>"], name="delta")
    host = word_vocab(host_tokens, ["<unk>", "<s>", "</s>"], name="host")
    assert_matches_literal(host, delta)


def test_prefix_index_matches_brute_force_including_edge_code_points():
    rng = random.Random(1)
    alphabet = ["a", "b", "▁", "\U0010ffff", "\U0010fffe", "z"]
    keys = sorted({"".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(300)})
    rng.shuffle(keys)
    ids = list(range(len(keys)))
    rng.shuffle(ids)
    index = PrefixIndex(keys, ids)
    queries = sorted({"".join(rng.choices(alphabet, k=rng.randint(1, 5))) for _ in range(400)} - set(keys))
    got_ids, got_d = index.nearest(queries)
    for s, gi, gd in zip(queries, got_ids, got_d):
        cands = [(Levenshtein.distance(s, k), i) for k, i in zip(keys, ids)
                 if (s.startswith(k) or k.startswith(s)) and not (k == "▁" and not literal.is_all_space(s))]
        want = min(cands) if cands else (-1, -1)
        assert (gd, gi) == want, (s, gi, gd, want)


def test_reference_quirks_specials_and_angle_tokens_by_id():
    delta = word_vocab(["<unk>", "<s>", "</s>", "ab", "<?>"], ["<unk>", "<s>", "</s>"], name="delta")
    host = word_vocab(["<unk>", "</s>", "<s>", "<?>", "abc", "<br>", "<a", "▁", "▁▁"], ["<unk>", "<s>", "</s>"])
    tm = build_pmmined_map(host, delta, REF)
    # by id, even where the strings differ (</s> -> <s>); "<br>" id 5 is outside the delta: unmapped
    assert ids_of(tm) == [0, 1, 2, 3, 3, -1, -1, -1, -1]
    assert tm.entries[1].method == "special" and tm.entries[4].method == "pm-mined"
    assert tm.entries[5].evidence == ("id outside the delta vocabulary",)
    assert_matches_literal(host, delta)


# ------------------------------------------------------------------ the default mode's additions

def test_same_vocabulary_maps_every_token_to_itself():
    for name in ("llama", "gpt", "wordpiece", "unigram"):
        vocab = tiny(name)
        for config in (REF, PmMinedConfig()):
            assert ids_of(build_pmmined_map(vocab, vocab, config)) == list(range(len(vocab))), (name, config)


def test_markers_are_normalised_so_byte_level_hosts_map():
    gpt, llama = tiny("gpt"), tiny("llama")
    ref, ours = build_pmmined_map(gpt, llama, REF), build_pmmined_map(gpt, llama)
    g, l_ = gpt.id_of("Ġthe"), llama.id_of("▁the")
    assert g is not None and l_ is not None
    assert ids_of(ref)[g] == -1  # the reference finds no relative of "Ġthe"
    assert ours.entries[g].sources == ((l_, 1.0),) and ours.entries[g].method == "exact"
    assert ref.stats["unmapped"] > len(gpt) // 2 and ours.stats["unmapped"] <= 5
    raw = build_pmmined_map(gpt, llama, PmMinedConfig(normalise_markers=False))
    assert raw.entries[g].sources == () and raw.stats["unmapped"] > ours.stats["unmapped"] + 30
    # pm-mined evidence is the edit distance between the normalised strings
    keys_h, keys_d = pmmined._keys(gpt, True), pmmined._keys(llama, True)
    approx = [e for e in ours.entries if e.method == "pm-mined"]
    assert approx
    for e in approx:
        j = e.sources[0][0]
        assert e.evidence == (Levenshtein.distance(keys_h[e.target_id], keys_d[j]),)
        assert keys_h[e.target_id].startswith(keys_d[j]) or keys_d[j].startswith(keys_h[e.target_id])


def test_wordpiece_pieces_match_continuations_and_word_starts():
    wp, llama = tiny("wordpiece"), tiny("llama")
    tm = build_pmmined_map(wp, llama)
    checked = 0
    for i, token in enumerate(wp.tokens):
        target = llama.id_of(token[2:]) if token.startswith("##") else llama.id_of("▁" + token)
        if target is not None and not wp.is_special[i]:
            assert tm.entries[i].sources == ((target, 1.0),), token
            checked += 1
    assert checked > 50


def test_specials_map_by_role_not_by_id():
    gpt, llama = tiny("gpt"), tiny("llama")
    eos = gpt.id_of("<|endoftext|>")
    assert build_pmmined_map(gpt, llama, REF).entries[eos].sources == ((eos, 1.0),)  # id 0 = <unk>: wrong
    entry = build_pmmined_map(gpt, llama).entries[eos]
    assert entry.sources == ((llama.id_of("</s>"), 1.0),) and entry.evidence == ("role:eos",)
    back = build_pmmined_map(llama, gpt)
    assert back.entries[llama.id_of("</s>")].sources == ((eos, 1.0),)
    assert back.entries[llama.id_of("<s>")].sources == ()  # GPT-2 declares no bos: unmapped, not guessed
    uni = tiny("unigram")
    assert build_pmmined_map(uni, llama).entries[uni.id_of("<pad>")].method == "unmapped"
    by_id = build_pmmined_map(gpt, llama, PmMinedConfig(specials_by_role=False)).entries[eos]
    assert by_id.sources == ((eos, 1.0),)


def test_bytes_and_single_characters_use_utf8_byte_tokens():
    llama = tiny("llama")
    host = word_vocab(["<unk>", "▁🦉", "🦉", "鳥", "▁x🦉y"], ["<unk>"], metaspace=True)
    tm = build_pmmined_map(host, llama)
    owl = "🦉".encode()
    for i in (1, 2):
        assert tm.entries[i].sources == ((llama.id_of(f"<0x{owl[0]:02X}>"), 1.0),)
        assert tm.entries[i].method == "byte" and tm.entries[i].evidence == ("utf8:F0 9F A6 89",)
    assert tm.entries[3].sources == ((llama.id_of("<0xE9>"), 1.0),)  # 鳥 = E9 B3 A5
    assert build_pmmined_map(host, llama, REF).entries[2].sources == ()
    assert build_pmmined_map(host, llama, PmMinedConfig(byte_fallback=False)).entries[2].sources == ()
    # byte tokens map to the same byte across families: SentencePiece <0xC3> <-> GPT-2 "Ã"
    gpt = tiny("gpt")
    c3 = build_pmmined_map(llama, gpt).entries[llama.id_of("<0xC3>")]
    assert c3.sources == ((gpt.id_of("Ã"), 1.0),) and c3.method == "byte"
    newline = build_pmmined_map(gpt, llama).entries[gpt.id_of("Ċ")]
    assert newline.sources == ((llama.id_of("<0x0A>"), 1.0),) and newline.method == "byte"
    # a plain letter prefers the letter token over the byte-fallback token for the same byte
    a = build_pmmined_map(gpt, llama).entries[gpt.id_of("a")]
    assert a.sources == ((llama.id_of("a"), 1.0),) and a.method == "exact"


def test_added_tokens_match_by_string_even_against_delta_specials():
    llama_tok = fast(build_llama_bpe(500), unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    host_tok = fast(build_llama_bpe(500), unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    llama_tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    host_tok.add_tokens(["<|im_end|>", "<|im_start|>"])
    delta, host = Vocabulary.from_tokenizer(llama_tok, "delta"), Vocabulary.from_tokenizer(host_tok, "host")
    i, j = host.id_of("<|im_start|>"), delta.id_of("<|im_start|>")
    assert i != j and i in host.added_ids
    entry = build_pmmined_map(host, delta).entries[i]
    assert entry.sources == ((j, 1.0),) and entry.method == "special" and entry.evidence == ("string",)
    assert build_pmmined_map(host, delta, PmMinedConfig(match_added_tokens=False)).entries[i].sources != ((j, 1.0),)
    assert build_pmmined_map(host, delta, REF).entries[i].sources == ()  # by id: 501 is outside the delta


def test_map_shape_params_and_stats():
    gpt, llama = tiny("gpt"), tiny("llama")
    tm = build_pmmined_map(gpt, llama)
    assert tm.kind == "pm-mined" and tm.target.name == "gpt" and tm.source.name == "llama"
    assert tm.params["reference"] is False and tm.params["algorithm_version"] == pmmined.ALGORITHM_VERSION
    assert len(tm.entries) == len(gpt) and all(len(e.sources) <= 1 for e in tm.entries)
    assert set(tm.stats["by_method"]) <= {"special", "exact", "pm-mined", "byte", "unmapped"}
    tm.check_fits(gpt, llama)


def test_cached_build_hits_the_cache(tmp_path, monkeypatch):
    gpt, llama = tiny("gpt"), tiny("llama")
    calls = []
    real = pmmined.build_pmmined_map
    monkeypatch.setattr(pmmined, "build_pmmined_map", lambda *a: calls.append(1) or real(*a))
    one = build_pmmined_map_cached(gpt, llama, PmMinedConfig(), tmp_path)
    two = build_pmmined_map_cached(gpt, llama, PmMinedConfig(), tmp_path)
    assert len(calls) == 1 and one.entries == two.entries
    build_pmmined_map_cached(gpt, llama, REF, tmp_path)
    assert len(calls) == 2 and len(list(tmp_path.glob("pm-mined-*.json.gz"))) == 2


# ------------------------------------------------------------------ compatibility report

def test_compatibility_report_counts_histogram_and_examples():
    gpt, llama = tiny("gpt"), tiny("llama")
    tm = build_pmmined_map(gpt, llama)
    report = compatibility_report(tm, gpt, llama)
    assert sum(report.counts.values()) == report.total == len(gpt)
    assert report.counts["exact"] == tm.stats["by_method"].get("exact", 0)
    assert sum(report.distance_histogram.values()) == report.counts["approximate"]
    assert report.mean_distance > 0 and report.max_distance == max(report.distance_histogram)
    shared = [row["host_tokens"] for row in report.most_shared]
    assert shared == sorted(shared, reverse=True) and all(n > 1 for n in shared)
    assert all(len(rows) <= 5 for rows in report.examples.values()) and report.examples["exact"]
    text = report.to_text()
    assert "PM-MinED map gpt -> llama (default mode)" in text and "edit distance" in text
    assert json.loads(json.dumps(report.to_dict()))["counts"] == report.counts
    with pytest.raises(TokenMapError, match="does not fit"):
        compatibility_report(tm, llama, llama)


# ------------------------------------------------------------------ CLI

@pytest.fixture
def cli(monkeypatch):
    import tokmap_ui.cli as cli_module

    if "tokmap_ui.cli.cmc" not in cli_module.COMMAND_MODULES:
        monkeypatch.setattr(cli_module, "COMMAND_MODULES", cli_module.COMMAND_MODULES + ("tokmap_ui.cli.cmc",))
    return cli_module.main


def test_cli_pmmined_writes_a_map_and_prints_the_report(tmp_path, cli, capsys):
    gpt, llama = make_bytelevel_bpe(tmp_path / "gpt"), make_llama_bpe(tmp_path / "llama")
    out = tmp_path / "maps" / "gpt2llama.json"
    assert cli(["pmmined", "--host-tokenizer", str(gpt), "--delta-tokenizer", str(llama), "--report",
                "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PM-MinED map" in printed and f"wrote {out}" in printed
    tm = load_token_map(out)
    assert tm.kind == "pm-mined" and tm.params["reference"] is False and tm.stats["unmapped"] < 10
    assert cli(["pmmined", "--host-tokenizer", str(gpt), "--delta-tokenizer", str(llama), "--reference",
                "--report", "--json", "--out", str(tmp_path / "ref.json.gz")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["mode"] == "reference" and report["counts"]["unmapped"] > 100
    assert load_token_map(tmp_path / "ref.json.gz").params["reference"] is True


def test_cli_pmmined_bad_input_exits_2_with_a_message(tmp_path, cli, capsys):
    llama = make_llama_bpe(tmp_path / "llama")
    code = cli(["pmmined", "--host-tokenizer", str(tmp_path / "missing"), "--delta-tokenizer", str(llama),
                "--out", str(tmp_path / "m.json")])
    err = capsys.readouterr().err
    assert code == 2 and "not found" in err and "Traceback" not in err
    assert not (tmp_path / "m.json").exists()
