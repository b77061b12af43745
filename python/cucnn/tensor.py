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
import weakref

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


_FREED = ("Trying to backward through the graph a second time (or directly access saved tensors "
          "after they have already been freed). Saved intermediate values of the graph are freed "
          "when you call .backward(). Specify retain_graph=True if you need to backward through "
          "the graph a second time or if you need to access saved tensors after calling "
          "backward.")


def _holds_array(v) -> bool:
    """An array (NumPy, CuPy, a Tensor) or a tuple/list holding one: what backward frees."""
    if isinstance(v, (tuple, list)):
        return any(_holds_array(e) for e in v)
    return hasattr(v, "shape") and hasattr(v, "dtype") and not isinstance(v, np.generic)


class Context:
    """What a Function's forward leaves for its backward. ``backward()`` without
    ``retain_graph=True`` frees the saved arrays and every attribute holding an array; using one
    afterwards raises PyTorch's "backward through the graph a second time" error."""

    def __init__(self, device: str, needs_input_grad: tuple):
        self.device = device
        self.needs_input_grad = needs_input_grad
        self._saved: tuple | None = ()

    def save_for_backward(self, *arrays) -> None:
        self._saved = arrays
        # each array's in-place version now; backward refuses one that changed since (PyTorch)
        self.saved_versions = tuple(_T.version(a) if hasattr(a, "shape") else 0 for a in arrays)

    @property
    def saved_tensors(self) -> tuple:
        if self._saved is None:
            raise RuntimeError(_FREED)
        return self._saved

    def _free(self) -> None:
        if self._saved:
            self._saved = None
        freed = [k for k, v in vars(self).items() if k != "_saved" and _holds_array(v)]
        for k in freed:
            delattr(self, k)
        if freed:
            self.__dict__.setdefault("_freed", set()).update(freed)

    def __getattr__(self, name):  # only called for attributes that are not there
        if name in self.__dict__.get("_freed", ()):
            raise RuntimeError(_FREED)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class Node:
    """One recorded Function call: the graph's vertex. It keeps the Function's ``ctx`` (the saved
    arrays) and, per forward argument, the edge to the node that made it: ``(node, output
    index)``, an ``AccumulateGrad`` for a leaf that requires grad, ``(None, 0)`` otherwise. Never
    the input Tensors themselves, so an activation no backward needs dies with its last user."""

    __slots__ = ("fn", "ctx", "next_functions", "input_shapes", "n_outputs", "outputs_meta",
                 "__weakref__")

    def __init__(self, fn, ctx, next_functions, input_shapes, outputs_meta):
        self.fn = fn
        self.ctx = ctx
        self.next_functions = next_functions
        self.input_shapes = input_shapes  # the shape each input's gradient must have
        self.n_outputs = len(outputs_meta)
        self.outputs_meta = outputs_meta  # (shape, dtype) of each output

    @property
    def name(self) -> str:
        return self.fn.__name__ + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name}>"


class AccumulateGrad:
    """The graph's sink for a leaf that requires grad (PyTorch's node of the same name): sums the
    gradients reaching it in one backward, adds them to ``variable.grad``, then runs the leaf's
    post-accumulate-grad hooks. One per leaf while a graph uses it."""

    __slots__ = ("variable", "__weakref__")
    next_functions = ()
    n_outputs = 1
    name = "AccumulateGrad"

    def __init__(self, variable: "Tensor"):
        self.variable = variable

    def accumulate(self, g) -> None:
        t = self.variable
        if t.grad is None:
            t.grad = Tensor._wrap(g.copy(), t.device)
        else:
            t.grad.data = t.grad.data + g
        for hook in tuple((getattr(t, "_post_acc_hooks", None) or {}).values()):
            hook(t)

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


_accumulators: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def _accumulator(leaf: "Tensor") -> AccumulateGrad:
    """The leaf's AccumulateGrad, shared by every node of the live graphs that use the leaf (so
    its hooks run once per backward). Keyed by id: the node keeps the leaf, so the id stays its."""
    acc = _accumulators.get(id(leaf))
    if acc is None or acc.variable is not leaf:
        acc = _accumulators[id(leaf)] = AccumulateGrad(leaf)
    return acc


def _edge(a) -> tuple:
    if not (isinstance(a, Tensor) and a.requires_grad):
        return (None, 0)
    if a.grad_fn is not None:
        return (a.grad_fn, a._out_index)
    return (_accumulator(a), 0)


