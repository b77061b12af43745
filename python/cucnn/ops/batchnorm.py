"""batch_norm over (N, C, H, W) (kernels: csrc/kernels/batchnorm.cuh), PyTorch's semantics.

* training: each channel is normalised by the batch's mean and *biased* variance over N*H*W;
  the running statistics move by ``momentum`` toward the batch mean and the *unbiased* variance
  (n/(n-1)), in place. Training needs more than one value per channel (ValueError, as PyTorch).
* eval: the running statistics normalise; they do not change.
* y = (x - mean) / sqrt(var + eps) * weight + bias; weight and bias are optional (affine=False).

``F.batch_norm`` takes a float momentum; ``nn.BatchNorm2d`` turns momentum=None into PyTorch's
cumulative average (factor 1/num_batches_tracked) before calling it. The autograd node keeps x,
the per-channel mean and 1/std, and the weight: what dx needs.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _backend
from ..tensor import Function, Tensor, check_float_tensor
from ._spec import Case, OpSpec, nasty, register

_AXES = (0, 2, 3)


def _c(v, xp, dtype):
    """A per-channel vector as (1, C, 1, 1) for broadcasting."""
    return xp.asarray(v, dtype=dtype).reshape(1, -1, 1, 1)


# ---- oracle ---------------------------------------------------------------------------------------


def train_forward_oracle(xp, x, weight, bias, running_mean, running_var, eps, factor):
    """(y, mean, invstd); running_mean/var (or None) updated in place."""
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = x.mean(axis=_AXES)
    var = ((x - _c(mean, xp, x.dtype)) ** 2).mean(axis=_AXES)  # two-pass: no cancellation
    invstd = (1.0 / xp.sqrt(var + eps)).astype(x.dtype, copy=False)
    if running_mean is not None:
        running_mean[...] = (1 - factor) * running_mean + factor * mean
        running_var[...] = (1 - factor) * running_var + factor * var * (n / (n - 1))
    return apply_oracle(xp, x, mean, invstd, weight, bias), mean, invstd


def apply_oracle(xp, x, mean, invstd, weight, bias):
    a = invstd if weight is None else invstd * weight
    y = (x - _c(mean, xp, x.dtype)) * _c(a, xp, x.dtype)
    return y if bias is None else y + _c(bias, xp, x.dtype)


def backward_oracle(xp, dy, x, mean, invstd, weight, training):
    """(dx, dgamma, dbeta) with dgamma = sum(dy * xhat), dbeta = sum(dy) per channel."""
    n = max(x.shape[0] * x.shape[2] * x.shape[3], 1)  # (an empty batch: dx is empty anyway)
    xhat = (x - _c(mean, xp, x.dtype)) * _c(invstd, xp, x.dtype)
    dbeta = dy.sum(axis=_AXES)
    dgamma = (dy * xhat).sum(axis=_AXES)
    a = _c(invstd if weight is None else invstd * weight, xp, x.dtype)
    if training:
        dx = a * (dy - _c(dbeta / n, xp, x.dtype) - xhat * _c(dgamma / n, xp, x.dtype))
    else:
        dx = a * dy
    return dx, dgamma, dbeta


# ---- dispatch -------------------------------------------------------------------------------------


def _workspace(mod, device, shape, version):
    n = mod.batchnorm_workspace(shape) if version else 0
    return _backend.empty(device, (max(n, 1),))  # NaN on sim: an unwritten partial shows


def train_forward(device, x, weight, bias, running_mean, running_var, eps, factor, version=1):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return train_forward_oracle(xp, x, weight, bias, running_mean, running_var, eps, factor)
    x = xp.ascontiguousarray(x)
    C = x.shape[1]
    y = _backend.empty(device, x.shape)
    mean, invstd = _backend.empty(device, (C,)), _backend.empty(device, (C,))
    mod.batchnorm_forward_train(x, y, mean, invstd, running_mean, running_var, weight, bias,
                                _workspace(mod, device, x.shape, version), float(eps),
                                float(factor), version, _backend.stream(device))
    return y, mean, invstd


def eval_forward(device, x, weight, bias, running_mean, running_var, eps):
    """(y, invstd) from the running statistics."""
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        invstd = (1.0 / xp.sqrt(running_var + eps)).astype(x.dtype, copy=False)
        return apply_oracle(xp, x, running_mean, invstd, weight, bias), invstd
    x = xp.ascontiguousarray(x)
    y, invstd = _backend.empty(device, x.shape), _backend.empty(device, (x.shape[1],))
    mod.batchnorm_forward_eval(x, y, invstd, running_mean, running_var, weight, bias, float(eps),
                               _backend.stream(device))
    return y, invstd


def backward(device, dy, x, mean, invstd, weight, training, version=1):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return backward_oracle(xp, dy, x, mean, invstd, weight, training)
    C = x.shape[1]
    dx = _backend.empty(device, x.shape)
    dgamma, dbeta = _backend.empty(device, (C,)), _backend.empty(device, (C,))
    mod.batchnorm_backward(xp.ascontiguousarray(dy), xp.ascontiguousarray(x), mean, invstd,
                           weight, dx, dgamma, dbeta, _workspace(mod, device, x.shape, version),
                           bool(training), version, _backend.stream(device))
    return dx, dgamma, dbeta


# ---- autograd -------------------------------------------------------------------------------------


class BatchNorm(Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, factor, eps):
        if training and x.size == 0:  # an empty batch: empty output, statistics untouched
            xp = _backend.xp_of(ctx.device)
            C = x.shape[1]
            y, mean, invstd = xp.zeros(x.shape, x.dtype), xp.zeros(C, x.dtype), \
                xp.ones(C, x.dtype)
        elif training:
            y, mean, invstd = train_forward(ctx.device, x, weight, bias, running_mean,
                                            running_var, eps, factor)
        else:
            y, invstd = eval_forward(ctx.device, x, weight, bias, running_mean, running_var, eps)
            mean = running_mean.copy()  # a later training step may move the running mean
        ctx.save_for_backward(x, mean, invstd, weight)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx, dy):
        x, mean, invstd, weight = ctx.saved_tensors
        dx, dgamma, dbeta = backward(ctx.device, dy, x, mean, invstd, weight, ctx.training)
        need = ctx.needs_input_grad
        return (dx, dgamma if need[1] else None, dbeta if need[2] else None) + (None,) * 5


# ---- functional -----------------------------------------------------------------------------------


def _channel_arg(t, C, name, device):
    if t is None:
        return None
    if not isinstance(t, Tensor):
        raise TypeError(f"batch_norm: {name} must be a Tensor or None, got {type(t).__name__}")
    if t.shape != (C,):
        raise ValueError(f"batch_norm: {name} should contain {C} elements (one per channel), got "
                         f"shape {t.shape}")
    if t.device != device:
        raise ValueError(f"batch_norm: {name} is on {t.device!r}, input on {device!r}")
    return t


def batch_norm(input: Tensor, running_mean, running_var, weight=None, bias=None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation of a 4-D (N, C, H, W) input (see the module docstring). In training
    mode the running statistics (Tensors or None) are updated in place."""
    check_float_tensor(input, "batch_norm")
    if input.ndim != 4:
        raise ValueError(f"batch_norm: expected 4D input (N, C, H, W), got {input.ndim}D input "
                         f"of shape {input.shape}")
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) \
            or not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm: momentum must be a number in [0, 1], got {momentum!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0.0 <= eps < math.inf):
        raise ValueError(f"batch_norm: eps must be a finite number >= 0, got {eps!r}")
    N, C, H, W = input.shape
    rm = _channel_arg(running_mean, C, "running_mean", input.device)
    rv = _channel_arg(running_var, C, "running_var", input.device)
    w = _channel_arg(weight, C, "weight", input.device)
    b = _channel_arg(bias, C, "bias", input.device)
    if (rm is None) != (rv is None):
        raise ValueError("batch_norm: running_mean and running_var must be both given or both "
                         "None")
    if not training and rm is None:
        raise ValueError("batch_norm: eval mode (training=False) needs running_mean and "
                         "running_var")
    if training and N * H * W == 1:  # (an empty batch passes through, as in PyTorch)
        raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                         f"{list(input.shape)}")
    if C == 0:
        raise ValueError(f"batch_norm: input must have at least one channel, got {input.shape}")
    for t in (rm, rv):
        if t is not None and not t.data.flags.c_contiguous:
            raise ValueError("batch_norm: running statistics must be contiguous")
    return BatchNorm.apply(input, w, b, None if rm is None else rm.data,
                           None if rv is None else rv.data, bool(training), float(momentum),
                           float(eps))


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, dy = inputs["x"], inputs["dy"]
    w, b = inputs.get("weight"), inputs.get("bias")
    eps, factor = inputs["eps"], inputs["factor"]
    rm, rv = inputs["running_mean"].copy(), inputs["running_var"].copy()
    res = {}
    if x.shape[0] * x.shape[2] * x.shape[3] > 1:
        y, mean, invstd = train_forward(device, x, w, b, rm, rv, eps, factor, version)
        dx, dg, db = backward(device, dy, x, mean, invstd, w, True, version)
        res.update(y=y, mean=mean, invstd=invstd, running_mean=rm, running_var=rv, dx=dx,
                   dgamma=dg, dbeta=db)
    y, invstd = eval_forward(device, x, w, b, rm, rv, eps)
    dx, dg, db = backward(device, dy, x, rm, invstd, w, False, version)
    res.update(y_eval=y, dx_eval=dx, dgamma_eval=dg, dbeta_eval=db)
    return res


