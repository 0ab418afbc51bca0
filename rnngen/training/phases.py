"""A training run's phases before the loop, each returning a value the next one takes:

    place = connect(config, group)           # device, precision, CPU threads; torchrun's group
    plan = plan_model(data, options, config, place, saved, base)   # the size, measured or given
    model = build_model(data, plan, place)   # the network and its Trainer

rnngen/training.py's `train` calls them between claiming the run's files and the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from rnngen.config import ModelConfig, TrainConfig, from_json, with_learning_rate
from rnngen.errors import RnngenError
from rnngen.threads import ThreadPlan, plan_threads
from rnngen.training.data import TrainingData
from rnngen.training.distributed import Group
from rnngen.training.finetune import Base
from rnngen.training.options import complete


@dataclass(frozen=True, eq=False)
class Placement:
    device: torch.device  # cuda:LOCAL_RANK under torchrun
    precision: str
    group: Group
    threads: ThreadPlan | None = None  # CPU threads (rnngen/threads/); None on a GPU


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
    choice: object | None  # rank 0's rnngen.training.sizing.Choice, whose summary() explains it
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
    from rnngen.threads import choose as choose_threads
    from rnngen.threads import ladder
    from rnngen.training.schedule import steps_per_run
    from rnngen.training.sizing import candidate_config, choose, measure_rates

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
    from rnngen.model import create_model
    from rnngen.training.loop import Trainer

    torch.manual_seed(plan.train_config.seed)  # the probe drew from the generator
    with _memory(plan.config, place.device):
        model = create_model(plan.config)
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
