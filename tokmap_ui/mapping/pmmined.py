"""PM-MinED: map every host token to one delta token (Cross-model Control, Wu et al. 2024).

The rule of the CMC reference script (``token_maps/mistral_llama_one2one.py``; research/cmc.md §2),
for each host token ``s`` in id order:

1. a special token, or a ``<…>`` token (``<0xNN>`` bytes), maps to the delta token with the *same id*;
2. a delta token with exactly the same string wins;
3. otherwise candidates are delta tokens ``r`` with ``s.startswith(r)`` or ``r.startswith(s)``, the bare
   ``▁`` excluded (unless ``s`` is all ``▁``); the minimum Levenshtein distance wins, ties to the
   lowest delta id; no candidate leaves ``s`` unmapped.

The reference loops over every delta token for every host token (minutes for 32k × 32k). This
module gives the same answer in well under a second, because for prefix relatives the edit distance
is just the length difference: a prefix ``p`` of ``s`` is at distance ``len(s) - len(p)`` (so the
longest one wins; look up each prefix of ``s`` in a hash map) and an extension ``c`` of ``s`` at
``len(c) - len(s)`` (so the shortest, lowest-id one wins; extensions form one contiguous range of
the sorted strings, whose minimum a sparse table answers in O(1)). ``tests/test_pmmined.py`` checks
this against a literal port of the reference loop.

``PmMinedConfig(reference=True)`` reproduces the reference exactly, with three unavoidable
differences: a special id that does not exist in the delta is left unmapped instead of pointing
outside it; holes in a vocabulary's ids are unmapped; and added tokens past ``vocab_size``, which
the reference loop never visits (its map is shorter than the vocabulary), go through the same rule.
The default adds what the reference lacks:

* **markers**: tokens are compared as canonical text plus word-start flag, written as ``▁`` + text,
  so ``Ġkat`` (GPT-2), ``▁kat`` (SentencePiece) and ``kat`` (WordPiece word start) are all ``▁kat``;
  stray UTF-8 bytes (``<0xE2>``) count as one character each. The reference leaves byte-level BPE
  hosts almost entirely unmapped.
* **specials** by string, then by role (eos → eos), never by id; a special with no counterpart is unmapped.
* **bytes**: host byte tokens map to the delta token of the same byte; a single character with no
  prefix relative maps to the delta token of its first UTF-8 byte (the reference leaves CJK, emoji
  and control characters unmapped).
* **added tokens** (e.g. chat markers) match the delta's token with the same string, specials included.

Example:
    >>> token_map = build_pmmined_map(host_vocab, delta_vocab, PmMinedConfig())   # doctest: +SKIP
    >>> token_map.entries[17].sources, token_map.entries[17].evidence           # doctest: +SKIP
    (((912, 1.0),), (2,))
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tokmap_ui.mapping.tokenmap import EntryMethod, MapEntry, TokenMap, VocabRef, paused_gc
from tokmap_ui.vocab import Vocabulary

ALGORITHM_VERSION = 1  # bump when a change alters the maps built, so disk caches are not reused
BARE = "\u2581"        # the SentencePiece word-start marker that the reference excludes as a candidate
ROLE_PRIORITY = ("eos", "bos", "pad", "unk", "sep", "cls", "mask")  # GPT-2's <|endoftext|> is eos first
_BYTE_ESCAPE = re.compile(r"<0x([0-9A-F]{2})>")
_PUA = 0xF0000  # stray bytes become one private-use character each: U+F00NN stands for byte NN
EXACT, PM_MINED, BYTE, SPECIAL, UNMAPPED = (m.value for m in (  # plain strings: enum access is slow in loops
    EntryMethod.EXACT, EntryMethod.PM_MINED, EntryMethod.BYTE, EntryMethod.SPECIAL, EntryMethod.UNMAPPED))


@dataclass(frozen=True)
class PmMinedConfig:
    """Settings of a PM-MinED map (host → delta)."""

    reference: bool = False
    """Reproduce the CMC reference script exactly (raw strings; specials and <…> tokens by id); the
    options below are then ignored."""
    normalise_markers: bool = True
    """Compare canonical text with its word-start flag, so Ġkat, ▁kat and WordPiece kat are the same token."""
    specials_by_role: bool = True
    """Map special tokens by string, then by role (eos→eos), never by id."""
    byte_fallback: bool = True
    """Map byte tokens to the delta's token for the same byte, and unmatched single characters to the
    delta token of their first UTF-8 byte."""
    match_added_tokens: bool = True
    """Match added tokens (chat markers, user words) to a delta token with the same string, specials included."""

    def to_params(self) -> dict:
        """The config as the map's ``params`` (also the disk-cache key)."""
        return {"method": "pm-mined", "algorithm_version": ALGORITHM_VERSION, **dataclasses.asdict(self)}


