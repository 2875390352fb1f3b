"""``delta-train``, ``generate`` and ``cmc-eval``: cross-model control from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokmap_ui.errors import ConfigError

PM_MINED = "pm-mined"  # --map value: build the PM-MinED map (default mode) on the fly, cached


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "delta-train", help="train a small CMC delta next to a frozen template (instruction tuning or unlearning)",
        description="Train a delta LM so that log_softmax(template) + alpha*delta fits the data; the template stays "
                    "frozen and step 0 equals it exactly. Data is JSONL: {\"instruction\",\"input\",\"output\"} for "
                    "--task instruct, {\"text\",\"split\":\"forget|retain\"} for --task unlearn. Writes checkpoints, "
                    "metrics.jsonl and the delta (HF folder + cmc.json) in OUT/delta.")
    p.add_argument("--template", required=True, help="template model folder (frozen)")
    p.add_argument("--data", required=True, metavar="FILE.jsonl", help="training data (JSON lines)")
    p.add_argument("--task", required=True, choices=["instruct", "unlearn"], help="what the delta learns")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder; the delta goes to RUN/delta")
    p.add_argument("--delta-config", default="tiny", metavar="micro|tiny|small|PATH",
                   help="delta size: micro (1x64), tiny (2x128), small (4x256), a config.json or a model folder "
                        "(default tiny; micro beside hosts of a few million parameters, such as the demo kit's)")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--batch", type=int, default=8, help="examples per micro-batch (default 8)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step (default 1)")
    p.add_argument("--block-size", type=int, default=128, help="tokens per example (default 128)")
    p.add_argument("--alpha", type=float, default=1.0, help="weight of the delta in training (default 1.0)")
    p.add_argument("--prompt-format", default="auto", choices=["auto", "open-instruct", "chat-template"],
                   help="instruct: prompt format (default auto: chat template if the tokenizer has one)")
    p.add_argument("--forget-margin", type=float, default=2.0,
                   help="unlearn: target rise of each forget token's loss over the template's, nats (default 2)")
    p.add_argument("--forget-guard", default="target", choices=["target", "clamp"],
                   help="unlearn: target = pull forget losses to template+margin both ways (default); "
                        "clamp = stop the ascent at it")
    p.add_argument("--retain-weight", type=float, default=1.0, help="unlearn: weight of the retain loss (default 1)")
    p.add_argument("--forget-weight", type=float, default=1.0, help="unlearn: weight of the forget loss (default 1)")
    p.add_argument("--template-cache", default="auto", choices=["auto", "full", "topk", "none"],
                   help="cache the template's log-probs so later epochs skip its forward pass (default auto)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="checkpoint every N steps (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--max-minutes", type=float, default=0.0, help="stop after this many minutes (default: no limit)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    p.add_argument("--progress-jsonl", metavar="FILE", help="also append every progress event to FILE")
    p.set_defaults(run=run_delta_train)

    p = subparsers.add_parser(
        "generate", help="generate with a host LLM steered by a CMC delta (any vocabulary, via a token map)",
        description="Decode log_softmax(host) + alpha*(delta[map] - centre). Same-vocabulary hosts need no map; "
                    "for another vocabulary pass --map MAP.json (from `tokmap pmmined`) or --map pm-mined to build "
                    "one on the fly. alpha 0 is the host alone. Greedy at --temperature 0, else sampling.")
    p.add_argument("--host", required=True, help="host model folder")
    p.add_argument("--delta", help="delta folder (or its delta-train run folder); omit for the host alone")
    p.add_argument("--map", metavar="MAP.json|pm-mined", help="host→delta token map for another vocabulary")
    p.add_argument("--alpha", type=float, help="delta strength (default: the alpha it was trained with, else 1)")
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeat for a batch)")
    p.add_argument("--batch-file", metavar="FILE", help="prompts, one per line")
    p.add_argument("--instruct", action="store_true",
                   help="wrap each prompt in the delta's training prompt format (instruct deltas)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default), else sample")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling threshold (default 1.0 = off)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k best tokens (default 0 = off)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="tokens to generate per prompt (default 64)")
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--batch", type=int, default=8, help="prompts decoded together (default 8)")
    p.add_argument("--centre", default="mean", choices=["mean", "none"],
                   help="centre the delta's logits before mapping (default mean: unmapped tokens neutral)")
    p.add_argument("--explain", type=int, nargs="?", const=5, default=0, metavar="K",
                   help="show per step the host's top K tokens and the delta's shift on them (default K 5)")
    p.add_argument("--delta-head-dtype", default="float32", choices=["float32", "bfloat16"],
                   help="compute the delta's output layer in bf16 (less memory traffic per step on CPU)")
    p.add_argument("--overlap", action="store_true", help="step the delta on a second thread beside the host")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run_generate)

    p = subparsers.add_parser(
        "cmc-eval", help="forget/retain loss per byte of a host alone and with a CMC delta",
        description="Score text sets (one text per line) with the host alone and with host + delta, in nats per "
                    "UTF-8 byte (comparable across tokenizers). For unlearning: forget should rise, retain should not.")
    p.add_argument("--host", required=True, help="host model folder")
    p.add_argument("--delta", required=True, help="delta folder (or its delta-train run folder)")
    p.add_argument("--map", metavar="MAP.json|pm-mined", help="host→delta token map for another vocabulary")
    p.add_argument("--forget", metavar="FILE", help="forget-set text file")
    p.add_argument("--retain", metavar="FILE", help="retain-set text file")
    p.add_argument("--text", action="append", default=[], metavar="NAME=FILE", help="another named text set")
    p.add_argument("--alpha", type=float, help="delta strength (default: the alpha it was trained with, else 1)")
    p.add_argument("--centre", default="mean", choices=["mean", "none"], help="delta centring (default mean)")
    p.add_argument("--max-texts", type=int, default=0, help="use only the first N lines of each set (default all)")
    p.add_argument("--batch", type=int, default=16, help="texts per batch (default 16)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run_cmc_eval)


def _quiet_hf() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def run_delta_train(args: argparse.Namespace) -> int:
    from tokmap_ui.train.delta import DeltaConfig, train_delta
    from tokmap_ui.train.progress import Progress

    config = DeltaConfig(
        template=args.template, data=args.data, task=args.task, out=args.out, delta_config=args.delta_config,
        steps=args.steps, lr=args.lr, batch_size=args.batch, grad_accum=args.grad_accum, block_size=args.block_size,
        alpha=args.alpha, prompt_format=args.prompt_format, forget_margin=args.forget_margin,
        forget_guard=args.forget_guard,
        retain_weight=args.retain_weight, forget_weight=args.forget_weight, template_cache=args.template_cache,
        checkpoint_every=args.checkpoint_every, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
        cpu=args.cpu)
    progress = Progress(jsonl_path=args.progress_jsonl, fallback_jsonl=Path(args.out) / "progress.jsonl")
    if not progress.tty:
        _quiet_hf()
    with progress:
        result = train_delta(config, on_event=lambda record: progress.emit(**record))
    if progress.tty:
        print(f"done: {result.steps_done} steps, final loss {result.final_loss:.4f}; delta in {result.delta_dir}")
    return 0


def _cpu_float(model):
    """Half-precision weights (kit models are stored in fp16) computed in fp32 on a CPU: faster and exact."""
    import torch

    if next(model.parameters()).device.type == "cpu" and model.dtype in (torch.float16, torch.bfloat16):
        model.float()
    return model


def load_pair(host: str, delta: str | None, map_spec: str | None):
    """Load host, delta and map and build the :class:`~tokmap_ui.cmc.decode.CmcPair`; also return the delta's info."""
    from tokmap_ui.cmc.decode import CmcPair
    from tokmap_ui.io.models import load_model

    _quiet_hf()
    host_model, host_tok = load_model(host, task="causal-lm")
    _cpu_float(host_model)
    if delta is None:
        if map_spec:
            raise ConfigError("--map needs --delta. Fix: give the delta folder, or drop --map.")
        return CmcPair(host_model, host_tok), {}
    from tokmap_ui.io.deltas import load_delta

    delta_model, delta_tok, info = load_delta(delta)
    _cpu_float(delta_model)
    token_map = None
    if map_spec == PM_MINED:
        from tokmap_ui.mapping.pmmined import build_pmmined_map_cached
        from tokmap_ui.vocab import Vocabulary

        token_map = build_pmmined_map_cached(Vocabulary.from_tokenizer(host_tok, name=Path(host).name),
                                             Vocabulary.from_tokenizer(delta_tok, name=Path(delta).name))
    elif map_spec:
        from tokmap_ui.io.tokenmaps import load_token_map

        token_map = load_token_map(map_spec)
    return CmcPair(host_model, host_tok, delta_model, delta_tok, token_map), info


