"""Edge cases a differential fuzzer against PyTorch found (issue 11, section 3, pooling and
softmax): each compared with PyTorch where it is installed and with hand-derived values always."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
from cucnn.ops import pool2d

DEVICES = ["cpu", "sim"]


def _device(device):
    if device == "sim" and not cucnn.sim.is_available():
        pytest.skip("cucnn._sim did not build")
    return device


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---- max pooling: a window entirely in the padding -----------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kernel,stride", [((2, 1), (4, 1)),   # windows apart: plain scatter
                                           ((2, 2), (1, 1))])  # windows overlap: bincount
def test_max_pool_window_in_padding_passes_zero_gradient(device, kernel, stride):
    # H=2, dilation 3, padding 1: the window's rows are -1 and 2, both outside the input.
    x = cucnn.tensor(np.arange(1.0, 7.0).reshape(1, 1, 2, 3), device=_device(device),
                     requires_grad=True)
    y, idx = F.max_pool2d(x, kernel, stride=stride, padding=(1, 0), dilation=(3, 1),
                          return_indices=True)
    assert np.all(np.isneginf(y.numpy())) and np.all(idx.numpy() == -1)
    y.backward(np.full(y.shape, 2.5, np.float32))
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((1, 1, 2, 3), np.float32))


def test_max_pool_backward_oracle_ignores_minus_one_mixed_with_real_indices():
    # One plane's windows: two real maxima and one empty window (-1) that must not wrap to the
    # last cell of the plane (index -1) nor to the previous plane.
    idx = np.array([[[[4, -1, 0]]], [[[-1, 5, 5]]]], np.int64)
    dy = np.array([[[[1.0, 100.0, 2.0]]], [[[100.0, 3.0, 4.0]]]], np.float32)
    for overlap in (False, True):
        if not overlap:
            idx2 = idx.copy()
            idx2[1, 0, 0, 2] = 3  # without overlap no cell is chosen twice
            dy2 = dy
        else:
            idx2, dy2 = idx, dy
        dx = pool2d.max_backward_oracle(np, dy2, idx2, (2, 1, 2, 3), overlap)
        expect = np.zeros((2, 1, 2, 3), np.float32)
        expect[0, 0].flat[4] += 1.0
        expect[0, 0].flat[0] += 2.0
        if overlap:
            expect[1, 0].flat[5] += 7.0
        else:
            expect[1, 0].flat[5] += 3.0
            expect[1, 0].flat[3] += 4.0
        np.testing.assert_array_equal(dx, expect)


# ---- ceil_mode with a kernel larger than the padded input ----------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_ceil_mode_kernel_larger_than_input_gives_one_window(device):
    x = cucnn.tensor(np.arange(25.0).reshape(1, 1, 5, 5), device=_device(device),
                     requires_grad=True)
    m = F.max_pool2d(x, 7, 3, ceil_mode=True)
    a = F.avg_pool2d(x, 7, 3, ceil_mode=True)
    ax = F.avg_pool2d(x, 7, 3, ceil_mode=True, count_include_pad=False)
    assert m.shape == a.shape == (1, 1, 1, 1)
    assert m.item() == 24.0 and a.item() == 12.0 and ax.item() == 12.0  # divisor 25: no padding
    (m + a).sum().backward()
    g = np.full((5, 5), 1 / 25, np.float32)
    g[4, 4] += 1.0
    np.testing.assert_allclose(x.grad.numpy()[0, 0], g, rtol=1e-6)
    with pytest.raises(ValueError, match="output size would be 0x0"):
        F.max_pool2d(x, 7, 3)  # floor mode: no window, as in PyTorch
    torch = _torch()
    if torch is not None:
        tx = torch.arange(25.0).reshape(1, 1, 5, 5)
        assert torch.nn.functional.max_pool2d(tx, 7, 3, ceil_mode=True).item() == m.item()
        assert torch.nn.functional.avg_pool2d(tx, 7, 3, ceil_mode=True).item() == a.item()


@pytest.mark.parametrize("H,k,s,p", [(5, 7, 3, 0), (5, 7, 3, 1), (4, 9, 2, 3), (1, 3, 5, 1),
                                     (3, 6, 4, 2), (6, 2, 2, 1), (7, 2, 2, 0)])
def test_output_size_matches_pytorch_formula(H, k, s, p):
    """PyTorch's pooling_output_shape: div_rtn(H + 2p - (k-1) - 1 + (s-1 if ceil), s) + 1, then
    one fewer when the last window starts at or past H + p."""
    def torch_rule(ceil):
        o = (H + 2 * p - (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
        if ceil and (o - 1) * s >= H + p:
            o -= 1
        return o

    for ceil in (False, True):
        want = torch_rule(ceil)
        if want <= 0:
            with pytest.raises(ValueError, match="output size would be"):
                pool2d.geometry((H, H), k, s, p, 1, ceil, "t")
            continue
        assert pool2d.geometry((H, H), k, s, p, 1, ceil, "t")[4] == (want, want)
        torch = _torch()
        if torch is not None:
            y = torch.nn.functional.max_pool2d(torch.zeros(1, 1, H, H), k, s, p, ceil_mode=ceil)
            assert tuple(y.shape[2:]) == (want, want)


def test_pooling_refuses_sizes_past_32_bit_indexing():
    # The kernels index a plane's rows and columns with int; an empty batch keeps this cheap.
    x = cucnn.tensor(np.empty((0, 1, 2 ** 31, 1), np.float32))
    for fn in (F.max_pool2d, F.avg_pool2d):
        with pytest.raises(ValueError, match=r"exceeds the 32-bit indexing .* below 2\*\*31"):
            fn(x, 1)
    x = cucnn.tensor(np.empty((0, 1, 2 ** 30, 1), np.float32))
    with pytest.raises(ValueError, match="32-bit indexing"):
        F.max_pool2d(x, (3, 1), padding=(2 ** 29, 0), dilation=(2 ** 30, 1))
    # just within the limit: accepted (the geometry alone; no array of that size is made)
    g = pool2d.geometry((2 ** 31 - 5, 1), (2, 1), (2, 1), 0, 1, False, "t")
    assert g[4] == ((2 ** 31 - 5 - 2) // 2 + 1, 1)
    with pytest.raises(ValueError, match="32-bit indexing"):
        pool2d.geometry((2 ** 31 - 4, 1), (2, 1), (2, 1), 0, 1, False, "t")
    assert F.max_pool2d(cucnn.tensor(np.empty((0, 1, 2 ** 20, 1), np.float32)),
                        (2, 1)).shape == (0, 1, 2 ** 19, 1)


# ---- softmax over a zero-length dim --------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape,dim", [((3, 0), -1), ((3, 0, 2), 1), ((0, 4), 0), ((2, 0), 0),
                                       ((0,), 0)])
def test_softmax_over_a_zero_length_dim_is_empty(device, shape, dim):
    torch = _torch()
    for f, name in ((F.softmax, "softmax"), (F.log_softmax, "log_softmax")):
        x = cucnn.tensor(np.zeros(shape), device=_device(device), requires_grad=True)
        y = f(x, dim)
        assert y.shape == shape and y.dtype == np.float32
        y.sum().backward()
        assert x.grad.shape == shape
        if torch is not None:
            assert tuple(getattr(torch, name)(torch.zeros(shape), dim).shape) == shape
