"""A training run: `train` (what `rnngen train` and `rnngen.train(...)` both run), its phases
in order and the files it keeps, every phase reported through `on_event`.

    base = open_base(init_from, ...)         # init_from.py: the checkpoint to fine-tune, or None
    files = RunFiles.claim(...)              # run_files.py: -o checked and locked
    place = connect(config, group)           # train_phases.py: device, precision; torchrun
    data = prepare_data(corpus, ..., group)  # train_data.py: ids, tokenizer, provenance
    plan = plan_model(data, options, config, place, files.resume_state(group), base)
    model = build_model(data, plan, place)   # the network and its Trainer
    for event in run(model, data, files): ...  # saves on `best`, the state at evaluations

Nothing here prints: the CLI draws the events (rnngen/train_events.py) on the terminal.
Under torchrun every process runs the same phases; rank 0 alone writes files, while the
others take part in every collective (rnngen/distributed.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import socket
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from rnngen import metrics
from rnngen.arguments import checked
from rnngen.config import to_json
from rnngen.errors import RnngenError
from rnngen.run_paths import output_path
from rnngen.threads import plan_threads
from rnngen.training.data import TrainingData, prepare_data
from rnngen.training.distributed import Group
from rnngen.training.events import (
    Evaluation,
    Finished,
    LoggerStopped,
    ModelBuilt,
    Placed,
    Rollback,
    Samples,
    Saved,
    SizeChosen,
    Step,
    Stopped,
    TokenizeProgress,
    TrainResult,
)
from rnngen.training.files import RunFiles
from rnngen.training.finetune import open_base, run_tokenizer
from rnngen.training.loggers import RunLoggers
from rnngen.training.options import TRAIN_OPTIONS, check_run
from rnngen.training.phases import (  # noqa: F401 (the phases, also reached from here)
    ModelPlan,
    Placement,
    TrainingModel,
    _guarded,
    _measure_and_choose,
    build_model,
    connect,
    plan_model,
)
from rnngen.training.samples import training_samples


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


@checked(options=TRAIN_OPTIONS, rename={"-o": "output"})
def train(corpus: str | Path, *, time_budget: str | float | None = None,
          output: str | Path | None = None, on_event: Callable | None = None, stop=None,
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
    dropout, ..., max_steps, epochs, seed, device, precision); those given are the ones
    `init_from` checks against its base. `on_event` receives each event of the run
    (rnngen.training.events): Placed, TokenizeProgress, SizeChosen, ModelBuilt, then Step,
    Evaluation, Saved, Samples, Rollback, ThreadsChanged, LoggerStopped, Stopped, Finished,
    and last the TrainResult returned. `stop` is anything with is_set() (a threading.Event,
    set from a signal handler or another thread): once set, the run stops at the next step
    boundary, saves its state and returns an interrupted TrainResult; its `exit_code`, if it
    has one, is what --log's runs finish with (else 130). Signals are left to the caller:
    Ctrl-C raises KeyboardInterrupt, and the files on disk stay whole (every write is atomic).
    """
    config, model_options, corpus_options, given = check_run(time_budget, options, log,
                                                             sample_every)  # fmt: skip
    corpus = str(corpus)
    base = open_base(init_from, given, resume=resume, output=output_path(corpus, output),
                     force=force)  # fmt: skip
    group = Group.from_env()  # a single process unless torchrun started this one
    group.stream_range(config.batch_size)  # an uneven split fails before any work
    thread_plan = plan_threads(threads, processes=group.local_world_size)
    emit = on_event or (lambda event: None)
    inputs = (corpus_options["valid"], corpus_options["test"])
    files, result, loggers = None, None, RunLoggers()
    try:
        files = RunFiles.claim(output, corpus, resume=resume, force=force, inputs=inputs,
                               main=group.is_main)  # fmt: skip
        if group.is_main:  # a logger that cannot start stops the run here, before work
            loggers = RunLoggers.open(log, files.output.stem)
        place = connect(config, group, thread_plan)
        emit(_placed(place))
        data = prepare_data(corpus, **corpus_options, group=group,
                            spool_dir=files.output.parent,
                            progress=lambda: _tokenize_progress(emit),
                            tokenizer=run_tokenizer(base, files, group))  # fmt: skip
        plan = plan_model(data, model_options, config, place, files.resume_state(group), base)
        if plan.choice is not None:
            emit(SizeChosen(plan.choice.summary(), plan.sizing))
        model = build_model(data, plan, place)
        model.trainer.stop_signal = stop
        emit(_built(model, data))
        events = run(model, data, files, loggers, sample_every)
        with contextlib.closing(events):  # its metrics file closes before the lock goes
            for event in events:
                emit(event)
                result = event
    finally:
        code = 1
        if isinstance(result, TrainResult):
            code = getattr(stop, "exit_code", 130) if result.interrupted else 0
        loggers.close(code)
        if files is not None:
            files.release()
        group.close()
    return result


def _placed(place: Placement) -> Placed:
    group = place.group
    threads = place.threads.describe() if place.threads is not None else None
    return Placed(str(place.device), place.precision, threads, group.rank, group.world_size,
                  group.enabled)  # fmt: skip


@contextlib.contextmanager
def _tokenize_progress(emit: Callable) -> Iterator[Callable[[int, int], None]]:
    """prepare_data's progress: the bytes tokenized, as TokenizeProgress events."""
    last = [0, None]

    def progress(done: int, total: int) -> None:
        last[:] = done, total
        emit(TokenizeProgress(done, total))

    emit(TokenizeProgress(0, None))
    try:
        yield progress
    finally:
        emit(TokenizeProgress(last[0], last[1], finished=True))


def _built(model: TrainingModel, data: TrainingData) -> ModelBuilt:
    from rnngen.adaptive import describe

    config, plan, place, tokenizer = model.plan.config, model.plan, model.place, data.tokenizer
    return ModelBuilt(
        config.layers, config.cell, config.hidden_size, model.parameters,
        tokenizer.vocab_size, tokenizer.kind, len(data.train_ids), data.chars_per_token,
        place.device.type, place.precision, model.trainer.step if plan.resumed else None,
        str(plan.base.path) if plan.base is not None else None,
        describe(config) if config.softmax == "adaptive" else None,
        plan.train_config.batch_size, place.group.world_size,
        place.group.backend if place.group.enabled else None, config.model, config.window,
        config.skip,
    )  # fmt: skip
