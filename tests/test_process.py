"""The real process as the subject: what only a new interpreter shows (issue 22 item 3).

Every other test runs the commands in this process (conftest.run_cli); here are the ones whose
subject is the process itself: start-up (what `--help` and `import rnngen` import, the exit
status), signals (SIGINT and SIGTERM during training, and the resume after them; SIGTERM during
an n-gram build), closed and full streams (stdout a pipe closed by `| head`, /dev/full, stdin
closed by `<&-`), a full disk (RLIMIT_FSIZE), streaming line in, line out (`score`), a FIFO
given as a checkpoint (a process with a timeout, so a regression cannot hang the suite), and
files the user may not read (root needs a process without CAP_DAC_OVERRIDE: setpriv).
torchrun stays in test_distributed.py (with its launcher helpers); the server's SIGTERM in
test_serve.py (with its served-process helper, tests/serving.py).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import (
    OLD,
    interrupt_once_written,
    listing,
    one_error_line,
    run_cli,
    run_process,
    tiny_text,
    untrained_checkpoint,
)
from rnngen import __version__
from rnngen.checkpoint import load_model, state_path
from rnngen.ngram.external import SCRATCH_PREFIX

HAS_DEV_FULL = os.path.exists("/dev/full") and stat.S_ISCHR(os.stat("/dev/full").st_mode)
SMALL = ["--layers", "1", "--hidden", "16", "--embed", "16", "--batch-size", "4",
         "--seq-len", "16", "--device", "cpu", "--precision", "fp32", "--quiet"]  # fmt: skip


# -- start-up: exit status, and what a command's start imports ---------------------------------


def test_version_and_help():
    result = run_cli("--version")
    assert result.returncode == 0 and __version__ in result.stdout
    result = run_process("--help")  # the real start-up (it imports no torch: cheap)
    assert result.returncode == 0 and "tokenize" in result.stdout


def test_usage_error_exits_2():
    result = run_process("tokenize", "--no-such-option")  # the real process's exit status
    assert result.returncode == 2
    assert result.stdout == ""


def test_import_rnngen_does_not_import_torch():
    code = "import sys, rnngen\nrnngen.__version__\nassert 'torch' not in sys.modules\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_help_imports_neither_torch_nor_matplotlib():
    code = (
        "import sys\nfrom rnngen.cli import app\n"
        "for cmd in (['--help'], ['plot', '--help'], ['gradients', '--help']):\n"
        "    try:\n        app(cmd, prog_name='rnngen')\n    except SystemExit:\n        pass\n"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# -- stdout: a full device, a closed pipe; a full disk (RLIMIT_FSIZE) --------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """An untrained tiny char model (conftest.untrained_checkpoint)."""
    return untrained_checkpoint(tmp_path_factory)


def run(*args: str, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, fsize=None, cwd=None):
    """`python -m rnngen ARGS` in a subprocess; fsize: a file size limit in bytes."""

    def limit():
        if fsize is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run(
        [sys.executable, "-m", "rnngen", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        stdin=stdin,
        text=True,
        preexec_fn=limit,
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=300,
    )


def stdout_cases(checkpoint: Path) -> dict[str, list[str]]:
    text = str(checkpoint.parent / "text.txt")
    return {
        "sample": ["sample", str(checkpoint), "--length", "50", "-q"],
        "synth": ["synth", "--lines", "50"],
        "eval": ["eval", str(checkpoint), "--data", text, "--train", text, "-q"],
        "score": ["score", str(checkpoint), text],
        "info": ["info", str(checkpoint)],
    }


SLOW = pytest.mark.slow


@pytest.mark.skipif(not HAS_DEV_FULL, reason="no /dev/full")
@pytest.mark.parametrize(
    "command",
    [
        "synth",
        "score",
        pytest.param("sample", marks=SLOW),
        pytest.param("eval", marks=SLOW),
        pytest.param("info", marks=SLOW),
    ],
)
def test_stdout_to_a_full_device_is_one_error_line(checkpoint, command):
    with open("/dev/full", "w") as full:
        result = run(*stdout_cases(checkpoint)[command], stdout=full)
    assert result.returncode == 1
    one_error_line(result.stderr, "cannot write to stdout")


def closed_pipe(*args: str):
    """Run with stdout a pipe whose reader is gone before anything is written."""
    read, write = os.pipe()
    os.close(read)
    try:
        return run(*args, stdout=write)
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "command",
    [
        "--help",
        "eval --help",
        "synth",
        "info",
        pytest.param("eval", marks=SLOW),
        pytest.param("score", marks=SLOW),
    ],
)
def test_a_closed_pipe_ends_quietly_with_exit_0(checkpoint, command):
    cases = stdout_cases(checkpoint)
    args = cases[command] if command in cases else command.split()
    result = closed_pipe(*args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr.lower()


@pytest.mark.parametrize("command", ["tokenize", "synth", "arpa", "spool"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, command):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(2000))
    out = tmp_path / "out"
    out.mkdir()
    before = listing(out)
    args = {
        "tokenize": ["tokenize", str(corpus), "-o", str(out / "tok"), "--kind", "char"],
        "synth": ["synth", "--lines", "2000", "-o", str(out / "synth.txt")],
        "arpa": ["ngram", str(corpus), "--test", str(corpus), "--arpa", str(out / "m.arpa")],
        "spool": ["tokenize", "-", "-o", str(out / "tok"), "--kind", "char"],
    }[command]
    with open(corpus) as stdin:
        result = run(*args, fsize=20_000, stdin=stdin, cwd=tmp_path)
    assert result.returncode == 1
    one_error_line(result.stderr, "File too large")
    assert listing(out) == before  # no temporary file, spool or half-written directory


def test_a_closed_pipe_ends_quietly(checkpoint):
    """`rnngen sample | head -c 100`: no BrokenPipeError traceback, no error exit."""
    command = [sys.executable, "-m", "rnngen", "sample", str(checkpoint), "--length", "100000",
               "-n", "2", "-q"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = process.stdout.read(100)
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert len(head) == 100
    assert process.returncode == 0 and stderr == b""


# -- stdin: closed (<&-), and streamed line in, line out ---------------------------------------


def run_closed_stdin(*args: str, cwd=None):
    """`python -m rnngen ARGS <&-`: no stdin at all (sys.stdin is None)."""
    return subprocess.run(
        [sys.executable, "-m", "rnngen", *args],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.close(0),
        cwd=cwd,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=300,
    )


def test_a_closed_stdin_in_a_real_process(tmp_path):
    """`rnngen tokenize - <&-` (torch-free: a cheap process): the real interpreter's None."""
    result = run_closed_stdin("tokenize", "-", cwd=tmp_path)
    assert result.returncode == 1
    one_error_line(result.stderr, "stdin is closed")
    assert not [p for p in tmp_path.rglob("*") if "stdin" in p.name]


