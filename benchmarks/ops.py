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
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import cucnn  # noqa: E402
from cucnn import _backend, testing  # noqa: E402
from cucnn.ops import activation, conv2d, cross_entropy, pool2d, softmax  # noqa: E402

# ---- the shape suite ------------------------------------------------------------------------------

# (label, N, C, H, W, K, R, S, stride, pad)
CONV_FULL = [
    ("lenet-conv1", 64, 1, 28, 28, 6, 5, 5, 1, 2),
    ("lenet-conv2", 64, 6, 14, 14, 16, 5, 5, 1, 0),
    ("lenet-conv1-n256", 256, 1, 28, 28, 6, 5, 5, 1, 2),
    ("lenet-conv2-n256", 256, 6, 14, 14, 16, 5, 5, 1, 0),
    ("3x3-26", 64, 32, 26, 26, 64, 3, 3, 1, 0),
    ("3x3-31", 1024, 24, 31, 31, 64, 3, 3, 1, 1),
    ("cifar-first", 512, 3, 32, 32, 64, 3, 3, 1, 1),
    ("resnet-stem", 32, 3, 224, 224, 64, 7, 7, 2, 3),
    ("resnet-3x3-56", 32, 64, 56, 56, 64, 3, 3, 1, 1),
    ("resnet-1x1-56", 32, 64, 56, 56, 256, 1, 1, 1, 0),
    ("resnet-3x3-28", 32, 128, 28, 28, 128, 3, 3, 1, 1),
    ("resnet-1x1-14", 32, 1024, 14, 14, 256, 1, 1, 1, 0),
    ("resnet-3x3-7", 32, 512, 7, 7, 512, 3, 3, 1, 1),
    ("vgg-224", 16, 64, 224, 224, 64, 3, 3, 1, 1),
    ("vgg-56", 16, 256, 56, 56, 256, 3, 3, 1, 1),
    ("speech", 16, 1, 161, 700, 32, (5, 20), None, 2, 0),
]
# (label, op, N, C, H, W, kernel, stride, pad)
POOL_FULL = [
    ("max-3x3s2p1", "max", 32, 64, 112, 112, 3, 2, 1),
    ("max-2x2s2", "max", 1024, 64, 31, 31, 2, 2, 0),
    ("avg-lenet1", "avg", 64, 6, 28, 28, 2, 2, 0),
    ("avg-lenet2", "avg", 64, 16, 10, 10, 2, 2, 0),
]
RELU_FULL = [("relu", (32, 64, 112, 112))]
ROWS_FULL = [("65536x10", 65536, 10), ("4096x1000", 4096, 1000)]


