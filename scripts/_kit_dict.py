"""Bilingual dictionaries of the demo kit, with held-out evaluation splits.

Held-out splits are made by *source headword* (case-folded): every translation
of a held-out word goes to the same split and none stays in the training
dictionary, so "translate a word the mapping never saw" is a fair test.
Held-out headwords are single words that occur in the kit's own text, so the
evaluation is about words a tokenizer actually meets.

FreeDict clean-up (research/data_env.md §1): NFKC (``ĳ`` → ``ij``), glosses
in parentheses removed, explanations of more than four words and ``...``
fragments dropped, and English targets whose spaces were lost in nld-eng
(``apartfrom``, ``goastray``) repaired when the spaced phrase occurs in the
English text.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from _kit_common import norm, read_tsv, rng_for, write_tsv

_PAREN = re.compile(r"\s*\([^)]*\)")
_WORD = re.compile(r"[a-z]+")
MAX_WORDS = 4


def _clean_entry(text: str) -> str | None:
    text = norm(_PAREN.sub("", norm(text))).strip(" ,;")
    if not text or "..." in text or "…" in text or len(text.split()) > MAX_WORDS or "\t" in text:
        return None
    return text


def _english_words(data: Path) -> list[str]:
    """All lower-cased words of the shared English text, in order."""
    text = " ".join(p.read_text(encoding="utf-8") for p in sorted((data / "text" / "en").glob("*.txt")))
    return _WORD.findall(text.lower())


def _glued_candidates(word: str, counts: Counter, known: set[str]) -> list[str]:
    """Two- and three-word spacings of a glued word whose parts are all known words."""
    low = word.lower()
    if " " in word or not low.isalpha() or low in known or counts[low] >= 1 or len(low) < 5:
        return []
    out = []
    for i in range(2, len(low) - 1):
        a, b = low[:i], low[i:]
        for phrase in [f"{a} {b}"] + [f"{a} {b[:j]} {b[j:]}" for j in range(2, len(b) - 1)]:
            if all(p in known or counts[p] >= 3 for p in phrase.split()):
                out.append(phrase)
    return out


def _respace(word: str, phrase: str) -> str:
    """Put the spaces of lower-cased ``phrase`` into ``word``, keeping its case: ``NorthKorea``."""
    out, i = [], 0
    for part in phrase.split():
        out.append(word[i:i + len(part)])
        i += len(part)
    return " ".join(out)


def _repair_glued(words: list[str], glued: list[str], known: set[str]) -> dict[str, str]:
    """``apartfrom`` → ``apart from`` when that phrase occurs in the text (the most frequent spacing wins)."""
    counts = Counter(words)
    cands = {w: _glued_candidates(w, counts, known) for w in set(glued)}
    wanted = {c for cs in cands.values() for c in cs}
    seen = Counter()
    for n in (2, 3):
        for i in range(len(words) - n + 1):
            gram = " ".join(words[i:i + n])
            if gram in wanted:
                seen[gram] += 1
    fixes = {}
    for word, cs in cands.items():
        found = [(seen[c], c) for c in cs if seen[c] >= 2]
        if found:
            fixes[word] = _respace(word, max(found)[1])
    return fixes


def _split_by_headword(pairs: list[tuple[str, ...]], eligible: set[str], sizes: dict[str, int],
                       name: str) -> dict[str, list[tuple[str, ...]]]:
    """Assign whole headwords (case-folded first column) to held-out splits until each has ``sizes`` pairs."""
    by_head: dict[str, list[tuple[str, ...]]] = {}
    for pair in pairs:
        by_head.setdefault(pair[0].casefold(), []).append(pair)
    heads = sorted(h for h in by_head if h in eligible)
    rng_for(name).shuffle(heads)
    out: dict[str, list[tuple[str, ...]]] = {split: [] for split in sizes}
    taken: set[str] = set()
    for split, size in sizes.items():
        while len(out[split]) < size and heads:
            head = heads.pop()
            out[split] += by_head[head]
            taken.add(head)
    out["train"] = [p for p in pairs if p[0].casefold() not in taken]
    return out


def _dedupe(rows):
    seen, out = set(), []
    for row in rows:
        k = tuple(x.casefold() for x in row)
        if k not in seen:
            seen.add(k)
            out.append(row)
    return out


def _text_words(assets: Path, lang: str) -> set[str]:
    words: set[str] = set()
    for split in ("train", "valid"):
        path = assets / "text" / lang / f"{split}.txt"
        words.update(w.casefold() for w in re.findall(r"\w+", path.read_text(encoding="utf-8")))
    return words


def build_dicts(data: Path, assets: Path) -> dict:
    """Write ``assets/dict/*.tsv``; return counts. Needs ``assets/text`` (held-out words must occur there)."""
    out, info = assets / "dict", {}
    _, rows = read_tsv(data / "dict" / "en-nl.freedict.tsv")
    known = {w.lower() for en, _nl, src in rows if "eng-nld" in src for w in en.split()}
    cleaned = [(_clean_entry(en), _clean_entry(nl), src) for en, nl, src in rows]
    cleaned = [(en, nl, src) for en, nl, src in cleaned if en and nl]
    fixes = _repair_glued(_english_words(data), [en for en, _nl, src in cleaned if src == "freedict-nld-eng"],
                          known)
    pairs = [(fixes.get(en, en) if src == "freedict-nld-eng" else en, nl) for en, nl, src in cleaned]
    repaired = sum(1 for en, _nl, src in cleaned if src == "freedict-nld-eng" and en in fixes)
    pairs = _dedupe(pairs)
    en_words = _text_words(assets, "en")
    eligible = {p[0].casefold() for p in pairs if p[0].isalpha() and p[0].casefold() in en_words}
    split = _split_by_headword(pairs, eligible, {"dev": 1000, "test": 1000}, "dict-en-nl")
    for name in ("dev", "test"):
        info[f"en-nl.{name}.tsv"] = write_tsv(out / f"en-nl.{name}.tsv", ["en", "nl"], split[name])
    info["en-nl.tsv"] = write_tsv(out / "en-nl.tsv", ["en", "nl"], split["train"])
    info["en-nl glued targets repaired"] = repaired

    # Frisian: UI-aligned single words (fy-nl, fy-nl-en) plus CLDR names (territories, languages, ...).
    _, fynl = read_tsv(data / "dict" / "fy-nl.firefox-ui.tsv")
    _, fynlen = read_tsv(data / "dict" / "fy-nl-en.firefox-ui.tsv")
    _, cldr = read_tsv(data / "dict" / "fy-nl-en.cldr.tsv")
    ui_pairs = _dedupe([(norm(fy), norm(nl)) for fy, nl, _count in fynl])
    ui_triples = _dedupe([(norm(fy), norm(nl), norm(en)) for fy, nl, en, _count in fynlen])
    cldr_triples = _dedupe([(norm(fy), norm(nl), norm(en)) for fy, nl, en, _kind in cldr])
    fy_words = _text_words(assets, "fy")
    eligible = {p[0].casefold() for p in ui_pairs if p[0].isalpha() and p[0].casefold() in fy_words}
    # fy-en.test comes from the triples; its headwords must not be in the fy-nl held-out splits.
    tri_eligible = {t[0].casefold() for t in ui_triples if t[0].isalpha() and t[0].casefold() in fy_words}
    tri_split = _split_by_headword(ui_triples, tri_eligible, {"test": 300}, "dict-fy-en")
    fy_en_test_heads = {t[0].casefold() for t in tri_split["test"]}
    split = _split_by_headword(ui_pairs, eligible - fy_en_test_heads, {"dev": 300, "test": 300}, "dict-fy-nl")
    held_fy_nl = {p[0].casefold() for name in ("dev", "test") for p in split[name]}
    for name in ("dev", "test"):
        info[f"fy-nl.{name}.tsv"] = write_tsv(out / f"fy-nl.{name}.tsv", ["fy", "nl"], split[name])
    fy_nl_train = _dedupe(split["train"] + [(fy, nl) for fy, nl, _en in cldr_triples])
    fy_nl_train = [p for p in fy_nl_train if p[0].casefold() not in held_fy_nl]
    info["fy-nl.tsv"] = write_tsv(out / "fy-nl.tsv", ["fy", "nl"], fy_nl_train)
    info["fy-en.test.tsv"] = write_tsv(out / "fy-en.test.tsv", ["fy", "en"],
                                       _dedupe([(fy, en) for fy, _nl, en in tri_split["test"]]))
    held_all = held_fy_nl | fy_en_test_heads
    triples = [t for t in _dedupe(tri_split["train"] + cldr_triples) if t[0].casefold() not in held_all]
    info["fy-nl-en.tsv"] = write_tsv(out / "fy-nl-en.tsv", ["fy", "nl", "en"], triples)
    return info
