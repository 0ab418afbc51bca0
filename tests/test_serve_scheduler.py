"""The continuous-batching scheduler, against a fake batch: admission, the queue, joining
and leaving between steps, cancellation, failures. No model, no HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from rnngen.serve.scheduler import Draining, Job, QueueFull, Scheduler


@dataclass
class Piece:
    index: int
    text: str


@dataclass
class Done:
    index: int
    text: str
    tokens: int
    reason: str


class FakeBatch:
    """Row with seed s writes the letters of s, s+1, ... one a step; max_tokens of them.
    A prompt "boom" fails to add; `fail_next` makes the next choose() raise."""

    def __init__(self, log: list):
        self.rows: dict[int, dict] = {}
        self.next_id = 0
        self.log = log  # rows per step
        self.fail_next = False

    def __len__(self):
        return len(self.rows)

    def add(self, prompt, seeds, *, max_tokens, **options):
        if prompt == "boom":
            raise ValueError("no such prompt")
        ids = []
        for seed in seeds:
            self.rows[self.next_id] = {"seed": seed, "left": max_tokens, "text": ""}
            ids.append(self.next_id)
            self.next_id += 1
        return ids

    def choose(self):
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the model broke")
        self.log.append(len(self.rows))
        events = []
        for row_id, row in list(self.rows.items()):
            letter = chr(ord("a") + (row["seed"] + len(row["text"])) % 26)
            row["text"] += letter
            row["left"] -= 1
            events.append(Piece(row_id, letter))
            if row["left"] == 0:
                events.append(Done(row_id, row["text"], len(row["text"]), "length"))
                del self.rows[row_id]
        return events

    def advance(self):
        pass

    def drop(self, ids):
        for i in ids:
            self.rows.pop(i, None)


def job(name, loop, *, prompts=("p",), n=1, tokens=5, seed=0):
    seeds = [[seed + i for i in range(n)] for _ in prompts]
    return Job(name, tuple(prompts), n, {"max_tokens": tokens}, seeds, loop)


async def finish(j: Job, timeout: float = 30) -> dict[int, str]:
    """The job's texts by choice (or its error raised)."""
    texts: dict[int, str] = {}
    done: set[int] = set()
    while len(done) < j.size:
        await asyncio.wait_for(j.wake.wait(), timeout)
        if j.error is not None:
            raise j.error
        for choice, event in j.take():
            if isinstance(event, Done):
                done.add(choice)
            else:
                texts[choice] = texts.get(choice, "") + event.text
    return texts


def scheduler(max_batch=4, max_queue=1):
    steps: list[int] = []
    batches: list[FakeBatch] = []

    def new_batch():
        batches.append(FakeBatch(steps))
        return batches[-1]

    s = Scheduler("fake", new_batch, max_batch=max_batch, max_queue=max_queue)
    return s, steps, batches


async def until(predicate, what: str, timeout: float = 30):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def test_jobs_get_their_texts_and_their_rows_leave():
    async def main():
        s, steps, _ = scheduler(max_batch=8)
        s.start()
        loop = asyncio.get_running_loop()
        a, b = job("a", loop, n=3, tokens=4, seed=0), job("b", loop, prompts=("x", "y"), tokens=2)
        s.submit(a)
        s.submit(b)
        assert await finish(a) == {0: "abcd", 1: "bcde", 2: "cdef"}
        assert await finish(b) == {0: "ab", 1: "ab"}
        await until(lambda: s.stats()["reserved_streams"] == 0, "slots freed")
        stats = s.stats()
        assert stats["requests_served"] == 2 and stats["tokens_generated"] == 16
        assert stats["active_streams"] == 0
        s.stop()

    asyncio.run(main())


