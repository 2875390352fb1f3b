"""CMC delta folders on disk: a normal HF model folder (safetensors + tokenizer) plus ``cmc.json``.

``cmc.json`` (format ``tokmap.cmc-delta/1``) records what a host needs to know::

    {"format": "tokmap.cmc-delta/1",
     "template": {"model": "assets/models/tiny-en-gpt2", "name": "tiny-en-gpt2",
                  "vocab_size": 8192, "sha256": "…"},     # the template's vocabulary identity
     "alpha": 1.0,                                        # α used in training
     "task": "unlearn", "steps": 200, "delta_config": "tiny",
     "combine": "log_softmax(template) + alpha * delta", ...}

:func:`load_delta` accepts the delta folder or the training run folder around it (``<run>/delta``).
A plain causal-LM folder without ``cmc.json`` also loads (its info is then ``{}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokmap_ui.errors import InputFileError, ModelError
from tokmap_ui.io.models import load_model, save_model_dir

FORMAT = "tokmap.cmc-delta/1"
INFO_NAME = "cmc.json"


def save_delta(model: Any, tokenizer: Any, out_dir: str | Path, info: dict[str, Any]) -> Path:
    """Write the delta (safetensors), its tokenizer and ``cmc.json`` atomically, replacing an older one."""
    record = {"format": FORMAT, **info}
    text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"
    return save_model_dir(model, tokenizer, out_dir, overwrite=True, extra_files={INFO_NAME: text})


def delta_folder(spec: str | Path) -> Path:
    """The delta's model folder for ``spec`` (the folder itself, or ``spec/delta`` of a run folder)."""
    path = Path(spec).expanduser()
    if (path / "delta" / "config.json").is_file() and not (path / INFO_NAME).is_file():
        return path / "delta"
    return path


def read_delta_info(folder: str | Path) -> dict[str, Any]:
    """The ``cmc.json`` of a delta folder, checked; ``{}`` when the folder has none."""
    path = Path(folder) / INFO_NAME
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputFileError(path, f"cannot be read as JSON ({err})", fix="re-run delta-train, or delete the file") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise InputFileError(path, f"is not a {FORMAT} file", field="format", fix="re-run delta-train")
    return info


def load_delta(spec: str | Path) -> tuple[Any, Any, dict[str, Any]]:
    """Load ``(model, tokenizer, info)`` of a delta folder or run folder (safetensors only)."""
    folder = delta_folder(spec)
    if not folder.exists():
        raise ModelError(folder, "delta folder not found", fix="give the folder written by `tokmap delta-train --out`")
    info = read_delta_info(folder)
    model, tokenizer = load_model(folder, task="causal-lm")
    return model, tokenizer, info
