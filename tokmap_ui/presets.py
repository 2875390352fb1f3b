"""Language-pair presets on the demo kit: en→nl, en→fy via nl, nl→fy.

A preset names, by their demo-kit names, everything a project needs for one language pair: the
source (a model, or a bare tokenizer), the target tokenizer, the bilingual dictionary (and which
of its columns are the source and target language), the target-language training and
validation text, the held-out pairs and parallel text to evaluate on, and, for a pivot pair,
the pivot hop (the pivot tokenizer and the target–pivot dictionary). :func:`apply_preset`
registers those kit files in a project (reusing what is registered) and selects them; the map
job then builds a pivot map when :func:`pivot_for_job` says the project's selection is a pivot
preset's (``tokmap_ui.workbench``).

Example:
    >>> apply_preset(store, "demo", "en-fy-via-nl")                         # doctest: +SKIP
    >>> selected(store, "demo", Role.TARGET).name, pivot_for_job(store, "demo").tokenizer   # doctest: +SKIP
    ('fy-bpe', '.../assets/tokenizers/nl-bpe')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokmap_ui.errors import ConfigError
from tokmap_ui.project import Role, role_artifacts, select, selected
from tokmap_ui.store import Artifact, Project, Store


@dataclass(frozen=True)
class PivotHop:
    """The first hop of a pivot pair: the target language's tokens onto the pivot language's."""

    tokenizer: str
    """Kit tokenizer of the pivot language (``nl-bpe``)."""
    dictionary: str
    """Kit dictionary with target- and pivot-language columns (``fy-nl``)."""
    pivot_col: str
    """The dictionary's pivot-language column (``nl``)."""
    target_col: str
    """The dictionary's target-language column (``fy``)."""


@dataclass(frozen=True)
class LanguagePreset:
    """One language pair on the demo kit (kit item names; see :mod:`tokmap_ui.io.demo_kit`)."""

    key: str
    label: str
    sources: tuple[str, ...]
    """Preferred sources, first found wins: kit models, ``MiniLM``, or kit tokenizers (a bare tokenizer)."""
    target: str
    """Kit tokenizer of the target language."""
    dictionary: str
    """Kit dictionary from the source language to the target (or, with ``via``, the pivot) language."""
    columns: tuple[str, str]
    """The dictionary's (source-language, target- or pivot-language) columns."""
    train_text: str
    valid_text: str
    eval_pairs: str
    """Kit dictionary of held-out pairs for ``evaluate-map``."""
    eval_parallel: str
    """Kit parallel file for ``eval-retrieval``."""
    via: PivotHop | None = None
    note: str = ""


PRESETS: dict[str, LanguagePreset] = {p.key: p for p in (
    LanguagePreset("en-nl", "English → Dutch", ("tiny-en-gpt2", "MiniLM"), "nl-bpe", "en-nl", ("en", "nl"),
                   "nl/train", "nl/valid", "en-nl.test", "en-nl.test",
                   note="41k FreeDict pairs; the kit's main demo."),
    LanguagePreset("en-fy-via-nl", "English → West Frisian via Dutch", ("tiny-en-gpt2", "MiniLM"), "fy-bpe",
                   "en-nl", ("en", "nl"), "fy/train", "fy/valid", "fy-en.test", "fy-en.test",
                   via=PivotHop("nl-bpe", "fy-nl", "nl", "fy"),
                   note="fy tokens → nl tokens (2,984 fy–nl pairs) → en tokens (41k en–nl pairs), composed."),
    LanguagePreset("nl-fy", "Dutch → West Frisian", ("nl-bpe",), "fy-bpe", "fy-nl", ("nl", "fy"),
                   "fy/train", "fy/valid", "fy-nl.test", "fy-en.test",
                   note="The kit has no Dutch model: the source is the Dutch tokenizer (map and explore; convert a "
                        "Dutch model of your own to fine-tune)."),
)}


def preset_choices() -> list[tuple[str, str]]:
    """``(label, key)`` pairs for a dropdown."""
    return [(p.label, p.key) for p in PRESETS.values()]


def get_preset(key: str) -> LanguagePreset:
    """The preset ``key``, or ConfigError listing the keys."""
    try:
        return PRESETS[key]
    except KeyError:
        raise ConfigError(f"no language-pair preset '{key}'. Fix: choose one of {', '.join(PRESETS)}.") from None


def _kit_path(kind: str, name: str) -> tuple[Path, str]:
    """(path, artifact kind) of a kit item: ``model``, ``tokenizer``, ``dictionary`` or ``corpus``."""
    from tokmap_ui.errors import ModelError
    from tokmap_ui.io.demo_kit import demo_kit_paths, minilm_path

    kit = demo_kit_paths()
    if kind == "source":
        if name == "MiniLM":
            try:
                return minilm_path(), "model"
            except ModelError:
                return Path("/nonexistent/minilm"), "model"  # optional package missing: skipped
        if name in kit.models:
            return kit.models[name], "model"
        return kit.tokenizers[name], "tokenizer"
    table = {"tokenizer": kit.tokenizers, "dictionary": kit.dicts, "corpus": kit.text}[kind]
    return table[name], kind


