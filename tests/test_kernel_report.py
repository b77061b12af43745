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
