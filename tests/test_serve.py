"""`rnngen serve` as a real process on a free 127.0.0.1 port, driven by httpx and by the official
`openai` client: the OpenAI shapes, SSE framing, seeds equal to `rnngen sample`, stop strings,
many streams at once, disconnects, limits, bad requests, the API key, SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from contextlib import ExitStack

import httpx
import pytest
from serving import ServerProcess, sse_events, tiny_checkpoint
from typer.testing import CliRunner

from rnngen.cli import app

openai = pytest.importorskip("openai")

MODEL = "tiny"
TIMEOUT = httpx.Timeout(120)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def server(checkpoint):
    process = ServerProcess(str(checkpoint), "--max-batch", "32", "--max-queue", "64",
                            "--max-tokens-cap", "100000", "--max-prompt-tokens", "200",
                            "--max-body", "20000")  # fmt: skip
    yield process
    assert process.stop() == 0


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


def complete(client, **body) -> dict:
    response = client.post("/v1/completions", json={"model": MODEL, **body})
    assert response.status_code == 200, response.text
    return response.json()


def stream(client, **body) -> tuple[list[dict], httpx.Response]:
    """The chunks of a streamed completion (checking the framing and the final [DONE])."""
    with client.stream("POST", "/v1/completions",
                       json={"model": MODEL, "stream": True, **body}) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
    assert events[-1] == "[DONE]" and "[DONE]" not in events[:-1]
    return [json.loads(e) for e in events[:-1]], response


def streamed_text(chunks: list[dict], choice: int = 0) -> str:
    return "".join(c["text"] for chunk in chunks for c in chunk["choices"] if c["index"] == choice)


def sample_cli(checkpoint, prompt: str, length: int, seed: int, n: int = 1, *extra) -> list[dict]:
    result = CliRunner().invoke(app, ["sample", str(checkpoint), "--prompt", prompt, "--length",
                                      str(length), "--seed", str(seed), "-n", str(n), "--json",
                                      "-q", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_models_health_and_the_startup_line(server, client):
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and [m["id"] for m in models["data"]] == [MODEL]
    health = client.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert "serving tiny at http://127.0.0.1:" in server.log
    assert "max batch 32" in server.log and "no API key" in server.log


def test_a_completion_and_its_usage(client, checkpoint):
    from rnngen.api import load

    body = complete(client, prompt="the cat", max_tokens=25, seed=4)
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "length" and choice["index"] == 0
    tokens = len(load(checkpoint).tokenizer.encode("the cat"))
    assert body["usage"] == {"prompt_tokens": tokens, "completion_tokens": 25,
                             "total_tokens": tokens + 25}  # fmt: skip
    assert complete(client, prompt="the cat", max_tokens=25, seed=4)["choices"] == [choice]


def test_streaming_frames_and_text(client):
    whole = complete(client, prompt="a dog", max_tokens=40, seed=9, n=2)
    chunks, response = stream(client, prompt="a dog", max_tokens=40, seed=9, n=2,
                              stream_options={"include_usage": True})  # fmt: skip
    assert response.headers["x-request-id"] == chunks[0]["id"]
    for chunk in chunks[:-1]:
        assert chunk["object"] == "text_completion" and chunk["model"] == MODEL
        for c in chunk["choices"]:
            assert c["text"] or c["finish_reason"]  # no empty pieces
    finishes = [c for chunk in chunks for c in chunk["choices"] if c["finish_reason"]]
    assert sorted((c["index"], c["finish_reason"]) for c in finishes) == [
        (0, "length"),
        (1, "length"),
    ]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 80
    for i in range(2):
        assert streamed_text(chunks, i) == whole["choices"][i]["text"]


def test_the_openai_client(server):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    result = client.completions.create(model=MODEL, prompt="the", max_tokens=12, seed=1)
    assert result.usage.completion_tokens == 12 and result.choices[0].finish_reason == "length"
    pieces = client.completions.create(model=MODEL, prompt="the", max_tokens=12, seed=1,
                                       stream=True)  # fmt: skip
    assert "".join(chunk.choices[0].text for chunk in pieces) == result.choices[0].text
    assert [m.id for m in client.models.list()] == [MODEL]
    with pytest.raises(openai.NotFoundError, match="completions"):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])


def test_seeds_give_rnngen_samples_text_alone_and_in_a_batch_of_16(server, checkpoint):
    """No --precision pinned: the server and `rnngen sample` choose it the same way."""
    prompt, length, seed = "the big dog", 60, 11
    reference = [s["text"] for s in sample_cli(checkpoint, prompt, length, seed, 16)]
    body = {"model": MODEL, "prompt": prompt, "max_tokens": length, "temperature": 1.0}

    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        alone = client.post("/v1/completions", json={**body, "seed": seed + 3}).json()
        assert alone["choices"][0]["text"] == reference[3]
        together = client.post("/v1/completions", json={**body, "seed": seed, "n": 16}).json()
        assert [c["text"] for c in together["choices"]] == reference

    async def concurrently() -> list[str]:  # 16 requests stepped in one batch
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
            replies = await asyncio.gather(*(
                client.post("/v1/completions", json={**body, "seed": seed + i, "stream": True})
                for i in range(16)))  # fmt: skip
        texts = []
        for reply in replies:
            chunks = [json.loads(e) for e in reply.text.split("data: ")[1:-1]]
            texts.append(streamed_text(chunks))
        return texts

    assert asyncio.run(concurrently()) == reference


def test_greedy_and_sampled_streams_side_by_side_give_rnngen_samples_text(server, checkpoint):
    """Each stream runs at the precision the one rule gives its temperature (greedy: fp32),
    as `rnngen sample` does with no --precision, whatever runs beside it."""
    prompt, length = "the cat", 40
    greedy = sample_cli(checkpoint, prompt, length, 1, 1, "--temp", "0")[0]["text"]
    sampled = sample_cli(checkpoint, prompt, length, 8, 1, "--temp", "0.8")[0]["text"]
    body = {"model": MODEL, "prompt": prompt, "max_tokens": length, "stream": True}

    async def together() -> list[str]:
        async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
            replies = await asyncio.gather(
                client.post("/v1/completions", json={**body, "temperature": 0}),
                client.post("/v1/completions", json={**body, "temperature": 0.8, "seed": 8}),
            )
        return [streamed_text([json.loads(e) for e in r.text.split("data: ")[1:-1]])
                for r in replies]  # fmt: skip

    assert asyncio.run(together()) == [greedy, sampled]


def test_stop_strings_across_piece_boundaries(client, checkpoint):
    """A stop made of the end of one piece and the start of the next: the text ends before
    it (OpenAI's rule; `rnngen sample` keeps the stop), streamed or not."""
    chunks, _ = stream(client, prompt="the", max_tokens=80, seed=5)
    pieces = [c["text"] for chunk in chunks for c in chunk["choices"] if c["text"]]
    k = next(i for i in range(1, len(pieces)) if pieces[i - 1] and pieces[i])
    stop = pieces[k - 1][-1] + pieces[k][0]
    full = "".join(pieces)
    expected = full[: full.index(stop)]
    body = complete(client, prompt="the", max_tokens=80, seed=5, stop=[stop, "\x00never"])
    assert body["choices"][0] == {**body["choices"][0], "text": expected, "finish_reason": "stop"}
    chunks, _ = stream(client, prompt="the", max_tokens=80, seed=5, stop=[stop, "\x00never"])
    assert streamed_text(chunks) == expected
    sample = sample_cli(checkpoint, "the", 80, 5, 1, "--stop", stop)[0]
    assert sample["text"] == expected + stop and sample["finish"] == "stop"


def test_32_concurrent_streams_all_complete(server):
    lengths = [5 + 7 * i for i in range(32)]

    async def main():
        client = openai.AsyncOpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0,
                                    timeout=120)  # fmt: skip

        async def one(i: int):
            chunks = await client.completions.create(
                model=MODEL, prompt=f"line {i}", max_tokens=lengths[i], seed=i, stream=True,
                stream_options={"include_usage": True})  # fmt: skip
            finish, usage = None, None
            async for chunk in chunks:
                if chunk.choices and chunk.choices[0].finish_reason:
                    finish = chunk.choices[0].finish_reason
                usage = chunk.usage or usage
            return finish, usage.completion_tokens

        results = await asyncio.gather(*(one(i) for i in range(32)))
        await client.close()
        return results

    assert asyncio.run(main()) == [("length", n) for n in lengths]
    server.wait_for(lambda s: s["reserved_streams"] == 0, "all slots free")


