"""The roofline model (benchmarks/model.py) and the kernel report (benchmarks/kernels_report.py):
launch plans agree with the launchers, bounds are the formulas they claim, and the profiler's
records are consumed when the build has them."""
import contextlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

import cucnn
from cucnn import _backend
from cucnn.ops import bench_cases, conv2d

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


model = _load("model")


def _conv_cases():
    cases = [c for s in ("full", "small", "tiny") for c in bench_cases(s) if c.op == "conv2d"]
    cases += conv2d.bench_case("odd", 3, 5, 9, 7, 17, 3, 2, 2, 1)
    return cases


def _conv_args(p):
    return ((p["N"], p["C"], p["H"], p["W"]), (p["K"], p["C"], p["R"], p["S"]),
            (p["stride"],) * 2, (p["pad"],) * 4, (1, 1))


@pytest.mark.skipif(not cucnn.sim.is_available(), reason="cucnn._sim did not build")
def test_conv_plans_are_the_launchers():
    """The fp32 plans are conv2d_plan's (the C++ chooser): grid, tile and split-K, the workspace
    the launcher asks for, and the split reduction wherever K is split (always for wgrad)."""
    mod = _backend.sim_module()
    ws = {"fwd": mod.conv2d_forward_workspace, "dgrad": mod.conv2d_dgrad_workspace,
          "wgrad": mod.conv2d_wgrad_workspace}
    seen = set()
    for c in _conv_cases():
        p, d = c.params, c.direction
        bm, bn, blocks, splits = mod.conv2d_plan(model._PASS[d], *_conv_args(p))
        plan = model.launch_plan(c)
        assert plan[0]["kernel"].startswith(f"conv_gemm_kernel<{bm}, {bn}, ") and \
            plan[0]["blocks"] == blocks and plan[0]["threads"] == 256, (c.shape, d)
        if d == "dgrad":  # one forward GEMM per stride phase (conv2d_dgrad_phases)
            _check_dgrad_plan(mod, c, plan)
            seen.add((d, any(ph[9] > 1 for ph in mod.conv2d_dgrad_phases(*_conv_args(p))[1])))
            continue
        out = {"fwd": p["N"] * p["K"] * p["P"] * p["Q"], "dgrad": p["N"] * p["C"] * p["H"] * p["W"],
               "wgrad": p["K"] * p["C"] * p["R"] * p["S"]}[d]
        need = ws[d](*_conv_args(p))
        assert need == (splits * out if splits > 1 or d == "wgrad" else 0), (c.shape, d)
        reduce = [ln for ln in plan[1:] if ln["kernel"] == "conv2d_split_reduce_kernel"]
        assert len(reduce) == (1 if splits > 1 or d == "wgrad" else 0) and len(plan) == 1 + len(reduce)
        seen.add((d, splits > 1))
    assert {("fwd", True), ("dgrad", True), ("wgrad", True)} <= seen  # split-K is exercised


