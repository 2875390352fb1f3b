"""Benchmark Tik-to-Tok mapping at scale: 50k target tokens, 50k source tokens, 40k dictionary pairs.

Usage (from the repository root)::

    python bench/bench_map.py [--size 50000] [--pairs 40000] [--workdir workspace/bench/map]

Set-up (not timed, cached in ``--workdir``): a byte-level BPE target (``Ġ`` words, RoBERTa
specials) and an uncased WordPiece source (BERT specials), each trained to ``--size`` tokens on
the demo kit's Dutch and English text plus generated words (the kit's text alone has too few
distinct words for 50k merges), and the kit's en-nl dictionary, cut or repeated to ``--pairs``.

Then two timed runs of the whole job, as ``tokmap map`` runs it: load both tokenizers, build the
vocabulary views, load the dictionary, map, save the map file. The first run starts with an empty
cache (goal ≤ 60 s); the second finds the subword space in the cache (goal ≤ 10 s). Every step's
seconds are printed, then the totals against the goals. BLAS, faiss and the tokenizers run on one
thread each (see ``subword_space.one_blas_thread``), as on the project's shared 2-core machines.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

GOAL_COLD, GOAL_WARM = 60.0, 10.0
ONSETS = "b c d f g h j k l m n p r s t v w z br dr st sch kr gr tr pl sl sp str th ch sh".split()
VOWELS = "a e i o u aa ee oo ie oe ui ei au ou y".split()
CODAS = [""] * 5 + "n r s t l k m ng nd st ck".split()


def made_up_words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ONSETS) + rng.choice(VOWELS) + rng.choice(CODAS) for _ in range(rng.randint(1, 4)))
            for _ in range(n)]


def corpus(lang: str, seed: int) -> list[str]:
    """The kit's text of ``lang`` (when present) plus lines of generated words."""
    path = ROOT / "assets" / "text" / lang / "train.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    words = made_up_words(120_000, seed)
    lines += [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return lines


def build_tokenizers(workdir: Path, size: int) -> tuple[Path, Path]:
    target_dir, source_dir = workdir / f"target-bpe-{size}", workdir / f"source-wordpiece-{size}"
    if not (target_dir / "tokenizer.json").is_file():
        specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.train_from_iterator(corpus("nl", 1), trainers.BpeTrainer(
            vocab_size=size, min_frequency=1, special_tokens=specials, show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                pad_token="<pad>", mask_token="<mask>", cls_token="<s>",
                                sep_token="</s>").save_pretrained(target_dir)
    if not (source_dir / "tokenizer.json").is_file():
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        tok.train_from_iterator(corpus("en", 2), trainers.WordPieceTrainer(
            vocab_size=size, min_frequency=1, show_progress=False,
            special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
        tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
        PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                sep_token="[SEP]", mask_token="[MASK]").save_pretrained(source_dir)
    return source_dir, target_dir


def build_dictionary(workdir: Path, n_pairs: int) -> Path:
    path = workdir / f"dict-{n_pairs}.tsv"
    if not path.is_file():
        kit = ROOT / "assets" / "dict" / "en-nl.tsv"
        rows = kit.read_text(encoding="utf-8").splitlines()[1:] if kit.is_file() else []
        if len(rows) < n_pairs:  # no kit, or a small one: pad with generated pairs
            en, nl = made_up_words(n_pairs, 3), made_up_words(n_pairs, 4)
            rows += [f"{e}\t{n}" for e, n in zip(en, nl)][: n_pairs - len(rows)]
        path.write_text("en\tnl\n" + "\n".join(rows[:n_pairs]) + "\n", encoding="utf-8")
    return path


def timed_run(source_dir: Path, target_dir: Path, dictionary_path: Path, cache_dir: Path, out: Path
              ) -> tuple[float, dict[str, float], dict]:
    from tokmap_ui.io.cache import ArrayCache
    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import save_token_map
    from tokmap_ui.mapping.tiktotok import MappingConfig, run_mapping
    from tokmap_ui.vocab import Vocabulary

    steps: dict[str, float] = {}
    start = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        steps[name] = now - clock
        clock = now

    source_tokenizer, target_tokenizer = load_tokenizer(source_dir), load_tokenizer(target_dir)
    lap("load tokenizers")
    source, target = Vocabulary.from_tokenizer(source_tokenizer), Vocabulary.from_tokenizer(target_tokenizer)
    lap("vocabulary views")
    dictionary = load_dictionary(dictionary_path, src="en", tgt="nl")
    lap("load dictionary")
    run = run_mapping(source_tokenizer, target_tokenizer, dictionary, MappingConfig(), source=source,
                      target=target, cache=ArrayCache(cache_dir))
    clock = time.perf_counter()
    steps.update({f"  map: {k}": v for k, v in run.timings.items()})
    save_token_map(run.token_map, out)
    lap("save map")
    return time.perf_counter() - start, steps, {"vocab": (len(source), len(target)), "pairs": len(dictionary.pairs),
                                                "by_method": run.token_map.stats["by_method"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=50_000, help="tokens in each vocabulary")
    parser.add_argument("--pairs", type=int, default=40_000, help="dictionary pairs")
    parser.add_argument("--workdir", default=str(ROOT / "workspace" / "bench" / "map"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    source_dir, target_dir = build_tokenizers(workdir, args.size)
    dictionary_path = build_dictionary(workdir, args.pairs)
    print(f"set-up (cached after the first time): {time.perf_counter() - t0:.1f} s")
    cache_dir = workdir / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    totals = []
    for label in ("cold (empty cache)", "warm (subword space cached)"):
        total, steps, info = timed_run(source_dir, target_dir, dictionary_path, cache_dir, workdir / "map.json.gz")
        totals.append(total)
        print(f"\n{label}: {total:.1f} s  — vocabularies {info['vocab'][1]:,} target × {info['vocab'][0]:,} source, "
              f"{info['pairs']:,} pairs")
        for name, seconds in steps.items():
            print(f"  {name:<34} {seconds:7.2f} s")
        print(f"  entries by method: {info['by_method']}")
    cold, warm = totals
    print(f"\nend to end: cold {cold:.1f} s (goal ≤ {GOAL_COLD:.0f} s: {'ok' if cold <= GOAL_COLD else 'MISSED'}), "
          f"warm {warm:.1f} s (goal ≤ {GOAL_WARM:.0f} s: {'ok' if warm <= GOAL_WARM else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
