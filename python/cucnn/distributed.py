"""Data parallelism on torch.distributed: gloo on CPUs, NCCL on GPUs, launched by torchrun.

cucnn writes no collective code of its own. PyTorch is an optional extra (``pip install
"cucnn[dist]"``) and this is the only module of the package that imports it — lazily, on the first
call that needs it, so ``import cucnn`` (and even ``import cucnn.distributed``) never does.
cucnn's arrays are handed to torch.distributed without copies: ``torch.from_numpy`` on ``cpu`` and
``sim`` (NumPy arrays), DLPack on ``cuda`` (CuPy arrays). Collectives work in place on them.

    import cucnn.distributed as dist
    dist.init_process_group()                  # torchrun's environment; gloo, or nccl on cuda
    model = dist.DistributedDataParallel(model)
    sampler = cucnn.data.DistributedSampler(train_set)
    loader = cucnn.data.DataLoader(train_set, 32, sampler=sampler)
    for epoch in range(n):
        sampler.set_epoch(epoch)
        for x, y in loader: ...                # loss.backward() averages gradients across ranks

``DistributedDataParallel`` follows PyTorch's contract. Gradients are averaged *during* backward:
each parameter has a post-accumulate-grad hook (``Tensor.register_post_accumulate_grad_hook``)
that copies its gradient, divided by the world size, into its bucket's flat buffer; when a bucket
is complete its all_reduce is launched asynchronously (``async_op=True``: gloo runs it on its own
thread while NumPy, which releases the GIL, keeps computing the rest of the backward). Buckets
hold up to ``bucket_cap_mb`` each, at first in reverse registration order, and after the first
backward in the order the gradients actually became ready (rank 0's order, broadcast), as
PyTorch rebuilds them; they are launched strictly in bucket order so every rank issues the same
collectives in the same order.

The end of backward: the hook that completes the last bucket also waits for every bucket's work
and hands the averaged gradients back to ``.grad`` (views of the bucket buffer, which is fresh each
step, so nothing a caller kept is overwritten later). That is "the hook of the last parameter";
it needs every parameter to receive a gradient. With ``find_unused_parameters=True`` the forward
walks the autograd graph from the outputs and marks parameters it does not reach as ready at once
(their share of the bucket is zero), as PyTorch does. Without it, a step that leaves a parameter
without gradient leaves the reduction unfinished, and the next forward raises PyTorch's error
instead of silently training with unreduced gradients.
"""
from __future__ import annotations

import contextlib
import datetime
import os

import numpy as np

from . import _backend
from .tensor import AccumulateGrad, Tensor, _topological, is_grad_enabled

INSTALL_HINT = 'pip install "cucnn[dist]"'
_REDUCE_OPS = ("sum", "avg", "product", "min", "max")


def _torch():
    """``(torch, torch.distributed)``, or an ImportError that says how to install them."""
    try:
        import torch
        import torch.distributed as tdist
    except ImportError as e:
        raise ImportError(f"cucnn.distributed needs PyTorch (torch.distributed), which is not "
                          f"installed: {INSTALL_HINT}  ({e})") from None
    if not tdist.is_available():
        raise ImportError(f"this PyTorch build has no torch.distributed; install one that has: "
                          f"{INSTALL_HINT}")
    return torch, tdist


def is_available() -> bool:
    """Whether PyTorch with torch.distributed can be imported (never raises)."""
    try:
        _torch()
        return True
    except ImportError:
        return False


