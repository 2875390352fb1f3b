"""The app's background work as job commands: build and lay out a map, compare init methods, train deltas.

The app never runs long work inside a click: it starts a job (:mod:`tokmap_ui.jobs`), a
subprocess running ``python -m tokmap_ui.workbench <command> ...`` that reports progress as JSON
lines. The commands are thin, like the CLI's: parse, build one config, call the library.

* ``explore-map``: build a token map (:func:`tokmap_ui.mapping.tiktotok.run_mapping`), register it
  in the project for review, and lay out source and target tokens in 2-D
  (:func:`tokmap_ui.projection.project_tokens`: source embedding rows and the target rows the map
  initialises, in one space).
* ``init-run``: one arm of an init-method comparison: build the map with a method (or take the
  project's reviewed map), convert the model, fine-tune it (:func:`tokmap_ui.train.finetune.finetune`).
  Resumable: a re-run skips a finished conversion and continues the fine-tune from its checkpoint.

Other jobs (``delta-train``) run ``tokmap`` subcommands directly.

The ``start_*`` functions build a job's command line from a project's selected inputs.

Example:
    >>> job_id = start_map_job(store, "demo", MapJobConfig(method="tiktotok", layout="pca"))   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokmap_ui.errors import ConfigError, TokmapError

JOB_MODULE = "tokmap_ui.workbench"
LAYOUTS = ("pca", "umap", "none")


@dataclass(frozen=True)
class MapJobConfig:
    """Settings of a Map & explore build (field docstrings are the UI help)."""

    method: str = "tiktotok"
    """Mapping method: tiktotok, identical, fvt, mean or random."""
    top_k: int = 3
    """Nearest source tokens averaged for a target token no dictionary pair reaches."""
    temperature: float = 0.1
    """Neighbour weights are softmax(similarity / temperature)."""
    layout: str = "pca"
    """Token-map layout: pca (seconds), umap (about a minute per 25k tokens on 2 cores), none."""

    def __post_init__(self) -> None:
        from tokmap_ui.mapping.baselines import MapMethod

        if self.method not in [m.value for m in MapMethod]:
            raise ConfigError(f"mapping method '{self.method}' is unknown. Fix: choose one of "
                              f"{', '.join(m.value for m in MapMethod)}.")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout '{self.layout}' is unknown. Fix: choose one of {', '.join(LAYOUTS)}.")
        if self.top_k < 1 or self.temperature <= 0:
            raise ConfigError("top_k must be at least 1 and temperature above 0.")


@dataclass(frozen=True)
class InitRunConfig:
    """Settings shared by the arms of an init-method comparison (field docstrings are the UI help)."""

    steps: int = 60
    """Fine-tuning steps per run (each run starts from its own converted model)."""
    batch_size: int = 4
    """Blocks per step."""
    block_size: int = 64
    """Tokens per block."""
    lr: float = 5e-4
    """Peak learning rate."""
    max_eval_texts: int = 60
    """Validation lines for the loss-per-byte before and after."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.block_size < 8 or self.max_eval_texts < 1:
            raise ConfigError("steps, batch size and eval texts must be at least 1, block size at least 8.")


# ---------------------------------------------------------------- commands (run inside the job)

def _progress():
    from tokmap_ui.train.progress import Progress

    return Progress(tty=False)


def source_rows(source: Path, vocab_size: int) -> Any:
    """The source model's embedding rows, cut or mean-padded to the tokenizer's size: (V_s, D)."""
    import torch

    from tokmap_ui.io.models import read_embedding_table

    rows = read_embedding_table(source).float()[:vocab_size]                # (V, D)
    if rows.shape[0] < vocab_size:  # tokens added on top of the model's table: give them the mean row
        rows = torch.cat([rows, rows.mean(0, keepdim=True).expand(vocab_size - rows.shape[0], -1)])
    return rows


