"""Host-side batch transforms for data augmentation (torchvision's names and arguments), on NumPy
float batches (N, C, H, W). Random draws come from ``cucnn.manual_seed``'s generator (one draw per
sample, vectorised over the batch), so a seed fixes the augmentation as it fixes the weights.

    from cucnn import transforms as T
    aug = T.Compose([T.RandomCrop(28, padding=2), T.RandomHorizontalFlip()])
    loader = cucnn.data.DataLoader(train_set, 128, shuffle=True, transform=aug)

A transform returns a new array; the input batch is never modified.
"""
from __future__ import annotations

import numpy as np

from . import _random


def _batch(x, what: str) -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"{what}: expected a NumPy batch (N, C, H, W), got "
                         f"{type(x).__name__} of shape {getattr(x, 'shape', None)}")
    return x


def _size_pair(v, name: str, what: str, minimum: int) -> tuple:
    vals = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(vals) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                             or a < minimum for a in vals):
        raise ValueError(f"{what}: {name} must be an int >= {minimum} or a pair of them, got "
                         f"{v!r}")
    return int(vals[0]), int(vals[1])


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"


class RandomCrop:
    """Pad each image by ``padding`` with ``fill`` and cut a ``size`` window at a random offset
    (one per sample). ``size`` is an int or (h, w); ``padding`` an int or, as torchvision,
    (left/right, top/bottom). ``fill`` is in the batch's units: after normalisation, black is
    -mean/std."""

    def __init__(self, size, padding=0, fill: float = 0.0):
        self.size = _size_pair(size, "size", "RandomCrop", 1)
        lr, tb = _size_pair(padding, "padding", "RandomCrop", 0)
        self.padding = (tb, lr)  # stored as (rows, columns)
        self.fill = float(fill)

    def __call__(self, x):
        x = _batch(x, "RandomCrop")
        N, C, H, W = x.shape
        ph, pw = self.padding
        h, w = self.size
        if h > H + 2 * ph or w > W + 2 * pw:
            raise ValueError(f"RandomCrop: crop size {self.size} is larger than the padded "
                             f"image {(H + 2 * ph, W + 2 * pw)}")
        padded = np.full((N, C, H + 2 * ph, W + 2 * pw), self.fill, dtype=x.dtype)
        padded[:, :, ph:ph + H, pw:pw + W] = x
        rng = _random.generator()
        top = rng.integers(0, H + 2 * ph - h + 1, size=N)
        left = rng.integers(0, W + 2 * pw - w + 1, size=N)
        rows = (top[:, None] + np.arange(h))[:, None, :, None]
        cols = (left[:, None] + np.arange(w))[:, None, None, :]
        return padded[np.arange(N)[:, None, None, None], np.arange(C)[None, :, None, None],
                      rows, cols]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding[::-1]}, fill={self.fill})"


class RandomHorizontalFlip:
    """Mirror each image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be a probability in [0, 1], got {p!r}")
        self.p = float(p)

    def __call__(self, x):
        x = _batch(x, "RandomHorizontalFlip")
        flip = _random.generator().random(x.shape[0]) < self.p
        out = x.copy()
        out[flip] = x[flip][..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Normalize:
    """(x - mean[c]) / std[c] per channel; mean and std are numbers or one per channel."""

    def __init__(self, mean, std):
        self.mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        self.std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if self.mean.ndim != 1 or self.std.ndim != 1:
            raise ValueError(f"Normalize: mean and std must be numbers or sequences, got {mean!r}"
                             f" and {std!r}")
        if np.any(self.std == 0) or not np.all(np.isfinite(self.std)):
            raise ValueError(f"Normalize: std must be finite and non-zero, got {std!r}")

    def __call__(self, x):
        x = _batch(x, "Normalize")
        C = x.shape[1]
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, C):
                raise ValueError(f"Normalize: {name} has {v.size} values for {C} channels")
        m = self.mean.astype(x.dtype).reshape(1, -1, 1, 1)
        inv = (1.0 / self.std).astype(x.dtype).reshape(1, -1, 1, 1)
        return (x - m) * inv

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"
