"""The kit's file list: ``assets/MANIFEST.tsv`` (path, bytes, SHA-256) and the tables in ``assets/README.md``.

The README's file table sits between ``<!-- files:start -->`` and ``<!-- files:end -->``,
its training figures between ``<!-- training:start -->`` and ``<!-- training:end -->``;
both are rewritten from the files on disk, so the README never goes stale.
The test suite checks every file against the manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from _kit_common import write_lines, write_tsv
from tokmap_ui.io.files import sha256_file

SKIP = {"MANIFEST.tsv", "README.md"}  # they describe the others
_TABLE = re.compile(r"(<!-- files:start -->\n).*?(<!-- files:end -->)", re.S)
_TRAINING = re.compile(r"(<!-- training:start -->\n).*?(<!-- training:end -->)", re.S)


def _human(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def training_table(assets: Path) -> list[str]:
    """Markdown rows of the figures in ``models/*/training.json``."""
    rows = ["| model | params | tokenizer | steps (stopped by) | CPU min per core / wall min | tokens seen (epochs) "
            "| valid loss/token | perplexity | loss/byte (bits/byte) | unigram loss/byte | unigram perplexity |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for path in sorted(assets.glob("models/*/training.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        t, v = r["training"], r["validation"]
        rows.append(f"| {r['model']} ({r['architecture']}) | {r['parameters'] / 1e6:.2f}M | {r['tokenizer']} "
                    f"| {t['steps']:,} ({t['stopped_by']}) | {t['cpu_minutes_per_core']:.1f} / {t['seconds'] / 60:.1f} "
                    f"| {t['tokens_seen'] / 1e6:.2f}M ({t['epochs']}) | {v['loss_per_token']:.3f} "
                    f"| {v['perplexity']:.1f} | {v['loss_per_byte']:.3f} ({v['bits_per_byte']:.3f}) "
                    f"| {v['unigram_loss_per_byte']:.3f} | {v['unigram_perplexity']:.1f} |")
    return rows


def write_manifest(assets: Path) -> dict:
    """Write MANIFEST.tsv and refresh the README table; return the total size."""
    files = sorted(p for p in assets.rglob("*") if p.is_file() and p.name not in SKIP
                   and not p.name.startswith(".") and "__pycache__" not in p.parts)
    rows = [(p.relative_to(assets).as_posix(), str(p.stat().st_size), sha256_file(p)) for p in files]
    write_tsv(assets / "MANIFEST.tsv", ["path", "bytes", "sha256"], rows)
    total = sum(int(r[1]) for r in rows)
    readme = assets / "README.md"
    if readme.exists():
        table = ["| file | size |", "|---|---:|"]
        table += [f"| `{path}` | {_human(int(size))} |" for path, size, _ in rows]
        table.append(f"| **total ({len(rows)} files)** | **{_human(total)}** |")
        text = readme.read_text(encoding="utf-8")
        new = _TABLE.sub(lambda m: m.group(1) + "\n".join(table) + "\n" + m.group(2), text)
        training = training_table(assets)
        new = _TRAINING.sub(lambda m: m.group(1) + "\n".join(training) + "\n" + m.group(2), new)
        if new != text:
            write_lines(readme, new.rstrip("\n").split("\n"))
    return {"files": len(rows), "bytes": total}
