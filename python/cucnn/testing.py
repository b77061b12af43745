"""Comparison helpers and the shared tolerances.

Tolerances live here and nowhere else. Native float32 results are compared with the float64
oracle; the error of a float32 reduction grows with its length, so the tolerance does too.
"""
from __future__ import annotations

import numpy as np

from . import _backend

#: Relative tolerance of one float32 operation (a few ulps: GPU ``expf``/FMA differ in last bits).
BASE_RTOL = 2e-6


def tolerance(reduce_len: int = 1) -> float:
    """Relative tolerance for a float32 result that sums ``reduce_len`` terms."""
    return BASE_RTOL * (8.0 + 2.0 * np.sqrt(max(int(reduce_len), 1)))


#: Relative rounding error of one TF32 value (10 explicit mantissa bits, round to nearest): 2**-11.
TF32_UNIT = 2.0 ** -11


def tf32_tolerance(reduce_len: int = 1) -> float:
    """Relative tolerance of a TF32 tensor-core result (inputs rounded to TF32, fp32 sums) against
    the float64 oracle: the fp32 tolerance's shape with TF32's unit in place of fp32's. Each term
    carries up to 2 units from rounding its two factors; independent roundings grow like the
    square root of the reduction length."""
    return TF32_UNIT * (8.0 + 2.0 * np.sqrt(max(int(reduce_len), 1)))


def round_tf32(a):
    """float32 array rounded as ``cvt.rna.tf32.f32`` rounds (to 10 mantissa bits, nearest, ties
    away from zero, overflow to inf; inf and NaN keep all but their low 13 bits), still as
    float32: the TF32 reference's inputs."""
    a = np.array(a, dtype=np.float32)
    bits = a.view(np.uint32)
    finite = (bits & 0x7F800000) != 0x7F800000
    bits[finite] += np.uint32(0x1000)  # half of the dropped unit, on the magnitude
    bits &= np.uint32(0xFFFFE000)
    return a


def _host(a):
    if hasattr(a, "numpy") and not isinstance(a, np.ndarray):  # Tensor
        a = a.numpy()
    return _backend.to_numpy(a)  # CuPy -> NumPy


def assert_close(actual, expected, *, rtol: float | None = None, atol: float | None = None,
                 reduce_len: int = 1, name: str = "tensor", scale=None) -> None:
    """Assert ``|actual - expected| <= atol + rtol * |expected|`` elementwise, NaN-aware (NaN must
    match NaN, +inf +inf, -inf -inf). ``atol`` defaults to ``rtol`` times ``scale``, the size of the
    terms (default: the largest finite |expected|; an array gives each element its own), so results
    near zero after cancellation are judged against the magnitudes that produced them.

    A failure says which tensor, where the worst element is, the errors, and how much of the
    tolerance was used."""
    a = _host(actual)
    e = _host(expected)
    if a.shape != e.shape:
        raise AssertionError(f"{name}: shape {a.shape} != expected {e.shape}")
    if rtol is None:
        rtol = tolerance(reduce_len)
    e64 = e.astype(np.float64)
    a64 = a.astype(np.float64)
    finite = np.isfinite(e64)
    if atol is None:
        if scale is None:
            scale = float(np.max(np.abs(e64[finite]))) if finite.any() else 1.0
        scale = np.maximum(np.nan_to_num(_host(scale).astype(np.float64), posinf=0.0), 1e-30)
        atol = rtol * scale
    nan_e, nan_a = np.isnan(e64), np.isnan(a64)
    bad_nan = nan_e != nan_a
    inf_mismatch = ~finite & ~nan_e & (a64 != e64)
    if bad_nan.any() or inf_mismatch.any():
        idx = np.unravel_index(int(np.argmax(bad_nan | inf_mismatch)), a.shape)
        raise AssertionError(f"{name}: non-finite mismatch at index {tuple(int(i) for i in idx)}: "
                             f"got {a64[idx]}, expected {e64[idx]} "
                             f"({int((bad_nan | inf_mismatch).sum())} such elements)")
    if not finite.any():
        return
    with np.errstate(invalid="ignore"):
        err = np.where(finite, np.abs(a64 - e64), 0.0)
    allowed = atol + rtol * np.abs(e64)
    ratio = np.where(finite, err / allowed, 0.0)
    worst = np.unravel_index(int(np.argmax(ratio)), a.shape)
    if ratio[worst] > 1.0 or np.isnan(ratio[worst]):
        rel = err[worst] / max(abs(e64[worst]), 1e-30)
        raise AssertionError(
            f"{name}: mismatch at index {tuple(int(i) for i in worst)}: got {a64[worst]!r}, "
            f"expected {e64[worst]!r}; abs error {err[worst]:.3g}, rel error {rel:.3g}; "
            f"{ratio[worst]:.3g}x the tolerance (rtol {rtol:.3g}, "
            f"atol {float(np.broadcast_to(atol, a.shape)[worst]):.3g}); "
            f"{int((ratio > 1).sum())} of {a.size} elements out of tolerance")


