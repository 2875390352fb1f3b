"""Keeping two token streams in step: host ids → text → the delta's ids, without re-encoding everything.

With different vocabularies the host and the delta see the same *text* through different
tokens. After each host token the delta's ids must again be the delta tokenizer's encoding of
the text so far. The CMC reference re-encodes the whole response and drops the delta's KV cache
on every inexact token (research/cmc.md §3); here only a trailing window is re-encoded:

* **Stable boundary.** A position where a non-space character is followed by a space is a
  pre-tokenizer split for the tokenizers in use (GPT-2's regex, SentencePiece/Metaspace ``▁``
  pieces never end in a space): everything before it encodes the same whatever follows. The
  delta's tokens up to the last such boundary that already existed in the old text are kept
  (with their KV cache); only the text after it is re-encoded.
* **Anchor.** The window is encoded as ``"a" + window`` and the anchor's tokens dropped, so
  tokenizers that prepend a word marker to every input (Llama's ``Prepend("▁")``) do not add a
  spurious ``▁`` at the cut.

:class:`DeltaTokens` tells the caller how many of its tokens to keep and which to append, so
the delta model rolls back only those positions. ``verify=True`` checks the result against a
full re-encode (tests use it; it is the invariant this module promises).

Host text comes from :class:`Detokenizer`, the streaming detokenizer of TGI: decode a few
tokens of context plus the new ones and emit the difference, holding back half-finished UTF-8.

Example:
    >>> dt = DeltaTokens(tok, "The cat")                        # doctest: +SKIP
    >>> keep, new = dt.update("The cat sat")                   # doctest: +SKIP
    >>> dt.ids == tok("The cat sat")["input_ids"]              # doctest: +SKIP
    True
"""

from __future__ import annotations

from typing import Any

from tokmap_ui.errors import TokenizerError

ANCHOR = "a"        # any short non-space text: the cut after it is a split for every tokenizer in use
_REPLACEMENT = "\ufffd"


def _split_points_ok(text: str, p: int) -> bool:
    """True when position ``p`` is a stable split: the start, or a non-space then a space."""
    return p == 0 or (not text[p - 1].isspace() and text[p].isspace())


def last_stable_boundary(text: str, limit: int) -> int:
    """The last stable split ``p <= limit`` of ``text`` (``p < len(text)`` unless ``p == 0``).

    Example:
        >>> last_stable_boundary("the cat sat", 11)
        7
        >>> last_stable_boundary("the cat sat", 6)
        3
    """
    p = min(limit, len(text) - 1)
    while p > 0 and not _split_points_ok(text, p):
        p -= 1
    return max(p, 0)


