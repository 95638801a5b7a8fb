#!/usr/bin/env bash
# Carrying a packed dataset to the GPU machine, which receives at most about
# 60 MB per call (repository + carried files): compressed here with xz,
# decompressed there with Python's lzma (always in Python; the xz program
# may be absent there), then checked by its dataset id before training.
#
#   bash scripts/corpus-carry.sh pack PACKED_DIR [CARRY_DIR]   # here
#   bash scripts/corpus-carry.sh unpack CARRY_DIR OUT_DIR      # on the GPU machine
#
# pack: manifest.json, every shard and index of PACKED_DIR as CARRY_DIR/<file>.xz
#   (xz -9, $XZ_THREADS threads, default 2), plus CARRY_DIR/DATASET_ID; prints
#   the sizes and fails above $CARRY_LIMIT_MB (default 55). documents.tsv (the
#   per-document provenance list) stays here unless CARRY_DOCUMENTS=1.
#   CARRY_DIR defaults to data/carry/<name of PACKED_DIR> (data/ is ignored by
#   git: name it in the device call's `carry`).
# unpack: decompresses into OUT_DIR (skipped when OUT_DIR already verifies as
#   the carried dataset), then runs `lighthouse data --verify OUT_DIR
#   --dataset-id <carried id>` ($LIGHTHOUSE_BIN, default build-gpu/lighthouse,
#   else build/lighthouse): exit 0 and "verified ... (as expected)" mean the
#   shards are bit for bit the ones packed here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { sed -n '2,24p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage
mode=$1

lighthouse_bin() {
  if [ -n "${LIGHTHOUSE_BIN:-}" ]; then echo "$LIGHTHOUSE_BIN"; return; fi
  for b in build-gpu/lighthouse build/lighthouse; do
    if [ -x "$b" ]; then echo "$b"; return; fi
  done
  echo "corpus-carry: no lighthouse program (build first: bash scripts/gpu-check.sh build, or set LIGHTHOUSE_BIN)" >&2
  exit 1
}

case $mode in
pack)
  src=${2%/}
  dst=${3:-data/carry/$(basename "$src")}
  [ -f "$src/manifest.json" ] || { echo "corpus-carry: $src has no manifest.json (not a packed dataset)" >&2; exit 1; }
  id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dataset_id"])' "$src/manifest.json")
  rm -rf "$dst"
  mkdir -p "$dst"
  files=(manifest.json)
  while IFS= read -r f; do files+=("$f"); done < <(cd "$src" && ls | grep -E '^(train|val).*\.(bin|idx)$')
  if [ -n "${CARRY_DOCUMENTS:-}" ] && [ -f "$src/documents.tsv" ]; then files+=(documents.tsv); fi
  raw=0
  for f in "${files[@]}"; do
    xz -9 -T "${XZ_THREADS:-2}" -c "$src/$f" >"$dst/$f.xz"
    raw=$((raw + $(stat -c %s "$src/$f")))
  done
  echo "$id" >"$dst/DATASET_ID"
  packed=$(du -cb "$dst"/* | tail -1 | cut -f1)
  printf 'corpus-carry: %s -> %s: %d files, %.1f MB -> %.1f MB (xz -9), dataset_id %s\n' \
    "$src" "$dst" "${#files[@]}" "$(awk "BEGIN{print $raw/1e6}")" "$(awk "BEGIN{print $packed/1e6}")" "$id"
  limit=${CARRY_LIMIT_MB:-55}
  if [ "$packed" -gt $((limit * 1000000)) ]; then
    echo "corpus-carry: $dst is larger than ${limit} MB: pack a smaller subset (lighthouse data --corpus large --max-train-tokens N)" >&2
    exit 1
  fi
  ;;
unpack)
  [ $# -eq 3 ] || usage
  src=${2%/}
  out=${3%/}
  [ -f "$src/DATASET_ID" ] || { echo "corpus-carry: $src has no DATASET_ID (not a carry folder)" >&2; exit 1; }
  id=$(cat "$src/DATASET_ID")
  bin=$(lighthouse_bin)
  if [ -f "$out/manifest.json" ] && "$bin" data --verify "$out" --dataset-id "$id" >/dev/null 2>&1; then
    echo "corpus-carry: $out already holds dataset $id"
    exit 0
  fi
  rm -rf "$out.partial"
  mkdir -p "$out.partial"
  python3 - "$src" "$out.partial" <<'PY'
import lzma, os, shutil, sys
src, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    if not name.endswith(".xz"):
        continue
    with lzma.open(os.path.join(src, name)) as f, open(os.path.join(out, name[:-3]), "wb") as g:
        shutil.copyfileobj(f, g, 1 << 20)
PY
  rm -rf "$out"
  mv "$out.partial" "$out"
  "$bin" data --verify "$out" --dataset-id "$id"
  ;;
*)
  usage
  ;;
esac
