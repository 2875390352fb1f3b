"""The TokenMap artifact: construction checks, numeric views, stats, file round trip, strict loading, cache."""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest
import torch

from tests.tiny import build_bytelevel_bpe, build_llama_bpe, fast
from tokmap_ui.errors import TokenMapError
from tokmap_ui.io.tokenmaps import (cache_key, cached_token_map, load_token_map, save_token_map,
                                    token_map_from_dict)
from tokmap_ui.mapping import FORMAT, EntryMethod, EntryStatus, MapEntry, TokenMap, VocabRef
from tokmap_ui.vocab import Vocabulary

TGT, SRC = VocabRef("new", 4, "t" * 64), VocabRef("old", 3, "s" * 64)


def small_map(**kw) -> TokenMap:
    entries = (
        MapEntry(0, "▁kat", ((0, 0.75), (2, 0.25)), EntryMethod.DICTIONARY, evidence=("kat", "cat")),
        MapEntry(1, "▁hond", ((1, 2.0),), "neighbour", evidence=[0.93]),
        MapEntry(2, "en", ((0, 0.0), (1, 0.0)), "manual", status=EntryStatus.EDITED, comment="equal, please"),
        MapEntry(3, "🙂", (), "unmapped"),
    )
    return TokenMap(kw.get("kind", "tiktotok"), TGT, SRC, {"k": 3}, entries)


def test_entry_normalises_enums_lists_and_checks_values():
    e = MapEntry(0, "a", [[5, 1]], EntryMethod.PM_MINED, [2], EntryStatus.FLAGGED)
    assert e.sources == ((5, 1.0),) and e.method == "pm-mined" and e.status == "flagged" and e.evidence == (2,)
    assert e.is_mapped and not MapEntry(1, "b", (), "unmapped").is_mapped
    with pytest.raises(TokenMapError, match="unknown method 'magic'"):
        MapEntry(0, "a", (), "magic")
    with pytest.raises(TokenMapError, match="unknown status"):
        MapEntry(0, "a", (), "manual", status="maybe")


def test_map_requires_one_entry_per_target_token_in_order_and_valid_sources():
    good = small_map().entries
    with pytest.raises(TokenMapError, match="3 entries but the target vocabulary 'new' has 4"):
        TokenMap("x", TGT, SRC, {}, good[:3])
    with pytest.raises(TokenMapError, match="entry 1 has target_id 2"):
        TokenMap("x", TGT, SRC, {}, (good[0], good[2], good[1], good[3]))
    with pytest.raises(TokenMapError, match="source id 3 is outside"):
        TokenMap("x", TGT, SRC, {}, good[:3] + (MapEntry(3, "🙂", ((3, 1.0),), "manual"),))
    with pytest.raises(TokenMapError, match="not a finite number"):
        TokenMap("x", TGT, SRC, {}, good[:3] + (MapEntry(3, "🙂", ((1, math.nan),), "manual"),))


def test_weight_arrays_and_matrix_are_row_normalised():
    tm = small_map()
    rows, cols, vals = tm.weight_arrays()
    assert rows.tolist() == [0, 0, 1, 2, 2] and cols.tolist() == [0, 2, 1, 0, 1]
    assert np.allclose(vals, [0.75, 0.25, 1.0, 0.5, 0.5])  # all-zero weights become equal weights
    dense = tm.weight_matrix().to_dense()
    assert dense.shape == (4, 3)
    assert torch.allclose(dense.sum(1), torch.tensor([1.0, 1.0, 1.0, 0.0]))
    assert tm.mapped_mask().tolist() == [True, True, True, False]


def test_apply_to_rows_weighted_sum_and_fallbacks():
    tm = small_map()
    src = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    out = tm.apply_to_rows(src)
    expected = torch.tensor([[0.75 + 1.25, 1.25], [0.0, 1.0], [0.5, 0.5], [2.0, 2.0]])  # last: mean row
    assert torch.allclose(out, expected)
    assert torch.allclose(tm.apply_to_rows(src, torch.tensor([9.0, 8.0]))[3], torch.tensor([9.0, 8.0]))
    full = torch.arange(8.0).reshape(4, 2)
    assert torch.allclose(tm.apply_to_rows(src, full)[3], full[3])
    assert tm.apply_to_rows(src.bfloat16()).dtype == torch.bfloat16
    with pytest.raises(TokenMapError, match=r"shape \(2, 2\), expected \(3, D\)"):
        tm.apply_to_rows(src[:2])
    with pytest.raises(TokenMapError, match="fallback has shape"):
        tm.apply_to_rows(src, torch.zeros(3))


