"""The run folder of a fine-tune: input texts, model loading, config.json, metrics.jsonl, final model.

Kept apart from the loop so :mod:`tokmap_ui.train.finetune` reads as training only. File reading
and model (de)serialisation go through :mod:`tokmap_ui.io`; this module only decides *which*
files a run reads and writes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokmap_ui.errors import ConfigError, InputFileError
from tokmap_ui.io.files import atomic_write_text, read_text_lines
from tokmap_ui.train.checkpoint import latest_checkpoint
from tokmap_ui.train.data import require_mask_token
from tokmap_ui.train.options import Objective

CONFIG_NAME = "config.json"
METRICS_NAME = "metrics.jsonl"

# Fields that may change between a run and its resume without changing what is computed.
_FREE_ON_RESUME = {"resume", "max_minutes", "cpu", "log_every", "eval_every", "checkpoint_every",
                   "keep_checkpoints", "max_eval_texts", "eval_batch_size"}


def read_texts(paths: Sequence[str | Path], what: str) -> list[str]:
    """Non-blank lines of the given UTF-8 files, in order (strict decoding, clear errors)."""
    lines: list[str] = []
    for path in paths:
        found = [line for line in read_text_lines(path, what) if line.strip()]
        if not found:
            raise InputFileError(path, "has only blank lines", fix=f"give a {what} with text on its lines")
        lines.extend(found)
    return lines


def load_model_and_tokenizer(spec: str, objective: Objective) -> tuple[Any, Any]:
    """Load a model folder with the head the objective needs (safetensors only).

    For MLM the tokenizer is checked first: "no mask token" is the actionable message, not the
    model loader's complaint that a causal model has no masked-LM head.
    """
    from tokmap_ui.io.models import load_model, resolve_model_dir

    folder = resolve_model_dir(spec)
    if objective is Objective.MLM and folder is not None:
        from tokmap_ui.io.tokenizers import load_tokenizer

        require_mask_token(load_tokenizer(folder), f"the tokenizer of {spec}")
    return load_model(spec, task=objective.task)


def _as_json(config: Any) -> dict[str, Any]:
    data = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def write_config(out: Path, config: Any) -> None:
    """Write ``config.json`` (the run's settings) atomically."""
    atomic_write_text(out / CONFIG_NAME, json.dumps(_as_json(config), indent=1, ensure_ascii=False) + "\n")


def check_resume_config(out: Path, config: Any) -> Path | None:
    """Decide how a run starts in ``out``; return the checkpoint to resume from (None = from scratch).

    Without ``resume``, a folder that already holds a run is refused (nothing is overwritten
    by accident). With ``resume``, the settings must match the saved ``config.json`` except
    for fields that do not change the computation; no checkpoint yet means starting over.
    """
    saved_path = out / CONFIG_NAME
    if not config.resume:
        if saved_path.exists() or latest_checkpoint(out) is not None:
            raise ConfigError(f"{out} already holds a fine-tune run. Fix: pass --resume to continue it, "
                              "or choose another --out folder.")
        if (out / "model").exists():
            raise ConfigError(f"{out}/model already exists. Fix: choose another --out folder.")
        return None
    if saved_path.is_file():
        try:
            saved = json.loads(saved_path.read_text(encoding="utf-8"))
        except ValueError:
            raise InputFileError(saved_path, "is not valid JSON",
                                 fix="delete the run folder and start again") from None
        now = _as_json(config)
        changed = sorted(k for k in now if k not in _FREE_ON_RESUME and k in saved and saved[k] != now[k])
        if changed:
            detail = "; ".join(f"{k}: was {saved[k]!r}, now {now[k]!r}" for k in changed)
            raise ConfigError(f"cannot resume {out} with different settings ({detail}). "
                              "Fix: resume with the original settings, or start a new run in another --out folder.")
    return latest_checkpoint(out)


def rewind_metrics(out: Path, start_step: int) -> None:
    """Drop metric records a resumed run will write again (those after its checkpoint)."""
    path = out / METRICS_NAME
    if not path.is_file():
        return
    kept = []
    if start_step > 0:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= start_step:
                    kept.append(line)
            except ValueError:
                continue  # a line cut short by a kill
    atomic_write_text(path, "".join(line + "\n" for line in kept))


def read_metrics(out: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl`` (skipping a torn last line)."""
    path = Path(out) / METRICS_NAME
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows


def save_final_model(model: Any, tokenizer: Any, model_dir: Path) -> Path:
    """Write the trained model and its tokenizer atomically, replacing an earlier final model."""
    from tokmap_ui.io.models import save_model_dir

    return save_model_dir(model, tokenizer, model_dir, overwrite=True)
