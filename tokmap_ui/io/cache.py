"""A content-addressed cache of numpy arrays under ``$TOKMAP_HOME/cache``.

Big derived arrays (kNN graphs, 2-D layouts) are keyed by a hash of *what they were computed
from* (input bytes, shapes, dtypes and the job config), never by a file name, so a changed input
can never be served a stale result and an unchanged one is never recomputed.

Layout: ``<root>/<namespace>/<key[:2]>/<key>/`` holding one ``<name>.npy`` per array and a
``meta.json``. An entry is written in a temporary folder beside it and renamed into place, so a
reader sees a whole entry or none. Arrays are read with ``allow_pickle=False``: a cache folder
cannot smuggle code in. A damaged entry is a miss (and is removed), never an error.

Example:
    >>> import tempfile, numpy as np
    >>> cache = ArrayCache(tempfile.mkdtemp())
    >>> key = content_hash(np.arange(3, dtype=np.float32), {"k": 15})
    >>> _ = cache.put("demo", key, {"xy": np.zeros((3, 2), np.float32)}, meta={"seconds": 1.5})
    >>> cache.get("demo", key)["xy"].shape
    (3, 2)
    >>> cache.meta("demo", key)["seconds"]
    1.5
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CACHE_FORMAT = 1  # bump when the on-disk layout changes; old entries then simply miss
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def default_cache_root() -> Path:
    """``$TOKMAP_HOME/cache`` (``./workspace/cache`` when TOKMAP_HOME is unset)."""
    from tokmap_ui.store.database import workspace_home  # one definition of the workspace folder

    return workspace_home() / "cache"


def _feed(digest: Any, item: Any) -> None:
    """Feed one item into ``digest`` with a type tag, so ``"1"`` and ``1`` hash differently."""
    if isinstance(item, np.ndarray):
        arr = np.ascontiguousarray(item)
        digest.update(f"nd:{arr.dtype.str}:{arr.shape}:".encode())
        digest.update(memoryview(arr).cast("B"))  # no copy for contiguous arrays
    elif hasattr(item, "detach") and hasattr(item, "numpy"):  # a torch tensor, without importing torch
        _feed(digest, item.detach().cpu().contiguous().numpy())
    elif isinstance(item, (bytes, bytearray, memoryview)):
        digest.update(b"b:%d:" % len(item))
        digest.update(item)
    elif isinstance(item, str):
        data = item.encode("utf-8")
        digest.update(b"s:%d:" % len(data))
        digest.update(data)
    elif isinstance(item, (list, tuple)) and any(isinstance(x, np.ndarray) for x in item):
        digest.update(b"seq:%d:" % len(item))
        for x in item:
            _feed(digest, x)
    else:  # numbers, None, dicts, lists of plain values: canonical JSON
        data = json.dumps(item, sort_keys=True, default=str).encode("utf-8")
        digest.update(b"j:%d:" % len(data))
        digest.update(data)


def content_hash(*items: Any) -> str:
    """Hex SHA-256 of arrays, tensors, strings, bytes and JSON-able values, in order.

    Example:
        >>> import numpy as np
        >>> content_hash(np.zeros(2, np.float32)) == content_hash(np.zeros(2, np.float64))
        False
        >>> len(content_hash("a", 1, {"b": [2]}))
        64
    """
    digest = hashlib.sha256(f"tokmap-cache/{CACHE_FORMAT}".encode())
    for item in items:
        _feed(digest, item)
    return digest.hexdigest()


class ArrayCache:
    """Arrays stored by ``(namespace, key)``; see the module docstring for the layout.

    Args:
        root: the cache folder; default ``$TOKMAP_HOME/cache``, resolved when first used so a
            test that changes TOKMAP_HOME gets its own cache.
    """

    def __init__(self, root: str | Path | None = None):
        self._root = Path(root) if root is not None else None

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else default_cache_root()

    def _entry(self, namespace: str, key: str) -> Path:
        if not _NAME.match(namespace) or not re.fullmatch(r"[0-9a-f]{16,128}", key):
            raise ValueError(f"bad cache namespace/key: {namespace!r}/{key!r}")
        return self.root / namespace / key[:2] / key

    def get(self, namespace: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None on a miss (a damaged entry counts as a miss)."""
        entry = self._entry(namespace, key)
        meta_path = entry / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            arrays = {}
            for name in meta["arrays"]:
                if not _NAME.match(name):
                    raise ValueError(name)
                arrays[name] = np.load(entry / f"{name}.npy", allow_pickle=False)
            return arrays
        except (OSError, ValueError, KeyError, TypeError, EOFError):
            # A half-deleted or hand-edited entry: recompute rather than fail the user's job.
            shutil.rmtree(entry, ignore_errors=True)
            return None

    def meta(self, namespace: str, key: str) -> dict[str, Any] | None:
        """The ``meta`` dict given to :meth:`put`, or None on a miss."""
        try:
            data = json.loads((self._entry(namespace, key) / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data.get("meta", {})

    def put(self, namespace: str, key: str, arrays: Mapping[str, np.ndarray],
            meta: Mapping[str, Any] | None = None) -> Path:
        """Store ``arrays`` under ``key`` atomically; an existing entry is kept (same key, same content)."""
        entry = self._entry(namespace, key)
        if (entry / "meta.json").is_file():
            return entry
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.", suffix=".tmp", dir=entry.parent))
        try:
            for name, array in arrays.items():
                if not _NAME.match(name):
                    raise ValueError(f"bad array name {name!r}")
                array = np.asarray(array)
                if array.dtype == object:
                    raise ValueError(f"array {name!r} has dtype object; the cache stores numbers only")
                with open(tmp / f"{name}.npy", "wb") as handle:
                    np.save(handle, array, allow_pickle=False)
                    handle.flush()
                    os.fsync(handle.fileno())
            # meta.json last: its presence marks a complete entry
            (tmp / "meta.json").write_text(json.dumps({"format": CACHE_FORMAT, "arrays": list(arrays),
                                                       "meta": dict(meta or {})}, default=str),
                                           encoding="utf-8")
            if entry.exists() and not (entry / "meta.json").is_file():
                shutil.rmtree(entry, ignore_errors=True)  # debris of an interrupted writer
            try:
                os.rename(tmp, entry)
            except OSError:
                # Another process finished the same entry first (rename onto a non-empty folder
                # fails): theirs is equally good.
                if not (entry / "meta.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return entry

    def clear(self, namespace: str | None = None) -> None:
        """Remove every entry (of one namespace, or all)."""
        target = self.root / namespace if namespace else self.root
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(target)
