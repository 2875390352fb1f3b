"""PM-MinED: our map builder beside the literal CMC reference rule, on the kit's own CMC pair.

The reference is the loop of ``token_maps/mistral_llama_one2one.py`` in wujwyi/CMC (not on PyPI;
``bench/pmmined_literal.py`` ports it line for line, minus its file writing). It is run on *every*
host token, not a sample. Pair: host = ``tiny-en-llama`` (``en-metaspace``, ``▁`` words, byte
fallback), delta = ``tiny-en-gpt2`` (``en-bytebpe``, ``Ġ`` words), the pair the CMC demo uses.

Reported: CPU and wall seconds of ours in reference mode (``PmMinedConfig(reference=True)``, what
``python -m tokmap_ui pmmined --reference`` builds) and in default mode, and of the literal loop;
agreement = host tokens whose delta token is the same as the literal loop's (reference mode must
agree on all of them; default mode differs on purpose: it compares ``▁the`` with ``Ġthe`` as the
same word, which the literal rule cannot).

Run alone: ``python bench/peers/peer_pmmined.py``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

HOST, DELTA = "assets/models/tiny-en-llama", "assets/models/tiny-en-gpt2"


def _timed(fn: Any, repeat: int = 1) -> tuple[float, float, Any]:
    """Best wall and best CPU seconds over ``repeat`` runs, and the last result."""
    wall = cpu = float("inf")
    result = None
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu, result


def compare(host_dir: str = HOST, delta_dir: str = DELTA, repeat: int = 3) -> dict[str, Any]:
    """Time both and count agreement on every host token (see the module docstring)."""
    from pmmined_literal import literal_pmmined
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.mapping.pmmined import PmMinedConfig, build_pmmined_map
    from tokmap_ui.vocab import Vocabulary

    host_tok, delta_tok = load_tokenizer(ROOT / host_dir), load_tokenizer(ROOT / delta_dir)
    host = Vocabulary.from_tokenizer(host_tok, name=Path(host_dir).name)
    delta = Vocabulary.from_tokenizer(delta_tok, name=Path(delta_dir).name)
    w_ref, c_ref, ref_map = _timed(lambda: build_pmmined_map(host, delta, PmMinedConfig(reference=True)), repeat)
    w_def, c_def, def_map = _timed(lambda: build_pmmined_map(host, delta, PmMinedConfig()), repeat)
    specials = set(host_tok.all_special_tokens)
    w_lit, c_lit, literal = _timed(lambda: literal_pmmined(list(host.tokens), specials, list(delta.tokens)))

    def ids(token_map: Any) -> list[int]:
        return [e.sources[0][0] if e.sources else -1 for e in token_map.entries]

    lit = [b if b < len(delta) else -1 for b, _ in literal]  # a special's host id past the delta table: none
    ref, dflt = ids(ref_map), ids(def_map)
    differ = [i for i, (a, b) in enumerate(zip(ref, lit)) if a != b]
    examples = [(host.tokens[i], delta.tokens[b] if b >= 0 else None, delta.tokens[a] if a >= 0 else None)
                for i, a, b in zip(range(len(dflt)), dflt, lit) if a != b][:5]
    return {"host": f"{host.name} ({len(host):,})", "delta": f"{delta.name} ({len(delta):,})",
            "host_tokens": len(host), "ours_reference_cpu_s": c_ref, "ours_reference_wall_s": w_ref,
            "ours_default_cpu_s": c_def, "ours_default_wall_s": w_def, "literal_cpu_s": c_lit,
            "literal_wall_s": w_lit, "agree_reference": len(ref) - len(differ), "differ_reference": differ[:20],
            "agree_default": sum(a == b for a, b in zip(dflt, lit)),
            "unmatched": {"literal": lit.count(-1), "ours_reference": ref.count(-1), "ours_default": dflt.count(-1)},
            "default_vs_literal_examples": examples, "repeat": repeat}


def render(r: dict[str, Any]) -> str:
    n = r["host_tokens"]
    lines = [f"PM-MinED, host {r['host']} -> delta {r['delta']}, every host token, one thread:", "",
             "| builder | CPU s | wall s | same delta token as the literal rule | unmatched | x faster than literal (CPU) |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, key, agree, un in (("literal CMC loop (bench/pmmined_literal.py)", "literal", n, "literal"),
                                  ("ours, `--reference`", "ours_reference", r["agree_reference"], "ours_reference"),
                                  ("ours, default", "ours_default", r["agree_default"], "ours_default")):
        cpu, wall = r[f"{key}_cpu_s"], r[f"{key}_wall_s"]
        lines.append(f"| {label} | {cpu:.3f} | {wall:.3f} | {agree:,}/{n:,} ({agree / n:.1%}) | "
                     f"{r['unmatched'][un]:,} | {r['literal_cpu_s'] / cpu:,.0f} |")
    if r["default_vs_literal_examples"]:
        lines += ["", "default vs literal, first differences (host token: literal -> ours default): " + "; ".join(
            f"`{h!r}`: `{lit!r}` -> `{ours!r}`" for h, lit, ours in r["default_vs_literal_examples"])]
    return "\n".join(lines)


if __name__ == "__main__":
    import os

    os.environ.setdefault("RAYON_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    print(render(compare()))