def _prompts(args: argparse.Namespace) -> list[str]:
    prompts = list(args.prompt)
    if args.batch_file:
        from tokmap_ui.io.files import read_text_lines

        prompts += [line for line in read_text_lines(args.batch_file, "prompt file") if line.strip()]
    if not prompts:
        raise ConfigError("no prompt given. Fix: pass --prompt TEXT (repeatable) or --batch-file FILE.")
    return prompts


def run_generate(args: argparse.Namespace) -> int:
    from tokmap_ui.cmc.decode import GenerateConfig
    from tokmap_ui.cmc.explain import format_explanation
    from tokmap_ui.train.delta_data import format_prompt

    prompts = _prompts(args)
    pair, info = load_pair(args.host, args.delta, args.map)
    if args.instruct:
        fmt = info.get("prompt_format", "open-instruct")
        prompts = [format_prompt(pair.delta_tok, p, prompt_format=fmt) for p in prompts]
    alpha = args.alpha if args.alpha is not None else float(info.get("alpha", 1.0))
    config = GenerateConfig(alpha=alpha, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_p=args.top_p, top_k=args.top_k, seed=args.seed, stop=tuple(args.stop),
                            centre=args.centre, explain=args.explain, batch_size=args.batch,
                            delta_head_dtype=args.delta_head_dtype, overlap=args.overlap)
    if args.json:
        results = pair.generate(prompts, config)
        json.dump({"alpha": alpha, "results": [r.to_dict() for r in results]}, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
        return 0
    if len(prompts) == 1 and not args.explain:  # stream a single prompt as it is generated
        sys.stdout.write(prompts[0])
        for event in pair.stream(prompts, config):
            sys.stdout.write(event.text)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    for result in pair.generate(prompts, config):
        print(f"=== {result.prompt!r} ({result.finish_reason})")
        print(result.prompt + result.text)
        if result.explanations:
            print(format_explanation(result.explanations))
    return 0


def _text_sets(args: argparse.Namespace) -> dict[str, list[str]]:
    from tokmap_ui.io.files import read_text_lines

    named = []
    if args.forget:
        named.append(("forget", args.forget))
    if args.retain:
        named.append(("retain", args.retain))
    for item in args.text:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--text '{item}' is not NAME=FILE. Fix: write e.g. --text heldout=kjv_valid.txt.")
        named.append((name, path))
    if not named:
        raise ConfigError("no text set given. Fix: pass --forget FILE and/or --retain FILE.")
    return {name: read_text_lines(path, f"{name} text file") for name, path in named}


def run_cmc_eval(args: argparse.Namespace) -> int:
    from tokmap_ui.cmc.evaluate import evaluate_cmc

    sets = _text_sets(args)
    pair, info = load_pair(args.host, args.delta, args.map)
    alpha = args.alpha if args.alpha is not None else float(info.get("alpha", 1.0))
    report = evaluate_cmc(pair, sets, alpha, batch_size=args.batch, max_texts=args.max_texts, centre=args.centre)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
    else:
        print(report.to_text())
    return 0
