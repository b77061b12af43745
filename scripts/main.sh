#!/usr/bin/env bash
# The main job: install cucnn, make sure Fashion-MNIST is there, and train LeNet-5 on it
# (5 epochs, Adam 1e-3, batch 64, on cuda when available, else cpu). Does all of its own set-up on
# a fresh machine. Extra arguments go to `cucnn train` (e.g. --epochs 1, --device sim --limit 512).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --no-build-isolation ".[viz]"

# Fashion-MNIST: $CUCNN_DATA, else Debian's package dataset-fashion-mnist.
data_dir="${CUCNN_DATA:-/usr/share/datasets/fashion-mnist}"
if ! ls "$data_dir"/train-images-idx3-ubyte* >/dev/null 2>&1 \
   && ! ls "$data_dir"/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Fashion-MNIST not found in $data_dir: installing Debian's dataset-fashion-mnist" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q dataset-fashion-mnist >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  else
    echo "Fashion-MNIST not found in $data_dir. Install it with" >&2
    echo "  sudo apt-get install dataset-fashion-mnist   (Debian/Ubuntu), or put the four IDX" >&2
    echo "files (train-images-idx3-ubyte.gz, ...) in a directory and set CUCNN_DATA to it." >&2
    exit 1
  fi
fi

python3 -m cucnn.cli train --model lenet5 --dataset fashion-mnist --epochs 5 --batch-size 64 \
  --optimizer adam --lr 1e-3 --device auto --seed 0 --out runs/lenet5-fashion-mnist "$@"
