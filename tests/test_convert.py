"""Conversion of tiny GPT-2, Llama, BERT and RoBERTa models to a new tokenizer by a token map."""

from __future__ import annotations

import json
import time
import zipfile

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from tests.models import (function_token_map, gpt2_tokenizer, llama_tokenizer, save_pair, tiny_model,
                          tiny_pair, tokenizer_for, toy_token_map)
from tokmap_ui.convert import ConvertConfig, Fallback, convert_model, convert_model_with_report
from tokmap_ui.errors import ConfigError, HubError, InputFileError, ModelError, TokenMapError, UnsafeFileError
from tokmap_ui.io.models import load_model, read_embedding_table, save_model_dir, zip_model_dir
from tokmap_ui.io.tokenmaps import save_token_map
from tokmap_ui.mapping.tokenmap import MapEntry
from tokmap_ui.vocab import Vocabulary


@pytest.fixture(scope="module")
def toks():
    """One tokenizer and its Vocabulary per family (training them is the slow part)."""
    out = {}
    for family in ("gpt2", "llama", "bert", "roberta"):
        tok = tokenizer_for(family)
        out[family] = (tok, Vocabulary.from_tokenizer(tok, name=family))
    return out


def expected_rows(old: torch.Tensor, entry: MapEntry) -> torch.Tensor:
    total = sum(w for _, w in entry.sources)
    return sum(old[s].float() * (w / total) for s, w in entry.sources)


def mapped_entries(token_map, method="neighbour", k=5):
    return [e for e in token_map.entries if e.method == method and len(e.sources) > 1][:k]


def test_gpt2_tied_to_llama_tokenizer_rows_config_reload_generate(toks, tmp_path):
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["gpt2"], toks["llama"]
    model = tiny_model("gpt2", len(src_tok), src_tok, tie=True)
    old = model.get_input_embeddings().weight.detach().clone()
    token_map = toy_token_map(src_vocab, tgt_vocab)
    model, tok, report = convert_model_with_report(model, src_vocab, tgt_tok, tgt_vocab, token_map,
                                                   source_tokenizer=src_tok)
    new = model.get_input_embeddings().weight
    assert new.shape == (len(tgt_tok), old.shape[1])
    assert model.get_output_embeddings().weight is new, "tied tables must stay one tensor"
    for entry in mapped_entries(token_map):
        torch.testing.assert_close(new[entry.target_id], expected_rows(old, entry))
    unmapped = [e.target_id for e in token_map.entries if not e.sources]
    torch.testing.assert_close(new[unmapped[0]], old.mean(0))
    roles = tgt_vocab.special_roles
    assert (model.config.bos_token_id, model.config.eos_token_id) == (roles["bos"], roles["eos"])
    assert model.generation_config.eos_token_id == roles["eos"]
    assert model.config.vocab_size == len(tgt_tok) and report.tied and report.counts["unmapped"] == len(unmapped)

    out = save_model_dir(model, tok, tmp_path / "out")
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin"))
    reloaded = AutoModelForCausalLM.from_pretrained(out)
    retok = AutoTokenizer.from_pretrained(out)
    torch.testing.assert_close(reloaded.get_input_embeddings().weight, new)
    ids = retok("de kat zat", return_tensors="pt").input_ids
    assert ids[0, 0].item() != roles["bos"], "GPT-2 never saw a bos prefix, so the converted tokenizer adds none"
    generated = reloaded.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=roles["eos"])
    assert generated.shape[1] == ids.shape[1] + 4 and int(generated.max()) < len(retok)


def test_llama_untied_head_is_remapped_separately(toks, tmp_path):
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["llama"], toks["gpt2"]
    model = tiny_model("llama", len(src_tok), src_tok, tie=False)
    old_in = model.get_input_embeddings().weight.detach().clone()
    old_out = model.get_output_embeddings().weight.detach().clone()
    token_map = toy_token_map(src_vocab, tgt_vocab)
    model, tok = convert_model(model, src_vocab, tgt_tok, tgt_vocab, token_map, source_tokenizer=src_tok)
    new_in, new_out = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert new_in is not new_out and new_out.shape == (len(tgt_tok), old_out.shape[1])
    for entry in mapped_entries(token_map):
        torch.testing.assert_close(new_in[entry.target_id], expected_rows(old_in, entry))
        torch.testing.assert_close(new_out[entry.target_id], expected_rows(old_out, entry))
    # Llama reads "<s> A": the converted tokenizer starts with the target's bos (GPT-2's <|endoftext|>).
    bos = tgt_vocab.special_roles["bos"]
    assert tok("de kat").input_ids[0] == bos and model.config.bos_token_id == bos
    save_model_dir(model, tok, tmp_path / "out")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert not reloaded.config.tie_word_embeddings
    torch.testing.assert_close(reloaded.get_output_embeddings().weight, new_out)
    assert AutoTokenizer.from_pretrained(tmp_path / "out")("de kat").input_ids == tok("de kat").input_ids


