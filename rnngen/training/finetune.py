"""Fine-tuning: a new training run that starts from a trained checkpoint (`--init-from`).

The base's weights fit only its tokenizer and its architecture (the ModelConfig fields in
config.ARCHITECTURE), so the run keeps those and takes everything else from its own options:
dropouts, learning rate, schedule, length. Options that contradict the base are errors, never
silently overridden, and nothing is sized automatically. The optimizer and the schedule
start afresh (a new Trainer; the base's resume file is never read): --resume continues a run,
this starts a new one on new text, as char-rnn's -init_from and nanoGPT's init_from do.

The fine-tuned checkpoint records its base under `init_from` (path, sha256, what the base was
trained on, and the base's own base): its provenance says only what the new run read. The
resume file records it too, and --resume of a fine-tuning run takes the tokenizer from the
run's own checkpoint, so the base is needed only to start.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from rnngen.config import ARCHITECTURE, ModelConfig
from rnngen.errors import MAX_JSON_DEPTH, RnngenError, UsageError, json_depth

# The options (the CLI's names, with underscores) whose ModelConfig field has another name.
OPTION_FIELDS = {"hidden": "hidden_size", "embed": "embed_size"}


@dataclass(frozen=True, eq=False)
class Base:
    """A checkpoint to start from, loaded once: its weights stay on the CPU until copied."""

    path: Path  # resolved
    sha256: str  # of the file, as it was read
    model: torch.nn.Module  # rnngen.model.RNNLM
    tokenizer: object  # rnngen.corpus.tokenizer.Tokenizer
    meta: dict[str, str]

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def record(self) -> dict:
        """What the fine-tuned checkpoint stores under `init_from`: the base's file, its
        hash, what it was trained on (its provenance's corpus or tokenized directory) and,
        when the base was itself fine-tuned, its own record: the whole lineage."""
        from rnngen.checkpoint import json_field
        from rnngen.corpus.provenance import checkpoint_provenance

        try:
            provenance = checkpoint_provenance(self.meta, required=False)
            lineage = json_field(self.meta, "init_from")
        except RnngenError:  # an unreadable record of the base's data: not this run's concern
            provenance, lineage = None, None
        corpus = provenance and (provenance.corpus or provenance.tokenized)
        record = {"path": str(self.path), "sha256": self.sha256, "corpus": corpus}
        if json_depth(lineage) > MAX_JSON_DEPTH // 2:  # so the new record reads back too
            lineage = None
        return {**record, "init_from": lineage} if lineage else record

    def describe(self) -> str:
        c, t = self.config, self.tokenizer
        return (
            f"{c.describe()} (embed {c.embed_size}, {'tied' if c.tie else 'untied'}), "
            f"{t.kind} tokenizer of {t.vocab_size} pieces"
        )

    def model_config(self, options: dict, tokenizer) -> ModelConfig:
        """The run's model: the base's architecture, the run's other options (`options` as
        train_options.configs returns them), for data tokenized by `tokenizer`."""
        from rnngen.training.options import complete

        if tokenizer.sha256 != self.tokenizer.sha256:
            raise RnngenError(
                f"--init-from {str(self.path)!r}: the training data was tokenized with "
                "another tokenizer than the base's"
            )
        kept = {name: getattr(self.config, name) for name in ARCHITECTURE}
        return ModelConfig(**{**complete(options), **kept})

    def copy_into(self, model: torch.nn.Module) -> None:
        """The base's weights (and any buffers) into the run's freshly built model."""
        try:
            model.load_state_dict(self.model.state_dict())
        except RuntimeError as e:
            reason = str(e).strip().splitlines()[0]
            raise RnngenError(
                f"--init-from {str(self.path)!r}: the base's weights do not fit this run's "
                f"model ({reason})"
            ) from None


def open_base(
    init_from: Path | str | None,
    given: dict,
    *,
    resume: bool = False,
    output: Path | None = None,
    force: bool = False,
) -> Base | None:
    """The checkpoint to fine-tune (None without `init_from`), checked against the run.

    `given` holds the options the user set explicitly (the CLI's names, with underscores:
    kind, vocab_size, size, cell, layers, hidden, embed, tie, residual, ...): those that
    describe the tokenizer or the architecture must agree with the base. `output` is the
    run's checkpoint, which may be the base only with `force`.
    """
    if init_from is None:
        return None
    if resume:
        raise UsageError(
            "--init-from starts a new run from a checkpoint and --resume continues a saved "
            "run; give one of them"
        )
    from rnngen.checkpoint import load_model
    from rnngen.corpus.textio import file_sha256

    path = Path(init_from)
    try:
        model, tokenizer, meta = load_model(path)  # one line for missing, foreign, damaged
        sha256 = file_sha256(path)
    except RnngenError as e:
        raise RnngenError(f"--init-from: {e}") from None
    except OSError as e:
        raise RnngenError(f"--init-from: cannot read {str(path)!r}: {e.strerror}") from None
    base = Base(path.resolve(), sha256, model, tokenizer, meta)
    _check_tokenizer(base, given)
    _check_architecture(base, given)
    if output is not None and not force and _same_file(output, path):
        raise RnngenError(
            f"-o {str(output)!r} is the base checkpoint of --init-from; give another -o, or "
            "--force to replace the base with the fine-tuned model"
        )
    return base


def run_tokenizer(base: Base | None, files, group):
    """The tokenizer the run takes rather than trains (an rnngen.corpus.tokenizer.Tokenizer, or None
    when it trains its own, which the token cache finds again on --resume): the base's; and
    when resuming a fine-tuning run, the one its own checkpoint holds, which is the base's
    (the base itself may have moved or been replaced since). `files` are the run's RunFiles;
    rank 0 reads them and `group` passes what it read to the other ranks."""
    from rnngen.checkpoint import read_meta
    from rnngen.corpus.tokenizer import load_tokenizer

    if base is not None:
        return base.tokenizer
    if not files.resume:
        return None
    found = None
    if group.is_main and files.output.exists():
        try:
            meta = read_meta(files.output)
        except RnngenError:  # resuming reads the resume file, not this one: leave it be
            meta = {}
        if "init_from" in meta:
            found = {"proto": meta["tokenizer"], "kind": meta["tokenizer_kind"]}
    found = group.broadcast_json(found)
    if found is None:
        return None
    return load_tokenizer(base64.b64decode(found["proto"]), found["kind"])


def _check_tokenizer(base: Base, given: dict) -> None:
    """The base's tokenizer is the run's: a --kind or --vocab-size that differs is refused.
    (A char tokenizer has every character of its sample; its size was never asked for.)"""
    tokenizer = base.tokenizer
    kind, size = given.get("kind"), given.get("vocab_size")
    wrong = []
    if kind is not None and kind != tokenizer.kind:
        wrong.append(f"--kind {kind}")
    if size is not None and tokenizer.kind != "char" and size != tokenizer.vocab_size:
        wrong.append(f"--vocab-size {size}")
    if wrong:
        raise RnngenError(
            f"--init-from {str(base.path)!r}: the base tokenizes with {tokenizer.kind} "
            f"{tokenizer.vocab_size} pieces, not {' '.join(wrong)}; drop --kind/--vocab-size "
            "(the run uses the base's tokenizer) or train without --init-from"
        )


def _check_architecture(base: Base, given: dict) -> None:
    """Every given option that names an architecture field must agree with the base."""
    config, conflicts = base.config, []
    size = given.get("size")
    if size not in (None, "auto"):
        from rnngen.training.sizing import SIZES

        layers, hidden = SIZES[size]
        if (layers, hidden) != (config.layers, config.hidden_size):
            conflicts.append(f"--size {size}")
    for name, value in given.items():
        field = OPTION_FIELDS.get(name, name)
        if field not in ARCHITECTURE or field == "vocab_size" or value in (None, "auto"):
            continue  # the vocabulary is the tokenizer's, checked above; auto: the base's
        base_value = getattr(config, field)
        if (tuple(value) if isinstance(base_value, tuple) else value) != base_value:
            conflicts.append(_flag(name, value))
    if conflicts:
        raise RnngenError(
            f"--init-from {str(base.path)!r}: the base is {base.describe()}, and "
            f"{', '.join(conflicts)} would change it; drop {'them' if len(conflicts) > 1 else 'it'}"
            " (the architecture comes from the base) or train without --init-from"
        )


def _flag(name: str, value) -> str:
    option = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return option if value else f"--no-{option[2:]}"
    return f"{option} {value}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # the output does not exist yet
        return False
