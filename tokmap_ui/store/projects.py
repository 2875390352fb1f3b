"""Projects and artifacts: named folders of work and the files they produce or consume."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tokmap_ui.errors import InputFileError, StoreError
from tokmap_ui.io.files import atomic_write_bytes, sha256_file
from tokmap_ui.store.database import Database, utc_now
from tokmap_ui.store.records import Artifact, Project, dumps, loads

ProjectRef = int | str | Project
_KIND = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_SAFE_NAME = re.compile(r"^[\w.\-+]+$")


def sha256_path(path: Path) -> str:
    """SHA-256 of a file, or of a folder as the hash of its sorted ``relative-path  sha256`` lines.

    Folders matter because tokenizers and models are folders; the listing hash changes when
    any file is added, removed, renamed or edited.
    """
    if path.is_file():
        return sha256_file(path)
    listing = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        listing.update(f"{file.relative_to(path).as_posix()}  {sha256_file(file)}\n".encode())
    return listing.hexdigest()


class ProjectsMixin(Database):
    """Project and artifact methods of :class:`~tokmap_ui.store.Store`."""

    # ------------------------------------------------------------------ projects
    def create_project(self, name: str, settings: Mapping[str, Any] | None = None) -> Project:
        """Create a project; names are unique regardless of case.

        Raises:
            StoreError: the name is empty or already taken.
        """
        name = name.strip()
        if not name:
            raise StoreError("project name is empty. Fix: give the project a name.")
        try:
            with self._write() as conn:
                cursor = conn.execute("INSERT INTO projects (name, created, settings) VALUES (?, ?, ?)",
                                      (name, utc_now(), dumps(dict(settings or {}))))
        except StoreError as err:
            if "UNIQUE" in str(err):
                raise StoreError(f"a project named '{name}' already exists in {self.home}. "
                                 "Fix: choose another name or open the existing project.") from None
            raise
        return self.get_project(int(cursor.lastrowid))

    def get_project(self, project: ProjectRef) -> Project:
        """The project with this id or name.

        Raises:
            StoreError: there is no such project (the message lists the existing ones).
        """
        if isinstance(project, Project):
            project = project.id
        column = "id" if isinstance(project, int) else "name"
        rows = self._query(f"SELECT * FROM projects WHERE {column} = ?", (project,))
        if not rows:
            known = ", ".join(p.name for p in self.list_projects()[:20]) or "none yet"
            raise StoreError(f"no project {project!r} in {self.home} (projects: {known}). "
                             "Fix: pick an existing project or create it first.")
        return _project(rows[0])

    def list_projects(self) -> list[Project]:
        """All projects, oldest first."""
        return [_project(row) for row in self._query("SELECT * FROM projects ORDER BY id")]

    def update_project_settings(self, project: ProjectRef, settings: Mapping[str, Any]) -> Project:
        """Replace a project's settings JSON."""
        project_id = self.get_project(project).id
        with self._write() as conn:
            conn.execute("UPDATE projects SET settings = ? WHERE id = ?", (dumps(dict(settings)), project_id))
        return self.get_project(project_id)

    def project_dir(self, project: ProjectRef) -> Path:
        """The folder for files the workspace itself writes for a project (not created here)."""
        return self.home / "projects" / str(self.get_project(project).id)

    # ------------------------------------------------------------------ artifacts
    def add_artifact(self, project: ProjectRef, kind: str, name: str, path: str | Path,
                     sha256: str | None = None, meta: Mapping[str, Any] | None = None) -> Artifact:
        """Register an existing file or folder, hashing it unless ``sha256`` is given.

        Example:
            ``store.add_artifact("demo", "tokenizer", "nl-bpe", "assets/nl/tokenizer.json")``

        Raises:
            InputFileError: the path does not exist.
            StoreError: bad kind or sha256.
        """
        project_id = self.get_project(project).id
        if not _KIND.match(kind):
            raise StoreError(f"artifact kind {kind!r} is not a lower-case slug like 'token-map'. "
                             "Fix: use letters, digits and '-'.")
        path = Path(path).expanduser().resolve()
        if not path.exists():
            raise InputFileError(path, f"{kind} not found", fix="check the path; the file must exist "
                                 "before it is added to the workspace")
        if sha256 is None:
            sha256 = sha256_path(path)
        elif not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise StoreError(f"sha256 {sha256!r} of {path} is not 64 lower-case hex digits. "
                             "Fix: omit it and the store computes it.")
        stored = self._stored_path(path)
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO artifacts (project_id, kind, name, path, sha256, created, meta) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project_id, kind, name, stored, sha256, utc_now(), dumps(dict(meta or {}))))
        return self.get_artifact(int(cursor.lastrowid))

    def save_artifact(self, project: ProjectRef, kind: str, name: str, data: bytes,
                      meta: Mapping[str, Any] | None = None) -> Artifact:
        """Write ``data`` atomically to ``project_dir/kind/name`` and register it.

        Raises:
            StoreError: ``name`` is not a plain file name.
        """
        if not _SAFE_NAME.match(name) or name in (".", ".."):
            raise StoreError(f"artifact file name {name!r} must be a plain file name "
                             "(letters, digits, '.', '-', '_', '+'). Fix: rename it.")
        path = self.project_dir(project) / kind / name
        atomic_write_bytes(path, data)
        return self.add_artifact(project, kind, name, path, hashlib.sha256(data).hexdigest(), meta)

    def get_artifact(self, artifact_id: int) -> Artifact:
        """The artifact with this id.

        Raises:
            StoreError: no such artifact.
        """
        rows = self._query("SELECT * FROM artifacts WHERE id = ?", (int(artifact_id),))
        if not rows:
            raise StoreError(f"no artifact with id {artifact_id} in {self.home}. "
                             "Fix: list the project's artifacts and pick one of them.")
        return self._artifact(rows[0])

    def list_artifacts(self, project: ProjectRef, kind: str | None = None) -> list[Artifact]:
        """A project's artifacts, oldest first, optionally of one kind."""
        project_id = self.get_project(project).id
        if kind is None:
            rows = self._query("SELECT * FROM artifacts WHERE project_id = ? ORDER BY id", (project_id,))
        else:
            rows = self._query("SELECT * FROM artifacts WHERE project_id = ? AND kind = ? ORDER BY id",
                               (project_id, kind))
        return [self._artifact(row) for row in rows]

    def _artifact(self, row: sqlite3.Row) -> Artifact:
        return Artifact(id=row["id"], project_id=row["project_id"], kind=row["kind"], name=row["name"],
                        path=self._full_path(row["path"]), sha256=row["sha256"], created=row["created"],
                        meta=loads(row["meta"]))


def _project(row: sqlite3.Row) -> Project:
    return Project(id=row["id"], name=row["name"], created=row["created"], settings=loads(row["settings"]))
