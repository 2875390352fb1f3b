"""The arena: one prompt, every host alone and with the delta, streamed side by side.

Two outputs per host — ``host alone`` (α = 0, exactly the host) and ``host + delta`` — decoded with
the same sampling settings and seed, so any difference is the delta's. The streams advance in
turn, one event each, so every panel grows at the same pace; each yielded :class:`ArenaState`
holds all panels so far (a UI redraws it, a script prints the last one). The ``+ delta`` runs also
record per step what the delta boosted or suppressed (:mod:`tokmap_ui.cmc.explain`).

Example:
    >>> for state in run_arena({"gpt2": pair}, "In the beginning", ArenaConfig(alpha=1.0)):   # doctest: +SKIP
    ...     pass
    >>> [p.text for p in state.panels]                                                         # doctest: +SKIP
    [' God created ...', ' was the word ...']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from tokmap_ui.cmc.decode import CmcPair, GenerateConfig

ALONE, WITH_DELTA = "host alone", "host + delta"


@dataclass(frozen=True)
class ArenaConfig:
    """Settings shared by every panel of one arena run."""

    alpha: float = 1.0
    """Strength of the delta in the ``+ delta`` panels (the ``alone`` panels use 0)."""
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    """Sampling settings (max_new_tokens, temperature, top_p, top_k, seed); its alpha is ignored."""
    explain_k: int = 5
    """Host top tokens recorded per step of the ``+ delta`` panels (0: no per-token view)."""


@dataclass
class ArenaPanel:
    """One output box: a host, with or without the delta, and its text so far."""

    host: str
    variant: str      # ALONE or WITH_DELTA
    text: str = ""
    done: bool = False
    note: str = ""
    steps: list[Any] = field(default_factory=list)  # StepExplanation per generated token (+ delta only)


@dataclass
class ArenaState:
    """All panels after one more event (the same list object, updated in place)."""

    panels: list[ArenaPanel]

    @property
    def finished(self) -> bool:
        return all(p.done for p in self.panels)


def run_arena(pairs: Mapping[str, CmcPair], prompt: str, config: ArenaConfig = ArenaConfig()) -> Iterator[ArenaState]:
    """Stream every host of ``pairs`` (name → host + delta pair) alone and with the delta."""
    alone = replace(config.generate, alpha=0.0, explain=0)
    steered = replace(config.generate, alpha=float(config.alpha), explain=config.explain_k)
    panels, streams = [], []
    for name, pair in pairs.items():
        for variant, settings in ((ALONE, alone), (WITH_DELTA, steered)):
            panels.append(ArenaPanel(name, variant))
            streams.append(pair.stream([prompt], settings))
    state = ArenaState(panels)
    live = list(range(len(streams)))
    while live:
        for k in list(live):
            event = next(streams[k], None)
            if event is None or event.finished:
                panels[k].done = True
                live.remove(k)
                continue
            panels[k].text += event.text
            if event.explanation is not None:
                panels[k].steps.append(event.explanation)
        yield state
