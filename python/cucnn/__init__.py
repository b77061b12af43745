"""cucnn — a CNN engine whose hot ops are hand-written CUDA kernels, verifiable on the CPU.

Devices: "cpu" (NumPy array code of the oracle), "sim" (the CUDA kernels compiled by the host
compiler and run by cucnn's SIMT runtime), "cuda" (the kernels on a GPU, with CuPy arrays).
"""
from . import backends, cuda, functional, ops, sim, testing  # noqa: F401
from . import checkpoint, data, models, nn, optim  # noqa: F401
from ._random import manual_seed  # noqa: F401
from .tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor  # noqa: F401
from ._tensor_ops import (arange, cat, empty, empty_like, from_dlpack, from_numpy,  # noqa: F401
                          full, full_like, linspace, matmul, ones, ones_like, rand, rand_like,
                          randint, randn, randn_like, stack, zeros, zeros_like)
import numpy as _np  # noqa: E402

# dtypes by PyTorch's names (NumPy dtypes): cucnn.zeros(3, dtype=cucnn.int64). Not `bool`,
# `float` or `long`: they would shadow the builtins inside this module (use np.bool_ for bool).
float32, float64, int64, int32, uint8 = (_np.dtype(n) for n in (
    "float32", "float64", "int64", "int32", "uint8"))

__version__ = "0.1.0"


def available_devices() -> list:
    """The devices that can run here, in order of preference for training: cuda, cpu, sim."""
    out = []
    if cuda.is_available():
        out.append("cuda")
    out.append("cpu")
    if sim.is_available():
        out.append("sim")
    return out
