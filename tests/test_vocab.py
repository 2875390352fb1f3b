"""The Vocabulary view on every tokenizer family: canonical text, word starts, bytes, specials."""

from __future__ import annotations

import numpy as np
import pytest
from tokenizers import AddedToken

from tests.tiny import (build_bytelevel_bpe, build_llama_bpe, build_metaspace_unigram, build_wordpiece, fast,
                        from_tokens, make_bytelevel_bpe, make_gpt2_files, make_sentencepiece_model)
from tokmap_ui.io.tokenizers import load_tokenizer
from tokmap_ui.vocab import Vocabulary, WordMarker, bytelevel_to_bytes, bytes_to_text, bytes_to_unicode

BYTELEVEL = {  # raw token -> (canonical, starts_word, byte_value)
    "<|endoftext|>": ("<|endoftext|>", False, -1),
    "Ġkat": ("kat", True, -1),
    "kat": ("kat", False, -1),
    "Ã©": ("é", False, -1),               # é = C3 A9, a whole character
    "Ġcaf": ("caf", True, -1),
    "Ã": ("<0xC3>", False, 0xC3),         # a lone UTF-8 lead byte
    "Ġ": ("", True, 0x20),                # the bare marker
    "ĠĠ": (" ", True, -1),
    "Ċ": ("\n", False, 0x0A),
    "A": ("A", False, 0x41),
    "ĠçĮ«": ("猫", True, -1),             # CJK: E7 8C AB
    "ç": ("<0xE7>", False, 0xE7),
    "ðŁĻĤ": ("🙂", False, -1),            # emoji: F0 9F 99 82
    "Ġâ": ("<0xE2>", True, -1),           # partial UTF-8 after a space
    "Ã©Ã": ("é<0xC3>", False, -1),
}
METASPACE = {
    "<unk>": ("<unk>", False, -1),
    "<s>": ("<s>", False, -1),
    "</s>": ("</s>", False, -1),
    "<0x41>": ("A", False, 0x41),
    "<0x0A>": ("\n", False, 0x0A),
    "<0xC3>": ("<0xC3>", False, 0xC3),
    "▁kat": ("kat", True, -1),
    "kat": ("kat", False, -1),
    "▁": ("", True, -1),
    "▁▁▁▁": ("   ", True, -1),
    "▁猫": ("猫", True, -1),
    "猫": ("猫", False, -1),
    "🙂": ("🙂", False, -1),
    "é": ("é", False, -1),
}
WORDPIECE = {
    "[PAD]": ("[PAD]", False, -1),
    "[UNK]": ("[UNK]", False, -1),
    "[CLS]": ("[CLS]", False, -1),
    "[SEP]": ("[SEP]", False, -1),
    "[MASK]": ("[MASK]", False, -1),
    "kat": ("kat", True, -1),
    "##en": ("en", False, -1),
    "##": ("##", True, -1),
    "猫": ("猫", True, -1),
}


def check(vocab: Vocabulary, expected: dict[str, tuple[str, bool, int]]) -> None:
    for raw, (canonical, starts, byte) in expected.items():
        i = vocab.id_of(raw)
        assert i is not None, raw
        got = (vocab.canonical[i], bool(vocab.starts_word[i]), int(vocab.byte_value[i]))
        assert got == (canonical, starts, byte), raw


def test_bytelevel_tokens():
    tok = from_tokens(list(BYTELEVEL), "bytelevel", specials=("<|endoftext|>",))
    vocab = Vocabulary.from_tokenizer(tok, name="gpt")
    assert vocab.marker is WordMarker.GPT2 and vocab.name == "gpt"
    check(vocab, BYTELEVEL)
    assert vocab.special_roles["eos"] == 0 and vocab.is_special.tolist() == [True] + [False] * (len(BYTELEVEL) - 1)
    assert vocab.byte_ids() == {0xC3: 5, 0x20: 6, 0x0A: 8, 0x41: 9, 0xE7: 11}


def test_bytelevel_vocab_with_an_odd_model_token():
    """A model token outside the byte-level alphabet is read literally; the others still decode."""
    vocab = Vocabulary.from_tokenizer(from_tokens(list(BYTELEVEL) + ["odd token"], "bytelevel",
                                                  specials=("<|endoftext|>",)))
    check(vocab, BYTELEVEL)
    odd = vocab.id_of("odd token")
    assert (vocab.canonical[odd], bool(vocab.starts_word[odd]), int(vocab.byte_value[odd])) == ("odd token", False, -1)


