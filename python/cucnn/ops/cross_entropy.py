"""Cross-entropy from logits and int64 class targets (kernels: csrc/kernels/cross_entropy.cuh).

Fused: the forward computes each row's log-sum-exp once and keeps it; the backward is one pass of
(softmax - onehot) * dloss. ``reduction`` is "mean" (over targets that are not ``ignore_index``;
NaN when there are none, as PyTorch), "sum" or "none". Logits may be (C,), (N, C) or
(N, C, d1, ...) with targets (), (N,) or (N, d1, ...), as in PyTorch.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from ..tensor import Function, Tensor
from ._spec import BenchCase, Case, OpSpec, nasty, register

# ---- oracle ---------------------------------------------------------------------------------------


def forward_oracle(xp, x, target, ignore_index):
    """Per-row loss and log-sum-exp of 2-D logits."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if x.shape[1] == 0:
            lse = xp.full(x.shape[0], -np.inf, dtype=x.dtype)
        else:
            m = x.max(axis=1)
            lse = m + xp.log(xp.exp(x - m[:, None]).sum(axis=1))
        valid = target != ignore_index
        safe = xp.where(valid, target, 0)
        picked = x[xp.arange(x.shape[0]), safe] if x.shape[1] else xp.zeros_like(lse)
        loss = xp.where(valid, lse - picked, xp.zeros_like(lse))
    return loss.astype(x.dtype, copy=False), lse.astype(x.dtype, copy=False)


def backward_oracle(xp, x, target, lse, dloss, ignore_index):
    with np.errstate(invalid="ignore", over="ignore"):
        p = xp.exp(x - lse[:, None])
        valid = target != ignore_index
        rows = xp.arange(x.shape[0])
        p[rows[valid], target[valid]] -= 1
        p *= dloss[:, None]
        p[~valid] = 0
    return p


# ---- dispatch -------------------------------------------------------------------------------------


def check_target_range(xp, target, classes: int, ignore_index: int) -> None:
    bad = (target != ignore_index) & ((target < 0) | (target >= classes))
    if bool(bad.any()):
        i = int(xp.flatnonzero(bad.reshape(-1))[0])
        v = int(target.reshape(-1)[i])
        raise ValueError(f"cross_entropy: target[{i}] = {v} is out of range for {classes} classes "
                         f"(expected 0 <= target < {classes}, or ignore_index = {ignore_index})")


def forward(device, x, target, ignore_index, version: int = 1):
    """(loss rows, lse) for 2-D logits."""
    xp = _backend.xp_of(device)
    check_target_range(xp, target, x.shape[1], ignore_index)
    mod = _backend.native(device)
    if mod is None:
        return forward_oracle(xp, x, target, ignore_index)
    x, target = xp.ascontiguousarray(x), xp.ascontiguousarray(target)
    loss = _backend.empty(device, (x.shape[0],))
    lse = _backend.empty(device, (x.shape[0],))
    mod.cross_entropy_forward(x, target, loss, lse, int(ignore_index), _backend.stream(device))
    return loss, lse


def backward(device, x, target, lse, dloss, ignore_index, version: int = 1):
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None:
        return backward_oracle(xp, x, target, lse, dloss, ignore_index)
    dx = _backend.empty(device, x.shape)
    mod.cross_entropy_backward(xp.ascontiguousarray(x), xp.ascontiguousarray(target), lse,
                               xp.ascontiguousarray(dloss), dx, int(ignore_index),
                               _backend.stream(device))
    return dx


