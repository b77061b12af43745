"""conv2d and linear beyond the kernel registry: the oracle against scipy.signal.correlate and a
direct loop, gradients against finite differences, "same" padding against Keras's definition,
linear against a matrix product, and every argument error."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

import cucnn
import cucnn.functional as F
from cucnn.ops import conv2d as conv
from cucnn.ops._spec import nasty
from cucnn.testing import assert_close, gradcheck


def t64(a, requires_grad=True):
    return cucnn.tensor(np.asarray(a, np.float64), requires_grad=requires_grad, dtype=np.float64)


def direct(x, w, b, stride, pads, dilation):
    """The definition, loop by loop."""
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P, Q = conv.output_size((H, W), (R, S), stride, pads, dilation)
    y = np.zeros((N, K, P, Q))
    for n in range(N):
        for k in range(K):
            for p in range(P):
                for q in range(Q):
                    acc = b[k] if b is not None else 0.0
                    for c in range(C):
                        for r in range(R):
                            for s in range(S):
                                ih = p * stride[0] - pads[0] + r * dilation[0]
                                iw = q * stride[1] - pads[2] + s * dilation[1]
                                if 0 <= ih < H and 0 <= iw < W:
                                    acc += x[n, c, ih, iw] * w[k, c, r, s]
                    y[n, k, p, q] = acc
    return y


@pytest.mark.parametrize("stride,pads,dilation", [((1, 1), (0, 0, 0, 0), (1, 1)),
                                                  ((2, 1), (1, 2, 0, 1), (1, 1)),
                                                  ((1, 2), (2, 2, 1, 1), (2, 1))])
def test_oracle_against_direct_loop(stride, pads, dilation):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2)), rng.standard_normal(4)
    np.testing.assert_allclose(conv.forward_oracle(np, x, w, b, stride, pads, dilation),
                               direct(x, w, b, stride, pads, dilation), rtol=1e-12, atol=1e-12)


def test_oracle_against_scipy_correlate():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((5, 3, 4, 3))
    y = conv.forward_oracle(np, x, w, None, (1, 1), (0, 0, 0, 0), (1, 1))
    for n in range(2):
        for k in range(5):
            ref = scipy.signal.correlate(x[n], w[k], mode="valid")[0]  # sums over channels
            np.testing.assert_allclose(y[n, k], ref, rtol=1e-12, atol=1e-12)
    # 'full' correlation of the unpadded input is conv2d with padding R-1, S-1
    y = conv.forward_oracle(np, x, w, None, (1, 1), (3, 3, 2, 2), (1, 1))
    np.testing.assert_allclose(y[1, 2], scipy.signal.correlate(x[1], w[2], mode="full")[2],
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride,padding,dilation", [(1, 0, 1), (2, 1, 1), ((2, 1), "same", 1),
                                                     (1, 2, 2), (3, "same", 1)])
def test_gradcheck_conv2d(stride, padding, dilation):
    rng = np.random.default_rng(2)
    x, w, b = t64(rng.standard_normal((2, 3, 8, 7))), t64(rng.standard_normal((4, 3, 3, 3))), \
        t64(rng.standard_normal(4))
    gradcheck(lambda a, c, d: F.conv2d(a, c, d, stride, padding, dilation), [x, w, b])


def test_gradcheck_linear():
    rng = np.random.default_rng(3)
    x, w, b = t64(rng.standard_normal((5, 7))), t64(rng.standard_normal((3, 7))), \
        t64(rng.standard_normal(3))
    gradcheck(F.linear, [x, w, b])


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_linear_is_a_matrix_product(device):
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((2, 5, 37)), rng.standard_normal((13, 37)), rng.standard_normal(13)
    y = F.linear(cucnn.tensor(x, device=device), cucnn.tensor(w, device=device),
                 cucnn.tensor(b, device=device))
    assert y.shape == (2, 5, 13)
    assert_close(y.numpy(), x @ w.T + b, reduce_len=37)


@pytest.mark.parametrize("H,stride,R", [(28, 1, 5), (13, 2, 3), (8, 2, 4), (7, 3, 3), (1, 2, 3)])
def test_same_padding_is_keras(H, stride, R):
    """Keras 'same': output ceil(H/stride), total padding max((out-1)*s + R - H, 0), odd pixel at
    the bottom/right; at stride 1 it equals PyTorch's 'same'."""
    pads = conv.resolve_padding("same", (H, H), (R, R), (stride, stride), (1, 1))
    out = -(-H // stride)
    total = max((out - 1) * stride + R - H, 0)
    assert pads == (total // 2, total - total // 2) * 2
    assert conv.output_size((H, H), (R, R), (stride, stride), pads, (1, 1)) == (out, out)
    x = cucnn.tensor(np.ones((1, 1, H, H)), device="sim")
    assert F.conv2d(x, cucnn.tensor(np.ones((1, 1, R, R)), device="sim"), stride=stride,
                    padding="same").shape == (1, 1, out, out)


def test_fused_relu_forward():
    from cucnn.ops.conv2d import forward
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, 6, 6)).astype(np.float32), \
        rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    g = ((1, 1), (1, 1, 1, 1), (1, 1))
    np.testing.assert_array_equal(forward("sim", x, w, None, *g, relu=True),
                                  np.maximum(forward("sim", x, w, None, *g), 0))


