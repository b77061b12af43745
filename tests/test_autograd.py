"""The autograd engine: graph reuse, accumulation, broadcasting, no_grad, Function contract."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
from cucnn.testing import gradcheck


def t64(a, requires_grad=True):
    return cucnn.tensor(np.asarray(a, np.float64), requires_grad=requires_grad, dtype=np.float64)


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_tensor_basics(device):
    x = cucnn.tensor([[1, 2], [3, 4]], device=device)
    assert x.dtype == np.int64 and x.shape == (2, 2) and x.device == device
    y = cucnn.tensor([[1.5, 2.0]], device=device, requires_grad=True)
    assert y.dtype == np.float32 and y.requires_grad and y.grad is None and y.is_leaf
    assert cucnn.tensor(3.0).item() == 3.0
    assert y.detach().requires_grad is False
    z = y.to("cpu" if device == "sim" else "sim")
    assert z.device != device and np.array_equal(z.numpy(), y.numpy())


def test_reused_tensor_accumulates_through_every_path():
    x = t64([1.0, -2.0, 3.0])
    y = x * x + x * 3.0 - x / 2.0  # x used four times
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3 - 0.5)


def test_backward_twice_accumulates_into_grad():
    x = t64([2.0])
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [8.0])


def test_diamond_graph():
    x = t64([0.5, 1.5])
    a = x.exp()
    b = a * a + a.log()
    b.sum().backward()
    ex = np.exp(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 2 * ex * ex + 1)


@pytest.mark.parametrize("sa,sb", [((3, 4), (4,)), ((3, 1), (1, 4)), ((2, 3, 4), (3, 1)),
                                   ((5,), ()), ((), (2, 2))])
def test_broadcast_gradients(sa, sb):
    rng = np.random.default_rng(0)
    a, b = t64(rng.standard_normal(sa) + 3), t64(rng.standard_normal(sb) + 3)
    for op in (lambda p, q: p + q, lambda p, q: p - q, lambda p, q: p * q, lambda p, q: p / q):
        gradcheck(op, [a, b])
        a.grad = b.grad = None


def test_reductions_reshape_pow_neg_index():
    rng = np.random.default_rng(1)
    x = t64(rng.standard_normal((2, 3, 4)) + 2)
    gradcheck(lambda a: a.sum(dim=1), [x])
    gradcheck(lambda a: a.mean(dim=(0, 2), keepdim=True), [x])
    gradcheck(lambda a: (a ** 3).mean(), [x])
    gradcheck(lambda a: -a.reshape(6, 4).flatten(), [x])
    gradcheck(lambda a: a[1, ::2] * 2 + a[1, 0], [x])
    gradcheck(lambda a: a.flatten(start_dim=1), [x])


def test_no_grad_records_nothing():
    x = t64([1.0, 2.0])
    with cucnn.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @cucnn.no_grad()
    def f(a):
        return F.relu(a)
    assert f(x).grad_fn is None
    assert (x * 2).grad_fn is not None  # restored


def test_gradient_argument_and_non_scalar_error():
    x = t64([1.0, 2.0, 3.0])
    y = x * 2
    with pytest.raises(RuntimeError, match="implicitly created only for scalar"):
        y.backward()
    y.backward(np.array([1.0, 0.0, -1.0]))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 0.0, -2.0])
    with pytest.raises(ValueError, match=r"gradient must have shape \(3,\)"):
        (x * 2).backward(np.ones(2))


def test_custom_function_contract():
    class Cube(cucnn.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x * x * g

    x = t64([1.0, -2.0])
    y = Cube.apply(x)
    assert y.grad_fn.name == "CubeBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_wrong_gradient_shape_from_a_function_is_caught():
    class Bad(cucnn.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            return g[:1]

    x = t64([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"BadBackward returned a gradient of shape \(1,\)"):
        Bad.apply(x).sum().backward()


def test_mixing_devices_is_an_error():
    a = cucnn.tensor([1.0], device="cpu", requires_grad=True)
    b = cucnn.tensor([1.0], device="sim")
    with pytest.raises(ValueError, match="same device, got 'cpu' and 'sim'"):
        a + b


def test_gradient_flows_across_devices():
    a = cucnn.tensor([1.0, -1.0, 2.0], device="cpu", requires_grad=True)
    F.relu(a.to("sim")).sum().backward()
    assert a.grad.device == "cpu"
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 0.0, 1.0])


def test_deep_graph_does_not_recurse():
    x = t64([1.0])
    y = x
    for _ in range(5000):
        y = y + 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_softmax_cross_entropy_training_step_decreases_loss(device):
    rng = np.random.default_rng(0)
    w = cucnn.tensor(rng.standard_normal((5, 3)) * 0.1, device=device, requires_grad=True)
    xs = rng.standard_normal((32, 5))
    x = cucnn.tensor(xs, device=device)
    t = cucnn.tensor((xs @ rng.standard_normal((5, 3))).argmax(1), device=device)  # learnable
    losses = []
    for _ in range(20):
        logits = (x.reshape(32, 5, 1) * w.reshape(1, 5, 3)).sum(dim=1)
        loss = F.cross_entropy(logits, t)
        w.grad = None
        loss.backward()
        w.data = w.data - 0.5 * w.grad.data
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5
