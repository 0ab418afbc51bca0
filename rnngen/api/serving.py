"""`rnngen serve` as calls: the models a server holds, each with its batched sampler and the
n-gram and mixture its requests' `ngram` and `mix` use (assembled as `rnngen sample`'s), and
the server run on a socket. It imports starlette (and, running, uvicorn): `rnngen.api`
loads it on first use.

    models = load_models(["a.safetensors"], "cpu")      # name (file stem) -> LanguageModel
    sock = listen("127.0.0.1", 0)
    run_server(server(models, Limits()), "127.0.0.1", 0, sock=sock)
"""

from __future__ import annotations

from pathlib import Path

from rnngen.serve.app import Limits, Server
from rnngen.serve.server import configure_logging as server_logging
from rnngen.serve.server import listen, model_names, serve_models
from rnngen.serve.server import run as run_server

__all__ = ["Limits", "Server", "listen", "load_models", "run_server", "server",
           "server_logging"]  # fmt: skip


def load_models(checkpoints: list[Path] | None, device: str = "auto") -> dict:
    """Each checkpoint loaded, named by its file stem (None or []: the newest in
    ./checkpoints)."""
    from rnngen.api.language_model import load_checkpoint

    if checkpoints:
        return {name: load_checkpoint(path, device)
                for name, path in model_names(checkpoints).items()}  # fmt: skip
    newest = load_checkpoint(None, device)
    return {name: newest for name in model_names([newest.path])}


def server(models: dict, limits: Limits, *, precision: str = "auto", ngram_order: int = 5,
           api_key: str | None = None) -> Server:  # fmt: skip
    """The app's state over `models` (name -> LanguageModel), a scheduler started for each:
    every stream of a model stepped in one batch, each row at the precision the sampling
    rule gives its temperature, as `rnngen sample` samples."""
    from rnngen.api.sampling import sampler

    def new_batch(lm):
        return lambda: sampler(lm, precision)

    served = serve_models(models, new_batch, limits, lambda lm: ngram_loader(lm, ngram_order))
    return Server(served, limits, api_key)


def ngram_loader(lm, order: int):
    """mix option -> (the checkpoint's n-gram, λ or None), as `rnngen sample --ngram/--mix`
    finds them (api.sampling.ngram_baseline): the n-gram of exactly its training tokens,
    built once per model (cached), λ fit on its validation split (cached by eval) or fixed."""
    from rnngen.api.sampling import checkpoint_data, ngram_baseline

    data = checkpoint_data(lm)  # the n-gram is built on the first request and kept

    def load(mix):
        baseline = ngram_baseline(lm, data, order, mix)
        return baseline.ngram.model, None if mix is None else baseline.mixture.weight

    return load
