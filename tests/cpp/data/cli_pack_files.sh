#!/bin/sh
# cli_data_packs_files: `lighthouse data` on a directory of small text files
# it writes first (ten files of about 2.7 kB), so that what the test packs does
# not change with the repository's own files (it used to pack README.md and
# docs/, and failed once a large file came first in the seeded order and
# filled the byte cap alone).
#   sh cli_pack_files.sh LIGHTHOUSE_BIN WORK_DIR
set -eu
bin=$1
work=$2
rm -rf "$work"
mkdir -p "$work/in"
for i in 1 2 3 4 5 6 7 8 9 10; do
  n=1
  while [ $n -le 40 ]; do
    echo "document $i, line $n: the quick brown fox jumps over the lazy dog"
    n=$((n + 1))
  done >"$work/in/file$i.txt"
done
exec "$bin" data "$work/in" --out "$work/out" --val-fraction 0.2 --max-bytes 20kB
