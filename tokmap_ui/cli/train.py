"""``finetune`` (train a model on text, resumable) and ``jobs`` (list, show, tail, cancel, resume, start)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tokmap_ui.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    from tokmap_ui.train.options import Objective, Phase  # light: no torch model code runs

    p = subparsers.add_parser(
        "finetune", help="fine-tune a (converted) model on text: CLM or MLM, resumable, JSON-lines progress",
        description="Train a model folder on UTF-8 text (one document or sentence per line). Prints one JSON "
                    "progress event per line (a progress bar on a terminal); writes checkpoints, metrics.jsonl "
                    "and the final model under --out. Validation loss is reported per token and per byte. "
                    "Runs on several GPUs with `accelerate launch -m tokmap_ui finetune ...`.")
    p.add_argument("--model", required=True, help="model folder (config.json + model.safetensors + tokenizer)")
    p.add_argument("--train", required=True, nargs="+", metavar="FILE", help="training text file(s)")
    p.add_argument("--valid", required=True, metavar="FILE", help="validation text file")
    p.add_argument("--out", required=True, metavar="RUN", help="run folder for checkpoints, metrics and model")
    p.add_argument("--objective", choices=Objective.choices(), default="clm",
                   help="clm: next token (GPT, Llama); mlm: masked tokens (BERT, RoBERTa). Default: clm")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--phase", choices=Phase.choices(), default="full",
                   help="train only the embeddings, everything, or embeddings first then everything (default full)")
    p.add_argument("--embeddings-fraction", type=float, default=0.5,
                   help="share of steps in the embeddings phase of embeddings-then-full (default 0.5)")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4)")
    p.add_argument("--warmup-ratio", type=float, default=0.06, help="share of steps for warm-up (default 0.06)")
    p.add_argument("--batch", type=int, default=8, help="blocks per device per micro-batch (default 8)")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    p.add_argument("--block-size", type=int, default=128, help="tokens per block (default 128)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="evaluate every N steps (default 0: before training, at checkpoints, at the end)")
    p.add_argument("--checkpoint-every", type=int, default=100, help="checkpoint every N steps (default 100)")
    p.add_argument("--max-eval-texts", type=int, default=1000, help="validation lines used (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its newest checkpoint")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="stop after this many minutes with a checkpoint and the model written (default: no limit)")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    p.add_argument("--progress-jsonl", metavar="FILE", help="also append every progress event to FILE")
    p.set_defaults(run=run_finetune)

    p = subparsers.add_parser(
        "jobs", help="background jobs: list, show, tail, cancel, resume, start",
        description="Jobs run tokmap commands in the background (they survive closing the app or shell). "
                    "One GPU job runs at a time; CPU jobs queue.")
    sub = p.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    q = sub.add_parser("list", help="list jobs, newest first")
    q.add_argument("--status", help="only jobs with this status (queued, running, succeeded, failed, ...)")
    q.add_argument("--json", action="store_true", help="print JSON")
    q = sub.add_parser("show", help="one job's record: config, status, progress, artifacts")
    q.add_argument("job_id", type=int)
    q.add_argument("--json", action="store_true", help="print JSON")
    q = sub.add_parser("tail", help="the last lines of a job's log")
    q.add_argument("job_id", type=int)
    q.add_argument("-n", type=int, default=20, help="how many lines (default 20)")
    q.add_argument("--follow", action="store_true", help="keep printing new lines until the job ends")
    q = sub.add_parser("cancel", help="stop a queued or running job (SIGTERM, then SIGKILL)")
    q.add_argument("job_id", type=int)
    q = sub.add_parser("resume", help="queue an interrupted, cancelled or failed job again, from its checkpoint")
    q.add_argument("job_id", type=int)
    q = sub.add_parser("start", help="run a tokmap command as a background job: jobs start -- finetune ...")
    q.add_argument("--device", choices=["cpu", "gpu"], default="cpu", help="cpu (queued) or gpu (one at a time)")
    q.add_argument("--project", help="project the job belongs to")
    q.add_argument("argv", nargs=argparse.REMAINDER, help="the tokmap subcommand and its arguments")
    p.set_defaults(run=run_jobs)


def run_finetune(args: argparse.Namespace) -> int:
    from tokmap_ui.train.finetune import FinetuneConfig, finetune
    from tokmap_ui.train.progress import Progress

    config = FinetuneConfig(
        model=args.model, train_files=tuple(args.train), valid_file=args.valid, out=args.out,
        objective=args.objective, steps=args.steps, phase=args.phase, embeddings_fraction=args.embeddings_fraction,
        lr=args.lr, warmup_ratio=args.warmup_ratio, batch_size=args.batch, grad_accum=args.grad_accum,
        block_size=args.block_size, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
        max_eval_texts=args.max_eval_texts, seed=args.seed, resume=args.resume, max_minutes=args.max_minutes,
        cpu=args.cpu)
    progress = Progress(jsonl_path=args.progress_jsonl, fallback_jsonl=Path(args.out) / "progress.jsonl")
    if not progress.tty:  # keep stdout pure JSON lines and the job log free of library progress bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    with progress:
        result = finetune(config, on_event=lambda record: progress.emit(**record))
    if progress.tty:
        first, last = result.initial_eval, result.final_eval
        start = f"{first.loss_per_byte:.4f} → " if first else ""
        print(f"done: {result.steps_done} steps, validation loss per byte {start}{last.loss_per_byte:.4f} "
              f"(perplexity {last.perplexity:.1f}); model in {result.model_dir}")
    return 0


def _job_dict(job) -> dict:
    return {"id": job.id, "kind": job.kind, "status": job.status.value, "device": job.device.value,
            "project_id": job.project_id, "pid": job.pid, "config": job.config, "progress": job.progress,
            "log": str(job.log_path) if job.log_path else None,
            "checkpoint": str(job.checkpoint) if job.checkpoint else None, "artifacts": job.artifacts,
            "error": job.error, "created": job.created, "started": job.started, "finished": job.finished}


def _summary(job) -> str:
    p = job.progress
    step = f"{p.get('step', 0)}/{p['total_steps']}" if p.get("total_steps") else "-"
    loss = f"{p['loss']:.4f}" if isinstance(p.get("loss"), (int, float)) else "-"
    return (f"{job.id:>4}  {job.kind:<14} {job.status.value:<11} {job.device.value:<4} {step:>11}  {loss:>8}  "
            f"{job.created}")


def run_jobs(args: argparse.Namespace) -> int:
    from tokmap_ui import jobs
    from tokmap_ui.store import Store

    with Store.open() as store:
        action = args.jobs_command
        if action == "list":
            found = jobs.refresh(store)
            if args.status:
                found = [j for j in found if j.status.value == args.status]
            if args.json:
                print(json.dumps([_job_dict(j) for j in found], ensure_ascii=False, indent=1))
            elif not found:
                print("no jobs")
            else:
                print(f"{'id':>4}  {'kind':<14} {'status':<11} {'dev':<4} {'step':>11}  {'loss':>8}  created")
                for job in found:
                    print(_summary(job))
        elif action == "show":
            job = jobs.poll(store, args.job_id)
            if args.json:
                print(json.dumps(_job_dict(job), ensure_ascii=False, indent=1))
            else:
                print(_summary(job))
                for key in ("config", "log", "checkpoint", "artifacts", "error", "started", "finished"):
                    print(f"  {key}: {_job_dict(job)[key]}")
                if job.progress.get("last_eval"):
                    print(f"  last eval: {job.progress['last_eval']}")
        elif action == "tail":
            _tail(store, args.job_id, args.n, args.follow)
        elif action == "cancel":
            job = jobs.cancel(store, args.job_id)
            print(f"job {job.id}: {job.status.value}")
        elif action == "resume":
            job = jobs.resume(store, args.job_id)
            print(f"job {job.id}: {job.status.value}")
        elif action == "start":
            argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
            if not argv:
                raise ConfigError("no command to run. Fix: `tokmap jobs start -- finetune --model ...`.")
            job_id = jobs.start_job(store, argv[0], argv, project=args.project, device=args.device)
            print(f"job {job_id}: {store.get_job(job_id).status.value}")
    return 0


def _tail(store, job_id: int, n: int, follow: bool) -> None:
    from tokmap_ui import jobs

    shown = jobs.tail(store, job_id, n)
    for line in shown:
        print(line)
    if not follow:
        return
    log = store.get_job(job_id).log_path
    offset = log.stat().st_size if log and log.is_file() else 0
    while True:
        job = jobs.poll(store, job_id)
        if log and log.is_file():
            with open(log, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", errors="replace"))
            sys.stdout.flush()
        if job.status.finished:
            print(f"[job {job_id}: {job.status.value}]")
            return
        time.sleep(0.5)