def launched_by_torchrun() -> bool:
    """Whether this process runs under torchrun (its environment names a rank and a world)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def is_initialized() -> bool:
    if not is_available():
        return False
    return _torch()[1].is_initialized()


def _device() -> str:
    return _state.get("device", "cpu")


_state: dict = {}


def init_process_group(backend: str | None = None, device: str = "auto", timeout=None,
                       init_method: str | None = None, rank: int | None = None,
                       world_size: int | None = None) -> None:
    """Join the process group. By default everything comes from torchrun's environment
    (``init_method="env://"``: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE). ``backend=None``
    chooses by ``device``: ``"nccl"`` for ``cuda``, ``"gloo"`` for ``cpu`` and ``sim``
    (``"auto"``: cuda when available). ``timeout`` (seconds or a ``timedelta``; PyTorch's default
    otherwise) bounds every collective: a rank that stops taking part makes the others raise after
    it instead of hanging. On cuda, each process uses the GPU of its LOCAL_RANK."""
    torch, tdist = _torch()
    if device == "auto":
        from . import cuda
        device = "cuda" if cuda.is_available() else "cpu"
    device = _backend.check_device(device)
    if backend is None:
        backend = "nccl" if device == "cuda" else "gloo"
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"init_process_group: backend must be 'gloo', 'nccl' or 'mpi', got "
                         f"{backend!r}")
    if backend == "nccl" and device != "cuda":
        raise ValueError(f"init_process_group: backend 'nccl' needs device 'cuda', got {device!r}")
    if timeout is not None and not isinstance(timeout, datetime.timedelta):
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"init_process_group: timeout must be positive seconds or a "
                             f"timedelta, got {timeout!r}")
        timeout = datetime.timedelta(seconds=float(timeout))
    if init_method is None and rank is None and not launched_by_torchrun():
        raise RuntimeError("init_process_group: no torchrun environment (RANK, WORLD_SIZE, "
                           "MASTER_ADDR, MASTER_PORT); launch with `torchrun --nproc-per-node N "
                           "...` or `cucnn train --nproc N`, or pass init_method, rank and "
                           "world_size")
    if device == "cuda":
        local = int(os.environ.get("LOCAL_RANK", 0))
        _backend.cupy().cuda.Device(local).use()
        torch.cuda.set_device(local)
    kwargs = {"backend": backend}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if init_method is not None:
        kwargs["init_method"] = init_method
    if rank is not None:
        kwargs["rank"] = int(rank)
    if world_size is not None:
        kwargs["world_size"] = int(world_size)
    tdist.init_process_group(**kwargs)
    _state["device"] = device


def destroy_process_group() -> None:
    _, tdist = _torch()
    if tdist.is_initialized():
        tdist.destroy_process_group()
    _state.pop("device", None)


def get_rank() -> int:
    """This process's rank (0 when no process group is initialised)."""
    return _torch()[1].get_rank() if is_initialized() else 0


def get_world_size() -> int:
    """The number of processes (1 when no process group is initialised)."""
    return _torch()[1].get_world_size() if is_initialized() else 1


def barrier() -> None:
    _torch()[1].barrier()


# ---- cucnn arrays as torch tensors (no copies) --------------------------------------------------


def _as_torch(array):
    """A torch tensor sharing ``array``'s memory: from_numpy on the host, DLPack for CuPy."""
    torch, _ = _torch()
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    return torch.from_dlpack(array)  # CuPy implements __dlpack__


def _stream_sync(device: str) -> None:
    """On cuda, make PyTorch's current stream (where NCCL's collectives are ordered) wait for
    CuPy's current stream, which produced the arrays. No-op on the host. (Unverified here: our
    machines have no GPU.)"""
    if device != "cuda":
        return
    torch, _ = _torch()
    cp = _backend.cupy()
    producer = torch.cuda.ExternalStream(cp.cuda.get_current_stream().ptr)
    torch.cuda.current_stream().wait_stream(producer)


def _after_collective(device: str) -> None:
    """On cuda, make CuPy's stream wait for the collective's result (its work.wait() only orders
    PyTorch's current stream)."""
    if device != "cuda":
        return
    torch, _ = _torch()
    cp = _backend.cupy()
    done = cp.cuda.Event(disable_timing=True)
    done.record(cp.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream))
    cp.cuda.get_current_stream().wait_event(done)


def _array_of(t, what: str):
    if not isinstance(t, Tensor):
        raise TypeError(f"{what}: tensor must be a cucnn.Tensor, got {type(t).__name__}")
    xp = _backend.xp_of(t.device)
    if not t.data.flags.c_contiguous or (t.device != "cuda" and not t.data.flags.writeable):
        t.data = xp.ascontiguousarray(t.data).copy()
    return t.data


