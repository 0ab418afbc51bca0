"""`rnngen serve` under load; prints one JSON line of figures.

The load generator is not ours: the official `openai` client (AsyncOpenAI) under asyncio, in
this process; the server is `python -m rnngen serve CHECKPOINT` in another, on a free
127.0.0.1 port. Every request streams (`stream_options.include_usage`), so a response is
whole only if it ends with its usage chunk, its finish_reason and its full length.

Modes (any combination; figures per mode):
- levels: for each number of clients (default 1, 8, 32, 64), that many clients each send
  streaming completions back to back for --duration seconds. Figures: aggregate generated
  tokens/s (usage counts of the requests that ended in the window / the window), time to
  first token (request sent -> first chunk with text) p50/p99, inter-token latency (per
  request: (last chunk - first chunk) / (tokens - 1)) p50/p99, chunk gaps p50/p99 and
  tokens per chunk (a slow reader gets several tokens a chunk), and `ratio_32_to_1`.
- --soak SECONDS: 32 clients for that long: failed requests, truncated streams (no usage
  chunk, wrong length or finish_reason), and the server's resident memory (VmRSS) sampled
  every 5 s: after the first minute, at the end, the largest after the first minute.
- --overload: a server with --max-batch 16 --max-queue 16 and 4x16 = 64 clients for
  --duration seconds: counts of 200, 429, 5xx, other errors and timeouts (a hang).

    python benchmarks/bench_serve.py CHECKPOINT [--levels 1,8,32,64] [--duration 20]
        [--max-tokens 200] [--soak 600] [--overload] [--no-levels]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time

import openai

PROMPTS = ["ROMEO:", "JULIET:\nO", "First Citizen:\nWe", "KING HENRY", "The ", "\n", "MENENIUS:"]
REQUEST_TIMEOUT = 120.0


class Server:
    def __init__(self, checkpoint: str, *options: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rnngen", "serve", checkpoint, "--port", "0", "-q", *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.url = ""
        self.log: list[str] = []
        ready = threading.Event()

        def read():
            for line in self.process.stderr:
                self.log.append(line)
                found = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
                if found and not self.url:
                    self.url = found.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(120) or not self.url:
            raise SystemExit("the server did not start:\n" + "".join(self.log))

    def rss_mib(self) -> float:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> int:
        self.process.terminate()
        return self.process.wait(60)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class Tally:
    def __init__(self):
        self.ttft: list[float] = []
        self.itl: list[float] = []
        self.gaps: list[float] = []
        self.tokens = 0
        self.chunks = 0
        self.ok = self.truncated = self.failed = self.rate_limited = self.server_errors = 0
        self.timeouts = 0
        self.errors: dict[str, int] = {}


async def one_request(client, model: str, prompt: str, seed: int, max_tokens: int,
                      tally: Tally, window_end: float) -> None:  # fmt: skip
    sent = time.perf_counter()
    first = last = None
    usage = finish = None
    chunks = 0
    try:
        stream = await client.completions.create(
            model=model, prompt=prompt, max_tokens=max_tokens, seed=seed, stream=True,
            temperature=0.8, stream_options={"include_usage": True})  # fmt: skip
        async for chunk in stream:
            now = time.perf_counter()
            if chunk.choices and chunk.choices[0].text:
                if first is None:
                    first = now
                elif last is not None:
                    tally.gaps.append(now - last)
                last = now
                chunks += 1
            if chunk.choices and chunk.choices[0].finish_reason:
                finish = chunk.choices[0].finish_reason
            if chunk.usage:
                usage = chunk.usage
    except openai.RateLimitError:
        tally.rate_limited += 1
        await asyncio.sleep(1.0)  # as its Retry-After says
        return
    except openai.APITimeoutError:
        tally.timeouts += 1
        return
    except openai.APIStatusError as e:
        if e.status_code >= 500:
            tally.server_errors += 1
        tally.failed += 1
        tally.errors[str(e.status_code)] = tally.errors.get(str(e.status_code), 0) + 1
        return
    except Exception as e:  # a cut connection, a protocol error: a failure
        tally.failed += 1
        tally.errors[type(e).__name__] = tally.errors.get(type(e).__name__, 0) + 1
        return
    if usage is None or finish != "length" or usage.completion_tokens != max_tokens:
        tally.truncated += 1
        return
    tally.ok += 1
    if time.perf_counter() <= window_end:
        tally.tokens += usage.completion_tokens
    tally.chunks += chunks
    if first is not None:
        tally.ttft.append(first - sent)
        if last is not None and usage.completion_tokens > 1 and last > first:
            tally.itl.append((last - first) / (usage.completion_tokens - 1))


async def load(url: str, model: str, clients: int, duration: float, max_tokens: int,
               sample_rss=None) -> tuple[Tally, float]:  # fmt: skip
    """`clients` clients sending back to back for `duration` s; the tally and the window."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="bench", max_retries=0,
                                timeout=REQUEST_TIMEOUT)  # fmt: skip
    tally = Tally()
    start = time.perf_counter()
    window_end = start + duration

    async def worker(i: int) -> None:
        n = 0
        while time.perf_counter() < window_end:
            prompt = PROMPTS[(i + n) % len(PROMPTS)]
            await one_request(client, model, prompt, 1000 * i + n, max_tokens, tally, window_end)
            n += 1

    async def sampler() -> None:
        while time.perf_counter() < window_end:
            sample_rss(time.perf_counter() - start)
            await asyncio.sleep(5)

    tasks = [worker(i) for i in range(clients)] + ([sampler()] if sample_rss else [])
    await asyncio.gather(*tasks)
    await client.close()
    return tally, duration


