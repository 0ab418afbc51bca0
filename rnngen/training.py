"""A training run as library phases, each returning a value the next one takes.

    base = open_base(init_from, ...)         # init_from.py: the checkpoint to fine-tune, or None
    files = RunFiles.claim(...)              # run_files.py: -o checked and locked
    place = connect(config, group)           # device, precision; torchrun's process group
    data = prepare_data(corpus, ..., group)  # train_data.py: ids, tokenizer, provenance
    plan = plan_model(data, options, config, place, files.resume_state(group), base)
    model = build_model(data, plan, place)   # the network and its Trainer
    for event in run(model, data, files): ...  # saves on `best`, the state at evaluations

`rnngen train` calls these phases and draws their values and events on the terminal;
`train(...)` below calls the same ones for a Python caller. Nothing here prints: what the CLI
logs ("size: ...", "model: ...") it reads from the returned values and the events.

Under torchrun every process runs the same phases; rank 0 alone writes files, while the
others take part in every collective (rnngen/distributed.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import math
import socket
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnngen import metrics
from rnngen.arguments import checked
from rnngen.config import ModelConfig, TrainConfig, from_json, to_json, with_learning_rate
from rnngen.distributed import Group
from rnngen.errors import RnngenError
from rnngen.init_from import Base, open_base, run_tokenizer
from rnngen.run_files import RunFiles, output_path
from rnngen.threads import ThreadPlan, plan_threads
from rnngen.train_data import TrainingData, check_held_out, prepare_data
from rnngen.train_events import (
    Evaluation,
    Finished,
    LoggerStopped,
    Rollback,
    Samples,
    Saved,
    Step,
    Stopped,
    TrainResult,
)
from rnngen.train_loggers import RunLoggers, parse_specs
from rnngen.train_options import complete, configs
from rnngen.train_samples import check_sample_every, training_samples

# The corpus options of `train(...)`, with their defaults; the rest go to `configs`.
CORPUS_OPTIONS = {"kind": "bpe", "vocab_size": None, "valid": None, "test": None,
                  "valid_frac": None, "test_frac": None}  # fmt: skip


@dataclass(frozen=True, eq=False)
class Placement:
    device: torch.device  # cuda:LOCAL_RANK under torchrun
    precision: str
    group: Group
    threads: ThreadPlan | None = None  # CPU threads (rnngen/threads.py); None on a GPU


def connect(config: TrainConfig, group: Group | None = None,
            threads: ThreadPlan | None = None) -> Placement:  # fmt: skip
    """Pick the device and precision and the CPU threads (`threads`, by default the plan of
    no --threads); under torchrun, join the process group."""
    from rnngen.hardware import resolve_device, resolve_precision

    group = group or Group()
    device = group.connect(resolve_device(config.device))
    if device.type == "cpu":  # processes on one machine share its cores
        threads = threads or plan_threads(processes=group.local_world_size)
    else:
        threads = None
    return Placement(device, resolve_precision(config.precision, device), group, threads)


@dataclass(frozen=True, eq=False)
class ModelPlan:
    """The model to build, and the run's config once sizing has taken its time from it."""

    config: ModelConfig
    train_config: TrainConfig
    sizing: dict | None  # what automatic sizing measured and chose (every rank), if it ran
    choice: object | None  # rank 0's rnngen.sizing.Choice, whose summary() explains it
    saved: tuple | None  # the resume state (tensors, info), when continuing a run
    base: Base | None = None  # the checkpoint whose weights the model starts from
    init_from: dict | None = None  # the base's record (Base.record), kept when resuming
    threads: int | None = None  # the CPU thread count sizing found fastest, to start at

    @property
    def resumed(self) -> bool:
        return self.saved is not None


