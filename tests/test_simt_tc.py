"""The tensor-core and cp.async emulation of csrc/simt/simt_tc.h: an mma on known integer matrices
checked lane by lane against NumPy through the PTX fragment layouts, cvt.rna.tf32 against a NumPy
rounding, and planted bugs (forgotten cvt, exited lane, partial warp, missing wait_group, missing
barrier after the wait) caught."""
from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import ORDERS, ROOT, SimtLib, build_simt_test_lib
from cucnn.testing import round_tf32


@pytest.fixture(scope="module")
def tc_lib(tmp_path_factory):
    src = ROOT / "tests" / "simt" / "simt_tc_test_kernels.cpp"
    return SimtLib(build_simt_test_lib(tmp_path_factory.mktemp("simt_tc"), [str(src)],
                                       name="libsimt_tc_test.so"))


# PTX ISA, "Matrix Fragments for mma.m16n8k8" (.tf32 A/B, .f32 C/D), written out independently of
# the C++: lane l, groupID g = l >> 2, threadID_in_group t = l % 4.
def a_coord(lane, i):  # A is 16x8 (row major)
    g, t = lane >> 2, lane % 4
    return (g + 8 * (i % 2), t + 4 * (i // 2))


def b_coord(lane, i):  # B is 8x8 (k, n)
    g, t = lane >> 2, lane % 4
    return (t + 4 * i, g)


def c_coord(lane, i):  # C and D are 16x8
    g, t = lane >> 2, lane % 4
    return (g + 8 * (i // 2), 2 * t + i % 2)


def fragments(A, B, C):
    a = np.array([[A[a_coord(l, i)] for i in range(4)] for l in range(32)], np.float32)
    b = np.array([[B[b_coord(l, i)] for i in range(2)] for l in range(32)], np.float32)
    c = np.array([[C[c_coord(l, i)] for i in range(4)] for l in range(32)], np.float32)
    return a, b, c


def test_layouts_cover_every_element_once():
    for coord, shape, regs in ((a_coord, (16, 8), 4), (b_coord, (8, 8), 2), (c_coord, (16, 8), 4)):
        seen = sorted(coord(l, i) for l in range(32) for i in range(regs))
        assert seen == sorted(np.ndindex(*shape))


@pytest.mark.parametrize("order", ORDERS)
def test_mma_on_integer_matrices_lane_by_lane(tc_lib, order):
    rng = np.random.default_rng(13)
    tc_lib.ok("t_set_order", order)
    for trial in range(3):
        A = rng.integers(-50, 51, (16, 8)).astype(np.float32)
        B = rng.integers(-50, 51, (8, 8)).astype(np.float32)
        C = rng.integers(-1000, 1001, (16, 8)).astype(np.float32)
        if trial == 0:  # distinct entries make a swapped index visible
            A = np.arange(128, dtype=np.float32).reshape(16, 8) - 60
            B = (np.arange(64, dtype=np.float32).reshape(8, 8) * 3) % 17 - 8
        D = A.astype(np.int64) @ B.astype(np.int64) + C.astype(np.int64)  # exact
        a, b, c = fragments(A, B, C)
        d = np.full((32, 4), np.nan, np.float32)
        tc_lib.ok("tc_mma", a, b, c, d, 32, 1, -1)
        for lane in range(32):
            for i in range(4):
                assert d[lane, i] == D[c_coord(lane, i)], (lane, i, d[lane, i], D[c_coord(lane, i)])
    tc_lib.ok("t_set_order", "forward")


def test_mma_rounds_products_exactly_and_sums_once(tc_lib):
    """Products of TF32 values are exact; the emulation sums them (and C) in double and rounds
    once: 2**24 + 1 + 1 - 2**24 summed one way would lose the ones in fp32."""
    A = np.zeros((16, 8), np.float32)
    B = np.zeros((8, 8), np.float32)
    A[0, :4] = [2.0 ** 12, 1.0, 1.0, -(2.0 ** 12)]
    B[:4, 0] = [2.0 ** 12, 1.0, 1.0, 2.0 ** 12]
    a, b, c = fragments(A, B, np.zeros((16, 8), np.float32))
    d = np.full((32, 4), np.nan, np.float32)
    tc_lib.ok("tc_mma", a, b, c, d, 32, 1, -1)
    assert d[0, 0] == 2.0  # lane 0 register 0 is D[0, 0]


def test_forgotten_cvt_is_an_error_naming_the_line(tc_lib):
    A = np.ones((16, 8), np.float32)
    A[3, 5] = np.float32(1 + 2.0 ** -20)  # not a TF32 value
    a, b, c = fragments(A, np.ones((8, 8), np.float32), np.zeros((16, 8), np.float32))
    d = np.zeros((32, 4), np.float32)
    rc, err = tc_lib("tc_mma", a, b, c, d, 32, 0, -1)
    assert rc == 1
    assert re.search(r"operand A \(lane \d+, register \d\) is 0x3f800008, not a TF32 value.* in "
                     r"tc_mma_kernel at .*simt_tc_test_kernels.cpp:\d+", err), err
    tc_lib.ok("tc_mma", a, b, c, d, 32, 1, -1)  # with the cvt it runs
    assert d[0, 0] == 8.0


def test_exited_lane_and_partial_warp_are_errors(tc_lib):
    a, b, c = fragments(np.ones((16, 8)), np.ones((8, 8)), np.zeros((16, 8)))
    d = np.zeros((32, 4), np.float32)
    rc, err = tc_lib("tc_mma", a, b, c, d, 32, 1, 7)
    assert rc == 1 and re.search(r"in tc_mma_kernel at .*simt_tc_test_kernels.cpp:\d+: .*waits for "
                                 r"lane 7, which has exited", err), err
    rc, err = tc_lib("tc_mma", a, b, c, d, 16, 1, -1)
    assert rc == 1 and re.search(r"waits for lane 16, which does not exist", err), err


def test_cvt_rna_tf32_matches_numpy_rounding(tc_lib):
    rng = np.random.default_rng(5)
    special = np.array([0.0, -0.0, 1.0, 1 + 2.0 ** -12, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,
                        -(1 + 2.0 ** -11), 3.4028235e38, -3.4028235e38, np.inf, -np.inf, np.nan,
                        1e-40, -1e-45, 65504.0], np.float32)
    bits = rng.integers(0, 2 ** 32, 20000, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([special, bits.view(np.float32)])
    out = np.zeros(x.size, np.uint32)
    tc_lib.ok("tc_cvt", x, out, x.size)
    np.testing.assert_array_equal(out, round_tf32(x).view(np.uint32))
    assert (out & 0x1FFF == 0).all()
    # The rounding written out by hand: ties away from zero, overflow to inf, NaN stays NaN.
    got = out[:special.size].view(np.float32)
    assert got[3] == 1.0 and got[4] == 1 + 2.0 ** -10 and got[5] == 1 + 2.0 ** -9
    assert got[6] == -(1 + 2.0 ** -10)
    assert got[7] == np.inf and got[8] == -np.inf and np.isnan(got[11])


@pytest.mark.parametrize("order", ORDERS)
def test_cp_async_pipeline(tc_lib, order):
    tc_lib.ok("t_set_order", order)
    T, tiles = 64, 7
    x = np.arange(T * tiles, dtype=np.float32)
    out = np.full(T * tiles, np.nan, np.float32)
    tc_lib.ok("tc_pipeline", x, out, T, tiles, 0)
    expected = x.reshape(tiles, T)[:, (np.arange(T) + 1) % T].ravel()
    np.testing.assert_array_equal(out, expected)
    tc_lib.ok("t_set_order", "forward")


@pytest.mark.parametrize("variant,bug", [(1, "missing cp.async.wait_group"),
                                         (2, "missing __syncthreads after the wait")])
def test_cp_async_planted_bugs_give_wrong_answers(tc_lib, variant, bug):
    """A stage read before its copies land keeps shared memory's NaN poison, in some order."""
    T, tiles = 64, 7
    x = np.arange(T * tiles, dtype=np.float32)
    expected = x.reshape(tiles, T)[:, (np.arange(T) + 1) % T].ravel()
    wrong = 0
    for order in ORDERS:
        tc_lib.ok("t_set_order", order)
        out = np.full(T * tiles, -1.0, np.float32)
        tc_lib.ok("tc_pipeline", x, out, T, tiles, variant)
        wrong += not np.array_equal(out, expected)
        if not np.array_equal(out, expected):
            assert np.isnan(out).any(), bug
    tc_lib.ok("t_set_order", "forward")
    assert wrong >= 1, f"{bug} went unnoticed"


@pytest.mark.parametrize("n", [64, 61, 58, 57, 0])
def test_cp_async_16_zero_fills_past_src_size(tc_lib, n):
    T = 16
    x = np.arange(1, 4 * T + 1, dtype=np.float32)
    out = np.full(4 * T, np.nan, np.float32)
    tc_lib.ok("tc_copy16", x, out, T, n)
    np.testing.assert_array_equal(out, np.where(np.arange(4 * T) < n, x, 0.0))
