"""PyTorch's autograd memory contract: a graph node keeps only its saved tensors and links to the
nodes that made its inputs, ``backward()`` frees the saved tensors of the graph it ran through
unless ``retain_graph=True``, and a second backward through a freed graph raises.

Run as a script (``python tests/test_autograd_memory.py``) to print the peak host memory of a
VGG-style training step at batch 32 on cpu, measured with tracemalloc (which sees NumPy's
allocations)."""
import gc
import sys
import tracemalloc
import weakref

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
import cucnn.nn as nn
import cucnn.optim as optim

SECOND_TIME = "Trying to backward through the graph a second time"


def _conv_relu_linear(device="cpu"):
    rng = np.random.default_rng(0)
    x = cucnn.tensor(rng.standard_normal((2, 3, 8, 8)), device=device, requires_grad=True)
    w = cucnn.tensor(rng.standard_normal((4, 3, 3, 3)), device=device, requires_grad=True)
    v = cucnn.tensor(rng.standard_normal((5, 4 * 6 * 6)), device=device, requires_grad=True)
    t = cucnn.tensor([1, 3], device=device)
    return x, w, v, t


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_activation_no_backward_needs_is_gone_after_forward(device):
    if device == "sim" and not cucnn.sim.is_available():
        pytest.skip("cucnn._sim did not build")
    x, w, _, _ = _conv_relu_linear(device)
    h = F.conv2d(x, w)  # ReLU saves its output, so the conv output is needed by no backward
    ref = weakref.ref(h.data)
    y = F.relu(h)
    del h
    gc.collect()
    assert ref() is None, "the conv output is still referenced by the graph"
    assert y.grad_fn is not None


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_saved_activation_is_gone_once_backward_returns(device):
    if device == "sim" and not cucnn.sim.is_available():
        pytest.skip("cucnn._sim did not build")
    x, w, v, t = _conv_relu_linear(device)
    a = F.relu(F.conv2d(x, w))
    ref = weakref.ref(a.data)
    loss = F.cross_entropy(F.linear(a.flatten(1), v), t)
    del a
    gc.collect()
    assert ref() is not None  # ReLU's backward and linear's backward still need it
    loss.backward()
    gc.collect()
    assert ref() is None, "backward() returned but the ReLU output is still alive"
    assert x.grad is not None and w.grad is not None and v.grad is not None
    # the nodes are still there (grad_fn links) but their saved arrays are gone
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        loss.backward()


def test_second_backward_raises_and_retain_graph_allows_it():
    x = cucnn.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, -4.0, 6.0])
    y.backward()  # retained: runs again and accumulates, then frees
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, -8.0, 12.0])
    with pytest.raises(RuntimeError, match=SECOND_TIME + r".*retain_graph=True"):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, -8.0, 12.0])  # nothing accumulated


def test_second_backward_through_a_graph_without_saved_tensors_is_allowed():
    # As in PyTorch: only saved tensors are freed, so a graph of additions runs again.
    x = cucnn.tensor([1.0, 2.0], requires_grad=True)
    y = (x + 1.0).sum()
    y.backward()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_node_holds_no_input_tensor():
    x = cucnn.tensor([[1.0, -2.0]], requires_grad=True)
    h = x * 3.0
    y = F.relu(h)
    node = y.grad_fn
    nxt, index = node.next_functions[0]
    assert nxt is h.grad_fn and index == 0
    assert h.grad_fn.next_functions[0][0].variable is x  # AccumulateGrad of the leaf
    assert h.grad_fn.next_functions[1] == (None, 0)  # the constant 3.0 needs no gradient
    assert not any(isinstance(v, cucnn.Tensor) for v in vars(node.ctx).values())
    ref = weakref.ref(h)
    del h
    gc.collect()
    assert ref() is None  # the input Tensor itself is not kept by the graph


