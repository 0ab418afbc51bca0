"""`rnngen info`: what a tokenized directory or a checkpoint holds."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args


@command()
def info(
    path: Path = typer.Argument(..., help="A directory from rnngen tokenize, or a checkpoint."),
    json_output: bool = args.Json,
) -> None:
    """Show what a tokenized corpus directory or a checkpoint holds."""
    from rnngen import api

    found = api.info(path)
    if found.kind == "tokenized":
        _tokenized(found, json_output)
    else:
        _checkpoint(found, json_output)


def _tokenized(found, json_output: bool) -> None:
    from rnngen.cli.output import print_json, print_table

    path, meta = found.path, found.record
    if json_output:
        print_json({"path": str(path), **meta})
        return
    tok = meta["tokenizer"]
    characters = tok.get("characters")  # absent from directories older versions wrote
    pieces = (
        f" ({_figure(characters.get('pieces'), ',')} of its sample's "
        f"{_figure(characters.get('sample'), ',')} characters)"
        if isinstance(characters, dict)
        else ""
    )
    print_table(
        f"{path}: {tok['kind']} tokenizer, {tok['vocab_size']} pieces{pieces}, "
        f"sha256 {tok['sha256'][:12]}",
        ["split", "tokens", "characters", "bytes", "in byte pieces", "source"],
        [
            [n, s["tokens"], s["chars"], s["bytes"], _fallback_share(s), s["source"]]
            for n, s in meta["splits"].items()
        ],
        numeric={1, 2, 3, 4},
    )


def _fallback_share(split: dict) -> str:
    """The share of a split's characters spelled in byte pieces ("-" when not recorded)."""
    if not isinstance(split.get("fallback_chars"), int):
        return "-"
    return f"{split['fallback_chars'] / max(split['chars'], 1):.2%}"


def _checkpoint(found, json_output: bool) -> None:
    from rnngen.cli.output import print_json, print_table

    path, fields = found.path, found.record
    parameters = fields["parameters"]
    if json_output:
        print_json({"path": str(path), **fields})
        return
    model, metrics = fields.get("model_config", {}), fields.get("metrics", {})
    train = fields.get("train_config", {})
    splits = found.splits
    rows = [
        ["format", fields["format"]],
        ["model", f"{_kind(model)}, embed {model.get('embed_size')}, tied {model.get('tie')}, "
                  f"skip {model.get('skip', 'residual' if model.get('residual') else 'none')}"],
        ["output", _output(model)],
        ["regularizers", _regularizers(model, train)],
        ["parameters", f"{parameters:,}"],
        ["tokenizer", f"{fields['tokenizer_kind']}, {model.get('vocab_size')} pieces, "
                      f"sha256 {fields['tokenizer_sha256'][:12]}"],
        ["best validation", f"loss {_figure(metrics.get('valid_loss'), '.4f')} nats/token, "
                            f"{_figure(metrics.get('valid_bpc'), '.4f')} bits/char "
                            f"at step {metrics.get('step')}"],
        ["training", f"lr {train.get('lr')}, batch {train.get('batch_size')} x "
                     f"{train.get('seq_len')}, clip {train.get('clip')}, "
                     f"precision {fields.get('precision')}"],
    ]  # fmt: skip
    sizing = fields.get("sizing")
    if isinstance(sizing, dict):  # chosen by measuring the machine (rnngen/sizing.py)
        measured = sizing.get("measured")
        measured = ", ".join(
            f"{k} {_figure(v / 1e3 if _is_number(v) else v, '.1f')}k"
            for k, v in (measured.items() if isinstance(measured, dict) else ())
        )
        chosen = f"{sizing.get('layers')}x{sizing.get('hidden_size')}"
        reason = f"({sizing.get('reason')}); measured tokens/s: {measured}"
        rows.append(["size chosen", f"{chosen} {reason}"])
    rows += [
        [f"{name} split", f"{_figure(s.tokens, ',')} tokens from {s.source}"]
        for name, s in splits.items()
    ]
    base = fields.get("init_from")
    while isinstance(base, dict):  # fine-tuned: the base, and the base's base, ...
        trained_on = f", trained on {base['corpus']}" if base.get("corpus") else ""
        rows.append(
            [
                "initialized from",
                f"{base.get('path')} (sha256 {str(base.get('sha256'))[:12]}{trained_on})",
            ]
        )
        base = base.get("init_from")
    rows.append(["versions", ", ".join(f"{k} {v}" for k, v in fields.get("versions", {}).items())])
    print_table(str(path), ["", ""], rows)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _figure(value, spec: str) -> str:
    """A number as `spec` formats it; anything else a damaged header may hold, as it is (the
    table shows what the checkpoint says, and never fails on it)."""
    if value is None:
        value = math.nan  # not recorded
    return format(value, spec) if _is_number(value) else repr(value)


def _output(model: dict) -> str:
    """The output layer: a full softmax, or an adaptive one and its clusters."""
    if model.get("softmax", "full") != "adaptive":
        return "full softmax"
    cutoffs = list(model.get("cutoffs") or [])
    return f"adaptive softmax, head {cutoffs[0] if cutoffs else '?'}, cut-offs {cutoffs}"


def _regularizers(model: dict, train: dict) -> str:
    """Dropout by position and AWD-LSTM's options, as they were set for training."""
    dropout = model.get("dropout")
    rates = [model.get(f"dropout_{p}") for p in ("input", "hidden", "output")]
    rates = [dropout if r is None else r for r in rates]
    parts = [f"dropout {'/'.join(str(r) for r in rates)} (input/hidden/output)"
             + (" locked" if model.get("locked_dropout") else "")]  # fmt: skip
    for name, label in (("embed_dropout", "embedding dropout"), ("weight_drop", "weight drop")):
        if model.get(name):
            parts.append(f"{label} {model[name]}")
    for name in ("ar", "tar"):
        if train.get(name):
            parts.append(f"{name.upper()} {train[name]}")
    parts += [name.replace("_", " ") for name in ("variable_bptt", "average") if train.get(name)]
    return ", ".join(parts)


def _kind(model: dict) -> str:
    """ "2xlstm 512", or the window model's "window 8, 1x256" (tanh layers)."""
    if model.get("model") == "window":
        return f"window {model.get('window')}, {model.get('layers')}x{model.get('hidden_size')}"
    return f"{model.get('layers')}x{model.get('cell')} {model.get('hidden_size')}"
