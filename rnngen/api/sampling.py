"""Sampling a loaded checkpoint: what `rnngen sample` does, as a call (`LanguageModel.sample`
and `generate` wrap `sample` with the API's argument checks; the CLI calls `sample` itself,
so that its errors name its options), and the n-gram and mixture that `--ngram` / `--mix`
(and a server's `ngram` / `mix`) sample from.

    sampling = sample(lm, "the man", n=2, temperature=0.8, seed=1)
    sampling.precision, sampling.seed      # decided at the call, before any token
    for event in sampling: ...             # Piece(index, text) ..., Done(index, text, ...)
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from rnngen.api.cpu_threads import running
from rnngen.corpus.stdin import read_stdin_text  # `--prompt -`: stdin as text, checked
from rnngen.errors import RnngenError, contradiction
from rnngen.sampling.generate import Done, Piece, SampleConfig, check_precision, default_length
from rnngen.scoring.baseline import check_order, memory_budget

__all__ = ["Done", "Piece", "Sampling", "read_stdin_text", "sample", "sampler"]


@dataclass(eq=False)
class Sampling:
    """A sampling run, decided at the call and run as it is iterated: Piece(index, text) as a
    sample's tokens decode to text, Done(index, text, tokens, reason, dropped_bytes, seed)
    when it ends (`reason`: length, chars or stop). Samples run as one batch; their pieces
    interleave. `precision` is what the samples run at (fp32 when greedy or for an n-gram
    alone); `seed` sample 0's (sample i's is seed + i); `ngram` the TrainingNGram sampled or
    mixed in (tokens, cached, source), `mixture` the MixtureWeight (weight, describe());
    `threads` the CPU thread plan (None on a GPU)."""

    seed: int
    greedy: bool
    precision: str
    device: object  # a torch.device
    num_samples: int
    ngram: object | None = None
    mixture: object | None = None
    threads: object | None = None
    events: Iterator[Piece | Done] = field(default=iter(()), repr=False)

    def __iter__(self) -> Iterator[Piece | Done]:
        return self.events

    def close(self) -> None:
        """Stop early (the model's threads are given back)."""
        close = getattr(self.events, "close", None)
        if close is not None:
            close()


def sample(lm, prompt: str = "", *, n: int = 1, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, max_tokens: int | None = None, max_chars: int | None = None,
           seed: int | None = None, stop: str | Iterable[str] = (), precision: str = "auto",
           threads: int | str | None = None, ngram: bool = False, ngram_order: int = 5,
           ngram_memory: int | str | None = None, mix: float | str | None = None,
           progress: Callable[[str], None] | None = None) -> Sampling:  # fmt: skip
    """`rnngen sample` on the LanguageModel `lm`, every option as the command's (errors name
    its options: --temp, --length, ...). `max_tokens` None: 500, or with max_chars as many
    as those characters need. `seed` None: a random one (Sampling.seed says which).
    `ngram`: sample the Kneser-Ney n-gram of the checkpoint's training tokens alone; `mix`:
    "fit" or λ, the RNN mixed with it. `threads`: as --threads (None: auto, or
    OMP_NUM_THREADS). `progress` receives the lines a CLI may log (threads, the n-gram,
    the mixture). Everything is checked and the n-gram built here; tokens come when
    iterated."""
    from rnngen.threads import plan_threads

    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    config = SampleConfig(
        temperature=temperature, top_k=top_k, top_p=top_p, max_chars=max_chars, stops=stops,
        max_tokens=default_length(max_chars) if max_tokens is None else max_tokens,
        num_samples=n, seed=secrets.randbelow(2**31) if seed is None else seed,
    )  # fmt: skip
    from rnngen.sampling.generate import sampling_precision

    check_precision(precision)
    chosen = "fp32" if ngram else sampling_precision(precision, lm.device, temperature)
    plan = plan_threads(threads) if lm.device.type == "cpu" else None
    mix_option = None
    if mix is not None:
        from rnngen.scoring.mixture_weight import parse_mix

        if ngram:
            raise contradiction("--ngram", "--mix", "--ngram samples the n-gram alone")
        mix_option = parse_mix(str(mix))
    memory = memory_budget(ngram_memory, lm.tokenizer.vocab_size)
    if ngram or mix_option is not None:
        check_order(ngram_order)
    log = progress or (lambda _: None)
    if plan is not None:
        log(plan.describe())
    baseline = None
    with running(plan, log):
        if ngram or mix_option is not None:
            purpose = "sampling" if ngram else "mixing in"
            baseline = ngram_baseline(lm, checkpoint_data(lm, memory), ngram_order, mix_option,
                                      log, purpose)  # fmt: skip
    kneser_ney = weight = None
    if baseline is not None:
        kneser_ney, weight = baseline.ngram, baseline.mixture
    model = None if ngram else lm.model
    events = _events(model, lm.tokenizer, prompt, config, chosen, plan, log,
                     None if kneser_ney is None else kneser_ney.model,
                     None if weight is None else weight.weight)  # fmt: skip
    return Sampling(config.seed, config.greedy, chosen, lm.device, n, kneser_ney, weight, plan,
                    events)  # fmt: skip


def _events(model, tokenizer, prompt, config, precision, plan, log, ngram, mix):
    from rnngen.sampling.sampler import generate

    with running(plan, log):
        yield from generate(model, tokenizer, prompt, config, precision, ngram=ngram, mix=mix)


def checkpoint_data(lm, memory: int | None = None):
    """The checkpoint's data (baseline.CheckpointData), its n-grams built within `memory`
    bytes (None: the default budget) and each found once."""
    from rnngen.scoring.baseline import CheckpointData

    return CheckpointData(lm.provenance, lm.tokenizer, memory=memory)


def ngram_baseline(lm, data, order: int, mix: float | str | None = None, log=None,
                   purpose: str = "sampling"):  # fmt: skip
    """The Baseline that --ngram / --mix sample from: the n-gram of exactly the checkpoint's
    training tokens (cached, as eval's) and, with `mix`, its weight beside the RNN ("fit" on
    the validation split, cached as eval fits it, or λ), by baseline.ngram_baseline as score
    and eval assemble them. `data`: checkpoint_data(lm, ...); `log` gets the lines saying
    what was built."""
    from rnngen.scoring.baseline import ngram_baseline as assemble
    from rnngen.scoring.trained_on import build_memory

    provenance = lm.provenance
    if provenance is None or "train" not in provenance.splits:
        raise RnngenError("--ngram: the checkpoint does not record its training text")
    try:
        ngram = data.ngram(check_order(order))
    except RnngenError:
        raise RnngenError(
            f"--ngram needs the checkpoint's training text, and "
            f"{provenance.splits['train'].source!r} has moved or changed since training "
            "(and its token cache is gone)"
        ) from None
    if log is not None:
        how = "cached"
        if not ngram.cached:
            how = f"built now: {build_memory(ngram.model.stats, data.memory)}"
        log(f"{purpose} the order-{order} Kneser-Ney model of the checkpoint's "
            f"{ngram.tokens:,} training tokens ({how})")  # fmt: skip
    baseline = assemble(data, order, model=lm.model, device=lm.device, mix=mix)
    if log is not None and baseline.mixture is not None:
        log(f"mixture: {baseline.mixture.describe()}")
    return baseline


def sampler(lm, precision: str = "auto"):
    """An empty `rnngen.sampling.sampler.Sampler` of the model (rows join with add(prompt, seeds,
    **options), each at the precision the rule gives its temperature): the engine of
    `sample`, for a server's continuous batching."""
    from rnngen.sampling.sampler import Sampler

    check_precision(precision)
    return Sampler(lm.model, lm.tokenizer, precision, lm.device)
