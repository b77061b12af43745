"""Adaptive average and max pooling: the window formulas, the oracle's gradients, PyTorch's
results, the nn layers and the argument errors. The kernels against the oracle in three SIMT
orders are in test_kernels.py (registry op "adaptive_pool2d", versions 0 and 1: 1 takes the global
reduction path for 1x1 outputs)."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
import cucnn.nn as nn
from cucnn import _backend
from cucnn.ops import adaptive_pool2d as ap
from cucnn.testing import assert_bitwise_equal, assert_close, gradcheck

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

DEVICES = ["cpu", "sim"]


def test_windows_follow_pytorchs_start_end_formulas():
    assert ap.windows(10, 3) == [(0, 4), (3, 7), (6, 10)]    # overlapping
    assert ap.windows(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    assert ap.windows(5, 1) == [(0, 5)]
    assert ap.windows(2, 5) == [(0, 1), (0, 1), (0, 2), (1, 2), (1, 2)]  # more outputs than rows


def test_global_pooling_by_hand():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    x[1, 2, 3, 1] = 1e4
    for device in DEVICES:
        t = cucnn.tensor(x, device=device)
        np.testing.assert_allclose(F.adaptive_avg_pool2d(t, 1).numpy()[..., 0, 0],
                                   x.mean(axis=(2, 3)), rtol=1e-6)
        y, idx = F.adaptive_max_pool2d(t, (1, 1), return_indices=True)
        assert idx.numpy()[1, 2, 0, 0] == 3 * 5 + 1 and y.numpy()[1, 2, 0, 0] == 1e4
        assert idx.numpy()[0, 0, 0, 0] == 19


@pytest.mark.parametrize("out", [1, (2, 3), (5, 4), (7, 9)])
def test_gradcheck_oracles(out):
    rng = np.random.default_rng(2)
    x = cucnn.tensor(rng.standard_normal((2, 2, 5, 6)), dtype=np.float64, requires_grad=True)
    gradcheck(lambda a: F.adaptive_avg_pool2d(a, out), [x])
    gradcheck(lambda a: F.adaptive_max_pool2d(a, out), [x])


@pytest.mark.parametrize("device", DEVICES)
def test_none_keeps_the_input_size(device):
    x = cucnn.tensor(np.random.default_rng(0).standard_normal((1, 2, 6, 5)), device=device)
    assert F.adaptive_avg_pool2d(x, (None, 2)).shape == (1, 2, 6, 2)
    assert F.adaptive_max_pool2d(x, (3, None)).shape == (1, 2, 3, 5)


@requires_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape,out", [((2, 3, 7, 7), 1), ((2, 2, 10, 9), (3, 4)),
                                       ((1, 3, 5, 4), (7, 9)), ((3, 2, 13, 11), (5, 3)),
                                       ((2, 4, 33, 31), 1), ((1, 1, 1, 1), (2, 3))])
def test_against_pytorch(device, shape, out):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    tshape = (shape[0], shape[1]) + ((out, out) if isinstance(out, int) else out)
    dy = rng.standard_normal(tshape).astype(np.float32)
    for name in ("avg", "max"):
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        xo = cucnn.tensor(x, device=device, requires_grad=True)
        if name == "avg":
            yt, y = torch.nn.functional.adaptive_avg_pool2d(xt, out), F.adaptive_avg_pool2d(xo, out)
        else:
            yt, it = torch.nn.functional.adaptive_max_pool2d(xt, out, return_indices=True)
            y, idx = F.adaptive_max_pool2d(xo, out, return_indices=True)
            np.testing.assert_array_equal(idx.numpy(), it.numpy())
        yt.backward(torch.from_numpy(dy).double())
        y.backward(cucnn.tensor(dy, device=device))
        assert_close(y.numpy(), yt.detach().numpy(), rtol=1e-5, name=f"{name} y")
        assert_close(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-5, name=f"{name} dx")


def test_global_path_and_general_path_agree_bitwise_for_max():
    """Version 1 (warp-per-plane reduction) and version 0 (a thread per output) on 1x1 outputs:
    the max and its index are exact, so they must agree bit for bit, NaN and ties included."""
    rng = np.random.default_rng(8)
    x = rng.integers(-3, 4, size=(3, 7, 9, 11)).astype(np.float32)
    x[0, 1, 4, 4] = np.nan
    x[0, 1, 2, 2] = np.nan
    x[2, 3] = -np.inf
    a = ap.max_forward("sim", x, (1, 1), version=1)
    b = ap.max_forward("sim", x, (1, 1), version=0)
    assert_bitwise_equal(a[0], b[0], name="y")
    assert_bitwise_equal(a[1], b[1], name="idx")
    assert a[1][0, 1, 0, 0] == 2 * 11 + 2  # the first NaN
    assert a[1][2, 3, 0, 0] == 0           # a plane of -inf points at its first cell


def test_layers():
    x = cucnn.tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)), device="sim")
    assert nn.AdaptiveAvgPool2d((1, 1))(x).shape == (2, 3, 1, 1)
    y, idx = nn.AdaptiveMaxPool2d(3, return_indices=True)(x)
    assert y.shape == idx.shape == (2, 3, 3, 3)
    assert "output_size=(1, 1)" in repr(nn.AdaptiveAvgPool2d((1, 1)))


def test_errors():
    x = cucnn.tensor(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        F.adaptive_avg_pool2d(cucnn.tensor(np.zeros((3, 4, 4), np.float32)), 2)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        F.adaptive_max_pool2d(x, 0)
    with pytest.raises(ValueError, match="int or a pair"):
        F.adaptive_avg_pool2d(x, (1, 2, 3))
    with pytest.raises(TypeError, match="output_size"):
        F.adaptive_avg_pool2d(x, 1.5)
    with pytest.raises(ValueError, match="non-zero height and width"):
        F.adaptive_avg_pool2d(cucnn.tensor(np.zeros((2, 3, 0, 4), np.float32)), 1)
    with pytest.raises(TypeError, match="floating"):
        F.adaptive_avg_pool2d(cucnn.tensor(np.zeros((2, 3, 4, 4), np.int64)), 1)
    mod = _backend.sim_module()
    xs = np.zeros((2, 3, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"y must have shape \(2, 3, 2, 2\)"):
        mod.adaptive_avg_pool2d_forward(xs, np.zeros((2, 4, 2, 2), np.float32))
    with pytest.raises(ValueError, match="at least 1x1"):
        mod.adaptive_avg_pool2d_forward(xs, np.zeros((2, 3, 0, 2), np.float32))
    with pytest.raises(TypeError, match="indices must be int64"):
        mod.adaptive_max_pool2d_forward(xs, np.zeros((2, 3, 2, 2), np.float32),
                                        np.zeros((2, 3, 2, 2), np.int32))
    with pytest.raises(ValueError, match="indices must have shape"):
        mod.adaptive_max_pool2d_backward(np.zeros((2, 3, 2, 2), np.float32),
                                         np.zeros((2, 3, 1, 2), np.int64), xs)
    with pytest.raises(TypeError, match="x must be float32"):
        mod.adaptive_avg_pool2d_forward(xs.astype(np.float64), np.zeros((2, 3, 2, 2), np.float32))