def test_score_streams_one_json_line_per_input_line(trained):
    process = subprocess.Popen(
        [sys.executable, "-m", "rnngen", "score"],
        cwd=trained,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    process.stdin.write("the cat is here.\n")
    process.stdin.flush()
    first = json.loads(process.stdout.readline())  # answered before stdin closes: streaming
    process.stdin.write("zq xv kj.\n")
    process.stdin.close()
    second = json.loads(process.stdout.readline())
    assert process.wait(timeout=60) == 0
    assert first["text"] == "the cat is here." and first["tokens"] == len("the cat is here.\n")
    assert first["logprob"] < 0 and first["ppl"] > 1
    assert first["logprob"] / first["tokens"] > second["logprob"] / second["tokens"]


# -- inputs a process must not block on or may not read ----------------------------------------


FIFO_SCRIPT = """
import json, sys
from typer.testing import CliRunner
import rnngen
from rnngen.cli import app

fifo, corpus, out = sys.argv[1:]
results = {}
for args in (["sample", fifo, "--length", "2"], ["score", fifo], ["eval", fifo], ["info", fifo],
             ["gradients", fifo], ["train", corpus, "--init-from", fifo, "-o", out]):
    result = CliRunner().invoke(app, args, input="a line\\n")
    results[" ".join(args[:1] + args[2:3])] = [result.exit_code, result.stderr]
try:
    rnngen.load(fifo)
except rnngen.RnngenError as e:
    results["load"] = [1, "error: " + str(e)]
print(json.dumps(results))
"""


def test_a_fifo_given_as_a_checkpoint_fails_at_once(tmp_path):
    """A named pipe nobody writes to would block every reader forever: a checkpoint must be a
    regular file, said at once. A subprocess with a timeout, so that a regression fails this
    test instead of hanging the suite."""
    fifo = tmp_path / "m.safetensors"
    os.mkfifo(fifo)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(tiny_text(50))
    args = [sys.executable, "-c", FIFO_SCRIPT, str(fifo), str(corpus), str(tmp_path / "o.st")]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail("a command blocked on a FIFO given as a checkpoint")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 7
    for name, (code, stderr) in results.items():
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1, (name, stderr)
        assert "not a regular file" in lines[0] or "is not a tokenized directory" in lines[0]


UNREADABLE_SCRIPT = """
import json, sys
from typer.testing import CliRunner
from rnngen.cli import app

results = []
for args in json.loads(sys.argv[1]):
    result = CliRunner().invoke(app, args, input="a line\\n")
    results.append([args, result.exit_code, result.stderr])
print(json.dumps(results))
"""


def unreadable_cases(locked_text: str, locked_model: str) -> list[list[str]]:
    """Every command with a file option or argument, given a file it may not read."""
    good, text = "m.safetensors", "corpus.txt"
    return [
        ["train", text, "--init-from", locked_model, "-o", "ft/m.safetensors"],
        ["train", text, "--valid", locked_text, "-o", "v/m.safetensors"],
        ["train", text, "--test", locked_text, "-o", "v/m.safetensors"],
        ["train", locked_text, "-o", "v/m.safetensors"],
        ["tokenize", text, "--valid", locked_text, "-o", "tok"],
        ["tokenize", locked_text, "-o", "tok"],
        ["eval", good, "--data", locked_text],
        ["eval", good, "--data", text, "--train", locked_text],
        ["ngram", locked_text, "--test", text],
        ["ngram", text, "--test", locked_text],
        ["sample", locked_model, "--length", "2"],
        ["score", locked_model],
        ["score", good, locked_text],
        ["info", locked_model],
        ["gradients", good, "--data", locked_text],
        ["plot", "locked.metrics.jsonl"],
    ]


def test_unreadable_files_are_rnngens_own_one_line_error(files):
    """Typer checked readability itself and answered its usage box with exit 2; rnngen's own
    checks say what is wrong, exit 1. As root, the check needs a process without
    CAP_DAC_OVERRIDE (setpriv), which reads any file otherwise."""
    for name in ("locked.txt", "locked.metrics.jsonl"):
        shutil.copy(files / "corpus.txt", files / name)
    shutil.copy(OLD, files / "locked.safetensors")
    for name in ("locked.txt", "locked.metrics.jsonl", "locked.safetensors"):
        os.chmod(files / name, 0)
    cases = unreadable_cases("locked.txt", "locked.safetensors")
    command = [sys.executable, "-c", UNREADABLE_SCRIPT, json.dumps(cases)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: every file is readable")
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all",
                   *command]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=files, timeout=300)
    if done.returncode != 0 and "setpriv" in done.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == len(cases)
    for args, code, stderr in results:
        lines = stderr.strip().splitlines()
        assert code == 1 and lines and "Usage" not in stderr, (args, code, stderr)
        assert lines[-1].startswith("error: ") and "locked" in lines[-1], (args, stderr)
        assert "Permission denied" in lines[-1] or "not readable" in lines[-1], (args, stderr)