def plan_model(data: TrainingData, options: dict, config: TrainConfig, place: Placement,
               saved: tuple | None = None, base: Base | None = None) -> ModelPlan:  # fmt: skip
    """The saved run's model when resuming (it never measures again), the base's
    architecture with the options' regularization when fine-tuning, else the model the
    options describe, sized by measuring this machine when they give no size."""
    torch.manual_seed(config.seed)
    vocab_size = data.tokenizer.vocab_size
    if saved is not None:
        if saved[1].get("tokenizer_sha256") != data.tokenizer.sha256:
            raise RnngenError(
                "--resume: this fine-tuning run saved no model to take its tokenizer from; "
                "start it again with --init-from and --force"
                if "init_from" in saved[1]
                else "--resume: this corpus tokenizes differently from the saved run "
                "(give the same corpus and --kind/--vocab-size)"
            )
        model_config = from_json(ModelConfig, saved[1]["model_config"])
    if place.threads is not None:
        torch.set_num_threads(place.threads.threads)
    if saved is not None:
        config = with_learning_rate(config, model_config.hidden_size)
        return ModelPlan(model_config, config, None, None, saved,
                         init_from=saved[1].get("init_from"))  # fmt: skip
    if base is not None:
        model_config = base.model_config(options, data.tokenizer)
        config = with_learning_rate(config, model_config.hidden_size)
        return ModelPlan(model_config, config, None, None, None, base, base.record)
    options = {**options, **_output_layer(options, data)}
    if options["layers"] is not None or options["hidden_size"] is not None:
        model_config = ModelConfig(vocab_size=vocab_size, **complete(options))
        config = with_learning_rate(config, model_config.hidden_size)
        return ModelPlan(model_config, config, None, None, None)
    return _measure_and_choose(data, options, config, place)


def _output_layer(options: dict, data: TrainingData) -> dict:
    """--softmax resolved for this vocabulary, with cut-offs from the training text."""
    from rnngen.adaptive import output_layer

    full = complete(options)
    width = full["embed_size"] if full["tie"] else full["hidden_size"]
    return output_layer(options["softmax"], data.train_ids, data.tokenizer.vocab_size, width)


def _measure_and_choose(data, options, c: TrainConfig, place: Placement) -> ModelPlan:
    """rnngen/sizing.py's choice; rank 0 measures, every rank builds what it chose.

    With automatic threads each size is timed at all cores and at one fewer, and rated at
    the faster: on a machine where something else runs, the run itself will use fewer
    threads, and sizing for the collapsed all-core speed would choose far too small a model."""
    from rnngen.sizing import candidate_config, choose, measure_rates
    from rnngen.threads import choose as choose_threads
    from rnngen.threads import ladder
    from rnngen.trainer import steps_per_run

    group, vocab_size, tokens = place.group, data.tokenizer.vocab_size, len(data.train_ids)
    share = c.batch_size // group.world_size  # each rank's streams
    adaptive = place.threads is not None and place.threads.adaptive
    counts = ladder(place.threads.threads)[:2] if adaptive else ()
    by_size: dict[tuple[int, int], dict] = {}

    def rate_of(config: ModelConfig) -> float:
        rates = measure_rates(config, share, c.seq_len, place.device, place.precision, counts)
        best = choose_threads(counts[0], {n: [1 / r] for n, r in rates.items()}) if counts else 0
        by_size[config.layers, config.hidden_size] = {
            "threads": best, "rates": {n: round(r) for n, r in rates.items()},
            "contended": bool(counts) and best < counts[0],
        }  # fmt: skip
        return rates[best] * group.world_size

    steps = steps_per_run(tokens, c)
    fixed_tokens = steps * c.batch_size * c.seq_len if steps else None
    fixed = {k: v for k, v in options.items() if v is not None}
    choice = None
    if group.is_main:
        choice = choose(vocab_size, tokens, c.time_budget, fixed_tokens, rate_of,
                        c.batch_size * c.seq_len, fixed)  # fmt: skip
        if counts:
            choice = dataclasses.replace(choice, threads=by_size[choice.layers, choice.hidden_size])
    sizing = group.broadcast_json(choice.as_dict() if choice else None)
    if c.time_budget is not None:  # the probe's seconds count against the budget
        remaining = max(c.time_budget - sizing["probe_seconds"], 0.5 * c.time_budget)
        c = dataclasses.replace(c, time_budget=remaining)
    config = candidate_config(sizing["layers"], sizing["hidden_size"], vocab_size, **fixed)
    start = choice.threads["threads"] if choice is not None and choice.threads else None
    if start is None and place.threads is not None:
        torch.set_num_threads(place.threads.threads)  # measure_rates may have left another
    return ModelPlan(config, with_learning_rate(c, config.hidden_size), sizing, choice, None,
                     threads=start)  # fmt: skip


