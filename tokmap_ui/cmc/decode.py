"""Host + delta decoding: batches, real sampling, streaming, stop strings, two KV caches.

Each step scores the host's next token with ``log_softmax(host) + α·(delta[map] − centre)``
(:mod:`tokmap_ui.cmc.combine`), picks one (greedy at temperature 0, else temperature / top-k /
top-p sampling from a seeded generator — the CMC reference silently decodes greedily), and feeds
it back. Both models keep their KV cache (:class:`~tokmap_ui.cmc.runner.CachedLM`; plain GPT-2 and
Llama models run the lean forward of :mod:`tokmap_ui.cmc.fastlm`: 1.04-1.7x the tokens/s of
``generate`` in ``bench/bench_generate.py``). A delta with the host's vocabulary reads the
host's ids; one with another vocabulary reads the host's *text* re-tokenised, where only a
trailing window is re-encoded and rolled back (:mod:`tokmap_ui.cmc.sync`).

α = 0 (or no delta) reproduces the host exactly: the same tokens as ``host.generate`` greedy.

Example:
    >>> pair = CmcPair(host, host_tok, delta, delta_tok, token_map)             # doctest: +SKIP
    >>> pair.generate(["The LORD said"], GenerateConfig(alpha=1.0))[0].text     # doctest: +SKIP
    >>> for event in pair.stream(["Hello"], GenerateConfig(temperature=0.8)):   # doctest: +SKIP
    ...     print(event.text, end="")
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from tokmap_ui.cmc.combine import Centre, DeltaShift
from tokmap_ui.cmc.explain import StepExplanation, explain_step
from tokmap_ui.cmc.fastlm import make_runner
from tokmap_ui.cmc.sync import DeltaTokens, Detokenizer
from tokmap_ui.errors import ConfigError, TokenMapError, check_ranges
from tokmap_ui.mapping.tokenmap import TokenMap


@dataclass(frozen=True)
class GenerateConfig:
    """Settings of one host + delta generation (the CLI flags map onto these fields)."""

    alpha: float = 1.0
    """Strength of the delta: 0 = the host alone, 1 = as trained, above 1 = exaggerated, below 0 = reversed."""
    max_new_tokens: int = 64
    """Host tokens to generate at most per prompt."""
    temperature: float = 0.0
    """0 = greedy (argmax); above 0 = sample from the combined distribution at this temperature."""
    top_p: float = 1.0
    """Nucleus sampling: sample only from the smallest set of tokens whose probability reaches top_p."""
    top_k: int = 0
    """Sample only from the k most likely tokens (0 = no limit)."""
    seed: int = 0
    """Seed of the sampling generator (same seed, prompts and batch size = same output)."""
    stop: tuple[str, ...] = ()
    """Stop a prompt's generation when its text contains one of these strings (cut before it)."""
    stop_at_eos: bool = True
    """Stop at the host's end-of-sequence token."""
    centre: str = "mean"
    """What the delta's logits are centred on before mapping: mean (neutral 0 for unmapped host tokens) or none."""
    explain: int = 0
    """Record, per step, this many of the host's top tokens with the delta's shift on them (0 = off)."""
    batch_size: int = 8
    """Prompts decoded together (left-padded)."""
    verify_sync: bool = False
    """Check the delta's ids against a full re-encode of the text after every step (slow; for debugging)."""
    overlap: bool = False
    """Step the delta on a second thread while the host steps (their matrix work releases the GIL; on the
    demo kit +3-4% tokens/s at batch 8, nothing at batch 1)."""
    delta_head_dtype: str = "float32"
    """float32, or bfloat16: the delta's output layer in bf16 (less memory traffic per step on a CPU; logits ±1e-2)."""

    def validate(self) -> None:
        checks = [("max_new_tokens", self.max_new_tokens >= 1, "at least 1"),
                  ("temperature", self.temperature >= 0, "0 or more"),
                  ("top_p", 0 < self.top_p <= 1, "in (0, 1]"), ("top_k", self.top_k >= 0, "0 or more"),
                  ("batch_size", self.batch_size >= 1, "at least 1"), ("explain", self.explain >= 0, "0 or more")]
        check_ranges(self, checks)
        if any(not s for s in self.stop):
            raise ConfigError("an empty stop string would stop at once. Fix: remove it.")
        Centre.parse(self.centre)
        if self.delta_head_dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"delta_head_dtype '{self.delta_head_dtype}' is unknown. Fix: use float32 or bfloat16.")


