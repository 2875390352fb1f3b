"""Text slices and parallel evaluation slices of the demo kit.

``build_parallel`` picks the held-out parallel segments first; ``build_text``
then cuts fixed, seeded train/valid splits of the monolingual text and drops
every line equal to one of those segments, so no evaluation sentence is ever
trained on.

Splits are made from blocks of consecutive lines (10 paragraphs or verses), not
single lines: a held-out Bible verse whose neighbours were trained on is barely
held out.
"""

from __future__ import annotations

from pathlib import Path

from _kit_common import (blocks, clean_line, key, letter_ratio, nbytes, norm, read_tsv,
                         rng_for, write_lines, write_tsv)

BLOCK = 10
MAX_SEGMENT_CHARS = 400

# Train budgets in UTF-8 bytes per source group; valid gets VALID_SHARE of the same mix.
EN_SOURCES = {
    "kjv": (["bible_kjv.txt"], 1_300_000),
    "libreoffice": (["libreoffice_help.txt"], 1_000_000),
    "debian": (["debian_handbook.txt", "debian_reference.txt", "debian_faq.txt",
                "debian_edu_manual.txt"], 750_000),
}
NL_SOURCES = {
    "libreoffice": (["libreoffice_help.txt"], 1_800_000),
    "mozilla": (["mozilla_ui.txt"], 450_000),
    "manpages": (["manpages.txt"], 350_000),
    "debian": (["debian_edu_manual.txt", "debian_faq.txt", "debian_handbook_nlNL_nlonly.txt",
                "aptitude_doc.txt"], 450_000),
    "lilypond": (["lilypond_web_nlonly.txt"], 200_000),
}
FY_SOURCES = {"mozilla": (["mozilla_ui.txt"], 10**9)}  # all of it but valid
VALID_SHARE = 0.05
FY_VALID_BYTES = 100_000
KJV_FORGET_LINES = 1500
RETAIN_VALID_LINES = 1500
MIN_WORDS = {"en": 4, "nl": 4, "fy": 1}   # Frisian text is UI strings: keep short ones (it is all there is)
MIN_CHARS = {"en": 20, "nl": 20, "fy": 4}


# ----------------------------------------------------------------------------- parallel

PARALLEL_TRAIN = 20_000  # en-nl training pairs for token alignment (about 3.5 MB)


def _segment_ok(text: str) -> bool:
    return 0 < len(text) <= MAX_SEGMENT_CHARS and letter_ratio(text) >= 0.6 and "\t" not in text


def build_parallel(data: Path, assets: Path) -> dict:
    """Write ``assets/parallel/{en-nl,fy-en}.{dev,test}.tsv`` and ``en-nl.train.tsv``; return counts.

    The train split (for ``map --parallel``) is the next ``PARALLEL_TRAIN`` pairs of the same
    shuffled, de-duplicated list: disjoint from dev and test by normalised text.
    """
    out = assets / "parallel"
    info = {}
    _, rows = read_tsv(data / "parallel" / "en-nl.libreoffice-help.tsv")
    seen, pairs = set(), []
    for _id, en, nl in rows:
        en, nl = norm(en), norm(nl)
        if len(en.split()) < 3 or not (_segment_ok(en) and _segment_ok(nl)) or key(en) == key(nl):
            continue
        if key(en) in seen or key(nl) in seen:
            continue
        seen.update((key(en), key(nl)))
        pairs.append((en, nl))
    rng_for("parallel-en-nl").shuffle(pairs)
    info["en-nl.dev.tsv"] = write_tsv(out / "en-nl.dev.tsv", ["en", "nl"], pairs[:1000])
    info["en-nl.test.tsv"] = write_tsv(out / "en-nl.test.tsv", ["en", "nl"], pairs[1000:2000])
    info["en-nl.train.tsv"] = write_tsv(out / "en-nl.train.tsv", ["en", "nl"], pairs[2000:2000 + PARALLEL_TRAIN])
    info["en-nl candidates"] = len(pairs)

    _, rows = read_tsv(data / "parallel" / "fy-nl-en.firefox-ui.tsv")
    seen, triples = set(), []
    for _id, fy, nl, en in rows:
        fy, nl, en = norm(fy), norm(nl), norm(en)
        if len(en.split()) < 3 or not all(_segment_ok(t) for t in (fy, nl, en)) or key(fy) == key(en):
            continue
        if key(en) in seen or key(fy) in seen:
            continue
        seen.update((key(en), key(fy)))
        triples.append((fy, nl, en))
    rng_for("parallel-fy-en").shuffle(triples)
    info["fy-en.dev.tsv"] = write_tsv(out / "fy-en.dev.tsv", ["fy", "nl", "en"], triples[:330])
    info["fy-en.test.tsv"] = write_tsv(out / "fy-en.test.tsv", ["fy", "nl", "en"], triples[330:660])
    info["fy-en candidates"] = len(triples)
    return info


