"""Devices and the arrays behind them.

``cpu`` and ``sim`` hold NumPy arrays; ``cuda`` holds CuPy arrays. ``cpu`` runs each op's oracle
array code in float32; ``sim`` runs the native kernels through the SIMT runtime (cucnn._sim);
``cuda`` runs them on the GPU (cucnn._cuda), or the oracle code on CuPy (the reference path).
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

DEVICES = ("cpu", "sim", "cuda")

_sim_module = None
_cuda_module = None
_cupy = None
_reference_path = os.environ.get("CUCNN_CUDA_PATH", "native") == "reference"


class DeviceError(ValueError, RuntimeError):
    """A bad device string: a RuntimeError as in PyTorch (``torch.device("foo")``), and a
    ValueError as every other bad argument in cucnn."""


def check_device(device) -> str:
    """The canonical name of a device string: "cpu", "sim" or "cuda"; an index ":0" is accepted
    (PyTorch's "cuda:0"), any other index is an error (cucnn drives one GPU)."""
    if not isinstance(device, str):
        raise TypeError(f"device must be a str, one of {DEVICES}, got {type(device).__name__}")
    if device not in DEVICES:
        kind, sep, index = device.partition(":")
        if not sep or kind not in DEVICES or not index.isdigit():
            raise DeviceError(f"device must be one of {DEVICES}, got {device!r} (an index may "
                              f"follow, as in 'cuda:0')")
        if int(index) != 0:
            raise DeviceError(f"device {device!r}: invalid device ordinal; cucnn uses one device "
                              f"per kind, index 0 ({kind!r} or '{kind}:0')")
        device = kind
    if device == "sim" and sim_module() is None:
        raise RuntimeError("device 'sim' is not available: cucnn._sim failed to import")
    if device == "cuda" and not cuda_available():
        raise RuntimeError(f"device 'cuda' is not available: {cuda_unavailable_reason()} (see "
                           f"cucnn.cuda.why_unavailable())")
    return device


def sim_module():
    """cucnn._sim, or the build of it named by $CUCNN_SIM_MODULE (a sanitizer build, see
    scripts/sanitize.py)."""
    global _sim_module
    if _sim_module is None:
        path = os.environ.get("CUCNN_SIM_MODULE")
        if path:
            import importlib.util
            import sys
            spec = importlib.util.spec_from_file_location("cucnn._sim", path)
            if spec is None or not os.path.exists(path):
                raise ImportError(f"CUCNN_SIM_MODULE={path}: no such extension module")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules["cucnn._sim"] = module
            _sim_module = module
            return module
        try:
            from . import _sim
        except ImportError:  # pragma: no cover - the build always makes it
            return None
        _sim_module = _sim
    return _sim_module


def cuda_module():
    """cucnn._cuda where it was built, else None. Never raises."""
    global _cuda_module
    if _cuda_module is None:
        try:
            from . import _cuda
        except ImportError:
            return None
        _cuda_module = _cuda
    return _cuda_module


def cupy():
    global _cupy
    if _cupy is None:
        try:
            import cupy as cp
        except Exception:
            return None
        _cupy = cp
    return _cupy


def unavailable_reason(built: bool, has_cupy: bool, driver_version: int, runtime_version: int,
                       capabilities, architectures, count_error: str = "") -> str:
    """Why the cuda device cannot run, as a sentence, or "" when it can. A pure function of what
    the machine reports, so that every answer is unit-tested without a GPU:

    built: cucnn._cuda imports; has_cupy: CuPy imports; driver_version / runtime_version: as
    cudaDriverGetVersion / cudaRuntimeGetVersion report them (1000 * major + 10 * minor; driver 0
    means no driver); capabilities: (major, minor) of each visible device; architectures: the
    sm numbers the module carries code for (__CUDA_ARCH_LIST__: 750, 800, 900); count_error: why
    cudaGetDeviceCount failed, if it did.

    A device runs the module when some compiled architecture is at most its capability (CMake
    embeds PTX for each architecture, which the driver compiles for newer GPUs)."""
    if not built:
        return ("cucnn._cuda was not built: nvcc was not found when cucnn was installed "
                "(reinstall with the CUDA toolkit on PATH)")
    if not has_cupy:
        return "CuPy is not installed (pip install cupy-cuda13x)"
    if driver_version <= 0:
        return "no NVIDIA driver is installed (cudaDriverGetVersion reports none)"
    need = (runtime_version // 1000) * 1000
    if runtime_version and driver_version < need:
        return (f"the NVIDIA driver supports CUDA {driver_version // 1000}."
                f"{driver_version % 1000 // 10}, older than the CUDA {runtime_version // 1000} "
                f"runtime cucnn._cuda is built with (needs driver R580 or newer; update the "
                f"driver or rebuild cucnn with an older CUDA toolkit)")
    if not capabilities:
        why = f" ({count_error})" if count_error else ""
        return f"no CUDA device is visible{why}; check nvidia-smi and CUDA_VISIBLE_DEVICES"
    major, minor = capabilities[0]
    cc = 100 * major + 10 * minor
    archs = sorted(int(a) for a in architectures)
    if archs and not any(a <= cc for a in archs):
        listed = ", ".join(f"sm_{a // 10}" for a in archs)
        return (f"the GPU (compute capability {major}.{minor}, sm_{major}{minor}) is older than "
                f"every architecture cucnn._cuda carries code for ({listed}); rebuild with "
                f"CUDAARCHS={major}{minor} pip install .")
    return ""


def cuda_unavailable_reason() -> str:
    """unavailable_reason() for this machine; "" when the cuda device can run. Never raises."""
    try:
        mod = cuda_module()
        if mod is None:
            return unavailable_reason(False, False, 0, 0, [], [])
        if cupy() is None:
            return unavailable_reason(True, False, 0, 0, [], [])
        caps = list(mod.device_capabilities())
        return unavailable_reason(True, True, mod.driver_version(), mod.runtime_version(), caps,
                                  mod.architectures, "" if caps else mod.device_count_error())
    except Exception as e:  # pragma: no cover - a module that raises is itself a reason
        return f"checking the cuda device failed: {type(e).__name__}: {e}"


_cuda_reason = None


def cuda_available() -> bool:
    global _cuda_reason
    if _cuda_reason is None:
        _cuda_reason = cuda_unavailable_reason()
    return _cuda_reason == ""


def xp_of(device: str):
    """The array module of a device."""
    return cupy() if device == "cuda" else np


def native(device: str):
    """The kernel module for a device that runs kernels, or None where the oracle runs instead."""
    if device == "sim":
        return sim_module()
    if device == "cuda" and not _reference_path:
        return cuda_module()
    return None


def stream(device: str) -> int:
    """The stream a launch on this device goes to: CuPy's current stream on cuda."""
    if device == "cuda":
        return int(cupy().cuda.get_current_stream().ptr)
    return 0


def to_numpy(a) -> np.ndarray:
    """A NumPy view (or, from the GPU, a copy) of a NumPy or CuPy array."""
    return a.get() if hasattr(a, "get") and not isinstance(a, np.ndarray) else np.asarray(a)


def empty(device: str, shape, dtype=np.float32):
    """An output or workspace for a native kernel. On sim it is poisoned (float NaN, or an integer
    pattern) so that an element the kernel forgets to write is visible, as on no real allocator."""
    xp = xp_of(device)
    if device == "sim":
        dtype = np.dtype(dtype)
        fill = np.nan if dtype.kind == "f" else np.iinfo(dtype).min + 7
        return np.full(shape, fill, dtype=dtype)
    return xp.empty(shape, dtype=dtype)


def set_reference_path(flag: bool) -> None:
    global _reference_path
    _reference_path = bool(flag)


def reference_path() -> bool:
    return _reference_path


@contextlib.contextmanager
def use_reference_path(flag: bool = True):
    prev = _reference_path
    set_reference_path(flag)
    try:
        yield
    finally:
        set_reference_path(prev)


def keep_host_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Tune glibc's malloc for the array-code path: serve blocks up to ``mmap_threshold`` (glibc's
    maximum, 32 MB) from the heap instead of fresh mmaps, and keep up to ``trim_threshold`` of
    freed memory instead of returning it to the system. A training step frees and re-allocates
    the same few-MB arrays (im2col matrices, activations) every time; without this each one is a
    new mapping whose pages fault in on first touch, which costs LeNet-5 on cpu about 40% of its
    step time. Process-wide, so only the ``cucnn`` command and the benchmarks call it. Returns
    whether it took effect (False where the C library is not glibc)."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold)) and
                mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
