"""The one random generator behind initialisation and dropout (``cucnn.manual_seed``).

Random numbers are drawn on the host with NumPy and moved to the device, so a seed gives the same
weights and dropout masks on cpu, sim and cuda.
"""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator used by layer initialisation and dropout (PyTorch's name)."""
    global _generator
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    _generator = np.random.default_rng(int(seed))
    return _generator


def generator() -> np.random.Generator:
    return _generator
