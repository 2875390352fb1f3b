"""Safe extraction of user zip archives (tokenizer folders, model folders, data bundles).

A zip from the internet can write outside the target folder (``../../.bashrc``,
``/etc/passwd``, ``C:\\x``), plant symlinks, or expand a few kilobytes into terabytes
(a zip bomb, including the overlapping-entry kind whose headers all look modest).
:func:`safe_extract_zip` refuses all of these with an :class:`UnsafeFileError`, counts
the bytes it really writes (not only the sizes the headers declare), and extracts into
a temporary folder that is renamed into place only when everything succeeded.

Example:
    >>> folder = safe_extract_zip("tok.zip", "cache/tok")      # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())               # doctest: +SKIP
    ['tokenizer.json', 'tokenizer_config.json']
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from tokmap_ui.errors import InputFileError, UnsafeFileError
from tokmap_ui.io.files import require_file

GIB = 1 << 30
_CHUNK = 1 << 20
_RATIO_MIN_BYTES = 1 << 20  # tiny files of zeros compress 1000:1 legitimately; judge ratios above 1 MiB
_SKIPPED = ("__MACOSX/",)     # Finder's resource-fork folder: never part of the payload
_DRIVE = re.compile(r"^[A-Za-z]:")


def _entry_parts(info: zipfile.ZipInfo, zip_path: Path) -> tuple[str, ...]:
    """The relative path parts of an entry, refusing anything that could leave the folder."""
    name = info.filename
    unsafe = (
        "\x00" in name
        or name.startswith(("/", "\\"))
        or _DRIVE.match(name) is not None
        or any(part == ".." for part in re.split(r"[\\/]", name))
    )
    if unsafe:
        raise UnsafeFileError(zip_path, f"has an entry '{name}' that would be written outside the target folder "
                              "(absolute path, drive letter or '..')",
                              fix="re-create the zip with relative paths only")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise UnsafeFileError(zip_path, f"has a symbolic link entry '{name}', which tokmap never extracts",
                              fix="re-create the zip with real files instead of links (zip without -y)")
    if info.flag_bits & 0x1:
        raise InputFileError(zip_path, f"has an encrypted entry '{name}'", fix="give an unencrypted zip")
    return tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))


def _check_declared(infos: list[zipfile.ZipInfo], zip_path: Path, max_files: int, max_total_bytes: int,
                    max_ratio: float) -> None:
    files = [i for i in infos if not i.is_dir()]
    if len(files) > max_files:
        raise UnsafeFileError(zip_path, f"has {len(files):,} files (limit {max_files:,})",
                              fix="zip only the tokenizer or model folder")
    total = sum(i.file_size for i in files)
    if total > max_total_bytes:
        raise UnsafeFileError(zip_path, f"would expand to {total:,} bytes (limit {max_total_bytes:,}); "
                              "it may be a zip bomb", fix="give a smaller archive or the folder itself")
    for info in files:
        if info.file_size >= _RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise UnsafeFileError(zip_path, f"entry '{info.filename}' is compressed {ratio:,.0f}:1 "
                                  f"(limit {max_ratio:,.0f}:1); it looks like a zip bomb",
                                  fix="give the folder itself or a normally compressed zip")


def _copy_limited(source, target, info: zipfile.ZipInfo, zip_path: Path, budget: int) -> int:
    """Copy one entry, stopping as soon as it exceeds its declared size or the total budget."""
    written = 0
    while block := source.read(_CHUNK):
        written += len(block)
        if written > info.file_size or written > budget:
            raise UnsafeFileError(zip_path, f"entry '{info.filename}' expands beyond its declared size or the "
                                  "archive's byte limit; it looks like a zip bomb",
                                  fix="give the folder itself or a well-formed zip")
        target.write(block)
    return written


def safe_extract_zip(zip_path: str | Path, dest_dir: str | Path, *, max_files: int = 10_000,
                     max_total_bytes: int = 2 * GIB, max_ratio: float = 200) -> Path:
    """Extract ``zip_path`` into the new folder ``dest_dir`` safely; return the content folder.

    Args:
        zip_path: the archive.
        dest_dir: a folder that does not exist yet (or is empty); created atomically.
        max_files: refuse archives with more files than this.
        max_total_bytes: refuse archives that expand (declared or actual) to more bytes.
        max_ratio: refuse entries over 1 MiB compressed more than this many times.

    Returns:
        ``dest_dir``, or its only sub-folder when the archive holds a single top folder
        (``tok.zip`` containing ``tok/tokenizer.json`` returns ``dest_dir/tok``).

    Raises:
        UnsafeFileError: path traversal, absolute paths, drive letters, symlinks, zip bombs.
        InputFileError: missing, empty, corrupt or encrypted archives; an occupied ``dest_dir``.
    """
    zip_path = require_file(zip_path, "zip archive")
    dest = Path(dest_dir)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputFileError(dest, "already exists and is not an empty folder",
                             fix="extract into a new folder")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as err:
        raise InputFileError(zip_path, f"is not a readable zip archive ({err})",
                             fix="re-create the zip, or give the folder itself") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    try:
        with archive:
            infos = [i for i in archive.infolist() if not i.filename.startswith(_SKIPPED)]
            entries = [(info, _entry_parts(info, zip_path)) for info in infos]
            _check_declared(infos, zip_path, max_files, max_total_bytes, max_ratio)
            entries = [(i, parts) for i, parts in entries if parts and parts[-1] != ".DS_Store"]
            if not any(not info.is_dir() for info, _ in entries):
                raise InputFileError(zip_path, "contains no files", fix="zip the folder with its files")
            budget = max_total_bytes
            for info, parts in entries:
                target = tmp.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(target, "xb") as sink:
                    budget -= _copy_limited(source, sink, info, zip_path, budget)
        if dest.exists():
            dest.rmdir()  # empty (checked above); rename needs the name free on every OS
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, NotImplementedError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputFileError(zip_path, f"is a corrupt zip archive ({err})",
                             fix="re-create the zip, or give the folder itself") from None
    except (NotADirectoryError, IsADirectoryError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputFileError(zip_path, f"has a file and a folder with the same name ({err.filename})",
                             fix="re-create the zip from a real folder") from None
    except FileExistsError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputFileError(zip_path, f"has the same file twice ('{Path(err.filename).name}')",
                             fix="re-create the zip without duplicate entries") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return content_folder(dest)


def content_folder(folder: str | Path) -> Path:
    """``folder``, or its only entry when that is a folder (how zips of one folder unpack)."""
    folder = Path(folder)
    children = list(folder.iterdir())
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return folder
