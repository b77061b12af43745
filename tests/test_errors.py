"""Bad input raises a clear TypeError/ValueError/IndexError naming the argument, with expected and
actual values — from the functional API and from the bindings themselves — and never crashes."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
from cucnn import _backend


def sim():
    return _backend.sim_module()


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_functional_errors(device):
    x = cucnn.tensor(np.zeros((2, 3)), device=device)
    with pytest.raises(TypeError, match="input must be a cucnn.Tensor, got ndarray"):
        F.relu(np.zeros(3))
    with pytest.raises(TypeError, match="input must be floating point, got int64"):
        F.sigmoid(cucnn.tensor([1, 2], device=device))
    with pytest.raises(TypeError, match="negative_slope must be a number, got str"):
        F.leaky_relu(x, "0.1")
    with pytest.raises(IndexError, match=r"expected to be in range of \[-2, 1\], but got 2"):
        F.softmax(x, dim=2)
    with pytest.raises(IndexError, match="but got -3"):
        F.log_softmax(x, dim=-3)
    with pytest.raises(TypeError, match="dim must be an int, got float"):
        F.softmax(x, dim=1.0)


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_cross_entropy_errors(device):
    x = cucnn.tensor(np.zeros((4, 3)), device=device)
    t = cucnn.tensor([0, 1, 2, 0], device=device)
    with pytest.raises(ValueError, match=r"target\[2\] = 3 is out of range for 3 classes"):
        F.cross_entropy(x, cucnn.tensor([0, 1, 3, 0], device=device))
    with pytest.raises(ValueError, match=r"target\[0\] = -1 is out of range"):
        F.cross_entropy(x, cucnn.tensor([-1, 1, 2, 0], device=device))
    with pytest.raises(TypeError, match="target must be int64 class indices, got float32"):
        F.cross_entropy(x, cucnn.tensor([0.0, 1.0, 2.0, 0.0], device=device))
    with pytest.raises(ValueError, match=r"target must have shape \(4,\) .* got \(3,\)"):
        F.cross_entropy(x, cucnn.tensor([0, 1, 2], device=device))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        F.cross_entropy(x, t, reduction="avg")
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        F.cross_entropy(x, t, ignore_index=1.5)
    other = "cpu" if device == "sim" else "sim"
    with pytest.raises(ValueError, match="same device"):
        F.cross_entropy(x, t.to(other))


def test_tensor_errors():
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'sim', 'cuda'\), got 'gpu'"):
        cucnn.tensor([1.0], device="gpu")
    with pytest.raises(TypeError, match="device must be a str"):
        cucnn.tensor([1.0], device=0)
    with pytest.raises(TypeError, match="only floating tensors can require gradients"):
        cucnn.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="data must be numeric"):
        cucnn.tensor(["a"])
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\)"):
        cucnn.tensor(np.zeros((2, 3))).reshape(4, 2)
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element"):
        cucnn.tensor([1.0, 2.0]).item()
    if not cucnn.cuda.is_available():
        with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
            cucnn.tensor([1.0], device="cuda")


def test_binding_errors_before_launch():
    """Direct calls into cucnn._sim: every check fires before any kernel runs."""
    m = sim()
    x = np.zeros((3, 4), np.float32)
    y = np.zeros((3, 4), np.float32)
    with pytest.raises(TypeError, match="x must be float32, got float64"):
        m.activation_forward(0, x.astype(np.float64), y)
    with pytest.raises(TypeError, match=r"x must be a numpy.ndarray, got list"):
        m.activation_forward(0, [1.0], y)
    with pytest.raises(ValueError, match=r"y must have shape \(3, 4\) \(the shape of x\), got \(4, 3\)"):
        m.activation_forward(0, x, np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        m.activation_forward(0, np.zeros((4, 3), np.float32).T, y)
    ro = np.zeros((3, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="y must be writeable"):
        m.activation_forward(0, x, ro)
    with pytest.raises(ValueError, match=r"act must be 0 \(relu\).* got 7"):
        m.activation_forward(7, x, y)
    with pytest.raises(ValueError, match=r"version must be in \[0, 1\], got 5"):
        m.activation_forward(0, x, y, version=5)
    with pytest.raises(ValueError, match=r"x must be 2-D, got 3-D with shape \(1, 3, 4\)"):
        m.softmax_forward(x.reshape(1, 3, 4), y.reshape(1, 3, 4), False)
    with pytest.raises(ValueError, match=r"dy must have shape \(3, 4\)"):
        m.softmax_backward(y, np.zeros((3, 5), np.float32), y, False)
    loss, lse, wt = (np.zeros(3, np.float32) for _ in range(3))
    status = np.full(1, np.iinfo(np.int64).max)
    with pytest.raises(TypeError, match="target must be int64, got int32"):
        m.cross_entropy_forward(x, np.zeros(3, np.int32), loss, lse, wt, status, -100)
    with pytest.raises(ValueError, match=r"target must have shape \(3,\) \(one class index per row"):
        m.cross_entropy_forward(x, np.array([0, 1]), loss, lse, wt, status, -100)
    with pytest.raises(ValueError, match="logits must have at least one class"):
        m.cross_entropy_forward(np.zeros((3, 0), np.float32), np.zeros(3, np.int64), loss, lse,
                                wt, status, -100)
    with pytest.raises(ValueError, match=r"status must have shape \(1,\)"):
        m.cross_entropy_forward(x, np.array([0, 1, 2]), loss, lse, wt, status[:0], -100)
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\) \(one per class\)"):
        m.cross_entropy_forward(x, np.array([0, 1, 2]), loss, lse, wt, status, -100,
                                np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\], got 1.5"):
        m.cross_entropy_forward(x, np.array([0, 1, 2]), loss, lse, wt, status, -100, None, 1.5)
    with pytest.raises(ValueError, match="weight_sum .* is required with weight"):
        m.cross_entropy_backward(x, np.array([0, 1, 2]), lse, loss, x.copy(), -100,
                                 np.ones(4, np.float32))
    # A bad target is not an error here: the kernel records the first bad row and writes NaN.
    m.cross_entropy_forward(x, np.array([0, 4, -7]), loss, lse, wt, status, -100)
    assert status[0] == 1 and np.isnan(loss[1]) and np.isnan(loss[2]) and np.isfinite(loss[0])


def test_sim_knob_errors():
    with pytest.raises(ValueError, match="'forward', 'reverse' or 'random:SEED'.*got 'up'"):
        cucnn.sim.set_order("up")
    with pytest.raises(ValueError, match="SIMT threads must be >= 1, got 0"):
        cucnn.sim.set_threads(0)
    with pytest.raises(TypeError, match="order must be a str"):
        cucnn.sim.set_order(3)
    assert cucnn.sim.get_order() == "forward"
