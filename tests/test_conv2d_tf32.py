"""The TF32 tensor-core convolutions (csrc/kernels/conv2d_tc.cuh) and the ``cucnn.backends``
switch: every registered conv case on sim in every SIMT order, against a TF32 reference (inputs
rounded as cvt.rna.tf32 rounds, sums in float64) with the fp32 tolerance for the summation, and
against the float64 oracle with the TF32 tolerance; bitwise stable across orders and runs; a case
where TF32 visibly changes the answer; LeNet-5 training with TF32 tracking fp32.

Conv tests elsewhere run with TF32 off (tests/conftest.py); the fp32 path is theirs."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
from cucnn import _backend, backends, data, models, optim, train
from cucnn.ops import conv2d as conv_ops
from cucnn.testing import assert_bitwise_equal, assert_close, round_tf32, tf32_tolerance
from conftest import ORDERS, requires_cuda

SPEC = conv_ops.SPEC
CASES = SPEC.cases
TF32 = 2  # the spec's compute: version 1 with allow_tf32 on

requires_sim = pytest.mark.skipif(not cucnn.sim.is_available(), reason="cucnn._sim did not build")


def _tf32_reference(inputs: dict) -> dict:
    """The float64 oracle on TF32-rounded operands: what an exact tensor core computes. The bias
    is added in fp32 (not rounded), and the bias gradient is an fp32 reduction of dy (no mma)."""
    r = {k: (round_tf32(v).astype(np.float64) if k in ("x", "w", "dy") else
             (v.astype(np.float64) if isinstance(v, np.ndarray) else v)) for k, v in inputs.items()}
    out = SPEC.compute("cpu", r, 1)
    out["db"] = SPEC.compute("cpu", {**r, "dy": inputs["dy"].astype(np.float64)}, 1)["db"]
    return out


def _compare(case, got, inputs):
    exact64 = SPEC.compute("cpu", {k: v.astype(np.float64) if isinstance(v, np.ndarray) else v
                                   for k, v in inputs.items()}, 1)
    ref = _tf32_reference(inputs)
    for k in exact64:
        name = f"conv2d-tf32:{case.id}:{k}"
        # Against the TF32 reference only the fp32 summation differs: the fp32 tolerance.
        assert_close(got[k], ref[k], reduce_len=case.reduce_len, name=name + " vs TF32 reference")
        # Against the exact answer: the documented TF32 tolerance.
        if k != "db":
            assert_close(got[k], exact64[k], rtol=tf32_tolerance(case.reduce_len),
                         name=name + " vs float64 oracle")


@requires_sim
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sim_tf32_against_references_in_every_order(case):
    inputs = SPEC.inputs_for(case, "sim")
    runs = {}
    for order in ORDERS:
        with cucnn.sim.order(order):
            runs[order] = SPEC.compute("sim", inputs, TF32)
        _compare(case, runs[order], inputs)
    again = SPEC.compute("sim", inputs, TF32)
    for order, got in runs.items():
        for k in got:
            assert_bitwise_equal(got[k], again[k], name=f"{case.id}:{k} {order} vs rerun")


@requires_cuda
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cuda_tf32_against_references(case):
    """On a GPU of sm_80+: the same references. (Not run here: no GPU.)"""
    if not _backend.native("cuda").conv2d_tc_available():
        pytest.skip("the GPU is older than sm_80: no TF32 mma")
    inputs = SPEC.inputs_for(case, "cpu")
    got = SPEC.compute("cuda", SPEC.inputs_for(case, "cuda"), TF32)
    _compare(case, {k: _backend.to_numpy(v) for k, v in got.items()}, inputs)


@pytest.mark.parametrize("device", ["sim", "cpu"])
def test_tf32_visibly_changes_the_answer(device):
    """x = 1 + 2**-12 rounds to 1.0 in TF32 (its last 13 bits are below the tie): a 1x1 conv with
    weight 1 gives exactly 1.0 with TF32 on, 1 + 2**-12 with it off, and the cpu device is fp32
    whatever the switch says. All three passes."""
    if device == "sim" and not cucnn.sim.is_available():
        pytest.skip("cucnn._sim did not build")
    v = np.float32(1 + 2.0 ** -12)
    x = cucnn.tensor(np.full((1, 1, 3, 5), v, np.float32), device=device, requires_grad=True)
    w = cucnn.tensor(np.ones((2, 1, 1, 1), np.float32), device=device, requires_grad=True)
    for allow, expect in ((True, 1.0 if device == "sim" else v), (False, v)):
        with backends.flags(allow_tf32=allow):
            y = cucnn.functional.conv2d(x, w)
            np.testing.assert_array_equal(y.numpy(), np.full((1, 2, 3, 5), expect, np.float32))
            # dgrad: dy = 1 + 2**-12 against w = 1; wgrad: dy against x: both round
            x.grad = w.grad = None
            (y * cucnn.tensor(np.full((1, 2, 3, 5), v, np.float32), device=device)).sum().backward()
            np.testing.assert_array_equal(x.grad.numpy(),
                                          np.full((1, 1, 3, 5), 2 * expect, np.float32))
            wexp = np.float32(15 * (np.float64(expect) * expect))
            np.testing.assert_allclose(w.grad.numpy(), np.full((2, 1, 1, 1), wexp), rtol=1e-6)
    with backends.flags(allow_tf32=True):
        yy = cucnn.functional.conv2d(x, w).numpy()
    if device == "sim":  # exactly: the 13 low bits are gone
        assert yy[0, 0, 0, 0] == 1.0 and v != 1.0


def test_backends_flags():
    assert backends.allow_tf32 is False  # the suite's default (conftest); cucnn's own is True
    with backends.flags(allow_tf32=True):
        assert backends.allow_tf32 is True
        with backends.flags():
            assert backends.allow_tf32 is True
        with backends.flags(allow_tf32=False):
            assert backends.allow_tf32 is False
        assert backends.allow_tf32 is True
    assert backends.allow_tf32 is False
    with pytest.raises(TypeError, match="allow_tf32 must be a bool or None, got int"):
        with backends.flags(allow_tf32=1):
            pass


def test_allow_tf32_defaults_to_true():
    import importlib
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import cucnn; print(cucnn.backends.allow_tf32)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert importlib.import_module("cucnn.backends") is backends


@requires_sim
def test_lenet_training_with_tf32_tracks_fp32():
    """A few SGD steps of LeNet-5 on sim with TF32 on and off from the same start: the weights
    agree within the TF32 tolerance (relative, to the size of each tensor's entries)."""
    out, losses = {}, {}
    for allow in (False, True):
        cucnn.manual_seed(1)
        model = models.LeNet5(device="sim")
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        ds = data.ArrayDataset(np.random.default_rng(0).integers(0, 256, (12, 28, 28), np.uint8),
                               np.arange(12) % 10)
        with backends.flags(allow_tf32=allow):
            rec = train.train_epoch(model, opt, ds, "sim", 4, seed=0,
                                    stream=open("/dev/null", "w"))
        out[allow], losses[allow] = model.state_dict(), rec
    differ = 0
    for k in out[False]:
        a, b = out[True][k], out[False][k]
        scale = float(np.abs(b).max()) or 1.0
        np.testing.assert_allclose(a, b, rtol=0, atol=tf32_tolerance(28 * 28) * scale, err_msg=k)
        differ += not np.array_equal(a, b)
    assert differ, "TF32 and fp32 training gave identical weights: was TF32 used at all?"


@requires_sim
def test_tc_entry_points_validate_before_launch():
    mod = _backend.native("sim")
    x = np.zeros((1, 2, 5, 5), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    y = np.zeros((1, 3, 3, 3), np.float32)
    g = ((1, 1), (0, 0, 0, 0), (1, 1))
    with pytest.raises(ValueError, match="expected input with 2 channels"):
        mod.conv2d_tc_forward(x[:, :1].copy(), w, None, y, *g)
    with pytest.raises(ValueError, match=r"y must have shape \(1, 3, 3, 3\)"):
        mod.conv2d_tc_forward(x, w, None, np.zeros((1, 3, 4, 3), np.float32), *g)
    with pytest.raises(TypeError, match="float32"):
        mod.conv2d_tc_backward_data(y.astype(np.float64), w, x, *g)
    need = mod.conv2d_tc_wgrad_workspace(x.shape, w.shape, *g)
    with pytest.raises(ValueError, match=f"workspace must hold at least {need} floats"):
        mod.conv2d_tc_backward_weight(y, x, np.zeros_like(w), np.zeros(need - 1, np.float32), *g)
    # forward / dgrad split-K workspaces (forced 3 splits of a 72-long reduction: 3 slices of 32)
    x = np.zeros((1, 8, 5, 5), np.float32)
    w = np.zeros((8, 8, 3, 3), np.float32)
    y = np.zeros((1, 8, 3, 3), np.float32)
    try:
        mod.conv2d_tc_force_plan(0, 3)
        nf = mod.conv2d_tc_forward_workspace(x.shape, w.shape, *g)
        nd = mod.conv2d_tc_dgrad_workspace(x.shape, w.shape, *g)
        assert (nf, nd) == (3 * y.size, 3 * x.size)
        with pytest.raises(ValueError, match=f"workspace must hold at least {nf} floats "
                                             rf"\(conv2d_tc_forward_workspace\), got {nf - 1}"):
            mod.conv2d_tc_forward(x, w, None, y, *g, workspace=np.zeros(nf - 1, np.float32))
        with pytest.raises(ValueError, match=f"workspace must hold at least {nd} floats "
                                             rf"\(conv2d_tc_dgrad_workspace\), got {nd - 1}"):
            mod.conv2d_tc_backward_data(y, w, x, *g, workspace=np.zeros(nd - 1, np.float32))
        with pytest.raises(TypeError, match="workspace.*float32"):
            mod.conv2d_tc_forward(x, w, None, y, *g, workspace=np.zeros(nf, np.float64))
        with pytest.raises(TypeError, match="workspace.*float32"):
            mod.conv2d_tc_backward_data(y, w, x, *g, workspace=np.zeros(nd, np.float64))
    finally:
        mod.conv2d_tc_force_plan(-1)


@requires_sim
def test_the_one_rule_for_tensor_core_shapes():
    """conv2d_tc_supported: any channel/filter counts and sizes, operands up to 2^29 elements."""
    mod = _backend.native("sim")
    g = ((1, 1), (0, 0, 0, 0), (1, 1))
    assert mod.conv2d_tc_supported((3, 1, 28, 28), (6, 1, 5, 5), *g)  # LeNet conv1: C = 1
    assert mod.conv2d_tc_supported((1, 48, 19, 19), (48, 48, 3, 3), *g)  # the Go net's 48
    assert mod.conv2d_tc_supported((2 ** 9, 1, 2 ** 10, 2 ** 10), (1, 1, 1, 1), *g)  # 2^29
    assert not mod.conv2d_tc_supported((2 ** 9 + 1, 1, 2 ** 10, 2 ** 10), (1, 1, 1, 1), *g)
    assert not mod.conv2d_tc_supported((1, 2 ** 10, 8, 8), (2 ** 20, 2 ** 10, 1, 1), *g)
    # the eligibility hook routes on the switch, the version and the rule
    shapes = ((3, 1, 28, 28), (6, 1, 5, 5), *g)
    with backends.flags(allow_tf32=True):
        assert conv_ops._tf32_eligible(mod, 1, *shapes)
        assert not conv_ops._tf32_eligible(mod, 0, *shapes)
        assert not conv_ops._tf32_eligible(mod, 1, (2 ** 9 + 1, 1, 2 ** 10, 2 ** 10),
                                           (1, 1, 1, 1), *g)
    with backends.flags(allow_tf32=False):
        assert not conv_ops._tf32_eligible(mod, 1, *shapes)


# ---- every TF32 tile (forced through conv2d_tc_force_plan) against a TF32 reference ------------

def _conv_ref64(x, w, dy, stride, pad, dil):
    """float64 forward, dgrad and wgrad by shifted slices (no im2col library, no torch)."""
    (sh, sw), (ph, pw), (dh, dw_) = stride, pad, dil
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P, Q = dy.shape[2:]
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    y = np.zeros((N, K, P, Q))
    dxp = np.zeros_like(xp)
    dwt = np.zeros((K, C, R, S))
    for r in range(R):
        for s in range(S):
            win = xp[:, :, r * dh:r * dh + (P - 1) * sh + 1:sh, s * dw_:s * dw_ + (Q - 1) * sw + 1:sw]
            y += np.einsum("ncpq,kc->nkpq", win, w[:, :, r, s])
            dxp[:, :, r * dh:r * dh + (P - 1) * sh + 1:sh, s * dw_:s * dw_ + (Q - 1) * sw + 1:sw] += \
                np.einsum("nkpq,kc->ncpq", dy, w[:, :, r, s])
            dwt[:, :, r, s] = np.einsum("nkpq,ncpq->kc", dy, win)
    return y, dxp[:, :, ph:ph + H, pw:pw + W], dwt


# (N, C, H, W, K, R, S, stride, pad, dilation): odd sizes, C = 1, strided dgrad, dilation; the
# 16-byte paths: C*R*S % 4 == 0 (forward's w: the last two) and P*Q % 4 == 0 (wgrad's dy: the
# third and the last), the others take the 4-byte gathers
TILE_SHAPES = [(2, 3, 9, 9, 5, 3, 3, 1, 1, 1), (1, 6, 11, 7, 16, 5, 5, 2, 2, 1),
               (3, 1, 8, 10, 7, 3, 2, 1, 0, 2), (1, 40, 5, 6, 37, 1, 1, 1, 0, 1),
               (2, 4, 8, 8, 9, 3, 3, 1, 1, 1)]


@requires_sim
@pytest.mark.parametrize("tile", [0, 1, 2, 3], ids=["128x128", "64x64", "128x32", "128x16"])
@pytest.mark.parametrize("shape", TILE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_tile_against_the_tf32_reference_in_every_order(tile, shape):
    mod = _backend.native("sim")
    N, C, H, W, K, R, S, st, pd, dl = shape
    rng = np.random.default_rng(hash(shape) % 2 ** 32)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, R, S)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    P = (H + 2 * pd - dl * (R - 1) - 1) // st + 1
    Q = (W + 2 * pd - dl * (S - 1) - 1) // st + 1
    dy = rng.standard_normal((N, K, P, Q)).astype(np.float32)
    g = ((st, st), (pd, pd, pd, pd), (dl, dl))
    y64, dx64, dw64 = _conv_ref64(round_tf32(x).astype(np.float64), round_tf32(w).astype(np.float64),
                                  round_tf32(dy).astype(np.float64), (st, st), (pd, pd), (dl, dl))
    y64 = y64 + b[None, :, None, None]
    # split-K in every pass: partials per split in a NaN-filled workspace, reduced in split order
    # (forward: then bias and, with relu, ReLU). Splits change the summation order, so a split
    # result is held to the TF32 reference, and bitwise to itself across orders and runs.
    unsplit = None
    try:
        for splits in (1, 3):
            mod.conv2d_tc_force_plan(tile, splits)
            bm, bn, _, z = mod.conv2d_tc_plan("wgrad", x.shape, w.shape, *g)
            assert (bm, bn) == [(128, 128), (64, 64), (128, 32), (128, 16)][tile]
            zf = mod.conv2d_tc_plan("forward", x.shape, w.shape, *g)[3]
            zd = mod.conv2d_tc_plan("dgrad", x.shape, w.shape, *g)[3]
            # forced splits, clamped so that no split is empty (ceil(slices / per-split))
            for zz, kdim in ((zf, C * R * S), (zd, K * R * S), (z, N * P * Q)):
                sl = -(-kdim // 32)
                assert zz == -(-sl // -(-sl // min(splits, sl)))
            relu = splits == 3
            ref_y = np.maximum(y64, 0) if relu else y64
            first = None
            for order in ORDERS:
                for _run in range(2 if order == ORDERS[0] else 1):
                    cucnn.sim.set_order(order)
                    y = np.full((N, K, P, Q), np.nan, np.float32)
                    dx = np.full((N, C, H, W), np.nan, np.float32)
                    dw = np.full((K, C, R, S), np.nan, np.float32)
                    ws = np.full(mod.conv2d_tc_wgrad_workspace(x.shape, w.shape, *g), np.nan,
                                 np.float32)
                    wf = np.full(mod.conv2d_tc_forward_workspace(x.shape, w.shape, *g), np.nan,
                                 np.float32)
                    wd = np.full(mod.conv2d_tc_dgrad_workspace(x.shape, w.shape, *g), np.nan,
                                 np.float32)
                    assert ws.size == z * dw.size
                    assert wf.size == (zf * y.size if zf > 1 else 0)
                    assert wd.size == (zd * dx.size if zd > 1 else 0)
                    mod.conv2d_tc_forward(x, w, b, y, *g, relu=relu, workspace=wf)
                    mod.conv2d_tc_backward_data(dy, w, dx, *g, workspace=wd)
                    mod.conv2d_tc_backward_weight(dy, x, dw, ws, *g)
                    assert_close(y, ref_y, reduce_len=C * R * S, name="y")
                    assert_close(dx, dx64, reduce_len=K * R * S, name="dx")
                    assert_close(dw, dw64, reduce_len=N * P * Q, name="dw")
                    if first is None:
                        first = (y, dx, dw)
                    for a, e, n in zip((y, dx, dw), first, "y dx dw".split()):
                        assert_bitwise_equal(a, e, name=n)
            if splits == 1:
                unsplit = first
            else:  # no workspace: forward and dgrad do not split, whatever is forced
                y = np.full((N, K, P, Q), np.nan, np.float32)
                dx = np.full((N, C, H, W), np.nan, np.float32)
                mod.conv2d_tc_forward(x, w, b, y, *g)
                mod.conv2d_tc_backward_data(dy, w, dx, *g)
                assert_bitwise_equal(y, unsplit[0], name="y without workspace")
                assert_bitwise_equal(dx, unsplit[1], name="dx without workspace")
    finally:
        mod.conv2d_tc_force_plan(-1)
        cucnn.sim.set_order("forward")


@requires_sim
def test_tc_plan_is_the_one_chooser_over_the_tf32_tiles():
    mod = _backend.native("sim")
    g = ((1, 1), (1, 1, 1, 1), (1, 1))
    # ResNet-50 3x3 at batch 256 (GEMM 50176 x 256 x 2304): 128x128, 392 x 2 blocks, no split
    assert mod.conv2d_tc_plan("forward", (256, 256, 14, 14), (256, 256, 3, 3), *g) == \
        (128, 128, 784, 1)
    # at batch 32 (GEMM 6272 x 256 x 2304) 98 blocks of 128x128 are under a wave (264): forward
    # and dgrad split K 5 ways on 128x128 (not the thin 128x16 tile), with the workspace
    for p in ("forward", "dgrad"):
        assert mod.conv2d_tc_plan(p, (32, 256, 14, 14), (256, 256, 3, 3), *g) == \
            (128, 128, 490, 5)
    assert mod.conv2d_tc_forward_workspace((32, 256, 14, 14), (256, 256, 3, 3), *g) == \
        5 * 32 * 256 * 14 * 14
    assert mod.conv2d_tc_dgrad_workspace((32, 256, 14, 14), (256, 256, 3, 3), *g) == \
        5 * 32 * 256 * 14 * 14
    # LeNet conv2 forward at batch 64 (GEMM 6400 x 16 x 150, 5 slices: too short to split):
    # 64x64 (100 blocks) beats 128x16 (50), no workspace
    g0 = ((1, 1), (0, 0, 0, 0), (1, 1))
    assert mod.conv2d_tc_plan("forward", (64, 6, 14, 14), (16, 6, 5, 5), *g0) == (64, 64, 100, 1)
    assert mod.conv2d_tc_forward_workspace((64, 6, 14, 14), (16, 6, 5, 5), *g0) == 0
    # LeNet conv1 dgrad (GEMM N = 1 channel): the 16-wide tile
    assert mod.conv2d_tc_plan("dgrad", (64, 1, 32, 32), (6, 1, 5, 5), *g0)[:2] == (128, 16)
    # a long, small wgrad splits K (fixed by the shape: reproducible), at least 4 slices a split
    bm, bn, blocks, z = mod.conv2d_tc_plan("wgrad", (256, 64, 56, 56), (64, 64, 3, 3), *g)
    assert z > 1 and blocks == -(-64 // bm) * -(-576 // bn) * z
    assert 256 * 56 * 56 / z >= 4 * 32
    assert mod.conv2d_tc_wgrad_workspace((256, 64, 56, 56), (64, 64, 3, 3), *g) == z * 64 * 576
    with pytest.raises(ValueError, match="pass must be 'forward', 'dgrad' or 'wgrad', got 'x'"):
        mod.conv2d_tc_plan("x", (1, 1, 3, 3), (1, 1, 1, 1), *g0)
    with pytest.raises(ValueError, match="tile must be -1 or below 4, got 4"):
        mod.conv2d_tc_force_plan(4)


@requires_sim
@pytest.mark.parametrize("tile", [0, 1, 2, 3], ids=["128x128", "64x64", "128x32", "128x16"])
def test_16_byte_paths_equal_the_4_byte_fallback_bitwise(tile):
    """forward (C*R*S % 4 == 0) and wgrad (P*Q % 4 == 0) copy w and dy with 16-byte cp.async when
    they are 16-byte aligned; a misaligned copy of the same tensors takes the 4-byte gathers. The
    shared-memory layouts differ, the mma sums do not: the results are bitwise equal (and match
    the TF32 reference), in every order, with a split wgrad too."""
    mod = _backend.native("sim")
    N, C, H, W, K, R, S = 3, 4, 9, 8, 21, 3, 3  # C*R*S = 36, P*Q = 9*8 = 72
    rng = np.random.default_rng(16)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, R, S)).astype(np.float32)
    dy = rng.standard_normal((N, K, H, W)).astype(np.float32)
    g = ((1, 1), (1, 1, 1, 1), (1, 1))

    def misaligned(a):  # same values, 4 bytes past a 16-byte boundary
        raw = np.empty(a.size + 8, np.float32)
        skip = (-raw.ctypes.data % 16) // 4 + 1
        v = raw[skip:skip + a.size].reshape(a.shape)
        v[...] = a
        assert v.ctypes.data % 16 == 4
        return v

    y64, _, dw64 = _conv_ref64(round_tf32(x).astype(np.float64), round_tf32(w).astype(np.float64),
                               round_tf32(dy).astype(np.float64), (1, 1), (1, 1), (1, 1))
    assert w.ctypes.data % 16 == 0 and dy.ctypes.data % 16 == 0
    try:
        for splits in (1, 2):
            mod.conv2d_tc_force_plan(tile, splits)
            for order in ORDERS:
                cucnn.sim.set_order(order)
                out = {}
                for name, ww, dd in (("vec16", w, dy), ("scalar", misaligned(w), misaligned(dy))):
                    y = np.full((N, K, H, W), np.nan, np.float32)
                    dw = np.full((K, C, R, S), np.nan, np.float32)
                    ws = np.full(mod.conv2d_tc_wgrad_workspace(x.shape, w.shape, *g), np.nan,
                                 np.float32)
                    mod.conv2d_tc_forward(x, ww, None, y, *g)
                    mod.conv2d_tc_backward_weight(dd, x, dw, ws, *g)
                    out[name] = (y, dw)
                assert_bitwise_equal(out["vec16"][0], out["scalar"][0], name="y")
                assert_bitwise_equal(out["vec16"][1], out["scalar"][1], name="dw")
                assert_close(out["vec16"][0], y64, reduce_len=C * R * S, name="y")
                assert_close(out["vec16"][1], dw64, reduce_len=N * H * W, name="dw")
    finally:
        mod.conv2d_tc_force_plan(-1)
        cucnn.sim.set_order("forward")


@requires_sim
def test_the_op_route_passes_the_split_k_workspace():
    """ops/conv2d.py's TF32 route allocates conv2d_tc_forward_workspace /
    conv2d_tc_dgrad_workspace (NaN-filled on sim) and the chooser splits this layer (GEMM 98 x 64 x
    576: two 64x64 blocks, K split 5 ways): bias + ReLU after the reduction, within TF32 tolerance
    of the reference, bitwise equal to the binding called with its own workspace, in every order."""
    mod = _backend.native("sim")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 64, 7, 7)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    dy = rng.standard_normal((2, 64, 7, 7)).astype(np.float32)
    g = ((1, 1), (1, 1, 1, 1), (1, 1))
    assert mod.conv2d_tc_plan("forward", x.shape, w.shape, *g) == (64, 64, 10, 5)
    assert mod.conv2d_tc_plan("dgrad", x.shape, w.shape, *g) == (64, 64, 10, 5)
    y64, dx64, _ = _conv_ref64(round_tf32(x).astype(np.float64), round_tf32(w).astype(np.float64),
                               round_tf32(dy).astype(np.float64), (1, 1), (1, 1), (1, 1))
    y64 = np.maximum(y64 + b[None, :, None, None], 0)
    try:
        for order in ORDERS:
            cucnn.sim.set_order(order)
            with backends.flags(allow_tf32=True):
                y = conv_ops.forward("sim", x, w, b, *g, relu=True)
                dx = conv_ops.backward_data("sim", dy, w, x.shape, *g)
            assert_close(y, y64, reduce_len=576, name="y")
            assert_close(dx, dx64, reduce_len=576, name="dx")
            yb = np.full_like(y, np.nan)
            dxb = np.full_like(dx, np.nan)
            mod.conv2d_tc_forward(x, w, b, yb, *g, relu=True, workspace=np.full(
                mod.conv2d_tc_forward_workspace(x.shape, w.shape, *g), np.nan, np.float32))
            mod.conv2d_tc_backward_data(dy, w, dxb, *g, workspace=np.full(
                mod.conv2d_tc_dgrad_workspace(x.shape, w.shape, *g), np.nan, np.float32))
            assert_bitwise_equal(y, yb, name="y")
            assert_bitwise_equal(dx, dxb, name="dx")
    finally:
        cucnn.sim.set_order("forward")
