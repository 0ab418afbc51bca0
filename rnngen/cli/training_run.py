"""The file-and-terminal side of one `rnngen train` run.

The library's Trainer yields events; this turns them into progress on stderr, lines in
NAME.metrics.jsonl, and checkpoints: the model whenever validation improves, the resume
state at every evaluation and at a stop.

Under torchrun every process runs this same code; rank 0 alone checks and writes the output,
prints, and writes metrics, while the others stay silent but take part in every collective
(the resume state gathers each rank's RNG and hidden state into rank 0's one resume file).
"""

from __future__ import annotations

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

    # -- set-up -----------------------------------------------------------------------------

    def prepare_output(self, output: Path | None, corpus: str, resume: bool, force: bool) -> None:
        from rnngen.checkpoint import metrics_path, state_path

        name = "stdin" if corpus == "-" else Path(corpus.rstrip("/")).stem or "corpus"
        self.output = Path(output or Path("checkpoints") / f"{name}.safetensors")
        if self.output.suffix != ".safetensors":
            self.output = self.output.with_name(self.output.name + ".safetensors")
        self.metrics_file = metrics_path(self.output)
        self.resume = resume
        if not self.group.is_main:  # only rank 0 reads or writes the output
            return
        if self.output.is_dir():
            raise RnngenError(f"-o {str(self.output)!r} is a directory; give a file name")
        if resume and not state_path(self.output).exists():
            raise RnngenError(f"nothing to resume: {str(state_path(self.output))!r} does not exist")
        if not resume and not force and self.output.exists():
            raise RnngenError(
                f"{str(self.output)!r} exists; use --resume to continue it, --force to replace "
                "it, or -o another path"
            )
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            probe = self.output.parent / f".{self.output.name}.probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise RnngenError(
                f"cannot write to {str(self.output.parent)!r}: {e.strerror}"
            ) from None

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
        if corpus != "-" and is_tokenized_dir(Path(corpus)):
            self.data = load_tokenized(Path(corpus))
            self.source = {"tokenized": str(Path(corpus).resolve())}
        else:
            source = spool_stdin(self.output.parent) if corpus == "-" else Path(corpus)
            try:
                spans = args.resolve_spans(source, valid, test, valid_frac, test_frac)

                def tokenize():
                    with self.reporter.bytes_progress("tokenize") as progress:
                        config = args.tokenizer_config(kind, vocab_size)
                        return cached_tokenize(spans, config, progress)

                self.data = self.group.in_turns(tokenize)  # rank 0 fills the cache first
            finally:
                if corpus == "-":
                    source.unlink(missing_ok=True)
            self.source = {"corpus": "-" if corpus == "-" else str(Path(corpus).resolve())}
        splits = self.data.meta["splits"]
        if "valid" not in splits:
            raise RnngenError("the corpus has no validation split; give --valid FILE")
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
        else:
            model_config = ModelConfig(vocab_size=tokenizer.vocab_size, **self.model_options)
        if self.device.type == "cpu":  # processes on one machine share its cores
            cores = (os.cpu_count() or 1) // self.group.local_world_size
            torch.set_num_threads(max(1, cores))
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

    # -- the run ----------------------------------------------------------------------------

    def train(self) -> int:
        from rnngen.train import Evaluation, Finished, Rollback, Step, Stopped

        mode = "a" if self.resume else "w"
        self.last_step: Step | None = None
        self.best: dict | None = None
        self._last_plain = time.monotonic()
        ranks = self.group.all_gather_json(self._shard()) if self.group.enabled else None
        with (
            open(self.metrics_file if self.group.is_main else os.devnull, mode) as metrics,
            self.reporter.steps_progress("train", 1.0) as progress,
        ):
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
        }
        save_model(self.output, self.model, self.data.tokenizer, metadata)

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

    def _finish(self, event) -> None:
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