def _scale_conv(c, n_div, hw_div, ch_max):
    label, N, C, H, W, K, R, S, st, p = c
    S = R[1] if isinstance(R, tuple) else S
    R = R[0] if isinstance(R, tuple) else R
    H2, W2 = max(H // hw_div, R + 1), max(W // hw_div, S + 1)
    return (label, max(1, N // n_div), min(C, ch_max), H2, W2, min(K, ch_max), R, S, st, p)


def suite(name: str) -> dict:
    """The full suite, or the same shapes scaled down (batch, image size, channels) for sim and
    cpu: ``small`` runs on cpu in a few minutes, ``tiny`` on sim in seconds (the tests use it)."""
    conv = [_scale_conv(c, 1, 1, 10**9) for c in CONV_FULL]
    pool, relu, rows = list(POOL_FULL), list(RELU_FULL), list(ROWS_FULL)
    if name == "small":
        conv = [_scale_conv(c, 16, 4, 64) for c in CONV_FULL]
        pool = [(lb, op, max(1, N // 16), C, max(H // 4, 6), max(W // 4, 6), k, s, p)
                for lb, op, N, C, H, W, k, s, p in POOL_FULL]
        relu = [("relu", (2, 64, 56, 56))]
        rows = [("4096x10", 4096, 10), ("256x1000", 256, 1000)]
    elif name == "tiny":
        pick = ("lenet-conv1", "lenet-conv2", "resnet-stem", "resnet-1x1-56", "speech")
        conv = [_scale_conv(c, 64, 8, 8) for c in CONV_FULL if c[0] in pick]
        pool = [(lb, op, 1, 3, 9, 10, k, s, p) for lb, op, N, C, H, W, k, s, p in POOL_FULL[1:3]]
        relu = [("relu", (1, 3, 13, 17))]
        rows = [("67x10", 67, 10), ("5x300", 5, 300)]
    elif name != "full":
        raise ValueError(f"unknown suite {name!r}: full, small or tiny")
    return {"conv": conv, "pool": pool, "relu": relu, "rows": rows}


# ---- benchmark cases ------------------------------------------------------------------------------


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


def conv_cases(shapes, device, torch):
    return [c for shp in shapes for c in _conv_shape_cases(*shp, device, torch)]


def _conv_shape_cases(label, N, C, H, W, K, R, S, st, p, device, torch):
    """One shape's three directions (a function of its own, so every closure binds this shape)."""
    cases = []
    stride, pads, dil = (st, st), (p, p, p, p), (1, 1)
    P, Q = conv2d.output_size((H, W), (R, S), stride, pads, dil)
    flops = 2.0 * N * K * P * Q * C * R * S
    shape = f"{N}x{C}x{H}x{W}->{K} {R}x{S}/{st} p{p}"

    def make(rng, N=N, C=C, H=H, W=W, K=K, R=R, S=S, P=P, Q=Q):
        return {"x": rng.standard_normal((N, C, H, W), dtype=np.float32),
                "w": rng.standard_normal((K, C, R, S), dtype=np.float32) / np.float32(
                    math.sqrt(C * R * S)),
                "dy": rng.standard_normal((N, K, P, Q), dtype=np.float32)}
    for direction in ("fwd", "dgrad", "wgrad"):
        case = Case("conv2d", direction, shape, make, flops=flops,
                    reduce_len=max(C * R * S, N * P * Q, K * R * S))
        for name, kind, convert, wrap, version, dv in implementations(device, torch):
            if dv:
                fn = {
                    "fwd": lambda i, dv=dv, v=version: conv2d.forward(
                        dv, i["x"], i["w"], None, stride, pads, dil, version=v),
                    "dgrad": lambda i, dv=dv, v=version: conv2d.backward_data(
                        dv, i["dy"], i["w"], i["x"].shape, stride, pads, dil, version=v),
                    "wgrad": lambda i, dv=dv, v=version: conv2d.backward_weight(
                        dv, i["dy"], i["x"], i["w"].shape, stride, pads, dil, version=v),
                }[direction]
                conv_fn = (kind, convert, wrap(fn))
            else:
                tf = torch.nn.functional
                aten = torch.ops.aten

                def tfn(i, d=direction):
                    if d == "fwd":
                        return tf.conv2d(i["x"], i["w"], None, st, p)
                    mask = [d == "dgrad", d == "wgrad", False]
                    gx, gw, _ = aten.convolution_backward(
                        i["dy"], i["x"], i["w"], None, [st, st], [p, p], [1, 1], False,
                        [0, 0], 1, mask)
                    return gx if d == "dgrad" else gw
                conv_fn = (kind, convert, wrap(tfn))
            case.impls[name] = conv_fn
        cases.append(case)
    return cases


def _simple_cases(op, direction, shape, make, nbytes, device, torch, ours_fn, torch_fn,
                  reduce_len=1):
    case = Case(op, direction, shape, make, bytes=nbytes, reduce_len=reduce_len)
    for name, kind, convert, wrap, version, dv in implementations(device, torch):
        if "tf32" in name:  # TF32 changes nothing outside matrix products
            continue
        if dv:
            case.impls[name] = (kind, convert,
                                wrap(lambda i, dv=dv, v=version: ours_fn(dv, i, v)))
        else:
            case.impls[name] = (kind, convert, wrap(torch_fn))
    return case


def pool_cases(shapes, device, torch):
    return [c for shp in shapes for c in _pool_shape_cases(*shp, device, torch)]


def _pool_shape_cases(label, op, N, C, H, W, k, s, p, device, torch):
    cases = []
    g = pool2d.geometry((H, W), k, s, p, 1, False, "bench")
    kernel, stride, pads, dil, out, _ = g
    P, Q = out
    shape = f"{N}x{C}x{H}x{W} {k}x{k}/{s} p{p}"

    def make(rng, N=N, C=C, H=H, W=W, P=P, Q=Q):
        return {"x": rng.standard_normal((N, C, H, W), dtype=np.float32),
                "dy": rng.standard_normal((N, C, P, Q), dtype=np.float32)}
    nin, nout = N * C * H * W, N * C * P * Q
    tf = torch.nn.functional if torch else None
    if op == "max":
        def ours_f(dv, i, v):
            return pool2d.max_forward(dv, i["x"], kernel, stride, pads, dil, out)[0]

        def ours_b(dv, i, v):
            _, idx = i.setdefault("_fwd", pool2d.max_forward(dv, i["x"], kernel, stride, pads,
                                                              dil, out))
            return pool2d.max_backward(dv, i["dy"], idx, i["x"].shape, kernel, stride, pads,
                                       dil)

        def t_f(i):
            return tf.max_pool2d(i["x"], k, s, p)

        def t_b(i):
            _, idx = i.setdefault("_fwd", tf.max_pool2d(i["x"], k, s, p,
                                                        return_indices=True))
            return torch.ops.aten.max_pool2d_with_indices_backward(
                i["dy"], i["x"], [k, k], [s, s], [p, p], [1, 1], False, idx)
        fb, bb = 4 * nin + 12 * nout, 12 * nout + 4 * nin
    else:
        def ours_f(dv, i, v):
            return pool2d.avg_forward(dv, i["x"], kernel, stride, pads, out, True, None)

        def ours_b(dv, i, v):
            return pool2d.avg_backward(dv, i["dy"], i["x"].shape, kernel, stride, pads, True,
                                       None)

        def t_f(i):
            return tf.avg_pool2d(i["x"], k, s, p)

        def t_b(i):
            return torch.ops.aten.avg_pool2d_backward(i["dy"], i["x"], [k, k], [s, s], [p, p],
                                                      False, True, None)
        fb, bb = 4 * nin + 4 * nout, 4 * nout + 4 * nin
    cases.append(_simple_cases(f"{op}_pool2d", "fwd", shape, make, fb, device, torch,
                               ours_f, t_f, k * k))
    cases.append(_simple_cases(f"{op}_pool2d", "bwd", shape, make, bb, device, torch,
                               ours_b, t_b, k * k))
    return cases


def relu_cases(shapes, device, torch):
    return [c for label, shp in shapes for c in _relu_shape_cases(shp, device, torch)]


def _relu_shape_cases(shp, device, torch):
    cases = []
    n = int(np.prod(shp))

    def make(rng, shp=shp):
        x = rng.standard_normal(shp, dtype=np.float32)
        return {"x": x, "y": np.maximum(x, 0), "dy": rng.standard_normal(shp, dtype=np.float32)}
    sh = "x".join(map(str, shp))
    cases.append(_simple_cases(
        "relu", "fwd", sh, make, 8 * n, device, torch,
        lambda dv, i, v: activation.forward(dv, "relu", i["x"], version=v),
        lambda i: torch.relu(i["x"])))
    cases.append(_simple_cases(
        "relu", "bwd", sh, make, 12 * n, device, torch,
        lambda dv, i, v: activation.backward(dv, "relu", i["dy"], i["y"], version=v),
        lambda i: torch.ops.aten.threshold_backward(i["dy"], i["y"], 0)))
    return cases


def rows_cases(shapes, device, torch):
    return [c for label, r, k in shapes for c in _rows_shape_cases(r, k, device, torch)]


def _rows_shape_cases(rows, cols, device, torch):
    cases = []
    n = rows * cols

    def make(rng, rows=rows, cols=cols):
        x = rng.standard_normal((rows, cols), dtype=np.float32) * np.float32(3)
        e = np.exp(x - x.max(1, keepdims=True))
        return {"x": x, "y": e / e.sum(1, keepdims=True),
                "dy": rng.standard_normal((rows, cols), dtype=np.float32),
                "t": rng.integers(0, cols, rows).astype(np.int64),
                "dloss": np.full(rows, 1.0 / rows, dtype=np.float32)}
    sh = f"{rows}x{cols}"
    tF = torch.nn.functional if torch else None
    cases.append(_simple_cases(
        "softmax", "fwd", sh, make, 8 * n, device, torch,
        lambda dv, i, v: softmax.forward2d(dv, i["x"], False, version=v),
        lambda i: torch.softmax(i["x"], 1), cols))
    cases.append(_simple_cases(
        "softmax", "bwd", sh, make, 12 * n, device, torch,
        lambda dv, i, v: softmax.backward2d(dv, i["y"], i["dy"], False, version=v),
        lambda i: torch.ops.aten._softmax_backward_data(i["dy"], i["y"], 1, torch.float32),
        cols))

    def ce_f(dv, i, v):
        return cross_entropy.forward(dv, i["x"], i["t"], -100, version=v)[0]

    def ce_b(dv, i, v):
        _, lse = i.setdefault("_fwd", cross_entropy.forward(dv, i["x"], i["t"], -100))
        return cross_entropy.backward(dv, i["x"], i["t"], lse, i["dloss"], -100, version=v)

    def t_ce_f(i):
        return tF.cross_entropy(i["x"], i["t"], reduction="none")

    def t_ce_b(i):
        # PyTorch's two backward kernels of its log_softmax + nll_loss decomposition
        ls = i.setdefault("_ls", torch.log_softmax(i["x"], 1))
        g = torch.ops.aten.nll_loss_backward(i["dloss"], ls, i["t"], None, 0, -100,
                                             ls.new_ones(()))  # reduction 'none'
        return torch.ops.aten._log_softmax_backward_data(g, ls, 1, torch.float32)
    cases.append(_simple_cases("cross_entropy", "fwd", sh, make, 4 * n + 8 * rows, device,
                               torch, ce_f, t_ce_f, cols))
    cases.append(_simple_cases("cross_entropy", "bwd", sh, make, 8 * n + 8 * rows, device,
                               torch, ce_b, t_ce_b, cols))
    return cases


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
    s = suite(args.suite)
    cases = (conv_cases(s["conv"], args.device, torch) + pool_cases(s["pool"], args.device, torch)
             + relu_cases(s["relu"], args.device, torch)
             + rows_cases(s["rows"], args.device, torch))
    if args.only:
        cases = [c for c in cases if args.only in c.op]
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
    for r in payload["rows"]:
        if "ms" not in r:
            lines.append(f"| {r['op']} | {r['direction']} | {r['shape']} | {r['impl']} | – | – "
                         f"| – | – | – | {r['check']} |")
            continue
        rate = f"{r['gflops']:.1f} GFLOP/s" if "gflops" in r else f"{r['gbps']:.1f} GB/s"
        vs = f"{r['vs_baseline']:.2f}" if "vs_baseline" in r else "–"
        lines.append(f"| {r['op']} | {r['direction']} | {r['shape']} | {r['impl']} | "
                     f"{r['ms']:.3f} ({r['ms_min']:.3f}–{r['ms_max']:.3f}) | {r['ms_hot']:.3f} | "
                     f"{rate} | {100 * r['peak_share']:.1f} | {vs} | {r['check']} |")
    return "\n".join(lines) + "\n"


def chart(payload: dict, path) -> None:
    """Per conv shape and direction, the ratio to the baseline of each of our implementations."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [r for r in payload["rows"] if "vs_baseline" in r and r["check"] != "baseline"]
    if not rows:
        return
    impls = sorted({r["impl"] for r in rows})
    groups = list(dict.fromkeys((r["op"], r["direction"], r["shape"]) for r in rows))
    fig, ax = plt.subplots(figsize=(12, 0.28 * len(groups) * max(len(impls), 1) / 2 + 2))
    h = 0.8 / len(impls)
    for k, impl in enumerate(impls):
        vals = {(r["op"], r["direction"], r["shape"]): r["vs_baseline"] for r in rows
                if r["impl"] == impl}
        ys = [i + k * h for i in range(len(groups))]
        ax.barh(ys, [vals.get(g, 0) for g in groups], height=h, label=impl)
    ax.set_yticks([i + 0.4 - h / 2 for i in range(len(groups))])
    ax.set_yticklabels([f"{o} {d} {s}" for o, d, s in groups], fontsize=6)
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"speed relative to {payload['baseline']} (baseline time / time; >1 faster)")
    ax.set_title(f"cucnn vs {payload['baseline']} on {payload['env'].get('gpu') or payload['env']['cpu']}")
    ax.invert_yaxis()
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
