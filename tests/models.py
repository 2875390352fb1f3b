"""Tiny models of each family with matching tiny tokenizers, built in-process for tests.

Every builder is deterministic (seeded) and takes well under a second: hidden size 16, one
layer, two heads. Config ids (bos/eos/pad/...) are taken from the tokenizer, as in a real
checkpoint, so conversion tests can check that they are remapped by role.

Example:
    >>> model, tok = tiny_pair("llama", tie=False)
    >>> model.config.vocab_size == len(tok), model.config.tie_word_embeddings
    (True, False)

=============  ====================  ==========================================================
family         model class           tokenizer (tests/tiny.py)
=============  ====================  ==========================================================
``gpt2``       GPT2LMHeadModel       byte-level BPE, ``<|endoftext|>`` = bos = eos = unk (tied)
``llama``      LlamaForCausalLM      Llama BPE with byte fallback, ``<s> A``; tied or untied
``bert``       BertForMaskedLM       WordPiece ``[CLS] A [SEP]``; ``head="base"`` for BertModel
``roberta``    RobertaForMaskedLM    byte-level BPE ``<s> A </s>``, pad = 1 (positions from 2)
=============  ====================  ==========================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from tests.tiny import build_bytelevel_bpe, build_llama_bpe, build_wordpiece, corpus_lines, fast

FAMILIES = ("gpt2", "llama", "bert", "roberta")
_SMALL = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32}


# ---------------------------------------------------------------- tokenizers

def gpt2_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    return fast(build_bytelevel_bpe(vocab_size), bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                unk_token="<|endoftext|>")


def llama_tokenizer(vocab_size: int = 500) -> PreTrainedTokenizerFast:
    return fast(build_llama_bpe(vocab_size), unk_token="<unk>", bos_token="<s>", eos_token="</s>")


def bert_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    return fast(build_wordpiece(vocab_size), unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                sep_token="[SEP]", mask_token="[MASK]",
                model_input_names=["input_ids", "token_type_ids", "attention_mask"])


def roberta_tokenizer(vocab_size: int = 420) -> PreTrainedTokenizerFast:
    """RoBERTa-style byte-level BPE: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, ``<mask>`` 4."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus_lines(seed=1), trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=False)
    return fast(tokenizer, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                mask_token="<mask>", cls_token="<s>", sep_token="</s>")


def tokenizer_for(family: str) -> PreTrainedTokenizerFast:
    """The tiny tokenizer of a family (see the table above)."""
    return {"gpt2": gpt2_tokenizer, "llama": llama_tokenizer, "bert": bert_tokenizer,
            "roberta": roberta_tokenizer}[family]()


# ---------------------------------------------------------------- models

def _ids(tokenizer: Any) -> dict[str, int | None]:
    return {f"{role}_token_id": getattr(tokenizer, f"{role}_token_id", None)
            for role in ("bos", "eos", "pad")}


