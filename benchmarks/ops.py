"""Per-op benchmarks: every op and direction on a fixed shape suite, each implementation first
checked against the baseline's output, then timed.

    python benchmarks/ops.py --device cuda --suite full --out benchmarks/results/ops-h100.json
    python benchmarks/ops.py --device cpu --suite small --out benchmarks/results/ops-cpu.json
    python benchmarks/ops.py --device sim --suite tiny --reps 3

Implementations per device (the baseline first; ``× base`` in the table is baseline time / time,
above 1 means faster than the baseline):
  cuda: torch-cudnn (cuDNN, TF32 off; PyTorch's own kernels for pooling, ReLU, softmax and
        cross-entropy), torch-cudnn-tf32, cucnn (our kernels, TF32 off), cucnn-tf32 (our TF32
        tensor-core convs), cucnn-v0 (the naive kernels),
        cucnn-ref (the CuPy reference path: the oracle's array code on CuPy)
  cpu:  torch-cpu (when PyTorch is installed), cucnn-cpu (the oracle's array code on NumPy)
  sim:  cucnn-cpu, cucnn-sim, cucnn-sim-v0 (the kernels on the SIMT runtime; its times are for
        keeping the script honest, not for speed)
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import cucnn  # noqa: E402
from cucnn import _backend, testing  # noqa: E402
from cucnn.ops import bench_cases  # noqa: E402

# ---- benchmark cases: from the op registry ---------------------------------------------------------

# Each op's OpSpec.bench lists its cases per suite (cucnn.ops.bench_cases): a new op with a bench
# function is benchmarked here, and predicted by benchmarks/model.py, without editing either.


def suite(name: str) -> list:
    """The registry's cases of a suite (full, small on cpu in minutes, tiny on sim in seconds),
    conv2d first."""
    return sorted(bench_cases(name), key=lambda c: c.op != "conv2d")


@dataclass
class Case:
    op: str
    direction: str
    shape: str
    make: object  # rng -> dict of host float32/int64 arrays
    impls: dict = field(default_factory=dict)  # name -> (timer kind, convert, run)
    flops: float = 0.0  # for GFLOP/s (conv)
    bytes: float = 0.0  # for GB/s (memory-bound ops)
    reduce_len: int = 1
    label: str = ""


def _cucnn(device, reference=False, tf32=False):
    """(timer kind, convert, call wrapper) for our implementations on a device; ``tf32``: with
    ``cucnn.backends.allow_tf32`` on (the TF32 tensor-core convs), else off (fp32)."""
    xp = _backend.xp_of(device)

    def convert(host):
        return {k: (xp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in host.items()}

    def wrap(fn):
        def run(inp):
            with cucnn.backends.flags(allow_tf32=tf32):
                if reference:
                    with _backend.use_reference_path(True):
                        return fn(inp)
                return fn(inp)
        return run
    return ("cupy" if device == "cuda" else "host"), convert, wrap


def _torch_impl(torch, device, tf32=None):
    def convert(host):
        return {k: (torch.from_numpy(v).to(device) if isinstance(v, np.ndarray) else v)
                for k, v in host.items()}

    def wrap(fn):
        def run(inp):
            if tf32 is not None:
                torch.backends.cudnn.allow_tf32 = tf32
                torch.backends.cuda.matmul.allow_tf32 = tf32
            return fn(inp)
        return run
    return ("torch" if device == "cuda" else "host"), convert, wrap


def implementations(device: str, torch):
    """[(name, timer kind, convert, wrap, version, ours)] for a benchmark device, baseline first;
    ``ours`` is the cucnn device an implementation of ours runs on, None for PyTorch's."""
    out = []
    if device == "cuda":
        if torch is not None and torch.cuda.is_available():
            torch.backends.cudnn.benchmark = True
            out.append(("torch-cudnn", *_torch_impl(torch, "cuda", False), None, None))
            out.append(("torch-cudnn-tf32", *_torch_impl(torch, "cuda", True), None, None))
        out += [("cucnn", *_cucnn("cuda"), 1, "cuda"),
                ("cucnn-tf32", *_cucnn("cuda", tf32=True), 1, "cuda"),
                ("cucnn-v0", *_cucnn("cuda"), 0, "cuda"),
                ("cucnn-ref", *_cucnn("cuda", reference=True), 1, "cuda")]
    elif device == "cpu":
        if torch is not None:
            out.append(("torch-cpu", *_torch_impl(torch, "cpu"), None, None))
        out.append(("cucnn-cpu", *_cucnn("cpu"), 1, "cpu"))
    elif device == "sim":
        out += [("cucnn-cpu", *_cucnn("cpu"), 1, "cpu"),
                ("cucnn-sim", *_cucnn("sim"), 1, "sim"),
                ("cucnn-sim-v0", *_cucnn("sim"), 0, "sim")]
    else:
        raise ValueError(f"unknown device {device!r}")
    return out