def _reduce_op(op: str, what: str):
    _, tdist = _torch()
    if op not in _REDUCE_OPS:
        raise ValueError(f"{what}: op must be one of {', '.join(_REDUCE_OPS)}, got {op!r}")
    return {"sum": tdist.ReduceOp.SUM, "avg": tdist.ReduceOp.SUM,
            "product": tdist.ReduceOp.PRODUCT, "min": tdist.ReduceOp.MIN,
            "max": tdist.ReduceOp.MAX}[op]


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """Reduce ``tensor`` across ranks, in place, and return it. ``op``: sum, avg (a sum divided
    by the world size: gloo has no AVG), product, min or max."""
    _, tdist = _torch()
    arr = _array_of(tensor, "all_reduce")
    rop = _reduce_op(op, "all_reduce")
    if op == "avg" and arr.dtype.kind != "f":
        raise TypeError(f"all_reduce: op 'avg' needs a floating tensor, got {arr.dtype}")
    _stream_sync(tensor.device)
    tdist.all_reduce(_as_torch(arr), op=rop)
    _after_collective(tensor.device)
    if op == "avg":
        arr /= arr.dtype.type(get_world_size())
    return tensor


def broadcast(tensor: Tensor, src: int = 0) -> Tensor:
    """Overwrite ``tensor`` on every rank with rank ``src``'s values, in place; returns it."""
    _, tdist = _torch()
    arr = _array_of(tensor, "broadcast")
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or \
            not 0 <= src < get_world_size():
        raise ValueError(f"broadcast: src must be a rank in [0, {get_world_size() - 1}], got "
                         f"{src!r}")
    _stream_sync(tensor.device)
    tdist.broadcast(_as_torch(arr), src=int(src))
    _after_collective(tensor.device)
    return tensor


# ---- DistributedDataParallel ---------------------------------------------------------------------


class _Bucket:
    """Parameters whose gradients travel in one all_reduce, and where each sits in the flat
    buffer."""

    def __init__(self, params: list, device: str):
        self.params = params
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append(n)
            n += p.numel()
        self.numel, self.device = n, device
        self.dtype = params[0].dtype
        self.buffer = None  # fresh each step: the averaged .grad arrays are views of it
        self.pending = 0
        self.work = None

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.dtype).itemsize

    def reset(self) -> None:
        self.buffer = _backend.xp_of(self.device).empty(self.numel, dtype=self.dtype)
        self.pending = len(self.params)
        self.work = None


