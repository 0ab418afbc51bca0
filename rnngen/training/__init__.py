"""A training run: its phases (data, size, build, the loop) and the files it keeps.

The loop never saves a checkpoint: it yields events, and run.py keeps the files.

    run.py          train(): the run's phases, each reported through on_event
    data.py         the run's data phase: the corpus resolved, split and tokenized
    sizing.py       the model size a time budget affords (measured throughput)
    options.py      what a user gives a run: defaults, presets, durations
    finetune.py     --init-from: a new run started from a checkpoint's weights
    loop.py         Trainer: truncated BPTT over contiguous streams, evaluation
    schedule.py     the run's length, progress, learning rate, evaluations, windows
    events.py       what the loop yields (Step, Evaluation, Rollback, ..., TrainResult)
    resume.py       the Trainer's resume state: optimizer tensors, checks, save and load
    rollback.py     the Trainer's last good state, and the return to it when a step blows up
    resume_file.py  the resume file (NAME.state.safetensors): saved, loaded, its info checked
    files.py        the files of one run (checkpoint, resume state, metrics) and their lock
    loggers.py      the run sent to TensorBoard or Weights & Biases
    samples.py      what the model writes while it learns (--sample-every)
    distributed.py  data-parallel training under torchrun
"""

from rnngen.faces import lazy_names

# name -> the module of this package that defines it, imported on first use (rnngen.faces).
_FACE = {
    "train": "run",
    "Trainer": "loop",
    "TrainResult": "events",
    "Step": "events",
    "Evaluation": "events",
    "Rollback": "events",
    "Stopped": "events",
    "Finished": "events",
    "Saved": "events",
    "configs": "options",
    "RunFiles": "files",
    "prepare_data": "data",
    "Group": "distributed",
}
__all__ = sorted(_FACE)

__getattr__ = lazy_names(__name__, _FACE)
