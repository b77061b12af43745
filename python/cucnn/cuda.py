"""The cuda device: the kernels compiled by nvcc (cucnn._cuda) on CuPy arrays.

``is_available()`` is True only where cucnn._cuda was built, CuPy imports and a device is present;
it never raises. ``use_reference_path()`` switches the cuda device from the native kernels to the
oracle's array code run by CuPy (the reference path), for comparison.
"""
from __future__ import annotations

from . import _backend
from ._backend import (cuda_available, cuda_module, reference_path, set_reference_path,
                       use_reference_path)

__all__ = ["is_available", "why_unavailable", "is_built", "device_count", "synchronize",
           "use_reference_path", "set_reference_path", "reference_path"]


def is_built() -> bool:
    """Whether cucnn._cuda was built (nvcc was found at install time). Never raises."""
    try:
        return cuda_module() is not None
    except Exception:
        return False


def device_count() -> int:
    """CUDA devices visible to cucnn._cuda; 0 where it was not built or there is no driver."""
    try:
        mod = cuda_module()
        return int(mod.device_count()) if mod is not None else 0
    except Exception:
        return 0


def is_available() -> bool:
    """Whether the cuda device can run: cucnn._cuda, CuPy, a driver new enough for the CUDA 13
    runtime (R580+), and a GPU the module has code for. Never raises."""
    return cuda_available()


def why_unavailable() -> str:
    """Why ``is_available()`` is False, as a sentence (no cucnn._cuda, no CuPy, no driver, a
    driver too old for the static CUDA 13 runtime, no device, a GPU architecture the module has
    no code for); "" when it is True. Never raises."""
    cuda_available()  # decides once per process, as is_available() does
    return _backend._cuda_reason


def synchronize() -> None:
    """Wait until the GPU has finished all work (cudaDeviceSynchronize): for timing from the host.
    Then reports a bad cross-entropy target found on the device since the last check (the
    kernels check targets without a host round trip; see ops/cross_entropy.check_targets).
    Raises RuntimeError where the cuda device is not available."""
    if not is_available():
        raise RuntimeError("cucnn.cuda.synchronize: no CUDA device here (see is_available())")
    cuda_module().synchronize()
    from .ops.cross_entropy import check_targets
    check_targets()
