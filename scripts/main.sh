#!/usr/bin/env bash
# The main job: install cucnn and run every op on every available device against the oracle.
# Does all of its own set-up on a fresh machine. Extra arguments go to `cucnn demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  --no-build-isolation .
python3 -m cucnn.cli demo "$@"
