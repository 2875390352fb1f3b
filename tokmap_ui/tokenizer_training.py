"""Train a new (target-language) tokenizer from text: byte-level BPE, Unigram or WordPiece.

The Project & data tab lets a user who has target-language text but no tokenizer make one. The
three algorithms cover the usual model families, each with the special tokens that family's
conversion expects:

* ``bpe``: GPT-2 style byte-level BPE (``Ġ`` marks a word start; never an unknown token), with
  RoBERTa's specials ``<s> <pad> </s> <unk> <mask>`` so it can replace a GPT-2 *or* a BERT-like
  model's vocabulary (as the demo kit's ``nl-bpe``);
* ``unigram``: SentencePiece style Unigram over ``▁``-marked words (Llama/T5 family);
* ``wordpiece``: BERT style, lower-cased, ``##`` continuation pieces, ``[CLS] … [SEP]``.

Algorithms take lines (objects), never paths; reading the text and saving the folder is ``io``'s
job (:func:`tokmap_ui.io.workspace_files.save_tokenizer_dir`).

Example:
    >>> lines = ["de kat zit op de mat", "de hond ligt in de mand"] * 50
    >>> tok = train_tokenizer(lines, TokenizerTrainingConfig("bpe", vocab_size=300))
    >>> tok.convert_ids_to_tokens(tok("de kat")["input_ids"])[:3]
    ['<s>', 'de', 'Ġkat']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from tokmap_ui.errors import ConfigError

ROBERTA_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MIN_LINES = 10  # fewer non-empty lines cannot teach a vocabulary anything useful


class TokenizerAlgorithm(str, Enum):
    """Which kind of tokenizer to train (the UI's dropdown and any CLI ``choices=``)."""

    BPE = "bpe"
    UNIGRAM = "unigram"
    WORDPIECE = "wordpiece"

    @classmethod
    def choices(cls) -> list[str]:
        return [m.value for m in cls]


@dataclass(frozen=True)
class TokenizerTrainingConfig:
    """Settings of one tokenizer training run (field docstrings are the UI help)."""

    algorithm: TokenizerAlgorithm = TokenizerAlgorithm.BPE
    """bpe (byte-level, GPT-2/RoBERTa style), unigram (SentencePiece style) or wordpiece (BERT style)."""
    vocab_size: int = 16_000
    """Number of tokens including the special tokens (the demo's Dutch tokenizer has 16,000)."""
    min_frequency: int = 2
    """A merge or piece must occur at least this often in the text to be learnt."""
    model_max_length: int = 512
    """Longest input the tokenizer will accept, written into its config."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "algorithm", TokenizerAlgorithm(self.algorithm))
        except ValueError:
            raise ConfigError(f"tokenizer algorithm {self.algorithm!r} is unknown. Fix: choose one of "
                              f"{', '.join(TokenizerAlgorithm.choices())}.") from None
        if not 100 <= int(self.vocab_size) <= 1_000_000:
            raise ConfigError(f"vocab_size = {self.vocab_size} is out of range. Fix: use 100 to 1,000,000 "
                              "(8,000-50,000 is usual).")
        if self.min_frequency < 1 or self.model_max_length < 8:
            raise ConfigError("min_frequency must be at least 1 and model_max_length at least 8.")


def _byte_bpe(lines: Sequence[str], config: TokenizerTrainingConfig) -> tuple[Any, dict[str, str]]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                                  special_tokens=list(ROBERTA_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")),
                                                      ("<s>", tok.token_to_id("<s>")), trim_offsets=True,
                                                      add_prefix_space=False)
    return tok, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                 "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}


def _unigram(lines: Sequence[str], config: TokenizerTrainingConfig) -> tuple[Any, dict[str, str]]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=config.vocab_size, special_tokens=specials, unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(lines, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


def _wordpiece(lines: Sequence[str], config: TokenizerTrainingConfig) -> tuple[Any, dict[str, str]]:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                                        special_tokens=list(BERT_SPECIALS), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok, {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                 "mask_token": "[MASK]"}


TRAINERS: dict[TokenizerAlgorithm, Callable[[Sequence[str], TokenizerTrainingConfig], tuple[Any, dict[str, str]]]] = {
    TokenizerAlgorithm.BPE: _byte_bpe,
    TokenizerAlgorithm.UNIGRAM: _unigram,
    TokenizerAlgorithm.WORDPIECE: _wordpiece,
}


def train_tokenizer(lines: Sequence[str], config: TokenizerTrainingConfig = TokenizerTrainingConfig()) -> Any:
    """Train a tokenizer on ``lines`` and return it as a transformers ``PreTrainedTokenizerFast``.

    The vocabulary may come out smaller than ``vocab_size`` when the text is too small to
    support that many merges or pieces (the inspection summary shows the real size).

    Raises:
        ConfigError: fewer than :data:`MIN_LINES` non-empty lines.
    """
    from transformers import PreTrainedTokenizerFast

    text = [line for line in lines if line.strip()]
    if len(text) < MIN_LINES:
        raise ConfigError(f"the training text has {len(text)} non-empty lines; a tokenizer needs at least "
                          f"{MIN_LINES}. Fix: upload more text (thousands of lines give a useful vocabulary).")
    backend, specials = TRAINERS[config.algorithm](text, config)
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=config.model_max_length,
                                   clean_up_tokenization_spaces=False, **specials)