# -- signals: training stops, saves and resumes; an n-gram build cleans up ---------------------


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(tiny_text(300))
    return path


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.slow
def test_two_real_trainers_on_one_output(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rnngen",
            "train",
            str(corpus),
            "-o",
            str(out),
            "--time-budget",
            "40s",
            *SMALL,
        ],  # fmt: skip
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = tmp_path / ".m.safetensors.lock"
    deadline = time.time() + 60
    while not (lock.exists() and lock.read_text().strip()) and time.time() < deadline:
        time.sleep(0.1)
    second = run_cli("train", str(corpus), "-o", str(out), "--force", *SMALL)
    # The lock is taken before the data and the model: a Ctrl-C then ends the first run
    # before it trains, with no metrics (by design). Its metrics file opens as the loop
    # starts, once Ctrl-C means "stop and save": signal it only then.
    metrics = out.with_name("m.metrics.jsonl")
    deadline = time.time() + 120
    while (not (list(tmp_path.glob(".m.metrics.jsonl.*.tmp")) or metrics.exists())
           and first.poll() is None and time.time() < deadline):  # fmt: skip
        time.sleep(0.1)
    first.send_signal(signal.SIGINT)
    _, stderr = first.communicate(timeout=120)
    assert second.returncode == 1 and f"being trained by pid {first.pid}" in second.stderr
    assert first.returncode in (0, 130), stderr
    lines = metrics.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # one writer: every line whole


