#!/usr/bin/env bash
# The checks that need a GPU, in one run: the GPU tests (tests/test_gpu.py), the trial
# throughput benchmark, then the quality ablation until the time is up. Each step's log
# and results go to OUT; a failing step does not stop the next.
#
#   usage: benchmarks/gpu_checks.sh OUT DATA [SECONDS]
#   (any Keras backend that sees the GPU: KERAS_BACKEND=jax on a machine without TensorFlow)
set -u
OUT=${1:?usage: gpu_checks.sh OUT DATA [SECONDS]}
DATA=${2:?usage: gpu_checks.sh OUT DATA [SECONDS]}
TOTAL=${3:-480}
export PYTHONUNBUFFERED=1 AUTOPNEUMO_CACHE=${AUTOPNEUMO_CACHE:-/tmp/autopneumo-cache}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
{
  nvidia-smi -L || true
  echo "KERAS_BACKEND=${KERAS_BACKEND:-tensorflow}"
  $PY -c "from autopneumo.backend import gpu_names; print('GPUs seen by Keras:', gpu_names())"
} 2>&1 | tee "$OUT/machine.log"

timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -30 | tee "$OUT/gpu_tests.log"
echo "== tests done at ${SECONDS}s"
timeout 150 $PY benchmarks/run.py --only throughput --data "$DATA" --json "$OUT/throughput.json" \
  > "$OUT/throughput.log" 2>&1
tail -25 "$OUT/throughput.log"
echo "== throughput done at ${SECONDS}s"
left=$((TOTAL - SECONDS))
if [ "$left" -gt 60 ]; then
  timeout "$left" $PY benchmarks/ablation.py --data "$DATA" --out "$OUT" --runs /tmp/ablation-runs \
    --budget $((left - 60)) 2>&1 | grep --line-buffered -v -i warning | tee "$OUT/ablation.log"
fi
echo "== all done at ${SECONDS}s"
