"""Training checkpoints without pickle: weights, optimizer, scheduler and RNG state.

A checkpoint is a folder ``<run>/checkpoints/step-000050/`` holding

* ``model.safetensors`` – the model's parameters (tied weights stored once);
* ``optimizer.safetensors`` – every tensor of the optimizer state, keyed ``"<param>/<name>"``;
* ``rng-<rank>.safetensors`` – torch CPU (and CUDA) generator states of each process;
* ``state.json`` – step, optimizer hyper-parameters and scalars, scheduler state, Python RNG.

Everything is safetensors or JSON, so loading never unpickles anything (``torch.load`` is not
used at all). The folder is written under a temporary name and renamed into place, so a
crash leaves either a complete checkpoint or none; :func:`latest_checkpoint` only sees
complete ones.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from tokmap_ui.errors import InputFileError

_STEP_DIR = re.compile(r"step-(\d+)$")
FORMAT = "tokmap.checkpoint/1"


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    """``run_dir/checkpoints/step-000123``."""
    return Path(run_dir) / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first, as ``(step, folder)``."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.fullmatch(path.name)
        if match and (path / "state.json").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def _optimizer_split(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}/{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_join(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split("/", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in rest["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def _rng_tensors() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, *, rank: int = 0, is_main: bool = True, extra: dict[str, Any] | None = None,
                    keep: int = 2) -> Path:
    """Write the checkpoint for ``step`` atomically; keep only the newest ``keep`` (0 = all).

    In a multi-process run every rank calls this (each saves its RNG state beside the main
    one's files); the caller must synchronise the processes before and after.
    """
    final = checkpoint_dir(run_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(final.name + ".partial")
    if is_main:
        shutil.rmtree(staging, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        save_model(model, str(tmp / "model.safetensors"))
        tensors, rest = _optimizer_split(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        state = {"format": FORMAT, "step": step, "optimizer": rest,
                 "scheduler": scheduler.state_dict() if scheduler is not None else None,
                 "python_rng": _py_rng_to_json(random.getstate()), "extra": extra or {}}
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        save_file(_rng_tensors(), str(tmp / f"rng-{rank}.safetensors"))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        if keep > 0:
            for _, old in list_checkpoints(run_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    else:
        save_file(_rng_tensors(), str(final / f"rng-{rank}.safetensors"))
    return final


def _py_rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def read_checkpoint_state(folder: str | Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint folder, checked."""
    path = Path(folder) / "state.json"
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputFileError(path, f"cannot be read as a checkpoint ({err})",
                             fix="delete this checkpoint folder and resume from an older one") from None
    if state.get("format") != FORMAT:
        raise InputFileError(path, f"is not a {FORMAT} checkpoint", field="format",
                             fix="resume only runs written by tokmap finetune")
    return state


def load_checkpoint(folder: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, *, rank: int = 0) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNG state in place; return ``state.json``."""
    folder = Path(folder)
    state = read_checkpoint_state(folder)
    try:
        missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
    except (OSError, RuntimeError) as err:
        raise InputFileError(folder / "model.safetensors", f"does not fit the model ({str(err).splitlines()[0]})",
                             fix="resume with the same --model as the original run") from None
    if unexpected or [m for m in missing if not m.endswith("position_ids")]:
        raise InputFileError(folder / "model.safetensors", "has different tensors from the model",
                             fix="resume with the same --model as the original run")
    device = next(model.parameters()).device
    tensors = load_file(str(folder / "optimizer.safetensors"), device=str(device))
    optimizer.load_state_dict(_optimizer_join(tensors, state["optimizer"]))
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    rng_file = folder / f"rng-{rank}.safetensors"
    if rng_file.is_file():
        rng = load_file(str(rng_file))
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    return state
