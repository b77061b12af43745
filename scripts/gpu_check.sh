#!/usr/bin/env bash
# The first ten minutes on a GPU: build cucnn for this GPU, run the cuda tests, benchmark every op
# against cuDNN (TF32 off and on), time a LeNet-5 training step on cuda and cpu, train LeNet-5 on
# Fashion-MNIST on cuda for 5 epochs, and write everything plus a summary table under one folder.
#
#   scripts/gpu_check.sh [--out DIR] [--data-root DIR] [--python PY] [--epochs N] [--skip-build]
#                        [--quick]
#
# Fails early and loudly (exit 3) when the machine cannot run it: no nvcc, no GPU or driver, a
# driver too old for the CUDA 13 runtime (R580+), no CuPy, no Fashion-MNIST files. Later steps
# that fail are recorded in the summary and the script exits 1 after writing it.
# Steps and what to look at: benchmarks/README.md, "The first GPU run".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT=""
DATA_ROOT="${CUCNN_DATA:-/usr/share/datasets/fashion-mnist}"
PY="${PYTHON:-python3}"
EPOCHS=5
SKIP_BUILD=0
QUICK=0
MIN_DRIVER=580

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {  # die MESSAGE WHAT-TO-DO
  echo "gpu_check: error: $1" >&2
  [ -n "${2:-}" ] && echo "gpu_check: what to do: $2" >&2
  exit 3
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory" "scripts/gpu_check.sh --out DIR"
           OUT="$2"; shift 2 ;;
    --data-root) [ $# -ge 2 ] || die "--data-root needs a directory" "pass the IDX folder"
           DATA_ROOT="$2"; shift 2 ;;
    --python) [ $# -ge 2 ] || die "--python needs an interpreter" "--python /path/to/python"
           PY="$2"; shift 2 ;;
    --epochs) [ $# -ge 2 ] || die "--epochs needs a number" "--epochs 5"
           EPOCHS="$2"; shift 2 ;;
    --skip-build) SKIP_BUILD=1; shift ;;
    --quick) QUICK=1; shift ;;
    *) die "unknown argument '$1'" "see scripts/gpu_check.sh --help" ;;
  esac
done
case "$EPOCHS" in
  ''|*[!0-9]*) die "--epochs must be a positive integer, got '$EPOCHS'" "--epochs 5" ;;
esac
[ "$EPOCHS" -ge 1 ] || die "--epochs must be a positive integer, got '$EPOCHS'" "--epochs 5"
[ -n "$OUT" ] || OUT="$ROOT/runs/gpu-check-$(date -u +%Y%m%d-%H%M%S)"

# ---- preflight: everything that can fail before the GPU is used ----------------------------------
command -v "$PY" >/dev/null 2>&1 || die "python '$PY' not found" \
  "pass --python /path/to/python (a virtual environment with numpy, pytest, cupy-cuda13x, torch)"
command -v nvcc >/dev/null 2>&1 || die "nvcc not found on PATH: cucnn._cuda cannot be built" \
  "install the CUDA 13 toolkit and put its bin/ on PATH (export PATH=/usr/local/cuda/bin:\$PATH)"
NVCC_VERSION="$(nvcc --version 2>/dev/null |
  sed -n 's/.*release \([0-9][0-9.]*\).*/\1/p' | head -1)"
case "$NVCC_VERSION" in
  1[3-9].*|[2-9][0-9].*) ;;
  *) die "nvcc ${NVCC_VERSION:-of unknown version} found; cucnn needs CUDA 13 or newer" \
         "install the CUDA 13 toolkit and put its bin/ first on PATH" ;;
esac
command -v nvidia-smi >/dev/null 2>&1 || die "nvidia-smi not found: no NVIDIA driver, or no GPU" \
  "install the NVIDIA driver R${MIN_DRIVER} or newer (nvidia-smi must list the GPU)"
GPU_LINE="$(nvidia-smi --query-gpu=driver_version,compute_cap,name --format=csv,noheader \
  2>/dev/null | head -1)"
[ -n "$GPU_LINE" ] || die "nvidia-smi lists no GPU" \
  "check that the driver is loaded (nvidia-smi) and that CUDA_VISIBLE_DEVICES is not empty"
DRIVER="$(echo "$GPU_LINE" | cut -d, -f1 | tr -d ' ')"
CAP="$(echo "$GPU_LINE" | cut -d, -f2 | tr -d ' ')"
GPU_NAME="$(echo "$GPU_LINE" | cut -d, -f3- | sed 's/^ *//')"
DRIVER_MAJOR="${DRIVER%%.*}"
case "$DRIVER_MAJOR" in
  ''|*[!0-9]*) die "cannot read the driver version from nvidia-smi ('$GPU_LINE')" \
                   "run nvidia-smi and check that it works" ;;
esac
[ "$DRIVER_MAJOR" -ge "$MIN_DRIVER" ] || die \
  "driver $DRIVER is too old: the CUDA 13 runtime cucnn links statically needs R${MIN_DRIVER}+" \
  "update the NVIDIA driver to R${MIN_DRIVER} or newer"
