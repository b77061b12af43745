"""The memory profiler on the TF32 tensor-core path.

1. cp.async is visible: planted copy kernels (tests/simt/tc_profile_kernels.cpp, built with
   `simcc --profile`) whose global sectors per request, shared wavefronts per request and unique
   bytes are known by construction; both ends of every copy (the global read at issue, the shared
   write at the wait) are attributed to the kernel's cp.async line, and the emulation's own
   bookkeeping (copy queue, mma staging) is not memory traffic.
2. The TF32 conv kernels are bank-conflict free in their main loop (the cp.async stores and the
   fragment loads) on a ResNet-50-style 3x3 layer and on LeNet-5's conv2."""
from __future__ import annotations

import ctypes
import json
import os

import numpy as np
import pytest

from conftest import ORDERS, ROOT

from cucnn.tools import simcc

PLANTS = ROOT / "tests" / "simt" / "tc_profile_kernels.cpp"
RUNTIME = ROOT / "csrc" / "simt"


def _line(name: str) -> int:
    for i, text in enumerate(PLANTS.read_text().splitlines(), 1):
        if f"// PLANT: {name}" in text:
            return i
    raise AssertionError(f"no '// PLANT: {name}' in {PLANTS}")


@pytest.fixture(scope="module")
def plants(tmp_path_factory):
    out = tmp_path_factory.mktemp("tc_profile") / "libtcplants.so"
    lib = ctypes.CDLL(str(simcc.build([PLANTS], out, "profile", shared=True, runtime_dir=RUNTIME)))
    lib.simt_profile_json.restype = ctypes.c_char_p
    assert lib.simt_profile_available() == 1
    return lib


def _aligned(values):
    """A copy at a 256-byte boundary, as cudaMalloc gives."""
    raw = np.empty(values.size + 64, np.float32)
    skip = (-raw.ctypes.data % 256) // 4
    a = raw[skip:skip + values.size]
    a[...] = values
    return a


def _run(lib, fn, order, out, x, *args):
    assert lib.p_set_order(order.encode()) == 0
    lib.simt_profile_start()
    rc = getattr(lib, fn)(out.ctypes.data_as(ctypes.c_void_p), x.ctypes.data_as(ctypes.c_void_p),
                          *args)
    lib.simt_profile_stop()
    assert lib.p_set_order(b"forward") == 0
    assert rc == 0
    kernels = json.loads(lib.simt_profile_json())["kernels"]
    assert len(kernels) == 1, kernels
    rec = kernels[0]
    # Nothing is attributed to the emulation's header: its bookkeeping is not memory traffic.
    assert all(os.path.basename(a["file"]) == PLANTS.name for a in rec["accesses"]), rec
    return rec


def _access(rec, line, space, op):
    hits = [a for a in rec["accesses"] if a["line"] == line and a["space"] == space
            and a["op"] == op]
    assert len(hits) == 1, (line, space, op, rec["accesses"])
    return hits[0]


@pytest.mark.parametrize("order", ORDERS)
def test_cp_async_16_read_and_write_are_the_kernels_line(plants, order):
    n, threads = 4096, 64
    x = _aligned(np.arange(n, dtype=np.float32) + 1)
    out = _aligned(np.full(n, np.nan, np.float32))
    rec = _run(plants, "p_cp16", order, out, x, n, threads)
    np.testing.assert_array_equal(out, x)
    line = _line("cp16")
    warps = n // 4 // 32
    g = _access(rec, line, "global", "load")  # 32 lanes x 16 B = 512 B: 16 sectors, all needed
    assert (g["requests"], g["sectors"], g["ideal"], g["bytes"]) == (warps, 16 * warps,
                                                                      16 * warps, 4 * n)
    s = _access(rec, line, "shared", "store")  # 128-bit: 4 phases of 8 lanes, 1 wavefront each
    assert (s["requests"], s["wavefronts"], s["ideal"], s["bytes"]) == (warps, 4 * warps,
                                                                        4 * warps, 4 * n)
    # unique global bytes: the input read once, the output written once
    assert rec["unique_bytes"] == 2 * 4 * n


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("pitch,stride,sectors,wavefronts", [(1, 1, 4, 1), (2, 32, 32, 2)])
def test_cp_async_4_sectors_and_bank_conflicts(plants, order, pitch, stride, sectors, wavefronts):
    """Two copies per thread on one line: two requests per warp. Pitch 2 in shared memory puts
    two lanes in every bank (2 wavefronts); stride 32 in global memory gives every lane its own
    sector."""
    n, threads = 4096, 64
    x = _aligned(np.arange(n * stride, dtype=np.float32) + 1)
    out = _aligned(np.full(n, np.nan, np.float32))
    rec = _run(plants, "p_cp4", order, out, x, n, threads, pitch, stride, 0)
    np.testing.assert_array_equal(out, x[::stride][:n])
    line = _line("cp4")
    requests = n // 32
    g = _access(rec, line, "global", "load")
    assert (g["requests"], g["sectors"], g["ideal"]) == (requests, sectors * requests, 4 * requests)
    s = _access(rec, line, "shared", "store")
    assert (s["requests"], s["wavefronts"], s["ideal"]) == (requests, wavefronts * requests,
                                                            requests)
    assert rec["unique_bytes"] == 4 * n + 4 * n  # n floats read (at any stride), n written


@pytest.mark.parametrize("order", ORDERS)
def test_cp_async_zero_fill_reads_nothing(plants, order):
    """src-size 0 for every other lane: those lanes write a zero to shared memory (counted) and
    read nothing (half the bytes, half the unique bytes of the input)."""
    n, threads = 4096, 64
    x = _aligned(np.arange(n, dtype=np.float32) + 1)
    out = _aligned(np.full(n, np.nan, np.float32))
    rec = _run(plants, "p_cp4", order, out, x, n, threads, 1, 1, 2)
    np.testing.assert_array_equal(out, np.where(np.arange(n) % 2, x, 0.0))
    line = _line("cp4")
    g = _access(rec, line, "global", "load")
    assert (g["requests"], g["bytes"]) == (n // 32, 4 * n // 2)
    s = _access(rec, line, "shared", "store")
    assert (s["requests"], s["wavefronts"], s["bytes"]) == (n // 32, n // 32, 4 * n)
    assert rec["unique_bytes"] == 4 * n // 2 + 4 * n