def heldout_keys(assets: Path) -> dict[str, set[str]]:
    """Keys of every parallel evaluation segment (dev and test), per language, read back from ``assets/parallel``."""
    keys: dict[str, set[str]] = {"en": set(), "nl": set(), "fy": set()}
    for path in sorted(p for p in (assets / "parallel").glob("*.tsv") if p.name.endswith((".dev.tsv", ".test.tsv"))):
        # The kit's TSVs are plain (split on tabs; a field may start with a quote), not csv-quoted.
        header, *rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
        for row in rows:
            for lang, text in zip(header, row):
                keys[lang].add(key(text))
    return keys


# ----------------------------------------------------------------------------- text

def _source_lines(data: Path, lang: str, files: list[str], drop: set[str], seen: set[str]) -> tuple[list[str], int]:
    """Cleaned, de-duplicated lines of some source files; also how many lines the held-out set removed."""
    lines, dropped = [], 0
    for name in files:
        for raw in (data / "text" / lang / name).read_text(encoding="utf-8").split("\n"):
            line = clean_line(raw, MIN_WORDS[lang], MIN_CHARS[lang])
            if line is None:
                continue
            k = key(line)
            if k in drop:
                dropped += 1
                continue
            if k in seen:
                continue
            seen.add(k)
            lines.append(line)
    return lines, dropped


def _take(blks: list[list[str]], budget_bytes: float, budget_lines: float = float("inf")) -> list[list[str]]:
    """Pop blocks off the front until the byte or line budget is reached."""
    taken, size, count = [], 0, 0
    while blks and size < budget_bytes and count < budget_lines:
        block = blks.pop(0)
        taken.append(block)
        size += nbytes(block)
        count += len(block)
    return taken


def _flat(blks: list[list[str]], name: str) -> list[str]:
    """Shuffle the blocks of several sources together (seeded) and flatten them."""
    blks = list(blks)
    rng_for(name).shuffle(blks)
    return [line for block in blks for line in block]


def build_text(data: Path, assets: Path) -> dict:
    """Write ``assets/text/{en,nl,fy}/{train,valid}.txt`` and the English unlearning slices."""
    drop = heldout_keys(assets)
    info: dict = {}
    for lang, sources in (("en", EN_SOURCES), ("nl", NL_SOURCES), ("fy", FY_SOURCES)):
        seen: set[str] = set()
        splits: dict[str, list[list[str]]] = {"train": [], "valid": []}
        extra: dict[str, list[list[str]]] = {"kjv_forget": [], "retain_valid": []}
        lang_info = {"sources": {}}
        non_kjv = []
        for group, (files, budget) in sources.items():
            lines, dropped = _source_lines(data, lang, files, drop[lang], seen)
            blks = blocks(lines, BLOCK)
            rng_for(f"text-{lang}-{group}").shuffle(blks)
            valid_budget = FY_VALID_BYTES if lang == "fy" else VALID_SHARE * budget
            splits["valid"] += _take(blks, valid_budget)
            if lang == "en" and group == "kjv":
                extra["kjv_forget"] += _take(blks, float("inf"), KJV_FORGET_LINES)
            elif lang == "en":
                non_kjv.append((group, blks, budget))
            splits["train"] += _take(blks, budget)
            lang_info["sources"][group] = {"files": files, "clean_lines": len(lines),
                                           "dropped_parallel_eval": dropped, "unused_blocks": len(blks)}
        for group, blks, budget in non_kjv:  # retain_valid: non-Bible blocks not used for training
            share = budget / sum(b for _, _, b in non_kjv)
            extra["retain_valid"] += _take(blks, float("inf"), RETAIN_VALID_LINES * share)
        out = assets / "text" / lang
        for split, blks in {**splits, **extra}.items():
            if not blks:
                continue
            lines = _flat(blks, f"order-{lang}-{split}")
            write_lines(out / f"{split}.txt", lines)
            lang_info[split] = {"lines": len(lines), "bytes": nbytes(lines),
                                "words": sum(len(line.split()) for line in lines)}
        info[lang] = lang_info
    return info
