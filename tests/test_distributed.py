"""Data parallelism on torch.distributed (gloo, 2 processes on the CPU).

The multi-process tests start their ranks with multiprocessing's spawn (not mp.spawn, which kills
the other ranks as soon as one fails: the failure test needs to watch them fail on their own) and
rendezvous through a file store in tmp_path. Each worker writes what it saw to an .npz that the
test compares; the single-process references are computed in the test process itself.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import traceback

import numpy as np
import pytest

import cucnn
from cucnn import checkpoint, data, models, optim
from cucnn import functional as F
from cucnn import distributed as dist
from cucnn.tensor import Tensor

torch = pytest.importorskip("torch", reason="PyTorch is the optional 'dist' extra: "
                            "pip install \"cucnn[dist]\"")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this PyTorch has no torch.distributed with gloo", allow_module_level=True)

WORLD = 2
STEPS = 10


# ---- running ranks -------------------------------------------------------------------------------


def _entry(rank, world, store, timeout, out, worker, args):
    try:
        dist.init_process_group(backend="gloo", device="cpu", init_method=f"file://{store}",
                                rank=rank, world_size=world, timeout=timeout)
        result = worker(rank, world, *args)
        np.savez(out, **(result or {}))
    except BaseException as e:  # the failure test reads what each rank raised
        with open(str(out) + ".err", "w") as f:
            f.write(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
        raise SystemExit(1)
    finally:
        try:
            dist.destroy_process_group()
        except Exception:
            pass


def run_ranks(tmp_path, worker, *args, world=WORLD, timeout=30.0, join_s=90.0):
    """Run worker(rank, world, *args) on ``world`` spawned processes; returns per rank
    (exit code, dict of arrays or None, error text or None, seconds)."""
    ctx = multiprocessing.get_context("spawn")
    store = tmp_path / f"store-{worker.__name__}"
    outs = [tmp_path / f"{worker.__name__}-rank{r}.npz" for r in range(world)]
    procs = [ctx.Process(target=_entry, args=(r, world, store, timeout, outs[r], worker, args))
             for r in range(world)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = []
    for r, p in enumerate(procs):
        p.join(max(join_s - (time.perf_counter() - t0), 1))
        if p.is_alive():
            p.kill()
            p.join()
        err = outs[r].with_name(outs[r].name + ".err")
        arrays = dict(np.load(outs[r])) if outs[r].is_file() else None
        results.append((p.exitcode, arrays, err.read_text() if err.is_file() else None,
                        time.perf_counter() - t0))
    return results


def _assert_ok(results):
    for r, (code, arrays, err, _) in enumerate(results):
        assert code == 0 and arrays is not None, f"rank {r} failed (exit {code}):\n{err}"


# ---- workers (module level so spawn can import them) ---------------------------------------------


def _batch(n=64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, n)


def _lenet(seed=0):
    cucnn.manual_seed(seed)
    return models.LeNet5()


def _make_opt(name, params):
    return optim.SGD(params, lr=0.05, momentum=0.9) if name == "sgd" else \
        optim.Adam(params, lr=1e-3)


def _params(model):
    return [p.data.copy() for p in model.parameters()]


def worker_collectives(rank, world):
    out = {}
    t = cucnn.tensor(np.arange(5, dtype=np.float32) + 10 * rank)
    arr = t.data
    dist.all_reduce(t)
    assert t.data is arr  # in place, no copy
    out["sum"] = t.numpy().copy()
    out["avg"] = dist.all_reduce(cucnn.tensor([1.0 + rank, 3.0 * rank]), op="avg").numpy()
    out["max"] = dist.all_reduce(cucnn.tensor([float(rank), -float(rank)]), op="max").numpy()
    b = dist.broadcast(cucnn.tensor(np.full((2, 3), rank + 1.5)), src=1)
    out["bcast"] = b.numpy()
    out["rank"], out["world"] = np.asarray(dist.get_rank()), np.asarray(dist.get_world_size())
    for bad in (lambda: dist.all_reduce(cucnn.tensor([1.0]), op="mean"),
                lambda: dist.broadcast(cucnn.tensor([1.0]), src=world),
                lambda: dist.all_reduce(np.ones(2)),
                lambda: dist.all_reduce(cucnn.tensor([1, 2]), op="avg")):
        try:
            bad()
        except (ValueError, TypeError) as e:
            out.setdefault("errors", []).append(str(e))
    out["errors"] = np.asarray(out["errors"])
    dist.barrier()
    return out


def worker_ddp(rank, world, opt_name, bucket_cap_mb):
    x, y = _batch()
    # every rank starts from different weights: DDP must broadcast rank 0's
    model = _lenet(seed=rank)
    # a probe on every parameter that runs before DDP's own hook: how many buckets are already
    # on the wire when a gradient is ready; at the last gradient of a step, all but one should be
    launched, holder = [], []
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(
            lambda p: launched.append(sum(b.work is not None for b in holder[0].buckets)))
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb)
    holder.append(ddp)
    opt = _make_opt(opt_name, ddp.parameters())
    out = {"n_buckets": np.asarray(len(ddp.buckets)), "bytes": np.asarray(ddp.bytes_per_step)}
    share = slice(rank * 32, (rank + 1) * 32)
    for step in range(STEPS):
        logits = ddp(Tensor._wrap(x[share], "cpu"))
        loss = F.cross_entropy(logits, Tensor._wrap(y[share], "cpu"))
        opt.zero_grad()
        loss.backward()
        if step == 0:
            for i, p in enumerate(model.parameters()):
                out[f"grad0_{i}"] = p.grad.numpy().copy()
        opt.step()
        for i, p in enumerate(_params(model)):
            out[f"step{step}_{i}"] = p
    per_step = len(list(model.parameters()))
    out["launched_early"] = np.asarray([max(launched[i:i + per_step])
                                        for i in range(0, len(launched), per_step)])
    out["n_buckets_after"] = np.asarray(len(ddp.buckets))
    return out


def worker_no_sync(rank, world):
    x, y = _batch()
    model = _lenet()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.05)
    # each rank's 32 samples in two micro-batches of 16; the loss of each is scaled by 16/32 so
    # that the accumulated gradient is the gradient of the mean over the rank's 32
    base = rank * 32
    for k, ctx in enumerate((ddp.no_sync(), _nullcontext())):
        with ctx:
            mb = slice(base + 16 * k, base + 16 * (k + 1))
            loss = F.cross_entropy(ddp(Tensor._wrap(x[mb], "cpu")), Tensor._wrap(y[mb], "cpu"))
            (loss * 0.5).backward()
        if k == 0:  # inside no_sync nothing was reduced: the local gradient of the first half
            local = [p.grad.numpy().copy() for p in model.parameters()]
    out = {f"grad_{i}": p.grad.numpy() for i, p in enumerate(model.parameters())}
    out.update({f"local_{i}": g for i, g in enumerate(local)})
    return out


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _HalfUsed(cucnn.nn.Module):
    """Two heads; forward uses the second only where ``use_b`` says so."""

    def __init__(self):
        super().__init__()
        cucnn.manual_seed(3)
        self.a = cucnn.nn.Linear(6, 4)
        self.b = cucnn.nn.Linear(6, 4)
        self.use_b = False

    def forward(self, x):
        return self.a(x) + self.b(x) if self.use_b else self.a(x)


def worker_unused(rank, world):
    """Parameters without gradient: PyTorch's error at the next forward without
    find_unused_parameters; with it, zero shares for the locally unused ones."""
    rng = np.random.default_rng(rank)
    x = Tensor._wrap(rng.standard_normal((5, 6)).astype(np.float32), "cpu")
    out = {}
    ddp = dist.DistributedDataParallel(_HalfUsed())
    ddp(x).sum().backward()
    out["a_grad_unreduced"] = ddp.module.a.weight.grad.numpy()
    try:
        ddp(x)
    except RuntimeError as e:
        out["error"] = np.asarray(str(e))
    model = _HalfUsed()
    model.use_b = rank == 1  # b is used on rank 1 only: globally used
    ddp = dist.DistributedDataParallel(model, find_unused_parameters=True)
    for step in range(2):
        model.zero_grad()
        ddp(x).sum().backward()
        for n, p in model.named_parameters():
            out[f"step{step}_{n}"] = p.grad.numpy().copy() if p.grad is not None else np.zeros(0)
    model.use_b = False  # b unused everywhere: its .grad stays None, as in PyTorch
    model.zero_grad()
    ddp(x).sum().backward()
    out["b_grad_is_none"] = np.asarray(model.b.weight.grad is None)
    # the per-rank local gradient of a, to check the average
    out["x"] = x.numpy()
    return out


class _WithBuffer(cucnn.nn.Module):
    """A module with a running statistic, as BatchNorm keeps (feature-detected by DDP through
    ``named_buffers``)."""

    def __init__(self, rank):
        super().__init__()
        cucnn.manual_seed(rank)
        self.lin = cucnn.nn.Linear(3, 2)
        self.running = cucnn.tensor(np.full(4, 10.0 + rank))

    def named_buffers(self):
        yield "running", self.running

    def forward(self, x):
        if self.training:  # a statistic each rank updates from its own batch
            self.running.data += x.numpy().mean()
        return self.lin(x)


def worker_buffers(rank, world):
    model = _WithBuffer(rank)
    out = {"at_construction": model.running.numpy().copy()}
    ddp = dist.DistributedDataParallel(model)
    out["after_wrap"] = model.running.numpy().copy()
    out["weight"] = model.lin.weight.numpy().copy()
    x = Tensor._wrap(np.full((2, 3), float(rank + 1), np.float32), "cpu")
    ddp(x).sum().backward()
    out["after_step1"] = model.running.numpy().copy()  # rank 0's + this rank's batch mean
    ddp(x).sum().backward()
    out["after_step2"] = model.running.numpy().copy()  # rank 0's again, + this rank's
    return out


def worker_all(rank, world):
    """Every 2-rank check that needs no special set-up, in one pair of processes (starting a
    rank costs about a second of CPU for importing torch; our CI machines have 2 cores)."""
    out = {}
    for name, fn, args in (("coll", worker_collectives, ()), ("sgd", worker_ddp, ("sgd", 0.05)),
                           ("adam", worker_ddp, ("adam", 0.05)), ("nosync", worker_no_sync, ()),
                           ("unused", worker_unused, ()), ("buffers", worker_buffers, ())):
        out.update({f"{name}__{k}": v for k, v in fn(rank, world, *args).items()})
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    results = run_ranks(tmp_path_factory.mktemp("ranks"), worker_all)
    _assert_ok(results)
    def part(name):
        return [{k.split("__", 1)[1]: v for k, v in out.items() if k.startswith(name + "__")}
                for _, out, _, _ in results]
    return part


def worker_fail(rank, world, mode):
    t = cucnn.tensor([1.0, 2.0])
    dist.all_reduce(t)  # one collective that works
    if rank == 1:
        if mode == "raise":
            raise ValueError("rank 1 failed on purpose")
        time.sleep(float(os.environ.get("CUCNN_TEST_HANG_S", "30")))  # alive, never joins
        return {}
    t0 = time.perf_counter()
    try:
        for _ in range(3):
            dist.all_reduce(t)
    finally:
        with open(os.environ.get("CUCNN_TEST_FAIL_LOG", os.devnull), "a") as f:
            f.write(f"{time.perf_counter() - t0:.2f}\n")
    return {}


# ---- tests without a process group ---------------------------------------------------------------


def test_import_cucnn_does_not_import_torch():
    code = "import sys, cucnn, cucnn.distributed, cucnn.data; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.setitem(sys.modules, "torch.distributed", None)
    assert dist.is_available() is False
    for call in (dist.init_process_group, lambda: dist.all_reduce(cucnn.tensor([1.0])),
                 lambda: dist.DistributedDataParallel(models.LeNet5())):
        with pytest.raises(ImportError, match=r'pip install "cucnn\[dist\]"'):
            call()


def test_init_errors(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(k, raising=False)
    with pytest.raises(RuntimeError, match="torchrun"):
        dist.init_process_group()
    with pytest.raises(ValueError, match="backend must be"):
        dist.init_process_group(backend="tcp", rank=0, world_size=1)
    with pytest.raises(ValueError, match="needs device 'cuda'"):
        dist.init_process_group(backend="nccl", device="cpu", rank=0, world_size=1)
    with pytest.raises(ValueError, match="timeout must be"):
        dist.init_process_group(timeout=-1, rank=0, world_size=1)
    with pytest.raises(RuntimeError, match="not initialised"):
        dist.DistributedDataParallel(models.LeNet5())
    assert (dist.get_rank(), dist.get_world_size(), dist.is_initialized()) == (0, 1, False)


def _torch_sampler_indices(n, world, rank, drop_last):
    ds = list(range(n))
    s = torch.utils.data.DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=False,
                                            drop_last=drop_last)
    return list(s), len(s)


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 11, 12])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_matches_torch(n, world, drop_last):
    ds = data.ArrayDataset(np.zeros((n, 1, 2, 2), np.float32), np.zeros(n, np.int64))
    got = [list(data.DistributedSampler(ds, world, r, shuffle=False, drop_last=drop_last))
           for r in range(world)]
    for r in range(world):
        ref, ref_len = _torch_sampler_indices(n, world, r, drop_last)
        assert got[r] == ref
        assert len(data.DistributedSampler(ds, world, r, shuffle=False, drop_last=drop_last)) \
            == ref_len == len(got[r])


@pytest.mark.parametrize("n,world,drop_last", [(10, 3, False), (10, 3, True), (64, 2, False),
                                               (5, 4, False)])
def test_sampler_shuffle(n, world, drop_last):
    ds = list(range(n))
    def shares(epoch, seed=7):
        out = []
        for r in range(world):
            s = data.DistributedSampler(ds, world, r, shuffle=True, seed=seed, drop_last=drop_last)
            s.set_epoch(epoch)
            out.append(list(s))
        return out
    e0, e1 = shares(0), shares(1)
    assert e0 == shares(0)  # the same seed and epoch: the same shares (every rank agrees)
    assert e0 != e1 and e0 != shares(0, seed=8)
    counts = {len(s) for s in e0}
    assert len(counts) == 1  # every rank the same number of samples
    # the shares interleave one permutation of seed + epoch, padded (or cut) as PyTorch does
    perm = np.random.default_rng(7 + 1).permutation(n).tolist()
    total = counts.pop() * world
    padded = (perm * world)[:total]
    assert [padded[r::world] for r in range(world)] == e1
    flat = sorted(i for s in e1 for i in s)
    if drop_last:
        assert len(set(flat)) == len(flat) == total
    else:
        assert set(flat) == set(range(n))


def test_sampler_and_loader_errors():
    ds = data.XO(10)
    with pytest.raises(ValueError, match="invalid rank 2"):
        data.DistributedSampler(ds, 2, 2)
    with pytest.raises(ValueError, match="num_replicas must be"):
        data.DistributedSampler(ds, 0, 0)
    with pytest.raises(TypeError, match="rank must be an int"):
        data.DistributedSampler(ds, 2, 1.0)
    sampler = data.DistributedSampler(ds, 2, 1, shuffle=False)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        data.DataLoader(ds, 2, shuffle=True, sampler=sampler)
    loader = data.DataLoader(ds, 2, sampler=sampler)
    assert len(loader) == 3
    labels = np.concatenate([y for _, y in loader])
    np.testing.assert_array_equal(labels, ds.labels[1::2])
    # without a process group the sampler is the single-process one
    assert (data.DistributedSampler(ds).num_replicas, data.DistributedSampler(ds).rank) == (1, 0)


# ---- tests on 2 processes ------------------------------------------------------------------------


def test_collectives(two_ranks):
    for r, out in enumerate(two_ranks("coll")):
        np.testing.assert_array_equal(out["sum"], 2 * np.arange(5) + 10)
        np.testing.assert_array_equal(out["avg"], [1.5, 1.5])
        np.testing.assert_array_equal(out["max"], [1.0, 0.0])
        np.testing.assert_array_equal(out["bcast"], np.full((2, 3), 2.5))
        assert (int(out["rank"]), int(out["world"])) == (r, 2)
        errors = " | ".join(out["errors"])
        assert "op must be one of" in errors and "src must be a rank in [0, 1]" in errors \
            and "must be a cucnn.Tensor" in errors and "needs a floating tensor" in errors


def _reference(opt_name):
    """One process, the whole batch of 64: the parameters after each step."""
    x, y = _batch()
    model = _lenet(seed=0)
    opt = _make_opt(opt_name, model.parameters())
    steps, grad0 = [], None
    for _ in range(STEPS):
        loss = F.cross_entropy(model(Tensor._wrap(x, "cpu")), Tensor._wrap(y, "cpu"))
        opt.zero_grad()
        loss.backward()
        grad0 = grad0 or [p.grad.numpy().copy() for p in model.parameters()]
        opt.step()
        steps.append(_params(model))
    return steps, grad0


@pytest.mark.parametrize("opt_name", ["sgd", "adam"])
def test_ddp_matches_one_process(two_ranks, opt_name):
    # a small bucket cap (0.05 MB) splits LeNet-5's 241 kB of gradients into several buckets
    r0, r1 = two_ranks(opt_name)
    n_params = len(list(models.LeNet5().parameters()))
    assert int(r0["n_buckets"]) > 2 and int(r0["bytes"]) == 61706 * 4
    # from the second step on (buckets rebuilt in the order gradients came), every bucket but
    # the last was on the wire before the backward produced its last gradient
    n = int(r0["n_buckets_after"])
    assert n > 2 and list(r0["launched_early"][1:]) == [n - 1] * (STEPS - 1)
    for step in range(STEPS):
        for i in range(n_params):
            key = f"step{step}_{i}"
            # bitwise identical on every rank after each step
            np.testing.assert_array_equal(r0[key], r1[key], err_msg=key)
    ref, ref_grad0 = _reference(opt_name)
    worst = {"max": 0.0, "norm": 0.0}
    for step in range(STEPS):
        for i in range(n_params):
            got, want = r0[f"step{step}_{i}"], ref[step][i]
            diff = np.abs(got - want)
            norm_rel = float(np.linalg.norm(got - want) / np.linalg.norm(want))
            max_rel = float(diff.max() / np.abs(want).max())
            worst["max"], worst["norm"] = max(worst["max"], max_rel), max(worst["norm"], norm_rel)
            # the whole tensor within 1e-6 relative, for both optimizers
            assert norm_rel <= 1e-6, f"step {step} parameter {i}: ||diff||/||p|| {norm_rel:.2e}"
            if opt_name == "sgd":  # and every element, for SGD
                assert max_rel <= 1e-6, f"step {step} parameter {i}: max relative {max_rel:.2e}"
            else:
                # Adam divides by sqrt(v) + eps: where a gradient is near zero, the rounding of
                # its sum (64 terms vs two halves of 32) is amplified by up to lr / eps = 1e5.
                # Those elements are few and sit where the gradient is tiny.
                outliers = diff > 1e-6 * np.abs(want).max()
                assert outliers.mean() < 1e-3, f"step {step} parameter {i}: {outliers.sum()}"
                if step == 0:
                    assert np.all(np.abs(ref_grad0[i][outliers]) < 1e-6), ref_grad0[i][outliers]
    print(f"{opt_name}: worst relative difference to one process x 64: {worst}")


def test_no_sync_accumulation(two_ranks):
    r0, r1 = two_ranks("nosync")
    x, y = _batch()
    model = _lenet()
    F.cross_entropy(model(Tensor._wrap(x, "cpu")), Tensor._wrap(y, "cpu")).backward()
    for i, p in enumerate(model.parameters()):
        np.testing.assert_array_equal(r0[f"grad_{i}"], r1[f"grad_{i}"])
        np.testing.assert_allclose(r0[f"grad_{i}"], p.grad.numpy(), rtol=1e-5,
                                   atol=1e-6 * np.abs(p.grad.numpy()).max())
    # inside no_sync the ranks kept their own gradients (they saw different samples)
    assert any(not np.array_equal(r0[f"local_{i}"], r1[f"local_{i}"]) for i in range(10))
    # and the first micro-batch's local gradient is half of its own mean-loss gradient
    model = _lenet()
    (F.cross_entropy(model(Tensor._wrap(x[:16], "cpu")), Tensor._wrap(y[:16], "cpu")) * 0.5) \
        .backward()
    for i, p in enumerate(model.parameters()):
        np.testing.assert_array_equal(r0[f"local_{i}"], p.grad.numpy())


def test_unused_parameters(two_ranks):
    r0, r1 = two_ranks("unused")
    for r in (r0, r1):
        assert "expected to have finished reduction" in str(r["error"])
        assert "b.weight" in str(r["error"]) and "find_unused_parameters=True" in str(r["error"])
        assert bool(r["b_grad_is_none"])
    # without the unused parameters the reduction never finished: a's gradient stayed local
    assert not np.array_equal(r0["a_grad_unreduced"], r1["a_grad_unreduced"])
    for step in range(2):
        for n in ("a.weight", "a.bias", "b.weight", "b.bias"):
            np.testing.assert_array_equal(r0[f"step{step}_{n}"], r1[f"step{step}_{n}"])
        # b is used on rank 1 only: the average is half of rank 1's gradient
        x1 = r1["x"]
        np.testing.assert_allclose(r0[f"step{step}_b.bias"], np.full(4, x1.shape[0] / 2))
        np.testing.assert_allclose(r0[f"step{step}_b.weight"],
                                   np.tile(x1.sum(0) / 2, (4, 1)), rtol=1e-6)


@pytest.mark.parametrize("mode", ["raise", "hang"])
def test_failed_rank_does_not_hang_the_others(tmp_path, monkeypatch, mode):
    log = tmp_path / "fail.log"
    monkeypatch.setenv("CUCNN_TEST_FAIL_LOG", str(log))
    timeout = 3.0
    monkeypatch.setenv("CUCNN_TEST_HANG_S", str(timeout + 1.5))
    results = run_ranks(tmp_path, worker_fail, mode, timeout=timeout, join_s=60)
    (code0, _, err0, _), (code1, _, err1, _) = results
    if mode == "raise":
        assert code1 != 0 and "rank 1 failed on purpose" in err1
    # rank 0 failed with an error from its collective, within the process group's timeout
    assert code0 == 1 and err0 is not None, f"rank 0 did not fail: exit {code0}"
    assert "RuntimeError" in err0 or "DistBackendError" in err0, err0
    waited = float(log.read_text().split()[0])
    assert waited < timeout + 5, f"rank 0 waited {waited:.1f} s"
    if mode == "hang":
        assert waited >= timeout * 0.9, f"rank 0 failed after {waited:.1f} s, before the timeout"
        assert "imeout" in err0 or "imed out" in err0, err0


# ---- the post-accumulate-grad hook DDP is built on -----------------------------------------------


def test_post_accumulate_grad_hook_runs_once_after_the_last_edge():
    w = cucnn.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = w.register_post_accumulate_grad_hook(lambda p: seen.append(p.grad.numpy().copy()))
    ((w * 3.0).sum() + (w * w).sum()).backward()  # w reaches the loss along three edges
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [5.0, 7.0])  # after all of them: 3 + 2w
    handle.remove()
    (w * 2.0).sum().backward()
    assert len(seen) == 1 and w.grad.numpy().tolist() == [7.0, 9.0]
    with pytest.raises(RuntimeError, match="non-leaf"):
        (w * 2.0).register_post_accumulate_grad_hook(print)
    with pytest.raises(TypeError, match="callable"):
        w.register_post_accumulate_grad_hook(3)


# ---- the command ---------------------------------------------------------------------------------


def _cli(args, tmp_path, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        env.pop(k, None)
    return subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True, **kw)


def test_train_nproc_ctrl_c_and_resume_under_torchrun(tmp_path):
    out = tmp_path / "run"
    common = ["--model", "xo", "--dataset", "xo", "--batch-size", "16", "--device", "cpu",
              "--out", str(out), "--no-plots"]
    # `cucnn train --nproc 2`, interrupted by Ctrl-C (SIGINT to the launcher, as a terminal does)
    proc = _cli([sys.executable, "-m", "cucnn.cli", "train", "--nproc", "2", "--epochs", "500",
                 *common], tmp_path)
    deadline = time.time() + 60
    while not (out / "metrics.json").is_file() and time.time() < deadline \
            and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[0]
    os.kill(proc.pid, signal.SIGINT)
    log = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, log
    assert "2 processes x batch 8" in log and log.count("training xo") == 1  # rank 0 reports
    assert "interrupted during epoch" in log and log.count("interrupted during epoch") == 1
    ck = checkpoint.load(out / "checkpoint.npz")
    assert ck["meta"]["interrupted"] is True and ck["epoch"] >= 1
    assert not list(out.glob("*.tmp*"))
    done = ck["epoch"]
    # resume it with torchrun directly (the multi-node form; one node here)
    proc = _cli([sys.executable, "-m", "torch.distributed.run", "--nnodes", "1",
                 "--nproc-per-node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                 "localhost:0", "-m", "cucnn.cli", "train", "--epochs", str(done + 2), "--resume",
                 *common], tmp_path)
    log = proc.communicate(timeout=90)[0]
    assert proc.returncode == 0, log
    assert f"resuming xo from {out / 'checkpoint.npz'} after epoch {done}" in log
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == list(range(1, done + 3))
    assert metrics["processes"] == 2 and 0 <= metrics["test_acc"] <= 1
    ck = checkpoint.load(out / "checkpoint.npz")
    assert ck["epoch"] == done + 2 and "interrupted" not in ck["meta"]


def test_train_batch_must_split_across_processes(monkeypatch, tmp_path):
    from cucnn import train
    for k, v in {"RANK": "0", "WORLD_SIZE": "3", "MASTER_ADDR": "localhost",
                 "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match="multiple of the number of processes, 3"):
        train.run("xo", "xo", batch_size=16, device="cpu", out=tmp_path)
    from cucnn import cli
    assert cli._strip_nproc(["train", "--nproc", "2", "--lr", "1", "--nproc=4"]) == \
        ["train", "--lr", "1"]
    assert cli.main(["train", "--nproc", "0"]) == 2


def test_buffers_and_parameters_broadcast_from_rank_0(two_ranks):
    r0, r1 = two_ranks("buffers")
    np.testing.assert_array_equal(r1["at_construction"], np.full(4, 11.0))
    for r in (r0, r1):
        np.testing.assert_array_equal(r["after_wrap"], np.full(4, 10.0))
    np.testing.assert_array_equal(r0["weight"], r1["weight"])  # rank 1's own init replaced
    # each forward starts from rank 0's buffer (10, then 11), then adds its own batch mean
    np.testing.assert_array_equal(r0["after_step1"], np.full(4, 11.0))
    np.testing.assert_array_equal(r1["after_step1"], np.full(4, 12.0))
    np.testing.assert_array_equal(r0["after_step2"], np.full(4, 12.0))
    np.testing.assert_array_equal(r1["after_step2"], np.full(4, 13.0))


def test_nproc_without_torch_names_the_extra(monkeypatch, capsys):
    from cucnn import cli
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setitem(sys.modules, "torch.distributed.run", None)
    assert cli.main(["train", "--nproc", "2"]) == 1
    assert 'pip install "cucnn[dist]"' in capsys.readouterr().err
