"""Token-map files (``tokmap.token-map/1``): save, strict load, and an on-disk cache.

The file is JSON, gzip-compressed when the name ends in ``.gz``, always written atomically. It is
written one entry per line so that ``diff`` and ``grep`` work on it::

    {"format": "tokmap.token-map/1", "kind": "pm-mined",
     "target": {"name": "mistral", "vocab_size": 32000, "sha256": "…"},
     "source": {"name": "llama-2", "vocab_size": 32000, "sha256": "…"},
     "params": {...}, "stats": {...},
     "entries": [
    {"target_id":0,"target_token":"<unk>","sources":[[0,1.0]],"method":"special","evidence":[],"status":"auto"},
    …]}

Loading is strict: every problem is a :class:`~tokmap_ui.errors.TokenMapError` naming the file,
the entry (index and target id) and the field, and saying what to do.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tokmap_ui.errors import TokenMapError
from tokmap_ui.io.files import atomic_write_bytes, require_file
from tokmap_ui.mapping.tokenmap import FORMAT, METHODS, STATUSES, MapEntry, TokenMap, VocabRef, paused_gc

_REQUIRED = ("format", "kind", "target", "source", "params", "entries")
_OPTIONAL = ("stats",)
_ENTRY_REQUIRED = ("target_id", "target_token", "sources", "method")
_ENTRY_OPTIONAL = ("evidence", "status", "comment")


def token_map_to_json(token_map: TokenMap) -> str:
    """The file text: a header, then one compact entry per line."""
    head = {"format": FORMAT, "kind": token_map.kind, "target": token_map.target.to_dict(),
            "source": token_map.source.to_dict(), "params": token_map.params, "stats": token_map.stats}

    def dump(value: Any) -> str:
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError as err:  # NaN or inf in params/stats/weights
            raise TokenMapError(None, f"token map cannot be written as JSON: {err}",
                                fix="replace NaN/infinite numbers before saving") from None

    header = dump(head)[:-1]  # drop the closing brace: the entries follow
    with paused_gc():
        body = ",\n".join(dump(e.to_dict()) for e in token_map.entries)
    return f'{header},\n"entries":[\n{body}\n]}}\n'


def save_token_map(token_map: TokenMap, path: str | Path) -> Path:
    """Write ``token_map`` to ``path`` atomically (gzip when the name ends in ``.gz``); return the path."""
    path = Path(path)
    data = token_map_to_json(token_map).encode("utf-8")
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)  # mtime=0: same map, same bytes
    atomic_write_bytes(path, data)
    return path


def load_token_map(path: str | Path) -> TokenMap:
    """Read and strictly validate a token-map file (plain or gzip JSON).

    Raises:
        TokenMapError: not a token map, unsupported version, a missing or malformed field, an id
            outside a vocabulary, or a negative/non-finite weight; the message names the entry.
    """
    path = require_file(path, "token-map file")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise TokenMapError(path, f"is a damaged gzip file ({err})", fix="re-export the token map") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise TokenMapError(path, "is not a tokmap token map (not UTF-8 JSON text)",
                            fix="give a .json or .json.gz file written by tokmap") from None
    with paused_gc():
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise TokenMapError(path, f"is not valid JSON ({err.msg}, column {err.colno})", line=err.lineno,
                                fix="give a .json or .json.gz file written by tokmap") from None
        return token_map_from_dict(data, path)


def token_map_from_dict(data: Any, origin: str | Path | None = None) -> TokenMap:
    """Validate a parsed token-map object strictly and build the :class:`TokenMap` (``origin`` names it in errors)."""
    if not isinstance(data, dict) or "format" not in data:
        raise TokenMapError(origin, "is not a tokmap token map (no 'format' field)",
                            fix="give a file written by tokmap (format tokmap.token-map/1)")
    fmt = data["format"]
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("tokmap.token-map/"):
            problem = f"has unsupported token-map version '{fmt}' (this tokmap reads '{FORMAT}')"
            fix = "upgrade tokmap or re-export the map with this version"
        else:
            problem, fix = f"is not a tokmap token map (format {fmt!r})", f"give a file with format '{FORMAT}'"
        raise TokenMapError(origin, problem, fix=fix)
    for key in _REQUIRED:
        if key not in data:
            raise TokenMapError(origin, f"lacks the required field '{key}'", field=key,
                                fix="re-export the map with tokmap, or add the field")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise TokenMapError(origin, f"has unknown field '{unknown[0]}'", field=unknown[0],
                            fix=f"remove it; allowed fields are {', '.join(_REQUIRED + _OPTIONAL)}")
    if not isinstance(data["kind"], str) or not data["kind"]:
        raise TokenMapError(origin, "'kind' must be a non-empty string", field="kind")
    target = _vocab_ref(data["target"], "target", origin)
    source = _vocab_ref(data["source"], "source", origin)
    for key in ("params", "stats"):
        if not isinstance(data.get(key, {}), dict):
            raise TokenMapError(origin, f"'{key}' must be a JSON object", field=key)
    items = data["entries"]
    if not isinstance(items, list):
        raise TokenMapError(origin, "'entries' must be a list", field="entries")
    if len(items) != target.vocab_size:
        raise TokenMapError(origin, f"has {len(items)} entries but target '{target.name}' has "
                                    f"{target.vocab_size} tokens", field="entries",
                            fix="give exactly one entry per target token, in target-id order")
    entries = tuple(_entry(item, index, source, origin) for index, item in enumerate(items))
    return TokenMap(data["kind"], target, source, data["params"], entries, data.get("stats") or {})


def _vocab_ref(value: Any, key: str, origin: str | Path | None) -> VocabRef:
    if not isinstance(value, dict):
        raise TokenMapError(origin, f"'{key}' must be an object with name, vocab_size and sha256", field=key)
    for name, kind in (("name", str), ("vocab_size", int), ("sha256", str)):
        item = value.get(name)
        if not isinstance(item, kind) or isinstance(item, bool) or (kind is int and item < 0):
            raise TokenMapError(origin, f"'{key}.{name}' is missing or not a {'count' if kind is int else 'string'}",
                                field=f"{key}.{name}", fix="re-export the map with tokmap")
    return VocabRef(value["name"], value["vocab_size"], value["sha256"])


def _entry(item: Any, index: int, source: VocabRef, origin: str | Path | None) -> MapEntry:
    """One entry, checked field by field (hot path: 150k calls; errors go through :func:`_entry_error`)."""
    if type(item) is not dict:
        raise _entry_error(item, index, "", "is not a JSON object", origin)
    if len(item) != 6 or "evidence" not in item or "status" not in item or "comment" in item:  # uncommon shape
        for key in _ENTRY_REQUIRED:
            if key not in item:
                raise _entry_error(item, index, key, f"lacks the required field '{key}'", origin)
        for key in item:
            if key not in _ENTRY_REQUIRED and key not in _ENTRY_OPTIONAL:
                raise _entry_error(item, index, key, f"has unknown field '{key}'", origin,
                                   f"allowed fields are {', '.join(_ENTRY_REQUIRED + _ENTRY_OPTIONAL)}")
    tid = item["target_id"]
    if type(tid) is not int or tid != index:
        raise _entry_error(item, index, "target_id", f"target_id must be {index} (entries are in target-id order)",
                           origin)
    token = item["target_token"]
    if type(token) is not str:
        raise _entry_error(item, index, "target_token", "target_token must be a string", origin)
    sources = item["sources"]
    if type(sources) is not list:
        raise _entry_error(item, index, "sources", "sources must be a list of [source_id, weight] pairs", origin)
    size = source.vocab_size
    pairs = []
    for pair in sources:
        if type(pair) is not list or len(pair) != 2:
            raise _entry_error(item, index, "sources", f"{pair!r} is not a [source_id, weight] pair", origin)
        sid, weight = pair
        if type(sid) is not int or not 0 <= sid < size:
            raise _entry_error(item, index, "sources", f"source id {sid!r} is outside the source vocabulary "
                               f"'{source.name}' (size {size})", origin, "use ids of the source tokenizer")
        if type(weight) is not float:
            if type(weight) is not int:
                raise _entry_error(item, index, "sources", f"weight {weight!r} for source {sid} is not a number",
                                   origin)
            weight = float(weight)
        if not 0.0 <= weight < math.inf:  # also false for NaN
            raise _entry_error(item, index, "sources", f"weight {weight!r} for source {sid} is not a finite "
                                                       "number ≥ 0", origin)
        pairs.append((sid, weight))
    method = item["method"]
    if method not in METHODS:
        raise _entry_error(item, index, "method", f"unknown method {method!r}", origin,
                           f"use one of {', '.join(sorted(METHODS))}")
    status = item.get("status", "auto")
    if status not in STATUSES:
        raise _entry_error(item, index, "status", f"unknown status {status!r}", origin,
                           f"use one of {', '.join(sorted(STATUSES))}")
    evidence = item.get("evidence", ())
    if type(evidence) is not list and evidence != ():
        raise _entry_error(item, index, "evidence", "evidence must be a list", origin)
    comment = item.get("comment", "")
    if type(comment) is not str:
        raise _entry_error(item, index, "comment", "comment must be a string", origin)
    return MapEntry(tid, token, tuple(pairs), method, tuple(evidence), status, comment)


def _entry_error(item: Any, index: int, field: str, problem: str, origin: str | Path | None,
                 fix: str | None = None) -> TokenMapError:
    tid = item.get("target_id") if isinstance(item, dict) else None
    return TokenMapError(origin, f"entry {index} (target_id {tid}): {problem}",
                         field=f"entries[{index}].{field}" if field else f"entries[{index}]", fix=fix)


# ---------------------------------------------------------------------------- cache

def default_cache_dir() -> Path:
    """``$TOKMAP_HOME/cache/token-maps`` (``TOKMAP_HOME`` defaults to ``./workspace``)."""
    from tokmap_ui.store.database import workspace_home  # one definition of the workspace folder

    return workspace_home() / "cache" / "token-maps"


def cache_key(kind: str, target: VocabRef, source: VocabRef, params: dict) -> str:
    """Hex digest naming a map by method, both vocabularies' hashes and the config."""
    blob = json.dumps({"format": FORMAT, "kind": kind, "target": [target.vocab_size, target.sha256],
                       "source": [source.vocab_size, source.sha256], "params": params},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def cached_token_map(kind: str, target: VocabRef, source: VocabRef, params: dict,
                     build: Callable[[], TokenMap], cache_dir: str | Path | None = None) -> TokenMap:
    """Return the cached map for this (kind, vocabularies, params), or ``build()`` it and cache it.

    A cache file that is damaged or describes something else is rebuilt, never trusted.
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = folder / f"{kind}-{cache_key(kind, target, source, params)[:32]}.json.gz"
    if path.is_file():
        try:
            cached = load_token_map(path)
        except (TokenMapError, OSError):
            cached = None
        same = lambda a, b: (a.vocab_size, a.sha256) == (b.vocab_size, b.sha256)  # noqa: E731
        if (cached is not None and cached.kind == kind and same(cached.target, target)
                and same(cached.source, source) and cached.params == json.loads(json.dumps(params))):
            if cached.target != target or cached.source != source:  # same tokens under another name
                cached = dataclasses.replace(cached, target=target, source=source)
            return cached
    token_map = build()
    save_token_map(token_map, path)
    return token_map
