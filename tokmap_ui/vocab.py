"""The Vocabulary view: what every token of a tokenizer stands for, in one comparable form.

Tokenizer families spell the same text differently: GPT-2 byte-level BPE writes " kat"
as ``Ġkat`` and "é" as ``Ã©``; SentencePiece writes ``▁kat`` and falls back to
``<0xC3>``; WordPiece writes a word's second piece as ``##en``. Mapping one vocabulary
onto another (Tik-to-Tok, PM-MinED) needs the *canonical* text behind each token plus a
word-start flag, so that ``Ġkat``, ``▁kat`` and ``kat`` (WordPiece) all become
``("kat", True)``. :class:`Vocabulary` holds that view as plain tuples and numpy arrays,
built once per tokenizer (vectorised enough for 150k tokens in well under a second).

Example:
    >>> vocab = Vocabulary.from_tokenizer(tokenizer)          # doctest: +SKIP
    >>> i = vocab.id_of("Ġkat")                               # doctest: +SKIP
    >>> vocab.canonical[i], bool(vocab.starts_word[i])        # doctest: +SKIP
    ('kat', True)

Conventions (decided here, relied on by mapping/ and cmc/):

* Special tokens keep their raw string as canonical text and never start a word.
* A bare marker token (``Ġ``, ``▁``) starts a word and has canonical text ``""``.
  Further markers inside a token are spaces: ``▁▁▁▁`` is ``("   ", True)``.
* Byte tokens: ``<0xNN>`` (SentencePiece byte fallback) and byte-level tokens that are
  exactly one byte get ``byte_value`` N. Their canonical text is the character for ASCII
  bytes (``<0x41>`` -> ``"A"``, ``Ċ`` -> ``"\\n"``) and ``"<0xNN>"`` otherwise.
* Partial UTF-8: byte-level tokens whose bytes are not complete UTF-8 keep the valid part
  as text and write every stray byte as ``<0xNN>`` (``Ã`` -> ``"<0xC3>"``, ``Ġâ`` ->
  ``("<0xE2>", True)``), so they line up with SentencePiece byte-fallback tokens.
* Non-special added tokens are plain text (the tokenizers library stores them
  undecoded); a leading space or marker makes them start a word.
* With no marker convention (``WordMarker.NONE``, e.g. WordLevel) no token starts a word.
* ``sha256`` (:func:`vocabulary_sha256`) hashes the marker and the raw tokens in id order;
  token-map files record it to check they are applied to the vocabulary they were made for.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

ROLES = ("bos", "eos", "pad", "unk", "cls", "sep", "mask")
# Conventional spellings, used only when a tokenizer declares no token for a role
# (a bare tokenizer.json carries no roles). GPT-2's <|endoftext|> is an eos.
CONVENTIONAL_ROLE_TOKENS: dict[str, tuple[str, ...]] = {
    "bos": ("<s>", "<bos>", "<|begin_of_text|>", "<|startoftext|>", "[BOS]", "<|bos|>"),
    "eos": ("</s>", "<eos>", "<|endoftext|>", "<|end_of_text|>", "[EOS]", "<|eos|>"),
    "pad": ("<pad>", "[PAD]", "<|pad|>", "<|padding|>"),
    "unk": ("<unk>", "[UNK]", "<|unk|>"),
    "cls": ("[CLS]", "<cls>"),
    "sep": ("[SEP]", "<sep>"),
    "mask": ("[MASK]", "<mask>"),
}
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class WordMarker(str, Enum):
    """How a tokenizer marks the start of a word (WORDPIECE: it marks continuations with ##)."""

    GPT2 = "Ġ"
    METASPACE = "▁"
    WORDPIECE = "##"
    NONE = "none"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (printable Latin-1 stays, the rest move to 256+)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    table, extra = {}, 0
    for byte in range(256):
        if byte in keep:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _bytelevel_translation() -> dict[int, str]:
    # Map each byte-level character to the Latin-1 character of its byte, so that
    # ``token.translate(t).encode("latin-1")`` yields the token's bytes in C speed.
    # Latin-1 characters *outside* the alphabet (space, newline, ...) map to U+FFFF,
    # which makes the encode fail: such a token is not byte-level text.
    table = {ord(ch): chr(byte) for byte, ch in bytes_to_unicode().items()}
    for code in range(256):
        table.setdefault(code, "\uffff")
    return table


_BYTELEVEL_TABLE = _bytelevel_translation()


def _hex_bytes(err: UnicodeError) -> tuple[str, int]:
    bad = err.object[err.start:err.end]  # type: ignore[attr-defined]
    return "".join(f"<0x{b:02X}>" for b in bad), err.end  # type: ignore[attr-defined]


codecs.register_error("tokmap-hexbyte", _hex_bytes)


def bytelevel_to_bytes(token: str) -> bytes | None:
    """The bytes a GPT-2 byte-level token stands for, or None if it is not byte-level text.

    Example:
        >>> bytelevel_to_bytes("Ġkat"), bytelevel_to_bytes("Ã©")
        (b' kat', b'\\xc3\\xa9')
    """
    try:
        return token.translate(_BYTELEVEL_TABLE).encode("latin-1")
    except UnicodeEncodeError:
        return None


def bytes_to_text(data: bytes) -> str:
    """Decode UTF-8, writing each byte that is not part of a complete character as ``<0xNN>``.

    Example:
        >>> bytes_to_text(b"caf\\xc3\\xa9\\xe2\\x80")
        'café<0xE2><0x80>'
    """
    return data.decode("utf-8", "tokmap-hexbyte")


def _byte_text(value: int) -> str:
    return chr(value) if value < 0x80 else f"<0x{value:02X}>"


def _component_json(component: Any) -> str:
    """A tokenizers normalizer / pre-tokenizer / decoder as its (small) JSON text, '' if absent."""
    if component is None:
        return ""
    try:
        return component.__getstate__().decode("utf-8")
    except Exception:  # an exotic component without a JSON state: treat as unknown
        return ""


def detect_marker(tokenizer: Any, tokens: tuple[str, ...] | None = None) -> WordMarker:
    """Word-start convention of a fast tokenizer, from its pipeline, else from its tokens.

    ByteLevel anywhere -> GPT2; a WordPiece model or a ``##`` continuation prefix -> WORDPIECE;
    Metaspace, or ``▁`` in the normalizer or decoder (Llama style) -> METASPACE; otherwise
    whichever of ``Ġ``/``▁`` starts at least 10% of the tokens, else NONE.
    """
    backend = tokenizer.backend_tokenizer
    model = backend.model
    if type(model).__name__ == "WordPiece" or getattr(model, "continuing_subword_prefix", None) == "##":
        return WordMarker.WORDPIECE
    pipeline = " ".join(_component_json(c) for c in (backend.normalizer, backend.pre_tokenizer, backend.decoder))
    if '"ByteLevel"' in pipeline:
        return WordMarker.GPT2
    if '"Metaspace"' in pipeline or "\u2581" in pipeline:
        return WordMarker.METASPACE
    if tokens:
        share = {m: sum(t.startswith(m.value) for t in tokens) / len(tokens)
                 for m in (WordMarker.GPT2, WordMarker.METASPACE)}
        best = max(share, key=share.get)
        if share[best] >= 0.1:
            return best
    return WordMarker.NONE


def _canonical(raw: str, marker: WordMarker) -> tuple[str, bool, int]:
    """(canonical text, starts a word, byte value or -1) of one model token."""
    if marker is WordMarker.GPT2:
        data = bytelevel_to_bytes(raw)
        if data is None:  # not byte-level text (an odd model token): read it literally
            return raw, False, -1
        return _bytelevel_canonical(data)
    match = _BYTE_TOKEN.fullmatch(raw) if raw.startswith("<0x") else None
    if match:
        byte = int(match.group(1), 16)
        return _byte_text(byte), False, byte
    if marker is WordMarker.WORDPIECE:
        if raw.startswith("##") and len(raw) > 2:
            return raw[2:], False, -1
        return raw, True, -1
    if marker is WordMarker.METASPACE:
        text = raw.replace("\u2581", " ")
        if text.startswith(" "):
            return text[1:], True, -1
        return text, False, -1
    return raw, False, -1


def _bytelevel_canonical(data: bytes) -> tuple[str, bool, int]:
    """Canonical row of a byte-level token given its bytes (``b" kat"`` -> ``("kat", True, -1)``)."""
    if not data:
        return "", False, -1
    if len(data) == 1:
        byte = data[0]
        return ("", True, byte) if byte == 0x20 else (_byte_text(byte), False, byte)
    if data[0] == 0x20:
        return data[1:].decode("utf-8", "tokmap-hexbyte"), True, -1
    return data.decode("utf-8", "tokmap-hexbyte"), False, -1


def _canonical_all(tokens: list[str], marker: WordMarker) -> list[tuple[str, bool, int]]:
    """:func:`_canonical` of every token; byte-level vocabularies are translated in one pass.

    Byte-level characters map one-to-one to bytes, so the joined vocabulary is translated
    and encoded once (C speed) and cut back into tokens by their lengths.
    """
    if marker is WordMarker.GPT2:
        try:
            data = "".join(tokens).translate(_BYTELEVEL_TABLE).encode("latin-1")
        except UnicodeEncodeError:  # some model token is not byte-level text: go one by one
            return [_canonical(raw, marker) for raw in tokens]
        result, pos, decode = [], 0, bytes.decode
        for raw in tokens:
            end = pos + len(raw)
            if end - pos > 1:  # inlined _bytelevel_canonical: this loop runs 150k times
                if data[pos] == 0x20:
                    result.append((decode(data[pos + 1:end], "utf-8", "tokmap-hexbyte"), True, -1))
                else:
                    result.append((decode(data[pos:end], "utf-8", "tokmap-hexbyte"), False, -1))
            else:
                result.append(_bytelevel_canonical(data[pos:end]))
            pos = end
        return result
    if marker is WordMarker.METASPACE:  # inlined _canonical, the other hot loop
        rows = []
        for raw in tokens:
            if raw.startswith("<0x"):
                rows.append(_canonical(raw, marker))
                continue
            text = raw.replace("\u2581", " ")
            rows.append((text[1:], True, -1) if text[:1] == " " else (text, False, -1))
        return rows
    return [_canonical(raw, marker) for raw in tokens]


def _added_canonical(content: str) -> tuple[str, bool]:
    if content[:1] in (" ", "\u2581", "Ġ") and len(content) > 1:
        return content[1:], True
    return content, False


def vocabulary_sha256(tokens: tuple[str, ...] | list[str], marker: WordMarker) -> str:
    """SHA-256 identifying a vocabulary: its marker, then every raw token in id order.

    The token lengths are hashed beside the NUL-joined tokens, so no two different token
    lists hash the same text.
    """
    digest = hashlib.sha256(f"tokmap-vocab/1\n{marker.value}\n".encode())
    digest.update(np.fromiter(map(len, tokens), dtype="<i8", count=len(tokens)).tobytes())
    digest.update("\x00".join(tokens).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def guess_special_roles(specials: dict[str, int]) -> dict[str, int]:
    """Roles for special tokens spelled the conventional way, e.g. ``{"</s>": 2}`` -> ``{"eos": 2}``."""
    roles = {}
    for role, spellings in CONVENTIONAL_ROLE_TOKENS.items():
        for spelling in spellings:
            if spelling in specials:
                roles[role] = specials[spelling]
                break
    return roles


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Every token of one tokenizer: raw string, canonical text, word start, byte, special role.

    Build it with :meth:`from_tokenizer`; arrays are read-only and indexed by token id.
    """

    name: str
    tokens: tuple[str, ...]
    canonical: tuple[str, ...]
    starts_word: np.ndarray      # (V,) bool
    is_special: np.ndarray       # (V,) bool
    byte_value: np.ndarray       # (V,) int16, -1 where the token is not a single byte
    special_roles: dict[str, int]
    added_ids: frozenset[int]
    marker: WordMarker
    sha256: str
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.tokens)

    def id_of(self, raw_token: str) -> int | None:
        """Id of a raw token string (``"Ġkat"``), or None if the vocabulary lacks it."""
        if "id_of" not in self._cache:
            index: dict[str, int] = {}
            for i, token in enumerate(self.tokens):
                index.setdefault(token, i)
            self._cache["id_of"] = index
        return self._cache["id_of"].get(raw_token)

    def ids_by_canonical(self) -> dict[tuple[str, bool], list[int]]:
        """``(canonical, starts_word) -> ids`` in id order, specials included (cached).

        Example: in a GPT-2 vocabulary ``("kat", True)`` lists the id of ``Ġkat``.
        """
        if "by_canonical" not in self._cache:
            groups: dict[tuple[str, bool], list[int]] = {}
            for i, (text, start) in enumerate(zip(self.canonical, self.starts_word.tolist())):
                groups.setdefault((text, start), []).append(i)
            self._cache["by_canonical"] = groups
        return self._cache["by_canonical"]

    def byte_ids(self) -> dict[int, int]:
        """Byte value -> id of the token that stands for exactly that byte (lowest id wins)."""
        if "byte_ids" not in self._cache:
            result: dict[int, int] = {}
            for i in np.flatnonzero(self.byte_value >= 0).tolist():
                result.setdefault(int(self.byte_value[i]), i)
            self._cache["byte_ids"] = result
        return self._cache["byte_ids"]

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, name: str | None = None) -> Vocabulary:
        """Build the view of a transformers fast tokenizer (``PreTrainedTokenizerFast``).

        Roles come from the tokenizer's declared special tokens; roles it does not declare
        are guessed from conventionally spelled special tokens (see ``CONVENTIONAL_ROLE_TOKENS``).
        """
        backend = tokenizer.backend_tokenizer
        token_to_id = backend.get_vocab(with_added_tokens=True)
        size = max(len(tokenizer), max(token_to_id.values(), default=-1) + 1)
        raw = [""] * size  # ids without a token (holes) stay "" and match nothing
        for token, i in token_to_id.items():
            raw[i] = token
        tokens = tuple(raw)
        marker = detect_marker(tokenizer, tokens)

        added = {i: t for i, t in tokenizer.added_tokens_decoder.items() if 0 <= i < size}
        special_ids = {i for i, t in added.items() if t.special}
        special_ids.update(i for i in tokenizer.all_special_ids if i is not None and 0 <= i < size)
        model = backend.model
        plain_added = {i for i, t in added.items() if i not in special_ids and model.id_to_token(i) != str(t)}

        # Specials keep their raw string; plain added tokens are text; the rest is decoded.
        model_tokens = ["" if i in special_ids or i in plain_added else t for i, t in enumerate(tokens)]
        rows = _canonical_all(model_tokens, marker)
        for i in special_ids:
            rows[i] = (tokens[i], False, -1)
        for i in plain_added:
            rows[i] = (*_added_canonical(tokens[i]), -1)
        canonical = [row[0] for row in rows]
        starts = np.fromiter((row[1] for row in rows), dtype=bool, count=size)
        byte_value = np.fromiter((row[2] for row in rows), dtype=np.int16, count=size)
        is_special = np.zeros(size, dtype=bool)
        is_special[list(special_ids)] = True

        roles = _declared_roles(tokenizer, token_to_id)
        if "unk" not in roles and getattr(model, "unk_token", None) in token_to_id:
            roles["unk"] = token_to_id[model.unk_token]
        specials_by_token = {tokens[i]: i for i in sorted(special_ids)}
        for role, i in guess_special_roles(specials_by_token).items():
            roles.setdefault(role, i)

        digest = vocabulary_sha256(tokens, marker)
        for array in (starts, is_special, byte_value):
            array.flags.writeable = False
        return cls(name=name or str(getattr(tokenizer, "name_or_path", "") or "vocabulary"), tokens=tokens,
                   canonical=tuple(canonical), starts_word=starts, is_special=is_special, byte_value=byte_value,
                   special_roles={r: roles[r] for r in ROLES if r in roles}, added_ids=frozenset(added),
                   marker=marker, sha256=digest)


def _declared_roles(tokenizer: Any, token_to_id: dict[str, int]) -> dict[str, int]:
    """Roles the tokenizer declares whose token really is in the vocabulary.

    ``convert_tokens_to_ids`` would answer the unk id for a missing token, so look up the
    string ourselves.
    """
    roles = {}
    for role in ROLES:
        token = getattr(tokenizer, f"{role}_token", None)
        if token is not None and str(token) in token_to_id:
            roles[role] = token_to_id[str(token)]
    return roles
