"""Ops with no kernel of their own: dropout (a mask multiply), mse_loss (tensor arithmetic),
binary_cross_entropy_with_logits (elementwise array code) and pad (constant padding, a copy).

None of them needs a kernel to be fast enough beside the conv layers they follow, so none is in the
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


# ---- binary cross-entropy with logits --------------------------------------------------------------


def bce_with_logits_oracle(xp, x, y, weight=None, pos_weight=None):
    """Per-element loss (1-y) x + (1 + (pw-1) y) softplus(-x), softplus(-x) written as
    log1p(exp(-|x|)) + max(-x, 0) so that no exp overflows for large |x| (PyTorch's formula)."""
    sp = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
    lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
    loss = (1 - y) * x + lw * sp
    return loss if weight is None else loss * weight


class BCEWithLogits(Function):
    @staticmethod
    def forward(ctx, x, y, weight, pos_weight, reduction):
        xp = _backend.xp_of(ctx.device)
        loss = bce_with_logits_oracle(xp, x, y, weight, pos_weight)
        ctx.save_for_backward(x, y, weight, pos_weight)
        ctx.reduction, ctx.n = reduction, loss.size
        if reduction == "none":
            return loss
        total = loss.sum(dtype=loss.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            return xp.asarray(total if reduction == "sum" else total / loss.dtype.type(loss.size),
                              dtype=loss.dtype)

    @staticmethod
    def backward(ctx, g):
        x, y, weight, pos_weight = ctx.saved_tensors
        xp = _backend.xp_of(ctx.device)
        if ctx.reduction == "mean":
            g = g / x.dtype.type(max(ctx.n, 1))
        # d/dx = (1-y) - lw sigmoid(-x);  d/dy = -x + (pw-1) softplus(-x)
        sig_neg = 0.5 * (1 - xp.tanh(0.5 * x))  # sigmoid(-x) without overflow
        lw = 1 if pos_weight is None else 1 + (pos_weight - 1) * y
        dx = (1 - y) - lw * sig_neg
        dy = None
        if ctx.needs_input_grad[1]:
            sp = xp.log1p(xp.exp(-xp.abs(x))) + xp.maximum(-x, 0)
            dy = -x + (0 if pos_weight is None else (pos_weight - 1) * sp)
        if weight is not None:
            dx = dx * weight
            dy = None if dy is None else dy * weight
        dx = _unbroadcast(xp, dx * g, x.shape)
        dy = None if dy is None else _unbroadcast(xp, dy * g, y.shape)
        return dx, dy, None, None, None


def _unbroadcast(xp, g, shape):
    g = xp.asarray(g)
    if g.shape == shape:
        return g
    return g.reshape(shape) if g.size == int(np.prod(shape)) else xp.broadcast_to(g, shape).copy()


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     *, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid and binary cross-entropy in one stable expression (PyTorch's semantics): ``target``
    of the shape of ``input`` (probabilities in [0, 1]), ``weight`` broadcast to it, ``pos_weight``
    broadcast along the last (class) dimension and applied to the positive term. Gradients flow to
    input and target; weight and pos_weight are constants."""
    check_float_tensor(input, "binary_cross_entropy_with_logits", "input")
    check_float_tensor(target, "binary_cross_entropy_with_logits", "target")
    if target.shape != input.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target size {target.shape} must be "
                         f"the same as input size {input.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"binary_cross_entropy_with_logits: reduction must be 'mean', 'sum' or "
                         f"'none', got {reduction!r}")
    extra = []
    for name, t in (("weight", weight), ("pos_weight", pos_weight)):
        if t is None:
            extra.append(None)
            continue
        check_float_tensor(t, "binary_cross_entropy_with_logits", name)
        try:
            full = np.broadcast_shapes(t.shape, input.shape)
        except ValueError:
            full = None
        if full != input.shape:
            raise ValueError(f"binary_cross_entropy_with_logits: {name} of shape {t.shape} does "
                             f"not broadcast to input shape {input.shape}")
        if t.device != input.device:
            raise ValueError(f"binary_cross_entropy_with_logits: expected {name} on "
                             f"{input.device!r}, got {t.device!r}")
        extra.append(t.detach().data.astype(input.dtype, copy=False))
    return BCEWithLogits.apply(input, target, extra[0], extra[1], reduction)


# ---- constant padding -----------------------------------------------------------------------------


class Pad(Function):
    @staticmethod
    def forward(ctx, x, pads, value):
        """pads: ((before, after), ...) for every dimension, negative = crop."""
        xp = _backend.xp_of(ctx.device)
        out_shape = tuple(n + a + b for n, (a, b) in zip(x.shape, pads))
        y = xp.full(out_shape, value, dtype=x.dtype)
        dst = tuple(slice(max(a, 0), n - max(b, 0)) for n, (a, b) in zip(out_shape, pads))
        src = tuple(slice(max(-a, 0), n - max(-b, 0)) for n, (a, b) in zip(x.shape, pads))
        y[dst] = x[src]
        ctx.slices, ctx.shape = (dst, src), x.shape
        return y

    @staticmethod
    def backward(ctx, g):
        xp = _backend.xp_of(ctx.device)
        dst, src = ctx.slices
        dx = xp.zeros(ctx.shape, dtype=g.dtype)
        dx[src] = g[dst]
        return dx, None, None


def pad(input: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's F.pad, constant mode: ``pad`` lists (before, after) pairs starting from the LAST
    dimension — (left, right) pads the width, (left, right, top, bottom) width and height. Negative
    amounts crop, as in PyTorch."""
    check_float_tensor(input, "pad")
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    if not isinstance(pad, (tuple, list)) or len(pad) % 2 or not pad:
        raise ValueError(f"pad: pad must be a tuple of an even number of ints, got {pad!r}")
    if len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: padding length {len(pad)} is too large for a {input.ndim}-D "
                         f"input (at most {2 * input.ndim})")
    for p in pad:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)):
            raise TypeError(f"pad: pad must hold ints, got {type(p).__name__}")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"pad: value must be a number, got {type(value).__name__}")
    pairs = [(0, 0)] * input.ndim
    for i in range(len(pad) // 2):
        pairs[input.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    for n, (a, b), d in zip(input.shape, pairs, range(input.ndim)):
        if n + a + b < 0:
            raise ValueError(f"pad: dimension {d} of size {n} padded by ({a}, {b}) would have "
                             f"negative size {n + a + b}")
    return Pad.apply(input, tuple(pairs), float(value))
