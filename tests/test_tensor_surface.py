"""PyTorch's everyday Tensor surface (issue 16): comparisons, NumPy protocols, cat/stack, max/min,
transpose/permute, matmul, clamp/abs/sqrt, views, in-place ops, factories, devices, DLPack.

Values are checked against NumPy on cpu and sim; gradients by gradcheck (float64) and, where
PyTorch is installed, against torch.autograd; error cases with PyTorch's exception types."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
from cucnn.testing import gradcheck

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

DEVICES = ["cpu", "sim"]
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed here; the "
                                 "NumPy comparisons in this file still run")
rng = np.random.default_rng(16)


def arr(*shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def t(a, device="cpu", grad=False):
    a = np.asarray(a)
    return cucnn.tensor(a, device=device, requires_grad=grad, dtype=a.dtype)


def same_grads(fn_c, fn_t, *arrays, device="cpu"):
    """Run fn on cucnn tensors and torch tensors (float64), backward the weighted sum, compare
    outputs and gradients."""
    xs = [t(a, device, grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    yc, yt = fn_c(*xs), fn_t(*ts)
    np.testing.assert_allclose(yc.numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    w = rng.standard_normal(yt.shape)
    (yc * t(w, device)).sum().backward()
    (yt * torch.tensor(w)).sum().backward()
    for x, tt in zip(xs, ts):
        got = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        want = np.zeros(x.shape) if tt.grad is None else tt.grad.numpy()
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---- comparisons and Python/NumPy protocols --------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_comparisons_return_bool_tensors_without_grad(device):
    a, b = arr(3, 4), arr(4)
    b[1] = a[0, 1]  # a tie, so == and <= see one
    x, y = t(a, device, grad=True), t(b, device)
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        for other, o in ((y, b), (0.25, 0.25), (1, 1)):
            out = getattr(x, op)(other)
            assert out.dtype == np.bool_ and out.device == device and not out.requires_grad
            np.testing.assert_array_equal(out.numpy(), getattr(a, op)(o))
    assert (x == None) is False and (x != "a") is True  # noqa: E711 - PyTorch's answers
    with pytest.raises(RuntimeError):
        x == t(arr(5), device)


def test_tensors_stay_hashable_by_identity():
    x, y = cucnn.zeros(3), cucnn.zeros(3)
    d = {x: "x", y: "y"}
    assert d[x] == "x" and d[y] == "y" and hash(x) == object.__hash__(x)
    assert x in {x} and len({x, y}) == 2
    if torch is not None:  # PyTorch keeps tensors hashable by id with __eq__ overridden
        a = torch.zeros(3)
        assert hash(a) == id(a)


@pytest.mark.parametrize("device", DEVICES)
def test_numpy_sees_a_float_array(device):
    a = arr(2, 3, dtype=np.float32)
    x = t(a, device)
    assert np.asarray(x).dtype == np.float32
    np.testing.assert_array_equal(np.asarray(x), a)
    e = np.exp(x)
    assert type(e) is np.ndarray and e.dtype == np.float32
    np.testing.assert_allclose(e, np.exp(a))
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    # NumPy arrays and scalars on the left defer to the tensor's operators
    assert isinstance(np.ones(3, np.float32) + t(a[0], device), cucnn.Tensor)
    assert isinstance(np.float32(2) * x, cucnn.Tensor)


def test_python_scalar_protocols():
    s = cucnn.tensor(2.5)
    assert float(s) == 2.5 and int(s) == 2 and bool(s) and not bool(cucnn.tensor(0.0))
    assert f"{s:.3f}" == "2.500" and f"{cucnn.tensor([[7.0]]).sum():5.1f}" == "  7.0"
    assert f"{cucnn.zeros(2)}" == str(cucnn.zeros(2))
    assert [10, 20, 30][cucnn.tensor(1)] == 20 and len(cucnn.zeros(4, 2)) == 4
    with pytest.raises(RuntimeError, match="more than one value is ambiguous"):
        bool(cucnn.zeros(2))
    with pytest.raises(RuntimeError, match="no values is ambiguous"):
        bool(cucnn.zeros(0))
    with pytest.raises(ValueError, match="only one element tensors"):
        float(cucnn.zeros(2))
    with pytest.raises(TypeError, match="unsupported format string"):
        f"{cucnn.zeros(2):.2f}"
    with pytest.raises(TypeError, match="0-d"):
        len(cucnn.tensor(1.0))
    with pytest.raises(TypeError, match="only integer tensors"):
        [1, 2][cucnn.tensor(1.0)]


@needs_torch
def test_python_protocol_exception_types_match_pytorch():
    for fn in (lambda m: bool(m.zeros(2)), lambda m: float(m.zeros(2)),
               lambda m: int(m.zeros(3)), lambda m: f"{m.zeros(2):.1f}",
               lambda m: len(m.tensor(1.0))):
        kinds = []
        for mod in (torch, cucnn):
            try:
                fn(mod)
                kinds.append(None)
            except Exception as e:  # noqa: BLE001 - the type is what is compared
                kinds.append(type(e))
        assert kinds[0] is not None and issubclass(kinds[1], kinds[0]), kinds


# ---- cat, stack, max/min --------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cat_and_stack(device, dim):
    a, b, c = arr(2, 3), arr(2, 3), arr(2, 3)
    got = cucnn.cat([t(a, device), t(b, device), t(c, device)], dim)
    np.testing.assert_array_equal(got.numpy(), np.concatenate([a, b, c], dim))
    got = cucnn.stack([t(a, device), t(b, device)], dim)
    np.testing.assert_array_equal(got.numpy(), np.stack([a, b], dim))
    xs = [t(a, device, True), t(b, device, True)]
    gradcheck(lambda p, q: cucnn.cat([p, q * 2.0, p], dim), xs)
    gradcheck(lambda p, q: cucnn.stack([p, q, p], dim), xs)


def test_cat_stack_errors_are_pytorchs():
    x = cucnn.zeros(2, 3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        cucnn.cat([x, x], 2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        cucnn.stack([x, x], 3)
    with pytest.raises(ValueError, match="non-empty list"):
        cucnn.cat([])
    with pytest.raises(RuntimeError, match="Sizes of tensors must match except in dimension 0"):
        cucnn.cat([x, cucnn.zeros(2, 4)])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        cucnn.stack([x, cucnn.zeros(3, 2)])
    with pytest.raises(TypeError, match="tuple or list of Tensors"):
        cucnn.cat(x)
    # PyTorch lets a 1-D empty tensor join anything (legacy), and so do we
    assert cucnn.cat([x, cucnn.zeros(0)]).shape == (2, 3)


@needs_torch
def test_cat_stack_gradients_match_pytorch():
    same_grads(lambda p, q: cucnn.cat([p, q], 1), lambda p, q: torch.cat([p, q], 1),
               arr(2, 3), arr(2, 5))
    same_grads(lambda p, q: cucnn.stack([p, q], 2), lambda p, q: torch.stack([p, q], 2),
               arr(2, 3), arr(2, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_max_min_values_indices_and_elementwise(device):
    a = arr(4, 5)
    a[1, 3] = a[1, 0] = a.max() + 1  # a tie: the first index wins, as in PyTorch and NumPy
    x = t(a, device)
    assert x.max().item() == a.max() and x.min().item() == a.min()
    for dim in (0, 1, -1):
        for keepdim in (False, True):
            v, i = x.max(dim, keepdim=keepdim)
            np.testing.assert_array_equal(v.numpy(), a.max(dim, keepdims=keepdim))
            np.testing.assert_array_equal(i.numpy(), np.argmax(a, dim, keepdims=keepdim))
            assert i.dtype == np.int64
            r = x.min(dim=dim, keepdim=keepdim)
            np.testing.assert_array_equal(r.values.numpy(), a.min(dim, keepdims=keepdim))
            np.testing.assert_array_equal(r.indices.numpy(), np.argmin(a, dim, keepdims=keepdim))
            np.testing.assert_array_equal(x.argmax(dim, keepdim).numpy(),
                                          np.argmax(a, dim, keepdims=keepdim))
            np.testing.assert_array_equal(x.argmin(dim, keepdim).numpy(),
                                          np.argmin(a, dim, keepdims=keepdim))
    assert x.argmax().item() == np.argmax(a) and x.argmin().item() == np.argmin(a)
    b = arr(5)
    np.testing.assert_array_equal(x.max(t(b, device)).numpy(), np.maximum(a, b))
    np.testing.assert_array_equal(x.minimum(t(b, device)).numpy(), np.minimum(a, b))
    nan = t(np.array([1.0, np.nan, 3.0]), device)
    assert np.isnan(nan.max().item()) and nan.max(0).indices.item() == 1


@pytest.mark.parametrize("device", DEVICES)
def test_max_min_gradcheck(device):
    a, b = arr(3, 4), arr(3, 4)
    b[0, 0] = a[0, 0] + 0.5  # keep ties out of finite differences
    xs = [t(a, device, True), t(b, device, True)]
    gradcheck(lambda p, q: p.max(1, keepdim=True)[0] + q.min(0, keepdim=True).values, xs)
    gradcheck(lambda p, q: p.max(q) * 2.0 + p.minimum(q), xs)
    gradcheck(lambda p, q: p.max() + q.min(), xs)


@needs_torch
def test_max_min_gradients_match_pytorch_with_ties():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])
    b = np.array([[1.0, 4.0, 3.0], [0.0, 0.0, 5.0]])
    same_grads(lambda p: p.max(), lambda p: p.max(), a)  # shared among the ties
    same_grads(lambda p: p.min(1).values, lambda p: p.min(1).values, a)
    same_grads(lambda p, q: p.max(q), lambda p, q: p.max(q), a, b)  # halves at equality
    same_grads(lambda p, q: p.minimum(q), lambda p, q: p.minimum(q), a, b)


def test_max_errors():
    x = cucnn.zeros(2, 3)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.max(2)
    with pytest.raises(IndexError, match="Dimension out of range"):
        x.argmin(-3)
    with pytest.raises(RuntimeError, match="numel"):
        cucnn.zeros(0).max()
    with pytest.raises(IndexError, match="non-zero size"):
        cucnn.zeros(0, 2).max(0)


# ---- shape ops ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_transpose_permute_T_squeeze_unsqueeze(device):
    a = arr(2, 3, 4)
    x = t(a, device)
    np.testing.assert_array_equal(x.transpose(0, 2).numpy(), a.transpose(2, 1, 0))
    np.testing.assert_array_equal(x.permute(1, 2, 0).numpy(), a.transpose(1, 2, 0))
    np.testing.assert_array_equal(x.permute((2, 0, 1)).numpy(), a.transpose(2, 0, 1))
    np.testing.assert_array_equal(x.T.numpy(), a.T)
    np.testing.assert_array_equal(x[0].t().numpy(), a[0].T)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    y = t(arr(1, 3, 1), device)
    assert y.squeeze().shape == (3,) and y.squeeze(0).shape == (3, 1)
    assert y.squeeze(1).shape == (1, 3, 1) and y.squeeze((0, 2)).shape == (3,)
    xs = [t(a, device, True)]
    gradcheck(lambda p: p.transpose(0, 1).permute(2, 0, 1).unsqueeze(0).squeeze(0).T * 3.0, xs)


def test_shape_errors_are_pytorchs():
    x = cucnn.zeros(2, 3)
    with pytest.raises(IndexError):
        x.transpose(0, 2)
    with pytest.raises(RuntimeError, match="duplicate dims"):
        x.permute(0, 0)
    with pytest.raises(RuntimeError, match="number of dimensions"):
        x.permute(0, 1, 2)
    with pytest.raises(IndexError):
        x.unsqueeze(3)
    with pytest.raises(IndexError):
        x.squeeze(2)
    with pytest.raises(RuntimeError, match="t\\(\\) expects"):
        cucnn.zeros(1, 2, 3).t()


@pytest.mark.parametrize("device", DEVICES)
def test_view_shares_memory_and_refuses_incompatible_strides(device):
    x = t(np.arange(6.0), device)
    v = x.view(2, 3)
    assert v.shape == (2, 3) and x.view(-1, 2).shape == (3, 2)
    v[1, 2].item()
    with cucnn.no_grad():
        v.fill_(7.0)
    assert x.numpy().tolist() == [7.0] * 6  # a view, as PyTorch's
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        x.view(2, 3).T.view(6)
    assert x.view(2, 3).T.contiguous().view(6).shape == (6,)
    assert x.view(2, 3).T.reshape(6).shape == (6,)
    with pytest.raises(RuntimeError, match="invalid for input of size 6"):
        x.view(4, 2)
    gradcheck(lambda p: p.view(3, 2).T.contiguous().view(-1) * 2.0, [t(arr(6), device, True)])


@pytest.mark.parametrize("device", DEVICES)
def test_clone_and_contiguous(device):
    a = arr(3, 2)
    x = t(a, device, True)
    c = x.clone()
    assert c.data is not x.data and np.array_equal(c.numpy(), a) and c.grad_fn is not None
    assert x.contiguous() is x and x.is_contiguous()
    xt = x.T
    assert not xt.is_contiguous() and xt.contiguous().is_contiguous()
    gradcheck(lambda p: p.clone() * p.T.contiguous().T, [x])


# ---- matmul ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sa,sb", [((5, 7), (7, 3)), ((7,), (7, 3)), ((5, 7), (7,)), ((7,), (7,)),
                                   ((4, 5, 7), (7, 3)), ((2, 1, 5, 7), (3, 7, 2)),
                                   ((7,), (2, 7, 3)), ((1, 1), (1, 1))])
def test_matmul_values_and_gradients(device, sa, sb):
    a, b = arr(*sa), arr(*sb)
    got = t(a, device) @ t(b, device)
    np.testing.assert_allclose(got.numpy(), np.matmul(a, b), rtol=1e-12, atol=1e-12)
    gradcheck(lambda p, q: p.matmul(q), [t(a, device, True), t(b, device, True)])


def test_matmul_2d_float32_runs_on_the_gemm_kernels_on_sim():
    """On sim the 2-D float32 product is the conv kernels' GEMM (linear); its values and gradients
    match the array code of the cpu device."""
    a, b = arr(37, 19, dtype=np.float32), arr(19, 11, dtype=np.float32)
    out, w_host = {}, arr(37, 11, dtype=np.float32)
    for dev in ("cpu", "sim"):
        p, q = t(a, dev, True), t(b, dev, True)
        y = p @ q
        w = t(w_host, dev)
        (y * w).sum().backward()
        out[dev] = (y.numpy(), p.grad.numpy(), q.grad.numpy(), y.grad_fn.name)
    assert out["cpu"][3] == "MatMulBackward" and out["sim"][3] != "MatMulBackward"
    for k in range(3):
        np.testing.assert_allclose(out["sim"][k], out["cpu"][k], rtol=1e-5, atol=1e-5)


@needs_torch
def test_matmul_gradients_match_pytorch():
    for sa, sb in (((5, 7), (7, 3)), ((7,), (2, 7, 3)), ((2, 1, 5, 7), (3, 7, 2)), ((7,), (7,))):
        same_grads(lambda p, q: p @ q, lambda p, q: p @ q, arr(*sa), arr(*sb))


def test_matmul_errors():
    with pytest.raises(RuntimeError, match="cannot be multiplied \\(2x3 and 2x3\\)"):
        cucnn.zeros(2, 3) @ cucnn.zeros(2, 3)
    with pytest.raises(RuntimeError, match="at least 1D"):
        cucnn.tensor(1.0) @ cucnn.zeros(2)
    with pytest.raises(RuntimeError):
        cucnn.zeros(2, 3, 4) @ cucnn.zeros(5, 3)
    with pytest.raises(TypeError):
        cucnn.zeros(2, 2) @ np.zeros((2, 2))


# ---- clamp, abs, sqrt ------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_clamp_abs_sqrt_values(device):
    a = np.array([-2.0, -0.5, 0.0, 0.5, 1.0, 3.0, np.nan])
    x = t(a, device)
    np.testing.assert_array_equal(x.clamp(-0.5, 1.0).numpy(), np.clip(a, -0.5, 1.0))
    np.testing.assert_array_equal(x.clamp(min=0).numpy(), np.maximum(a, 0))
    np.testing.assert_array_equal(x.clamp(max=0.5).numpy(), np.minimum(a, 0.5))
    np.testing.assert_array_equal(x.clamp(1.0, -1.0).numpy()[:6], np.full(6, -1.0))  # min > max
    np.testing.assert_array_equal(x.abs().numpy(), np.abs(a))
    np.testing.assert_array_equal(abs(x).numpy(), np.abs(a))
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(x.sqrt().numpy(), np.sqrt(a))


@pytest.mark.parametrize("device", DEVICES)
def test_clamp_abs_sqrt_gradcheck(device):
    a = np.array([-2.0, -0.7, 0.3, 0.6, 2.2])
    gradcheck(lambda p: p.clamp(-1.0, 1.0) * 3.0, [t(a, device, True)])
    gradcheck(lambda p: p.abs(), [t(a, device, True)])
    gradcheck(lambda p: p.sqrt(), [t(np.abs(a) + 0.1, device, True)])


@needs_torch
def test_clamp_and_abs_gradient_at_the_boundary_match_pytorch():
    a = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    same_grads(lambda p: p.clamp(-0.5, 1.0), lambda p: p.clamp(-0.5, 1.0), a)  # 1 at the bounds
    same_grads(lambda p: p.clamp(min=0.0), lambda p: p.clamp(min=0.0), a)
    same_grads(lambda p: p.abs(), lambda p: p.abs(), a)  # 0 at 0
    same_grads(lambda p: p.sqrt(), lambda p: p.sqrt(), np.abs(a) + 0.25)


def test_clamp_errors():
    with pytest.raises(RuntimeError, match="At least one of 'min' or 'max'"):
        cucnn.zeros(2).clamp()
    with pytest.raises(TypeError, match="'min' must be a number"):
        cucnn.zeros(2).clamp(min="0")


# ---- in-place ops ---------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_inplace_ops_write_into_the_array(device):
    a = arr(2, 3)
    x = t(a, device)
    data = x.data
    x.add_(1.0).mul_(2.0).sub_(t(np.ones(3), device), alpha=3).div_(4.0)
    np.testing.assert_allclose(x.numpy(), ((a + 1) * 2 - 3) / 4, rtol=1e-15)
    x += 1.0
    x *= t(np.full((2, 1), 2.0), device)  # broadcasts into x's shape
    assert x.data is data and x._version == 6
    x.clamp_(-0.5, 0.5)
    assert float(x.abs().max()) <= 0.5
    x.fill_(3.0)
    assert np.all(x.numpy() == 3.0)
    x.zero_()
    assert np.all(x.numpy() == 0.0)
    x.copy_(t(np.arange(3.0), device))  # broadcast source
    np.testing.assert_array_equal(x.numpy(), np.tile(np.arange(3.0), (2, 1)))
    assert x.data is data and x._version == 10


def test_inplace_errors_are_pytorchs():
    w = cucnn.zeros(3, requires_grad=True)
    for op in (lambda: w.add_(1), lambda: w.mul_(2), lambda: w.zero_(), lambda: w.fill_(1),
               lambda: w.copy_(cucnn.ones(3)), lambda: w.sub_(1), lambda: w.div_(2),
               lambda: w.clamp_(0, 1)):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used "
                                               "in an in-place operation."):
            op()
    with cucnn.no_grad():  # allowed under no_grad, as an optimizer's update
        w.add_(1.0)
    assert w.numpy().tolist() == [1.0] * 3 and w.is_leaf and w.requires_grad
    with pytest.raises(RuntimeError, match="doesn't match the broadcast shape"):
        cucnn.zeros(3).add_(cucnn.zeros(2, 3))
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Long"):
        cucnn.zeros(3, dtype=cucnn.int64).add_(1.5)
    with pytest.raises(RuntimeError, match="must match"):
        cucnn.zeros(3).copy_(cucnn.zeros(2))


@needs_torch
def test_inplace_on_graph_tensors_gives_pytorchs_gradients():
    a, b = arr(2, 3), arr(3)

    def run(mod, x, y):
        z = x * 2.0
        z.add_(y, alpha=0.5)
        z.mul_(y)
        z.clamp_(-1.0, 1.0)
        h = x.clone()
        h.copy_(y)  # x's gradient through h is cut by copy_, y's flows
        return z + h * 3.0

    same_grads(lambda x, y: run(cucnn, x, y), lambda x, y: run(torch, x, y), a, b)


def test_inplace_on_a_non_leaf_moves_its_grad_fn():
    x = cucnn.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    y.mul_(y)  # reads the old y on both sides, as PyTorch
    assert y.grad_fn is not None and y.grad_fn.name == "_MulBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 18 * np.array([1.0, 2.0]))


def test_version_counter_guards_saved_tensors():
    x = cucnn.tensor([1.0, 4.0, 9.0], requires_grad=True)
    base = cucnn.tensor([1.0, 4.0, 9.0])
    y = (x * base).sqrt()  # SqrtBackward saves its output
    v = y._version
    y.detach().add_(1.0)  # detach shares memory (and version) with y, as in PyTorch
    assert y._version == v + 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
    a = cucnn.tensor([[1.0, 2.0]])
    m = a @ x.unsqueeze(1).T.T[:2]  # MatMulBackward saves a
    with cucnn.no_grad():
        a.mul_(2.0)
    with pytest.raises(RuntimeError, match="MatMulBackward"):
        m.sum().backward()
    z = x.abs()
    z.sum().backward()  # untouched: fine
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])


# ---- factories ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_factories(device):
    assert cucnn.zeros(2, 3, device=device).numpy().tolist() == [[0.0] * 3] * 2
    assert cucnn.ones((2,), dtype=cucnn.float64).dtype == np.float64
    assert cucnn.empty(4, 5, device=device).shape == (4, 5)
    f = cucnn.full((2, 2), 7, device=device)
    assert f.dtype == np.int64 and np.all(f.numpy() == 7)
    assert cucnn.full((2,), 1.5).dtype == np.float32 and cucnn.full((1,), True).dtype == np.bool_
    np.testing.assert_array_equal(cucnn.arange(5, device=device).numpy(), np.arange(5))
    assert cucnn.arange(5).dtype == np.int64 and cucnn.arange(0, 1, 0.25).dtype == np.float32
    np.testing.assert_allclose(cucnn.arange(1, 2, 0.1).numpy(), np.arange(1, 2, 0.1), rtol=1e-6)
    np.testing.assert_allclose(cucnn.linspace(-1, 1, 7).numpy(), np.linspace(-1, 1, 7), rtol=1e-6)
    r = cucnn.zeros(3, requires_grad=True, device=device)
    assert r.requires_grad and r.is_leaf and r.device == device
    like = cucnn.tensor([[1, 2]], device=device)
    for fn, want in ((cucnn.zeros_like, 0), (cucnn.ones_like, 1)):
        o = fn(like)
        assert o.shape == (1, 2) and o.dtype == np.int64 and o.device == device
        assert np.all(o.numpy() == want)
    assert np.all(cucnn.full_like(like, 5).numpy() == 5)
    assert cucnn.empty_like(like, dtype=cucnn.float32).dtype == np.float32
    assert cucnn.randn_like(cucnn.zeros(3, 4)).shape == (3, 4)


def test_random_factories_follow_manual_seed_on_every_device():
    cucnn.manual_seed(3)
    a = cucnn.randn(1000)
    b = cucnn.rand(1000)
    c = cucnn.randint(2, 9, (1000,))
    cucnn.manual_seed(3)
    a2, b2, c2 = cucnn.randn(1000, device="sim"), cucnn.rand(1000), cucnn.randint(2, 9, (1000,))
    np.testing.assert_array_equal(a.numpy(), a2.numpy())
    np.testing.assert_array_equal(b.numpy(), b2.numpy())
    np.testing.assert_array_equal(c.numpy(), c2.numpy())
    assert abs(a.numpy().mean()) < 0.15 and 0.85 < a.numpy().std() < 1.15
    assert b.numpy().min() >= 0 and b.numpy().max() < 1 and a.dtype == b.dtype == np.float32
    assert c.dtype == np.int64 and c.numpy().min() == 2 and c.numpy().max() == 8
    assert cucnn.randint(5, (3,)).numpy().max() < 5


@needs_torch
def test_factory_dtypes_and_values_match_pytorch():
    pairs = [(lambda m: m.arange(5), None), (lambda m: m.arange(0, 1, 0.25), None),
             (lambda m: m.arange(2.0, 7), None), (lambda m: m.linspace(0, 1, 6), None),
             (lambda m: m.full((2,), 3), None), (lambda m: m.full((2,), 3.0), None),
             (lambda m: m.zeros(2, 3), None), (lambda m: m.ones((3,)), None)]
    for fn, _ in pairs:
        c, tt = fn(cucnn), fn(torch)
        assert str(c.dtype) == str(tt.dtype).replace("torch.", ""), (c.dtype, tt.dtype)
        np.testing.assert_allclose(c.numpy(), tt.numpy(), rtol=1e-7)


def test_factory_errors():
    with pytest.raises(RuntimeError, match="step must be nonzero"):
        cucnn.arange(0, 1, 0)
    with pytest.raises(RuntimeError, match="negative dimension"):
        cucnn.zeros(-1)
    with pytest.raises(RuntimeError, match="floating point"):
        cucnn.zeros(2, dtype=cucnn.int64, requires_grad=True)
    with pytest.raises(RuntimeError, match="from=5 >= to=5"):
        cucnn.randint(5, 5, (2,))
    with pytest.raises(TypeError):
        cucnn.zeros(2.5)


# ---- devices --------------------------------------------------------------------------------------


def test_device_strings():
    x = cucnn.zeros(2, device="cpu:0")
    assert x.device == "cpu" and cucnn.tensor([1.0], device="sim:0").device == "sim"
    assert x.to("sim:0").device == "sim"
    for bad in ("cpu:1", "sim:2"):
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            cucnn.zeros(1, device=bad)
    for bad in ("gpu", "cuda:x", "cuda:", ":0", "CPU"):
        with pytest.raises(RuntimeError, match="device must be one of"):
            cucnn.zeros(1, device=bad)
        with pytest.raises(ValueError):  # also a ValueError, as cucnn's other bad arguments
            cucnn.tensor([1.0], device=bad)
    if not cucnn.cuda.is_available():
        for dev in ("cuda", "cuda:0"):
            with pytest.raises(RuntimeError, match="not available"):
                cucnn.zeros(1, device=dev)
        with pytest.raises(RuntimeError, match="not available"):
            x.cuda()
    else:  # pragma: no cover - needs a GPU
        assert x.cuda().device == "cuda" and cucnn.zeros(1, device="cuda:0").device == "cuda"
        with pytest.raises(RuntimeError, match="invalid device ordinal"):
            cucnn.zeros(1, device="cuda:1")
    assert x.cpu() is x


@needs_torch
def test_bad_device_string_exception_type_matches_pytorch():
    with pytest.raises(RuntimeError):
        torch.device("gpu")
    with pytest.raises(RuntimeError):
        cucnn.zeros(1, device="gpu")


def test_model_on_a_numpy_array_still_raises_typeerror():
    model = cucnn.nn.Linear(3, 2)
    with pytest.raises(TypeError, match="must be a cucnn.Tensor"):
        model(np.zeros((1, 3), np.float32))


# ---- zero-copy exchange ---------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_from_numpy_shares_memory_both_ways(device):
    a = np.zeros((2, 3), np.float64)
    x = cucnn.from_numpy(a, device=device)
    assert x.dtype == np.float64 and x.device == device  # the dtype is kept, as torch.from_numpy
    a[0, 1] = 5.0
    assert x.numpy()[0, 1] == 5.0
    x.add_(1.0)
    assert a[1, 2] == 1.0 and a[0, 1] == 6.0
    np.asarray(x)[1, 0] = -3.0  # __array__ is a view too
    assert a[1, 0] == -3.0
    with pytest.raises(TypeError, match="expected np.ndarray"):
        cucnn.from_numpy([1.0, 2.0])
    # NumPy memory is host memory: never a cuda tensor (not available here, or a clear refusal)
    with pytest.raises(ValueError if cucnn.cuda.is_available() else RuntimeError):
        cucnn.from_numpy(a, device="cuda:0")


@pytest.mark.parametrize("device", DEVICES)
def test_dlpack_with_numpy_is_zero_copy(device):
    x = cucnn.zeros(4, device=device)
    assert x.__dlpack_device__() == (1, 0)
    a = np.from_dlpack(x)
    a[2] = 9.0
    assert x.numpy()[2] == 9.0
    b = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = cucnn.from_dlpack(b, device=device)
    y.mul_(2.0)
    np.testing.assert_array_equal(b, np.arange(6).reshape(2, 3) * 2)
    with pytest.raises(RuntimeError, match="require gradient"):
        cucnn.zeros(2, requires_grad=True).__dlpack__()
    with pytest.raises(TypeError, match="__dlpack__"):
        cucnn.from_dlpack([1, 2])
    assert not hasattr(x, "__cuda_array_interface__")


@needs_torch
@pytest.mark.parametrize("device", DEVICES)
def test_dlpack_with_pytorch_is_zero_copy_both_ways(device):
    x = cucnn.zeros(2, 3, device=device)
    tt = torch.from_dlpack(x)
    tt[1, 1] = 4.0  # PyTorch writes, cucnn reads
    assert x.numpy()[1, 1] == 4.0
    x.add_(1.0)  # cucnn writes, PyTorch reads
    assert tt[0, 0].item() == 1.0 and tt[1, 1].item() == 5.0
    src = torch.arange(6, dtype=torch.int64)
    y = cucnn.from_dlpack(src, device=device)
    assert y.dtype == np.int64 and y.device == device
    src[0] = 42
    assert y.numpy()[0] == 42
    z = cucnn.from_dlpack(torch.ones(3, dtype=torch.float64))
    assert z.dtype == np.float64


def test_cuda_array_interface_on_cuda():
    if not cucnn.cuda.is_available():
        pytest.skip("no CUDA device here: __cuda_array_interface__ and CuPy DLPack exchange run "
                    "on a GPU machine")
    import cupy as cp  # pragma: no cover - needs a GPU
    x = cucnn.zeros(3, device="cuda")
    c = cp.asarray(x)  # through __cuda_array_interface__
    c[1] = 2.0
    assert x.numpy()[1] == 2.0
    y = cucnn.from_dlpack(cp.arange(4, dtype=cp.float32))
    assert y.device == "cuda" and y.numpy().tolist() == [0.0, 1.0, 2.0, 3.0]
    d = cp.from_dlpack(y)
    d[0] = 7.0
    assert y.numpy()[0] == 7.0


@pytest.mark.parametrize("device", DEVICES)
def test_residual_add_in_place_gives_the_out_of_place_gradients(device):
    """ResNet's ``out += identity`` after a kernel op (conv on sim): the same values and
    gradients as ``out = out + identity``."""
    import cucnn.functional as F
    x0, w0 = arr(2, 3, 5, 5, dtype=np.float32), arr(3, 3, 3, 3, dtype=np.float32)
    res = []
    for inplace in (False, True):
        x, w = t(x0, device, True), t(w0, device, True)
        out = F.conv2d(x, w, padding=1)
        if inplace:
            out += x
            out.clamp_(min=0.0)
        else:
            out = (out + x).clamp(min=0.0)
        (out * out).sum().backward()
        res.append((out.numpy(), x.grad.numpy(), w.grad.numpy()))
    for a, b in zip(*res):
        np.testing.assert_array_equal(a, b)


@needs_torch
def test_comparisons_match_pytorch():
    a, b = arr(3, 4), arr(1, 4)
    b[0, 2] = a[1, 2]
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        for other_c, other_t in ((t(b), torch.tensor(b)), (0.5, 0.5)):
            got = getattr(t(a), op)(other_c)
            want = getattr(torch.tensor(a), op)(other_t)
            np.testing.assert_array_equal(got.numpy(), want.numpy())
            assert str(want.dtype) == "torch.bool" and got.dtype == np.bool_


@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_engine_functions_check_saved_versions(device):
    # Every Function's saved arrays are version-checked by the engine, the kernels' ops included:
    # modifying a saved activation in place under no_grad makes backward raise, as in PyTorch.
    x = cucnn.tensor(np.array([[1.0, -2.0, 3.0]], np.float32), device=device, requires_grad=True)
    a = x * 2.0
    y = F.relu(a) * a
    with cucnn.no_grad():
        a.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()
