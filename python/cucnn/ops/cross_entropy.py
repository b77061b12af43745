"""Cross-entropy from logits and int64 class targets (kernels: csrc/kernels/cross_entropy.cuh),
and the negative log-likelihood loss on log-probabilities (array code, no kernel of its own).

PyTorch's semantics: logits (C,), (N, C) or (N, C, d1, ...) with targets (), (N,) or (N, d1, ...);
``weight`` (C,) scales each row by its target's weight; ``label_smoothing`` e mixes in the uniform
distribution: loss = (1-e) w_t (lse - x_t) + e/C sum_c w_c (lse - x_c). ``reduction`` "mean"
divides by the sum of the target weights of the rows that are not ``ignore_index`` (the count of
those rows without weights; NaN when there are none, as PyTorch), "sum" or "none".

Fused: the forward computes each row's log-sum-exp once and keeps it; the backward is one pass.

Bad targets (neither ``ignore_index`` nor in [0, C)) are found on the device: the kernel (or, on the
array-code path, one reduction) writes the first bad row into a one-element status array, and the
mean's divisor is a device sum, so a forward pass never waits for the device. The error, a
``TargetOutOfRange`` (both an IndexError, as PyTorch raises, and a ValueError), names the target
and its value. When it is raised:

* ``cpu`` and ``sim``: during the ``cross_entropy``/``nll_loss`` call (arrays are on the host and
  launches synchronous, so reading the status costs nothing);
* ``cuda``: lazily, at the next ``check_targets()`` (which ``cucnn.cuda.synchronize`` should call)
  or when 1024 checks are pending; at once with ``CUCNN_LAUNCH_BLOCKING=1``. Until then the bad
  rows' loss and gradient are NaN, never an out-of-bounds read.
"""
from __future__ import annotations

import os

import numpy as np

from .. import _backend
from ..tensor import Function, Tensor
from ._spec import BenchCase, Case, OpSpec, nasty, register

STATUS_NONE = np.iinfo(np.int64).max  # "no bad row" in a status array
MAX_PENDING = 1024


class TargetOutOfRange(IndexError, ValueError):
    """A class target that is neither ignore_index nor in [0, classes)."""


# ---- oracle ---------------------------------------------------------------------------------------


def _bad_targets(xp, target, classes, ignore_index):
    return (target != ignore_index) & ((target < 0) | (target >= classes))


def first_bad_row(xp, bad):
    """The status array of a bad-row mask: (1,) int64, the first bad row or STATUS_NONE; a device
    reduction, no host round trip."""
    if bad.size == 0:
        return xp.full(1, STATUS_NONE, dtype=np.int64)
    rows = xp.where(bad, xp.arange(bad.size, dtype=np.int64), STATUS_NONE)
    return rows.min(keepdims=True).astype(np.int64, copy=False)


def forward_oracle(xp, x, target, ignore_index, weight=None, smoothing=0.0, full=False):
    """Per-row loss and log-sum-exp of 2-D logits; with ``full`` also the target weights wt (the
    mean's divisor is their sum) and the status array."""
    rows, C = x.shape
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        if C == 0:
            lse = xp.full(rows, -np.inf, dtype=x.dtype)
        else:
            m = x.max(axis=1)
            lse = m + xp.log(xp.exp(x - m[:, None]).sum(axis=1))
        bad = _bad_targets(xp, target, C, ignore_index)
        ok = (target != ignore_index) & ~bad
        safe = xp.where(ok, target, 0)
        picked = x[xp.arange(rows), safe] if C else xp.zeros_like(lse)
        w = xp.ones(rows, dtype=x.dtype) if weight is None or not C else weight[safe]
        loss = w * (lse - picked)
        if smoothing:
            wc = xp.ones(C, dtype=x.dtype) if weight is None else weight
            smooth = ((lse[:, None] - x) * wc[None, :]).sum(axis=1)
            loss = (1 - smoothing) * loss + (smoothing / C) * smooth
        nan = xp.asarray(np.nan, dtype=x.dtype)
        loss = xp.where(bad, nan, xp.where(ok, loss, xp.zeros_like(loss)))
        wt = xp.where(bad, nan, xp.where(ok, w, xp.zeros_like(w)))
    loss, lse = loss.astype(x.dtype, copy=False), lse.astype(x.dtype, copy=False)
    if not full:
        return loss, lse
    return loss, lse, wt.astype(x.dtype, copy=False), first_bad_row(xp, bad)


