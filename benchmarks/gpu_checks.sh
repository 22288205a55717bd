#!/usr/bin/env bash
# The checks that need a GPU, in one run, most wanted first, each step bounded so that a
# hang in one still leaves time (and its partial results) for the others:
#   1. the GPU tests (tests/test_gpu.py), at most a third of the time,
#   2. the trial throughput benchmark (with --data-on-device's side under JAX), at most
#      170 s,
#   3. the ablation's configurations ABLATION (default "photometric 224 px,resnet18
#      photometric 224 px") under SEEDS (default 0),
#   4. the ablation's configurations ABLATION_MORE (default the same) under SEEDS_MORE
#      (default "1,2"), if time is left.
# STEPS picks and orders them (default "tests throughput ablation"); the step "cli" runs
# the command line end to end on the GPU (search with every GPU flag, a resume that
# changes --mixed-precision and must be refused in one line, a resume that may change
# --jit and --data-on-device, finalize, ensemble, a report without pixels; CLI_EXTRA adds
# search options, e.g. "--image-size 32" for a dry run on a CPU).
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
STEPS=${STEPS:-tests throughput ablation}
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

gpu_tests() {
  local t=$(( $(left) / 3 ))
  timeout "$t" $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -30 \
    | tee "$OUT/gpu_tests.log"
  echo "== GPU tests done at ${SECONDS}s"
}

throughput() {
  local t=$(( $(left) < 180 ? $(left) - 10 : 170 ))
  if [ "$t" -gt 30 ]; then
    timeout "$t" $PY benchmarks/run.py --only throughput --data "$DATA" \
      --json "$OUT/throughput.json" > "$OUT/throughput.log" 2>&1
    tail -40 "$OUT/throughput.log"
  fi
  echo "== throughput done at ${SECONDS}s"
}

cli() {  # every command line step is bounded; each one's exit status is printed
  local runs=/tmp/gpu-cli-runs t=$(( $(left) / 2 )) started=$SECONDS
  rm -rf "$runs"
  step() {  # EXPECTED_RC_KIND(ok|fail) ARGS...
    local want=$1; shift
    local left_here=$(( t - (SECONDS - started) ))
    [ "$left_here" -gt 20 ] || { echo "== cli: no time left for $1"; return; }
    echo "\$ autopneumo $*"
    timeout "$left_here" $PY -m autopneumo "$@" 2>&1 | grep -v -i warning | tail -15
    local rc=${PIPESTATUS[0]}
    echo "== cli: $1 rc=$rc (expected $want)"
  }
  local common=(--family base_cnn --augment photometric --data "$DATA" --runs-dir "$runs"
                --epochs 3 --seed 0 ${CLI_EXTRA:-})
  {
    step ok search "${common[@]}" --max-trials 2 --mixed-precision --jit --data-on-device
    step fail search "${common[@]}" --max-trials 3 --jit
    step ok search "${common[@]}" --max-trials 3 --mixed-precision
    step ok finalize --runs-dir "$runs" --top 1 --seeds 1
    step ok ensemble --runs-dir "$runs" --top 2
    step ok report --runs-dir "$runs" --no-pixels --out /tmp/gpu-cli-report
    cp /tmp/gpu-cli-report/leaderboard.csv "$OUT/cli_leaderboard.csv" 2>/dev/null
    $PY - "$runs" <<'PYEOF'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).rglob("record.json")):
    r = json.loads(p.read_text())
    print(p.parent.name, r.get("status"), r.get("compute"))
PYEOF
  } 2>&1 | tee "$OUT/cli.log"
  echo "== cli done at ${SECONDS}s"
}

for s in $STEPS; do
  case $s in
    tests) gpu_tests ;;
    throughput) throughput ;;
    cli) cli ;;
    ablation)
      ablation ablation_a "$ABLATION" $(( $(left) * 4 / 5 )) "$SEEDS"
      ablation ablation_b "$ABLATION_MORE" $(( $(left) - 10 )) "$SEEDS_MORE" ;;
    *) echo "== unknown step $s" ;;
  esac
done

echo "== all done at ${SECONDS}s"
