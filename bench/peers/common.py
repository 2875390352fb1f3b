"""Shared machinery of the peer benchmark: venvs, inputs, one init process per row, evaluation, results.

Flow of :func:`run` (``run_all.py`` calls it with every method, ``peer_X.py`` with ours + X):

1. **venvs** — each peer gets a throw-away virtual environment under ``bench/peers/.venvs/<name>``
   (git-ignored), built with ``python -m venv`` + ``pip install`` of the peer's pinned
   ``REQUIREMENTS`` (``torch==2.13.0`` first when it needs torch: an unpinned torch pulls GBs of
   CUDA). Kept between runs; rebuilt when its requirement list changes. A peer is never a project
   dependency and none of its code is copied here.
2. **inputs** — written once per run under ``workspace/bench/peers/inputs``: each source model's
   input-embedding table as float32 safetensors, and the dictionary as our loader reads it.
3. **init** — one process per (method, model): ours with the main interpreter
   (``init_ours.py``), a peer with its venv's (``peer_X.py init``). Each writes only
   ``table.safetensors`` + ``info.json`` (time, memory, versions) measured by ``meter.py``.
   Threads pinned to 1; caches (``XDG_CACHE_HOME``, ``HF_HOME``) point into the run folder, so
   no peer finds a warm cache.
4. **evaluate** — in this process, with our library, the same code for every table
   (``metrics.py``); a method that failed keeps its row with the error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENVS = HERE / ".venvs"
WORK = ROOT / "workspace" / "bench" / "peers"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

OURS = ("tiktotok", "fvt", "mean", "random")
PEERS = ("wechsel", "focus")
# A peer with one setting changed from its default, to check that a small corpus is not the whole story:
# fastText keeps words seen once (min count 1 instead of WECHSEL's 5 and FOCUS's 10).
VARIANTS = {"wechsel-mc1": ("wechsel", ["--min-count", "1"]), "focus-mc1": ("focus", ["--min-count", "1"])}
ALL_METHODS = ("tiktotok", "wechsel", "focus", *VARIANTS, "fvt", "mean", "random")


def peer_of(method: str) -> str | None:
    """The peer a method runs (``focus-mc1`` -> ``focus``); None for ours."""
    return VARIANTS[method][0] if method in VARIANTS else method if method in PEERS else None
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "RAYON_NUM_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
              "HF_DATASETS_OFFLINE": "1", "PYTHONUTF8": "1", "TQDM_DISABLE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
KIT = {"target_tokenizer": "assets/tokenizers/nl-bpe", "dictionary": "assets/dict/en-nl.tsv",
       "dev_pairs": "assets/dict/en-nl.dev.tsv", "dev_parallel": "assets/parallel/en-nl.dev.tsv",
       "test_pairs": "assets/dict/en-nl.test.tsv", "test_parallel": "assets/parallel/en-nl.test.tsv",
       "source_text": "assets/text/en/train.txt", "target_text": "assets/text/nl/train.txt",
       "valid": "assets/text/nl/valid.txt"}
MODEL_SPECS = {"gpt2": ("assets/models/tiny-en-gpt2", "causal-lm"), "minilm": ("kit:minilm", "base")}


@dataclass(frozen=True)
class Settings:
    """What every row is measured with (the defaults are the committed run's)."""

    steps: int = 48           # fine-tune: as bench/results/compare_init
    batch_size: int = 8
    block_size: int = 128
    lr: float = 1e-3
    max_eval_texts: int = 200  # first 200 lines of nl/valid.txt, as compare_init
    retrieval_n: int = 1000
    threads: int = 1
    init_timeout_s: int = 1800
    split: str = "dev"         # held-out word pairs and sentences: dev (default) or test


def kit_path(key: str) -> str:
    return str(ROOT / KIT[key])


def peer_module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"peer_{name}")


# ------------------------------------------------------------------------------------------- venvs

def _pip_log_tail(text: str, lines: int = 12) -> str:
    keep = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("WARNING: Location")]
    return "\n".join(keep[-lines:])