def test_wgrad_is_bitwise_reproducible_with_many_splits():
    """A long reduction (N*P*Q = 2*32*32) is split; the fixed-order reduction of the workspace
    gives the same bits every time and in every SIMT order."""
    from cucnn import _backend
    from cucnn.ops.conv2d import backward_weight
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    dy = rng.standard_normal((2, 4, 32, 32)).astype(np.float32)
    g = ((1, 1), (1, 1, 1, 1), (1, 1))
    assert _backend.sim_module().conv2d_wgrad_workspace(x.shape, (4, 3, 3, 3), *g) > 4 * 27
    first = backward_weight("sim", dy, x, (4, 3, 3, 3), *g)
    for order in ("reverse", "random:5"):
        with cucnn.sim.order(order):
            np.testing.assert_array_equal(backward_weight("sim", dy, x, (4, 3, 3, 3), *g), first)
    ref = conv.backward_weight_oracle(np, dy.astype(np.float64), x.astype(np.float64),
                                      (4, 3, 3, 3), *g)
    assert_close(first, ref, reduce_len=2 * 32 * 32)


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_conv2d_errors(device):
    x = cucnn.tensor(np.zeros((2, 3, 8, 8)), device=device)
    w = cucnn.tensor(np.zeros((4, 3, 3, 3)), device=device)
    with pytest.raises(ValueError, match=r"expected input with 3 channels to match weight "
                                         r"\(4, 3, 3, 3\), got 5"):
        F.conv2d(cucnn.tensor(np.zeros((2, 5, 8, 8)), device=device), w)
    with pytest.raises(ValueError, match=r"weight must be 4-D \(K, C, R, S\), got shape \(4, 3, 3\)"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 3, 3)), device=device))
    with pytest.raises(ValueError, match=r"input must be 4-D"):
        F.conv2d(cucnn.tensor(np.zeros((3, 8, 8)), device=device), w)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\) \(one per filter\), got \(3,\)"):
        F.conv2d(x, w, cucnn.tensor(np.zeros(3), device=device))
    with pytest.raises(ValueError, match=r"kernel \(9x9 with dilation\) is larger than the padded "
                                         r"input \(8x8\)"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 3, 9, 9)), device=device))
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        F.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match=r"dilation must be >= 1, got \(1, -1\)"):
        F.conv2d(x, w, dilation=(1, -1))
    with pytest.raises(ValueError, match="padding must be >= 0, got -1"):
        F.conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match=r"padding must be an int, a pair, a 4-tuple \(top, bottom, "
                                         r"left, right\), 'valid' or 'same', got 'full'"):
        F.conv2d(x, w, padding="full")
    with pytest.raises(TypeError, match="stride must be an int or a pair of ints, got float"):
        F.conv2d(x, w, stride=1.5)
    with pytest.raises(TypeError, match="weight must be floating point, got int64"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 3, 3, 3), np.int64), device=device))
    other = "cpu" if device == "sim" else "sim"
    with pytest.raises(ValueError, match="same device"):
        F.conv2d(x, w.to(other))
    with pytest.raises(ValueError, match=r"linear: expected input with 7 features .* got shape \(2, 6\)"):
        F.linear(cucnn.tensor(np.zeros((2, 6)), device=device),
                 cucnn.tensor(np.zeros((3, 7)), device=device))


