#!/usr/bin/env bash
# The article study, end to end, resumable: every finished run is reused by its id, so running this again
# after a stop trains only what is missing. Run it in the background from the repository root:
#
#   setsid nohup bash results/article/run_study.sh > results/article/study.log 2>&1 &
#
# Two workers (STUDY_THREADS=1 each) share the grids through the run locks.
# Stages, in priority order (a study cut short has the claims' cells first):
#   1. focalbench reproduce article            the claims (13 cells x 5 seeds, data seeds, 100 epochs)
#   2. focalbench reproduce article_precision  bf16 against fp32 for focal loss and logit-adjusted CE
#   3. the recipe's tuning runs                 CE, seed 0, 30 epochs, judged on validation only
# Each stage's exit code is 1 when a claim does not hold: that is a result, so the script goes on.
set -u
cd "$(dirname "$0")/../.."
export FOCALBENCH_DATA="${FOCALBENCH_DATA:-../shared/data}"
fb=".venv/bin/focalbench"
# threads is not part of a run id: STUDY_THREADS=1 keeps a busy machine from oversubscribing its cores
# (two threads per run fell to a tenth of their speed while tests ran beside them); 0 = all cores.
out="results_dir=results/article threads=${STUDY_THREADS:-0}"
echo "study start $(date -u +%FT%TZ) on $(.venv/bin/python -c 'from focalbench.hardware import cpu_model; print(cpu_model())')"
# A suite's grid lines, one per line (its words separated by spaces); last first with STUDY_REVERSE=1. A sweep
# waits at its end for its runs that another worker is training, so a second worker started with
# STUDY_REVERSE=1 takes the lines from the other end, and the two meet only on the last line.
grid_lines() {
  .venv/bin/python -c '
import sys, yaml
lines = yaml.safe_load(open(f"configs/experiment/{sys.argv[1]}.yaml"))["suite"]["grid"]
for line in reversed(lines) if sys.argv[2] == "1" else lines:
    print(" ".join(line))' "$1" "${STUDY_REVERSE:-0}"
}
# The grid lines on stdin, each as `focalbench sweep experiment=<suite> <line>`: that is how `reproduce` plans
# a line, so the runs get the suite's run ids. The sweep folders (sweeps/tmp_<prefix>_<i>) are scratch.
sweep_lines() {  # suite, name prefix
  local i=0 line
  while read -r line; do
    i=$((i + 1))
    # shellcheck disable=SC2086  # the grid line's overrides, one word each
    $fb sweep experiment="$1" $line $out --name "tmp_$2_$i" < /dev/null
  done
}
# The study is bf16 (`precision: bf16` in configs/experiment/article.yaml). On a CPU without native bf16 its
# convolutions run as fp32 products rounded to bf16 (focalbench/training/bf16_conv.py: what a native kernel
# computes, at about fp32's speed; PyTorch's own fallback was 10x slower), and each record says so in
# environment.bf16_convolutions.
# STUDY_LONG_FIRST=1: the suite's 100-epoch grid lines first (a run has no checkpoint inside it, so a session
# that ends should cut a 25-epoch run, not a 35-minute one).
if [ "${STUDY_LONG_FIRST:-0}" = 1 ]; then
  grid_lines article | grep -w 'epochs=100' | sweep_lines article long
fi
$fb reproduce article $out
$fb reproduce article_precision $out
# Tuning of the cifar10_lt_cpu recipe (validation balanced accuracy of CE, seed 0, 30 epochs; the test set
# picked nothing): the runs behind the choices written in configs/experiment/cifar10_lt_cpu.yaml.
# precision=bf16 pinned: the recipe was tuned in bf16, and auto would resolve to fp32 on another CPU
tune=(experiment=cifar10_lt_cpu loss=ce seed=0 epochs=30 precision=bf16 $out)
small=("model.widths=[32,64,128]" model.stem=24)
$fb sweep "${tune[@]}" "${small[@]}" batch_size=256 optim.lr=0.2 optim.weight_decay=5e-4,2e-3 \
  --name article_tuning_weight_decay
$fb sweep "${tune[@]}" "${small[@]}" batch_size=128 optim.lr=0.1 --name article_tuning_batch
$fb sweep "${tune[@]}" "model.widths=[32,96,192]" model.stem=32 batch_size=128 optim.lr=0.1 \
  --name article_tuning_width
$fb report results/article/sweeps/article_tuning_* --out results/article/tuning --group-by none \
  --metrics val.balanced_accuracy,balanced_accuracy --baseline "model.widths=[32,96,192]"
echo "study end $(date -u +%FT%TZ)"
