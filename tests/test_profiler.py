"""The memory profiler on sim, proven on planted kernels whose answer is known by construction
(tests/simt/profile_kernels.cpp, built with `simcc --profile`): sectors per request and efficiency
of global accesses, wavefronts (bank conflicts) of shared accesses, exact in every SIMT order; the
SIMT_PROFILE=FILE report of a stand-alone program; and cucnn.sim.profile() on the package's own
kernels (launch counts)."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess

import numpy as np
import pytest

from conftest import ORDERS, ROOT, aligned_f32, build_profile_plants, plant_line

PLANTS = ROOT / "tests" / "simt" / "profile_kernels.cpp"


def _plant(name: str) -> int:
    return plant_line(PLANTS, name)


@pytest.fixture(scope="module")
def plants(tmp_path_factory):
    return build_profile_plants(tmp_path_factory, PLANTS)


def _profile(lib, which, n, order, in_size=None):
    x = aligned_f32(np.arange(in_size or n, dtype=np.float32))
    out = aligned_f32(np.full(n, np.nan, np.float32))
    assert lib.p_set_order(order.encode()) == 0
    lib.simt_profile_start()
    rc = lib.p_run(which.encode(), out.ctypes.data_as(ctypes.c_void_p),
                   x.ctypes.data_as(ctypes.c_void_p), n)
    lib.simt_profile_stop()
    assert lib.p_set_order(b"forward") == 0
    assert rc == 0
    kernels = json.loads(lib.simt_profile_json())["kernels"]
    assert len(kernels) == 1, kernels
    return kernels[0], out, x


def _access(record, line, space, op):
    hits = [a for a in record["accesses"]
            if a["line"] == line and a["space"] == space and a["op"] == op]
    assert len(hits) == 1, (line, space, op, record["accesses"])
    assert os.path.basename(hits[0]["file"]) == PLANTS.name
    return hits[0]


@pytest.mark.parametrize("order", ORDERS)
def test_coalesced_copy_is_4_sectors_per_request(plants, order):
    rec, out, x = _profile(plants, "copy32", 4096, order)
    np.testing.assert_array_equal(out, x)
    assert rec["name"] == "copy32_kernel(float*, float const*)"
    assert (rec["grid"], rec["block"], rec["shared_bytes"], rec["launches"]) == \
        ([16, 1, 1], [256, 1, 1], 0, 1)
    for op in ("load", "store"):
        a = _access(rec, _plant("copy32"), "global", op)
        assert (a["requests"], a["sectors"], a["ideal"], a["bytes"]) == (128, 512, 512, 16384)
    assert rec["unique_bytes"] == 2 * 16384


@pytest.mark.parametrize("order", ORDERS)
def test_32_float_stride_is_32_sectors_per_request(plants, order):
    rec, out, x = _profile(plants, "stride32", 4096, order, in_size=32 * 4096)
    np.testing.assert_array_equal(out, x[::32])
    a = _access(rec, _plant("stride32"), "global", "load")
    assert (a["requests"], a["sectors"], a["ideal"]) == (128, 32 * 128, 4 * 128)  # efficiency 1/8
    st = _access(rec, _plant("stride32"), "global", "store")
    assert (st["requests"], st["sectors"], st["ideal"]) == (128, 512, 512)


@pytest.mark.parametrize("order", ORDERS)
def test_float4_copy_is_16_sectors_per_request(plants, order):
    rec, out, x = _profile(plants, "copy128", 4096, order)
    np.testing.assert_array_equal(out, x)
    for op in ("load", "store"):
        a = _access(rec, _plant("copy128"), "global", op)
        assert (a["requests"], a["sectors"], a["ideal"], a["bytes"]) == (32, 512, 512, 16384)


@pytest.mark.parametrize("order", ORDERS)
def test_float4_used_by_components_is_still_one_request(plants, order):
    """g++ reads such a float4 as four floats (four call sites on one line); the GPU makes one
    LDG.128: the pieces are merged back into one 16-sector request."""
    rec, out, x = _profile(plants, "vec_components", 4096, order)
    expected = x.reshape(-1, 4).copy()
    expected[:, 0] += 1
    expected[:, 3] *= 2
    np.testing.assert_array_equal(out, expected.ravel())
    for op, marker in (("load", "vec_load"), ("store", "vec_store")):
        a = _access(rec, _plant(marker), "global", op)
        assert (a["requests"], a["sectors"], a["ideal"], a["bytes"]) == (32, 512, 512, 16384)


@pytest.mark.parametrize("order", ORDERS)
def test_read_modify_write_counts_both_loads_and_the_store(plants, order):
    x = aligned_f32(np.arange(4096, dtype=np.float32))
    y = aligned_f32(np.full(4096, 3.0, np.float32))
    assert plants.p_set_order(order.encode()) == 0
    plants.simt_profile_start()
    rc = plants.p_run(b"saxpy", y.ctypes.data_as(ctypes.c_void_p),
                      x.ctypes.data_as(ctypes.c_void_p), 4096)
    plants.simt_profile_stop()
    assert plants.p_set_order(b"forward") == 0 and rc == 0
    np.testing.assert_array_equal(y, 2 * np.arange(4096, dtype=np.float32) + 3)
    (rec,) = json.loads(plants.simt_profile_json())["kernels"]
    load = _access(rec, _plant("saxpy"), "global", "load")
    store = _access(rec, _plant("saxpy"), "global", "store")
    assert (load["requests"], load["sectors"], load["ideal"]) == (256, 1024, 1024)
    assert (store["requests"], store["sectors"], store["ideal"]) == (128, 512, 512)
    assert rec["unique_bytes"] == 2 * 16384


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("which,wavefronts", [("column", 32), ("column_padded", 1)])
def test_column_of_a_shared_tile(plants, order, which, wavefronts):
    rec, out, x = _profile(plants, which, 1024, order)
    np.testing.assert_array_equal(out[:32], x[np.arange(32) * 32 + 3])
    a = _access(rec, _plant("column"), "shared", "load")
    assert (a["requests"], a["wavefronts"], a["ideal"]) == (1, wavefronts, 1)
    # The row-wise fill is conflict-free either way: 32 requests of one wavefront.
    fill = [b for b in rec["accesses"] if b["space"] == "shared" and b["op"] == "store"]
    assert [(b["requests"], b["wavefronts"], b["ideal"]) for b in fill] == [(32, 32, 32)]


@pytest.mark.parametrize("order", ORDERS)
def test_broadcast_of_one_shared_word_is_one_wavefront(plants, order):
    rec, out, x = _profile(plants, "broadcast", 128, order)
    np.testing.assert_array_equal(out[:64], np.zeros(64, np.float32))
    assert (rec["grid"], rec["block"], rec["shared_bytes"]) == ([2, 1, 1], [64, 1, 1], 256)
    a = _access(rec, _plant("broadcast"), "shared", "load")
    assert (a["requests"], a["wavefronts"], a["ideal"]) == (4, 4, 4)  # 2 blocks x 2 warps


def test_simt_profile_file_of_a_simcc_program(tmp_path):
    exe = tmp_path / "plants"
    r = subprocess.run([os.sys.executable, "-m", "cucnn.tools.simcc", "--profile", str(PLANTS),
                        "-o", str(exe), "-DPLANT_MAIN"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = tmp_path / "profile.json"
    run = subprocess.run([str(exe)], env={**os.environ, "SIMT_PROFILE": str(report)},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "ran" in run.stdout, run.stderr
    # addr2line's names: a template instance carries its return type ("void column_kernel<33>(...)")
    kernels = {k["name"].split("(")[0].removeprefix("void "): k
               for k in json.loads(report.read_text())["kernels"]}
    assert set(kernels) == {"copy32_kernel", "column_kernel<33>"}
    a = _access(kernels["copy32_kernel"], _plant("copy32"), "global", "load")
    assert (a["requests"], a["sectors"], a["ideal"]) == (128, 512, 512)
    b = _access(kernels["column_kernel<33>"], _plant("column"), "shared", "load")
    assert (b["wavefronts"], b["ideal"]) == (1, 1)


def test_cucnn_sim_profile_counts_launches_and_accesses_of_the_package_kernels():
    """cucnn.sim.profile() on the package's own kernels (the profiling build of _sim, built from
    this source tree on first use): same results as the plain module, one record per kernel
    configuration with its launches, and every access attributed to a kernel source line."""
    import cucnn
    import cucnn.sim
    from cucnn import functional as F
    rng = np.random.default_rng(0)
    x = cucnn.tensor(rng.standard_normal((3, 2, 9, 9)).astype(np.float32), device="sim")
    w = cucnn.tensor(rng.standard_normal((5, 2, 3, 3)).astype(np.float32), device="sim")
    plain = F.relu(F.conv2d(x, w)).numpy()
    with cucnn.sim.profile() as prof:
        y = F.relu(F.conv2d(x, w)).numpy()
        y2 = F.relu(F.conv2d(x, w)).numpy()
    np.testing.assert_array_equal(y, plain)
    np.testing.assert_array_equal(y2, plain)
    assert prof.total_launches >= 4 and all(n % 2 == 0 for n in prof.launches().values())
    for r in prof.records:
        assert set(r) == {"name", "grid", "block", "shared_bytes", "launches", "unique_bytes",
                          "accesses"}
        assert r["unique_bytes"] > 0 and r["accesses"], r
        for a in r["accesses"]:
            assert a["file"].endswith((".cuh", ".h")) and a["line"] > 0, a
            cost = a["sectors"] if a["space"] == "global" else a["wavefronts"]
            assert 1 <= a["ideal"] <= cost and a["requests"] >= 1, a
    conv = [r for r in prof.records if "conv" in r["name"]]
    assert conv and any(a["space"] == "shared" for r in conv for a in r["accesses"])
    assert "requests" in prof.table() and "conv" in prof.table()
    # Outside the block, the plain module is back.
    assert cucnn._backend.sim_module() is not None
    assert cucnn._backend.sim_module().__name__ == "cucnn._sim"
