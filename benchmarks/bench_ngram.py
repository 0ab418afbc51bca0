"""Kneser-Ney n-gram build speed and memory; prints one JSON line of figures.

Figures (times are the median of 3 runs, each in a fresh subprocess so that peak RSS is the
build's own; times include reading the text file):
- zipf_*: sentence mode, order 5, on a million words of seeded Zipfian text generated here
  (vocabulary 50,000, 1 to 24 words a line).
- tinyshakespeare_*: sentence mode, order 5, on shared/corpora/tinyshakespeare/train.txt, the
  job for which KenLM's `lmplz -o 5` takes 0.44 s on the reference machine (2-core AMD EPYC).
  Skipped when shared/ is absent.
- *_build_s: estimate only; *_build_and_arpa_s: also write the ARPA file, as lmplz does.
- lmplz_*: the same jobs with KenLM's `lmplz -o 5 -S 100M` when it is on PATH (or $LMPLZ).
  -S 100M, not lmplz's default of 80% of RAM, which made it several times slower here.

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
REPEATS = 3

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


def measure(path: Path, order: int, arpa: Path) -> dict:
    runs = [run_child(CHILD, str(path), str(order), str(arpa)) for _ in range(REPEATS)]
    return {
        "build_s": round(statistics.median(r["build_s"] for r in runs), 3),
        "build_and_arpa_s": round(statistics.median(r["build_arpa_s"] for r in runs), 3),
        "build_peak_rss_mb": round(max(r["build_peak_rss_mb"] for r in runs), 1),
        "build_and_arpa_peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs), 1),
        "tokens": runs[0]["words"],
        "distinct_ngrams": runs[0]["distinct_ngrams"],
    }


def measure_lmplz(lmplz: str, path: Path, order: int, arpa: Path) -> dict:
    """Median wall time and peak RSS of `lmplz -o order -S 100M < path > arpa`.

    Its peak RSS includes this parent's RSS at fork; that is small here (see run_child).
    """
    times, peaks = [], []
    for _ in range(REPEATS):
        with open(path, "rb") as stdin, open(arpa, "wb") as stdout:
            start = time.perf_counter()
            child = subprocess.Popen(
                [lmplz, "-o", str(order), "-S", "100M"],
                stdin=stdin,
                stdout=stdout,
                stderr=subprocess.DEVNULL,
            )
            _, status, usage = os.wait4(child.pid, 0)
            times.append(time.perf_counter() - start)
        if status != 0:
            raise RuntimeError(f"lmplz failed on {path} (status {status})")
        peaks.append(usage.ru_maxrss / 1024)
    return {"s": round(statistics.median(times), 3), "peak_rss_mb": round(max(peaks), 1)}


def main() -> None:
    figures: dict = {"benchmark": "ngram", "order": 5, "repeats": REPEATS}
    figures["python_numpy_baseline_rss_mb"] = round(run_child(BASELINE)["peak_rss_mb"], 1)
    lmplz = os.environ.get("LMPLZ") or shutil.which("lmplz")
    with tempfile.TemporaryDirectory() as tmp:
        corpora = {"zipf": Path(tmp) / "zipf.txt"}
        run_child(WRITE_ZIPF, str(corpora["zipf"]), str(Path(__file__).resolve().parent))
        if TINYSHAKESPEARE.exists():
            corpora["tinyshakespeare"] = TINYSHAKESPEARE
        for name, path in corpora.items():
            arpa = Path(tmp) / f"{name}.arpa"
            figures |= {f"{name}_{key}": value for key, value in measure(path, 5, arpa).items()}
            if lmplz:
                lmplz_figures = measure_lmplz(lmplz, path, 5, arpa)
                figures |= {f"lmplz_{name}_{key}": value for key, value in lmplz_figures.items()}
    figures["lmplz_tinyshakespeare_reference_s"] = 0.44
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
