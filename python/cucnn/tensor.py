"""Tensor and the autograd engine.

A Tensor holds one array (NumPy on ``cpu``/``sim``, CuPy on ``cuda``) and, when it was computed
from tensors that require gradients, the node of the graph that made it. ``backward`` orders the
graph topologically, walks it in reverse, asserts each gradient's shape, and accumulates into the
leaves' ``.grad`` — the whole engine is ``_backward`` below.

Functions follow PyTorch's contract (``forward(ctx, ...)``, ``backward(ctx, *grads)``,
``ctx.save_for_backward``, ``.apply``) with one difference: ``forward`` and ``backward`` receive and
return arrays, not Tensors. That keeps kernels and array code free of the engine.
"""
from __future__ import annotations

import contextlib
import threading

import numpy as np

from . import _backend

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def _grad_mode(enabled: bool):
    prev = is_grad_enabled()
    _state.grad_enabled = enabled
    try:
        yield
    finally:
        _state.grad_enabled = prev


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which no graph is recorded."""

    def __enter__(self):
        self._cm = _grad_mode(False)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        self._cm = _grad_mode(True)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


# ---- Function contract ---------------------------------------------------------------------------


class Context:
    """What a Function's forward leaves for its backward."""

    def __init__(self, device: str, needs_input_grad: tuple):
        self.device = device
        self.needs_input_grad = needs_input_grad
        self.saved_tensors: tuple = ()

    def save_for_backward(self, *arrays) -> None:
        self.saved_tensors = arrays


class Node:
    """One recorded Function call: the graph's vertex."""

    __slots__ = ("fn", "ctx", "inputs", "n_outputs", "outputs_meta", "__weakref__")

    def __init__(self, fn, ctx, inputs, outputs_meta):
        self.fn = fn
        self.ctx = ctx
        self.inputs = inputs  # the forward arguments; Tensors among them are the graph's edges
        self.n_outputs = len(outputs_meta)
        self.outputs_meta = outputs_meta  # (shape, dtype) of each output

    @property
    def name(self) -> str:
        return self.fn.__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"


class Function:
    """Subclass with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)``; call
    ``.apply(*args)``. Tensor arguments arrive in ``forward`` as arrays; ``backward`` returns one
    gradient (array or None) per forward argument."""

    @staticmethod
    def forward(ctx, *args):  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *args):
        device = _common_device(args, cls.__name__)
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = Context(device, needs)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        out = cls.forward(ctx, *raw)
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        record = is_grad_enabled() and any(needs)
        node = Node(cls, ctx, args, tuple((o.shape, o.dtype) for o in outs)) if record else None
        tensors = []
        for i, o in enumerate(outs):
            differentiable = record and o.dtype.kind == "f"
            t = Tensor._wrap(o, ctx.device, requires_grad=differentiable)
            if differentiable:
                t.grad_fn = node
                t._out_index = i
            tensors.append(t)
        return tuple(tensors) if multi else tensors[0]


def _common_device(args, what: str) -> str:
    device = None
    for a in args:
        if isinstance(a, Tensor):
            if device is None:
                device = a.device
            elif a.device != device:
                raise ValueError(f"{what}: expected all tensors on the same device, got "
                                 f"{device!r} and {a.device!r}")
    if device is None:
        raise TypeError(f"{what}: expected at least one Tensor argument")
    return device


# ---- the engine ----------------------------------------------------------------------------------


def _topological(root: Node) -> list:
    order, seen, stack = [], {id(root)}, [(root, False)]
    while stack:  # iterative DFS: deep graphs do not hit the recursion limit
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        stack.append((node, True))
        for a in node.inputs:
            if isinstance(a, Tensor) and a.grad_fn is not None and id(a.grad_fn) not in seen:
                seen.add(id(a.grad_fn))
                stack.append((a.grad_fn, False))
    return order  # inputs before the nodes that use them


