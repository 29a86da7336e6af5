#!/usr/bin/env bash
# Prepares the wheels bench/gpu_check.sh installs on a GPU machine without internet, on a machine
# that reaches the package registries:
#
#   bash bench/gpu_wheels.sh [WHEELS_DIR=.whl] [PYTHON_VERSION=3.12]
#
# What the GPU image lacks for the checks: jittor (published as source only; its wheel is pure
# Python, and jittor compiles its C++ and CUDA at run time) and its astunparse; CUDA 13.0's CCCL
# headers (cub, thrust), which pip's nvcc does not bring and Jittor's cub operators need (the Part
# Selection Module's argmax): the CUDA 13 layer (transfg/jittor_cuda13.py) takes them from the
# install folder where the image has none; and a numpy Jittor can read. The image's numpy is 2.x, which Jittor 1.3 reads as garbage (transfg/jittor_env.py),
# and its scipy and pandas need numpy 2 (pandas 3.1 declares numpy>=2.0.2), so numpy 1.26 goes
# into WHEELS_DIR/jittor-site/, which gpu_check.sh installs apart and gives to the Jittor processes
# alone (TRANSFG_JITTOR_SITE). Everything else the checks import (torch, numpy, scipy, pandas,
# pillow, jinja2, matplotlib, pyyaml, tqdm, six) is in the image. numpy's wheel is binary, made
# for PYTHON_VERSION (the image's Python); so is any binary one added to EXTRA (pip download's
# platform flags are set for manylinux x86-64).
set -euo pipefail
WHEELS=${1:-$(dirname "$0")/../.whl}
case $WHEELS in /*) ;; *) WHEELS=$PWD/$WHEELS ;; esac  # relative to the caller's folder
cd "$(dirname "$0")/.."
PYTHON_VERSION=${2:-3.12}
PY=${PYTHON:-.venv/bin/python}
read -ra extra <<< "${EXTRA:-}"  # split into words, never expanded as file patterns
mkdir -p "$WHEELS/jittor-site"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary=:all: \
    -d "$work" jittor==1.3.11.0
"$PY" -m pip wheel -q --disable-pip-version-check --no-deps -w "$WHEELS" "$work"/jittor-*.tar.gz
download() {  # download FOLDER REQUIREMENT...: binary wheels for the GPU image's Python
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version "$PYTHON_VERSION" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -d "$@"
}
download "$WHEELS" astunparse==1.6.3 nvidia-cuda-cccl==13.0.85 "${extra[@]}"
rm -f "$WHEELS"/jittor-site/numpy-*.whl  # one numpy only: two versions stop the whole install
download "$WHEELS/jittor-site" numpy==1.26.4
ls -l "$WHEELS" "$WHEELS/jittor-site"
echo "gpu_wheels: $(ls "$WHEELS"/*.whl | wc -l) wheels in $WHEELS and" \
     "$(ls "$WHEELS"/jittor-site/*.whl | wc -l) in $WHEELS/jittor-site for bench/gpu_check.sh"