@dataclass
class GenerateResult:
    """One prompt's generation."""

    prompt: str
    text: str                      # the generated text (stop string and EOS not included)
    token_ids: list[int]           # the host ids generated (EOS included when it ended the text)
    finish_reason: str             # eos | stop | length | context
    explanations: list[StepExplanation] = field(default_factory=list)
    delta_tokens: int = 0          # length of the delta's final token stream
    delta_rollbacks: int = 0       # delta tokens recomputed after a re-encode (cross-vocabulary)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "text": self.text, "token_ids": self.token_ids,
                "finish_reason": self.finish_reason, "delta_tokens": self.delta_tokens,
                "delta_rollbacks": self.delta_rollbacks,
                "explanations": [e.to_dict() for e in self.explanations]}


@dataclass(frozen=True)
class StreamEvent:
    """A piece of one prompt's output: new text, the token, and whether that prompt is done."""

    index: int                     # position of the prompt in the input list
    token_id: int | None           # None on the final event of a prompt
    text: str                      # text released by this event (held back while it may start a stop string)
    finished: bool = False
    finish_reason: str | None = None
    explanation: StepExplanation | None = None


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    value = getattr(config, "eos_token_id", None) if config is not None else None
    for v in (value if isinstance(value, (list, tuple)) else [value]):
        if v is not None:
            ids.add(int(v))
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _context_id(tokenizer: Any) -> int:
    for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    return 0


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """The host's prompt ids (special tokens as the tokenizer adds them); BOS/EOS alone for an empty prompt."""
    ids = list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    return ids or [_context_id(tokenizer)]


