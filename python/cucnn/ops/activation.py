"""Elementwise activations: relu, leaky_relu, sigmoid, tanh (kernels: csrc/kernels/activation.cuh).

ReLU keeps its output for backward (its gradient at 0 is 0), leaky ReLU its input, sigmoid and tanh
their outputs. NaN stays NaN; relu's backward passes the gradient where the output is NaN, as
PyTorch's does.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from ..tensor import Function, Tensor, check_float_tensor
from ._spec import BenchCase, Case, OpSpec, nasty, register

ACTS = {"relu": 0, "leaky_relu": 1, "sigmoid": 2, "tanh": 3}
SAVES_INPUT = {"leaky_relu"}  # the others save their output


# ---- oracle (array code on xp: NumPy oracle, CuPy reference path) ---------------------------------


def forward_oracle(xp, act: str, x, alpha: float = 0.0):
    if act == "relu":
        return xp.maximum(x, x.dtype.type(0))  # NaN propagates; -0 becomes +0
    if act == "leaky_relu":
        return xp.where(x > 0, x, x * x.dtype.type(alpha))
    if act == "sigmoid":
        with np.errstate(over="ignore"):
            return 1 / (1 + xp.exp(-x))
    if act == "tanh":
        return xp.tanh(x)
    raise ValueError(f"unknown activation {act!r}")


def backward_oracle(xp, act: str, dy, saved, alpha: float = 0.0):
    if act == "relu":
        if xp is np and np.isfinite(dy).all():  # a multiply is 10x faster than where on NumPy
            return dy * (saved != 0)  # saved is relu's output: 0 or positive or NaN
        return xp.where(saved <= 0, xp.zeros_like(dy), dy)
    if act == "leaky_relu":
        return xp.where(saved > 0, dy, dy * dy.dtype.type(alpha))
    if act == "sigmoid":
        return dy * saved * (1 - saved)
    if act == "tanh":
        return dy * (1 - saved * saved)
    raise ValueError(f"unknown activation {act!r}")


# ---- dispatch -------------------------------------------------------------------------------------


def forward(device: str, act: str, x, alpha: float = 0.0, version: int = 1):
    mod = _backend.native(device)
    if mod is None:
        return forward_oracle(_backend.xp_of(device), act, x, alpha)
    x = _backend.xp_of(device).ascontiguousarray(x)
    y = _backend.empty(device, x.shape)
    mod.activation_forward(ACTS[act], x, y, float(alpha), version, _backend.stream(device))
    return y


def backward(device: str, act: str, dy, saved, alpha: float = 0.0, version: int = 1):
    mod = _backend.native(device)
    if mod is None:
        return backward_oracle(_backend.xp_of(device), act, dy, saved, alpha)
    xp = _backend.xp_of(device)
    dy, saved = xp.ascontiguousarray(dy), xp.ascontiguousarray(saved)
    dx = _backend.empty(device, dy.shape)
    mod.activation_backward(ACTS[act], dy, saved, dx, float(alpha), version,
                            _backend.stream(device))
    return dx


# ---- autograd -------------------------------------------------------------------------------------


class Activation(Function):
    @staticmethod
    def forward(ctx, x, act, alpha):
        y = forward(ctx.device, act, x, alpha)
        ctx.act, ctx.alpha = act, alpha
        ctx.save_for_backward(x if act in SAVES_INPUT else y)
        return y

    @staticmethod
    def backward(ctx, dy):
        (saved,) = ctx.saved_tensors
        return backward(ctx.device, ctx.act, dy, saved, ctx.alpha), None, None


# ---- functional -----------------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise; gradient 1 where x > 0, else 0 (0 at 0)."""
    check_float_tensor(x, "relu")
    return Activation.apply(x, "relu", 0.0)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x (the course's max(0.1x, x) is negative_slope=0.1)."""
    check_float_tensor(x, "leaky_relu")
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got "
                        f"{type(negative_slope).__name__}")
    if not np.isfinite(negative_slope):
        raise ValueError(f"leaky_relu: negative_slope must be finite, got {negative_slope}")
    return Activation.apply(x, "leaky_relu", float(negative_slope))


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)) elementwise."""
    check_float_tensor(x, "sigmoid")
    return Activation.apply(x, "sigmoid", 0.0)


def tanh(x: Tensor) -> Tensor:
    """tanh(x) elementwise."""
    check_float_tensor(x, "tanh")
    return Activation.apply(x, "tanh", 0.0)


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, dy, act, alpha = inputs["x"], inputs["dy"], inputs["act"], inputs["alpha"]
    y = forward(device, act, x, alpha, version)
    saved = x if act in SAVES_INPUT else y
    return {"y": y, "dx": backward(device, act, dy, saved, alpha, version)}


def _case(act, shape, alpha=0.0, special=False, offset=0):
    def make(rng):
        x = nasty(rng, shape)
        if special and x.size:
            flat = x.reshape(-1)
            vals = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e4, -1e4, 88.0, -104.0]
            flat[: len(vals)] = vals[: flat.size]
        return {"x": x, "dy": nasty(rng, shape), "act": act, "alpha": alpha}

    tag = "x".join(map(str, shape)) or "scalar"
    return Case(f"{act}-{tag}{'-special' if special else ''}", make)


_shapes = [(0,), (1,), (7,), (4, 33), (3, 5, 7, 11), (1031,), (2, 3, 64, 64)]
_cases = [_case(a, s, 0.1 if a == "leaky_relu" else 0.0) for a in ACTS for s in _shapes]
_cases += [_case(a, (5, 13), -0.2 if a == "leaky_relu" else 0.0, special=True) for a in ACTS]


# ---- benchmark cases (benchmarks/ops.py, benchmarks/model.py): ReLU, the one the models use ------

BENCH_SHAPES = {"full": [("relu", (32, 64, 112, 112))], "small": [("relu", (2, 64, 56, 56))],
                "tiny": [("relu", (1, 3, 13, 17))]}


def bench_case(label, shp) -> list:
    n = int(np.prod(shp))
    sh = "x".join(map(str, shp))

    def make(rng):
        x = rng.standard_normal(shp, dtype=np.float32)
        return {"x": x, "y": np.maximum(x, 0), "dy": rng.standard_normal(shp, dtype=np.float32)}
    params = {"n": n, "shape": tuple(shp)}
    return [
        BenchCase("relu", "fwd", label, sh, params, make,
                  lambda dv, i, v: forward(dv, "relu", i["x"], version=v),
                  lambda torch, i: torch.relu(i["x"]), bytes=8 * n),
        BenchCase("relu", "bwd", label, sh, params, make,
                  lambda dv, i, v: backward(dv, "relu", i["dy"], i["y"], version=v),
                  lambda torch, i: torch.ops.aten.threshold_backward(i["dy"], i["y"], 0),
                  bytes=12 * n)]


def _bench(suite: str) -> list:
    return [c for label, shp in BENCH_SHAPES[suite] for c in bench_case(label, shp)]


SPEC = register(OpSpec("activation", _cases, _compute, versions=(0, 1), bench=_bench,
                       doc="relu, leaky_relu, sigmoid, tanh: forward and backward"))
