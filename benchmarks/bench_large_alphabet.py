"""Large alphabets: subword vocabularies smaller than the alphabet (byte fallback), measured.

On generated Chinese-like text (tests/conftest.py `large_alphabet_text`: words of CJK
ideographs with Zipfian frequencies, ASCII punctuation, spaces, line ends; about 2 MB and 5k
distinct characters; nothing downloaded or committed), prints one JSON line with:

* `split`: for bpe and unigram at 2000 pieces, each share of the room kept for characters
  (the rest for merges): tokens per character, the share of characters spelled in bytes, and
  the bits per character of Kneser-Ney 3- and 5-grams over the tokens on the last tenth of
  the text (trained on the rest); `char` for reference. This is how alphabet.CHAR_SHARE was
  chosen.
* `tokenize`: `rnngen tokenize --kind bpe|unigram --vocab-size 2000` end to end (process wall
  time: start-up, tokenizer training on its 20 MB sample, encoding, writing) on a larger file
  (BENCH_LARGE_ALPHABET_MB, default 200, as bench_tokenize.py: 20 MB of generated text
  written over and over; encoding speed does not depend on repeats); target >= 8 MB/s.
* `train`: `rnngen train --size small --time-budget S` (BENCH_LARGE_ALPHABET_SECONDS, default
  60) for bpe 2000, unigram 2000 and char, then `rnngen eval --json`: the model's bits per
  character on the held-out test split; target: subword no worse than char. Repeated
  BENCH_LARGE_ALPHABET_ROUNDS times (default 2), in alternating order.

    python benchmarks/bench_large_alphabet.py [--skip-split] [--skip-tokenize] [--skip-train]
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import large_alphabet_text  # noqa: E402  (the generator the tests use)

VOCAB = 2000
SHARES = (0.5, 0.6, 0.7, 0.8, 0.95)


def rnngen(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "rnngen", *args], capture_output=True, text=True, timeout=3600
    )
    if result.returncode != 0:
        raise SystemExit(f"rnngen {' '.join(args)} failed: {result.stderr}")
    return result


def split_sweep(text: str) -> dict:
    """Tokens per character and n-gram bits per character for each share of the room."""
    from rnngen.config import TokenizerConfig
    from rnngen.corpus.tokenizer import train_tokenizer

    lines = text.split("\n")
    cut = len(lines) * 9 // 10
    train, heldout = "\n".join(lines[:cut]) + "\n", "\n".join(lines[cut:])
    results: dict = {}
    runs = [(kind, share) for kind in ("bpe", "unigram") for share in SHARES] + [("char", None)]
    for kind, share in runs:
        config = TokenizerConfig(kind=kind, vocab_size=None if kind == "char" else VOCAB)
        shares = {} if share is None else {"char_share": share}
        started = time.perf_counter()
        tokenizer = train_tokenizer(train.split("\n"), config, **shares)
        seconds = time.perf_counter() - started
        ids = tokenizer.encode_array(heldout)
        fallback_chars, _ = tokenizer.fallback_counts(ids)
        results[kind if share is None else f"{kind}_{share}"] = {
            "char_pieces": tokenizer.coverage.pieces,
            "vocab": tokenizer.vocab_size,
            "tokens_per_char": round(len(ids) / len(heldout), 4),
            "fallback_share": round(fallback_chars / len(heldout), 4),
            **ngram_bits(tokenizer, tokenizer.encode_array(train), ids, len(heldout)),
            "tokenizer_seconds": round(seconds, 1),
        }
    return results


def ngram_bits(tokenizer, train_ids, ids, chars: int) -> dict:
    from rnngen.ngram import KneserNey

    bits = {}
    for order in (3, 5):
        nats = -float(KneserNey.fit(train_ids, order, tokenizer.vocab_size).logprobs(ids).sum())
        bits[f"kn{order}_bits_per_char"] = round(nats / math.log(2) / chars, 4)
    return bits


def tokenize_speed(tmp: Path, megabytes: float) -> dict:
    big = tmp / "big.txt"
    block = large_alphabet_text(int(20e6 / 2.9), seed=1).encode()  # about 20 MB
    with open(big, "wb") as f:
        for _ in range(max(1, round(megabytes * 1e6 / len(block)))):
            f.write(block)
    size = big.stat().st_size / 1e6
    figures: dict = {"mb": round(size, 1), "load_before": os.getloadavg()[0]}
    for kind in ("bpe", "unigram"):
        started = time.perf_counter()
        rnngen("tokenize", str(big), "-o", str(tmp / f"big-{kind}"), "--kind", kind,
               "--vocab-size", str(VOCAB), "-q")  # fmt: skip
        seconds = time.perf_counter() - started
        figures[kind] = {"seconds": round(seconds, 2), "mb_per_s": round(size / seconds, 2)}
        shutil.rmtree(tmp / f"big-{kind}")
    figures["load_after"] = os.getloadavg()[0]
    big.unlink()
    return figures


def train_and_eval(tmp: Path, corpus: Path, seconds: str, rounds: int) -> dict:
    """Each kind trained `rounds` times, in alternating order (the machine's load drifts),
    each run's model scored by `rnngen eval` on the held-out test split."""
    runs = {
        "bpe": ["--vocab-size", str(VOCAB)],
        "unigram": ["--vocab-size", str(VOCAB)],
        "char": [],
    }
    figures: dict = {kind: [] for kind in runs}
    for round_number in range(rounds):
        order = list(runs) if round_number % 2 == 0 else list(reversed(runs))
        for kind in order:
            checkpoint = tmp / f"{kind}.safetensors"
            trained = rnngen("train", str(corpus), "--kind", kind, *runs[kind], "--size",
                             "small", "--time-budget", seconds, "-o", str(checkpoint), "--force",
                             "--json")  # fmt: skip
            summary = json.loads(trained.stdout)
            report = json.loads(rnngen("eval", str(checkpoint), "--json", "-q").stdout)
            rnn, ngram = report["rows"][0], report["rows"][1]
            figures[kind].append({
                "vocab": (re.search(r"vocab (\d+)", trained.stderr) or [None, None])[1],
                "steps": summary["steps"],
                "tokens_per_second": round(summary["tokens_per_second"] or 0),
                "test_bits_per_char": round(rnn["bits_per_char"], 4),
                "test_bits_per_byte": round(rnn["bits_per_byte"], 4),
                "kn5_bits_per_char": round(ngram["bits_per_char"], 4),
                "test_tokens": rnn["tokens"],
                "load": round(os.getloadavg()[0], 1),
            })  # fmt: skip
    return figures


def main() -> None:
    text = large_alphabet_text(700_000, seed=0)
    figures: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu_flags": sorted(
            set(re.findall(r"\b(avx2|avx512_bf16|amx_bf16)\b", Path("/proc/cpuinfo").read_text()))
        ),
        "load_before": os.getloadavg()[0],
        "corpus": {
            "mb": round(len(text.encode()) / 1e6, 2),
            "chars": len(text),
            "distinct": len(set(text)),
        },
    }
    if "--skip-split" not in sys.argv:
        figures["split"] = split_sweep(text)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["RNNGEN_CACHE"] = str(tmp / "cache")  # the user's token cache stays as it is
        corpus = tmp / "zh.txt"
        corpus.write_text(text, encoding="utf-8")
        megabytes = float(os.environ.get("BENCH_LARGE_ALPHABET_MB", "200"))
        if "--skip-tokenize" not in sys.argv:
            figures["tokenize"] = tokenize_speed(tmp, megabytes)
        if "--skip-train" not in sys.argv:
            seconds = os.environ.get("BENCH_LARGE_ALPHABET_SECONDS", "60")
            rounds = int(os.environ.get("BENCH_LARGE_ALPHABET_ROUNDS", "2"))
            figures["train"] = train_and_eval(tmp, corpus, seconds, rounds)
    figures["load_after"] = os.getloadavg()[0]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
