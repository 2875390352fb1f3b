"""Fine-tune loop, per-byte evaluation, exact resume and the finetune CLI, on tiny in-process models."""

from __future__ import annotations

import io
import json
import math
import types

import pytest
import torch

from tests.models import gpt2_folder, text_splits
from tests.tiny import corpus_lines, make_bytelevel_bpe, make_wordpiece
from tokmap_ui.errors import ConfigError, InputFileError, TokenizerError
from tokmap_ui.train.data import TextBlocks, encode_texts, evaluate_loss_per_byte, mask_tokens
from tokmap_ui.train.finetune import FinetuneConfig, batch_indices, finetune
from tokmap_ui.train.options import trainable_parameters
from tokmap_ui.train.progress import Progress, parse_event
from tokmap_ui.train.rundir import read_metrics


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """A tiny GPT-2 and a tiny BERT saved as model folders, plus train/valid text files."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    root = tmp_path_factory.mktemp("kit")
    gpt2_folder(root / "gpt", make_bytelevel_bpe(root / "gpt-tok", vocab_size=300), n_layer=2)
    gpt_tok = AutoTokenizer.from_pretrained(root / "gpt")
    bert_tok = AutoTokenizer.from_pretrained(make_wordpiece(root / "bert-tok", vocab_size=300, folder=True))
    bert = BertForMaskedLM(BertConfig(vocab_size=len(bert_tok), hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                      pad_token_id=0))
    bert.save_pretrained(root / "bert")
    bert_tok.save_pretrained(root / "bert")
    text_splits(root, 140, 20)
    return types.SimpleNamespace(root=root, gpt=root / "gpt", bert=root / "bert", gpt_tok=gpt_tok,
                                 train=root / "train.txt", valid=root / "valid.txt")


def _config(kit, out, **overrides) -> FinetuneConfig:
    settings = dict(model=str(kit.gpt), train_files=(str(kit.train),), valid_file=str(kit.valid), out=str(out),
                    steps=12, lr=3e-3, batch_size=8, block_size=32, checkpoint_every=0, warmup_ratio=0.0)
    settings.update(overrides)
    return FinetuneConfig(**settings)


def test_clm_loss_decreases_and_run_folder_is_complete(kit, tmp_path):
    events = []
    result = finetune(_config(kit, tmp_path / "run"), on_event=events.append)
    assert result.final_eval.loss_per_byte < result.initial_eval.loss_per_byte - 0.05
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("step") == 12
    step = next(e for e in events if e["event"] == "step")
    assert {"loss", "lr", "tokens_per_s", "eta_s"} <= set(step)
    evals = [r for r in read_metrics(result.out) if r["event"] == "eval"]
    assert [r["step"] for r in evals] == [0, 12]
    assert math.isclose(evals[0]["perplexity"], math.exp(evals[0]["loss_per_token"]), rel_tol=1e-9)
    from tokmap_ui.io.models import load_model

    model, _ = load_model(result.model_dir, task="causal-lm")  # the final model reloads
    assert model.config.vocab_size == len(kit.gpt_tok)


def test_mlm_loss_decreases(kit, tmp_path):
    result = finetune(_config(kit, tmp_path / "mlm", model=str(kit.bert), objective="mlm", steps=15, lr=5e-3))
    assert result.initial_eval.objective == "mlm"
    assert result.final_eval.loss_per_token < result.initial_eval.loss_per_token - 0.1


def test_resume_continues_exactly(kit, tmp_path):
    # Dropout on, gradient accumulation, and the phase switch falling on the resume point.
    common = dict(steps=6, checkpoint_every=3, grad_accum=2, phase="embeddings-then-full", lr=1e-3)
    straight = finetune(_config(kit, tmp_path / "a", **common))

    class Killed(Exception):
        pass

    def kill_after_checkpoint(event):
        if event["event"] == "checkpoint" and event["step"] == 3:
            raise Killed  # as if the process died right after writing the checkpoint

    with pytest.raises(Killed):
        finetune(_config(kit, tmp_path / "b", **common), on_event=kill_after_checkpoint)
    resumed = finetune(_config(kit, tmp_path / "b", resume=True, **common))
    assert resumed.start_step == 3 and resumed.initial_eval is None
    from safetensors.torch import load_file

    a = load_file(str(straight.model_dir / "model.safetensors"))
    b = load_file(str(resumed.model_dir / "model.safetensors"))
    assert a.keys() == b.keys()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6
    assert abs(straight.final_eval.loss_per_byte - resumed.final_eval.loss_per_byte) < 1e-6
    losses = lambda run: [(r["step"], r["loss"]) for r in read_metrics(run) if r["event"] == "step"]
    assert losses(straight.out) == pytest.approx(losses(resumed.out), abs=1e-6)


def test_time_budget_stops_with_checkpoint_and_resume_finishes(kit, tmp_path):
    first = finetune(_config(kit, tmp_path / "t", steps=5, max_minutes=1e-6))
    assert first.stopped_early and first.steps_done == 1
    assert (first.out / "checkpoints" / "step-000001" / "state.json").is_file() and first.model_dir.is_dir()
    second = finetune(_config(kit, tmp_path / "t", steps=5, resume=True))
    assert second.start_step == 1 and second.steps_done == 5 and not second.stopped_early


def test_embeddings_phase_trains_only_embeddings(kit, tmp_path):
    from transformers import GPT2LMHeadModel

    before = GPT2LMHeadModel.from_pretrained(kit.gpt).state_dict()
    result = finetune(_config(kit, tmp_path / "emb", steps=3, phase="embeddings"))
    after = GPT2LMHeadModel.from_pretrained(result.model_dir).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "transformer.wte.weight" in changed
    assert changed <= {"transformer.wte.weight", "lm_head.weight"}


def test_trainable_parameters_include_untied_head_and_mlm_bias(kit):
    from transformers import BertForMaskedLM

    bert = BertForMaskedLM.from_pretrained(kit.bert)
    names = {n for n, p in bert.named_parameters() if any(p is q for q in trainable_parameters(bert))}
    assert "bert.embeddings.word_embeddings.weight" in names
    assert any(n.endswith("predictions.bias") for n in names)
    assert not any("encoder" in n for n in names)


class _Uniform(torch.nn.Module):
    """Predicts the uniform distribution over V tokens: every token costs exactly ln V nats."""

    def __init__(self, vocab: int):
        super().__init__()
        self.table = torch.nn.Embedding(vocab, 4)

    def get_input_embeddings(self):
        return self.table

    def forward(self, input_ids, attention_mask=None):
        return types.SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.table.num_embeddings))


def test_loss_per_byte_hand_checked(kit):
    texts = ["de kat zat op de mat", "Zürich 🙂 café"]
    vocab = len(kit.gpt_tok)
    result = evaluate_loss_per_byte(_Uniform(vocab), kit.gpt_tok, texts, block_size=4)  # windows of 4: splits
    n_tokens = sum(len(ids) for ids in encode_texts(kit.gpt_tok, texts))  # each token scored once
    n_bytes = len("de kat zat op de mat".encode()) + len("Zürich 🙂 café".encode())
    assert n_bytes == 20 + 18 and result.n_bytes == n_bytes and result.n_tokens == n_tokens
    assert result.loss_per_token == pytest.approx(math.log(vocab))
    assert result.loss_per_byte == pytest.approx(n_tokens * math.log(vocab) / n_bytes)
    assert result.bits_per_byte == pytest.approx(result.loss_per_byte / math.log(2))


def test_loss_per_byte_matches_model_loss(kit):
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(kit.gpt).eval()
    text = "de hond rende achter een kleine rode bal"
    ids = torch.tensor([[kit.gpt_tok.eos_token_id] + encode_texts(kit.gpt_tok, [text])[0]])
    with torch.no_grad():
        expected_nats = float(model(input_ids=ids, labels=ids).loss) * (ids.shape[1] - 1)
    result = evaluate_loss_per_byte(model, kit.gpt_tok, [text])
    assert result.loss_per_byte == pytest.approx(expected_nats / len(text.encode()), rel=1e-5)


def test_text_blocks_and_masking(kit):
    blocks = TextBlocks.from_texts(kit.gpt_tok, ["de kat", "", "zat op de mat"], block_size=8)
    stream = encode_texts(kit.gpt_tok, ["de kat"])[0] + [0] + encode_texts(kit.gpt_tok, ["zat op de mat"])[0] + [0]
    got = [int(t) for row, mask in zip(blocks.input_ids, blocks.attention_mask) for t, m in zip(row, mask) if m]
    assert got == stream
    ids = torch.arange(10, 30).reshape(2, 10)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    inputs, labels = mask_tokens(ids, special, mask_id=4, vocab_size=50, generator=torch.Generator().manual_seed(1),
                                 probability=0.5)
    assert (labels[:, 0] == -100).all() and (labels != -100).any()
    assert torch.equal(labels[labels != -100], ids[labels != -100])
    assert batch_indices(3, 4, 10, seed=1) == batch_indices(3, 4, 10, seed=1)
    assert sorted(batch_indices(0, 10, 10, seed=1)) == list(range(10))  # one epoch = a permutation


def test_bad_inputs_give_tokmap_errors(kit, tmp_path):
    with pytest.raises(InputFileError, match="missing.txt.*not found"):
        finetune(_config(kit, tmp_path / "r1", valid_file=str(tmp_path / "missing.txt")))
    with pytest.raises(TokenizerError, match="no mask token.*--objective clm"):
        finetune(_config(kit, tmp_path / "r2", objective="mlm"))
    with pytest.raises(ConfigError, match="steps = 0.*at least 1"):
        finetune(_config(kit, tmp_path / "r3", steps=0))
    with pytest.raises(ConfigError, match="unknown phase"):
        finetune(_config(kit, tmp_path / "r4", phase="heads"))
    finetune(_config(kit, tmp_path / "r5", steps=1))
    with pytest.raises(ConfigError, match="already holds.*--resume"):
        finetune(_config(kit, tmp_path / "r5", steps=1))
    with pytest.raises(ConfigError, match="different settings.*lr"):
        finetune(_config(kit, tmp_path / "r5", steps=1, lr=1e-2, resume=True))


def test_progress_json_lines_and_tty(tmp_path):
    out = io.StringIO()
    with Progress(stream=out, tty=False) as progress:
        progress.emit("step", step=1, loss=float("nan"))
    assert parse_event(out.getvalue()) == {"event": "step", "step": 1, "loss": None}
    screen = io.StringIO()
    with Progress(stream=screen, tty=True, fallback_jsonl=tmp_path / "p.jsonl") as progress:
        progress.emit("start", total_steps=3, start_step=0)
        progress.emit("step", step=2, loss=1.5)
    assert '"event"' not in screen.getvalue() and "2/3" in screen.getvalue()
    assert [json.loads(l)["event"] for l in (tmp_path / "p.jsonl").read_text().splitlines()] == ["start", "step"]


def test_cli_finetune_prints_json_lines_and_one_line_errors(kit, tmp_path, capsys, monkeypatch):
    import tokmap_ui.cli as cli

    if "tokmap_ui.cli.train" not in cli.COMMAND_MODULES:
        monkeypatch.setattr(cli, "COMMAND_MODULES", cli.COMMAND_MODULES + ("tokmap_ui.cli.train",))
    args = ["finetune", "--model", str(kit.gpt), "--train", str(kit.train), "--valid", str(kit.valid),
            "--steps", "2", "--batch", "4", "--block-size", "32", "--out", str(tmp_path / "cli")]
    assert cli.main(args) == 0
    events = [parse_event(line) for line in capsys.readouterr().out.splitlines()]
    assert all(events) and events[-1]["event"] == "done"
    assert cli.main(args[:-1] + [str(tmp_path / "cli2"), "--steps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and "steps" in err


def test_clm_eval_windows_fit_the_position_limit():
    """Windows are block_size tokens (not block_size + 1), so a block equal to the model's
    position limit evaluates instead of indexing past the position table."""
    from tests.models import tiny_pair

    model, tokenizer = tiny_pair("gpt2")
    limit = model.config.n_positions
    text = " ".join(corpus_lines()[:40])
    assert len(tokenizer(text)["input_ids"]) > 2 * limit
    result = evaluate_loss_per_byte(model, tokenizer, [text], block_size=limit)
    assert math.isfinite(result.loss_per_byte)
    assert result.n_tokens == len(tokenizer(text)["input_ids"])
