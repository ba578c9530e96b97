#!/usr/bin/env bash
# One prepared check for a GPU machine, sized to fit in 8 minutes of device time:
#   1. the CUDA tests (every test named *cuda*; they skip themselves without a GPU),        at most 2 min
#   2. `make bench`'s benchmark suite on the device (bench/run_all.py),                       at most 4.5 min
#   3. a fused group of 12 resnet32 runs (batch 128, bf16 on a GPU, channels_last) against one unfused
#      run, in training images/s over all members (bench/bench_fused.py --group resnet32),   at most 1.5 min
# Everything goes to one folder: tests_cuda.txt, bench.md, bench.json, bench.txt, the profiles,
# fused_resnet32.json / .txt, and summary.md with the figures and each step's exit code.
#
# Usage: bench/gpu.sh [--device cuda|cpu] [--quick] [--out DIR]
#   --device  cuda (default) or cpu; --quick: the benchmarks' small versions and a short group;
#   --out     the folder (default: $OUT when set, else results/gpu).
# CIFAR-10 is read from $FOCALBENCH_DATA, else ../shared/data; without it the CIFAR sections are skipped
# and the resnet32 group trains on random CIFAR-shaped images (a step's time does not depend on pixels).
# Without a GPU it runs end to end on the CPU: bench/gpu.sh --device cpu --quick (tests/test_gpu_script.py).
set -uo pipefail
cd "$(dirname "$0")/.."

DEVICE=cuda
QUICK=""
OUT_DIR="${OUT:-results/gpu}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --quick) QUICK="--quick"; shift ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    *) echo "usage: bench/gpu.sh [--device cuda|cpu] [--quick] [--out DIR]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x .venv/bin/python ]; then PY=.venv/bin/python
else PY=python3; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export FOCALBENCH_BENCH_OUT="$OUT_DIR"

if [ -n "$QUICK" ]; then
  TESTS_S=120; BENCH_S=270; GROUP_S=90; STEPS=2; BATCH=32
else
  TESTS_S=120; BENCH_S=270; GROUP_S=90; STEPS=20; BATCH=128
fi
# bf16 on the GPU; on the CPU the dry run trains in fp32, what precision=auto picks there
if [ "$DEVICE" = cuda ]; then PRECISION=bf16; else PRECISION=fp32; fi
SUMMARY="$OUT_DIR/summary.md"
{
  echo "# bench/gpu.sh on $(hostname) ($(date -Iseconds))"
  echo
  echo "device: $DEVICE${QUICK:+ (quick)}; python: $PY"
  "$PY" -c "import torch; print('torch', torch.__version__, '| cuda:', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
  echo
} > "$SUMMARY" 2>&1

step() {  # step NAME SECONDS LOGFILE COMMAND...: run with a time limit, note the exit code and the time taken
  local name="$1" limit="$2" log="$3"; shift 3
  local start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  local code=$?
  echo "- $name: exit $code in $((SECONDS - start)) s (limit $limit s; log $(basename "$log"))" >> "$SUMMARY"
  return 0
}

if [ "$DEVICE" = cuda ]; then
  step "CUDA tests" "$TESTS_S" "$OUT_DIR/tests_cuda.txt" "$PY" -m pytest -q -k cuda tests/
else
  step "CUDA tests (skipped on CPU)" "$TESTS_S" "$OUT_DIR/tests_cuda.txt" \
    "$PY" -m pytest -q -k cuda tests/test_fused.py tests/test_data_batches.py
fi
if [ "$DEVICE" = cuda ]; then
  step "benchmarks (bench/run_all.py $QUICK)" "$BENCH_S" "$OUT_DIR/bench.txt" "$PY" bench/run_all.py $QUICK
else  # the dry run on a CPU: the script's plumbing, with one quick section (tests/test_bench_smoke.py runs
  # every section's small version; the dry run need not repeat them)
  step "benchmarks (bench/run_all.py $QUICK --only cli)" "$BENCH_S" "$OUT_DIR/bench.txt" \
    "$PY" bench/run_all.py $QUICK --only cli
fi
step "fused resnet32 x12, batch $BATCH, $PRECISION, channels_last" "$GROUP_S" "$OUT_DIR/fused_resnet32.txt" \
  "$PY" bench/bench_fused.py --group resnet32 --members 12 --steps "$STEPS" --batch "$BATCH" \
  --precision "$PRECISION" --device "$DEVICE" --json "$OUT_DIR/fused_resnet32.json"

{
  echo
  echo "## CUDA tests"; echo; echo '```'; tail -n 5 "$OUT_DIR/tests_cuda.txt"; echo '```'
  echo
  echo "## Benchmarks"; echo
  if [ -f "$OUT_DIR/bench.md" ]; then sed -n '/^| section/,/^$/p' "$OUT_DIR/bench.md"; else tail -n 20 "$OUT_DIR/bench.txt"; fi
  echo
  echo "## Fused resnet32 group"; echo; echo '```'
  if [ -f "$OUT_DIR/fused_resnet32.json" ]; then cat "$OUT_DIR/fused_resnet32.json"; else tail -n 20 "$OUT_DIR/fused_resnet32.txt"; fi
  echo '```'
} >> "$SUMMARY"
echo "wrote $OUT_DIR (summary.md)"
