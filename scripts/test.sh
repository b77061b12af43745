#!/usr/bin/env bash
# Install cucnn with its test extras (both modules where nvcc is found) and run the whole test
# suite. Does all of its own set-up on a fresh machine. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --no-build-isolation ".[test]"
python3 -m pytest "$@"
