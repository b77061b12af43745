"""adaptive_avg_pool2d and adaptive_max_pool2d (kernels: csrc/kernels/adaptive_pool2d.cuh),
PyTorch's window formulas: output row p pools input rows [floor(p*H/P), ceil((p+1)*H/P)), columns
likewise; any output size (also larger than the input). Output size 1 is global pooling, which
the kernels do with a dedicated per-plane reduction.

* ``output_size``: an int or a pair; None in the pair keeps that input dimension (PyTorch).
* max: the first NaN in a window wins and its index points at it; ties keep the first maximum in
  row-major window order (as ``max_pool2d``); ``return_indices`` gives h*W + w per plane.

Max pooling keeps its indices for backward; average pooling keeps nothing but shapes.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from ..tensor import Function, Tensor, check_float_tensor
from ._spec import Case, OpSpec, nasty, register
from .pool2d import max_backward_oracle


def windows(size: int, out: int):
    """[(start, end)] of each output position along one axis."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def output_size_of(hw, output_size, what):
    """The (P, Q) of an output_size argument, None entries taking the input's size."""
    vals = tuple(output_size) if isinstance(output_size, (tuple, list)) else \
        (output_size, output_size)
    if len(vals) != 2:
        raise ValueError(f"{what}: output_size must be an int or a pair, got {output_size!r}")
    out = []
    for v, size in zip(vals, hw):
        if v is None:
            v = size
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{what}: output_size must be an int, a pair of ints or None, got "
                            f"{output_size!r}")
        if v < 1:
            raise ValueError(f"{what}: output_size must be >= 1, got {output_size!r}")
        out.append(int(v))
    return tuple(out)


# ---- oracle ---------------------------------------------------------------------------------------


def avg_forward_oracle(xp, x, out):
    N, C, H, W = x.shape
    y = xp.empty((N, C) + tuple(out), dtype=x.dtype)
    with np.errstate(invalid="ignore"):
        for p, (h0, h1) in enumerate(windows(H, out[0])):
            for q, (w0, w1) in enumerate(windows(W, out[1])):
                y[:, :, p, q] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / ((h1 - h0) * (w1 - w0))
    return y


def avg_backward_oracle(xp, dy, x_shape):
    N, C, H, W = x_shape
    P, Q = dy.shape[2:]
    dx = xp.zeros(x_shape, dtype=dy.dtype)
    for p, (h0, h1) in enumerate(windows(H, P)):
        for q, (w0, w1) in enumerate(windows(W, Q)):
            dx[:, :, h0:h1, w0:w1] += (dy[:, :, p, q] / ((h1 - h0) * (w1 - w0)))[:, :, None, None]
    return dx


def max_forward_oracle(xp, x, out):
    """argmax of each window: NumPy's argmax returns the first maximum, and the first NaN when
    there is one — exactly the kernel's rule."""
    N, C, H, W = x.shape
    y = xp.empty((N, C) + tuple(out), dtype=x.dtype)
    idx = xp.empty((N, C) + tuple(out), dtype=np.int64)
    for p, (h0, h1) in enumerate(windows(H, out[0])):
        for q, (w0, w1) in enumerate(windows(W, out[1])):
            win = x[:, :, h0:h1, w0:w1].reshape(N, C, (h1 - h0) * (w1 - w0))
            k = win.argmax(axis=2) if win.size else xp.zeros((N, C), dtype=np.int64)
            y[:, :, p, q] = xp.take_along_axis(win, k[:, :, None], axis=2)[:, :, 0]
            idx[:, :, p, q] = (h0 + k // (w1 - w0)) * W + w0 + k % (w1 - w0)
    return y, idx


# ---- dispatch -------------------------------------------------------------------------------------


def avg_forward(device, x, out, version=1):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return avg_forward_oracle(xp, x, out)
    y = _backend.empty(device, x.shape[:2] + tuple(out))
    mod.adaptive_avg_pool2d_forward(xp.ascontiguousarray(x), y, version, _backend.stream(device))
    return y


def avg_backward(device, dy, x_shape):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return avg_backward_oracle(xp, dy, x_shape)
    dx = _backend.empty(device, x_shape)
    mod.adaptive_avg_pool2d_backward(xp.ascontiguousarray(dy), dx, _backend.stream(device))
    return dx


def max_forward(device, x, out, version=1):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return max_forward_oracle(xp, x, out)
    y = _backend.empty(device, x.shape[:2] + tuple(out))
    idx = _backend.empty(device, x.shape[:2] + tuple(out), np.int64)
    mod.adaptive_max_pool2d_forward(xp.ascontiguousarray(x), y, idx, version,
                                    _backend.stream(device))
    return y, idx


def max_backward(device, dy, idx, x_shape):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return max_backward_oracle(xp, dy, idx, x_shape, overlap=True)
    dx = _backend.empty(device, x_shape)
    mod.adaptive_max_pool2d_backward(xp.ascontiguousarray(dy), xp.ascontiguousarray(idx), dx,
                                     _backend.stream(device))
    return dx


# ---- autograd -------------------------------------------------------------------------------------


class AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, out):
        ctx.x_shape = x.shape
        return avg_forward(ctx.device, x, out)

    @staticmethod
    def backward(ctx, dy):
        return avg_backward(ctx.device, dy, ctx.x_shape), None


class AdaptiveMaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, out):
        y, idx = max_forward(ctx.device, x, out)
        ctx.save_for_backward(idx)  # indices only
        ctx.x_shape = x.shape
        return y, idx

    @staticmethod
    def backward(ctx, dy, _didx):
        (idx,) = ctx.saved_tensors
        return max_backward(ctx.device, dy, idx, ctx.x_shape), None


# ---- functional -----------------------------------------------------------------------------------


def _check(x, what):
    check_float_tensor(x, what)
    if x.ndim != 4:
        raise ValueError(f"{what}: input must be 4-D (N, C, H, W), got shape {x.shape}")
    if x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{what}: expected an input with non-zero height and width, got shape "
                         f"{x.shape}")


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over each adaptive window, to an output of ``output_size``."""
    _check(input, "adaptive_avg_pool2d")
    out = output_size_of(input.shape[2:], output_size, "adaptive_avg_pool2d")
    return AdaptiveAvgPool2d.apply(input, out)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max over each adaptive window; with return_indices also the flat h*W + w of each max."""
    _check(input, "adaptive_max_pool2d")
    out = output_size_of(input.shape[2:], output_size, "adaptive_max_pool2d")
    y, idx = AdaptiveMaxPool2d.apply(input, out)
    return (y, idx) if return_indices else y


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, dy, out = inputs["x"], inputs["dy"], inputs["out"]
    y, idx = max_forward(device, x, out, version)
    return {"avg_y": avg_forward(device, x, out, version),
            "avg_dx": avg_backward(device, dy, x.shape),
            "max_y": y, "max_idx": idx, "max_dx": max_backward(device, dy, idx, x.shape)}


def _case(name, N, C, H, W, out, special=None):
    out = (out, out) if isinstance(out, int) else out

    def make(rng):
        if special == "ties":
            x = rng.integers(-2, 3, size=(N, C, H, W)).astype(np.float64)
        else:
            x = nasty(rng, (N, C, H, W))
        if special == "nonfinite" and x.size:
            flat = x.reshape(-1)
            flat[rng.choice(flat.size, size=max(1, flat.size // 7), replace=False)] = np.nan
            flat[rng.choice(flat.size, size=max(1, flat.size // 9), replace=False)] = np.inf
            flat[rng.choice(flat.size, size=max(1, flat.size // 9), replace=False)] = -np.inf
            x[0, 0] = -np.inf  # a plane of -inf: the index must still point inside it
        x = x.astype(np.float32).astype(np.float64)
        return {"x": x, "dy": nasty(rng, (N, C) + out), "out": out}

    reduce = max(-(-H // out[0]) + 1, 1) * max(-(-W // out[1]) + 1, 1)
    return Case(f"{name}-{N}x{C}x{H}x{W}-to-{out[0]}x{out[1]}", make, reduce_len=reduce)


_cases = [
    _case("global-7x7", 2, 3, 7, 7, 1),               # the ResNet head
    _case("global-big-plane", 1, 2, 33, 31, 1),       # lanes stride over 1023 values
    _case("global-many-planes", 3, 50, 2, 3, 1),      # planes < 32 values: idle lanes
    _case("global-1x1", 2, 5, 1, 1, 1),
    _case("overlap-10x9-to-3x4", 2, 2, 10, 9, (3, 4)),
    _case("exact-8x8-to-4x4", 2, 3, 8, 8, 4),
    _case("upsample-5x4-to-7x9", 1, 2, 5, 4, (7, 9)),  # P > H: windows repeat rows
    _case("prime-13x11-to-5x3", 2, 2, 13, 11, (5, 3)),
    _case("ties", 2, 2, 9, 8, (4, 3), special="ties"),
    _case("ties-global", 2, 3, 6, 6, 1, special="ties"),
    _case("nonfinite", 2, 2, 9, 8, (3, 3), special="nonfinite"),
    _case("nonfinite-global", 2, 3, 5, 9, 1, special="nonfinite"),
    _case("empty-batch", 0, 3, 6, 6, 2),
]


SPEC = register(OpSpec("adaptive_pool2d", _cases, _compute, versions=(0, 1),
                       exact=("max_y", "max_idx"),
                       doc="adaptive avg/max pooling (values, indices, dx); 1x1 = global path"))