# ---------------------------------------------------------------------------- the fast rule

def _is_all_space(text: str) -> bool:
    # The reference's exact test, quirk included: ``$`` also matches before a final "\n".
    return re.match(f"^{BARE}*$", text) is not None


class PrefixIndex:
    """Exact and prefix-relative lookups over the key strings of one (delta) vocabulary.

    Args:
        keys: key string per candidate token; the first occurrence of a key gives its id.
        ids: the token id of each key (ties between extensions of equal length go to the lowest).

    ``sorted_keys`` holds each distinct key once, sorted; ``parent[x]`` is the position of the
    longest other key that is a prefix of ``sorted_keys[x]`` (-1 if none). Every key that is a
    prefix of a query ``s`` is a prefix of ``c``, the greatest key below ``s`` (keys between a
    prefix ``p`` of ``s`` and ``s`` itself all start with ``p``), so the longest one is found by
    walking up ``c``'s parent chain: no per-length hash lookups.
    """

    def __init__(self, keys: list[str], ids: list[int]):
        self.exact: dict[str, int] = {}
        for key, i in zip(keys, ids):
            self.exact.setdefault(key, i)
        self.sorted_keys = sorted(self.exact)
        parent, stack = [], []  # stack: positions of the current key's chain of prefixes
        for x, key in enumerate(self.sorted_keys):
            while stack and not key.startswith(self.sorted_keys[stack[-1]]):
                stack.pop()
            parent.append(stack[-1] if stack else -1)
            stack.append(x)
        self.parent = parent
        self.sorted_ids = [self.exact[k] for k in self.sorted_keys]
        rank = (np.fromiter(map(len, self.sorted_keys), np.int64, len(parent)) << 32) | np.array(
            self.sorted_ids, np.int64)
        # Sparse table: level k holds the minimum (length, id) over 2**k sorted keys from each position.
        levels = [rank]
        while (1 << len(levels)) <= len(rank):
            prev, half = levels[-1], 1 << (len(levels) - 1)
            levels.append(np.minimum(prev[:-half], prev[half:]))
        width = len(rank)
        self.table = np.stack([np.pad(lv, (0, width - len(lv)), constant_values=np.iinfo(np.int64).max)
                               for lv in levels]) if width else np.zeros((1, 0), np.int64)  # (levels, n)

    def nearest(self, queries: list[str]) -> tuple[list[int], list[int]]:
        """For each query: ``(delta_id, distance)`` of its best prefix relative, ``(-1, -1)`` if none.

        Queries must not be keys themselves (the caller handles exact matches first).
        """
        best_id, best_d, ranges = [], [], []
        keys, parent, ids, n_keys = self.sorted_keys, self.parent, self.sorted_ids, len(self.sorted_keys)
        right, left = bisect.bisect_right, bisect.bisect_left
        for q, s in enumerate(queries):
            pos = right(keys, s)
            # (a) the longest key that is a prefix of s, up the chain of the greatest key below s.
            x = pos - 1
            while x >= 0 and (not s.startswith(keys[x]) or (keys[x] == BARE and not _is_all_space(s))):
                x = parent[x]
            if x >= 0:
                best_id.append(ids[x])
                best_d.append(len(s) - len(keys[x]))
            else:
                best_id.append(-1)
                best_d.append(-1)
            # (b) keys that extend s: the contiguous range [pos, hi) of sorted keys starting with s.
            if pos < n_keys and keys[pos].startswith(s):
                if ord(s[-1]) < 0x10FFFF:
                    hi = left(keys, s[:-1] + chr(ord(s[-1]) + 1), pos)
                else:
                    hi = pos
                    while hi < n_keys and keys[hi].startswith(s):
                        hi += 1
                ranges.append((q, pos, hi))
        if ranges:
            q, a, b = (np.array(col, np.int64) for col in zip(*ranges))
            level = np.floor(np.log2(b - a)).astype(np.int64)
            ext = np.minimum(self.table[level, a], self.table[level, b - (1 << level)])
            ext_id = (ext & 0xFFFFFFFF).tolist()
            ext_d = ((ext >> 32) - np.fromiter((len(queries[k]) for k in q.tolist()), np.int64, len(q))).tolist()
            for k, j, d in zip(q.tolist(), ext_id, ext_d):
                cur_id, cur_d = best_id[k], best_d[k]
                if cur_id < 0 or d < cur_d or (d == cur_d and j < cur_id):
                    best_id[k], best_d[k] = j, d
        return best_id, best_d