def test_the_queue_and_its_limit():
    async def main():
        s, steps, _ = scheduler(max_batch=4, max_queue=1)
        loop = asyncio.get_running_loop()
        first = job("first", loop, n=4, tokens=3)
        queued = job("queued", loop, n=2, tokens=2)
        s.submit(first)  # the worker is not started: nothing moves yet
        s.submit(queued)
        with pytest.raises(QueueFull):
            s.submit(job("refused", loop))
        assert s.stats()["queued_requests"] == 1
        s.start()
        await finish(first)
        await finish(queued)  # admitted once the first left
        assert max(steps) == 4  # never more rows than max_batch
        s.stop()

    asyncio.run(main())


def test_a_new_job_joins_the_running_batch_at_the_next_step():
    async def main():
        s, steps, _ = scheduler(max_batch=8)
        loop = asyncio.get_running_loop()
        long = job("long", loop, tokens=10**6)
        s.submit(long)
        s.start()
        await until(lambda: s.stats()["steps"] > 2, "steps")
        short = job("short", loop, tokens=3, seed=1)
        s.submit(short)
        assert await finish(short) == {0: "bcd"}  # same text as alone
        assert 2 in steps  # stepped together
        s.cancel(long)
        await until(lambda: s.stats()["active_streams"] == 0, "the long job dropped")
        assert s.stats()["requests_cancelled"] == 1 and s.stats()["reserved_streams"] == 0
        s.stop()

    asyncio.run(main())


def test_cancelling_a_queued_job_frees_its_place():
    async def main():
        s, _, _ = scheduler(max_batch=1, max_queue=1)
        loop = asyncio.get_running_loop()
        s.submit(job("running", loop, tokens=10**6))
        waiting = job("waiting", loop)
        s.submit(waiting)
        s.cancel(waiting)
        s.submit(job("next", loop))  # its place in the queue is free again
        assert s.stats()["queued_requests"] == 1
        s.stop()

    asyncio.run(main())


def test_a_failing_prompt_fails_its_job_only():
    async def main():
        s, _, _ = scheduler(max_batch=8)
        s.start()
        loop = asyncio.get_running_loop()
        good = job("good", loop, tokens=50)
        bad = job("bad", loop, prompts=("ok", "boom"), tokens=50)
        s.submit(good)
        s.submit(bad)
        with pytest.raises(ValueError):
            await finish(bad)
        assert len((await finish(good))[0]) == 50
        await until(lambda: s.stats()["reserved_streams"] == 0, "slots freed")
        s.stop()

    asyncio.run(main())


def test_a_failing_step_fails_the_jobs_in_it_and_the_server_goes_on():
    async def main():
        s, _, batches = scheduler(max_batch=8)
        loop = asyncio.get_running_loop()
        victim = job("victim", loop, tokens=10**6)
        s.submit(victim)
        s.start()
        await until(lambda: s.stats()["steps"] > 0, "a step")
        batches[-1].fail_next = True
        with pytest.raises(RuntimeError, match="broke"):
            await finish(victim)
        await until(lambda: s.stats()["reserved_streams"] == 0, "slots freed")
        later = job("later", loop, tokens=3)
        s.submit(later)
        assert await finish(later) == {0: "abc"}
        assert s.stats()["model_failures"] == 1
        s.stop()

    asyncio.run(main())


def test_draining_takes_no_new_jobs():
    async def main():
        s, _, _ = scheduler()
        s.drain()
        with pytest.raises(Draining):
            s.submit(job("late", asyncio.get_running_loop()))

    asyncio.run(main())


def test_the_server_reaches_the_library_only_through_what_it_is_handed():
    """serve/ imports no library module but errors (and config): the models, their batches
    and n-grams come from the command, through the API's objects (DESIGN: cli and serve import
    the API)."""
    import ast
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "rnngen" / "serve"
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("rnngen"):
                    allowed = ("rnngen.serve", "rnngen.errors", "rnngen.config", "rnngen.api")
                    assert name.startswith(allowed), (path.name, name)
                assert not name.startswith(("torch", "numpy")), (path.name, name)


def test_the_command_line_does_not_load_the_server_stack():
    import subprocess
    import sys

    heavy = "('torch', 'starlette', 'uvicorn')"
    code = f"import sys, rnngen.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