def _scales(inputs, expected):
    """Error scales where results cancel: sums of signed terms judged by the sum of |terms|."""
    x, dy = inputs["x"], inputs["dy"]
    w = inputs.get("weight")
    ax = _AXES
    out = {}
    if "mean" in expected:
        mean, invstd = expected["mean"], expected["invstd"]
        xhat = (x - _c(mean, np, x.dtype)) * _c(invstd, np, x.dtype)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        a = _c(np.abs(invstd if w is None else invstd * w), np, x.dtype)
        out["mean"] = np.abs(x).mean(axis=ax)
        out["dbeta"] = np.abs(dy).sum(axis=ax)
        out["dgamma"] = np.abs(dy * xhat).sum(axis=ax)
        out["dx"] = a * (np.abs(dy) + _c(out["dbeta"] / n, np, x.dtype)
                         + np.abs(xhat) * _c(out["dgamma"] / n, np, x.dtype))
        bias = 0 if inputs.get("bias") is None else np.abs(_c(inputs["bias"], np, x.dtype))
        out["y"] = np.abs(xhat) * _c(np.abs(w) if w is not None else 1.0, np, x.dtype) + bias
        f = inputs["factor"]
        out["running_mean"] = (1 - f) * np.abs(inputs["running_mean"]) + f * out["mean"]
    out["dbeta_eval"] = np.abs(dy).sum(axis=ax)
    return out


