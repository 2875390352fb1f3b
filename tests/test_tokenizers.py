"""Loading tokenizers from every format, refusing bad input clearly, and the inspect report."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import pytest
import sentencepiece as spm
from tokenizers import AddedToken, processors

from tests.tiny import (build_wordpiece, corpus_lines, fast, make_bytelevel_bpe, make_gpt2_files, make_llama_bpe,
                        make_metaspace_unigram, make_sentencepiece_model, make_wordlevel, make_wordpiece)
from tokmap_ui.errors import HubError, InputFileError, TokenizerError, UnsafeFileError
from tokmap_ui.io.tokenizers import inspect_tokenizer, inspect_tokenizer_file, load_tokenizer
from tokmap_ui.tokenizer_report import DEFAULT_SAMPLE

TRICKY = ["  leading and  double  spaces ", "tab\there", "猫 日本語 🙂 🚲 €5", "Ünïcödé ﬁ ligature ½", "x",
          "café één naïve coöperatie"]


def ids(tokenizer, lines):
    return [tokenizer.encode(line, add_special_tokens=False) for line in lines]


def zip_folder(folder: Path, zip_path: Path, top: str | None = None) -> Path:
    with zipfile.ZipFile(zip_path, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, f"{top}/{file.name}" if top else file.name)
    return zip_path


# ---------------------------------------------------------------- every format loads

def test_hf_folder_and_its_files(tmp_path):
    folder = make_bytelevel_bpe(tmp_path / "gpt")
    tok = load_tokenizer(folder)
    assert tok.is_fast and len(tok) == 400 and tok.name_or_path == str(folder)
    assert tok.eos_token == "<|endoftext|>"
    via_file = load_tokenizer(folder / "tokenizer.json")  # beside a tokenizer_config.json: the folder loads
    assert ids(via_file, corpus_lines(20)) == ids(tok, corpus_lines(20))
    assert load_tokenizer(folder / "tokenizer_config.json").eos_token == "<|endoftext|>"


def test_bare_tokenizer_json_gets_roles_from_spelling(tmp_path):
    path = make_wordlevel(tmp_path / "wl")
    tok = load_tokenizer(path)
    assert (tok.unk_token, tok.pad_token) == ("[UNK]", "[PAD]")
    assert (tok.unk_token_id, tok.pad_token_id) == (0, 1)
    renamed = path.rename(tmp_path / "wl" / "my_tokenizer.json")
    assert len(load_tokenizer(renamed)) == len(tok)


@pytest.mark.parametrize("model_type, byte_fallback", [("unigram", False), ("unigram", True), ("bpe", False),
                                                       ("bpe", True)])
def test_sentencepiece_model_matches_sentencepiece(tmp_path, model_type, byte_fallback):
    path = make_sentencepiece_model(tmp_path, model_type=model_type, byte_fallback=byte_fallback)
    processor = spm.SentencePieceProcessor(model_file=str(path))
    tok = load_tokenizer(path)
    lines = corpus_lines(150, seed=3) + TRICKY
    assert len(tok) == processor.get_piece_size()
    assert ids(tok, lines) == [processor.encode(line) for line in lines]
    assert (tok.unk_token, tok.bos_token, tok.eos_token, tok.pad_token) == ("<unk>", "<s>", "</s>", "<pad>")
    if byte_fallback:  # decoding gives the text back, bytes included
        text = "猫 🙂"
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == processor.decode(processor.encode(text))


def test_sentencepiece_folder_with_config(tmp_path):
    """A slow-only folder (T5 style): roles and extra tokens come from tokenizer_config.json."""
    folder = tmp_path / "t5ish"
    make_sentencepiece_model(folder, name="spiece.model")
    size = len(load_tokenizer(folder / "spiece.model"))
    config = {"mask_token": {"content": "<mask>"}, "tokenizer_class": "T5Tokenizer",
              "added_tokens_decoder": {str(size): {"content": "<extra_id_0>", "special": True}},
              "additional_special_tokens": ["<extra_id_0>", "<extra_id_1>"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = load_tokenizer(folder)
    assert tok.mask_token == "<mask>" and tok.mask_token_id == 4 and tok.eos_token == "</s>"
    assert len(tok) == size + 2 and tok.convert_tokens_to_ids("<extra_id_1>") == size + 1
    config["added_tokens_decoder"] = {str(size + 5): {"content": "<extra_id_0>", "special": True}}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(TokenizerError, match=f"declares '<extra_id_0>' at id {size + 5}"):
        load_tokenizer(folder)


@pytest.mark.parametrize("lowercase", [True, False])
def test_wordpiece_vocab_txt(tmp_path, lowercase):
    path = make_wordpiece(tmp_path, lowercase=lowercase)
    tok = load_tokenizer(path)
    reference = build_wordpiece(lowercase=lowercase)
    lines = corpus_lines(50)
    assert len(tok) == reference.get_vocab_size()
    assert ids(tok, lines) == [reference.encode(line, add_special_tokens=False).ids for line in lines]
    assert tok.cls_token == "[CLS]" and tok.mask_token_id == 4
    assert tok.encode("de kat")[0] == 2 and tok.encode("de kat")[-1] == 3  # [CLS] ... [SEP]


@pytest.mark.parametrize("given", ["folder", "vocab.json", "merges.txt"])
def test_gpt2_vocab_and_merges(tmp_path, given):
    reference = load_tokenizer(make_bytelevel_bpe(tmp_path / "hf"))
    folder = make_gpt2_files(tmp_path / "gpt2")
    tok = load_tokenizer(folder if given == "folder" else folder / given)
    lines = corpus_lines(50) + TRICKY
    assert ids(tok, lines) == ids(reference, lines)
    assert tok.decode(tok.encode(TRICKY[2])) == TRICKY[2]
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 0


@pytest.mark.parametrize("maker, top", [(make_bytelevel_bpe, "tok"), (make_llama_bpe, None),
                                        (make_gpt2_files, None), (make_metaspace_unigram, "deep")])
def test_zip_of_each_format(tmp_path, maker, top):
    folder = maker(tmp_path / "src")
    reference = load_tokenizer(folder)
    zip_path = zip_folder(folder, tmp_path / "tok.zip", top)
    cache = tmp_path / "cache"
    for _ in range(2):  # the second load reuses the extraction
        tok = load_tokenizer(zip_path, cache_dir=cache)
        assert ids(tok, corpus_lines(20)) == ids(reference, corpus_lines(20))
    assert len(list(cache.iterdir())) == 1 and tok.name_or_path == str(zip_path)


def test_zip_of_spm_model_and_vocab_txt(tmp_path):
    model = make_sentencepiece_model(tmp_path / "spm")
    vocab = make_wordpiece(tmp_path / "wp")
    for single in (model, vocab):
        zip_path = tmp_path / f"{single.stem}.zip"
        with zipfile.ZipFile(zip_path, "w") as archive:
            archive.write(single, single.name)
        assert len(load_tokenizer(zip_path)) == len(load_tokenizer(single))


def test_remote_code_is_never_run(tmp_path):
    folder = make_bytelevel_bpe(tmp_path / "evil")
    marker = tmp_path / "pwned"
    (folder / "evil_tok.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil_tok.EvilTokenizer", None]})
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert len(load_tokenizer(folder)) == 400
    assert not marker.exists()


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", ["tokenizer.json", "spm.model", "vocab.txt"])
def test_empty_files(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(TokenizerError, match="is empty"):
        load_tokenizer(tmp_path / name)


def test_binary_junk(tmp_path):
    junk = bytes(range(256)) * 4
    (tmp_path / "tokenizer.json").write_bytes(junk)
    (tmp_path / "junk.model").write_bytes(junk)
    (tmp_path / "vocab.txt").write_bytes(junk)
    with pytest.raises(TokenizerError, match="binary"):
        load_tokenizer(tmp_path / "tokenizer.json")
    with pytest.raises(TokenizerError, match="not a valid SentencePiece model"):
        load_tokenizer(tmp_path / "junk.model")
    with pytest.raises(TokenizerError, match="binary"):
        load_tokenizer(tmp_path / "vocab.txt")


def test_broken_json_reports_line_and_column(tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_text('{"model": {"type": "BPE",\n  "vocab": {"a": 0,}\n}')
    with pytest.raises(TokenizerError, match=r"line 2: is not valid JSON .* at column 20") as info:
        load_tokenizer(path)
    assert info.value.line == 2 and info.value.path == path
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{\n\n  oops")
    with pytest.raises(TokenizerError, match="line 3"):
        load_tokenizer(folder)


def test_json_that_is_not_a_tokenizer(tmp_path):
    (tmp_path / "a.json").write_text('{"model": {"type": "Nope"}}')
    with pytest.raises(TokenizerError, match="cannot be read by the tokenizers library"):
        load_tokenizer(tmp_path / "a.json")
    (tmp_path / "b.json").write_text('{"kat": 0, "hond": 1}')
    with pytest.raises(TokenizerError, match="looks like a vocab.json"):
        load_tokenizer(tmp_path / "b.json")


def test_truncated_sentencepiece_model(tmp_path):
    model = make_sentencepiece_model(tmp_path)
    truncated = tmp_path / "truncated.model"
    truncated.write_bytes(model.read_bytes()[:2000])
    with pytest.raises(TokenizerError, match="truncated or corrupt"):
        load_tokenizer(truncated)


def test_unsupported_sentencepiece_word_model(tmp_path):
    model = make_sentencepiece_model(tmp_path, model_type="word", vocab_size=150)
    with pytest.raises(TokenizerError, match="WORD model"):
        load_tokenizer(model)


@pytest.mark.parametrize("name", ["pytorch_model.bin", "tokenizer.pt", "vocab.pkl", "x.pth"])
def test_pickles_are_refused(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x80\x04K\x01.")  # a real pickle of 1: never opened
    with pytest.raises(UnsafeFileError, match="pickled"):
        load_tokenizer(tmp_path / name)


def test_utf16_and_duplicate_vocab_txt(tmp_path):
    (tmp_path / "vocab.txt").write_bytes("[PAD]\n[UNK]\nkat\n".encode("utf-16"))
    with pytest.raises(TokenizerError, match="UTF-16"):
        load_tokenizer(tmp_path / "vocab.txt")
    (tmp_path / "dup.txt").write_text("[PAD]\nkat\nhond\nkat\n")
    with pytest.raises(TokenizerError, match="repeats the token 'kat'") as info:
        load_tokenizer(tmp_path / "dup.txt")
    assert info.value.line == 4


def test_bad_gpt2_files(tmp_path):
    folder = make_gpt2_files(tmp_path / "g")
    (folder / "merges.txt").unlink()
    with pytest.raises(InputFileError, match="merges.txt: not found"):
        load_tokenizer(folder / "vocab.json")
    (folder / "merges.txt").write_text("#version: 0.2\nĠ k\nzz qq\n")
    with pytest.raises(TokenizerError, match="bad merge 'zz qq'") as info:
        load_tokenizer(folder)
    assert info.value.line == 3
    (folder / "vocab.json").write_text(json.dumps({f"wörd {i}": i for i in range(50)}))
    with pytest.raises(TokenizerError, match="not a GPT-2 byte-level vocabulary"):
        load_tokenizer(folder)


def test_folder_without_tokenizer_files_and_unknown_files(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(TokenizerError, match="has no tokenizer files"):
        load_tokenizer(tmp_path)
    (tmp_path / "table.csv").write_text("a,b\n")
    with pytest.raises(TokenizerError, match="not a tokenizer file"):
        load_tokenizer(tmp_path / "table.csv")


@pytest.mark.parametrize("spec", ["./missing", "missing.json", "tok.model", "a/b/c", "/no/such/tokenizer"])
def test_missing_paths_are_not_hub_ids(spec):
    with pytest.raises(InputFileError, match="not found") as info:
        load_tokenizer(spec)
    assert not isinstance(info.value, TokenizerError)


def test_unsafe_zip_is_refused(tmp_path):
    zip_path = tmp_path / "evil.zip"
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr("tokenizer.json", "{}")
        archive.writestr("../../escape.txt", "x")
    with pytest.raises(UnsafeFileError, match="outside the target folder"):
        load_tokenizer(zip_path, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "escape.txt").exists()


# ---------------------------------------------------------------- the hub

@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_hub_id_offline_fails_fast(tmp_path, monkeypatch, variable):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    for spec in ("gpt2", "some-org/some-model"):
        start = time.monotonic()
        with pytest.raises(HubError, match="offline mode"):
            load_tokenizer(spec)
        assert time.monotonic() - start < 5


def test_hub_id_offline_uses_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--some-org--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    make_bytelevel_bpe(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    tok = load_tokenizer("some-org/tiny")
    assert len(tok) == 400 and tok.name_or_path == "some-org/tiny"


def test_unreachable_hub_fails_fast(monkeypatch):
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # loopback, nothing listens
    start = time.monotonic()
    with pytest.raises(HubError, match="cannot be reached"):
        load_tokenizer("some-org/some-model", hub_timeout=2)
    assert time.monotonic() - start < 5


# ---------------------------------------------------------------- the report

def test_report_bytelevel(tmp_path):
    folder = make_bytelevel_bpe(tmp_path / "gpt")
    report = inspect_tokenizer_file(folder)
    assert report == inspect_tokenizer(load_tokenizer(folder))
    assert (report.kind, report.model_type, report.word_start_marker, report.continuation_marker) == (
        "bpe-bytelevel", "BPE", "Ġ", "none")
    assert report.byte_level and not report.byte_fallback and report.n_byte_tokens == 0
    assert report.lossless and report.first_difference is None
    assert report.n_sample_lines == len(DEFAULT_SAMPLE.splitlines()) == 7
    assert ("eos", "<|endoftext|>", 0) in report.special_tokens and report.vocab_size == 400
    data = json.loads(json.dumps(report.to_dict()))
    assert data["kind"] == "bpe-bytelevel" and data["lossless"] is True
    assert {"role": "eos", "token": "<|endoftext|>", "id": 0} in data["special_tokens"]
    text = report.to_text()
    assert "bpe-bytelevel" in text and "lossless" in text and "Ġ" in text and str(folder) in text


def test_report_llama_and_sentencepiece(tmp_path):
    report = inspect_tokenizer_file(make_llama_bpe(tmp_path / "llama"))
    assert (report.kind, report.word_start_marker) == ("bpe", "▁")
    assert report.byte_fallback and report.n_byte_tokens == 256 and report.lossless
    model = make_sentencepiece_model(tmp_path / "spm", model_type="unigram", byte_fallback=True)
    report = inspect_tokenizer_file(model)
    assert (report.kind, report.byte_fallback, report.n_byte_tokens) == ("unigram", True, 256)
    assert (4, "<mask>", False) in report.added_tokens and report.normalizer.startswith("Precompiled")


def test_report_wordpiece_is_not_lossless(tmp_path):
    report = inspect_tokenizer_file(make_wordpiece(tmp_path))
    assert (report.kind, report.word_start_marker, report.continuation_marker) == ("wordpiece", "none", "##")
    assert not report.lossless and report.normalizer == "BertNormalizer(lowercase)"
    assert report.first_difference[0] == DEFAULT_SAMPLE.splitlines()[0]
    assert report.first_difference[1].startswith("the ")
    assert "NOT lossless" in report.to_text() and report.sample_unknown_tokens > 0
    assert any("unknown tokens" in w for w in report.warnings)
    own = inspect_tokenizer(load_tokenizer(make_wordpiece(tmp_path / "b")), sample_text="de kat\n\nde hond\n")
    assert own.lossless and own.n_sample_lines == 2


def test_report_kinds_and_other_specials(tmp_path):
    assert inspect_tokenizer_file(make_wordlevel(tmp_path / "wl")).kind == "wordlevel"
    tok = load_tokenizer(make_metaspace_unigram(tmp_path / "uni"))
    tok.add_tokens([AddedToken("<|im_start|>", special=True)], special_tokens=True)
    report = inspect_tokenizer(tok)
    assert report.kind == "unigram" and ("other", "<|im_start|>", len(tok) - 1) in report.special_tokens


def test_report_warns_about_wrong_post_processor_ids():
    """RobBERT-2023 shipped a post-processor whose sep id was not the vocabulary's."""
    backend = build_wordpiece()
    backend.post_processor = processors.BertProcessing(("[SEP]", 99), ("[CLS]", 2))
    report = inspect_tokenizer(fast(backend, unk_token="[UNK]", sep_token="[SEP]", cls_token="[CLS]"))
    assert any("'[SEP]' with id 99" in w and "id 3" in w for w in report.warnings)
    assert not any("[CLS]" in w for w in report.warnings)


def test_offline_env_is_set_for_the_suite():
    """The suite never reaches a hub (tests/conftest.py sets offline mode)."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