def tiny_model(family: str, vocab_size: int, tokenizer: Any = None, *, tie: bool = True, head: str = "lm",
               seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialised tiny model of ``family`` with ``vocab_size`` rows (seeded).

    Args:
        tie: tie input embeddings and output head (gpt2/llama; BERT and RoBERTa heads are always tied).
        head: ``lm`` (CLM or MLM head) or ``base`` (the bare encoder/decoder).
        overrides: extra config fields (e.g. ``max_position_embeddings``).
    """
    import transformers as tf

    ids = _ids(tokenizer) if tokenizer is not None else {}
    torch.manual_seed(seed)
    if family == "gpt2":
        config = tf.GPT2Config(vocab_size=vocab_size, n_embd=16, n_layer=1, n_head=2, n_positions=64,
                               tie_word_embeddings=tie, **ids, **overrides)
        cls = tf.GPT2LMHeadModel if head == "lm" else tf.GPT2Model
    elif family == "llama":
        config = tf.LlamaConfig(vocab_size=vocab_size, num_key_value_heads=1, max_position_embeddings=64,
                                tie_word_embeddings=tie, **_SMALL, **ids, **overrides)
        cls = tf.LlamaForCausalLM if head == "lm" else tf.LlamaModel
    elif family == "bert":
        config = tf.BertConfig(vocab_size=vocab_size, max_position_embeddings=64, **_SMALL,
                               **{"pad_token_id": ids.get("pad_token_id") or 0}, **overrides)
        cls = tf.BertForMaskedLM if head == "lm" else tf.BertModel
    elif family == "roberta":
        config = tf.RobertaConfig(vocab_size=vocab_size, max_position_embeddings=66, type_vocab_size=1,
                                  **_SMALL, **{k: v for k, v in ids.items() if v is not None}, **overrides)
        cls = tf.RobertaForMaskedLM if head == "lm" else tf.RobertaModel
    else:
        raise ValueError(f"unknown family {family!r}; use one of {FAMILIES}")
    model = cls(config)
    model.eval()
    return model


def tiny_pair(family: str, *, tie: bool = True, head: str = "lm", extra_rows: int = 0,
              seed: int = 0, **overrides: Any) -> tuple[Any, PreTrainedTokenizerFast]:
    """``(model, tokenizer)`` of one family; ``extra_rows`` pads the table past the tokenizer (Qwen-style)."""
    tokenizer = tokenizer_for(family)
    model = tiny_model(family, len(tokenizer) + extra_rows, tokenizer, tie=tie, head=head, seed=seed, **overrides)
    return model, tokenizer


def save_pair(model: Any, tokenizer: Any, dest: Path) -> Path:
    """Save a model and tokenizer as an HF folder (safetensors); return the folder."""
    dest = Path(dest)
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


def gpt2_folder(dest: Path, tokenizer_dir: Path, *, n_layer: int = 1, n_embd: int = 32,
                fp16: bool = False) -> Path:
    """A tiny GPT-2 on the tokenizer saved in ``tokenizer_dir``, saved with it as a model folder.

    ``fp16`` stores the weights in half precision, as the demo kit does (training must upcast).
    """
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=n_layer, n_embd=n_embd, n_head=2,
                                       n_positions=64, bos_token_id=0, eos_token_id=0))
    if fp16:
        model.config.dtype = torch.float16
        model.half()
    return save_pair(model, tokenizer, dest)


def text_splits(folder: Path, n_train: int, n_valid: int) -> tuple[Path, Path]:
    """``train.txt`` and ``valid.txt`` in ``folder`` from disjoint slices of the test corpus."""
    lines = corpus_lines(n_train + n_valid)
    train, valid = Path(folder) / "train.txt", Path(folder) / "valid.txt"
    train.write_text("\n".join(lines[:n_train]) + "\n", encoding="utf-8")
    valid.write_text("\n".join(lines[n_train:]) + "\n", encoding="utf-8")
    return train, valid


# ---------------------------------------------------------------- token maps for tests

def toy_token_map(source_vocab: Any, target_vocab: Any, seed: int = 0, unmapped_every: int = 7,
                  kind: str = "test") -> Any:
    """A plausible map: specials by role, identical canonical strings 1:1, every ``unmapped_every``-th
    other token unmapped, the rest 1-3 random sources with random weights (method 'neighbour')."""
    import random

    from tokmap_ui.mapping.tokenmap import MapEntry, TokenMap, VocabRef

    rng = random.Random(seed)
    by_text = source_vocab.ids_by_canonical()
    role_of = {i: r for r, i in target_vocab.special_roles.items()}
    entries = []
    for t, token in enumerate(target_vocab.tokens):
        role = role_of.get(t)
        key = (target_vocab.canonical[t], bool(target_vocab.starts_word[t]))
        if role is not None and role in source_vocab.special_roles:
            entries.append(MapEntry(t, token, ((source_vocab.special_roles[role], 1.0),), "special"))
        elif key in by_text and not target_vocab.is_special[t]:
            entries.append(MapEntry(t, token, ((by_text[key][0], 1.0),), "identical"))
        elif t % unmapped_every == 0:
            entries.append(MapEntry(t, token, (), "unmapped"))
        else:
            sources = tuple((rng.randrange(len(source_vocab)), round(rng.random() + 0.1, 3))
                            for _ in range(rng.randint(1, 3)))
            entries.append(MapEntry(t, token, sources, "neighbour"))
    return TokenMap(kind, VocabRef.of(target_vocab), VocabRef.of(source_vocab), {"seed": seed}, tuple(entries))


def function_token_map(source_vocab: Any, target_vocab: Any, seed: int = 0) -> tuple[Any, list[int]]:
    """A map sending each target token to exactly one source token: ``(map, f)`` with ``f[t]`` = source id.

    Specials go by role; other tokens go to random *non-special* source tokens, so a converted
    model fed ``ids`` must behave exactly like the original fed ``[f[i] for i in ids]``.
    """
    import random

    from tokmap_ui.mapping.tokenmap import MapEntry, TokenMap, VocabRef

    rng = random.Random(seed)
    plain = [i for i in range(len(source_vocab)) if not source_vocab.is_special[i]]
    role_of = {i: r for r, i in target_vocab.special_roles.items()}
    f = []
    for t in range(len(target_vocab)):
        role = role_of.get(t)
        f.append(source_vocab.special_roles[role] if role in source_vocab.special_roles else rng.choice(plain))
    entries = tuple(MapEntry(t, target_vocab.tokens[t], ((f[t], 1.0),), "manual") for t in range(len(f)))
    return TokenMap("function", VocabRef.of(target_vocab), VocabRef.of(source_vocab), {}, entries), f
