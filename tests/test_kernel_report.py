"""nvcc's view of every kernel: it compiles for sm_90, and no production kernel spills."""
from __future__ import annotations

import pathlib
import shutil

import pytest

from cucnn.tools import kernel_report

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed here")
def test_no_kernel_spills_on_sm90():
    rows = kernel_report.parse(kernel_report.compile_report(ROOT, "sm_90"))
    names = " ".join(r["name"] for r in rows)
    for family in ("conv_gemm_kernel", "conv2d_split_reduce_kernel", "max_pool2d_forward_kernel",
                   "avg_pool2d_backward_kernel", "softmax_forward_warp_kernel",
                   "cross_entropy_forward_kernel", "activation_forward_kernel"):
        assert family in names, family
    spilling = [(r["name"], r["spill_stores"], r["spill_loads"]) for r in rows
                if r["spill_stores"] or r["spill_loads"]]
    assert not spilling, f"kernels spill registers on sm_90: {spilling}"
    assert all(0 < r["registers"] <= 255 for r in rows)


def test_parser_and_occupancy_on_a_known_report():
    text = """ptxas info    : Compiling entry function '_Z3fooPf' for 'sm_90'
ptxas info    : Function properties for _Z3fooPf
    8 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 40 registers, 1024 bytes smem, 360 bytes cmem[0]"""
    (row,) = kernel_report.parse(text)
    assert row["name"] == "foo" and row["registers"] == 40 and row["smem"] == 1024
    assert (row["stack"], row["spill_stores"], row["spill_loads"]) == (8, 4, 4)
    assert kernel_report.register_occupancy(32) == 1.0    # 64 warps fit
    assert kernel_report.register_occupancy(128) == 0.25  # 16 warps
    assert kernel_report.register_occupancy(255) == 0.125


# ---- SASS: planted kernels with a known loop mix (tests/sass/planted.cu) ---------------------------

PLANTED = ROOT / "tests" / "sass" / "planted.cu"
needs_sass = pytest.mark.skipif(
    shutil.which("nvcc") is None or kernel_report.tool("nvdisasm") is None,
    reason="nvcc or nvdisasm not installed here (nvdisasm: pip install nvidia-cuda-nvdisasm)")


@pytest.fixture(scope="module", params=["sm_80", "sm_90"])
def planted(request, tmp_path_factory):
    cubin = tmp_path_factory.mktemp(request.param) / "planted.cubin"
    text = kernel_report.compile_cubin(PLANTED, cubin, request.param)
    return {r["name"]: r for r in kernel_report.sass_report_cubin(cubin, text)}


def _only(counts, **expected):
    """Every class count is as expected, and zero where not named."""
    want = dict.fromkeys(kernel_report.CLASSES, 0)
    want.update(expected)
    got = {k: counts[k] for k in expected} | {k: v for k, v in counts.items() if k not in expected
                                               and k not in ("int", "control", "other")}
    assert got == {k: v for k, v in want.items() if k in got}, counts


@needs_sass
def test_planted_ffma_loop_has_16_ffma_per_lds128(planted):
    r = planted["planted::ffma_lds128"]
    assert r["registers"] > 0 and r["smem"] == 4096 and r["spill_stores"] == 0
    body = r["hot_loop"]["body"]
    _only(body["counts"], ffma=16, lds128=1)
    assert body["ffma_per_lds"] == 16.0
    assert body["fma_share"] == 16 / body["instructions"] and body["instructions"] < 30
    assert body["instructions_per_hmma"] is None and not r["hot_loop"]["nested_loops"]


@needs_sass
def test_planted_copy_loop_has_no_fma(planted):
    body = planted["planted::copy_add"]["hot_loop"]["body"]
    _only(body["counts"], ldg32=1, stg32=1)
    assert body["fma_share"] == 0.0 and body["ffma_per_lds"] is None


@needs_sass
def test_planted_nested_loop_picks_the_inner_loop(planted):
    r = planted["planted::nested<7>"]  # demangled, template argument kept
    assert r["loops"] >= 2  # the outer loop (the compiler may split it in two) and the inner
    lp = r["hot_loop"]
    _only(lp["body"]["counts"], ffma=4, stg32=0)
    assert not lp["nested_loops"] and lp["body"]["instructions"] < 12


@needs_sass
def test_planted_tensor_core_loop_has_two_hmma(planted):
    body = planted["planted::hmma_tf32"]["hot_loop"]["body"]
    _only(body["counts"], hmma=2, ffma=0, ldg32=6)
    assert body["instructions_per_hmma"] == body["instructions"] / 2


@needs_sass
def test_planted_cold_path_counts_in_the_body_not_the_lean_path(planted):
    lp = planted["planted::cold_store"]["hot_loop"]
    assert lp["body"]["counts"]["ffma"] == 8 and lp["body"]["counts"]["stg32"] == 16
    assert lp["lean_path"]["counts"]["ffma"] == 8 and lp["lean_path"]["counts"]["stg32"] == 0
    assert lp["lean_path"]["instructions"] < lp["body"]["instructions"]
    # the busy path takes every block that moves more bytes: the rare stores count against it
    assert lp["busy_path"]["counts"]["stg32"] == 16 and lp["busy_path"]["counts"]["ffma"] == 8