def _check_dgrad_plan(mod, c, plan):
    """dgrad's launches are its phases': a GEMM each (grid, FLOPs summing to the case's), a
    flipped-filter kernel each, a reduction per split phase, the zero fill where a phase has no
    tap; and the workspace is the filters (float4-aligned each) plus the largest split's partials."""
    p = c.params
    zero_fill, phases = mod.conv2d_dgrad_phases(*_conv_args(p))
    gemms = [ln for ln in plan if ln["kernel"].startswith("conv_gemm_kernel<")]
    assert len(gemms) == len(phases) and sum(ln["flops"] for ln in gemms) == \
        pytest.approx(c.flops), c.shape
    weights = partials = 0
    for ln, (_, _, rows, cols, tr, ts, bm, bn, blocks, splits, _, _) in zip(gemms, phases):
        assert ln["kernel"].startswith(f"conv_gemm_kernel<{bm}, {bn}, FwdLoadAT<") and \
            ln["kernel"].endswith("DgradPhaseStore>") and ln["blocks"] == blocks, c.shape
        out = p["N"] * p["C"] * rows * cols
        weights += -(-p["C"] * p["K"] * tr * ts // 4) * 4
        partials = max(partials, splits * out if splits > 1 else 0)
    names = [ln["kernel"] for ln in plan]
    assert names.count("conv2d_dgrad_weight_kernel") == len(phases)
    assert names.count("conv2d_dgrad_zero_kernel") == int(zero_fill)
    reduces = sum(n in ("conv2d_split_reduce_kernel", "conv2d_dgrad_phase_reduce_kernel")
                  for n in names)
    assert reduces == sum(ph[9] > 1 for ph in phases)
    assert mod.conv2d_dgrad_workspace(*_conv_args(p)) == weights + partials, c.shape


@pytest.mark.skipif(not cucnn.sim.is_available(), reason="cucnn._sim did not build")
def test_dgrad_plan_of_a_strided_conv():
    """Stride 2, 3x3, pad 1 on 9x9: four phases (rows 5/4 x columns 5/4 of 2/1 x 2/1 taps);
    stride 4 with a 1x1 kernel: one phase of 1x1 tap and the zero fill for the other 15."""
    mod = _backend.sim_module()
    c = [k for k in conv2d.bench_case("s2", 2, 3, 9, 9, 8, 3, 3, 2, 1) if k.direction == "dgrad"][0]
    zero_fill, phases = mod.conv2d_dgrad_phases(*_conv_args(c.params))
    assert not zero_fill and [ph[:6] for ph in phases] == [
        (0, 0, 5, 5, 1, 1), (0, 1, 5, 4, 1, 2), (1, 0, 4, 5, 2, 1), (1, 1, 4, 4, 2, 2)]
    _check_dgrad_plan(mod, c, model.launch_plan(c))
    c = [k for k in conv2d.bench_case("s4", 2, 3, 9, 9, 8, 1, 1, 4, 0) if k.direction == "dgrad"][0]
    zero_fill, phases = mod.conv2d_dgrad_phases(*_conv_args(c.params))
    assert zero_fill and [ph[:6] for ph in phases] == [(0, 0, 3, 3, 1, 1)]
    _check_dgrad_plan(mod, c, model.launch_plan(c))


def test_kernel_report_names_the_phase_dgrad():
    """fp32 dgrad runs forward's loaders with DgradPhaseStore: the report calls it dgrad."""
    kr = _load("kernels_report")
    name = "conv_gemm_kernel<128, 128, FwdLoadAT<128, long>, FwdLoadBT<128, false>, DgradPhaseStore>"
    assert kr.tile_of(name) == "dgrad 128x128 (int64, scalar B)"
    assert kr.tile_of(name.replace("DgradPhaseStore", "FwdStore")).startswith("fwd 128x128")


@pytest.mark.skipif(not cucnn.sim.is_available(), reason="cucnn._sim did not build")
def test_tf32_wgrad_splits_match_the_launcher():
    """The TF32 plan the model reads (conv2d_tc_plan: conv_plan over the TF32 tiles): its split
    count times the weights is the workspace conv2d_tc_wgrad_workspace asks for."""
    mod = _backend.sim_module()
    for c in _conv_cases():
        if c.direction != "wgrad":
            continue
        p = c.params
        kind, splits = model.conv_tc_plan("wgrad", p)
        assert splits * p["K"] * p["C"] * p["R"] * p["S"] == \
            mod.conv2d_tc_wgrad_workspace(*_conv_args(p)), c.shape


def test_conv_launch_plans():
    (fwd, dgrad, wgrad) = conv2d.bench_case("t", 2, 3, 10, 9, 40, 3, 3, 1, 1)
    for c in (fwd, dgrad, wgrad):  # the GEMM, then the reduction when K is split
        f = model.launch_plan(c)[0]
        assert f["flops"] == c.flops and f["threads"] == 256 and f["trips"] >= f["blocks"]
        bm, bn = map(int, f["kernel"].split("<")[1].split(", ")[:2])
        assert f["smem"] == 2 * 16 * (bm + 4 + bn + 4) * 4 + 2 * 2 * 16 * 32
    assert model.launch_plan(fwd)[0]["kernel"].endswith("FwdLoadAT<%s, int>, FwdLoadBT<%s, false>"
                                                        % tuple(model.launch_plan(fwd)[0][
                                                            "kernel"].split("<")[1].split(", ")[:2]))
    assert model.launch_plan(dgrad)[0]["kernel"].endswith("DgradPhaseStore>")
    assert model.launch_plan(wgrad)[-1]["kernel"] == "conv2d_split_reduce_kernel"
    # TF32 plans come from conv_plan over the TF32 tile table (conv2d_tc_plan), forward and dgrad
    # with their split-K workspace. fwd GEMM 180 x 40 x 27: no tile fills 132 SMs; 64x64 (3
    # blocks) and 128x16 (6) cost the same at their efficiencies, the tie goes to the earlier tile
    tab = model.TC_TABLE_BYTES
    f, = model.launch_plan(fwd, tf32=True)
    assert (f["kernel"], f["blocks"], f["threads"], f["trips"]) == \
        ("conv_tc_kernel<TcTile<64, 64, 32, 32>, TcFwdA, TcFwdB, TcFwdStore, false, false>", 3,
         128, 3)
    assert f["smem"] == 3 * 32 * (72 + 72) * 4 + tab
    # dgrad GEMM 180 x 3 x 360 (12 slices of 32): 64x64, K split 3 ways (4 slices each), 3 x 3
    # blocks, then the fixed-order reduction of 3 partials of dx (2 x 3 x 10 x 9)
    d, dred = model.launch_plan(dgrad, tf32=True)
    assert (d["kernel"], d["blocks"], d["threads"], d["trips"], d["note"]) == \
        ("conv_tc_kernel<TcTile<64, 64, 32, 32>, TcDgradA<false>, TcDgradB, TcDgradStore, false, "
         "false>", 9, 128, 36, "TF32 tile 64x64, 3 splits")
    assert dred["kernel"] == "conv2d_split_reduce_kernel" and dred["bytes"] == 4.0 * 540 * 4
    # wgrad GEMM 40 x 27 x 180: one 64x64 block; 6 slices, and a split needs at least 4: one
    g, red = model.launch_plan(wgrad, tf32=True)
    assert (g["kernel"], g["blocks"], g["trips"]) == \
        ("conv_tc_kernel<TcTile<64, 64, 32, 32>, TcWgradA, TcWgradB, TcWgradStore, false, false>",
         1, 6)
    assert red["kernel"] == "conv2d_split_reduce_kernel" and red["bytes"] == 4.0 * 1080 * 2
    # the ResNet-50 3x3 14x14 layer at batch 32 (GEMM 6272 x 256 x 2304): 98 blocks of 128x128
    # are under a wave, so forward and dgrad split K 5 ways on 128x128 (490 blocks of 15 slices)
    # rather than take the thin 128x16 tile; each reduces 5 partials of 32 x 256 x 14 x 14
    mid = dict(fwd.params, N=32, C=256, K=256, H=14, W=14, P=14, Q=14)
    for case in conv2d.bench_case("r", 32, 256, 14, 14, 256, 3, 3, 1, 1)[:2]:
        gemm, reduce = model.launch_plan(case, tf32=True)
        assert (gemm["blocks"], gemm["trips"], gemm["note"]) == \
            (490, 98 * 72, "TF32 tile 128x128, 5 splits"), case.direction
        assert reduce["kernel"] == "conv2d_split_reduce_kernel"
        assert reduce["bytes"] == 4.0 * 32 * 256 * 196 * 6
    assert model.conv_tc_plan("fwd", mid) == model.conv_tc_plan("dgrad", mid) == ("large", 5)
    # a ResNet-50 3x3 layer at batch 256 (GEMM 50176 x 256 x 2304): the 128x128 tile
    big = dict(fwd.params, N=256, C=256, K=256, H=14, W=14, P=14, Q=14)
    assert model.conv_tc_plan("fwd", big) == ("large", 1)
    # C*R*S = 2304 and P*Q = 196 are multiples of 4: w (forward) and dy (wgrad) take the 16-byte
    # path, stored K-major ([rows][32 + 4])
    assert model.conv_tc_kernel_name("fwd", "large", big).endswith("TcFwdStore, false, true>")
    assert model.conv_tc_kernel_name("wgrad", "large", big).endswith("TcWgradStore, true, false>")
    assert model.conv_tc_smem("fwd", "large", big) == 3 * (32 * 136 + 128 * 36) * 4 + tab


def _fake_sass(name, registers=64, instructions=500, wavefronts=100, hmma=0, lds128=10):
    counts = {"ffma": 0 if hmma else 256, "hmma": hmma, "lds32": 0, "lds64": 0, "lds128": lds128,
              "sts32": 0, "sts64": 0, "sts128": 0}
    busy = {"instructions": instructions, "counts": counts, "shared_wavefronts": wavefronts}
    return {"name": name, "registers": registers, "smem": 0, "hot_loop": {"busy_path": busy}}


def test_bounds_are_the_stated_formulas():
    gpu = model.GPUS["H100"]
    sass = [_fake_sass("conv_gemm_kernel<64, 64, FwdLoadA<64>, FwdLoadB<64>, FwdStore>")]
    # 64 registers: 2048 per warp, 8 warps a block -> 4 blocks per SM; 529 blocks = 2 waves
    launch = model._launch("conv_gemm_kernel<64, 64, FwdLoadA", 529, 256, 17408, trips=1000,
                           flops=1e8, bytes_=1e6)
    r = model.predict_launch(launch, gpu, sass)
    clocks = 132 * 1.98e9
    tail = 529 / (2 * 132 * 4)
    assert r["blocks_per_sm"] == 4 and r["tail_efficiency"] == pytest.approx(tail)
    assert r["bounds"]["issue"] == pytest.approx(1000 * 8 * 500 / (4 * clocks) / tail)
    assert r["bounds"]["smem"] == pytest.approx(1000 * 8 * 100 / clocks / tail)
    assert r["bounds"]["flops"] == pytest.approx(1e8 / 67e12 / tail)
    assert r["bounds"]["dram"] == pytest.approx(1e6 / 3.35e12)
    assert r["bound"] == "issue" and r["unit"] == "fp32"
    assert r["s"] == pytest.approx(r["bounds"]["issue"] + 2.5e-6)
    # the profiler's wavefronts per request replace the SASS estimate: 10 LDS.128 x 2
    r2 = model.predict_launch(launch, gpu, sass, {"wavefronts_per_request": 2.0})
    assert r2["bounds"]["smem"] == pytest.approx(1000 * 8 * 20 / clocks / tail)
    # HMMA in the hot loop: the TF32 tensor-core peak
    tc = [_fake_sass("conv_gemm_kernel<64, 64, FwdLoadA<64>", hmma=32)]
    assert model.predict_launch(launch, gpu, tc)["unit"] == "tf32"
    # no SASS row: FLOPs, bytes and launch only
    r3 = model.predict_launch(launch, gpu, [])
    assert set(r3["bounds"]) == {"flops", "dram", "launch"} and r3["sass"] is None


def test_every_suite_case_is_predicted_and_unknown_ops_fall_back():
    from cucnn.ops import _spec
    for suite in ("full", "tiny"):
        for c in bench_cases(suite):
            assert model.launch_plan(c), (c.op, c.direction)
            for g in ("H100", "H200"):
                r = model.predict_case(c, g, [])
                assert r["ms"] > 0 and 0 < r["peak_share"] <= 1 and r["impl"] == \
                    f"model ({g}, predicted)"
    new = _spec.BenchCase("negate", "fwd", "x", "7", {}, None, None, bytes=3.35e6)
    r = model.predict_case(new, "H100", [])
    assert r["launches"][0]["note"] == "no launch plan"
    assert r["ms"] == pytest.approx((1e-6 + 2.5e-6) * 1e3) and r["bound"] == "launch"
    h200 = model.predict_case(bench_cases("full")[0], "H200", [])  # relu: DRAM-bound
    assert h200["bound"] == "dram"


SAMPLE = {"kernels": [
    {"name": "_ZN5cucnn16conv_gemm_kernelILi64ELi64ENS_8FwdLoadAILi64EEENS_8FwdLoadBILi64EEENS_"
             "8FwdStoreEEEvNS_9ConvShapeEPKfS8_T3_lillNS_7Cursor3E",
     "grid": [3, 1, 1], "block": [256, 1, 1], "shared_bytes": 17408, "launches": 1,
     "unique_bytes": 4000,
     "accesses": [
         {"file": "conv2d.cuh", "line": 1, "space": "global", "op": "load", "requests": 10,
          "sectors": 80, "ideal": 40, "bytes": 1280},
         {"file": "conv2d.cuh", "line": 2, "space": "shared", "op": "load", "requests": 100,
          "wavefronts": 300, "ideal": 200, "bytes": 51200},
         {"file": "conv2d.cuh", "line": 3, "space": "shared", "op": "store", "requests": 50,
          "wavefronts": 100, "ideal": 100, "bytes": 6400}]}]}


def test_profiler_records_are_summarised():
    s = model.summarize_records(SAMPLE)
    (name, k), = s.items()
    assert name.startswith("conv_gemm_kernel<64,64,FwdLoadA<64>")
    assert k["sector_efficiency"] == 0.5 and k["bank_conflicts"] == 100
    assert k["wavefronts_per_request"] == 400 / 150 and k["unique_bytes"] == 4000
    assert model.match_profile(s, "conv_gemm_kernel<64, 64, FwdLoadA") is k
    assert model.match_profile(s, "conv_gemm_kernel<128, 32, FwdLoadA") is None
    # names as addr2line -C gives them (the sim profiler) match too
    named = [dict(SAMPLE["kernels"][0], name="void cucnn::conv_gemm_kernel<64, 64, cucnn::FwdLoadA"
                  "<64>, cucnn::FwdLoadB<64>, cucnn::FwdStore>(cucnn::ConvShape, float const*, "
                  "float const*, cucnn::FwdStore, long, int, long, long, cucnn::Cursor3)")]
    s2 = model.summarize_records(named)
    assert model.match_profile(s2, "conv_gemm_kernel<64, 64, FwdLoadA")["bank_conflicts"] == 100


def test_launch_plans_match_the_profiled_launches():
    """Where the profiler exists: each tiny-suite conv case launches the kernel, grid and block
    the model's plan says (the tile choice and wgrad splits, as the C++ launcher made them)."""
    why_not = model.ensure_profiler()
    if why_not:
        pytest.skip(why_not)
    for c, tf32 in [(c, t) for c in bench_cases("tiny") if c.op == "conv2d" for t in (0, 1)]:
        prof = model.profile_case(c, tf32=bool(tf32))
        by_name = {}  # strided dgrad launches one kernel once per stride phase
        for ln in model.launch_plan(c, bool(tf32)):
            by_name.setdefault(ln["kernel"], []).append(ln)
        for name, lns in by_name.items():
            fig = model.match_profile(prof, name)
            assert fig is not None, (c.shape, c.direction, tf32, name, list(prof))
            assert fig["launches"] == len(lns), (c.shape, c.direction, name)
            grid = fig["grid"]  # the first launch's
            assert grid[0] * grid[1] * grid[2] == lns[0]["blocks"], (c.shape, c.direction)
            assert fig["block"][0] * fig["block"][1] * fig["block"][2] == lns[0]["threads"]


class _FakeProfile:
    """Stands in for cucnn.sim.profile() in builds without the profiler: records one launch."""
    records = SAMPLE["kernels"]

    def __init__(self):
        self.records = type(self).records


@pytest.mark.skipif(not cucnn.sim.is_available(), reason="cucnn._sim did not build")
def test_kernels_report_with_and_without_the_profiler(tmp_path, monkeypatch):
    kr = _load("kernels_report")
    sass = {"arch": "sm_90", "kernels": [
        _fake_sass("conv_gemm_kernel<64, 64, FwdLoadA<64>, FwdLoadB<64>, FwdStore>")
        | {"occupancy": 0.5, "spill_stores": 0, "spill_loads": 0}]}
    for k in sass["kernels"]:
        b = k["hot_loop"]["busy_path"]
        b.update(fma_share=0.5, ffma_per_lds=8.0, instructions_per_hmma=None)
        b["counts"].update({c: 0 for c in ("ldg32", "ldg64", "ldg128", "ldgsts", "bar", "int",
                                           "control", "other")})
        k["hot_loop"].update(body=b, lean_path=b)
    sj = tmp_path / "sass.json"
    sj.write_text(json.dumps(sass))
    monkeypatch.setattr(kr, "REPRESENTATIVE", [("t", (2, 3, 6, 6, 40, 3, 3, 1, 1),
                                                (1, 3, 6, 6, 40, 3, 3, 1, 1))])
    out = tmp_path / "rep"
    monkeypatch.setattr(kr.model, "ensure_profiler", lambda: "profiler not available in this build")
    assert kr.main(["--out", str(out), "--sass-json", str(sj), "--suite", "tiny"]) == 0
    md = out.with_suffix(".md").read_text()
    assert "profiler not available in this build" in md and "## Worst findings" in md
    data = json.loads(out.with_suffix(".json").read_text())
    assert len(data["representative"]) == 6 and data["profiler"] is False  # fp32 + TF32
    assert {p["impl"] for p in data["predictions"]} == {"model (H100, predicted)",
                                                         "model (H200, predicted)",
                                                         "model-tf32 (H100, predicted)",
                                                         "model-tf32 (H200, predicted)"}
    # with a profiler: its figures reach the table (the fake records one fwd 64x64 launch)
    monkeypatch.setattr(kr.model, "ensure_profiler", lambda: None)
    # the fake records the fp32 forward kernel the plan names for this layer
    fwd_kernel = model.launch_plan(conv2d.bench_case("t", 1, 3, 6, 6, 40, 3, 3, 1, 1)[0])[0]["kernel"]
    monkeypatch.setattr(_FakeProfile, "records", [dict(
        SAMPLE["kernels"][0], name=f"void cucnn::{fwd_kernel}, cucnn::FwdStore>(cucnn::ConvShape)")])
    monkeypatch.setattr(cucnn.sim, "profile", contextlib.contextmanager(
        lambda: (yield _FakeProfile())), raising=False)
    assert kr.main(["--out", str(out), "--sass-json", str(sj), "--suite", "tiny"]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    fwd = data["representative"][0]
    assert fwd["profile"]["sector_efficiency"] == 0.5
    assert "| 50% | 2.67 | 0.67 |" in out.with_suffix(".md").read_text()
