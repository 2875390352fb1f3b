"""Safe zip extraction: traversal, absolute paths, drive letters, symlinks, bombs, corrupt archives."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from tokmap_ui.errors import InputFileError, UnsafeFileError
from tokmap_ui.io import archives
from tokmap_ui.io.archives import content_folder, safe_extract_zip


def write_zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name) if name.endswith("/") else name, data)
    return path


def assert_nothing_left(dest: Path) -> None:
    """Neither the destination nor a half-extracted temporary folder remains."""
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")]


def test_single_top_folder_is_returned(tmp_path):
    zip_path = write_zip(tmp_path / "tok.zip", {"tok/tokenizer.json": b"{}", "tok/sub/x.txt": b"x"})
    folder = safe_extract_zip(zip_path, tmp_path / "out")
    assert folder == tmp_path / "out" / "tok"
    assert (folder / "tokenizer.json").read_bytes() == b"{}"
    assert (folder / "sub" / "x.txt").read_bytes() == b"x"
    assert content_folder(tmp_path / "out") == folder


def test_several_top_entries_return_dest_and_macos_junk_is_skipped(tmp_path):
    zip_path = write_zip(tmp_path / "t.zip", {"vocab.json": b"{}", "merges.txt": b"",
                                              "__MACOSX/._vocab.json": b"junk", ".DS_Store": b"junk"})
    folder = safe_extract_zip(zip_path, tmp_path / "out")
    assert folder == tmp_path / "out"
    assert sorted(p.name for p in folder.iterdir()) == ["merges.txt", "vocab.json"]


@pytest.mark.parametrize("name", ["../evil.txt", "tok/../../evil.txt", "..\\evil.txt", "/etc/evil.txt",
                                  "\\evil.txt", "C:/evil.txt", "c:evil.txt"])
def test_entries_escaping_the_folder_are_refused(tmp_path, name):
    zip_path = write_zip(tmp_path / "evil.zip", {"ok.txt": b"fine", name: b"pwned"})
    dest = tmp_path / "sub" / "out"
    with pytest.raises(UnsafeFileError, match="outside the target folder"):
        safe_extract_zip(zip_path, dest)
    assert_nothing_left(dest)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "evil.txt").exists()


def test_symlink_entries_are_refused(tmp_path):
    zip_path = tmp_path / "link.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("ok.txt", b"fine")
        link = zipfile.ZipInfo("passwd")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        safe_extract_zip(zip_path, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_zip_bomb_by_compression_ratio(tmp_path):
    zip_path = write_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(5 << 20)})
    assert zip_path.stat().st_size < 100_000
    with pytest.raises(UnsafeFileError, match="zip bomb"):
        safe_extract_zip(zip_path, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_zip_bomb_by_declared_total_size(tmp_path):
    zip_path = write_zip(tmp_path / "big.zip", {"a.txt": b"a" * 3000, "b.txt": b"b" * 3000}, zipfile.ZIP_STORED)
    with pytest.raises(UnsafeFileError, match="would expand to 6,000 bytes"):
        safe_extract_zip(zip_path, tmp_path / "out", max_total_bytes=5000)
    assert_nothing_left(tmp_path / "out")


def test_too_many_files(tmp_path):
    zip_path = write_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(5)})
    with pytest.raises(UnsafeFileError, match="has 5 files"):
        safe_extract_zip(zip_path, tmp_path / "out", max_files=4)


def test_limits_are_enforced_while_reading_not_only_declared():
    """A stream yielding more than its header declared is stopped at the first extra block."""
    info = zipfile.ZipInfo("liar.txt")
    info.file_size = 10
    sink = io.BytesIO()
    with pytest.raises(UnsafeFileError, match="beyond its declared size"):
        archives._copy_limited(io.BytesIO(b"x" * 5000), sink, info, Path("liar.zip"), budget=10_000)
    info.file_size = 5000
    with pytest.raises(UnsafeFileError, match="byte limit"):
        archives._copy_limited(io.BytesIO(b"x" * 5000), io.BytesIO(), info, Path("liar.zip"), budget=100)


def test_header_lying_about_size_is_refused(tmp_path):
    """Shrinking the declared size in the central directory: the entry fails its check, nothing is left."""
    zip_path = write_zip(tmp_path / "liar.zip", {"data.txt": b"0123456789" * 1000}, zipfile.ZIP_STORED)
    raw = bytearray(zip_path.read_bytes())
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24:central + 28] = (100).to_bytes(4, "little")  # uncompressed size in the central directory
    zip_path.write_bytes(bytes(raw))
    with pytest.raises(InputFileError):
        safe_extract_zip(zip_path, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


@pytest.mark.parametrize("content", [b"this is not a zip at all", b"PK\x03\x04" + bytes(100)])
def test_corrupt_zip(tmp_path, content):
    zip_path = tmp_path / "bad.zip"
    zip_path.write_bytes(content)
    with pytest.raises(InputFileError, match="zip archive"):
        safe_extract_zip(zip_path, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_truncated_zip(tmp_path):
    zip_path = write_zip(tmp_path / "t.zip", {"a.txt": b"hello " * 2000, "b.txt": b"world " * 2000},
                         zipfile.ZIP_STORED)
    zip_path.write_bytes(zip_path.read_bytes()[:8000])
    with pytest.raises(InputFileError, match="zip archive"):
        safe_extract_zip(zip_path, tmp_path / "out")
    assert_nothing_left(tmp_path / "out")


def test_empty_zip_missing_zip_and_occupied_destination(tmp_path):
    empty = write_zip(tmp_path / "empty.zip", {"folder/": b""})
    with pytest.raises(InputFileError, match="contains no files"):
        safe_extract_zip(empty, tmp_path / "out")
    with pytest.raises(InputFileError, match="not found"):
        safe_extract_zip(tmp_path / "missing.zip", tmp_path / "out")
    good = write_zip(tmp_path / "good.zip", {"a.txt": b"a"})
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    with pytest.raises(InputFileError, match="not an empty folder"):
        safe_extract_zip(good, occupied)
    assert (occupied / "keep.txt").read_text() == "mine"
    (tmp_path / "empty_dir").mkdir()
    assert (safe_extract_zip(good, tmp_path / "empty_dir") / "a.txt").read_text() == "a"
