#!/usr/bin/env bash
# Install cucnn with its test extras (both modules where nvcc is found) and run the whole test
# suite. Does all of its own set-up on a fresh machine (or in a fresh virtual environment, as
# .ci/run does). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
install() {
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@"
}
install "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
# PyTorch, the reference of the comparisons (the `dist` extra), first and pinned: the CPU build
# of that release is what this project's machines hold; an unpinned resolve could pull a
# multi-GB CUDA build. `pip install .` alone never installs it.
install "torch==2.13.0"
install --no-build-isolation ".[test,dist]"
python3 -m pytest "$@"
