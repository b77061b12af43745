"""BatchNorm2d: the oracle's gradients, PyTorch's semantics (running statistics, momentum None,
eval, affine, track_running_stats), Module buffers and state dicts, conv+BN fusion, and the
argument errors. The kernels against the oracle in three SIMT orders are in test_kernels.py
(registry op "batchnorm", versions 0 and 1)."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.checkpoint  # noqa: F401  (cucnn.checkpoint.save)
import cucnn.functional as F
import cucnn.nn as nn
from cucnn import _backend
from cucnn.ops import batchnorm as bn_op
from cucnn.testing import assert_close, gradcheck

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")

DEVICES = ["cpu", "sim"]


def _x(shape, seed=0, scale=2.0, offset=0.5):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + offset).astype(np.float32)


# ---- the oracle's gradients -----------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_gradcheck_batch_norm(training, affine):
    rng = np.random.default_rng(1)
    x = cucnn.tensor(rng.standard_normal((3, 2, 4, 5)) * 2 + 1, dtype=np.float64,
                     requires_grad=True)
    w = cucnn.tensor(rng.standard_normal(2), dtype=np.float64, requires_grad=True)
    b = cucnn.tensor(rng.standard_normal(2), dtype=np.float64, requires_grad=True)
    rm = cucnn.tensor(rng.standard_normal(2), dtype=np.float64)
    rv = cucnn.tensor(rng.uniform(0.5, 2, 2), dtype=np.float64)
    if affine:
        gradcheck(lambda a, g, h: F.batch_norm(a, None if training else rm,
                                               None if training else rv, g, h, training),
                  [x, w, b])
    else:
        gradcheck(lambda a: F.batch_norm(a, None if training else rm, None if training else rv,
                                         None, None, training), [x])


def test_oracle_matches_a_hand_computed_case():
    # one channel, values 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased 5/3
    x = np.array([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    rm, rv = np.zeros(1), np.ones(1)
    y, mean, invstd = bn_op.train_forward_oracle(np, x, None, None, rm, rv, 0.0, 0.5)
    np.testing.assert_allclose(mean, [2.5])
    np.testing.assert_allclose(invstd, [1 / np.sqrt(1.25)])
    np.testing.assert_allclose(y.ravel(), (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25))
    np.testing.assert_allclose(rm, [1.25])                  # 0.5 * 0 + 0.5 * 2.5
    np.testing.assert_allclose(rv, [0.5 + 0.5 * 5 / 3])     # the unbiased variance


# ---- the module ------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_running_statistics_and_cumulative_average(device):
    m = nn.BatchNorm2d(3, momentum=None).to(device)
    batches = [_x((4, 3, 5, 6), seed=s, offset=s) for s in range(3)]
    for xb in batches:
        m(cucnn.tensor(xb, device=device))
    assert int(m.num_batches_tracked.item()) == 3
    # momentum=None: the running statistics are the plain mean of the batch statistics
    means = np.mean([b.mean(axis=(0, 2, 3)) for b in batches], axis=0)
    uvars = np.mean([b.var(axis=(0, 2, 3), ddof=1) for b in batches], axis=0)
    assert_close(m.running_mean.numpy(), means, rtol=1e-5)
    assert_close(m.running_var.numpy(), uvars, rtol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_eval_uses_running_statistics_and_does_not_move_them(device):
    m = nn.BatchNorm2d(2).to(device)
    m.running_mean.data[...] = np.array([1.0, -2.0], np.float32)
    m.running_var.data[...] = np.array([4.0, 0.25], np.float32)
    m.weight.data[...] = np.array([2.0, 1.0], np.float32)
    m.eval()
    x = _x((2, 2, 3, 3))
    y = m(cucnn.tensor(x, device=device)).numpy()
    ref = (x - np.array([1, -2]).reshape(1, 2, 1, 1)) / np.sqrt(
        np.array([4, 0.25]).reshape(1, 2, 1, 1) + 1e-5) * np.array([2, 1]).reshape(1, 2, 1, 1)
    assert_close(y, ref, rtol=1e-5)
    np.testing.assert_array_equal(m.running_mean.numpy(), [1.0, -2.0])
    assert int(m.num_batches_tracked.item()) == 0


@pytest.mark.parametrize("device", DEVICES)
def test_no_running_stats_uses_batch_statistics_in_eval(device):
    m = nn.BatchNorm2d(3, affine=False, track_running_stats=False).to(device)
    assert list(m.parameters()) == [] and list(m.buffers()) == []
    assert m.state_dict() == {}
    m.eval()
    y = m(cucnn.tensor(_x((4, 3, 5, 5)), device=device)).numpy()
    assert_close(y.mean(axis=(0, 2, 3)), np.zeros(3), atol=1e-5)
    assert_close(y.var(axis=(0, 2, 3)), np.ones(3), rtol=1e-3)


@requires_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("momentum,affine", [(0.1, True), (None, True), (0.3, False)])
def test_against_pytorch_over_training_steps_then_eval(device, momentum, affine):
    C = 5
    ours = nn.BatchNorm2d(C, momentum=momentum, affine=affine).to(device)
    ref = torch.nn.BatchNorm2d(C, momentum=momentum, affine=affine).double()
    rng = np.random.default_rng(7)
    if affine:
        w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
        ours.load_state_dict({**ours.state_dict(), "weight": w, "bias": b})
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(w))
            ref.bias.copy_(torch.from_numpy(b))
    for step in range(3):
        x = _x((6, C, 7, 3), seed=step, offset=step - 1.0)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        yt = ref(xt)
        yt.backward(torch.from_numpy(dy).double())
        xo = cucnn.tensor(x, device=device, requires_grad=True)
        ours.zero_grad()
        y = ours(xo)
        y.backward(cucnn.tensor(dy, device=device))
        assert_close(y.numpy(), yt.detach().numpy(), rtol=1e-4, name="y")
        assert_close(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, name="dx")
        if affine:
            assert_close(ours.weight.grad.numpy(), ref.weight.grad.numpy(), rtol=1e-4)
            assert_close(ours.bias.grad.numpy(), ref.bias.grad.numpy(), rtol=1e-4)
            ref.weight.grad = None
            ref.bias.grad = None
        assert_close(ours.running_mean.numpy(), ref.running_mean.numpy(), rtol=1e-5)
        assert_close(ours.running_var.numpy(), ref.running_var.numpy(), rtol=1e-5)
    assert int(ours.num_batches_tracked.item()) == int(ref.num_batches_tracked) == 3
    ours.eval()
    ref.eval()
    x = _x((2, C, 4, 4), seed=9)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = ref(xt)
    dy = rng.standard_normal(x.shape)
    yt.backward(torch.from_numpy(dy))
    xo = cucnn.tensor(x, device=device, requires_grad=True)
    y = ours(xo)
    y.backward(cucnn.tensor(dy.astype(np.float32), device=device))
    assert_close(y.numpy(), yt.detach().numpy(), rtol=1e-4, name="eval y")
    assert_close(xo.grad.numpy(), xt.grad.numpy(), rtol=1e-4, name="eval dx")


@requires_torch
def test_state_dict_names_and_dtypes_match_pytorch():
    ours, ref = nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4)
    sd, rsd = ours.state_dict(), ref.state_dict()
    assert list(sd) == list(rsd)
    for k in sd:
        assert sd[k].shape == tuple(rsd[k].shape), k
        assert sd[k].dtype == rsd[k].numpy().dtype, k
    # and a PyTorch state dict loads
    ref.running_mean.fill_(0.5)
    ref.num_batches_tracked.fill_(7)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    np.testing.assert_array_equal(ours.running_mean.numpy(), np.full(4, 0.5, np.float32))
    assert ours.num_batches_tracked.numpy().dtype == np.int64
    assert int(ours.num_batches_tracked.item()) == 7


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch_in_training_passes_through(device):
    """As PyTorch: an empty batch gives an empty output and leaves the running statistics (the
    batch counter still counts it); backward gives empty dx and zero parameter gradients."""
    m = nn.BatchNorm2d(3).to(device)
    x = cucnn.tensor(np.zeros((0, 3, 4, 4), np.float32), device=device, requires_grad=True)
    y = m(x)
    assert y.shape == (0, 3, 4, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 3, 4, 4)
    np.testing.assert_array_equal(m.weight.grad.numpy(), np.zeros(3))
    np.testing.assert_array_equal(m.running_mean.numpy(), np.zeros(3))
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(3))
    assert int(m.num_batches_tracked.item()) == 1


def test_buffers_move_with_the_module_and_stay_out_of_parameters():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    names = [n for n, _ in model.named_buffers()]
    assert names == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert len(list(model.parameters())) == 4  # conv weight, bias, bn weight, bias
    model.to("sim")
    assert all(b.device == "sim" for b in model.buffers())
    assert model[1].num_batches_tracked.dtype == np.int64
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias",
                                        "1.running_mean", "1.running_var",
                                        "1.num_batches_tracked"]


def test_register_buffer_contract():
    m = nn.Module()
    m.register_buffer("a", cucnn.tensor([1.0, 2.0]))
    m.register_buffer("tmp", cucnn.tensor([3.0]), persistent=False)
    m.register_buffer("absent", None)
    assert [n for n, _ in m.named_buffers()] == ["a", "tmp"]
    assert list(m.state_dict()) == ["a"]
    m.a = cucnn.tensor([5.0, 6.0])  # assignment to a buffer name replaces the buffer
    np.testing.assert_array_equal(m.state_dict()["a"], [5.0, 6.0])
    with pytest.raises(TypeError, match="buffer 'a'"):
        m.a = np.zeros(2)
    with pytest.raises(TypeError, match="Tensor or None"):
        m.register_buffer("b", np.zeros(2))
    with pytest.raises(KeyError, match="'.'"):
        m.register_buffer("x.y", cucnn.tensor([1.0]))
    m.w = nn.Parameter(np.zeros(1, np.float32))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("w", cucnn.tensor([1.0]))
    with pytest.raises(RuntimeError, match="size mismatch for a"):
        m.load_state_dict({"a": np.zeros(3, np.float32), "w": np.zeros(1, np.float32)})
    with pytest.raises(RuntimeError, match="Missing key"):
        m.load_state_dict({"w": np.zeros(1, np.float32)})


def test_checkpoint_round_trip_keeps_buffers(tmp_path):
    m = nn.BatchNorm2d(3)
    m(cucnn.tensor(_x((4, 3, 2, 2))))
    cucnn.checkpoint.save(tmp_path / "c.npz", m)
    m2 = nn.BatchNorm2d(3)
    m2.load_state_dict(cucnn.checkpoint.load(tmp_path / "c.npz")["model"])
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)
        assert m2.state_dict()[k].dtype == v.dtype


# ---- fusion ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("conv_bias,affine", [(True, True), (False, True), (False, False)])
def test_fuse_conv_bn_matches_the_unfused_eval_output(device, conv_bias, affine):
    cucnn.manual_seed(3)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1, bias=conv_bias).to(device)
    bn = nn.BatchNorm2d(5, affine=affine).to(device)
    rng = np.random.default_rng(4)
    for _ in range(2):  # real running statistics
        bn(conv(cucnn.tensor(_x((4, 3, 9, 9), seed=_), device=device)))
    if affine:
        bn.weight.data[...] = rng.standard_normal(5).astype(np.float32)
        bn.bias.data[...] = rng.standard_normal(5).astype(np.float32)
    conv.eval()
    bn.eval()
    fused = nn.utils.fuse_conv_bn(conv, bn)
    assert fused is not conv and fused.bias is not None
    x = cucnn.tensor(_x((2, 3, 9, 9), seed=5), device=device)
    with cucnn.no_grad():
        ref, got = bn(conv(x)).numpy(), fused(x).numpy()
    assert_close(got, ref, rtol=1e-5, reduce_len=27)
    # the originals are untouched
    assert (conv.bias is None) == (not conv_bias)


def test_fuse_conv_bn_errors():
    conv, bn = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)
    with pytest.raises(ValueError, match="eval"):
        nn.utils.fuse_conv_bn(conv, bn)
    conv.eval()
    bn.eval()
    with pytest.raises(ValueError, match="5 features"):
        nn.utils.fuse_conv_bn(conv, nn.BatchNorm2d(5).eval())
    with pytest.raises(ValueError, match="running statistics"):
        nn.utils.fuse_conv_bn(conv, nn.BatchNorm2d(4, track_running_stats=False).eval())
    with pytest.raises(TypeError, match="Conv2d"):
        nn.utils.fuse_conv_bn(bn, bn)
    with pytest.raises(TypeError, match="BatchNorm2d"):
        nn.utils.fuse_conv_bn(conv, conv)


# ---- errors ---------------------------------------------------------------------------------------


def test_module_and_functional_errors():
    m = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input\)"):
        m(cucnn.tensor(np.zeros((4, 3), np.float32)))
    for bad in (-0.1, 1.5, "0.1", True):
        with pytest.raises(ValueError, match="momentum"):
            nn.BatchNorm2d(3, momentum=bad)
        with pytest.raises(ValueError, match="momentum"):
            F.batch_norm(cucnn.tensor(_x((2, 3, 2, 2))), None, None, training=True,
                         momentum=bad)
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match="num_features"):
            nn.BatchNorm2d(bad)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm2d(3, eps=-1e-5)
    with pytest.raises(ValueError, match="should contain 3 elements"):
        F.batch_norm(cucnn.tensor(_x((2, 3, 2, 2))), cucnn.tensor(np.zeros(4)),
                     cucnn.tensor(np.ones(4)))
    with pytest.raises(ValueError, match="should contain 5 elements"):
        nn.BatchNorm2d(4)(cucnn.tensor(_x((2, 5, 2, 2))))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm2d(3)(cucnn.tensor(_x((1, 3, 1, 1))))
    with pytest.raises(ValueError, match="eval mode"):
        F.batch_norm(cucnn.tensor(_x((2, 3, 2, 2))), None, None, training=False)
    with pytest.raises(ValueError, match="both"):
        F.batch_norm(cucnn.tensor(_x((2, 3, 2, 2))), cucnn.tensor(np.zeros(3)), None,
                     training=True)
    with pytest.raises(TypeError, match="floating"):
        F.batch_norm(cucnn.tensor(np.zeros((2, 3, 2, 2), np.int64)), None, None, training=True)
    with pytest.raises(TypeError, match="Tensor or None"):
        F.batch_norm(cucnn.tensor(_x((2, 3, 2, 2))), None, None, np.ones(3), training=True)


@requires_torch
def test_error_types_are_pytorchs():
    """The errors PyTorch raises with ValueError raise ValueError here too."""
    with pytest.raises(ValueError):
        torch.nn.BatchNorm2d(3)(torch.zeros(4, 3))
    with pytest.raises(ValueError):
        torch.nn.BatchNorm2d(3)(torch.zeros(1, 3, 1, 1))
    with pytest.raises(ValueError):
        nn.BatchNorm2d(3)(cucnn.tensor(np.zeros((4, 3), np.float32)))
    with pytest.raises(ValueError):
        nn.BatchNorm2d(3)(cucnn.tensor(np.zeros((1, 3, 1, 1), np.float32)))


def test_binding_checks_arguments_before_any_launch():
    mod = _backend.sim_module()
    x = np.zeros((2, 3, 4, 4), np.float32)
    y = np.zeros_like(x)
    c = lambda: np.zeros(3, np.float32)  # noqa: E731
    ws = np.zeros(mod.batchnorm_workspace(x.shape), np.float32)
    with pytest.raises(TypeError, match="x must be float32"):
        mod.batchnorm_forward_train(x.astype(np.float64), y, c(), c(), None, None, None, None, ws,
                                    1e-5, 0.1)
    with pytest.raises(ValueError, match="mean must have shape \\(3,\\)"):
        mod.batchnorm_forward_train(x, y, np.zeros(4, np.float32), c(), None, None, None, None,
                                    ws, 1e-5, 0.1)
    with pytest.raises(ValueError, match="workspace must hold"):
        mod.batchnorm_forward_train(x, y, c(), c(), None, None, None, None,
                                    np.zeros(1, np.float32), 1e-5, 0.1)
    with pytest.raises(ValueError, match="factor"):
        mod.batchnorm_forward_train(x, y, c(), c(), None, None, None, None, ws, 1e-5, 1.5)
    with pytest.raises(ValueError, match="eps"):
        mod.batchnorm_forward_eval(x, y, c(), c(), c(), None, None, -1.0)
    with pytest.raises(ValueError, match="both given or both None"):
        mod.batchnorm_forward_train(x, y, c(), c(), c(), None, None, None, ws, 1e-5, 0.1)
    with pytest.raises(ValueError, match="more than 1 value"):
        one = np.zeros((1, 3, 1, 1), np.float32)
        mod.batchnorm_forward_train(one, one.copy(), c(), c(), None, None, None, None, ws, 1e-5,
                                    0.1)
    with pytest.raises(ValueError, match="x must be 4-D"):
        mod.batchnorm_forward_eval(x[0], y[0], c(), c(), c(), None, None, 1e-5)
    with pytest.raises(ValueError, match="dy must have shape"):
        mod.batchnorm_backward(y[:1], x, c(), c(), None, y, c(), c(), ws, True)
    with pytest.raises(ValueError, match="version"):
        mod.batchnorm_backward(y, x, c(), c(), None, y, c(), c(), ws, True, 2)


def test_split_reduction_is_used_and_agrees_with_one_chunk():
    """Few channels and many values: the forward splits each channel into several chunks; the
    merged statistics agree with version 0 (one thread, double sums) to float rounding."""
    mod = _backend.sim_module()
    x = _x((16, 2, 24, 25), seed=11, offset=50.0)
    assert mod.batchnorm_workspace(x.shape) > 2 * 2  # more than one chunk per channel
    outs = {}
    for v in (0, 1):
        outs[v] = bn_op.train_forward("sim", x, None, None, None, None, 1e-5, 0.1, version=v)
    assert_close(outs[1][1], outs[0][1], rtol=1e-6, name="mean")
    assert_close(outs[1][2], outs[0][2], rtol=1e-5, name="invstd")
