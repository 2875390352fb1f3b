"""A project's inputs: which model, tokenizers, dictionary and texts it works with (and the demo).

A project (a row of the workspace store) collects artifacts, each with a *role* in its meta:
the ``source`` model (or bare tokenizer) to move to a new vocabulary, the ``target`` tokenizer,
the bilingual ``dictionary``, target-language ``train-text`` / ``valid-text`` for fine-tuning,
``host`` models for cross-model control and ``delta-data`` to train a delta on. The project's
settings remember which artifact of each role is *selected*; jobs read their inputs from there.

:func:`ensure_demo_project` registers the offline demo kit (``assets/``) as the project ``demo``:
the tiny English GPT-2 and MiniLM as sources, the Dutch ``nl-bpe`` tokenizer as target, the
English-Dutch dictionary, Dutch text, both tiny English LMs as hosts and an unlearning task (KJV
verses to forget, other English text to retain). It is idempotent and fills in kit parts that
appear later (e.g. models still being trained when the app first started).

Example:
    >>> project = ensure_demo_project(store)                       # doctest: +SKIP
    >>> selected(store, project, Role.TARGET).name                 # doctest: +SKIP
    'nl-bpe'
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from tokmap_ui.errors import ConfigError, InputFileError, StoreError
from tokmap_ui.store import Artifact, Project, Store

DEMO_PROJECT = "demo"
DEMO_DELTA_LINES = 240  # lines of each split in the demo's unlearning data (small: CPU demo)
_SAFE = re.compile(r"[^\w.\-+]+")


class Role(str, Enum):
    """What an artifact is for in its project (stored as ``meta["role"]``)."""

    SOURCE = "source"
    TARGET = "target"
    DICTIONARY = "dictionary"
    TRAIN_TEXT = "train-text"
    VALID_TEXT = "valid-text"
    HOST = "host"
    DELTA_DATA = "delta-data"


# The store's artifact kind for each role (a source may be a model folder or a bare tokenizer).
ROLE_KINDS: dict[Role, tuple[str, ...]] = {
    Role.SOURCE: ("model", "tokenizer"), Role.TARGET: ("tokenizer",), Role.DICTIONARY: ("dictionary",),
    Role.TRAIN_TEXT: ("corpus",), Role.VALID_TEXT: ("corpus",), Role.HOST: ("model",), Role.DELTA_DATA: ("corpus",),
}


@dataclass(frozen=True)
class KitItem:
    """One bundled demo-kit file a project can use: role, display name, path, artifact kind."""

    role: Role
    name: str
    path: Path
    kind: str


def kit_items(root: str | Path | None = None) -> list[KitItem]:
    """Every bundled item that exists on disk (models may still be missing while the kit is built)."""
    from tokmap_ui.io.demo_kit import demo_kit_paths, minilm_path
    from tokmap_ui.errors import ModelError

    kit = demo_kit_paths(root)
    items = [KitItem(Role.SOURCE, name, path, "model") for name, path in kit.models.items() if name == "tiny-en-gpt2"]
    try:
        items.append(KitItem(Role.SOURCE, "MiniLM", minilm_path(), "model"))
    except ModelError:
        pass  # optional package not installed: the demo works without it
    items += [KitItem(Role.SOURCE, name, path, "tokenizer") for name, path in kit.tokenizers.items()
              if name.startswith("en-")]
    items += [KitItem(Role.TARGET, name, path, "tokenizer") for name, path in kit.tokenizers.items()
              if not name.startswith("en-")]
    items += [KitItem(Role.DICTIONARY, name, path, "dictionary") for name, path in kit.dicts.items()
              if "." not in name]  # the .dev/.test splits are for evaluation
    items += [KitItem(Role.TRAIN_TEXT, name, path, "corpus") for name, path in kit.text.items()
              if name.endswith("/train")]
    items += [KitItem(Role.VALID_TEXT, name, path, "corpus") for name, path in kit.text.items()
              if name.endswith("/valid")]
    items += [KitItem(Role.HOST, name, path, "model") for name, path in kit.models.items()]
    return [item for item in items if item.path.exists()]


# ---------------------------------------------------------------- selection

def role_artifacts(store: Store, project: Any, role: Role | str) -> list[Artifact]:
    """The project's artifacts with this role, oldest first."""
    role = Role(role)
    return [a for a in store.list_artifacts(project) if a.meta.get("role") == role.value]


def selected(store: Store, project: Any, role: Role | str) -> Artifact | None:
    """The artifact selected for ``role`` (else the newest of that role, else None)."""
    role = Role(role)
    choice = store.get_project(project).settings.get("selected", {}).get(role.value)
    found = role_artifacts(store, project, role)
    for artifact in found:
        if artifact.id == choice:
            return artifact
    return found[-1] if found else None


