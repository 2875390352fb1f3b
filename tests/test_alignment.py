"""Token alignment from parallel text (IBM Model 1) and Tik-to-Tok's ``aligned`` step, on tiny tokenizers."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tests.test_tiktotok import LEXICON, en_tokenizer, lexicon, nl_tokenizer
from tokmap_ui.cli import main
from tokmap_ui.errors import ConfigError
from tokmap_ui.mapping.alignment import align_tokens, tokenize_segments
from tokmap_ui.mapping.tiktotok import MappingConfig, run_mapping


def parallel_corpus(n: int = 600, seed: int = 0) -> tuple[list[str], list[str]]:
    """Made-up English sentences and their word-by-word Dutch translations."""
    rng = random.Random(seed)
    en, nl = [], []
    for _ in range(n):
        words = [rng.choice(LEXICON) for _ in range(rng.randint(3, 8))]
        en.append(" ".join(e for e, _ in words))
        nl.append(" ".join(d for _, d in words))
    return en, nl


@pytest.fixture(scope="module")
def tokenizers():
    return en_tokenizer(), nl_tokenizer()


def test_ibm1_recovers_a_hidden_one_to_one_lexicon():
    rng = np.random.default_rng(0)
    truth = rng.permutation(40)                                 # target token t translates source truth[t]
    source, target = [], []
    for _ in range(800):
        words = rng.integers(0, 40, size=rng.integers(3, 9))
        target.append([int(t) for t in words])
        order = rng.permutation(len(words))                     # word order differs between the languages
        source.append([int(truth[words[i]]) for i in order])
    table = align_tokens(source, target, source_size=40, target_size=40)
    assert table.segments == 800
    assert all(table.sources(t, top_k=1)[0][0] == truth[t] for t in range(40))
    assert all(abs(sum(w for _, w in table.sources(t, top_k=3)) - 1) < 1e-9 for t in range(40))


def test_long_or_empty_segments_are_skipped_and_lengths_must_match():
    table = align_tokens([[1, 2], [], list(range(10))], [[3], [4], list(range(10))], 12, 12, max_tokens=5)
    assert table.segments == 1 and table.total(4) == 0 and table.sources(4) == ()
    with pytest.raises(ConfigError, match="2 source segments but 1 target"):
        align_tokens([[1], [2]], [[1]], 3, 3)


def test_aligned_step_maps_whole_words_to_their_translations(tokenizers):
    src, tgt = tokenizers
    en, nl = parallel_corpus()
    small = lexicon(LEXICON[:5])  # the dictionary alone reaches almost nothing
    run = run_mapping(src, tgt, small, MappingConfig(), parallel=(en, nl))
    entries = run.token_map.entries
    assert run.token_map.stats["parallel"]["targets_aligned"] == sum(e.method == "aligned" for e in entries) > 50
    assert all(e.method == "special" for e in entries[:5])      # specials keep their role match
    src_vocab = src.get_vocab()
    checked = hits = 0
    for english, dutch in LEXICON:
        ids = tokenize_segments(tgt, [f" {dutch}"])[0]               # the word as it appears mid-sentence
        if len(ids) != 1 or english not in src_vocab or english == dutch:
            continue
        entry = entries[ids[0]]
        checked += 1
        hits += entry.method == "aligned" and entry.sources[0][0] == src_vocab[english]
        assert entry.evidence[0].startswith("aligned:")
    assert checked >= 20 and hits / checked >= 0.9, (hits, checked)


def test_map_cli_takes_parallel_text_and_refuses_it_for_baselines(tokenizers, tmp_path, capsys):
    src, tgt = tokenizers
    src.save_pretrained(tmp_path / "src")
    tgt.save_pretrained(tmp_path / "tgt")
    (tmp_path / "lex.tsv").write_text("en\tnl\n" + "".join(f"{e}\t{n}\n" for e, n in LEXICON), encoding="utf-8")
    en, nl = parallel_corpus(300)
    (tmp_path / "par.tsv").write_text("en\tnl\n" + "".join(f"{e}\t{n}\n" for e, n in zip(en, nl)), encoding="utf-8")
    base = ["map", "--source-tokenizer", str(tmp_path / "src"), "--target-tokenizer", str(tmp_path / "tgt"),
            "--dictionary", str(tmp_path / "lex.tsv"), "--parallel", str(tmp_path / "par.tsv"), "--no-cache"]
    assert main(base + ["--out", str(tmp_path / "m.json")]) == 0
    assert "aligned" in capsys.readouterr().out
    assert main(base + ["--method", "fvt", "--out", str(tmp_path / "f.json")]) == 2
    assert "--parallel is used by the tiktotok method only" in capsys.readouterr().err
    assert main(base[:-3] + ["--parallel", str(tmp_path / "par.tsv"), "--parallel-tgt-col", "fy",
                             "--out", str(tmp_path / "g.json")]) == 2
    err = capsys.readouterr().err
    assert "par.tsv" in err and "fy" in err and not (tmp_path / "g.json").exists()
