"""The classic lessons of recurrent LMs, measured and drawn, at equal wall-clock time.

On the built-in corpus every model gets the same training time (the Trainer's time budget:
evaluations excluded, the cosine schedule stretched over it). At character level:

* a vanilla tanh RNN with gradient-norm clipping, and without (Pascanu et al. 2013);
* a GRU and an LSTM (one layer each): gates keep the gradient alive over long distances;
* an 8-layer LSTM stack, plain and with residual, highway and dense skip connections;
* a bidirectional LSTM trained to predict the next character (for part of the time): why a
  language model cannot be bidirectional (benchmarks/bidirectional.py).

At word level (SentencePiece `word` tokens), where a window of tokens is a window of the
agreement distances: an LSTM against the fixed-window neural LM (Bengio et al. 2003) reading
the last WINDOW words, with a word 5-gram beside them.

Then, on held-out passages from another seed: bits per character (comparable across the two
tokenizers), subject-verb agreement by distance (a Kneser-Ney 5-gram of each tokenization
beside the models), and the gradient flow of every model (`rnngen.scoring.gradients`). Writes
docs/lessons_*.png and docs/lessons_data.json, and prints one JSON line of figures.

    python benchmarks/bench_lessons.py [seconds per run, default 55] [docs directory]
    python benchmarks/bench_lessons.py --redraw [docs directory]   # figures from lessons_data.json

Time: 10.5 x the budget for training plus the evaluation: 1077 s in all at 25 s a run on 2
shared CPU cores (2026-12-06, BENCHMARKS.md), evaluation about 480 s of it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bidirectional import BidirectionalLM, generate, honest_logprobs

from rnngen.config import ModelConfig, TokenizerConfig, TrainConfig, learning_rate_for
from rnngen.corpus.tokenizer import train_tokenizer
from rnngen.hardware import resolve_precision
from rnngen.model import create_model
from rnngen.ngram import KneserNey
from rnngen.plot.figures import (
    Curve,
    agreement_figure,
    curves_figure,
    gradients_figure,
    norm_traces_figure,
    save_figure,
)
from rnngen.plot.runs import Run
from rnngen.sampling.generate import Done, SampleConfig
from rnngen.sampling.sampler import generate as sample_text
from rnngen.scoring.gradients import gradient_flow
from rnngen.scoring.logprobs import model_logprobs, sequence_logprobs
from rnngen.synth import BUCKET_LABELS, bucket_of, generate_lines, oracle
from rnngen.synth.agreement import agreement_accuracy
from rnngen.training.loop import Evaluation, Rollback, Step, Trainer

CPU = torch.device("cpu")
# What `rnngen train` would use on this machine for a model of this width: the automatic
# precision (bf16 on CPUs with native bf16), the width's default learning rate, batch 16.
PRECISION = resolve_precision("auto", CPU)
HIDDEN = 256
LR = learning_rate_for(HIDDEN)  # the same for every model
BATCH_SIZE = 16
ITEMS_PER_BUCKET = 100  # agreement items scored per distance bucket (two probes each)
EVAL_TOKENS = 10_000  # validation tokens per evaluation during training
TEST_PASSAGES = 60  # held-out passages scored for bits/char
GRADIENT_POSITIONS = 32  # targets whose gradient flow is averaged, per model
WINDOW = 5  # words the window LM reads: agreement distances 1-5 inside it, 6 and more beyond
BIDIRECTIONAL_SHARE = 0.5  # of the budget: its loss collapses long before
RUNS = {  # name -> (label, model options, clip, tokens)
    "rnn": ("vanilla RNN, clip 1", {"cell": "rnn"}, 1.0, "char"),
    "rnn_no_clip": ("vanilla RNN, no clipping", {"cell": "rnn"}, 0.0, "char"),
    "gru": ("GRU", {"cell": "gru"}, 1.0, "char"),
    "lstm": ("LSTM", {"cell": "lstm"}, 1.0, "char"),
    "lstm8": ("LSTM 8 layers, plain", {"cell": "lstm", "layers": 8}, 1.0, "char"),
    "lstm8_residual": ("LSTM 8 layers, residual",
                       {"cell": "lstm", "layers": 8, "skip": "residual"}, 1.0, "char"),
    "lstm8_highway": ("LSTM 8 layers, highway",
                      {"cell": "lstm", "layers": 8, "skip": "highway"}, 1.0, "char"),
    "lstm8_dense": ("LSTM 8 layers, dense",
                    {"cell": "lstm", "layers": 8, "skip": "dense"}, 1.0, "char"),
    "bidirectional": ("bidirectional LSTM (reads the future)", {}, 1.0, "char"),
    "lstm_words": ("LSTM (words)", {"cell": "lstm"}, 1.0, "word"),
    "window_words": (f"window LM, {WINDOW} words (words)",
                     {"model": "window", "window": WINDOW}, 1.0, "word"),
}  # fmt: skip
CELL_RUNS = ("rnn", "rnn_no_clip", "gru", "lstm", "bidirectional", "lstm_words", "window_words")
DEPTH_RUNS = ("lstm", "lstm8", "lstm8_residual", "lstm8_highway", "lstm8_dense")


class Data:
    """One tokenization of the corpus: training and validation ids (seed 3), the held-out
    passages (seed 4) as ids with a newline first (so every character is a target), and a
    Kneser-Ney 5-gram of the training ids."""

    def __init__(self, kind: str, lines: list[str], test_text: str):
        self.tokenizer = train_tokenizer([line.rstrip("\n") for line in lines],
                                         TokenizerConfig(kind=kind))  # fmt: skip
        ids = self.tokenizer.encode_array("".join(lines))
        split = int(len(ids) * 0.95)
        self.train_ids, self.valid_ids = ids[:split], ids[split:]
        scored = self.valid_ids[:EVAL_TOKENS]  # what the Trainer's evaluations score
        self.chars_per_token = len(self.tokenizer.decode(scored[1:].tolist())) / (len(scored) - 1)
        self.test_ids = self.tokenizer.encode_array("\n" + test_text)
        self.test_chars = len(test_text)
        self.ngram = KneserNey.fit(self.train_ids, 5, self.tokenizer.vocab_size)
        self.context = [self.tokenizer.newline_id]

    def bits_per_char(self, logp: np.ndarray) -> float:
        return round(float(-logp.sum() / math.log(2) / self.test_chars), 4)

    def ngram_scorer(self):
        def score(texts):
            return np.array([self.ngram.logprobs(np.array(self.context + self.tokenizer.encode(t)))
                             .sum() for t in texts])  # fmt: skip

        return score

    def model_scorer(self, model):
        def score(texts):
            ids = [self.tokenizer.encode(t) for t in texts]
            return sequence_logprobs(model, ids, self.context, CPU)

        return score


def train(name: str, budget: float, data: Data):
    """Train one model for `budget` seconds: the model, and its history as a plot Run."""
    label, options, clip, _ = RUNS[name]
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=data.tokenizer.vocab_size, hidden_size=HIDDEN,
                         embed_size=HIDDEN, dropout=0.0, **options)  # fmt: skip
    train_config = TrainConfig(batch_size=BATCH_SIZE, seq_len=64, lr=LR, warmup_steps=20, clip=clip,
                               time_budget=budget, eval_tokens=EVAL_TOKENS, log_every=1,
                               seed=0)  # fmt: skip
    model = BidirectionalLM(config) if name == "bidirectional" else create_model(config)
    steps, evals, rollbacks, last = [], [], [], None
    for event in Trainer(model, data.train_ids, data.valid_ids, train_config, CPU, PRECISION).run():
        if isinstance(event, Step):
            steps = [s for s in steps if s[0] < event.step]  # drop steps a rollback undid
            steps.append((event.step, event.loss, event.grad_norm, event.lr, event.elapsed))
            last = event
        elif isinstance(event, Evaluation):  # nats per token -> bits per character
            evals.append((event.step, event.valid_loss / math.log(2) / data.chars_per_token))
        elif isinstance(event, Rollback):
            rollbacks.append(event.step)
    s, e = np.array(steps).reshape(-1, 5), np.array(evals).reshape(-1, 2)
    seconds = np.interp(e[:, 0], np.concatenate([[0], s[:, 0]]), np.concatenate([[0], s[:, 4]]))
    run = Run(name=name, label=label, step=s[:, 0], loss=s[:, 1], grad_norm=s[:, 2], lr=s[:, 3],
              seconds=s[:, 4], eval_step=e[:, 0], eval_bpc=e[:, 1], eval_seconds=seconds,
              clip=clip or None, clipped_share=last.clipped_share if last else None,
              rollbacks=rollbacks, chars_per_token=data.chars_per_token)  # fmt: skip
    return model.eval(), run


def agreement_items(test: list[str]):
    """Up to ITEMS_PER_BUCKET agreement items per distance bucket, in text order."""
    chosen, taken = [], dict.fromkeys(BUCKET_LABELS, 0)
    for line_index, item in oracle(test).items:
        bucket = bucket_of(item.distance)
        if taken[bucket] < ITEMS_PER_BUCKET:
            chosen.append((line_index, item))
            taken[bucket] += 1
    return chosen


def samples(model, data: Data, name: str) -> str:
    """200 characters sampled after a line start at temperature 0.8, seed 0."""
    if name == "bidirectional":
        return data.tokenizer.decode(generate(model, data.context, 200, temperature=0.8, seed=0))
    config = SampleConfig(temperature=0.8, max_tokens=200, max_chars=200, seed=0)
    events = sample_text(model, data.tokenizer, "", config, "fp32")
    return next(e.text for e in events if isinstance(e, Done))


def measure(name: str, model, run: Run, data: Data, figures: dict, curves: list) -> None:
    """Held-out bits/char, gradient flow and the figures of one trained model."""
    figures[name] = {
        "steps": int(run.step[-1]), "train_bpc": round(float(run.train_bpc[-10:].mean()), 4),
        "clipped_share": round(run.clipped_share or 0.0, 3), "rollbacks": len(run.rollbacks),
        "max_grad_norm": round(float(run.grad_norm.max()), 2),
    }  # fmt: skip
    logp = model_logprobs(model, data.test_ids, CPU, "fp32", streams=8)
    figures[name]["test_bpc"] = data.bits_per_char(logp)
    figures[name]["sample"] = samples(model, data, name)
    if name == "bidirectional":  # as trained (reading ahead), then honestly, left to right
        figures[name]["test_bpc_reading_ahead"] = figures[name].pop("test_bpc")
        figures[name]["test_bpc"] = data.bits_per_char(honest_logprobs(model, data.test_ids))
        return
    flow = gradient_flow(model, data.test_ids, CPU, max_lag=200, positions=GRADIENT_POSITIONS)
    curves.append(Curve(run.label, flow.lags, flow.input_norm, flow.hidden_norm))
    figures[name]["input_gradient_at"] = {k: float(f"{flow.input_norm[k]:.3g}")
                                          for k in (0, 1, 4, 5, 10, 50, 100, 200)}  # fmt: skip


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def draw(data: dict, docs: Path) -> None:
    """The figures, from the measurements (kept in docs/lessons_data.json, so that
    `bench_lessons.py --redraw` redraws them without training again)."""
    figures, agreement = data["figures"], data["agreement"]
    runs = {r["name"]: Run(**{k: np.asarray(v) if isinstance(v, list) and k != "rollbacks" else v
                              for k, v in r.items()}) for r in data["runs"]}  # fmt: skip
    flows = [Curve(c["label"], *(np.asarray(c[k], dtype=float) for k in
                                 ("lags", "input_relative", "hidden_relative")))  # plain norms
             for c in data["flows"]]  # fmt: skip
    save_figure(agreement_figure(agreement["counts"], {}, {
        "Characters: the cells and the deep stacks": agreement["char"],
        f"Words: recurrence against a {WINDOW}-word window": agreement["word"]}),
        docs / "lessons_agreement.png")  # fmt: skip
    save_figure(gradients_figure(flows, relative=False), docs / "lessons_gradients.png")
    save_figure(norm_traces_figure([runs["rnn"], runs["rnn_no_clip"]]),
                docs / "lessons_clipping.png")  # fmt: skip
    references = {"5-gram (test)": figures["5-gram"]["test_bpc"],
                  "oracle (test)": figures["oracle_bpc"]}  # fmt: skip
    save_figure(curves_figure([runs[n] for n in CELL_RUNS if n in runs], references),
                docs / "lessons_curves.png")  # fmt: skip
    save_figure(curves_figure([runs[n] for n in DEPTH_RUNS if n in runs], references),
                docs / "lessons_depth.png")  # fmt: skip


def log(message: str, started: float = time.time()) -> None:
    print(f"[{time.time() - started:6.0f}s] {message}", file=sys.stderr, flush=True)


def main() -> None:
    docs = Path(__file__).parents[1] / "docs"
    if sys.argv[1:2] == ["--redraw"]:
        docs = Path(sys.argv[2]) if len(sys.argv) > 2 else docs
        draw(json.loads((docs / "lessons_data.json").read_text()), docs)
        return
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 55.0
    docs = Path(sys.argv[2]) if len(sys.argv) > 2 else docs
    docs.mkdir(exist_ok=True)
    only = os.environ.get("LESSONS_ONLY", "").split(",") if os.environ.get("LESSONS_ONLY") else RUNS
    started, load = time.time(), os.getloadavg()[0]
    datasets, test = corpus_data()
    items, truth = agreement_items(test), oracle(test)
    char, word = datasets["char"], datasets["word"]
    figures = {"date": time.strftime("%Y-%m-%d"), "seconds_per_run": budget,
               "threads": torch.get_num_threads(), "precision": PRECISION, "hidden": HIDDEN,
               "lr": LR, "window": WINDOW, "train_chars": len(char.train_ids),
               "train_words": len(word.train_ids), "test_chars": char.test_chars,
               "word_vocabulary": word.tokenizer.vocab_size,
               "oracle_bpc": round(truth.nats / (math.log(2) * truth.chars), 4),
               "5-gram": {"test_bpc": char.bits_per_char(char.ngram.logprobs(char.test_ids))},
               "5-gram_words": {"test_bpc": word.bits_per_char(word.ngram.logprobs(word.test_ids))},
               }  # fmt: skip
    log("corpus ready, 5-grams fitted")
    scorers = {
        "char": {"5-gram": char.ngram_scorer()},
        "word": {"5-gram (words)": word.ngram_scorer()},
    }
    runs, curves = [], []
    for name in (n for n in RUNS if n in only):
        kind = RUNS[name][3]
        seconds = budget * (BIDIRECTIONAL_SHARE if name == "bidirectional" else 1.0)
        model, run = train(name, seconds, datasets[kind])
        log(f"{name}: {int(run.step[-1])} steps, valid {run.eval_bpc[-1]:.3f} bits/char")
        runs.append(run)
        measure(name, model, run, datasets[kind], figures, curves)
        log(f"{name}: test scored, gradient flow measured")
        if name != "bidirectional":
            scorers[kind][run.label] = datasets[kind].model_scorer(model)
    agreement = {"counts": None}
    for kind, keys in (("char", ("5-gram", *RUNS)), ("word", ("5-gram_words", *RUNS))):
        result = agreement_accuracy(test, items, scorers[kind])
        agreement["counts"], agreement[kind] = result.counts, result.accuracy
        for key in keys:
            label = {"5-gram": "5-gram", "5-gram_words": "5-gram (words)"}.get(
                key, RUNS.get(key, [""])[0]
            )
            if key in figures and label in result.accuracy:
                figures[key]["agreement"] = {
                    b: round(v, 3) for b, v in result.accuracy[label].items()
                }
    log("agreement scored")
    figures["agreement_items"] = agreement["counts"]

    data = {"figures": figures, "agreement": agreement,
            "runs": [dataclasses.asdict(r) for r in runs],
            "flows": [dataclasses.asdict(c) for c in curves]}  # fmt: skip
    (docs / "lessons_data.json").write_text(json.dumps(data, default=_plain) + "\n")
    draw(data, docs)
    figures["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    figures["total_seconds"] = round(time.time() - started)
    print(json.dumps(figures))


def corpus_data() -> tuple[dict[str, Data], list[str]]:
    """Character and word tokenizations of the same text, and the held-out passages."""
    lines = list(generate_lines(8000, seed=3))
    test = list(generate_lines(1000, seed=4))
    text = "".join(test[:TEST_PASSAGES])
    return {kind: Data(kind, lines, text) for kind in ("char", "word")}, test


if __name__ == "__main__":
    main()
