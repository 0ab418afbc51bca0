"""Kneser-Ney n-gram build speed and memory; prints one JSON line of figures.

Figures (times are the median of 5 rounds; a round runs rnngen's library, rnngen's CLI and
KenLM's lmplz back to back, each in a fresh process, so that peak RSS is the job's own and load
from other jobs falls on all three alike; times include reading the text file):
- zipf_*: sentence mode, order 5, on a million words of seeded Zipfian text generated here
  (vocabulary 50,000, 1 to 24 words a line).
- tinyshakespeare_*: sentence mode, order 5, on shared/corpora/tinyshakespeare/train.txt, the
  job for which KenLM's `lmplz -o 5` takes 0.44 s on the reference machine (2-core AMD EPYC).
  Skipped when shared/ is absent.
- *_build_s: estimate only; *_build_and_arpa_s: also write the ARPA file, as lmplz does (both
  timed inside the process, after Python and numpy have started).
- *_cli_s: the whole command `rnngen ngram TEXT --words --order 5 --arpa FILE --test ONE_LINE`,
  interpreter start and imports included, as lmplz's time includes its own start.
- lmplz_*: the same jobs with KenLM's `lmplz -o 5 -S 100M` when it is on PATH (or $LMPLZ).
  -S 100M, not lmplz's default of 80% of RAM, which made it several times slower here.
- cpu, bf16_flags, load_average (at the start), load_average_after: the machine.

    python benchmarks/bench_ngram.py
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINYSHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/corpora/tinyshakespeare/train.txt"
REPEATS = 5

CHILD = r"""
import json, resource, sys, time
from rnngen.ngram.kenlm import fit_sentences, write_arpa
path, order, arpa = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
with open(path, encoding="utf-8", newline="\n") as f:
    model, words = fit_sentences(f, order)
built = time.perf_counter()
build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
write_arpa(model, arpa, words)
done = time.perf_counter()
print(json.dumps({
    "build_s": built - start,
    "build_arpa_s": done - start,
    "build_peak_rss_mb": build_rss,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "words": model.stats.train_tokens,
    "distinct_ngrams": sum(model.stats.ngram_counts.values()),
}))
"""

WRITE_ZIPF = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
from bench_ngram import zipf_text
with open(sys.argv[1], "w", encoding="utf-8") as f:
    f.write(zipf_text(1_000_000))
print("{}")
"""

BASELINE = r"""
import json, resource
import rnngen.ngram.kenlm
print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def zipf_text(words: int, seed: int = 0) -> str:
    """Seeded Zipfian text: word ranks ~ 1/r over 50,000 types, 1 to 24 words a line."""
    import numpy as np  # here only: the parent process must stay small (see run_child)

    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(50_000)])
    weights = 1.0 / np.arange(1, vocab.size + 1)
    tokens = vocab[rng.choice(vocab.size, size=words, p=weights / weights.sum())].tolist()
    lengths = rng.integers(1, 25, size=words // 6)
    bounds = np.minimum(np.cumsum(lengths), words)
    lines, start = [], 0
    for end in bounds.tolist():
        lines.append(" ".join(tokens[start:end]))
        start = end
    return "\n".join(lines) + "\n"


def run_child(code: str, *args: str) -> dict:
    """Run code in a fresh interpreter and parse its JSON line.

    A child's peak RSS counts the memory of the process that forked it, so every measured
    process is started by this small parent, which never imports numpy or holds a corpus.
    """
    result = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def measure(path: Path, order: int, arpa: Path, lmplz: str | None) -> dict:
    """Median figures of REPEATS rounds; each round runs rnngen's library, its CLI and lmplz
    back to back, so that load from other jobs falls on all of them alike."""
    library, cli, kenlm = [], [], []
    test = arpa.with_suffix(".test.txt")
    test.write_text("the\n")  # the CLI also scores --test; one line keeps that negligible
    cli_argv = [sys.executable, "-m", "rnngen", "ngram", str(path), "--test", str(test)]
    cli_argv += ["--words", "--order", str(order), "--arpa", str(arpa), "--quiet"]
    for _ in range(REPEATS):
        library.append(run_child(CHILD, str(path), str(order), str(arpa)))
        cli.append(run_timed(cli_argv))
        arpa_bytes = arpa.stat().st_size
        if lmplz:
            with open(path, "rb") as stdin, open(arpa, "wb") as stdout:
                kenlm.append(run_timed([lmplz, "-o", str(order), "-S", "100M"], stdin, stdout))
            lmplz_bytes = arpa.stat().st_size
    figures = {
        "build_s": round(statistics.median(r["build_s"] for r in library), 3),
        "build_and_arpa_s": round(statistics.median(r["build_arpa_s"] for r in library), 3),
        "build_peak_rss_mb": round(max(r["build_peak_rss_mb"] for r in library), 1),
        "build_and_arpa_peak_rss_mb": round(max(r["peak_rss_mb"] for r in library), 1),
        "cli_s": round(statistics.median(s for s, _ in cli), 3),
        "cli_peak_rss_mb": round(max(mb for _, mb in cli), 1),
        "arpa_mb": round(arpa_bytes / 2**20, 1),
        "tokens": library[0]["words"],
        "distinct_ngrams": library[0]["distinct_ngrams"],
    }
    if lmplz:
        figures["lmplz_s"] = round(statistics.median(s for s, _ in kenlm), 3)
        figures["lmplz_peak_rss_mb"] = round(max(mb for _, mb in kenlm), 1)
        figures["lmplz_arpa_mb"] = round(lmplz_bytes / 2**20, 1)
    return figures


def run_timed(argv: list[str], stdin=None, stdout=None) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of one command, which must succeed.

    Its peak RSS includes this parent's RSS at fork; that is small here (see run_child).
    """
    start = time.perf_counter()
    child = subprocess.Popen(
        argv, stdin=stdin, stdout=stdout or subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{argv[0]} failed (status {status})")
    return seconds, usage.ru_maxrss / 1024


def machine() -> dict:
    """What the figures depend on: CPU model, bf16 flags, cores and load."""
    with open("/proc/cpuinfo") as f:
        cpuinfo = f.read()
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    flags = sorted({f for f in ("amx_bf16", "avx512_bf16") if f" {f}" in cpuinfo})
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "bf16_flags": flags,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    figures: dict = {"benchmark": "ngram", "order": 5, "repeats": REPEATS, **machine()}
    figures["python_numpy_baseline_rss_mb"] = round(run_child(BASELINE)["peak_rss_mb"], 1)
    lmplz = os.environ.get("LMPLZ") or shutil.which("lmplz")
    with tempfile.TemporaryDirectory() as tmp:
        corpora = {"zipf": Path(tmp) / "zipf.txt"}
        run_child(WRITE_ZIPF, str(corpora["zipf"]), str(Path(__file__).resolve().parent))
        if TINYSHAKESPEARE.exists():
            corpora["tinyshakespeare"] = TINYSHAKESPEARE
        for name, path in corpora.items():
            arpa = Path(tmp) / f"{name}.arpa"
            for key, value in measure(path, 5, arpa, lmplz).items():
                key = f"lmplz_{name}_{key[6:]}" if key.startswith("lmplz_") else f"{name}_{key}"
                figures[key] = value
    figures["lmplz_tinyshakespeare_reference_s"] = 0.44
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
