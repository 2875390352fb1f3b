"""Reading user text files strictly and writing files atomically.

User files arrive in every shape: empty, binary, UTF-16 from Windows tools,
Latin-1 from old scripts, one 10 MB line. :func:`read_text_lines` turns each of
these into a :class:`~tokmap_ui.errors.InputFileError` that says what to do,
instead of a ``UnicodeDecodeError`` traceback deep inside a parser.

:func:`atomic_write` is the only way the project writes a file: the data goes
to a temporary name in the same folder and is renamed into place, so a crash
never leaves a half-written file under the real name.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tokmap_ui.errors import InputFileError, UnsafeFileError

MAX_LINE_CHARS = 1_000_000  # one line longer than this is not a dictionary entry or a sentence
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def refuse_pickle(path: str | Path) -> None:
    """Raise for weight files that can only be read by unpickling (arbitrary code execution)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeFileError(
            path, f"is a pickled '{path.suffix}' file, which tokmap never loads (unpickling runs arbitrary code)",
            fix="convert it to safetensors, e.g. `model.save_pretrained(dir, safe_serialization=True)` "
                "in a trusted environment, and give that file instead")


def require_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a Path if it is an existing, non-empty regular file."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, f"{what} not found", fix="check the path")
    if path.is_dir():
        raise InputFileError(path, f"is a folder, expected a {what}", fix="give the file inside it")
    if path.stat().st_size == 0:
        raise InputFileError(path, "is empty", fix=f"give a non-empty {what}")
    return path


def decode_text(data: bytes, path: str | Path) -> str:
    """Decode bytes of a user text file as UTF-8 (BOM allowed), explaining any failure.

    Example:
        >>> decode_text("\\ufeffkat\\tcat\\r\\n".encode("utf-8"), "d.tsv")
        'kat\\tcat\\n'
    """
    if not data:
        raise InputFileError(path, "is empty", fix="give a file with at least one line of text")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 3 and (data[1:2] == b"\x00" or data[0:1] == b"\x00")
                                                   and data.count(b"\x00") > len(data) // 4):
        raise InputFileError(path, "is UTF-16 text", fix="save it as UTF-8 (e.g. `iconv -f UTF-16 -t UTF-8`)")
    if b"\x00" in data[:8192]:
        raise InputFileError(path, "is a binary file, not text", fix="give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputFileError(
            path, f"is not UTF-8 (byte 0x{data[err.start]:02x} cannot be decoded; Latin-1 or Windows-1252?)",
            line=line, fix="save it as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8`)") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text(path: str | Path, what: str = "text file") -> str:
    """Read a whole user text file strictly (see :func:`decode_text`)."""
    path = require_file(path, what)
    return decode_text(path.read_bytes(), path)


def read_text_lines(path: str | Path, what: str = "text file",
                    max_line_chars: int = MAX_LINE_CHARS) -> list[str]:
    """Read a user text file as a list of lines without line ends; reject absurdly long lines."""
    text = read_text(path, what)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if len(line) > max_line_chars:
            raise InputFileError(path, f"has a line of {len(line):,} characters (limit {max_line_chars:,})",
                                 line=number, fix="split it into one entry or sentence per line")
    return lines


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "map.json"
        >>> with atomic_write(target) as handle:
        ...     _ = handle.write("{}")
        >>> target.read_text()
        '{}'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