def test_conv2d_binding_errors():
    m = cucnn._backend.sim_module()
    x = np.zeros((1, 3, 5, 5), np.float32)
    w = np.zeros((2, 3, 3, 3), np.float32)
    y = np.zeros((1, 2, 3, 3), np.float32)
    g = ((1, 1), (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"y must have shape \(1, 2, 3, 3\) \(N, K, P, Q\), got \(1, 2, 5, 5\)"):
        m.conv2d_forward(x, w, None, np.zeros((1, 2, 5, 5), np.float32), *g)
    with pytest.raises(TypeError, match="weight must be float32, got float64"):
        m.conv2d_forward(x, w.astype(np.float64), None, y, *g)
    with pytest.raises(ValueError, match=r"stride must be >= 1, got \(0, 1\)"):
        m.conv2d_forward(x, w, None, y, (0, 1), (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match="workspace must hold at least"):
        m.conv2d_backward_weight(y, x, w, np.zeros(1, np.float32), *g)
    with pytest.raises(ValueError, match=r"padding must be >= 0"):
        m.conv2d_backward_data(y, w, x, (1, 1), (0, -1, 0, 0), (1, 1))


# ---- the tiled kernels: every tile, with and without split-K -------------------------------------

_TILE_SHAPES = [  # (x shape, w shape, stride, pads, dilation): unaligned sizes, strides, dilation
    ((2, 5, 11, 9), (7, 5, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((1, 3, 13, 10), (5, 3, 3, 2), (2, 1), (1, 0, 2, 1), (1, 1)),
    ((2, 4, 12, 11), (3, 4, 3, 3), (1, 2), (2, 2, 1, 1), (2, 1)),
    # dgrad stride phases (3 x 2 of them; dilation 2 along W reaches only even columns' phase)
    ((1, 4, 14, 13), (6, 4, 5, 3), (3, 2), (2, 1, 0, 2), (1, 2)),
]


def _all_passes(x, w, b, dy, g):
    return {"y": conv.forward("sim", x, w, b, *g, relu=True),
            "dx": conv.backward_data("sim", dy, w, x.shape, *g),
            "dw": conv.backward_weight("sim", dy, x, w.shape, *g)}


@pytest.mark.parametrize("tile", range(8))
@pytest.mark.parametrize("splits,force64", [(1, False), (3, False), (2, True)])
def test_every_tile_and_split_against_oracle(tile, splits, force64):
    """conv2d_force_plan pins the block tile (the kConvTiles order: 128x128, 128x64, 64x128, 64x64,
    128x32, 64x32, 256x16, 64x16), the split-K factor of all three passes and, with force64, the
    64-bit-offset gathers that tensors of 2**31 elements or more take (too large to run here);
    each must match the float64 oracle, and the forward/dgrad split-K reduction must not leave a
    NaN-filled workspace partial unread. Reverse order must give the same bits."""
    m = cucnn._backend.sim_module()
    rng = np.random.default_rng(10 + tile)
    m.conv2d_force_plan(tile, splits, force64)
    try:
        for xs, ws, *g in _TILE_SHAPES:
            x = nasty(rng, xs).astype(np.float32)
            w = (nasty(rng, ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
            b = nasty(rng, ws[:1]).astype(np.float32)
            P, Q = conv.output_size(xs[2:], ws[2:], g[0], g[1], g[2])
            dy = nasty(rng, (xs[0], ws[0], P, Q)).astype(np.float32)
            if splits > 1 and tile == 0:
                assert m.conv2d_forward_workspace(xs, ws, *g) > 0
            got = _all_passes(x, w, b, dy, g)
            x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
            assert_close(got["y"], np.maximum(conv.forward_oracle(np, x64, w64, b64, *g), 0),
                         reduce_len=int(np.prod(ws[1:])), name="y")
            assert_close(got["dx"], conv.backward_data_oracle(np, dy64, w64, xs, *g),
                         reduce_len=ws[0] * ws[2] * ws[3], name="dx")
            assert_close(got["dw"], conv.backward_weight_oracle(np, dy64, x64, ws, *g),
                         reduce_len=xs[0] * P * Q, name="dw")
            with cucnn.sim.order("reverse"):
                again = _all_passes(x, w, b, dy, g)
            for k in got:
                np.testing.assert_array_equal(again[k], got[k])
    finally:
        m.conv2d_force_plan(-1, 1, False)


# ---- dgrad by stride phase ------------------------------------------------------------------------


def _phase_taps(a, pad, stride, dil, R):
    """The taps r that reach input rows a + stride*i: stride divides a + pad - r*dil."""
    return [r for r in range(R) if (a + pad - r * dil) % stride == 0]


@pytest.mark.parametrize("stride", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dil", [1, 2, 3])
def test_dgrad_phases_are_the_taps_of_each_residue(stride, dil):
    """conv2d_dgrad_phases (the C++ plan of the launcher): one phase per (row, column) residue
    some tap reaches, with the right pixel counts and taps (first, count, in steps of
    stride/gcd); the zero fill exactly when some residue has no tap."""
    m = cucnn._backend.sim_module()
    for R, S, H, W, pt, pl in [(1, 2, 9, 7, 0, 1), (3, 5, 11, 13, 1, 2), (5, 3, 10, 3, 4, 0),
                               (2, 4, 1, 6, 0, 3)]:
        xs, ws = (1, 2, H, W), (3, 2, R, S)
        g = ((stride, stride + 1), (pt, 0, pl, 1), (dil, 1))
        if min(conv.output_size((H, W), (R, S), *g)) <= 0:
            continue
        zero_fill, phases = m.conv2d_dgrad_phases(xs, ws, *g)
        rows = {a: _phase_taps(a, pt, stride, dil, R) for a in range(min(stride, H))}
        cols = {b: _phase_taps(b, pl, stride + 1, 1, S) for b in range(min(stride + 1, W))}
        want = [(a, b, len(range(a, H, stride)), len(range(b, W, stride + 1)), len(rows[a]),
                 len(cols[b])) for a in rows for b in cols if rows[a] and cols[b]]
        assert [ph[:6] for ph in phases] == want, (R, S, H, W, g)
        assert zero_fill == (not all(rows.values()) or not all(cols.values()))


@pytest.mark.parametrize("stride", [2, 3, 4])
@pytest.mark.parametrize("R", [1, 2, 3, 5])
@pytest.mark.parametrize("dil", [1, 2])
def test_dgrad_strided_against_oracle(stride, R, dil):
    """dx on sim (one forward GEMM per stride phase, dx NaN-filled first so a pixel no phase
    writes shows) against the float64 oracle: strides 2-4 with kernels 1, 2, 3, 5 (strides larger
    than the kernel leave phases no tap reaches: zeros), dilation, odd sizes, batch 1, asymmetric
    padding, an anisotropic stride; bitwise the same in reverse SIMT order."""
    rng = np.random.default_rng(100 * stride + 10 * R + dil)
    for xs, K, st, pads in [((1, 3, 17, 13), 5, (stride, stride), (R // 2, R - 1, 0, R // 2)),
                            ((2, 5, 11, 15), 3, (stride, stride - 1), (0, 1, R - 1, 0))]:
        ws = (K, xs[1], R, R + 1)
        g = (st, pads, (dil, 1))
        P, Q = conv.output_size(xs[2:], ws[2:], *g)
        if min(P, Q) <= 0:
            continue
        w = (nasty(rng, ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
        dy = nasty(rng, (xs[0], K, P, Q)).astype(np.float32)
        got = conv.backward_data("sim", dy, w, xs, *g)
        want = conv.backward_data_oracle(np, dy.astype(np.float64), w.astype(np.float64), xs, *g)
        assert_close(got, want, reduce_len=K * R * (R + 1), name="dx")
        with cucnn.sim.order("reverse"):
            np.testing.assert_array_equal(conv.backward_data("sim", dy, w, xs, *g), got)


def test_dgrad_workspace_is_required():
    """Version 1 dgrad keeps the phases' flipped filters in its workspace: None or a short one
    is a ValueError naming the size conv2d_dgrad_workspace gives; version 0 needs none."""
    m = cucnn._backend.sim_module()
    xs, ws, g = (2, 3, 9, 8), (4, 3, 3, 3), ((2, 2), (1, 1, 1, 1), (1, 1))
    need = m.conv2d_dgrad_workspace(xs, ws, *g)
    assert need >= 4 * 3 * 3 * 3
    dy = np.ones((2, 4, 5, 4), np.float32)
    w = np.ones(ws, np.float32)
    dx = np.empty(xs, np.float32)
    with pytest.raises(ValueError, match=f"at least {need} floats.*got None"):
        m.conv2d_backward_data(dy, w, dx, *g)
    with pytest.raises(ValueError, match=f"at least {need} floats.*got {need - 1}"):
        m.conv2d_backward_data(dy, w, dx, *g, workspace=np.zeros(need - 1, np.float32))
    m.conv2d_backward_data(dy, w, dx, *g, version=0)
    ref = dx.copy()
    m.conv2d_backward_data(dy, w, dx, *g, workspace=np.full(need, np.nan, np.float32))
    np.testing.assert_allclose(dx, ref, rtol=1e-6)


def test_plans_fill_the_gpu():
    """The chooser launches at least 132 blocks (splitting K where the grid is small) for the
    three passes of every conv of LeNet-5, the Go policy net and VGG-16 at batch 64."""
    m = cucnn._backend.sim_module()
    layers = [((64, 1, 28, 28), (6, 1, 5, 5), 2), ((64, 6, 14, 14), (16, 6, 5, 5), 0),
              ((64, 48, 19, 19), (192, 48, 5, 5), 2), ((64, 192, 19, 19), (192, 192, 3, 3), 1),
              ((64, 192, 19, 19), (1, 192, 1, 1), 0)]
    H, C = 224, 3
    for K, reps in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
        for _ in range(reps):
            layers.append(((64, C, H, H), (K, C, 3, 3), 1))
            C = K
        H //= 2
    for xs, ws, p in layers:
        for ps in ("forward", "dgrad", "wgrad"):
            bm, bn, blocks, splits = m.conv2d_plan(ps, xs, ws, (1, 1), (p,) * 4, (1, 1))
            assert blocks >= 132, (ps, xs, ws, bm, bn, blocks, splits)
            assert blocks % splits == 0
    # LeNet conv2 (M = 6400, N = 16): 25 blocks of the old 256x16 tile; now split to fill the GPU
    assert m.conv2d_plan("forward", (64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0,) * 4, (1, 1))[3] > 1


# ---- groups, explicit asymmetric padding, empty shapes, size limits ------------------------------


def _ref64(x, w, b, stride, padding, dilation, groups, dy):
    """float64 reference on cpu: the oracle per group, through autograd."""
    xt, wt, bt = t64(x), t64(w), t64(b)
    y = F.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    (y * cucnn.tensor(dy, dtype=np.float64)).sum().backward()
    return y.numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("device", ["cpu", "sim"])
@pytest.mark.parametrize("groups,K,padding,stride", [(3, 6, 1, 1), (6, 12, (1, 0, 2, 1), 2),
                                                     (2, 4, "same", 1)])
def test_groups_and_asymmetric_padding(device, groups, K, padding, stride):
    rng = np.random.default_rng(20 + groups)
    C = 6
    x = nasty(rng, (2, C, 7, 8)).astype(np.float32)
    w = nasty(rng, (K, C // groups, 3, 3)).astype(np.float32)
    b = nasty(rng, (K,)).astype(np.float32)
    xt = cucnn.tensor(x, device=device, requires_grad=True)
    wt = cucnn.tensor(w, device=device, requires_grad=True)
    bt = cucnn.tensor(b, device=device, requires_grad=True)
    y = F.conv2d(xt, wt, bt, stride, padding, 1, groups)
    dy = nasty(rng, y.shape).astype(np.float32)
    (y * cucnn.tensor(dy, device=device)).sum().backward()
    ry, rdx, rdw, rdb = _ref64(x, w, b, stride, padding, 1, groups, dy)
    assert_close(y.numpy(), ry, reduce_len=C // groups * 9, name="y")
    assert_close(xt.grad.numpy(), rdx, reduce_len=K // groups * 9, name="dx")
    assert_close(wt.grad.numpy(), rdw, reduce_len=y.shape[0] * y.shape[2] * y.shape[3], name="dw")
    assert_close(bt.grad.numpy(), rdb, reduce_len=int(np.prod(y.shape)) // K, name="db")


def test_groups_and_padding_match_torch():
    torch = pytest.importorskip("torch", reason="the PyTorch comparison needs torch")
    rng = np.random.default_rng(30)
    x, w = rng.standard_normal((2, 6, 9, 7)), rng.standard_normal((6, 2, 3, 2))
    y = F.conv2d(t64(x, False), t64(w, False), None, (2, 1), (1, 2, 0, 3), 1, 3).numpy()
    xp = torch.nn.functional.pad(torch.tensor(x), (0, 3, 1, 2))  # (left, right, top, bottom)
    ref = torch.nn.functional.conv2d(xp, torch.tensor(w), stride=(2, 1), groups=3).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_gradcheck_grouped_conv2d():
    rng = np.random.default_rng(31)
    x, w, b = t64(rng.standard_normal((1, 4, 6, 5))), t64(rng.standard_normal((6, 2, 3, 3))), \
        t64(rng.standard_normal(6))
    gradcheck(lambda a, c, d: F.conv2d(a, c, d, 1, (0, 1, 2, 0), 1, 2), [x, w, b])


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_nn_conv2d_groups_and_padding(device):
    cucnn.manual_seed(0)
    layer = cucnn.nn.Conv2d(4, 8, 3, padding=(0, 1, 2, 0), groups=4, device=device)
    assert layer.weight.shape == (8, 1, 3, 3)
    assert "groups=4" in repr(layer)
    y = layer(cucnn.tensor(np.ones((1, 4, 5, 5), np.float32), device=device))
    assert y.shape == (1, 8, 4, 5)
    with pytest.raises(ValueError, match=r"in_channels \(4\) and out_channels \(6\) must be "
                                         r"divisible by groups \(4\)"):
        cucnn.nn.Conv2d(4, 6, 3, groups=4)


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_zero_channels_give_bias_only_outputs(device):
    """PyTorch 2.13 returns a malformed (N, 0, P, Q) output here; the definition (an empty sum)
    gives y = bias, dx and dw empty, db = the sum of dy. The kernels run empty reductions."""
    x = cucnn.tensor(np.zeros((2, 0, 5, 5), np.float32), device=device, requires_grad=True)
    w = cucnn.tensor(np.zeros((4, 0, 3, 3), np.float32), device=device, requires_grad=True)
    b = cucnn.tensor(np.arange(4, dtype=np.float32), device=device, requires_grad=True)
    y = F.conv2d(x, w, b)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to(np.arange(4.0).reshape(1, 4, 1, 1),
                                                             (2, 4, 3, 3)))
    y.sum().backward()
    assert x.grad.shape == (2, 0, 5, 5) and w.grad.shape == (4, 0, 3, 3)
    np.testing.assert_array_equal(b.grad.numpy(), np.full(4, 18.0))


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_zero_filters_and_zero_kernel_raise(device):
    """As PyTorch: a weight with no filters or a zero-size kernel is an error (ValueError here).
    linear with 0 out_features stays legal (PyTorch allows it) and runs the K = 0 kernels, which
    once divided by a zero tile count (SIGFPE) when planning wgrad's split."""
    x = cucnn.tensor(np.zeros((2, 3, 8, 8)), device=device)
    with pytest.raises(ValueError, match=r"expected weight to have at least 1 filter"):
        F.conv2d(x, cucnn.tensor(np.zeros((0, 3, 3, 3)), device=device))
    with pytest.raises(ValueError, match=r"weight must have a kernel of at least 1x1, got shape "
                                         r"\(4, 3, 0, 3\)"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 3, 0, 3)), device=device))
    a = cucnn.tensor(np.ones((5, 7), np.float32), device=device, requires_grad=True)
    wl = cucnn.tensor(np.ones((0, 7), np.float32), device=device, requires_grad=True)
    y = F.linear(a, wl)
    assert y.shape == (5, 0)
    y.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), np.zeros((5, 7)))
    assert wl.grad.shape == (0, 7)


def test_zero_size_problems_in_the_bindings():
    m = cucnn._backend.sim_module()
    g = ((1, 1), (1, 1, 1, 1), (1, 1))
    for xs, ws in [((2, 3, 5, 5), (0, 3, 3, 3)), ((2, 0, 5, 5), (4, 0, 3, 3)),
                   ((0, 3, 5, 5), (4, 3, 3, 3))]:
        for q in (m.conv2d_wgrad_workspace, m.conv2d_forward_workspace, m.conv2d_dgrad_workspace):
            assert q(xs, ws, *g) >= 0
    with pytest.raises(ValueError, match="weight must have a kernel of at least 1x1"):
        m.conv2d_wgrad_workspace((2, 3, 5, 5), (4, 3, 0, 3), *g)


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_groups_errors(device):
    x = cucnn.tensor(np.zeros((2, 4, 8, 8)), device=device)
    with pytest.raises(ValueError, match=r"expected weight's 3 filters \(dimension 0\) to be "
                                         r"divisible by groups=2"):
        F.conv2d(x, cucnn.tensor(np.zeros((3, 2, 3, 3)), device=device), groups=2)
    with pytest.raises(ValueError, match=r"expected input with 6 channels to match weight "
                                         r"\(4, 3, 3, 3\) with groups=2, got 4"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 3, 3, 3)), device=device), groups=2)
    with pytest.raises(ValueError, match="groups must be >= 1, got 0"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 4, 3, 3)), device=device), groups=0)
    with pytest.raises(TypeError, match="groups must be an int, got float"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 4, 3, 3)), device=device), groups=2.0)
    with pytest.raises(ValueError, match=r"padding must be >= 0, got \(0, -1\)"):
        F.conv2d(x, cucnn.tensor(np.zeros((4, 4, 3, 3)), device=device), padding=(1, 1, 0, -1))


def test_sizes_beyond_32_bit_indices_are_argument_errors():
    """The kernels index a plane, a filter and the padded extent with 32-bit ints: such sizes are
    a clear ValueError before anything is allocated (checked on shapes; no 8 GiB tensor)."""
    from cucnn.ops._geometry import ConvGeometry
    x = cucnn.tensor(np.zeros((1, 1, 4, 4), np.float32), device="sim")
    w = cucnn.tensor(np.zeros((1, 1, 3, 3), np.float32), device="sim")
    with pytest.raises(ValueError, match=r"padding must be at most 2147483647 \(32-bit indices\)"):
        F.conv2d(x, w, padding=2**40)
    with pytest.raises(ValueError, match=r"an input plane H\*W is 4294967296, more than the "
                                         r"kernels' 32-bit indices allow"):
        ConvGeometry.from_shapes((1, 1, 2**16, 2**16), (1, 1, 1, 1))
    with pytest.raises(ValueError, match="the padded input height"):
        ConvGeometry.from_shapes((1, 1, 2**31 - 10, 1), (1, 1, 1, 1), padding=(8, 8, 0, 0))
    m = cucnn._backend.sim_module()
    g = ((1, 1), (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"H\*W and P\*Q must each be at most 2147483647"):
        m.conv2d_wgrad_workspace((1, 1, 2**16, 2**16), (1, 1, 1, 1), *g)
    with pytest.raises(ValueError, match="must be at most 2147483647"):
        m.conv2d_wgrad_workspace((1, 1, 4, 4), (1, 1, 3, 3), (1, 1), (0, 2**40, 0, 0), (1, 1))


def test_dgrad_with_infinite_weights_is_a_documented_difference():
    """The implicit-GEMM dgrad (sim/cuda, version 1) gathers dy with zeros where a filter tap
    falls outside the output, so 0 * inf = NaN reaches input cells no infinite tap touches; the
    cpu oracle (col2im) and the naive version 0 skip those taps and keep them finite. Cells an
    infinite tap does reach agree. Masking every FMA would cost the loop; the difference is
    documented (conv2d.cuh) and pinned here."""
    w = np.ones((1, 1, 3, 3), np.float32)
    w[0, 0, 0, 0] = np.inf
    dy = np.ones((1, 1, 3, 3), np.float32)
    g = ((1, 1), (0, 0, 0, 0), (1, 1))
    cpu = conv.backward_data("cpu", dy, w, (1, 1, 5, 5), *g)
    sim = conv.backward_data("sim", dy, w, (1, 1, 5, 5), *g)
    naive = conv.backward_data("sim", dy, w, (1, 1, 5, 5), *g, version=0)
    reached = np.zeros((5, 5), bool)
    reached[:3, :3] = True  # dx[h, w] reads tap (0, 0) from dy[h, w]
    assert np.all(np.isinf(cpu[0, 0][reached])) and np.all(np.isinf(sim[0, 0][reached]))
    assert np.all(np.isfinite(cpu[0, 0][~reached]))
    np.testing.assert_array_equal(naive, cpu)
    assert np.all(np.isnan(sim[0, 0][~reached]))
    # strided: each stride phase multiplies only its own taps (no off-phase zeros), so where every
    # dy a tap reads is in range, sim agrees with cpu: inf on tap (0, 0)'s phase, finite elsewhere
    w2 = np.ones((1, 1, 2, 2), np.float32)
    w2[0, 0, 0, 0] = np.inf
    g2 = ((2, 2), (0, 0, 0, 0), (1, 1))
    cpu2 = conv.backward_data("cpu", dy[:, :, :2, :2], w2, (1, 1, 4, 4), *g2)
    sim2 = conv.backward_data("sim", dy[:, :, :2, :2], w2, (1, 1, 4, 4), *g2)
    np.testing.assert_array_equal(sim2, cpu2)
    assert np.isinf(cpu2[0, 0, ::2, ::2]).all() and np.isfinite(cpu2[0, 0, 1::2, :]).all()


@pytest.mark.parametrize("device", ["cpu", "sim"])
@pytest.mark.parametrize("groups", [2, 4])  # grouped, and depthwise (groups == channels)
def test_sequential_fuses_grouped_conv_and_relu_like_the_unfused_pair(device, groups):
    # nn.Sequential runs Conv2d + ReLU as one fused Function; groups must travel with it.
    import cucnn.nn as nn
    cucnn.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=groups), nn.ReLU()).to(device)
    x = cucnn.tensor(np.random.default_rng(1).standard_normal((2, 4, 7, 6)), device=device)
    fused = net(x).numpy()
    net.fuse_relu = False
    np.testing.assert_array_equal(fused, net(x).numpy())