def _case(name, N, C, H, W, affine=True, factor=0.1, eps=1e-5, offset=0.0):
    def make(rng):
        x = nasty(rng, (N, C, H, W)) * rng.uniform(0.5, 3.0, size=(1, C, 1, 1)) + offset
        x = x.astype(np.float32).astype(np.float64)  # the oracle sees the kernel's very inputs
        d = {"x": x, "dy": nasty(rng, (N, C, H, W)), "eps": eps, "factor": factor,
             "running_mean": rng.standard_normal(C) * 0.5,
             "running_var": rng.uniform(0.5, 2.0, size=C)}
        if affine:
            d["weight"] = rng.standard_normal(C)
            d["bias"] = rng.standard_normal(C)
        return d

    return Case(f"{name}-{N}x{C}x{H}x{W}", make, reduce_len=max(N * H * W, 1))


_cases = [
    _case("basic", 4, 3, 5, 7),
    _case("no-affine", 3, 4, 6, 5, affine=False),
    _case("prime", 3, 2, 13, 11, factor=0.3),
    _case("1x1-plane", 7, 5, 1, 1),                   # BN after a 1x1 map: n = N
    _case("batch1", 1, 3, 9, 10, factor=1.0),
    _case("split-few-channels", 8, 2, 32, 33),        # N*H*W = 8448: 3 chunks per channel
    _case("split-one-channel", 9, 1, 41, 43, factor=0.0),  # 15867 values: 4 uneven chunks
    _case("many-channels", 2, 531, 2, 3),            # C > 528: one chunk per channel
    _case("offset-mean", 4, 3, 17, 19, offset=1000.0),  # |mean| >> std: Welford's case
    _case("cumulative", 5, 3, 4, 4, factor=1 / 3, eps=1e-3),  # momentum=None at its 3rd batch
    _case("empty-batch", 0, 3, 4, 4),                 # eval only (training needs 2 values)
]

SPEC = register(OpSpec("batchnorm", _cases, _compute, versions=(0, 1), scales=_scales,
                       doc="batch_norm: training stats + running update, eval, backward"))
