"""What the app keeps between clicks: per-session handles and one shared cache of big objects.

* :class:`Session` lives in a ``gr.State`` (one per browser tab, dropped an hour after it
  closes): small things only (project name, open map id, reviewer name, the entry on screen,
  the rows of the queue page, the comparison's job ids). Two sessions never share it, so one
  user's uploads and choices are invisible to another.
* :class:`ObjectCache` is app-wide and holds big read-only objects (tokenizers, vocabularies,
  token maps, layouts, neighbour indexes, loaded models), keyed by the *content hash* of the
  file they come from (the store's artifact sha256), so an unchanged file is loaded once for
  every session and a changed one can never be served stale.
* :class:`AppContext` bundles the store, the cache and the folders, and has the loaders.

Example:
    >>> ctx = AppContext.open(tmp_home)                      # doctest: +SKIP
    >>> view = ctx.map_view(map_id)                          # doctest: +SKIP
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tokmap_ui.project import DEMO_PROJECT
from tokmap_ui.store import Artifact, Store

T = TypeVar("T")


class ObjectCache:
    """A thread-safe LRU of built objects; each key is built once even under concurrent requests."""

    def __init__(self, max_items: int = 32):
        self.max_items = max_items
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}

    def get(self, key: str, build: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._items:
                    return self._items[key]
            try:
                value = build()
            finally:
                with self._lock:
                    self._building.pop(key, None)
            with self._lock:
                self._items[key] = value
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
            return value

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items


@dataclass
class Session:
    """One browser session's small state (kept in ``gr.State``; deep-copied per session)."""

    project: str = DEMO_PROJECT
    map_id: int | None = None
    map_job: int | None = None
    reviewer: str = ""
    entry: int | None = None
    queue: list[int] = field(default_factory=list)
    init_jobs: list[int] = field(default_factory=list)
    delta_job: int | None = None
    job: int | None = None  # the job selected in the Jobs tab
    seen: dict[str, Any] = field(default_factory=dict)  # what timer ticks last sent, to skip unchanged resends


@dataclass
class MapView:
    """Everything the explorer needs about one stored map (shared, read-mostly)."""

    map_id: int
    reviewed: Any                 # ReviewedMap (its writes go through ``lock``)
    source_tokens: tuple[str, ...]
    target_tokens: tuple[str, ...]
    layout: Any | None            # Projection, or None when the map has no layout
    lock: threading.Lock = field(default_factory=threading.Lock)
    extras: dict[str, Any] = field(default_factory=dict)  # lazily built: neighbour indexes, frequencies


@dataclass
class AppContext:
    """The store, the shared cache and the folders of one running app."""

    store: Store
    cache: ObjectCache
    exports: Path  # downloads (model zips) are written here

    @classmethod
    def open(cls, home: str | Path | None = None) -> AppContext:
        import tempfile

        store = Store.open(home)
        # Downloads go to the system temp folder, which Gradio serves without widening allowed_paths
        # to the whole workspace.
        return cls(store, ObjectCache(), Path(tempfile.mkdtemp(prefix="tokmap-exports-")))

    # ------------------------------------------------------------------ loaders (cached by content hash)
    def tokenizer(self, artifact: Artifact) -> Any:
        from tokmap_ui.io.tokenizers import load_tokenizer

        return self.cache.get(f"tokenizer:{artifact.sha256}", lambda: load_tokenizer(artifact.path))

    def vocab(self, artifact: Artifact) -> Any:
        from tokmap_ui.vocab import Vocabulary

        return self.cache.get(f"vocab:{artifact.sha256}",
                              lambda: Vocabulary.from_tokenizer(self.tokenizer(artifact), name=artifact.name))

    def summary(self, artifact: Artifact) -> str:
        """The inspection report of an artifact, as text (cached)."""
        from tokmap_ui.ui.render import inspection_text

        return self.cache.get(f"summary:{artifact.sha256}:{artifact.kind}", lambda: inspection_text(artifact))

    def model(self, path: str | Path, sha: str, task: str = "causal-lm") -> tuple[Any, Any]:
        from tokmap_ui.io.models import load_model

        return self.cache.get(f"model:{sha}:{task}", lambda: load_model(path, task=task))

    def map_view(self, map_id: int) -> MapView:
        """The map's view; its review state is refreshed from the store on every call."""
        record = self.store.get_token_map(map_id)
        artifact = self.store.get_artifact(record.artifact_id)
        view = self.cache.get(f"map:{map_id}:{artifact.sha256}", lambda: self._build_view(map_id))
        with view.lock:
            view.reviewed.refresh()
        return view

    def _build_view(self, map_id: int) -> MapView:
        from tokmap_ui.io.review_workspace import map_tokenizer_paths, open_reviewed_map

        reviewed = open_reviewed_map(self.store, map_id)
        paths = map_tokenizer_paths(self.store, map_id)
        source_tokens = self._tokens(paths.get("source_tokenizer"), reviewed.base.source, "source")
        target_tokens = self._tokens(paths.get("target_tokenizer"), reviewed.base.target, "target")
        layout = None
        layouts = [a for a in self.store.list_artifacts(reviewed.record.project_id, "layout")
                   if a.meta.get("map_id") == map_id]
        if layouts:
            from tokmap_ui.io.workspace_files import load_layout

            layout = load_layout(layouts[-1].path)
        return MapView(map_id, reviewed, source_tokens, target_tokens, layout,
                       extras={"source_path": paths.get("source_tokenizer")})

    def _tokens(self, spec: str | None, ref: Any, side: str) -> tuple[str, ...]:
        """Readable token strings of one side of a map (``#id`` placeholders when its tokenizer is unknown)."""
        from tokmap_ui.io.review_workspace import vocabulary_tokens
        from tokmap_ui.ui.render import readable_tokens
        from tokmap_ui.vocab import Vocabulary

        if not spec:
            return tuple(f"#{i}" for i in range(ref.vocab_size))

        def build() -> tuple[str, ...]:
            _, tokenizer = vocabulary_tokens(spec, ref, side)
            return readable_tokens(Vocabulary.from_tokenizer(tokenizer))

        return self.cache.get(f"tokens:{ref.sha256}", build)