def test_a_client_that_leaves_mid_stream_frees_its_slot(server, client):
    before = server.stats()["requests_cancelled"]
    with client.stream("POST", "/v1/completions", json={"model": MODEL, "prompt": "x",
                       "max_tokens": 100000, "stream": True}) as response:  # fmt: skip
        lines = response.iter_lines()  # kept: a dropped iterator closes the connection
        next(lines)
        assert server.stats()["active_streams"] >= 1
    server.wait_for(lambda s: s["active_streams"] == 0 and s["reserved_streams"] == 0
                    and s["requests_cancelled"] == before + 1, "the slot freed")  # fmt: skip


BAD = [
    (b"{not json", 400, "invalid_json", None),
    (b"[1, 2]", 400, "invalid_json", None),
    ({"prompt": "x"}, 400, "missing_field", "model"),
    ({"model": "nope"}, 404, "model_not_found", "model"),
    ({"model": "../tiny.safetensors"}, 404, "model_not_found", "model"),
    ({"model": MODEL, "temperature": -0.5}, 400, "invalid_value", "temperature"),
    ({"model": MODEL, "temperature": "hot"}, 400, "invalid_type", "temperature"),
    ({"model": MODEL, "top_p": 0}, 400, "invalid_value", "top_p"),
    ({"model": MODEL, "top_p": 1.5}, 400, "invalid_value", "top_p"),
    ({"model": MODEL, "top_k": -1}, 400, "invalid_value", "top_k"),
    ({"model": MODEL, "n": 0}, 400, "invalid_value", "n"),
    ({"model": MODEL, "n": 33}, 400, "invalid_value", "n"),
    ({"model": MODEL, "max_tokens": 0}, 400, "invalid_value", "max_tokens"),
    ({"model": MODEL, "max_tokens": 100001}, 400, "invalid_value", "max_tokens"),
    ({"model": MODEL, "max_tokens": "5"}, 400, "invalid_type", "max_tokens"),
    ({"model": MODEL, "frobnicate": 1}, 400, "unknown_field", "frobnicate"),
    ({"model": MODEL, "prompt": 5}, 400, "invalid_type", "prompt"),
    ({"model": MODEL, "prompt": [1, 2]}, 400, "invalid_type", "prompt"),
    ({"model": MODEL, "stop": ["a", "b", "c", "d", "e"]}, 400, "invalid_value", "stop"),
    ({"model": MODEL, "stop": ""}, 400, "invalid_value", "stop"),
    ({"model": MODEL, "seed": -1}, 400, "invalid_value", "seed"),
    ({"model": MODEL, "seed": 1.5}, 400, "invalid_type", "seed"),
    ({"model": MODEL, "stream": "yes"}, 400, "invalid_type", "stream"),
    ({"model": MODEL, "stream_options": {"include_usage": True}}, 400, "invalid_value",
     "stream_options"),
    ({"model": MODEL, "logprobs": 3}, 400, "unsupported_field", "logprobs"),
    ({"model": MODEL, "mix": 2}, 400, "invalid_value", "mix"),
    ({"model": MODEL, "mix": "half"}, 400, "invalid_value", "mix"),
    ({"model": MODEL, "ngram": True, "mix": 0.5}, 400, "invalid_value", "mix"),
    ({"model": MODEL, "ngram": True}, 400, "ngram_unavailable", "ngram"),  # no training text
    ({"model": MODEL, "prompt": "the " * 500}, 413, "prompt_too_long", "prompt"),
    ({"model": MODEL, "prompt": "x" * 30000}, 413, "request_too_large", None),
]  # fmt: skip


