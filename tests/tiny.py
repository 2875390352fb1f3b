"""Tiny tokenizers of every family, built in-process, for tests (no hub, no network).

Each ``make_*`` function trains a small tokenizer on :func:`corpus_lines` (made-up
English/Dutch text with accents, a little CJK and emoji) and saves it in one
on-disk format under a folder you give; it returns the path a user would hand to
``tokmap_ui.io.tokenizers.load_tokenizer``. :func:`fast` wraps an in-memory
``tokenizers.Tokenizer`` without touching disk. Everything is deterministic and
takes well under a second per tokenizer.

Example:
    >>> from tests.tiny import make_bytelevel_bpe
    >>> folder = make_bytelevel_bpe(tmp_path / "gpt")          # doctest: +SKIP
    >>> load_tokenizer(folder).tokenize(" de kat")              # doctest: +SKIP
    ['Ġde', 'Ġkat']

Families and formats:

=============================  ==========================================================
``make_bytelevel_bpe``         GPT-2 style byte-level BPE, HF folder (tokenizer.json + config)
``make_gpt2_files``            the same model as ``vocab.json`` + ``merges.txt`` only
``make_metaspace_unigram``     SentencePiece-style Unigram with a Metaspace pre-tokenizer
``make_llama_bpe``             Llama-style BPE: ``▁`` via normalizer, ``<0xNN>`` byte fallback
``make_wordpiece``             BERT WordPiece as a bare ``vocab.txt`` (or a full HF folder)
``make_wordlevel``             whole-word WordLevel, bare ``tokenizer.json``
``make_sentencepiece_model``   a real SentencePiece ``.model`` (unigram or bpe) trained with
                               the ``sentencepiece`` library
=============================  ==========================================================

:func:`from_tokens` builds a tokenizer of a given family from an explicit token list
(ids in list order), for tests that need to know exactly which tokens exist.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

_EN = ("the cat sat on the mat and the dog ran after a small red ball while children were playing "
       "in the garden near an old house with green windows people often walk there in the evening "
       "because the light is beautiful we translate words between languages every day").split()
_NL = ("de kat zat op de mat en de hond rende achter een kleine rode bal terwijl kinderen speelden "
       "in de tuin bij een oud huis met groene ramen mensen wandelen daar vaak in de avond omdat "
       "het licht mooi is wij vertalen woorden tussen talen elke dag het meisje fietst naar school").split()
_EXTRA = ["café", "één", "naïve", "coöperatie", "Zürich", "España", "déjà", "vu", "hôtel", "ijsje",
          "Amsterdam", "Gent", "2024", "3,5", "100", "猫", "日本語", "東京", "🙂", "🚲", "€5", "(ja)", "nee!"]


def corpus_lines(n: int = 300, seed: int = 0) -> list[str]:
    """Return ``n`` deterministic made-up sentences mixing English, Dutch and a few exotic words."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        words = _EN if i % 2 else _NL
        sentence = [rng.choice(words) for _ in range(rng.randint(4, 12))]
        if i % 5 == 0:
            sentence.insert(rng.randrange(len(sentence)), rng.choice(_EXTRA))
        text = " ".join(sentence)
        lines.append(text[0].upper() + text[1:] + rng.choice([".", "!", "?", ","]))
    return lines


