"""Backend switches, with PyTorch's semantics (``torch.backends.cudnn.allow_tf32``).

``allow_tf32`` (default True, as PyTorch's for convolutions): convolutions on the ``cuda`` and
``sim`` devices may run on TF32 tensor cores — inputs rounded to TF32 (10-bit mantissa, round to
nearest, ties away from zero), products summed in fp32. On an H100 that is about 7x the fp32
FFMA peak (495 against 67 TFLOP/s dense), at a relative error of up to 2**-11 per input instead
of 2**-24. The ``cpu`` device (NumPy) always computes in fp32. Set it to False, or use
``flags(allow_tf32=False)``, for fp32 convolutions everywhere.
"""
from __future__ import annotations

import contextlib

#: Convolutions on cuda and sim may use TF32 tensor cores (see the module docstring).
allow_tf32 = True


@contextlib.contextmanager
def flags(allow_tf32: bool | None = None):
    """Set the switches for a ``with`` block and restore them afterwards (None: leave as is)."""
    global_ns = globals()
    old = global_ns["allow_tf32"]
    if allow_tf32 is not None:
        if not isinstance(allow_tf32, bool):
            raise TypeError(f"flags: allow_tf32 must be a bool or None, got "
                            f"{type(allow_tf32).__name__}")
        global_ns["allow_tf32"] = allow_tf32
    try:
        yield
    finally:
        global_ns["allow_tf32"] = old
