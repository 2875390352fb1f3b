"""Files the app writes into the workspace: imported uploads, trained tokenizers, map layouts, JSONL.

Everything is written atomically (a temporary sibling, then a rename), so a crash never leaves a
half-written tokenizer, layout or data file under its real name.

* :func:`import_input`: copy an uploaded file into the workspace, or safely unzip an uploaded
  folder archive (uploads live in Gradio's temporary cache, which is cleaned).
* :func:`save_tokenizer_dir`: a trained tokenizer as an HF tokenizer folder.
* :func:`save_layout` / :func:`load_layout`: a token-map layout (:class:`~tokmap_ui.projection.Projection`)
  as ``.npz`` (float32 coordinates, uint8 sides, int64 ids, its content key).
* :func:`write_jsonl`: records as JSON lines (e.g. the demo's delta-training data).

Example:
    >>> save_tokenizer_dir(tokenizer, "workspace/projects/1/tokenizer/nl-16k")   # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from tokmap_ui.errors import InputFileError
from tokmap_ui.io.archives import safe_extract_zip
from tokmap_ui.io.files import atomic_write_bytes, atomic_write_text, refuse_pickle, require_file

LAYOUT_FORMAT = "tokmap.layout/1"


def _free(dest: Path) -> Path:
    if dest.exists():
        raise InputFileError(dest, "already exists", fix="choose another name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest


def import_input(path: str | Path, dest: str | Path) -> Path:
    """Copy the file or folder ``path`` to ``dest`` (a new path), or unzip a ``.zip`` into the new folder ``dest``.

    Returns the imported file or folder, or the folder holding the archive's content. Symbolic
    links inside a folder are not followed (they are skipped), so a folder cannot smuggle in files
    from elsewhere.

    Raises:
        InputFileError / UnsafeFileError: missing or empty input, pickles, unsafe or corrupt zips.
    """
    if Path(path).is_dir():
        return _copy_folder(Path(path), _free(Path(dest)))
    source = require_file(path, "uploaded file")
    refuse_pickle(source)
    target = _free(Path(dest))
    if source.suffix.lower() == ".zip":
        return safe_extract_zip(source, target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _copy_folder(source: Path, target: Path) -> Path:
    from tokmap_ui.io.files import PICKLE_SUFFIXES

    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for file in sorted(p for p in source.rglob("*") if p.is_file() and not p.is_symlink()):
            if file.suffix.lower() in PICKLE_SUFFIXES:
                continue  # never copy pickled weights into the workspace (safetensors only)
            dest = tmp / file.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest)
        tmp.chmod(0o755)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def save_tokenizer_dir(tokenizer: Any, folder: str | Path) -> Path:
    """Save ``tokenizer`` (a transformers fast tokenizer) into the new folder ``folder``.

    Raises:
        InputFileError: ``folder`` exists already (a trained tokenizer never replaces another).
    """
    out = _free(Path(folder))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tokenizer.save_pretrained(str(tmp))
        for item in tmp.iterdir():
            item.chmod(0o644)
        tmp.chmod(0o755)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def save_layout(projection: Any, path: str | Path) -> Path:
    """Write a :class:`~tokmap_ui.projection.Projection` as ``.npz``; returns the path."""
    buffer = io.BytesIO()
    np.savez(buffer, coords=np.asarray(projection.coords, np.float32), sides=np.asarray(projection.sides, np.uint8),
             ids=np.asarray(projection.ids, np.int64), key=np.array(projection.key), method=np.array(projection.method),
             format=np.array(LAYOUT_FORMAT))
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_layout(path: str | Path) -> Any:
    """Read a layout written by :func:`save_layout` (never pickles: ``allow_pickle=False``).

    Raises:
        InputFileError: missing, not a layout, or its arrays disagree in length.
    """
    from tokmap_ui.projection import Projection

    path = require_file(path, "layout file")
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != LAYOUT_FORMAT:
                raise KeyError("format")
            coords, sides, ids = data["coords"], data["sides"], data["ids"]
            key, method = str(data["key"]), str(data["method"])
    except (OSError, ValueError, KeyError) as err:
        raise InputFileError(path, f"is not a tokmap layout ({err})", fix="build the map again") from None
    if not (coords.shape == (len(sides), 2) and len(ids) == len(sides)):
        raise InputFileError(path, "has arrays of different lengths", fix="build the map again")
    return Projection(coords, sides, ids, key, method, from_cache=True)


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write one JSON object per line (UTF-8) atomically; returns the path."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(path, text)
    return Path(path)
