"""Method families of the trainer: objectives and phases (Enum + parse), and what each phase trains."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from tokmap_ui.errors import ConfigError

if TYPE_CHECKING:  # the CLI imports this module for its choices; torch loads only when training
    import torch


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
