"""Module, Parameter and Sequential: PyTorch's containers, small enough to read in one sitting."""
from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np

from .. import _backend
from ..tensor import Tensor, _as_array, no_grad

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Parameter(Tensor):
    """A leaf tensor that a Module registers as one of its parameters."""

    __slots__ = ()

    def __init__(self, data, device: str = "cpu", requires_grad: bool = True):
        super().__init__(data, device=device, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and models: assign Parameters and Modules as attributes and they are
    registered, in order; define ``forward``; call the module."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())  # name -> Tensor or None
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "training", True)

    # -- registration
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("cannot assign before Module.__init__() call")
        params, modules = self.__dict__["_parameters"], self.__dict__["_modules"]
        if isinstance(value, Parameter) or (value is None and name in params):
            modules.pop(name, None)
            params[name] = value  # None keeps an absent parameter's slot (bias=False)
        elif isinstance(value, Module):
            params.pop(name, None)
            modules[name] = value
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                f"(a Tensor or None expected)")
            self._buffers[name] = value
        else:
            params.pop(name, None)
            modules.pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_modules", "_buffers"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_parameter(self, name: str, param) -> None:
        """Register a Parameter, or None for an absent one (``bias=False``)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name} must be a Parameter or None, got "
                            f"{type(param).__name__}")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register a Tensor that is state but not a parameter (BatchNorm's running statistics):
        moved by ``to()``, saved by ``state_dict()`` unless ``persistent=False``, never given to
        an optimizer. ``tensor`` may be None (an absent buffer)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: buffer name must be a non-empty string without "
                           f"'.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: cannot assign {type(tensor).__name__} as buffer "
                            f"{name!r} (a Tensor or None expected)")
        if name in self._parameters or name in self._modules or \
                (hasattr(self, name) and name not in self._buffers):
            raise KeyError(f"register_buffer: attribute {name!r} already exists")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module) -> None:
        setattr(self, name, module)

    # -- the call
    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        pre, post = self.__dict__.get("_forward_pre_hooks"), self.__dict__.get("_forward_hooks")
        for hook in (pre or {}).values():
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in (post or {}).values():
            result = hook(self, args, out)
            if result is not None:
                out = result
        if _recorder is not None and not self._modules:
            _recorder(self, out)
        return out

    # -- hooks (PyTorch's register_forward_pre_hook / register_forward_hook)
    def register_forward_pre_hook(self, hook) -> "RemovableHandle":
        """``hook(module, args)`` runs before forward; a non-None result replaces the positional
        arguments (a single value is wrapped in a tuple). Returns a handle with ``remove()``."""
        return RemovableHandle(self.__dict__.setdefault("_forward_pre_hooks", OrderedDict()), hook)

    def register_forward_hook(self, hook) -> "RemovableHandle":
        """``hook(module, args, output)`` runs after forward; a non-None result replaces the
        output. Returns a handle with ``remove()``."""
        return RemovableHandle(self.__dict__.setdefault("_forward_hooks", OrderedDict()), hook)

    # -- traversal
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = ""):
        for mod_name, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                if p is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self):
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = ""):
        for mod_name, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self):
        for _, b in self.named_buffers():
            yield b

    def _named_state(self):
        """PyTorch's state_dict order: per module (pre-order), its parameters, then its
        persistent buffers."""
        for mod_name, m in self.named_modules():
            pre = f"{mod_name}." if mod_name else ""
            for name, p in m._parameters.items():
                if p is not None:
                    yield pre + name, p
            for name, b in m._buffers.items():
                if b is not None and name not in m._non_persistent_buffers:
                    yield pre + name, b

    # -- modes and devices
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data = p.grad.data * 0

    def to(self, device: str) -> "Module":
        """Move every parameter (and its gradient) to ``device``, in place; returns self."""
        device = _backend.check_device(device)
        for p in self.parameters():
            if p.device != device:
                p.data = _as_array(p.data, device).copy() if device != "cuda" \
                    else _as_array(p.data, device)
                p.device = device
                if p.grad is not None:
                    p.grad = Tensor._wrap(_as_array(p.grad.data, device), device)
        for b in self.buffers():  # buffers too (running statistics), keeping their dtype
            if b.device != device:
                b.data = _as_array(b.data, device, b.data.dtype).copy() if device != "cuda" \
                    else _as_array(b.data, device, b.data.dtype)
                b.device = device
        return self

    def cuda(self, device=None) -> "Module":
        """``to("cuda")`` (PyTorch's name; only device 0 exists)."""
        return self.to("cuda" if device is None else
                       device if isinstance(device, str) else f"cuda:{int(device)}")

    def cpu(self) -> "Module":
        return self.to("cpu")

    def apply(self, fn) -> "Module":
        """Call ``fn`` on every submodule (children first) and then on self, as PyTorch; returns
        self. The place for custom initialisation: ``model.apply(init_weights)``."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Set ``requires_grad`` on every parameter (freeze with False); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    @property
    def device(self) -> str:
        """The device of the first parameter ("cpu" for a module without any)."""
        return next((p.device for p in self.parameters()), "cpu")

    # -- state
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Parameter and persistent buffer name -> a host copy of its values (NumPy; float32, and
        int64 for ``num_batches_tracked``), in PyTorch's order and with its names."""
        return OrderedDict((n, _backend.to_numpy(p.data).copy()) for n, p in self._named_state())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters, by name. With ``strict``, missing or unexpected keys
        are an error that lists them all; a shape mismatch is always an error."""
        own = OrderedDict(self._named_state())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict and (missing or unexpected):
            if missing:
                errors.append(f"Missing key(s) in state_dict: {', '.join(map(repr, missing))}.")
            if unexpected:
                errors.append(f"Unexpected key(s) in state_dict: "
                              f"{', '.join(map(repr, unexpected))}.")
        for k, p in own.items():
            if k in state_dict:
                v = np.asarray(_backend.to_numpy(state_dict[k]))
                if v.shape != p.shape:
                    errors.append(f"size mismatch for {k}: copying a param with shape {v.shape}"
                                  f" from checkpoint, the shape in current model is {p.shape}.")
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with no_grad():
            for k, p in own.items():
                if k in state_dict:
                    p.data = _as_array(np.asarray(_backend.to_numpy(state_dict[k]), dtype=p.dtype),
                                       p.device).copy()
        return IncompatibleKeys(missing, unexpected)

    # -- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if self._modules:
            lines[0] = f"{type(self).__name__}("
            for name, m in self._modules.items():
                sub = repr(m).replace("\n", "\n  ")
                lines.append(f"  ({name}): {sub}")
            return "\n".join(lines) + "\n)"
        return lines[0] + ")"

    def summary(self, input_shape, device: str | None = None, print_fn=print) -> str:
        """A Keras-style table: each layer's output shape and parameter count, and the totals.
        ``input_shape`` is one sample's (C, H, W) (the batch dimension shows as None). It runs one
        forward pass of a zero batch of one sample."""
        return _summary(self, input_shape, device, print_fn)


class Sequential(Module):
    """Modules called in order; indexable and iterable as PyTorch's."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} must be a Module, got "
                                    f"{type(m).__name__}")
                self.add_module(str(i), m)

    #: Run a Conv2d or Linear followed by a ReLU as one fused Function (F.conv2d's ReLU epilogue:
    #: one forward launch and one backward mask instead of two launches forward). Skipped where
    #: either module has hooks or a summary is being recorded; same values either way.
    fuse_relu = True

    def forward(self, x):
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            if self.fuse_relu and i + 1 < len(mods) and _fusable(mods[i], mods[i + 1]):
                x = mods[i]._forward_relu(x)
                i += 2
                continue
            x = mods[i](x)
            i += 1
        return x

    def __getitem__(self, i):
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: "Module") -> "Sequential":
        self.add_module(str(len(self)), module)
        return self


