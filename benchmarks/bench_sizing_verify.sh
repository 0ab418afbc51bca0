#!/usr/bin/env bash
# Automatic sizing, verified end to end on the targets of issue 10, on a quiet machine.
# fp32 on one core (taskset -c N) stands in for a 2-core CPU without native bf16 (AVX2 only):
# it trains the 1x512 model at about that machine's speed. bf16 on both cores is this
# machine's own default. One-core runs go two at a time, one per core; then the two-core ones.
# Prints one JSON line per run (to stdout, and to $1 if given).
#
#   bash benchmarks/bench_sizing_verify.sh [OUT.jsonl] [NANOGPT_CHECKOUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/dev/null}
NANOGPT=${2:-}
PY=${PYTHON:-python}
log() { tee -a "$OUT"; }

$PY benchmarks/bench_sizing_throughput.py --seconds 0.5 | log

# tinyshakespeare, 180 s: auto-sized vs the old fixed default, fp32 on one core each
taskset -c 0 $PY benchmarks/bench_tinyshakespeare.py --precision fp32 > /tmp/verify-a.json &
taskset -c 1 $PY benchmarks/bench_tinyshakespeare.py --precision fp32 --size base > /tmp/verify-b.json &
wait
sed 's/^{/{"run": "tinyshakespeare 180 s, fp32, 1 core, auto", /' /tmp/verify-a.json | log
sed 's/^{/{"run": "tinyshakespeare 180 s, fp32, 1 core, --size base", /' /tmp/verify-b.json | log

# the README's first run (40 s), fp32 on one core; and nanoGPT's CPU recipe on the other core
$PY benchmarks/bench_first_run.py --taskset 0 --precision fp32 > /tmp/verify-c.json &
if [ -n "$NANOGPT" ]; then
    $PY benchmarks/bench_nanogpt.py "$NANOGPT" --taskset 1 > /tmp/verify-d.json
fi
wait
sed 's/^{/{"run": "first run 40 s, fp32, 1 core, auto", /' /tmp/verify-c.json | log
[ -n "$NANOGPT" ] && sed 's/^{/{"run": "nanoGPT CPU recipe, 1 core", /' /tmp/verify-d.json | log

# this machine's default precision on both cores
$PY benchmarks/bench_tinyshakespeare.py | sed 's/^{/{"run": "tinyshakespeare 180 s, auto precision, 2 cores, auto", /' | log
$PY benchmarks/bench_first_run.py | sed 's/^{/{"run": "first run 40 s, auto precision, 2 cores, auto", /' | log