@pytest.mark.parametrize("source,target,tie", [("gpt2", "llama", False), ("llama", "bert", False),
                                                ("bert", "roberta", True), ("roberta", "bert", True)])
def test_converted_model_equals_original_under_a_function_map(toks, source, target, tie):
    """With a 1-source map f, converted(ids) must equal original(f(ids)) on logits[f] -- every
    vocabulary-sized tensor (embeddings, head, bias, RoBERTa's shifted positions) agrees."""
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks[source], toks[target]
    model = tiny_model(source, len(src_tok), src_tok, tie=tie)
    token_map, f = function_token_map(src_vocab, tgt_vocab)
    target_ids = torch.tensor([tgt_tok("de kat zat op de mat").input_ids])
    source_ids = torch.tensor([[f[i] for i in target_ids[0].tolist()]])
    with torch.no_grad():
        before = model(input_ids=source_ids).logits[0]                       # (T, V_s)
    converted, _ = convert_model(model, src_vocab, tgt_tok, tgt_vocab, token_map, source_tokenizer=src_tok)
    with torch.no_grad():
        after = converted(input_ids=target_ids).logits[0]                    # (T, V_t)
    torch.testing.assert_close(after, before[:, torch.tensor(f)], rtol=1e-4, atol=1e-5)


def test_bert_to_roberta_style_tokenizer_frames_with_target_ids(toks, tmp_path):
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["bert"], toks["roberta"]
    model = tiny_model("bert", len(src_tok), src_tok)
    old_bias = model.cls.predictions.bias.detach().clone()
    token_map = toy_token_map(src_vocab, tgt_vocab)
    model, tok, report = convert_model_with_report(model, src_vocab, tgt_tok, tgt_vocab, token_map,
                                                   source_tokenizer=src_tok)
    roles = tgt_vocab.special_roles  # <s> 0, <pad> 1, </s> 2, <mask> 4
    encoded = tok("de kat")
    assert encoded.input_ids[0] == roles["cls"] == 0 and encoded.input_ids[-1] == roles["sep"] == 2
    pair = tok("de kat", "het huis")
    assert pair.input_ids.count(roles["sep"]) == 2 and pair.token_type_ids[-1] == 1, "BERT pairs: one sep, B = type 1"
    bias = model.cls.predictions.bias
    assert model.cls.predictions.decoder.bias is bias and bias.shape == (len(tgt_tok),)
    for entry in mapped_entries(token_map):
        torch.testing.assert_close(bias[entry.target_id], expected_rows(old_bias[:, None], entry)[0])
    unmapped = next(e.target_id for e in token_map.entries if not e.sources)
    torch.testing.assert_close(bias[unmapped], old_bias.mean())
    c = model.config
    assert (c.pad_token_id, c.vocab_size) == (roles["pad"], len(tgt_tok)) and "output bias" in report.tensors

    save_model_dir(model, tok, tmp_path / "out")
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path / "out")
    retok = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert retok("de kat").input_ids == encoded.input_ids
    assert retok.model_max_length == 64, "no limit on the source tokenizer: the model's position table decides"
    text = f"de {retok.mask_token} zat"
    batch = retok(text, return_tensors="pt")
    with torch.no_grad():
        logits = reloaded(**batch).logits
    position = batch.input_ids[0].tolist().index(roles["mask"])
    assert logits.shape[-1] == len(retok) and 0 <= int(logits[0, position].argmax()) < len(retok)
    torch.testing.assert_close(reloaded.cls.predictions.bias, bias)


