#!/usr/bin/env bash
# Compares the source tree a GPU run used with this checkout, from the
# machine.txt that `scripts/gpu-check.sh build` wrote there (its "file" lines:
# one sha256 per file of csrc, tests, scripts, benchmarks, python and the
# build files). Prints each file that differs, is missing here, or exists
# here but was not in the tree sent; exit 0 when the two trees are the same.
#   bash scripts/check-sent-tree.sh PATH/machine.txt
#   bash scripts/check-sent-tree.sh --list   # the sha256 lines of this tree (gpu-check.sh writes them)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
list() {
  git ls-files -co --exclude-standard csrc tests scripts benchmarks python CMakeLists.txt pyproject.toml | sort |
    xargs sha256sum
}
if [[ ${1:-} == --list ]]; then
  list
  exit 0
fi
machine=${1:?usage: check-sent-tree.sh PATH/machine.txt | --list}
sent=$(grep '^file ' "$machine" | sed 's/^file //' || true)
if [[ -z $sent ]]; then
  echo "check-sent-tree: $machine has no 'file' lines (written by gpu-check.sh from 2026-12-02 on)" >&2
  exit 2
fi
here=$(list)
report=$(
  # In the order of the tree sent: files that differ or are missing here; then files only here.
  awk 'NR == FNR { here[$2] = $1; next }
       !($2 in here) { print "only in the tree sent: " $2; next }
       here[$2] != $1 { print "differs: " $2 }' <(echo "$here") <(echo "$sent")
  comm -13 <(awk '{ print $2 }' <<<"$sent" | sort) <(awk '{ print $2 }' <<<"$here") | sed 's/^/only here: /'
)
if [[ -n $report ]]; then
  echo "$report"
  exit 1
fi
echo "check-sent-tree: the tree sent equals this checkout ($(wc -l <<<"$sent") files)"
