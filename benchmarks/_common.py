"""What the benchmark scripts share: the machine and library versions, timers (CUDA events on a
GPU, perf_counter on the host) with warm-up, medians and cache flushing, and the output writers."""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import cucnn
from cucnn import _backend


def torch_or_none():
    try:
        import torch
    except ImportError:
        return None
    return torch


def environment(device: str) -> dict:
    """Device, driver and library versions, and the date: printed with every result."""
    env = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "device": device, "cucnn": cucnn.__version__, "numpy": np.__version__,
           "python": platform.python_version(), "cpu": _cpu_name(), "cores": os.cpu_count()}
    torch = torch_or_none()
    env["torch"] = torch.__version__ if torch else None
    if device == "cuda":
        cp = _backend.cupy()
        props = cp.cuda.runtime.getDeviceProperties(0)
        env.update(gpu=props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
                   driver=cp.cuda.runtime.driverGetVersion(),
                   cuda_runtime=cp.cuda.runtime.runtimeGetVersion(), cupy=cp.__version__,
                   l2_bytes=int(props.get("l2CacheSize", 0)), sms=int(props["multiProcessorCount"]))
        if torch is not None and torch.cuda.is_available():
            env["cudnn"] = torch.backends.cudnn.version()
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class HostTimer:
    """perf_counter around a call; 'cold' runs first sweep a buffer larger than the last-level
    cache, so inputs come from memory."""

    def __init__(self, flush_bytes: int = 64 << 20):
        self._flush = np.ones(flush_bytes // 4, dtype=np.float32)

    def flush(self):
        self._flush += 1.0

    def time(self, fn) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


class CudaTimer:
    """CUDA events around the call on the current stream ('cold' runs first overwrite a buffer
    twice the size of the L2 cache). ``kind`` is 'cupy' or 'torch': each library records its own
    events on its own current stream."""

    def __init__(self, kind: str, l2_bytes: int):
        self.kind = kind
        n = max(2 * l2_bytes, 8 << 20)
        if kind == "torch":
            import torch
            self._torch = torch
            self._flush = torch.empty(n, dtype=torch.uint8, device="cuda")
        else:
            self._cp = _backend.cupy()
            self._flush = self._cp.empty(n, dtype=np.uint8)

    def flush(self):
        if self.kind == "torch":
            self._flush.fill_(1)
        else:
            self._flush.fill(1)

    def time(self, fn) -> float:
        if self.kind == "torch":
            a = self._torch.cuda.Event(enable_timing=True)
            b = self._torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b)
        cp = self._cp
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        return cp.cuda.get_elapsed_time(a, b)


def measure(timer, fn_of, inputs: list, reps: int = 20, warmup: int = 3) -> dict:
    """Median, min and max of ``reps`` cold runs (cache flushed, inputs rotated among the copies in
    ``inputs``) and the median of ``reps`` hot runs (same input, back to back), in ms.
    ``fn_of(inp)`` returns the zero-argument call to time."""
    calls = [fn_of(inp) for inp in inputs]
    for i in range(warmup):
        calls[i % len(calls)]()
    cold = []
    for i in range(reps):
        timer.flush()
        cold.append(timer.time(calls[i % len(calls)]))
    hot = [timer.time(calls[0]) for _ in range(reps)]
    return {"ms": statistics.median(cold), "ms_min": min(cold), "ms_max": max(cold),
            "ms_hot": statistics.median(hot), "reps": reps}


def write_json(path, payload: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path


def env_lines(env: dict) -> list:
    keys = ["date", "device", "gpu", "driver", "cuda_runtime", "cudnn", "cupy", "torch", "numpy",
            "cucnn", "python", "cpu", "cores"]
    return [f"- {k}: {env[k]}" for k in keys if env.get(k) is not None]