def run_explore_map(args: argparse.Namespace) -> int:
    from tokmap_ui.io.cache import ArrayCache
    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.review_workspace import register_map_file
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import save_token_map
    from tokmap_ui.io.workspace_files import save_layout
    from tokmap_ui.mapping.tiktotok import MappingConfig
    from tokmap_ui.projection import ProjectionConfig, project_tokens
    from tokmap_ui.store import Store

    progress, out = _progress(), Path(args.out)
    progress.emit("start", total_steps=3, method=args.method, layout=args.layout)
    progress.emit("step", step=0, message="loading tokenizers and dictionary")
    source_tok, target_tok = load_tokenizer(args.source), load_tokenizer(args.target)
    dictionary = load_dictionary(args.dictionary, src=args.src_col, tgt=args.tgt_col) if args.dictionary else None
    config = MappingConfig(method=args.method, top_k=args.top_k, temperature=args.temperature)
    progress.emit("step", step=0, message=f"building the {args.method} map"
                  + (f" through the pivot {Path(args.via_tokenizer).name}" if args.via_tokenizer else ""))
    run = build_job_map(source_tok, target_tok, dictionary, config, args, cache=ArrayCache())
    token_map = run.token_map
    map_file = save_token_map(token_map, out / f"{args.name}.json.gz")
    project = int(args.project) if args.project.isdigit() else args.project  # an id, or a name
    with Store.open() as store:
        record = register_map_file(store, map_file, project, name=args.name, create_project=False,
                                   source_tokenizer=str(args.source), target_tokenizer=str(args.target))
        progress.emit("map", map_id=record.id, path=str(map_file), by_method=token_map.stats.get("by_method", {}),
                      notes=run.notes, timings=run.timings)
        progress.emit("artifact", path=str(map_file), kind="token-map")
        progress.emit("step", step=1, message="map registered for review")
        if args.layout != "none" and (Path(args.source) / "config.json").is_file():
            rows = source_rows(Path(args.source), token_map.source.vocab_size)
            target_rows = token_map.apply_to_rows(rows)                      # (V_t, D)
            report = lambda fraction, message: progress.emit("step", step=1 + fraction, message=message)  # noqa: E731
            projection = project_tokens(rows, target_rows, ProjectionConfig(method=args.layout), progress=report)
            layout_file = save_layout(projection, out / "layout.npz")
            store.add_artifact(project, "layout", f"{args.name} layout", layout_file,
                               meta={"map_id": record.id, "method": args.layout, "timings": projection.timings})
            progress.emit("artifact", path=str(layout_file), kind="layout")
        progress.emit("step", step=3, message="done")
    progress.emit("done", step=3, out=str(out), map_id=record.id)
    return 0


def build_job_map(source_tok: Any, target_tok: Any, dictionary: Any, config: Any, args: Any,
                  cache: Any = None) -> Any:
    """:func:`~tokmap_ui.mapping.tiktotok.run_mapping`, or, for tiktotok with ``args.via_tokenizer``,
    :func:`~tokmap_ui.mapping.pivot.run_pivot_mapping` through that pivot (the ``--via-*`` options)."""
    from tokmap_ui.mapping.tiktotok import run_mapping

    via = getattr(args, "via_tokenizer", None)
    if not via or config.method.value != "tiktotok":
        return run_mapping(source_tok, target_tok, dictionary, config, cache=cache)
    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.mapping.pivot import run_pivot_mapping

    if dictionary is None or not args.via_dictionary:
        raise ConfigError("a pivot map needs two dictionaries: source→pivot (--dictionary) and pivot→target "
                          "(--via-dictionary). Fix: apply the pivot preset again in the Project & data tab.")
    pivot_target = load_dictionary(args.via_dictionary, src=args.via_src_col, tgt=args.via_tgt_col)
    return run_pivot_mapping(source_tok, load_tokenizer(via), target_tok, dictionary, pivot_target, config,
                             cache=cache, names=(f"{Path(args.via_dictionary).name} map", "pivot→source map"))


def _add_map_options(p: argparse.ArgumentParser) -> None:
    """Dictionary columns and the pivot hop, shared by explore-map and init-run."""
    p.add_argument("--src-col", help="dictionary column of source-language words (default: the first)")
    p.add_argument("--tgt-col", help="dictionary column of target- (or pivot-) language words (default: the second)")
    p.add_argument("--via-tokenizer", help="pivot tokenizer: build tiktotok as target→pivot ∘ pivot→source")
    p.add_argument("--via-dictionary", help="pivot→target dictionary of the first hop")
    p.add_argument("--via-src-col", help="its pivot-language column")
    p.add_argument("--via-tgt-col", help="its target-language column")


def _objective(model_dir: Path) -> str:
    from tokmap_ui.io.files import read_text

    architectures = json.loads(read_text(model_dir / "config.json", "model config")).get("architectures") or []
    return "mlm" if any(a.endswith("ForMaskedLM") or a in ("BertModel", "RobertaModel") for a in architectures) \
        else "clm"


