"""The file-and-terminal side of one `rnngen train` run.

The library's Trainer yields events; this turns them into progress on stderr, lines in
NAME.metrics.jsonl, and checkpoints: the model whenever validation improves, the resume
state at every evaluation and at a stop.

Under torchrun every process runs this same code; rank 0 alone checks and writes the output,
prints, and writes metrics, while the others stay silent but take part in every collective
(the resume state gathers each rank's RNG and hidden state into rank 0's one resume file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import socket
import time
from pathlib import Path

import numpy as np
import torch

from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.cli.output import print_json
from rnngen.cli.train import format_eval
from rnngen.config import ModelConfig, TrainConfig, from_json, to_json
from rnngen.distributed import Group
from rnngen.errors import RnngenError


def usable_cores() -> int:
    """The cores this process may run on (taskset, cgroups' cpusets), not all the machine's:
    more threads than cores makes every step slower."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # macOS has no affinity call
        return os.cpu_count() or 1


class SilentReporter(Reporter):
    """What ranks other than 0 report: nothing, not even warnings (rank 0 gives them)."""

    def __init__(self):
        super().__init__(quiet=True)

    def warn(self, message: str) -> None:
        pass


class TrainingRun:
    def __init__(
        self,
        reporter: Reporter,
        config: TrainConfig,
        model_options: dict,
        json_out: bool,
        group: Group | None = None,
    ):
        self.group = group or Group()
        self.reporter = reporter if self.group.is_main else SilentReporter()
        self.config, self.model_options = config, model_options
        self.json_output = json_out and self.group.is_main
        self.lock = self.metrics_tmp = None  # held while the run owns its output
        self.sizing: dict | None = None  # what automatic sizing measured and chose, if it ran

    # -- set-up -----------------------------------------------------------------------------

    def prepare_output(
        self, output: Path | None, corpus: str, resume: bool, force: bool, inputs=()
    ) -> None:
        """Check -o and lock it for this run (rank 0); `inputs` are the run's other files."""
        from rnngen.atomic import describe
        from rnngen.checkpoint import metrics_path

        name = "stdin" if corpus == "-" else Path(corpus.rstrip("/")).stem or "corpus"
        if output is not None and Path(output).name in ("", ".", ".."):
            raise RnngenError(f"-o {str(output)!r} is not a file name")
        self.output = Path(output or Path("checkpoints") / f"{name}.safetensors")
        if self.output.suffix != ".safetensors":
            self.output = self.output.with_name(self.output.name + ".safetensors")
        self.metrics_file = metrics_path(self.output)
        self.resume = resume
        if not self.group.is_main:  # only rank 0 reads or writes the output
            return
        try:
            self._claim_output(corpus, resume, force, [corpus, *inputs])
        except OSError as e:
            self.release()
            raise RnngenError(f"cannot use -o {str(self.output)!r}: {describe(e)}") from None
        except BaseException:
            self.release()
            raise

    def _claim_output(self, corpus: str, resume: bool, force: bool, inputs: list) -> None:
        from rnngen.atomic import remove_stale_temporaries
        from rnngen.checkpoint import FORMAT, STATE_FORMAT, file_format, lock_output, state_path

        out, state = self.output, state_path(self.output)
        longest = len(f".{state.name}.4294967296.01234567.tmp".encode())
        if longest > 255:
            raise RnngenError(f"-o {str(out)!r}: the file name is too long ({longest} bytes "
                              "with the suffixes rnngen adds; at most 255)")  # fmt: skip
        if out.is_dir():
            raise RnngenError(f"-o {str(out)!r} is a directory; give a file name")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise RnngenError(
                f"cannot write to {str(out.parent)!r}: a file is in the way of that directory"
            ) from None
        except OSError as e:
            raise RnngenError(f"cannot write to {str(out.parent)!r}: {e.strerror}") from None
        self.lock = lock_output(out)  # a second run on this output stops here
        remove_stale_temporaries(out.parent)  # what killed runs left behind
        for path in (out, state, self.metrics_file):
            for given in inputs:
                if given in (None, "-") or not (path.exists() and Path(given).exists()):
                    continue
                if os.path.samefile(given, path):
                    raise RnngenError(
                        f"-o {str(out)!r} would overwrite {str(given)!r}, an input of this "
                        "run; give another -o"
                    )
        if resume:
            if not state.exists():
                raise RnngenError(f"nothing to resume: {str(state)!r} does not exist")
            return
        existing = [p for p in (out, state) if p.exists()]
        if existing and not force:
            raise RnngenError(
                f"{str(existing[0])!r} exists; use --resume to continue it, --force to replace "
                "it, or -o another path"
            )
        for path, kind in ((out, FORMAT), (state, STATE_FORMAT)):
            if path in existing and file_format(path) != kind:
                raise RnngenError(
                    f"--force replaces only rnngen files, and {str(path)!r} is not one "
                    f"({'a model' if kind == FORMAT else 'a resume file'} was expected); "
                    "move it away or give another -o"
                )

    def release(self) -> None:
        """Unlock the output; drop a metrics file this run never moved into place."""
        if self.metrics_tmp is not None:
            self.metrics_tmp.unlink(missing_ok=True)
            self.metrics_tmp = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def connect(self) -> None:
        """Pick the device and precision; under torchrun, join the process group."""
        from rnngen.hardware import resolve_device, resolve_precision

        device = resolve_device(self.config.device)
        self.device = self.group.connect(device)  # cuda:LOCAL_RANK under torchrun
        self.precision = resolve_precision(self.config.precision, self.device)

    def load_data(self, corpus, valid, test, valid_frac, test_frac, kind, vocab_size) -> None:
        from rnngen.data import cached_tokenize, is_tokenized_dir, load_tokenized
        from rnngen.textio import spool_stdin

        if corpus == "-" and self.group.enabled:
            raise RnngenError("under torchrun give CORPUS as a file: every process reads it")
        tokenized = corpus != "-" and is_tokenized_dir(Path(corpus))
        if tokenized:
            options = {"--valid": valid, "--test": test, "--valid-frac": valid_frac,
                       "--test-frac": test_frac}  # fmt: skip
            given = [name for name, value in options.items() if value is not None]
            if given:
                raise RnngenError(
                    f"{'/'.join(given)} cannot apply to {corpus!r}: a tokenized directory keeps "
                    "the splits rnngen tokenize made; re-run tokenize with them, or train on text"
                )
            self.data = load_tokenized(Path(corpus))
            self.source = {"tokenized": str(Path(corpus).resolve())}
        else:
            source = None
            try:
                source = spool_stdin(self.output.parent) if corpus == "-" else Path(corpus)
                spans = args.resolve_spans(source, valid, test, valid_frac, test_frac)

                def tokenize():
                    with self.reporter.bytes_progress("tokenize") as progress:
                        config = args.tokenizer_config(kind, vocab_size)
                        return cached_tokenize(spans, config, progress)

                self.data = self.group.in_turns(tokenize)  # rank 0 fills the cache first
            finally:
                if corpus == "-" and source is not None:
                    source.unlink(missing_ok=True)
            self.source = {"corpus": "-" if corpus == "-" else str(Path(corpus).resolve())}
        splits = self.data.meta["splits"]
        if "valid" not in splits:
            raise RnngenError(
                f"the tokenized directory {corpus!r} has no validation split; re-run rnngen "
                "tokenize with --valid FILE or --valid-frac above 0"
                if tokenized
                else "the corpus has no validation split; give --valid FILE"
            )
        self.train_ids = np.asarray(self.data.ids("train"))
        fingerprint = f"tokenizer {self.data.tokenizer.sha256[:16]}, {len(self.train_ids)} tokens"
        self.group.check_same("the training data", fingerprint)
        self.valid_ids = np.asarray(self.data.ids("valid"))
        valid_info = splits["valid"]
        self.chars_per_token = valid_info["chars"] / max(valid_info["tokens"], 1)

    def build(self, resume: bool) -> None:
        from rnngen.checkpoint import load_state
        from rnngen.model import RNNLM, count_parameters
        from rnngen.train import Trainer

        torch.manual_seed(self.config.seed)
        tokenizer = self.data.tokenizer
        state = None
        if resume:  # rank 0 reads the file; the others receive it
            state = self.group.broadcast_state(
                load_state(self.output) if self.group.is_main else None
            )
            info = state[1]
            if info.get("tokenizer_sha256") != tokenizer.sha256:
                raise RnngenError(
                    "--resume: this corpus tokenizes differently from the saved run "
                    "(give the same corpus and --kind/--vocab-size)"
                )
            model_config = from_json(ModelConfig, info["model_config"])
        if self.device.type == "cpu":  # processes on one machine share its cores
            cores = usable_cores() // self.group.local_world_size
            torch.set_num_threads(max(1, cores))
        if not resume:  # a resumed run keeps its model: it never measures again
            model_config = self._choose_model(tokenizer.vocab_size)
            torch.manual_seed(self.config.seed)  # the probe drew from the generator
        self.model = RNNLM(model_config).to(self.device)
        if self.group.enabled:  # same initial weights (above), but each rank its own dropout
            torch.manual_seed(self.config.seed + self.group.rank)
        self.trainer = Trainer(
            self.model, self.train_ids, self.valid_ids, self.config, self.device,
            self.precision, state, self.group,
        )  # fmt: skip
        self.reporter.log(
            f"model: {model_config.layers}x{model_config.cell} {model_config.hidden_size}, "
            f"{count_parameters(self.model) / 1e6:.2f}M parameters, vocab {tokenizer.vocab_size} "
            f"({tokenizer.kind}); {len(self.train_ids):,} training tokens; "
            f"{self.device.type} {self.precision}"
            + (f"; resuming at step {self.trainer.step}" if resume else "")
        )
        if self.group.enabled:
            share = self.config.batch_size // self.group.world_size
            self.reporter.log(
                f"distributed: {self.group.world_size} processes ({self.group.backend}), "
                f"{share} of the {self.config.batch_size} streams each"
            )

    def _choose_model(self, vocab_size: int) -> ModelConfig:
        """The model the options describe, with its size measured and chosen when the user
        gave none (rnngen/sizing.py). Rank 0 measures; every rank builds what it chose."""
        from rnngen.cli.train import complete
        from rnngen.sizing import candidate_config, choose, measure_rate
        from rnngen.train import steps_per_run

        options = self.model_options
        if options["layers"] is not None or options["hidden_size"] is not None:
            return ModelConfig(vocab_size=vocab_size, **complete(options))
        c = self.config
        share = c.batch_size // self.group.world_size  # each rank's streams

        def rate_of(config: ModelConfig) -> float:
            rate = measure_rate(config, share, c.seq_len, self.device, self.precision)
            return rate * self.group.world_size

        steps = steps_per_run(len(self.train_ids), c)
        fixed_tokens = steps * c.batch_size * c.seq_len if steps else None
        choice = None
        if self.group.is_main:
            fixed = {k: v for k, v in options.items() if v is not None}
            choice = choose(
                vocab_size, len(self.train_ids), c.time_budget, fixed_tokens, rate_of,
                c.batch_size * c.seq_len, fixed,
            )  # fmt: skip
            self.reporter.log(choice.summary())
        self.sizing = self.group.broadcast_json(choice.as_dict() if choice else None)
        if c.time_budget is not None:  # the probe's seconds count against the budget
            remaining = max(c.time_budget - self.sizing["probe_seconds"], 0.5 * c.time_budget)
            self.config = dataclasses.replace(c, time_budget=remaining)
        chosen = {"layers": self.sizing["layers"], "hidden_size": self.sizing["hidden_size"]}
        fixed = {k: v for k, v in options.items() if v is not None}
        return candidate_config(chosen["layers"], chosen["hidden_size"], vocab_size, **fixed)

    # -- the run ----------------------------------------------------------------------------

    def train(self) -> int:
        from rnngen.train import Evaluation, Finished, Rollback, Step, Stopped

        self.last_step: Step | None = None
        self.best: dict | None = None
        self._last_plain = time.monotonic()
        ranks = self.group.all_gather_json(self._shard()) if self.group.enabled else None
        with (
            self._open_metrics() as metrics,
            self.reporter.steps_progress("train", 1.0) as progress,
        ):
            self.metrics = metrics
            if ranks:
                record = {"event": "distributed", "world_size": self.group.world_size,
                          "backend": self.group.backend, "ranks": ranks}  # fmt: skip
                metrics.write(json.dumps(record) + "\n")
            for event in self.trainer.run():
                if isinstance(event, Step):
                    self.last_step = event
                    metrics.write(json.dumps({"event": "step", **vars(event)}) + "\n")
                    progress(event.progress, self._describe(event))
                    self._plain_progress(event)
                elif isinstance(event, Evaluation):
                    record = {"event": "eval", **vars(event), **self._valid_figures(event)}
                    metrics.write(json.dumps(record) + "\n")
                    metrics.flush()
                    self.reporter.log(format_eval(event, self.chars_per_token))
                    if event.is_best:
                        self.best = record
                        self._save_model(record)
                    self._save_state()
                elif isinstance(event, Rollback):
                    self.reporter.warn(
                        f"step {event.step}: {event.reason}; rolled back to the last good state, "
                        f"learning rate now x{event.lr_scale:g}"
                    )
                elif isinstance(event, Stopped):
                    self._save_state()
                    launcher = "torchrun ... -m rnngen" if self.group.enabled else "rnngen"
                    self.reporter.log(
                        f"interrupted at step {event.step}; state saved. Continue with: "
                        f"{launcher} train ... -o {self.output} --resume"
                    )
                    return 130
                elif isinstance(event, Finished):
                    self._save_state()
                    self._finish(event)
        return 0

    def _open_metrics(self) -> MetricsLog:
        """A resumed run appends to NAME.metrics.jsonl. A new run writes a hidden temporary
        file that replaces it at the run's first save (`_published`), so the history of a
        checkpoint that --force has yet to replace survives a run that dies before then."""
        from rnngen.atomic import temporary_name

        if not self.group.is_main:
            return MetricsLog(Path(os.devnull), "a")
        if self.resume:
            return MetricsLog(self.metrics_file, "a")
        self.metrics_tmp = temporary_name(self.metrics_file)
        return MetricsLog(self.metrics_tmp, "x", shown=self.metrics_file)

    def _published(self) -> None:
        """After the run's first save, its metrics take the place of the old ones."""
        from rnngen.atomic import describe

        if self.metrics_tmp is None:
            return
        self.metrics.flush()
        try:
            os.replace(self.metrics_tmp, self.metrics_file)
        except OSError as e:
            raise RnngenError(f"cannot write {str(self.metrics_file)!r}: {describe(e)}") from None
        self.metrics_tmp = None

    def _shard(self) -> dict:
        """What this rank trains on, for the metrics file: its share of the streams and a
        hash of their first window, so a reader can check that the shares are disjoint."""
        head = self.trainer.streams[:, : self.config.seq_len + 1]
        return {
            "rank": self.group.rank,
            "host": socket.gethostname(),
            "device": str(self.device),
            "streams": list(self.trainer.stream_range),
            "head_sha256": hashlib.sha256(np.ascontiguousarray(head).tobytes()).hexdigest(),
        }

    def _describe(self, step) -> str:
        return (
            f"loss {step.loss:.3f} ppl {math.exp(min(step.loss, 50)):.1f} "
            f"{step.tokens_per_second / 1e3:.1f}k tok/s |g| {step.grad_norm:.2f} "
            f"lr {step.lr:.2e}"
        )

    def _plain_progress(self, step) -> None:
        if self.reporter.interactive or self.reporter.quiet:
            return
        now = time.monotonic()
        if now - self._last_plain >= self.reporter.plain_every:
            self._last_plain = now
            self.reporter.log(f"step {step.step} ({step.progress:.0%}): {self._describe(step)}")

    def _valid_figures(self, evaluation) -> dict:
        return {
            "valid_ppl": math.exp(min(evaluation.valid_loss, 700)),
            "valid_bpc": evaluation.valid_loss / (math.log(2) * self.chars_per_token),
        }

    def _provenance(self) -> dict:
        return {**self.source, "tokenized_meta": self.data.meta}

    def _save_model(self, record: dict) -> None:
        from rnngen.checkpoint import save_model

        if not self.group.is_main:
            return
        metadata = {
            "train_config": to_json(self.config),
            "metrics": record,
            "provenance": self._provenance(),
            "precision": self.precision,
            **({"sizing": self.sizing} if self.sizing else {}),
        }
        save_model(self.output, self.model, self.data.tokenizer, metadata)
        self._published()

    def _save_state(self) -> None:
        from rnngen.checkpoint import save_state

        tensors, info = self.trainer.resume_state()  # a collective: every rank calls it
        if not self.group.is_main:
            return
        info.update(
            model_config=to_json(self.model.config),
            train_config=to_json(self.config),
            tokenizer_sha256=self.data.tokenizer.sha256,
        )
        save_state(self.output, tensors, info)
        self._published()

    def _finish(self, event) -> None:
        if not math.isfinite(event.best_loss):
            raise RnngenError(
                f"no checkpoint written: the validation loss was never finite ({event.step} "
                "steps); try a smaller --lr, or more validation text"
            )
        best = self.best or {}
        summary = {
            "checkpoint": str(self.output),
            "steps": event.step,
            "train_seconds": round(event.elapsed, 2),
            "best_valid_loss": event.best_loss,
            "best_valid_bpc": best.get("valid_bpc"),
            "clipped_share": event.clipped_share,
            "tokens_per_second": self.last_step.tokens_per_second if self.last_step else None,
        }
        self.reporter.log(
            f"done: {event.step} steps in {event.elapsed:.0f}s; best valid loss "
            f"{event.best_loss:.4f} (bpc {best.get('valid_bpc', float('nan')):.4f}); "
            f"{event.clipped_share:.0%} of steps clipped; saved {self.output}"
        )
        if self.json_output:
            print_json(summary)


class MetricsLog:
    """NAME.metrics.jsonl, one JSON object a line; a failed write is one line naming it."""

    def __init__(self, path: Path, mode: str, shown: Path | None = None):
        from rnngen.atomic import describe

        self.shown = shown or path
        try:
            self.file = open(path, mode, encoding="utf-8")  # noqa: SIM115 (closed in __exit__)
        except OSError as e:
            raise RnngenError(f"cannot write {str(self.shown)!r}: {describe(e)}") from None

    def write(self, text: str) -> None:
        self._guard(self.file.write, text)

    def flush(self) -> None:
        self._guard(self.file.flush)

    def _guard(self, action, *args) -> None:
        from rnngen.atomic import describe

        try:
            action(*args)
        except OSError as e:
            raise RnngenError(f"cannot write {str(self.shown)!r}: {describe(e)}") from None

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.file.close()
        except OSError:
            if exc[0] is None:
                raise RnngenError(f"cannot write {str(self.shown)!r}") from None