# ---- autograd -------------------------------------------------------------------------------------


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, x, target, reduction, ignore_index):
        xp = _backend.xp_of(ctx.device)
        loss, lse = forward(ctx.device, x, target, ignore_index)
        ctx.save_for_backward(x, target, lse)
        ctx.reduction, ctx.ignore_index = reduction, ignore_index
        if reduction == "none":
            return loss
        total = loss.sum(dtype=x.dtype)
        if reduction == "sum":
            return xp.asarray(total, dtype=x.dtype)
        ctx.count = int((target != ignore_index).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            return xp.asarray(total / x.dtype.type(ctx.count), dtype=x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, target, lse = ctx.saved_tensors
        xp = _backend.xp_of(ctx.device)
        if ctx.reduction == "none":
            dloss = g
        else:
            scale = g if ctx.reduction == "sum" else g / x.dtype.type(max(ctx.count, 1))
            dloss = xp.full(x.shape[0], scale, dtype=x.dtype)
        return backward(ctx.device, x, target, lse, dloss, ctx.ignore_index), None, None, None


class _MoveClassLast(Function):
    """(N, C, d1, ...) -> (N * d1 * ..., C), the layout the kernels take."""

    @staticmethod
    def forward(ctx, x):
        xp = _backend.xp_of(ctx.device)
        ctx.shape = x.shape
        moved = xp.moveaxis(x, 1, -1)
        ctx.moved_shape = moved.shape
        return xp.ascontiguousarray(moved).reshape(-1, x.shape[1])

    @staticmethod
    def backward(ctx, g):
        xp = _backend.xp_of(ctx.device)
        return xp.ascontiguousarray(xp.moveaxis(g.reshape(ctx.moved_shape), -1, 1))


# ---- functional -----------------------------------------------------------------------------------


def cross_entropy(input: Tensor, target: Tensor, reduction: str = "mean",
                  ignore_index: int = -100) -> Tensor:
    """Cross-entropy between logits ``input`` and class indices ``target``."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"cross_entropy: input and target must be cucnn.Tensors, got "
                        f"{type(input).__name__} and {type(target).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input must be floating point, got {input.dtype}")
    if target.dtype != np.int64:
        raise TypeError(f"cross_entropy: target must be int64 class indices, got {target.dtype}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"cross_entropy: ignore_index must be an int, got "
                        f"{type(ignore_index).__name__}")
    if input.device != target.device:
        raise ValueError(f"cross_entropy: expected input and target on the same device, got "
                         f"{input.device!r} and {target.device!r}")
    if input.ndim == 0:
        raise ValueError("cross_entropy: input must have at least 1 dimension (classes), got 0-D")
    if input.ndim == 1:
        expected = ()
    else:
        expected = (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"cross_entropy: target must have shape {expected} for input of shape "
                         f"{input.shape}, got {target.shape}")
    if input.ndim == 1:
        x2, t1 = input.reshape(1, -1), target.reshape(1)
    elif input.ndim == 2:
        x2, t1 = input, target
    else:
        x2, t1 = _MoveClassLast.apply(input), target.reshape(-1)
    out = CrossEntropy.apply(x2, t1, reduction, int(ignore_index))
    if reduction == "none" and input.ndim != 2:
        out = out.reshape(expected)
    return out


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, t, ig, dloss = inputs["x"], inputs["target"], inputs["ignore_index"], inputs["dloss"]
    loss, lse = forward(device, x, t, ig, version)
    return {"loss": loss, "lse": lse, "dx": backward(device, x, t, lse, dloss, ig, version)}


def _case(rows, cols, kind="nasty", ignore_index=-100):
    def make(rng):
        x = nasty(rng, (rows, cols))
        t = rng.integers(0, max(cols, 1), size=rows).astype(np.int64)
        if kind == "ignore" and rows:
            t[::3] = ignore_index
        elif kind == "big":
            x = x * 1e4 / 20
        elif kind == "special" and rows >= 3:
            x[0, :] = -np.inf              # all -inf: NaN loss
            x[1, t[1]] = -np.inf           # target logit -inf: +inf loss
            x[2, (t[2] + 1) % cols] = -np.inf
        return {"x": x, "target": t, "ignore_index": ignore_index, "dloss": nasty(rng, rows)}

    return Case(f"ce-{rows}x{cols}-{kind}", make, reduce_len=max(cols, 1))


_cases = [_case(r, c) for r, c in [(0, 10), (1, 1), (1, 10), (7, 3), (64, 10), (5, 33), (3, 1000),
                                   (2, 5001)]]
_cases += [_case(9, 10, "ignore"), _case(9, 10, "ignore", ignore_index=3), _case(6, 7, "big"),
           _case(5, 9, "special")]


# ---- benchmark cases (benchmarks/ops.py, benchmarks/model.py): softmax's row shapes ---------------


def bench_case(label, rows, cols) -> list:
    from .softmax import bench_inputs
    n, sh, make = rows * cols, f"{rows}x{cols}", bench_inputs(rows, cols)
    params = {"rows": rows, "cols": cols}

    def fwd(dv, i, v):
        return forward(dv, i["x"], i["t"], -100, version=v)[0]

    def bwd(dv, i, v):
        _, lse = i.setdefault("_fwd", forward(dv, i["x"], i["t"], -100))
        return backward(dv, i["x"], i["t"], lse, i["dloss"], -100, version=v)

    def t_fwd(torch, i):
        return torch.nn.functional.cross_entropy(i["x"], i["t"], reduction="none")

    def t_bwd(torch, i):
        # PyTorch's two backward kernels of its log_softmax + nll_loss decomposition
        ls = i.setdefault("_ls", torch.log_softmax(i["x"], 1))
        g = torch.ops.aten.nll_loss_backward(i["dloss"], ls, i["t"], None, 0, -100,
                                             ls.new_ones(()))  # reduction 'none'
        return torch.ops.aten._log_softmax_backward_data(g, ls, 1, torch.float32)
    return [BenchCase("cross_entropy", "fwd", label, sh, params, make, fwd, t_fwd,
                      bytes=4 * n + 8 * rows, reduce_len=cols),
            BenchCase("cross_entropy", "bwd", label, sh, params, make, bwd, t_bwd,
                      bytes=8 * n + 8 * rows, reduce_len=cols)]


def _bench(suite: str) -> list:
    from .softmax import BENCH_SHAPES
    return [c for shp in BENCH_SHAPES[suite] for c in bench_case(*shp)]


SPEC = register(OpSpec("cross_entropy", _cases, _compute, versions=(1,), bench=_bench,
                       doc="cross-entropy from logits: per-row loss, logsumexp, and gradient"))