def _fusable(first, second) -> bool:
    """Whether Sequential may run ``first`` then ``second`` as one fused conv+ReLU: a Conv2d or
    Linear of the library's own class (not a subclass with its own forward), then a ReLU, neither
    with hooks, and no summary recording (it wants both outputs)."""
    from .layers import Conv2d, Linear, ReLU
    return (type(first) in (Conv2d, Linear) and type(second) is ReLU and _recorder is None and
            not any(m.__dict__.get(h) for m in (first, second)
                    for h in ("_forward_pre_hooks", "_forward_hooks")))


class ModuleList(Module):
    """A list of modules whose parameters are registered (PyTorch's ``nn.ModuleList``)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _check(self, m, i):
        if not isinstance(m, Module):
            raise TypeError(f"ModuleList: element {i} must be a Module, got {type(m).__name__}")
        return m

    def _index(self, i) -> int:
        n = len(self)
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"ModuleList indices must be integers or slices, not "
                            f"{type(i).__name__}")
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range")
        return int(i) % n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return ModuleList(list(self._modules.values())[i])
        return self._modules[str(self._index(i))]

    def __setitem__(self, i, module) -> None:
        self._modules[str(self._index(i))] = self._check(module, i)

    def __delitem__(self, i) -> None:
        mods = list(self._modules.values())
        if isinstance(i, slice):
            del mods[i]
        else:
            del mods[self._index(i)]
        self._modules.clear()
        for k, m in enumerate(mods):
            self._modules[str(k)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __iadd__(self, modules) -> "ModuleList":
        return self.extend(modules)

    def append(self, module) -> "ModuleList":
        self.add_module(str(len(self)), self._check(module, len(self)))
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, self._check(module, index))
        self._modules.clear()
        for k, m in enumerate(mods):
            self._modules[str(k)] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward(); iterate over it in yours")


class ModuleDict(Module):
    """An ordered dict of modules whose parameters are registered (PyTorch's ``nn.ModuleDict``)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict: keys must be str, got {type(key).__name__}")
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: value for {key!r} must be a Module, got "
                            f"{type(module).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str) -> Module:
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules) -> None:
        items = modules.items() if hasattr(modules, "items") else modules
        for key, m in items:
            self[key] = m

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward(); index it in yours")


