"""The classic lessons of recurrent LMs, measured and drawn, at equal wall-clock time.

On the built-in corpus (character level), six models each get the same training time (the
Trainer's time budget: evaluations excluded, the cosine schedule stretched over it):

* a vanilla tanh RNN with gradient-norm clipping, and without (Pascanu et al. 2013);
* a GRU and an LSTM (one layer each): gates keep the gradient alive over long distances;
* an 8-layer LSTM stack, plain and with residual connections (He et al. 2016 for RNNs).

Then, on held-out passages from another seed: bits per character, subject-verb agreement by
distance (with a Kneser-Ney 5-gram beside them), and the gradient flow of every model
(`rnngen.gradients`). Writes docs/lessons_*.png, and prints one JSON line of figures.

    python benchmarks/bench_lessons.py [seconds per run, default 75] [docs directory]
    python benchmarks/bench_lessons.py --redraw [docs directory]   # figures from lessons_data.json

Time: 6 x the budget for training, plus about 5 minutes of evaluation on 2 CPU cores.
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

from rnngen.config import ModelConfig, TokenizerConfig, TrainConfig, learning_rate_for
from rnngen.evaluate import model_logprobs, sequence_logprobs
from rnngen.gradients import gradient_flow
from rnngen.hardware import resolve_precision
from rnngen.model import RNNLM
from rnngen.ngram import KneserNey
from rnngen.plot import (
    Curve,
    agreement_figure,
    curves_figure,
    gradients_figure,
    norm_traces_figure,
    save_figure,
)
from rnngen.plot_runs import Run
from rnngen.synth import BUCKET_LABELS, bucket_of, generate_lines, oracle
from rnngen.synth.agreement import agreement_accuracy
from rnngen.tokenizer import train_tokenizer
from rnngen.trainer import Evaluation, Rollback, Step, Trainer

CPU = torch.device("cpu")
# What `rnngen train` would use on this machine for a model of this width: the automatic
# precision (bf16 on CPUs with native bf16), the width's default learning rate, batch 16.
PRECISION = resolve_precision("auto", CPU)
HIDDEN = 256
LR = learning_rate_for(HIDDEN)  # the same for every cell
BATCH_SIZE = 16
ITEMS_PER_BUCKET = 100  # agreement items scored per distance bucket (two probes each)
RUNS = {  # name -> (label, model options, clip)
    "rnn": ("vanilla RNN, clip 1", {"cell": "rnn"}, 1.0),
    "rnn_no_clip": ("vanilla RNN, no clipping", {"cell": "rnn"}, 0.0),
    "gru": ("GRU", {"cell": "gru"}, 1.0),
    "lstm": ("LSTM", {"cell": "lstm"}, 1.0),
    "lstm8": ("LSTM 8 layers, plain", {"cell": "lstm", "layers": 8}, 1.0),
    "lstm8_residual": ("LSTM 8 layers, residual",
                       {"cell": "lstm", "layers": 8, "residual": True}, 1.0),
}  # fmt: skip


def corpus():
    """Training and validation text from seed 3, held-out test passages from seed 4."""
    lines = list(generate_lines(8000, seed=3))
    test = list(generate_lines(1000, seed=4))
    tokenizer = train_tokenizer([line.rstrip("\n") for line in lines], TokenizerConfig(kind="char"))
    ids = tokenizer.encode_array("".join(lines))
    split = int(len(ids) * 0.95)
    return tokenizer, ids[:split], ids[split:], test


def train(name: str, budget: float, tokenizer, train_ids, valid_ids) -> tuple[RNNLM, Run]:
    """Train one model for `budget` seconds; its history as a plot Run."""
    label, options, clip = RUNS[name]
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=HIDDEN, embed_size=HIDDEN,
                         dropout=0.0, **options)  # fmt: skip
    train_config = TrainConfig(batch_size=BATCH_SIZE, seq_len=64, lr=LR, warmup_steps=20, clip=clip,
                               time_budget=budget, eval_tokens=10_000, log_every=1,
                               seed=0)  # fmt: skip
    model = RNNLM(config)
    steps, evals, rollbacks, last = [], [], [], None
    for event in Trainer(model, train_ids, valid_ids, train_config, CPU, PRECISION).run():
        if isinstance(event, Step):
            steps = [s for s in steps if s[0] < event.step]  # drop steps a rollback undid
            steps.append((event.step, event.loss, event.grad_norm, event.lr, event.elapsed))
            last = event
        elif isinstance(event, Evaluation):
            evals.append((event.step, event.valid_loss / math.log(2)))  # chars: 1 per token
        elif isinstance(event, Rollback):
            rollbacks.append(event.step)
    s, e = np.array(steps).reshape(-1, 5), np.array(evals).reshape(-1, 2)
    seconds = np.interp(e[:, 0], np.concatenate([[0], s[:, 0]]), np.concatenate([[0], s[:, 4]]))
    run = Run(name=name, label=label, step=s[:, 0], loss=s[:, 1], grad_norm=s[:, 2], lr=s[:, 3],
              seconds=s[:, 4], eval_step=e[:, 0], eval_bpc=e[:, 1], eval_seconds=seconds,
              clip=clip or None, clipped_share=last.clipped_share if last else None,
              rollbacks=rollbacks, chars_per_token=1.0)  # fmt: skip
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


def _plain(value):
    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def draw(data: dict, docs: Path) -> None:
    """The four figures, from the measurements (kept in docs/lessons_data.json, so that
    `bench_lessons.py --redraw` redraws them without training again)."""
    figures, agreement = data["figures"], data["agreement"]
    runs = [Run(**{k: np.asarray(v) if isinstance(v, list) and k != "rollbacks" else v
                   for k, v in r.items()}) for r in data["runs"]]  # fmt: skip
    flows = [Curve(c["label"], *(np.asarray(c[k], dtype=float) for k in
                                 ("lags", "input_relative", "hidden_relative")))  # plain norms
             for c in data["flows"]]  # fmt: skip
    save_figure(agreement_figure(agreement["counts"], agreement["accuracy"]),
                docs / "lessons_agreement.png")  # fmt: skip
    save_figure(gradients_figure(flows, relative=False), docs / "lessons_gradients.png")
    save_figure(norm_traces_figure(runs[:2]), docs / "lessons_clipping.png")
    save_figure(curves_figure(runs, {"5-gram (test)": figures["5-gram"]["test_bpc"],
                                     "oracle (test)": figures["oracle_bpc"]}),
                docs / "lessons_curves.png")  # fmt: skip


def log(message: str, started: float = time.time()) -> None:
    print(f"[{time.time() - started:6.0f}s] {message}", file=sys.stderr, flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--redraw"]:
        docs = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parents[1] / "docs"
        draw(json.loads((docs / "lessons_data.json").read_text()), docs)
        return
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 75.0
    docs = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parents[1] / "docs"
    docs.mkdir(exist_ok=True)
    started, load = time.time(), os.getloadavg()[0]
    tokenizer, train_ids, valid_ids, test = corpus()
    # bits/char on the first 60 passages (a newline first, so every character is a target)
    test_ids = tokenizer.encode_array("\n" + "".join(test[:60]))
    items, context = agreement_items(test), [tokenizer.newline_id]
    truth = oracle(test)
    figures = {"date": time.strftime("%Y-%m-%d"), "seconds_per_run": budget,
               "threads": torch.get_num_threads(), "precision": PRECISION, "hidden": HIDDEN,
               "lr": LR, "train_chars": len(train_ids), "test_chars": len(test_ids) - 1,
               "oracle_bpc": round(truth.nats / (math.log(2) * truth.chars), 4)}  # fmt: skip

    log("corpus ready")
    ngram = KneserNey.fit(train_ids, 5, tokenizer.vocab_size)
    log("5-gram fitted")

    def ngram_score(texts):
        return np.array([ngram.logprobs(np.array(context + tokenizer.encode(t))).sum()
                         for t in texts])  # fmt: skip

    scorers = {"5-gram": ngram_score}
    figures["5-gram"] = {"test_bpc": round(-ngram.logprobs(test_ids).sum() / math.log(2) /
                                           (len(test_ids) - 1), 4)}  # fmt: skip
    runs, curves = [], []
    for name in RUNS:
        model, run = train(name, budget, tokenizer, train_ids, valid_ids)
        log(f"{name}: {int(run.step[-1])} steps, valid {run.eval_bpc[-1]:.3f} bits/char")
        runs.append(run)
        logp = model_logprobs(model, test_ids, CPU, "fp32", streams=8)
        flow = gradient_flow(model, test_ids, CPU, max_lag=200, positions=48)
        log(f"{name}: test scored, gradient flow measured")
        curves.append(Curve(run.label, flow.lags, flow.input_norm, flow.hidden_norm))

        def score(texts, model=model):
            return sequence_logprobs(model, [tokenizer.encode(t) for t in texts], context, CPU)

        scorers[run.label] = score
        figures[name] = {
            "steps": int(run.step[-1]), "test_bpc": round(-logp.mean() / math.log(2), 4),
            "clipped_share": round(run.clipped_share or 0.0, 3), "rollbacks": len(run.rollbacks),
            "max_grad_norm": round(float(run.grad_norm.max()), 2),
            "input_gradient_at": {k: float(f"{flow.input_norm[k]:.3g}")
                                  for k in (0, 10, 50, 100, 200)},
        }  # fmt: skip
    agreement = agreement_accuracy(test, items, scorers)
    log("agreement scored")
    for name, (label, _, _) in [("5-gram", ("5-gram", None, None)), *RUNS.items()]:
        figures[name]["agreement"] = {b: round(v, 3) for b, v in agreement.accuracy[label].items()}
    figures["agreement_items"] = agreement.counts

    data = {"figures": figures, "agreement": {"counts": agreement.counts,
            "accuracy": agreement.accuracy}, "runs": [dataclasses.asdict(r) for r in runs],
            "flows": [dataclasses.asdict(c) for c in curves]}  # fmt: skip
    (docs / "lessons_data.json").write_text(json.dumps(data, default=_plain) + "\n")
    draw(data, docs)
    figures["load_average"] = [round(load, 1), round(os.getloadavg()[0], 1)]
    figures["total_seconds"] = round(time.time() - started)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