def backward_oracle(xp, x, target, lse, dloss, ignore_index, weight=None, smoothing=0.0):
    rows, C = x.shape
    with np.errstate(invalid="ignore", over="ignore"):
        p = xp.exp(x - lse[:, None])
        bad = _bad_targets(xp, target, C, ignore_index)
        ok = (target != ignore_index) & ~bad
        r, t = xp.arange(rows)[ok], target[ok]
        w = xp.ones(rows, dtype=x.dtype) if weight is None else weight[xp.where(ok, target, 0)]
        a = (1 - smoothing) * w
        if smoothing:
            W = C if weight is None else weight.sum()
            a = a + smoothing / C * W
        p *= a[:, None]
        p[r, t] -= (1 - smoothing) * w[ok]
        if smoothing:
            p -= smoothing / C * (1 if weight is None else weight[None, :])
        p *= dloss[:, None]
        p[~ok] = 0
        p[bad] = np.nan
    return p


# ---- target checks --------------------------------------------------------------------------------

_pending: list = []  # (status, target, classes, ignore_index, what) not yet read (cuda)


def _raise_if_bad(status, target, classes, ignore_index, what) -> None:
    row = int(_backend.to_numpy(status)[0])
    if row == STATUS_NONE:
        return
    v = int(_backend.to_numpy(target.reshape(-1)[row:row + 1])[0])
    raise TargetOutOfRange(f"{what}: target[{row}] = {v} is out of range for {classes} classes "
                           f"(expected 0 <= target < {classes}, or ignore_index = {ignore_index})")


def check_targets() -> None:
    """Read every pending target check (cuda) and raise for the first bad target found. A device
    synchronisation: call it where the host waits anyway (end of an epoch, cucnn.cuda.synchronize)."""
    while _pending:
        _raise_if_bad(*_pending.pop(0))


def _report(device, status, target, classes, ignore_index, what) -> None:
    """Raise now where reading the status is free (host arrays) or asked for
    (CUCNN_LAUNCH_BLOCKING=1); else keep it for check_targets()."""
    if device != "cuda" or os.environ.get("CUCNN_LAUNCH_BLOCKING", "0") not in ("", "0"):
        check_targets()  # older pending checks first
        _raise_if_bad(status, target, classes, ignore_index, what)
        return
    _pending.append((status, target, classes, ignore_index, what))
    if len(_pending) >= MAX_PENDING:  # bounded memory: one synchronisation per 1024 losses
        check_targets()


# ---- dispatch -------------------------------------------------------------------------------------


def forward_full(device, x, target, ignore_index, weight=None, smoothing=0.0, version: int = 1):
    """(loss rows, lse, wt, status) for 2-D logits; nothing read back to the host."""
    xp = _backend.xp_of(device)
    mod = _backend.native(device)
    if mod is None:
        return forward_oracle(xp, x, target, ignore_index, weight, smoothing, full=True)
    x, target = xp.ascontiguousarray(x), xp.ascontiguousarray(target)
    rows = x.shape[0]
    loss, lse, wt = (_backend.empty(device, (rows,)) for _ in range(3))
    status = xp.full(1, STATUS_NONE, dtype=np.int64)
    mod.cross_entropy_forward(x, target, loss, lse, wt, status, int(ignore_index),
                              None if weight is None else xp.ascontiguousarray(weight),
                              float(smoothing), _backend.stream(device))
    return loss, lse, wt, status


def forward(device, x, target, ignore_index, version: int = 1, weight=None, smoothing=0.0):
    """(loss rows, lse) for 2-D logits; a bad target raises as the module docstring says."""
    loss, lse, _, status = forward_full(device, x, target, ignore_index, weight, smoothing, version)
    _report(device, status, target, x.shape[1], ignore_index, "cross_entropy")
    return loss, lse


def backward(device, x, target, lse, dloss, ignore_index, version: int = 1, weight=None,
             smoothing=0.0):
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None:
        return backward_oracle(xp, x, target, lse, dloss, ignore_index, weight, smoothing)
    dx = _backend.empty(device, x.shape)
    wsum = None
    if weight is not None:
        weight = xp.ascontiguousarray(weight)
        wsum = weight.sum(keepdims=True)  # on the device
    mod.cross_entropy_backward(xp.ascontiguousarray(x), xp.ascontiguousarray(target), lse,
                               xp.ascontiguousarray(dloss), dx, int(ignore_index), weight, wsum,
                               float(smoothing), _backend.stream(device))
    return dx


