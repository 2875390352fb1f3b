"""CMC unlearning on the demo kit: train a delta on the GPT-2 template, apply it to the template and to the Llama host.

Issue 6's "must show": forget = the held-out KJV slice (``assets/text/en/kjv_forget.txt``),
retain = the non-Bible lines of ``assets/text/en/train.txt``. The delta is trained with the
frozen template ``tiny-en-gpt2`` (byte-level BPE, Ġ), then scored — forget and retain loss per
byte (``retain_valid.txt`` for retain; KJV lines of ``valid.txt`` as an unseen forget slice) — on

1. the template alone and template + delta (same vocabulary),
2. ``tiny-en-llama`` alone and + delta through a PM-MinED map (▁ Metaspace vocabulary, default mode).

Success: the Llama host's forget-loss rise is at least half the template's, and each host's
retain loss moves less than 5%.

``train.txt`` mixes the Bible with software manuals line by line; the non-Bible lines are found
by a word-count naive Bayes fitted on ``kjv_forget.txt`` against ``retain_valid.txt`` (checked
against the source text: 14 of 9,790 Bible lines slip through, 0.1% of the retain pool).

Usage:
    python bench/cmc_unlearn_demo.py --work runs/kjv-demo --steps 200
    python bench/cmc_unlearn_demo.py --work runs/kjv-demo --skip-train     # re-score an existing delta

Equivalent CLI (after this script wrote ``unlearn.jsonl``)::

    python -m tokmap_ui delta-train --template assets/models/tiny-en-gpt2 --data WORK/unlearn.jsonl \\
        --task unlearn --steps 200 --out WORK/run
    python -m tokmap_ui cmc-eval --host assets/models/tiny-en-gpt2 --delta WORK/run \\
        --forget assets/text/en/kjv_forget.txt --retain assets/text/en/retain_valid.txt
    python -m tokmap_ui cmc-eval --host assets/models/tiny-en-llama --delta WORK/run --map pm-mined \\
        --forget assets/text/en/kjv_forget.txt --retain assets/text/en/retain_valid.txt
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_WORD = re.compile(r"[A-Za-z']+")


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class BibleFilter:
    """Naive Bayes over lower-cased words: Bible (KJV) line or not."""

    def __init__(self, bible: list[str], other: list[str]):
        words = lambda lines: Counter(w for line in lines for w in _WORD.findall(line.lower()))  # noqa: E731
        self.bible, self.other = words(bible), words(other)
        self.vocab = len(set(self.bible) | set(self.other))
        self.n_bible, self.n_other = sum(self.bible.values()), sum(self.other.values())
        self.prior = math.log(len(bible) / len(other))

    def is_bible(self, line: str) -> bool:
        score = self.prior
        for w in _WORD.findall(line.lower()):
            score += math.log((self.bible[w] + 1) / (self.n_bible + self.vocab))
            score -= math.log((self.other[w] + 1) / (self.n_other + self.vocab))
        return score > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default=str(ROOT / "runs" / "kjv-demo"), help="working folder")
    parser.add_argument("--template", default=str(ROOT / "assets/models/tiny-en-gpt2"))
    parser.add_argument("--other-host", default=str(ROOT / "assets/models/tiny-en-llama"))
    parser.add_argument("--text", default=str(ROOT / "assets/text/en"), help="folder with the kit's English text")
    parser.add_argument("--retain-lines", type=int, default=3000, help="non-Bible training lines to retain (default 3000)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--delta-config", default="tiny")
    parser.add_argument("--forget-margin", type=float, default=2.0)
    parser.add_argument("--retain-weight", type=float, default=1.0)
    parser.add_argument("--forget-guard", default="target", choices=["target", "clamp"])
    parser.add_argument("--alpha", type=float, help="decode/eval alpha (default: the trained one)")
    parser.add_argument("--max-texts", type=int, default=0, help="score only the first N lines of each set")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true", help="reuse WORK/run/delta")
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from tokmap_ui.cmc.decode import CmcPair
    from tokmap_ui.cmc.evaluate import evaluate_cmc
    from tokmap_ui.io.deltas import load_delta
    from tokmap_ui.io.models import load_model
    from tokmap_ui.mapping.pmmined import build_pmmined_map, compatibility_report
    from tokmap_ui.train.delta import DeltaConfig, train_delta
    from tokmap_ui.vocab import Vocabulary

    work, text = Path(args.work), Path(args.text)
    work.mkdir(parents=True, exist_ok=True)
    forget = _lines(text / "kjv_forget.txt")
    retain_valid = _lines(text / "retain_valid.txt")
    bible = BibleFilter(forget, retain_valid)
    train_lines = _lines(text / "train.txt")
    pool = [line for line in train_lines if not bible.is_bible(line)]
    retain = random.Random(0).sample(pool, min(args.retain_lines, len(pool)))
    heldout_bible = [line for line in _lines(text / "valid.txt") if bible.is_bible(line)]
    data = work / "unlearn.jsonl"
    with open(data, "w", encoding="utf-8") as handle:
        for line in forget:
            handle.write(json.dumps({"text": line, "split": "forget"}, ensure_ascii=False) + "\n")
        for line in retain:
            handle.write(json.dumps({"text": line, "split": "retain"}, ensure_ascii=False) + "\n")
    print(f"data: {len(forget)} forget lines, {len(retain)} retain lines (of {len(pool)} non-Bible train lines); "
          f"held-out Bible lines in valid.txt: {len(heldout_bible)}", flush=True)

    run = work / "run"
    if not args.skip_train:
        config = DeltaConfig(template=args.template, data=str(data), task="unlearn", out=str(run), steps=args.steps,
                             batch_size=args.batch, block_size=args.block_size, lr=args.lr,
                             delta_config=args.delta_config, forget_margin=args.forget_margin,
                             forget_guard=args.forget_guard,
                             retain_weight=args.retain_weight, checkpoint_every=max(args.steps // 3, 1),
                             resume=(run / "config.json").exists())
        began = time.monotonic()

        def show(event: dict) -> None:
            if event["event"] == "step" and (event["step"] % 25 == 0 or event["step"] == args.steps):
                print(f"  step {event['step']}: loss {event['loss']:.3f} forget CE {event['forget_ce']:.3f} "
                      f"retain CE {event['retain_ce']:.3f} forget gain {event['forget_gain']:+.3f}", flush=True)

        result = train_delta(config, on_event=show)
        print(f"trained {result.steps_done} steps in {time.monotonic() - began:.0f} s; cache {result.template_cache}",
              flush=True)

    delta, dtok, info = load_delta(run)
    delta.float()
    alpha = args.alpha if args.alpha is not None else float(info.get("alpha", 1.0))
    sets = {"forget": forget, "retain": retain_valid, "bible_heldout": heldout_bible}
    rows = {}
    template, ttok = load_model(args.template, task="causal-lm")
    template.float()  # the kit stores fp16 weights; score in fp32
    began = time.monotonic()
    rows["template"] = evaluate_cmc(CmcPair(template, ttok, delta, dtok), sets, alpha, max_texts=args.max_texts)
    print(rows["template"].to_text(), f"\n({time.monotonic() - began:.0f} s)", flush=True)
    other, otok = load_model(args.other_host, task="causal-lm")
    other.float()
    host_vocab, delta_vocab = Vocabulary.from_tokenizer(otok, "tiny-en-llama"), Vocabulary.from_tokenizer(dtok, "delta")
    token_map = build_pmmined_map(host_vocab, delta_vocab)
    print("PM-MinED map (host tiny-en-llama -> delta):",
          json.dumps(compatibility_report(token_map, host_vocab, delta_vocab).to_dict()["counts"]))
    began = time.monotonic()
    rows["other"] = evaluate_cmc(CmcPair(other, otok, delta, dtok, token_map), sets, alpha, max_texts=args.max_texts)
    print(rows["other"].to_text(), f"\n({time.monotonic() - began:.0f} s)", flush=True)

    def get(which: str, name: str):
        return next(s for s in rows[which].sets if s.name == name)

    summary = {}
    for name in ("forget", "bible_heldout"):
        effect_t, effect_o = get("template", name).change, get("other", name).change
        summary[f"{name}_transfer_ratio"] = effect_o / effect_t if effect_t else float("nan")
    summary["retain_change_template"] = get("template", "retain").relative_change
    summary["retain_change_other"] = get("other", "retain").relative_change
    ok = (summary["forget_transfer_ratio"] >= 0.5 and abs(summary["retain_change_template"]) <= 0.05
          and abs(summary["retain_change_other"]) <= 0.05 and get("template", "forget").change > 0)
    summary["pass"] = ok
    print(json.dumps(summary, indent=1))
    (work / "results.json").write_text(json.dumps({"alpha": alpha, "summary": summary,
                                                   "template": rows["template"].to_dict(),
                                                   "other": rows["other"].to_dict()}, indent=1), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
