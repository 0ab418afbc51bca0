"""Fit the sizing rule to the calibration grid and the measured throughputs.

Reads the JSON lines of bench_sizing_grid.py (bits/char by corpus, size and steps) and of
bench_sizing_throughput.py (tokens/s by precision, threads and size). For every corpus, time
budget and emulated machine it predicts each fixed size's result (the grid interpolated in
log-steps at the steps that size trains in that budget), finds the best fixed size, and asks
rnngen.training.sizing.choose, with the measured throughputs injected, what the rule picks. Then it
searches TOKENS_PER_PARAMETER for the value with the least total regret (bits/char lost
against the best fixed size), and prints the table for BENCHMARKS.md and one JSON summary.

    python benchmarks/bench_sizing_fit.py GRID.jsonl [GRID2.jsonl ...] --throughput TPUT.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict

from rnngen.training import sizing

BUDGETS = (40, 180, 600)
STEP_TOKENS = 32 * 64  # the grid ran batch 32 x 64 (the default before it moved to 16)


def load(paths: list[str]) -> list[dict]:
    rows = []
    for path in paths:
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def curve_of(grid: list[dict]) -> dict[tuple[str, int], list[tuple[float, float]]]:
    curves = defaultdict(list)
    for row in grid:
        curves[(row["corpus"], row["hidden"])].append(
            (math.log(row["steps"]), row["best_valid_bpc"])
        )
    return {k: sorted(v) for k, v in curves.items()}


def predict(curve: list[tuple[float, float]], steps: float) -> tuple[float, bool]:
    """bits/char at `steps` (linear in log-steps); True when outside the measured range."""
    x = math.log(max(steps, 1.0))
    if len(curve) == 1:
        return curve[0][1], True
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x <= x1 or (x1, y1) == curve[-1]:
            y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            outside = x < curve[0][0] or x > curve[-1][0]
            if x > curve[-1][0]:  # beyond the grid, improve at most half as fast as measured
                y = y1 + 0.5 * (y - y1)
            return y, outside
    raise AssertionError


def scenarios(curves, rates, corpus_tokens):
    """(corpus, budget, machine, {hidden: predicted bpc}) for every combination."""
    for corpus in sorted({c for c, _ in curves}):
        hiddens = sorted(h for c, h in curves if c == corpus)
        for machine in sorted({(p, t) for p, t, _ in rates}):
            for budget in BUDGETS:
                predicted = {}
                for h in hiddens:
                    if (*machine, h) not in rates:
                        continue
                    steps = rates[(*machine, h)] * budget * sizing.TRAINING_SHARE / STEP_TOKENS
                    predicted[h] = predict(curves[(corpus, h)], steps)
                yield corpus, budget, machine, predicted


def rule_choice(machine, rates, budget, corpus_tokens, k):
    sizing.TOKENS_PER_PARAMETER = k

    def rate_of(config):
        return rates.get((*machine, config.hidden_size), 1e-9) if config.layers == 1 else 1e-9

    choice = sizing.choose(
        1024, corpus_tokens, budget, None, rate_of, STEP_TOKENS, clock=lambda: 0.0
    )
    return choice.hidden_size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("grid", nargs="+")
    parser.add_argument("--throughput", required=True)
    parser.add_argument("--corpus-tokens", default="tinyshakespeare=400000,synth=500000")
    options = parser.parse_args()
    curves = curve_of(load(options.grid))
    rates = {
        (r["precision"], r["threads"], r["hidden"]): r["tokens_per_second"]
        for r in load([options.throughput])
    }
    corpus_tokens = {
        k: int(v) for k, v in (item.split("=") for item in options.corpus_tokens.split(","))
    }
    cases = list(scenarios(curves, rates, corpus_tokens))
    candidates = [round(0.1 * 1.25**i, 3) for i in range(25)]
    regrets = {}
    for k in candidates:
        total = 0.0
        for corpus, budget, machine, predicted in cases:
            best = min(v[0] for v in predicted.values())
            chosen = rule_choice(machine, rates, budget, corpus_tokens[corpus], k)
            total += predicted.get(chosen, (best + 1.0,))[0] - best
        regrets[k] = total
    best_k = min(regrets, key=lambda k: (round(regrets[k], 3), -k))
    print(
        "| corpus | budget | machine | predicted bpc by size (steps outside the grid: ~) "
        "| best fixed | rule |"
    )
    print("|---|---|---|---|---|---|")
    for corpus, budget, machine, predicted in cases:
        best = min(predicted, key=lambda h: predicted[h][0])
        chosen = rule_choice(machine, rates, budget, corpus_tokens[corpus], best_k)
        cells = ", ".join(
            f"{h}: {v:.3f}{'~' if out else ''}" for h, (v, out) in sorted(predicted.items())
        )
        print(
            f"| {corpus} | {budget} s | {machine[0]} {machine[1]}t | {cells} | 1x{best} "
            f"| 1x{chosen} |"
        )
    print(
        json.dumps(
            {
                "tokens_per_parameter": best_k,
                "total_regret_bpc": round(regrets[best_k], 4),
                "regret_by_k": {k: round(v, 3) for k, v in regrets.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