def test_apply_to_rows_matches_a_loop_on_a_random_map():
    rng = np.random.default_rng(0)
    vt, vs, d = 300, 200, 7
    entries = []
    for i in range(vt):
        k = int(rng.integers(0, 4))
        entries.append(MapEntry(i, f"t{i}", tuple((int(j), float(w)) for j, w in
                                                zip(rng.integers(0, vs, k), rng.random(k))), "neighbour"))
    tm = TokenMap("x", VocabRef("t", vt, ""), VocabRef("s", vs, ""), {}, entries)
    src = torch.randn(vs, d, dtype=torch.float64)
    out = tm.apply_to_rows(src)
    for i, e in enumerate(entries):
        if e.sources:
            total = sum(w for _, w in e.sources)
            want = sum(src[j] * (w / total if total else 1 / len(e.sources)) for j, w in e.sources)
        else:
            want = src.mean(0)
        assert torch.allclose(out[i], want, atol=1e-5), i


def test_compute_stats():
    s = small_map().stats
    assert s["entries"] == 4 and s["mapped"] == 3 and s["unmapped"] == 1
    assert s["by_method"] == {"dictionary": 1, "manual": 1, "neighbour": 1, "unmapped": 1}
    assert s["by_status"] == {"auto": 3, "edited": 1}
    assert s["mean_sources_per_entry"] == pytest.approx(5 / 4)
    assert s["mean_sources_per_mapped_entry"] == pytest.approx(5 / 3)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert s["mean_weight_entropy"] == pytest.approx((h + 0 + math.log(2)) / 3)


def test_with_entries_replaces_and_recomputes():
    tm = small_map()
    edited = tm.with_entries([MapEntry(3, "🙂", ((2, 1.0),), "manual", status="edited")])
    assert edited.entries[3].sources == ((2, 1.0),) and edited.stats["unmapped"] == 0
    assert tm.entries[3].sources == ()  # the original is unchanged


def vocab_pair() -> tuple[Vocabulary, Vocabulary]:
    gpt = Vocabulary.from_tokenizer(fast(build_bytelevel_bpe(300), eos_token="<|endoftext|>"), "gpt")
    llama = Vocabulary.from_tokenizer(fast(build_llama_bpe(400), eos_token="</s>"), "llama")
    return gpt, llama


def test_vocabref_of_and_check_fits_names_the_side():
    gpt, llama = vocab_pair()
    ref = VocabRef.of(gpt)
    assert ref == VocabRef("gpt", len(gpt), gpt.sha256)
    entries = tuple(MapEntry(i, t, (), "unmapped") for i, t in enumerate(gpt.tokens))
    tm = TokenMap("pm-mined", VocabRef.of(gpt), VocabRef.of(llama), {}, entries)
    tm.check_fits(gpt, llama)
    with pytest.raises(TokenMapError, match=r"target vocabulary: 'llama' has size \d+ instead of 300"):
        tm.check_fits(llama, llama)
    other = Vocabulary.from_tokenizer(fast(build_bytelevel_bpe(300)), "gpt-b")
    object.__setattr__(other, "sha256", "0" * 64)  # same size, different tokens
    with pytest.raises(TokenMapError, match="source vocabulary: 'gpt-b' has sha256 000000000000"):
        TokenMap("pm-mined", VocabRef.of(gpt), VocabRef.of(gpt), {}, entries).check_fits(gpt, other)


@pytest.mark.parametrize("name", ["map.json", "map.json.gz"])
def test_save_load_round_trip(tmp_path, name):
    tm = small_map()
    path = save_token_map(tm, tmp_path / name)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == name.endswith(".gz")
    text = gzip.decompress(raw).decode() if name.endswith(".gz") else raw.decode()
    assert text.count("\n") >= 6 and '"target_token":"▁kat"' in text  # one entry per line, UTF-8 kept
    assert json.loads(text)["format"] == FORMAT
    back = load_token_map(path)
    assert back.entries == tm.entries and back.params == tm.params and back.stats == tm.stats
    assert back.target == tm.target and back.source == tm.source and back.kind == tm.kind
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind
    assert save_token_map(tm, tmp_path / "again.json.gz").read_bytes() == save_token_map(
        tm, tmp_path / "again2.json.gz").read_bytes() or not name.endswith(".gz")


