"""What every trainer shares: run control (checkpoints, resume, limits), objectives and phases, trainable parameters."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokmap_ui.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module for its choices; torch loads only when training
    import torch


@dataclass(frozen=True, kw_only=True)
class RunControl:
    """The part of a training config that every job shares: checkpoints, resume, time limit, device, logging.

    Fine-tune and delta configs extend it (keyword-only fields, so each subclass keeps its own
    required fields first).
    """

    checkpoint_every: int = 100
    """Save a resumable checkpoint every N steps (0 = only at the end)."""
    keep_checkpoints: int = 2
    """How many of the newest checkpoints to keep (0 = all)."""
    seed: int = 0
    """Seed of the initialisation, the data order and any masking."""
    resume: bool = False
    """Continue from the newest checkpoint in the run folder."""
    max_minutes: float = 0.0
    """Stop (with a checkpoint and the model written) after this many minutes (0 = no limit)."""
    cpu: bool = False
    """Train on the CPU even when a GPU is present."""
    log_every: int = 1
    """Emit a step event every N steps."""

    def run_checks(self) -> list[tuple[str, bool, str]]:
        """Range checks of these fields, for :func:`tokmap_ui.errors.check_ranges`."""
        return [("checkpoint_every", self.checkpoint_every >= 0, "0 or more"),
                ("keep_checkpoints", self.keep_checkpoints >= 0, "0 or more"),
                ("max_minutes", self.max_minutes >= 0, "0 or more"), ("log_every", self.log_every >= 1, "at least 1")]


class _Choice(str, enum.Enum):
    @classmethod
    def parse(cls, value: "str | _Choice") -> "_Choice":
        """The member named ``value``, or a ConfigError listing the choices."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"unknown {cls.__name__.lower()} '{value}'. "
                              f"Fix: use one of {', '.join(cls.choices())}.") from None

    @classmethod
    def choices(cls) -> list[str]:
        return [member.value for member in cls]


class Objective(_Choice):
    """What the model learns to predict."""

    CLM = "clm"  # the next token (GPT-2, Llama, Qwen)
    MLM = "mlm"  # 15% masked tokens (BERT, RoBERTa)

    @property
    def task(self) -> str:
        """The model head to load for this objective (see tokmap_ui.io.models.TASKS)."""
        return "causal-lm" if self is Objective.CLM else "masked-lm"


class Phase(_Choice):
    """Which parameters are trained.

    After a vocabulary swap only the embeddings are new; training them alone first keeps the
    rest of the network from being pulled around by their early, large gradients.
    """

    EMBEDDINGS = "embeddings"
    FULL = "full"
    EMBEDDINGS_THEN_FULL = "embeddings-then-full"


def trainable_parameters(model: "torch.nn.Module") -> "list[torch.nn.Parameter]":
    """The parameters of the embeddings phase: input embeddings, an untied output head, an MLM output bias.

    A tied head is the input table itself, so it is listed once. MLM output biases are
    ``cls.predictions.bias`` (BERT) and ``lm_head.bias`` (RoBERTa), also reachable as the
    head's ``decoder.bias``.
    """
    import torch

    chosen: dict[int, torch.nn.Parameter] = {}
    inputs = model.get_input_embeddings()
    chosen[id(inputs.weight)] = inputs.weight
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        for param in (getattr(head, "weight", None), getattr(head, "bias", None)):
            if isinstance(param, torch.nn.Parameter):
                chosen[id(param)] = param
    for name, param in model.named_parameters():
        if name.endswith(("predictions.bias", "lm_head.bias", "lm_head.decoder.bias")):
            chosen[id(param)] = param
    return list(chosen.values())
