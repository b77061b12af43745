"""The checks that stand in for compute-sanitizer on machines with no GPU, each shown to bite on a
planted bug (the planted kernels live in tests/simt/simt_test_kernels.cpp), and the real kernel
set run under AddressSanitizer + UBSan and under ThreadSanitizer (scripts/sanitize.py).

The sanitizer runtimes are preloaded into a fresh interpreter (sys.executable itself: a preloaded
sanitizer must not instrument a wrapper shell script)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT, build_simt_test_lib

sys.path.insert(0, str(ROOT / "scripts"))
import sanitize  # noqa: E402

KERNELS = ROOT / "tests" / "simt" / "simt_test_kernels.cpp"


def _line(marker: str) -> int:
    for i, text in enumerate(KERNELS.read_text().splitlines(), 1):
        if marker in text:
            return i
    raise AssertionError(f"marker {marker!r} not in {KERNELS}")


@pytest.fixture(scope="module")
def asan_lib(tmp_path_factory):
    flags = sanitize.FLAGS["address"].split()
    return build_simt_test_lib(tmp_path_factory.mktemp("asan"), flags, "libsimt_asan.so")


@pytest.fixture(scope="module")
def tsan_lib(tmp_path_factory):
    flags = sanitize.FLAGS["thread"].split()
    return build_simt_test_lib(tmp_path_factory.mktemp("tsan"), flags, "libsimt_tsan.so")


RUNNER = """
import ctypes, sys
import numpy as np
lib = ctypes.CDLL(sys.argv[1])
err = ctypes.create_string_buffer(4096)
out = np.zeros(4096, np.float32)
P = lambda a: a.ctypes.data_as(ctypes.c_void_p)
for order in sys.argv[3].split(","):
    assert lib.t_set_order(order.encode(), err, 4096) == 0
    if sys.argv[2] == "correct":  # kernels without bugs: barriers, a tree reduction, shuffles
        inp = np.arange(256, dtype=np.float32)
        o2 = np.zeros(4, np.float32)
        assert lib.t_rotate(P(out), 3, 64, 5, 1, err, 4096) == 0, err.value
        assert lib.t_block_sum(P(inp), P(o2), 4, 64, err, 4096) == 0, err.value
        assert lib.t_shuffle(P(inp), P(out), 64, 3, 1, 32, ctypes.c_uint(0xffffffff), err,
                             4096) == 0, err.value
        assert lib.t_read_unwritten_shared(P(out), 3, 32, err, 4096) == 0, err.value
    else:
        rc = lib.t_planted(sys.argv[2].encode(), P(out), err, 4096)
        print("returned", rc, err.value.decode())
print("finished")
"""


def _run(kind, lib, which, orders="forward"):
    env = sanitize.environment(kind, ROOT / "nonexistent-module")  # the ctypes lib, not cucnn
    env.pop("CUCNN_SIM_MODULE")
    r = subprocess.run([sys.executable, "-c", RUNNER, str(lib), which, orders], env=env,
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def test_out_of_bounds_global_read_is_caught_by_asan(asan_lib):
    rc, text = _run("address", asan_lib, "oob_global_read")
    assert rc != 0 and "finished" not in text
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in text, text[-3000:]
    assert re.search(rf"#0 .* in oob_global_read_kernel .*simt_test_kernels.cpp:"
                     rf"{_line('PLANTED: out-of-bounds read')}", text), text[-3000:]


def test_static_shared_overflow_is_caught_by_bounds_check(asan_lib):
    rc, text = _run("address", asan_lib, "static_shared_overflow")
    assert rc != 0 and "finished" not in text
    assert re.search(rf"simt_test_kernels.cpp:{_line('PLANTED: overflow of a static shared')}:"
                     rf"\d+: runtime error: index 32 out of bounds for type 'float \[32\]'",
                     text), text[-3000:]


def test_missing_barrier_is_a_data_race_naming_both_lines(tsan_lib):
    rc, text = _run("thread", tsan_lib, "missing_barrier")
    assert rc != 0 and "WARNING: ThreadSanitizer: data race" in text, text[-3000:]
    report = text[text.index("WARNING: ThreadSanitizer"):]
    write, read = _line("RACE-WRITE"), _line("RACE-READ")
    first = re.findall(r"#0 missing_barrier_kernel .*simt_test_kernels.cpp:(\d+)", report)[:2]
    assert sorted(map(int, first)) == sorted([write, read]), report[:3000]


def test_correct_kernels_are_clean_under_tsan_and_asan(tsan_lib, asan_lib):
    for kind, lib in (("thread", tsan_lib), ("address", asan_lib)):
        rc, text = _run(kind, lib, "correct", "forward,reverse,random:7")
        assert rc == 0 and "finished" in text and "Sanitizer" not in text, text[-3000:]


@pytest.mark.parametrize("kind", ["address", "thread"])
def test_kernel_set_under_sanitizer(kind):
    """Every registered kernel case on sim (small shapes) under the sanitizer: no report."""
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "sanitize.py"), kind],
                       capture_output=True, text=True, timeout=1200, cwd=ROOT)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text[-5000:]
    assert re.search(r"\d+ passed", text) and "Sanitizer" not in text, text[-3000:]