def test_wrong_sep_id_in_target_post_processor_is_fixed(toks):
    """A target tokenizer whose post-processor hard-codes the mask id as [SEP] (a known trap)."""
    from tokenizers import processors

    from tests.tiny import build_wordpiece, fast

    src_tok, src_vocab = toks["roberta"]
    backend = build_wordpiece()
    backend.post_processor = processors.BertProcessing(("[SEP]", 4), ("[CLS]", 2))  # 4 is [MASK]
    tgt_tok = fast(backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                   mask_token="[MASK]")
    assert tgt_tok("kat").input_ids[-1] == 4
    tgt_vocab = Vocabulary.from_tokenizer(tgt_tok)
    model = tiny_model("roberta", len(src_tok), src_tok)
    _, tok = convert_model(model, src_vocab, tgt_tok, tgt_vocab, toy_token_map(src_vocab, tgt_vocab),
                           source_tokenizer=src_tok)
    ids = tok("kat").input_ids
    assert ids[0] == 2 and ids[-1] == 3, f"expected [CLS] ... [SEP] (2 ... 3), got {ids}"
    assert tgt_tok("kat").input_ids[-1] == 4, "the caller's tokenizer is not modified"


def test_fixed_padding_in_tokenizer_json_is_not_copied(toks):
    """all-MiniLM-L6-v2's tokenizer.json pads every input to 128 with pad id 0 (the source's [PAD])."""
    from tests.tiny import build_wordpiece, fast

    backend = build_wordpiece()
    backend.enable_padding(length=16, pad_id=0, pad_token="[PAD]")
    backend.enable_truncation(max_length=16)
    src_tok = fast(backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                   mask_token="[MASK]")
    src_vocab = Vocabulary.from_tokenizer(src_tok)
    tgt_tok, tgt_vocab = toks["roberta"]
    _, tok, report = convert_model_with_report(tiny_model("bert", len(src_tok), src_tok), src_vocab, tgt_tok,
                                               tgt_vocab, toy_token_map(src_vocab, tgt_vocab), source_tokenizer=src_tok)
    assert report.template == "<s> $A </s> | <s> $A </s> $B:1 </s>:1"
    assert tok("kat").input_ids == [0, *tgt_tok("kat", add_special_tokens=False).input_ids, 2]
    padded = tok(["kat", "de kat zat op de mat"], padding=True).input_ids
    assert padded[0][-1] == tgt_vocab.special_roles["pad"] == 1


def test_roberta_new_pad_id_shifts_positions(toks):
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["roberta"], toks["bert"]
    model = tiny_model("roberta", len(src_tok), src_tok)
    old_pos = model.roberta.embeddings.position_embeddings.weight.detach().clone()  # pad 1: positions from 2
    converted, tok = convert_model(model, src_vocab, tgt_tok, tgt_vocab, toy_token_map(src_vocab, tgt_vocab),
                                   source_tokenizer=src_tok)
    new_pos = converted.roberta.embeddings.position_embeddings.weight                # pad 0: positions from 1
    torch.testing.assert_close(new_pos[1:], old_pos[2:])
    assert converted.config.max_position_embeddings == len(old_pos) - 1
    assert tok.model_max_length == len(old_pos) - 2 == 64


def test_padded_table_keeps_padding_multiple_and_rows(toks, tmp_path):
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["gpt2"], toks["llama"]
    model = tiny_model("gpt2", len(src_tok) + 48, src_tok)            # 448 rows = 7 * 64, Qwen-style
    old = model.get_input_embeddings().weight.detach().clone()
    converted, tok, report = convert_model_with_report(model, src_vocab, tgt_tok, tgt_vocab,
                                                       toy_token_map(src_vocab, tgt_vocab), source_tokenizer=src_tok)
    new = converted.get_input_embeddings().weight
    assert new.shape[0] == 512 and converted.config.vocab_size == 512 and len(tok) == len(tgt_tok) == 500
    torch.testing.assert_close(new[500:], old[400:412])                # padding rows carried over
    assert report.counts["padding"] == 12
    save_model_dir(converted, tok, tmp_path / "out")
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").get_input_embeddings().weight.shape[0] == 512
    unpadded = tiny_model("gpt2", len(src_tok) + 48, src_tok)
    converted, _ = convert_model(unpadded, src_vocab, tgt_tok, tgt_vocab, toy_token_map(src_vocab, tgt_vocab),
                                 ConvertConfig(pad_to_multiple_of=1), source_tokenizer=src_tok)
    assert converted.get_input_embeddings().weight.shape[0] == 500