@pytest.mark.parametrize("body, status, code, param", BAD)
def test_every_bad_request_gets_an_error_object(client, body, status, code, param):
    if isinstance(body, bytes):
        response = client.post("/v1/completions", content=body,
                               headers={"content-type": "application/json"})  # fmt: skip
    else:
        response = client.post("/v1/completions", json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["code"], error["param"]) == (code, param)
    assert error["message"] and "Traceback" not in response.text


def test_other_routes_answer_with_error_objects(client):
    for method, path, status in [("GET", "/v1/completions", 405), ("GET", "/nope", 404),
                                 ("POST", "/v1/chat/completions", 404)]:  # fmt: skip
        response = client.request(method, path, json={})
        assert response.status_code == status and response.json()["error"]["message"]
    response = client.post("/v1/score", json={"model": MODEL, "lines": []})
    assert response.status_code == 400 and response.json()["error"]["param"] == "lines"


def test_bad_requests_leave_the_server_serving(server, client):
    assert complete(client, prompt="ok", max_tokens=3)["usage"]["completion_tokens"] == 3
    assert server.stats()["model_failures"] == 0
    assert "Traceback" not in server.log


def test_scoring_as_rnngen_score(client, checkpoint):
    from rnngen.api import load

    lines = ["the cat sat.", "mat the on"]
    body = client.post("/v1/score", json={"model": MODEL, "lines": lines}).json()
    expected = load(checkpoint).score(lines)
    assert [(d["text"], d["tokens"]) for d in body["data"]] == [(s.text, s.tokens)
                                                                for s in expected]  # fmt: skip
    for got, want in zip(body["data"], expected, strict=True):
        assert got["logprob"] == pytest.approx(want.logprob, rel=1e-5)


def test_the_access_log_names_each_request(server, client):
    reply = complete(client, prompt="x", max_tokens=2)
    server.wait_for(lambda s: True, "one more request")  # the log line is written by now
    assert f"POST /v1/completions 200 {reply['id']}" in server.log


@pytest.fixture(scope="module")
def small_server(checkpoint):
    """Two streams at a time, one request waiting, and an API key."""
    options = ["--max-batch", "2", "--max-queue", "1", "--max-tokens-cap", "100000"]
    process = ServerProcess(str(checkpoint), *options, env={"RNNGEN_API_KEY": "sekret"})
    yield process
    assert process.stop() == 0


