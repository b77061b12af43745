"""Kernel resource report: registers, stack, spills and static shared memory per kernel, as
``nvcc -Xptxas -v`` reports them, and the occupancy the registers allow on an H100.

    python -m cucnn.tools.kernel_report [--src REPO] [--arch sm_90] [--fail-on-spill]

Compiles csrc/bindings.cpp (every kernel the package has) for one architecture. Needs nvcc and the
source tree (run it from the repository, or pass --src). Dynamic shared memory is chosen by the
launchers at run time, so ptxas cannot see it; the README lists it for the conv kernels.
"""
from __future__ import annotations

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

# H100 SXM: 132 SMs, 64K 32-bit registers, 64 resident warps and 228 KB shared memory per SM;
# registers are allocated per warp in units of 256.
H100_REGS_PER_SM = 65536
H100_MAX_WARPS = 64
REG_ALLOC_UNIT = 256


def find_source(start: pathlib.Path) -> pathlib.Path:
    for d in [start, *start.parents]:
        if (d / "csrc" / "bindings.cpp").exists():
            return d
    raise FileNotFoundError(f"no csrc/bindings.cpp in {start} or above: pass --src REPO")


def compile_report(src: pathlib.Path, arch: str = "sm_90") -> str:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise FileNotFoundError("nvcc not found on PATH")
    import pybind11
    with tempfile.TemporaryDirectory() as tmp:
        tu = pathlib.Path(tmp) / "bindings_cuda.cu"
        tu.write_text(f'#include "{src / "csrc" / "bindings.cpp"}"\n')
        cmd = [nvcc, "-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-DCUCNN_MODULE_NAME=_cuda",
               "-isystem", pybind11.get_include(), "-isystem", sysconfig.get_paths()["include"],
               f"-I{src / 'csrc'}", f"-I{src / 'csrc' / 'simt'}",
               f"-gencode=arch=compute_{arch[3:]},code={arch}", "-Xptxas", "-v", "-c", str(tu),
               "-o", str(pathlib.Path(tmp) / "k.o")]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"nvcc failed:\n{done.stderr[-4000:]}")
        return done.stdout + done.stderr


def parse(text: str) -> list:
    """One dict per kernel: name (demangled), registers, stack, spill_stores, spill_loads, smem."""
    rows, current = [], None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            current = {"mangled": m.group(1), "registers": 0, "stack": 0, "spill_stores": 0,
                       "spill_loads": 0, "smem": 0}
            rows.append(current)
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads",
                      line)
        if m:
            current["stack"], current["spill_stores"], current["spill_loads"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current["registers"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(s.group(1)) if s else 0
    names = subprocess.run(["c++filt"], input="\n".join(r["mangled"] for r in rows),
                           capture_output=True, text=True).stdout.splitlines() \
        if shutil.which("c++filt") else [r["mangled"] for r in rows]
    for r, n in zip(rows, names):
        n = n.replace("cucnn::", "")
        n = re.sub(r"std::integral_constant<int, (\d+)>", r"\1", n)
        r["name"] = n[:n.index("(")] if "(" in n else n
        r["name"] = r["name"].removeprefix("void ")
    return rows


def register_occupancy(registers: int) -> float:
    """Upper bound on occupancy from registers alone (block size and shared memory may lower it)."""
    per_warp = -(-max(registers, 1) * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    return min(H100_REGS_PER_SM // per_warp, H100_MAX_WARPS) / H100_MAX_WARPS


def format_table(rows: list) -> str:
    lines = [f"{'kernel':<72}{'regs':>5}{'stack':>7}{'spill':>7}{'smem':>7}{'occ≤':>6}"]
    for r in sorted(rows, key=lambda r: r["name"]):
        lines.append(f"{r['name'][:71]:<72}{r['registers']:>5}{r['stack']:>7}"
                     f"{r['spill_stores'] + r['spill_loads']:>7}{r['smem']:>7}"
                     f"{register_occupancy(r['registers']):>6.0%}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=pathlib.Path, default=None, help="repository root")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--fail-on-spill", action="store_true",
                    help="exit 1 if any kernel spills registers or uses a stack frame")
    args = ap.parse_args(argv)
    src = args.src or find_source(pathlib.Path.cwd())
    rows = parse(compile_report(src, args.arch))
    print(f"{len(rows)} kernels, {args.arch} (occ≤: register-limited occupancy on an H100)")
    print(format_table(rows))
    spilling = [r["name"] for r in rows if r["spill_stores"] or r["spill_loads"]]
    if spilling:
        print("spills in: " + ", ".join(spilling))
    return 1 if spilling and args.fail_on_spill else 0


if __name__ == "__main__":
    sys.exit(main())
