"""cucnn — a CNN engine whose hot ops are hand-written CUDA kernels, verifiable on the CPU.

Devices: "cpu" (NumPy array code of the oracle), "sim" (the CUDA kernels compiled by the host
compiler and run by cucnn's SIMT runtime), "cuda" (the kernels on a GPU, with CuPy arrays).
"""
from . import backends, cuda, functional, ops, sim, testing  # noqa: F401
from . import data, models, nn, optim  # noqa: F401
from ._random import manual_seed  # noqa: F401
from .tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor  # noqa: F401

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
