#!/usr/bin/env bash
# Builds every libFuzzer target in tests/fuzz with clang and runs each for a
# short time from its seed corpus (TESTING.md item 16). Exits non-zero on a
# crash, a sanitizer report, a leak, a timeout or an out-of-memory input; the
# reproducer is kept under <build-dir>/artifacts/.
#
#   bash tests/fuzz/run.sh                     # all targets, 30 s each
#   bash tests/fuzz/run.sh --time 300 safetensors
#   bash tests/fuzz/run.sh --build-dir build/fuzz
#   <build-dir>/safetensors_fuzz <artifact>    # replay a reproducer
#
# New inputs found go to <build-dir>/corpus/<name>/ (the repository's seeds
# in tests/fuzz/corpus/<name>/ are read, never written).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TIME=${FUZZ_TIME:-30}
BUILD="$ROOT/build-fuzz"
TARGETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) TIME=$2; shift 2 ;;
    --build-dir) BUILD=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
log() { printf '[fuzz] %s\n' "$*"; }

CXX_FUZZ=${CXX_FUZZ:-clang++}
if ! command -v "$CXX_FUZZ" >/dev/null 2>&1; then
  log "error: $CXX_FUZZ not found: install clang and libclang-rt-14-dev (scripts/setup.sh does)"
  exit 1
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$HERE" -B "$BUILD" "${generator[@]}" -DCMAKE_CXX_COMPILER="$CXX_FUZZ" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo ${LIGHTHOUSE_EXTRA_INCLUDE:+-DLIGHTHOUSE_EXTRA_INCLUDE=$LIGHTHOUSE_EXTRA_INCLUDE} >/dev/null
fi
log "build $BUILD"
if ! cmake --build "$BUILD" >"$BUILD/build.log" 2>&1; then
  tail -40 "$BUILD/build.log"
  log "error: building the fuzz targets failed (is libclang-rt-14-dev installed? log: $BUILD/build.log)"
  exit 1
fi

if [ ${#TARGETS[@]} -eq 0 ]; then
  for src in "$HERE"/*_fuzz.cpp; do
    name=$(basename "$src" _fuzz.cpp)
    TARGETS+=("$name")
  done
fi

failed=0
for name in "${TARGETS[@]}"; do
  bin="$BUILD/${name}_fuzz"
  [ -x "$bin" ] || { log "error: no target $name (tests/fuzz/${name}_fuzz.cpp)"; failed=1; continue; }
  work="$BUILD/corpus/$name"
  mkdir -p "$work" "$BUILD/artifacts"
  args=(-max_total_time="$TIME" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1
        -artifact_prefix="$BUILD/artifacts/$name-")
  [ -f "$HERE/$name.dict" ] && args+=(-dict="$HERE/$name.dict")
  dirs=("$work")
  [ -d "$HERE/corpus/$name" ] && dirs+=("$HERE/corpus/$name")
  log "$name: ${TIME} s"
  if "$bin" "${args[@]}" "${dirs[@]}" >"$BUILD/$name.log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$BUILD/$name.log" | grep -o '[0-9]*$' || echo "?")
    log "$name: ok, $runs runs, corpus $(ls "$work" | wc -l) inputs"
  else
    tail -60 "$BUILD/$name.log"
    log "$name: FAILED (log $BUILD/$name.log; reproducer: $(ls "$BUILD"/artifacts/"$name"-* 2>/dev/null | head -1))"
    failed=1
  fi
done
exit $failed
