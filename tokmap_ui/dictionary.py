"""Bilingual word dictionaries in memory: pairs, normalisation, and the inspection report.

A :class:`Dictionary` is an immutable list of :class:`WordPair` (source word, target word, weight)
with the two language labels. Files are parsed in :mod:`tokmap_ui.io.dictionaries`; everything
here works on objects only.

Normalisation matters more than it looks: FreeDict writes the Dutch ligature ``ĳ`` (U+0133)
where running text and tokenizers have ``ij``, so without NFKC every such word silently misses
the vocabulary (research/data_env.md §1).

Example:
    >>> d = Dictionary.from_pairs([("altĳd", "always"), ("kat ", "cat"), ("kat", "cat")])
    >>> d = d.normalised()
    >>> [(p.src, p.tgt, p.weight) for p in d.pairs]
    [('altijd', 'always', 1.0), ('kat', 'cat', 2.0)]
    >>> d.duplicates
    1
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any


# --------------------------------------------------------------------------- languages, field names

# ISO 639-1, plus the ISO 639-2/T codes of common languages (FreeDict names files eng-nld).
_ISO_639_1 = frozenset("""
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv
dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig
ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh
mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru
rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug
uk ur uz ve vi vo wa wo xh yi yo za zh zu""".split())
_ISO_639_3 = frozenset("""
afr ara bul cat ces cym dan deu ell eng epo est eus fas fin fra fry frr gle glg heb hin hrv hun ind
isl ita jpn kor lat lav lit ltz msa nld nno nob nor pol por ron rus slk slv spa srp swa swe tha tur
ukr urd vie zho""".split())
_SUBTAG = re.compile(r"^[A-Za-z0-9]{2,8}$")

# Names a file may give the source, target and weight columns (or JSON keys); EXTRA_NAMES are
# columns known to carry something else. Note FreeDict exports use "source" for provenance.
SRC_NAMES = ("src", "source", "source_word", "src_word", "word", "from")
TGT_NAMES = ("tgt", "target", "trg", "target_word", "tgt_word", "translation", "to")
WEIGHT_NAMES = ("weight", "count", "freq", "frequency", "score", "prob", "probability")
EXTRA_NAMES = frozenset(("source", "kind", "sense", "rank", "pos", "note", "notes", "comment",
                         "origin", "provenance", "id", "type", "category", "domain", "gloss"))


def is_language_code(name: str) -> bool:
    """True for 'nl', 'NL', 'fy-NL', 'en_US', 'zh-Hans', 'nld'; False for 'the' or 'source'."""
    base, *subtags = name.strip().replace("_", "-").split("-")
    base = base.lower()
    return (base in _ISO_639_1 or base in _ISO_639_3) and all(_SUBTAG.match(s) for s in subtags)


def parse_weight(value: Any) -> float:
    """A finite, non-negative weight from a number or numeric string; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not a weight")
    weight = float(value)
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite number >= 0, got {value!r}")
    return weight


