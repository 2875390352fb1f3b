"""``convert`` (apply a token map to a model) and ``eval-retrieval`` (cross-lingual sentence retrieval)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from tokmap_ui.cli.common import print_report


def register(subparsers: argparse._SubParsersAction) -> None:
    from tokmap_ui.convert import ConvertConfig, Fallback
    from tokmap_ui.mapping.retrieval import RetrievalConfig

    cc, rc = ConvertConfig(), RetrievalConfig()
    p = subparsers.add_parser(
        "convert", help="apply a token map to a model: new embeddings, head, bias, config ids, tokenizer",
        description="Rebuild every vocabulary-sized tensor of MODEL from the token map (each new row is the "
                    "weighted average of the source rows the map names), fix the config and generation ids "
                    "by role, give the target tokenizer the model's special-token template, and write a "
                    "safetensors model folder atomically.")
    p.add_argument("--model", required=True, help="source model folder (config.json + *.safetensors) or hub id")
    p.add_argument("--map", required=True, help="token-map file (tokmap.token-map/1, .json or .json.gz)")
    p.add_argument("--target-tokenizer", required=True, help="the new tokenizer (folder, tokenizer.json, ...)")
    p.add_argument("--out", required=True, help="folder to write the converted model into")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists and is not empty")
    p.add_argument("--task", choices=("auto", "causal-lm", "masked-lm", "base"), default="auto",
                   help="which head to load (default: from the config's architectures)")
    p.add_argument("--fallback", choices=[f.value for f in Fallback], default=cc.fallback.value,
                   help="rows for unmapped and rejected entries: mean | random | keep-fvt")
    p.add_argument("--seed", type=int, default=cc.seed, help="seed of random rows")
    p.add_argument("--pad-to-multiple-of", type=int, default=cc.pad_to_multiple_of,
                   help="pad tables to a multiple of this many rows (default: keep the source's padding)")
    p.add_argument("--model-max-length", type=int, default=cc.model_max_length,
                   help="longest input of the new tokenizer (default: the source tokenizer's)")
    p.add_argument("--zip", action="store_true", help="also write OUT.zip for download")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run_convert)

    p = subparsers.add_parser(
        "eval-retrieval", help="zero-shot cross-lingual sentence retrieval with a converted encoder",
        description="Embed target-language sentences with the converted encoder and source-language sentences "
                    "with the original (mean pooling, L2-normalised) and report P@1, P@5 and MRR of finding the "
                    "translation among N candidates, next to the unconverted model reading the target text.")
    p.add_argument("--model", required=True, help="converted model folder (written by `tokmap convert`)")
    p.add_argument("--source-model", required=True, help="the original model folder")
    p.add_argument("--parallel", required=True, help="parallel TSV with a header naming the language columns")
    p.add_argument("--src-col", default="en", help="source-language column (default: en)")
    p.add_argument("--tgt-col", default="nl", help="target-language column (default: nl)")
    p.add_argument("--n", type=int, default=rc.n, help=f"number of pairs = candidates (default: {rc.n})")
    p.add_argument("--seed", type=int, default=rc.seed, help="seed of the sample of pairs")
    p.add_argument("--batch-size", type=int, default=rc.batch_size, help="sentences per forward pass")
    p.add_argument("--max-length", type=int, default=rc.max_length, help="truncate sentences to this many tokens")
    p.add_argument("--keep-identical", action="store_true",
                   help="keep pairs whose two sides are the same text (dropped by default)")
    p.add_argument("--no-baseline", action="store_true", help="skip the unconverted-model baseline")
    p.add_argument("--out", help="also write the report as JSON to this file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run_eval_retrieval)


def run_convert(args: argparse.Namespace) -> int:
    from tokmap_ui.convert import ConvertConfig, convert_model_with_report
    from tokmap_ui.errors import InputFileError
    from tokmap_ui.io.files import sha256_file
    from tokmap_ui.io.models import load_model, save_model_dir, zip_model_dir
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import load_token_map
    from tokmap_ui.vocab import Vocabulary

    config = ConvertConfig(fallback=args.fallback, seed=args.seed, pad_to_multiple_of=args.pad_to_multiple_of,
                           model_max_length=args.model_max_length)
    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:  # fail before the slow part
        raise InputFileError(out, "already exists and is not empty",
                             fix="choose a new folder, or pass --overwrite to replace it")
    token_map = load_token_map(args.map)
    target_tokenizer = load_tokenizer(args.target_tokenizer)
    model, source_tokenizer = load_model(args.model, task=args.task)
    source_vocab = Vocabulary.from_tokenizer(source_tokenizer, name=str(args.model))
    target_vocab = Vocabulary.from_tokenizer(target_tokenizer, name=str(args.target_tokenizer))
    model, tokenizer, report = convert_model_with_report(model, source_vocab, target_tokenizer, target_vocab,
                                                         token_map, config, source_tokenizer=source_tokenizer)
    provenance = {"format": "tokmap.conversion/1", "source_model": str(args.model),
                  "target_tokenizer": str(args.target_tokenizer), "token_map": str(args.map),
                  "token_map_sha256": sha256_file(args.map), "token_map_kind": token_map.kind,
                  "config": {**asdict(config), "fallback": config.fallback.value}, "report": report.to_dict()}
    save_model_dir(model, tokenizer, out, overwrite=args.overwrite,
                   extra_files={"tokmap_conversion.json": json.dumps(provenance, indent=2, ensure_ascii=False)})
    if args.zip:
        zip_model_dir(out)
    print_report(report, args.json)
    return 0


def run_eval_retrieval(args: argparse.Namespace) -> int:
    from tokmap_ui.io.files import atomic_write_text
    from tokmap_ui.io.models import load_model
    from tokmap_ui.io.parallel import load_parallel_tsv
    from tokmap_ui.mapping.retrieval import RetrievalConfig, evaluate_retrieval

    config = RetrievalConfig(n=args.n, seed=args.seed, batch_size=args.batch_size, max_length=args.max_length,
                             drop_identical=not args.keep_identical, baseline=not args.no_baseline)
    text = load_parallel_tsv(args.parallel, args.src_col, args.tgt_col)
    model, tokenizer = load_model(args.model, task="base")
    source_model, source_tokenizer = load_model(args.source_model, task="base")
    report = evaluate_retrieval(model, tokenizer, source_model, source_tokenizer, text.src, text.tgt, config,
                                src_lang=args.src_col, tgt_lang=args.tgt_col)
    if text.skipped:
        report.sample.update({f"skipped_{k}": v for k, v in text.skipped.items()})
    if args.out:
        atomic_write_text(args.out, json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n")
    print_report(report, args.json)
    return 0