def ensure_venv(name: str) -> dict[str, Any]:
    """The peer's venv python (building it if needed): ``{"python": path}`` or ``{"error": text}``."""
    module = peer_module(name)
    folder = VENVS / name
    spec = {"requirements": list(module.REQUIREMENTS), "torch": bool(module.NEEDS_TORCH), "python": sys.version}
    marker, python = folder / "tokmap-venv.json", folder / "bin" / "python"
    if marker.is_file() and json.loads(marker.read_text()) == spec and python.exists():
        return {"python": str(python), "built_s": None}
    shutil.rmtree(folder, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    steps = [[sys.executable, "-m", "venv", str(folder)]]
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if module.NEEDS_TORCH:
        steps.append(pip + ["torch==2.13.0"])
    steps.append(pip + list(module.REQUIREMENTS) + (["torch==2.13.0"] if module.NEEDS_TORCH else []))
    log = ""
    for cmd in steps:
        print(f"[{name} venv] {' '.join(cmd[1:]) if 'install' not in cmd else 'pip install ' + ' '.join(cmd[6:])}",
              flush=True)
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_PROGRESS_BAR": "off"})
        log += done.stdout + done.stderr
        if done.returncode != 0:
            (folder.parent / f"{name}-install.log").write_text(log)
            return {"error": f"venv install failed ({' '.join(cmd[5:])}):\n{_pip_log_tail(log)}"}
    marker.write_text(json.dumps(spec, indent=1))
    return {"python": str(python), "built_s": round(time.perf_counter() - t0, 1)}


# ------------------------------------------------------------------------------------------ inputs

def prepare_inputs(work: Path) -> dict[str, dict[str, str]]:
    """Write the per-model inputs; return ``{model: {input key: path}}`` (keys = init flags)."""
    from safetensors.torch import save_file

    from tokmap_ui.io.dictionaries import load_dictionary
    from tokmap_ui.io.models import read_embedding_table, resolve_model_dir

    folder = work / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = load_dictionary(kit_path("dictionary"), src="en", tgt="nl").pairs
    dictionary_txt = folder / "en-nl.pairs.txt"  # WECHSEL's form: english<TAB>target, no header
    dictionary_txt.write_text("".join(f"{p.src}\t{p.tgt}\n" for p in pairs), encoding="utf-8")
    out = {}
    for key, (spec, _) in MODEL_SPECS.items():
        model_dir = resolve_model_dir(spec if spec.startswith("kit:") else ROOT / spec)
        table = folder / f"{key}.source-embeddings.safetensors"
        save_file({"embeddings": read_embedding_table(model_dir).float().contiguous()}, str(table))  # (V_s, D)
        out[key] = {"source-model": str(model_dir), "target-tokenizer": kit_path("target_tokenizer"),
                    "source-table": str(table), "source-text": kit_path("source_text"),
                    "target-text": kit_path("target_text"), "dictionary-tsv": kit_path("dictionary"),
                    "dictionary-pairs": str(dictionary_txt)}
    return out


# -------------------------------------------------------------------------------------------- init

def init_command(method: str, python: str, inputs: dict[str, str], out: Path, threads: int) -> list[str]:
    if method in OURS:
        args = {"source-model": "source-model", "target-tokenizer": "target-tokenizer",
                "source-table": "source-table", "dictionary": "dictionary-tsv"}
        cmd = [python, str(HERE / "init_ours.py"), "--method", method]
    else:
        peer = peer_of(method)
        args = peer_module(peer).INPUTS
        cmd = [python, str(HERE / f"peer_{peer}.py"), "init", *VARIANTS.get(method, ("", []))[1]]
    for flag, key in args.items():
        cmd += [f"--{flag}", inputs[key]]
    return cmd + ["--out", str(out), "--threads", str(threads)]


def run_init(method: str, model: str, python: str, inputs: dict[str, str], work: Path, settings: Settings
             ) -> dict[str, Any]:
    """One init process; returns its info.json (plus ``table``) or ``{"error": ...}``."""
    out = work / "init" / method / model
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cache = out / "cache"
    env = {**os.environ, **THREAD_ENV, "XDG_CACHE_HOME": str(cache), "HF_HOME": str(cache / "hf")}
    if method not in OURS:
        env.pop("PYTHONPATH", None)  # the venv sees only what its pip installed
    cmd = init_command(method, python, inputs, out, settings.threads)
    t0 = time.perf_counter()
    with open(out / "log.txt", "w", encoding="utf-8") as log:
        try:
            done = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(HERE),
                                  timeout=settings.init_timeout_s)
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = f"timeout after {settings.init_timeout_s} s"
    shutil.rmtree(cache, ignore_errors=True)
    text = (out / "log.txt").read_text(encoding="utf-8", errors="replace")
    if code != 0 or not (out / "table.safetensors").is_file():
        return {"error": f"exit {code}: " + "\n".join(text.strip().splitlines()[-15:]),
                "process_s": round(time.perf_counter() - t0, 1)}
    info = json.loads((out / "info.json").read_text(encoding="utf-8"))
    info.update(table=str(out / "table.safetensors"), process_s=round(time.perf_counter() - t0, 1))
    if peer_of(method) == "focus":  # FOCUS only logs how many rows it drew at random
        import re

        found = re.search(r"Initialized (\d+) new tokens from N", text)
        info.setdefault("counts", {})["random rows"] = int(found.group(1)) if found else None
    if method in OURS:
        info["map"] = str(out / "map.json.gz")
    return info


