"""PyTorch's everyday tensor surface: the Functions behind the Tensor methods (cat, stack, max/min,
transpose/permute, matmul, clamp, abs, sqrt, clone, view), comparisons, in-place ops with their
autograd rules, version counters, factories, and the NumPy/DLPack/CUDA-array-interface exchange.

Array code on every device (NumPy or CuPy through ``xp``), except 2-D float32 ``matmul`` on a
device with kernels (sim, cuda), which runs on the conv kernels' GEMM as ``linear`` (a 1x1
convolution). Every Function here keeps only what its backward needs.

In-place ops and autograd. An in-place op on a tensor that takes part in no graph (no grad
mode, or nothing involved requires grad) writes into the tensor's array, so every view and every
zero-copy alias (``from_numpy``, DLPack) sees it, as in PyTorch. An in-place op recorded by
autograd computes the result out of place and rebinds the tensor to it (its ``grad_fn`` becomes
the op's node, as PyTorch's rebase does): arrays saved by earlier nodes are never overwritten, so
the gradient is right, but a view or alias taken before the op does not see the new values.
Each array buffer has a version counter (``Tensor._version``) that every in-place op bumps;
``ctx.save_for_backward`` notes the versions of what it saves and the engine checks them before
each node's backward, raising PyTorch's RuntimeError when a saved array was modified in place since
(every Function, the kernels' included).
"""
from __future__ import annotations

import math
import weakref
from collections import namedtuple

import numpy as np

from . import _backend, _random
from .tensor import (Function, Tensor, _as_array, _norm_dim, _Reshape, is_grad_enabled,
                     unbroadcast)

# ---- version counters -----------------------------------------------------------------------------

_versions: dict = {}  # id(root array) -> [count]; entries leave with their arrays


def _root(a):
    while getattr(a, "base", None) is not None and type(a.base) is type(a):
        a = a.base
    return a


def version(a) -> int:
    """How many in-place ops have written to the buffer of array ``a`` (shared by its views)."""
    entry = _versions.get(id(_root(a)))
    return entry[0] if entry else 0


def bump(a) -> None:
    root = _root(a)
    key = id(root)
    entry = _versions.get(key)
    if entry is None:
        entry = _versions[key] = [0]
        try:
            weakref.finalize(root, _versions.pop, key, None)
        except TypeError:  # an array type without weak references: the entry stays
            pass
    entry[0] += 1


def check_versions(ctx, name: str) -> tuple:
    """The saved arrays, after checking that no in-place op modified one since it was saved."""
    saved = ctx.saved_tensors
    for i, (a, v) in enumerate(zip(saved, getattr(ctx, "saved_versions", ()))):
        if hasattr(a, "shape") and version(a) != v:
            raise RuntimeError(f"one of the variables needed for gradient computation has been "
                               f"modified by an inplace operation: saved tensor {i} of {name} "
                               f"(shape {list(a.shape)}) is at version {version(a)}; expected "
                               f"version {v} instead.")
    return saved


# ---- argument helpers -----------------------------------------------------------------------------


def _xp(device):
    return _backend.xp_of(device)


def _dims_arg(dims, what: str) -> tuple:
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    return tuple(dims)


def _tensor_list(tensors, what: str) -> list:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{what}(): argument 'tensors' must be a tuple or list of Tensors, got "
                        f"{type(tensors).__name__}")
    if not tensors:
        raise ValueError(f"{what}(): expected a non-empty list of Tensors")
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}(): expected a Tensor at position {i}, got "
                            f"{type(t).__name__}")
    return list(tensors)


def _result_dtype(tensors):
    return np.result_type(*[t.dtype for t in tensors])


# ---- cat and stack --------------------------------------------------------------------------------


class Cat(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim, ctx.sizes = dim, [a.shape[dim] for a in arrays]
        return _xp(ctx.device).concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        cuts = np.cumsum(ctx.sizes)[:-1].tolist()
        return (None,) + tuple(_xp(ctx.device).split(g, cuts, axis=ctx.dim))


class Stack(Function):
    @staticmethod
    def forward(ctx, dim, *arrays):
        ctx.dim = dim
        return _xp(ctx.device).stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx, g):
        xp = _xp(ctx.device)
        return (None,) + tuple(xp.take(g, i, axis=ctx.dim) for i in range(g.shape[ctx.dim]))


