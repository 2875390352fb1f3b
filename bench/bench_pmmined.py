"""Benchmark PM-MinED: our map builder beside the literal O(|V_host|·|V_delta|) reference loop.

Usage (from the repository root)::

    python bench/bench_pmmined.py [--sample 200] [--repeat 3] [--cache-dir workspace/bench/pmmined]

It builds three synthetic-but-realistic tokenizers once (cached in ``--cache-dir``), trained with
``tokenizers`` on text generated here (a made-up language with Zipf word frequencies, shared stems
and suffixes, a little punctuation, digits and CJK), mixed with ``assets/text/**/*.txt`` when the
demo kit is present:

* ``delta-32k``: Llama-2 style BPE (``▁`` words, ``<0xNN>`` byte fallback), 32,000 tokens;
* ``host-32k``: the same style trained on a different mixture (a Mistral beside the Llama);
* ``host-150k``: GPT-2/Qwen style byte-level BPE (``Ġ`` words), about 150,000 tokens.

For each pair it times ``build_pmmined_map`` (reference mode and default mode; best of
``--repeat``) and the literal loop on ``--sample`` random host tokens, extrapolated to the whole
host vocabulary, and prints the ratio. It checks that the sampled literal results equal our
reference-mode map. Everything runs on one thread (no multiprocessing).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

from pmmined_literal import literal_pmmined  # noqa: E402
from tokmap_ui.mapping.pmmined import PmMinedConfig, build_pmmined_map  # noqa: E402
from tokmap_ui.vocab import Vocabulary  # noqa: E402

ONSETS = "b c d f g h j k l m n p r s t v w z br dr st sch kr gr tr pl sl sp str th ch sh ij".split()
VOWELS = "a e i o u aa ee oo ie oe ui ei au ou y".split()
CODAS = [""] * 6 + "n r s t l k m ng nd st ck".split()
SUFFIXES = "ing en ed er s heid lijk tion ness able ig isch te de ment ity ous".split()


def _lexicon(size: int, rng: random.Random) -> list[str]:
    stems = set()
    while len(stems) < size // 3:
        stems.add("".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS)
                          for _ in range(rng.choice((1, 1, 2, 2, 2, 3, 3, 4)))))
    stems = sorted(stems)
    words = stems + [s + rng.choice(SUFFIXES) for s in stems] + [rng.choice(stems) + s for s in stems]
    rng.shuffle(words)
    return words


def _corpus(seed: int, n_words: int, lexicon: list[str]) -> list[str]:
    """Lines of made-up text: Zipf-distributed words, capitals, numbers, punctuation, some CJK."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.07, n_words), len(lexicon)) - 1
    words = [lexicon[r] for r in ranks.tolist()]
    cjk = [chr(c) for c in range(0x4E00, 0x4E00 + 3000)]
    lines, i = [], 0
    pyrng = random.Random(seed)
    while i < len(words):
        n = pyrng.randint(6, 20)
        chunk = words[i:i + n]
        i += n
        if pyrng.random() < 0.3:
            chunk[0] = chunk[0].capitalize()
        if pyrng.random() < 0.1:
            chunk.insert(pyrng.randrange(len(chunk) + 1), str(pyrng.randint(0, 5000)))
        if pyrng.random() < 0.05:
            chunk.insert(pyrng.randrange(len(chunk) + 1), "".join(pyrng.choices(cjk, k=pyrng.randint(1, 3))))
        lines.append(" ".join(chunk) + pyrng.choice(".,;:!?"))
    return lines


def _real_text() -> list[str]:
    folder = ROOT / "assets" / "text"
    lines: list[str] = []
    if folder.is_dir():
        for path in sorted(folder.rglob("*.txt")):
            lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    return lines


def _llama_style(lines: list[str], vocab_size: int) -> Tokenizer:
    """A Llama-2 style BPE: <unk> <s> </s>, <0x00>..<0xFF>, then trained pieces with ▁ word starts."""
    base = Tokenizer(models.BPE())
    base.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    base.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    base.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=vocab_size - 259, show_progress=False,
                                                        limit_alphabet=1000))
    trained = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for token in sorted(trained["vocab"], key=trained["vocab"].get):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True))
    tokenizer.normalizer = base.normalizer
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens(["<unk>", "<s>", "</s>"])
    return tokenizer


