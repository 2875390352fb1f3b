"""Print a peer-benchmark run: quality, cost, ratios to ours, verdicts, PM-MinED, failures.

Higher is better for P@k and retrieval; lower is better for loss, time and memory. Ratios are
``method / tiktotok`` for every metric, so a ratio above 1 is better for P@k and retrieval and
worse for the rest.
"""

from __future__ import annotations

from typing import Any

OURS = "tiktotok"
PEERS = ("wechsel", "focus", "wechsel-mc1", "focus-mc1")
QUALITY = [  # (key, header, higher is better)
    ("gpt2_p@1", "word P@1 (GPT-2 table)", True), ("gpt2_p@5", "word P@5 (GPT-2)", True),
    ("minilm_p@1", "word P@1 (MiniLM table)", True), ("minilm_p@5", "word P@5 (MiniLM)", True),
    ("retrieval_p@1", "sentence retrieval P@1 (MiniLM)", True),
    ("loss_per_byte_step0", "loss/byte step 0 (GPT-2)", False),
    ("loss_per_byte_final", "loss/byte after fine-tune", False)]
COST = [("wall_s", "wall s", False), ("cpu_s", "CPU s", False), ("peak_rss_mib", "peak RSS MiB", False)]
LABELS = {"tiktotok": "tiktotok (ours)", "wechsel": "WECHSEL 0.0.4", "focus": "FOCUS (deepfocus 1.0.1)",
          "wechsel-mc1": "WECHSEL, fastText min count 1",
          "focus-mc1": "FOCUS, fastText min count 1", "fvt": "FVT (ours, baseline)", "mean": "mean (ours, baseline)", "random": "random (ours, baseline)"}


def _label(method: str) -> str:
    return LABELS.get(method, method)