def _register(store: Store, project: Any, role: Role, name: str, path: Path, kind: str,
              columns: tuple[str, str] | None = None) -> Artifact:
    """The project's artifact of ``role`` at ``path`` (with these dictionary columns), registered if new; selected."""
    path = path.resolve()
    for artifact in role_artifacts(store, project, role):
        if Path(artifact.path).resolve() == path and tuple(artifact.meta.get("columns") or ()) == tuple(columns or ()):
            select(store, project, role, artifact.id)
            return artifact
    meta: dict[str, Any] = {"role": role.value, "bundled": True}
    label = name
    if columns:
        meta["columns"] = list(columns)
        label = f"{name} ({columns[0]} → {columns[1]})"
    artifact = store.add_artifact(project, kind, label, path, meta=meta)
    select(store, project, role, artifact.id)
    return artifact


def apply_preset(store: Store, project: Any, key: str) -> Project:
    """Register the preset's kit files in ``project``, select them, and remember the preset (and its pivot).

    Raises:
        ConfigError: unknown preset, or a kit file it needs is missing (the message says how to rebuild).
    """
    preset = get_preset(key)
    found = [(name, *_kit_path("source", name)) for name in preset.sources]
    source = next((item for item in found if item[1].exists()), None)
    needed = [(Role.TARGET, preset.target, *_kit_path("tokenizer", preset.target), None),
              (Role.DICTIONARY, preset.dictionary, *_kit_path("dictionary", preset.dictionary), preset.columns),
              (Role.TRAIN_TEXT, preset.train_text, *_kit_path("corpus", preset.train_text), None),
              (Role.VALID_TEXT, preset.valid_text, *_kit_path("corpus", preset.valid_text), None)]
    missing = [str(path) for _, _, path, _, _ in needed if not path.exists()]
    if source is None or missing:
        what = missing[0] if missing else f"a source ({', '.join(preset.sources)})"
        raise ConfigError(f"the demo kit lacks {what} for the '{preset.label}' preset. Fix: run "
                          "`python scripts/build_demo_kit.py` (or restore assets/ from git).")
    _register(store, project, Role.SOURCE, source[0], source[1], source[2])
    for role, name, path, kind, columns in needed:
        _register(store, project, role, name, path, kind, columns)
    settings = dict(store.get_project(project).settings)
    settings["preset"] = preset.key
    settings.pop("pivot", None)
    if preset.via is not None:
        pivot_tok, _ = _kit_path("tokenizer", preset.via.tokenizer)
        pivot_dict, _ = _kit_path("dictionary", preset.via.dictionary)
        settings["pivot"] = {"tokenizer": str(pivot_tok.resolve()), "dictionary": str(pivot_dict.resolve()),
                             "src_col": preset.via.pivot_col, "tgt_col": preset.via.target_col,
                             "target": str(_kit_path("tokenizer", preset.target)[0].resolve()),
                             "name": preset.via.tokenizer}
    return store.update_project_settings(project, settings)


@dataclass(frozen=True)
class PivotSpec:
    """The pivot hop of a map job, as paths: the job loads them (``explore-map --via-tokenizer ...``)."""

    tokenizer: str
    dictionary: str
    src_col: str
    tgt_col: str
    name: str = "pivot"

    def argv(self) -> list[str]:
        return ["--via-tokenizer", self.tokenizer, "--via-dictionary", self.dictionary,
                "--via-src-col", self.src_col, "--via-tgt-col", self.tgt_col]


def pivot_for_job(store: Store, project: Any) -> PivotSpec | None:
    """The project's pivot hop when its selected target tokenizer is the pivot preset's; else None.

    A user who picks another target after applying the preset gets a direct map again.
    """
    pivot = store.get_project(project).settings.get("pivot")
    target = selected(store, project, Role.TARGET)
    if not pivot or target is None or Path(target.path).resolve() != Path(pivot["target"]).resolve():
        return None
    return PivotSpec(pivot["tokenizer"], pivot["dictionary"], pivot["src_col"], pivot["tgt_col"],
                     pivot.get("name", "pivot"))


def dictionary_columns(artifact: Artifact | None) -> tuple[str, str] | None:
    """The (source, target) columns recorded for a dictionary artifact by a preset, or None (file order)."""
    columns = (artifact.meta.get("columns") if artifact is not None else None) or None
    return (str(columns[0]), str(columns[1])) if columns and len(columns) == 2 else None


def preset_markdown(key: str | None) -> str:
    """A short description of a preset for the Project tab."""
    if not key or key not in PRESETS:
        return "*Pick a language pair to fill every input from the demo kit.*"
    p = PRESETS[key]
    parts = [f"**{p.label}** — source: {' or '.join(p.sources)}; target: `{p.target}`; dictionary: "
             f"`{p.dictionary}` ({p.columns[0]} → {p.columns[1]})"]
    if p.via:
        parts.append(f"pivot: `{p.via.tokenizer}` with `{p.via.dictionary}` ({p.via.pivot_col} → {p.via.target_col}); "
                     "the map job composes the two hops")
    parts.append(f"text: `{p.train_text}`, `{p.valid_text}`; evaluate on `{p.eval_pairs}` and `{p.eval_parallel}`")
    return "; ".join(parts) + (f". {p.note}" if p.note else ".")