def sample(scores: torch.Tensor, temperature: float, top_p: float, top_k: int,
           generator: torch.Generator | None) -> torch.Tensor:
    """Pick one token per row from ``scores`` (B, V): argmax at temperature 0, else filtered sampling."""
    if temperature <= 0:
        return scores.argmax(dim=-1)
    logits = scores / temperature
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]              # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(ordered, dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p                         # mass before this token already enough
        drop[:, 0] = False
        logits = logits.scatter(1, order, ordered.masked_fill(drop, float("-inf")))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _held_back(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters of ``text`` could be the start of a stop string."""
    hold = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                hold = max(hold, n)
                break
    return hold


class CmcPair:
    """A host and (optionally) a delta, ready to decode; the token map is checked once here.

    Args:
        host_model, host_tokenizer: the host LLM.
        delta_model, delta_tokenizer: the delta (None = the host alone).
        token_map: host→delta map for a delta with another vocabulary (None = shared vocabulary,
            checked by the two vocabularies' hashes).
    """

    def __init__(self, host_model: Any, host_tokenizer: Any, delta_model: Any = None, delta_tokenizer: Any = None,
                 token_map: TokenMap | None = None):
        self.host, self.host_tok = host_model, host_tokenizer
        self.delta, self.delta_tok = delta_model, delta_tokenizer
        host_rows = int(host_model.get_output_embeddings().weight.shape[0])
        self.host_vocab_len = min(len(host_tokenizer), host_rows)
        self.same_vocab = True
        self.shift: DeltaShift | None = None
        if delta_model is None:
            return
        if delta_tokenizer is None:
            raise ConfigError("a delta model was given without its tokenizer. Fix: pass the delta's tokenizer.")
        from tokmap_ui.vocab import Vocabulary

        host_vocab = Vocabulary.from_tokenizer(host_tokenizer, name="host")
        delta_vocab = Vocabulary.from_tokenizer(delta_tokenizer, name="delta")
        delta_real = len(delta_tokenizer)
        if token_map is not None:
            token_map.check_fits(host_vocab, delta_vocab)
            self.shift = DeltaShift.from_token_map(token_map, host_rows, delta_real)
            self.same_vocab = host_vocab.sha256 == delta_vocab.sha256  # the delta can read the host's ids
        elif host_vocab.sha256 == delta_vocab.sha256:
            self.shift = DeltaShift.identity(host_rows, delta_real)
        else:
            raise TokenMapError(None, "the host and the delta have different vocabularies and no token map was given",
                                fix="build one with `tokmap pmmined --host-tokenizer HOST --delta-tokenizer DELTA "
                                    "--out MAP.json` and pass --map MAP.json")

    # ------------------------------------------------------------------ public API

    def generate(self, prompts: Sequence[str] | str, config: GenerateConfig = GenerateConfig()) -> list[GenerateResult]:
        """Generate for every prompt; results in prompt order."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        results = [GenerateResult(p, "", [], "length") for p in prompts]
        for event in self.stream(prompts, config, _results=results):
            pass
        return results

    def stream(self, prompts: Sequence[str] | str, config: GenerateConfig = GenerateConfig(),
               _results: list[GenerateResult] | None = None) -> Iterator[StreamEvent]:
        """Yield :class:`StreamEvent` s as tokens are generated (batch by batch, rows interleaved)."""
        config.validate()
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        results = _results if _results is not None else [GenerateResult(p, "", [], "length") for p in prompts]
        if self.shift is not None:
            self.shift.centre = Centre.parse(config.centre)
        generator = torch.Generator(device=next(self.host.parameters()).device).manual_seed(config.seed)
        pool = ThreadPoolExecutor(1, thread_name_prefix="cmc-delta") if config.overlap and self._use_delta(config) else None
        try:
            for start in range(0, len(prompts), config.batch_size):
                chunk = list(range(start, min(start + config.batch_size, len(prompts))))
                yield from self._batch(prompts, chunk, config, generator, results, pool)
        finally:
            if pool is not None:
                pool.shutdown(wait=True)

    # ------------------------------------------------------------------ one batch

    def _use_delta(self, config: GenerateConfig) -> bool:
        return self.delta is not None and config.alpha != 0

    def _batch(self, prompts: list[str], chunk: list[int], config: GenerateConfig,
               generator: torch.Generator, results: list[GenerateResult],
               pool: ThreadPoolExecutor | None = None) -> Iterator[StreamEvent]:
        host_rows = [encode_prompt(self.host_tok, prompts[i]) for i in chunk]
        host = make_runner(self.host, _context_id(self.host_tok))  # the lean forward for plain GPT-2/Llama hosts
        host_logits = host.start(host_rows)                                     # (B, Vh)
        use_delta = self._use_delta(config)
        head = None if config.delta_head_dtype == "float32" else getattr(torch, config.delta_head_dtype)
        delta = DeltaStreams(self.delta, self.delta_tok, self.same_vocab, config.verify_sync, head) if use_delta else None
        delta_logits = delta.start([prompts[i] for i in chunk], host_rows) if delta else None
        detok = [Detokenizer(self.host_tok, row) for row in host_rows]
        eos = _eos_ids(self.host, self.host_tok) if config.stop_at_eos else set()
        active = [True] * len(chunk)
        emitted = [0] * len(chunk)   # characters of each row's text already released
        for step in range(config.max_new_tokens):
            shift = config.alpha * self.shift.shift(delta_logits) if delta else None   # (B, Vh)
            host_lp = torch.log_softmax(host_logits.float(), dim=-1)
            scores = host_lp + shift if shift is not None else host_lp.clone()
            scores[:, self.host_vocab_len:] = float("-inf")                      # padded rows are not tokens
            tokens = sample(scores, config.temperature, config.top_p, config.top_k, generator).tolist()
            new: list[list[int]] = [[] for _ in chunk]
            for r, i in enumerate(chunk):
                if not active[r]:
                    continue
                token = int(tokens[r])
                result = results[i]
                result.token_ids.append(token)
                new[r] = [token]
                note = None
                if config.explain:
                    zero = torch.zeros_like(host_lp[r])
                    note = explain_step(step, host_lp[r], shift[r] if shift is not None else zero, token,
                                        config.explain, self.host_tok)
                    result.explanations.append(note)
                reason = None
                if token in eos:
                    reason = "eos"
                else:
                    detok[r].push(token)
                    text = detok[r].text
                    hits = [text.find(s) for s in config.stop if s in text]
                    if hits:
                        reason = "stop"
                        detok[r].text = text[: min(hits)]
                if reason is None and step + 1 == config.max_new_tokens:
                    reason = "length"
                if reason is None and host.limit and len(host.ids[r]) + 1 > host.limit:
                    reason = "context"
                if reason is None and delta and delta.full(r):
                    reason = "context"
                if reason is not None:
                    if reason in ("length", "context"):
                        detok[r].flush()  # release a trailing partial character
                    active[r] = False
                    result.finish_reason = reason
                text = detok[r].text
                release = len(text) if reason else len(text) - _held_back(text, config.stop)
                piece = text[emitted[r]:release] if release > emitted[r] else ""
                emitted[r] = max(emitted[r], release)
                result.text = text
                yield StreamEvent(i, token, piece, explanation=note)
                if reason is not None:
                    if delta:
                        result.delta_tokens, result.delta_rollbacks = delta.stats(r)
                    yield StreamEvent(i, None, "", True, reason)
            if not any(active):
                break
            texts = [prompts[i] + detok[r].text for r, i in enumerate(chunk)]
            if delta and pool is not None:  # the two models' steps are independent: run them side by side
                pending = pool.submit(delta.advance, active, new, texts)
                host_logits = host.step([len(row) for row in host.ids], new)
                delta_logits = pending.result()
            else:
                host_logits = host.step([len(row) for row in host.ids], new)
                if delta:
                    delta_logits = delta.advance(active, new, texts)


class DeltaStreams:
    """The delta's side of a batch: its own ids (shared vocabulary) or the host's text re-tokenised."""

    def __init__(self, model: Any, tokenizer: Any, same_vocab: bool, verify: bool = False,
                 head_dtype: torch.dtype | None = None):
        self.lm = make_runner(model, _context_id(tokenizer), head_dtype)  # the lean forward for GPT-2/Llama deltas
        self.tokenizer = tokenizer
        self.same_vocab = same_vocab
        self.verify = verify
        self.streams: list[DeltaTokens] = []
        self.rollbacks: list[int] = []

    def start(self, prompts: list[str], host_rows: list[list[int]]) -> torch.Tensor:
        """Prefill; ``(B, V_delta)`` logits."""
        self.rollbacks = [0] * len(prompts)
        if self.same_vocab:
            return self.lm.start(host_rows)
        self.streams = [DeltaTokens(self.tokenizer, p, verify=self.verify) for p in prompts]
        return self.lm.start([s.ids for s in self.streams])

    def advance(self, active: list[bool], new: list[list[int]], texts: list[str]) -> torch.Tensor:
        """After the host took ``new`` tokens (texts = prompt + response so far); ``(B, V_delta)`` logits."""
        lengths = self.lm.lengths()
        if self.same_vocab:
            return self.lm.step(lengths, [n if a else [] for n, a in zip(new, active)])
        keep, add = list(lengths), [[] for _ in new]
        for r, stream in enumerate(self.streams):
            if not active[r]:
                continue
            k, ids = stream.update(texts[r])
            self.rollbacks[r] += lengths[r] - k
            keep[r], add[r] = k, ids
        return self.lm.step(keep, add)

    def full(self, row: int) -> bool:
        """True when the delta's context is nearly full for this row (a few tokens of slack for re-encodes)."""
        limit = self.lm.limit
        return bool(limit) and len(self.lm.ids[row]) + 4 > limit

    def stats(self, row: int) -> tuple[int, int]:
        return len(self.lm.ids[row]), self.rollbacks[row]


def generate(host_model: Any, host_tokenizer: Any, delta_model: Any, delta_tokenizer: Any,
             token_map: TokenMap | None, config: GenerateConfig, prompts: Sequence[str] | str) -> list[GenerateResult]:
    """Host + delta generation for ``prompts`` (see :class:`CmcPair`); ``delta_model=None`` = the host alone."""
    return CmcPair(host_model, host_tokenizer, delta_model, delta_tokenizer, token_map).generate(prompts, config)


def stream_generate(host_model: Any, host_tokenizer: Any, delta_model: Any, delta_tokenizer: Any,
                    token_map: TokenMap | None, config: GenerateConfig,
                    prompts: Sequence[str] | str) -> Iterator[StreamEvent]:
    """Streaming form of :func:`generate`: yields :class:`StreamEvent` s."""
    pair = CmcPair(host_model, host_tokenizer, delta_model, delta_tokenizer, token_map)
    yield from pair.stream(prompts, config)
