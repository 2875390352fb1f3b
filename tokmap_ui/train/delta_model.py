"""The delta model of CMC: built from a preset beside a template, output zeroed; and the combined loss.

Presets (``DELTA_PRESETS``): ``micro`` 1 layer × 64, ``tiny`` 2 layers × 128, ``small`` 4 layers ×
256. A delta costs its host about (its head + layers) / (the host's) per decoded token, so pick
it small beside the host: micro beside the demo kit's 5M-parameter hosts. The family follows
the template when it is Llama-like (Llama, Mistral, Qwen2/3, Gemma → a LlamaConfig), else GPT-2.
Vocabulary rows and context length are the template's, so ids and positions line up one-to-one.

Example:
    >>> delta, preset = build_delta(template, tokenizer, "tiny")         # doctest: +SKIP
    >>> bool(delta.get_output_embeddings().weight.abs().sum() == 0)     # doctest: +SKIP
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tokmap_ui.errors import ConfigError, ModelError
from tokmap_ui.train.data import IGNORE_INDEX

DELTA_PRESETS = {"micro": {"layers": 1, "width": 64, "heads": 2}, "tiny": {"layers": 2, "width": 128, "heads": 2},
                 "small": {"layers": 4, "width": 256, "heads": 4}}
_LLAMA_LIKE = ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2")


def _template_limits(template: Any) -> tuple[int, int]:
    config = template.config
    rows = int(template.get_output_embeddings().weight.shape[0])
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 1024
    return rows, int(positions)


def _special_ids(tokenizer: Any) -> dict[str, int]:
    return {f"{r}_token_id": int(getattr(tokenizer, f"{r}_token_id"))
            for r in ("bos", "eos", "pad") if getattr(tokenizer, f"{r}_token_id", None) is not None}


def _preset_config(template: Any, tokenizer: Any, name: str) -> Any:
    import transformers as tf

    spec = DELTA_PRESETS[name]
    rows, positions = _template_limits(template)
    ids = _special_ids(tokenizer)
    if getattr(template.config, "model_type", "") in _LLAMA_LIKE:
        return tf.LlamaConfig(vocab_size=rows, hidden_size=spec["width"], intermediate_size=spec["width"] * 8 // 3 // 16 * 16,
                              num_hidden_layers=spec["layers"], num_attention_heads=spec["heads"],
                              num_key_value_heads=spec["heads"], max_position_embeddings=positions,
                              tie_word_embeddings=False, **ids)
    return tf.GPT2Config(vocab_size=rows, n_embd=spec["width"], n_layer=spec["layers"], n_head=spec["heads"],
                         n_positions=positions, tie_word_embeddings=False, resid_pdrop=0.0, embd_pdrop=0.0,
                         attn_pdrop=0.0, **ids)


def _zero_head(model: Any) -> None:
    """Untie the output head from the input table (if tied) and set it to zero."""
    head = model.get_output_embeddings()
    inputs = model.get_input_embeddings()
    model.config.tie_word_embeddings = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = False
    if head.weight is inputs.weight or head.weight.data_ptr() == inputs.weight.data_ptr():
        new = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None,
                              dtype=head.weight.dtype, device=head.weight.device)
        model.set_output_embeddings(new)
        head = new
    with torch.no_grad():
        head.weight.zero_()
        if getattr(head, "bias", None) is not None:
            head.bias.zero_()
    if head.weight.data_ptr() == inputs.weight.data_ptr():  # pragma: no cover - a model that re-ties itself
        raise ModelError(None, "the delta's output head is still tied to its input embeddings after untying")


def build_delta(template: Any, tokenizer: Any, spec: str = "tiny", seed: int = 0) -> tuple[Any, str]:
    """A fresh delta for ``template``: ``(model, description)``, output head untied and zero.

    Args:
        spec: ``tiny``, ``small``, a ``config.json`` file (or a folder holding only one), or a model
            folder with weights (its body is kept; its vocabulary must be the template's).
    """
    import transformers as tf

    torch.manual_seed(seed)
    rows, positions = _template_limits(template)
    if spec in DELTA_PRESETS:
        model = tf.AutoModelForCausalLM.from_config(_preset_config(template, tokenizer, spec))
        description = spec
    else:
        path = Path(spec)
        if not path.exists():
            raise ConfigError(f"--delta-config '{spec}' is neither a preset ({', '.join(DELTA_PRESETS)}) nor a path. "
                              "Fix: use tiny, small, a config.json or a model folder.")
        folder = path.parent if path.is_file() else path
        if any(folder.glob("*.safetensors")):
            from tokmap_ui.io.models import load_model

            model, _ = load_model(folder, task="causal-lm")
        else:
            config_file = path if path.is_file() else folder / "config.json"
            try:
                config = tf.AutoConfig.from_pretrained(str(config_file), trust_remote_code=False)
            except (OSError, ValueError) as err:
                raise ModelError(config_file, f"cannot be read as a model config ({str(err).splitlines()[0]})",
                                 fix="give a config.json written by save_pretrained") from None
            config.vocab_size = rows
            model = tf.AutoModelForCausalLM.from_config(config)
        description = str(spec)
        delta_rows = int(model.get_output_embeddings().weight.shape[0])
        if delta_rows != rows:
            raise ModelError(spec, f"has {delta_rows} vocabulary rows but the template has {rows}",
                             fix="a delta must share the template's tokenizer; give a model with the template's vocabulary")
    _zero_head(model)
    model.config.use_cache = False
    return model, description


def combined_logprobs(template_logprobs: torch.Tensor, delta_logits: torch.Tensor, alpha: float) -> torch.Tensor:
    """``log_softmax(log_softmax(template) + α·delta)`` in float32, ``(B, T, V)``.

    Example (a zero delta gives the template back):
        >>> t = torch.log_softmax(torch.randn(1, 2, 5), -1)
        >>> torch.allclose(combined_logprobs(t, torch.zeros(1, 2, 5), 1.0), t, atol=1e-6)
        True
    """
    return torch.log_softmax(template_logprobs.float() + alpha * delta_logits.float(), dim=-1)


def token_losses(combined: torch.Tensor, template: torch.Tensor,
                 labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token next-token losses ``(B, T-1)`` of the combination and of the template, and the label mask.

    Position t predicts ``labels[:, t+1]``; labels of -100 are not scored.
    """
    targets = labels[:, 1:]                                                   # (B, T-1)
    mask = targets.ne(IGNORE_INDEX)
    index = targets.clamp(min=0).unsqueeze(-1)
    ce = -combined[:, :-1].gather(-1, index).squeeze(-1)                      # (B, T-1)
    ce_template = -template[:, :-1].float().gather(-1, index).squeeze(-1)
    return ce, ce_template, mask


FORGET_GUARDS = ("target", "clamp")


def unlearn_loss(ce_forget: torch.Tensor, template_forget: torch.Tensor, mask_forget: torch.Tensor,
                 ce_retain: torch.Tensor, mask_retain: torch.Tensor, *, forget_margin: float,
                 forget_weight: float = 1.0, retain_weight: float = 1.0,
                 guard: str = "target") -> dict[str, torch.Tensor]:
    """Gradient difference with a guard on the forget term; returns ``loss`` and the logged parts.

    ``retain_weight·CE(retain) + forget_weight·F``, per forget token with target ``CE_t + margin``
    (the template's loss on that token plus ``forget_margin`` nats):

    * ``target`` (default): ``F = mean |CE_f − target|``. Below the target this is gradient
      ascent; above it, it pulls back. Neither a runaway nor an overshoot through generalisation
      (tokens pushed past the target by what the delta learnt on others) is rewarded.
    * ``clamp``: ``F = −mean(min(CE_f, target))``, the one-sided hinge: ascent stops at the target
      but nothing pulls back a token that overshoots.
    """
    target = template_forget + forget_margin
    if guard == "target":
        forget = (ce_forget - target).abs()[mask_forget].mean()
    elif guard == "clamp":
        forget = -torch.minimum(ce_forget, target)[mask_forget].mean()
    else:
        raise ConfigError(f"unknown forget guard '{guard}'. Fix: use one of {', '.join(FORGET_GUARDS)}.")
    retain = ce_retain[mask_retain].mean()
    return {"loss": retain_weight * retain + forget_weight * forget, "forget_ce": ce_forget[mask_forget].mean(),
            "retain_ce": retain, "forget_gain": (ce_forget - template_forget)[mask_forget].mean()}