def test_metaspace_tokens_with_byte_fallback():
    tok = from_tokens(list(METASPACE), "metaspace", specials=("<unk>", "<s>", "</s>"))
    vocab = Vocabulary.from_tokenizer(tok)
    assert vocab.marker is WordMarker.METASPACE
    check(vocab, METASPACE)
    assert vocab.special_roles == {"bos": 1, "eos": 2, "unk": 0}
    assert vocab.byte_ids() == {0x41: 3, 0x0A: 4, 0xC3: 5}


def test_wordpiece_tokens():
    tok = from_tokens(list(WORDPIECE), "wordpiece", specials=("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"))
    vocab = Vocabulary.from_tokenizer(tok)
    assert vocab.marker is WordMarker.WORDPIECE
    check(vocab, WORDPIECE)
    assert vocab.special_roles == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert vocab.byte_ids() == {}


def test_families_meet_on_canonical_keys():
    """Ġkat, ▁kat and WordPiece kat are all the word-initial 'kat'."""
    keys = []
    for tokens, family in ((BYTELEVEL, "bytelevel"), (METASPACE, "metaspace"), (WORDPIECE, "wordpiece")):
        vocab = Vocabulary.from_tokenizer(from_tokens(list(tokens), family))
        groups = vocab.ids_by_canonical()
        assert groups[("kat", True)] and vocab.canonical[groups[("kat", True)][0]] == "kat"
        keys.append(set(groups))
    assert ("kat", True) in keys[0] & keys[1] & keys[2]
    assert ("猫", True) in keys[0] & keys[1] & keys[2]


def test_wordlevel_has_no_marker():
    vocab = Vocabulary.from_tokenizer(from_tokens(["[UNK]", "kat", "hond"], "wordlevel", specials=("[UNK]",)))
    assert vocab.marker is WordMarker.NONE
    assert vocab.canonical == ("[UNK]", "kat", "hond") and not vocab.starts_word.any()


@pytest.mark.parametrize("builder, marker", [(build_bytelevel_bpe, WordMarker.GPT2),
                                             (build_metaspace_unigram, WordMarker.METASPACE),
                                             (build_llama_bpe, WordMarker.METASPACE),
                                             (build_wordpiece, WordMarker.WORDPIECE)])
def test_trained_families_invariants(builder, marker):
    tok = fast(builder())
    vocab = Vocabulary.from_tokenizer(tok)
    size = len(tok)
    assert vocab.marker is marker and len(vocab) == size and len(vocab.tokens) == len(vocab.canonical) == size
    assert vocab.starts_word.shape == vocab.is_special.shape == vocab.byte_value.shape == (size,)
    assert vocab.starts_word.dtype == bool and vocab.byte_value.dtype == np.int16
    assert vocab.tokens == tuple(tok.convert_ids_to_tokens(list(range(size))))
    for i, (raw, text) in enumerate(zip(vocab.tokens, vocab.canonical)):
        if vocab.is_special[i] or vocab.byte_value[i] >= 0 or "<0x" in text:
            continue
        spoken = (" " if vocab.starts_word[i] else "") + text
        if marker is WordMarker.GPT2:  # the tokenizer's own decoding of the token
            assert tok.decode([i]) == spoken, raw
        elif marker is WordMarker.METASPACE:
            assert raw.replace("▁", " ") == spoken, raw
        else:
            assert raw == text if vocab.starts_word[i] else raw == "##" + text


def test_llama_style_bytes_and_roles_without_declared_specials():
    vocab = Vocabulary.from_tokenizer(fast(build_llama_bpe()))  # no roles declared: guessed from spelling
    assert vocab.special_roles == {"bos": 1, "eos": 2, "unk": 0}
    assert len(vocab.byte_ids()) == 256 and vocab.byte_ids()[0x41] == vocab.id_of("<0x41>") == 3 + 0x41
    assert vocab.canonical[vocab.id_of("<0x41>")] == "A"


