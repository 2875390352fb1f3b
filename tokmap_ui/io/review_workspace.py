"""Token maps in the workspace: register a generated map for review, open it, adopt a re-run (issue 8).

The generated map file is copied into the workspace (``projects/<id>/token-map/``) under a
name that carries its hash, so the base of a review never changes behind the reviewers' backs;
opening checks the hash again. The reviewed state lives in the store's event log, never in
the file.

Example:
    >>> # record = register_map_file(store, "nl-map.json", "demo")
    >>> # reviewed = open_reviewed_map(store, record.id)
    >>> # conflicts = rerun_map(store, record.id, "nl-map-v2.json")
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from tokmap_ui.errors import StoreError, TokenMapError
from tokmap_ui.io.files import require_file, sha256_file
from tokmap_ui.io.tokenmaps import load_token_map
from tokmap_ui.mapping.review import RERUN_REVIEWER, ReviewedMap
from tokmap_ui.mapping.tokenmap import TokenMap, VocabRef
from tokmap_ui.store import KIND_TOKEN_MAP, Artifact, Store, TokenMapRecord


def _check_generated(token_map: TokenMap, path: Path) -> None:
    reviewed = [e.target_id for e in token_map.entries if e.status != "auto" or e.comment]
    if reviewed:
        raise TokenMapError(path, f"carries review decisions ({len(reviewed)} entries, e.g. target "
                                  f"{reviewed[0]}); the base of a review must be a generated map",
                            fix="register the generated map, then `review import` this file into it")


def _save_copy(store: Store, project: Any, path: Path, meta: dict[str, Any]) -> Artifact:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    gz = ".json.gz" if path.name.endswith(".gz") else ".json"
    stem = re.sub(r"[^\w.\-+]", "_", path.name[: -len(gz)] if path.name.endswith(gz) else path.stem) or "map"
    return store.save_artifact(project, KIND_TOKEN_MAP, f"{stem}-{digest[:12]}{gz}", data,
                               meta={"source_file": str(path.resolve()), **meta})


def register_map_file(store: Store, path: str | Path, project: str | int, *, name: str | None = None,
                      source_tokenizer: str | None = None, target_tokenizer: str | None = None,
                      create_project: bool = True) -> TokenMapRecord:
    """Copy a generated token-map file into the workspace and make it reviewable.

    Args:
        project: project name or id (created when missing and ``create_project``).
        name: the map's name in the project (default: the file's name).
        source_tokenizer, target_tokenizer: remembered so exports can show token strings.

    Raises:
        TokenMapError: not a valid token map, or it already carries review decisions.
        StoreError: the project has a map of that name.
    """
    path = require_file(path, "token-map file")
    token_map = load_token_map(path)
    _check_generated(token_map, path)
    if create_project and isinstance(project, str) and not any(p.name.lower() == project.lower()
                                                               for p in store.list_projects()):
        store.create_project(project)
    meta = {"entries": len(token_map.entries), "source_tokenizer": source_tokenizer,
            "target_tokenizer": target_tokenizer}
    artifact = _save_copy(store, project, path, meta)
    default = path.name.split(".json")[0] or path.stem
    return store.add_token_map(artifact, method=token_map.kind, target=token_map.target.to_dict(),
                               source=token_map.source.to_dict(), name=name or default)


# Parsed base maps by content hash (at most two): the UI re-opens a map on every request, and a
# TokenMap is immutable, so sharing one is safe. The file's hash is still checked on each open.
_BASES: OrderedDict[str, TokenMap] = OrderedDict()
_BASES_KEPT = 2


def load_base_map(store: Store, map_id: int) -> TokenMap:
    """The generated map a stored map is based on, after checking its file still has its hash."""
    record = store.get_token_map(map_id)
    artifact = store.get_artifact(record.artifact_id)
    if not artifact.path.is_file():
        raise StoreError(f"token map {map_id} ('{record.name}'): its generated file {artifact.path} is missing. "
                         "Fix: restore the workspace folder from a backup, or register the map again.")
    if sha256_file(artifact.path) != artifact.sha256:
        raise StoreError(f"token map {map_id} ('{record.name}'): {artifact.path} changed after it was registered "
                         "(its SHA-256 differs). Fix: restore the original file; to adopt a new map use "
                         "`review rerun`.")
    if artifact.sha256 in _BASES:
        _BASES.move_to_end(artifact.sha256)
        return _BASES[artifact.sha256]
    token_map = load_token_map(artifact.path)
    _BASES[artifact.sha256] = token_map
    while len(_BASES) > _BASES_KEPT:
        _BASES.popitem(last=False)
    return token_map


def open_reviewed_map(store: Store, map_id: int, as_of: int | None = None) -> ReviewedMap:
    """The reviewed map (generated base + every decision) of a stored map; ``as_of`` = a read-only past view."""
    return ReviewedMap(store, map_id, load_base_map(store, map_id), as_of=as_of)


def rerun_map(store: Store, map_id: int, path: str | Path, reviewer: str = RERUN_REVIEWER) -> list[int]:
    """Adopt a re-generated map file: keep every decision, flag conflicts, then switch the base.

    Conflict events are written before the base is switched, so a crash in between leaves the
    old base with the conflicts marked, and running the same re-run again finishes the job.
    Returns the target ids in conflict.
    """
    path = require_file(path, "token-map file")
    new_base = load_token_map(path)
    _check_generated(new_base, path)
    reviewed = open_reviewed_map(store, map_id)
    conflicts = reviewed.merge_rerun(new_base, reviewer)
    record = store.get_token_map(map_id)
    old_meta = store.get_artifact(record.artifact_id).meta
    meta = {k: old_meta.get(k) for k in ("source_tokenizer", "target_tokenizer")}
    artifact = _save_copy(store, record.project_id, path, {"entries": len(new_base.entries), **meta})
    store.set_token_map_artifact(map_id, artifact)
    return conflicts


def load_effective_map(store: Store, map_id: int, rejected: str = "unmapped",
                       fallback: str | Path | None = None, as_of: int | None = None) -> TokenMap:
    """The reviewed map that conversion and CMC decoding should consume (see ``ReviewedMap.effective_token_map``).

    Args:
        rejected: ``unmapped`` (default), ``proposal``, or ``fallback-map`` (needs ``fallback``).
        fallback: a token-map file whose entries replace rejected ones (e.g. an FVT or mean baseline).
        as_of: use the decisions as they were just after this event.
    """
    other = None if fallback is None else load_token_map(fallback)
    if other is not None and rejected == "unmapped":
        rejected = "fallback-map"
    return open_reviewed_map(store, map_id, as_of).effective_token_map(rejected, other)


def map_tokenizer_paths(store: Store, map_id: int) -> dict[str, str | None]:
    """The tokenizer paths remembered at registration: ``{"source_tokenizer", "target_tokenizer"}``."""
    meta = store.get_artifact(store.get_token_map(map_id).artifact_id).meta
    return {key: meta.get(key) for key in ("source_tokenizer", "target_tokenizer")}


def vocabulary_tokens(spec: str | Path, expected: VocabRef | dict, side: str) -> tuple[Sequence[str], Any]:
    """Load a tokenizer, check it is the map's ``side`` vocabulary, return ``(raw tokens, tokenizer)``."""
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.vocab import Vocabulary

    tokenizer = load_tokenizer(spec)
    vocab = Vocabulary.from_tokenizer(tokenizer)
    want = expected if isinstance(expected, dict) else expected.to_dict()
    if (len(vocab), vocab.sha256) != (int(want["vocab_size"]), want["sha256"]):
        raise TokenMapError(spec, f"is not the map's {side} tokenizer ({len(vocab)} tokens, sha256 "
                                  f"{vocab.sha256[:12]}…; the map expects '{want['name']}', {want['vocab_size']} "
                                  f"tokens, sha256 {str(want['sha256'])[:12]}…)",
                            fix=f"give the {side} tokenizer the map was built with")
    return vocab.tokens, tokenizer
