"""Map composition through a pivot vocabulary: the weights, fallbacks, provenance, chain checks and the CLI.

Three tiny vocabularies built with :func:`tests.tiny.from_tokens` stand for West Frisian (the new
target), Dutch (the pivot) and English (the model): byte-level BPE for fy and nl, WordPiece for
en, so the composed map crosses marker families as the real fy → nl → MiniLM chain does.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.tiny import from_tokens
from tokmap_ui.cli import main
from tokmap_ui.dictionary import Dictionary
from tokmap_ui.errors import ConfigError, TokenMapError
from tokmap_ui.io.tokenmaps import load_token_map, save_token_map
from tokmap_ui.mapping.compose import (ComposeConfig, PivotFallback, check_chain, compose_maps, parse_pivot_item,
                                       pivot_item)
from tokmap_ui.mapping.tiktotok import MappingConfig, build_token_map
from tokmap_ui.mapping.tokenmap import MapEntry, TokenMap, VocabRef
from tokmap_ui.vocab import Vocabulary

FY = ["<s>", "</s>", "Ġ", "s", "l", "u", "t", "e", "m", "a", "r", "k", "Ġslute", "Ġmar", "Ġkat", "Ġtsjerke"]
NL = ["<s>", "</s>", "Ġ", "s", "l", "u", "i", "t", "e", "n", "m", "a", "r", "k", "Ġsluiten", "Ġmaar", "Ġkat",
      "Ġkerk"]
EN = ["[UNK]", "[CLS]", "[SEP]", "s", "l", "u", "t", "e", "m", "a", "r", "k", "c", "o", "b", "h", "close", "shut",
      "but", "cat", "church", "##s", "##e", "##t", "##u", "##l", "##k", "##a", "##r", "##m", "##j"]


@pytest.fixture(scope="module")
def tokenizers():
    return (from_tokens(FY, "bytelevel", specials=("<s>", "</s>")),
            from_tokens(NL, "bytelevel", specials=("<s>", "</s>")),
            from_tokens(EN, "wordpiece", specials=("[UNK]", "[CLS]", "[SEP]")))


@pytest.fixture(scope="module")
def vocabs(tokenizers):
    return tuple(Vocabulary.from_tokenizer(t, name=n) for t, n in zip(tokenizers, ("fy", "nl", "en")))


def entry_map(target: Vocabulary, source: Vocabulary, rows: dict[str, list[tuple[str, float, str]] | str],
              kind: str = "manual") -> TokenMap:
    """A map from token strings: ``{"Ġslute": [("Ġsluiten", 1.0, "dictionary")], ...}``; others unmapped."""
    entries = []
    for i, token in enumerate(target.tokens):
        row = rows.get(token, [])
        sources = tuple((source.tokens.index(s), w) for s, w, _ in row)
        method = row[0][2] if row else "unmapped"
        entries.append(MapEntry(i, token, sources, method, (f"made:{token}",)))
    return TokenMap(kind, VocabRef.of(target), VocabRef.of(source), {}, tuple(entries))


@pytest.fixture()
def chain(vocabs):
    fy, nl, en = vocabs
    a = entry_map(fy, nl, {"<s>": [("<s>", 1.0, "special")], "</s>": [("</s>", 1.0, "special")],
                           "Ġslute": [("Ġsluiten", 1.0, "dictionary")],
                           "Ġmar": [("Ġmaar", 3.0, "neighbour"), ("Ġkat", 1.0, "neighbour")],
                           "Ġkat": [("Ġkat", 1.0, "identical")],
                           "Ġtsjerke": [("Ġkerk", 1.0, "dictionary")]})
    b = entry_map(nl, en, {"<s>": [("[CLS]", 1.0, "special")], "</s>": [("[SEP]", 1.0, "special")],
                           "Ġsluiten": [("close", 2.0, "dictionary"), ("shut", 1.0, "dictionary")],
                           "Ġmaar": [("but", 1.0, "dictionary")], "Ġkat": [("cat", 1.0, "dictionary")]})
    return a, b


def weights(token_map: TokenMap, vocab: Vocabulary, token: str, source: Vocabulary) -> dict[str, float]:
    entry = token_map.entries[vocab.tokens.index(token)]
    return {source.tokens[s]: round(w, 4) for s, w in entry.sources}


def test_weights_multiply_and_sum_over_the_pivot(chain, vocabs):
    fy, _, en = vocabs
    composed = compose_maps(list(chain), source_vocab=en)
    assert composed.target == chain[0].target and composed.source == chain[1].source
    assert weights(composed, fy, "Ġslute", en) == {"close": 0.6667, "shut": 0.3333}
    assert weights(composed, fy, "Ġmar", en) == {"but": 0.75, "cat": 0.25}
    assert weights(composed, fy, "<s>", en) == {"[CLS]": 1.0}
    sources = composed.entries[fy.tokens.index("Ġslute")].sources
    assert [en.tokens[s] for s, _ in sources] == ["close", "shut"]  # strongest first


def test_methods_take_the_less_certain_hop(chain, vocabs):
    fy = vocabs[0]
    composed = compose_maps(list(chain))
    method = {t: composed.entries[fy.tokens.index(t)].method for t in ("<s>", "Ġslute", "Ġmar", "Ġkat")}
    assert method == {"<s>": "special", "Ġslute": "dictionary", "Ġmar": "neighbour", "Ġkat": "dictionary"}


def test_unreached_entries_fall_back_as_configured(chain, vocabs, tokenizers):
    fy, _, en = vocabs
    i = fy.tokens.index("Ġtsjerke")  # Ġtsjerke → Ġkerk, which the nl→en map leaves unmapped
    plain = compose_maps(list(chain))
    assert plain.entries[i].sources == () and plain.entries[i].method == "unmapped"
    assert plain.stats["pivot"] == {"reached": 5, "unreached": len(fy) - 5, "fallback": "unmapped"}
    assert compose_maps(list(chain), ComposeConfig(fallback="mean")).entries[i].method == "mean"
    fvt = compose_maps(list(chain), ComposeConfig(fallback=PivotFallback.FVT), target_vocab=fy, source_vocab=en,
                       source_tokenizer=tokenizers[2])
    assert fvt.entries[i].method == "fvt" and fvt.entries[i].sources
    assert any(str(e).startswith("fvt:") for e in fvt.entries[i].evidence)
    direct = entry_map(fy, en, {"Ġtsjerke": [("church", 1.0, "dictionary")]})
    mapped = compose_maps(list(chain), ComposeConfig(fallback="map"), fallback_map=direct)
    assert mapped.entries[i].sources == ((en.tokens.index("church"), 1.0),)
    assert "fallback:map" in mapped.entries[i].evidence
    assert mapped.entries[fy.tokens.index("Ġslute")].evidence == plain.entries[fy.tokens.index("Ġslute")].evidence


def test_fallbacks_refuse_without_what_they_need(chain, vocabs):
    fy, nl, en = vocabs
    with pytest.raises(ConfigError, match="fvt fallback"):
        compose_maps(list(chain), ComposeConfig(fallback="fvt"))
    with pytest.raises(ConfigError, match="fallback map"):
        compose_maps(list(chain), ComposeConfig(fallback="map"))
    wrong = entry_map(fy, nl, {})
    with pytest.raises(TokenMapError, match="fallback map"):
        compose_maps(list(chain), ComposeConfig(fallback="map"), fallback_map=wrong)


def test_partly_reached_rows_renormalise_and_rejected_entries_carry_nothing(chain, vocabs):
    fy, nl, en = vocabs
    a, b = chain
    # Ġslute now also points at Ġkerk (unmapped in hop 2): its weight is lost, the rest renormalised
    i = fy.tokens.index("Ġslute")
    a2 = a.with_entries([MapEntry(i, "Ġslute", ((nl.tokens.index("Ġsluiten"), 1.0), (nl.tokens.index("Ġkerk"), 9.0)),
                                  "dictionary")])
    assert weights(compose_maps([a2, b]), fy, "Ġslute", en) == {"close": 0.6667, "shut": 0.3333}
    # a rejected pivot entry stands for nothing: Ġmar now reaches only Ġkat → cat
    p = nl.tokens.index("Ġmaar")
    b2 = b.with_entries([MapEntry(p, "Ġmaar", b.entries[p].sources, "dictionary", status="rejected")])
    assert weights(compose_maps([a, b2]), fy, "Ġmar", en) == {"cat": 1.0}


def test_top_k_and_min_share(vocabs):
    fy, nl, en = vocabs
    a = entry_map(fy, nl, {"Ġslute": [("Ġsluiten", 1.0, "dictionary")]})
    b = entry_map(nl, en, {"Ġsluiten": [("close", 5.0, "neighbour"), ("shut", 3.0, "neighbour"),
                                        ("but", 1.5, "neighbour"), ("cat", 0.5, "neighbour")]})
    i = fy.tokens.index("Ġslute")
    top2 = compose_maps([a, b], ComposeConfig(top_k=2))
    assert weights(top2, fy, "Ġslute", en) == {"close": 0.625, "shut": 0.375}
    share = compose_maps([a, b], ComposeConfig(min_share=0.1))
    assert weights(share, fy, "Ġslute", en) == {"close": 0.5263, "shut": 0.3158, "but": 0.1579}
    assert abs(sum(w for _, w in share.entries[i].sources) - 1.0) < 1e-5
    with pytest.raises(ConfigError):
        ComposeConfig(top_k=0)


def test_evidence_keeps_both_hops(chain, vocabs):
    fy, _, en = vocabs
    entry = compose_maps(list(chain), source_vocab=en).entries[fy.tokens.index("Ġmar")]
    assert entry.evidence[0] == "chain:neighbour→dictionary"
    pivots = [parse_pivot_item(e) for e in entry.evidence if parse_pivot_item(e)]
    assert [(p["via"], p["share"], p["hop"]) for p in pivots] == [("Ġmaar", 0.75, 1), ("Ġkat", 0.25, 1)]
    assert pivots[0]["to"] == [["but", 1.0]] and pivots[0]["why"] == ["made:Ġmaar"]
    assert "made:Ġmar" in entry.evidence  # the first hop's own evidence
    ids_only = compose_maps(list(chain)).entries[fy.tokens.index("Ġmar")]
    assert parse_pivot_item(ids_only.evidence[1])["to"] == [[f"#{en.tokens.index('but')}", 1.0]]
    assert parse_pivot_item("pair:a→b:1") is None and parse_pivot_item("pivot:{broken") is None
    assert parse_pivot_item(pivot_item(2, 'a"|→:b', 0.5, [("x", 1.0)])) == {
        "hop": 2, "via": 'a"|→:b', "share": 0.5, "to": [["x", 1.0]]}


def test_chain_of_three_maps(chain, vocabs):
    fy, nl, en = vocabs
    a, b = chain
    # en → en "identity with a twist": close ↔ shut swap, to tell hop 3 apart
    swap = {"close": "shut", "shut": "close"}
    c = entry_map(en, en, {t: [(swap.get(t, t), 1.0, "identical")] for t in en.tokens if t})
    three = compose_maps([a, b, c], source_vocab=en, names=["a.json", "b.json", "c.json"])
    assert weights(three, fy, "Ġslute", en) == {"shut": 0.6667, "close": 0.3333}
    entry = three.entries[fy.tokens.index("Ġslute")]
    assert entry.evidence[0] == "chain:dictionary→dictionary→identical"
    hops = [parse_pivot_item(e)["hop"] for e in entry.evidence if parse_pivot_item(e)]
    assert hops == [1, 2, 2]  # hop 2 passes through close and shut
    assert [h["name"] for h in three.params["chain"]] == ["a.json", "b.json", "c.json"]
    # associativity (no top-k cut): (a∘b)∘c == a∘(b∘c)
    left = compose_maps([compose_maps([a, b]), c])
    right = compose_maps([a, compose_maps([b, c])])
    assert [e.sources for e in left.entries] == [e.sources for e in right.entries]


def test_chains_that_do_not_line_up_are_refused(chain):
    a, b = chain
    with pytest.raises(TokenMapError) as err:
        check_chain([a, a], ["fy-nl.json", "again.json"])
    message = str(err.value)
    assert "fy-nl.json" in message and "again.json" in message and "Fix:" in message and "sha256" in message
    with pytest.raises(TokenMapError, match="wrong order: give fy-nl.json before nl-en.json"):
        compose_maps([b, a], names=["nl-en.json", "fy-nl.json"])
    # same name and size, other tokens: the hash tells them apart
    fake = TokenMap("x", VocabRef(b.target.name, b.target.vocab_size, "0" * 64), b.source, {}, b.entries)
    with pytest.raises(TokenMapError, match="does not line up"):
        compose_maps([a, fake])
    with pytest.raises(ConfigError, match="at least two"):
        compose_maps([a])


def test_composed_tiktotok_maps_round_trip_and_fit(tmp_path, tokenizers):
    # whole-word fy and nl tokenizers (tiny BPEs would need every merge step in their token lists)
    fy_tok = from_tokens(["[UNK]", "slute", "mar", "kat", "tsjerke", "hûs"], "wordlevel", specials=("[UNK]",))
    nl_tok = from_tokens(["[UNK]", "sluiten", "maar", "kat", "kerk"], "wordlevel", specials=("[UNK]",))
    en_tok = tokenizers[2]
    fy, nl, en = (Vocabulary.from_tokenizer(t) for t in (fy_tok, nl_tok, en_tok))
    fy_nl = Dictionary.from_pairs([("sluiten", "slute"), ("maar", "mar"), ("kat", "kat"), ("kerk", "tsjerke")],
                                  src_lang="nl", tgt_lang="fy")
    en_nl = Dictionary.from_pairs([("close", "sluiten"), ("shut", "sluiten"), ("but", "maar"), ("cat", "kat"),
                                   ("church", "kerk")], src_lang="en", tgt_lang="nl")
    config = MappingConfig(check_direction=False, space_dim=4)
    a = build_token_map(nl_tok, fy_tok, fy_nl, config, source=nl, target=fy)
    b = build_token_map(en_tok, nl_tok, en_nl, config, source=en, target=nl)
    composed = compose_maps([a, b], source_vocab=en)
    composed.check_fits(fy, en)
    entry = composed.entries[fy.tokens.index("tsjerke")]
    assert [en.tokens[s] for s, _ in entry.sources] == ["church"] and entry.method == "dictionary"
    path = save_token_map(composed, tmp_path / "fy-en.json.gz")
    loaded = load_token_map(path)
    assert loaded.entries == composed.entries and loaded.kind == "pivot"
    assert loaded.params["compose"]["top_k"] == 10 and len(loaded.params["chain"]) == 2


def test_cli_compose(tmp_path, chain, tokenizers, capsys):
    a, b = chain
    paths = [save_token_map(m, tmp_path / f"{n}.json") for m, n in zip(chain, ("fy-nl", "nl-en"))]
    en_dir = tmp_path / "en"
    tokenizers[2].save_pretrained(en_dir)
    out = tmp_path / "fy-en.json"
    assert main(["compose", str(paths[0]), str(paths[1]), "--out", str(out), "--source-tokenizer", str(en_dir),
                 "--top-k", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pivot"]["reached"] == 5 and summary["entries"] == len(FY)
    composed = load_token_map(out)
    assert max(len(e.sources) for e in composed.entries) == 1
    assert parse_pivot_item(composed.entries[FY.index("Ġslute")].evidence[1])["to"][0][0] == "close"
    assert main(["compose", str(paths[1]), str(paths[0]), "--out", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "wrong order" in err and "Traceback" not in err
    assert not (tmp_path / "bad.json").exists()
    assert main(["compose", str(paths[0]), str(paths[1]), "--out", str(tmp_path / "x.json"),
                 "--fallback", "map"]) == 2
    assert "--fallback-map" in capsys.readouterr().err


def test_compose_matches_dense_product(vocabs):
    """The sparse composition equals the dense W1 @ W2 (renormalised), on a random chain."""
    fy, nl, en = vocabs
    rng = np.random.default_rng(0)

    def random_map(target: Vocabulary, source: Vocabulary) -> TokenMap:
        entries = []
        for i, token in enumerate(target.tokens):
            k = int(rng.integers(0, 4))
            ids = rng.choice(len(source), size=k, replace=False)
            entries.append(MapEntry(i, token, tuple((int(j), float(rng.random() + 0.1)) for j in ids),
                                    "neighbour" if k else "unmapped"))
        return TokenMap("r", VocabRef.of(target), VocabRef.of(source), {}, tuple(entries))

    a, b = random_map(fy, nl), random_map(nl, en)
    composed = compose_maps([a, b], ComposeConfig(top_k=100))
    dense = (a.weight_matrix().to_dense() @ b.weight_matrix().to_dense()).numpy()   # (Vfy, Ven)
    for i, entry in enumerate(composed.entries):
        row = dense[i]
        if row.sum() <= 0:
            assert entry.sources == ()
            continue
        got = np.zeros(len(en))
        for s, w in entry.sources:
            got[s] = w
        assert np.allclose(got, row / row.sum(), atol=1e-5), i
