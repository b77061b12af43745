"""Shared fixtures: SIMT orders, the compiled SIMT test library, device markers."""
from __future__ import annotations

import ctypes
import os
import pathlib
import subprocess

import numpy as np
import pytest

import cucnn

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Every sim test runs in these SIMT orders; CUCNN_TEST_ORDERS (comma-separated) narrows them, as
# the ThreadSanitizer run does (it judges happens-before, not timing, so one order is enough).
ORDERS = tuple(o for o in os.environ.get("CUCNN_TEST_ORDERS", "").split(",") if o) or \
    ("forward", "reverse", "random:20261122")

if os.environ.get("CUCNN_SIM_MODULE"):  # a sanitizer run (scripts/sanitize.py): make sure of it
    assert os.path.samefile(cucnn._backend.sim_module().__file__,
                            os.environ["CUCNN_SIM_MODULE"]), "the sanitized _sim did not load"

requires_cuda = pytest.mark.skipif(
    not cucnn.cuda.is_available(),
    reason="no CUDA device here (needs cucnn._cuda, CuPy and a GPU); run on a GPU machine")


def aligned_f32(values):
    """A float32 copy of `values` at a 256-byte boundary, as cudaMalloc gives. NumPy aligns to 16
    or 64 bytes, which would shift every sector boundary the sim memory profiler counts (a warp's
    128 bytes would straddle 5 sectors, which the profiler rightly reports)."""
    values = np.asarray(values)
    raw = np.empty(values.size + 64, np.float32)
    skip = (-raw.ctypes.data % 256) // 4
    a = raw[skip:skip + values.size].reshape(values.shape)
    a[...] = values
    assert a.ctypes.data % 256 == 0
    return a


def plant_line(path: pathlib.Path, name: str) -> int:
    """The line of `// PLANT: name` in a planted-kernel source (what the profiler attributes to)."""
    for i, text in enumerate(path.read_text().splitlines(), 1):
        if f"// PLANT: {name}" in text:
            return i
    raise AssertionError(f"no '// PLANT: {name}' in {path}")


def build_profile_plants(tmp_path_factory, source: pathlib.Path):
    """Planted kernels compiled with `simcc --profile` into a shared library, loaded, with the
    profiler's JSON entry point typed."""
    from cucnn.tools import simcc
    out = tmp_path_factory.mktemp(source.stem) / f"lib{source.stem}.so"
    lib = ctypes.CDLL(str(simcc.build([source], out, "profile", shared=True,
                                      runtime_dir=ROOT / "csrc" / "simt")))
    lib.simt_profile_json.restype = ctypes.c_char_p
    assert lib.simt_profile_available() == 1
    return lib


def simt_runtime_sources():
    """The SIMT runtime's translation units: every test that builds kernels with the runtime (the
    test library, planted kernels) compiles these, from one list (cucnn.tools.simcc)."""
    from cucnn.tools.simcc import simt_sources
    return [str(p) for p in simt_sources(ROOT / "csrc" / "simt")]


def build_simt_test_lib(out_dir: pathlib.Path, extra_flags=(), name="libsimt_test.so",
                        sources=(ROOT / "tests" / "simt" / "simt_test_kernels.cpp",)):
    """Compile tests/simt/simt_test_kernels.cpp (or `sources`) with the SIMT runtime into a shared
    library, in one compiler call; `extra_flags` apply to every file."""
    out = out_dir / name
    cmd = ["g++", "-std=c++17", "-O1", "-g", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
           "-Wno-unknown-pragmas", f"-I{ROOT / 'csrc' / 'simt'}", f"-I{ROOT / 'csrc'}",
           *extra_flags, *map(str, sources), *simt_runtime_sources(), "-o", str(out), "-pthread",
           "-ldl"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"building {name} failed:\n{' '.join(cmd)}\n{r.stderr}"
    return out


class SimtLib:
    """ctypes front of the SIMT test library: each call returns (rc, error text)."""

    def __init__(self, path):
        self.lib = ctypes.CDLL(str(path))
        self.err = ctypes.create_string_buffer(4096)

    def __call__(self, fn, *args):
        conv = []
        for a in args:
            if isinstance(a, np.ndarray):
                conv.append(a.ctypes.data_as(ctypes.c_void_p))
            elif isinstance(a, str):
                conv.append(a.encode())
            elif isinstance(a, int) and a > 2**31 - 1:
                conv.append(ctypes.c_uint(a))
            else:
                conv.append(a)
        self.err.value = b""
        rc = getattr(self.lib, fn)(*conv, self.err, 4096)
        return rc, self.err.value.decode()

    def ok(self, fn, *args):
        rc, err = self(fn, *args)
        assert rc == 0, err


@pytest.fixture(scope="session")
def simt_lib(tmp_path_factory):
    return SimtLib(build_simt_test_lib(tmp_path_factory.mktemp("simt")))


@pytest.fixture(scope="session")
def simt_lib_ucontext(tmp_path_factory):
    path = build_simt_test_lib(tmp_path_factory.mktemp("simt_uc"), ["-DSIMT_FORCE_UCONTEXT"],
                               name="libsimt_test_uc.so")
    return SimtLib(path)


@pytest.fixture(params=ORDERS)
def simt_order(request):
    with cucnn.sim.order(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def fp32_convolutions_unless_a_test_asks():
    """The suite holds conv results to fp32 tolerances, so it runs with TF32 off (cucnn's default,
    like PyTorch's, is on); the TF32 tests (test_conv2d_tf32.py) turn it on where they want it."""
    with cucnn.backends.flags(allow_tf32=False):
        yield