def test_sigterm_saves_state_exits_143_and_resumes(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    command = [sys.executable, "-m", "rnngen", "train", str(corpus), "-o", str(out),
               "--time-budget", "5m", *SMALL[:-1]]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".m.metrics.jsonl.*.tmp")):
        time.sleep(0.1)  # the metrics file opens when training starts: before any evaluation
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr and "--resume" in stderr and stdout == ""
    assert state_path(out).exists() and not out.exists()  # stopped before its first evaluation
    assert leftovers(tmp_path) == []
    result = run_cli("train", str(corpus), "-o", str(out), "--resume", "--max-steps", "4", *SMALL)
    assert result.returncode == 0, result.stderr
    load_model(out)


@pytest.mark.slow
def test_two_quick_ctrl_c_end_cleanly(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    command = [sys.executable, "-m", "rnngen", "train", str(corpus), "-o", str(out),
               "--time-budget", "5m", "--eval-every", "5", *SMALL[:-1]]  # fmt: skip
    for gap in (0.0005, 0.01, 0.05):
        for path in tmp_path.glob("m.*"):
            path.unlink()
        process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        while not out.exists() and process.poll() is None:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        time.sleep(gap)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 130 and "Traceback" not in stderr, stderr
        load_model(out)
        assert leftovers(tmp_path) == []


def test_ctrl_c_saves_state_exits_130_and_resumes(corpus, tmp_path):
    out = tmp_path / "m.safetensors"
    cmd = [
        sys.executable,
        "-m",
        "rnngen",
        "train",
        str(corpus),
        "-o",
        str(out),
        "--time-budget",
        "5m",
        "--eval-every",
        "5",
        *SMALL[:-1],
    ]
    process = interrupt_once_written(cmd, out)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr and stdout == ""
    load_model(out)  # the last good checkpoint is loadable
    result = run_cli(
        "train",
        str(corpus),
        "-o",
        str(out),
        "--resume",
        "--time-budget",
        "5m",
        "--max-steps",
        "30",
        *SMALL,
    )
    assert result.returncode == 0, result.stderr


SIGTERM_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from rnngen.ngram import KneserNey, external
    from rnngen.ngram.external import Plan

    original = external.Column.append

    def slow(self, rows):
        original(self, rows)
        if self.on_disk:
            open(sys.argv[2], "w").close()  # spilled: tell the parent, and take our time
            time.sleep(0.05)

    external.Column.append = slow
    ids = np.random.default_rng(0).integers(0, 50, 20000)
    plan = Plan(budget=0, chunk=500, block=200, table=100, store=0, fan_in=2)
    KneserNey.fit(ids, 5, 50, memory=plan, scratch_dir=sys.argv[1])
    """
)


def test_sigterm_removes_the_scratch_directory(tmp_path):
    scratch, ready = tmp_path / "scratch", tmp_path / "ready"
    child = subprocess.Popen([sys.executable, "-c", SIGTERM_CHILD, str(scratch), str(ready)])
    try:
        for _ in range(600):
            if ready.exists() or child.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"])
        assert ready.exists(), "the build never spilled"
        assert any(p.name.startswith(SCRATCH_PREFIX) for p in scratch.iterdir())
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == -signal.SIGTERM  # ended by SIGTERM, as by default
    finally:
        if child.poll() is None:
            child.kill()
    assert list(scratch.iterdir()) == []