def test_added_tokens_past_the_table(toks):
    """Target: added tokens grow the tokenizer past its base vocab. Source: tokens the table lacks."""
    src_tok = gpt2_tokenizer()
    src_tok.add_tokens(["<extra_a>", "<extra_b>"], special_tokens=True)       # 402 tokens, table stays 400
    src_vocab = Vocabulary.from_tokenizer(src_tok)
    tgt_tok = llama_tokenizer()
    tgt_tok.add_tokens(["<tool>", "<think>", "<end>"], special_tokens=True)
    tgt_vocab = Vocabulary.from_tokenizer(tgt_tok)
    assert len(tgt_tok) == 503 > tgt_tok.vocab_size - 1
    token_map = toy_token_map(src_vocab, tgt_vocab)
    token_map = token_map.with_entries([MapEntry(20, tgt_vocab.tokens[20], ((401, 1.0),), "manual"),
                                        MapEntry(21, tgt_vocab.tokens[21], ((401, 1.0), (7, 1.0)), "manual")])
    model = tiny_model("gpt2", 400, src_tok)
    old = model.get_input_embeddings().weight.detach().clone()
    converted, _, report = convert_model_with_report(model, src_vocab, tgt_tok, tgt_vocab, token_map,
                                                     source_tokenizer=src_tok)
    new = converted.get_input_embeddings().weight
    assert new.shape[0] == 503 and report.dropped_sources >= 2 and report.warnings
    torch.testing.assert_close(new[20], old[:400].mean(0))             # only source was past the table
    torch.testing.assert_close(new[21], old[7])                          # renormalised onto the rest


def test_fallbacks_random_seeded_rejected_and_fvt(toks):
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["llama"], toks["gpt2"]
    token_map = toy_token_map(src_vocab, tgt_vocab, unmapped_every=2)
    with_sources = [e for e in token_map.entries if e.sources and e.method != "special" and e.target_id > 300]
    rejected, random_entry = with_sources[0], with_sources[1]
    token_map = token_map.with_entries([
        MapEntry(rejected.target_id, rejected.target_token, rejected.sources, rejected.method, status="rejected"),
        MapEntry(random_entry.target_id, random_entry.target_token, (), "random")])
    unmapped = [e.target_id for e in token_map.entries if e.method == "unmapped"]

    old = tiny_model("llama", len(src_tok), src_tok).get_input_embeddings().weight.detach().clone()

    def run(fallback, seed=0):
        model = tiny_model("llama", len(src_tok), src_tok)  # same seed: same rows as `old`
        converted, _, report = convert_model_with_report(model, src_vocab, tgt_tok, tgt_vocab, token_map,
                                                         ConvertConfig(fallback=fallback, seed=seed),
                                                         source_tokenizer=src_tok)
        return converted.get_input_embeddings().weight.detach(), report

    mean_rows, report = run(Fallback.MEAN)
    torch.testing.assert_close(mean_rows[rejected.target_id], old.mean(0))
    assert report.counts["rejected"] == 1 and report.counts["random"] == 1
    assert not torch.allclose(mean_rows[random_entry.target_id], old.mean(0)), "method 'random' is random"

    random_rows, _ = run(Fallback.RANDOM)
    again, _ = run(Fallback.RANDOM)
    other_seed, _ = run(Fallback.RANDOM, seed=1)
    torch.testing.assert_close(random_rows, again)
    assert not torch.equal(random_rows[unmapped], other_seed[unmapped])
    std = float(random_rows[unmapped].std())
    assert 0.015 < std < 0.025, f"random rows should be N(0, initializer_range=0.02), std {std}"

    fvt_rows, report = run(Fallback.KEEP_FVT)
    token = tgt_tok.convert_ids_to_tokens(rejected.target_id)
    pieces = src_tok(tgt_tok.convert_tokens_to_string([token]), add_special_tokens=False).input_ids
    torch.testing.assert_close(fvt_rows[rejected.target_id], old[pieces].mean(0))
    assert report.counts["fvt"] > 0


def test_map_for_other_vocabularies_and_bad_config_are_refused(toks):
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["gpt2"], toks["llama"]
    other_map = toy_token_map(src_vocab, toks["bert"][1])
    model = tiny_model("gpt2", len(src_tok), src_tok)
    with pytest.raises(TokenMapError, match="does not fit the target"):
        convert_model(model, src_vocab, tgt_tok, tgt_vocab, other_map)
    with pytest.raises(ConfigError, match="source tokenizer"):
        convert_model(model, src_vocab, tgt_tok, tgt_vocab, toy_token_map(src_vocab, tgt_vocab),
                      ConvertConfig(fallback="keep-fvt"))
    with pytest.raises(ValueError):
        ConvertConfig(fallback="zeros")


# ---------------------------------------------------------------- model I/O


