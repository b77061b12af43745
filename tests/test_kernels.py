"""Every registered op, every case, every kernel version: native results against the float64
oracle. On sim each case runs in several SIMT orders with outputs poisoned with NaN (by
cucnn._backend.empty) and must be bitwise equal across orders and across repeated calls. The cpu
device (float32 oracle code) and, where a GPU is present, the cuda kernels and the CuPy reference
path are held to the same tolerances."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
from cucnn.ops import REGISTRY
from cucnn.testing import assert_bitwise_equal, check_op_case
from conftest import ORDERS, requires_cuda

CASES = [(spec, case) for spec in REGISTRY.values() for case in spec.cases]
VERSIONED = [(spec, case, v) for spec, case in CASES for v in spec.versions]


def _ids(items):
    return [f"{it[0].name}:{it[1].id}" + (f":v{it[2]}" if len(it) > 2 else "") for it in items]


@pytest.mark.parametrize("spec,case,version", VERSIONED, ids=_ids(VERSIONED))
def test_sim_against_oracle_in_every_order(spec, case, version):
    runs = {}
    for order in ORDERS:
        with cucnn.sim.order(order):
            runs[order] = check_op_case(spec, case, "sim", version)
    first = runs[ORDERS[0]]
    for order, out in runs.items():
        for k in first:
            assert_bitwise_equal(out[k], first[k], name=f"{case.id}:{k} ({order} vs {ORDERS[0]})")
    again = spec.compute("sim", spec.inputs_for(case, "sim"), version)
    for k in first:
        assert_bitwise_equal(again[k], first[k], name=f"{case.id}:{k} (second call)")


@pytest.mark.parametrize("spec,case", CASES, ids=_ids(CASES))
def test_cpu_device_against_oracle(spec, case):
    check_op_case(spec, case, "cpu")


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("spec,case,version", VERSIONED, ids=_ids(VERSIONED))
def test_cuda_against_oracle(spec, case, version):
    check_op_case(spec, case, "cuda", version)


@requires_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("spec,case", CASES, ids=_ids(CASES))
def test_cuda_reference_path_against_oracle(spec, case):
    with cucnn.cuda.use_reference_path():
        check_op_case(spec, case, "cuda")


def test_registry_covers_the_foundation_ops():
    assert {"activation", "softmax", "cross_entropy"} <= set(REGISTRY)
    for spec in REGISTRY.values():
        assert len(spec.cases) >= 5, spec.name


@pytest.mark.parametrize("act", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_activation_unaligned_and_aligned_paths_agree(act):
    """A view that starts 4 bytes in is not 16-byte aligned: the launcher must take the scalar
    path; the float4 path on aligned data must give the same bits."""
    from cucnn.ops import activation
    rng = np.random.default_rng(3)
    base = rng.standard_normal(1 + 4 * 37 + 3).astype(np.float32)
    unaligned = base[1:]
    assert unaligned.ctypes.data % 16 != 0
    aligned = unaligned.copy()
    for version in (0, 1):
        a = activation.forward("sim", act, unaligned, 0.1, version)
        b = activation.forward("sim", act, aligned, 0.1, 1)
        assert_bitwise_equal(a, b, name=f"{act} v{version}")


def test_relu_gradient_at_zero_is_zero():
    x = cucnn.tensor([-1.0, 0.0, -0.0, 2.0], device="sim", requires_grad=True)
    cucnn.functional.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0, 1.0])


def test_sim_with_parallel_blocks_matches_serial():
    spec = REGISTRY["softmax"]
    case = next(c for c in spec.cases if c.id == "softmax-3x1024-nasty")
    serial = spec.compute("sim", spec.inputs_for(case, "sim"), 1)
    with cucnn.sim.threads(2):
        parallel = spec.compute("sim", spec.inputs_for(case, "sim"), 1)
    for k in serial:
        assert_bitwise_equal(parallel[k], serial[k], name=k)
