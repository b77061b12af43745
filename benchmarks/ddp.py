"""Data-parallel training step on torch.distributed (gloo) on the CPU: step time, images/s, the
time spent in communication, and the bytes all-reduced per step, for 1 and 2 processes.

    python benchmarks/ddp.py --out benchmarks/results/ddp-cpu.json
    python benchmarks/ddp.py --models lenet5 --steps 10          # quick

For each model, at a fixed global batch (64): one process without DDP (the baseline), one process
with DDP (the wrapper's own overhead: hooks, bucket copies, a one-rank all_reduce), and two
processes with DDP at the default bucket cap (25 MB) and at a small one (several buckets, so a
bucket's all_reduce can overlap the rest of the backward). Each configuration runs in fresh
processes (multiprocessing spawn, file-store rendezvous), each with one BLAS thread by default
(``--threads``), as torchrun sets OMP_NUM_THREADS=1 for each worker: two processes then use two
cores where one process uses one. (On a shared machine, BLAS threads that spin waiting for a busy
core make multi-threaded rows meaningless.) Per step (forward, cross-entropy, backward, SGD
step), rank 0 records the wall time and the time its thread waited for the all_reduces at the end
of backward (``exposed comm``: communication the backward did not hide). After the steps, the
same bytes are all-reduced alone, blocking, ``--steps`` times: ``all_reduce alone`` is what the
communication costs when nothing overlaps it.

Needs PyTorch (the ``dist`` extra).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

import cucnn  # noqa: E402
from cucnn import _backend, models, optim  # noqa: E402
from cucnn import distributed as dist  # noqa: E402
from cucnn import functional as F  # noqa: E402
from cucnn.tensor import Tensor  # noqa: E402

GLOBAL_BATCH = 64


def worker(rank, world, store, model_name, use_ddp, bucket_cap_mb, steps, warmup, out):
    _backend.keep_host_memory()
    dist.init_process_group(backend="gloo", device="cpu", init_method=f"file://{store}",
                            rank=rank, world_size=world)
    try:
        cucnn.manual_seed(0)
        model = models.create(model_name)
        net = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb) if use_ddp \
            else model
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        batch = GLOBAL_BATCH // world
        rng = np.random.default_rng(rank)
        shape = models.MODELS[model_name].input_shape
        x = Tensor._wrap(rng.standard_normal((batch, *shape), dtype=np.float32), "cpu")
        y = Tensor._wrap(rng.integers(0, 10, batch), "cpu")
        step_s, comm_s, cpu_s = [], [], []
        dist.barrier()
        for i in range(warmup + steps):
            c0 = net.comm_seconds if use_ddp else 0.0
            t0, p0 = time.perf_counter(), time.process_time()
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            t1, p1 = time.perf_counter(), time.process_time()
            if i >= warmup:
                step_s.append(t1 - t0)
                cpu_s.append(p1 - p0)
                comm_s.append((net.comm_seconds - c0) if use_ddp else 0.0)
        result = {"step_s": step_s, "comm_s": comm_s, "cpu_s": cpu_s}
        if use_ddp:
            flat = Tensor._wrap(np.zeros(net.bytes_per_step // 4, np.float32), "cpu")
            alone = []
            dist.barrier()
            for _ in range(steps):
                t0 = time.perf_counter()
                dist.all_reduce(flat)
                alone.append(time.perf_counter() - t0)
            result.update(alone_s=alone, bytes=net.bytes_per_step, buckets=len(net.buckets))
        if rank == 0:
            Path(out).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def run_config(model_name, world, use_ddp, bucket_cap_mb, steps, warmup, threads) -> dict:
    threads = str(threads)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = threads  # inherited by the spawned ranks before they import NumPy
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        procs = [ctx.Process(target=worker, args=(r, world, Path(tmp) / "store", model_name,
                                                  use_ddp, bucket_cap_mb, steps, warmup, out))
                 for r in range(world)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        if any(p.exitcode for p in procs):
            raise RuntimeError(f"{model_name} x{world}: a rank failed "
                               f"({[p.exitcode for p in procs]})")
        res = json.loads(out.read_text())
    step = statistics.median(res["step_s"])
    row = {"model": model_name, "processes": world, "ddp": use_ddp,
           "bucket_cap_mb": bucket_cap_mb if use_ddp else None, "threads_per_process": int(threads),
           "global_batch": GLOBAL_BATCH, "batch_per_process": GLOBAL_BATCH // world,
           "step_ms": 1e3 * step, "step_ms_min": 1e3 * min(res["step_s"]),
           "step_ms_max": 1e3 * max(res["step_s"]), "images_per_s": GLOBAL_BATCH / step,
           "cpu_ms_per_rank": 1e3 * statistics.median(res["cpu_s"]),
           "exposed_comm_ms": 1e3 * statistics.median(res["comm_s"]),
           "exposed_comm_share": statistics.median(res["comm_s"]) / step}
    if use_ddp:
        alone = statistics.median(res["alone_s"])
        row.update(all_reduce_alone_ms=1e3 * alone, all_reduce_alone_share=alone / step,
                   bytes_per_step=res["bytes"], buckets=res["buckets"],
                   # a ring all_reduce sends and receives 2 (n - 1) / n of the buffer per rank
                   bytes_sent_per_rank=int(2 * (world - 1) / world * res["bytes"]))
    return row


def markdown(env: dict, rows: list, args) -> str:
    lines = ["# Data-parallel training step on the CPU (gloo)", ""]
    lines += [f"- {k}: {v}" for k, v in env.items()]
    lines += ["", f"Global batch {GLOBAL_BATCH}, split across the processes; SGD with momentum; "
              f"median of {args.steps} steps after {args.warmup} untimed ones, rank 0's clock. "
              f"Each process runs {args.threads} BLAS thread(s). *exposed comm*: rank 0 waiting "
              "for the all_reduces at the end of backward (what the backward did not hide); "
              "*all_reduce alone*: the same bytes all-reduced with nothing else running. "
              "*speed-up*: images/s over the 1-process row without DDP. *CPU ms/rank*: rank 0's "
              "process CPU time per step (all its threads, gloo's included): the work, which a "
              "busy machine does not inflate the way it inflates wall time.", "",
              "| model | procs | DDP bucket cap | buckets | ms/step (min–max) | CPU ms/rank | "
              "images/s | speed-up | exposed comm ms (share) | all_reduce alone ms (share) | "
              "bytes all-reduced/step |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        if not r["ddp"]:
            base[r["model"]] = r["images_per_s"]
        cap = f"{r['bucket_cap_mb']} MB" if r["ddp"] else "no DDP"
        alone = f"{r['all_reduce_alone_ms']:.2f} ({100 * r['all_reduce_alone_share']:.1f}%)" \
            if r["ddp"] else "–"
        lines.append(
            f"| {r['model']} | {r['processes']} | {cap} | {r.get('buckets', '–')} | "
            f"{r['step_ms']:.1f} ({r['step_ms_min']:.1f}–{r['step_ms_max']:.1f}) | "
            f"{r['cpu_ms_per_rank']:.1f} | "
            f"{r['images_per_s']:,.0f} | {r['images_per_s'] / base[r['model']]:.2f} | "
            f"{r['exposed_comm_ms']:.2f} ({100 * r['exposed_comm_share']:.1f}%) | {alone} | "
            f"{r.get('bytes_per_step', 0):,} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["lenet5", "allconv_strided"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads per process")
    ap.add_argument("--out", default=None, help="write JSON here and markdown next to it")
    args = ap.parse_args(argv)
    if not dist.is_available():
        print(f"benchmarks/ddp.py needs PyTorch: {dist.INSTALL_HINT}", file=sys.stderr)
        return 1
    env = _common.environment("cpu")
    env["load_average_at_start"] = "%.1f %.1f %.1f" % os.getloadavg()  # a shared machine?
    rows = []
    for name in args.models:
        # the small cap: a quarter of the model's gradient bytes, so about four buckets
        small = round(sum(p.numel() for p in models.create(name).parameters()) * 4 / 4 / 2**20, 3)
        for world, use_ddp, cap in ((1, False, 25), (1, True, 25), (2, True, 25),
                                    (2, True, small)):
            row = run_config(name, world, use_ddp, cap, args.steps, args.warmup, args.threads)
            rows.append(row)
            print(f"{name:16s} x{world} {'ddp ' + str(cap) + ' MB' if use_ddp else 'plain':12s} "
                  f"{row['step_ms']:8.1f} ms/step  {row['images_per_s']:8,.0f} img/s  exposed "
                  f"comm {row['exposed_comm_ms']:.2f} ms  alone "
                  f"{row.get('all_reduce_alone_ms', 0):.2f} ms  {row.get('bytes_per_step', 0):,} B",
                  flush=True)
    env["load_average_at_end"] = "%.1f %.1f %.1f" % os.getloadavg()
    md = markdown(env, rows, args)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"environment": env, "rows": rows}, indent=2))
        out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
