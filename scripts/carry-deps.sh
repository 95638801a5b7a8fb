#!/usr/bin/env bash
# Copies the header-only Debian dependencies into .deps/include (git-ignored)
# so that a bare GPU machine can build: name `.deps` in the device call's carry.
# gloo: the headers of libgloo-dev, which torch's ProcessGroupGloo.hpp needs
# (libtorch has gloo compiled in; the wheel ships no gloo headers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .deps/include
for d in CLI nlohmann toml++ gloo; do
  rm -rf ".deps/include/$d"
  cp -r "/usr/include/$d" .deps/include/
done
du -sh .deps
