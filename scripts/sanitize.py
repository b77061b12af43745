#!/usr/bin/env python3
"""Run the sim kernel tests under a sanitizer: AddressSanitizer + UndefinedBehaviorSanitizer
(with -fsanitize=bounds for static __shared__ arrays), or ThreadSanitizer (each simulated CUDA
thread a TSan fiber; barriers, warp operations and block boundaries annotated as synchronisation);
or with the memory profiler's build of cucnn._sim (`profile`, not a sanitizer; see cucnn.sim.profile).

    python scripts/sanitize.py address                 # the default kernel set, every SIMT order
    python scripts/sanitize.py thread                  # the default kernel set, one order
    python scripts/sanitize.py address -- -k conv2d    # any pytest arguments after --
    python scripts/sanitize.py profile                 # the profiler's tests on the profiled _sim

It builds cucnn._sim with the sanitizer into build/sanitize-KIND (CMake, outside pip; the installed
package is untouched), then runs pytest in a fresh interpreter with the sanitizer runtime preloaded
and CUCNN_SIM_MODULE pointing cucnn at the sanitized module. Any report fails the run: the
sanitizers halt on the first error, and the exit status says so.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FLAGS = {
    # Not a sanitizer: the memory profiler's build (cucnn.sim.profile(); CUCNN_SIM_PROFILE=ON
    # instruments the kernels' translation unit only, see CMakeLists.txt).
    "profile": "-O2 -g",
    "address": "-fsanitize=address,undefined -fsanitize=bounds -fno-sanitize-recover=all "
               "-fno-omit-frame-pointer -g -O1",
    "thread": "-fsanitize=thread -g -O1",
}
RUNTIMES = {"address": ["libasan.so", "libubsan.so"], "thread": ["libtsan.so"], "profile": []}
OPTIONS = {
    # Python itself is not instrumented and keeps memory at exit: leaks are not ours to judge.
    "address": {"ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=1",
                "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"},
    # OpenBLAS's thread pool hands work over by spinning, which TSan cannot see: one BLAS thread.
    "thread": {"TSAN_OPTIONS": "halt_on_error=1:second_deadlock_stack=1",
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    "profile": {},
}
# What runs by default: every registered kernel case on sim (the registry's small shapes), and the
# X/O network trained on sim. TSan needs one SIMT order: it judges happens-before, not timing.
DEFAULT_TESTS = {
    "address": ["tests/test_kernels.py", "tests/test_train.py", "tests/test_pool2d.py",
                "tests/test_conv2d.py", "-k", "sim"],
    "thread": ["tests/test_kernels.py", "-k", "test_sim_against_oracle"],
    "profile": ["tests/test_profiler.py"],
}
ORDERS = {"address": None, "thread": "forward", "profile": None}


def compiler() -> str:
    return os.environ.get("CXX") or shutil.which("g++") or "c++"


def runtime_library(name: str) -> str:
    path = subprocess.run([compiler(), f"-print-file-name={name}"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if not os.path.isabs(path) or not os.path.exists(path):
        raise SystemExit(f"sanitize.py: the compiler has no {name} (install its sanitizer runtime)")
    return path


def build(kind: str, quiet: bool = True) -> Path:
    """Configure and build cucnn._sim with the sanitizer; returns the module's path."""
    import pybind11
    out = ROOT / "build" / f"sanitize-{kind}"
    cmd = ["cmake", "-S", str(ROOT), "-B", str(out), "-DCUCNN_CUDA=OFF",
           f"-DCUCNN_SIM_EXTRA_FLAGS={FLAGS[kind]}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
           f"-DPython_EXECUTABLE={sys.executable}", f"-DCMAKE_CXX_COMPILER={compiler()}",
           f"-DCUCNN_SIM_PROFILE={'ON' if kind == 'profile' else 'OFF'}",
           # no -march=native here: the sanitizers and the profiler judge code as the compiler
           # writes it for any machine
           "-DCUCNN_SIM_ARCH="]
    if kind == "profile":  # unstripped, with line tables: call sites become file:line
        cmd += ["-DCMAKE_BUILD_TYPE=RelWithDebInfo"]
    if shutil.which("ninja"):
        cmd += ["-G", "Ninja"]
    for step in (cmd, ["cmake", "--build", str(out), "--target", "_sim"]):
        r = subprocess.run(step, capture_output=quiet, text=True)
        if r.returncode:
            raise SystemExit(f"sanitize.py: {' '.join(step[:3])} failed:\n{r.stdout}\n{r.stderr}")
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    module = out / f"_sim{suffix}"
    if not module.exists():
        raise SystemExit(f"sanitize.py: the build made no {module}")
    return module


def environment(kind: str, module: Path) -> dict:
    env = dict(os.environ)
    env.update(OPTIONS[kind])
    if RUNTIMES[kind]:
        env["LD_PRELOAD"] = ":".join(runtime_library(n) for n in RUNTIMES[kind])
    env["CUCNN_SIM_MODULE"] = str(module)
    env["SIMT_THREADS"] = "1"
    if ORDERS[kind]:
        env["CUCNN_TEST_ORDERS"] = ORDERS[kind]
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=sorted(FLAGS))
    ap.add_argument("pytest_args", nargs="*", help="after --: pytest arguments (default: the "
                    "kind's kernel set)")
    args = ap.parse_args(argv)
    module = build(args.kind)
    tests = args.pytest_args or DEFAULT_TESTS[args.kind]
    # sys.executable, never a wrapper script: a preloaded sanitizer would instrument the shell.
    # --capture=sys: pytest must not swallow file descriptor 2, where the sanitizer reports go
    # just before it stops the process.
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--capture=sys", *tests]
    print(f"sanitize.py: {args.kind}: {' '.join(cmd[1:])} with {module.name}", flush=True)
    return subprocess.run(cmd, cwd=ROOT, env=environment(args.kind, module)).returncode


if __name__ == "__main__":
    sys.exit(main())