# ---- the bias gradient fused into the weight-gradient GEMM ---------------------------------------
# (tile, C, R, S): C*R*S not a multiple of the tile's width (a spare column: fused) or a multiple
# (no spare column: db left to the separate reduction).
_FUSE_CASES = [(0, 4, 3, 3, True), (1, 3, 3, 3, True), (2, 5, 5, 5, True), (3, 2, 3, 3, True),
               (4, 3, 1, 1, True), (5, 7, 1, 3, True), (6, 1, 5, 3, True), (7, 3, 1, 1, True),
               (3, 64, 1, 1, False), (6, 16, 1, 1, False), (0, 8, 4, 4, False)]


def _wgrad_with_bias(m, dy, x, w_shape, g, db=None):
    ws = np.full(m.conv2d_wgrad_workspace(x.shape, w_shape, *g, bias=db is not None), np.nan,
                 np.float32)
    dw = np.full(w_shape, np.nan, np.float32)
    fused = m.conv2d_backward_weight(dy, x, dw, ws, *g, db=db)
    return dw, fused


@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize("tile,C,R,S,free", _FUSE_CASES)
def test_bias_gradient_fused_into_wgrad(tile, C, R, S, free, splits):
    """With db, conv2d_backward_weight computes the bias gradient in the wgrad GEMM where the
    forced tile has a spare column (a column of ones in B): db matches the float64 oracle, dw is
    bitwise what the call without db gives, the split partials are reduced in order (bitwise equal
    in reverse SIMT order and on a second run), the workspace's NaN fill never leaks. Without a
    spare column the call says so and leaves db alone."""
    m = cucnn._backend.sim_module()
    rng = np.random.default_rng(tile * 7 + C)
    xs, K, g = (2, C, 9, 7), 5, ((1, 2), (1, 0, 2, 1), (1, 1))
    P, Q = conv.output_size(xs[2:], (R, S), *g)
    x = nasty(rng, xs).astype(np.float32)
    dy = nasty(rng, (xs[0], K, P, Q)).astype(np.float32)
    dy[1, 2, 0, 0] = np.inf  # db[2] = inf, as the oracle's
    ws_shape = (K, C, R, S)
    m.conv2d_force_plan(tile, splits, False)
    try:
        db = np.full(K, np.nan, np.float32)
        dw, fused = _wgrad_with_bias(m, dy, x, ws_shape, g, db)
        assert fused == free
        plain, plain_fused = _wgrad_with_bias(m, dy, x, ws_shape, g)
        assert plain_fused is False
        np.testing.assert_array_equal(dw, plain)
        if not free:
            assert np.isnan(db).all()
            return
        assert_close(db, conv.backward_bias_oracle(np, dy.astype(np.float64)),
                     reduce_len=xs[0] * P * Q, name="db")
        for order in ("reverse", "forward"):
            with cucnn.sim.order(order):
                db2 = np.full(K, np.nan, np.float32)
                dw2, _ = _wgrad_with_bias(m, dy, x, ws_shape, g, db2)
            np.testing.assert_array_equal(db2, db)
            np.testing.assert_array_equal(dw2, dw)
    finally:
        m.conv2d_force_plan(-1, 1, False)