def _cell(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _uninformed(method: str, info: dict[str, Any]) -> str:
    """Rows the method had nothing for (filled with the mean or random noise), as 'n (share)'."""
    counts = info.get("counts", {})
    n = counts.get("target_tokens")
    if "by_method" in counts:
        k = sum(v for m, v in counts["by_method"].items() if m in ("mean", "random", "unmapped"))
    else:
        k = counts.get("not_found (random rows)", counts.get("random rows"))
    return "?" if k is None or not n else f"{k:,} ({k / n:.0%})"


def quality_table(res: dict[str, Any]) -> str:
    head = "| method | " + " | ".join(h for _, h, _ in QUALITY) + " |"
    lines = [head, "|---|" + "---:|" * len(QUALITY)]
    for method in res["methods"]:
        row = res["metrics"].get(method, {})
        lines.append(f"| {_label(method)} | " + " | ".join(_cell(row.get(k)) for k, _, _ in QUALITY) + " |")
    base = res.get("baseline_retrieval")
    if base:
        lines.append("| MiniLM unconverted (reads the Dutch with its English tokenizer) | | | | | "
                     f"{base['p_at_1']:.3f} | | |")
    return "\n".join(lines)


def cost_table(res: dict[str, Any]) -> str:
    lines = ["| method | model | " + " | ".join(h for _, h, _ in COST) + " | RSS at start MiB | rows left to mean/random |",
             "|---|---|" + "---:|" * (len(COST) + 2)]
    for method in res["methods"]:
        for model, info in res["init"].get(method, {}).items():
            if "error" in info:
                lines.append(f"| {_label(method)} | {model} | failed (see below) |" + " |" * (len(COST) + 1))
                continue
            lines.append(f"| {_label(method)} | {model} | " + " | ".join(_cell(info.get(k), 1) for k, _, _ in COST)
                         + f" | {_cell(info.get('rss_at_start_mib'), 0)} | {_uninformed(method, info)} |")
    return "\n".join(lines)


def ratio_table(res: dict[str, Any]) -> str:
    """Every metric as ``method / tiktotok``."""
    cols = [(k, h) for k, h, _ in QUALITY] + [(f"{m}:{k}", f"{h} ({m})") for m in ("gpt2", "minilm")
                                              for k, h, _ in COST]
    lines = ["| method | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---:|" * len(cols)]

    def value(method: str, key: str) -> Any:
        if ":" in key:
            model, k = key.split(":")
            return res["init"].get(method, {}).get(model, {}).get(k)
        return res["metrics"].get(method, {}).get(key)

    for method in res["methods"]:
        cells = []
        for key, _ in cols:
            a, b = value(method, key), value(OURS, key)
            cells.append("–" if a is None or not b else f"{a / b:.2f}×")
        lines.append(f"| {_label(method)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdicts(res: dict[str, Any]) -> list[str]:
    """One line per quality metric: is ours ahead of every other row?"""
    out = []
    ours = res["metrics"].get(OURS, {})
    for key, header, higher in QUALITY:
        if ours.get(key) is None:
            continue
        better = [(m, r[key]) for m, r in res["metrics"].items() if m != OURS and r.get(key) is not None
                  and (r[key] > ours[key] if higher else r[key] < ours[key])]
        if better:
            out.append(f"- {header}: ours ({ours[key]:.3f}) is NOT ahead: " +
                       ", ".join(f"{_label(m)} {v:.3f}" for m, v in better))
        else:
            out.append(f"- {header}: ours ahead ({ours[key]:.3f})")
    for model in ("gpt2", "minilm"):
        ours_c = res["init"].get(OURS, {}).get(model, {})
        for key, header, _ in COST:
            if ours_c.get(key) is None:
                continue
            # against the peers only: the mean/random/FVT baselines are cheaper by construction
            better = [(m, i[model][key]) for m, i in res["init"].items() if m in PEERS and model in i
                      and i[model].get(key) is not None and i[model][key] < ours_c[key]]
            if better:
                out.append(f"- init {header} ({model}): ours ({ours_c[key]:.1f}) is NOT ahead: " +
                           ", ".join(f"{_label(m)} {v:.1f}" for m, v in better))
    return out


def failures(res: dict[str, Any]) -> list[str]:
    out = []
    for method, models in res["init"].items():
        for model, info in models.items():
            if "error" in info:
                out.append(f"- {_label(method)} / {model}:\n\n```\n{info['error']}\n```")
    return out


def render(results: Any) -> str:
    res = results.to_dict() if hasattr(results, "to_dict") else results
    s = res["settings"]
    split = s.get("split", "dev")
    parts = [f"Peer benchmark, {res['started']}, {res['machine']['cpus']} CPUs (load average "
             f"{res['machine']['load_avg_start']:.1f} at start, {res['machine'].get('load_avg_end', 0):.1f} at end), "
             f"one thread per process; whole run {res['wall_s']:.0f} s.", "",
             f"Quality (held-out {split} splits: word pairs assets/dict/en-nl.{split}.tsv, sentences "
             f"assets/parallel/en-nl.{split}.tsv n={s['retrieval_n']}, text assets/text/nl/valid.txt first "
             f"{s['max_eval_texts']} lines; fine-tune {s['steps']} steps x {s['batch_size']} x {s['block_size']} "
             f"tokens, lr {s['lr']}):", "", quality_table(res), "",
             "Cost of the initialisation (one process each, after imports; peak RSS includes the imports):", "",
             cost_table(res), "", "Ratios to ours (method / tiktotok; >1 is better for P@k and retrieval, "
             "worse for loss, time, memory):", "", ratio_table(res), "", "Ours against every other row (where it is not ahead, it says so):", "",
             *verdicts(res)]
    checks = {k: v for k, v in res["metrics"].get(OURS, {}).items() if "convert_check" in k}
    if checks:
        parts += ["", "Drop-in check (ours: table written into the mean-converted model vs `convert_model` with "
                      "the map itself, max |diff|): " + ", ".join(f"{k.split('_')[0]} {v:.2g}" for k, v in checks.items())]
    if res.get("pmmined"):
        import peer_pmmined

        parts += ["", peer_pmmined.render(res["pmmined"])]
    fails = failures(res)
    if fails:
        parts += ["", "Could not run:", "", *fails]
    return "\n".join(parts)