def test_the_api_key(small_server):
    url = small_server.url
    assert httpx.get(f"{url}/v1/models").status_code == 401
    wrong = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    right = httpx.get(f"{url}/v1/models", headers={"authorization": "Bearer sekret"})
    assert right.status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200  # health and the page stay open
    assert "API key required" in small_server.log


def test_a_full_queue_answers_429(small_server):
    headers = {"authorization": "Bearer sekret"}
    long = {"model": MODEL, "prompt": "x", "max_tokens": 100000, "stream": True}
    with httpx.Client(base_url=small_server.url, headers=headers, timeout=TIMEOUT) as client:
        streams = [client.stream("POST", "/v1/completions", json=long) for _ in range(2)]
        lines = [s.__enter__().iter_lines() for s in streams]
        for line in lines:
            next(line)
        queued: list[httpx.Response] = []
        waiter = threading.Thread(target=lambda: queued.append(client.post(
            "/v1/completions", json={"model": MODEL, "prompt": "y", "max_tokens": 3})))  # fmt: skip
        waiter.start()
        small_server.wait_for(lambda s: s["queued_requests"] == 1, "one request queued")
        refused = client.post("/v1/completions", json={"model": MODEL, "max_tokens": 3})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        for s in streams:
            s.__exit__(None, None, None)  # the streams leave; the queued request runs
        waiter.join(120)
    assert queued[0].status_code == 200 and queued[0].json()["usage"]["completion_tokens"] == 3


def test_sigterm_lets_streams_in_flight_finish(checkpoint):
    process = ServerProcess(str(checkpoint), "--grace", "30")
    lengths = [300, 600]
    results: dict[int, list[str]] = {}

    def read(i: int, lines, first: str) -> None:
        results[i] = [first, *lines]

    with httpx.Client(base_url=process.url, timeout=TIMEOUT) as client, ExitStack() as stack:
        threads = []
        for i, length in enumerate(lengths):
            body = {"model": MODEL, "prompt": "x", "max_tokens": length, "stream": True}
            response = stack.enter_context(client.stream("POST", "/v1/completions", json=body))
            lines = response.iter_lines()
            threads.append(threading.Thread(target=read, args=(i, lines, next(lines))))
        process.process.send_signal(signal.SIGTERM)
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert process.process.wait(120) == 0
    for i in range(len(lengths)):
        events = [line[len("data: ") :] for line in results[i] if line]
        assert events[-1] == "[DONE]"
        finishes = [json.loads(e)["choices"][0]["finish_reason"] for e in events[:-1]]
        assert finishes[-1] == "length"
    assert "SIGTERM: draining" in process.log


def test_sigterm_ends_what_outlasts_the_grace_cleanly(checkpoint):
    process = ServerProcess(str(checkpoint), "--grace", "0.5", "--max-tokens-cap", "100000")
    with httpx.Client(base_url=process.url, timeout=TIMEOUT) as client, client.stream(
        "POST", "/v1/completions",
        json={"model": MODEL, "prompt": "x", "max_tokens": 100000, "stream": True},
    ) as response:  # fmt: skip
        lines = response.iter_lines()
        next(lines)
        # and one that waits for its whole answer
        waiting: list[httpx.Response] = []
        body = {"model": MODEL, "prompt": "y", "max_tokens": 100000}
        thread = threading.Thread(target=lambda: waiting.append(httpx.post(
            f"{process.url}/v1/completions", json=body, timeout=TIMEOUT)))  # fmt: skip
        thread.start()
        process.wait_for(lambda s: s["active_streams"] == 2, "both running")
        process.process.send_signal(signal.SIGTERM)
        rest = [line for line in lines if line]
        thread.join(120)
    assert process.process.wait(120) == 0
    last = json.loads(rest[-1][len("data: ") :])
    assert last["error"]["code"] == "shutting_down"
    assert waiting[0].status_code == 503
    assert waiting[0].json()["error"]["code"] == "shutting_down"


def test_the_deadline(checkpoint):
    process = ServerProcess(str(checkpoint), "--deadline", "1", "--max-tokens-cap", "100000")
    body = {"model": MODEL, "prompt": "x", "max_tokens": 100000}
    with httpx.Client(base_url=process.url, timeout=TIMEOUT) as client:
        late = client.post("/v1/completions", json=body)
        assert late.status_code == 504 and late.json()["error"]["code"] == "deadline_exceeded"
        with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as reply:
            events = sse_events(reply)
        assert json.loads(events[-1])["error"]["code"] == "deadline_exceeded"
        process.wait_for(lambda s: s["reserved_streams"] == 0, "both cancelled")
    assert process.stop() == 0