# ---------------------------------------------------------------------------------------- the run

@dataclass
class Results:
    settings: Settings
    methods: list[str]
    venvs: dict[str, Any] = field(default_factory=dict)
    init: dict[str, dict[str, Any]] = field(default_factory=dict)       # method -> model -> info
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)    # method -> metric -> value
    pmmined: dict[str, Any] | None = None
    baseline_retrieval: dict[str, float] | None = None
    notes: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    started: str = ""
    machine: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _machine() -> dict[str, Any]:
    import platform

    return {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()[0], "platform": platform.platform(),
            "python": sys.version.split()[0]}


def run(methods: tuple[str, ...], settings: Settings = Settings(), pmmined: bool = False,
        work: Path = WORK) -> Results:
    """Everything above in order; prints progress; returns the numbers (see :mod:`table` for printing)."""
    import torch

    from safetensors.torch import load_file

    import metrics as M
    from tokmap_ui.io.dictionaries import load_dictionary

    t_run = time.perf_counter()
    torch.set_num_threads(settings.threads)
    res = Results(settings, list(methods), started=time.strftime("%Y-%m-%d %H:%M:%S %Z"), machine=_machine())
    pythons = {m: sys.executable for m in methods if m in OURS}
    for method in methods:
        name = peer_of(method)
        if name is None:
            continue
        if name not in res.venvs:
            res.venvs[name] = ensure_venv(name)
        if "python" in res.venvs[name]:
            pythons[method] = res.venvs[name]["python"]
    print(f"inputs -> {work / 'inputs'}", flush=True)
    inputs = prepare_inputs(work)
    for method in methods:
        res.init[method] = {}
        for model in MODEL_SPECS:
            if method not in pythons:
                res.init[method][model] = {"error": res.venvs[peer_of(method)]["error"]}
                continue
            print(f"init {method} / {model} ...", end=" ", flush=True)
            info = run_init(method, model, pythons[method], inputs[model], work, settings)
            res.init[method][model] = info
            print(f"{info['wall_s']:.1f} s" if "wall_s" in info else "FAILED", flush=True)
    if pmmined:
        import peer_pmmined

        print("PM-MinED: ours vs the literal reference loop ...", flush=True)
        res.pmmined = peer_pmmined.compare()
    kits = {k: M.ModelKit(k, spec if spec.startswith("kit:") else str(ROOT / spec), task, kit_path("target_tokenizer"))
            for k, (spec, task) in MODEL_SPECS.items()}
    pairs = load_dictionary(kit_path(f"{settings.split}_pairs"), src="en", tgt="nl")
    source_rows = {k: load_file(inputs[k]["source-table"])["embeddings"] for k in kits}
    print("retrieval set-up (original MiniLM) ...", flush=True)
    setup = M.retrieval_setup(kits["minilm"], kit_path(f"{settings.split}_parallel"), settings.retrieval_n)
    res.baseline_retrieval = {**setup.baseline, "sample": setup.counts}
    for method in methods:
        row: dict[str, Any] = {}
        for model, kit in kits.items():
            info = res.init[method][model]
            if "error" in info:
                continue
            table = load_file(info["table"])["embeddings"]
            print(f"evaluate {method} / {model} ...", flush=True)
            tp = M.translation(kit, source_rows[model], table, pairs)
            row[f"{model}_p@1"], row[f"{model}_p@5"] = tp["p@1"], tp["p@5"]
            row["translation_queries"] = tp["queries"]
            if method == "tiktotok":
                row[f"{model}_convert_check_max_abs"] = M.convert_check(kit, table, Path(info["map"]))
            if model == "minilm":
                r = M.retrieval(kit, table, setup)
                row["retrieval_p@1"], row["retrieval_p@5"], row["retrieval_mrr"] = r["p_at_1"], r["p_at_5"], r["mrr"]
            else:
                row.update(M.finetune_losses(kit, table, work / "finetune" / method, kit_path("target_text"),
                                             kit_path("valid"), steps=settings.steps, batch_size=settings.batch_size,
                                             block_size=settings.block_size, lr=settings.lr,
                                             max_eval_texts=settings.max_eval_texts))
        res.metrics[method] = row
    res.wall_s = round(time.perf_counter() - t_run, 1)
    res.machine["load_avg_end"] = os.getloadavg()[0]
    return res


def save(res: Results, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res.to_dict(), indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def main_single(name: str) -> int:
    """``python bench/peers/peer_<name>.py``: ours (tiktotok) and this peer, printed the same way."""
    import table

    res = run(("tiktotok", name), work=WORK / name)
    print(table.render(res))
    save(res, WORK / name / "results.json")
    return 0