@dataclass(frozen=True, eq=False)
class TrainingModel:
    plan: ModelPlan
    model: torch.nn.Module  # rnngen.model.RNNLM
    trainer: object  # rnngen.train.Trainer; request_stop() ends the run at a step boundary
    place: Placement

    @property
    def parameters(self) -> int:
        from rnngen.model import count_parameters

        return count_parameters(self.model)


def build_model(data: TrainingData, plan: ModelPlan, place: Placement) -> TrainingModel:
    from rnngen.adaptive import frequency_order
    from rnngen.model import RNNLM
    from rnngen.trainer import Trainer

    torch.manual_seed(plan.train_config.seed)  # the probe drew from the generator
    with _memory(plan.config, place.device):
        model = RNNLM(plan.config)
        if model.adaptive is not None:  # frequent tokens first (a resumed run loads its own)
            model.adaptive.set_order(frequency_order(data.train_ids, plan.config.vocab_size))
        model = model.to(place.device)
        if plan.base is not None:  # fine-tuning: a fresh Trainer, the base's weights and order
            plan.base.copy_into(model)
        if place.group.enabled:  # same initial weights (above), but each rank its own dropout
            torch.manual_seed(plan.train_config.seed + place.group.rank)
        trainer = Trainer(model, data.train_ids, data.valid_ids, plan.train_config,
                          place.device, place.precision, plan.saved, place.group)  # fmt: skip
    if place.threads is not None and place.threads.adaptive:
        trainer.adapt_threads(place.threads.threads, plan.threads)
    return TrainingModel(plan, model, trainer, place)


@contextlib.contextmanager
def _memory(config: ModelConfig, device: torch.device):
    """An allocation the machine cannot make (options that describe a model far too large
    for it) is one RnngenError, not the allocator's RuntimeError. (A model that fits the
    allocator but not the memory can still meet the system's out-of-memory killer.)"""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        text = str(e).lower()
        if isinstance(e, RuntimeError) and not ("out of memory" in text or "allocate" in text):
            raise
        raise RnngenError(
            f"not enough memory on {device.type} for this model ({config.layers}x"
            f"{config.cell} {config.hidden_size}, embed {config.embed_size}, vocabulary "
            f"{config.vocab_size}); give a smaller --hidden, --embed, --layers or --batch-size"
        ) from None


def _guarded(events: Iterator[object], config: ModelConfig, device) -> Iterator[object]:
    """The Trainer's events, an allocation failure on the way as `_memory` says it."""
    with _memory(config, device):
        yield from events