def make_case(bc, device, torch) -> Case:
    """A registry BenchCase with this device's implementations attached. Conv cases are rated in
    GFLOP/s (bc.flops), the others in GB/s (bc.bytes)."""
    conv = bc.op == "conv2d"
    case = Case(bc.op, bc.direction, bc.shape, bc.make, flops=bc.flops if conv else 0.0,
                bytes=0.0 if conv else bc.bytes, reduce_len=bc.reduce_len, label=bc.label)
    for name, kind, convert, wrap, version, dv in implementations(device, torch):
        if "tf32" in name and not bc.tf32:  # TF32 changes nothing outside matrix products
            continue
        if dv:
            case.impls[name] = (kind, convert,
                                wrap(lambda i, dv=dv, v=version: bc.run(dv, i, v)))
        elif bc.torch is not None:
            case.impls[name] = (kind, convert, wrap(lambda i: bc.torch(torch, i)))
    return case


# ---- peaks, checks, runs --------------------------------------------------------------------------


def measure_peaks(device: str, timer_for) -> dict:
    """One device-to-device copy (GB/s, bytes read + written) and one float32 GEMM (GFLOP/s)."""
    if device == "cuda":
        xp, n_copy, n_gemm = _backend.cupy(), 1 << 28, 4096
    else:
        xp, n_copy, n_gemm = np, 1 << 25, 1024
    a = xp.ones(n_copy // 4, dtype=np.float32)
    b = xp.empty_like(a)
    m = xp.ones((n_gemm, n_gemm), dtype=np.float32)
    timer = timer_for("cupy" if device == "cuda" else "host")
    copy = _common.measure(timer, lambda _: (lambda: xp.copyto(b, a)), [None], reps=10)
    gemm = _common.measure(timer, lambda _: (lambda: xp.matmul(m, m)), [None], reps=10)
    return {"copy_gbps": 2 * n_copy / (copy["ms_hot"] / 1e3) / 1e9,
            "gemm_gflops": 2 * n_gemm ** 3 / (gemm["ms_hot"] / 1e3) / 1e9}


def _host(a):
    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    return _backend.to_numpy(a)


def run_case(case, device, timer_for, reps, rotate, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    hosts = [case.make(rng) for _ in range(rotate)]
    rows, ref = [], None
    base_name = next(iter(case.impls))
    for name, (kind, convert, run) in case.impls.items():
        inputs = [convert(h) for h in hosts]
        row = {"op": case.op, "direction": case.direction, "shape": case.shape, "impl": name}
        try:
            out = _host(run(inputs[0]))
            if ref is None:
                ref = out
                row["check"] = "baseline"
            else:
                rtol = testing.tolerance(case.reduce_len) * (4 if device == "cuda" else 1)
                if "tf32" in name:
                    rtol = 5e-3
                testing.assert_close(out, ref, rtol=rtol, name=f"{case.op} {case.direction} "
                                     f"{name} vs {base_name}")
                row["check"] = "ok"
        except AssertionError as e:
            row["check"] = "MISMATCH: " + str(e).splitlines()[0][:200]
            rows.append(row)
            continue
        row.update(_common.measure(timer_for(kind), lambda inp: (lambda: run(inp)), inputs,
                                   reps=reps))
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", choices=["cuda", "cpu", "sim"], default="cpu")
    ap.add_argument("--suite", choices=["full", "small", "tiny"], default="small")
    ap.add_argument("--out", default=None, help="JSON file; the .md table and .png chart go "
                    "beside it")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rotate", type=int, default=3, help="input copies rotated in cold runs")
    ap.add_argument("--only", default=None, help="only ops whose name contains this")
    ap.add_argument("--no-model", action="store_true",
                    help="leave out the roofline predictions (benchmarks/model.py)")
    args = ap.parse_args(argv)

    torch = _common.torch_or_none()
    if args.device == "cuda" and not cucnn.cuda.is_available():
        print("ops.py: --device cuda needs a GPU with cucnn._cuda and CuPy", file=sys.stderr)
        return 2
    if args.device == "sim" and not cucnn.sim.is_available():
        print("ops.py: --device sim needs cucnn._sim", file=sys.stderr)
        return 2
    env = _common.environment(args.device)
    env["keep_host_memory"] = _backend.keep_host_memory()  # as `cucnn train` does
    timers = {}

    def timer_for(kind):
        if kind not in timers:
            timers[kind] = _common.HostTimer() if kind == "host" else \
                _common.CudaTimer(kind, env.get("l2_bytes", 0))
        return timers[kind]

    peaks = measure_peaks(args.device, timer_for)
    bench = [bc for bc in suite(args.suite) if not args.only or args.only in bc.op]
    cases = [make_case(bc, args.device, torch) for bc in bench]
    if torch is None:
        print("ops.py: PyTorch is not installed; its rows are left out", file=sys.stderr)
    rows = []
    for c in cases:
        got = run_case(c, args.device, timer_for, args.reps, args.rotate)
        base = next((r["ms"] for r in got if r.get("check") == "baseline" and "ms" in r), None)
        for r in got:
            if "ms" not in r:
                continue
            if c.flops:
                r["gflops"] = c.flops / (r["ms"] / 1e3) / 1e9
                r["peak_share"] = r["gflops"] / peaks["gemm_gflops"]
            else:
                r["gbps"] = c.bytes / (r["ms"] / 1e3) / 1e9
                r["peak_share"] = r["gbps"] / peaks["copy_gbps"]
            if base:
                r["vs_baseline"] = base / r["ms"]
            print(_line(r), flush=True)
        rows += got
    payload = {"env": env, "suite": args.suite, "peaks": peaks, "rows": rows,
               "baseline": next(iter(cases[0].impls)) if cases else None}
    if not args.no_model:  # predictions, kept apart from the measured rows
        payload["predicted"], payload["model_sass"] = predictions(bench)
    bad = [r for r in rows if r.get("check", "").startswith("MISMATCH")]
    if args.out:
        out = _common.write_json(args.out, payload)
        out.with_suffix(".md").write_text(markdown(payload))
        chart(payload, out.with_suffix(".png"))
        print(f"wrote {out}, {out.with_suffix('.md')}", file=sys.stderr)
    for r in bad:
        print(f"{r['op']} {r['direction']} {r['shape']} {r['impl']}: {r['check']}",
              file=sys.stderr)
    return 1 if bad else 0


def predictions(bench) -> tuple:
    """Rows "model (H100, predicted)" / "model (H200, predicted)" for the cases (model.py), with
    the SASS of the committed kernel report (benchmarks/results/kernels-sm90.json) when present."""
    import model
    sass, src = model.load_sass(Path(__file__).resolve().parent / "results" / "kernels-sm90.json",
                                compile=False)
    if not sass:
        src = "no SASS (run benchmarks/kernels_report.py): FLOP, byte and launch bounds only"
    keep = ("op", "direction", "shape", "label", "impl", "ms", "bound", "peak_share", "peak_of")
    return [{k: r[k] for k in keep} for r in model.predict_all(bench, sass)], src


def _line(r) -> str:
    rate = f"{r['gflops']:9.1f} GFLOP/s" if "gflops" in r else f"{r['gbps']:9.1f} GB/s   "
    vs = f"{r['vs_baseline']:6.2f}x" if "vs_baseline" in r else "      -"
    return (f"{r['op']:<14}{r['direction']:<6}{r['shape']:<34}{r['impl']:<18}"
            f"{r['ms']:9.3f} ms {rate} {vs}  {r['check']}")


def markdown(payload: dict) -> str:
    env = payload["env"]
    lines = [f"# Op benchmarks: {env['device']}, suite {payload['suite']}", "",
             *_common.env_lines(env),
             f"- measured peaks: copy {payload['peaks']['copy_gbps']:.1f} GB/s, float32 GEMM "
             f"{payload['peaks']['gemm_gflops']:.1f} GFLOP/s", "",
             "Cold: median (min–max) of runs with the cache flushed and inputs rotated; hot: "
             "median of back-to-back runs on one input. `× base` = baseline time / time "
             f"(baseline: {payload['baseline']}; above 1 is faster). % peak: of the GEMM for "
             "conv, of the copy for the rest.", "",
             "| op | dir | shape | impl | cold ms (min–max) | hot ms | rate | % peak | × base "
             "| check |", "|---|---|---|---|---|---|---|---|---|---|"]
    predicted = {}
    for p in payload.get("predicted", []):
        predicted.setdefault((p["op"], p["direction"], p["shape"]), []).append(p)
    if predicted:
        lines[-2:-2] = [f"Rows `model (…, predicted)` are roofline predictions "
                        f"(benchmarks/model.py; SASS: {payload.get('model_sass')}), not "
                        "measurements: their time is in the cold column, % peak is of that GPU's "
                        "fp32 FLOPs (conv) or HBM bandwidth.", ""]
    rows = payload["rows"]
    for n, r in enumerate(rows):
        key = (r["op"], r["direction"], r["shape"])
        last = n + 1 == len(rows) or (rows[n + 1]["op"], rows[n + 1]["direction"],
                                      rows[n + 1]["shape"]) != key
        _row_md(lines, r)
        for p in predicted.get(key, []) if last else []:
            lines.append(f"| {p['op']} | {p['direction']} | {p['shape']} | {p['impl']} | "
                         f"{p['ms']:.4f} | – | – | {100 * p['peak_share']:.1f} | – | "
                         f"predicted, {p['bound']}-bound |")
    return "\n".join(lines) + "\n"


def _row_md(lines, r) -> None:
    if "ms" not in r:
        lines.append(f"| {r['op']} | {r['direction']} | {r['shape']} | {r['impl']} | – | – "
                     f"| – | – | – | {r['check']} |")
        return
    rate = f"{r['gflops']:.1f} GFLOP/s" if "gflops" in r else f"{r['gbps']:.1f} GB/s"
    vs = f"{r['vs_baseline']:.2f}" if "vs_baseline" in r else "–"
    lines.append(f"| {r['op']} | {r['direction']} | {r['shape']} | {r['impl']} | "
                 f"{r['ms']:.3f} ({r['ms_min']:.3f}–{r['ms_max']:.3f}) | {r['ms_hot']:.3f} | "
                 f"{rate} | {100 * r['peak_share']:.1f} | {vs} | {r['check']} |")


def chart(payload: dict, path) -> None:
    """Per conv shape and direction, the ratio to the baseline of each of our implementations."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [r for r in payload["rows"] if "vs_baseline" in r and r["check"] != "baseline"]
    key = "vs_baseline"
    xlabel = f"speed relative to {payload['baseline']} (baseline time / time; >1 faster)"
    title = f"cucnn vs {payload['baseline']}"
    if not rows:  # one implementation only (no PyTorch here): its share of the measured peak
        rows = [r for r in payload["rows"] if r.get("peak_share", 0) > 0]
        key = "peak_share"
        xlabel = "share of the measured peak (float32 GEMM for conv, copy for the rest)"
        title = "cucnn (no baseline installed)"
    if not rows:
        return
    impls = sorted({r["impl"] for r in rows})
    groups = list(dict.fromkeys((r["op"], r["direction"], r["shape"]) for r in rows))
    fig, ax = plt.subplots(figsize=(12, 0.28 * len(groups) * max(len(impls), 1) / 2 + 2))
    h = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        vals = {(r["op"], r["direction"], r["shape"]): r[key] for r in rows
                if r["impl"] == impl}
        ys = [i + k * h for i in range(len(groups))]
        ax.barh(ys, [vals.get(g, 0) for g in groups], height=h, label=impl)
    ax.set_yticks([i + 0.4 - h / 2 for i in range(len(groups))])
    ax.set_yticklabels([f"{o} {d} {s}" for o, d, s in groups], fontsize=6)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(f"{title} on {payload['env'].get('gpu') or payload['env']['cpu']}")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
