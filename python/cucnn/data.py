"""Data: the IDX file format, MNIST and Fashion-MNIST, a DataLoader, and the course's X/O images.

Images stay uint8 in memory; a batch is gathered by index and only then scaled to float32 in
[0, 1] (and normalised, if the data set has a transform), so an epoch never copies the whole set.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np

# IDX type codes -> big-endian NumPy dtypes (http://yann.lecun.com/exdb/mnist/, "THE IDX FILE FORMAT")
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
SYSTEM_DATA = "/usr/share/datasets"  # where Debian's dataset-* packages install


def _raw_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, gzip.BadGzipFile) as e:
            raise ValueError(f"IDX file {path}: corrupt or truncated gzip data ({e})") from None
    return raw


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip): magic 0x0000, a type code, the number of dimensions, the
    big-endian int32 sizes, then the data. Every field is checked; the data must fill the file
    exactly."""
    path = Path(path)
    raw = _raw_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"IDX file {path}: {len(raw)} bytes is too short for the 4-byte magic "
                         f"number")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in IDX_TYPES:
        raise ValueError(f"IDX file {path}: bad magic number 0x{raw[:4].hex()} (expected 0x0000 "
                         f"then a type code in {sorted(hex(c) for c in IDX_TYPES)}, then the "
                         f"number of dimensions)")
    if ndim == 0:
        raise ValueError(f"IDX file {path}: the magic number says 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path}: truncated header: {ndim} dimensions need {header} "
                         f"bytes, the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}i", raw[4:header])
    if any(d < 0 for d in dims):
        raise ValueError(f"IDX file {path}: negative dimension in {dims}")
    dtype = IDX_TYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow past 2**63
    if len(raw) - header != expected:
        raise ValueError(f"IDX file {path}: dimensions {dims} of {dtype.name} need {expected} "
                         f"data bytes, the file has {len(raw) - header}"
                         f" ({'truncated' if len(raw) - header < expected else 'trailing data'})")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(
        dtype.newbyteorder("="))


def write_idx(path, array, compress: bool | None = None) -> None:
    """Write an array as an IDX file (gzip when ``compress``, or when the name ends in .gz)."""
    array = np.asarray(array)
    codes = {v.newbyteorder("=").str: k for k, v in IDX_TYPES.items()}
    key = array.dtype.newbyteorder("=").str
    if key not in codes:
        raise ValueError(f"write_idx: dtype {array.dtype} has no IDX type code")
    data = struct.pack(">HBB", 0, codes[key], array.ndim) + \
        struct.pack(f">{array.ndim}i", *array.shape) + \
        array.astype(IDX_TYPES[codes[key]]).tobytes()
    path = Path(path)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6)
    path.write_bytes(data)


# ---- data sets ------------------------------------------------------------------------------------


class Normalize:
    """(x - mean) / std on a float32 batch."""

    def __init__(self, mean: float, std: float):
        self.mean, self.std = float(mean), float(std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - np.float32(self.mean)) * np.float32(1.0 / self.std)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


class ArrayDataset:
    """Images (N, H, W) or (N, C, H, W), uint8 (scaled to [0, 1]) or float, with int labels.
    ``transform`` applies to float32 batches (e.g. ``Normalize``)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None, classes=None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got shape {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},) to match the images, "
                             f"got {labels.shape}")
        self.images, self.labels = images, labels.astype(np.int64)
        self.transform = transform
        self.classes = list(classes) if classes is not None else \
            [str(c) for c in range(int(labels.max()) + 1 if len(labels) else 0)]

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, index) -> tuple:
        """(images float32 (B, C, H, W), labels int64 (B,)) for an index array."""
        x = self.images[index]
        x = x.astype(np.float32) * np.float32(1 / 255) if x.dtype == np.uint8 \
            else x.astype(np.float32)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index]

    def __getitem__(self, i) -> tuple:
        x, y = self.batch(np.asarray([i]))
        return x[0], int(y[0])

    def subset(self, index) -> "ArrayDataset":
        """A data set of the given samples (a view where the index is a slice)."""
        return ArrayDataset(self.images[index], self.labels[index], self.transform, self.classes)


def _find(root, names: list, dataset: str, package: str | None) -> Path:
    """The directory holding ``names``: ``root``, then $CUCNN_DATA (and its sub-directory named
    after the data set), then Debian's location."""
    candidates = []
    if root is not None:
        candidates.append(Path(root))
    else:
        env = os.environ.get("CUCNN_DATA")
        if env:
            candidates += [Path(env), Path(env) / dataset]
        candidates.append(Path(SYSTEM_DATA) / dataset)
    for d in candidates:
        if all(any((d / (n + ext)).is_file() for ext in ("", ".gz")) for n in names):
            return d
    how = (f"install Debian's package with `apt-get install {package}`, or " if package else "")
    raise FileNotFoundError(
        f"{dataset}: cannot find the IDX files {', '.join(n + '[.gz]' for n in names)}; looked in "
        f"{', '.join(str(c) for c in candidates)}. To get them, {how}put the four files in a "
        f"directory and pass --data-root DIR (root=DIR in Python) or set CUCNN_DATA=DIR.")


