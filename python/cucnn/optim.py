"""Optimizers with PyTorch's update formulas (torch.optim.SGD and torch.optim.Adam).

Each parameter's update is array code on its own device; state (momentum buffers, Adam's moments)
lives beside it. ``state_dict()`` holds host copies, so a checkpoint moves between devices.
"""
from __future__ import annotations

import math

import numpy as np

from . import _backend
from .tensor import Tensor


def _number(v, name: str, what: str, lo: float = 0.0, hi: float = math.inf,
            hi_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{what}: {name} must be a number, got {type(v).__name__}")
    v = float(v)
    if not (lo <= v and (v < hi if hi_open else v <= hi)):
        raise ValueError(f"{what}: invalid {name} value: {v} (expected in [{lo}, {hi}"
                         f"{')' if hi_open else ']'})")
    return v


class Optimizer:
    """Holds ``param_groups`` (dicts of params and hyperparameters) and per-parameter ``state``."""

    def __init__(self, params, defaults: dict):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for g in groups:
            group = dict(defaults)
            group.update(g)
            group["params"] = list(group["params"])
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise TypeError(f"{type(self).__name__}: parameters must be Tensors that "
                                    f"require grad, got {type(p).__name__}")
            self.param_groups.append(group)
        self.state: dict = {}  # id(param) -> dict of arrays and counters

    def _params(self):
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p

    def zero_grad(self, set_to_none: bool = True) -> None:
        for _, p in self._params():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data = p.grad.data * 0

    def step(self) -> None:
        for group, p in self._params():
            if p.grad is not None:
                self._update(group, p, p.grad.data, self.state.setdefault(id(p), {}))

    def _update(self, group, p, grad, state):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- checkpoints: parameters are numbered in param_groups order, as PyTorch does
    def state_dict(self) -> dict:
        state, groups, i = {}, [], 0
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                if id(p) in self.state:
                    state[i] = {k: (_backend.to_numpy(v).copy() if hasattr(v, "shape") else v)
                                for k, v in self.state[id(p)].items()}
                ids.append(i)
                i += 1
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved parameter groups "
                             f"{[len(g['params']) for g in groups]} do not match this optimizer's "
                             f"{[len(g['params']) for g in self.param_groups]}")
        self.state = {}
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = v
            for i, p in zip(saved["params"], group["params"]):
                if i in state_dict["state"]:
                    xp = _backend.xp_of(p.device)
                    self.state[id(p)] = {k: (xp.asarray(np.asarray(v, dtype=p.dtype))
                                             if hasattr(v, "shape") and np.ndim(v) else v)
                                         for k, v in state_dict["state"][i].items()}