def test_load_model_refuses_pickles_and_offline_hub_and_bad_folders(tmp_path, monkeypatch):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(UnsafeFileError, match="safetensors"):
        load_model(folder)
    with pytest.raises(UnsafeFileError):
        load_model(folder / "pytorch_model.bin")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(HubError, match="local"):
        load_model("some-owner/some-model")
    assert time.monotonic() - start < 2
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing" / "model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="config.json"):
        load_model(tmp_path / "empty")
    with pytest.raises(ModelError, match="task"):
        load_model(folder, task="seq2seq")


def test_load_model_task_auto_and_embedding_table(tmp_path):
    model, tok = tiny_pair("bert")
    save_pair(model, tok, tmp_path / "bert")
    loaded, loaded_tok = load_model(tmp_path / "bert")
    assert type(loaded).__name__ == "BertForMaskedLM" and len(loaded_tok) == len(tok)
    base, _ = load_model(tmp_path / "bert", task="base")
    assert type(base).__name__ == "BertModel"
    torch.testing.assert_close(read_embedding_table(tmp_path / "bert"), model.get_input_embeddings().weight)
    llama, llama_tok = tiny_pair("llama", tie=False)
    save_pair(llama, llama_tok, tmp_path / "llama")
    assert type(load_model(tmp_path / "llama")[0]).__name__ == "LlamaForCausalLM"
    torch.testing.assert_close(read_embedding_table(tmp_path / "llama"), llama.get_input_embeddings().weight)


def test_save_model_dir_is_atomic_and_zip(tmp_path):
    model, tok = tiny_pair("gpt2")
    out = save_model_dir(model, tok, tmp_path / "m", extra_files={"note.json": "{}"})
    assert (out / "note.json").is_file()
    with pytest.raises(InputFileError, match="--overwrite"):
        save_model_dir(model, tok, out)
    (out / "stale.txt").write_text("old")
    save_model_dir(model, tok, out, overwrite=True)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()

    class Broken:
        def save_pretrained(self, path):
            raise OSError("disk full")

    with pytest.raises(OSError):
        save_model_dir(model, Broken(), tmp_path / "never")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "workspace"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["m"], "no temporary folder left behind"
    archive = zip_model_dir(out)
    names = zipfile.ZipFile(archive).namelist()
    assert archive.name == "m.zip" and "m/model.safetensors" in names and "m/tokenizer.json" in names


# ---------------------------------------------------------------- CLI


@pytest.fixture
def cli_main(monkeypatch):
    """``main`` with this module's subcommands registered (until the lead lists them in COMMAND_MODULES)."""
    import tokmap_ui.cli as cli

    if "tokmap_ui.cli.convert" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ("tokmap_ui.cli.convert",))
    return cli.main


def test_cli_convert_end_to_end(toks, tmp_path, capsys, cli_main):
    main = cli_main
    (src_tok, src_vocab), (tgt_tok, tgt_vocab) = toks["bert"], toks["roberta"]
    model = tiny_model("bert", len(src_tok), src_tok)
    save_pair(model, src_tok, tmp_path / "src")
    tgt_tok.save_pretrained(tmp_path / "tgt")
    map_path = save_token_map(toy_token_map(Vocabulary.from_tokenizer(src_tok),
                                            Vocabulary.from_tokenizer(tgt_tok)), tmp_path / "map.json.gz")
    argv = ["convert", "--model", str(tmp_path / "src"), "--map", str(map_path), "--target-tokenizer",
            str(tmp_path / "tgt"), "--out", str(tmp_path / "out"), "--zip"]
    assert main(argv) == 0
    assert "tensors rebuilt" in capsys.readouterr().out
    provenance = json.loads((tmp_path / "out" / "tokmap_conversion.json").read_text())
    assert provenance["report"]["rows"] == len(tgt_tok) and provenance["config"]["fallback"] == "mean"
    assert (tmp_path / "out.zip").is_file()
    reloaded, retok = load_model(tmp_path / "out")
    assert reloaded.config.vocab_size == len(retok) and retok("kat").input_ids[0] == 0
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    missing_map = ["convert", "--model", str(tmp_path / "src"), "--map", str(tmp_path / "nope.json"),
                   "--target-tokenizer", str(tmp_path / "tgt"), "--out", str(tmp_path / "o2")]
    assert main(missing_map) == 2 and "nope.json" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_packaged_minilm_alias_names_a_model_folder():
    from tokmap_ui.io.models import PACKAGED_MINILM, resolve_model_dir

    folder = resolve_model_dir(PACKAGED_MINILM)
    assert (folder / "config.json").is_file()
    assert any(folder.glob("*.safetensors"))
