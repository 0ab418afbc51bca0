"""The whole pipeline's cost from 10 MB to 1 GB of real text; prints one JSON line.

Stages, each the real command in a fresh process (wall seconds and the process's peak RSS):
  tokenize  rnngen tokenize TRAIN --valid VALID --test TEST -o DIR
  train     rnngen train DIR --size small --max-steps N (a short run: its memory, not a model)
  eval      rnngen eval CKPT: the RNN row and the Kneser-Ney 5-gram row (built from the
            checkpoint's training tokens, the n-gram cache empty), the unigram and mixture rows
  ngram     rnngen ngram TRAIN --test TEST --order 5 --arpa FILE (its own tokenizer)
  build     the n-gram estimator alone on the training ids of `tokenize`, in a fresh process
            (KneserNey.fit with --memory, then write_arpa of it): what `lmplz` does
  lmplz     KenLM's lmplz -o 5 -S MEMORY --discount_fallback on the same training ids, written
            one line of text per line (ids as words; lmplz adds <s> and </s>), ARPA to a file
`build` and `lmplz` get the same memory (--memory, e.g. 1G); the others run with defaults, or
eval and ngram with --ngram-memory SIZE (their figures then saved as eval@SIZE, ngram@SIZE).

Corpus: real text that nobody here wrote, never committed; made once under --work:
  --source linux  the text files of Debian's linux-source package (/usr/src/linux-source-*.tar.xz,
                  `apt-get install linux-source`, unpacked with tar -xJf under WORK/linux), about
                  1.2 GB of C, headers, docs and scripts
  --source torch  the .py/.pyi/.h/.hpp/.cpp files of the torch 2.13.0 CPU wheel (89 MB)
  --source DIR    the text files under any directory
Files are sorted by path and concatenated (files that are not UTF-8 or hold NUL bytes are
skipped). TRAIN of size S is the first S bytes, cut back to a line end; TEST is the last 250 kB
of the corpus and VALID the 250 kB before it (cut at line ends), the same for every size: small,
since the RNN scores only about 10 k tokens a second on 2 loaded cores.

    python benchmarks/bench_scale.py --source linux --sizes 10M,100M,1G --memory 1G \\
        --stages tokenize,train,eval,ngram,build,lmplz --lmplz /path/to/lmplz --work /big/disk

Figures: per size and stage {seconds, peak_rss_mb} (tokenize also MB/s; build the n-gram counts;
eval and ngram the perplexities), and per stage the growth exponents between successive sizes
(log(ratio of time or RSS) / log(ratio of size): 1 is linear, 0 flat). Stages whose inputs were
made by an earlier invocation with the same --work are not redone, so the stages can run one at
a time (under `flock /work/locks/cpu` on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

TORCH_WHEEL = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
TORCH_SUFFIXES = (".py", ".pyi", ".h", ".hpp", ".cpp")
HELD_OUT = (250_000, 250_000)  # valid, test bytes from the end of the corpus
UNITS = {"K": 10**3, "M": 10**6, "G": 10**9}

BUILD_CHILD = r"""
import json, resource, sys, time
import numpy as np
from rnngen.corpus.store import load_tokenized
from rnngen.ngram import KneserNey
from rnngen.ngram.budget import parse_memory
from rnngen.ngram.kenlm import write_arpa
corpus = load_tokenized(sys.argv[1])
ids = corpus.ids("train")
start = time.perf_counter()
model = KneserNey.fit(ids, 5, corpus.tokenizer.vocab_size, memory=parse_memory(sys.argv[2]),
                      scratch_dir=sys.argv[4])
built = time.perf_counter()
build_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
write_arpa(model, sys.argv[3], lambda i: f"t{i}")
print(json.dumps({"build_s": built - start, "build_arpa_s": time.perf_counter() - start,
                  "build_peak_rss_mb": build_rss,
                  "ngram_counts": model.stats.ngram_counts}))