class DistributedDataParallel:
    """Wrap ``module`` for data-parallel training: the same model on every rank, each rank a
    share of the batch, gradients averaged across ranks during ``backward()`` so every rank's
    optimizer takes the same step.

    At construction the parameters (and buffers) of rank 0 are broadcast to all ranks. Each
    forward (with ``broadcast_buffers``) re-broadcasts rank 0's buffers, e.g. BatchNorm running
    statistics, as PyTorch does. ``bucket_cap_mb`` caps the bytes of gradients in one all_reduce.
    Calls to ``module``'s attributes pass through (``ddp.parameters()``, ``ddp.train()``); the
    wrapped model is ``ddp.module`` (save its ``state_dict``)."""

    def __init__(self, module, bucket_cap_mb: float = 25, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False):
        _, tdist = _torch()
        if not tdist.is_initialized():
            raise RuntimeError("DistributedDataParallel: the default process group is not "
                               "initialised; call cucnn.distributed.init_process_group() first")
        if not hasattr(module, "named_parameters"):
            raise TypeError(f"DistributedDataParallel: module must be a cucnn.nn.Module, got "
                            f"{type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or \
                not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be a positive number, "
                             f"got {bucket_cap_mb!r}")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = bucket_cap_mb
        self.world_size = tdist.get_world_size()
        self.require_backward_grad_sync = True
        params = [p for _, p in module.named_parameters() if p.requires_grad]
        devices = {p.device for p in params}
        if len(devices) > 1:
            raise ValueError(f"DistributedDataParallel: parameters on several devices "
                             f"{sorted(devices)}; move the model to one device")
        self.device = devices.pop() if devices else "cpu"
        # rank 0's parameters and buffers everywhere before the first step
        for p in params:
            broadcast(p, 0)
        self._sync_buffers()
        # first buckets in reverse registration order (the order backward tends to produce
        # gradients); after the first backward, rebuilt in the order gradients really came
        self._params = params
        self._build_buckets(list(reversed(params)))
        self._ready_order = []  # indices into _params, in the order of the first backward
        self._rebuilt = False
        self._index = {id(p): i for i, p in enumerate(params)}
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in params]
        self._armed = False  # a forward prepared a reduction that backward has not finished
        self._ready = set()  # ids of the parameters whose gradient is in its bucket
        self._unused = set()  # ids of those the last forward did not reach
        self._next_launch = 0
        self.comm_seconds = 0.0  # time this rank's thread spent waiting for all_reduces
        self.bytes_per_step = sum(b.nbytes for b in self.buckets)

    def _build_buckets(self, ordered: list) -> None:
        cap = int(self.bucket_cap_mb * 1024 * 1024)
        self.buckets, current, size = [], [], 0
        for p in ordered:
            nbytes = p.numel() * p.dtype.itemsize
            if current and (size + nbytes > cap or p.dtype != current[0].dtype):
                self.buckets.append(_Bucket(current, self.device))
                current, size = [], 0
            current.append(p)
            size += nbytes
        if current:
            self.buckets.append(_Bucket(current, self.device))
        self._where = {}  # id(param) -> (bucket index, position in the bucket)
        for b, bucket in enumerate(self.buckets):
            for i, p in enumerate(bucket.params):
                self._where[id(p)] = (b, i)

    def _rebuild_buckets(self) -> None:
        """PyTorch's bucket rebuild after the first iteration: buckets follow the order in which
        gradients became ready, so the first bucket fills (and goes on the wire) early. Our
        engine, for one, reaches the Linear weights (behind their transposes) last. Rank 0's
        order is broadcast, so every rank builds the same buckets."""
        self._rebuilt = True
        order = self._ready_order
        if len(order) != len(self._params):
            return
        arr = Tensor._wrap(_backend.xp_of(self.device).asarray(order, dtype=np.int64),
                           self.device)
        order = [int(i) for i in _backend.to_numpy(broadcast(arr, 0).data)]
        self._build_buckets([self._params[i] for i in order])

    # -- attribute pass-through, so the wrapper stands in for the model
    def __getattr__(self, name):
        return getattr(self.__dict__["module"], name)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def __repr__(self) -> str:
        return f"DistributedDataParallel(\n  (module): {self.module!r}\n)"

    def parameters(self):
        return self.module.parameters()

    def named_parameters(self, prefix: str = ""):
        return self.module.named_parameters(prefix)

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict, strict: bool = True):
        return self.module.load_state_dict(state_dict, strict)

    def train(self, mode: bool = True):
        self.module.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # -- forward
    def forward(self, *args, **kwargs):
        if self._armed and self._ready:  # a backward started reducing and did not finish
            unready = [n for n, p in self.module.named_parameters()
                       if id(p) in self._where and id(p) not in self._ready]
            self._armed = False
            raise RuntimeError(
                "DistributedDataParallel: expected to have finished reduction in the prior "
                "iteration before starting a new one: parameters that received no gradient in "
                f"the last backward ({', '.join(unready[:8])}{', ...' if len(unready) > 8 else ''})."
                " Pass find_unused_parameters=True, or make every parameter take part in the loss.")
        if self.broadcast_buffers:
            self._sync_buffers()
        out = self.module(*args, **kwargs)
        if is_grad_enabled() and self.require_backward_grad_sync and self.buckets:
            self._prepare(out)
        return out

    def _sync_buffers(self) -> None:
        named = getattr(self.module, "named_buffers", None)  # BatchNorm stats, where they exist
        if named is None or self.world_size == 1:
            return
        for _, buf in named():
            if buf is None:
                continue
            if isinstance(buf, Tensor):
                broadcast(buf, 0)
            else:  # a bare array
                tmp = Tensor._wrap(buf, self.device)
                broadcast(tmp, 0)
                if tmp.data is not buf:
                    buf[...] = tmp.data

    def _prepare(self, out) -> None:
        for bucket in self.buckets:
            bucket.reset()
        self._next_launch = 0
        self._ready, self._unused = set(), set()
        self._armed = True
        if self.find_unused_parameters:
            reached = set()
            for t in _tensors_in(out):
                if t.grad_fn is None:
                    reached.add(id(t))
                    continue
                for node in _topological(t.grad_fn):  # the graph's leaves are its sinks
                    if isinstance(node, AccumulateGrad):
                        reached.add(id(node.variable))
            for bucket in self.buckets:
                for p in bucket.params:
                    if id(p) not in reached:
                        self._mark_ready(p, None)

    # -- backward: the hooks
    def _on_grad(self, p) -> None:
        if not self._armed:  # no_sync(), or a backward through a graph built without sync
            return
        self._mark_ready(p, p.grad.data if p.grad is not None else None)

    def _mark_ready(self, p, grad) -> None:
        b, i = self._where[id(p)]
        if id(p) in self._ready:
            raise RuntimeError("DistributedDataParallel: a parameter's gradient was marked "
                               "ready twice in one backward")
        self._ready.add(id(p))
        if not self._rebuilt:
            self._ready_order.append(self._index[id(p)])
        bucket = self.buckets[b]
        off, n = bucket.offsets[i], p.numel()
        dst = bucket.buffer[off:off + n]
        if grad is None:
            dst[...] = 0
            self._unused.add(id(p))
        else:
            # pre-divide, as PyTorch's default hook does: the sum of the shares is the mean
            _backend.xp_of(self.device).divide(grad.reshape(-1), bucket.dtype.type(
                self.world_size), out=dst)
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready()

    def _launch_ready(self) -> None:
        _, tdist = _torch()
        # strictly in bucket order, so every rank issues the same collectives in the same order
        while self._next_launch < len(self.buckets) and \
                self.buckets[self._next_launch].pending == 0:
            bucket = self.buckets[self._next_launch]
            _stream_sync(self.device)
            bucket.work = tdist.all_reduce(_as_torch(bucket.buffer), async_op=True)
            self._next_launch += 1
        if self._next_launch == len(self.buckets):
            self._finish()

    def _finish(self) -> None:
        """The end of the reduction: wait for every bucket, give the averages back to .grad."""
        import time
        t0 = time.perf_counter()
        for bucket in self.buckets:
            bucket.work.wait()
        _after_collective(self.device)
        self.comm_seconds += time.perf_counter() - t0
        unused = set()
        if self.find_unused_parameters:
            # parameters no rank used keep their .grad (None after zero_grad), as in PyTorch; a
            # parameter used on some rank gets the average everywhere so the ranks stay equal
            order = [p for bucket in self.buckets for p in bucket.params]
            used = Tensor._wrap(_backend.xp_of(self.device).asarray(
                [id(p) not in self._unused for p in order], dtype=np.float32), self.device)
            counts = _backend.to_numpy(all_reduce(used).data)
            unused = {id(p) for p, u in zip(order, counts) if u == 0}
        for bucket in self.buckets:
            for p, off in zip(bucket.params, bucket.offsets):
                if id(p) in unused:
                    continue
                view = bucket.buffer[off:off + p.numel()].reshape(p.shape)
                if p.grad is None:
                    p.grad = Tensor._wrap(view, p.device)
                else:
                    p.grad.data = view
            bucket.work = None
        self._armed = False
        if not self._rebuilt:
            self._rebuild_buckets()

    @contextlib.contextmanager
    def no_sync(self):
        """Gradients accumulate locally inside; the first backward after it reduces the sum."""
        prev = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = prev

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def _tensors_in(out):
    if isinstance(out, Tensor):
        yield out
    elif isinstance(out, (list, tuple)):
        for o in out:
            yield from _tensors_in(o)
    elif isinstance(out, dict):
        for o in out.values():
            yield from _tensors_in(o)
