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

from conftest import ORDERS, ROOT, aligned_f32, build_profile_plants, plant_line

PLANTS = ROOT / "tests" / "simt" / "tc_profile_kernels.cpp"


def _plant(name: str) -> int:
    return plant_line(PLANTS, name)


@pytest.fixture(scope="module")
def plants(tmp_path_factory):
    return build_profile_plants(tmp_path_factory, PLANTS)


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
def test_cp_async_16_read_and_write_are_the_kernels_plant(plants, order):
    n, threads = 4096, 64
    x = aligned_f32(np.arange(n, dtype=np.float32) + 1)
    out = aligned_f32(np.full(n, np.nan, np.float32))
    rec = _run(plants, "p_cp16", order, out, x, n, threads)
    np.testing.assert_array_equal(out, x)
    line = _plant("cp16")
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
    x = aligned_f32(np.arange(n * stride, dtype=np.float32) + 1)
    out = aligned_f32(np.full(n, np.nan, np.float32))
    rec = _run(plants, "p_cp4", order, out, x, n, threads, pitch, stride, 0)
    np.testing.assert_array_equal(out, x[::stride][:n])
    line = _plant("cp4")
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
    x = aligned_f32(np.arange(n, dtype=np.float32) + 1)
    out = aligned_f32(np.full(n, np.nan, np.float32))
    rec = _run(plants, "p_cp4", order, out, x, n, threads, 1, 1, 2)
    np.testing.assert_array_equal(out, np.where(np.arange(n) % 2, x, 0.0))
    line = _plant("cp4")
    g = _access(rec, line, "global", "load")
    assert (g["requests"], g["bytes"]) == (n // 32, 4 * n // 2)
    s = _access(rec, line, "shared", "store")
    assert (s["requests"], s["wavefronts"], s["bytes"]) == (n // 32, n // 32, 4 * n)
    assert rec["unique_bytes"] == 4 * n // 2 + 4 * n


# ---- the TF32 conv kernels: no bank conflicts on a ResNet-50 3x3 layer and LeNet-5's conv2 -------

def _profile_conv(N, C, H, K, R, pad, tile):
    """Forward, dgrad and wgrad of one conv layer with TF32 on, under the sim profiler; tile: the
    TF32 tile forced (conv2d_tc_force_plan), -1 for the chooser's."""
    import cucnn
    import cucnn.sim
    from cucnn import _backend, backends
    from cucnn import functional as F
    rng = np.random.default_rng(7)
    x = cucnn.tensor(rng.standard_normal((N, C, H, H)).astype(np.float32), device="sim",
                     requires_grad=True)
    w = cucnn.tensor(rng.standard_normal((K, C, R, R)).astype(np.float32), device="sim",
                     requires_grad=True)
    with backends.flags(allow_tf32=True), cucnn.sim.profile() as prof:
        mod = _backend.sim_module()
        mod.conv2d_tc_force_plan(tile, 1)
        try:
            F.conv2d(x, w, padding=pad).sum().backward()
        finally:
            mod.conv2d_tc_force_plan(-1, 1)
    return [r for r in prof.records if r["name"].startswith("void cucnn::conv_tc_kernel<")]


def _no_bank_conflicts(records, tile_name, passes):
    seen = set()
    for r in records:
        assert tile_name in r["name"], r["name"]
        shared = [a for a in r["accesses"] if a["space"] == "shared"]
        # the cp.async stores (async, at the wait), the tap tables, the fragment loads: every
        # shared access of the kernel, all in or feeding the main loop
        assert any(a["op"] == "store" for a in shared) and any(a["op"] == "load" for a in shared)
        for a in shared:
            assert a["wavefronts"] == a["ideal"], (r["name"], a)
            assert os.path.basename(a["file"]) == "conv2d_tc.cuh", a
        seen |= {p for p in passes if p in r["name"]}
    assert seen == set(passes), (seen, [r["name"] for r in records])


def test_resnet50_3x3_layer_on_the_128x128_tile_has_no_bank_conflicts():
    """ResNet-50's 3x3 layers (14x14, stride 1, pad 1) with channels and batch shrunk for the sim
    (2 x 32 -> 64), the 128x128 tile forced. C*R*S = 288 and P*Q = 196 are multiples of 4: the
    forward pass copies w and wgrad copies dy with 16-byte cp.async (K-major tiles)."""
    records = _profile_conv(2, 32, 14, 64, 3, 1, 0)
    _no_bank_conflicts(records, "TcTile<128, 128, 64, 64>", ["TcFwdA", "TcDgradA<false>",
                                                             "TcWgradA"])
    names = {r["name"] for r in records}
    assert any("TcFwdStore, false, true>" in n for n in names), names   # 16-byte w
    assert any("TcWgradStore, true, false>" in n for n in names), names  # 16-byte dy
    # the 16-byte copies: per warp request 128-bit stores, 4 phases of 8 lanes, 4 wavefronts
    src = ROOT / "csrc" / "kernels" / "conv2d_tc.cuh"
    line16 = [i for i, t in enumerate(src.read_text().splitlines(), 1)
              if "simt::cp_async_16(" in t]
    assert len(line16) == 1
    for r in records:
        vec_a, vec_b = r["name"].split("(")[0].rstrip(">").split(", ")[-2:]
        stores = [a for a in r["accesses"] if a["line"] == line16[0] and a["space"] == "shared"]
        assert bool(stores) == ("true" in (vec_a, vec_b)), r["name"]
        for a in stores:
            assert a["op"] == "store" and a["wavefronts"] == 4 * a["requests"], a
            assert a["bytes"] == 16 * 32 * a["requests"]  # 128 rows x 32 k: every lane copies


def test_lenet5_conv2_has_no_bank_conflicts():
    """LeNet-5's conv2 (6 -> 16 filters, 5x5 on 14x14) at batch 16 on the 16-wide tile, forced
    (the chooser, with the TF32 tiles' efficiencies from their instructions per HMMA, now takes
    64x64 for this layer's forward; 128x16 serves one-channel dgrads such as LeNet conv1's)."""
    records = _profile_conv(16, 6, 14, 16, 5, 0, 3)
    _no_bank_conflicts(records, "TcTile<", ["TcFwdA", "TcDgradA<false>", "TcWgradA"])
    assert any("TcTile<128, 16, 32, 16>, TcFwdA" in r["name"].replace("cucnn::", "")
               for r in records)