def test_real_sentencepiece_model(tmp_path):
    model = make_sentencepiece_model(tmp_path, model_type="bpe", byte_fallback=True)
    tok = load_tokenizer(model)
    vocab = Vocabulary.from_tokenizer(tok)
    assert vocab.marker is WordMarker.METASPACE and len(vocab) == len(tok) == 556
    assert vocab.special_roles == {"bos": 1, "eos": 2, "pad": 3, "unk": 0}
    assert vocab.is_special[:4].all() and not vocab.is_special[4]          # <mask> is a user symbol
    assert vocab.tokens[4] == "<mask>" and vocab.canonical[4] == "<mask>" and 4 in vocab.added_ids
    assert len(vocab.byte_ids()) == 256 and vocab.canonical[vocab.byte_ids()[0x41]] == "A"
    word = next(i for i, t in enumerate(vocab.tokens) if t.startswith("▁") and len(t) > 3)
    assert vocab.starts_word[word] and vocab.canonical[word] == vocab.tokens[word][1:]


def test_gpt2_files_and_hf_folder_give_the_same_vocabulary(tmp_path):
    folder = Vocabulary.from_tokenizer(load_tokenizer(make_bytelevel_bpe(tmp_path / "hf")))
    files = Vocabulary.from_tokenizer(load_tokenizer(make_gpt2_files(tmp_path / "gpt2")))
    assert folder.tokens == files.tokens and folder.canonical == files.canonical
    assert folder.sha256 == files.sha256 and folder.special_roles == files.special_roles
    assert folder.name != files.name


def test_added_tokens():
    tok = fast(build_metaspace_unigram(), unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    base = len(tok)
    tok.add_tokens(["hallo wereld", " zee"])
    tok.add_tokens([AddedToken("<|im_start|>", special=True)], special_tokens=True)
    vocab = Vocabulary.from_tokenizer(tok)
    assert len(vocab) == base + 3 and {base, base + 1, base + 2} <= vocab.added_ids
    assert (vocab.canonical[base], bool(vocab.starts_word[base])) == ("hallo wereld", False)
    assert (vocab.canonical[base + 1], bool(vocab.starts_word[base + 1])) == ("zee", True)
    assert vocab.is_special[base + 2] and not vocab.is_special[base]
    assert vocab.canonical[base + 2] == "<|im_start|>"


def test_sha256_identifies_tokens_and_marker():
    tokens = list(METASPACE)
    first = Vocabulary.from_tokenizer(from_tokens(tokens, "metaspace"))
    again = Vocabulary.from_tokenizer(from_tokens(tokens, "metaspace"))
    assert first.sha256 == again.sha256 and len(first.sha256) == 64
    changed = Vocabulary.from_tokenizer(from_tokens(tokens[:-1] + ["è"], "metaspace"))
    assert changed.sha256 != first.sha256
    same_strings = Vocabulary.from_tokenizer(from_tokens(["kat", "hond"], "wordlevel"))
    other_marker = Vocabulary.from_tokenizer(from_tokens(["kat", "hond"], "wordpiece"))
    assert same_strings.sha256 != other_marker.sha256


def test_lookups_are_cached_and_arrays_read_only():
    vocab = Vocabulary.from_tokenizer(from_tokens(list(BYTELEVEL), "bytelevel"))
    assert vocab.ids_by_canonical() is vocab.ids_by_canonical()
    assert vocab.ids_by_canonical()[("kat", False)] == [vocab.id_of("kat")]
    assert vocab.id_of("not-a-token") is None
    with pytest.raises(ValueError):
        vocab.starts_word[0] = True
    with pytest.raises(AttributeError):
        vocab.name = "other"  # frozen


def test_byte_helpers():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256 and table[0x20] == "Ġ"
    assert bytelevel_to_bytes("Ġkat") == b" kat"
    assert bytelevel_to_bytes("a b") is None and bytelevel_to_bytes("▁kat") is None
    assert bytes_to_text("é🙂".encode()) == "é🙂"
    assert bytes_to_text(b"\xf0\x9f\x99") == "<0xF0><0x9F><0x99>"


@pytest.mark.parametrize("builder", [build_bytelevel_bpe, build_metaspace_unigram, build_llama_bpe, build_wordpiece])
def test_tiny_builders_are_deterministic(builder):
    """Other tests rely on tests/tiny.py giving the same ids every run."""
    assert builder().to_str() == builder().to_str()