def select(store: Store, project: Any, role: Role | str, artifact_id: int) -> Project:
    """Make ``artifact_id`` the project's choice for ``role``.

    Raises:
        StoreError: the artifact is not one of the project's artifacts with that role.
    """
    role = Role(role)
    if int(artifact_id) not in {a.id for a in role_artifacts(store, project, role)}:
        raise StoreError(f"artifact {artifact_id} is not a {role.value} of project "
                         f"'{store.get_project(project).name}'. Fix: pick one from the project's list.")
    settings = dict(store.get_project(project).settings)
    settings["selected"] = {**settings.get("selected", {}), role.value: int(artifact_id)}
    return store.update_project_settings(project, settings)


def selected_path(store: Store, project: Any, role: Role | str) -> Path:
    """The path of the selected artifact of ``role``.

    Raises:
        ConfigError: the project has none (the message says where to add one).
    """
    artifact = selected(store, project, role)
    if artifact is None:
        raise ConfigError(f"project '{store.get_project(project).name}' has no {Role(role).value} yet. "
                          "Fix: add one in the Project & data tab.")
    return Path(artifact.path)


# ---------------------------------------------------------------- adding inputs

def _check_input(role: Role, path: Path) -> str:
    """Load ``path`` as ``role`` needs it (raising the core's error); return the artifact kind."""
    from tokmap_ui.io.files import read_text_lines

    if role in (Role.SOURCE, Role.HOST) and path.is_dir() and (path / "config.json").is_file():
        from tokmap_ui.io.models import resolve_model_dir
        from tokmap_ui.io.tokenizers import load_tokenizer

        resolve_model_dir(path)
        load_tokenizer(path)
        return "model"
    if role is Role.HOST:
        raise InputFileError(path, "is not a model folder (no config.json)",
                             fix="upload a zip of a Hugging Face model folder (config.json + model.safetensors)")
    if role in (Role.SOURCE, Role.TARGET):
        from tokmap_ui.io.tokenizers import load_tokenizer

        load_tokenizer(path)
        return "tokenizer"
    if role is Role.DICTIONARY:
        from tokmap_ui.io.dictionaries import load_dictionary

        load_dictionary(path)
        return "dictionary"
    if role is Role.DELTA_DATA:
        from tokmap_ui.train.delta_data import read_jsonl

        first = next((line for line in read_text_lines(path, "JSONL data file") if line.strip()), "")
        read_jsonl(path, "unlearn" if '"split"' in first else "instruct")
        return "corpus"
    if not any(line.strip() for line in read_text_lines(path, "text file")):
        raise InputFileError(path, "has only blank lines", fix="upload text, one sentence or document per line")
    return "corpus"


def _input_dir(store: Store, project: Any, role: Role, name: str) -> Path:
    folder = store.project_dir(project) / "inputs" / role.value
    stem = _SAFE.sub("_", name).strip("._") or "input"
    candidate, n = folder / stem, 1
    while candidate.exists():
        n += 1
        candidate = folder / f"{stem}-{n}"
    return candidate


def add_input(store: Store, project: Any, role: Role | str, path: str | Path, name: str | None = None,
              *, copy: bool = True) -> Artifact:
    """Check ``path`` for ``role``, copy it into the workspace, register and select it.

    ``path`` may be a file, a folder, or a ``.zip`` of a folder (unzipped safely). Bad input
    raises the core's error and leaves the project unchanged.

    Raises:
        TokmapError subclasses from the loaders (TokenizerError, DictionaryError, ModelError...).
    """
    from tokmap_ui.io.workspace_files import import_input

    role = Role(role)
    source = Path(path)
    name = name or re.sub(r"\.(zip|json|tsv|txt|csv|jsonl|model)$", "", source.name) or role.value
    is_zip = source.suffix.lower() == ".zip"
    if not is_zip:
        kind = _check_input(role, source)  # before copying: a bad file leaves nothing behind
    if copy or is_zip:
        dest = _input_dir(store, project, role, source.name)
        imported = import_input(source, dest)
        if is_zip:
            try:
                kind = _check_input(role, imported)
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
        source = imported
    artifact = store.add_artifact(project, kind, name, source, meta={"role": role.value})
    select(store, project, role, artifact.id)
    return artifact


def add_kit_item(store: Store, project: Any, role: Role | str, name: str) -> Artifact:
    """Register a bundled demo-kit item (by its name) in ``project`` and select it; reuses a registered one."""
    role = Role(role)
    item = next((i for i in kit_items() if i.role is role and i.name == name), None)
    if item is None:
        choices = ", ".join(i.name for i in kit_items() if i.role is role) or "none"
        raise ConfigError(f"no bundled {role.value} named '{name}'. Fix: choose one of: {choices}.")
    for artifact in role_artifacts(store, project, role):
        if Path(artifact.path) == item.path.resolve():
            select(store, project, role, artifact.id)
            return artifact
    artifact = store.add_artifact(project, item.kind, item.name, item.path, meta={"role": role.value, "bundled": True})
    select(store, project, role, artifact.id)
    return artifact


