"""The kernel report: every kernel's machine code, its memory behaviour on sim, and roofline
predictions for every benchmark case, in one Markdown + JSON pair.

    python benchmarks/kernels_report.py --out benchmarks/results/kernels-sm90

Needs nvcc and nvdisasm (the "sass" extra) to read the machine code; uses the memory profiler
(cucnn.sim.profile, the profiling sim build) when this build has it, and says so when it does not.
Everything in it is derived from the source tree: rerun after changing a kernel.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import model  # noqa: E402

from cucnn.ops import bench_cases, conv2d  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Representative conv layers: (label, full shape, the shape profiled on sim). The profiling sim
# runs at about 1-2 MFLOP/s, so layers are profiled at batch 1 (LeNet: 8) and the ResNet/VGG layers
# with 64 channels (VGG also at 28x28); the tiles stay those of the full layer, and per-request
# figures (sector efficiency, wavefronts and bank conflicts per request) are per-tile properties.
REPRESENTATIVE = [
    ("lenet-conv1", (64, 1, 28, 28, 6, 5, 5, 1, 2), (8, 1, 28, 28, 6, 5, 5, 1, 2)),
    ("lenet-conv2", (64, 6, 14, 14, 16, 5, 5, 1, 0), (8, 6, 14, 14, 16, 5, 5, 1, 0)),
    ("resnet50-3x3-14", (32, 256, 14, 14, 256, 3, 3, 1, 1), (1, 64, 14, 14, 64, 3, 3, 1, 1)),
    ("vgg-56", (16, 256, 56, 56, 256, 3, 3, 1, 1), (1, 64, 28, 28, 64, 3, 3, 1, 1)),
    # the remaining tiles: dgrad 128x32 (C = 32), fwd 128x32 (K = 32), strided dgrad 256x16
    ("3x3-26", (64, 32, 26, 26, 64, 3, 3, 1, 0), (1, 32, 14, 14, 64, 3, 3, 1, 0)),
    ("speech", (16, 1, 161, 700, 32, 5, 20, 2, 0), (1, 1, 41, 100, 32, 5, 20, 2, 0)),
]


def _pct(v, digits=0):
    return "–" if v is None else f"{100 * v:.{digits}f}%"


def _num(v, spec=".1f"):
    return "–" if v is None else format(v, spec)


def sass_table(kernels: list) -> list:
    lines = ["| kernel | regs | spill B | occ ≤ | loop instr (body / busy / lean) | FFMA | HMMA | "
             "LDS 32/64/128 | LDG 32/64/128 | STS | LDGSTS | BAR | int | ctl | other | "
             "FMA share (body / busy / lean) | FFMA:LDS | instr/HMMA |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in kernels:
        spill = (r.get("spill_stores") or 0) + (r.get("spill_loads") or 0)
        head = (f"| `{r['name']}` | {_num(r.get('registers'), 'd')} | {spill} | "
                f"{_pct(r.get('occupancy'))} |")
        lp = r.get("hot_loop")
        if not lp:
            lines.append(head + " no loop |" + " |" * 13)
            continue
        b, busy, lean = lp["body"], lp["busy_path"], lp["lean_path"]
        c = b["counts"]
        lines.append(
            head + f" {b['instructions']} / {busy['instructions']} / {lean['instructions']} | "
            f"{c['ffma']} | {c['hmma']} | {c['lds32']}/{c['lds64']}/{c['lds128']} | "
            f"{c['ldg32']}/{c['ldg64']}/{c['ldg128']} | {c['sts32'] + c['sts64'] + c['sts128']} | "
            f"{c['ldgsts']} | {c['bar']} | {c['int']} | {c['control']} | {c['other']} | "
            f"{_pct(b['fma_share'])} / {_pct(busy['fma_share'])} / {_pct(lean['fma_share'])} | "
            f"{_num(b['ffma_per_lds'])} | {_num(b['instructions_per_hmma'])} |")
    return lines


def tile_of(name: str) -> str:
    """A conv GEMM kernel's pass and tile: ``conv_gemm_kernel<64, 64, FwdLoadAT<64, int>, ...``
    -> ``fwd 64x64``; ``conv_tc_kernel<TcTile<128, 128, 64, 32>, TcDgradA<true>, ...`` ->
    ``tf32 dgrad-strided 128x128``; 64-bit gathers, scalar weight loads are named. fp32 dgrad
    (forward's loaders with ``DgradPhaseStore``) -> ``dgrad 128x128``."""
    m = re.match(r"conv_gemm_kernel<(\d+), ?(\d+), ?(Fwd|Dgrad|Wgrad)LoadA(1T|ST|T)?", name)
    if m:
        kind = m.group(3).lower() + ("-strided" if m.group(4) == "ST" else "")
        if "DgradPhaseStore" in name:  # dgrad runs forward's GEMM per stride phase (any stride)
            kind = "dgrad"
        extra = [t for t, pat in (("int64", r"<\d+, ?long>"), ("scalar B", r"LoadBT<\d+, ?false>"))
                 if re.search(pat, name)]
        return f"{kind} {m.group(1)}x{m.group(2)}" + (f" ({', '.join(extra)})" if extra else "")
    m = re.match(r"conv_tc_kernel<TcTile<(\d+), ?(\d+), ?\d+, ?\d+>, ?Tc(Fwd|Dgrad|Wgrad)A(<true>)?",
                 name)
    if m:
        kind = m.group(3).lower() + ("-strided" if m.group(4) else "")
        return f"tf32 {kind} {m.group(1)}x{m.group(2)}"
    return name


def _is_conv_gemm(r) -> bool:
    lp = r.get("hot_loop")
    return bool(r["name"].startswith(("conv_gemm_kernel", "conv_tc_kernel")) and lp and
                lp["body"]["counts"]["ffma"] + lp["body"]["counts"]["hmma"])


def conv_summary(kernels: list, profiles: dict | None = None) -> list:
    """Per conv GEMM kernel (pass and tile; fp32 and TF32; the 32-bit-gather instantiations the
    benchmark shapes run, the int64 ones are in the full table): the busy path, its FFMA/HMMA share
    and instructions per FFMA/HMMA, and the profiler's figures for it (from the representative
    layer it was first profiled on)."""
    lines = ["| pass, tile | regs | occ ≤ | busy-path instr / slice | FFMA | HMMA | "
             "FFMA/HMMA share busy (body) | instr / FFMA or HMMA (busy) | FFMA:LDS | int+addr | "
             "shared wavefronts / warp (SASS est.) | global sector eff. (profiler) | "
             "shared wavefronts / req | bank conflicts / req | profiled on |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in kernels:
        if not _is_conv_gemm(r) or re.search(r"<\d+, ?long>", r["name"]):
            continue
        lp = r["hot_loop"]
        busy = lp["busy_path"]
        c = busy["counts"]
        fma = c["ffma"] + c["hmma"]
        lines.append(f"| {tile_of(r['name'])} | {r.get('registers')} | {_pct(r.get('occupancy'))} | "
                     f"{busy['instructions']} | {c['ffma']} | {c['hmma']} | "
                     f"{_pct(busy['fma_share'], 1)} ({_pct(lp['body']['fma_share'], 1)}) | "
                     f"{_num(busy['instructions'] / fma if fma else None, '.2f')} | "
                     f"{_num(busy['ffma_per_lds'])} | {c['int']} | "
                     f"{busy['shared_wavefronts']} | " + _profile_cells(profiles, r["name"]))
    return lines


def _profile_cells(profiles, name) -> str:
    f = model.match_profile(profiles, name) if profiles else None
    if not f:
        return "– | – | – | – |"
    req = f.get("shared_requests") or 0
    return (f"{_pct(f.get('sector_efficiency'))} | {_num(f.get('wavefronts_per_request'), '.2f')}"
            f" | {_num(f['bank_conflicts'] / req if req else None, '.2f')} | "
            f"{f.get('profiled_layer')} {f.get('profiled_shape')} |")


def representative(sass: list, use_profiler: bool, kernel_profiles: dict) -> list:
    """Predictions for the representative layers, fp32 and TF32; with the profiler, their profiles
    (the figures of each kernel also go into kernel_profiles, first profile of a kernel wins)."""
    out = []
    for tf32 in (False, True):
        for label, full, small in REPRESENTATIVE:
            full_cases = conv2d.bench_case(label, *full)
            small_cases = conv2d.bench_case(label, *small)
            for fc, sc in zip(full_cases, small_cases):
                row = {"label": label, "direction": fc.direction, "shape": fc.shape,
                       "tf32": tf32, "profiled_shape": sc.shape, "profile": None,
                       "profiled_kernel": None}
                profiles = None
                if use_profiler:
                    profiles = model.profile_case(sc, tf32=tf32)
                    for name, fig in profiles.items():
                        kernel_profiles.setdefault(name, dict(fig, profiled_shape=sc.shape,
                                                              profiled_layer=label))
                    plan = model.launch_plan(sc, tf32)
                    fig = model.match_profile(profiles, plan[0]["kernel"]) if plan else None
                    row["profile"] = fig
                    row["profiled_kernel"] = plan[0]["kernel"] if plan else None
                    # the full layer's prediction uses the profile only if it is the same kernel
                    if model.launch_plan(fc, tf32)[0]["kernel"] != row["profiled_kernel"]:
                        profiles = None
                    if fig and fig.get("unique_bytes"):
                        row["unique_over_minimum"] = fig["unique_bytes"] / sc.bytes
                row["predicted"] = {g: model.predict_case(fc, g, sass, profiles, tf32=tf32)
                                    for g in ("H100", "H200")}
                out.append(row)
    return out


def _other_runs():
    """(layer, op, profiled shape, fn) for the kernels without benchmark cases: depthwise conv
    (MobileNet-v2 3x3, stride 1 and 2), BatchNorm (training forward and backward), adaptive
    pooling (ResNet's global average, a non-dividing 13 -> 5 window); profiled at batch 1."""
    import numpy as np
    from cucnn import _backend
    from cucnn.ops import adaptive_pool2d as ap, batchnorm as bn, depthwise_conv2d as dw
    xp = _backend.xp_of("sim")
    rng = np.random.default_rng(0)

    def arr(*shape):
        return xp.asarray(rng.standard_normal(shape, dtype=np.float32))

    runs = []
    for st in (1, 2):
        x, w = arr(1, 32, 28, 28), arr(32, 1, 3, 3)
        P = (28 + 2 - 3) // st + 1
        dy = arr(1, 32, P, P)
        g = ((st, st), (1, 1, 1, 1), (1, 1))
        shape = f"1x32x28x28 3x3/{st} p1"
        runs += [(f"mobilenet-dw-s{st}", "fwd", shape, lambda x=x, w=w, g=g: dw.forward(
                     "sim", x, w, None, *g)),
                 (f"mobilenet-dw-s{st}", "dgrad", shape, lambda dy=dy, w=w, g=g: dw.backward_data(
                     "sim", dy, w, (1, 32, 28, 28), *g)),
                 (f"mobilenet-dw-s{st}", "wgrad", shape, lambda dy=dy, x=x, g=g: dw.backward_weight(
                     "sim", dy, x, (32, 1, 3, 3), *g))]
    x, dy = arr(1, 64, 28, 28), arr(1, 64, 28, 28)
    gamma, beta, rm, rv = arr(64), arr(64), arr(64), xp.abs(arr(64)) + 1
    mean, invstd = xp.zeros(64, np.float32), xp.ones(64, np.float32)
    runs += [("batchnorm", "fwd (train)", "1x64x28x28", lambda: bn.train_forward(
                 "sim", x, gamma, beta, rm, rv, 1e-5, 0.1)),
             ("batchnorm", "bwd (train)", "1x64x28x28", lambda: bn.backward(
                 "sim", dy, x, mean, invstd, gamma, True))]
    xg, dyg = arr(1, 512, 7, 7), arr(1, 512, 1, 1)
    x13, dy5 = arr(1, 64, 13, 13), arr(1, 64, 5, 5)
    runs += [("resnet-head-avg", "fwd", "1x512x7x7 -> 1x1", lambda: ap.avg_forward("sim", xg, (1, 1))),
             ("resnet-head-avg", "bwd", "1x512x7x7 -> 1x1",
              lambda: ap.avg_backward("sim", dyg, (1, 512, 7, 7))),
             ("adaptive-13-5", "avg fwd", "1x64x13x13 -> 5x5", lambda: ap.avg_forward("sim", x13, (5, 5))),
             ("adaptive-13-5", "avg bwd", "1x64x13x13 -> 5x5",
              lambda: ap.avg_backward("sim", dy5, (1, 64, 13, 13))),
             ("adaptive-13-5", "max fwd", "1x64x13x13 -> 5x5", lambda: ap.max_forward("sim", x13, (5, 5)))]
    return runs


def other_profiles(use_profiler: bool, kernel_profiles: dict) -> list:
    """Profiler figures of every kernel the depthwise / BatchNorm / adaptive-pool runs launch."""
    if not use_profiler:
        return []
    rows = []
    for layer, d, shape, fn in _other_runs():
        for name, fig in model.profile_call(fn).items():
            kernel_profiles.setdefault(name, dict(fig, profiled_shape=shape, profiled_layer=layer))
            rows.append({"layer": layer, "direction": d, "shape": shape, "kernel": name,
                         "profile": fig})
    return rows


def other_table(rows: list, why_not: str | None) -> list:
    if not rows:
        return [f"No profile ({why_not})."]
    lines = ["| layer | dir | profiled shape | kernel | launches | grid x block | "
             "global sector eff. | shared wavefronts / req | bank conflicts / req | "
             "unique bytes |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        f = r["profile"]
        req = f.get("shared_requests") or 0
        grid = "x".join(map(str, f.get("grid") or [])) + " x " + str((f.get("block") or ["?"])[0])
        lines.append(f"| {r['layer']} | {r['direction']} | {r['shape']} | `{r['kernel']}` | "
                     f"{f['launches']} | {grid} | {_pct(f.get('sector_efficiency'))} | "
                     f"{_num(f.get('wavefronts_per_request'), '.2f')} | "
                     f"{_num(f['bank_conflicts'] / req if req else None, '.2f')} | "
                     f"{f.get('unique_bytes')} |")
    return lines


def rep_table(rows: list) -> list:
    lines = ["| layer | dir | shape | math | kernel (plan) | profiled at | sector eff. | shared wavefronts / req | "
             "bank conflicts / req | unique B / min | H100 ms | H200 ms | bound | % of peak (H100) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        h, h2 = r["predicted"]["H100"], r["predicted"]["H200"]
        main = max(h["launches"], key=lambda ln: ln["s"])
        f = r["profile"] or {}
        req = f.get("shared_requests") or 0
        lines.append(
            f"| {r['label']} | {r['direction']} | {r['shape']} | "
            f"{'TF32' if r.get('tf32') else 'fp32'} | {tile_of(main['kernel'])} "
            f"({main['note']}) | {r['profiled_shape'] if r['profile'] else '–'} | "
            f"{_pct(f.get('sector_efficiency'))} | "
            f"{_num(f.get('wavefronts_per_request'), '.2f')} | "
            f"{_num(f['bank_conflicts'] / req if req else None, '.2f')} | "
            f"{_num(r.get('unique_over_minimum'), '.2f')} | {h['ms']:.4f} | {h2['ms']:.4f} | "
            f"{h['bound']} | {_pct(h['peak_share'], 1)} |")
    return lines


def predictions_table(rows: list) -> list:
    by_case = {}
    for r in rows:
        by_case.setdefault((r["op"], r["direction"], r["shape"]), {})[r["impl"]] = r
    lines = ["| op | dir | shape | kernel / tile | model (H100, predicted) ms | "
             "model (H200, predicted) ms | bound (H100) | % of peak (H100) | tail eff. | "
             "TF32 kernel / tile | model-tf32 (H100, predicted) ms | bound | % of TF32 peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (op, d, shape), g in by_case.items():
        h, h2 = g["model (H100, predicted)"], g["model (H200, predicted)"]
        main = max(h["launches"], key=lambda ln: ln["s"])
        kern = tile_of(main["kernel"]) if op == "conv2d" else main["kernel"]
        sass = "" if main["sass"] else " (no SASS)"
        t = g.get("model-tf32 (H100, predicted)")
        if t:
            tm = max(t["launches"], key=lambda ln: ln["s"])
            tf = (f"{tile_of(tm['kernel'])}{'' if tm['sass'] else ' (no SASS)'} | "
                  f"{t['ms']:.4f} | {t['bound']} | {_pct(t['peak_share'], 1)} |")
        else:
            tf = "– | – | – | – |"
        lines.append(f"| {op} | {d} | {shape} | {kern}{sass} | {h['ms']:.4f} | {h2['ms']:.4f} | "
                     f"{h['bound']} | {_pct(h['peak_share'], 1)} | "
                     f"{_pct(main['tail_efficiency'])} | " + tf)
    return lines


def findings(kernels: list, preds: list, reps: list, others: list = ()) -> list:
    """The worst numbers, found mechanically."""
    out = []
    gemm = [r for r in kernels if _is_conv_gemm(r)]
    if gemm:
        w = min(gemm, key=lambda r: r["hot_loop"]["busy_path"]["fma_share"])
        b = w["hot_loop"]["busy_path"]
        out.append(f"Lowest FMA share in a conv GEMM loop: {tile_of(w['name'])}, "
                   f"{_pct(b['fma_share'], 1)} of {b['instructions']} busy-path instructions per "
                   f"slice ({b['counts']['int']} integer/address; static body "
                   f"{w['hot_loop']['body']['instructions']}).")
    conv = [r for r in preds if r["op"] == "conv2d" and r["impl"].startswith("model (H100")]
    for math_, impl in (("fp32", "model (H100"), ("TF32", "model-tf32 (H100")):
        rows = [r for r in preds if r["op"] == "conv2d" and r["impl"].startswith(impl)]
        if not rows:
            continue
        w = min(rows, key=lambda r: r["peak_share"])
        main = max(w["launches"], key=lambda ln: ln["s"])
        out.append(f"Lowest predicted fraction of peak (H100, {math_}): conv2d {w['direction']} "
                   f"{w['shape']} ({w['label']}), {w['ms']:.3f} ms, {_pct(w['peak_share'], 1)} of "
                   f"{main['unit']} peak, {w['bound']}-bound on {tile_of(main['kernel'])} "
                   f"({main['note']}).")
    if conv:
        mains = [(r, max(r["launches"], key=lambda ln: ln["s"])) for r in conv]
        tails = [(ln["tail_efficiency"], r, ln) for r, ln in mains
                 if ln["tail_efficiency"] is not None]
        if tails:
            t, r, ln = min(tails, key=lambda x: x[0])
            out.append(f"Emptiest GPU: conv2d {r['direction']} {r['shape']} ({r['label']}): "
                       f"{ln['blocks']} blocks of {tile_of(ln['kernel'])} for "
                       f"{132 * ln['blocks_per_sm']} block slots ({ln['blocks_per_sm']} per SM "
                       f"x 132), {_pct(t)} of the GPU busy.")
    prof = [(r["profile"]["bank_conflicts"] / r["profile"]["shared_requests"], r) for r in reps
            if r["profile"] and r["profile"].get("shared_requests")]
    if prof:
        v, r = max(prof, key=lambda x: x[0])
        out.append(f"Most bank conflicts per shared request (conv layers): {r['label']} "
                   f"{r['direction']} {'TF32' if r.get('tf32') else 'fp32'} ({v:.2f} extra "
                   f"wavefronts per request).")
    other = [(r["profile"]["sector_efficiency"], r) for r in others
             if r["profile"].get("sector_efficiency") is not None]
    if other:
        v, r = min(other, key=lambda x: x[0])
        out.append(f"Lowest global sector efficiency outside the conv GEMMs: `{r['kernel']}` "
                   f"({r['layer']} {r['direction']}, {r['shape']}), {_pct(v)}.")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/kernels-sm90",
                    help="path without suffix: .md and .json are written")
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--suite", default="full", choices=["full", "small", "tiny"])
    ap.add_argument("--sass-json", default=None,
                    help="reuse a kernel_report --sass --json output instead of compiling")
    ap.add_argument("--no-profile", action="store_true", help="skip the sim profiler runs")
    args = ap.parse_args(argv)

    if args.sass_json:
        kernels, sass_src = model.load_sass(args.sass_json)
    else:
        from cucnn.tools import kernel_report
        kernels = kernel_report.sass_report(ROOT, args.arch)
        sass_src = f"nvcc {args.arch}, nvdisasm"
    why_not = "profiling skipped (--no-profile)" if args.no_profile else model.ensure_profiler()
    use_profiler = why_not is None
    kernel_profiles = {}
    reps = representative(kernels, use_profiler, kernel_profiles)
    others = other_profiles(use_profiler, kernel_profiles)
    cases = bench_cases(args.suite)
    # per-tile profiler figures (wavefronts per shared request) apply to every case of that kernel
    preds = model.predict_all(sorted(cases, key=lambda c: c.op != "conv2d"), kernels,
                              kernel_profiles or None, tf32=True)
    try:
        nvcc = subprocess.run(["nvcc", "--version"], capture_output=True,
                              text=True).stdout.strip().splitlines()[-1]
    except (OSError, IndexError):
        nvcc = "nvcc not found"
    prof_line = ("memory profiler: cucnn.sim.profile (sim build), representative layers at the "
                 "profiled shapes listed" if use_profiler else
                 f"memory profiler: {why_not} (sector efficiency, bank conflicts and unique "
                 "bytes are left blank; the model uses the analytic minimum bytes and the SASS "
                 "estimate of shared wavefronts)")
    md = [f"# Kernel report: {args.arch}", "",
          f"Generated by `python benchmarks/kernels_report.py --out {args.out}` "
          f"({datetime.date.today().isoformat()}); {nvcc}; SASS: {sass_src}.",
          f"- {prof_line}.",
          "- Predictions are a roofline model (benchmarks/model.py), **not measurements**: H100 SXM "
          "(132 SMs, 1.98 GHz, fp32 67 TFLOP/s, TF32 495 TFLOP/s, HBM 3.35 TB/s) and H200 "
          "(HBM 4.8 TB/s); bounds: FLOPs, DRAM bytes, shared wavefronts (1/clk/SM), issue slots "
          "(4/clk/SM) from the hot loop's busy path x trip count, wave tail, 2.5 us per launch.",
          "- Hot loop: the loop with the most FFMA/HMMA of its own; *body* = its whole static "
          "body, *busy* = the path that does every FMA and moves the most bytes with the fewest "
          "instructions (the steady-state iteration), *lean* = the fewest instructions that still "
          "do every FMA. For the fp32 conv GEMM one iteration is one BK=16 slice, for the TF32 "
          "one (conv_tc_kernel) one BK=32 slice.",
          "- Conv launch plans: the fp32 tile and split-K come from the C++ chooser itself "
          "(`conv2d_plan` binding: forward and dgrad with the workspace the op passes, so they "
          "may split K; partials reduced by conv2d_split_reduce_kernel, wgrad always; dgrad per "
          "stride phase from `conv2d_dgrad_phases`: a forward GEMM on the phase's flipped filter "
          "each); the TF32 "
          "tile and splits from the same chooser over the TF32 tile table (`conv2d_tc_plan` "
          "binding, read by model.conv_tc_plan: forward and dgrad with their split-K workspace, "
          "partials reduced by conv2d_split_reduce_kernel; tile efficiencies from the TF32 "
          "instructions per HMMA). TF32 rows use the TF32 peak where the hot loop has HMMA.",
          "- The SASS shared-wavefront estimate assumes no conflict and no broadcast (an upper "
          "bound: the conv A loads are broadcast across half-warps), so `smem` bounds without "
          "the profiler are pessimistic.", "",
          "## Worst findings", "", *[f"{i + 1}. {f}" for i, f in enumerate(findings(kernels, preds, reps, others))],
          "", "## Conv GEMM kernels, per pass and tile", "",
          *conv_summary(kernels, kernel_profiles), "",
          "## Representative layers", "", *rep_table(reps), "",
          "## Depthwise conv, BatchNorm and adaptive pooling on representative layers (profiler)",
          "", *other_table(others, why_not), "",
          f"## Every benchmark case (suite {args.suite}), predicted", "",
          *predictions_table(preds), "",
          "## Every kernel: resources and hot-loop mix", "", *sass_table(kernels), ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(md))
    payload = {"arch": args.arch, "nvcc": nvcc, "sass_source": sass_src,
               "profiler": use_profiler, "sass": {"kernels": kernels},
               "representative": reps, "other_profiles": others,
               "kernel_profiles": kernel_profiles,
               "predictions": preds}
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
