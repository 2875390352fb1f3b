"""A literal port of the CMC reference PM-MinED loop, the baseline for tests and the benchmark.

Line for line the loop of ``token_maps/mistral_llama_one2one.py`` in wujwyi/CMC (research/cmc.md §2),
minus its file writing: O(|V_host| · |V_delta|) Python ``startswith`` calls plus a Levenshtein
distance per candidate. It is deliberately slow and deliberately not part of the package.
"""

from __future__ import annotations

import re

from rapidfuzz.distance import Levenshtein


def is_all_space(string: str) -> bool:
    return re.match('^▁*$', string) is not None


def literal_pmmined(host_tokens: list[str], host_special_tokens: set[str], delta_tokens: list[str],
                    host_ids: range | list[int] | None = None) -> list[tuple[int, int]]:
    """``[(delta_id or -1, match_flag), ...]`` for each host id in ``host_ids`` (default: all).

    ``host_tokens`` and ``delta_tokens`` are the raw token strings in id order (no holes);
    ``host_special_tokens`` is the host tokenizer's ``all_special_tokens``.
    """
    vocab_llama = list(zip(delta_tokens, range(len(delta_tokens))))   # sorted by id
    vocab_mistral = list(zip(host_tokens, range(len(host_tokens))))
    all_special_tokens = host_special_tokens
    out = []
    for i in (range(len(host_tokens)) if host_ids is None else host_ids):
        item = vocab_mistral[i]
        token = item[0]
        if token in all_special_tokens:
            out.append((item[1], 1))
        elif token.startswith('<') and token.endswith('>') and len(token) > 2:
            out.append((item[1], 1))
        else:
            candidate = []
            match_flag = 0
            for related_tokens in vocab_llama:
                if token == related_tokens[0]:
                    candidate = [related_tokens]
                    match_flag = 1
                    break
                if (token.startswith(related_tokens[0]) or related_tokens[0].startswith(token)):
                    if related_tokens[0] == "▁" and is_all_space(token) == False:  # noqa: E712 (literal)
                        continue
                    candidate.append(related_tokens)
            min_distance = float('inf')
            closest_id = -1
            for candidate_item in candidate:
                distance = Levenshtein.distance(token, candidate_item[0])
                if distance < min_distance:
                    min_distance = distance
                    closest_id = candidate_item[1]
            out.append((closest_id, match_flag))
    return out