class RemovableHandle:
    """What register_*_hook returns: ``remove()`` unregisters the hook (also as a context
    manager)."""

    _next_id = 0

    def __init__(self, table: OrderedDict, hook):
        self.table, self.id = table, RemovableHandle._next_id
        RemovableHandle._next_id += 1
        table[self.id] = hook

    def remove(self) -> None:
        self.table.pop(self.id, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


# ---- summary --------------------------------------------------------------------------------------

_recorder = None  # set while summary() runs: called with (leaf module, output) after each call


def _summary(model: Module, input_shape, device, print_fn) -> str:
    global _recorder
    shape = tuple(int(s) for s in input_shape)
    device = device or model.device
    names = {id(m): n for n, m in model.named_modules()}
    rows = []

    def record(m, out):
        n = sum(int(np.prod(p.shape)) for p in m._parameters.values() if p is not None)
        oshape = out.shape if isinstance(out, Tensor) else out[0].shape
        rows.append((f"{names.get(id(m), '?') or type(m).__name__} ({type(m).__name__})",
                     "(None, " + ", ".join(map(str, oshape[1:])) + ")", n))

    xp = _backend.xp_of(device)
    x = Tensor._wrap(xp.zeros((1,) + shape, dtype=np.float32), device)
    was_training = model.training
    model.eval()
    _recorder = record
    try:
        with no_grad():
            model(x)
    finally:
        _recorder = None
        model.train(was_training)
    total = sum(int(np.prod(p.shape)) for p in model.parameters())
    trainable = sum(int(np.prod(p.shape)) for p in model.parameters() if p.requires_grad)
    w0 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2
    w1 = max([len("Output Shape")] + [len(r[1]) for r in rows]) + 2
    width = w0 + w1 + 12
    lines = [f'Model: "{type(model).__name__}"', "_" * width,
             f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>10}", "=" * width]
    for i, (name, oshape, n) in enumerate(rows):
        lines.append(f"{name:<{w0}}{oshape:<{w1}}{n:>10,}")
        lines.append("_" * width if i < len(rows) - 1 else "=" * width)
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}", "_" * width]
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
