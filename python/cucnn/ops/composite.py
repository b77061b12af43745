"""Ops with no kernel of their own: dropout (a mask multiply) and mse_loss (tensor arithmetic).

Neither needs a kernel to be fast enough beside the conv layers they follow, so neither is in the
kernel registry; their arithmetic runs as array code on every device. Dropout's mask comes from
``cucnn.manual_seed``'s generator, on the host, so a seed gives the same mask on every device.
"""
from __future__ import annotations

import numpy as np

from .. import _backend, _random
from ..tensor import Function, Tensor, check_float_tensor


class Dropout(Function):
    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)  # the scaled mask only
        return x * mask

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return g * mask, None


def dropout(input: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted dropout,
    as PyTorch); the identity when not training or when p is 0."""
    check_float_tensor(input, "dropout")
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be a probability in [0, 1], got {p!r}")
    if not training or p == 0:
        return input
    keep = _random.generator().random(input.shape) >= p
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = _backend.xp_of(input.device).asarray((keep * scale).astype(input.dtype))
    return Dropout.apply(input, mask)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean (or sum, or elementwise) squared error; the shapes must match, as PyTorch warns."""
    check_float_tensor(input, "mse_loss", "input")
    check_float_tensor(target, "mse_loss", "target")
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: expected target of shape {input.shape} to match input, got "
                         f"{target.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got "
                         f"{reduction!r}")
    d = input - target
    sq = d * d
    return sq if reduction == "none" else sq.sum() if reduction == "sum" else sq.mean()