def _backward(root: "Tensor", gradient) -> None:
    pending = {id(root.grad_fn): [None] * root.grad_fn.n_outputs}
    pending[id(root.grad_fn)][root._out_index] = gradient
    order = _topological(root.grad_fn)
    # post-accumulate-grad hooks run once, after a leaf's last incoming edge was accumulated
    hooked = {}
    for node in order:
        for a in node.inputs:
            if isinstance(a, Tensor) and a.grad_fn is None and getattr(a, "_post_acc_hooks", None):
                hooked[id(a)] = hooked.get(id(a), 0) + 1
    for node in reversed(order):
        grads = pending.pop(id(node), None)
        if grads is None:
            continue
        xp = _backend.xp_of(node.ctx.device)
        grads = [g if g is not None else xp.zeros(s, dtype=d if d.kind == "f" else np.float32)
                 for g, (s, d) in zip(grads, node.outputs_meta)]
        result = node.fn.backward(node.ctx, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != len(node.inputs):
            raise RuntimeError(f"{node.name} returned {len(result)} gradients for "
                               f"{len(node.inputs)} inputs")
        for a, g in zip(node.inputs, result):
            last = id(a) in hooked and _edge_done(hooked, a)
            if not (isinstance(a, Tensor) and a.requires_grad) or g is None:
                continue
            if tuple(g.shape) != a.shape:
                raise RuntimeError(f"{node.name} returned a gradient of shape {tuple(g.shape)} "
                                   f"for an input of shape {a.shape}")
            if a.grad_fn is None:  # a leaf: accumulate into .grad
                if a.grad is None:
                    a.grad = Tensor._wrap(g.copy(), a.device)
                else:
                    a.grad.data = a.grad.data + g
                if last:
                    _run_post_acc_hooks(a)
            else:
                slot = pending.setdefault(id(a.grad_fn), [None] * a.grad_fn.n_outputs)
                i = a._out_index
                slot[i] = g if slot[i] is None else slot[i] + g


def _edge_done(hooked: dict, leaf) -> bool:
    hooked[id(leaf)] -= 1
    return hooked[id(leaf)] == 0


def _run_post_acc_hooks(leaf) -> None:
    for hook in list(leaf._post_acc_hooks.values()):
        hook(leaf)


class _RemovableHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``.remove()`` unregisters."""

    _next_id = 0

    def __init__(self, table: dict):
        self._table, self.id = table, _RemovableHandle._next_id
        _RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._table.pop(self.id, None)


# ---- Tensor --------------------------------------------------------------------------------------


def _as_array(data, device: str, dtype=None):
    xp = _backend.xp_of(device)
    if device == "cuda":
        arr = xp.asarray(data)
    else:
        cp = _backend.cupy()
        if cp is not None and isinstance(data, cp.ndarray):
            data = data.get()
        arr = np.asarray(data)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
    elif arr.dtype.kind in "iu":
        arr = arr.astype(np.int64, copy=False)
    elif arr.dtype.kind != "b":
        raise TypeError(f"data must be numeric, got dtype {arr.dtype}")
    return arr


def tensor(data, device: str = "cpu", requires_grad: bool = False, dtype=None) -> "Tensor":
    """A new leaf tensor; the data is copied. Floating data becomes float32 and integer data int64
    (class targets) unless ``dtype`` says otherwise (float64 tensors are for checking gradients on
    ``cpu``; the kernels of ``sim`` and ``cuda`` take float32)."""
    device = _backend.check_device(device)
    if isinstance(data, Tensor):
        data = data.data
    arr = _as_array(data, device, dtype)
    xp = _backend.xp_of(device)
    arr = xp.array(arr, copy=True)
    if requires_grad and arr.dtype.kind != "f":
        raise TypeError(f"only floating tensors can require gradients, got dtype {arr.dtype}")
    return Tensor._wrap(arr, device, requires_grad=requires_grad)


class Tensor:
    __slots__ = ("data", "device", "requires_grad", "grad", "grad_fn", "_out_index",
                 "_post_acc_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy scalars on the left defer to our operators

    def __init__(self, data, device: str = "cpu", requires_grad: bool = False):
        t = tensor(data, device=device, requires_grad=requires_grad)
        self.data, self.device, self.requires_grad = t.data, t.device, t.requires_grad
        self.grad, self.grad_fn, self._out_index = None, None, 0

    @classmethod
    def _wrap(cls, data, device: str, requires_grad: bool = False) -> "Tensor":
        t = object.__new__(cls)
        t.data, t.device, t.requires_grad = data, device, requires_grad
        t.grad, t.grad_fn, t._out_index = None, None, 0
        return t

    # -- properties
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def size(self, dim=None):
        if dim is None:
            return self.shape
        return self.shape[_norm_dim(dim, self.ndim)]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        extra = f", grad_fn={self.grad_fn!r}" if self.grad_fn is not None else (
            ", requires_grad=True" if self.requires_grad else "")
        body = np.array2string(self.numpy(), precision=4, separator=", ", prefix="tensor(")
        return f"tensor({body}, device={self.device!r}{extra})"

    # -- autograd
    def backward(self, gradient=None) -> None:
        """Accumulate d(self)/d(leaf) * gradient into every leaf's ``.grad``."""
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (and has no "
                               "grad_fn)")
        xp = _backend.xp_of(self.device)
        if gradient is None:
            if self.numel() != 1:
                raise RuntimeError(f"grad can be implicitly created only for scalar outputs; "
                                   f"this tensor has shape {self.shape}")
            g = xp.ones(self.shape, dtype=self.dtype)
        else:
            g = gradient.data if isinstance(gradient, Tensor) else _as_array(gradient, self.device)
            g = xp.asarray(g, dtype=self.dtype)
            if tuple(g.shape) != self.shape:
                raise ValueError(f"gradient must have shape {self.shape}, got {tuple(g.shape)}")
        if self.grad_fn is None:  # a leaf
            self.grad = Tensor._wrap(g.copy(), self.device) if self.grad is None else \
                Tensor._wrap(self.grad.data + g, self.device)
            if getattr(self, "_post_acc_hooks", None):
                _run_post_acc_hooks(self)
            return
        _backward(self, g)

    def register_post_accumulate_grad_hook(self, hook) -> "_RemovableHandle":
        """Call ``hook(self)`` during backward right after this leaf's ``.grad`` was accumulated
        (PyTorch's contract: once per backward, after all of its incoming gradients)."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        table = getattr(self, "_post_acc_hooks", None)
        if table is None:
            table = self._post_acc_hooks = {}
        handle = _RemovableHandle(table)
        table[handle.id] = hook
        return handle

    def detach(self) -> "Tensor":
        return Tensor._wrap(self.data, self.device)

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        if flag and self.dtype.kind != "f":
            raise TypeError(f"only floating tensors can require gradients, got {self.dtype}")
        self.requires_grad = flag
        return self

    def numpy(self) -> np.ndarray:
        if self.device == "cuda":
            return self.data.get()
        return self.data

    def item(self):
        if self.numel() != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(-1)[0].item()

    def tolist(self):
        return self.numpy().tolist()

    def to(self, device: str) -> "Tensor":
        device = _backend.check_device(device)
        if device == self.device:
            return self
        return _ToDevice.apply(self, device)

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def float(self) -> "Tensor":
        if self.dtype == np.float32:
            return self
        return Tensor._wrap(self.data.astype(np.float32), self.device)

    # -- arithmetic (NumPy broadcasting; gradients reduced back to each operand's shape)
    def _operand(self, other) -> "Tensor":
        if isinstance(other, Tensor):
            return other
        xp = _backend.xp_of(self.device)
        arr = xp.asarray(other)
        if arr.dtype.kind == "f" or (self.dtype.kind == "f" and arr.dtype.kind in "iub"):
            arr = arr.astype(self.dtype if self.dtype.kind == "f" else np.float32)
        return Tensor._wrap(arr, self.device)

    def __add__(self, o): return _Add.apply(self, self._operand(o))
    def __radd__(self, o): return _Add.apply(self._operand(o), self)
    def __sub__(self, o): return _Sub.apply(self, self._operand(o))
    def __rsub__(self, o): return _Sub.apply(self._operand(o), self)
    def __mul__(self, o): return _Mul.apply(self, self._operand(o))
    def __rmul__(self, o): return _Mul.apply(self._operand(o), self)
    def __truediv__(self, o): return _Div.apply(self, self._operand(o))
    def __rtruediv__(self, o): return _Div.apply(self._operand(o), self)
    def __neg__(self): return _Neg.apply(self)

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            raise TypeError("tensor ** tensor is not supported; use exp(log(x) * y)")
        return _Pow.apply(self, float(exponent))

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        return _Index.apply(self, index)

    def sum(self, dim=None, keepdim: bool = False) -> "Tensor":
        return _Sum.apply(self, _norm_dims(dim, self.ndim), keepdim)

    def mean(self, dim=None, keepdim: bool = False) -> "Tensor":
        dims = _norm_dims(dim, self.ndim)
        count = int(np.prod([self.shape[d] for d in dims])) if dims else 1
        return _Sum.apply(self, dims, keepdim) / float(count) if count else \
            _Sum.apply(self, dims, keepdim) * float("nan")

    def reshape(self, *shape) -> "Tensor":
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _Reshape.apply(self, tuple(int(s) for s in shape))

    def view(self, *shape) -> "Tensor":
        return self.reshape(*shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> "Tensor":
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _norm_dim(start_dim, self.ndim), _norm_dim(end_dim, self.ndim)
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shape = self.shape[:s] + (int(np.prod(self.shape[s:e + 1])),) + self.shape[e + 1:]
        return self.reshape(shape)

    def exp(self) -> "Tensor":
        return _Exp.apply(self)

    def log(self) -> "Tensor":
        return _Log.apply(self)

    def argmax(self, dim=None) -> "Tensor":
        xp = _backend.xp_of(self.device)
        if dim is None:
            return Tensor._wrap(xp.asarray(self.data.argmax()), self.device)
        return Tensor._wrap(self.data.argmax(axis=_norm_dim(dim, self.ndim)), self.device)


def check_float_tensor(t, what: str, name: str = "input") -> None:
    """The argument check every op starts with: a Tensor holding floating-point data."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{what}: {name} must be a cucnn.Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise TypeError(f"{what}: {name} must be floating point, got {t.dtype}")


def _norm_dim(dim, ndim: int) -> int:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim must be an int, got {type(dim).__name__}")
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if not lo <= dim <= hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], "
                         f"but got {dim})")
    return int(dim) % max(ndim, 1)