def level_figures(tally: Tally, window: float) -> dict:
    ms = lambda v: None if v is None else round(1000 * v, 1)  # noqa: E731
    return {
        "tokens_per_s": round(tally.tokens / window, 1),
        "requests_ok": tally.ok, "truncated": tally.truncated, "failed": tally.failed,
        "ttft_ms_p50": ms(percentile(tally.ttft, 50)),
        "ttft_ms_p99": ms(percentile(tally.ttft, 99)),
        "itl_ms_p50": ms(percentile(tally.itl, 50)), "itl_ms_p99": ms(percentile(tally.itl, 99)),
        "chunk_gap_ms_p50": ms(percentile(tally.gaps, 50)),
        "chunk_gap_ms_p99": ms(percentile(tally.gaps, 99)),
        "tokens_per_chunk": round(tally.ok and (tally.tokens / max(tally.chunks, 1)), 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--no-levels", action="store_true")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--soak", type=float, default=0.0)
    parser.add_argument("--overload", action="store_true")
    parser.add_argument("--server-option", action="append", default=[])
    a = parser.parse_args()
    model = os.path.basename(a.checkpoint).removesuffix(".safetensors")
    out: dict = {"bench": "serve", "date": time.strftime("%Y-%m-%d"),
                 "machine": platform.processor() or platform.machine(),
                 "cpus": os.cpu_count(), "max_tokens": a.max_tokens,
                 "load_generator": f"openai {openai.__version__} AsyncOpenAI"}  # fmt: skip
    if not a.no_levels or a.soak:
        server = Server(a.checkpoint, "--max-batch", "64", "--max-queue", "256",
                        *a.server_option)  # fmt: skip
        try:
            asyncio.run(load(server.url, model, 1, 3, a.max_tokens))  # warm-up
            if not a.no_levels:
                levels = {}
                for clients in map(int, a.levels.split(",")):
                    tally, window = asyncio.run(load(server.url, model, clients, a.duration,
                                                     a.max_tokens))  # fmt: skip
                    levels[str(clients)] = level_figures(tally, window)
                out["levels"] = levels
                if "1" in levels and "32" in levels:
                    out["ratio_32_to_1"] = round(
                        levels["32"]["tokens_per_s"] / levels["1"]["tokens_per_s"], 2)  # fmt: skip
            if a.soak:
                samples: list[tuple[float, float]] = []
                tally, window = asyncio.run(load(
                    server.url, model, 32, a.soak, a.max_tokens,
                    sample_rss=lambda t: samples.append((t, server.rss_mib()))))  # fmt: skip
                after = [rss for t, rss in samples if t >= 60]
                out["soak"] = {
                    "seconds": a.soak, "clients": 32, **level_figures(tally, window),
                    "rss_mib_at_60s": round(after[0], 1) if after else None,
                    "rss_mib_end": round(samples[-1][1], 1) if samples else None,
                    "rss_mib_max_after_60s": round(max(after), 1) if after else None,
                    "errors": tally.errors,
                }  # fmt: skip
        finally:
            out["server_exit"] = server.stop()
    if a.overload:
        server = Server(a.checkpoint, "--max-batch", "16", "--max-queue", "16",
                        *a.server_option)  # fmt: skip
        try:
            tally, window = asyncio.run(load(server.url, model, 64, a.duration, a.max_tokens))
            out["overload"] = {
                "max_batch": 16, "max_queue": 16, "clients": 64, "seconds": window,
                "ok": tally.ok, "rate_limited_429": tally.rate_limited,
                "server_errors_5xx": tally.server_errors, "timeouts": tally.timeouts,
                "truncated": tally.truncated, "other_failures": tally.failed - tally.server_errors,
                "errors": tally.errors,
            }  # fmt: skip
        finally:
            out["overload_server_exit"] = server.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