def assert_bitwise_equal(a, b, *, name: str = "tensor") -> None:
    """Same shape, dtype and bits (NaN payloads included)."""
    a, b = _host(a), _host(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        raise AssertionError(f"{name}: {a.shape}/{a.dtype} != {b.shape}/{b.dtype}")
    av = a.view(np.uint8) if a.size else a
    bv = b.view(np.uint8) if b.size else b
    if not np.array_equal(av, bv):
        diff = np.flatnonzero(a.reshape(-1).view(f"u{a.itemsize}") !=
                              b.reshape(-1).view(f"u{b.itemsize}"))
        idx = np.unravel_index(int(diff[0]), a.shape)
        raise AssertionError(f"{name}: not bitwise equal; {diff.size} elements differ, first at "
                             f"{tuple(int(i) for i in idx)}: {a[idx]!r} vs {b[idx]!r}")


def gradcheck(f, inputs, *, eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-8,
              directions: int = 3, seed: int = 0, name: str = "gradcheck") -> None:
    """Check the gradients of ``f`` (float64 Tensors -> float64 Tensor) against central
    differences, along random directions: d/dt sum(w * f(x + t v)) = sum_i <grad_i, v_i>, with a
    random output weighting w. Cheap for big ops, exact in the limit (as PyTorch's fast mode)."""
    from .tensor import Tensor, _backend

    rng = np.random.default_rng(seed)
    xs = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    if not xs:
        raise ValueError("gradcheck needs at least one input with requires_grad=True")
    for x in xs:
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs, got {x.dtype}")
        x.grad = None
    out = f(*inputs)
    w = rng.standard_normal(out.shape)
    xp = _backend.xp_of(out.device)
    (out * Tensor._wrap(xp.asarray(w), out.device)).sum().backward()
    analytic = [_host(x.grad.data) if x.grad is not None else np.zeros(x.shape) for x in xs]
    originals = [x.data.copy() for x in xs]
    for k in range(directions):
        vs = [rng.standard_normal(x.shape) for x in xs]
        predicted = sum(float(np.sum(g * v)) for g, v in zip(analytic, vs))
        vals = []
        for sign in (1.0, -1.0):
            for x, orig, v in zip(xs, originals, vs):
                x.data = orig + sign * eps * xp.asarray(v)
            from .tensor import no_grad
            with no_grad():
                vals.append(float(np.sum(_host(f(*inputs).data) * w)))
        for x, orig in zip(xs, originals):
            x.data = orig
        numeric = (vals[0] - vals[1]) / (2 * eps)
        if not abs(numeric - predicted) <= atol + rtol * max(abs(numeric), abs(predicted)):
            raise AssertionError(f"{name}: direction {k}: analytic {predicted!r} vs numeric "
                                 f"{numeric!r} (diff {abs(numeric - predicted):.3g})")


def check_op_case(spec, case, device: str, version: int = 1, seed: int = 0) -> dict:
    """Run one registered case (``cucnn.ops.REGISTRY``) on ``device`` and compare every output with
    the float64 oracle: exact outputs bitwise, the rest with the shared tolerances. Raises
    AssertionError on a mismatch; returns the device's outputs by name."""
    inputs64 = spec.inputs_for(case, "cpu", seed=seed, dtype=np.float64)
    expected = spec.compute("cpu", inputs64, 1)
    scales = spec.scales(inputs64, expected) if spec.scales else {}
    got = spec.compute(device, spec.inputs_for(case, device, seed=seed), version)
    if set(got) != set(expected):
        raise AssertionError(f"{spec.name}:{case.id}: outputs {sorted(got)} != {sorted(expected)}")
    for k, e in expected.items():
        name = f"{spec.name}:{case.id}:{device}-v{version}:{k}"
        if k in spec.exact:
            g = _host(got[k])
            same = np.array_equal(g, e, equal_nan=g.dtype.kind == "f")
            if not same or g.dtype.kind != np.asarray(e).dtype.kind:
                bad = np.flatnonzero(~((g == e) | (np.isnan(g) & np.isnan(e)))
                                     if g.dtype.kind == "f" else g != e)
                where = np.unravel_index(int(bad[0]), g.shape) if bad.size else "dtype"
                raise AssertionError(f"{name}: differs from the oracle at {where}"
                                     f" ({bad.size} elements)")
        else:
            assert_close(got[k], e, reduce_len=case.reduce_len, name=name, scale=scales.get(k))
    return got
