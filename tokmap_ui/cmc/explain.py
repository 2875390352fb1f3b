"""Why a token was chosen: the host's top tokens at a step and how the delta moved them.

For each decoding step :func:`explain_step` records the host's top-k tokens with their
log-probabilities, the delta's shift on each (``α·(delta[map] − centre)``, 0 where unmapped),
their log-probability and rank after the shift, and the top tokens of the combined
distribution (which may include tokens the delta pulled up from far down the host's list).

Example:
    >>> import torch
    >>> host = torch.log_softmax(torch.tensor([2.0, 1.0, 0.0]), -1)
    >>> step = explain_step(0, host, torch.tensor([-3.0, 0.0, 0.0]), chosen=1, k=2)
    >>> [(t.token_id, t.host_rank, t.combined_rank) for t in step.host_top]
    [(0, 0, 2), (1, 1, 0)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TokenShift:
    """One token at one step: before and after the delta."""

    token_id: int
    token: str               # its text (filled by :func:`label_tokens`; "" until then)
    host_logprob: float      # log p_host
    shift: float             # α·(delta[map] − centre), 0 where unmapped
    combined_logprob: float  # log p after the shift (renormalised over the host vocabulary)
    host_rank: int           # 0 = the host's top token
    combined_rank: int       # 0 = the top token after the shift


@dataclass(frozen=True)
class StepExplanation:
    """The host's top tokens and the combined top tokens at one step, and the token chosen."""

    step: int
    chosen_id: int
    chosen: TokenShift
    host_top: tuple[TokenShift, ...]
    combined_top: tuple[TokenShift, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ranks(scores: torch.Tensor, ids: torch.Tensor) -> list[int]:
    """0-based rank of each id in ``scores`` (number of strictly larger scores)."""
    return [int((scores > scores[i]).sum()) for i in ids.tolist()]


def explain_step(step: int, host_logprobs: torch.Tensor, shift: torch.Tensor, chosen: int, k: int = 5,
                 tokenizer: Any = None) -> StepExplanation:
    """Explain one step of one row.

    Args:
        step: the step number (0 = first generated token).
        host_logprobs: ``(V,)`` the host's log-probabilities.
        shift: ``(V,)`` the delta's shift already scaled by α (zeros for the host alone).
        chosen: the token that was picked.
        k: how many top tokens to list.
        tokenizer: when given, each token's text is filled in.
    """
    host = host_logprobs.float()
    combined = torch.log_softmax(host + shift.float(), dim=-1)  # (V,)
    k = min(k, host.shape[0])
    host_ids = torch.topk(host, k).indices
    comb_ids = torch.topk(combined, k).indices

    def rows(ids: torch.Tensor) -> tuple[TokenShift, ...]:
        h_rank, c_rank = _ranks(host, ids), _ranks(combined, ids)
        return tuple(TokenShift(int(i), "", float(host[i]), float(shift[i]), float(combined[i]), hr, cr)
                     for i, hr, cr in zip(ids.tolist(), h_rank, c_rank))

    picked = rows(torch.tensor([int(chosen)]))[0]
    result = StepExplanation(step, int(chosen), picked, rows(host_ids), rows(comb_ids))
    return label_tokens(result, tokenizer) if tokenizer is not None else result


def label_tokens(step: StepExplanation, tokenizer: Any) -> StepExplanation:
    """Fill in each token's text with ``tokenizer.decode``."""
    def named(t: TokenShift) -> TokenShift:
        return TokenShift(t.token_id, tokenizer.decode([t.token_id]), t.host_logprob, t.shift,
                          t.combined_logprob, t.host_rank, t.combined_rank)

    return StepExplanation(step.step, step.chosen_id, named(step.chosen), tuple(map(named, step.host_top)),
                           tuple(map(named, step.combined_top)))


def format_explanation(steps: list[StepExplanation]) -> str:
    """A plain-text table: one block per step, host top tokens with the delta's shift and new rank.

    Example line: ``  'Ġthe'   host -1.20 (#0)   shift -2.31   → -3.01 (#4)``
    """
    lines = []
    for s in steps:
        lines.append(f"step {s.step}: chose {s.chosen.token!r} (host #{s.chosen.host_rank}, "
                     f"after delta #{s.chosen.combined_rank})")
        for t in s.host_top:
            lines.append(f"  {t.token!r:>14}  host {t.host_logprob:6.2f} (#{t.host_rank})  "
                         f"shift {t.shift:+6.2f}  -> {t.combined_logprob:6.2f} (#{t.combined_rank})")
        pulled = [t for t in s.combined_top if t.host_rank >= len(s.host_top)]
        for t in pulled:
            lines.append(f"  {t.token!r:>14}  host {t.host_logprob:6.2f} (#{t.host_rank})  "
                         f"shift {t.shift:+6.2f}  -> {t.combined_logprob:6.2f} (#{t.combined_rank})  [raised]")
    return "\n".join(lines)
