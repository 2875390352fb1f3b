"""Every method's initialised table measured by the same code: ours, in the main environment.

A method (ours or a peer) hands over only a ``(V_t, D)`` input-embedding table for the target
tokenizer. From it:

* :func:`translation` — held-out word translation P@1/P@5, ``tokmap_ui.mapping.evaluate.
  translation_precision`` unchanged: each Dutch word of the dev pairs is embedded as the mean of
  its target tokens' rows *in the initialised table*, each English word as the mean of its source
  tokens' rows in the source model, and P@k asks whether a right translation is among the k
  nearest English words by cosine. The table goes in through :class:`FixedTable`, a stand-in for a
  TokenMap whose ``apply_to_rows`` returns the table itself.
* :func:`converted_model` — the model a conversion would produce with that table: our
  ``convert_model`` with the ``mean`` map (config ids, special-token template, tokenizer, tied
  head all by our code), then the input-embedding rows replaced by the table. Both kit models
  here have no separate output table (tiny GPT-2 is tied, MiniLM is loaded without a head).
* :func:`retrieval` — zero-shot nl→en sentence retrieval P@1 with the converted MiniLM
  (``tokmap_ui.mapping.retrieval``: same sample, same pooling, same scoring).
* :func:`finetune_losses` — validation loss per byte of the converted tiny GPT-2 at step 0 and
  after a fixed short fine-tune (``tokmap_ui.train.finetune``, same data order for all).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


class FixedTable:
    """Duck-typed TokenMap for ``translation_precision``: its rows are a ready-made table."""

    entries: tuple = ()  # no 'random' entries: the table already holds whatever rows the method chose

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table.float()

    def check_fits(self, target: Any, source: Any) -> None:
        if self.table.shape[0] < len(target):
            raise ValueError(f"table has {self.table.shape[0]} rows for {len(target)} target tokens")

    def apply_to_rows(self, source_rows: torch.Tensor) -> torch.Tensor:
        return self.table.clone()


@dataclass
class ModelKit:
    """One source model of the benchmark and what every method's table is measured with."""

    key: str                 # "gpt2" | "minilm"
    spec: str                # load_model spec (folder or kit:minilm)
    task: str                # "causal-lm" | "base"
    target_tokenizer: str    # folder of the target tokenizer

    def load(self) -> tuple[Any, Any, Any]:
        """``(model, source tokenizer, target tokenizer)``, freshly loaded."""
        from tokmap_ui.io.models import load_model
        from tokmap_ui.io.tokenizers import load_tokenizer

        model, source_tokenizer = load_model(self.spec, task=self.task)
        return model, source_tokenizer, load_tokenizer(self.target_tokenizer)


def translation(kit: ModelKit, source_rows: torch.Tensor, table: torch.Tensor, pairs: Any) -> dict[str, float]:
    """P@1 and P@5 of held-out word translation through ``table`` (see the module docstring)."""
    from tokmap_ui.io.tokenizers import load_tokenizer
    from tokmap_ui.io.models import resolve_model_dir
    from tokmap_ui.mapping.evaluate import translation_precision

    source_tokenizer = load_tokenizer(resolve_model_dir(kit.spec))
    target_tokenizer = load_tokenizer(kit.target_tokenizer)
    result = translation_precision(FixedTable(table), source_rows, source_tokenizer, target_tokenizer, pairs)
    return {"p@1": result.p_at[1], "p@5": result.p_at[5], "queries": result.queries,
            "candidates": result.candidates}


def converted_model(kit: ModelKit, table: torch.Tensor) -> tuple[Any, Any]:
    """The converted model and its tokenizer, with ``table`` as the input embeddings."""
    from tokmap_ui.convert import convert_model
    from tokmap_ui.mapping.baselines import MapMethod, build_baseline
    from tokmap_ui.vocab import Vocabulary

    model, source_tokenizer, target_tokenizer = kit.load()
    source, target = Vocabulary.from_tokenizer(source_tokenizer), Vocabulary.from_tokenizer(target_tokenizer)
    mean_map = build_baseline(MapMethod.MEAN, source_tokenizer, target_tokenizer, source, target)
    model, tokenizer = convert_model(model, source, target_tokenizer, target, mean_map,
                                     source_tokenizer=source_tokenizer)
    return drop_in(model, table), tokenizer


