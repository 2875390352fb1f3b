"""Tokenizers of the demo kit, trained with the ``tokenizers`` library on ``assets/text``.

Four HF tokenizer folders (``tokenizer.json``, ``tokenizer_config.json``,
``special_tokens_map.json``), loadable by ``AutoTokenizer`` and
``PreTrainedTokenizerFast``:

* ``en-bytebpe``: GPT-2 style byte-level BPE (``Ġ`` marks a word start), 8,192
  tokens; ``<|endoftext|>`` (id 0) is bos, eos and unk, ``<pad>`` is id 1.
* ``en-metaspace``: Llama style BPE over ``▁``-marked words with byte fallback
  (``<0x00>``..``<0xFF>``), 8,192 tokens; ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2,
  ``<pad>`` 3; ``<s>`` is prepended to every text.
* ``nl-bpe`` (16,000) and ``fy-bpe`` (8,000): byte-level BPE with RoBERTa's
  specials ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 4 and
  the ``<s> $A </s>`` post-processor, so they can be the target of both a
  GPT-2 and a MiniLM (BERT) conversion.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from _kit_common import Timer, write_json

ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _byte_level(vocab_size: int, specials: list[str], lines: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    return tok


def _metaspace(vocab_size: int, lines: list[str]) -> Tokenizer:
    """▁ BPE with byte fallback: the 256 byte tokens are trained as specials, then made plain vocab
    entries (else the text ``<0x41>`` would match them literally)."""
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # Like SentencePiece's split_by_unicode_script / split_digits: "▁world," is "▁world" + ",".
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
        pre_tokenizers.Split(Regex(r"▁?\p{L}+|▁?\p{N}|▁?[^\s\p{L}\p{N}▁]+"), behavior="isolated")])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials + BYTE_TOKENS,
                                  limit_alphabet=200, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] in specials]
    spec["model"]["byte_fallback"] = True
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok


def save_hf(tok: Tokenizer, folder: Path, roles: dict[str, str], max_length: int, extra: dict | None = None) -> None:
    """Save a tokenizer as an HF folder. ``tokenizer_class`` is ``PreTrainedTokenizerFast`` (loads in
    transformers 4 and 5; 5 writes ``TokenizersBackend``, which 4 does not know)."""
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    specials = {role: tok for role, tok in roles.items()}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": max_length,
              "clean_up_tokenization_spaces": False, **specials, **(extra or {})}
    write_json(folder / "tokenizer_config.json", config)
    write_json(folder / "special_tokens_map.json", specials)


def build_tokenizers(assets: Path, only: set[str] | None = None) -> dict:
    """Train and save the four tokenizers; return sizes and timings."""
    text = assets / "text"
    out, info = assets / "tokenizers", {}
    jobs = {
        "en-bytebpe": lambda: _byte_level(8192, ["<|endoftext|>", "<pad>"], _lines(text / "en" / "train.txt")),
        "en-metaspace": lambda: _metaspace(8192, _lines(text / "en" / "train.txt")),
        "nl-bpe": lambda: _byte_level(16000, ROBERTA_SPECIALS, _lines(text / "nl" / "train.txt")),
        "fy-bpe": lambda: _byte_level(8000, ROBERTA_SPECIALS, _lines(text / "fy" / "train.txt")),
    }
    roles = {
        "en-bytebpe": {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                       "pad_token": "<pad>"},
        "en-metaspace": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
    }
    roberta = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
               "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}
    for name, job in jobs.items():
        if only and name not in only:
            continue
        timer = Timer()
        tok = job()
        if name in ("nl-bpe", "fy-bpe"):
            tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0),
                                                              trim_offsets=True, add_prefix_space=False)
            # RoBERTa's <mask> swallows the space before it, so "a <mask>." fills in as "a Ġword".
            tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
        save_hf(tok, out / name, roles.get(name, roberta), 256 if name.startswith("en-") else 512)
        info[name] = {"vocab_size": tok.get_vocab_size(), "seconds": timer()}
    return info