class DeltaTokens:
    """The delta tokenizer's view of a growing text: ids and the character end of each.

    Args:
        tokenizer: the delta's fast tokenizer.
        prompt: the text the stream starts from (encoded with special tokens, e.g. BOS).
        verify: after every update, compare with a full re-encode and raise if they differ.
    """

    def __init__(self, tokenizer: Any, prompt: str, verify: bool = False):
        self.tokenizer = tokenizer
        self.backend = tokenizer.backend_tokenizer  # the Rust tokenizer: ~10x less overhead per call
        self.verify = verify
        self.text = prompt
        enc = self.backend.encode(prompt, add_special_tokens=True)
        self.ids: list[int] = list(enc.ids)
        self.ends: list[int] = [int(e) for _, e in enc.offsets]
        self.n_special_prefix = 0  # leading special tokens (BOS): never cut
        self.n_context = 0
        for flag in enc.special_tokens_mask:
            if not flag:
                break
            self.n_special_prefix += 1
        if not self.ids:
            ctx = getattr(tokenizer, "bos_token_id", None)
            ctx = ctx if ctx is not None else getattr(tokenizer, "eos_token_id", None)
            if ctx is None:
                raise TokenizerError("delta tokenizer", "encodes an empty prompt to no token and has no BOS/EOS",
                                     fix="give a non-empty prompt, or a delta tokenizer with a BOS or EOS token")
            self.ids, self.ends, self.n_special_prefix = [int(ctx)], [0], 1
            self.n_context = 1  # a context id the tokenizer itself does not add
        self.reencoded_chars = 0  # how much text windows covered in total (for benchmarks)

    def _encode_window(self, start: int) -> tuple[list[int], list[int]]:
        """Ids and absolute char ends of ``text[start:]`` as it is encoded inside the full text."""
        window = self.text[start:]
        enc = self.backend.encode(ANCHOR + window, add_special_tokens=False)
        ids, ends = [], []
        cut = len(ANCHOR)
        for token, (_, end) in zip(enc.ids, enc.offsets):
            if end <= cut:
                continue  # the anchor's own tokens
            ids.append(int(token))
            ends.append(start + int(end) - cut)
        self.reencoded_chars += len(window)
        return ids, ends

    def update(self, text: str) -> tuple[int, list[int]]:
        """Move to ``text`` (the old text plus more); return ``(keep, new_ids)``.

        The caller keeps its first ``keep`` tokens (and their KV cache) and appends ``new_ids``.
        """
        old_len = len(self.text)
        if not text.startswith(self.text):
            raise ValueError("DeltaTokens.update: the text may only grow")
        self.text = text
        if len(text) == old_len:
            return len(self.ids), []
        boundary = last_stable_boundary(text, old_len)
        if boundary == 0:
            keep = self.n_special_prefix
            body = self.backend.encode(text, add_special_tokens=False)
            new_ids = [int(i) for i in body.ids]
            new_ends = [int(e) for _, e in body.offsets]
            self.reencoded_chars += len(text)
        else:
            keep = self.n_special_prefix
            while keep < len(self.ids) and self.ends[keep] <= boundary:
                keep += 1
            new_ids, new_ends = self._encode_window(boundary)
        # Tokens the window re-encoded identically need no recompute: extend ``keep`` over them.
        same = 0
        while (same < len(new_ids) and keep + same < len(self.ids)
               and self.ids[keep + same] == new_ids[same] and self.ends[keep + same] == new_ends[same]):
            same += 1
        # A token whose end moved (its text grew) is not "the same": its end check above handles that.
        keep += same
        new_ids, new_ends = new_ids[same:], new_ends[same:]
        self.ids = self.ids[:keep] + new_ids
        self.ends = self.ends[:keep] + new_ends
        if self.verify:
            self.check()
        return keep, new_ids

    def check(self) -> None:
        """Raise AssertionError unless the ids equal a full re-encode of the text."""
        full = list(self.tokenizer(self.text, add_special_tokens=True)["input_ids"])
        if full != self.ids[self.n_context:]:
            raise AssertionError(f"delta stream out of sync for {self.text!r}: {self.ids} != {full}")


class Detokenizer:
    """Streaming text of generated ids (the TGI scheme), robust to leading-space stripping and partial UTF-8.

    Args:
        tokenizer: the host's tokenizer.
        prompt_ids: the prompt's ids; the last few give context so the first generated token
            keeps its leading space (SentencePiece decoders strip it at the start of a decode).
    """

    def __init__(self, tokenizer: Any, prompt_ids: list[int]):
        self.tokenizer = tokenizer
        self.backend = tokenizer.backend_tokenizer
        self.ids = list(prompt_ids)
        self.prefix_offset = max(len(self.ids) - 5, 0)
        self.read_offset = len(self.ids)
        self.text = ""  # the response so far

    def _decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        """Add one generated id; return the text it completes (may be "" while UTF-8 is partial)."""
        self.ids.append(int(token_id))
        before = self._decode(self.ids[self.prefix_offset:self.read_offset])
        after = self._decode(self.ids[self.prefix_offset:])
        if len(after) > len(before) and not after.endswith(_REPLACEMENT):
            piece = after[len(before):]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            self.text += piece
            return piece
        return ""

    def flush(self) -> str:
        """Text still held back at the end (a trailing partial character becomes U+FFFD)."""
        before = self._decode(self.ids[self.prefix_offset:self.read_offset])
        after = self._decode(self.ids[self.prefix_offset:])
        piece = after[len(before):] if len(after) > len(before) else ""
        self.prefix_offset = self.read_offset = len(self.ids)
        self.text += piece
        return piece