# ---------------------------------------------------------------------------- building maps

def build_pmmined_map(host: Vocabulary, delta: Vocabulary, config: PmMinedConfig = PmMinedConfig()) -> TokenMap:
    """Map every host token to one delta token (target = host, source = delta).

    Entries: ``sources`` is ``((delta_id, 1.0),)`` or ``()``; ``method`` is special, exact, pm-mined,
    byte or unmapped; ``evidence`` is ``(edit_distance,)`` for exact and pm-mined entries and a short
    reason (``"id"``, ``"string"``, ``"role:eos"``, ``"utf8:E4 B8 AD"``) for special and byte entries.
    """
    with paused_gc():
        plan = _reference_plan(host, delta) if config.reference else _default_plan(host, delta, config)
        entries = []
        for i, token in enumerate(host.tokens):
            target, method, evidence = plan[i]
            sources = ((target, 1.0),) if target >= 0 else ()
            entries.append(MapEntry(i, token, sources, method, evidence))
        return TokenMap("pm-mined", VocabRef.of(host), VocabRef.of(delta), config.to_params(), tuple(entries))


Plan = list  # per host id: (delta_id or -1, method, evidence tuple)


def _finish(plan: Plan, todo: list[int], keys: list[str], index: PrefixIndex,
            is_byte: list[bool] | None = None) -> list[int]:
    """Fill exact and prefix matches for host ids ``todo``; return the ids still unmapped.

    An exact match that lands on a delta byte token (``is_byte``) is labelled a byte entry.
    """
    misses, queries = [], []
    exact = index.exact
    for i in todo:
        j = exact.get(keys[i])
        if j is not None:
            plan[i] = (j, BYTE if is_byte and is_byte[j] else EXACT, (0,))
        else:
            misses.append(i)
            queries.append(keys[i])
    ids, dists = index.nearest(queries)
    left = []
    for i, j, d in zip(misses, ids, dists):
        if j >= 0:
            plan[i] = (j, PM_MINED, (d,))
        else:
            left.append(i)
    return left


def _reference_plan(host: Vocabulary, delta: Vocabulary) -> Plan:
    unmapped = (-1, UNMAPPED, ())
    plan: Plan = [unmapped] * len(host)
    pool = [j for j, t in enumerate(delta.tokens) if t]  # id holes are not tokens
    index = PrefixIndex([delta.tokens[j] for j in pool], pool)
    todo = []
    special, byte_value = host.is_special.tolist(), host.byte_value.tolist()
    for i, token in enumerate(host.tokens):
        if not token:
            continue
        if special[i] or (token.startswith("<") and token.endswith(">") and len(token) > 2):
            method = BYTE if byte_value[i] >= 0 and not special[i] else SPECIAL
            plan[i] = (i, method, ("id",)) if i < len(delta) else (-1, UNMAPPED, ("id outside the delta vocabulary",))
        else:
            todo.append(i)
    _finish(plan, todo, list(host.tokens), index)
    return plan


def _keys(vocab: Vocabulary, normalise: bool) -> list[str]:
    """Comparable strings: ``▁`` + canonical for word starts, spaces as ``▁``, stray bytes as one char each."""
    if not normalise:
        return list(vocab.tokens)
    keys = []
    for text, start in zip(vocab.canonical, vocab.starts_word.tolist()):
        if "<0x" in text:
            text = _BYTE_ESCAPE.sub(lambda m: chr(_PUA + int(m.group(1), 16)), text)
        key = text.replace(" ", BARE)
        keys.append(BARE + key if start else key)
    return keys


