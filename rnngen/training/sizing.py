"""Choose the model size for this machine and this run, by measuring it.

How good a recurrent LM gets in a run depends on two things: its size, and how many tokens it
trains on. Machine speed only converts a time budget into tokens, and it differs 10x between
CPUs (AVX2-only fp32 against AMX bf16) and 1000x between a laptop and a GPU, so no fixed
default size can be right everywhere: 1x512 is the best size for 180 s on a bf16 CPU, too big
for 40 s on an fp32 one (it sees too few tokens and loses to a 5-gram), and far too small for a
GPU. So when the user gives no size, `choose` measures.

1. **Measure.** `measure_rate` times a few real training steps (forward, backward, clipping,
   AdamW) of each candidate on the actual device, precision and thread count, climbing a
   ladder of sizes. The climb stops as soon as a size cannot get enough tokens in the run
   (a larger one would get fewer still) or the probe's share of the budget is spent.
2. **Predict tokens.** With a time budget, a candidate trains on about `rate x budget x
   TRAINING_SHARE` tokens (the rest of the time goes to evaluations). With a length in steps or
   epochs every candidate trains on the same tokens, and speed only sets the wall time.
3. **Choose** the largest candidate that trains on at least `TOKENS_PER_PARAMETER` tokens per
   parameter, and that has at most `PARAMETERS_PER_CORPUS_TOKEN` parameters per distinct
   training token (bigger models memorize a small corpus instead of modelling it).

The two constants are fitted, not guessed: `benchmarks/bench_sizing_grid.py` trains every size
of the ladder for several lengths (in steps, so the figures do not depend on the machine), and
`benchmarks/bench_sizing_fit.py` finds the best size at each length and the constants that
reproduce those choices; BENCHMARKS.md ("Automatic model size") has the grid and the fit.
The learning rate follows the chosen width (`rnngen.config.learning_rate_for`: narrow layers
take larger steps, as the grid measured); batch size and sequence length stay at their
defaults, 16 x 64, which the grid found the better trade at every width it tried.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from rnngen.config import ModelConfig
from rnngen.hardware import autocast, fused_adam
from rnngen.model import create_model
from rnngen.threads import REJECT

# From the grid and the verification runs in BENCHMARKS.md ("Automatic model size"): the best
# size for a run saw between 1 and 3 tokens per parameter. Below 1 a smaller model wins (1x512
# in 180 s of fp32 on one core sees 0.34 and loses 0.04 bits/char to 1x256, which sees 2.6);
# in 180 s of bf16 on two cores 1x384 (2.1 per parameter) beat 1x256 (6.5) by 0.010.
TOKENS_PER_PARAMETER = 1.5
# Not fitted (no overfitting grid yet): a judgement, loose enough for 1x768 on tinyshakespeare
# and tight enough that a 25k-token corpus gets 1x192.
PARAMETERS_PER_CORPUS_TOKEN = 20.0
# Share of a time-boxed run spent in training steps (the rest: evaluations, logging, saving),
# measured on the verification runs in BENCHMARKS.md.
TRAINING_SHARE = 0.85
# The probe's share of a time budget, and its allowance when the run has no budget.
PROBE_SHARE = 0.05
PROBE_SECONDS_WITHOUT_BUDGET = 4.0
PROBE_MIN_SECONDS = 1.0

# (layers, hidden): one wide layer first, since in short runs width learns fastest per
# second; stacked layers (with skip connections) only where a GPU's budget reaches them.
LADDER: tuple[tuple[int, int], ...] = (
    (1, 128), (1, 192), (1, 256), (1, 384), (1, 512), (1, 768), (1, 1024),
    (2, 1024), (3, 1024), (3, 1536), (4, 2048),
)  # fmt: skip
SIZES = {"small": (1, 256), "base": (1, 512), "large": (2, 1024)}


@dataclass(frozen=True)
class Measurement:
    layers: int
    hidden_size: int
    parameters: int
    tokens_per_second: float

    @property
    def name(self) -> str:
        return f"{self.layers}x{self.hidden_size}"


@dataclass(frozen=True)
class Choice:
    """What was measured and chosen, and why: logged, and stored in the checkpoint."""

    layers: int
    hidden_size: int
    reason: str
    measurements: list[Measurement] = field(default_factory=list)
    probe_seconds: float = 0.0
    threads: dict | None = None  # the thread counts measured (rnngen/training.py adds them)

    def as_dict(self) -> dict:
        return {
            "layers": self.layers,
            "hidden_size": self.hidden_size,
            "reason": self.reason,
            "probe_seconds": round(self.probe_seconds, 2),
            "measured": {m.name: round(m.tokens_per_second) for m in self.measurements},
            **({"threads": self.threads} if self.threads else {}),
        }

    def summary(self) -> str:
        measured = ", ".join(
            f"{m.name} {m.tokens_per_second / 1e3:.1f}k tok/s" for m in self.measurements
        )
        return (
            f"size: measured {measured or 'nothing'}; chose {self.layers}x{self.hidden_size}"
            f" ({self.reason}){self._threads_note()}"
        )

    def _threads_note(self) -> str:
        """The thread counts measured on the chosen size, when sizing tried several; a busy
        machine is named, since it made every figure above smaller."""
        if not self.threads or len(self.threads["rates"]) < 2:
            return ""
        chosen, rates = self.threads["threads"], self.threads["rates"]
        others = ", ".join(f"{n} {rate / 1e3:.1f}k" for n, rate in rates.items() if n != chosen)
        if not self.threads["contended"]:
            return f"; threads: {chosen} (tok/s at {others})"
        return (
            f"; threads: {chosen} (tok/s at {others}): the machine looked busy, so sized for "
            f"{chosen} thread{'s' if chosen > 1 else ''}; the run adapts if the cores free up"
        )


def candidate_config(layers: int, hidden: int, vocab_size: int, **options) -> ModelConfig:
    """A ladder rung as a model: embedding as wide as the layers (tied) unless the options
    give one, skip connections when stacked (deep stacks lose the gradient without them)."""
    options = {"embed_size": hidden, **options, "layers": layers, "hidden_size": hidden}
    if options.get("model", "rnn") == "rnn" and options.get("skip", "none") in ("none", "residual"):
        options["residual"] = options.get("residual", False) or layers > 1
        options["skip"] = "residual" if options["residual"] else "none"
    return ModelConfig(vocab_size=vocab_size, **options)


def measure_rate(
    config: ModelConfig,
    batch_size: int,
    seq_len: int,
    device: torch.device,
    precision: str,
    min_seconds: float = 0.25,
    max_steps: int = 4,
) -> float:
    """Training tokens per second of `config` at the current thread count (`measure_rates`)."""
    return measure_rates(config, batch_size, seq_len, device, precision, (), min_seconds,
                         max_steps)[0]  # fmt: skip


def measure_rates(
    config: ModelConfig,
    batch_size: int,
    seq_len: int,
    device: torch.device,
    precision: str,
    counts: Sequence[int] = (),
    min_seconds: float = 0.25,
    max_steps: int = 4,
) -> dict[int, float]:
    """Training tokens per second of `config` at each CPU thread count in `counts` (none: at
    the current count, keyed 0): an untimed step at each (it builds the kernels), then rounds
    of one timed step per count until min_seconds or max_steps rounds (at least one). The rate
    is the median step's, so a moment's load elsewhere does not set it. A count whose step took
    REJECT times the fastest count's is not timed again: beside a busy program, 2 threads can
    take 10x as long as 1, and the probe's time is better spent on the next size."""
    generator = torch.Generator().manual_seed(0)
    model = create_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused_adam(device))
    weights = torch.ones(config.vocab_size)  # (V,)
    if config.softmax == "adaptive":  # its cost depends on how often the tail is needed
        weights = 1.0 / torch.arange(1, config.vocab_size + 1)  # Zipf's law, as in text
    tokens = torch.multinomial(weights, batch_size * (seq_len + 1), True, generator=generator)
    tokens = tokens.reshape(batch_size, seq_len + 1).to(device)  # (B, T+1)
    x, y = tokens[:, :-1], tokens[:, 1:]  # (B, T) each

    def step() -> float:
        started = time.perf_counter()
        with autocast(device, precision):
            logp, _ = model.score(x, y)  # (B, T)
        loss = -logp.mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        loss.item()  # waits for the device
        return time.perf_counter() - started

    live = list(counts) or [0]
    times: dict[int, list[float]] = {count: [] for count in live}
    for count in live:  # an untimed step at each count: it builds the kernels for it
        if counts:
            torch.set_num_threads(count)
        step()
    rounds, started = 0, time.perf_counter()
    while rounds < 1 or (rounds < max_steps and time.perf_counter() - started < min_seconds):
        for count in list(live):
            if counts:
                torch.set_num_threads(count)
            times[count].append(step())
        fastest = min(statistics.median(times[count]) for count in live)
        live = [count for count in live if statistics.median(times[count]) <= REJECT * fastest]
        rounds += 1
    return {count: x.numel() / statistics.median(t) for count, t in times.items()}


