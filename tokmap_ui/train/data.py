"""Text → token blocks for training, MLM masking, and evaluation in nats per UTF-8 byte.

Shared by the fine-tune loop (:mod:`tokmap_ui.train.finetune`) and the CMC delta trainer,
so nothing here knows about optimisers, files or progress bars: it takes a tokenizer and a
list of strings and hands back tensors or numbers.

Why *per byte*: a loss per token cannot be compared across tokenizers (a tokenizer with
longer tokens has fewer, harder tokens). The total negative log-likelihood of a text,
divided by its UTF-8 byte count, measures the same thing whatever the vocabulary:
``loss_per_byte = total_nats / n_bytes`` (divide by ln 2 for bits per byte).

Example:
    >>> blocks = TextBlocks.from_texts(tokenizer, ["de kat zat op de mat"], block_size=8)  # doctest: +SKIP
    >>> blocks[0]["input_ids"].shape                                                        # doctest: +SKIP
    torch.Size([8])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from tokmap_ui.errors import ConfigError, TokenizerError

IGNORE_INDEX = -100  # label value that cross_entropy skips


def encode_texts(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text without special tokens (fast tokenizers encode the list in one call)."""
    texts = list(texts)
    if not texts:
        return []
    return [list(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _special_ids(tokenizer: Any) -> set[int]:
    return {int(i) for i in getattr(tokenizer, "all_special_ids", []) or [] if i is not None}


def _pad_id(tokenizer: Any) -> int:
    for name in ("pad_token_id", "eos_token_id", "unk_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0  # padded positions are masked out, so any valid id will do


class TextBlocks(Dataset):
    """Fixed-length blocks of token ids cut from a stream of texts, for CLM or MLM training.

    Texts are encoded, joined (each followed by the tokenizer's EOS token when it has one) and
    cut into blocks of ``block_size`` tokens; a final partial block of two or more tokens is
    kept and padded, so tiny data sets still give a block. With ``wrap_cls_sep`` (BERT-style
    MLM) each block is ``[CLS] …block_size-2 tokens… [SEP]``.

    Items are dicts of ``input_ids`` (T,), ``attention_mask`` (T,) and ``special_mask`` (T,)
    (True where a token must never be masked or scored: specials and padding).
    """

    def __init__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, special_mask: torch.Tensor):
        self.input_ids = input_ids            # (N, T) long
        self.attention_mask = attention_mask  # (N, T) long, 0 on padding
        self.special_mask = special_mask      # (N, T) bool

    @classmethod
    def from_texts(cls, tokenizer: Any, texts: Sequence[str], block_size: int, *,
                   wrap_cls_sep: bool = False, add_eos: bool = True) -> "TextBlocks":
        """Encode ``texts`` with ``tokenizer`` and cut them into blocks (see the class docstring)."""
        if block_size < 2 + (2 if wrap_cls_sep else 0):
            raise ConfigError(f"block size {block_size} is too small. Fix: use a block size of at least 8.")
        eos = getattr(tokenizer, "eos_token_id", None) if add_eos else None
        stream: list[int] = []
        for ids in encode_texts(tokenizer, [t for t in texts if t.strip()]):
            stream.extend(ids)
            if eos is not None:
                stream.append(int(eos))
        cls_id, sep_id = getattr(tokenizer, "cls_token_id", None), getattr(tokenizer, "sep_token_id", None)
        wrap = wrap_cls_sep and cls_id is not None and sep_id is not None
        body = block_size - 2 if wrap else block_size
        chunks = [stream[i:i + body] for i in range(0, len(stream), body)]
        chunks = [c for c in chunks if len(c) >= 2]
        pad, specials = _pad_id(tokenizer), _special_ids(tokenizer)
        n = len(chunks)
        input_ids = torch.full((n, block_size), pad, dtype=torch.long)
        attention = torch.zeros((n, block_size), dtype=torch.long)
        for row, chunk in enumerate(chunks):
            if wrap:
                chunk = [int(cls_id)] + chunk + [int(sep_id)]
            input_ids[row, :len(chunk)] = torch.tensor(chunk, dtype=torch.long)
            attention[row, :len(chunk)] = 1
        special = attention.eq(0)
        if specials:
            special |= torch.isin(input_ids, torch.tensor(sorted(specials), dtype=torch.long))
        return cls(input_ids, attention, special)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids[index], "attention_mask": self.attention_mask[index],
                "special_mask": self.special_mask[index]}

    def batch(self, indices: Sequence[int]) -> dict[str, torch.Tensor]:
        """Stack the items at ``indices`` into a batch, trimming columns that are padding in every row."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        attention = self.attention_mask[index]
        width = int(attention.sum(dim=1).max())
        return {"input_ids": self.input_ids[index, :width], "attention_mask": attention[:, :width],
                "special_mask": self.special_mask[index, :width]}

    @property
    def n_tokens(self) -> int:
        """Real (non-padding) tokens in all blocks."""
        return int(self.attention_mask.sum())


def require_mask_token(tokenizer: Any, where: str = "the tokenizer") -> int:
    """Return the tokenizer's mask token id, or raise a :class:`TokenizerError` saying what to do."""
    mask_id = getattr(tokenizer, "mask_token_id", None)
    if mask_id is None:
        raise TokenizerError(where, "has no mask token, so masked-language-model (MLM) training is impossible",
                             fix="use --objective clm for a causal model, or give a tokenizer with a mask "
                                 "token such as [MASK] or <mask>")
    return int(mask_id)


def mask_tokens(input_ids: torch.Tensor, special_mask: torch.Tensor, mask_id: int, vocab_size: int,
                generator: torch.Generator, probability: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick ``probability`` of the maskable tokens; of those 80% → mask, 10% → random, 10% kept.

    Returns ``(inputs, labels)``, both (B, T); labels are ``IGNORE_INDEX`` except at picked
    positions. At least one token is picked per batch (an all-ignored batch gives a NaN loss).
    """
    shape = input_ids.shape
    draw = torch.rand(shape, generator=generator)
    picked = (draw < probability) & ~special_mask
    if not picked.any():
        candidates = (~special_mask).nonzero()
        if len(candidates):
            r, c = candidates[int(torch.randint(len(candidates), (1,), generator=generator))]
            picked[r, c] = True
    labels = torch.where(picked, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    how = torch.rand(shape, generator=generator)
    inputs = input_ids.clone()
    inputs[picked & (how < 0.8)] = mask_id
    randomise = picked & (how >= 0.8) & (how < 0.9)
    inputs[randomise] = torch.randint(vocab_size, shape, generator=generator)[randomise]
    return inputs, labels


def clm_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy: logits (B, T, V) at position t predict input_ids[t+1]; padding skipped."""
    targets = input_ids[:, 1:].masked_fill(attention_mask[:, 1:].eq(0), IGNORE_INDEX)  # (B, T-1)
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(),
                           ignore_index=IGNORE_INDEX, reduction=reduction)


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy at the masked positions only: logits (B, T, V), labels (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                           reduction=reduction)


@dataclass(frozen=True)
class EvalResult:
    """Validation loss of a model on a set of texts.

    ``loss_per_byte`` is total nats / UTF-8 bytes of the scored texts (comparable across
    tokenizers); ``bits_per_byte`` the same in bits. For MLM, where only 15% of tokens are
    scored, ``loss_per_byte`` is the mean masked-token loss times tokens per byte (an estimate).
    """

    loss_per_token: float
    loss_per_byte: float
    bits_per_byte: float
    perplexity: float
    n_tokens: int       # tokens whose loss was summed
    n_bytes: int        # UTF-8 bytes of the texts
    n_texts: int
    objective: str = "clm"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _model_device(model: torch.nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id rows into ``(ids, attention_mask)``, both (B, T_max) long tensors.

    Example:
        >>> pad_rows([[5, 6, 7], [8]], 0)[0].tolist()
        [[5, 6, 7], [8, 0, 0]]
    """
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        attention[i, :len(row)] = 1
    return ids, attention


def _clm_rows(tokenizer: Any, texts: Sequence[str], block_size: int) -> list[list[int]]:
    """Each text as ``[context] + ids`` cut into windows of ``block_size`` tokens overlapping by one,
    so every token after the context token is predicted exactly once and no window exceeds the
    model's position limit (``block_size`` is clamped to it by the caller)."""
    context = getattr(tokenizer, "bos_token_id", None)
    if context is None:
        context = getattr(tokenizer, "eos_token_id", None)
    rows = []
    for ids in encode_texts(tokenizer, texts):
        seq = ([int(context)] if context is not None else []) + ids
        for start in range(0, max(len(seq) - 1, 0), block_size - 1):
            rows.append(seq[start:start + block_size])
    return rows


@torch.no_grad()
def evaluate_loss_per_byte(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], *,
                           objective: str = "clm", block_size: int = 512, batch_size: int = 8,
                           seed: int = 0, autocast_dtype: torch.dtype | None = None) -> EvalResult:
    """Validation loss of ``model`` on ``texts``, per token and per UTF-8 byte.

    CLM: each text is scored on its own, the tokenizer's BOS (else EOS) token as context, so
    every token of the text is predicted once; texts longer than ``block_size`` are scored in
    consecutive windows. (A tokenizer with neither token leaves each text's first token
    unscored.) MLM: texts are wrapped in CLS/SEP when the tokenizer has them and 15% of tokens
    are masked with a fixed ``seed``, so two evaluations of the same model agree.

    Example (a model that predicts the uniform distribution over V tokens scores
    ``ln V`` nats per token, whatever the text):
        >>> r = evaluate_loss_per_byte(uniform_model, tok, ["abc"])   # doctest: +SKIP
        >>> r.loss_per_byte == r.n_tokens * math.log(V) / 3           # doctest: +SKIP
        True
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ConfigError("there is no validation text (every line is blank). Fix: give a validation "
                          "file with at least one non-empty line.")
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    was_training = model.training
    model.eval()
    device = _model_device(model)
    total_nats, n_scored, n_real = 0.0, 0, 0
    if objective == "mlm":
        mask_id = require_mask_token(tokenizer)
        data = TextBlocks.from_texts(tokenizer, texts, block_size, wrap_cls_sep=True, add_eos=False)
        generator = torch.Generator().manual_seed(seed)
        vocab = int(model.get_input_embeddings().weight.shape[0])
        for start in range(0, len(data), batch_size):
            batch = data.batch(range(start, min(start + batch_size, len(data))))
            inputs, labels = mask_tokens(batch["input_ids"], batch["special_mask"], mask_id, vocab, generator)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(input_ids=inputs.to(device), attention_mask=batch["attention_mask"].to(device)).logits
            total_nats += float(mlm_loss(logits, labels.to(device), reduction="sum"))
            n_scored += int(labels.ne(IGNORE_INDEX).sum())
            n_real += int((~batch["special_mask"]).sum())
    else:
        rows = sorted(_clm_rows(tokenizer, texts, block_size), key=len)  # similar lengths → little padding
        pad = _pad_id(tokenizer)
        for start in range(0, len(rows), batch_size):
            ids, attention = pad_rows(rows[start:start + batch_size], pad)
            ids, attention = ids.to(device), attention.to(device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                logits = model(input_ids=ids, attention_mask=attention).logits  # (B, T, V)
            total_nats += float(clm_loss(logits, ids, attention, reduction="sum"))
            n_scored += int(attention[:, 1:].sum())
        n_real = n_scored
    if was_training:
        model.train()
    per_token = total_nats / max(n_scored, 1)
    per_byte = (per_token * n_real if objective == "mlm" else total_nats) / n_bytes
    return EvalResult(loss_per_token=per_token, loss_per_byte=per_byte, bits_per_byte=per_byte / math.log(2),
                      perplexity=math.exp(min(per_token, 700.0)), n_tokens=n_scored, n_bytes=n_bytes,
                      n_texts=len(texts), objective=objective)
