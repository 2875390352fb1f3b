"""Build a Tik-to-Tok map through a pivot language: target → pivot, pivot → source, composed.

West Frisian has no real Frisian–English dictionary, but Frisian–Dutch pairs and a large
English–Dutch dictionary exist. :func:`run_pivot_mapping` maps the target tokenizer (fy) onto
the pivot tokenizer (nl) with the target–pivot pairs, the pivot tokenizer onto the source
model's tokenizer (en) with the source–pivot pairs, and composes the two maps
(:mod:`tokmap_ui.mapping.compose`). On the demo kit this beats mapping fy straight onto en with
the 1.7k fy–en triples: converted-MiniLM retrieval P@1 0.458 against 0.385 (held-out test,
``bench/results/frisian/README.md``).

Example:
    >>> run = run_pivot_mapping(en_tok, nl_tok, fy_tok, en_nl_pairs, nl_fy_pairs)   # doctest: +SKIP
    >>> run.token_map.kind, run.token_map.entries[1209].evidence[0]                   # doctest: +SKIP
    ('pivot', 'chain:dictionary→dictionary')
"""

from __future__ import annotations

import time
from typing import Any

from tokmap_ui.dictionary import Dictionary
from tokmap_ui.mapping.compose import ComposeConfig, PivotFallback, compose_maps
from tokmap_ui.mapping.tiktotok import MappingConfig, MappingRun, run_mapping
from tokmap_ui.vocab import Vocabulary


def run_pivot_mapping(source_tokenizer: Any, pivot_tokenizer: Any, target_tokenizer: Any,
                      source_pivot: Dictionary, pivot_target: Dictionary, config: MappingConfig = MappingConfig(),
                      compose: ComposeConfig = ComposeConfig(fallback=PivotFallback.FVT), *,
                      cache: Any = None, names: tuple[str, str] = ("target→pivot", "pivot→source")) -> MappingRun:
    """Map ``target`` onto ``pivot`` and ``pivot`` onto ``source`` with ``config``, then compose.

    Args:
        source_tokenizer, pivot_tokenizer, target_tokenizer: the model's (en), the pivot's (nl)
            and the new (fy) tokenizers.
        source_pivot: pairs with ``src`` in the source language and ``tgt`` in the pivot language (en → nl).
        pivot_target: pairs with ``src`` in the pivot language and ``tgt`` in the target language (nl → fy).
        config: the Tik-to-Tok settings of both hops.
        compose: the composition settings (default: keep 10 sources, FVT for unreached tokens).
        cache: an :class:`~tokmap_ui.io.cache.ArrayCache` for the subword spaces, or None.
        names: how the two hops are named in the composed map's ``params["chain"]``.
    """
    start = time.perf_counter()
    source = Vocabulary.from_tokenizer(source_tokenizer)
    pivot = Vocabulary.from_tokenizer(pivot_tokenizer)
    target = Vocabulary.from_tokenizer(target_tokenizer)
    first = run_mapping(pivot_tokenizer, target_tokenizer, pivot_target, config, source=pivot, target=target,
                        cache=cache)
    second = run_mapping(source_tokenizer, pivot_tokenizer, source_pivot, config, source=source, target=pivot,
                         cache=cache)
    tick = time.perf_counter()
    token_map = compose_maps([first.token_map, second.token_map], compose, names=list(names), target_vocab=target,
                             source_vocab=source, source_tokenizer=source_tokenizer)
    timings = {"target→pivot": round(sum(first.timings.values()), 3),
               "pivot→source": round(sum(second.timings.values()), 3),
               "compose": round(time.perf_counter() - tick, 3), "total": round(time.perf_counter() - start, 3)}
    notes = [f"{names[0]}: {n}" for n in first.notes] + [f"{names[1]}: {n}" for n in second.notes]
    pivot_stats = token_map.stats["pivot"]
    notes.append(f"{pivot_stats['reached']:,} of {len(token_map.entries):,} target tokens reached through the pivot "
                 f"'{pivot.name}'; {pivot_stats['unreached']:,} fell back ({pivot_stats['fallback']})")
    token_map.stats["notes"] = notes
    return MappingRun(token_map, timings, notes)
