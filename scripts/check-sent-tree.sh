#!/usr/bin/env bash
# Compares the source tree a GPU run used with this checkout, from the
# machine.txt that `scripts/gpu-check.sh build` wrote there (its "file" lines:
# one sha256 per file of csrc, tests, scripts, benchmarks, python and the
# build files). Prints each file that differs, is missing here, or exists
# here but was not in the tree sent; exit 0 when the two trees are the same.
#   bash scripts/check-sent-tree.sh PATH/machine.txt
set -euo pipefail
machine=${1:?usage: check-sent-tree.sh PATH/machine.txt}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
sent=$(grep '^file ' "$machine" | sed 's/^file //' || true)
if [[ -z $sent ]]; then
  echo "check-sent-tree: $machine has no 'file' lines (written by gpu-check.sh from 2026-12-02 on)" >&2
  exit 2
fi
status=0
while read -r hash path; do
  if [[ ! -f $path ]]; then
    echo "only in the tree sent: $path"
    status=1
  elif [[ $(sha256sum "$path" | cut -d' ' -f1) != "$hash" ]]; then
    echo "differs: $path"
    status=1
  fi
done <<<"$sent"
only_here=$(comm -13 <(cut -d' ' -f3- <<<"$sent" | sort) \
  <(git ls-files -co --exclude-standard csrc tests scripts benchmarks python CMakeLists.txt pyproject.toml | sort))
if [[ -n $only_here ]]; then
  sed 's/^/only here: /' <<<"$only_here"
  status=1
fi
if [[ $status == 0 ]]; then
  echo "check-sent-tree: the tree sent equals this checkout ($(wc -l <<<"$sent") files)"
fi
exit $status
