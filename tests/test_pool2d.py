"""Pooling beyond the kernel registry: the oracle against a direct loop (PyTorch's definition),
gradients against finite differences on tie-free inputs, the course's 7x7 -> 4x4 example, NaN and
ties, and every argument error."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
import cucnn.nn as nn
from cucnn.ops import pool2d
from cucnn.testing import gradcheck


def t64(a, requires_grad=True):
    return cucnn.tensor(np.asarray(a, np.float64), requires_grad=requires_grad, dtype=np.float64)


def direct_max(x, kernel, stride, pads, dilation, out):
    N, C, H, W = x.shape
    y = np.full((N, C) + out, -np.inf)
    idx = np.full((N, C) + out, -1)
    for n in range(N):
        for c in range(C):
            for p in range(out[0]):
                for q in range(out[1]):
                    for r in range(kernel[0]):
                        for s in range(kernel[1]):
                            ih = p * stride[0] - pads[0] + r * dilation[0]
                            iw = q * stride[1] - pads[2] + s * dilation[1]
                            if not (0 <= ih < H and 0 <= iw < W):
                                continue
                            v, m = x[n, c, ih, iw], y[n, c, p, q]
                            if idx[n, c, p, q] < 0 or v > m or (np.isnan(v) and not np.isnan(m)):
                                y[n, c, p, q], idx[n, c, p, q] = v, ih * W + iw
    return y, idx


def direct_avg(x, kernel, stride, pads, out, include_pad, divisor_override):
    N, C, H, W = x.shape
    y = np.zeros((N, C) + out)
    for p in range(out[0]):
        for q in range(out[1]):
            hs, ws = p * stride[0] - pads[0], q * stride[1] - pads[2]
            he, we = min(hs + kernel[0], H + pads[1]), min(ws + kernel[1], W + pads[3])
            size = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, H), min(we, W)
            div = divisor_override or (size if include_pad else (he - hs) * (we - ws))
            y[:, :, p, q] = x[:, :, hs:he, ws:we].sum(axis=(2, 3)) / div
    return y


@pytest.mark.parametrize("nan", [True, False])
@pytest.mark.parametrize("args", [(3, 2, 1, 1, False), (2, 2, 0, 1, True), ((3, 2), (2, 1), (1, 0), 1, True),
                                  (3, 1, 1, 2, False), (3, 2, "same", 1, False),
                                  # no tap outside the input: NumPy's fast path (without NaN)
                                  (2, 2, 0, 1, False), (3, 1, 0, 1, False), (3, 2, 0, 2, False),
                                  ((2, 3), (1, 2), 0, 1, False)])
def test_max_oracle_against_direct_loop(args, nan):
    k, s, p, d, ceil = args
    x = np.random.default_rng(0).integers(-3, 4, size=(2, 2, 9, 8)).astype(np.float64)  # ties
    x[1, 0, :4, :4] = -np.inf  # windows of nothing but -inf still point at one of them
    x[1, 1, 5, 5] = np.inf
    if nan:
        x[0, 1, 2, 3] = np.nan
    g = pool2d.geometry((9, 8), k, s, p, d, ceil, "t")
    y, idx = pool2d.max_forward_oracle(np, x, *g[:5])
    ry, ridx = direct_max(x, *g[:5])
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


@pytest.mark.parametrize("args", [(3, 2, 1, False), (2, 2, 0, True), (3, 2, 1, True), ((2, 3), (1, 2), (1, 1), True)])
@pytest.mark.parametrize("include_pad,override", [(True, None), (False, None), (True, 5)])
def test_avg_oracle_against_direct_loop(args, include_pad, override):
    k, s, p, ceil = args
    x = np.random.default_rng(1).standard_normal((2, 2, 9, 8))
    g = pool2d.geometry((9, 8), k, s, p, 1, ceil, "t")
    np.testing.assert_allclose(
        pool2d.avg_forward_oracle(np, x, g[0], g[1], g[2], g[4], include_pad, override),
        direct_avg(x, g[0], g[1], g[2], g[4], include_pad, override), rtol=1e-13)


def test_course_7x7_to_4x4_with_ceil_mode():
    """The course's X/O example: 2x2 max pooling with stride 2 turns a 7x7 map into 4x4, the last
    window hanging over the edge."""
    x = cucnn.tensor(np.arange(49.0).reshape(1, 1, 7, 7), device="sim")
    y, idx = F.max_pool2d(x, 2, ceil_mode=True, return_indices=True)
    assert y.shape == (1, 1, 4, 4)
    assert y.numpy()[0, 0, 3, 3] == 48.0 and idx.numpy()[0, 0, 3, 3] == 48
    assert F.max_pool2d(x, 2).shape == (1, 1, 3, 3)  # floor mode drops it
    a = F.avg_pool2d(x, 2, ceil_mode=True)
    assert a.numpy()[0, 0, 3, 3] == 48.0  # the overhang is not counted


def test_ceil_mode_drops_a_window_starting_in_the_padding():
    # H=6, k=2, s=2, pad=1: ceil would give 5 windows, the 5th starting at 7 >= H + pad: dropped
    g = pool2d.geometry((6, 6), 2, 2, 1, 1, True, "t")
    assert g[4] == (4, 4)


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_nan_propagates_and_indices_point_at_it(device):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 0, 0] = 5.0
    y, idx = F.max_pool2d(cucnn.tensor(x, device=device), 2, return_indices=True)
    assert np.isnan(y.numpy()[0, 0, 0, 0]) and idx.numpy()[0, 0, 0, 0] == 5
    assert y.numpy()[0, 0, 1, 1] == 0.0 and idx.numpy()[0, 0, 1, 1] == 10  # first of equal zeros


@pytest.mark.parametrize("kernel,stride,padding,ceil", [(3, 2, 1, False), (2, 2, 0, True), (3, 1, 1, False)])
def test_gradcheck_pools(kernel, stride, padding, ceil):
    rng = np.random.default_rng(2)
    x = t64(rng.permutation(2 * 2 * 7 * 8).reshape(2, 2, 7, 8) * 0.1)  # distinct: no ties
    gradcheck(lambda a: F.max_pool2d(a, kernel, stride, padding, ceil_mode=ceil), [x])
    gradcheck(lambda a: F.avg_pool2d(a, kernel, stride, padding, ceil_mode=ceil), [x])
    gradcheck(lambda a: F.avg_pool2d(a, kernel, stride, padding, ceil, False), [x])
    gradcheck(lambda a: F.avg_pool2d(a, kernel, stride, padding, divisor_override=4), [x])


def test_overlapping_backward_is_exact_on_sim():
    """3x3 stride 1: every input cell is in up to nine windows; the gather adds them all."""
    x = cucnn.tensor(np.zeros((1, 1, 5, 5)), device="sim", requires_grad=True)
    F.avg_pool2d(x, 3, 1, 1, count_include_pad=True).sum().backward()
    windows = np.array([2, 3, 3, 3, 2], np.float64)  # windows covering each row (and column)
    np.testing.assert_allclose(x.grad.numpy()[0, 0], np.outer(windows, windows) / 9, rtol=1e-6)


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_pool_errors(device):
    x = cucnn.tensor(np.zeros((1, 2, 6, 6)), device=device)
    with pytest.raises(ValueError, match="padding should be at most half of the effective kernel"):
        F.max_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match=r"kernel_size must be >= 1, got 0"):
        F.max_pool2d(x, 0)
    with pytest.raises(ValueError, match=r"stride must be >= 1, got \(1, 0\)"):
        F.avg_pool2d(x, 2, (1, 0))
    with pytest.raises(ValueError, match=r"output size would be 0x0 for input 6x6"):
        F.max_pool2d(x, 7)
    with pytest.raises(ValueError, match=r"input must be 4-D \(N, C, H, W\), got shape \(2, 6, 6\)"):
        F.max_pool2d(cucnn.tensor(np.zeros((2, 6, 6)), device=device), 2)
    with pytest.raises(TypeError, match="input must be floating point, got int64"):
        F.avg_pool2d(cucnn.tensor(np.zeros((1, 1, 4, 4), np.int64), device=device), 2)
    with pytest.raises(ValueError, match="divisor_override must be a positive int, got 0"):
        F.avg_pool2d(x, 2, divisor_override=0)
    # the message of the padding resolver pooling shares with conv2d (ops/_geometry.py)
    with pytest.raises(ValueError, match=r"padding must be an int, a pair, a 4-tuple \(top, "
                       r"bottom, left, right\), 'valid' or 'same', got 'full'"):
        F.max_pool2d(x, 2, padding="full")
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair of ints, got float"):
        F.max_pool2d(x, 2.0)


def test_pool_binding_errors():
    m = cucnn._backend.sim_module()
    x = np.zeros((1, 1, 6, 6), np.float32)
    y = np.zeros((1, 1, 3, 3), np.float32)
    i = np.zeros((1, 1, 3, 3), np.int64)
    g = ((2, 2), (2, 2), (0, 0, 0, 0), (1, 1))
    with pytest.raises(TypeError, match="indices must be int64, got int32"):
        m.max_pool2d_forward(x, y, i.astype(np.int32), *g)
    with pytest.raises(ValueError, match="at most half of the effective kernel size"):
        m.max_pool2d_forward(x, y, i, (2, 2), (2, 2), (2, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match="last window must start inside the input"):
        m.avg_pool2d_forward(x, np.zeros((1, 1, 5, 3), np.float32), (2, 2), (2, 2), (0, 0, 0, 0), True)
    with pytest.raises(ValueError, match=r"y must be 4-D"):
        m.max_pool2d_forward(x, y.reshape(9), i, *g)


# ---- asymmetric padding (top, bottom, left, right) and F.pad ---------------------------------------

try:
    import torch
except ImportError:  # pragma: no cover - CI without the torch extra
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

ASYM = [(3, 2, (0, 1, 1, 0)), (2, 2, (0, 1, 0, 1)), (3, 1, (1, 0, 1, 1)), ((3, 2), (2, 1), (1, 1, 0, 1))]


@requires_torch
@pytest.mark.parametrize("device", ["cpu", "sim"])
@pytest.mark.parametrize("kernel,stride,pads", ASYM)
def test_asymmetric_pooling_matches_torch_on_explicitly_padded_input(device, kernel, stride, pads):
    """PyTorch pools only symmetric padding: pad explicitly (-inf for max, zeros for an average
    that counts padding; the ratio of two zero-padded averages for one that does not) and pool."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 9, 8))
    g = rng.standard_normal
    tpad = (pads[2], pads[3], pads[0], pads[1])
    tx = torch.tensor(x, requires_grad=True)
    want_max = torch.nn.functional.max_pool2d(torch.nn.functional.pad(tx, tpad, value=-np.inf),
                                              kernel, stride)
    dy = g(want_max.shape)
    want_max.backward(torch.tensor(dy))
    cx = cucnn.tensor(x, device=device, requires_grad=True)
    got = F.max_pool2d(cx, kernel, stride, pads)
    got.backward(cucnn.tensor(dy, device=device))
    np.testing.assert_allclose(got.numpy(), want_max.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(cx.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    zp = torch.nn.functional.pad(torch.tensor(x), tpad)
    incl = torch.nn.functional.avg_pool2d(zp, kernel, stride)
    ones = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(torch.ones_like(
        torch.tensor(x)), tpad), kernel, stride)
    cx = cucnn.tensor(x, device=device)
    np.testing.assert_allclose(F.avg_pool2d(cx, kernel, stride, pads).numpy(), incl.numpy(),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(F.avg_pool2d(cx, kernel, stride, pads,
                                            count_include_pad=False).numpy(),
                               (incl / ones).numpy(), rtol=1e-5, atol=1e-6)
    layer = nn.MaxPool2d(kernel, stride, pads)
    np.testing.assert_array_equal(layer(cx).numpy(), F.max_pool2d(cx, kernel, stride, pads).numpy())


def test_asymmetric_padding_errors():
    x = cucnn.tensor(np.zeros((1, 1, 6, 6)))
    with pytest.raises(ValueError, match="padding should be at most half of the effective kernel"):
        F.max_pool2d(x, 3, 1, (0, 2, 0, 0))
    with pytest.raises(ValueError, match="padding must be >= 0"):
        F.avg_pool2d(x, 3, 1, (0, 0, -1, 0))
    with pytest.raises(ValueError, match="padding must be an int or a pair, got"):
        F.max_pool2d(x, 3, 1, (1, 1, 1))


@requires_torch
@pytest.mark.parametrize("pad", [(1, 2), (0, 1, 2, 0), (1, 1, 0, 2, 3, 0), (-1, 2, 1, -2),
                                 (0, 0, 0, 0)])
@pytest.mark.parametrize("value", [0.0, -2.5])
def test_pad_matches_torch(pad, value):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 5))
    tx = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.pad(tx, pad, value=value)
    g = rng.standard_normal(want.shape)
    want.backward(torch.tensor(g))
    cx = cucnn.tensor(x, dtype=np.float64, requires_grad=True)
    got = F.pad(cx, pad, value=value)
    got.backward(cucnn.tensor(g, dtype=np.float64))
    np.testing.assert_array_equal(got.numpy(), want.detach().numpy())
    np.testing.assert_array_equal(cx.grad.numpy(), tx.grad.numpy())


