#!/usr/bin/env bash
# The checks that need a GPU, in one run, most wanted first, each step bounded so that a
# hang in one still leaves time (and its partial results) for the others:
#   1. the GPU tests (tests/test_gpu.py), at most a quarter of the time,
#   2. the trial throughput benchmark (with --data-on-device's side under JAX), at most
#      170 s,
#   3. the ablation's configurations ABLATION (default "photometric 224 px,resnet18
#      photometric 224 px") under SEEDS (default 0),
#   4. the ablation's configurations ABLATION_MORE (default the same) under SEEDS_MORE
#      (default "1,2"), if time is left.
# Each step's log and results go to OUT (at most 8 files); a failing step does not stop
# the next. Trained models go to /tmp.
#
#   usage: benchmarks/gpu_checks.sh OUT DATA [SECONDS]
#   (any Keras backend that sees the GPU: KERAS_BACKEND=jax on a machine without TensorFlow)
set -u
OUT=${1:?usage: gpu_checks.sh OUT DATA [SECONDS]}
DATA=${2:?usage: gpu_checks.sh OUT DATA [SECONDS]}
TOTAL=${3:-560}
ABLATION=${ABLATION:-photometric 224 px,resnet18 photometric 224 px}
ABLATION_MORE=${ABLATION_MORE:-$ABLATION}
SEEDS=${SEEDS:-0}
SEEDS_MORE=${SEEDS_MORE:-1,2}
EPOCHS=${EPOCHS:-20}
export PYTHONUNBUFFERED=1 AUTOPNEUMO_CACHE=${AUTOPNEUMO_CACHE:-/tmp/autopneumo-cache}
mkdir -p "$OUT/ablation_a" "$OUT/ablation_b"
PY=${PYTHON:-python3}
left() { echo $((TOTAL - SECONDS)); }
{
  nvidia-smi -L || true
  echo "KERAS_BACKEND=${KERAS_BACKEND:-tensorflow}"
  $PY -c "from autopneumo.backend import gpu_names; print('GPUs seen by Keras:', gpu_names())"
} 2>&1 | tee "$OUT/machine.log"

ablation() {  # OUT_SUBDIR CONFIGS SECONDS SEEDS
  local limit=$3
  [ "$limit" -gt 30 ] || { echo "== no time left for $2"; return; }
  # --budget stops starting runs (one run takes up to about a minute); timeout stops a hang
  timeout "$limit" $PY benchmarks/ablation.py --data "$DATA" --out "$OUT/$1" \
    --runs /tmp/ablation-runs --only "$2" --seeds "$4" --epochs "$EPOCHS" \
    --budget $((limit - 60)) 2>&1 | grep --line-buffered -v -i warning | tee "$OUT/$1.log"
  echo "== $2 done at ${SECONDS}s"
}

t=$(( $(left) / 4 ))
timeout "$t" $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -30 \
  | tee "$OUT/gpu_tests.log"
echo "== GPU tests done at ${SECONDS}s"

t=$(( $(left) < 180 ? $(left) - 10 : 170 ))
if [ "$t" -gt 30 ]; then
  timeout "$t" $PY benchmarks/run.py --only throughput --data "$DATA" \
    --json "$OUT/throughput.json" > "$OUT/throughput.log" 2>&1
  tail -40 "$OUT/throughput.log"
fi
echo "== throughput done at ${SECONDS}s"

ablation ablation_a "$ABLATION" $(( $(left) * 4 / 5 )) "$SEEDS"

ablation ablation_b "$ABLATION_MORE" $(( $(left) - 10 )) "$SEEDS_MORE"

echo "== all done at ${SECONDS}s"
