"""CMC decoding overhead: host + delta tokens/s against the host alone, same process, on CPU (or GPU).

Goal (issue 6): host + delta ≥ 0.8× the host alone. Three figures per case, greedy, batch 1
and batch 8, ``--tokens`` new tokens per prompt, best of ``--repeat`` runs:

* ``hf``          — ``host.generate`` (transformers), the plain baseline;
* ``host``        — our decoding loop without a delta (α = 0: the delta is not run at all; plain
                    GPT-2/Llama hosts run the lean cached forward of :mod:`tokmap_ui.cmc.fastlm`);
* ``host+delta``  — our loop with the delta: same vocabulary (template = host), and another
                    vocabulary through PM-MinED (trailing-window re-encode and rollback).

The ratio reported is host+delta / host (the delta's cost inside one loop) and host+delta / hf.

The kit's hosts (5-7M parameters) are tiny beside any real LLM, so their per-step framework
overhead and cache footprint make a delta look expensive. ``--hosts gpt2-small`` swaps them for
random-weight hosts of GPT-2-small shape (12 layers x 768, ~100M parameters: speed does not
depend on the weights) on the same two tokenizers, to show the overhead at a realistic
host/delta size ratio.

Usage:
    python bench/bench_generate.py                          # kit models, a fresh tiny delta
    python bench/bench_generate.py --delta D --hosts gpt2-small   # the delta beside ~100M-parameter hosts
    python bench/bench_generate.py --delta runs/kjv/delta   # a trained delta
    python bench/bench_generate.py --json out.json --threads 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokmap_ui.cmc.decode import CmcPair, GenerateConfig  # noqa: E402

PROMPTS = ["And it came to pass in those days", "To configure the network, open the", "The LORD is my shepherd",
           "Debian packages are installed with", "In the beginning God created", "Click the button to",
           "And the king said unto", "The file system is mounted at"]


def _fresh_delta(template, tokenizer, preset: str):
    from tokmap_ui.train.delta_model import build_delta

    delta, _ = build_delta(template, tokenizer, preset, seed=0)
    torch.nn.init.normal_(delta.get_output_embeddings().weight, std=0.02)  # a trained delta is not zero
    return delta.eval()


def small_hosts(tokenizer, other_tokenizer):
    """Random-weight hosts of GPT-2-small shape on the kit's two tokenizers (same vocabulary sizes)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=12, n_embd=768, n_head=12, n_positions=1024,
                                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(other_tokenizer), hidden_size=768, intermediate_size=2048,
                                         num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=12,
                                         max_position_embeddings=1024, bos_token_id=other_tokenizer.bos_token_id,
                                         eos_token_id=other_tokenizer.eos_token_id))
    return gpt2, llama


