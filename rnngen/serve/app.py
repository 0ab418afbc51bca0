"""The HTTP routes: OpenAI's completions and models, health, scoring, the playground.

A thin layer: each route checks its request (protocol.py), hands the work to the model's
scheduler (or, for scoring, to a thread) and writes OpenAI's shapes back (a completion's
through answers.py). Limits answer at once rather than slow everyone down: a full queue is
429 with Retry-After, a large body or prompt 413; a request past its deadline is cancelled
(504, or an error event in a stream).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from rnngen.errors import RnngenError
from rnngen.serve.answers import collect, stream
from rnngen.serve.protocol import APIError, parse_completion, parse_json, parse_score
from rnngen.serve.scheduler import Draining, Job, QueueFull, Scheduler

log = logging.getLogger("rnngen.serve")


@dataclass(frozen=True)
class Limits:
    max_batch: int = 64  # rows (streams) stepped together, per model
    max_queue: int = 64  # requests waiting for room, per model
    max_tokens_cap: int = 2048  # the most max_tokens a request may ask
    default_max_tokens: int = 500  # as `rnngen sample`
    max_prompt_tokens: int = 4096
    max_body_bytes: int = 1_000_000
    max_score_lines: int = 256
    deadline: float = 600.0  # seconds a request may take, queue included
    grace: float = 10.0  # seconds in-flight requests get after SIGTERM
    # At most one chunk per stream this often: text that arrives meanwhile joins the next
    # chunk. A step of a small RNN takes well under a millisecond; a chunk costs the server
    # and the client more than that (JSON, the socket, the client's parser), and nobody
    # reads faster than 50 updates a second.
    stream_interval: float = 0.02
    chunk_rate: float = 400.0  # chunks a second, all streams of a model together, at most


@dataclass
class Served:
    """One model as the server holds it: its name, the API object and its scheduler."""

    name: str
    model: object  # the API's LanguageModel (tokenizer, score)
    scheduler: Scheduler
    created: int
    description: dict
    # (mix option) -> (KneserNey, λ or None): the checkpoint's n-gram and mixture weight,
    # built on first use (an n-gram of the training text takes seconds), None: not served.
    load_ngram: Callable[[float | str | None], tuple] | None = None
    ngrams: dict = field(default_factory=dict)
    ngram_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer.encode(text)) if text else 0

    async def ngram(self, mix: float | str | None) -> tuple:
        """The n-gram and weight for a request's `ngram` / `mix`, built once (in a thread)."""
        if self.load_ngram is None:
            raise APIError(400, "this server does not serve n-grams", param="mix",
                           code="ngram_unavailable")  # fmt: skip
        async with self.ngram_lock:
            if mix not in self.ngrams:
                try:
                    self.ngrams[mix] = await asyncio.to_thread(self.load_ngram, mix)
                except RnngenError as e:
                    raise APIError(400, f"the n-gram of {self.name} is not available: {e}",
                                   param="ngram" if mix is None else "mix",
                                   code="ngram_unavailable") from None  # fmt: skip
        return self.ngrams[mix]


class Server:
    """The app's state: models, limits, the key, and the draining flag."""

    def __init__(self, served: dict[str, Served], limits: Limits, api_key: str | None = None):
        self.served, self.limits, self.api_key = served, limits, api_key
        self.draining = False
        self.jobs: set[Job] = set()  # requests running, ended cleanly when grace is over
        self.score_slots = asyncio.Semaphore(1)

    def drain(self) -> None:
        self.draining = True
        for s in self.served.values():
            s.scheduler.drain()

    def end_all(self) -> None:
        """Grace is over: every job still running ends now (an error event, then the end)."""
        for job in list(self.jobs):
            job.error = TimeoutError("the server is shutting down")
            job.wake.set()


