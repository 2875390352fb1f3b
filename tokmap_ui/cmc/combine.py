"""How a delta's logits move a host's: ``log_softmax(host) + α·(delta[map] − centre)``.

CMC (Wu et al. 2024) trains a small *delta* LM so that ``log_softmax(template) + delta`` fits
the data, then adds the delta to other *hosts*. A host with another vocabulary reads the delta's
logits through a host→delta token map (PM-MinED): each host token takes the logit of the delta
token that stands for it.

Two choices the reference code gets wrong (research/cmc.md §2, §7) are made here:

* **Centring.** Raw logits carry an arbitrary per-row offset (softmax ignores it), so "add 0 to
  unmapped tokens" is not neutral in the reference. We subtract the row's mean over the delta's
  real vocabulary first (``Centre.MEAN``): a token the delta has no opinion about gets ≈ 0, and
  unmapped host tokens get exactly 0. With one shared vocabulary the centre is a constant per
  row, so the combined distribution equals the training objective's exactly.
* **One-to-many maps** (a Tik-to-Tok map used for CMC) read the weighted mean of their sources'
  centred logits; one-to-one maps (PM-MinED) use a plain gather, the fast path.

Example (same vocabulary, α = 0 gives the host back):
    >>> shift = DeltaShift.identity(5)
    >>> host, delta = torch.randn(2, 5), torch.randn(2, 5)
    >>> torch.allclose(shift.combine(host, delta, 0.0), torch.log_softmax(host, -1))
    True
"""

from __future__ import annotations

import enum

import numpy as np
import torch

from tokmap_ui.errors import ConfigError, TokenMapError
from tokmap_ui.mapping.tokenmap import TokenMap


class Centre(str, enum.Enum):
    """What is subtracted from the delta's logits before they are mapped and added."""

    MEAN = "mean"  # the row mean over the delta's real tokens: unmapped host tokens are neutral (default)
    NONE = "none"  # raw logits, as the CMC reference does (its unmapped 0 is then arbitrary)

    @classmethod
    def parse(cls, value: "str | Centre") -> "Centre":
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"unknown centre '{value}'. Fix: use one of "
                              f"{', '.join(c.value for c in cls)}.") from None


def index_from_token_map(token_map: TokenMap) -> np.ndarray:
    """Host→delta index ``(V_host,) int64``, ``-1`` where unmapped, from a one-to-one map.

    Raises:
        TokenMapError: an entry lists several sources (use :meth:`DeltaShift.from_token_map`,
            which handles weighted maps).

    Example:
        >>> from tokmap_ui.mapping.tokenmap import MapEntry, VocabRef
        >>> tm = TokenMap("pm-mined", VocabRef("h", 2, ""), VocabRef("d", 9, ""), {},
        ...               (MapEntry(0, "a", ((7, 1.0),), "exact"), MapEntry(1, "b", (), "unmapped")))
        >>> index_from_token_map(tm).tolist()
        [7, -1]
    """
    index = np.full(len(token_map.entries), -1, dtype=np.int64)
    for entry in token_map.entries:
        if len(entry.sources) > 1:
            raise TokenMapError(None, f"entry {entry.target_id} ('{entry.target_token}') has "
                                      f"{len(entry.sources)} sources; a one-to-one index needs at most one")
        if entry.sources:
            index[entry.target_id] = entry.sources[0][0]
    return index


