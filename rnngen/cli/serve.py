"""`rnngen serve`: an OpenAI-compatible HTTP server over one or more checkpoints."""

from __future__ import annotations

from pathlib import Path

import typer

from rnngen.cli import command
from rnngen.cli import corpus_args as args
from rnngen.cli.console import Reporter
from rnngen.config import check_device_options
from rnngen.errors import RnngenError


@command()
def serve(
    checkpoints: list[Path] = typer.Argument(
        None,
        help="Checkpoints to serve, each named by its file stem [default: the newest in "
        "./checkpoints].",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
    max_batch: int = typer.Option(
        64, "--max-batch", help="Streams per model stepped together; more wait in the queue."
    ),
    max_queue: int = typer.Option(
        64, "--max-queue", help="Requests per model waiting for room; more are answered 429."
    ),
    max_tokens_cap: int = typer.Option(
        2048, "--max-tokens-cap", help="The most max_tokens a request may ask for."
    ),
    max_prompt_tokens: int = typer.Option(
        4096, "--max-prompt-tokens", help="Longest prompt, in tokens (longer: 413)."
    ),
    max_body: int = typer.Option(
        1_000_000, "--max-body", help="Largest request body, in bytes (larger: 413)."
    ),
    deadline: float = typer.Option(
        600.0, "--deadline", help="Seconds a request may take, waiting included (then 504)."
    ),
    grace: float = typer.Option(
        10.0, "--grace", help="Seconds in-flight streams get to finish after SIGTERM/Ctrl-C."
    ),
    stream_interval: float = typer.Option(
        0.02,
        "--stream-interval",
        help="Seconds between a stream's chunks at most (text that "
        "comes meanwhile joins the next chunk; 0: a chunk per piece).",
    ),
    chunk_rate: float = typer.Option(
        400.0,
        "--chunk-rate",
        help="Chunks a second, all streams of a model together, at "
        "most: under load each chunk carries more tokens (the first of a stream goes at once).",
    ),
    api_key: str = typer.Option(
        None,
        "--api-key",
        envvar="RNNGEN_API_KEY",
        help="Require 'Authorization: Bearer KEY' on /v1/ routes [env: RNNGEN_API_KEY].",
        show_envvar=False,
    ),
    device: str = args.Device,
    precision: str = typer.Option(
        "auto",
        "--precision",
        help="As `rnngen sample`: auto (per stream: fp32 when greedy, else bf16 on CPUs with "
        "native bf16 and fp32 elsewhere), fp32, bf16 or fp16.",
    ),
    ngram_order: int = typer.Option(
        5,
        "--ngram-order",
        help="Order of the n-gram of requests' `ngram` and `mix` (built "
        "from the checkpoint's training text on first use, cached as eval's).",
    ),
    threads: int = typer.Option(
        1, "--threads", help="CPU threads for the model (the server's own work takes another)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No access log (errors only)."),
) -> None:
    """Serve CHECKPOINTs over HTTP with the OpenAI API: POST /v1/completions (streaming with
    server-sent events), GET /v1/models, GET /health, POST /v1/score (rnngen's scoring), and a
    playground page at /. Every stream of a model is stepped in one batch (continuous
    batching); a seed gives the same text as `rnngen sample --seed`.
    """
    minimums = (("--max-batch", max_batch, 1), ("--max-queue", max_queue, 0),
                ("--max-tokens-cap", max_tokens_cap, 1), ("--threads", threads, 1),
                ("--max-prompt-tokens", max_prompt_tokens, 1),
                ("--max-body", max_body, 1024))  # fmt: skip
    for name, value, least in minimums:
        if value < least:
            raise RnngenError(f"{name} must be at least {least}, got {value}")
    if not 0 <= port <= 65535:
        raise RnngenError(f"--port must be between 0 and 65535, got {port}")
    if not chunk_rate > 0:
        raise RnngenError(f"--chunk-rate must be above 0, got {chunk_rate}")
    if not deadline > 0 or not grace >= 0 or not stream_interval >= 0:
        raise RnngenError("--deadline must be above 0, --grace and --stream-interval 0 or more")
    check_device_options(device, precision)
    import rnngen.api as api

    api.check_order(ngram_order)
    if api_key is not None and not api_key.strip():
        raise RnngenError("--api-key must not be empty")
    api.server_logging(quiet)
    reporter = Reporter(False)
    sock = api.listen(host, port)  # before loading: a port in use fails at once
    import torch

    torch.set_num_threads(threads)
    loaded = api.load_models(checkpoints, device)
    limits = api.Limits(max_batch=max_batch, max_queue=max_queue, max_tokens_cap=max_tokens_cap,
                        default_max_tokens=min(500, max_tokens_cap),
                        max_prompt_tokens=max_prompt_tokens, max_body_bytes=max_body,
                        deadline=deadline, grace=grace, stream_interval=stream_interval,
                        chunk_rate=chunk_rate)  # fmt: skip
    # Each row runs at the precision the library's one rule gives its temperature (`auto`:
    # greedy rows fp32, the others bf16 on CPUs with native bf16), as `rnngen sample` does.
    precisions = {name: describe_precision(api.sampler(lm, precision))
                  for name, lm in loaded.items()}  # fmt: skip
    server = api.server(loaded, limits, precision=precision, ngram_order=ngram_order,
                        api_key=api_key)  # fmt: skip

    def ready(url: str) -> None:
        for name, lm in loaded.items():
            c = lm.config
            reporter.log(f"model {name}: {lm.path} ({c.layers}x{c.cell} {c.hidden_size}, "
                         f"{lm.tokenizer.kind} vocab {lm.tokenizer.vocab_size}) on "
                         f"{lm.device.type} {precisions[name]}")  # fmt: skip
        reporter.log(f"serving {', '.join(loaded)} at {url}/ (OpenAI API at {url}/v1): "
                     f"max batch {max_batch}, queue {max_queue}, max_tokens <= "
                     f"{max_tokens_cap}, prompt <= {max_prompt_tokens} tokens, body <= "
                     f"{max_body} bytes, deadline {deadline:g}s, grace {grace:g}s, "
                     f"{'API key required' if api_key else 'no API key'}")  # fmt: skip

    api.run_server(server, host, port, on_ready=ready, sock=sock)
    reporter.log("stopped")


def describe_precision(sampler) -> str:
    """What the log says of a model's precision: one, or the greedy rows' beside."""
    sampled, greedy = sampler.precision_of(1.0), sampler.precision_of(0.0)
    return sampled if sampled == greedy else f"{sampled} ({greedy} when greedy)"
