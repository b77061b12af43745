"""softmax and log_softmax along any dim (kernels: csrc/kernels/softmax.cuh).

The kernels work on the last axis of a (rows, cols) view; this file moves ``dim`` last and back.
Both save their output for backward. A row of all -inf gives NaN, as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from ..tensor import Function, Tensor, _norm_dim, check_float_tensor
from ._spec import BenchCase, Case, OpSpec, nasty, register

# ---- oracle ---------------------------------------------------------------------------------------


def forward_oracle(xp, x, log: bool):
    """Along the last axis. Subtracting the row max keeps exp from overflowing."""
    if x.shape[-1] == 0:
        return x.copy()
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        z = x - x.max(axis=-1, keepdims=True)
        e = xp.exp(z)
        s = e.sum(axis=-1, keepdims=True)
        return z - xp.log(s) if log else e / s


def backward_oracle(xp, y, dy, log: bool):
    with np.errstate(invalid="ignore", over="ignore"):
        if log:
            return dy - xp.exp(y) * dy.sum(axis=-1, keepdims=True)
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


# ---- dispatch (2-D, last axis) --------------------------------------------------------------------


def forward2d(device, x, log: bool, version: int = 1):
    mod = _backend.native(device)
    if mod is None:
        return forward_oracle(_backend.xp_of(device), x, log)
    x = _backend.xp_of(device).ascontiguousarray(x)
    y = _backend.empty(device, x.shape)
    mod.softmax_forward(x, y, bool(log), version, _backend.stream(device))
    return y


def backward2d(device, y, dy, log: bool, version: int = 1):
    mod = _backend.native(device)
    if mod is None:
        return backward_oracle(_backend.xp_of(device), y, dy, log)
    xp = _backend.xp_of(device)
    y, dy = xp.ascontiguousarray(y), xp.ascontiguousarray(dy)
    dx = _backend.empty(device, y.shape)
    mod.softmax_backward(y, dy, dx, bool(log), version, _backend.stream(device))
    return dx


def _to_rows(xp, a, dim):
    """Move ``dim`` last and view as (rows, cols); returns the 2-D array and how to undo it."""
    if a.ndim == 0:
        return a.reshape(1, 1), lambda r: r.reshape(())
    moved = xp.moveaxis(a, dim, -1)
    shape = moved.shape
    rows = int(np.prod(shape[:-1], dtype=np.int64))  # not -1: a zero-length dim has no -1
    rows2d = xp.ascontiguousarray(moved).reshape(rows, shape[-1])
    return rows2d, lambda r: xp.ascontiguousarray(xp.moveaxis(r.reshape(shape), -1, dim))


# ---- autograd -------------------------------------------------------------------------------------


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim, log):
        xp = _backend.xp_of(ctx.device)
        x2, undo = _to_rows(xp, x, dim)
        y2 = forward2d(ctx.device, x2, log)
        ctx.dim, ctx.log = dim, log
        ctx.save_for_backward(y2)
        ctx.undo = undo
        return undo(y2)

    @staticmethod
    def backward(ctx, dy):
        xp = _backend.xp_of(ctx.device)
        (y2,) = ctx.saved_tensors
        dy2, _ = _to_rows(xp, dy, ctx.dim)
        return ctx.undo(backward2d(ctx.device, y2, dy2, ctx.log)), None, None


# ---- functional -----------------------------------------------------------------------------------


def _check(x, dim, name):
    check_float_tensor(x, name)
    return _norm_dim(dim, x.ndim)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed as exp(x - max) / sum(exp(x - max))."""
    return Softmax.apply(x, _check(x, dim, "softmax"), False)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x - max - log(sum(exp(x - max))) along ``dim``."""
    return Softmax.apply(x, _check(x, dim, "log_softmax"), True)


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, dy, log = inputs["x"], inputs["dy"], inputs["log"]
    y = forward2d(device, x, log, version)
    return {"y": y, "dx": backward2d(device, y, dy, log, version)}


def _case(rows, cols, log, kind="nasty"):
    def make(rng):
        x = nasty(rng, (rows, cols))
        if kind == "big":
            x = x * 1e4 / 20  # logits around +-1e4
        elif kind == "special" and x.size:
            x[0, :] = -np.inf                         # all -inf: NaN row
            if rows > 1:
                x[1, ::2] = -np.inf                   # some -inf: probability 0 there
            if rows > 2:
                x[2, cols // 2] = np.nan              # NaN: NaN row
            if rows > 3:
                x[3, 0] = np.inf                      # +inf: NaN row, as PyTorch
            if rows > 4:
                x[4, :] = [1000.0 + i for i in range(cols)]  # the course's overflow example
        dy = nasty(rng, (rows, cols))
        return {"x": x, "dy": dy, "log": log}

    name = "log_softmax" if log else "softmax"
    return Case(f"{name}-{rows}x{cols}-{kind}", make, reduce_len=max(cols, 1))


_sizes = [(0, 5), (3, 0), (1, 1), (5, 1), (7, 3), (13, 32), (6, 33), (5, 100), (3, 257), (2, 1000),
          (3, 1024), (2, 1025), (2, 4099)]
_cases = [_case(r, c, log) for log in (False, True) for r, c in _sizes]
_cases += [_case(6, 37, log, "special") for log in (False, True)]
_cases += [_case(5, 2000, log, "special") for log in (False, True)]
_cases += [_case(4, 50, log, "big") for log in (False, True)]
_cases += [_case(1, 100_003, False)]

def _scales(inputs, expected):
    """dx cancels: softmax dx_i = y_i (dy_i - <dy, y>), log_softmax dx_i = dy_i - p_i sum(dy)."""
    dy, y = inputs["dy"], expected["y"]
    with np.errstate(invalid="ignore", over="ignore"):
        if inputs["log"]:
            p = np.exp(y)
            return {"dx": np.abs(dy) + p * np.abs(dy).sum(-1, keepdims=True)}
        return {"dx": np.abs(y) * (np.abs(dy) + np.abs(dy * y).sum(-1, keepdims=True))}



# ---- benchmark cases (benchmarks/ops.py, benchmarks/model.py) -------------------------------------

# (label, rows, cols): a LeNet/MNIST head at a large batch, an ImageNet head
BENCH_SHAPES = {"full": [("65536x10", 65536, 10), ("4096x1000", 4096, 1000)],
                "small": [("4096x10", 4096, 10), ("256x1000", 256, 1000)],
                "tiny": [("67x10", 67, 10), ("5x300", 5, 300)]}


def bench_inputs(rows: int, cols: int):
    """make(rng) for the row-wise ops (softmax, cross-entropy): logits, their softmax, a
    gradient, targets and a loss gradient."""
    def make(rng):
        x = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(3)
        e = np.exp(x - x.max(1, keepdims=True))
        return {"x": x, "y": e / e.sum(1, keepdims=True),
                "dy": rng.standard_normal((rows, cols), dtype=np.float32),
                "t": rng.integers(0, cols, rows).astype(np.int64),
                "dloss": np.full(rows, 1.0 / rows, dtype=np.float32)}
    return make


def bench_case(label, rows, cols) -> list:
    n, sh, make = rows * cols, f"{rows}x{cols}", bench_inputs(rows, cols)
    params = {"rows": rows, "cols": cols}
    return [
        BenchCase("softmax", "fwd", label, sh, params, make,
                  lambda dv, i, v: forward2d(dv, i["x"], False, version=v),
                  lambda torch, i: torch.softmax(i["x"], 1), bytes=8 * n, reduce_len=cols),
        BenchCase("softmax", "bwd", label, sh, params, make,
                  lambda dv, i, v: backward2d(dv, i["y"], i["dy"], False, version=v),
                  lambda torch, i: torch.ops.aten._softmax_backward_data(
                      i["dy"], i["y"], 1, torch.float32), bytes=12 * n, reduce_len=cols)]


def _bench(suite: str) -> list:
    return [c for shp in BENCH_SHAPES[suite] for c in bench_case(*shp)]


SPEC = register(OpSpec("softmax", _cases, _compute, versions=(0, 1), scales=_scales, bench=_bench,
                       doc="softmax and log_softmax: forward and backward, last axis"))
