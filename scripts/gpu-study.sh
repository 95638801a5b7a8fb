#!/usr/bin/env bash
# The recipe study (docs/study.md) on one GPU machine, in pieces that fit
# commands of at most 10 minutes on one warm machine:
#
#   bash scripts/gpu-study.sh start      # build, unpack and verify the corpus,
#                                        # start the study in the background
#   bash scripts/gpu-study.sh wait [S]   # wait up to S seconds (default 540):
#                                        # exit 0 once it has finished, 3 if
#                                        # still running, 1 if it failed
#   bash scripts/gpu-study.sh collect    # the results into $OUT/study.tar.gz
#
# Environment: STUDY_ARGS (extra `lighthouse study` arguments, e.g.
# "--fractions 0.75"), STUDY_DIR (default runs/study), CARRY (the carried
# corpus, default data/carry/large-110m; unpacked into data/large-110m, the
# study preset's data.dir), OUT (default /tmp/lighthouse-gpu).
# The study runs alone on the GPU: its arms' wall-clock is part of what it
# measures, so run nothing else there until `wait` says it finished.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE=${1:-}
STUDY_DIR=${STUDY_DIR:-runs/study}
CARRY=${CARRY:-data/carry/large-110m}
OUT=${OUT:-/tmp/lighthouse-gpu}
LH=${LH:-build-gpu/lighthouse}
mkdir -p "$OUT"

case $MODE in
start)
  OUT=$OUT bash scripts/gpu-check.sh build || exit 1
  start=$(date +%s)
  LIGHTHOUSE_BIN=$LH bash scripts/corpus-carry.sh unpack "$CARRY" data/large-110m || exit 1
  echo "corpus unpacked and verified in $(($(date +%s) - start)) s"
  mkdir -p "$STUDY_DIR"
  # shellcheck disable=SC2086
  setsid nohup bash -c "'$LH' study --preset study --out '$STUDY_DIR' ${STUDY_ARGS:-}; echo \$? >'$STUDY_DIR/exit_code'" \
    >"$STUDY_DIR/study.log" 2>&1 </dev/null &
  sleep 20
  echo "study started (pid $!): $STUDY_DIR/study.log"
  tr '\r' '\n' <"$STUDY_DIR/study.log" | tail -15
  ;;
wait)
  limit=${2:-540}
  start=$(date +%s)
  while [[ ! -f $STUDY_DIR/exit_code ]] && (($(date +%s) - start < limit)); do sleep 10; done
  tr '\r' '\n' <"$STUDY_DIR/study.log" | grep -v '^\s*$' | tail -25
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
  if [[ ! -f $STUDY_DIR/exit_code ]]; then
    echo "study still running after $(($(date +%s) - start)) s of waiting"
    exit 3
  fi
  rc=$(cat "$STUDY_DIR/exit_code")
  echo "study finished: exit code $rc"
  [[ $rc == 0 ]] || exit 1
  ;;
collect)
  tr '\r' '\n' <"$STUDY_DIR/study.log" | grep -v '^\s*$' >"$STUDY_DIR/study-log.txt"
  (cd "$STUDY_DIR" && find . \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.png' -o -name '*.toml' \
    -o -name 'study-log.txt' -o -name exit_code \) -not -path '*/checkpoints/*' -not -path './branches/*' -print0 |
    tar --null -czf "$OUT/study.tar.gz" -T -)
  ls -la "$OUT/study.tar.gz"
  ;;
*)
  sed -n '2,19p' "$0" >&2
  exit 2
  ;;
esac
