#!/usr/bin/env bash
# Set-up on a fresh Debian machine, idempotent: system packages, Python
# packages (torch pinned to the version the GPU machines run), then the build.
# Re-running it only rebuilds what changed.
#
#   bash scripts/setup.sh                          # everything
#   LIGHTHOUSE_SKIP_INSTALL=1 ...                  # build only
#   LIGHTHOUSE_VENV=DIR ...                        # then also: a fresh virtual environment in DIR that
#                                                  # sees the system's packages (torch), with the Python
#                                                  # package pip-installed from this tree (scripts/test.sh)
#   LIGHTHOUSE_LARGE_CORPUS=1 bash scripts/setup.sh
#       also the large corpus's Debian packages (about 180 MB of .debs):
#       downloaded with `apt-get download` and unpacked with `dpkg-deb -x`
#       into data/debian/<package> ($LIGHTHOUSE_DEBIAN_ROOT), listed in
#       data/debian/packages.txt; nothing is installed system-wide. Then
#       `build/lighthouse data --corpus large` packs it (README, Data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TORCH_VERSION=2.11.0
PYTHON=${PYTHON:-python3}
BUILD_DIR=${BUILD_DIR:-build}
APT_PACKAGES=(cmake ninja-build ccache g++ clang libclang-rt-14-dev libgtest-dev libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libgloo-dev zlib1g-dev liblzma-dev xz-utils linux-doc-6.1)
# name==version of every Python package the tests use; torch first.
PIP_PACKAGES=("torch==${TORCH_VERSION}" "numpy==2.4.6" "pytest==9.2.0" "safetensors==0.8.0" "transformers==5.23.0" "matplotlib==3.11.2")
# Build requirements of the Python package (pip install --no-build-isolation .),
# installed into the LIGHTHOUSE_VENV environment only.
VENV_PIP_PACKAGES=("scikit-build-core==1.1.2" "pathspec==1.1.1")

log() { printf '[setup] %s\n' "$*"; }

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_pip() {
  local missing=()
  for spec in "${PIP_PACKAGES[@]}"; do
    local name=${spec%%==*} want=${spec##*==}
    local have
    have=$("$PYTHON" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
    # torch reports e.g. 2.11.0+cu130: compare the release part.
    [ "${have%%+*}" = "$want" ] || missing+=("$spec")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "pip install ${missing[*]}"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
}

# A fresh virtual environment with the package installed the way users
# install it. The op library builds in build/python/ (kept between runs) with
# the compiler of $BUILD_DIR, so ccache serves the objects it already built.
install_package_venv() {
  local venv cxx
  venv=$(realpath -m "$1")
  log "fresh virtual environment $venv (sees the system's site packages)"
  rm -rf "$venv"
  "$PYTHON" -m venv --system-site-packages "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${VENV_PIP_PACKAGES[@]}"
  cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:FILEPATH=//p' "$BUILD_DIR/CMakeCache.txt")
  log "pip install --no-build-isolation . into $venv"
  CXX=${CXX:-$cxx} "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation .
  (cd / && "$venv/bin/python" -m lighthouse)
}

if [ -z "${LIGHTHOUSE_SKIP_INSTALL:-}" ]; then
  install_apt
  install_pip
fi

# nvcc compiles our CUDA kernels even on machines without a GPU.
if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH=/usr/local/cuda/bin:$PATH
fi

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  log "configure $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${LIGHTHOUSE_CMAKE_ARGS:-} >/dev/null
fi
log "build $BUILD_DIR"
cmake --build "$BUILD_DIR"

# The large corpus (only when asked): the packages `lighthouse data --corpus
# large --list-packages` names, each unpacked into its own directory.
install_large_corpus() {
  local root=${LIGHTHOUSE_DEBIAN_ROOT:-data/debian}
  local wanted missing=()
  wanted=$("$BUILD_DIR/lighthouse" data --corpus large --list-packages)
  mkdir -p "$root"
  touch "$root/packages.txt"
  for p in $wanted; do
    { grep -q "^$p " "$root/packages.txt" && [ -d "$root/$p" ]; } || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && { log "large corpus packages present in $root"; return 0; }
  local tmp
  tmp=$(mktemp -d)
  log "apt-get download ${missing[*]}"
  if ! (cd "$tmp" && apt-get download -q "${missing[@]}" >/dev/null 2>&1); then
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    (cd "$tmp" && apt-get download -q "${missing[@]}" >/dev/null)
  fi
  for f in "$tmp"/*.deb; do
    local p
    p=$(dpkg-deb -f "$f" Package)
    rm -rf "${root:?}/$p"
    dpkg-deb -x "$f" "$root/$p"
    grep -v "^$p " "$root/packages.txt" >"$root/packages.txt.new" || true
    dpkg-deb -W --showformat='${Package} ${Version}\n' "$f" >>"$root/packages.txt.new"
    mv "$root/packages.txt.new" "$root/packages.txt"
    log "unpacked $(dpkg-deb -W --showformat='${Package} ${Version}' "$f") into $root/$p"
  done
  rm -rf "$tmp"
}
if [ -n "${LIGHTHOUSE_LARGE_CORPUS:-}" ]; then
  install_large_corpus
fi
log "done: $BUILD_DIR/lighthouse, $BUILD_DIR/liblighthouse_ops.so"
if [ -n "${LIGHTHOUSE_VENV:-}" ]; then
  install_package_venv "$LIGHTHOUSE_VENV"
fi
