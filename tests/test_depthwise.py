"""Depthwise convolution (groups == C): the oracle against the dense conv2d oracle and PyTorch,
gradchecks, the routing rule and the argument errors. The kernels against the oracle in every SIMT
order are in test_kernels.py (registry op "depthwise_conv2d", versions 0 and 1)."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
from cucnn import _backend
from cucnn.ops import conv2d as conv
from cucnn.ops import depthwise_conv2d as dw
from cucnn.testing import gradcheck

try:
    import torch
except ImportError:  # pragma: no cover - CI without the torch extra
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

GEOMS = [((2, 3, 9, 8), 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
         ((1, 4, 11, 10), 2, (3, 3), (2, 2), (1, 0, 2, 1), (1, 1)),
         ((2, 2, 12, 13), 3, (5, 3), (1, 2), (2, 2, 1, 1), (2, 1))]


def _dense(w, C):
    """The (K, C, R, S) weight of a dense convolution equal to the depthwise one: zero except
    filter k's channel k // M."""
    K, _, R, S = w.shape
    full = np.zeros((K, C, R, S))
    full[np.arange(K), np.arange(K) // (K // C)] = w[:, 0]
    return full


@pytest.mark.parametrize("xs,M,rs,stride,pads,dil", GEOMS)
def test_oracle_equals_dense_conv_with_block_diagonal_weight(xs, M, rs, stride, pads, dil):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs)
    C = xs[1]
    w = rng.standard_normal((C * M, 1) + rs)
    b = rng.standard_normal(C * M)
    y = dw.forward_oracle(np, x, w, b, stride, pads, dil)
    np.testing.assert_allclose(y, conv.forward_oracle(np, x, _dense(w, C), b, stride, pads, dil),
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    np.testing.assert_allclose(dw.backward_data_oracle(np, dy, w, xs, stride, pads, dil),
                               conv.backward_data_oracle(np, dy, _dense(w, C), xs, stride, pads,
                                                         dil), rtol=1e-12, atol=1e-12)
    dense_dw = conv.backward_weight_oracle(np, dy, x, (C * M, C) + rs, stride, pads, dil)
    np.testing.assert_allclose(dw.backward_weight_oracle(np, dy, x, w.shape, stride, pads, dil),
                               dense_dw[np.arange(C * M), np.arange(C * M) // M][:, None],
                               rtol=1e-12, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("device", ["cpu", "sim"])
@pytest.mark.parametrize("xs,M,rs,stride,pads,dil", GEOMS)
def test_matches_torch_grouped_conv(device, xs, M, rs, stride, pads, dil):
    rng = np.random.default_rng(1)
    C = xs[1]
    x, w, b = (rng.standard_normal(s) for s in (xs, (C * M, 1) + rs, (C * M,)))
    dt = np.float64 if device == "cpu" else np.float32
    tx, tw, tb = (torch.tensor(a.astype(dt), requires_grad=True) for a in (x, w, b))
    xpad = torch.nn.functional.pad(tx, (pads[2], pads[3], pads[0], pads[1]))
    ref = torch.nn.functional.conv2d(xpad, tw, tb, stride=stride, dilation=dil, groups=C)
    g = rng.standard_normal(ref.shape)
    ref.backward(torch.tensor(g.astype(dt)))
    cx, cw, cb = (cucnn.tensor(a, device=device, dtype=dt, requires_grad=True) for a in (x, w, b))
    y = dw.depthwise_conv2d(cx, cw, cb, stride, pads, dil)
    y.backward(cucnn.tensor(g, device=device, dtype=dt))
    tol = 1e-10 if dt == np.float64 else 1e-4
    for got, want in ((y, ref), (cx.grad, tx.grad), (cw.grad, tw.grad), (cb.grad, tb.grad)):
        np.testing.assert_allclose(got.numpy(), want.detach().numpy(), rtol=tol, atol=tol)


def test_gradcheck_depthwise():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((6, 1, 3, 2)), \
        rng.standard_normal(6)
    t = [cucnn.tensor(a, dtype=np.float64, requires_grad=True) for a in (x, w, b)]
    gradcheck(lambda a, c, d: dw.depthwise_conv2d(a, c, d, 2, (1, 0, 2, 1), (1, 2)), t)


def test_route_is_depthwise_only():
    assert dw.route(32, 32, 32) and dw.route(8, 24, 8)
    assert not dw.route(1, 4, 1)       # a plain convolution
    assert not dw.route(8, 8, 4)       # grouped, two channels per group
    assert not dw.route(8, 8, 1)
    assert not dw.route(8, 12, 8)      # K not a multiple of C (conv2d's own check rejects it)


def test_depthwise_errors():
    x = cucnn.tensor(np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"weight must have shape \(C \* multiplier, 1, R, S\) "
                                         r"with C = 3 input channels, got \(4, 1, 3, 3\)"):
        dw.depthwise_conv2d(x, cucnn.tensor(np.zeros((4, 1, 3, 3))))
    with pytest.raises(ValueError, match=r"got \(3, 2, 3, 3\)"):
        dw.depthwise_conv2d(x, cucnn.tensor(np.zeros((3, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"bias must have shape \(3,\)"):
        dw.depthwise_conv2d(x, cucnn.tensor(np.zeros((3, 1, 3, 3))), cucnn.tensor(np.zeros(2)))
    with pytest.raises(ValueError, match="the output would be -1x-1"):
        dw.depthwise_conv2d(x, cucnn.tensor(np.zeros((3, 1, 7, 7))))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        dw.depthwise_conv2d(x, cucnn.tensor(np.zeros((3, 1, 3, 3))), stride=0)
    m = _backend.sim_module()
    xs, y = np.zeros((1, 3, 5, 5), np.float32), np.zeros((1, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"filters must be a multiple of the input's 3 channels"):
        m.depthwise_conv2d_forward(xs, np.zeros((4, 1, 3, 3), np.float32), None, y, (1, 1),
                                   (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"depthwise weight must be 4-D \(C \* multiplier, 1, R, S\)"):
        m.depthwise_conv2d_forward(xs, np.zeros((3, 3, 3, 3), np.float32), None, y, (1, 1),
                                   (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"y must have shape \(1, 3, 3, 3\)"):
        m.depthwise_conv2d_forward(xs, np.zeros((3, 1, 3, 3), np.float32), None, y[..., :2].copy(),
                                   (1, 1), (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"version must be in \[0, 1\], got 2"):
        m.depthwise_conv2d_backward_weight(y, xs, np.zeros((3, 1, 3, 3), np.float32), (1, 1),
                                           (0, 0, 0, 0), (1, 1), 2)


def test_tiled_kernels_are_bitwise_deterministic_with_parallel_blocks():
    spec = cucnn.ops.REGISTRY["depthwise_conv2d"]
    case = next(c for c in spec.cases if "mobilenet-14" in c.id)
    serial = spec.compute("sim", spec.inputs_for(case, "sim"), 1)
    with cucnn.sim.threads(2):
        parallel = spec.compute("sim", spec.inputs_for(case, "sim"), 1)
    for k in serial:
        np.testing.assert_array_equal(parallel[k], serial[k])
