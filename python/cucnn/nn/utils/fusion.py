"""Fold an eval-mode BatchNorm2d into the convolution before it (PyTorch's
``torch.nn.utils.fusion``): bn(conv(x)) = conv'(x) with

    scale = weight_bn / sqrt(running_var + eps)           (per output channel)
    W'    = W * scale[:, None, None, None]
    b'    = (b - running_mean) * scale + bias_bn           (b = 0 when the conv has no bias)

One convolution instead of a convolution and a normalisation pass at inference. The folding is
done in float64 on the host and rounded once to float32.
"""
from __future__ import annotations

import copy

import numpy as np

from ... import _backend
from ..module import Parameter


def fuse_conv_bn_weights(conv_w, conv_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b):
    """(W', b') as float32 NumPy arrays from NumPy-convertible inputs; conv_b, bn_w, bn_b may be
    None (no conv bias; BatchNorm2d(affine=False))."""
    w = np.asarray(_backend.to_numpy(conv_w), dtype=np.float64)
    K = w.shape[0]
    b = np.zeros(K) if conv_b is None else np.asarray(_backend.to_numpy(conv_b), np.float64)
    rm = np.asarray(_backend.to_numpy(bn_rm), np.float64)
    rv = np.asarray(_backend.to_numpy(bn_rv), np.float64)
    gamma = np.ones(K) if bn_w is None else np.asarray(_backend.to_numpy(bn_w), np.float64)
    beta = np.zeros(K) if bn_b is None else np.asarray(_backend.to_numpy(bn_b), np.float64)
    scale = gamma / np.sqrt(rv + float(bn_eps))
    fused_w = w * scale.reshape((K,) + (1,) * (w.ndim - 1))
    fused_b = (b - rm) * scale + beta
    return fused_w.astype(np.float32), fused_b.astype(np.float32)


def fuse_conv_bn(conv, bn):
    """A new Conv2d (the inputs are unchanged) computing ``bn(conv(x))`` of eval mode. Both modules
    must be in eval mode (as PyTorch's ``fuse_conv_bn_eval``) and the BatchNorm2d must track
    running statistics with ``num_features == conv.out_channels``."""
    from ..layers import BatchNorm2d, Conv2d
    if not isinstance(conv, Conv2d):
        raise TypeError(f"fuse_conv_bn: conv must be a Conv2d, got {type(conv).__name__}")
    if not isinstance(bn, BatchNorm2d):
        raise TypeError(f"fuse_conv_bn: bn must be a BatchNorm2d, got {type(bn).__name__}")
    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn: fusion is only for eval mode; call .eval() on both "
                         "modules first")
    if bn.running_mean is None:
        raise ValueError("fuse_conv_bn: bn must track running statistics "
                         "(track_running_stats=True)")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"fuse_conv_bn: bn has {bn.num_features} features, the conv "
                         f"{conv.out_channels} output channels")
    w, b = fuse_conv_bn_weights(conv.weight.data, None if conv.bias is None else conv.bias.data,
                                bn.running_mean.data, bn.running_var.data, bn.eps,
                                None if bn.weight is None else bn.weight.data,
                                None if bn.bias is None else bn.bias.data)
    fused = copy.deepcopy(conv)
    device = conv.weight.device
    fused.weight = Parameter(w, device=device, requires_grad=conv.weight.requires_grad)
    fused.bias = Parameter(b, device=device, requires_grad=conv.weight.requires_grad)
    return fused


fuse_conv_bn_eval = fuse_conv_bn  # PyTorch's name
