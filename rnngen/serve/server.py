"""Running the app: models loaded, one scheduler each, uvicorn on a socket, a clean drain.

SIGTERM or Ctrl-C: the server stops accepting connections and new requests (503), lets the
streams in flight finish for up to `grace` seconds, then ends what remains with an error
event (never a cut-off chunk), and returns normally (the command exits 0). A second Ctrl-C
stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rnngen.serve.app import Limits, Served, Server, build_app
from rnngen.serve.scheduler import Scheduler

log = logging.getLogger("rnngen.serve")


def configure_logging(quiet: bool = False) -> None:
    """One plain line per event on stderr (the access log included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def model_names(paths: list[Path]) -> dict[str, Path]:
    """Each checkpoint's name: its file stem (two files with one stem are an error)."""
    from rnngen.errors import RnngenError

    names: dict[str, Path] = {}
    for path in paths:
        name = path.name.removesuffix(".safetensors")
        if name in names:
            raise RnngenError(f"two checkpoints are both named {name!r} ({names[name]} and "
                              f"{path}); a model is named by its file's stem")  # fmt: skip
        names[name] = path
    return names


def serve_models(models: dict[str, object], new_batch: Callable[[object], Callable[[], object]],
                 limits: Limits, ngram_loader=None) -> dict[str, Served]:  # fmt: skip
    """A started scheduler for every loaded model (name -> API LanguageModel); `ngram_loader`
    (lm -> (mix option -> (n-gram, λ))) serves requests' `ngram` and `mix`."""
    served = {}
    for name, lm in models.items():
        scheduler = Scheduler(name, new_batch(lm), max_batch=limits.max_batch,
                              max_queue=limits.max_queue)  # fmt: skip
        scheduler.start()
        c = lm.config
        description = {"cell": c.cell, "layers": c.layers, "hidden_size": c.hidden_size,
                       "vocab_size": c.vocab_size, "tokenizer": lm.tokenizer.kind}  # fmt: skip
        loader = ngram_loader(lm) if ngram_loader is not None else None
        served[name] = Served(name, lm, scheduler, int(time.time()), description, loader)
    return served


class AccessLog:
    """ASGI middleware: one line per request on stderr when its response ends."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        status = {"code": 0, "id": "-"}

        async def sending(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                for key, value in message.get("headers", []):
                    if key == b"x-request-id":
                        status["id"] = value.decode()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %s %s %.3fs", client[0], scope["method"], scope["path"],
                     status["code"] or "disconnected", status["id"],
                     time.monotonic() - start)  # fmt: skip


def run(server: Server, host: str, port: int, *, on_ready: Callable[[str], None] | None = None,
        sock=None) -> None:  # fmt: skip
    """Serve until SIGTERM / Ctrl-C, drain, return."""
    import uvicorn

    app = AccessLog(build_app(server))
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=server.limits.grace + 5,
                            timeout_keep_alive=5)  # fmt: skip

    class Uvicorn(uvicorn.Server):
        draining = False

        def handle_exit(self, sig, frame):
            # As uvicorn's, without re-raising the signal after the drain: exit 0.
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
                return
            self.should_exit = True
            if not self.draining:
                self.draining = True
                name = signal.Signals(sig).name
                log.warning("%s: draining (%d request(s) in flight, up to %gs)", name,
                            len(server.jobs), server.limits.grace)  # fmt: skip
                server.drain()
                loop = asyncio.get_event_loop()
                loop.call_later(server.limits.grace, server.end_all)

        async def startup(self, sockets=None):
            await super().startup(sockets)
            if on_ready is not None and self.started:
                bound = self.servers[0].sockets[0].getsockname() if self.servers else (host, port)
                on_ready(f"http://{bound[0]}:{bound[1]}")

    uvicorn_server = Uvicorn(config)
    try:
        uvicorn_server.run(sockets=[sock or listen(host, port)])
    finally:
        for s in server.served.values():
            s.scheduler.stop(timeout=5)


def listen(host: str, port: int):
    """A bound socket, or an RnngenError saying why not (before any model is loaded)."""
    import socket

    from rnngen.errors import RnngenError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        raise RnngenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock
