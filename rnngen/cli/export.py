"""`rnngen export`: a checkpoint as ONNX models that run without torch, verified first."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter


@command()
def export(
    checkpoint: Path = typer.Argument(
        None, help="A .safetensors checkpoint [default: the newest in ./checkpoints]."
    ),
    format: str = typer.Option("onnx", "--format", help="Export format: onnx."),
    output: Path = typer.Option(
        None, "-o", "--output", help="Output directory [default: export/CHECKPOINT-NAME]."
    ),
    window: bool = typer.Option(
        True, "--window/--no-window", help="Also export the window model (B, T) -> (B, T, V)."
    ),
    data: Path = typer.Option(
        None, "--data", help="Text to verify on [default: the checkpoint's held-out text]."
    ),
    verify_tokens: int = typer.Option(
        1024, "--verify-tokens", help="Tokens of that text onnxruntime must reproduce."
    ),
    quiet: bool = args.Quiet,
    json_output: bool = args.Json,
) -> None:
    """Export CHECKPOINT as ONNX: step.onnx (one token per row and the state -> the next
    token's log-probabilities and the state), window.onnx (a window of tokens at once),
    tokenizer.model and model.json (what a runtime needs).

    Nothing is written until onnxruntime has reproduced torch's log-probabilities within
    1e-4 on held-out text. Needs the export extra: pip install 'rnngen[export]'.
    examples/onnx_sample.py samples from the directory with numpy, onnxruntime and
    sentencepiece only.
    """
    import rnngen.api as api

    reporter = Reporter(quiet)
    result = api.export(checkpoint, output, format=format, window=window, data=data,
                        verify_tokens=verify_tokens)  # fmt: skip
    if json_output:
        from rnngen.cli.output import print_json

        print_json(result.as_dict())
    else:
        from rnngen.cli.output import print_table

        rows = [[role, path, size] for (role, path), size in
                zip(result.files.items(), result.sizes.values(), strict=True)]  # fmt: skip
        print_table(None, ["model", "file", "bytes"], rows, numeric={2})
    v = result.verification
    worst = max(d for d in (v.step_max_abs_diff, v.window_max_abs_diff) if d is not None)
    reporter.log(
        f"verified with onnxruntime {v.onnxruntime}: {v.tokens} tokens of {v.source}, "
        f"log-probabilities within {worst:.2g} of torch's (tolerance {v.tolerance:g})"
    )
    reporter.log(f"wrote {result.directory}/")