def error_response(error: APIError, request_id: str | None = None) -> JSONResponse:
    headers = dict(error.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


async def read_json(request: Request, limit: int) -> dict:
    """The body as a JSON object, refusing more than `limit` bytes (413) before reading it
    all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"the request body is larger than {limit} bytes",
                       code="request_too_large")  # fmt: skip
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"the request body is larger than {limit} bytes",
                           code="request_too_large")  # fmt: skip
        chunks.append(chunk)
    return parse_json(b"".join(chunks))


def build_app(server: Server) -> Starlette:
    def authorized(request: Request) -> None:
        if server.api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip(), server.api_key):
            raise APIError(401, "a valid API key is required: 'Authorization: Bearer KEY'",
                           type="authentication_error", code="invalid_api_key")  # fmt: skip

    def route(handler):
        """Errors as OpenAI error objects; anything unexpected is a 500 logged with its id."""

        async def endpoint(request: Request) -> Response:
            request_id = new_id("req")
            request.state.id = request_id
            try:
                if request.url.path.startswith("/v1/"):
                    authorized(request)
                return await handler(request)
            except APIError as e:
                return error_response(e, request.state.id)
            except ClientDisconnect:
                return Response(status_code=499)
            except Exception:
                log.exception("request %s: internal error", request.state.id)
                return error_response(
                    APIError(500, f"internal error (request {request.state.id}); see the "
                             "server's log", type="server_error", code="internal_error"),
                    request.state.id,
                )  # fmt: skip

        return endpoint

    async def models(request: Request) -> Response:
        data = [{"id": s.name, "object": "model", "created": s.created, "owned_by": "rnngen",
                 "rnngen": s.description} for s in server.served.values()]  # fmt: skip
        return JSONResponse({"object": "list", "data": data})

    async def health(request: Request) -> Response:
        status = "draining" if server.draining else "ok"
        stats = {s.name: s.scheduler.stats() for s in server.served.values()}
        body = {"status": status, "models": stats}
        return JSONResponse(body, status_code=503 if server.draining else 200)

    async def chat(request: Request) -> Response:
        raise APIError(404, "rnngen serves plain language models, which continue text: they "
                       "were never trained on chat turns, so there is no honest chat template. "
                       "Use POST /v1/completions with a 'prompt'.",
                       code="chat_not_supported")  # fmt: skip

    async def not_found(request: Request) -> Response:
        raise APIError(404, f"no route {request.method} {request.url.path}; the routes are "
                       "POST /v1/completions, GET /v1/models, POST /v1/score, GET /health",
                       code="not_found")  # fmt: skip

    async def score(request: Request) -> Response:
        limits = server.limits
        body = await read_json(request, limits.max_body_bytes)
        name, lines = parse_score(body, server.served, max_lines=limits.max_score_lines)
        served = server.served[name]
        async with server.score_slots:  # one scoring at a time: it runs beside the batch
            scores = await asyncio.to_thread(served.model.score, lines)
        data = [{"index": i, "text": s.text, "tokens": s.tokens, "logprob": s.logprob,
                 "ppl": s.ppl} for i, s in enumerate(scores)]  # fmt: skip
        return JSONResponse({"object": "list", "model": name, "data": data})

    async def completions(request: Request) -> Response:
        limits = server.limits
        body = await read_json(request, limits.max_body_bytes)
        c = parse_completion(body, server.served, default_max_tokens=limits.default_max_tokens,
                             max_tokens_cap=limits.max_tokens_cap,
                             max_rows=limits.max_batch)  # fmt: skip
        served = server.served[c.model]
        prompt_tokens = [served.count_tokens(p) for p in c.prompts]
        if max(prompt_tokens) > limits.max_prompt_tokens:
            raise APIError(413, f"the prompt is {max(prompt_tokens)} tokens; this server takes "
                           f"at most {limits.max_prompt_tokens}", param="prompt",
                           code="prompt_too_long")  # fmt: skip
        if server.draining:
            raise APIError(503, "the server is shutting down", type="server_error",
                           code="shutting_down")  # fmt: skip
        request_id = new_id("cmpl")
        request.state.id = request_id
        greedy = c.temperature == 0
        seed = c.seed if c.seed is not None else secrets.randbelow(2**31)
        seeds = [[None if greedy else seed + i for i in range(c.n)] for _ in c.prompts]
        options = {"temperature": c.temperature, "top_k": c.top_k, "top_p": c.top_p,
                   "max_tokens": c.max_tokens, "stops": c.stop}  # fmt: skip
        if c.ngram or c.mix is not None:
            options["ngram"], options["mix"] = await served.ngram(c.mix)
        job = Job(request_id, c.prompts, c.n, options, seeds, asyncio.get_running_loop())
        try:
            served.scheduler.submit(job)
        except QueueFull:
            raise APIError(429, f"the model {c.model} is at capacity ({limits.max_batch} "
                           f"streams running, {limits.max_queue} requests waiting); retry "
                           "shortly", type="rate_limit_error", code="rate_limit_exceeded",
                           headers={"retry-after": "1"}) from None  # fmt: skip
        except Draining:
            raise APIError(503, "the server is shutting down", type="server_error",
                           code="shutting_down") from None  # fmt: skip
        deadline = time.monotonic() + limits.deadline
        meta = {"id": request_id, "created": int(time.time()), "model": c.model}
        usage = {"prompt_tokens": sum(prompt_tokens)}
        if c.stream:
            return StreamingResponse(
                stream(server, served, job, c, meta, usage, deadline),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache", "x-request-id": request_id,
                         "x-accel-buffering": "no"},
            )  # fmt: skip
        return await collect(server, request, served, job, c, meta, usage, deadline)

    async def playground(request: Request) -> Response:
        from rnngen.serve.playground import PAGE

        return HTMLResponse(PAGE)

    routes = [
        Route("/", route(playground), methods=["GET"]),
        Route("/health", route(health), methods=["GET"]),
        Route("/v1/models", route(models), methods=["GET"]),
        Route("/v1/completions", route(completions), methods=["POST"]),
        Route("/v1/chat/completions", route(chat), methods=["POST"]),
        Route("/v1/score", route(score), methods=["POST"]),
    ]

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return await route(not_found)(request)
        error = APIError(exc.status_code, f"{request.method} is not allowed on "
                         f"{request.url.path}", code="method_not_allowed")  # fmt: skip
        return error_response(error)

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