class SGD(Optimizer):
    """p -= lr * g, where g = grad + weight_decay * p, and with momentum
    buf = momentum * buf + (1 - dampening) * g (buf = g at the first step), g = buf, or
    g = g + momentum * buf with nesterov."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        defaults = {"lr": _number(lr, "lr", "SGD"), "momentum": _number(momentum, "momentum", "SGD"),
                    "dampening": _number(dampening, "dampening", "SGD"),
                    "weight_decay": _number(weight_decay, "weight_decay", "SGD"),
                    "nesterov": bool(nesterov)}
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, defaults)

    def _update(self, group, p, grad, state):
        g = grad + p.data * np.float32(group["weight_decay"]) if group["weight_decay"] else grad
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = g.copy()
            else:
                buf = buf * np.float32(mu) + g * np.float32(1 - group["dampening"])
            state["momentum_buffer"] = buf
            g = g + buf * np.float32(mu) if group["nesterov"] else buf
        p.data -= g * np.float32(group["lr"])


class Adam(Optimizer):
    """Adam (Kingma and Ba) in PyTorch's form: with t the step count,
    m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2,
    p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps); weight_decay adds wd*p to g
    (L2, not AdamW)."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair, got {betas!r}")
        defaults = {"lr": _number(lr, "lr", "Adam"),
                    "betas": (_number(betas[0], "beta1", "Adam", 0.0, 1.0, hi_open=True),
                              _number(betas[1], "beta2", "Adam", 0.0, 1.0, hi_open=True)),
                    "eps": _number(eps, "eps", "Adam"),
                    "weight_decay": _number(weight_decay, "weight_decay", "Adam")}
        super().__init__(params, defaults)

    def _update(self, group, p, grad, state):
        xp = _backend.xp_of(p.device)
        b1, b2 = group["betas"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        t = state["step"]
        g = grad + p.data * np.float32(group["weight_decay"]) if group["weight_decay"] else grad
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= np.float32(b1)
        m += g * np.float32(1 - b1)
        v *= np.float32(b2)
        v += g * g * np.float32(1 - b2)
        step_size = group["lr"] / (1 - b1 ** t)
        denom = xp.sqrt(v) / np.float32(math.sqrt(1 - b2 ** t)) + np.float32(group["eps"])
        p.data -= np.float32(step_size) * m / denom


class AdamW(Optimizer):
    """Adam with decoupled weight decay (Loshchilov and Hutter), PyTorch's form:
    p *= 1 - lr*weight_decay, then Adam's step (m, v and the bias corrections as in Adam). With
    ``amsgrad`` the denominator uses the running maximum of v; with ``maximize`` the gradient's
    sign flips."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, maximize: bool = False):
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"AdamW: betas must be a pair, got {betas!r}")
        defaults = {"lr": _number(lr, "lr", "AdamW"),
                    "betas": (_number(betas[0], "beta1", "AdamW", 0.0, 1.0, hi_open=True),
                              _number(betas[1], "beta2", "AdamW", 0.0, 1.0, hi_open=True)),
                    "eps": _number(eps, "eps", "AdamW"),
                    "weight_decay": _number(weight_decay, "weight_decay", "AdamW"),
                    "amsgrad": bool(amsgrad), "maximize": bool(maximize)}
        super().__init__(params, defaults)

    def _update(self, group, p, grad, state):
        xp = _backend.xp_of(p.device)
        b1, b2 = group["betas"]
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            p.data *= np.float32(1 - group["lr"] * group["weight_decay"])
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= np.float32(b1)
        m += g * np.float32(1 - b1)
        v *= np.float32(b2)
        v += g * g * np.float32(1 - b2)
        if group["amsgrad"]:
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = group["lr"] / (1 - b1 ** t)
        denom = xp.sqrt(v) / np.float32(math.sqrt(1 - b2 ** t)) + np.float32(group["eps"])
        p.data -= np.float32(step_size) * m / denom


class RMSprop(Optimizer):
    """RMSprop in PyTorch's form: g += weight_decay*p; s = alpha*s + (1-alpha)*g^2; with
    ``centered``, a = alpha*a + (1-alpha)*g and the denominator is sqrt(s - a^2) + eps, else
    sqrt(s) + eps; with momentum, buf = momentum*buf + g/denom and p -= lr*buf, else
    p -= lr*g/denom."""

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False):
        defaults = {"lr": _number(lr, "lr", "RMSprop"),
                    "alpha": _number(alpha, "alpha", "RMSprop"),
                    "eps": _number(eps, "eps", "RMSprop"),
                    "weight_decay": _number(weight_decay, "weight_decay", "RMSprop"),
                    "momentum": _number(momentum, "momentum", "RMSprop"),
                    "centered": bool(centered), "maximize": bool(maximize)}
        super().__init__(params, defaults)

    def _update(self, group, p, grad, state):
        xp = _backend.xp_of(p.device)
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(p.data))
            if group["momentum"] > 0:
                state["momentum_buffer"] = xp.zeros_like(p.data)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(p.data)
        state["step"] += 1
        g = -grad if group["maximize"] else grad
        if group["weight_decay"]:
            g = g + p.data * np.float32(group["weight_decay"])
        alpha = group["alpha"]
        s = state["square_avg"]
        s *= np.float32(alpha)
        s += g * g * np.float32(1 - alpha)
        if group["centered"]:
            a = state["grad_avg"]
            a *= np.float32(alpha)
            a += g * np.float32(1 - alpha)
            denom = xp.sqrt(s - a * a) + np.float32(group["eps"])
        else:
            denom = xp.sqrt(s) + np.float32(group["eps"])
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= np.float32(group["momentum"])
            buf += g / denom
            p.data -= np.float32(group["lr"]) * buf
        else:
            p.data -= np.float32(group["lr"]) * g / denom


from . import lr_scheduler  # noqa: E402  (cucnn.optim.lr_scheduler, as torch.optim.lr_scheduler)
import sys as _sys  # noqa: E402
_sys.modules[__name__ + ".lr_scheduler"] = lr_scheduler  # import cucnn.optim.lr_scheduler works
