"""Cross-lingual sentence retrieval: metrics, pooling, pair sampling, the parallel TSV loader, the CLI."""

from __future__ import annotations

import json

import pytest
import torch

from tests.models import function_token_map, save_pair, tiny_model, tokenizer_for
from tests.tiny import corpus_lines
from tokmap_ui.convert import convert_model, convert_model_with_report
from tokmap_ui.errors import ConfigError, InputFileError
from tokmap_ui.io.parallel import load_parallel_tsv
from tokmap_ui.mapping.retrieval import (RetrievalConfig, embed_sentences, evaluate_retrieval, retrieval_scores,
                                         sample_pairs)
from tokmap_ui.vocab import Vocabulary

EN_NL = [("The cat sits on the mat.", "De kat zit op de mat."),
         ("Open the file menu.", "Open het menu Bestand."),
         ("Save the document before closing.", "Sla het document op voordat u het sluit."),
         ("The table has three columns.", "De tabel heeft drie kolommen."),
         ("Click the button to print.", "Klik op de knop om af te drukken."),
         ("Children play in the garden.", "Kinderen spelen in de tuin."),
         ("The train leaves at eight o'clock.", "De trein vertrekt om acht uur."),
         ("Insert a new slide.", "Voeg een nieuwe dia in."),
         ("Select the cells you want to format.", "Selecteer de cellen die u wilt opmaken."),
         ("We walk to school every day.", "Wij lopen elke dag naar school.")]


def test_scores_identity_permutation_ties_and_nan():
    e = torch.nn.functional.normalize(torch.randn(20, 8), dim=1)
    assert retrieval_scores(e, e) == {"p_at_1": 1.0, "p_at_5": 1.0, "mrr": 1.0, "n": 20}
    shifted = retrieval_scores(torch.eye(4), torch.eye(4)[[1, 0, 2, 3]])
    assert shifted["p_at_1"] == 0.5 and shifted["p_at_5"] == 1.0
    collapsed = retrieval_scores(torch.ones(10, 4), torch.ones(10, 4))
    assert collapsed["p_at_1"] == 0.0 and collapsed["mrr"] == pytest.approx(0.1), "ties count against the query"
    broken = torch.full((3, 2), float("nan"))
    assert retrieval_scores(broken, broken)["p_at_1"] == 0.0
    assert retrieval_scores(e, e, block=7) == retrieval_scores(e, e)
    with pytest.raises(ConfigError):
        retrieval_scores(e, e[:5])


def test_sample_pairs_dedupes_drops_identical_and_is_seeded():
    src = ["a", "b", "b", "Access2Base", "c", "d", "e", "f"]
    tgt = ["x", "y", "z", "access2base", "x", "w", "v", "u"]
    s, t, counts = sample_pairs(src, tgt, n=100)
    assert s == ["a", "b", "d", "e", "f"] and t == ["x", "y", "w", "v", "u"]
    assert counts == {"pairs": 8, "duplicate": 2, "identical": 1, "used": 5}
    assert sample_pairs(src, tgt, n=3, seed=1) == sample_pairs(src, tgt, n=3, seed=1)
    assert len(sample_pairs(src, tgt, n=3)[0]) == 3
    assert "Access2Base" in sample_pairs(src, tgt, n=100, drop_identical=False)[0]


def test_mean_pooling_ignores_padding_and_keeps_order():
    tok = tokenizer_for("bert")
    model = tiny_model("bert", len(tok), tok, head="base")
    sentences = corpus_lines(9, seed=3)
    together = embed_sentences(model, tok, sentences, batch_size=4)
    alone = torch.cat([embed_sentences(model, tok, [s], batch_size=1) for s in sentences])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(together.norm(dim=1), torch.ones(9))
    mlm = tiny_model("bert", len(tok), tok)  # an MLM model pools its encoder, not the logits
    assert embed_sentences(mlm, tok, sentences[:2]).shape == (2, 16)


@pytest.fixture(scope="module")
def minilm():
    """all-MiniLM-L6-v2 (BertModel, 30,522 WordPiece tokens) from the installed package, loaded once."""
    from tokmap_ui.io.demo_kit import minilm_path
    from tokmap_ui.io.models import load_model

    return load_model(minilm_path(), task="base")


def test_mean_pooling_matches_sentence_transformers_minilm(minilm):
    st = pytest.importorskip("sentence_transformers")
    from tokmap_ui.io.demo_kit import minilm_path

    model, tok = minilm
    sentences = [en for en, _ in EN_NL[:4]]
    ours = embed_sentences(model, tok, sentences)
    reference = st.SentenceTransformer(str(minilm_path()), device="cpu").encode(sentences, convert_to_tensor=True)
    torch.testing.assert_close(ours, reference.float().cpu(), rtol=1e-4, atol=1e-4)