def _same_dtype(tensors):
    dtype = _result_dtype(tensors)
    return [t if t.dtype == dtype else Tensor._wrap(t.data.astype(dtype), t.device)
            for t in tensors]


def cat(tensors, dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension (``torch.cat``)."""
    tensors = _tensor_list(tensors, "cat")
    ref = next((t for t in tensors if t.ndim > 0), tensors[0])
    if ref.ndim == 0:
        raise RuntimeError("zero-dimensional tensor (at position 0) cannot be concatenated")
    d = _norm_dim(dim, ref.ndim)
    # PyTorch skips 1-D empty tensors (legacy behaviour); every other one must match
    tensors = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or [tensors[0]]
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim:
            raise RuntimeError(f"Tensors must have same number of dimensions: got {ref.ndim} and "
                               f"{t.ndim}")
        for k in range(ref.ndim):
            if k != d and t.shape[k] != ref.shape[k]:
                raise RuntimeError(f"Sizes of tensors must match except in dimension {d}. "
                                   f"Expected size {ref.shape[k]} but got size {t.shape[k]} for "
                                   f"tensor number {i} in the list.")
    return Cat.apply(d, *_same_dtype(tensors))


def stack(tensors, dim: int = 0) -> Tensor:
    """Join same-shape tensors along a new dimension (``torch.stack``)."""
    tensors = _tensor_list(tensors, "stack")
    d = _norm_dim(dim, tensors[0].ndim + 1)
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack expects each tensor to be equal size, but got "
                               f"{list(tensors[0].shape)} at entry 0 and {list(t.shape)} at entry "
                               f"{i}")
    return Stack.apply(d, *_same_dtype(tensors))


# ---- max / min ------------------------------------------------------------------------------------

ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])  # torch.return_types.max/min


class ReduceAll(Function):
    """max() or min() of all elements; the gradient is shared evenly among ties (as PyTorch)."""

    @staticmethod
    def forward(ctx, a, largest):
        xp = _xp(ctx.device)
        y = xp.asarray(a.max() if largest else a.min())
        mask = xp.isnan(a) if bool(xp.isnan(y)) else (a == y)
        ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved_tensors
        return (mask * (g / mask.sum())).astype(g.dtype, copy=False), None


class ReduceDim(Function):
    """(values, indices) of max or min along one dimension; the gradient goes to the index."""

    @staticmethod
    def forward(ctx, a, dim, keepdim, largest):
        xp = _xp(ctx.device)
        idx = xp.expand_dims(a.argmax(axis=dim) if largest else a.argmin(axis=dim), dim)
        values = xp.take_along_axis(a, idx, axis=dim)
        ctx.shape, ctx.dim = a.shape, dim
        ctx.save_for_backward(idx)
        if not keepdim:
            values, idx = values.squeeze(dim), idx.squeeze(dim)
        ctx.keepdim = keepdim
        return values, idx.astype(np.int64, copy=False)

    @staticmethod
    def backward(ctx, g, _gi):
        xp = _xp(ctx.device)
        (idx,) = ctx.saved_tensors
        if not ctx.keepdim:
            g = xp.expand_dims(g, ctx.dim)
        # scatter g to the winning index: a one-hot comparison along dim (NumPy and CuPy alike)
        where = [1] * len(ctx.shape)
        where[ctx.dim] = ctx.shape[ctx.dim]
        hit = xp.arange(ctx.shape[ctx.dim]).reshape(where) == idx
        return xp.where(hit, g, xp.zeros((), dtype=g.dtype)), None, None, None


class Extremum(Function):
    """Elementwise maximum or minimum of two tensors: where they are equal each gets half of the
    gradient (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, a, b, largest):
        xp = _xp(ctx.device)
        ctx.save_for_backward(a, b)
        ctx.largest = largest
        return xp.maximum(a, b) if largest else xp.minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = _xp(ctx.device)
        wins = (a > b) if ctx.largest else (a < b)
        share = xp.where(a == b, 0.5, wins.astype(g.dtype)).astype(g.dtype)
        ga = unbroadcast(g * share, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(g * (1 - share), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb, None


def _extremum(t: Tensor, dim, keepdim: bool, largest: bool):
    name = "max" if largest else "min"
    if isinstance(dim, Tensor):
        other = dim
        if other.device != t.device:
            raise ValueError(f"{name}: expected both tensors on the same device, got "
                             f"{t.device!r} and {other.device!r}")
        try:
            np.broadcast_shapes(t.shape, other.shape)
        except ValueError:
            raise RuntimeError(f"{name}: the shapes {list(t.shape)} and {list(other.shape)} do "
                               f"not broadcast") from None
        a, b = _same_dtype([t, other])
        return Extremum.apply(a, b, largest)
    if dim is None:
        if t.numel() == 0:
            raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() "
                               f"== 0. Specify the reduction dim with the 'dim' argument.")
        return ReduceAll.apply(t, largest)
    d = _norm_dim(dim, t.ndim)
    if t.ndim and t.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    if t.ndim == 0:
        return ValuesIndices(_Reshape.apply(t, ()),
                             Tensor._wrap(_xp(t.device).zeros((), np.int64), t.device))
    return ValuesIndices(*ReduceDim.apply(t, d, bool(keepdim), largest))


def arg_extremum(t: Tensor, dim, keepdim: bool, largest: bool) -> Tensor:
    xp = _xp(t.device)
    name = "argmax" if largest else "argmin"
    if t.numel() == 0 and dim is None:
        raise RuntimeError(f"{name}(): Expected reduction dim to be specified for input.numel() "
                           f"== 0.")
    if dim is None:
        flat = t.data.reshape(-1)
        i = flat.argmax() if largest else flat.argmin()
        out = xp.asarray(i, dtype=np.int64)
        return Tensor._wrap(out.reshape((1,) * t.ndim) if keepdim else out, t.device)
    d = _norm_dim(dim, t.ndim)
    if t.ndim == 0:
        return Tensor._wrap(xp.zeros((), np.int64), t.device)
    if t.shape[d] == 0:
        raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")
    i = t.data.argmax(axis=d) if largest else t.data.argmin(axis=d)
    i = i.astype(np.int64, copy=False)
    return Tensor._wrap(xp.expand_dims(i, d) if keepdim else i, t.device)


# ---- shape ops ------------------------------------------------------------------------------------


class Permute(Function):
    @staticmethod
    def forward(ctx, a, dims):
        ctx.inverse = tuple(np.argsort(dims).tolist())
        return _xp(ctx.device).transpose(a, dims)  # a view, as PyTorch's

    @staticmethod
    def backward(ctx, g):
        return _xp(ctx.device).transpose(g, ctx.inverse), None


def permute(t: Tensor, dims) -> Tensor:
    dims = tuple(dims)
    if len(dims) != t.ndim:
        raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input does "
                           f"not match the length of the desired ordering of dimensions i.e. "
                           f"input.dim() = {t.ndim} is not equal to len(dims) = {len(dims)}")
    norm = tuple(_norm_dim(d, t.ndim) for d in dims)
    if len(set(norm)) != len(norm):
        raise RuntimeError("permute(): duplicate dims are not allowed.")
    return Permute.apply(t, norm)


def transpose(t: Tensor, dim0: int, dim1: int) -> Tensor:
    if t.ndim == 0:
        _norm_dim(dim0, 0), _norm_dim(dim1, 0)
        return t
    d0, d1 = _norm_dim(dim0, t.ndim), _norm_dim(dim1, t.ndim)
    dims = list(range(t.ndim))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return Permute.apply(t, tuple(dims))


class View(Function):
    """A reshape that never copies: PyTorch's view, which fails where the strides do not allow."""

    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        out = a.view()
        try:
            out.shape = shape
        except AttributeError:
            raise RuntimeError("view size is not compatible with input tensor's size and stride "
                               "(at least one dimension spans across two contiguous subspaces). "
                               "Use .reshape(...) instead.") from None
        return out

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


def resolve_shape(shape, numel: int, what: str) -> tuple:
    shape = tuple(int(s) for s in shape)
    if sum(s == -1 for s in shape) > 1:
        raise RuntimeError("only one dimension can be inferred")
    if any(s < -1 for s in shape):
        raise RuntimeError(f"invalid shape dimension {min(shape)}")
    known = int(np.prod([s for s in shape if s != -1]))
    if -1 in shape:
        if known == 0 or numel % known:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
        shape = tuple(numel // known if s == -1 else s for s in shape)
    elif known != numel:
        raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size {numel}")
    return shape


def view(t: Tensor, shape) -> Tensor:
    return View.apply(t, resolve_shape(shape, t.numel(), "view"))


def unsqueeze(t: Tensor, dim: int) -> Tensor:
    d = _norm_dim(dim, t.ndim + 1)
    return _Reshape.apply(t, t.shape[:d] + (1,) + t.shape[d:])


def squeeze(t: Tensor, dim=None) -> Tensor:
    if dim is None:
        dims = [i for i, s in enumerate(t.shape) if s == 1]
    else:
        dims = [_norm_dim(d, t.ndim) for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]
        dims = [d for d in dims if t.ndim and t.shape[d] == 1]
    if not dims:
        return _Reshape.apply(t, t.shape)
    return _Reshape.apply(t, tuple(s for i, s in enumerate(t.shape) if i not in dims))


class Copy(Function):
    """clone() and contiguous(): a fresh (C-contiguous) copy; the gradient passes through."""

    @staticmethod
    def forward(ctx, a):
        return _xp(ctx.device).array(a, copy=True, order="C")

    @staticmethod
    def backward(ctx, g):
        return g


# ---- matmul ---------------------------------------------------------------------------------------


class MatMul(Function):
    """xp.matmul with PyTorch's 1-D promotion and batch broadcasting."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return _xp(ctx.device).matmul(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        xp = _xp(ctx.device)
        if a.ndim == 1 and b.ndim == 1:  # a dot product: g is 0-d
            return (g * b if ctx.needs_input_grad[0] else None,
                    g * a if ctx.needs_input_grad[1] else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = xp.matmul(g2, xp.swapaxes(b2, -1, -2))
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            gb = xp.matmul(xp.swapaxes(a2, -1, -2), g2)
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``torch.matmul``: 2-D float32 products on sim and cuda run on the conv GEMM kernels (as
    ``linear``, a 1x1 convolution); everything else (1-D operands, batches, cpu) is array code."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"matmul: expected Tensors, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"both arguments to matmul need to be at least 1D, but they are "
                           f"{a.ndim}D and {b.ndim}D")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        if a.ndim <= 2 and b.ndim <= 2:
            ra = "x".join(map(str, a.shape if a.ndim == 2 else (1,) + a.shape))
            rb = "x".join(map(str, b.shape if b.ndim == 2 else b.shape + (1,)))
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({ra} and {rb})")
        raise RuntimeError(f"Expected size for first two dimensions of batch2 tensor to match: "
                           f"{list(a.shape)} @ {list(b.shape)} contracts {k_a} with {k_b}")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise RuntimeError(f"matmul: the batch dimensions of {list(a.shape)} and {list(b.shape)} "
                           f"do not broadcast") from None
    if a.device != b.device:
        raise ValueError(f"matmul: expected all tensors on the same device, got {a.device!r} and "
                         f"{b.device!r}")
    if (a.ndim == 2 and b.ndim == 2 and a.dtype == np.float32 and b.dtype == np.float32
            and _backend.native(a.device) is not None and min(a.shape + b.shape) > 0):
        from .ops.conv2d import linear
        return linear(a, transpose(b, 0, 1))
    a, b = _same_dtype([a, b])
    return MatMul.apply(a, b)


# ---- elementwise ----------------------------------------------------------------------------------


class Clamp(Function):
    """Gradient 1 where min <= x <= max (the boundary included, as PyTorch), else 0."""

    @staticmethod
    def forward(ctx, a, lo, hi):
        xp = _xp(ctx.device)
        y = a
        if lo is not None:
            y = xp.maximum(y, xp.asarray(lo, dtype=a.dtype))
        if hi is not None:
            y = xp.minimum(y, xp.asarray(hi, dtype=a.dtype))
        if ctx.needs_input_grad[0]:
            keep = xp.ones(a.shape, dtype=bool)
            if lo is not None:
                keep &= a >= lo
            if hi is not None:
                keep &= a <= hi
            ctx.save_for_backward(keep)
        return y if y is not a else a.copy()

    @staticmethod
    def backward(ctx, g):
        (keep,) = ctx.saved_tensors
        return g * keep, None, None


def clamp(t: Tensor, min=None, max=None) -> Tensor:
    if min is None and max is None:
        raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
    for name, v in (("min", min), ("max", max)):
        if v is not None and (isinstance(v, bool) or
                              not isinstance(v, (int, float, np.integer, np.floating))):
            raise TypeError(f"clamp(): argument '{name}' must be a number, got "
                            f"{type(v).__name__}")
    return Clamp.apply(t, min, max)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _xp(ctx.device).abs(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g * _xp(ctx.device).sign(a).astype(g.dtype, copy=False)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        y = _xp(ctx.device).sqrt(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g / (2 * y)


def compare(t: Tensor, other, op: str) -> Tensor:
    """Elementwise comparison; a bool tensor outside autograd."""
    if isinstance(other, Tensor):
        if other.device != t.device:
            raise ValueError(f"comparison: expected both tensors on the same device, got "
                             f"{t.device!r} and {other.device!r}")
        b = other.data
    elif isinstance(other, (int, float, bool, np.number, np.bool_)):
        b = other
    elif isinstance(other, (list, tuple, np.ndarray)) and np.asarray(other).dtype.kind in "biuf":
        b = _as_array(other, t.device, np.result_type(t.dtype, np.asarray(other).dtype))
    else:  # None, strings, other objects: Python's fallback (== is identity, < a TypeError)
        return NotImplemented
    a = t.data
    try:
        out = {"eq": a.__eq__, "ne": a.__ne__, "lt": a.__lt__, "le": a.__le__, "gt": a.__gt__,
               "ge": a.__ge__}[op](b)
        if out is NotImplemented:
            raise ValueError
        np.broadcast_shapes(a.shape, np.shape(b))
    except ValueError:
        raise RuntimeError(f"The size of tensor a {list(t.shape)} must match the size of tensor "
                           f"b {list(np.shape(b))} (they do not broadcast)") from None
    return Tensor._wrap(_xp(t.device).asarray(out, dtype=bool), t.device)


# ---- in-place ops ---------------------------------------------------------------------------------


def _check_leaf(t: Tensor) -> None:
    if t.requires_grad and t.grad_fn is None and is_grad_enabled():
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")


def inplace(t: Tensor, compute, others=()) -> Tensor:
    """Run ``compute(x, *others)`` (-> Tensor) as an in-place op on ``t``: PyTorch's leaf check,
    shape and dtype checks, then either a write into t's array (no graph) or a rebind to the
    recorded result (see the module docstring). Bumps t's version."""
    _check_leaf(t)
    graph = is_grad_enabled() and (t.requires_grad or any(
        isinstance(o, Tensor) and o.requires_grad for o in others))
    if graph:  # the op reads an alias that keeps t's place in the graph; t then moves on
        alias = Tensor._wrap(t.data, t.device, t.requires_grad)
        alias.grad_fn, alias._out_index = t.grad_fn, t._out_index
        out = compute(alias, *[alias if o is t else o for o in others])  # y.mul_(y) reads old y
    else:
        from .tensor import no_grad
        with no_grad():
            out = compute(Tensor._wrap(t.data, t.device), *others)
    if out.shape != t.shape:
        raise RuntimeError(f"output with shape {list(t.shape)} doesn't match the broadcast shape "
                           f"{list(out.shape)}")
    if out.dtype != t.dtype:
        if t.dtype.kind in "biu" and out.dtype.kind == "f":
            raise RuntimeError(f"result type Float can't be cast to the desired output type "
                               f"{_type_name(t.dtype)}")
        out = Tensor._wrap(out.data.astype(t.dtype), t.device, out.requires_grad) \
            if not graph else _Cast.apply(out, t.dtype)
    if graph:
        t.data, t.grad_fn, t._out_index = out.data, out.grad_fn, out._out_index
        t.requires_grad = out.requires_grad
    else:
        _xp(t.device).copyto(t.data, out.data)
    bump(t.data)
    return t


def _type_name(dtype) -> str:
    return {"i": "Long", "u": "Byte", "b": "Bool"}.get(np.dtype(dtype).kind, str(dtype))


class _Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.src = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.src), None


class Fill(Function):
    """x.fill_(v) / x.copy_(src) seen by autograd: no gradient to the overwritten x; ``src``
    (broadcast to x's shape) gets the gradient."""

    @staticmethod
    def forward(ctx, a, src):
        xp = _xp(ctx.device)
        ctx.src_shape = getattr(src, "shape", None)
        src = xp.asarray(src, dtype=a.dtype)
        return xp.array(xp.broadcast_to(src, a.shape), copy=True)

    @staticmethod
    def backward(ctx, g):
        gs = unbroadcast(g, ctx.src_shape) if ctx.src_shape is not None and \
            ctx.needs_input_grad[1] else None
        return None, gs


def fill(t: Tensor, value) -> Tensor:
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor with "
                               f"{value.ndim} dimensions.")
        return inplace(t, Fill.apply, (value,))
    return inplace(t, lambda x: Fill.apply(x, value))