# ---- autograd -------------------------------------------------------------------------------------


def _reduce(xp, rows, wt, reduction, dtype):
    """'mean' divides by the sum of the target weights, on the device."""
    if reduction == "none":
        return rows
    total = rows.sum(dtype=dtype)
    if reduction == "sum":
        return xp.asarray(total, dtype=dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        return xp.asarray(total / wt.sum(dtype=dtype), dtype=dtype)


def _dloss(xp, g, wt, reduction, rows, dtype):
    if reduction == "none":
        return g
    scale = g if reduction == "sum" else g / wt.sum(dtype=dtype)
    return xp.ascontiguousarray(xp.broadcast_to(xp.asarray(scale, dtype=dtype), (rows,)))


class CrossEntropy(Function):
    @staticmethod
    def forward(ctx, x, target, weight, reduction, ignore_index, smoothing):
        xp = _backend.xp_of(ctx.device)
        if weight is not None:
            weight = weight.astype(x.dtype, copy=False)
        loss, lse, wt, status = forward_full(ctx.device, x, target, ignore_index, weight,
                                             smoothing)
        _report(ctx.device, status, target, x.shape[1], ignore_index, "cross_entropy")
        ctx.save_for_backward(x, target, lse, wt, weight)
        ctx.args = (reduction, ignore_index, smoothing)
        return _reduce(xp, loss, wt, reduction, x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, target, lse, wt, weight = ctx.saved_tensors
        reduction, ignore_index, smoothing = ctx.args
        xp = _backend.xp_of(ctx.device)
        dloss = _dloss(xp, g, wt, reduction, x.shape[0], x.dtype)
        dx = backward(ctx.device, x, target, lse, dloss, ignore_index, weight=weight,
                      smoothing=smoothing)
        return dx, None, None, None, None, None


class NLLLoss(Function):
    """loss_i = -w_t x_{i,t}: a gather forward and a scatter backward, array code on every
    device (no kernel: one element per row)."""

    @staticmethod
    def forward(ctx, x, target, weight, reduction, ignore_index):
        xp = _backend.xp_of(ctx.device)
        rows, C = x.shape
        bad = _bad_targets(xp, target, C, ignore_index)
        _report(ctx.device, first_bad_row(xp, bad), target, C, ignore_index, "nll_loss")
        ok = (target != ignore_index) & ~bad
        safe = xp.where(ok, target, 0)
        w = xp.ones(rows, dtype=x.dtype) if weight is None else \
            weight.astype(x.dtype, copy=False)[safe]
        wt = xp.where(ok, w, xp.zeros_like(w))
        picked = x[xp.arange(rows), safe] if C else xp.zeros(rows, dtype=x.dtype)
        loss = xp.where(ok, -wt * picked, xp.zeros_like(wt))
        ctx.save_for_backward(safe, wt)
        ctx.args = (x.shape, reduction)
        return _reduce(xp, loss, wt, reduction, x.dtype)

    @staticmethod
    def backward(ctx, g):
        safe, wt = ctx.saved_tensors
        shape, reduction = ctx.args
        xp = _backend.xp_of(ctx.device)
        dloss = _dloss(xp, g, wt, reduction, shape[0], wt.dtype)
        dx = xp.zeros(shape, dtype=wt.dtype)
        if shape[1]:
            dx[xp.arange(shape[0]), safe] = -wt * dloss  # ignored rows: wt 0
        return dx, None, None, None, None


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


def _check_args(what, input, target, weight, reduction, ignore_index):
    """Checks shared by cross_entropy and nll_loss; returns (2-D input, 1-D target, shape of
    'none' output)."""
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"{what}: input and target must be cucnn.Tensors, got "
                        f"{type(input).__name__} and {type(target).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"{what}: input must be floating point, got {input.dtype}")
    if target.dtype != np.int64:
        raise TypeError(f"{what}: target must be int64 class indices, got {target.dtype}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{what}: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise TypeError(f"{what}: ignore_index must be an int, got "
                        f"{type(ignore_index).__name__}")
    if input.device != target.device:
        raise ValueError(f"{what}: expected input and target on the same device, got "
                         f"{input.device!r} and {target.device!r}")
    if input.ndim == 0:
        raise ValueError(f"{what}: input must have at least 1 dimension (classes), got 0-D")
    C = input.shape[0] if input.ndim == 1 else input.shape[1]
    if weight is not None:
        if not isinstance(weight, Tensor) or weight.dtype.kind != "f":
            raise TypeError(f"{what}: weight must be a floating-point cucnn.Tensor or None, got "
                            f"{getattr(weight, 'dtype', type(weight).__name__)}")
        if weight.shape != (C,):
            raise ValueError(f"{what}: weight must have shape ({C},) (one per class), got "
                             f"{weight.shape}")
        if weight.device != input.device:
            raise ValueError(f"{what}: expected weight on {input.device!r}, got "
                             f"{weight.device!r}")
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        raise ValueError(f"{what}: target must have shape {expected} for input of shape "
                         f"{input.shape}, got {target.shape}")
    if input.ndim == 1:
        return input.reshape(1, -1), target.reshape(1), expected
    if input.ndim == 2:
        return input, target, expected
    return _MoveClassLast.apply(input), target.reshape(-1), expected


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits ``input`` and class indices ``target``. ``weight`` is the
    third argument as in PyTorch, the rest keyword-only; the older cucnn call
    ``cross_entropy(x, t, "sum")`` (reduction third) is still accepted."""
    if isinstance(weight, str):
        weight, reduction = None, weight
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or \
            not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be a float in [0, 1], got "
                         f"{label_smoothing!r}")
    x2, t1, expected = _check_args("cross_entropy", input, target, weight, reduction,
                                   ignore_index)
    out = CrossEntropy.apply(x2, t1, weight, reduction, int(ignore_index), float(label_smoothing))
    if reduction == "none" and input.ndim != 2:
        out = out.reshape(expected)
    return out


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, *,
             ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` at class indices ``target``:
    -weight[t] * input[t] per element, reduced as cross_entropy (whose input is logits)."""
    x2, t1, expected = _check_args("nll_loss", input, target, weight, reduction, ignore_index)
    out = NLLLoss.apply(x2, t1, weight, reduction, int(ignore_index))
    if reduction == "none" and input.ndim != 2:
        out = out.reshape(expected)
    return out


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, t, ig, dloss = inputs["x"], inputs["target"], inputs["ignore_index"], inputs["dloss"]
    w, e = inputs.get("weight"), inputs.get("smoothing", 0.0)
    loss, lse, wt, status = forward_full(device, x, t, ig, w, e, version)
    xp = _backend.xp_of(device)
    with np.errstate(invalid="ignore", divide="ignore"):  # no rows: NaN, as PyTorch
        mean = xp.asarray(_reduce(xp, loss, wt, "mean", x.dtype)).reshape(1)
    return {"loss": loss, "lse": lse, "wt": wt, "status": status, "mean": mean,
            "dx": backward(device, x, t, lse, dloss, ig, version, w, e)}


def _case(rows, cols, kind="nasty", ignore_index=-100, weighted=False, smoothing=0.0):
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
        elif kind == "bad" and rows >= 5:
            t[[1, 4]] = [cols, -3]         # NaN rows; status = 1 (the first)
            t[2] = ignore_index
        out = {"x": x, "target": t, "ignore_index": ignore_index, "dloss": nasty(rng, rows),
               "smoothing": smoothing}
        if weighted:
            out["weight"] = rng.random(cols) + 0.25
        return out

    tag = kind + ("-w" if weighted else "") + (f"-ls{smoothing}" if smoothing else "")
    return Case(f"ce-{rows}x{cols}-{tag}", make, reduce_len=max(cols, rows, 1))


_cases = [_case(r, c) for r, c in [(0, 10), (1, 1), (1, 10), (7, 3), (64, 10), (5, 33), (3, 1000),
                                   (2, 5001)]]
_cases += [_case(9, 10, "ignore"), _case(9, 10, "ignore", ignore_index=3), _case(6, 7, "big"),
           _case(5, 9, "special"), _case(8, 6, "bad"), _case(8, 6, "bad", weighted=True),
           _case(9, 10, "ignore", weighted=True), _case(37, 11, weighted=True, smoothing=0.1),
           _case(9, 70, "ignore", weighted=True, smoothing=0.25), _case(5, 33, smoothing=1.0),
           _case(33, 5, "ignore", smoothing=0.3)]


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


SPEC = register(OpSpec("cross_entropy", _cases, _compute, versions=(1,), exact=("status",),
                       bench=_bench,
                       doc="cross-entropy from logits (class weights, label smoothing): per-row "
                           "loss, logsumexp, target weight, bad-target status, mean, gradient"))