def run(model: TrainingModel, data: TrainingData, files: RunFiles,
        loggers: RunLoggers | None = None, sample_every: int = 0) -> Iterator[object]:  # fmt: skip
    """The Trainer's events, with the files kept: metrics for every step and evaluation, the
    model after a best evaluation (then `Saved`), the resume state at every evaluation and at
    the end; last a `TrainResult`. Fails when no validation loss was ever finite.

    `loggers` (rnngen/train_loggers.py) receive every record metrics.jsonl does, and at the
    end the best model's embedding; one that fails is dropped (`LoggerStopped`). With
    `sample_every` N, every N-th evaluation is followed by `Samples` (rnngen/train_samples.py),
    which leave the run as it would have been without them."""
    trainer, group, plan = model.trainer, model.place.group, model.plan
    ranks = group.all_gather_json(_shard(model)) if group.enabled else None
    last_step, best, evaluations = None, {}, 0
    loggers = loggers if loggers is not None and group.is_main else RunLoggers()
    loggers.hyperparameters({
        "model": dataclasses.asdict(plan.config), "train": dataclasses.asdict(plan.train_config),
        "tokenizer": {"kind": data.tokenizer.kind, "vocab_size": data.tokenizer.vocab_size},
        "parameters": model.parameters, "device": str(model.place.device),
        "precision": model.place.precision, "train_tokens": len(data.train_ids),
    })  # fmt: skip
    with files.open_metrics() as metrics:

        def write(record: dict) -> None:
            metrics.write(json.dumps(record) + "\n")
            loggers.record(record)

        if ranks:
            write({"event": "distributed", "world_size": group.world_size,
                   "backend": group.backend, "ranks": ranks})  # fmt: skip
        for event in _guarded(trainer.run(), plan.config, model.place.device):
            if isinstance(event, Step):
                last_step = event
                write({"event": "step", **vars(event)})
            elif isinstance(event, Evaluation):
                record = {"event": "eval", **vars(event), **valid_figures(event, data)}
                write(record)
                metrics.flush()
                evaluations += 1
            elif isinstance(event, Rollback):  # plot marks where a run went back
                write({"event": "rollback", **vars(event)})
            yield event
            yield from (LoggerStopped(message) for message in loggers.take_warnings())
            if isinstance(event, Evaluation):
                if event.is_best:
                    best = record
                    metadata = {
                        "train_config": to_json(plan.train_config), "metrics": record,
                        "provenance": data.provenance, "precision": model.place.precision,
                        **({"sizing": plan.sizing} if plan.sizing else {}),
                        **({"init_from": plan.init_from} if plan.init_from else {}),
                    }  # fmt: skip
                    files.save_model(trainer.eval_model, data.tokenizer, metadata)
                    yield Saved(event.step, str(files.output))
                _save_state(model, data, files)
                if sample_every and evaluations % sample_every == 0 and group.is_main:
                    samples = training_samples(trainer.eval_model, data.tokenizer,
                                               plan.train_config.seed, event.step)  # fmt: skip
                    write(samples)
                    metrics.flush()
                    yield Samples(event.step, samples["samples"], samples["seconds"])
            elif isinstance(event, Stopped | Finished):
                _save_state(model, data, files)
                if isinstance(event, Finished) and not math.isfinite(event.best_loss):
                    raise RnngenError(
                        f"no checkpoint written: the validation loss was never finite "
                        f"({event.step} steps); try a smaller --lr, or more validation text"
                    )
                if loggers and files.output.exists():  # the best model's word vectors
                    loggers.embedding_of(files.output, data.tokenizer, trainer.step)
                    yield from (LoggerStopped(m) for m in loggers.take_warnings())
                yield TrainResult(
                    str(files.output), trainer.step, trainer.elapsed, trainer.best_loss,
                    best.get("valid_bpc"), trainer.clipped_steps / max(trainer.step, 1),
                    last_step.tokens_per_second if last_step else None, plan.sizing,
                    interrupted=isinstance(event, Stopped),
                )  # fmt: skip
                return


def valid_figures(evaluation: Evaluation, data: TrainingData) -> dict:
    return {
        "valid_ppl": metrics.perplexity(evaluation.valid_loss),
        "valid_bpc": metrics.bits(evaluation.valid_loss, data.chars_per_token),
    }


def _save_state(model: TrainingModel, data: TrainingData, files: RunFiles) -> None:
    tensors, info = model.trainer.resume_state()  # a collective: every rank calls it
    info.update(
        model_config=to_json(model.plan.config),
        train_config=to_json(model.plan.train_config),
        tokenizer_sha256=data.tokenizer.sha256,
    )
    if model.plan.init_from:  # so that --resume of a fine-tuning run still records its base
        info["init_from"] = model.plan.init_from
    files.save_state(tensors, info)


def _shard(model: TrainingModel) -> dict:
    """What this rank trains on, for the metrics file: its share of the streams and a hash
    of their first window, so a reader can check that the shares are disjoint."""
    trainer = model.trainer
    head = trainer.streams[:, : model.plan.train_config.seq_len + 1]
    return {
        "rank": model.place.group.rank,
        "host": socket.gethostname(),
        "device": str(model.place.device),
        "streams": list(trainer.stream_range),
        "head_sha256": hashlib.sha256(np.ascontiguousarray(head).tobytes()).hexdigest(),
    }