def test_pad_order_is_last_dimension_first_and_zero_pad_layer():
    x = cucnn.tensor(np.ones((1, 1, 2, 3)))
    y = F.pad(x, (1, 2, 3, 0)).numpy()  # left 1, right 2, top 3, bottom 0
    assert y.shape == (1, 1, 5, 6)
    np.testing.assert_array_equal(y[0, 0, 3:, 1:4], 1.0)
    assert y.sum() == 6
    np.testing.assert_array_equal(nn.ZeroPad2d((1, 2, 3, 0))(x).numpy(), y)
    assert nn.ZeroPad2d(1)(x).shape == (1, 1, 4, 5)


def test_pad_gradcheck_and_errors():
    from cucnn.testing import gradcheck
    x = cucnn.tensor(np.random.default_rng(2).standard_normal((2, 3, 4)), dtype=np.float64,
                     requires_grad=True)
    gradcheck(lambda a: F.pad(a, (2, -1, 0, 1)), [x])
    with pytest.raises(ValueError, match="only mode='constant' is supported, got 'reflect'"):
        F.pad(x, (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="even number of ints"):
        F.pad(x, (1, 1, 1))
    with pytest.raises(ValueError, match="padding length 8 is too large for a 3-D input"):
        F.pad(x, (1,) * 8)
    with pytest.raises(ValueError, match="would have negative size -1"):
        F.pad(x, (-3, -2))
    with pytest.raises(TypeError, match="pad must hold ints, got float"):
        F.pad(x, (1.0, 1))
    with pytest.raises(ValueError, match="ZeroPad2d: padding must be an int or"):
        nn.ZeroPad2d((1, 2))


def test_pooling_shares_the_conv_geometry():
    """Pooling's padding and output sizes come from ops/_geometry.py, convolution's helper: the
    same "same" padding (Keras, any stride, dilation), the same floor-mode sizes, and ceil_mode's
    PyTorch rules (floor division towards -inf; a last window starting in the right padding is
    dropped) in output_length, checked here against the rule written out and, where installed,
    PyTorch's max_pool2d."""
    from cucnn.ops import _geometry as geo
    torch = None
    try:
        import torch
    except ImportError:
        pass
    for H in (1, 2, 5, 7, 8, 13):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for d in (1, 2):
                    e = d * (k - 1) + 1
                    pads = geo.resolve_padding("same", (H, H), (k, k), (s, s), (d, d))
                    g = pool2d.geometry((H, H), k, s, "same", d, False, "t")
                    assert g[2] == pads and g[4] == (-(-H // s),) * 2
                    assert geo.output_length(H, k, s, pads[0], pads[1], d) == -(-H // s)
                    for p in range(e // 2 + 1):
                        for ceil in (False, True):
                            o = (H + 2 * p - e + (s - 1 if ceil else 0)) // s + 1
                            if ceil and (o - 1) * s >= H + p:
                                o -= 1
                            assert geo.output_length(H, k, s, p, p, d, ceil) == o
                            if o <= 0:
                                continue
                            assert pool2d.geometry((H, H), k, s, p, d, ceil, "t")[4] == (o, o)
                            if not ceil:
                                assert geo.output_size((H, H), (k, k), (s, s), (p,) * 4,
                                                       (d, d)) == (o, o)
                            if torch is not None and p <= k // 2:  # its pad rule: half k
                                y = torch.nn.functional.max_pool2d(
                                    torch.zeros(1, 1, H, H), k, s, p, d, ceil_mode=ceil)
                                assert tuple(y.shape[2:]) == (o, o), (H, k, s, p, d, ceil)