def test_ctx_array_attributes_are_freed_and_raise_when_used():
    class Scale(cucnn.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.factor = np.full(a.shape, 2.0, dtype=a.dtype)
            ctx.n = 7
            return a * ctx.factor

        @staticmethod
        def backward(ctx, g):
            return g * ctx.factor

    x = cucnn.tensor([1.0, 2.0], requires_grad=True)
    y = Scale.apply(x)
    y.sum().backward()
    assert y.grad_fn.ctx.n == 7  # plain attributes stay
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        y.grad_fn.ctx.factor
    with pytest.raises(AttributeError):
        y.grad_fn.ctx.missing


def test_shared_subgraph_and_leaf_used_twice_accumulate_once_per_backward():
    x = cucnn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    calls = []
    handle = x.register_post_accumulate_grad_hook(lambda t: calls.append(t.grad.numpy().copy()))
    h = x * x
    y = (h * x + h).sum()  # x reaches the loss along three paths; d/dx = 3x^2 + 2x
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 16.0, 33.0])
    assert len(calls) == 1, "the hook runs once per backward, after all paths are summed"
    np.testing.assert_allclose(calls[0], [5.0, 16.0, 33.0])
    handle.remove()
    (x * 2.0).sum().backward()
    assert len(calls) == 1
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 18.0, 35.0])


def test_post_accumulate_grad_hook_sees_the_accumulated_grad():
    w = nn.Parameter(np.ones((2, 2), dtype=np.float32))
    b = nn.Parameter(np.zeros(2, dtype=np.float32))
    seen = []
    w.register_post_accumulate_grad_hook(lambda p: seen.append(("w", p.grad.numpy().sum())))
    b.register_post_accumulate_grad_hook(lambda p: seen.append(("b", p.grad.numpy().sum())))
    x = cucnn.tensor(np.ones((3, 2), dtype=np.float32))
    for _ in range(2):
        F.linear(x, w, b).sum().backward()
    assert sorted(seen) == [("b", 6.0), ("b", 12.0), ("w", 12.0), ("w", 24.0)]
    # backward on a leaf itself accumulates through the same path
    calls = []
    leaf = cucnn.tensor([1.0], requires_grad=True)
    leaf.register_post_accumulate_grad_hook(calls.append)
    leaf.backward(cucnn.tensor([2.0]))
    assert calls == [leaf] and leaf.grad.item() == 2.0


def test_post_accumulate_grad_hook_errors():
    x = cucnn.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2.0).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        cucnn.tensor([1.0]).register_post_accumulate_grad_hook(lambda t: None)
    with pytest.raises(TypeError, match="callable"):
        x.register_post_accumulate_grad_hook(3)


def test_backward_argument_errors():
    x = cucnn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    with pytest.raises(ValueError, match=r"gradient must have shape \(2,\), got \(3,\)"):
        y.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="implicitly created only for scalar"):
        y.backward()


def _vgg_style(device="cpu"):
    layers, c = [], 3
    for v in (32, 32, "M", 64, 64, "M", 128, 128, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, device=device), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 256, device=device),
                         nn.ReLU(), nn.Linear(256, 10, device=device))


def measure_training_step(batch=32, steps=3, device="cpu"):
    """Peak host memory (MiB, tracemalloc) of the last of ``steps`` training steps written the
    way ``cucnn.train`` was before this change: the previous step's ``logits`` and ``loss`` stay
    bound while the next forward runs. Returns (peak of a step, memory held between steps)."""
    cucnn.manual_seed(0)
    model = _vgg_style(device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = cucnn.tensor(rng.standard_normal((batch, 3, 32, 32)), device=device)
    y = cucnn.tensor(rng.integers(0, 10, batch), device=device)
    tracemalloc.start()
    peak = held = 0
    try:
        for _ in range(steps):
            gc.collect()
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            gc.collect()
            now, peak = tracemalloc.get_traced_memory()
            held = now
            del before
    finally:
        tracemalloc.stop()
    return peak / 2 ** 20, held / 2 ** 20


def test_training_step_frees_its_graph():
    peak, held = measure_training_step(batch=4, steps=2)
    params = sum(p.numel() for p in _vgg_style().parameters()) * 4 / 2 ** 20
    # Between steps only the parameters, their gradients, Adam's two moments and small arrays are
    # alive: nothing of the graph's activations.
    assert held < 4 * params + 1.0, (held, params)


if __name__ == "__main__":
    b = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    peak, held = measure_training_step(batch=b)
    print(f"VGG-style step, batch {b}, cpu: peak {peak:.1f} MiB during a step, "
          f"{held:.1f} MiB held between steps")