# The annotations of `train`'s options, which `rnngen.arguments.checked` checks them against.
TRAIN_OPTIONS = {
    **{name: p.annotation for name, p in inspect.signature(configs).parameters.items()},
    "kind": "str", "vocab_size": "int | None", "valid": "str | Path | None",
    "test": "str | Path | None", "valid_frac": "float | None", "test_frac": "float | None",
}  # fmt: skip


@checked(options=TRAIN_OPTIONS, rename={"-o": "output"})
def train(corpus: str | Path, *, time_budget: str | float | None = None,
          output: str | Path | None = None, on_event: Callable | None = None,
          resume: bool = False, force: bool = False, init_from: str | Path | None = None,
          threads: int | str | None = None, log: Iterable[str] = (), sample_every: int = 0,
          **options) -> TrainResult:  # fmt: skip
    """Train a model on `corpus` as `rnngen train` does, and return what it achieved.

    `time_budget` is seconds or a duration ("3m", "1h30m"); `output` defaults to
    checkpoints/CORPUS-NAME.safetensors. `init_from` (a checkpoint's path) fine-tunes that
    model as `--init-from` does: its tokenizer and architecture, a fresh optimizer; options
    given that contradict it are errors. `threads` is --threads: a number fixes torch's CPU
    threads; None adapts them to the machine's load unless OMP_NUM_THREADS fixes them, and
    "auto" adapts them whatever it says. `log` lists loggers as `--log` takes them
    ("tensorboard", "tensorboard:DIR", "wandb", "wandb:PROJECT"); `sample_every` N samples
    at every N-th evaluation as `--sample-every` does (0: never). `options` are the CLI's
    options with underscores
    (kind, vocab_size, valid, test, valid_frac, test_frac, size, cell, layers, hidden, embed,
    dropout, ..., max_steps, epochs, seed, device, precision). `on_event` receives each event
    of the run (rnngen.train_events): Step, Evaluation, Saved, Samples, Rollback,
    ThreadsChanged, LoggerStopped, Stopped, Finished, and last the TrainResult returned.
    Signals are left to the caller: Ctrl-C raises KeyboardInterrupt, and the files on disk
    stay whole (every write is atomic).
    """
    given = {k: v for k, v in options.items() if v is not None}  # before defaults fill in
    corpus_options = {k: options.pop(k, v) for k, v in CORPUS_OPTIONS.items()}
    check_held_out(*(corpus_options[k] for k in ("valid", "test", "valid_frac", "test_frac")))
    config, model_options = configs(time_budget=time_budget, **options)
    corpus = str(corpus)
    base = open_base(init_from, given, resume=resume, output=output_path(corpus, output),
                     force=force)  # fmt: skip
    group = Group.from_env()  # a single process unless torchrun started this one
    group.stream_range(config.batch_size)  # an uneven split fails before any work
    thread_plan = plan_threads(threads, processes=group.local_world_size)
    check_sample_every(sample_every)
    parse_specs(log)
    inputs = (corpus_options["valid"], corpus_options["test"])
    result, loggers = None, RunLoggers()
    try:
        with RunFiles.claim(output, corpus, resume=resume, force=force, inputs=inputs,
                            main=group.is_main) as files:  # fmt: skip
            if group.is_main:  # a logger that cannot start stops the run here, before work
                loggers = RunLoggers.open(log, files.output.stem)
            place = connect(config, group, thread_plan)
            data = prepare_data(corpus, **corpus_options, group=group,
                                spool_dir=files.output.parent,
                                tokenizer=run_tokenizer(base, files, group))  # fmt: skip
            plan = plan_model(data, model_options, config, place, files.resume_state(group),
                              base)  # fmt: skip
            events = run(build_model(data, plan, place), data, files, loggers, sample_every)
            with contextlib.closing(events):
                for event in events:
                    if on_event is not None:
                        on_event(event)
                    result = event
    finally:
        loggers.close(0 if isinstance(result, TrainResult) else 1)
        group.close()
    return result