@needs_sass
def test_sass_report_of_the_module(tmp_path):
    """Every kernel of _cuda is listed; every conv GEMM tile's loop does BM*BN/16 FFMA per BK=16
    slice (a TM x TN micro-tile, 16 times, on 256 threads)."""
    out = tmp_path / "sass.json"
    assert kernel_report.main(["--src", str(ROOT), "--sass", "--json", str(out)]) == 0
    import json
    payload = json.loads(out.read_text())
    assert payload["arch"] == "sm_90"
    rows = {r["name"]: r for r in payload["kernels"]}
    gemm = [r for n, r in rows.items() if n.startswith("conv_gemm_kernel<")]
    assert len(gemm) >= 9, sorted(rows)
    for r in gemm:  # BK=16 slices of a (BM/16) x (BN/16) micro-tile per thread
        bm, bn = map(int, r["name"].split("<")[1].split(", ")[:2])
        assert r["hot_loop"]["body"]["counts"]["ffma"] == bm * bn // 16, r["name"]
        assert r["hot_loop"]["body"]["counts"]["bar"] >= 1
        lean, busy = r["hot_loop"]["lean_path"], r["hot_loop"]["busy_path"]
        assert 0 < lean["instructions"] <= busy["instructions"] <= r["hot_loop"]["body"]["instructions"]
        assert busy["counts"]["ldg32"] + busy["counts"]["ldg128"] > 0, r["name"]  # next slice
    assert all(r["registers"] and r["spill_stores"] == 0 for r in rows.values())


def test_classify_and_loop_finding_on_a_known_listing():
    """No nvcc needed: a hand-written nvdisasm listing with a loop and a cold block in it."""
    text = """//--------------------- .text._Z1kPf --------------------------
.text._Z1kPf:
        /*0000*/                   S2R R0, SR_TID.X ;
.L_x_1:
        /*0010*/                   LDS.128 R4, [R0] ;
        /*0020*/                   FFMA R8, R4, R5, R8 ;
        /*0030*/                   FFMA R9, R6, R7, R9 ;
        /*0040*/               @P0 BRA `(.L_x_2) ;
        /*0050*/                   STG.E.64 [R2.64], R8 ;
        /*0060*/                   LDG.E.128.CONSTANT R4, [R2.64] ;
.L_x_2:
        /*0070*/                   IADD3 R0, R0, 0x10, RZ ;
        /*0080*/                   ISETP.NE.AND P1, PT, R0, R1, PT ;
        /*0090*/               @P1 BRA `(.L_x_1) ;
        /*00a0*/                   EXIT ;
.L_x_3:
        /*00b0*/                   BRA `(.L_x_3);
"""
    funcs = kernel_report.parse_sass(text)
    assert list(funcs) == ["_Z1kPf"]
    loops = kernel_report.find_loops(funcs["_Z1kPf"])
    assert [(lp["head"], lp["latch"]) for lp in loops] == [(0x10, 0x90)]  # the trap is no loop
    r = kernel_report.analyze_function(funcs["_Z1kPf"])["hot_loop"]
    assert r["body"]["instructions"] == 9 and r["lean_path"]["instructions"] == 7
    assert r["busy_path"]["instructions"] == 9 and r["body"]["shared_wavefronts"] == 4
    c = r["body"]["counts"]
    assert (c["ffma"], c["lds128"], c["stg64"], c["ldg128"], c["int"], c["control"]) == \
        (2, 1, 1, 1, 2, 2)
    assert r["body"]["ffma_per_lds"] == 2.0
    assert [kernel_report.classify(o) for o in (
        "HMMA.1688.F32.TF32", "HFMA2.MMA", "LDGSTS.E.BYPASS.128", "BAR.SYNC.DEFER_BLOCKING",
        "LDL", "IMAD.MOV.U32", "MUFU.EX2", "LDS.U8", "STS.64")] == [
        "hmma", "int", "ldgsts", "bar", "local", "int", "other", "lds32", "sts64"]
    assert kernel_report.demangle(["_ZN5cucnn6nestedILi7EEEvPfii"]) == ["nested<7>"]


def test_mem_bytes_of_async_copies_and_matrix_loads():
    """LDGSTS (cp.async, the TF32 kernels' loads) is sized from its width, not read as a
    width class ("ldgsts" starts with "ldg"); LDSM moves no counted bytes; LDS.128 16."""
    assert kernel_report.mem_bytes({"cls": "ldgsts", "opcode": "LDGSTS.E.BYPASS.LTC128B.128"}) == 16
    assert kernel_report.mem_bytes({"cls": "ldgsts", "opcode": "LDGSTS.E.LTC128B"}) == 4
    assert kernel_report.mem_bytes({"cls": "ldsm", "opcode": "LDSM.16.M88.4"}) == 0
    assert kernel_report.mem_bytes({"cls": "lds128", "opcode": "LDS.128"}) == 16
