"""The op registry: what tests, the demo and the benchmarks iterate over.

An ``OpSpec`` names an op family, its cases, and ``compute(device, inputs, version)``, which runs
the forward and every backward on one device and returns the outputs by name. On ``cpu`` with
float64 inputs that is the float64 oracle; on ``sim`` and ``cuda`` it is the kernels of the given
version. Comparing the two, case by case, is the whole test of a kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .. import _backend


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[np.random.Generator], dict]  # float64 arrays, int64 targets, plain params
    reduce_len: int = 1  # longest float32 reduction behind one output element (for tolerances)


@dataclass(frozen=True)
class BenchCase:
    """One benchmarked call, for benchmarks/ops.py (timing), benchmarks/model.py (predictions)
    and benchmarks/kernels_report.py: the registry is the one list of benchmark cases."""
    op: str  # table name: "conv2d", "max_pool2d", "relu", ...
    direction: str  # "fwd", "dgrad", "wgrad", "bwd"
    label: str  # the suite's name for the shape, e.g. "resnet-3x3-56"
    shape: str  # human-readable shape
    params: dict  # the op's parameters (sizes, stride, ...), for launch plans and the model
    make: Callable[[np.random.Generator], dict]  # host float32 / int64 arrays
    run: Callable[[str, dict, int], object]  # (device, inputs, version) -> output
    torch: Callable | None = None  # (torch module, inputs) -> the same output from PyTorch
    flops: float = 0.0  # useful floating-point operations (conv: 2 per multiply-add)
    bytes: float = 0.0  # minimum bytes moved: each input read once, each output written once
    reduce_len: int = 1  # for the comparison tolerance
    tf32: bool = False  # TF32 changes the result (matrix products only)


BENCH_SUITES = ("full", "small", "tiny")


@dataclass
class OpSpec:
    name: str
    cases: list
    compute: Callable[[str, dict, int], dict]
    versions: tuple = (1,)
    exact: tuple = ()  # outputs that must match the oracle exactly (indices)
    # Optional error scales per output, from the float64 inputs and oracle outputs: the size of the
    # terms behind each element, where cancellation makes |expected| a poor yardstick.
    scales: Callable[[dict, dict], dict] | None = None
    doc: str = ""
    # Benchmark cases per suite ("full", "small" on cpu in minutes, "tiny" on sim in seconds):
    # suite name -> [BenchCase]. Ops without it are tested but not benchmarked.
    bench: Callable[[str], list] | None = None

    def inputs_for(self, case: Case, device: str, seed: int = 0, dtype=np.float32) -> dict:
        """The case's inputs on a device: floats as ``dtype`` (float64 for the oracle)."""
        raw = case.make(np.random.default_rng(seed))
        xp = _backend.xp_of(device)
        out = {}
        for k, v in raw.items():
            if isinstance(v, np.ndarray):
                v = v.astype(dtype) if v.dtype.kind == "f" else v
                v = xp.asarray(v)
            out[k] = v
        return out


REGISTRY: dict = {}


def register(spec: OpSpec) -> OpSpec:
    if spec.name in REGISTRY:
        raise ValueError(f"op {spec.name!r} registered twice")
    REGISTRY[spec.name] = spec
    return spec


def bench_cases(suite: str) -> list:
    """Every registered op's benchmark cases for a suite, in registration order."""
    if suite not in BENCH_SUITES:
        raise ValueError(f"unknown suite {suite!r}: full, small or tiny")
    return [c for spec in REGISTRY.values() if spec.bench for c in spec.bench(suite)]


def int_pair(v, name: str, minimum: int, what: str) -> tuple:
    """An int or a pair of ints, each >= minimum, as a pair; errors name ``what`` and ``name``."""
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(vals) != 2:
        raise ValueError(f"{what}: {name} must be an int or a pair, got {v}")
    for a in vals:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{what}: {name} must be an int or a pair of ints, got "
                            f"{type(a).__name__}")
        if a < minimum:
            raise ValueError(f"{what}: {name} must be >= {minimum}, got {v}")
    return int(vals[0]), int(vals[1])


def nasty(rng: np.random.Generator, shape, outliers: float = 0.03, scale: float = 20.0):
    """Normal values with a share of outliers ``scale`` times larger: negatives, large magnitudes
    and small ones in one array."""
    x = rng.standard_normal(shape)
    mask = rng.random(shape) < outliers
    return np.where(mask, x * scale, x)
