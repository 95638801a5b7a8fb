#!/usr/bin/env bash
# The trainer on one GPU, two checks in about a minute (issue 8 bug 1,
# issue 10 item 4). Called by `bash scripts/gpu-check.sh test`; alone:
#
#   OUT=/tmp/out LH=build-gpu/lighthouse bash scripts/gpu-trainer-check.sh
#
# 1. Exit: exactly the command that crashed at exit on an H200 (SIGSEGV
#    through a null function pointer after the last step):
#      lighthouse train --preset gpu-small --no-baseline --steps 8
#        --stage2.start_step 6 --deterministic --checkpoint.every 4 --eval.every 0
#    run from the repository root (it writes the preset's run directory,
#    runs/gpu-small/, removed first).
#    Its exit code is reported; if it is not 0 the command runs again under
#    cuda-gdb (batch: run, backtrace, shared libraries) into
#    $OUT/exit-crash-backtrace.txt. $OUT/exit-diagnostics.txt records the
#    program's NEEDED order and which libstdc++ it loads.
# 2. Exact resume: the same deterministic run stopped after step 4
#    (--stop-after 4) and resumed from its run directory
#    (`lighthouse train --resume DIR`) must reproduce the losses of run 1
#    bit for bit (metrics.jsonl, compared as exact decimal strings).
#
# Needs the packed corpus in data/packed (carried; gpu-small reads it) and
# the built program ($LH, default $BUILD_DIR/lighthouse). Prints one line
# per check ("... PASS" / "... FAIL: why") and exits non-zero on a failure.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
LH=${LH:-$BUILD_DIR/lighthouse}
OUT=${OUT:-/tmp/lighthouse-gpu}/trainer
mkdir -p "$OUT"
status=0
if [[ ! -x $LH ]]; then echo "trainer check FAIL: $LH is not built"; exit 1; fi
if [[ ! -f data/packed/manifest.json ]]; then
  echo "trainer check FAIL: data/packed/manifest.json missing (carry data/packed)"
  exit 1
fi

ARGS=(train --preset gpu-small --no-baseline --steps 8 --stage2.start_step 6 --deterministic --checkpoint.every 4
      --eval.every 0)
{
  echo "program: $LH"
  readelf -d "$LH" | grep NEEDED
  ldd "$LH" | grep -E 'libstdc|libtorch|libc10' || true
  libstd=$(ldd "$LH" | awk '/libstdc\+\+/ {print $3}')
  echo "libstdc++ defines recursive_directory_iterator::__erase: $(nm -D --defined-only "$libstd" 2>/dev/null |
    grep -c recursive_directory_iterator7__erase)"
} >"$OUT/exit-diagnostics.txt" 2>&1

# 1. The exact command, fresh, in the preset's run directory.
RUN_ROOT=$("$LH" "${ARGS[@]}" --print-config | sed -n 's/^run_dir = "\(.*\)"$/\1/p')
[[ -n $RUN_ROOT ]] || { echo "trainer check FAIL: no run_dir in --print-config"; exit 1; }
rm -rf "$RUN_ROOT"
start=$(date +%s)
"$LH" "${ARGS[@]}" >"$OUT/exit-run.log" 2>&1
rc=$?
echo "exit check: lighthouse ${ARGS[*]}: exit code $rc in $(($(date +%s) - start)) s"
if [[ $rc == 0 ]] && grep -q "Run summary" "$OUT/exit-run.log"; then
  echo "exit check PASS"
else
  echo "exit check FAIL: exit code $rc (log: $OUT/exit-run.log; backtrace: $OUT/exit-crash-backtrace.txt)"
  tail -5 "$OUT/exit-run.log"
  status=1
  cp -r "$RUN_ROOT" "$OUT/crashed-run-files" 2>/dev/null
  find "$OUT/crashed-run-files" -name '*.safetensors' -delete 2>/dev/null
  rm -rf "$RUN_ROOT"
  timeout 300 cuda-gdb -batch -ex 'set pagination off' -ex run -ex bt -ex 'info registers rip' \
    -ex 'info sharedlibrary' --args "$LH" "${ARGS[@]}" >"$OUT/exit-crash-backtrace.txt" 2>&1
  echo "cuda-gdb rerun: exit $? ($(grep -c '^#' "$OUT/exit-crash-backtrace.txt") frames in $OUT/exit-crash-backtrace.txt)"
  grep -E '^#[0-9]' "$OUT/exit-crash-backtrace.txt" | head -12
fi
cp "$RUN_ROOT/two-stage/metrics.jsonl" "$OUT/full-metrics.jsonl" 2>/dev/null

# 2. Exact resume: stopped after step 4, resumed from the run directory.
SPLIT=runs/gpu-check-split
rm -rf "$SPLIT"
start=$(date +%s)
"$LH" "${ARGS[@]}" --run-dir "$SPLIT" --stop-after 4 >"$OUT/resume-part1.log" 2>&1
rc1=$?
"$LH" train --resume "$SPLIT" >"$OUT/resume-part2.log" 2>&1
rc2=$?
cp "$SPLIT/two-stage/metrics.jsonl" "$OUT/resumed-metrics.jsonl" 2>/dev/null
verdict=$(python3 - "$OUT/full-metrics.jsonl" "$OUT/resumed-metrics.jsonl" <<'EOF'
import json, sys
def losses(path):
    # Exact decimal strings as written (17 significant digits round-trip).
    out = []
    for line in open(path):
        rec = json.loads(line, parse_float=str)
        out.append((rec["step"], rec["loss"]))
    return out
try:
    a, b = losses(sys.argv[1]), losses(sys.argv[2])
except OSError as e:
    print(f"FAIL: {e}")
    sys.exit()
if len(a) != 8:
    print(f"FAIL: the uninterrupted run logged {len(a)} steps, not 8")
elif a != b:
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    print(f"FAIL: {len(diff)} of 8 losses differ, first {diff[:1]}" if diff else f"FAIL: {len(b)} steps resumed")
else:
    print("PASS: 8 losses equal bit for bit (" + ", ".join(l for _, l in a[:2]) + ", ...)")
EOF
)
echo "exact resume check (exit codes $rc1, $rc2, $(($(date +%s) - start)) s): $verdict"
[[ $rc1 == 0 && $rc2 == 0 && $verdict == PASS* ]] || status=1
rm -rf "$SPLIT" "$RUN_ROOT"
exit $status