def run_init(args: argparse.Namespace) -> int:
    from tokmap_ui.train.finetune import FinetuneConfig, finetune

    progress, out = _progress(), Path(args.out)
    converted = out / "converted"
    if not (converted / "config.json").is_file():
        progress.emit("step", step=0, message=f"converting the model ({args.method} init)")
        report = convert_for_method(args.model, args.target_tokenizer, args.method, converted,
                                    dictionary=args.dictionary, map_file=args.map, options=args)
        progress.emit("converted", method=args.method, **report)
        progress.emit("artifact", path=str(converted), kind="model")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    config = FinetuneConfig(model=str(converted), train_files=(args.train,), valid_file=args.valid,
                            out=str(out / "finetune"), objective=_objective(converted), steps=args.steps,
                            batch_size=args.batch, block_size=args.block_size, lr=args.lr,
                            max_eval_texts=args.max_eval_texts, checkpoint_every=max(5, args.steps // 4),
                            resume=args.resume)
    finetune(config, on_event=lambda record: progress.emit(**record))
    return 0


def convert_for_method(model: str | Path, target_tokenizer: str | Path, method: str, out: Path, *,
                       dictionary: str | Path | None = None, map_file: str | Path | None = None,
                       options: Any = None) -> dict[str, Any]:
    """Convert ``model`` to ``target_tokenizer`` with a map built by ``method`` (or ``map_file``); save to ``out``.

    ``options`` (a job's parsed arguments) may carry dictionary columns and a pivot hop (``--via-*``).
    """
    from tokmap_ui.convert import convert_model_with_report
    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.models import load_model, save_model_dir
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.tokenmaps import load_token_map
    from tokmap_ui.mapping.tiktotok import MappingConfig
    from tokmap_ui.vocab import Vocabulary

    loaded, source_tok = load_model(model)
    target_tok = load_tokenizer(target_tokenizer)
    if map_file:
        token_map = load_token_map(map_file)
    else:
        columns = {"src": getattr(options, "src_col", None), "tgt": getattr(options, "tgt_col", None)}
        dictionary_obj = load_dictionary(dictionary, **columns) if dictionary else None
        token_map = build_job_map(source_tok, target_tok, dictionary_obj, MappingConfig(method=method),
                                  options).token_map
    source_vocab = Vocabulary.from_tokenizer(source_tok, name=Path(model).name)
    target_vocab = Vocabulary.from_tokenizer(target_tok, name=Path(target_tokenizer).name)
    converted, tokenizer, report = convert_model_with_report(loaded, source_vocab, target_tok, target_vocab,
                                                             token_map, source_tokenizer=source_tok)
    provenance = {"format": "tokmap.conversion/1", "source_model": str(model), "method": method,
                  "target_tokenizer": str(target_tokenizer), "token_map": str(map_file or ""),
                  "report": report.to_dict()}
    save_model_dir(converted, tokenizer, out, overwrite=True,
                   extra_files={"tokmap_conversion.json": json.dumps(provenance, indent=2, ensure_ascii=False)})
    return {"by_method": token_map.compute_stats().get("by_method", {})}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("explore-map", help="build a token map for a project, register it, lay it out")
    p.add_argument("--project", required=True, help="project name or id")
    p.add_argument("--source", required=True, help="source model folder (or bare tokenizer: no layout)")
    p.add_argument("--target", required=True, help="target tokenizer")
    p.add_argument("--dictionary", help="bilingual dictionary (source language first)")
    p.add_argument("--method", default="tiktotok", help="tiktotok | identical | fvt | mean | random")
    p.add_argument("--top-k", type=int, default=3, help="neighbours per generalised token")
    p.add_argument("--temperature", type=float, default=0.1, help="neighbour softmax temperature")
    p.add_argument("--layout", choices=LAYOUTS, default="pca", help="2-D layout of the tokens")
    p.add_argument("--name", required=True, help="the map's name in the project")
    p.add_argument("--out", required=True, help="folder for the map file and layout")
    _add_map_options(p)
    p.set_defaults(run=run_explore_map)

    p = subparsers.add_parser("init-run", help="one init method: map, convert, fine-tune (resumable)")
    p.add_argument("--method", required=True, help="init method (a mapping method, or 'reviewed' with --map)")
    p.add_argument("--model", required=True, help="source model folder")
    p.add_argument("--target-tokenizer", required=True, help="target tokenizer")
    p.add_argument("--dictionary", help="bilingual dictionary (tiktotok)")
    p.add_argument("--map", help="use this token-map file instead of building one")
    p.add_argument("--train", required=True, help="target-language training text")
    p.add_argument("--valid", required=True, help="target-language validation text")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--max-eval-texts", type=int, default=60)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    _add_map_options(p)
    p.set_defaults(run=run_init)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {JOB_MODULE}", description="tokmap job commands")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one job command; exit 2 with a one-line message on bad input (as the CLI does)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except TokmapError as err:
        print(f"tokmap {args.command}: error: {err}", file=sys.stderr)
        return 2


# ---------------------------------------------------------------- starting jobs (in the app)

def _run_dir(store: Any, project: Any, kind: str, label: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = store.project_dir(project) / "runs" / f"{kind}-{stamp}-{label}"
    n = 1
    while folder.exists():
        n += 1
        folder = folder.with_name(f"{kind}-{stamp}-{label}-{n}")
    return folder


def start_map_job(store: Any, project: Any, config: MapJobConfig = MapJobConfig()) -> int:
    """Start ``explore-map`` on the project's selected source, target and dictionary; return the job id."""
    from tokmap_ui.jobs import start_job
    from tokmap_ui.project import Role, selected, selected_path

    source, target = selected_path(store, project, Role.SOURCE), selected_path(store, project, Role.TARGET)
    dictionary = selected(store, project, Role.DICTIONARY)
    if config.method == "tiktotok" and dictionary is None:
        raise ConfigError("Tik-to-Tok needs a bilingual dictionary. Fix: add one in the Project & data tab, "
                          "or choose a method without one (fvt, identical, mean).")
    name = f"{selected(store, project, Role.SOURCE).name}-to-{selected(store, project, Role.TARGET).name}-" \
           f"{config.method}-{time.strftime('%H%M%S')}".replace("/", "_")
    argv = ["explore-map", "--project", str(store.get_project(project).id), "--source", str(source),
            "--target", str(target), "--method", config.method, "--top-k", str(config.top_k),
            "--temperature", str(config.temperature), "--layout", config.layout, "--name", name,
            "--out", str(_run_dir(store, project, "map", config.method))]
    argv += _dictionary_argv(store, project, dictionary, config.method)
    return start_job(store, "map", argv, project=store.get_project(project).id, module=JOB_MODULE)


def _dictionary_argv(store: Any, project: Any, dictionary: Any, method: str) -> list[str]:
    """``--dictionary`` with the columns a preset recorded, and the pivot hop of a pivot preset (tiktotok only)."""
    from tokmap_ui.presets import dictionary_columns, pivot_for_job

    if dictionary is None:
        return []
    argv = ["--dictionary", str(dictionary.path)]
    columns = dictionary_columns(dictionary)
    if columns:
        argv += ["--src-col", columns[0], "--tgt-col", columns[1]]
    pivot = pivot_for_job(store, project)
    if pivot is not None and method == "tiktotok":
        argv += pivot.argv()
    return argv


def start_init_runs(store: Any, project: Any, methods: list[str], config: InitRunConfig = InitRunConfig(),
                    reviewed_map: str | Path | None = None) -> list[int]:
    """Start one ``init-run`` job per method (``reviewed`` uses ``reviewed_map``); return the job ids."""
    from tokmap_ui.jobs import start_job
    from tokmap_ui.project import Role, selected, selected_path

    if not methods:
        raise ConfigError("no init method chosen. Fix: tick at least one method to compare.")
    source = selected(store, project, Role.SOURCE)
    if source is None or source.kind != "model":
        raise ConfigError("fine-tuning needs a source *model* (a folder with weights), not just a tokenizer. "
                          "Fix: select or upload a model in the Project & data tab.")
    common = ["--model", str(source.path), "--target-tokenizer", str(selected_path(store, project, Role.TARGET)),
              "--train", str(selected_path(store, project, Role.TRAIN_TEXT)),
              "--valid", str(selected_path(store, project, Role.VALID_TEXT)), "--steps", str(config.steps),
              "--batch", str(config.batch_size), "--block-size", str(config.block_size), "--lr", str(config.lr),
              "--max-eval-texts", str(config.max_eval_texts)]
    dictionary = selected(store, project, Role.DICTIONARY)
    project_id = store.get_project(project).id
    jobs = []
    for method in methods:
        argv = ["init-run", "--method", method, "--out", str(_run_dir(store, project, "init", method)), *common]
        if method == "reviewed":
            if not reviewed_map:
                raise ConfigError("'reviewed' needs a map built in Map & explore. Fix: build a map first.")
            argv += ["--map", str(reviewed_map)]
        else:
            argv += _dictionary_argv(store, project, dictionary, method)
        jobs.append(start_job(store, "compare-init", argv, project=project_id, module=JOB_MODULE))
    return jobs


def start_delta_job(store: Any, project: Any, template: str | Path, data: str | Path, task: str,
                    steps: int = 30) -> int:
    """Start ``delta-train`` (CMC) on ``template`` with JSONL ``data``; return the job id."""
    from tokmap_ui.jobs import start_job

    if task not in ("unlearn", "instruct"):
        raise ConfigError(f"task '{task}' is unknown. Fix: choose unlearn or instruct.")
    out = _run_dir(store, project, "delta", task)
    argv = ["delta-train", "--template", str(template), "--data", str(data), "--task", task, "--out", str(out),
            "--steps", str(int(steps)), "--batch", "4", "--block-size", "64", "--checkpoint-every",
            str(max(5, int(steps) // 3))]
    return start_job(store, "delta-train", argv, project=store.get_project(project).id)


def job_option(job: Any, flag: str) -> str | None:
    """The value of ``flag`` (e.g. ``--out``) in a job's command line, or None."""
    argv = list(job.config.get("argv", []))
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


if __name__ == "__main__":
    sys.exit(main())
