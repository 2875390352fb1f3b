"""Compare init methods: the same fine-tune budget from each mapping method's converted model.

One arm per method (``tiktotok``, ``fvt``, ``mean``, ``random``, ...): build the map, convert the
source model (:func:`tokmap_ui.workbench.convert_for_method`), fine-tune it for the same steps,
batch and data (:func:`tokmap_ui.train.finetune.finetune`), evaluating loss per byte of a
validation subset every ``eval_every`` steps. Then summarise:

* a results table (markdown + JSON): loss/byte at step 0 and at the end per method;
* how many steps the first method (tiktotok) needs to reach the *reference* method's (random's)
  final validation loss, and that as a share of the budget (the claim: <= 1/4);
* loss curves as an interactive plotly HTML and a PNG drawn with PIL (no matplotlib).

Output folder (``CompareConfig.out``)::

    runs/<method>/converted, runs/<method>/finetune   the arms (finetune's run folders)
    results.json, table.md, curves.html, curves.png

Example:
    >>> steps_to_reach([(0, 3.0), (10, 2.0), (20, 1.0)], 1.5)
    15.0
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tokmap_ui.errors import ConfigError

EventCallback = Callable[[dict[str, Any]], None]
Curve = list[tuple[int, float]]  # (step, validation loss per byte)
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")


@dataclass(frozen=True)
class CompareConfig:
    """Settings of an init-method comparison (the CLI flags map 1:1 onto these fields)."""

    model: str
    """Source model folder (config.json + model.safetensors + tokenizer)."""
    target_tokenizer: str
    """Target-language tokenizer the model is converted to."""
    train: str
    """Target-language training text, one line per document."""
    valid: str
    """Target-language validation text."""
    out: str
    """Output folder: runs/, results.json, table.md, curves.html, curves.png."""
    methods: tuple[str, ...] = ("tiktotok", "fvt", "mean", "random")
    """Init methods, one fine-tune each; the first is the one measured against ``reference``."""
    reference: str = "random"
    """Method whose final loss the first method must reach (steps-to-reference)."""
    dictionary: str | None = None
    """Bilingual dictionary (source language first), needed by tiktotok."""
    steps: int = 60
    """Fine-tuning steps per method."""
    batch_size: int = 4
    """Blocks per step."""
    block_size: int = 64
    """Tokens per block."""
    lr: float = 5e-4
    """Peak learning rate."""
    eval_every: int = 0
    """Evaluate every N steps (0 = steps // 8)."""
    max_eval_texts: int = 200
    """Validation lines scored at each evaluation (the first N non-empty lines)."""
    threads: int = 0
    """torch CPU threads (0 = leave torch's default)."""
    seed: int = 0
    """Seed of data order (the same for every method)."""
    maps: tuple[tuple[str, str], ...] = ()
    """Precomputed token-map files as (arm name, file) pairs: that arm converts with the file instead of
    building a map (e.g. ("tiktotok-pivot", "fy-en.pivot.json.gz")); the name may be any label."""

    def validate(self) -> None:
        """Raise ConfigError for settings out of range."""
        from tokmap_ui.mapping.baselines import MapMethod

        known = [m.value for m in MapMethod]
        given = dict(self.maps)
        if not self.methods:
            raise ConfigError("no init method given. Fix: pass --methods with one or more of " + ", ".join(known))
        for method in self.methods:
            if method not in known and method not in given:
                raise ConfigError(f"init method '{method}' is unknown. Fix: choose from {', '.join(known)}, or "
                                  f"give its map with --map {method}=FILE.")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError("a method is listed twice in --methods. Fix: list each once.")
        if "tiktotok" in self.methods and "tiktotok" not in given and not self.dictionary:
            raise ConfigError("tiktotok needs a bilingual dictionary. Fix: pass --dictionary FILE "
                              "(or --map tiktotok=FILE).")
        if self.steps < 1 or self.batch_size < 1 or self.max_eval_texts < 1 or self.eval_every < 0:
            raise ConfigError("steps, batch size and eval texts must be at least 1, eval_every 0 or more.")

    @property
    def eval_interval(self) -> int:
        return self.eval_every or max(1, self.steps // 8)


@dataclass(frozen=True)
class ArmResult:
    """One method's run: its validation curve and timings."""

    method: str
    curve: Curve
    tokens_per_s: float
    convert_s: float
    train_s: float
    by_method: dict[str, int]

    @property
    def initial(self) -> float:
        return self.curve[0][1]

    @property
    def final(self) -> float:
        return self.curve[-1][1]


@dataclass(frozen=True)
class CompareResult:
    """All arms plus the headline number."""

    config: CompareConfig
    arms: list[ArmResult]
    steps_to_reference: float | None  # first method's steps to the reference's final loss (None: never)
    fraction_of_budget: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"format": "tokmap.compare_init/1", "config": asdict(self.config),
                "first_method": self.config.methods[0], "reference": self.config.reference,
                "steps_to_reference_final": self.steps_to_reference, "fraction_of_budget": self.fraction_of_budget,
                "arms": [{"method": a.method, "loss_per_byte_step0": a.initial, "loss_per_byte_final": a.final,
                          "curve": [list(p) for p in a.curve], "tokens_per_s": a.tokens_per_s,
                          "convert_s": a.convert_s, "train_s": a.train_s, "map_by_method": a.by_method}
                         for a in self.arms]}


def steps_to_reach(curve: Sequence[tuple[int, float]], target: float) -> float | None:
    """Steps until ``curve`` first gets to ``target`` or below, linearly interpolated between evals.

    Returns None when the curve never reaches it; 0.0 when it starts there.

    Example:
        >>> steps_to_reach([(0, 2.0), (8, 1.0)], 2.5), steps_to_reach([(0, 2.0), (8, 1.0)], 0.5)
        (0.0, None)
    """
    previous: tuple[int, float] | None = None
    for step, loss in curve:
        if loss <= target:
            if previous is None or previous[1] == loss:
                return float(step)
            # the crossing lies between two evaluations: interpolate (the curve is only sampled)
            s0, l0 = previous
            return s0 + (step - s0) * (l0 - target) / (l0 - loss)
        previous = (step, loss)
    return None


def summarise(config: CompareConfig, arms: list[ArmResult]) -> CompareResult:
    """Attach steps-to-reference (first method vs ``config.reference``) to the arms."""
    by_name = {a.method: a for a in arms}
    first, reference = by_name.get(config.methods[0]), by_name.get(config.reference)
    steps = None
    if first is not None and reference is not None and first is not reference:
        steps = steps_to_reach(first.curve, reference.final)
    fraction = steps / config.steps if steps is not None else None
    return CompareResult(config, arms, steps, fraction)


def results_table(result: CompareResult) -> str:
    """The markdown table of loss/byte per method, plus the headline line."""
    cfg = result.config
    lines = [f"Init-method comparison: {Path(cfg.model).name} -> {Path(cfg.target_tokenizer).name}, "
             f"{cfg.steps} steps x {cfg.batch_size} blocks x {cfg.block_size} tokens, lr {cfg.lr}, "
             f"eval every {cfg.eval_interval} steps on {cfg.max_eval_texts} validation lines.", "",
             "| method | loss/byte step 0 | loss/byte final | change | tokens/s |",
             "|---|---:|---:|---:|---:|"]
    for arm in result.arms:
        lines.append(f"| {arm.method} | {arm.initial:.4f} | {arm.final:.4f} | {arm.final - arm.initial:+.4f} "
                     f"| {arm.tokens_per_s:.0f} |")
    first = cfg.methods[0]
    if cfg.reference not in [a.method for a in result.arms] or first == cfg.reference:
        verdict = f"{cfg.reference} (the reference) has no finished run to compare {first} with."
    elif result.steps_to_reference is None:
        verdict = f"{first} did not reach {cfg.reference}'s final loss within {cfg.steps} steps."
    else:
        verdict = (f"{first} reaches {cfg.reference}'s final loss at step {result.steps_to_reference:.1f} "
                   f"(interpolated between evals) = {result.fraction_of_budget:.3f} of the {cfg.steps}-step budget.")
    return "\n".join(lines + ["", verdict, ""])


def curves_figure(result: CompareResult) -> Any:
    """A plotly figure of validation loss/byte against step, one line per method."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, arm in enumerate(result.arms):
        fig.add_trace(go.Scatter(x=[s for s, _ in arm.curve], y=[v for _, v in arm.curve], mode="lines+markers",
                                 name=arm.method, line={"color": COLOURS[i % len(COLOURS)]}))
    fig.update_layout(title="Validation loss per byte by init method", xaxis_title="fine-tuning step",
                      yaxis_title="loss (nats / byte)", template="plotly_white")
    return fig


def curves_png(result: CompareResult, size: tuple[int, int] = (900, 560)) -> bytes:
    """The loss curves drawn with PIL: axes with ticks, one coloured line per method, a legend."""
    import io

    from PIL import Image, ImageDraw

    width, height = size
    left, right, top, bottom = 70, 150, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = [p for arm in result.arms for p in arm.curve]
    x_max = max(1, max(s for s, _ in points))
    y_lo, y_hi = min(v for _, v in points), max(v for _, v in points)
    pad = (y_hi - y_lo) * 0.05 or 0.1
    y_lo, y_hi = y_lo - pad, y_hi + pad

    def xy(step: float, value: float) -> tuple[float, float]:
        return (left + (width - left - right) * step / x_max,
                top + (height - top - bottom) * (y_hi - value) / (y_hi - y_lo))

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for k in range(6):  # ticks and grid
        value = y_lo + (y_hi - y_lo) * k / 5
        _, y = xy(0, value)
        draw.line([left, y, width - right, y], fill="#e6e6e6")
        draw.text((8, y - 6), f"{value:.3f}", fill="black")
        step = x_max * k / 5
        x, _ = xy(step, y_lo)
        draw.line([x, height - bottom, x, height - bottom + 5], fill="black")
        draw.text((x - 10, height - bottom + 8), f"{step:.0f}", fill="black")
    draw.text((left, 12), "Validation loss per byte by init method", fill="black")
    draw.text(((width - right) // 2, height - 18), "fine-tuning step", fill="black")
    for i, arm in enumerate(result.arms):
        colour = COLOURS[i % len(COLOURS)]
        line = [xy(s, v) for s, v in arm.curve]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        y = top + 10 + 20 * i
        draw.line([width - right + 12, y + 6, width - right + 36, y + 6], fill=colour, width=3)
        draw.text((width - right + 42, y), arm.method, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def run_arm(config: CompareConfig, method: str, on_event: EventCallback | None = None) -> ArmResult:
    """Convert the model with ``method``'s map and fine-tune it; return its eval curve."""
    from tokmap_ui.train.finetune import FinetuneConfig, finetune
    from tokmap_ui.workbench import _objective, convert_for_method

    folder = Path(config.out) / "runs" / method
    tick = time.monotonic()
    report = convert_for_method(config.model, config.target_tokenizer, method, folder / "converted",
                                dictionary=config.dictionary, map_file=dict(config.maps).get(method))
    convert_s = time.monotonic() - tick
    tune = FinetuneConfig(model=str(folder / "converted"), train_files=(config.train,), valid_file=config.valid,
                          out=str(folder / "finetune"), objective=_objective(folder / "converted"),
                          steps=config.steps, batch_size=config.batch_size, block_size=config.block_size,
                          lr=config.lr, eval_every=config.eval_interval, checkpoint_every=0, keep_checkpoints=1,
                          max_eval_texts=config.max_eval_texts, seed=config.seed, cpu=True,
                          log_every=max(1, config.eval_interval))

    def relay(record: dict[str, Any]) -> None:
        if on_event is not None:
            on_event({**record, "method": method})

    # finetune() trains fp32 master weights even for the kit's fp16 checkpoints
    result = finetune(tune, on_event=relay)
    curve = sorted({int(r["step"]): float(r["loss_per_byte"]) for r in result.history}.items())
    return ArmResult(method, curve, result.train_tokens_per_s, convert_s, result.elapsed_s,
                     dict(report.get("by_method", {})))


def compare_init(config: CompareConfig, on_event: EventCallback | None = None) -> CompareResult:
    """Run every arm; after each, (re)write results.json, table.md, curves.html and curves.png (:func:`write_outputs`)."""
    import torch

    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    arms: list[ArmResult] = []
    for method in config.methods:
        if on_event is not None:
            on_event({"event": "arm", "method": method})
        arms.append(run_arm(config, method, on_event))
        result = summarise(config, arms)
        write_outputs(result)  # after every arm: a run cut short still leaves the arms it finished
    return result


def write_outputs(result: CompareResult) -> None:
    """Write results.json, table.md, curves.html and curves.png to ``result.config.out``."""
    from tokmap_ui.io.files import atomic_write_bytes, atomic_write_text

    out = Path(result.config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(result.to_dict(), indent=2) + "\n")
    atomic_write_text(out / "table.md", results_table(result))
    # plotly.js from the CDN keeps the file small; curves.png is the offline view
    atomic_write_text(out / "curves.html", curves_figure(result).to_html(include_plotlyjs="cdn"))
    atomic_write_bytes(out / "curves.png", curves_png(result))