def test_fused_bias_gradient_argument_errors():
    m = cucnn._backend.sim_module()
    g = ((1, 1), (1, 1, 1, 1), (1, 1))
    x, dy = np.zeros((1, 3, 5, 5), np.float32), np.zeros((1, 4, 5, 5), np.float32)
    dw = np.zeros((4, 3, 3, 3), np.float32)
    n = m.conv2d_wgrad_workspace(x.shape, dw.shape, *g)
    nb = m.conv2d_wgrad_workspace(x.shape, dw.shape, *g, bias=True)
    splits = m.conv2d_plan("wgrad", x.shape, dw.shape, *g)[3]
    assert nb == n + splits * 4
    with pytest.raises(ValueError, match=r"at least %d floats \(conv2d_wgrad_workspace, "
                                         r"bias=True\), got %d" % (nb, n)):
        m.conv2d_backward_weight(dy, x, dw, np.zeros(n, np.float32), *g,
                                 db=np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="db"):
        m.conv2d_backward_weight(dy, x, dw, np.zeros(nb, np.float32), *g,
                                 db=np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="db"):
        m.conv2d_backward_weight(dy, x, dw, np.zeros(nb, np.float32), *g,
                                 db=np.zeros(4, np.float64))


@pytest.mark.parametrize("requires", ["all", "bias_only", "weight_and_bias"])
def test_conv_backward_routes_the_bias_gradient(requires, monkeypatch):
    """F.conv2d's backward on sim: with the weight gradient wanted, db comes out of the wgrad GEMM
    (3*3*3 = 27 taps: a spare column in any tile) and the separate bias reduction does not run;
    with only the bias wanted, it does. Same values as the float64 autograd."""
    m = cucnn._backend.sim_module()
    calls = []
    for name in ("conv2d_backward_bias", "conv2d_backward_weight"):
        def spy(*args, _f=getattr(m, name), _n=name, **kw):
            calls.append((_n, kw.get("db") is not None))
            return _f(*args, **kw)
        monkeypatch.setattr(m, name, spy)
    rng = np.random.default_rng(3)
    xv, wv, bv = (nasty(rng, s).astype(np.float32) for s in ((2, 3, 8, 8), (4, 3, 3, 3), (4,)))
    x = cucnn.tensor(xv, device="sim", requires_grad=requires == "all")
    w = cucnn.tensor(wv, device="sim", requires_grad=requires != "bias_only")
    b = cucnn.tensor(bv, device="sim", requires_grad=True)
    F.conv2d(x, w, b, padding=1).sum().backward()
    want = [("conv2d_backward_bias", False)] if requires == "bias_only" else \
        [("conv2d_backward_weight", True)]
    assert calls == want
    x64, w64, b64 = t64(xv), t64(wv), t64(bv)
    F.conv2d(x64, w64, b64, padding=1).sum().backward()
    assert_close(b.grad.numpy(), b64.grad.numpy(), reduce_len=2 * 64, name="db")
    if requires != "bias_only":
        assert_close(w.grad.numpy(), w64.grad.numpy(), reduce_len=2 * 64, name="dw")