class RemovableHandle:
    """What ``register_post_accumulate_grad_hook`` returns; ``remove()`` unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


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
        del raw  # the node must not keep the inputs
        multi = isinstance(out, tuple)
        outs = out if multi else (out,)
        record = is_grad_enabled() and any(needs)
        node = None
        if record:
            node = Node(cls, ctx, tuple(_edge(a) for a in args),
                        tuple(a.shape if isinstance(a, Tensor) else None for a in args),
                        tuple((o.shape, o.dtype) for o in outs))
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


def _topological(root) -> list:
    order, seen, stack = [], {id(root)}, [(root, False)]
    while stack:  # iterative DFS: deep graphs do not hit the recursion limit
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        stack.append((node, True))
        for nxt, _ in node.next_functions:
            if nxt is not None and id(nxt) not in seen:
                seen.add(id(nxt))
                stack.append((nxt, False))
    return order  # inputs before the nodes that use them


def _backward(root, gradient, out_index: int = 0, retain_graph: bool = False) -> None:
    """Run the graph from ``root`` (a Node or AccumulateGrad) in reverse topological order. Each
    node's gradients are summed in ``pending`` until it runs; its ctx is freed right after its
    backward unless ``retain_graph``."""
    pending = {id(root): [None] * root.n_outputs}
    pending[id(root)][out_index] = gradient
    for node in reversed(_topological(root)):
        grads = pending.pop(id(node), None)
        if grads is None:
            continue
        if isinstance(node, AccumulateGrad):
            node.accumulate(grads[0])
            continue
        xp = _backend.xp_of(node.ctx.device)
        grads = [g if g is not None else xp.zeros(s, dtype=d if d.kind == "f" else np.float32)
                 for g, (s, d) in zip(grads, node.outputs_meta)]
        if node.ctx._saved:
            _T.check_versions(node.ctx, node.name)
        result = node.fn.backward(node.ctx, *grads)
        del grads
        if not retain_graph:
            node.ctx._free()
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != len(node.next_functions):
            raise RuntimeError(f"{node.name} returned {len(result)} gradients for "
                               f"{len(node.next_functions)} inputs")
        for (nxt, i), shape, g in zip(node.next_functions, node.input_shapes, result):
            if nxt is None or g is None:
                continue
            if tuple(g.shape) != shape:
                raise RuntimeError(f"{node.name} returned a gradient of shape {tuple(g.shape)} "
                                   f"for an input of shape {shape}")
            slot = pending.setdefault(id(nxt), [None] * nxt.n_outputs)
            slot[i] = g if slot[i] is None else slot[i] + g
        del result


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
    def backward(self, gradient=None, retain_graph=None) -> None:
        """Accumulate d(self)/d(leaf) * gradient into every leaf's ``.grad``, then free the saved
        tensors of the graph it ran through unless ``retain_graph`` (PyTorch's contract)."""
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
        root = self.grad_fn if self.grad_fn is not None else _accumulator(self)
        _backward(root, g, self._out_index, bool(retain_graph))

    def register_post_accumulate_grad_hook(self, hook) -> RemovableHandle:
        """PyTorch's hook: ``hook(tensor)`` runs right after backward has accumulated this leaf's
        ``.grad`` (once per backward, after every path's gradient is summed). Returns a handle
        whose ``remove()`` unregisters it."""
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf "
                               "tensors")
        hooks = getattr(self, "_post_acc_hooks", None)
        if hooks is None:
            hooks = self._post_acc_hooks = {}
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
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
        """A reshape that shares memory, or PyTorch's RuntimeError where strides forbid it."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _T.view(self, shape)

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

    def argmax(self, dim=None, keepdim: bool = False) -> "Tensor":
        return _T.arg_extremum(self, dim, keepdim, largest=True)

    # ---- PyTorch's everyday surface (issue 16); the Functions are in _tensor_ops.py -------------
    # Comparisons return bool tensors outside autograd. Defining __eq__ would make tensors
    # unhashable; PyTorch keeps them hashable by identity, and so do we.
    __hash__ = object.__hash__

    def __eq__(self, o): return _T.compare(self, o, "eq")  # noqa: E704
    def __ne__(self, o): return _T.compare(self, o, "ne")  # noqa: E704
    def __lt__(self, o): return _T.compare(self, o, "lt")  # noqa: E704
    def __le__(self, o): return _T.compare(self, o, "le")  # noqa: E704
    def __gt__(self, o): return _T.compare(self, o, "gt")  # noqa: E704
    def __ge__(self, o): return _T.compare(self, o, "ge")  # noqa: E704
    eq, ne, lt, le, gt, ge = __eq__, __ne__, __lt__, __le__, __gt__, __ge__

    def __matmul__(self, o): return _T.matmul(self, o)  # noqa: E704
    def __rmatmul__(self, o): return _T.matmul(o, self)  # noqa: E704
    def __abs__(self): return _T.Abs.apply(self)  # noqa: E704

    def __array__(self, dtype=None, copy=None):
        """NumPy's view of the tensor (PyTorch's ``__array__``): host data only."""
        if self.device == "cuda":
            raise TypeError("can't convert cuda device type tensor to numpy. Use Tensor.cpu() to "
                            "copy the tensor to host memory first.")
        if copy is False and dtype is not None and np.dtype(dtype) != self.dtype:
            raise ValueError(f"__array__: a copy is needed to convert {self.dtype} to {dtype}")
        a = self.data if dtype is None else self.data.astype(dtype, copy=False)
        return a.copy() if copy else a

    def _scalar(self, what: str):
        if self.numel() != 1:
            raise ValueError("only one element tensors can be converted to Python scalars")
        return self.item()

    def __float__(self): return float(self._scalar("float"))  # noqa: E704
    def __int__(self): return int(self._scalar("int"))  # noqa: E704

    def __index__(self):
        if self.dtype.kind not in "iub" or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self.item())

    def __bool__(self):
        if self.numel() != 1:
            raise RuntimeError(f"Boolean value of Tensor with "
                               f"{'no values' if self.numel() == 0 else 'more than one value'} "
                               f"is ambiguous")
        return bool(self.item())

    def __format__(self, spec: str) -> str:
        if self.ndim == 0:
            return self.item().__format__(spec)
        return object.__format__(self, spec)

    @property
    def _version(self) -> int:
        """How many in-place ops wrote to this tensor's memory (shared with its views)."""
        return _T.version(self.data)

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    def max(self, dim=None, keepdim: bool = False):
        """max() -> the value; max(dim, keepdim) -> (values, indices); max(other) -> elementwise."""
        return _T._extremum(self, dim, keepdim, largest=True)

    def min(self, dim=None, keepdim: bool = False):
        return _T._extremum(self, dim, keepdim, largest=False)

    def argmin(self, dim=None, keepdim: bool = False) -> "Tensor":
        return _T.arg_extremum(self, dim, keepdim, largest=False)

    def maximum(self, other) -> "Tensor": return _T._extremum(self, other, False, True)  # noqa
    def minimum(self, other) -> "Tensor": return _T._extremum(self, other, False, False)  # noqa

    def transpose(self, dim0: int, dim1: int) -> "Tensor":
        return _T.transpose(self, dim0, dim1)

    def t(self) -> "Tensor":
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{self.ndim}D")
        return _T.transpose(self, 0, -1) if self.ndim == 2 else self

    def permute(self, *dims) -> "Tensor":
        return _T.permute(self, _T._dims_arg(dims, "permute"))

    @property
    def T(self) -> "Tensor":
        """All dimensions reversed (PyTorch deprecates .T on tensors of other than 2 dims)."""
        return _T.permute(self, tuple(range(self.ndim))[::-1])

    def matmul(self, other) -> "Tensor":
        return _T.matmul(self, other)

    def unsqueeze(self, dim: int) -> "Tensor":
        return _T.unsqueeze(self, dim)

    def squeeze(self, dim=None) -> "Tensor":
        return _T.squeeze(self, dim)

    def clamp(self, min=None, max=None) -> "Tensor":
        return _T.clamp(self, min, max)

    clip = clamp

    def abs(self) -> "Tensor":
        return _T.Abs.apply(self)

    def sqrt(self) -> "Tensor":
        return _T.Sqrt.apply(self)

    def clone(self) -> "Tensor":
        return _T.Copy.apply(self)

    def contiguous(self) -> "Tensor":
        return self if self.is_contiguous() else _T.Copy.apply(self)

    # in place (PyTorch's checks: a leaf that requires grad only under no_grad; see _tensor_ops)
    def add_(self, other, alpha=1):
        return _T.inplace(self, lambda x, o: x + (o * alpha if alpha != 1 else o), (other,))

    def sub_(self, other, alpha=1):
        return _T.inplace(self, lambda x, o: x - (o * alpha if alpha != 1 else o), (other,))

    def mul_(self, other): return _T.inplace(self, lambda x, o: x * o, (other,))  # noqa: E704
    def div_(self, other): return _T.inplace(self, lambda x, o: x / o, (other,))  # noqa: E704
    def fill_(self, value): return _T.fill(self, value)  # noqa: E704
    def zero_(self): return _T.fill(self, 0)  # noqa: E704
    def copy_(self, src): return _T.copy_(self, src)  # noqa: E704

    def clamp_(self, min=None, max=None):
        return _T.inplace(self, lambda x: _T.clamp(x, min, max))

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_

    # devices and exchange
    def cuda(self, device=None) -> "Tensor":
        if device is not None and not isinstance(device, str):
            device = f"cuda:{int(device)}"
        dev = _backend.check_device(device or "cuda")
        if dev != "cuda":
            raise ValueError(f"cuda(): expected a CUDA device, got {device!r}")
        return self.to("cuda")

    def __dlpack__(self, **kwargs):
        """The DLPack capsule of this tensor's array (zero-copy; PyTorch's rule: not while it
        requires grad)."""
        if self.requires_grad:
            raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")
        return self.data.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()

    @property
    def __cuda_array_interface__(self) -> dict:
        if self.device != "cuda":
            raise AttributeError(f"a tensor on {self.device!r} has no __cuda_array_interface__; "
                                 f"only cuda tensors do")
        if self.requires_grad:
            raise RuntimeError("Can't get __cuda_array_interface__ on Variable that requires "
                               "grad. Use var.detach().__cuda_array_interface__ instead.")
        return self.data.__cuda_array_interface__
    # ---- end of issue 16's surface ---------------------------------------------------------------


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


from . import _tensor_ops as _T  # noqa: E402  (issue 16's Functions; imports this module)