def fast(tokenizer: Tokenizer, **special_tokens: str) -> PreTrainedTokenizerFast:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer, e.g. ``fast(t, eos_token="</s>")``."""
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special_tokens)


def from_tokens(tokens: list[str], family: str = "bytelevel",
                specials: tuple[str, ...] = ()) -> PreTrainedTokenizerFast:
    """A fast tokenizer whose vocabulary is exactly ``tokens`` (id = position), raw spellings.

    Args:
        tokens: raw token strings: ``"Ġkat"`` for ``family="bytelevel"``, ``"▁kat"`` and
            ``"<0x41>"`` for ``"metaspace"`` (byte fallback on when ``<0xNN>`` tokens exist),
            ``"##en"`` for ``"wordpiece"``, whole words for ``"wordlevel"``.
        specials: tokens (already in ``tokens``) to mark special; roles follow their spelling.

    Example:
        >>> tok = from_tokens(["<unk>", "▁", "k", "a", "t", "d", "e", "▁k", "at", "▁kat", "▁d", "▁de"],
        ...                   "metaspace", specials=("<unk>",))
        >>> tok.convert_ids_to_tokens(tok.encode("de kat"))
        ['▁de', '▁kat']

    BPE merges are every split of a token into two tokens of the list, so include the
    pieces (single characters, ``"▁"``) if you want ``encode`` to reach longer tokens.
    """
    from transformers.convert_slow_tokenizer import generate_merges

    vocab = {token: i for i, token in enumerate(tokens)}
    unk = next((t for t in specials if t in ("<unk>", "[UNK]", "<|endoftext|>")), None)
    if family == "bytelevel":
        tokenizer = Tokenizer(models.BPE(vocab, generate_merges(vocab, None, skip_tokens=specials)))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
    elif family == "metaspace":
        byte_fallback = any(t.startswith("<0x") for t in tokens)
        tokenizer = Tokenizer(models.BPE(vocab, generate_merges(vocab, None, skip_tokens=specials), unk_token=unk,
                                         byte_fallback=byte_fallback))
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                               decoders.Strip(" ", 1, 0)])
    elif family == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(vocab, unk_token=unk or "[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
    elif family == "wordlevel":
        tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=unk or "[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    else:
        raise ValueError(f"unknown family {family!r}")
    tokenizer.add_special_tokens(list(specials))
    from tokmap_ui.vocab import guess_special_roles

    roles = guess_special_roles({t: vocab[t] for t in specials})
    return fast(tokenizer, **{f"{role}_token": tokens[i] for role, i in roles.items()})


def _save(tokenizer: Tokenizer, dest: Path, **special_tokens: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    fast(tokenizer, **special_tokens).save_pretrained(dest)
    return dest


# ---------------------------------------------------------------- byte-level BPE (GPT-2 family)

def build_bytelevel_bpe(vocab_size: int = 400, add_prefix_space: bool = False) -> Tokenizer:
    """A GPT-2 style byte-level BPE with ``<|endoftext|>`` as id 0."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus_lines(), trainer)
    return tokenizer


