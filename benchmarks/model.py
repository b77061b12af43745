"""Roofline predictions for every benchmark case: the time each case should take on an H100 SXM
and an H200, from what we can know without a GPU.

    python benchmarks/model.py [--suite full] [--sass-json benchmarks/results/kernels-sm90.json]

For each kernel launch a case makes (its *launch plan*: which kernel, grid, block, dynamic shared
memory and hot-loop trip count, replicated from the C++ launchers in ``launch_plan``):

  flops    FLOPs / the peak of the unit the kernel uses (fp32 FFMA 67 TFLOP/s; TF32 tensor cores
           495 TFLOP/s dense where its hot loop has HMMA)
  dram     bytes / HBM bandwidth (3.35 TB/s H100, 4.8 TB/s H200): the profiler's unique bytes where
           a profile of the case was given, else the analytic minimum (every tensor once)
  smem     shared-memory wavefronts / (1 wavefront per clock per SM): hot-loop LDS/STS from the SASS
           x trip count x warps, times the profiler's wavefronts/ideal where known
  issue    hot-loop instructions (the SASS busy path) x trip count x warps / (4 per clock per SM)
  launch   a fixed 2.5 us per launch

The compute-side bounds (flops, smem, issue) assume all 132 SMs busy; they are divided by the tail
efficiency of the last wave (blocks / (waves x 132 x blocks per SM), blocks per SM from the ptxas
registers, shared memory and block size). Time = max(compute-side, dram) + launch; the bound named
is the largest term. Cases whose plan is unknown (a new op, or a kernel the SASS does not list) get
the flops/dram/launch bounds only. These are predictions, never measurements: rows are labelled
"model (H100, predicted)".
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GPUS = {
    # SMs, boost clock, fp32 FMA peak, TF32 dense tensor peak, HBM bandwidth
    "H100": {"sms": 132, "clock": 1.98e9, "fp32": 67e12, "tf32": 495e12, "hbm": 3.35e12},
    "H200": {"sms": 132, "clock": 1.98e9, "fp32": 67e12, "tf32": 495e12, "hbm": 4.8e12},
}
LAUNCH_S = 2.5e-6
SM_REGS, SM_WARPS, SM_BLOCKS, SM_SMEM, BLOCK_SMEM_RESERVED = 65536, 64, 32, 228 * 1024, 1024
ISSUE_PER_CLOCK = 4  # four schedulers per SM, one warp instruction each per clock
WAVEFRONTS_PER_CLOCK = 1  # 128 bytes of shared memory per clock per SM

# ---- launch plans: the launchers' choices ---------------------------------------------------------

CONV_BK, CONV_THREADS = 16, 256
TC_BK, TC_STAGES, TC_PAD = 32, 3, 8
TC_TABLE_BYTES = 3 * 2 * TC_BK * 16  # conv2d_tc.cuh: 3 tap tables per operand of BK int4
# conv2d_tc.cuh's tiles: (BM, BN, warp tile WM, WN) -> threads = (BM/WM) * (BN/WN) * 32
TC_TILES = {"large": (128, 128, 64, 64), "small": (64, 64, 32, 32), "n32": (128, 32, 32, 32),
            "n16": (128, 16, 32, 16)}
_PASS = {"fwd": "forward", "dgrad": "dgrad", "wgrad": "wgrad"}


def _conv_args(p: dict) -> tuple:
    return ((p["N"], p["C"], p["H"], p["W"]), (p["K"], p["C"], p["R"], p["S"]),
            (p["stride"],) * 2, (p["pad"],) * 4, (p.get("dilation", 1),) * 2)


def conv_plan(direction: str, p: dict):
    """(bm, bn, blocks, splits) of the fp32 implicit GEMM for one pass, from the C++ chooser itself
    (``conv2d_plan`` binding of the sim module: the same conv_plan serves sim and cuda; forward and
    dgrad as the Python op calls them, with a workspace, i.e. split-K allowed). None without sim."""
    try:
        from cucnn import _backend
        mod = _backend.sim_module()
    except Exception:  # noqa: BLE001  (no sim build: the plan is unknown)
        return None
    if mod is None or not hasattr(mod, "conv2d_plan"):
        return None
    return tuple(mod.conv2d_plan(_PASS[direction], *_conv_args(p)))


def conv_tc_plan(direction: str, p: dict):
    """(tile kind, splits) of the TF32 tensor-core kernels, from the C++ chooser itself (the
    ``conv2d_tc_plan`` binding: conv2d.cuh's conv_plan over the TF32 tile table; forward and dgrad
    as the op launches them, with their split-K workspace, so they may split K like wgrad; the
    partials then go through conv2d_split_reduce_kernel, see conv_launches). None without sim."""
    try:
        from cucnn import _backend
        mod = _backend.sim_module()
    except Exception:  # noqa: BLE001  (no sim build: the plan is unknown)
        return None
    if mod is None or not hasattr(mod, "conv2d_tc_plan"):
        return None
    bm, bn, _, splits = mod.conv2d_tc_plan(_PASS[direction], *_conv_args(p))
    kind = next(k for k, t in TC_TILES.items() if t[:2] == (bm, bn))
    return kind, int(splits)


def conv_index32(p: dict) -> bool:
    """conv_index32 (conv2d.cuh): the 32-bit gather instantiations serve the shape."""
    eh = p["pad"] + p["P"] * p["stride"] + p["R"] * p.get("dilation", 1) + p["H"]
    ew = p["pad"] + p["Q"] * p["stride"] + p["S"] * p.get("dilation", 1) + p["W"]
    x = p["N"] * p["C"] * p["H"] * p["W"]
    y = p["N"] * p["K"] * p["P"] * p["Q"]
    w = p["K"] * p["C"] * p["R"] * p["S"]
    return x + y + w + 4 * eh * (ew + 1) < 2 ** 31 - 1


def conv_kernel_name(direction: str, p: dict, bm: int, bn: int, vec: bool = True,
                     index32: bool | None = None) -> str:
    """The demangled name prefix of the conv_gemm_kernel instantiation the launcher runs
    (kernel_report's naming: namespace dropped, aliases expanded). dgrad: ``vec`` and ``index32``
    are its stride phase's (conv2d_dgrad_phases: the phase's flipped filter read as float4s, its
    forward problem's offsets)."""
    ix = "int" if (conv_index32(p) if index32 is None else index32) else "long"
    if direction == "fwd":
        vec = "true" if (p["C"] * p["R"] * p["S"]) % 4 == 0 else "false"
        return f"conv_gemm_kernel<{bm}, {bn}, FwdLoadAT<{bm}, {ix}>, FwdLoadBT<{bn}, {vec}>"
    if direction == "dgrad":  # forward's GEMM on one stride phase (see conv_dgrad_launches)
        return (f"conv_gemm_kernel<{bm}, {bn}, FwdLoadAT<{bm}, {ix}>, FwdLoadBT<{bn}, "
                f"{'true' if vec else 'false'}>, DgradPhaseStore>")
    return f"conv_gemm_kernel<{bm}, {bn}, WgradLoadA<{bm}>, WgradLoadBT<{bn}, {ix}>"


def conv_tc_vec16(direction: str, p: dict) -> tuple:
    """(A, B) copied with 16-byte cp.async (conv2d_tc.cuh, conv_tc_vec16; tensors assumed 16-byte
    aligned, as the allocator gives): forward's w when C*R*S % 4 == 0, wgrad's dy when
    P*Q % 4 == 0."""
    if direction == "fwd":
        return False, (p["C"] * p["R"] * p["S"]) % 4 == 0
    if direction == "wgrad":
        return (p["P"] * p["Q"]) % 4 == 0, False
    return False, False


def conv_tc_kernel_name(direction: str, kind: str, p: dict) -> str:
    bm, bn, wm, wn = TC_TILES[kind]
    ops = {"fwd": "TcFwdA, TcFwdB, TcFwdStore", "wgrad": "TcWgradA, TcWgradB, TcWgradStore",
           "dgrad": f"TcDgradA<{'false' if p['stride'] == 1 else 'true'}>, TcDgradB, "
                    "TcDgradStore"}[direction]
    va, vb = (str(v).lower() for v in conv_tc_vec16(direction, p))
    return f"conv_tc_kernel<TcTile<{bm}, {bn}, {wm}, {wn}>, {ops}, {va}, {vb}>"


def conv_tc_smem(direction: str, kind: str, p: dict) -> int:
    """Dynamic shared memory of the TF32 kernel (TcSmem): per stage A and B, each [BK][rows + 8]
    or, K-major (16-byte path), [rows][BK + 4]; then the tap tables."""
    bm, bn = TC_TILES[kind][:2]
    va, vb = conv_tc_vec16(direction, p)
    def floats(rows, kmajor):
        return rows * (TC_BK + 4) if kmajor else TC_BK * (rows + TC_PAD)
    return TC_STAGES * (floats(bm, va) + floats(bn, vb)) * 4 + TC_TABLE_BYTES


def _split_trips(kdim: int, per_split: int, splits: int, bk: int) -> int:
    """BK-slices summed over the splits of one output tile."""
    return sum(-(-max(0, min(per_split, kdim - z * per_split)) // bk) for z in range(splits))


def conv_dgrad_launches(case) -> list:
    """The fp32 dgrad launches (conv2d.cuh conv2d_backward_data), from the C++ phase plan itself
    (``conv2d_dgrad_phases`` of the sim module): per stride phase the forward GEMM over the
    phase's pixels and taps (the GEMMs first, the first phase's being the main kernel), the
    kernel that writes the phase's flipped filter, and the split reduction where the phase splits
    K; a zero fill of dx first where some phase no tap reaches. FLOPs and bytes of the case are
    shared among the GEMMs in proportion to their sizes. [] without sim."""
    try:
        from cucnn import _backend
        mod = _backend.sim_module()
    except Exception:  # noqa: BLE001
        return []
    if mod is None or not hasattr(mod, "conv2d_dgrad_phases"):
        return []
    p = case.params
    N, C, H, W, K = (p[k] for k in ("N", "C", "H", "W", "K"))
    zero_fill, phases = mod.conv2d_dgrad_phases(*_conv_args(p))
    sizes = [N * rows * cols * K * tr * ts for (_, _, rows, cols, tr, ts, *_) in phases]
    total = sum(sizes) or 1
    gemms, others = [], []
    for ph, size in zip(phases, sizes):
        _, _, rows, cols, tr, ts, bm, bn, blocks, splits, i32, vec = ph
        m, kdim = N * rows * cols, K * tr * ts
        n_out = m * C
        per_split = -(-(-(-kdim // CONV_BK)) // splits) * CONV_BK
        name = conv_kernel_name("dgrad", p, bm, bn, vec, i32)
        tiles = -(-m // bm) * -(-C // bn)
        share = size / total
        ln = _launch(name, blocks, CONV_THREADS, 2 * CONV_BK * (bm + 4 + bn + 4) * 4 +
                     2 * 2 * CONV_BK * 32,
                     trips=tiles * _split_trips(kdim, per_split, splits, CONV_BK),
                     flops=case.flops * share,
                     bytes_=case.bytes * share + (4.0 * n_out * (splits - 1) if splits > 1 else 0),
                     note=f"tile {bm}x{bn}, phase {rows}x{cols} of {tr}x{ts} taps" +
                     (f", {splits} splits" if splits > 1 else ""))
        ln["trips_total"] = True
        gemms.append(ln)
        others.append(_launch("conv2d_dgrad_weight_kernel", grid_stride_blocks(C * kdim, 256), 256,
                              bytes_=8.0 * C * kdim, note="flipped filter"))
        if splits > 1:
            red = "conv2d_split_reduce_kernel" if p["stride"] == 1 else \
                "conv2d_dgrad_phase_reduce_kernel"
            others.append(_launch(red, grid_stride_blocks(n_out, 256), 256,
                                  bytes_=4.0 * n_out * (splits + 1), note=f"{splits} splits"))
    if zero_fill:
        others.append(_launch("conv2d_dgrad_zero_kernel", grid_stride_blocks(N * C * H * W, 256),
                              256, bytes_=4.0 * N * C * H * W, note="pixels no tap reaches"))
    return gemms + others


def conv_launches(case, tf32: bool = False) -> list:
    """The launches of one conv2d BenchCase: the GEMM (fp32 tile from conv_plan, or the TF32
    tile and splits from conv_tc_plan) and, where it splits K (wgrad always; TF32 forward and
    dgrad when their plan splits), conv2d_split_reduce_kernel."""
    p, d = case.params, case.direction
    N, C, H, W, K, R, S, P, Q = (p[k] for k in ("N", "C", "H", "W", "K", "R", "S", "P", "Q"))
    m, n, kdim = {"fwd": (N * P * Q, K, C * R * S), "dgrad": (N * H * W, C, K * R * S),
                  "wgrad": (K, C * R * S, N * P * Q)}[d]
    n_out = m * n  # output elements (y, dx or dw)
    if tf32:
        plan = conv_tc_plan(d, p)
        if plan is None:
            return []
        kind, splits = plan
        bm, bn, wm, wn = TC_TILES[kind]
        threads = (bm // wm) * (bn // wn) * 32
        bk, name = TC_BK, conv_tc_kernel_name(d, kind, p)
        per_split = -(-(-(-kdim // bk)) // splits) * bk  # conv_plan: ceil(slices / z) slices
        blocks = -(-m // bm) * -(-n // bn) * splits
        smem = conv_tc_smem(d, kind, p)
        note = f"TF32 tile {bm}x{bn}"
    elif d == "dgrad":
        return conv_dgrad_launches(case)
    else:
        plan = conv_plan(d, p)
        if plan is None:
            return []
        bm, bn, blocks, splits = plan
        threads, bk, name = CONV_THREADS, CONV_BK, conv_kernel_name(d, p, bm, bn)
        per_split = -(-(-(-kdim // bk)) // splits) * bk  # conv_plan: ceil(slices / z) slices
        smem = 2 * CONV_BK * (bm + 4 + bn + 4) * 4 + 2 * 2 * CONV_BK * 32
        note = f"tile {bm}x{bn}"
    tiles = -(-m // bm) * -(-n // bn)
    reduce = splits > 1 or d == "wgrad"
    if splits > 1:
        note += f", {splits} splits"
    # the GEMM writes splits partials instead of the output when it splits K
    gemm_bytes = case.bytes + (4.0 * n_out * (splits - 1) if reduce else 0.0) +         (4.0 * n_out if reduce and splits == 1 else 0.0)
    main = _launch(name, blocks, threads, smem, trips=tiles * _split_trips(kdim, per_split,
                                                                          splits, bk),
                   flops=case.flops, bytes_=gemm_bytes, note=note)
    main["trips_total"] = True  # trips: slices summed over all blocks
    plan = [main]
    if reduce:
        plan.append(_launch("conv2d_split_reduce_kernel", grid_stride_blocks(n_out, 256), 256,
                            bytes_=4.0 * n_out * (splits + 1), note=f"{splits} splits"))
    return plan


def grid_stride_blocks(work: int, block: int) -> int:
    return min(-(-work // block), 4096)


def _launch(kernel, blocks, threads, smem=0, trips=None, flops=0.0, bytes_=0.0, note=""):
    return {"kernel": kernel, "blocks": int(blocks), "threads": int(threads), "smem": int(smem),
            "trips": trips, "flops": float(flops), "bytes": float(bytes_), "note": note}


def launch_plan(case, tf32: bool = False) -> list:
    """[launch] for one registry BenchCase (version 1 kernels; ``tf32``: the TF32 tensor-core
    convs, as with cucnn.backends.allow_tf32), or [] when unknown.

    ``kernel`` is the prefix of the demangled SASS name (kernel_report's naming)."""
    p, d = case.params, case.direction
    if case.op == "conv2d":
        return conv_launches(case, tf32)
    if case.op in ("max_pool2d", "avg_pool2d"):
        n = p["N"] * p["C"] * (p["P"] * p["Q"] if d == "fwd" else p["H"] * p["W"])
        kind = "forward" if d == "fwd" else "backward"
        return [_launch(f"{case.op}_{kind}_kernel", grid_stride_blocks(n, 256), 256,
                        bytes_=case.bytes)]
    if case.op == "relu":
        n = p["n"]
        kind = "forward" if d == "fwd" else "backward"
        return [_launch(f"activation_{kind}_kernel<(Act)0, true>",
                        grid_stride_blocks(n // 4 + 1, 256), 256, bytes_=case.bytes)]
    if case.op == "softmax":
        rows, cols = p["rows"], p["cols"]
        kind = "forward" if d == "fwd" else "backward"
        if cols <= 1024:
            per_lane = next(v for v in (1, 2, 4, 8, 16, 32) if 32 * v >= cols)
            return [_launch(f"softmax_{kind}_warp_kernel<false, {per_lane}>", -(-rows // 4), 128,
                            bytes_=case.bytes)]
        return [_launch(f"softmax_{kind}_block_kernel<false>", rows, 512, bytes_=case.bytes)]
    if case.op == "cross_entropy":
        rows, cols = p["rows"], p["cols"]
        if d == "fwd":
            return [_launch("cross_entropy_forward_kernel", -(-rows // 4), 128, bytes_=case.bytes)]
        return [_launch("cross_entropy_backward_kernel", grid_stride_blocks(rows * cols, 256), 256,
                        bytes_=case.bytes)]
    return []


# ---- the model ------------------------------------------------------------------------------------


def find_kernel(sass: list, prefix: str):
    """The SASS row whose demangled name starts with prefix (None if absent)."""
    for r in sass or []:
        if r["name"].startswith(prefix):
            return r
    return None


def blocks_per_sm(row, threads: int, smem: int) -> int:
    warps = -(-threads // 32)
    limits = [SM_WARPS // warps, SM_BLOCKS]
    if row and row.get("registers"):
        per_warp = -(-row["registers"] * 32 // 256) * 256
        limits.append(SM_REGS // (per_warp * warps))
    static = (row or {}).get("smem") or 0
    limits.append(SM_SMEM // (smem + static + BLOCK_SMEM_RESERVED))
    return max(min(limits), 0)


def predict_launch(launch: dict, gpu: dict, sass: list, prof: dict | None = None) -> dict:
    """Bounds (seconds) for one launch; prof: the profiler's figures for this kernel when known
    ({"wavefronts_per_request"} replaces the SASS estimate of shared wavefronts, which assumes
    no conflict and no broadcast; {"dram_factor"}: unique bytes / analytic minimum)."""
    row = find_kernel(sass, launch["kernel"])
    hot = (row or {}).get("hot_loop")
    busy = hot["busy_path"] if hot else None
    warps = -(-launch["threads"] // 32)
    bounds = {}
    unit = "tf32" if busy and busy["counts"]["hmma"] else "fp32"
    if launch["flops"]:
        bounds["flops"] = launch["flops"] / gpu[unit]
    dram_factor = (prof or {}).get("dram_factor") or 1.0
    bounds["dram"] = launch["bytes"] * dram_factor / gpu["hbm"]
    sm_clocks = gpu["sms"] * gpu["clock"]
    if busy and launch["trips"]:
        iters = launch["trips"] * warps  # warp-iterations of the hot loop
        bounds["issue"] = iters * busy["instructions"] / (ISSUE_PER_CLOCK * sm_clocks)
        wf = busy["shared_wavefronts"]
        if (prof or {}).get("wavefronts_per_request"):
            c = busy["counts"]
            shared_ops = sum(c[k] for k in ("lds32", "lds64", "lds128", "sts32", "sts64",
                                              "sts128"))
            wf = shared_ops * prof["wavefronts_per_request"]
        if wf:
            bounds["smem"] = iters * wf / (WAVEFRONTS_PER_CLOCK * sm_clocks)
    per_sm = blocks_per_sm(row, launch["threads"], launch["smem"]) if row else None
    tail = None
    if per_sm:
        slots = gpu["sms"] * per_sm
        waves = -(-launch["blocks"] // slots)
        tail = launch["blocks"] / (waves * slots) if waves else 1.0
        for k in ("flops", "issue", "smem"):
            if k in bounds:
                bounds[k] /= tail
    compute = max((bounds[k] for k in ("flops", "issue", "smem") if k in bounds), default=0.0)
    t = max(compute, bounds["dram"]) + LAUNCH_S
    bounds["launch"] = LAUNCH_S
    bound = max(bounds, key=bounds.get)
    return {"kernel": launch["kernel"], "sass": row["name"] if row else None, "unit": unit,
            "blocks": launch["blocks"], "blocks_per_sm": per_sm, "tail_efficiency": tail,
            "s": t, "bound": bound, "bounds": bounds, "note": launch["note"]}


def predict_case(case, gpu_name: str, sass: list, profiles: dict | None = None,
                 tf32: bool = False) -> dict:
    """The predicted time of one registry BenchCase on one GPU: the sum over its launches.
    profiles: {kernel prefix: profiler figures} (see ``profile_case``); tf32: the TF32
    tensor-core plan (conv2d; impl "model-tf32 (GPU, predicted)")."""
    gpu = GPUS[gpu_name]
    plan = launch_plan(case, tf32)
    if not plan:  # unknown op: a single launch bounded by FLOPs and minimum bytes
        plan = [_launch("?", 0, 0, flops=case.flops, bytes_=case.bytes, note="no launch plan")]
    launches = [predict_launch(ln, gpu, sass, match_profile(profiles, ln["kernel"]))
                for ln in plan]
    t = sum(ln["s"] for ln in launches)
    main = max(launches, key=lambda ln: ln["s"])
    peak = case.flops / t / gpu[main["unit"]] if case.flops else case.bytes / t / gpu["hbm"]
    return {"op": case.op, "direction": case.direction, "shape": case.shape, "label": case.label,
            "impl": f"model{'-tf32' if tf32 else ''} ({gpu_name}, predicted)", "ms": t * 1e3, "bound": main["bound"],
            "peak_share": peak, "peak_of": "fp32/tf32 FLOPs" if case.flops else "HBM bandwidth",
            "launches": launches}


# ---- the memory profiler on sim (when this build has it) ------------------------------------------


def profiler_available() -> bool:
    """cucnn.sim.profile exists (the profiling sim build) and the sim module is built."""
    try:
        import cucnn
    except ImportError:
        return False
    sim = getattr(cucnn, "sim", None)
    return bool(sim is not None and hasattr(sim, "profile") and sim.is_available())


def _get(rec, key, default=None):
    return rec.get(key, default) if isinstance(rec, dict) else getattr(rec, key, default)


def _norm(name: str) -> str:
    """Kernel names compared without namespace, return type, parameters or spaces (the profiler
    names kernels through addr2line -C, the SASS through c++filt)."""
    from cucnn.tools import kernel_report
    name = kernel_report.demangle([name])[0] if name.startswith("_Z") else \
        kernel_report.clean_name(name)
    return name.replace(" ", "")


def summarize_records(records) -> dict:
    """Profiler records (the SIMT_PROFILE JSON's "kernels" list, or objects with those fields)
    -> {normalised kernel name: figures}, summed over launches and source lines:
    global requests, sectors, ideal sectors, sector efficiency (ideal / sectors); shared requests,
    wavefronts, ideal, bank conflicts (wavefronts - ideal), wavefronts per request; unique bytes."""
    if isinstance(records, dict):
        records = records.get("kernels", [])
    out = {}
    for rec in records or []:
        name = _norm(str(_get(rec, "name", "?")))
        k = out.setdefault(name, {"launches": 0, "global_requests": 0, "sectors": 0,
                                  "ideal_sectors": 0, "shared_requests": 0, "wavefronts": 0,
                                  "ideal_wavefronts": 0, "unique_bytes": 0, "bytes": 0,
                                  "grid": _get(rec, "grid"), "block": _get(rec, "block"),
                                  "shared_bytes": _get(rec, "shared_bytes")})
        k["launches"] += int(_get(rec, "launches", 1) or 1)
        k["unique_bytes"] += int(_get(rec, "unique_bytes", 0) or 0)
        for a in _get(rec, "accesses", []) or []:
            k["bytes"] += int(_get(a, "bytes", 0) or 0)
            if _get(a, "space") == "global":
                k["global_requests"] += int(_get(a, "requests", 0) or 0)
                k["sectors"] += int(_get(a, "sectors", 0) or 0)
                k["ideal_sectors"] += int(_get(a, "ideal", 0) or 0)
            elif _get(a, "space") == "shared":
                k["shared_requests"] += int(_get(a, "requests", 0) or 0)
                k["wavefronts"] += int(_get(a, "wavefronts", 0) or 0)
                k["ideal_wavefronts"] += int(_get(a, "ideal", 0) or 0)
    for k in out.values():
        k["sector_efficiency"] = k["ideal_sectors"] / k["sectors"] if k["sectors"] else None
        k["bank_conflicts"] = k["wavefronts"] - k["ideal_wavefronts"]
        k["wavefronts_per_request"] = (k["wavefronts"] / k["shared_requests"]
                                       if k["shared_requests"] else None)
    return out


def match_profile(profiles: dict | None, prefix: str):
    """The profiler figures of the kernel a launch-plan prefix names (None if not profiled)."""
    want = _norm(prefix)
    for name, fig in (profiles or {}).items():
        if name.startswith(want):
            return fig
    return None


def ensure_profiler() -> str | None:
    """Make cucnn.sim.profile() usable from this source tree: an installed package cannot find
    the profiling build itself, so build it with scripts/sanitize.py (when that script knows the
    "profile" build) and point CUCNN_SIM_PROFILE_MODULE at it. Returns why not, or None."""
    import importlib.util
    import os
    if not profiler_available():
        return "profiler not available in this build"
    if os.environ.get("CUCNN_SIM_PROFILE_MODULE"):
        return None
    script = ROOT / "scripts" / "sanitize.py"
    try:
        spec = importlib.util.spec_from_file_location("_kr_sanitize", script)
        sanitize = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sanitize)
        if "profile" not in getattr(sanitize, "FLAGS", {}):
            return f"profiler not available: {script} has no profile build"
        os.environ["CUCNN_SIM_PROFILE_MODULE"] = str(sanitize.build("profile"))
    except (Exception, SystemExit) as e:  # noqa: BLE001  (a failed build is reported, not fatal)
        return f"profiler not available: building it failed ({str(e).strip()[:200]})"
    return None


def profile_case(case, seed: int = 0, tf32: bool = False) -> dict:
    """Run one BenchCase on sim (version 1; ``tf32``: with cucnn.backends.allow_tf32, i.e. the
    tensor-core convs) under cucnn.sim.profile(): summarize_records."""
    import numpy as np
    from cucnn import _backend
    xp = _backend.xp_of("sim")
    host = case.make(np.random.default_rng(seed))
    inputs = {k: (xp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in host.items()}
    return profile_call(lambda: case.run("sim", inputs, 1), tf32)


def profile_call(fn, tf32: bool = False) -> dict:
    """Run fn() under cucnn.sim.profile() (TF32 allowed or not): summarize_records."""
    import cucnn
    with cucnn.backends.flags(allow_tf32=tf32), cucnn.sim.profile() as prof:
        fn()
    return summarize_records(prof.records)


def load_sass(path=None, arch="sm_90", compile=True) -> tuple:
    """(SASS rows, where they came from): a JSON written by kernel_report --json or
    kernels_report.py, else (with ``compile``) a fresh nvcc compile, else none."""
    if path and Path(path).exists():
        data = json.loads(Path(path).read_text())
        try:
            shown = Path(path).resolve().relative_to(ROOT)
        except ValueError:
            shown = path
        return data.get("sass", data).get("kernels", []), str(shown)
    if not compile:
        return [], "no SASS"
    try:
        from cucnn.tools import kernel_report
        return kernel_report.sass_report(ROOT, arch), f"nvcc {arch} (this tree)"
    except (FileNotFoundError, RuntimeError, ImportError) as e:
        return [], f"no SASS ({e})"


def predict_all(cases, sass, profiles=None, gpus=("H100", "H200"), tf32=False) -> list:
    """fp32 rows for every case; with ``tf32`` also TF32 rows for the cases TF32 changes
    (BenchCase.tf32: conv2d)."""
    rows = [predict_case(c, g, sass, profiles) for c in cases for g in gpus]
    if tf32:
        rows += [predict_case(c, g, sass, profiles, tf32=True) for c in cases for g in gpus
                 if getattr(c, "tf32", False) and c.op == "conv2d"]
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=["full", "small", "tiny"], default="full")
    ap.add_argument("--sass-json", default=None, help="kernel_report --sass --json output")
    ap.add_argument("--out", default=None, help="write the predictions as JSON")
    args = ap.parse_args(argv)
    from cucnn.ops import bench_cases
    sass, src = load_sass(args.sass_json)
    rows = predict_all(bench_cases(args.suite), sass)
    print(f"# predictions, suite {args.suite}; SASS: {src}")
    for r in rows:
        print(f"{r['op']:<14}{r['direction']:<6}{r['shape']:<34}{r['impl']:<24}"
              f"{r['ms']:9.4f} ms  {r['bound']:<7}{100 * r['peak_share']:6.1f}% of peak")
    if args.out:
        Path(args.out).write_text(json.dumps({"sass": src, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