def _default_plan(host: Vocabulary, delta: Vocabulary, config: PmMinedConfig) -> Plan:
    unmapped = (-1, UNMAPPED, ())
    plan: Plan = [unmapped] * len(host)
    host_keys, delta_keys = _keys(host, config.normalise_markers), _keys(delta, config.normalise_markers)
    delta_special = delta.is_special.tolist()
    # Byte-fallback tokens (<0xNN>, or a lone non-ASCII byte); GPT-2's "a" is a byte too, but also a letter.
    delta_byte = [b >= 0x80 or (b >= 0 and _BYTE_ESCAPE.fullmatch(t) is not None)
                  for b, t in zip(delta.byte_value.tolist(), delta.tokens)]
    # Candidates: real, non-special tokens; whole-character tokens before byte tokens with the same text
    # (Llama's "A" before "<0x41>"), then lowest id.
    pool = sorted((j for j, t in enumerate(delta.tokens) if t and not delta_special[j] and delta_keys[j]),
                  key=lambda j: (delta_byte[j], j))
    index = PrefixIndex([delta_keys[j] for j in pool], pool)
    host_special, host_bytes = host.is_special.tolist(), host.byte_value.tolist()
    raw_ids: dict[str, int] = {}
    for j, token in enumerate(delta.tokens):
        raw_ids.setdefault(token, j)
    byte_ids = delta.byte_ids() if config.byte_fallback else {}
    added = host.added_ids if config.match_added_tokens else frozenset()
    exact = index.exact
    todo = []
    for i, token in enumerate(host.tokens):
        if not token:
            continue
        if host_special[i]:
            plan[i] = _special(host, delta, i, config)
            continue
        key = host_keys[i]
        j = raw_ids.get(token)  # the same raw string meaning the same text: the identical token
        if j is not None and not delta_special[j] and delta_keys[j] == key:
            plan[i] = (j, BYTE if delta_byte[j] else EXACT, (0,))
        elif j is not None and i in added:
            plan[i] = (j, SPECIAL if delta_special[j] else EXACT, ("string",))
        elif host_bytes[i] >= 0 and host_bytes[i] in byte_ids and key not in exact:
            plan[i] = (byte_ids[host_bytes[i]], BYTE, (f"byte:{host_bytes[i]:02X}",))
        elif key:
            todo.append(i)
    left = _finish(plan, todo, host_keys, index, delta_byte)
    if config.byte_fallback:
        for i in left:
            # One character, or only stray bytes (GPT-2's partial "âĢ"): the delta spells it with byte
            # tokens, and its first byte carries the delta's score for starting that text.
            text = host.canonical[i]
            if len(text) == 1:
                data = text.encode("utf-8", "surrogatepass")
            elif text.startswith("<0x") and not _BYTE_ESCAPE.sub("", text):
                data = bytes(int(m, 16) for m in _BYTE_ESCAPE.findall(text))
            else:
                continue
            if data[0] in byte_ids:
                plan[i] = (byte_ids[data[0]], BYTE, ("utf8:" + data.hex(" ").upper(),))
    return plan


def _special(host: Vocabulary, delta: Vocabulary, i: int, config: PmMinedConfig) -> tuple:
    """A host special token: the same string, else the same role, else unmapped (never the same id)."""
    if not config.specials_by_role:  # the reference's rule: the same id
        return (i, SPECIAL, ("id",)) if i < len(delta) else (-1, UNMAPPED, ())
    j = delta.id_of(host.tokens[i])
    if j is not None and delta.is_special[j]:
        return (j, SPECIAL, ("string",))
    roles = {r for r, k in host.special_roles.items() if k == i}
    for role in ROLE_PRIORITY:
        if role in roles and role in delta.special_roles:
            return (delta.special_roles[role], SPECIAL, (f"role:{role}",))
    if j is not None:
        return (j, SPECIAL, ("string",))
    return (-1, UNMAPPED, ())


def build_pmmined_map_cached(host: Vocabulary, delta: Vocabulary, config: PmMinedConfig = PmMinedConfig(),
                             cache_dir: str | Path | None = None) -> TokenMap:
    """:func:`build_pmmined_map`, cached on disk by both vocabularies' hashes and the config.

    The cache folder defaults to ``$TOKMAP_HOME/cache/token-maps`` (see :mod:`tokmap_ui.io.tokenmaps`).
    """
    from tokmap_ui.io.tokenmaps import cached_token_map

    return cached_token_map("pm-mined", VocabRef.of(host), VocabRef.of(delta), config.to_params(),
                            lambda: build_pmmined_map(host, delta, config), cache_dir)


from tokmap_ui.mapping.pmmined_report import CompatibilityReport, compatibility_report  # noqa: E402

__all__ = ["PmMinedConfig", "PrefixIndex", "build_pmmined_map", "build_pmmined_map_cached",
           "CompatibilityReport", "compatibility_report"]