def test_minilm_converted_to_demo_kit_dutch_bpe_retrieves(minilm):
    """The real path: MiniLM (WordPiece, tokenizer.json padded to 128) -> the kit's RoBERTa-style Dutch
    BPE by an FVT map; the converted encoder must frame inputs right and find translations well
    above chance (measured on 50 dev pairs: 0.38 converted, 0.58 unconverted)."""
    import copy

    from tokmap_ui.convert_tokenizer import fvt_source_ids
    from tokmap_ui.io.demo_kit import demo_kit_paths
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.mapping.tokenmap import MapEntry, TokenMap, VocabRef

    source, source_tok = minilm
    kit = demo_kit_paths()
    target_tok = load_tokenizer(kit.tokenizers["nl-bpe"])
    sv, tv = Vocabulary.from_tokenizer(source_tok), Vocabulary.from_tokenizer(target_tok)
    role_of = {i: r for r, i in tv.special_roles.items()}
    entries = []
    for i, token in enumerate(tv.tokens):
        role = role_of.get(i)
        sources = ((sv.special_roles[role], 1.0),) if role in sv.special_roles else \
            tuple((s, 1.0) for s in fvt_source_ids(target_tok, source_tok, i))
        entries.append(MapEntry(i, token, sources, "fvt" if sources else "unmapped"))
    token_map = TokenMap("fvt", VocabRef.of(tv), VocabRef.of(sv), {}, tuple(entries))
    converted, tok, report = convert_model_with_report(copy.deepcopy(source), sv, target_tok, tv, token_map,
                                                       source_tokenizer=source_tok)
    assert report.template == "<s> $A </s> | <s> $A </s> $B:1 </s>:1" and tok.model_max_length == 512
    assert converted.config.pad_token_id == tv.special_roles["pad"] == 1
    assert tok(["De kat.", "Een veel langere zin dan de eerste."], padding=True).input_ids[0][-1] == 1
    text = load_parallel_tsv(kit.parallel["en-nl.dev"], "en", "nl")
    result = evaluate_retrieval(converted, tok, source, source_tok, text.src, text.tgt, RetrievalConfig(n=40))
    assert result.baseline["p_at_1"] > 0.3, result.baseline
    assert result.converted["p_at_1"] > 0.15, f"chance is 0.025; got {result.converted}"


def test_identity_conversion_scores_like_the_baseline():
    """A converted model that is the original under another numbering must score exactly the baseline."""
    tok = tokenizer_for("bert")
    vocab = Vocabulary.from_tokenizer(tok)
    source = tiny_model("bert", len(tok), tok, head="base")
    token_map, _ = function_token_map(vocab, vocab)
    identity = token_map.with_entries([e.__class__(e.target_id, e.target_token, ((e.target_id, 1.0),), "identical")
                                       for e in token_map.entries])
    converted, conv_tok = convert_model(tiny_model("bert", len(tok), tok, head="base"), vocab, tok, vocab, identity,
                                        source_tokenizer=tok)
    lines = corpus_lines(40, seed=5)
    report = evaluate_retrieval(converted, conv_tok, source, tok, lines[:20], lines[20:], RetrievalConfig(n=15),
                                src_lang="en", tgt_lang="nl")
    assert report.n == 15 and report.converted == report.baseline
    assert "converted - baseline P@1: +0.000" in report.to_text()
    with pytest.raises(ConfigError, match="at least 2"):
        evaluate_retrieval(converted, conv_tok, source, tok, ["same"], ["same"])


def test_parallel_tsv_loader_errors_name_the_columns(tmp_path):
    path = tmp_path / "en-nl.tsv"
    path.write_text("id\ten\tnl\n1\tThe cat\tDe kat\n2\t\tLeeg\n3\tshort\n4\tThe dog\tDe hond\n", encoding="utf-8")
    text = load_parallel_tsv(path, "en", "nl")
    assert text.src == ("The cat", "The dog") and text.tgt == ("De kat", "De hond")
    assert text.skipped == {"short_row": 1, "empty_cell": 1}
    with pytest.raises(InputFileError, match=r"no column 'fy' \(its columns are: id, en, nl\).*--tgt-col"):
        load_parallel_tsv(path, "en", "fy")
    (tmp_path / "noheader.tsv").write_text("just one line of text\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="header"):
        load_parallel_tsv(tmp_path / "noheader.tsv", "en", "nl")
    (tmp_path / "empty-rows.tsv").write_text("en\tnl\n\t\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="no row"):
        load_parallel_tsv(tmp_path / "empty-rows.tsv", "en", "nl")
    (tmp_path / "utf16.tsv").write_bytes("en\tnl\na\tb\n".encode("utf-16"))
    with pytest.raises(InputFileError, match="UTF-16"):
        load_parallel_tsv(tmp_path / "utf16.tsv", "en", "nl")


def test_cli_eval_retrieval(tmp_path, capsys, monkeypatch):
    import tokmap_ui.cli as cli

    if "tokmap_ui.cli.convert" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ("tokmap_ui.cli.convert",))
    tok = tokenizer_for("bert")
    save_pair(tiny_model("bert", len(tok), tok), tok, tmp_path / "src")
    save_pair(tiny_model("bert", len(tok), tok, seed=1), tok, tmp_path / "conv")
    lines = ["id\ten\tnl"] + [f"{i}\t{en}\t{nl}" for i, (en, nl) in enumerate(EN_NL)]
    (tmp_path / "p.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["eval-retrieval", "--model", str(tmp_path / "conv"), "--source-model", str(tmp_path / "src"),
            "--parallel", str(tmp_path / "p.tsv"), "--n", "8", "--out", str(tmp_path / "r.json"), "--json"]
    assert cli.main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == 8 and set(printed["converted"]) == {"p_at_1", "p_at_5", "mrr", "n"}
    assert json.loads((tmp_path / "r.json").read_text()) == printed
    assert cli.main(argv[:-3] + ["--tgt-col", "fy"]) == 2
    assert "no column 'fy'" in capsys.readouterr().err