@dataclass(frozen=True, slots=True)
class WordPair:
    """One dictionary entry: ``src`` translates to ``tgt`` with a non-negative ``weight``."""

    src: str
    tgt: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line (or JSON element) that was skipped while loading, and why.

    ``line`` is the 1-based line number in the file, or None where there is none (JSON, objects).
    """

    line: int | None
    reason: str
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "text": self.text}

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        shown = f" ({self.text!r})" if self.text else ""
        return f"{where}{self.reason}{shown}"


@dataclass(frozen=True)
class DictionaryNormalisation:
    """How dictionary words are cleaned before use."""

    nfkc: bool = True
    """Apply Unicode NFKC (turns the FreeDict ligature 'ĳ' into 'ij', full-width letters into ASCII)."""
    casefold: bool = False
    """Case-fold both sides ('Kat' and 'kat' become one word). Off: tokenizers are usually cased."""
    whitespace: bool = True
    """Strip both ends and collapse runs of spaces, tabs and no-break spaces to one space."""
    drop_duplicates: bool = True
    """Merge repeated (src, tgt) pairs into one, summing their weights."""
    drop_empty: bool = True
    """Drop pairs whose source or target is empty after the steps above."""


NO_NORMALISATION = DictionaryNormalisation(nfkc=False, casefold=False, whitespace=False,
                                           drop_duplicates=False, drop_empty=False)


def normalise_word(word: str, options: DictionaryNormalisation = DictionaryNormalisation()) -> str:
    """Apply the per-word steps of ``options`` (NFKC, case folding, whitespace) to one word.

    Example:
        >>> normalise_word("  Bĳ  de\\u00a0weg ")
        'Bij de weg'
    """
    if options.nfkc:
        word = unicodedata.normalize("NFKC", word)
    if options.casefold:
        word = word.casefold()
    if options.whitespace:
        # str.split() with no argument splits on every Unicode space, NBSP included.
        word = " ".join(word.split())
    return word


def normalise_pairs(pairs: Sequence[WordPair], options: DictionaryNormalisation,
                    lines: Sequence[int | None] | None = None,
                    ) -> tuple[list[WordPair], int, list[RejectedLine]]:
    """Normalise ``pairs``; return (kept pairs, number of duplicates merged, rejected empties).

    ``lines`` gives the file line of each pair, so a rejection can name it. Order is kept: a
    merged duplicate stays where its first occurrence was.
    """
    kept: dict[tuple[str, str], float] = {}
    plain: list[WordPair] = []  # used when duplicates are kept
    duplicates = 0
    rejected: list[RejectedLine] = []
    for index, pair in enumerate(pairs):
        src, tgt = normalise_word(pair.src, options), normalise_word(pair.tgt, options)
        if options.drop_empty and (not src or not tgt):
            side = "source" if not src else "target"
            line = lines[index] if lines is not None else None
            where = "" if lines is not None else f"pair {index + 1}: "
            rejected.append(RejectedLine(line, f"{where}empty {side} word", f"{pair.src}\t{pair.tgt}"))
            continue
        if not options.drop_duplicates:
            plain.append(WordPair(src, tgt, pair.weight))
            continue
        key = (src, tgt)
        if key in kept:
            duplicates += 1
            kept[key] += pair.weight
        else:
            kept[key] = pair.weight
    if not options.drop_duplicates:
        return plain, 0, rejected
    return [WordPair(s, t, w) for (s, t), w in kept.items()], duplicates, rejected


@dataclass(frozen=True)
class Dictionary:
    """A bilingual word dictionary: ``pairs`` translate words of ``src_lang`` into ``tgt_lang``.

    ``rejected`` lists lines skipped while loading; ``duplicates`` counts pairs merged into an
    earlier identical pair by normalisation (the report shows both).
    """

    pairs: tuple[WordPair, ...]
    src_lang: str | None = None
    tgt_lang: str | None = None
    name: str = "dictionary"
    rejected: tuple[RejectedLine, ...] = ()
    duplicates: int = 0

    def __post_init__(self) -> None:
        # Accept lists for convenience but keep the object immutable.
        object.__setattr__(self, "pairs", tuple(self.pairs))
        object.__setattr__(self, "rejected", tuple(self.rejected))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str] | tuple[str, str, float] | WordPair],
                   src_lang: str | None = None, tgt_lang: str | None = None,
                   name: str = "dictionary") -> Dictionary:
        """Build a dictionary from (src, tgt) or (src, tgt, weight) tuples, unnormalised.

        Example:
            >>> Dictionary.from_pairs([("kat", "cat", 2.0)], "nl", "en").pairs[0].weight
            2.0
        """
        built = [p if isinstance(p, WordPair) else WordPair(*p) for p in pairs]
        return cls(tuple(built), src_lang, tgt_lang, name)

    def reversed(self) -> Dictionary:
        """The same dictionary read the other way round (target → source).

        Example:
            >>> Dictionary.from_pairs([("kat", "cat")], "nl", "en").reversed().pairs[0]
            WordPair(src='cat', tgt='kat', weight=1.0)
        """
        swapped = tuple(WordPair(p.tgt, p.src, p.weight) for p in self.pairs)
        return replace(self, pairs=swapped, src_lang=self.tgt_lang, tgt_lang=self.src_lang)

    def normalised(self, options: DictionaryNormalisation = DictionaryNormalisation()) -> Dictionary:
        """Return a copy with ``options`` applied; dropped empties join ``rejected``."""
        pairs, duplicates, rejected = normalise_pairs(self.pairs, options)
        return replace(self, pairs=tuple(pairs), duplicates=self.duplicates + duplicates,
                       rejected=self.rejected + tuple(rejected))

    def translations(self) -> dict[str, list[tuple[str, float]]]:
        """Map each source word to its (target, weight) list, in dictionary order."""
        table: dict[str, list[tuple[str, float]]] = {}
        for pair in self.pairs:
            table.setdefault(pair.src, []).append((pair.tgt, pair.weight))
        return table


# --------------------------------------------------------------------------- inspection report

REPORT_EXAMPLES = 5
REPORT_REJECTED = 5


@dataclass(frozen=True)
class DictionaryReport:
    """What a dictionary holds, for the inspect-dictionary command and the UI."""

    name: str
    src_lang: str | None
    tgt_lang: str | None
    pairs: int
    unique_src: int
    unique_tgt: int
    multiword_src: float
    """Share of unique source words that contain a space (0..1)."""
    multiword_tgt: float
    """Share of unique target words that contain a space (0..1)."""
    identical: float
    """Share of pairs whose two sides are the same string (names, loanwords, numbers)."""
    translations_per_src: float
    duplicates: int
    """Pairs that repeated an earlier pair (merged by normalisation, or still present)."""
    weighted: bool
    """True if some pair has a weight other than 1."""
    rejected: int
    rejected_examples: tuple[RejectedLine, ...] = ()
    examples: tuple[WordPair, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (plain numbers, strings and lists)."""
        return {
            "name": self.name, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
            "pairs": self.pairs, "unique_src": self.unique_src, "unique_tgt": self.unique_tgt,
            "multiword_src": round(self.multiword_src, 4), "multiword_tgt": round(self.multiword_tgt, 4),
            "identical": round(self.identical, 4),
            "translations_per_src": round(self.translations_per_src, 3),
            "duplicates": self.duplicates, "weighted": self.weighted, "rejected": self.rejected,
            "rejected_examples": [r.to_dict() for r in self.rejected_examples],
            "examples": [{"src": p.src, "tgt": p.tgt, "weight": p.weight} for p in self.examples],
            "notes": list(self.notes),
        }

    def to_text(self) -> str:
        """A few human-readable lines."""
        src, tgt = self.src_lang or "source", self.tgt_lang or "target"
        lines = [
            f"{self.name}: {self.pairs:,} pairs, {src} → {tgt}",
            f"  unique words: {src} {self.unique_src:,}, {tgt} {self.unique_tgt:,}"
            f" ({self.translations_per_src:.2f} translations per {src} word)",
            f"  multi-word entries: {src} {self.multiword_src:.1%}, {tgt} {self.multiword_tgt:.1%};"
            f" identical on both sides: {self.identical:.1%}",
            f"  duplicates: {self.duplicates:,}; rejected lines: {self.rejected:,}",
        ]
        lines += [f"    rejected {r}" for r in self.rejected_examples]
        if self.examples:
            shown = "; ".join(f"{p.src} → {p.tgt}" + (f" ({p.weight:g})" if self.weighted else "")
                              for p in self.examples)
            lines.append(f"  examples: {shown}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def inspect_dictionary(dictionary: Dictionary) -> DictionaryReport:
    """Summarise ``dictionary``: sizes, multi-word shares, duplicates, rejected lines, examples.

    Example:
        >>> d = Dictionary.from_pairs([("kat", "cat"), ("de kat", "the cat")], "nl", "en")
        >>> r = inspect_dictionary(d)
        >>> (r.pairs, r.unique_src, r.multiword_src)
        (2, 2, 0.5)
    """
    pairs = dictionary.pairs
    srcs = {p.src for p in pairs}
    tgts = {p.tgt for p in pairs}
    still_duplicated = len(pairs) - len({(p.src, p.tgt) for p in pairs})
    n = len(pairs)
    # Examples spread evenly through the file: the head of a sorted file is all "-able", "a", ...
    step = max(1, n // REPORT_EXAMPLES)
    examples = tuple(pairs[i] for i in range(step // 2, n, step))[:REPORT_EXAMPLES]
    notes = []
    if dictionary.src_lang is None or dictionary.tgt_lang is None:
        notes.append("languages unknown: name them (src=/tgt=) or use language codes as column names")
    if dictionary.rejected:
        notes.append(f"{len(dictionary.rejected):,} line(s) skipped; fix them or ignore them")
    return DictionaryReport(
        name=dictionary.name, src_lang=dictionary.src_lang, tgt_lang=dictionary.tgt_lang,
        pairs=n, unique_src=len(srcs), unique_tgt=len(tgts),
        multiword_src=_share(sum(" " in w for w in srcs), len(srcs)),
        multiword_tgt=_share(sum(" " in w for w in tgts), len(tgts)),
        identical=_share(sum(p.src == p.tgt for p in pairs), n),
        translations_per_src=_share(n, len(srcs)),
        duplicates=dictionary.duplicates + still_duplicated,
        weighted=any(p.weight != 1.0 for p in pairs),
        rejected=len(dictionary.rejected),
        rejected_examples=dictionary.rejected[:REPORT_REJECTED],
        examples=examples, notes=tuple(notes))


def _share(part: int | float, whole: int) -> float:
    return part / whole if whole else 0.0