def _doc() -> dict:
    return json.loads(json.dumps(small_map().to_dict()))


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("format"), "not a tokmap token map"),
    (lambda d: d.update(format="something/else"), "not a tokmap token map"),
    (lambda d: d.update(format="tokmap.token-map/2"), "unsupported token-map version 'tokmap.token-map/2'"),
    (lambda d: d.pop("entries"), "lacks the required field 'entries'"),
    (lambda d: d.update(extra=1), "unknown field 'extra'"),
    (lambda d: d["target"].pop("sha256"), "'target.sha256' is missing"),
    (lambda d: d["entries"].pop(), "has 3 entries but target 'new' has 4"),
    (lambda d: d["entries"][2].pop("method"), r"entry 2 \(target_id 2\): lacks the required field 'method'"),
    (lambda d: d["entries"][1].update(target_id=7), r"entry 1 \(target_id 7\): target_id must be 1"),
    (lambda d: d["entries"][1].update(sources=[[3, 1.0]]), r"entries\[1\]\.sources.*source id 3 is outside"),
    (lambda d: d["entries"][1].update(sources=[[True, 1.0]]), "source id True is outside"),
    (lambda d: d["entries"][0].update(sources=[[0, -0.5]]), r"entry 0 \(target_id 0\): weight -0.5"),
    (lambda d: d["entries"][0].update(sources=[[0, "1"]]), "is not a number"),
    (lambda d: d["entries"][0].update(sources=[[0]]), "is not a \\[source_id, weight\\] pair"),
    (lambda d: d["entries"][3].update(method="guess"), r"entry 3 \(target_id 3\): unknown method 'guess'"),
    (lambda d: d["entries"][3].update(status="ok"), "unknown status 'ok'"),
    (lambda d: d["entries"][3].update(source=[]), "has unknown field 'source'"),
    (lambda d: d["entries"][3].update(evidence="x"), "evidence must be a list"),
])
def test_load_rejects_malformed_maps(tmp_path, mutate, message):
    doc = _doc()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(TokenMapError, match=message) as info:
        load_token_map(path)
    assert str(path) in str(info.value)


def test_load_rejects_nan_weights_and_non_json(tmp_path):
    doc = _doc()
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(doc).replace('[[1, 2.0]]', '[[1, NaN]]'), encoding="utf-8")
    with pytest.raises(TokenMapError, match="not a finite number"):
        load_token_map(path)
    (tmp_path / "broken.json").write_text('{"format": "tokmap.token-map/1",\n "kind": }', encoding="utf-8")
    with pytest.raises(TokenMapError, match="line 2: is not valid JSON"):
        load_token_map(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(TokenMapError, match="not a tokmap token map"):
        load_token_map(tmp_path / "list.json")
    (tmp_path / "bin.json.gz").write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(TokenMapError, match="damaged gzip"):
        load_token_map(tmp_path / "bin.json.gz")


def test_from_dict_accepts_optional_fields_missing():
    doc = _doc()
    doc.pop("stats")
    for entry in doc["entries"]:
        entry.pop("evidence")
        entry.pop("status")
    tm = token_map_from_dict(doc)
    assert tm.entries[0].status == "auto" and tm.stats["entries"] == 4


def test_cache_builds_once_and_rebuilds_damaged_files(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return small_map()

    one = cached_token_map("tiktotok", TGT, SRC, {"k": 3}, build, tmp_path)
    two = cached_token_map("tiktotok", TGT, SRC, {"k": 3}, build, tmp_path)
    assert len(calls) == 1 and one.entries == two.entries
    renamed = cached_token_map("tiktotok", VocabRef("other name", 4, TGT.sha256), SRC, {"k": 3}, build, tmp_path)
    assert len(calls) == 1 and renamed.target.name == "other name"
    cached_token_map("tiktotok", TGT, SRC, {"k": 4}, build, tmp_path)  # other params, other key
    assert len(calls) == 2
    (file,) = [p for p in tmp_path.iterdir() if cache_key("tiktotok", TGT, SRC, {"k": 3})[:32] in p.name]
    file.write_bytes(b"not gzip")
    cached_token_map("tiktotok", TGT, SRC, {"k": 3}, build, tmp_path)
    assert len(calls) == 3 and load_token_map(file).entries == small_map().entries


def test_cache_defaults_under_tokmap_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKMAP_HOME", str(tmp_path / "home"))
    cached_token_map("tiktotok", TGT, SRC, {"k": 3}, small_map)
    assert list((tmp_path / "home" / "cache" / "token-maps").glob("tiktotok-*.json.gz"))


def test_paused_gc_restores_the_collector_state():
    import gc

    from tokmap_ui.mapping import paused_gc

    assert gc.isenabled()
    with pytest.raises(ValueError), paused_gc():
        assert not gc.isenabled()
        raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before: stays off
    finally:
        gc.enable()
