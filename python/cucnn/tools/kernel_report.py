"""Kernel resource report: registers, stack, spills and static shared memory per kernel, as
``nvcc -Xptxas -v`` reports them, and the occupancy the registers allow on an H100; with
``--sass``, also each kernel's hottest loop read from the machine code.

    python -m cucnn.tools.kernel_report [--src REPO] [--arch sm_90] [--fail-on-spill]
    python -m cucnn.tools.kernel_report --sass [--arch sm_90|sm_80] [--json FILE]

Compiles csrc/bindings.cpp (every kernel the package has) for one architecture. Needs nvcc and the
source tree (run it from the repository, or pass --src). Dynamic shared memory is chosen by the
launchers at run time, so ptxas cannot see it; the README lists it for the conv kernels.

``--sass`` compiles a cubin and disassembles it with nvdisasm (pip ``nvidia-cuda-nvdisasm``, the
"sass" extra; cuobjdump from ``nvidia-cuda-cuobjdump`` is used for resource usage when present).
Loops are found from backward branches: a loop is the address range from a branch target to the
last branch back to it. The hottest loop is the loop with the most FFMA + HMMA of its own (not
counting loops nested in it; ties go to the innermost). Its instructions are counted by class over
its whole static body (target to backward branch, nested loops and cold paths included), and over
its *lean path*: the path from the loop head to the backward branch that executes every FFMA/HMMA
block it can and, among those, the fewest instructions (forward edges only, nested loops counted
once). The lean path is a lower bound on one iteration; the static body an upper bound for
loop bodies without nested loops. The *busy path* also takes every block that loads or stores
more bytes (then the fewest instructions): the steady-state iteration of a pipelined loop (the
next slice's loads taken, a scalar fallback that moves the same bytes as a vector load skipped);
a rare path that stores more counts against it.
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


# ---- SASS: the machine code ----------------------------------------------------------------------

# Instruction classes of the loop mix. "int" is integer, address, predicate and move work (IMAD.MOV,
# MOV and the HFMA2.MMA move idiom included: they take issue slots and do no floating-point work);
# "local" is LDL/STL (spills and stack arrays); "control" branches, calls, convergence barriers.
WIDTH_OPS = ("LDS", "LDG", "STS", "STG")
CONTROL = {"BRA", "BRX", "JMP", "JMX", "EXIT", "RET", "CALL", "BSSY", "BSYNC", "WARPSYNC", "BREAK",
           "BMOV", "NOP", "YIELD", "KILL", "ENDCOLLECTIVE", "VOTE", "VOTEU", "ELECT", "BPT"}
INT_PREFIXES = ("IADD", "IMAD", "IMUL", "LEA", "SHF", "SHL", "SHR", "LOP", "ISETP", "SEL", "IABS",
                "VIADD", "VIMNMX", "IMNMX", "IMN", "IMX", "PLOP3", "P2R", "R2P", "MOV", "CS2R",
                "S2R", "S2UR", "R2UR", "FLO", "POPC", "BREV", "PRMT", "BMSK", "SGXT", "UIADD",
                "UIMAD", "USHF", "ULOP", "UISETP", "USEL", "UMOV", "ULEA", "UPRMT", "UFLO", "UPOPC",
                "UBMSK", "USGXT", "UBREV", "ULDC", "UPLOP3", "IDP", "IADD3", "VIMNMX3", "VABSDIFF",
                "I2I", "UP2UR", "UR2UP")
CLASSES = ("ffma", "hmma", *(f"{o.lower()}{w}" for o in WIDTH_OPS for w in (32, 64, 128)),
           "ldsm", "ldgsts", "bar", "local", "int", "control", "other")


def classify(opcode: str) -> str:
    """The class of one SASS opcode with its modifiers, e.g. ``LDG.E.128.CONSTANT`` -> ldg128."""
    parts = opcode.split(".")
    base = parts[0]
    if base == "FFMA":
        return "ffma"
    if base in ("HMMA", "IMMA", "DMMA", "HGMMA", "QGMMA", "IGMMA", "BGMMA", "WGMMA"):
        return "hmma"
    if base == "HFMA2" and "MMA" in parts[1:]:
        return "int"  # HFMA2.MMA Rd, -RZ, RZ, 0, 0: the compiler's move idiom
    if base in WIDTH_OPS:
        width = 128 if "128" in parts else 64 if "64" in parts else 32
        return f"{base.lower()}{width}"
    if base == "LDSM":
        return "ldsm"
    if base == "LDGSTS":
        return "ldgsts"
    if base in ("BAR", "DEPBAR", "LDGDEPBAR", "MEMBAR", "ARRIVES", "SYNCS"):
        return "bar"
    if base in ("LDL", "STL"):
        return "local"
    if base in CONTROL:
        return "control"
    if base.startswith(INT_PREFIXES):
        return "int"
    return "other"


_INSTR = re.compile(r"^\s*/\*([0-9a-f]+)\*/\s+(.*?)\s*;")
_LABEL = re.compile(r"^([.$\w][\w.$]*):\s*$")
_TARGET = re.compile(r"`\(([^)]+)\)")


def _parse_instr(offset: int, text: str) -> dict:
    pred = None
    if text.startswith("@"):
        pred, text = text.split(None, 1)
    opcode, _, operands = text.partition(" ")
    target = _TARGET.search(operands)
    return {"offset": offset, "pred": pred, "opcode": opcode, "operands": operands.strip(),
            "target": target.group(1) if target else None, "cls": classify(opcode)}


def parse_sass(text: str) -> dict:
    """nvdisasm output -> {mangled name: {"instrs": [...], "labels": {label: offset}}}; the
    subroutines the compiler places after a kernel (division slow paths) stay in its list."""
    funcs, cur = {}, None
    pending = []
    for line in text.splitlines():
        m = re.match(r"\s*\.text\.(\S+):\s*$", line)
        if m:
            cur = funcs.setdefault(m.group(1), {"instrs": [], "labels": {}})
            pending = []
            continue
        if cur is None:
            continue
        m = _LABEL.match(line)
        if m:
            pending.append(m.group(1))
            continue
        m = _INSTR.match(line)
        if m:
            off = int(m.group(1), 16)
            for lb in pending:
                cur["labels"][lb] = off
            pending = []
            cur["instrs"].append(_parse_instr(off, m.group(2)))
    return funcs


def _is_branch(ins: dict) -> bool:
    return ins["opcode"].split(".")[0] in ("BRA", "JMP") and ins["target"] is not None


def find_loops(func: dict) -> list:
    """Loops as dicts {head, latch (offsets), start, end (instruction indices, inclusive)}: one per
    backward-branch target, ending at the last branch back to it. A branch to itself (the trap
    after EXIT) is no loop."""
    instrs, labels = func["instrs"], func["labels"]
    index = {ins["offset"]: i for i, ins in enumerate(instrs)}
    heads = {}
    for i, ins in enumerate(instrs):
        if not _is_branch(ins) or ins["target"] not in labels:
            continue
        t = labels[ins["target"]]
        if t < ins["offset"]:
            heads[t] = max(heads.get(t, -1), i)
    loops = [{"head": t, "latch": instrs[j]["offset"], "start": index[t], "end": j}
             for t, j in heads.items()]
    return sorted(loops, key=lambda lp: (lp["start"], -lp["end"]))


def count_classes(instrs) -> dict:
    counts = dict.fromkeys(CLASSES, 0)
    for ins in instrs:
        counts[ins["cls"]] += 1
    return counts


def _blocks(func: dict, start: int, end: int) -> list:
    """Basic blocks of instructions start..end (inclusive): [(first, last)] index pairs."""
    instrs, labels = func["instrs"], func["labels"]
    leaders = {start}
    targets = set(labels.values())
    for i in range(start, end + 1):
        ins = instrs[i]
        if ins["offset"] in targets:
            leaders.add(i)
        if _is_branch(ins) or ins["opcode"].split(".")[0] in ("EXIT", "RET", "BRX", "JMX"):
            if i + 1 <= end:
                leaders.add(i + 1)
    lead = sorted(leaders)
    return [(a, (lead[k + 1] - 1) if k + 1 < len(lead) else end) for k, a in enumerate(lead)]


def mem_bytes(ins: dict) -> int:
    """Bytes one lane moves with a load/store/LDGSTS (0 for everything else)."""
    cls = ins["cls"]
    if cls == "ldgsts":  # before the width classes: "ldgsts" starts with "ldg"
        parts = ins["opcode"].split(".")
        return 16 if "128" in parts else 8 if "64" in parts else 4
    if cls.startswith(tuple(o.lower() for o in WIDTH_OPS)) and cls[3:].isdigit():
        return int(cls[3:]) // 8
    return 0


def lean_path(func: dict, loop: dict, busy: bool = False) -> list:
    """Instruction indices of the lean path of a loop (see the module docstring); with ``busy``,
    of the busy path: the most FFMA/HMMA, then the most bytes loaded and stored, then the fewest
    instructions."""
    instrs, labels = func["instrs"], func["labels"]
    blocks = _blocks(func, loop["start"], loop["end"])
    by_start = {a: k for k, (a, b) in enumerate(blocks)}
    index = {ins["offset"]: i for i, ins in enumerate(instrs)}
    # best[k] = (fma work, -instructions, path) of the best path from the head to block k's entry
    best = [None] * len(blocks)
    best[0] = (0, 0, [])
    for k, (a, b) in enumerate(blocks):
        if best[k] is None:
            continue
        work, neg, path = best[k]
        body = list(range(a, b + 1))
        w = work + sum(instrs[i]["cls"] in ("ffma", "hmma") for i in body)
        if busy:  # fold bytes in below the FMA count: 1e6 bytes per FMA never ties
            w += sum(mem_bytes(instrs[i]) for i in body) * 1e-6
        here = (w, neg - len(body), path + body)
        if b == loop["end"]:
            return here[2]
        last = instrs[b]
        succ = []
        base = last["opcode"].split(".")[0]
        uncond = last["pred"] is None and "," not in last["operands"].split("`")[0]
        if _is_branch(last) and last["target"] in labels:
            t = index.get(labels[last["target"]])
            if t is not None and t > b and t in by_start:
                succ.append(by_start[t])
            if not uncond and k + 1 < len(blocks):
                succ.append(k + 1)
        elif base in ("EXIT", "RET") and last["pred"] is None:
            pass
        elif k + 1 < len(blocks):
            succ.append(k + 1)
        for s in succ:
            if best[s] is None or here[:2] > best[s][:2]:
                best[s] = here
    return []  # the latch is unreachable along forward edges (should not happen)


def analyze_function(func: dict) -> dict:
    """The hottest loop of one kernel: its class counts over the static body and the lean path."""
    instrs = func["instrs"]
    loops = find_loops(func)
    out = {"instructions": len(instrs), "loops": len(loops), "hot_loop": None}
    best = None
    for lp in loops:
        nested = [o for o in loops if o is not lp and lp["start"] <= o["start"]
                  and o["end"] <= lp["end"] and (o["start"], o["end"]) != (lp["start"], lp["end"])]
        inner = set()
        for o in nested:
            inner.update(range(o["start"], o["end"] + 1))
        own = sum(instrs[i]["cls"] in ("ffma", "hmma") for i in range(lp["start"], lp["end"] + 1)
                  if i not in inner)
        key = (own, -(lp["end"] - lp["start"]))
        if best is None or key > best[0]:
            best = (key, lp, bool(nested))
    if best is None:
        return out
    _, lp, has_nested = best
    body = instrs[lp["start"]:lp["end"] + 1]
    path = [instrs[i] for i in lean_path(func, lp)]
    busy = [instrs[i] for i in lean_path(func, lp, busy=True)]
    out["hot_loop"] = {"head": f"{lp['head']:#06x}", "latch": f"{lp['latch']:#06x}",
                       "nested_loops": has_nested, "body": _mix(body), "lean_path": _mix(path),
                       "busy_path": _mix(busy)}
    return out


def _mix(instrs) -> dict:
    c = count_classes(instrs)
    n = len(instrs)
    # shared-memory wavefronts per warp if conflict-free and without broadcast: 128 bytes each
    wavefronts = sum(max(1, 32 * mem_bytes(i) // 128) for i in instrs
                     if i["cls"][:3] in ("lds", "sts") and i["cls"] != "ldsm")
    work = c["ffma"] + c["hmma"]
    lds = c["lds32"] + c["lds64"] + c["lds128"] + c["ldsm"]
    return {"instructions": n, "counts": c,
            "fma_share": work / n if n else 0.0,
            "ffma_per_lds": c["ffma"] / lds if lds else None,
            "instructions_per_hmma": n / c["hmma"] if c["hmma"] else None,
            "shared_wavefronts": wavefronts}


def tool(name: str) -> str | None:
    """cuobjdump / nvdisasm: on PATH, or from the nvidia-cuda-* pip packages (nvidia/cu*/bin)."""
    found = shutil.which(name)
    if found:
        return found
    try:
        import nvidia
    except ImportError:
        return None
    for root in nvidia.__path__:
        for cand in sorted(pathlib.Path(root).glob(f"*/bin/{name}")):
            return str(cand)
    return None


def compile_cubin(src_file: pathlib.Path, out: pathlib.Path, arch: str, flags=()) -> str:
    """nvcc -cubin with ptxas -v; returns ptxas's report."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise FileNotFoundError("nvcc not found on PATH")
    cmd = [nvcc, "-std=c++17", "-O3", f"-gencode=arch=compute_{arch[3:]},code={arch}",
           "-Xptxas", "-v", "-cubin", *flags, str(src_file), "-o", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nvcc failed:\n{done.stderr[-4000:]}")
    return done.stdout + done.stderr


def disassemble(cubin: pathlib.Path) -> str:
    nvdisasm = tool("nvdisasm")
    if nvdisasm is None:
        raise FileNotFoundError("nvdisasm not found: pip install nvidia-cuda-nvdisasm "
                                "(the 'sass' extra)")
    done = subprocess.run([nvdisasm, "-c", str(cubin)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nvdisasm failed: {done.stderr[-2000:]}")
    return done.stdout


def demangle(names: list) -> list:
    """Readable kernel names: namespaces, std::integral_constant and the parameter list dropped."""
    raw = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True,
                         text=True).stdout.splitlines() if shutil.which("c++filt") else names
    if len(raw) != len(names):
        raw = names
    return [clean_name(n) for n in raw]


def clean_name(n: str) -> str:
    """A demangled name made readable: ``void cucnn::f<std::integral_constant<int, 4>>(int)`` ->
    ``f<4>`` (also for names other tools demangled, e.g. the sim profiler's)."""
    n = n.replace("cucnn::", "")
    n = re.sub(r"std::integral_constant<int, (\d+)>", r"\1", n)
    n = n.removeprefix("void ")
    depth = 0
    for i, ch in enumerate(n):  # cut the parameter list: the first '(' outside <...>
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            return n[:i]
    return n


def sass_report_cubin(cubin: pathlib.Path, ptxas_text: str = "") -> list:
    """One dict per kernel of a cubin: resources (from ptxas's report when given) + hot loop."""
    funcs = parse_sass(disassemble(cubin))
    res = {r["mangled"]: r for r in parse(ptxas_text)} if ptxas_text else {}
    names = demangle(list(funcs))
    rows = []
    for (mangled, func), name in zip(funcs.items(), names):
        r = res.get(mangled, {"registers": None, "stack": None, "spill_stores": None,
                              "spill_loads": None, "smem": None})
        row = {"name": name, "mangled": mangled,
               **{k: r[k] for k in ("registers", "stack", "spill_stores", "spill_loads", "smem")}}
        row["occupancy"] = register_occupancy(r["registers"]) if r["registers"] else None
        row.update(analyze_function(func))
        rows.append(row)
    return sorted(rows, key=lambda r: r["name"])


def sass_report(src: pathlib.Path, arch: str = "sm_90") -> list:
    """Every kernel of the CUDA module (csrc/bindings.cpp) for one architecture."""
    import pybind11
    with tempfile.TemporaryDirectory() as tmp:
        tu = pathlib.Path(tmp) / "bindings_cuda.cu"
        tu.write_text(f'#include "{src / "csrc" / "bindings.cpp"}"\n')
        cubin = pathlib.Path(tmp) / "k.cubin"
        text = compile_cubin(tu, cubin, arch, [
            "-DCUCNN_MODULE_NAME=_cuda", "-isystem", pybind11.get_include(),
            "-isystem", sysconfig.get_paths()["include"], f"-I{src / 'csrc'}",
            f"-I{src / 'csrc' / 'simt'}"])
        return sass_report_cubin(cubin, text)


def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def format_sass(rows: list) -> str:
    """One line per kernel: resources and the hot loop's static body and lean path."""
    head = (f"{'kernel':<64}{'regs':>5}{'spill':>6}{'occ≤':>5} | {'loop':>5}{'FFMA':>5}{'HMMA':>5}"
            f"{'LDS':>5}{'LDG':>5}{'STS':>4}{'BAR':>4}{'int':>5}{'ctl':>4}{'oth':>5}"
            f"{'fma%':>6}{'F:LDS':>6} | {'lean':>5}{'fma%':>6} | {'busy':>5}{'fma%':>6}")
    lines = [head]
    for r in rows:
        lp = r["hot_loop"]
        spill = (r["spill_stores"] or 0) + (r["spill_loads"] or 0)
        left = (f"{r['name'][:63]:<64}{_fmt(r['registers'], 'd'):>5}{spill:>6}"
                f"{_fmt(r['occupancy'], '.0%'):>5} | ")
        if lp is None:
            lines.append(left + "no loop")
            continue
        b, c = lp["body"], lp["body"]["counts"]
        lds = sum(c[k] for k in ("lds32", "lds64", "lds128", "ldsm"))
        ldg = sum(c[k] for k in ("ldg32", "ldg64", "ldg128", "ldgsts"))
        sts = c["sts32"] + c["sts64"] + c["sts128"]
        lines.append(left + f"{b['instructions']:>5}{c['ffma']:>5}{c['hmma']:>5}{lds:>5}{ldg:>5}"
                     f"{sts:>4}{c['bar']:>4}{c['int']:>5}{c['control']:>4}{c['other']:>5}"
                     f"{b['fma_share']:>6.0%}{_fmt(b['ffma_per_lds'], '.1f'):>6} | "
                     f"{lp['lean_path']['instructions']:>5}{lp['lean_path']['fma_share']:>6.0%} | "
                     f"{lp['busy_path']['instructions']:>5}{lp['busy_path']['fma_share']:>6.0%}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=pathlib.Path, default=None, help="repository root")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--fail-on-spill", action="store_true",
                    help="exit 1 if any kernel spills registers or uses a stack frame")
    ap.add_argument("--sass", action="store_true",
                    help="also disassemble and report each kernel's hottest loop")
    ap.add_argument("--json", type=pathlib.Path, default=None, help="write the rows as JSON")
    args = ap.parse_args(argv)
    src = args.src or find_source(pathlib.Path.cwd())
    if args.sass:
        rows = sass_report(src, args.arch)
        print(f"{len(rows)} kernels, {args.arch}; hot loop = the loop with the most FFMA/HMMA of "
              "its own, counted over its static body; lean and busy: its lean and busy paths")
        print(format_sass(rows))
        if args.json:
            import json
            args.json.write_text(json.dumps({"arch": args.arch, "kernels": rows}, indent=1))
        spilling = [r["name"] for r in rows if r["spill_stores"] or r["spill_loads"]]
        if spilling:
            print("spills in: " + ", ".join(spilling))
        return 1 if spilling and args.fail_on_spill else 0
    rows = parse(compile_report(src, args.arch))
    print(f"{len(rows)} kernels, {args.arch} (occ≤: register-limited occupancy on an H100)")
    print(format_table(rows))
    spilling = [r["name"] for r in rows if r["spill_stores"] or r["spill_loads"]]
    if spilling:
        print("spills in: " + ", ".join(spilling))
    return 1 if spilling and args.fail_on_spill else 0


if __name__ == "__main__":
    sys.exit(main())
