"""Gradient clipping, in place on each parameter's ``.grad`` (PyTorch's formulas)."""
from __future__ import annotations

import math

import numpy as np

from ... import _backend
from ..._tensor_ops import bump
from ...tensor import Tensor


def _grads(parameters) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Scale the gradients so that their total norm (the norm of the per-parameter norms) is at
    most ``max_norm``: each gradient is multiplied by min(1, max_norm / (total + 1e-6)). Returns
    the total norm before clipping, as a 0-d float32 tensor (on the first gradient's device)."""
    max_norm, norm_type = float(max_norm), float(norm_type)
    grads = _grads(parameters)
    if not grads:
        return Tensor._wrap(np.zeros((), np.float32), "cpu")
    device = grads[0].device
    xp = _backend.xp_of(device)
    if len({g.device for g in grads}) > 1:
        raise ValueError(f"clip_grad_norm_: gradients on several devices "
                         f"{sorted({g.device for g in grads})}")
    flats = [g.data.reshape(-1).astype(np.float32, copy=False) for g in grads]
    if math.isinf(norm_type):
        norms = xp.stack([xp.abs(f).max() if f.size else xp.zeros((), np.float32)
                          for f in flats])
        total = norms.max()
    else:
        norms = xp.stack([(xp.abs(f) ** norm_type).sum() ** (1.0 / norm_type) for f in flats])
        total = (norms ** norm_type).sum() ** (1.0 / norm_type)
    total = xp.asarray(total, dtype=np.float32)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from `parameters` "
                           f"is non-finite, so it cannot be clipped. To disable this error and "
                           f"scale the gradients by the non-finite norm anyway, set "
                           f"`error_if_nonfinite=False`")
    coef = xp.minimum(np.float32(max_norm) / (total + np.float32(1e-6)), np.float32(1.0))
    for g in grads:
        g.data *= coef.astype(g.dtype)
        bump(g.data)
    return Tensor._wrap(total, device)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for g in _grads(parameters):
        xp = _backend.xp_of(g.device)
        xp.clip(g.data, -clip_value, clip_value, out=g.data)
        bump(g.data)
