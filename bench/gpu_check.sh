#!/usr/bin/env bash
# The GPU checks in one command, on a fresh GPU machine without internet:
#
#   bash bench/gpu_check.sh [WHEELS_DIR=.whl] [OUT_DIR=gpu-check]
#
# 1. installs the wheels in WHEELS_DIR (prepared beforehand where the registries are reachable,
#    by bench/gpu_wheels.sh: jittor and what the GPU image lacks) into /tmp/site, and those in
#    WHEELS_DIR/jittor-site (numpy 1.26: the image's numpy 2 is one Jittor 1.3 reads as garbage,
#    and its scipy and pandas need numpy 2) into /tmp/jittor-site, which TRANSFG_JITTOR_SITE gives
#    to the Jittor processes alone (transfg/jittor_env.py); every other process keeps numpy 2;
# 2. Jittor alone first (the riskiest part: its CUDA core and first device kernels compile,
#    on CUDA 13 through the layer of transfg/jittor_cuda13.py; the numpy guard and round trip
#    run; `audit doctor`'s probe then runs a fused elementwise kernel and cub's argmax on the
#    device). Everything after needs it, so when it fails the script stops there, with the
#    compiler's messages. Then parity on the GPU: PyTorch (explicit and fused attention)
#    and Jittor on the device against PyTorch on the CPU, tiny configs and ViT-B/16 at 448 px
#    overlap (bench/gpu_parity.py;
#    PARITY_ARGS, e.g. "--cases tiny-transfg-overlap", narrows it);
# 3. the official transform chains, built by the official get_loader with the real torchvision,
#    against ours (bench/official_transforms.py; the official checkout comes from
#    TRANSFG_OFFICIAL or ../shared/reference beside the checkout, and the step passes with a
#    "skipped" line where it or torchvision is missing);
# 4. the performance suite at the paper's size (bench/suite.py; SUITE_ARGS overrides);
# 5. a short end-to-end audit: the default protocol, seeds 0 and 1, both frameworks, and its
#    report.
# Everything lands in OUT_DIR (machine.txt: versions, and the numpy each kind of process gets;
# timings.txt: seconds per step); the exit status is non-zero when a step failed.
# Sizing: at the paper's size the suite is 24 processes, and Jittor compiles its CUDA kernels on
# first use; for a short lease narrow it, e.g.
#   SUITE_ARGS="--preset vit_b16 --image-size 448 --batch 16 --steps 5 --frameworks torch-fused,jittor"
set -uo pipefail
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }  # from the caller's folder
WHEELS=$(absolute "${1:-$(dirname "$0")/../.whl}")
OUT=$(absolute "${2:-$(dirname "$0")/../gpu-check}")
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SUITE_ARGS=${SUITE_ARGS---preset vit_b16 --image-size 448 --batch 16 --steps 10}
PARITY_ARGS=${PARITY_ARGS:-}
read -ra suite_args <<< "$SUITE_ARGS"    # split into words, never expanded as file patterns
read -ra parity_args <<< "$PARITY_ARGS"
mkdir -p "$OUT"
rm -f "$OUT/timings.txt"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G "$WHEELS/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$WHEELS"/*.whl || { echo "gpu_check: installing wheels failed" >&2; exit 2; }
  export PYTHONPATH="/tmp/site:$PYTHONPATH"
fi
if compgen -G "$WHEELS/jittor-site/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/jittor-site "$WHEELS"/jittor-site/*.whl \
    || { echo "gpu_check: installing $WHEELS/jittor-site failed" >&2; exit 2; }
  export TRANSFG_JITTOR_SITE=/tmp/jittor-site
fi
jittor_py() {  # Python as the audit starts a Jittor process (transfg/jittor_env.py: site_env)
  env ${TRANSFG_JITTOR_SITE:+PYTHONPATH=$TRANSFG_JITTOR_SITE:$PYTHONPATH} $PY "$@"
}
numpy_line='import numpy; print("numpy", numpy.__version__, numpy.__file__)'
{ nvidia-smi || echo "no nvidia-smi"; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  echo "other processes: $($PY -c "$numpy_line")"
  echo "Jittor processes: $(jittor_py -c "$numpy_line")"
} > "$OUT/machine.txt" 2>&1

status=0
step() {  # step NAME COMMAND...: run, log to OUT/NAME.txt, time it, remember a failure
  local name=$1 start=$SECONDS; shift
  echo "== $name"
  "$@" 2>&1 | tee "$OUT/$name.txt" || { echo "gpu_check: $name failed" >&2; status=1; }
  echo "$name: $((SECONDS - start)) s" | tee -a "$OUT/timings.txt"
}
# Jittor first: its core and, on a GPU, its CUDA core and first device kernels compile here, and
# transfg.jittor's guards run (the numpy it gets, an array's round trip, a matrix product), all in
# the doctor's probe, whose last line says which CUDA Jittor found, whether the CUDA 13 layer is
# active and how the device kernels came out. A second try follows a rebuild: jittor exits after
# rebuilding its core for changed compile flags.
jittor_first() {
  local probe='from audit.doctor import JITTOR_PROBE; exec(JITTOR_PROBE)'
  jittor_py -c "$probe" || jittor_py -c "$probe"
}
jittor_verdict() {  # from the probe's line: on a GPU, Jittor on CUDA with right kernels
  $PY - "$OUT/jittor.txt" <<'EOF_PY'
import json, subprocess, sys
info = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
try:
    gpu = subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
except OSError:
    gpu = False
print("gpu_check: Jittor on", f"CUDA: {info['cuda_detail']}; device kernels {info['kernels']}"
      if info["cuda"] else "the CPU" + (" although a GPU is here" if gpu else ""))
sys.exit(0 if all((info["kernels"] or {}).values()) and info["cuda"] == gpu else 1)
EOF_PY
}
step jittor jittor_first
if [ $status -ne 0 ] || ! jittor_verdict; then
  echo "gpu_check: Jittor is not ready, so nothing else runs; its messages (all in" \
       "$OUT/jittor.txt):" >&2
  grep -aE "error|Error|fatal|refused|JittorUnusable|CudaLayerError" "$OUT/jittor.txt" \
    | head -40 >&2
  exit 1
fi
step parity $PY bench/gpu_parity.py "${parity_args[@]}" --out "$OUT"
step official-transforms $PY bench/official_transforms.py --out "$OUT"
step suite $PY bench/suite.py "${suite_args[@]}" --results "$OUT"
step audit-run $PY -m audit.cli run protocols/default.toml --seeds 0,1 --store "$OUT/runs"
step audit-report $PY -m audit.cli report protocols/default.toml --store "$OUT/runs" \
    -o "$OUT/report" --format html,json
echo "gpu_check: results in $OUT (exit status $status)"
exit $status