def copy_(t: Tensor, src) -> Tensor:
    if not isinstance(src, Tensor):
        raise TypeError(f"copy_(): argument 'src' must be a Tensor, got {type(src).__name__}")
    try:
        if np.broadcast_shapes(t.shape, src.shape) != t.shape:
            raise ValueError
    except ValueError:
        raise RuntimeError(f"The size of tensor a ({list(t.shape)}) must match the size of tensor "
                           f"b ({list(src.shape)}): src must broadcast to the destination") \
            from None
    if src.device != t.device:
        src = src.to(t.device)
    return inplace(t, Fill.apply, (src,))


# ---- factories ------------------------------------------------------------------------------------


def _size(size, what: str) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{what}(): size must be a sequence of ints, got {size!r}")
        if s < 0:
            raise RuntimeError(f"{what}(): Trying to create tensor with negative dimension {s}: "
                               f"{list(size)}")
        out.append(int(s))
    return tuple(out)


def _dtype(dtype, default=np.float32):
    if dtype is None:
        return np.dtype(default)
    try:
        return np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be a NumPy dtype or its name, got {dtype!r}") from None


def _make(host_or_fn, device, requires_grad: bool, what: str) -> Tensor:
    device = _backend.check_device(device)
    xp = _xp(device)
    arr = host_or_fn(xp)
    if requires_grad and arr.dtype.kind != "f":
        raise RuntimeError(f"{what}(): only Tensors of floating point dtype can require "
                           f"gradients, got {arr.dtype}")
    return Tensor._wrap(arr, device, requires_grad=bool(requires_grad))