def train_target_tokenizer(store: Store, project: Any, text_path: str | Path, config: Any,
                           name: str | None = None) -> Artifact:
    """Train a tokenizer on an uploaded text file (:mod:`tokmap_ui.tokenizer_training`), save it in the
    workspace, and register and select it as the project's target tokenizer."""
    from tokmap_ui.io.files import read_text_lines
    from tokmap_ui.io.workspace_files import save_tokenizer_dir
    from tokmap_ui.tokenizer_training import train_tokenizer

    lines = read_text_lines(text_path, "tokenizer training text")
    tokenizer = train_tokenizer(lines, config)
    label = name or f"{Path(text_path).stem}-{config.algorithm.value}-{len(tokenizer)}"
    folder = save_tokenizer_dir(tokenizer, _input_dir(store, project, Role.TARGET, label))
    artifact = store.add_artifact(project, "tokenizer", label, folder,
                                  meta={"role": Role.TARGET.value, "trained": {"algorithm": config.algorithm.value,
                                                                              "vocab_size": len(tokenizer)}})
    select(store, project, Role.TARGET, artifact.id)
    return artifact


# ---------------------------------------------------------------- the demo project

def demo_delta_data(store: Store, project: Any, lines: int = DEMO_DELTA_LINES) -> Artifact | None:
    """The demo's unlearning data: KJV verses to forget, other English text to retain (JSONL)."""
    from tokmap_ui.io.demo_kit import demo_kit_paths
    from tokmap_ui.io.files import read_text_lines
    from tokmap_ui.io.workspace_files import write_jsonl

    existing = role_artifacts(store, project, Role.DELTA_DATA)
    if existing:
        return existing[0]
    kit = demo_kit_paths()
    forget, retain = kit.text["en/kjv_forget"], kit.text["en/retain_valid"]
    if not (forget.is_file() and retain.is_file()):
        return None
    records = [{"text": t, "split": "forget"} for t in read_text_lines(forget, "forget text")[:lines] if t.strip()]
    records += [{"text": t, "split": "retain"} for t in read_text_lines(retain, "retain text")[:lines] if t.strip()]
    path = write_jsonl(records, store.project_dir(project) / "inputs" / "delta-data" / "demo-unlearn-kjv.jsonl")
    artifact = store.add_artifact(project, "corpus", "demo: unlearn KJV verses", path,
                                  meta={"role": Role.DELTA_DATA.value, "task": "unlearn", "bundled": True})
    select(store, project, Role.DELTA_DATA, artifact.id)
    return artifact


DEMO_SELECTION: dict[Role, tuple[str, ...]] = {  # preferred kit item per role, first found wins
    Role.SOURCE: ("tiny-en-gpt2", "MiniLM"), Role.TARGET: ("nl-bpe",), Role.DICTIONARY: ("en-nl",),
    Role.TRAIN_TEXT: ("nl/train",), Role.VALID_TEXT: ("nl/valid",), Role.HOST: ("tiny-en-gpt2",),
}


def ensure_demo_project(store: Store) -> Project:
    """Create (or complete) the ``demo`` project from the offline demo kit; return it.

    Registers every kit item that exists and is not registered yet (sources, target tokenizers,
    dictionaries, texts, hosts) and the demo unlearning data; keeps the user's selections and
    selects the preferred demo inputs only for roles with nothing selected.
    """
    if not any(p.name == DEMO_PROJECT for p in store.list_projects()):
        store.create_project(DEMO_PROJECT, {"demo": True})
    project = store.get_project(DEMO_PROJECT)
    known = {(a.meta.get("role"), Path(a.path)) for a in store.list_artifacts(project)}
    for item in kit_items():
        if (item.role.value, item.path.resolve()) not in known:
            store.add_artifact(project, item.kind, item.name, item.path, meta={"role": item.role.value, "bundled": True})
    settings = store.get_project(project).settings
    chosen, auto = settings.get("selected", {}), dict(settings.get("demo_auto", {}))
    for role, names in DEMO_SELECTION.items():
        if role.value in chosen and chosen[role.value] != auto.get(role.value):
            continue  # the user chose: keep it
        by_name = {a.name: a for a in role_artifacts(store, project, role)}
        pick = next((by_name[n] for n in names if n in by_name), None)
        if pick is not None and chosen.get(role.value) != pick.id:
            select(store, project, role, pick.id)
            auto[role.value] = pick.id
    demo_delta_data(store, project)
    settings = store.get_project(project).settings
    if settings.get("demo_auto") != auto:
        store.update_project_settings(project, {**settings, "demo_auto": auto})
    return store.get_project(project)


def project_names(store: Store) -> list[str]:
    """Names of every project, oldest first."""
    return [p.name for p in store.list_projects()]


def artifact_choices(artifacts: Sequence[Artifact]) -> list[tuple[str, int]]:
    """``(label, id)`` pairs for a dropdown: ``"tiny-en-gpt2 (model #3)"``."""
    return [(f"{a.name} ({a.kind} #{a.id})", a.id) for a in artifacts]
