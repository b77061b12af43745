"""The SIMT runtime itself: barriers, shuffles and votes against sequential references, atomics,
indices, the NaN refill of shared memory, and planted bugs reported instead of hanging."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ORDERS


def _shuffle_reference(x, op, arg, width, mask):
    """What CUDA returns for each lane, computed sequentially."""
    out = np.empty_like(x)
    for i in range(x.size):
        lane, warp_base = i % 32, i - i % 32
        if not (mask >> lane) & 1:
            out[i] = -1.0
            continue
        seg = lane & ~(width - 1)
        if op == 0:
            src = seg + (arg & (width - 1))
        elif op == 1:
            src = lane - arg if lane - arg >= seg else lane
        elif op == 2:
            src = lane + arg if lane + arg < seg + width else lane
        else:
            src = lane ^ arg
            src = src if seg <= src < seg + width else lane
        out[i] = x[warp_base + src]
    return out


@pytest.mark.parametrize("order", ORDERS)
def test_barrier_orders_shared_memory(simt_lib, order):
    simt_lib.ok("t_set_order", order)
    for blocks, threads, shift in [(3, 128, 5), (2, 96, 95), (1, 1, 0), (4, 1024, 513)]:
        out = np.full(blocks * threads, np.nan, np.float32)
        simt_lib.ok("t_rotate", out, blocks, threads, shift, 1)
        b, t = np.divmod(np.arange(blocks * threads), threads)
        np.testing.assert_array_equal(out, b * 1000 + (t + shift) % threads)
    simt_lib.ok("t_set_order", "forward")


def test_missing_barrier_is_wrong_in_some_order(simt_lib):
    """The planted race: without __syncthreads, at least one order reads unwritten (NaN) slots."""
    wrong = 0
    for order in ORDERS:
        simt_lib.ok("t_set_order", order)
        out = np.full(256, np.nan, np.float32)
        simt_lib.ok("t_rotate", out, 1, 256, 7, 0)
        expected = (np.arange(256) + 7) % 256
        wrong += not np.array_equal(out, expected)
    simt_lib.ok("t_set_order", "forward")
    assert wrong >= 1


@pytest.mark.parametrize("order", ORDERS)
def test_tree_reduction_with_many_barriers(simt_lib, order):
    simt_lib.ok("t_set_order", order)
    rng = np.random.default_rng(1)
    x = rng.integers(-1000, 1000, 5 * 512).astype(np.float32)  # exact in float32
    out = np.full(5, np.nan, np.float32)
    simt_lib.ok("t_block_sum", x, out, 5, 512)
    np.testing.assert_array_equal(out, x.reshape(5, 512).sum(1))
    simt_lib.ok("t_set_order", "forward")


@pytest.mark.parametrize("op", [0, 1, 2, 3])
@pytest.mark.parametrize("width", [32, 16, 8, 4, 2, 1])
def test_shuffles_match_sequential_reference(simt_lib, op, width):
    rng = np.random.default_rng(op * 10 + width)
    x = rng.standard_normal(128).astype(np.float32)
    for arg in [0, 1, 3, width - 1, 7, 31, -1 if op == 0 else 2]:
        for mask in [0xFFFFFFFF]:
            out = np.full(128, np.nan, np.float32)
            simt_lib.ok("t_shuffle", x, out, 128, op, arg, width, mask)
            np.testing.assert_array_equal(out, _shuffle_reference(x, op, arg, width, mask),
                                          err_msg=f"op {op} arg {arg} width {width}")


def test_shuffle_partial_mask(simt_lib):
    """Lanes outside the mask do not participate; lanes inside exchange among themselves."""
    x = np.arange(64, dtype=np.float32)
    out = np.full(64, np.nan, np.float32)
    mask = 0x0000FFFF
    simt_lib.ok("t_shuffle", x, out, 64, 3, 1, 32, mask)
    np.testing.assert_array_equal(out, _shuffle_reference(x, 3, 1, 32, mask))


def test_shuffle_of_64_bit_values(simt_lib):
    x = np.arange(32, dtype=np.float64) * np.pi
    out = np.zeros(32)
    simt_lib.ok("t_shuffle_double", x, out)
    np.testing.assert_array_equal(out, x[np.arange(32) ^ 1])


@pytest.mark.parametrize("mask", [0xFFFFFFFF, 0x0F0F0F0F, 0x00000001])
def test_votes(simt_lib, mask):
    rng = np.random.default_rng(mask & 0xFF)
    for density in [0.0, 0.5, 1.0]:
        pred = (rng.random(128) < density).astype(np.int32)
        out = np.zeros(3 * 128, np.uint32)
        simt_lib.ok("t_vote", pred, out, 128, mask)
        for i in range(128):
            lane, base = i % 32, i - i % 32
            if not (mask >> lane) & 1:
                continue
            ballot = sum(1 << j for j in range(32) if (mask >> j) & 1 and pred[base + j])
            assert out[3 * i] == ballot
            assert out[3 * i + 1] == int(ballot == mask)
            assert out[3 * i + 2] == int(ballot != 0)


@pytest.mark.parametrize("threads", [1, 2])
def test_atomics(simt_lib, threads):
    simt_lib.ok("t_set_threads", threads)
    blocks, per = 37, 96
    icount = np.zeros(1, np.int32)
    umax = np.zeros(1, np.uint32)
    fsum = np.zeros(1, np.float32)
    cas = np.full(1, -1, np.int32)
    exch = np.full(1, 0xFFFFFFFF, np.uint32)
    simt_lib.ok("t_atomics", blocks, per, icount, umax, fsum, cas, exch)
    simt_lib.ok("t_set_threads", 1)
    n = blocks * per
    assert icount[0] == n
    assert umax[0] == n - 1
    assert fsum[0] == 0.5 * n
    assert 0 <= cas[0] < n          # exactly one thread won the compare-and-swap
    assert exch[0] < n              # some thread's value, not the initial one


@pytest.mark.parametrize("grid,block", [((3, 2, 2), (4, 3, 2)), ((1, 1, 1), (1, 1, 1)),
                                        ((5, 1, 1), (32, 2, 1)), ((2, 3, 1), (1, 1, 64))])
def test_indices_in_3d(simt_lib, grid, block):
    g = np.array(grid, np.uint32)
    b = np.array(block, np.uint32)
    nb, nt = int(np.prod(grid)), int(np.prod(block))
    out = np.full(nb * nt, -1, np.int32)
    simt_lib.ok("t_index", out, g, b)
    bl, tl = np.divmod(np.arange(nb * nt), nt)
    np.testing.assert_array_equal(out, bl * 100000 + tl)


def test_dynamic_shared_memory_is_refilled_with_nan_per_block(simt_lib):
    out = np.zeros(3 * 64, np.float32)
    simt_lib.ok("t_read_unwritten_shared", out, 3, 64)
    assert np.isnan(out).all()


@pytest.mark.parametrize("threads", [1, 3])
def test_parallel_blocks_give_the_same_answer(simt_lib, threads):
    simt_lib.ok("t_set_threads", threads)
    x = np.arange(64 * 256, dtype=np.float32) % 97
    out = np.full(64, np.nan, np.float32)
    simt_lib.ok("t_block_sum", x, out, 64, 256)
    simt_lib.ok("t_set_threads", 1)
    np.testing.assert_array_equal(out, x.reshape(64, 256).sum(1))


@pytest.mark.parametrize("which,message", [
    ("divergent_barrier", r"divergent __syncthreads: .* at simt_test_kernels.cpp:\d+ but thread "
                          r"\(1,0,0\) waits in divergent_barrier_kernel at simt_test_kernels.cpp"),
    ("early_return", r"__syncthreads in early_return_barrier_kernel at simt_test_kernels.cpp:\d+: "
                     r"block \(0,0,0\), thread .* thread \(40,0,0\) has exited"),
    ("exited_lane", r"__shfl_xor_sync in exited_lane_shuffle_kernel .* waits for lane 5, which "
                    r"has exited"),
    ("barrier_in_warp_op", r"waits for lane 16, which waits at __syncthreads .*deadlock"),
    ("trap", r"exception in kernel, block \(1,0,0\), thread \(3,0,0\): __trap\(\) in "
             r"throwing_kernel"),
    ("bad_block", r"invalid block \(2048,1,1\)"),
])
@pytest.mark.parametrize("order", ORDERS)
def test_planted_bugs_are_reported_not_hung(simt_lib, which, message, order):
    import re
    simt_lib.ok("t_set_order", order)
    rc, err = simt_lib("t_planted", which, np.zeros(4096, np.float32))
    simt_lib.ok("t_set_order", "forward")
    assert rc == 1
    assert re.search(message, err), err


def test_bad_order_is_rejected(simt_lib):
    for bad in ["sideways", "random:", "random:x1", ""]:
        rc, err = simt_lib("t_set_order", bad)
        assert rc == 1 and "forward" in err


def test_ucontext_fallback(simt_lib_ucontext):
    """The portable switch (used off x86-64) runs the same kernels the same way."""
    lib = simt_lib_ucontext
    out = np.full(2 * 64, np.nan, np.float32)
    lib.ok("t_rotate", out, 2, 64, 3, 1)
    b, t = np.divmod(np.arange(128), 64)
    np.testing.assert_array_equal(out, b * 1000 + (t + 3) % 64)
    x = np.arange(64, dtype=np.float32)
    out = np.full(64, np.nan, np.float32)
    lib.ok("t_shuffle", x, out, 64, 2, 1, 32, 0xFFFFFFFF)
    np.testing.assert_array_equal(out, _shuffle_reference(x, 2, 1, 32, 0xFFFFFFFF))
    rc, err = lib("t_planted", "divergent_barrier", np.zeros(64, np.float32))
    assert rc == 1 and "divergent" in err


def test_unwritten_output_element_fails_the_comparison(simt_lib):
    """A kernel that skips one output element: the NaN that cucnn._backend.empty poisons sim
    outputs with survives, and the comparison with the expected values names it."""
    from cucnn import _backend
    from cucnn.testing import assert_close
    n = 77
    out = _backend.empty("sim", (n,))
    simt_lib.ok("t_unwritten_output", out, n)
    expected = 2.0 * np.arange(n, dtype=np.float32)
    assert np.isnan(out[n // 2]) and np.count_nonzero(np.isnan(out)) == 1
    with pytest.raises(AssertionError, match=rf"non-finite mismatch at index \({n // 2},\): got "
                       r"nan"):
        assert_close(out, expected, name="unwritten")


ENV_RUNNER = """
import ctypes, sys
import numpy as np
lib = ctypes.CDLL(sys.argv[1])
err = ctypes.create_string_buffer(4096)
out = np.zeros(128, np.float32)
rc = lib.t_rotate(out.ctypes.data_as(ctypes.c_void_p), 2, 64, 3, 1, err, 4096)
print("rc", rc, err.value.decode())
"""


@pytest.mark.parametrize("var,value,message", [
    ("SIMT_THREADS", "abc", "SIMT_THREADS must be an integer number of host threads in [1, 4096], "
                            "got 'abc'"),
    ("SIMT_THREADS", "0", "SIMT_THREADS must be an integer number of host threads in [1, 4096], "
                          "got '0'"),
    ("SIMT_STACK_KB", "1", "SIMT_STACK_KB must be an integer number of KiB in [64, 1048576], "
                           "got '1'"),
    ("SIMT_STACK_KB", "64k", "SIMT_STACK_KB must be an integer number of KiB in [64, 1048576], "
                             "got '64k'"),
    ("SIMT_ORDER", "sideways", "SIMT_ORDER: SIMT order must be 'forward', 'reverse' or "
                               "'random:SEED'"),
    ("CUCNN_LAUNCH_BLOCKING", "yes", "CUCNN_LAUNCH_BLOCKING must be 0 or 1, got 'yes'"),
])
def test_bad_environment_is_an_error_naming_the_variable(simt_lib, var, value, message):
    """A malformed knob is never guessed at (issue 11: SIMT_THREADS=abc once ran as 'got 0',
    SIMT_STACK_KB=1 was silently raised to 64): every launch fails naming variable, range, value."""
    import os
    import subprocess
    import sys
    env = {**os.environ, var: value}
    r = subprocess.run([sys.executable, "-c", ENV_RUNNER, str(simt_lib.lib._name)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert "rc 1" in r.stdout and message in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("var,value", [("SIMT_THREADS", "3"), ("SIMT_STACK_KB", "64"),
                                       ("CUCNN_LAUNCH_BLOCKING", "1"), ("SIMT_ORDER", "reverse")])
def test_good_environment_values_run(simt_lib, var, value):
    import os
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", ENV_RUNNER, str(simt_lib.lib._name)],
                       env={**os.environ, var: value}, capture_output=True, text=True, timeout=120)
    assert "rc 0" in r.stdout, r.stdout + r.stderr