def bench_case(name: str, pair: CmcPair, prompts: list[str], tokens: int, repeat: int,
               use_cpu_time: bool = True, head_dtype: str = "float32", overlap: bool = False) -> dict:
    n = len(prompts)
    config = GenerateConfig(alpha=1.0, max_new_tokens=tokens, stop_at_eos=False, batch_size=n,
                            delta_head_dtype=head_dtype, overlap=overlap)
    host_only = GenerateConfig(alpha=0.0, max_new_tokens=tokens, stop_at_eos=False, batch_size=n)
    tok = pair.host_tok
    tok.padding_side = "left"
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    enc = tok(prompts, return_tensors="pt", padding=True)

    def hf():
        with torch.no_grad():
            pair.host.generate(**enc, do_sample=False, max_new_tokens=tokens, min_new_tokens=tokens,
                               pad_token_id=pad)

    pair.generate(prompts[:1], GenerateConfig(max_new_tokens=2))  # warm-up
    runs = {"hf": hf, "host": lambda: pair.generate(prompts, host_only),
            "delta": lambda: pair.generate(prompts, config)}
    best = {run: float("inf") for run in runs}
    cpu = {run: float("inf") for run in runs}
    for _ in range(repeat):  # interleaved, best of each: load changes hit all three alike
        for run, fn in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            best[run] = min(best[run], time.perf_counter() - start)
            cpu[run] = min(cpu[run], time.process_time() - start_cpu)
    clock = cpu if use_cpu_time else best
    t_hf, t_host, t_delta = clock["hf"], clock["host"], clock["delta"]
    rollbacks = sum(r.delta_rollbacks for r in pair.generate(prompts, config))
    total = n * tokens
    row = {"case": name, "batch": n, "delta_head": head_dtype, "overlap": overlap, "tokens": total, "clock": "cpu" if use_cpu_time else "wall",
           "hf_tok_s": total / t_hf, "host_tok_s": total / t_host,
           "host_delta_tok_s": total / t_delta, "ratio_vs_host": t_host / t_delta, "ratio_vs_hf": t_hf / t_delta,
           "wall_ratio_vs_host": best["host"] / best["delta"], "delta_rollback_tokens": rollbacks}
    print(f"{name:<26} batch {n} ({row['clock']}, head {head_dtype}, overlap {overlap:d}): hf {row['hf_tok_s']:7.1f}  host {row['host_tok_s']:7.1f}  "
          f"host+delta {row['host_delta_tok_s']:7.1f} tok/s   ratio {row['ratio_vs_host']:.2f}x of host, "
          f"{row['ratio_vs_hf']:.2f}x of hf; wall {row['wall_ratio_vs_host']:.2f}x of host  (rollbacks {rollbacks})", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", default=str(ROOT / "assets/models/tiny-en-gpt2"), help="template = same-vocab host")
    parser.add_argument("--other-host", default=str(ROOT / "assets/models/tiny-en-llama"), help="host with another vocabulary")
    parser.add_argument("--delta", help="trained delta folder (default: a fresh delta of --preset)")
    parser.add_argument("--preset", default="tiny", help="preset of the fresh delta (default tiny)")
    parser.add_argument("--hosts", choices=["kit", "gpt2-small"], default="kit",
                        help="the kit's tiny hosts, or random-weight ~100M-parameter hosts on the same tokenizers")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per prompt (default 48)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, best kept (default 3)")
    parser.add_argument("--batches", default="1,8", help="batch sizes (default 1,8)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: with --clock cpu, other processes' load does not count)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="time by this process's CPU time (default; robust on a shared machine) or wall time")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--head-dtypes", default="float32,bfloat16", help="delta head dtypes to try (default both)")
    parser.add_argument("--overlap", default="0", help="delta on a second thread: 1, 0 or 0,1 (default 0)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from tokmap_ui.io.models import load_model
    from tokmap_ui.mapping.pmmined import build_pmmined_map
    from tokmap_ui.vocab import Vocabulary

    template, ttok = load_model(args.template, task="causal-lm")
    other, otok = load_model(args.other_host, task="causal-lm")
    if args.delta:
        from tokmap_ui.io.deltas import load_delta

        delta, dtok, _ = load_delta(args.delta)
    else:
        delta, dtok = _fresh_delta(template, ttok, args.preset), ttok
    if args.hosts == "gpt2-small":
        template, other = small_hosts(ttok, otok)
    device = torch.device(args.device)
    for model in (template, other, delta):
        model.to(device).float().eval()
    token_map = build_pmmined_map(Vocabulary.from_tokenizer(otok), Vocabulary.from_tokenizer(dtok))
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in
              (("template", template), ("other_host", other), ("delta", delta))}
    print(f"device {device}, torch threads {torch.get_num_threads()}, parameters {params}", flush=True)
    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        prompts = (PROMPTS * ((batch + len(PROMPTS) - 1) // len(PROMPTS)))[:batch]
        for head in args.head_dtypes.split(","):
            for overlap in (bool(int(o)) for o in args.overlap.split(",")):
                rows.append(bench_case("same vocab (template)", CmcPair(template, ttok, delta, dtok), prompts,
                                       args.tokens, args.repeat, args.clock == "cpu", head, overlap))
                rows.append(bench_case("other vocab (PM-MinED)", CmcPair(other, otok, delta, dtok, token_map),
                                       prompts, args.tokens, args.repeat, args.clock == "cpu", head, overlap))
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(),
                                               "parameters": params, "rows": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