def _norm_dims(dim, ndim: int) -> tuple:
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = tuple(sorted({_norm_dim(d, ndim) for d in dims}))
    return out if ndim else ()


def unbroadcast(grad, shape: tuple):
    """Sum a broadcast gradient back down to an operand's shape."""
    if tuple(grad.shape) == tuple(shape):
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad


# ---- the engine's own elementwise Functions (array code; every device) ----------------------------


class _Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.shapes[0]), unbroadcast(g, ctx.shapes[1])


class _Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, ctx.shapes[0]), unbroadcast(-g, ctx.shapes[1])


class _Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = unbroadcast(g * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class _Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga = unbroadcast(g / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb


class _Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class _Pow(Function):
    @staticmethod
    def forward(ctx, a, p):
        ctx.save_for_backward(a)
        ctx.p = p
        return (a ** p).astype(a.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        p = ctx.p
        return (g * p * a ** (p - 1)).astype(g.dtype, copy=False), None


class _Exp(Function):
    @staticmethod
    def forward(ctx, a):
        y = _backend.xp_of(ctx.device).exp(a)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class _Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return _backend.xp_of(ctx.device).log(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g / a


class _Sum(Function):
    @staticmethod
    def forward(ctx, a, dims, keepdim):
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        xp = _backend.xp_of(ctx.device)
        return xp.asarray(a.sum(axis=dims, keepdims=keepdim), dtype=a.dtype)

    @staticmethod
    def backward(ctx, g):
        xp = _backend.xp_of(ctx.device)
        if not ctx.keepdim:
            g = xp.expand_dims(g, ctx.dims) if ctx.dims else g
        return xp.broadcast_to(g, ctx.shape).copy(), None, None


class _Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {tuple(a.shape)} "
                             f"({a.size} elements) into {shape}") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(ctx.shape), None


class _Index(Function):
    @staticmethod
    def forward(ctx, a, index):
        ctx.shape, ctx.index = a.shape, index
        out = a[index]
        xp = _backend.xp_of(ctx.device)
        return xp.array(out, copy=True) if xp.isscalar(out) or out.ndim == 0 else out.copy()

    @staticmethod
    def backward(ctx, g):
        xp = _backend.xp_of(ctx.device)
        grad = xp.zeros(ctx.shape, dtype=g.dtype)
        xp.add.at(grad, ctx.index, g)  # repeated indices accumulate
        return grad, None


class _ToDevice(Function):
    @staticmethod
    def forward(ctx, a, device):
        ctx.source = ctx.device
        ctx.device = device  # outputs live on the target device
        return _as_array(a, device).copy() if device != "cuda" else _as_array(a, device)

    @staticmethod
    def backward(ctx, g):
        return _as_array(g, ctx.source), None
