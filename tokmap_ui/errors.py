"""Errors a user can act on.

Every error the core raises on bad input is a :class:`TokmapError`. Its message
names the thing at fault (file, line, field) and says what to do about it. The
CLI prints ``str(err)`` on one line and exits 2; the UI shows it with
``gr.Error``. Anything else that escapes is a bug (exit 1).

Example:
    >>> err = InputFileError("dict.tsv", "has only one column", line=3,
    ...                      fix="separate the two words with a tab")
    >>> str(err)
    'dict.tsv, line 3: has only one column. Fix: separate the two words with a tab.'
"""

from __future__ import annotations

from pathlib import Path


class TokmapError(Exception):
    """Base class of every error caused by the user's input or environment."""


def _where(path: str | Path | None, line: int | None = None, field: str | None = None) -> str:
    parts = []
    if path is not None:
        parts.append(str(path))
    if line is not None:
        parts.append(f"line {line}")
    if field is not None:
        parts.append(f"field '{field}'")
    return ", ".join(parts)


class InputFileError(TokmapError):
    """A file the user gave us is missing, unreadable or malformed.

    Args:
        path: the file at fault.
        problem: what is wrong, as a phrase ("is empty", "is not UTF-8 text").
        line: 1-based line number, when the problem is on one line.
        field: the JSON key or column at fault.
        fix: what the user should do, as an imperative phrase.
    """

    def __init__(self, path, problem: str, *, line: int | None = None, field: str | None = None,
                 fix: str | None = None):
        self.path, self.problem, self.line, self.field, self.fix = path, problem, line, field, fix
        where = _where(path, line, field)
        message = f"{where}: {problem}" if where else problem
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message.rstrip(".") + ".")


class UnsafeFileError(InputFileError):
    """A file we refuse to open: pickled weights, zip entries escaping the folder, zip bombs."""


class TokenizerError(InputFileError):
    """A tokenizer that cannot be loaded or understood."""


class DictionaryError(InputFileError):
    """A bilingual dictionary that cannot be read."""


class ModelError(InputFileError):
    """A model folder or weights file that cannot be loaded."""


class TokenMapError(InputFileError):
    """A token-map file that is malformed or does not fit the vocabularies it is used with."""


class HubError(TokmapError):
    """A hub id was given but the hub cannot be reached (offline mode or no network)."""


class ConfigError(TokmapError):
    """A job setting out of range or inconsistent with the others."""


def check_ranges(config: object, checks: list[tuple[str, bool, str]]) -> None:
    """Raise ConfigError for the first ``(field, ok, wanted range)`` that is not ok.

    Example:
        >>> try:
        ...     check_ranges(type("C", (), {"steps": 0})(), [("steps", False, "at least 1")])
        ... except ConfigError as err:
        ...     print(err)
        steps = 0 is out of range. Fix: use a value at least 1.
    """
    for name, ok, want in checks:
        if not ok:
            raise ConfigError(f"{name} = {getattr(config, name)} is out of range. Fix: use a value {want}.")


class StoreError(TokmapError):
    """The workspace database refused an operation (for example a stale edit)."""


class StaleEditError(StoreError):
    """Another reviewer changed the entry since it was read; nothing was written."""
