"""Depthwise convolution: groups == C input channels, K = C * multiplier filters of shape
(K, 1, R, S) (kernels: csrc/kernels/depthwise_conv2d.cuh). Filter k reads only channel k // M.

This is the MobileNet case of grouped convolution: a GEMM tile has nothing to reduce over channels
and wastes its work, so it gets direct kernels (tiled forward and dgrad, deterministic wgrad).
``F.conv2d(..., groups=C)`` reaches them through ``route`` (one routing function for conv2d's
dispatch); ``depthwise_conv2d`` is the same op called directly.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from ..tensor import Tensor, check_float_tensor
from . import conv2d as _conv
from ._spec import Case, OpSpec, int_pair, nasty, register

# ---- geometry and routing -------------------------------------------------------------------------


def route(C: int, K: int, groups: int) -> bool:
    """Whether a convolution of C channels into K filters with ``groups`` groups is depthwise, so
    that conv2d's dispatch should call this module: every group is one input channel (groups == C
    > 1) and K is a multiple of C (the channel multiplier)."""
    return groups > 1 and groups == C and K % C == 0


# ---- oracle ---------------------------------------------------------------------------------------


def _taps(P, Q, R, S, stride, dilation):
    for r in range(R):
        for s in range(S):
            yield r, s, _conv._slices(P, Q, r, s, stride, dilation)


def _padded(xp, a, pads):
    return xp.pad(a, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3]))) if any(pads) else a


def forward_oracle(xp, x, w, b, stride, pads, dilation):
    N, C = x.shape[:2]
    K, _, R, S = w.shape
    P, Q = _conv.output_size(x.shape[2:], (R, S), stride, pads, dilation)
    xk = _padded(xp, x, pads)[:, xp.arange(K) // (K // C)]  # (N, K, Hp, Wp): channel k // M
    y = xp.zeros((N, K, P, Q), dtype=x.dtype)
    for r, s, (hs, ws) in _taps(P, Q, R, S, stride, dilation):
        y += xk[:, :, hs, ws] * w[None, :, 0, r, s, None, None]
    if b is not None:
        y += b[None, :, None, None]
    return y


def backward_data_oracle(xp, dy, w, x_shape, stride, pads, dilation):
    N, C, H, W = x_shape
    K, _, R, S = w.shape
    P, Q = dy.shape[2:]
    dk = xp.zeros((N, K, H + pads[0] + pads[1], W + pads[2] + pads[3]), dtype=dy.dtype)
    for r, s, (hs, ws) in _taps(P, Q, R, S, stride, dilation):
        dk[:, :, hs, ws] += dy * w[None, :, 0, r, s, None, None]
    dx = dk.reshape(N, C, K // C, *dk.shape[2:]).sum(axis=2)  # the M filters of each channel
    return xp.ascontiguousarray(dx[:, :, pads[0]:pads[0] + H, pads[2]:pads[2] + W])


def backward_weight_oracle(xp, dy, x, w_shape, stride, pads, dilation):
    K, _, R, S = w_shape
    C = x.shape[1]
    P, Q = dy.shape[2:]
    xk = _padded(xp, x, pads)[:, xp.arange(K) // (K // C)]
    dw = xp.empty(w_shape, dtype=dy.dtype)
    for r, s, (hs, ws) in _taps(P, Q, R, S, stride, dilation):
        dw[:, 0, r, s] = (dy * xk[:, :, hs, ws]).sum(axis=(0, 2, 3))
    return dw


# ---- dispatch -------------------------------------------------------------------------------------


def forward(device, x, w, b, stride, pads, dilation, version=1):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return forward_oracle(xp, x, w, b, stride, pads, dilation)
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    P, Q = _conv.output_size(x.shape[2:], w.shape[2:], stride, pads, dilation)
    y = _backend.empty(device, (x.shape[0], w.shape[0], P, Q))
    mod.depthwise_conv2d_forward(x, w, None if b is None else xp.ascontiguousarray(b), y, stride,
                                 pads, dilation, version, _backend.stream(device))
    return y


def backward_data(device, dy, w, x_shape, stride, pads, dilation, version=1):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return backward_data_oracle(xp, dy, w, x_shape, stride, pads, dilation)
    dx = _backend.empty(device, x_shape)
    mod.depthwise_conv2d_backward_data(xp.ascontiguousarray(dy), xp.ascontiguousarray(w), dx,
                                       stride, pads, dilation, version, _backend.stream(device))
    return dx


def backward_weight(device, dy, x, w_shape, stride, pads, dilation, version=1):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return backward_weight_oracle(xp, dy, x, w_shape, stride, pads, dilation)
    dw = _backend.empty(device, w_shape)
    mod.depthwise_conv2d_backward_weight(xp.ascontiguousarray(dy), xp.ascontiguousarray(x), dw,
                                         stride, pads, dilation, version, _backend.stream(device))
    return dw


backward_bias = _conv.backward_bias  # a per-filter sum of dy, whatever the groups


# ---- functional -----------------------------------------------------------------------------------


def depthwise_conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1,
                     padding=0, dilation=1) -> Tensor:
    """F.conv2d(input, weight, bias, stride, padding, dilation, groups=C) for input (N, C, H, W)
    and weight (C * multiplier, 1, R, S). padding: an int, a pair, (top, bottom, left, right),
    "valid" or "same"."""
    check_float_tensor(input, "depthwise_conv2d", "input")
    check_float_tensor(weight, "depthwise_conv2d", "weight")
    if bias is not None:
        check_float_tensor(bias, "depthwise_conv2d", "bias")
    if input.ndim != 4:
        raise ValueError(f"depthwise_conv2d: input must be 4-D (N, C, H, W), got shape "
                         f"{input.shape}")
    C = input.shape[1]
    if weight.ndim != 4 or weight.shape[1] != 1 or C < 1 or weight.shape[0] % C or \
            weight.shape[0] == 0:
        raise ValueError(f"depthwise_conv2d: weight must have shape (C * multiplier, 1, R, S) "
                         f"with C = {C} input channels, got {weight.shape}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"depthwise_conv2d: bias must have shape ({weight.shape[0]},) (one per "
                         f"filter), got {bias.shape}")
    devices = {t.device for t in (input, weight, bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"depthwise_conv2d: expected all tensors on the same device, got "
                         f"{sorted(devices)}")
    stride = int_pair(stride, "stride", 1, "depthwise_conv2d")
    dilation = int_pair(dilation, "dilation", 1, "depthwise_conv2d")
    R, S = weight.shape[2:]
    pads = _conv.resolve_padding(padding, input.shape[2:], (R, S), stride, dilation)
    P, Q = _conv.output_size(input.shape[2:], (R, S), stride, pads, dilation)
    if P <= 0 or Q <= 0:
        raise ValueError(f"depthwise_conv2d: kernel {R}x{S} (dilation {dilation}) is larger than "
                         f"the padded input {input.shape[2] + pads[0] + pads[1]}x"
                         f"{input.shape[3] + pads[2] + pads[3]}: the output would be {P}x{Q}")
    # conv2d's Function routes groups == C to this module's kernels (route() above)
    return _conv.conv2d(input, weight, bias, stride, pads, dilation, groups=C)


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, w, b, dy = inputs["x"], inputs["w"], inputs["b"], inputs["dy"]
    g = (inputs["stride"], inputs["pads"], inputs["dilation"])
    return {
        "y": forward(device, x, w, b, *g, version=version),
        "y_nobias": forward(device, x, w, None, *g, version=version),
        "dx": backward_data(device, dy, w, x.shape, *g, version=version),
        "dw": backward_weight(device, dy, x, w.shape, *g, version=version),
        "db": backward_bias(device, dy),
    }


def _case(name, N, C, H, W, R, S, M=1, stride=1, padding=0, dilation=1):
    stride, dilation = int_pair(stride, "stride", 1, "case"), int_pair(dilation, "dilation", 1,
                                                                       "case")
    pads = _conv.resolve_padding(padding, (H, W), (R, S), stride, dilation)
    P, Q = _conv.output_size((H, W), (R, S), stride, pads, dilation)
    K = C * M

    def make(rng):
        return {"x": nasty(rng, (N, C, H, W)), "w": nasty(rng, (K, 1, R, S)) / np.sqrt(R * S),
                "b": nasty(rng, (K,)), "dy": nasty(rng, (N, K, P, Q)), "stride": stride,
                "pads": pads, "dilation": dilation}

    return Case(f"dw-{name}-{N}x{C}x{H}x{W}-m{M}-k{R}x{S}-s{stride[0]}{stride[1]}"
                f"-p{''.join(map(str, pads))}-d{dilation[0]}{dilation[1]}", make,
                reduce_len=max(R * S * M, N * P * Q, 1))


_cases = [
    _case("3x3p1", 2, 5, 9, 7, 3, 3, padding=1),
    _case("3x3s2p1", 2, 4, 13, 11, 3, 3, stride=2, padding=1),
    _case("mobilenet-14", 2, 8, 14, 14, 3, 3, padding=1),
    _case("mobilenet-7", 3, 6, 7, 7, 3, 3, padding=1),
    _case("wide-40", 1, 3, 5, 40, 3, 3, padding=1),
    _case("tall-odd", 1, 2, 37, 9, 3, 3, stride=(2, 1), padding=(1, 0)),
    _case("multiplier3", 2, 3, 8, 9, 3, 3, M=3, padding=1),
    _case("5x5s2-same", 2, 3, 12, 10, 5, 5, stride=2, padding="same"),
    _case("7x7-asym", 1, 4, 11, 13, 7, 7, padding=(3, 2, 1, 4)),
    _case("1x1", 2, 4, 5, 6, 1, 1, M=2),
    _case("2x5-dil2", 2, 3, 12, 15, 2, 5, dilation=2, padding=(1, 2)),
    _case("3x3-dil3-s3", 1, 2, 17, 19, 3, 3, stride=3, dilation=3, padding=2),
    _case("pad-larger-than-kernel", 1, 2, 4, 5, 3, 3, padding=3),
    _case("C1-m4", 3, 1, 6, 7, 3, 3, M=4),
    _case("empty-batch", 0, 3, 5, 5, 3, 3, padding=1),
    _case("big-dilation-falls-back", 1, 2, 125, 125, 3, 3, dilation=60, padding=1),
]

SPEC = register(OpSpec("depthwise_conv2d", _cases, _compute, versions=(0, 1),
                       doc="depthwise conv2d (groups == C): forward, dgrad, wgrad, bias grad"))
