"""Compile your own CUDA kernel file for the CPU, with cucnn's SIMT runtime.

    python -m cucnn.tools.simcc [--profile | --address | --thread] SRC.cpp ... -o OUT [-shared]
                                [extra compiler flags]

SRC files include "simt.h" and launch with ``simt::launch(kernel, grid, block, shared_bytes,
stream, args...)``. OUT is an executable, or a shared library with ``-shared``. Flavours:

* (default)   plain: -O2 -g;
* --profile   the memory profiler: every load and store of SRC is counted; run the program with
              SIMT_PROFILE=report.json to get sectors, wavefronts and bank conflicts per line;
* --address   AddressSanitizer + UndefinedBehaviorSanitizer (out-of-bounds global and static
              __shared__ accesses; run with ASAN_OPTIONS=detect_leaks=0 if you like);
* --thread    ThreadSanitizer: a missing __syncthreads is a data race naming both lines.

The runtime sources come from the installed package (cucnn/simt) or the source tree (csrc/simt).
SIMT_ORDER=forward|reverse|random:SEED and SIMT_THREADS=N steer the run.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

RUNTIME = ("fiber.cpp", "scheduler.cpp", "grid.cpp", "profile.cpp")

BASE = ["-std=c++17", "-O2", "-g", "-Wall", "-Wextra", "-Wno-unknown-pragmas",
        "-ffp-contract=off"]
# Per flavour: (flags for every file, extra flags for the user's kernel files only, link flags).
FLAVOURS = {
    "plain": ([], [], []),
    "profile": (["-DSIMT_PROFILE_BUILD=1"],
                # every access of the kernel files becomes a __tsan_readN/writeN call, served by
                # the runtime (csrc/simt/profile.cpp); no TSan runtime is linked
                ["-fsanitize=thread", "--param=tsan-instrument-func-entry-exit=0",
                 "-fno-tree-vectorize", "-fno-tree-slp-vectorize"], []),
    "address": (["-fsanitize=address,undefined", "-fsanitize=bounds", "-fno-sanitize-recover=all",
                 "-fno-omit-frame-pointer", "-O1"], [],
                ["-fsanitize=address,undefined"]),
    "thread": (["-fsanitize=thread", "-O1"], [], ["-fsanitize=thread"]),
}


def simt_dir() -> pathlib.Path:
    """The folder holding simt.h and the runtime sources."""
    here = pathlib.Path(__file__).resolve().parent.parent  # the cucnn package
    candidates = [here / "simt"] + [d / "csrc" / "simt" for d in here.parents]
    for d in candidates:
        if (d / "simt.h").exists() and all((d / s).exists() for s in RUNTIME):
            return d
    raise FileNotFoundError("cucnn.tools.simcc: the SIMT runtime sources (simt.h, "
                            f"{', '.join(RUNTIME)}) are neither in {here / 'simt'} nor in a "
                            "csrc/simt of a source tree above it")


def simt_sources(directory=None) -> list[pathlib.Path]:
    """The runtime's translation units, for anyone who builds kernels with it (tests, simcc);
    from `directory` (a csrc/simt) when given, else from simt_dir()."""
    d = pathlib.Path(directory) if directory else simt_dir()
    return [d / s for s in RUNTIME]


def compiler() -> str:
    return os.environ.get("CXX") or shutil.which("g++") or "c++"


def build(sources, out, flavour="plain", shared=False, extra=(), include_dirs=(), runtime_dir=None):
    """Compile `sources` (the user's kernel files) with the runtime (from `runtime_dir`, default
    simt_dir()) into `out`. Returns `out`. Raises RuntimeError with the compiler's output when a
    step fails."""
    if flavour not in FLAVOURS:
        raise ValueError(f"flavour must be one of {sorted(FLAVOURS)}, got {flavour!r}")
    sources = [pathlib.Path(s) for s in sources]
    if not sources:
        raise ValueError("sources must name at least one kernel file, got none")
    for s in sources:
        if not s.exists():
            raise FileNotFoundError(f"no such source file: {s}")
    common, kernel_only, link = FLAVOURS[flavour]
    runtime_dir = pathlib.Path(runtime_dir) if runtime_dir else simt_dir()
    inc = [f"-I{runtime_dir}", *(f"-I{d}" for d in include_dirs)]
    pic = ["-fPIC"] if shared else []
    out = pathlib.Path(out)
    with tempfile.TemporaryDirectory(prefix="simcc-") as tmp:
        objs = []
        # The user's files may be called .cu: they are C++ to the host compiler.
        jobs = [(s, [*kernel_only, "-x", "c++"]) for s in sources] + \
            [(s, []) for s in simt_sources(runtime_dir)]
        for i, (src, own) in enumerate(jobs):
            obj = pathlib.Path(tmp) / f"{i}-{src.stem}.o"
            cmd = [compiler(), *BASE, *pic, *common, *own, *inc, *extra, "-c", str(src), "-o",
                   str(obj)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"simcc: compiling {src} failed:\n{' '.join(cmd)}\n{r.stderr}")
            objs.append(str(obj))
        cmd = [compiler(), *(["-shared"] if shared else []), *objs, *common, *link, *extra,
               "-o", str(out), "-pthread", "-ldl"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"simcc: linking {out} failed:\n{' '.join(cmd)}\n{r.stderr}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cucnn.tools.simcc", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--profile", dest="flavour", action="store_const", const="profile")
    group.add_argument("--address", dest="flavour", action="store_const", const="address")
    group.add_argument("--thread", dest="flavour", action="store_const", const="thread")
    ap.add_argument("-o", dest="out", required=True, help="the executable or library to write")
    ap.add_argument("-shared", action="store_true", help="build a shared library")
    ap.add_argument("sources", nargs="+", help="kernel files (.cpp/.cu/.cc)")
    args, extra = ap.parse_known_args(argv)
    try:
        build(args.sources, args.out, args.flavour or "plain", args.shared, extra)
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
