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
        raise RuntimeError("device 'cuda' is not available: it needs cucnn._cuda (built where nvcc "
                           "is found), CuPy and a CUDA device; see cucnn.cuda.is_available()")
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


def cuda_available() -> bool:
    try:
        mod = cuda_module()
        return bool(mod is not None and cupy() is not None and mod.device_count() > 0)
    except Exception:
        return False


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