def run_tokens(rate: float, budget_seconds: float | None, fixed_tokens: int | None) -> float:
    """Tokens a candidate trains on in this run: fixed by steps/epochs, or bought by time."""
    if budget_seconds is None:
        return float(fixed_tokens or 0)
    tokens = rate * budget_seconds * TRAINING_SHARE
    return min(tokens, fixed_tokens) if fixed_tokens else tokens


def fits(parameters: int, tokens: float, corpus_tokens: int) -> str | None:
    """Why a size is too big for this run, or None when it is not."""
    if tokens < TOKENS_PER_PARAMETER * parameters:
        return f"would see {tokens / parameters:.2f} tokens per parameter"
    if parameters > PARAMETERS_PER_CORPUS_TOKEN * corpus_tokens:
        return "too big for the corpus"
    return None


def choose(
    vocab_size: int,
    corpus_tokens: int,
    budget_seconds: float | None,
    fixed_tokens: int | None,
    rate_of: Callable[[ModelConfig], float],
    step_tokens: int,
    model_options: dict | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Choice:
    """Climb the ladder, measuring each rung with `rate_of`, and pick the largest that fits.

    `budget_seconds` is the run's time budget (None without one); `fixed_tokens` the tokens
    its step or epoch limit allows (None without one); `step_tokens` the tokens of one
    training step (batch x sequence length). `rate_of` is injectable so that tests
    can give throughputs instead of measuring them. The smallest rung is always measured and
    always allowed, so there is always a choice.
    """
    options = dict(model_options or {})
    if budget_seconds is not None:
        allowance = max(PROBE_MIN_SECONDS, PROBE_SHARE * budget_seconds)
        budget_seconds = max(budget_seconds - allowance, 0.5 * budget_seconds)
    else:
        allowance = PROBE_SECONDS_WITHOUT_BUDGET
    started = clock()
    measured: list[Measurement] = []
    chosen, reason = None, ""
    for layers, hidden in LADDER:
        config = candidate_config(layers, hidden, vocab_size, **options)
        parameters = parameters_of(config)
        # A rung cannot fit when even the last rung's rate would not buy it enough tokens
        # (rates only fall as sizes grow): skip measuring it.
        if measured:
            optimistic = run_tokens(measured[-1].tokens_per_second, budget_seconds, fixed_tokens)
            why = fits(parameters, optimistic, corpus_tokens)
            if why:
                reason = f"{layers}x{hidden} {why}"
                break
            # Measuring takes about two steps; a rung that would overrun the probe's allowance
            # is not measured (its rate is what the run would buy, so it matters most, but a
            # probe that eats the budget defeats itself).
            last = measured[-1]
            step_seconds = step_tokens / last.tokens_per_second * parameters / last.parameters
            if clock() - started + 2 * step_seconds > allowance:
                reason = f"measuring {layers}x{hidden} would overrun the probe's time"
                break
        rate = rate_of(config)
        measured.append(Measurement(layers, hidden, parameters, rate))
        why = fits(parameters, run_tokens(rate, budget_seconds, fixed_tokens), corpus_tokens)
        if why and chosen is not None:
            reason = f"{layers}x{hidden} {why}"
            break
        chosen = (layers, hidden)
    else:
        reason = "the largest size"
    assert chosen is not None
    best = next(m for m in measured if (m.layers, m.hidden_size) == chosen)
    tokens = run_tokens(best.tokens_per_second, budget_seconds, fixed_tokens)
    length = f"{budget_seconds:.0f} s" if budget_seconds is not None else "the run's length"
    reason = f"{tokens / 1e6:.2g}M tokens in {length} on {corpus_tokens:,} corpus tokens; {reason}"
    return Choice(chosen[0], chosen[1], reason, measured, clock() - started)


def parameters_of(config: ModelConfig) -> int:
    """Parameter count of a config without building it (a test checks it against the model)."""
    e, h, v = config.embed_size, config.hidden_size, config.vocab_size
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[config.cell]
    recurrent = sum(gates * (h * (i + h) + 2 * h) for i in [e] + [h] * (config.layers - 1))
    embedding = v * e
    output = v if config.tie else v * h + v
    projection = 0 if (not config.tie or h == e) else h * e + e
    return recurrent + embedding + output + projection