def _load_idx_pair(directory: Path, prefix: str) -> tuple:
    def path(n):
        p = directory / n
        return p if p.is_file() else directory / (n + ".gz")
    images = read_idx(path(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(path(f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{directory}: {prefix} images {images.shape} and labels {labels.shape} "
                         f"do not pair up (expected (N, H, W) and (N,))")
    return images, labels


class _IDXDataset(ArrayDataset):
    dataset = ""
    package: str | None = None
    mean, std = 0.0, 1.0
    class_names: list = []

    def __init__(self, root=None, train: bool = True, transform=None, normalize: bool = False):
        prefix = "train" if train else "t10k"
        names = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        self.root = _find(root, names, self.dataset, self.package)
        images, labels = _load_idx_pair(self.root, prefix)
        if normalize and transform is None:
            transform = Normalize(self.mean, self.std)
        super().__init__(images, labels, transform, self.class_names)


class FashionMNIST(_IDXDataset):
    """Zalando's Fashion-MNIST: 60,000 + 10,000 grey 28x28 images of 10 kinds of clothing."""
    dataset, package = "fashion-mnist", "dataset-fashion-mnist"
    mean, std = 0.2860, 0.3530
    class_names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot"]


class MNIST(_IDXDataset):
    """LeCun's handwritten digits, same format and sizes as Fashion-MNIST."""
    dataset, package = "mnist", None
    mean, std = 0.1307, 0.3081
    class_names = [str(d) for d in range(10)]


# ---- loader ---------------------------------------------------------------------------------------


class DataLoader:
    """Batches of (float32 NCHW images, int64 labels) as NumPy arrays. ``shuffle`` draws a new
    permutation of indices each epoch from a generator seeded with ``seed``. ``transform`` (e.g.
    ``cucnn.transforms.RandomCrop``) maps each batch of images, after the data set's own."""

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, transform=None, sampler=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform must be callable, got "
                            f"{type(transform).__name__}")
        self.transform = transform
        self.sampler = sampler  # an iterable of indices (e.g. DistributedSampler) with a len
        self._rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        else:
            order = self._rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            if hasattr(self.dataset, "batch"):
                batch = tuple(self.dataset.batch(idx))  # (images, labels), or a TensorDataset's
            else:
                items = [self.dataset[int(i)] for i in idx]
                batch = (np.stack([np.asarray(x, dtype=np.float32) for x, _ in items]),
                         np.asarray([y for _, y in items], dtype=np.int64))
            if self.transform is not None:  # maps the images, the batch's first member
                batch = (self.transform(batch[0]),) + batch[1:]
            yield batch


class TensorDataset:
    """Samples are the i-th rows of the given tensors (or arrays), as PyTorch's TensorDataset:
    ``ds[i]`` is a tuple of tensors; the DataLoader gathers a batch as a tuple of NumPy arrays
    (on the host, like every batch)."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        from .tensor import Tensor
        for i, t in enumerate(tensors):
            if not isinstance(t, (Tensor, np.ndarray)) or np.ndim(t.data if isinstance(t, Tensor)
                                                                 else t) == 0:
                raise TypeError(f"TensorDataset: argument {i} must be a Tensor or array with a "
                                f"first dimension, got {type(t).__name__}")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(f"TensorDataset: size mismatch between tensors: first dimensions "
                             f"{[t.shape[0] for t in tensors]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, i) -> tuple:
        return tuple(t[i] for t in self.tensors)

    def batch(self, index) -> tuple:
        from ._backend import to_numpy
        from .tensor import Tensor
        return tuple(to_numpy(t.data if isinstance(t, Tensor) else t)[np.asarray(index)]
                     for t in self.tensors)


class Subset:
    """The samples of ``dataset`` at ``indices`` (PyTorch's Subset)."""

    def __init__(self, dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[int(self.indices[i])]

    def batch(self, index) -> tuple:
        idx = self.indices[np.asarray(index)]
        if hasattr(self.dataset, "batch"):
            return self.dataset.batch(idx)
        items = [self.dataset[int(i)] for i in idx]
        return tuple(np.stack([np.asarray(x) for x in col]) for col in zip(*items))


def random_split(dataset, lengths, generator=None) -> list:
    """Split ``dataset`` into non-overlapping random Subsets of the given lengths (ints summing to
    its length, or fractions summing to 1: floors first, then one more to the first splits in
    turn until the total is reached, as PyTorch). ``generator`` is a seed or a NumPy Generator;
    the default is cucnn.manual_seed's generator."""
    from . import _random
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and \
            math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, f in enumerate(lengths):
            if not 0 <= f <= 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0
           for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative ints or fractions summing "
                         f"to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    if generator is None:
        rng = _random.generator()
    elif isinstance(generator, np.random.Generator):
        rng = generator
    else:
        rng = np.random.default_rng(generator)
    order = rng.permutation(n)
    cuts = np.cumsum([0] + [int(x) for x in lengths])
    return [Subset(dataset, order[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


class DistributedSampler:
    """The indices of one rank's share of ``dataset`` (PyTorch's DistributedSampler): with
    ``shuffle``, a permutation drawn from ``seed + epoch`` (call ``set_epoch`` each epoch; every
    rank draws the same one), then padded by repeating its first indices so that it divides evenly
    (or, with ``drop_last``, cut to a multiple of ``num_replicas``), and rank ``r`` takes every
    ``num_replicas``-th index from ``r``. Every rank gets ``len(self)`` indices, so every rank runs
    the same number of batches. ``num_replicas`` and ``rank`` default to the process group's.
    The permutation comes from NumPy's generator, so it differs from PyTorch's for the same seed;
    the padding and striding are PyTorch's."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from . import distributed  # imports torch: only when asked for the process group
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        for name, v in (("num_replicas", num_replicas), ("rank", rank), ("seed", seed)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"DistributedSampler: {name} must be an int, got "
                                f"{type(v).__name__}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be at least 1, got "
                             f"{num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: invalid rank {rank}, rank should be in the "
                             f"interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, int(num_replicas), int(rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = n // self.num_replicas  # PyTorch: ceil((n - R) / R)
        else:
            self.num_samples = -(-n // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Draw a different permutation this epoch (the same on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        n = len(self.dataset)
        order = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle \
            else np.arange(n)
        if self.drop_last:
            order = order[:self.total_size]
        elif self.total_size > n and n:
            order = np.concatenate([order] * -(-self.total_size // n))[:self.total_size]
        return iter(order[self.rank:self.total_size:self.num_replicas].tolist())


# ---- the course's X and O images ------------------------------------------------------------------


def _glyph(kind: str, size: int, thick: int) -> np.ndarray:
    """An X or an O of side ``size`` as a boolean image."""
    i, j = np.mgrid[0:size, 0:size]
    if kind == "X":
        return (np.abs(i - j) < thick) | (np.abs(i + j - (size - 1)) < thick)
    c = (size - 1) / 2
    return np.abs(np.hypot(i - c, j - c) - (c - 0.8)) < 0.5 * thick + 0.1


def xo_images(n: int = 200, seed: int = 0, variants: bool = True) -> tuple:
    """``n`` 9x9 images of X (label 0) and O (label 1) with values -1 (background) and +1 (ink),
    as in the course. With ``variants``, images are also shifted by up to a pixel, scaled down to
    7x7, thickened, rotated by 90 degrees and given flipped pixels (noise)."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, 9, 9), dtype=np.float32)
    labels = np.arange(n, dtype=np.int64) % 2
    for k in range(n):
        kind = "XO"[labels[k]]
        img = np.zeros((9, 9), dtype=bool)
        if variants and rng.random() < 0.3:
            img[1:8, 1:8] = _glyph(kind, 7, 1)  # scaled down
        else:
            img = _glyph(kind, 9, 2 if variants and rng.random() < 0.25 else 1)
        if variants:
            img = np.rot90(img, int(rng.integers(0, 4)))
            dy, dx = rng.integers(-1, 2, size=2)
            img = np.roll(img, (int(dy), int(dx)), axis=(0, 1))
            flips = rng.random((9, 9)) < 0.04
            img = img ^ flips
        images[k] = np.where(img, 1.0, -1.0)
    return images, labels


class XO(ArrayDataset):
    """The course's X-versus-O toy set (see ``xo_images``)."""

    def __init__(self, n: int = 200, seed: int = 0, variants: bool = True):
        images, labels = xo_images(n, seed, variants)
        super().__init__(images, labels, classes=["X", "O"])