def make_bytelevel_bpe(dest: Path, vocab_size: int = 400) -> Path:
    """Save a byte-level BPE as an HF folder (tokenizer.json + tokenizer_config.json); return the folder."""
    return _save(build_bytelevel_bpe(vocab_size), Path(dest), bos_token="<|endoftext|>",
                 eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def make_gpt2_files(dest: Path, vocab_size: int = 400) -> Path:
    """Save the byte-level BPE as GPT-2 ``vocab.json`` + ``merges.txt`` only; return the folder."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    build_bytelevel_bpe(vocab_size).model.save(str(dest))
    return dest


# ---------------------------------------------------------------- SentencePiece-style (▁ marker)

def build_metaspace_unigram(vocab_size: int = 300) -> Tokenizer:
    """A Unigram model with a Metaspace pre-tokenizer, specials ``<unk> <s> </s> <pad>`` at ids 0-3.

    The pieces and scores come from a SentencePiece training run, which (unlike the
    tokenizers library's UnigramTrainer) gives the same vocabulary every time.
    """
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=train_sentencepiece("unigram", vocab_size,
                                                                           user_symbols=()))
    pieces = [(processor.id_to_piece(i), processor.get_score(i)) for i in range(processor.get_piece_size())]
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=0, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    tokenizer.add_special_tokens(["<unk>", "<s>", "</s>", "<pad>"])
    return tokenizer


def make_metaspace_unigram(dest: Path, vocab_size: int = 300) -> Path:
    """Save a Metaspace Unigram tokenizer as an HF folder; return the folder."""
    return _save(build_metaspace_unigram(vocab_size), Path(dest), unk_token="<unk>", bos_token="<s>",
                 eos_token="</s>", pad_token="<pad>")


def build_llama_bpe(vocab_size: int = 500) -> Tokenizer:
    """A Llama-2 style BPE: ``▁`` added by the normalizer, ``<unk> <s> </s>``, then ``<0x00>``..``<0xFF>``.

    Characters missing from the vocabulary (most CJK, emoji) encode as UTF-8 byte tokens.
    """
    base = Tokenizer(models.BPE())
    base.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    base.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 259, show_progress=False,
                                  limit_alphabet=60)
    base.train_from_iterator(corpus_lines(), trainer)
    trained = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for token in sorted(trained["vocab"], key=trained["vocab"].get):
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True,
                                     fuse_unk=True))
    tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    tokenizer.add_special_tokens(["<unk>", "<s>", "</s>"])
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", 1)])
    return tokenizer


def make_llama_bpe(dest: Path, vocab_size: int = 500) -> Path:
    """Save a Llama-style byte-fallback BPE as an HF folder; return the folder."""
    return _save(build_llama_bpe(vocab_size), Path(dest), unk_token="<unk>", bos_token="<s>", eos_token="</s>")


# ---------------------------------------------------------------- WordPiece, WordLevel

def build_wordpiece(vocab_size: int = 400, lowercase: bool = True) -> Tokenizer:
    """A BERT WordPiece tokenizer with ``[PAD] [UNK] [CLS] [SEP] [MASK]`` at ids 0-4.

    The vocabulary is chosen by counting (the tokenizers WordPieceTrainer is not
    deterministic): specials, every character with and without ``##``, then the most
    frequent whole words, prefixes and ``##`` suffixes of the corpus, ties alphabetical.
    """
    normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for line in corpus_lines():
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(line)))
    chars = sorted({char for word in words for char in word})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + char for char in chars]
    pieces: Counter[str] = Counter()
    for word, count in words.items():
        pieces[word] += count
        for k in range(2, min(len(word), 6)):
            pieces[word[:k]] += count
            pieces["##" + word[-k:]] += count
    known = set(tokens)
    for piece, _ in sorted(pieces.items(), key=lambda item: (-item[1], item[0])):
        if len(tokens) >= vocab_size:
            break
        if piece not in known:
            tokens.append(piece)
            known.add(piece)
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(tokens)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece()
    tokenizer.add_special_tokens(tokens[:5])
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    return tokenizer


def make_wordpiece(dest: Path, vocab_size: int = 400, lowercase: bool = True, folder: bool = False) -> Path:
    """Save a WordPiece tokenizer: a bare ``vocab.txt`` (returned), or with ``folder=True`` an HF folder."""
    dest = Path(dest)
    tokenizer = build_wordpiece(vocab_size, lowercase)
    if folder:
        return _save(tokenizer, dest, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                     sep_token="[SEP]", mask_token="[MASK]")
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer.model.save(str(dest))
    return dest / "vocab.txt"


def make_wordlevel(dest: Path) -> Path:
    """Save a whole-word WordLevel tokenizer as a bare ``tokenizer.json``; return the file."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "[PAD]"], show_progress=False)
    tokenizer.train_from_iterator(corpus_lines(), trainer)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(dest / "tokenizer.json"))
    return dest / "tokenizer.json"


# ---------------------------------------------------------------- a real SentencePiece model

def train_sentencepiece(model_type: str = "unigram", vocab_size: int | None = None, byte_fallback: bool = False,
                        user_symbols: tuple[str, ...] = ("<mask>",)) -> bytes:
    """Train a SentencePiece model on :func:`corpus_lines` (deterministic); return the ``.model`` bytes.

    Ids: ``<unk>`` 0, ``<s>`` 1, ``</s>`` 2, ``<pad>`` 3, then ``user_symbols`` (``<mask>`` 4), then
    (with ``byte_fallback``) ``<0x00>``..``<0xFF>``. The default size is 300 (556 with byte fallback).
    """
    import io

    import sentencepiece as spm

    if vocab_size is None:
        vocab_size = 556 if byte_fallback else 300
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()), model_writer=proto, model_type=model_type,
        vocab_size=vocab_size, byte_fallback=byte_fallback, character_coverage=0.9995 if byte_fallback else 1.0,
        pad_id=3, num_threads=1, minloglevel=2, hard_vocab_limit=False, user_defined_symbols=list(user_symbols))
    return proto.getvalue()


def make_sentencepiece_model(dest: Path, model_type: str = "unigram", vocab_size: int | None = None,
                             byte_fallback: bool = False, name: str = "spm.model") -> Path:
    """Save a real SentencePiece model (see :func:`train_sentencepiece`); return the ``.model`` path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / name
    path.write_bytes(train_sentencepiece(model_type, vocab_size, byte_fallback))
    return path
