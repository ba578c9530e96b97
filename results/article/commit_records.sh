#!/usr/bin/env bash
# Commit the article study's finished run records while it runs: every run folder with a metrics.json and no
# lock.json (a run still training, or one a stopped worker left, stays out). The study's report and the
# README's article block are regenerated from exactly those records, in a scratch copy, so that a run that
# finishes meanwhile cannot slip into a report its records do not back. Run it from the repository root:
#
#   bash results/article/commit_records.sh
set -u
cd "$(dirname "$0")/../.."
# absolute: the report runs from a scratch copy
export FOCALBENCH_DATA="$(realpath -m "${FOCALBENCH_DATA:-../shared/data}")"
repo=$(pwd)
fb="$repo/.venv/bin/focalbench"
py="$repo/.venv/bin/python"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/results/article/runs"
finished=()
for dir in results/article/runs/*/; do
  if [ -f "$dir/metrics.json" ] && [ ! -f "$dir/lock.json" ]; then
    cp -r "$dir" "$tmp/results/article/runs/"
    finished+=("${dir%/}")
  fi
done
cp -r results/article/sweeps "$tmp/results/article/"
cp README.md "$tmp/README.md"
ln -s "$repo/configs" "$tmp/configs"
(
  cd "$tmp" || exit 3
  # exit 1 means a claim does not hold (a result); anything above is a failure of the report itself
  "$fb" reproduce article results_dir=results/article --report-only > report.log 2>&1
  rc=$?
  if [ $rc -gt 1 ]; then tail -20 report.log; exit 3; fi
  # the precision test (its grid pins the precision of each run)
  "$fb" reproduce article_precision results_dir=results/article --report-only > precision.log 2>&1
  rc=$?
  if [ $rc -gt 1 ]; then tail -20 precision.log; exit 3; fi
  "$py" -m focalbench.reports.headline results/article/sweeps/article README.md \
    results/article/sweeps/article_precision
) || { echo "the report failed: nothing committed" >&2; exit 3; }
# the README must stay short (tests/test_docs.py): a block that outgrew it is caught here, not by CI
max_lines=$(grep -oP '^README_MAX_LINES = \K[0-9]+' tests/test_docs.py)
lines=$(wc -l < "$tmp/README.md")
if [ "$lines" -gt "$max_lines" ]; then
  echo "the regenerated README.md has $lines lines (at most $max_lines): shorten it first; nothing committed" >&2
  exit 3
fi
reports=(results/article/sweeps/article results/article/sweeps/article_precision)
for report in "${reports[@]}"; do
  rm -rf "$report"
  cp -r "$tmp/$report" "$report"
done
cp "$tmp/README.md" README.md
git add "${finished[@]}" "${reports[@]}" README.md
if git diff --cached --quiet; then
  echo "nothing new (${#finished[@]} finished records)"
else
  git commit -q -m "results/article: finished run records so far (${#finished[@]} runs); README article block and the study's reports regenerated from exactly those records"
  echo "committed: ${#finished[@]} finished records"
fi
tail -1 "$tmp/report.log"; tail -2 "$tmp/precision.log"
