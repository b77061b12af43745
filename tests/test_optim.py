"""Optimizers: each step against PyTorch's update formulas written out by hand in float64."""
import numpy as np
import pytest

import cucnn
from cucnn import nn, optim
from cucnn.testing import assert_close


def _param(values):
    return nn.Parameter(np.asarray(values, dtype=np.float32))


def _run(opt_cls, kwargs, grads, p0):
    p = _param(p0)
    opt = opt_cls([p], **kwargs)
    for g in grads:
        p.grad = cucnn.tensor(g)
        opt.step()
    return p.numpy(), opt


RNG = np.random.default_rng(0)
P0 = RNG.standard_normal(7)
GRADS = [RNG.standard_normal(7) * s for s in (1.0, 3.0, 0.01, 1.0)]


def _sgd_reference(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p, buf = p.astype(np.float64), None
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def _adam_reference(p, grads, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    p, m, v = p.astype(np.float64), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p


@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.05, momentum=0.9),
                                dict(lr=0.05, momentum=0.9, dampening=0.3),
                                dict(lr=0.05, momentum=0.8, nesterov=True),
                                dict(lr=0.1, weight_decay=0.01, momentum=0.5)],
                         ids=["plain", "momentum", "dampening", "nesterov", "weight-decay"])
def test_sgd_matches_pytorch_formula(kw):
    got, _ = _run(optim.SGD, kw, GRADS, P0)
    assert_close(got, _sgd_reference(P0, GRADS, **kw), rtol=1e-5, name="sgd")


@pytest.mark.parametrize("kw", [dict(lr=1e-3), dict(lr=0.1, betas=(0.8, 0.99)),
                                dict(lr=0.01, eps=1e-3), dict(lr=0.01, weight_decay=0.1)],
                         ids=["default", "betas", "eps", "weight-decay"])
def test_adam_matches_pytorch_formula(kw):
    got, opt = _run(optim.Adam, kw, GRADS, P0)
    assert_close(got, _adam_reference(P0, GRADS, **kw), rtol=1e-5, name="adam")
    assert opt.state_dict()["state"][0]["step"] == len(GRADS)


def test_adam_first_step_moves_each_weight_by_lr():
    # Bias correction makes the first step lr * sign(g) (up to eps), whatever the gradient's size.
    got, _ = _run(optim.Adam, dict(lr=0.01), [GRADS[2]], P0)
    assert_close(got, P0 - 0.01 * np.sign(GRADS[2]), rtol=1e-4)


def test_parameters_without_grad_are_skipped_and_zero_grad():
    a, b = _param([1.0, 2.0]), _param([3.0])
    opt = optim.SGD([a, b], lr=1.0)
    a.grad = cucnn.tensor([1.0, 1.0])
    opt.step()
    assert a.numpy().tolist() == [0.0, 1.0] and b.numpy().tolist() == [3.0]
    opt.zero_grad()
    assert a.grad is None


def test_state_dict_round_trip_continues_identically():
    full, _ = _run(optim.Adam, dict(lr=0.01), GRADS, P0)
    p = _param(P0)
    opt = optim.Adam([p], lr=0.01)
    for g in GRADS[:2]:
        p.grad = cucnn.tensor(g)
        opt.step()
    sd = opt.state_dict()
    q = _param(p.numpy())
    opt2 = optim.Adam([q], lr=0.5)  # the saved lr wins, as in PyTorch
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01
    for g in GRADS[2:]:
        q.grad = cucnn.tensor(g)
        opt2.step()
    assert np.array_equal(q.numpy(), full)


def test_optimizer_argument_errors():
    p = _param([1.0])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match=r"Adam: invalid lr value: -1.0"):
        optim.Adam([p], lr=-1)
    with pytest.raises(ValueError, match="beta2"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="nesterov momentum requires a momentum"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="parameters must be Tensors that require grad"):
        optim.SGD([cucnn.tensor([1.0])], lr=0.1)
    with pytest.raises(ValueError, match="do not match"):
        optim.SGD([p], lr=0.1).load_state_dict({"state": {}, "param_groups": [
            {"lr": 0.1, "params": [0, 1]}]})
