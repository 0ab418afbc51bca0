"""A completion's answer: one JSON object once every choice is done (`collect`), or
server-sent events as the text arrives (`stream`), in OpenAI's shapes; the client leaving or
the deadline passing cancels the job and frees its rows.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rnngen.serve.protocol import APIError, Completion
from rnngen.serve.scheduler import Job
from rnngen.serve.stops import StopTrim


async def collect(server, request: Request, served, job: Job, c: Completion,
                  meta: dict, usage: dict, deadline: float) -> Response:  # fmt: skip
    """Wait for every choice (or the client leaving, or the deadline); one JSON object."""
    texts: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    tokens = 0
    disconnected = asyncio.ensure_future(_disconnect(request))
    server.jobs.add(job)
    try:
        while len(finish) < job.size:
            waiter = asyncio.ensure_future(job.wake.wait())
            remaining = deadline - time.monotonic()
            done, _ = await asyncio.wait({waiter, disconnected}, timeout=max(remaining, 0),
                                         return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            waiter.cancel()
            if disconnected in done:
                served.scheduler.cancel(job)
                return Response(status_code=499)
            if not done:
                served.scheduler.cancel(job)
                raise APIError(504, f"the request took longer than the server's deadline "
                               f"({server.limits.deadline:g} s)", type="timeout",
                               code="deadline_exceeded")  # fmt: skip
            if job.error is not None:
                raise model_failure(job)
            for choice, event in job.take():
                if hasattr(event, "reason"):
                    finish[choice] = event.reason
                    tokens += event.tokens
                    texts[choice] = [StopTrim.final(event.text, c.stop, event.reason)]
    finally:
        disconnected.cancel()
        server.jobs.discard(job)
    choices = [{"text": (c.prompts[i // c.n] if c.echo else "") + "".join(texts[i]),
                "index": i, "logprobs": None, "finish_reason": _reason(finish[i])}
               for i in range(job.size)]  # fmt: skip
    usage = {**usage, "completion_tokens": tokens,
             "total_tokens": usage["prompt_tokens"] + tokens}  # fmt: skip
    body = {**meta, "object": "text_completion", "choices": choices, "usage": usage}
    return JSONResponse(body, headers={"x-request-id": meta["id"]})


def model_failure(job: Job) -> APIError:
    if isinstance(job.error, TimeoutError):
        return APIError(503, str(job.error), type="server_error", code="shutting_down")
    return APIError(500, f"the model failed (request {job.id}); see the server's log",
                    type="server_error", code="model_failure")  # fmt: skip


async def stream(server, served, job: Job, c: Completion, meta: dict,
                 usage: dict, deadline: float) -> AsyncIterator[str]:  # fmt: skip
    """Server-sent events: a chunk per choice with its new text (all that arrived since the
    last chunk, at most one chunk per `stream_interval`; the first at once), a last chunk
    per choice with its finish_reason, the usage chunk if asked, then [DONE]."""
    limits = server.limits
    trims = [StopTrim(c.stop) for _ in range(job.size)]
    last_sent = -math.inf  # the first text goes out at once
    ended = 0
    tokens = 0
    server.jobs.add(job)

    def chunk(choices: list[dict], **extra) -> str:
        body = {**meta, "object": "text_completion", "choices": choices, **extra}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        if c.echo:
            yield chunk([{"text": c.prompts[i // c.n], "index": i, "logprobs": None,
                          "finish_reason": None} for i in range(job.size)])  # fmt: skip
        while ended < job.size:
            try:
                remaining = deadline - time.monotonic()
                await asyncio.wait_for(job.wake.wait(), timeout=max(remaining, 0))
            except TimeoutError:
                served.scheduler.cancel(job)
                error = APIError(504, "the request took longer than the server's deadline "
                                 f"({server.limits.deadline:g} s)", type="timeout",
                                 code="deadline_exceeded")  # fmt: skip
                yield f"data: {json.dumps(error.body())}\n\n"
                return
            # Under load the chunks of all streams together stay under `chunk_rate` a
            # second: each carries more tokens, and the CPU goes to making them.
            interval = max(limits.stream_interval, served.scheduler.rows / limits.chunk_rate)
            wait = last_sent + interval - time.monotonic()
            if wait > 0 and job.error is None:
                await asyncio.sleep(wait)  # let a few more tokens join this chunk
            if job.error is not None:
                served.scheduler.cancel(job)
                yield f"data: {json.dumps(model_failure(job).body())}\n\n"
                return
            pieces: dict[int, list[str]] = {}
            finish: dict[int, str] = {}
            for choice, event in job.take():
                if hasattr(event, "reason"):
                    finish[choice] = event.reason
                    tokens += event.tokens
                else:
                    pieces.setdefault(choice, []).append(event.text)
            out = []
            for i in sorted(pieces.keys() | finish.keys()):
                text = trims[i].feed("".join(pieces.get(i, [])))
                if i in finish:
                    text += trims[i].end(finish[i])
                if text or i in finish:
                    reason = _reason(finish[i]) if i in finish else None
                    out.append({"text": text, "index": i, "logprobs": None,
                                "finish_reason": reason})  # fmt: skip
            ended += len(finish)
            if out:
                yield chunk(out)
                last_sent = time.monotonic()
        if c.include_usage:
            total = usage["prompt_tokens"] + tokens
            yield chunk([], usage={**usage, "completion_tokens": tokens, "total_tokens": total})
        yield "data: [DONE]\n\n"
    finally:
        server.jobs.discard(job)
        if ended < job.size:
            served.scheduler.cancel(job)  # the client left, or a deadline: free the slots


def _reason(reason: str) -> str:
    return "stop" if reason == "stop" else "length"


async def _disconnect(request: Request) -> None:
    """Returns once the client has gone (the body has been read already)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
