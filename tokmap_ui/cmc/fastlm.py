"""A lean KV-cached forward pass for the delta's own architectures (GPT-2, Llama), same maths as transformers.

Per decoding step a tiny delta spends most of its time in the framework, not in arithmetic:
the transformers forward builds masks, cache objects and output records on every call (about
3 ms for a 2-layer delta on one CPU thread, against about 1 ms for the matrix work). The delta
is a model *we* build (:mod:`tokmap_ui.train.delta_model`: GPT-2 or Llama presets), so here
its layers are called directly with a plain per-layer key/value cache. Norms, projections, MLPs
and rotary embeddings are the model's own modules, so weights and numerics are identical; only
the attention bookkeeping is ours. Tests compare every step with the transformers forward.

:class:`FastLM` has the interface of :class:`~tokmap_ui.cmc.runner.CachedLM` (dead slots for
rollback included); :func:`make_runner` picks it when the model is supported, else CachedLM.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tokmap_ui.cmc.runner import CachedLM


def _llama_like(model: Any) -> bool:
    config = model.config
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    return (type(model).__name__ == "LlamaForCausalLM" and not getattr(config, "attention_bias", False)
            and not getattr(config, "mlp_bias", False) and rope.get("rope_type", "default") == "default"
            and getattr(config, "pretraining_tp", 1) == 1)


def _gpt2_like(model: Any) -> bool:
    config = model.config
    return (type(model).__name__ == "GPT2LMHeadModel" and not config.scale_attn_by_inverse_layer_idx
            and not config.reorder_and_upcast_attn and config.scale_attn_weights
            and not getattr(config, "add_cross_attention", False))


def supported(model: Any) -> bool:
    """True when :class:`FastLM` reproduces this model exactly (plain GPT-2 or Llama, eval mode)."""
    return not model.training and (_gpt2_like(model) or _llama_like(model))


def make_runner(model: Any, pad_id: int = 0, head_dtype: torch.dtype | None = None) -> CachedLM:
    """A :class:`FastLM` for supported models, else the generic :class:`CachedLM` (``head_dtype`` ignored)."""
    return FastLM(model, pad_id, head_dtype) if supported(model) else CachedLM(model, pad_id)


class FastLM(CachedLM):
    """CachedLM with a hand-written attention loop and a list of per-layer ``(K, V)`` tensors.

    Args:
        head_dtype: compute the output layer in this dtype (e.g. ``torch.bfloat16``). At batch 1 on
            a CPU a step is bound by memory traffic, and the (V × D) head is most of the delta's
            bytes: bf16 halves them (logits then differ by about 1e-2).
    """

    def __init__(self, model: Any, pad_id: int = 0, head_dtype: torch.dtype | None = None):
        super().__init__(model, pad_id)
        head = model.get_output_embeddings().weight
        self.head = head.detach().to(head_dtype) if head_dtype is not None else head
        self.kind = "gpt2" if _gpt2_like(model) else "llama"
        config = model.config
        self.heads = config.num_attention_heads if self.kind == "llama" else config.n_head
        width = config.hidden_size if self.kind == "llama" else config.n_embd
        self.head_dim = getattr(config, "head_dim", None) or width // self.heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.kv: list[tuple[torch.Tensor, torch.Tensor] | None] = []

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, keep_logits: int) -> torch.Tensor:
        ids, positions = ids.to(self.device), positions.to(self.device)
        rows, width = ids.shape
        total = self.mask.shape[1]                                   # slots after this chunk
        if width == 1:
            # One new token per row: it may see every live slot (itself included); no causal part.
            live = self.mask.to(self.device).bool()                  # (B, S)
            mask = None if bool(live.all()) else live[:, None, None, :]  # no dead slot: plain attention
        else:
            mask = self._chunk_mask(rows, width, total)
        hidden = self._layers(ids, positions, mask)
        self.forwards += 1
        return F.linear(hidden[:, -keep_logits:].to(self.head.dtype), self.head)

    def _chunk_mask(self, rows: int, width: int, total: int) -> torch.Tensor:
        """(B, 1, W, S): a query sees live past slots and live chunk slots up to itself."""
        live = self.mask.to(self.device).bool()
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        past = total - width
        allowed = torch.cat([live[:, None, None, :past].expand(rows, 1, width, past),
                             live[:, None, None, past:] & causal], dim=-1)
        # A padding query that sees nothing would give NaN; let it see itself (its output is ignored).
        step = torch.arange(width, device=self.device)
        allowed[:, :, step, past + step] = True
        return allowed

    def start(self, rows: list[list[int]]) -> torch.Tensor:
        self.kv = []
        return super().start(rows)

    def _attend(self, index: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        """Append k, v (B, Hkv, W, d) to layer ``index``'s cache and attend; returns (B, W, H·d)."""
        if index < len(self.kv):
            old_k, old_v = self.kv[index]
            k, v = torch.cat([old_k, k], dim=2), torch.cat([old_v, v], dim=2)
            self.kv[index] = (k, v)
        else:
            self.kv.append((k, v))
        if self.kv_heads != self.heads:  # grouped-query attention
            repeat = self.heads // self.kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)        # (B, H, W, d)
        rows, _, width, _ = out.shape
        return out.transpose(1, 2).reshape(rows, width, self.heads * self.head_dim)

    def _gpt2_weights(self) -> list[tuple]:
        """Per block the tensors of its maths, read once (module calls cost more than a tiny layer's work)."""
        out = []
        for b in self.model.transformer.h:
            out.append((b.ln_1.weight, b.ln_1.bias, b.ln_1.eps, b.attn.c_attn.weight, b.attn.c_attn.bias,
                        b.attn.c_proj.weight, b.attn.c_proj.bias, b.ln_2.weight, b.ln_2.bias, b.ln_2.eps,
                        b.mlp.c_fc.weight, b.mlp.c_fc.bias, b.mlp.c_proj.weight, b.mlp.c_proj.bias, b.mlp.act))
        return out

    def _llama_weights(self) -> list[tuple]:
        out = []
        for layer in self.model.model.layers:
            a, m = layer.self_attn, layer.mlp
            out.append((layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon, a.q_proj.weight,
                        a.k_proj.weight, a.v_proj.weight, a.o_proj.weight, layer.post_attention_layernorm.weight,
                        layer.post_attention_layernorm.variance_epsilon, m.gate_proj.weight, m.up_proj.weight,
                        m.down_proj.weight, m.act_fn))
        return out

    def _layers(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        rows, width = ids.shape
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        if self.kind == "gpt2":
            body = self.model.transformer
            if "weights" not in self.__dict__:
                self.weights = self._gpt2_weights()
            x = F.embedding(ids, body.wte.weight) + F.embedding(positions, body.wpe.weight)   # (B, W, D)
            width_d = x.shape[-1]
            for i, (w1, b1, e1, wa, ba, wp, bp, w2, b2, e2, wf, bf, wo, bo, act) in enumerate(self.weights):
                h = F.layer_norm(x, (width_d,), w1, b1, e1)
                qkv = torch.addmm(ba, h.view(-1, width_d), wa).view(rows, width, 3, heads, dim)   # Conv1D: x @ W + b
                q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))
                a = self._attend(i, q, k, v, mask)
                x = x + torch.addmm(bp, a.view(-1, width_d), wp).view(rows, width, width_d)
                h = F.layer_norm(x, (width_d,), w2, b2, e2)
                h = act(torch.addmm(bf, h.view(-1, width_d), wf))
                x = x + torch.addmm(bo, h, wo).view(rows, width, width_d)
            return F.layer_norm(x, (width_d,), body.ln_f.weight, body.ln_f.bias, body.ln_f.eps)
        body = self.model.model
        if "weights" not in self.__dict__:
            self.weights = self._llama_weights()
        x = F.embedding(ids, body.embed_tokens.weight)
        cos, sin = body.rotary_emb(x, positions)                                # (B, W, d)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        for i, (wn1, e1, wq, wk, wv, wo, wn2, e2, wg, wu, wd, act) in enumerate(self.weights):
            h = _rms_norm(x, wn1, e1)
            q = F.linear(h, wq).view(rows, width, heads, dim).transpose(1, 2)
            k = F.linear(h, wk).view(rows, width, kv_heads, dim).transpose(1, 2)
            v = F.linear(h, wv).view(rows, width, kv_heads, dim).transpose(1, 2)
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
            x = x + F.linear(self._attend(i, q, k, v, mask), wo)
            h = _rms_norm(x, wn2, e2)
            x = x + F.linear(act(F.linear(h, wg)) * F.linear(h, wu), wd)
        return _rms_norm(x, body.norm.weight, body.norm.variance_epsilon)


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LlamaRMSNorm: normalise in float32, scale in the input's dtype."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