ARCH="$(echo "$CAP" | tr -d '.')"
case "$ARCH" in
  ''|*[!0-9]*) die "cannot read the compute capability from nvidia-smi ('$GPU_LINE')" \
                   "set CUDAARCHS by hand, e.g. CUDAARCHS=90 pip install ." ;;
esac
[ "$ARCH" -ge 75 ] || die "GPU $GPU_NAME (sm_$ARCH) is older than sm_75, the oldest cucnn runs on" \
  "use a Turing (T4) or newer GPU"
"$PY" -c "import cupy" >/dev/null 2>&1 || die "CuPy does not import in $PY" \
  "$PY -m pip install cupy-cuda13x"
"$PY" -c "import pytest, numpy" >/dev/null 2>&1 || die "pytest or numpy missing in $PY" \
  "$PY -m pip install pytest numpy"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \
         t10k-labels-idx1-ubyte; do
  [ -e "$DATA_ROOT/$f" ] || [ -e "$DATA_ROOT/$f.gz" ] || die \
    "Fashion-MNIST file $f(.gz) not found in $DATA_ROOT" \
    "copy the four IDX files there, or pass --data-root DIR (or set CUCNN_DATA)"
done

mkdir -p "$OUT" || die "cannot create $OUT" "pass --out DIR somewhere writable"
OUT="$(cd "$OUT" && pwd)"
STEPS="$OUT/steps.tsv"
printf 'step\tstatus\tseconds\tlog\n' > "$STEPS"
{
  echo "gpu: $GPU_NAME"; echo "compute_capability: $CAP"; echo "driver: $DRIVER"
  echo "nvcc: $NVCC_VERSION"; echo "python: $("$PY" -c 'import sys; print(sys.version.split()[0])')"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"; echo "quick: $QUICK"
} > "$OUT/machine.txt"
echo "gpu_check: $GPU_NAME (sm_$ARCH), driver $DRIVER, nvcc $NVCC_VERSION -> $OUT"

FAILED=0
step() {  # step NAME TIMEOUT_S COMMAND...: run, log, time; a failure is recorded, not fatal
  local name="$1" limit="$2"; shift 2
  local log="$OUT/$name.log" t0 t1 rc
  echo "gpu_check: [$name] $*"
  t0=$(date +%s)
  (cd "$ROOT" && timeout "$limit" "$@") > "$log" 2>&1
  rc=$?
  t1=$(date +%s)
  local status=ok
  if [ $rc -eq 124 ]; then status="timeout (${limit}s)"; FAILED=1
  elif [ $rc -ne 0 ]; then status="failed (exit $rc)"; FAILED=1; fi
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$((t1 - t0))" "$(basename "$log")" >> "$STEPS"
  echo "gpu_check: [$name] $status in $((t1 - t0)) s (log: $log)"
  tail -3 "$log" | sed 's/^/    /'
  return $rc
}

# ---- 1. build for this GPU only (fast), then check the module loads and sees the GPU -------------
if [ "$SKIP_BUILD" -eq 0 ]; then
  step build 600 env CUDAARCHS="$ARCH" "$PY" -m pip install --no-build-isolation \
    -Cbuild-dir="build/gpu-check-sm$ARCH" -Ccmake.define.CUCNN_CUDA=ON . \
    || die "the build failed" "read $OUT/build.log"
fi
step available 60 "$PY" -c "import cucnn, sys; ok = cucnn.cuda.is_available(); \
print('is_available', ok, cucnn.cuda.why_unavailable()); sys.exit(0 if ok else 1)" \
  || die "cucnn.cuda.is_available() is False: $(tail -1 "$OUT/available.log")" \
         "read $OUT/available.log and $OUT/build.log"

# ---- 2. the cuda tests ---------------------------------------------------------------------------
step tests 300 "$PY" -m pytest tests -m cuda -q -p no:cacheprovider \
  --junitxml="$OUT/tests.xml"

# ---- 3. every op against cuDNN (TF32 off is the baseline; TF32 on is a row of its own) -----------
REPS=20; [ "$QUICK" -eq 1 ] && REPS=5
step ops 300 "$PY" benchmarks/ops.py --device cuda --suite full --reps "$REPS" \
  --out "$OUT/ops-cuda-full.json"

# ---- 4. LeNet-5 training step, cuda and cpu ------------------------------------------------------
STEPS_N=60; [ "$QUICK" -eq 1 ] && STEPS_N=20
step train_step 180 "$PY" benchmarks/train_step.py --devices cuda,cpu --steps "$STEPS_N" \
  --out "$OUT/train-step.json"

# ---- 5. LeNet-5 on Fashion-MNIST on cuda ---------------------------------------------------------
step train 300 "$PY" -m cucnn.cli train --model lenet5 --dataset fashion-mnist --device cuda \
  --epochs "$EPOCHS" --data-root "$DATA_ROOT" --out "$OUT/train-lenet5" --no-plots

# ---- summary -------------------------------------------------------------------------------------
"$PY" "$ROOT/scripts/gpu_check_summary.py" "$OUT" || FAILED=1
echo "gpu_check: results in $OUT (summary: $OUT/summary.md)"
exit $FAILED