def drop_in(model: Any, table: torch.Tensor) -> Any:
    """Write ``table`` into the first rows of the input embeddings (a tied head follows)."""
    weight = model.get_input_embeddings().weight                     # (V_t', D), V_t' >= V_t with padding
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None and head.weight is not weight:
        raise NotImplementedError("untied output head: a peer would have to be run a second time on the head")
    if table.shape[1] != weight.shape[1] or table.shape[0] > weight.shape[0]:
        raise ValueError(f"table {tuple(table.shape)} does not fit the embeddings {tuple(weight.shape)}")
    with torch.no_grad():
        weight[: table.shape[0]] = table.to(weight.dtype)
    return model


def convert_check(kit: ModelKit, table: torch.Tensor, map_path: Path) -> float:
    """Max |difference| between drop-in(table) and ``convert_model`` with the map itself (ours only)."""
    from tokmap_ui.convert import convert_model
    from tokmap_ui.io.tokenmaps import load_token_map
    from tokmap_ui.vocab import Vocabulary

    model, source_tokenizer, target_tokenizer = kit.load()
    source, target = Vocabulary.from_tokenizer(source_tokenizer), Vocabulary.from_tokenizer(target_tokenizer)
    direct, _ = convert_model(model, source, target_tokenizer, target, load_token_map(map_path),
                              source_tokenizer=source_tokenizer)
    dropped, _ = converted_model(kit, table)
    a = direct.get_input_embeddings().weight.detach().float()
    b = dropped.get_input_embeddings().weight.detach().float()
    return float((a - b).abs().max())


@dataclass
class RetrievalSetup:
    """The sampled sentence pairs and the original MiniLM's English candidate vectors (computed once)."""

    src: list[str]
    tgt: list[str]
    counts: dict[str, int]
    candidates: torch.Tensor          # (N, D)
    baseline: dict[str, float]        # the unconverted MiniLM reading the Dutch with its own tokenizer


def retrieval_setup(kit: ModelKit, parallel_path: str, n: int, seed: int = 0) -> RetrievalSetup:
    from tokmap_ui.io.parallel import load_parallel_tsv
    from tokmap_ui.mapping.retrieval import embed_sentences, retrieval_scores, sample_pairs

    text = load_parallel_tsv(parallel_path, "en", "nl")
    src, tgt, counts = sample_pairs(text.src, text.tgt, n, seed, drop_identical=True)
    model, tokenizer, _ = kit.load()
    candidates = embed_sentences(model, tokenizer, src)
    baseline = retrieval_scores(embed_sentences(model, tokenizer, tgt), candidates)
    return RetrievalSetup(src, tgt, counts, candidates, baseline)


def retrieval(kit: ModelKit, table: torch.Tensor, setup: RetrievalSetup) -> dict[str, float]:
    """nl→en P@1/P@5/MRR of the MiniLM converted with ``table``."""
    from tokmap_ui.mapping.retrieval import embed_sentences, retrieval_scores

    model, tokenizer = converted_model(kit, table)
    return retrieval_scores(embed_sentences(model, tokenizer, setup.tgt), setup.candidates)


def finetune_losses(kit: ModelKit, table: torch.Tensor, out: Path, train: str, valid: str, *, steps: int,
                    batch_size: int, block_size: int, lr: float, max_eval_texts: int, seed: int = 0
                    ) -> dict[str, float]:
    """Validation loss per byte at step 0 and after ``steps`` steps of full fine-tuning (CLM)."""
    from tokmap_ui.train.finetune import FinetuneConfig, finetune

    model, tokenizer = converted_model(kit, table)
    shutil.rmtree(out, ignore_errors=True)
    config = FinetuneConfig(model=f"converted {kit.key}", train_files=(train,), valid_file=valid, out=str(out),
                            objective="clm", steps=steps, batch_size=batch_size, block_size=block_size, lr=lr,
                            eval_every=0, checkpoint_every=0, keep_checkpoints=1, max_eval_texts=max_eval_texts,
                            seed=seed, cpu=True, log_every=steps)
    result = finetune(config, model=model, tokenizer=tokenizer)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # only the numbers are kept
    shutil.rmtree(out / "model", ignore_errors=True)
    return {"loss_per_byte_step0": result.initial_eval.loss_per_byte,
            "loss_per_byte_final": result.final_eval.loss_per_byte, "train_s": round(result.elapsed_s, 1),
            "tokens_per_s": round(result.train_tokens_per_s)}