"""

LMPLZ_TEXT_CHILD = r"""
import sys
import numpy as np
from rnngen.corpus.store import load_tokenized
corpus = load_tokenized(sys.argv[1])
ids = corpus.ids("train")
newline = corpus.tokenizer.newline_id
names = np.array([f"t{i}" for i in range(corpus.tokenizer.vocab_size)])
with open(sys.argv[2], "w") as out:
    step = 1 << 22
    carry = []
    for start in range(0, len(ids), step):
        chunk = np.asarray(ids[start : start + step])
        cuts = np.flatnonzero(chunk == newline)
        pieces = np.split(chunk, cuts)
        for i, piece in enumerate(pieces):
            piece = piece[1:] if i else piece  # drop the newline that starts it
            words = carry + names[piece].tolist()
            if i < len(pieces) - 1:
                out.write(" ".join(words) + "\n")
                carry = []
            else:
                carry = words
    if carry:
        out.write(" ".join(carry) + "\n")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="linux")
    parser.add_argument("--sizes", default="10M,100M,1G")
    parser.add_argument("--stages", default="tokenize,train,eval,ngram,build,lmplz")
    parser.add_argument("--memory", default="1G", help="for build and lmplz -S")
    parser.add_argument("--ngram-memory", help="pass --ngram-memory SIZE to eval and ngram")
    parser.add_argument("--max-steps", type=int, default=50)
    parser.add_argument("--lmplz", default=os.environ.get("LMPLZ") or shutil.which("lmplz"))
    parser.add_argument("--work", type=Path, default=Path("scale-data"))
    parser.add_argument("--keep-arpa", action="store_true", help="keep the (large) ARPA files")
    parser.add_argument(
        "--test-after",
        help="TEST is this many bytes right after TRAIN (e.g. 2M), VALID the 250 kB after it, "
        "instead of the corpus's end (the issue's torch recipe: --sizes 85M --test-after 2M)",
    )
    parser.add_argument("--no-arpa", action="store_true", help="the ngram stage without --arpa")
    parser.add_argument(
        "--rnngen-path",
        help="run the rnngen commands of another checkout (PYTHONPATH=DIR), to compare",
    )
    options = parser.parse_args()
    work = options.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    corpus = make_corpus(options.source, work)
    stages = options.stages.split(",")
    results: dict = {
        "source": options.source,
        "corpus_bytes": corpus.stat().st_size,
        "memory": options.memory,
        "cpu": cpu_name(),
        "bf16_flags": bf16_flags(),
        "load_average": os.getloadavg()[0],
        "sizes": {},
    }
    for label in options.sizes.split(","):
        size = (
            int(float(label[:-1]) * UNITS[label[-1].upper()]) if label[-1].isalpha() else int(label)
        )
        results["sizes"][label] = run_size(corpus, size, label, stages, options, work)
    results["growth"] = growth(results["sizes"], options.sizes.split(","))
    results["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(results))


def to_bytes(label: str) -> int:
    return int(float(label[:-1]) * UNITS[label[-1].upper()]) if label[-1].isalpha() else int(label)


# --- the corpus -------------------------------------------------------------------------------


def make_corpus(source: str, work: Path) -> Path:
    """WORK/corpus-SOURCE.txt, made once: text files sorted by path, concatenated."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", source).strip("-")
    out = work / f"corpus-{name}.txt"
    if out.exists():
        return out
    part = out.with_suffix(".part")
    skipped = 0
    with open(part, "wb") as f:
        for data in source_files(source, work):
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                skipped += 1
                continue
            if b"\0" in data:
                skipped += 1
                continue
            f.write(data)
            if data and not data.endswith(b"\n"):
                f.write(b"\n")
    os.replace(part, out)
    log(f"made {out} ({out.stat().st_size / 1e6:.0f} MB; {skipped} files skipped)")
    return out


def source_files(source: str, work: Path):
    if source == "torch":
        with zipfile.ZipFile(TORCH_WHEEL) as wheel:
            for name in sorted(n for n in wheel.namelist() if n.endswith(TORCH_SUFFIXES)):
                yield wheel.read(name)
        return
    if source == "linux":
        root = work / "linux"
        if not root.exists():
            tarballs = sorted(Path("/usr/src").glob("linux-source-*.tar.xz"))
            if not tarballs:
                raise SystemExit("no /usr/src/linux-source-*.tar.xz: apt-get install linux-source")
            root.mkdir()
            subprocess.run(["tar", "-xJf", str(tarballs[-1]), "-C", str(root)], check=True)
    else:
        root = Path(source)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        yield path.read_bytes()


def split_corpus(
    corpus: Path, size: int, work: Path, label: str, test_after: str | None
) -> tuple[Path, Path, Path]:
    """TRAIN (the first `size` bytes, to a line end), VALID and TEST (from the end, or with
    test_after right after TRAIN)."""
    total = corpus.stat().st_size
    train_end = line_start(corpus, size)
    if test_after:
        test_start = train_end
        valid_start = line_start(corpus, test_start + to_bytes(test_after))
        bounds = {"test": (test_start, valid_start)}
        bounds["valid"] = (valid_start, line_start(corpus, valid_start + HELD_OUT[0]))
        suffix = f"-after-{label}"
    else:
        valid_start = line_start(corpus, total - sum(HELD_OUT))
        test_start = line_start(corpus, total - HELD_OUT[1])
        bounds = {"valid": (valid_start, test_start), "test": (test_start, total)}
        suffix = ""
    if train_end > min(start for start, _ in bounds.values()) or valid_start >= total:
        raise SystemExit(f"the corpus ({total} bytes) is too small for {label} + held-out text")
    files = {}
    for name, (start, end) in bounds.items():
        files[name] = work / f"{name}{suffix}.txt"
        if not files[name].exists():
            copy_range(corpus, start, end, files[name])
    train = work / f"train-{label}.txt"
    if not train.exists():
        copy_range(corpus, 0, train_end, train)
    return train, files["valid"], files["test"]


def line_start(path: Path, offset: int) -> int:
    """The first line start at or before offset."""
    with open(path, "rb") as f:
        back = max(offset - (1 << 20), 0)
        f.seek(back)
        block = f.read(offset - back)
    newline = block.rfind(b"\n")
    return back + newline + 1 if newline >= 0 else back


def copy_range(path: Path, start: int, end: int, out: Path) -> None:
    with open(path, "rb") as src, open(out.with_suffix(".part"), "wb") as dst:
        src.seek(start)
        left = end - start
        while left:
            block = src.read(min(left, 1 << 24))
            dst.write(block)
            left -= len(block)
    os.replace(out.with_suffix(".part"), out)


# --- stages -------------------------------------------------------------------------------------


def run_size(corpus: Path, size: int, label: str, stages: list[str], options, work: Path) -> dict:
    train, valid, test = split_corpus(corpus, size, work, label, options.test_after)
    here = work / label
    here.mkdir(exist_ok=True)
    env = dict(os.environ, RNNGEN_CACHE=str(here / "cache"))
    if options.rnngen_path:
        # PYTHONSAFEPATH: `python -m` must not put the working directory (this checkout)
        # ahead of PYTHONPATH
        env |= {"PYTHONPATH": options.rnngen_path, "PYTHONSAFEPATH": "1"}
    rnngen = [sys.executable, "-m", "rnngen"]
    tokenized, checkpoint = here / "tokenized", here / "model.safetensors"
    figures: dict = {"train_bytes": train.stat().st_size}
    saved = here / "figures.json"
    if saved.exists():
        figures |= json.loads(saved.read_text())
    if "tokenize" in stages:
        out = run([*rnngen, "tokenize", str(train), "--valid", str(valid), "--test", str(test),
                   "-o", str(tokenized), "--json", "-q"], env)  # fmt: skip
        meta = json.loads((tokenized / "meta.json").read_text())
        out["mb_per_s"] = round(train.stat().st_size / 1e6 / out["seconds"], 2)
        out["train_tokens"] = meta["splits"]["train"]["tokens"]
        figures["tokenize"] = out
    if "train" in stages:
        figures["train"] = run([*rnngen, "train", str(tokenized), "--size", "small",
                                "--max-steps", str(options.max_steps), "-o", str(checkpoint),
                                "-q"], env)  # fmt: skip
    budget = ["--ngram-memory", options.ngram_memory] if options.ngram_memory else []
    at = f"@{options.ngram_memory}" if options.ngram_memory else ""
    if "eval" in stages:
        shutil.rmtree(here / "cache" / "ngram", ignore_errors=True)  # build the n-gram afresh
        out = run([*rnngen, "eval", str(checkpoint), *budget, "--json", "-q"], env,
                  keep_stdout=True)  # fmt: skip
        report = json.loads(out.pop("stdout"))
        out["rows"] = {r["name"]: round(r["ppl"], 4) for r in report.get("rows", [])}
        figures["eval" + at] = out
    arpa = work / "out.arpa"
    if "ngram" in stages:
        arpa_option = [] if options.no_arpa else ["--arpa", str(arpa)]
        out = run([*rnngen, "ngram", str(train), "--test", str(test), "--order", "5",
                   *arpa_option, *budget, "--json", "-q"], env, keep_stdout=True)  # fmt: skip
        report = json.loads(out.pop("stdout"))
        out |= {"build_seconds": report["build_seconds"],
                "ppl": round(report["ppl_including_oov"], 6),
                "train_tokens": report["train_tokens"],
                "ngrams": sum(report["ngram_counts"].values()),
                "spilled_bytes": report.get("spilled_bytes")}  # fmt: skip
        if not options.no_arpa:
            out["arpa_mb"] = round(arpa.stat().st_size / 1e6)
        figures["ngram" + at] = out
    if "build" in stages:
        child = [sys.executable, "-c", BUILD_CHILD, str(tokenized), options.memory, str(arpa),
                 str(here)]  # fmt: skip
        out = run(child, env, keep_stdout=True)
        inner = json.loads(out.pop("stdout"))
        out |= {key: round(value, 2) if isinstance(value, float) else value
                for key, value in inner.items()}  # fmt: skip
        out["arpa_mb"] = round(arpa.stat().st_size / 1e6)
        figures["build"] = out
    if "lmplz" in stages and options.lmplz:
        words = here / "tokens.txt"
        if not words.exists():
            run([sys.executable, "-c", LMPLZ_TEXT_CHILD, str(tokenized), str(words)], env)
        with open(words, "rb") as stdin, open(arpa, "wb") as stdout:
            out = run([options.lmplz, "-o", "5", "-S", options.memory, "--discount_fallback",
                       "-T", str(here)], env, stdin=stdin, stdout=stdout)  # fmt: skip
        out["arpa_mb"] = round(arpa.stat().st_size / 1e6)
        figures["lmplz"] = out
    if not options.keep_arpa:
        arpa.unlink(missing_ok=True)
    saved.write_text(json.dumps(figures))
    return figures


def run(argv, env, *, stdin=None, stdout=None, keep_stdout=False) -> dict:
    """Wall seconds and peak RSS (MB) of one command, which must succeed.

    os.wait4 gives the child's own rusage. Its peak RSS includes what this process held when
    it started the child, so this parent never imports numpy or holds a corpus."""
    log("$ " + " ".join(str(a) for a in argv if len(str(a)) < 200))
    started = time.perf_counter()
    if stdout is None:
        stdout = subprocess.PIPE if keep_stdout else subprocess.DEVNULL
    proc = subprocess.Popen(argv, env=env, stdin=stdin, stdout=stdout)
    captured = proc.stdout.read() if keep_stdout else None
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(map(str, argv))[:300]}")
    out = {"seconds": round(seconds, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024)}
    log(f"  {out}")
    if keep_stdout:
        out["stdout"] = captured.decode()
    return out


def growth(sizes: dict, labels: list[str]) -> dict:
    """Per stage and figure, log(ratio) / log(size ratio) between successive sizes."""
    out: dict = {}
    for a, b in zip(labels, labels[1:], strict=False):
        fa, fb = sizes[a], sizes[b]
        span = math.log(fb["train_bytes"] / fa["train_bytes"])
        for stage in ("tokenize", "train", "eval", "ngram", "build", "lmplz"):
            if stage in fa and stage in fb:
                for key in ("seconds", "peak_rss_mb"):
                    ratio = fb[stage][key] / max(fa[stage][key], 1e-9)
                    out.setdefault(stage, {}).setdefault(key, {})[f"{a}->{b}"] = round(
                        math.log(ratio) / span, 2
                    )
    return out


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor()


def bf16_flags() -> list[str]:
    try:
        return sorted(set(re.findall(r"\b(amx_bf16|avx512_bf16)\b", open("/proc/cpuinfo").read())))
    except OSError:
        return []


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