def _byte_level(lines: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tokenizer


def build_tokenizers(cache: Path) -> dict[str, PreTrainedTokenizerFast]:
    """The three benchmark tokenizers, trained once and cached as tokenizer.json files."""
    cache.mkdir(parents=True, exist_ok=True)
    specs = {"delta-32k": ("</s>", "<s>", "<unk>"), "host-32k": ("</s>", "<s>", "<unk>"),
             "host-150k": ("<|endoftext|>", None, None)}
    if not all((cache / f"{name}.json").is_file() for name in specs):
        t0 = time.perf_counter()
        rng = random.Random(0)
        lexicon = _lexicon(600_000, rng)
        real = _real_text()
        text_a = _corpus(1, 4_000_000, lexicon) + real
        text_b = _corpus(2, 4_000_000, lexicon[100_000:] + lexicon[:100_000]) + real[::2]
        print(f"corpus: {sum(map(len, text_a)) / 1e6:.0f}M + {sum(map(len, text_b)) / 1e6:.0f}M characters "
              f"({len(real)} real lines); training tokenizers once...", flush=True)
        _llama_style(text_a, 32_000).save(str(cache / "delta-32k.json"))
        _llama_style(text_b, 32_000).save(str(cache / "host-32k.json"))
        _byte_level(text_a + text_b, 150_000).save(str(cache / "host-150k.json"))
        print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
    out = {}
    for name, (eos, bos, unk) in specs.items():
        out[name] = PreTrainedTokenizerFast(tokenizer_file=str(cache / f"{name}.json"), eos_token=eos,
                                            bos_token=bos, unk_token=unk)
    return out


def _best(fn, repeat: int) -> tuple[float, float, object]:
    """Best wall-clock and best CPU seconds over ``repeat`` runs, and the result.

    CPU time is reported beside wall time because this machine is shared: on a busy box the wall
    clock measures the neighbours, while one core's CPU time measures the code.
    """
    wall, cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu, result


def bench_pair(host: Vocabulary, delta: Vocabulary, sample: int, repeat: int) -> dict:
    w_ref, t_ref, ref_map = _best(lambda: build_pmmined_map(host, delta, PmMinedConfig(reference=True)), repeat)
    w_def, t_def, def_map = _best(lambda: build_pmmined_map(host, delta, PmMinedConfig()), repeat)
    ids = sorted(random.Random(0).sample(range(len(host)), min(sample, len(host))))
    specials = {host.tokens[i] for i in np.flatnonzero(host.is_special).tolist()}
    w_lit, t_lit, literal = _best(lambda: literal_pmmined(list(host.tokens), specials, list(delta.tokens), ids), 1)
    w_lit, t_lit = w_lit / len(ids) * len(host), t_lit / len(ids) * len(host)
    ours = [ref_map.entries[i].sources[0][0] if ref_map.entries[i].sources else -1 for i in ids]
    agree = sum(a == (b if b < len(delta) else -1) for a, (b, _) in zip(ours, literal))
    return {"host": host.name, "delta": delta.name, "size": f"{len(host):,} x {len(delta):,}",
            "reference_s": t_ref, "default_s": t_def, "literal_s": t_lit, "ratio": t_lit / t_ref,
            "reference_wall_s": w_ref, "default_wall_s": w_def, "literal_wall_s": w_lit,
            "agree": f"{agree}/{len(ids)}", "ref_methods": ref_map.stats["by_method"],
            "default_methods": def_map.stats["by_method"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=200, help="host tokens timed with the literal loop")
    parser.add_argument("--repeat", type=int, default=3, help="runs of our builder; the best is reported")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "workspace" / "bench" / "pmmined")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tokenizers = build_tokenizers(args.cache_dir)
    vocabs = {}
    for name, tok in tokenizers.items():
        t0 = time.perf_counter()
        vocabs[name] = Vocabulary.from_tokenizer(tok, name)
        print(f"Vocabulary.from_tokenizer({name}): {len(vocabs[name]):,} tokens in "
              f"{time.perf_counter() - t0:.2f} s", flush=True)
    rows = [bench_pair(vocabs[h], vocabs["delta-32k"], args.sample, args.repeat) for h in ("host-32k", "host-150k")]
    print(f"\nCPU seconds on one thread (wall-clock seconds in brackets; they include other load on the machine)")
    print(f"{'host x delta':<20}{'ours, reference':>22}{'ours, default':>22}{'literal*':>22}{'ratio':>8}{'agree':>8}")
    for r in rows:
        cells = [f"{r[k + '_s']:.3f} ({r[k + '_wall_s']:.3f})" for k in ("reference", "default")]
        cells.append(f"{r['literal_s']:.0f} ({r['literal_wall_s']:.0f})")
        print(f"{r['size']:<20}{cells[0]:>22}{cells[1]:>22}{cells[2]:>22}{r['ratio']:>7.0f}x{r['agree']:>8}")
    print(f"* literal reference loop timed on {args.sample} random host tokens and extrapolated; "
          "ratio = literal / ours (reference mode), CPU time.")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average during the run: {load:.1f} on {os.cpu_count()} cores")
    for r in rows:
        print(f"{r['host']} -> {r['delta']}: reference {r['ref_methods']}\n{'':>24}default   {r['default_methods']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
