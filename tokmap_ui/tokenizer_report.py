"""What a tokenizer is, in one report: family, markers, specials, bytes, round-trip losslessness.

:func:`inspect_tokenizer` takes a fast tokenizer object (``tokmap_ui.io.tokenizers``
loads one from disk) and returns a frozen :class:`TokenizerReport`, which the CLI prints
with :meth:`TokenizerReport.to_text` or as JSON with :meth:`TokenizerReport.to_dict`,
and the UI shows on the tokenizer panel. The checks are the ones a conversion needs
before it starts (research/tiktotok.md §4): word-start and continuation markers,
byte-fallback tokens, special tokens and the ids the post-processor uses (RobBERT-2023
shipped with a wrong ``sep`` id), and whether decode(encode(text)) gives the text back.

Example:
    >>> report = inspect_tokenizer(tokenizer)                  # doctest: +SKIP
    >>> report.kind, report.word_start_marker, report.lossless  # doctest: +SKIP
    ('bpe-bytelevel', 'Ġ', True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from tokmap_ui.vocab import Vocabulary, WordMarker

MAX_SAMPLE_LINES = 2000
DEFAULT_SAMPLE = "\n".join([
    "The quick brown fox jumps over the lazy dog.",
    "De kat zit op de mat, en de hond rent naar de tuin.",
    "Het meisje fietst naar school; één ijsje kost €2,50.",
    "Ça coûte 15 € — naïve façade, déjà vu in Zürich and São Paulo.",
    "日本語のテキストと中文文本。",
    "Emoji: 🙂 🚲 👩‍💻 and 🇳🇱!",
    "Numbers 3.14159, 2024-05-01 and 1,000,000.",
])


@dataclass(frozen=True)
class TokenizerReport:
    """Facts about one tokenizer; every field is JSON-able through :meth:`to_dict`."""

    name: str
    kind: str                      #: "bpe-bytelevel", "bpe", "unigram", "wordpiece", "wordlevel", ...
    model_type: str                #: the tokenizers model class: BPE, Unigram, WordPiece, WordLevel
    vocab_size: int                #: len(tokenizer), added tokens included
    base_vocab_size: int           #: tokens of the model itself, without added tokens
    word_start_marker: str         #: "Ġ", "▁" or "none"
    continuation_marker: str       #: "##" or "none"
    byte_level: bool               #: GPT-2 byte-level alphabet (every byte is a token)
    byte_fallback: bool            #: unknown characters fall back to <0xNN> tokens
    n_byte_tokens: int             #: how many <0xNN> tokens the vocabulary has
    normalizer: str                #: e.g. "NFKC", "BertNormalizer(lowercase)", "none"
    special_tokens: tuple[tuple[str, str, int], ...]   #: (role, token, id); role "other" if none
    added_tokens: tuple[tuple[int, str, bool], ...]    #: (id, content, special)
    lossless: bool                 #: decode(encode(line)) == line on every sample line
    n_sample_lines: int
    first_difference: tuple[str, str] | None           #: (line, what came back) for the first loss
    tokens_per_word: float         #: on the sample (whitespace-separated words)
    sample_unknown_tokens: int     #: unk tokens produced on the sample
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists and plain scalars only)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["special_tokens"] = [{"role": r, "token": t, "id": i} for r, t, i in self.special_tokens]
        data["added_tokens"] = [{"id": i, "content": c, "special": s} for i, c, s in self.added_tokens]
        data["first_difference"] = (None if self.first_difference is None else
                                    {"text": self.first_difference[0], "decoded": self.first_difference[1]})
        data["warnings"] = list(self.warnings)
        return data

    def to_text(self) -> str:
        """A short human-readable summary, one fact per line."""
        yes = {True: "yes", False: "no"}
        added = len(self.added_tokens)
        specials = ", ".join(f"{r}={t!s} ({i})" for r, t, i in self.special_tokens) or "none"
        lines = [
            f"Tokenizer: {self.name}",
            f"  kind: {self.kind} ({self.model_type} model); normalizer: {self.normalizer}",
            f"  vocabulary: {self.vocab_size:,} tokens ({self.base_vocab_size:,} from the model, "
            f"{self.vocab_size - self.base_vocab_size:,} added on top)",
            f"  word-start marker: {self.word_start_marker}; continuation marker: {self.continuation_marker}",
            f"  byte-level: {yes[self.byte_level]}; byte fallback: {yes[self.byte_fallback]} "
            f"({self.n_byte_tokens} <0xNN> tokens)",
            f"  special tokens: {specials}",
        ]
        if added:
            shown = ", ".join(f"{c!r} ({i})" for i, c, _ in self.added_tokens[:8])
            lines.append(f"  added tokens ({added}): {shown}{', ...' if added > 8 else ''}")
        if self.lossless:
            lines.append(f"  round trip on {self.n_sample_lines} sample lines: lossless")
        else:
            text, decoded = self.first_difference or ("", "")
            lines += [f"  round trip on {self.n_sample_lines} sample lines: NOT lossless; first difference:",
                      f"      text:    {text!r}", f"      decoded: {decoded!r}"]
        lines.append(f"  sample: {self.tokens_per_word:.2f} tokens per word, "
                     f"{self.sample_unknown_tokens} unknown tokens")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def _state(component: Any) -> dict:
    if component is None:
        return {}
    try:
        return json.loads(component.__getstate__())
    except Exception:
        return {}


def _describe(state: dict) -> str:
    """Short name of a normalizer from its JSON state: "NFKC + Lowercase", "BertNormalizer(lowercase)"."""
    if not state:
        return "none"
    kind = state.get("type", "?")
    if kind == "Sequence":
        return " + ".join(_describe(s) for s in state.get("normalizers", [])) or "none"
    if kind == "BertNormalizer" and state.get("lowercase"):
        return "BertNormalizer(lowercase)"
    return kind


def _post_processor_ids(state: dict) -> list[tuple[str, int]]:
    """(token, id) pairs the post-processor inserts, from its JSON state."""
    kind = state.get("type")
    if kind == "Sequence":
        return [pair for child in state.get("processors", []) for pair in _post_processor_ids(child)]
    if kind == "TemplateProcessing":
        return [(token, ident) for spec in state.get("special_tokens", {}).values()
                for token, ident in zip(spec.get("tokens", []), spec.get("ids", []))]
    if kind in ("BertProcessing", "RobertaProcessing"):
        return [tuple(state[key]) for key in ("sep", "cls") if key in state]
    return []


def _byte_fallback(tokenizer: Any) -> bool:
    model = tokenizer.backend_tokenizer.model
    if hasattr(model, "byte_fallback"):
        return bool(model.byte_fallback)
    if type(model).__name__ == "Unigram":  # the flag is only in the (large) model state
        return bool(_state(model).get("byte_fallback", False))
    return False


def _round_trip(tokenizer: Any, lines: list[str], unk_id: int | None):
    encoded = tokenizer(lines, add_special_tokens=False)["input_ids"] if lines else []
    decoded = tokenizer.batch_decode(encoded, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    first = next(((line, back) for line, back in zip(lines, decoded) if back != line), None)
    n_tokens = sum(len(ids) for ids in encoded)
    n_words = sum(len(line.split()) for line in lines)
    unknown = sum(ids.count(unk_id) for ids in encoded) if unk_id is not None else 0
    return first, n_tokens / max(n_words, 1), unknown


def inspect_tokenizer(tokenizer: Any, sample_text: str | None = None) -> TokenizerReport:
    """Report on a transformers fast tokenizer.

    Args:
        tokenizer: a ``PreTrainedTokenizerFast``.
        sample_text: text for the round-trip check, one case per line (default: English,
            Dutch, accents, CJK, emoji and numbers). At most 2,000 lines are checked.
    """
    vocab = Vocabulary.from_tokenizer(tokenizer)
    backend = tokenizer.backend_tokenizer
    model_type = type(backend.model).__name__
    byte_level = vocab.marker is WordMarker.GPT2
    kind = model_type.lower() + ("-bytelevel" if byte_level else "")
    n_byte_tokens = 0 if byte_level else int(np.count_nonzero(vocab.byte_value >= 0))

    role_ids = set(vocab.special_roles.values())
    specials = [(role, vocab.tokens[i], i) for role, i in vocab.special_roles.items()]
    specials += [("other", vocab.tokens[i], i) for i in np.flatnonzero(vocab.is_special).tolist() if i not in role_ids]
    added = tuple((i, str(t), bool(t.special)) for i, t in sorted(tokenizer.added_tokens_decoder.items()))

    text = DEFAULT_SAMPLE if sample_text is None else sample_text
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()][:MAX_SAMPLE_LINES]
    first, per_word, unknown = _round_trip(tokenizer, lines, vocab.special_roles.get("unk"))

    warnings = []
    for token, ident in _post_processor_ids(_state(backend.post_processor)):
        actual = vocab.id_of(token)
        if actual is not None and actual != ident:
            warnings.append(f"the post-processor inserts '{token}' with id {ident}, but the vocabulary has it at "
                            f"id {actual}; fix the post_processor in tokenizer.json")
    if unknown:
        warnings.append(f"{unknown} unknown tokens on the sample: some characters are not in the vocabulary")
    holes = vocab.tokens.count("")
    if holes:
        warnings.append(f"{holes} ids have no token (gaps in the id range)")
    continuation = "##" if vocab.marker is WordMarker.WORDPIECE else "none"
    start = vocab.marker.value if vocab.marker in (WordMarker.GPT2, WordMarker.METASPACE) else "none"
    return TokenizerReport(
        name=vocab.name, kind=kind, model_type=model_type, vocab_size=len(tokenizer),
        base_vocab_size=backend.get_vocab_size(with_added_tokens=False), word_start_marker=start,
        continuation_marker=continuation, byte_level=byte_level, byte_fallback=_byte_fallback(tokenizer),
        n_byte_tokens=n_byte_tokens, normalizer=_describe(_state(backend.normalizer)),
        special_tokens=tuple(specials), added_tokens=added, lossless=first is None, n_sample_lines=len(lines),
        first_difference=first, tokens_per_word=round(per_word, 4), sample_unknown_tokens=unknown,
        warnings=tuple(warnings))