def full(size, fill_value, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    size = _size((size,) if isinstance(size, (int, np.integer)) else tuple(size), "full")
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, bool) else (
            np.int64 if isinstance(fill_value, (int, np.integer)) else np.float32)
    dt = _dtype(dtype)
    return _make(lambda xp: xp.full(size, fill_value, dtype=dt), device, requires_grad, "full")


def zeros(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    s, dt = _size(size, "zeros"), _dtype(dtype)
    return _make(lambda xp: xp.zeros(s, dtype=dt), device, requires_grad, "zeros")


def ones(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    s, dt = _size(size, "ones"), _dtype(dtype)
    return _make(lambda xp: xp.ones(s, dtype=dt), device, requires_grad, "ones")


def empty(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Uninitialised memory (NaN-poisoned on sim, as every sim allocation)."""
    s, dt = _size(size, "empty"), _dtype(dtype)
    dev = _backend.check_device(device)
    return _make(lambda xp: _backend.empty(dev, s, dt), dev, requires_grad, "empty")


def _number(v, name, what):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what}(): argument '{name}' must be a number, got {type(v).__name__}")
    return v


def arange(start, end=None, step=1, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """[start, end) in steps; int64 when every argument is an int, else float32 (PyTorch)."""
    if end is None:
        start, end = 0, start
    for name, v in (("start", start), ("end", end), ("step", step)):
        _number(v, name, "arange")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (end - start) * step < 0:
        raise RuntimeError(f"upper bound and larger bound inconsistent with step sign: start "
                           f"{start}, end {end}, step {step}")
    ints = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dt = _dtype(dtype, np.int64 if ints else np.float32)
    n = max(int(math.ceil((end - start) / step)), 0)
    # computed in float64 (or exact ints) and then cast, as PyTorch's start + i * step
    host = (start + np.arange(n, dtype=np.int64 if ints else np.float64) * step).astype(dt)
    return _make(lambda xp: xp.asarray(host), device, requires_grad, "arange")


def linspace(start, end, steps: int, *, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    _number(start, "start", "linspace"), _number(end, "end", "linspace")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"linspace(): argument 'steps' must be an int, got {type(steps).__name__}")
    if steps < 0:
        raise RuntimeError("linspace(): number of steps must be non-negative")
    host = np.linspace(float(start), float(end), int(steps)).astype(_dtype(dtype))
    return _make(lambda xp: xp.asarray(host), device, requires_grad, "linspace")


def rand(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """U[0, 1) from cucnn.manual_seed's generator (drawn on the host: the same on every device)."""
    s, dt = _size(size, "rand"), _dtype(dtype)
    host = _random.generator().random(s).astype(dt)
    return _make(lambda xp: xp.asarray(host), device, requires_grad, "rand")


def randn(*size, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """N(0, 1) from cucnn.manual_seed's generator."""
    s, dt = _size(size, "randn"), _dtype(dtype)
    host = _random.generator().standard_normal(s).astype(dt)
    return _make(lambda xp: xp.asarray(host), device, requires_grad, "randn")


def randint(*args, size=None, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """``randint(high, size)`` or ``randint(low, high, size)``: integers in [low, high), int64."""
    if size is not None:
        args = args + (size,)
    if len(args) == 2:
        low, (high, size) = 0, args
    elif len(args) == 3:
        low, high, size = args
    else:
        raise TypeError("randint(): expected (high, size) or (low, high, size)")
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"randint(): argument '{name}' must be an int, got {type(v).__name__}")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} >= "
                           f"to={high}")
    s = _size((size,) if isinstance(size, (int, np.integer)) else tuple(size), "randint")
    host = _random.generator().integers(low, high, size=s).astype(_dtype(dtype, np.int64))
    return _make(lambda xp: xp.asarray(host), device, requires_grad, "randint")


def _like(t, dtype, device):
    if not isinstance(t, Tensor):
        raise TypeError(f"expected a Tensor, got {type(t).__name__}")
    return t.shape, (t.dtype if dtype is None else dtype), (t.device if device is None else device)


def zeros_like(t, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    s, dt, dev = _like(t, dtype, device)
    return zeros(s, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(t, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    s, dt, dev = _like(t, dtype, device)
    return ones(s, dtype=dt, device=dev, requires_grad=requires_grad)


def empty_like(t, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    s, dt, dev = _like(t, dtype, device)
    return empty(s, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(t, fill_value, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    s, dt, dev = _like(t, dtype, device)
    return full(s, fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def rand_like(t, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    s, dt, dev = _like(t, dtype, device)
    return rand(s, dtype=dt, device=dev, requires_grad=requires_grad)


def randn_like(t, *, dtype=None, device=None, requires_grad=False) -> Tensor:
    s, dt, dev = _like(t, dtype, device)
    return randn(s, dtype=dt, device=dev, requires_grad=requires_grad)


# ---- exchange: NumPy, DLPack ----------------------------------------------------------------------

_DL_CPU, _DL_CUDA = 1, 2


def from_numpy(array, device: str = "cpu") -> Tensor:
    """A tensor sharing ``array``'s memory (no copy), keeping its dtype as ``torch.from_numpy``;
    ``device`` may be "cpu" or "sim" (both hold NumPy arrays)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray (got {type(array).__name__})")
    device = _backend.check_device(device)
    if device == "cuda":
        raise ValueError("from_numpy: device must be 'cpu' or 'sim' (NumPy memory is host "
                         "memory); use cucnn.tensor(array, device='cuda') to copy to the GPU")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: can't convert np.ndarray of type {array.dtype}; only "
                        f"bool, integer and floating types are supported")
    return Tensor._wrap(array, device)


def from_dlpack(obj, device: str | None = None) -> Tensor:
    """A tensor sharing the memory of any DLPack exporter (NumPy, CuPy, PyTorch, a cucnn tensor):
    host memory becomes a cpu tensor (or ``device="sim"``), CUDA memory a cuda tensor."""
    if isinstance(obj, Tensor):
        return Tensor._wrap(obj.data, obj.device)
    if not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and "
                        f"__dlpack_device__, got {type(obj).__name__}")
    kind, index = obj.__dlpack_device__()
    kind = int(kind)
    if kind == _DL_CPU:
        target = _backend.check_device(device or "cpu")
        if target == "cuda":
            raise ValueError("from_dlpack: the producer's memory is on the host; device must be "
                             "'cpu' or 'sim' (copy with .to('cuda') afterwards)")
        arr = np.from_dlpack(obj)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"from_dlpack: unsupported dtype {arr.dtype}")
        return Tensor._wrap(arr, target)
    if kind == _DL_CUDA:
        target = _backend.check_device(device or "cuda")
        if target != "cuda":
            raise ValueError(f"from_dlpack: the producer's memory is on a GPU; device must be "
                             f"'cuda', got {device!r}")
        return Tensor._wrap(_backend.cupy().from_dlpack(obj), "cuda")
    raise ValueError(f"from_dlpack: unsupported DLPack device type {kind}")
