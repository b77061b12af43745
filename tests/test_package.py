"""Package-level facts: availability probes never raise, modules import, the build is honest."""
from __future__ import annotations

import shutil

import pytest

import cucnn
from cucnn import _backend


def test_availability_probes_are_booleans():
    assert cucnn.sim.is_available() is True
    assert isinstance(cucnn.cuda.is_available(), bool)
    assert isinstance(cucnn.cuda.is_built(), bool)
    assert isinstance(cucnn.cuda.device_count(), int)
    assert "cpu" in cucnn.available_devices() and "sim" in cucnn.available_devices()


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="no nvcc here, so cucnn._cuda is not built")
def test_cuda_module_was_built_and_reports_no_device_without_raising():
    """Where nvcc exists (this project's machines) both modules are built; with no driver the CUDA
    module imports (static cudart) and reports zero devices rather than raising."""
    mod = _backend.cuda_module()
    assert mod is not None, "nvcc is present but cucnn._cuda was not built"
    assert mod.backend == "cuda"
    n = mod.device_count()
    assert isinstance(n, int) and n >= 0
    if n == 0:
        assert cucnn.cuda.is_available() is False
        with pytest.raises(RuntimeError, match="no CUDA device here"):
            cucnn.cuda.synchronize()


def test_sim_module():
    mod = _backend.sim_module()
    assert mod.backend == "sim"