class DeltaShift:
    """Maps delta logits into the host's vocabulary, centred, and combines them with host logits.

    Build with :meth:`identity` (shared vocabulary), :meth:`from_index` or :meth:`from_token_map`.

    Args:
        host_size: columns of the host's logits (its output rows; may exceed its tokenizer).
        delta_real: the delta's real vocabulary size (its tokenizer); padded logit columns beyond
            it are never trained and are left out of the centre.
        index: ``(V_map,) int64`` host→delta, ``-1`` unmapped; ``None`` = identity.
        weights: sparse ``(V_map, V_delta)`` for one-to-many maps (rows sum to 1 or 0).
        centre: see :class:`Centre`.
    """

    def __init__(self, host_size: int, delta_real: int, index: torch.Tensor | None = None,
                 weights: torch.Tensor | None = None, centre: Centre | str = Centre.MEAN):
        self.host_size = int(host_size)
        self.delta_real = int(delta_real)
        self.centre = Centre.parse(centre)
        self.index = index
        self.weights = weights
        if index is not None:
            self.mapped = index.ge(0)                    # (V_map,) bool
            self.gather = index.clamp(min=0)             # (V_map,) valid ids for torch.gather
            self.n_mapped = int(self.mapped.sum())
        elif weights is not None:
            self.mapped = torch.zeros(weights.shape[0], dtype=torch.bool)
            self.mapped[weights.coalesce().indices()[0].unique()] = True
            self.n_mapped = int(self.mapped.sum())
        else:
            self.n_mapped = min(self.host_size, self.delta_real)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def identity(cls, size: int, delta_real: int | None = None, centre: Centre | str = Centre.MEAN) -> "DeltaShift":
        """Host and delta share one vocabulary: host token i reads delta column i."""
        return cls(size, size if delta_real is None else delta_real, centre=centre)

    @classmethod
    def from_index(cls, index: np.ndarray | torch.Tensor, host_size: int, delta_real: int,
                   centre: Centre | str = Centre.MEAN) -> "DeltaShift":
        """From a host→delta index array (``-1`` = unmapped)."""
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        if index.dim() != 1:
            raise TokenMapError(None, f"host→delta index has shape {tuple(index.shape)}, expected (V_host,)")
        if len(index) > host_size:
            raise TokenMapError(None, f"the token map covers {len(index)} host tokens but the host model has "
                                      f"only {host_size} output rows",
                                fix="use a map built for this host's tokenizer")
        if bool((index >= delta_real).any()):
            raise TokenMapError(None, f"the token map points at delta token {int(index.max())}, outside the "
                                      f"delta's vocabulary of {delta_real}",
                                fix="use a map built for this delta's tokenizer")
        return cls(host_size, delta_real, index=index, centre=centre)

    @classmethod
    def from_token_map(cls, token_map: TokenMap, host_size: int, delta_real: int,
                       centre: Centre | str = Centre.MEAN) -> "DeltaShift":
        """From a TokenMap (target = host, source = delta): a gather when one-to-one, else a sparse mean."""
        if token_map.source.vocab_size > delta_real:
            raise TokenMapError(None, f"the token map's delta vocabulary '{token_map.source.name}' has "
                                      f"{token_map.source.vocab_size} tokens but the delta has {delta_real}",
                                fix="use a map built for this delta's tokenizer")
        if all(len(e.sources) <= 1 for e in token_map.entries):
            return cls.from_index(index_from_token_map(token_map), host_size, delta_real, centre)
        if token_map.target.vocab_size > host_size:
            raise TokenMapError(None, f"the token map covers {token_map.target.vocab_size} host tokens but the "
                                      f"host model has only {host_size} output rows")
        return cls(host_size, delta_real, weights=token_map.weight_matrix().float(), centre=centre)

    # ------------------------------------------------------------------ the maths

    def centred(self, delta_logits: torch.Tensor) -> torch.Tensor:
        """Delta logits ``(B, V_delta)`` minus their centre, in float32."""
        logits = delta_logits.float()
        if self.centre is Centre.MEAN:
            logits = logits - logits[:, : self.delta_real].mean(dim=-1, keepdim=True)
        return logits

    def shift(self, delta_logits: torch.Tensor) -> torch.Tensor:
        """The delta's shift in host space, ``(B, host_size)`` float32; 0 where unmapped."""
        d = self.centred(delta_logits)                                            # (B, Vd)
        if self.index is not None and self.n_mapped == len(self.index) == self.host_size:
            return d.index_select(1, self.gather.to(d.device))                  # every host token mapped: one gather
        out = d.new_zeros(d.shape[0], self.host_size)                             # (B, Vh)
        if self.index is not None:
            n = len(self.index)
            gathered = d.index_select(1, self.gather.to(d.device))               # (B, V_map)
            out[:, :n] = torch.where(self.mapped.to(d.device), gathered, torch.zeros_like(gathered))
        elif self.weights is not None:
            w = self.weights.to(d.device)                                         # (V_map, Vd) sparse
            out[:, : w.shape[0]] = torch.sparse.mm(w, d[:, : w.shape[1]].t()).t()
        else:
            n = min(self.host_size, self.delta_real, d.shape[1])
            out[:, :n] = d[:, :n]
        return out

    def combine(self, host_logits: torch.Tensor, delta_logits: torch.Tensor | None, alpha: float) -> torch.Tensor:
        """``log_softmax(host) + α·shift`` as float32 ``(B, V_host)`` scores (not renormalised).

        ``delta_logits`` may be None when ``alpha == 0`` (the host alone).
        """
        scores = torch.log_softmax(host_logits.float(), dim=-1)
        if alpha == 0 or delta_logits is None:
            return scores
        return scores + alpha * self.shift(delta_logits)

    def describe(self) -> dict:
        """Summary for reports: kind, mapped host tokens, centre."""
        kind = "identity" if self.index is None and self.weights is None else (
            "one-to-one" if self.index is not None else "weighted")
        return {"kind": kind, "host_size": self.host_size, "delta_vocab": self.delta_real,
                "mapped_host_tokens": self.n_mapped, "centre": self.centre.value}
