"""Losses with PyTorch's semantics: cross-entropy with class weights and label smoothing, NLL,
binary cross-entropy with logits; the in-kernel target check and when it raises. PyTorch is the
reference where installed (the tests that need it skip with a reason where it is not)."""
from __future__ import annotations

import numpy as np
import pytest

import cucnn
import cucnn.functional as F
import cucnn.nn as nn
from cucnn.ops import cross_entropy as ce
from cucnn.testing import gradcheck

try:
    import torch
except ImportError:  # pragma: no cover - CI without the torch extra
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def t64(a, requires_grad=True):
    return cucnn.tensor(np.asarray(a, np.float64), device="cpu", requires_grad=requires_grad,
                        dtype=np.float64)


def _ce_inputs(seed=0, N=9, C=6):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C)) * 3
    t = rng.integers(0, C, size=N)
    t[[2, 5]] = -100
    w = rng.random(C) + 0.2
    return x, t, w


@requires_torch
@pytest.mark.parametrize("device", ["cpu", "sim"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.15, 1.0])
def test_cross_entropy_matches_torch(device, reduction, weighted, smoothing):
    x, t, w = _ce_inputs()
    dt = np.float64 if device == "cpu" else np.float32
    xt = torch.tensor(x.astype(dt), requires_grad=True)
    wt = torch.tensor(w.astype(dt)) if weighted else None
    ref = torch.nn.functional.cross_entropy(xt, torch.tensor(t), weight=wt, reduction=reduction,
                                            label_smoothing=smoothing)
    ref.sum().backward() if reduction == "none" else ref.backward()
    xc = cucnn.tensor(x, device=device, requires_grad=True, dtype=dt)
    wc = cucnn.tensor(w, device=device, dtype=dt) if weighted else None
    got = F.cross_entropy(xc, cucnn.tensor(t, device=device), wc, reduction=reduction,
                          label_smoothing=smoothing)
    (got.sum() if reduction == "none" else got).backward()
    tol = 1e-12 if dt == np.float64 else 2e-5
    np.testing.assert_allclose(got.numpy(), ref.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=tol, atol=tol)


@requires_torch
def test_cross_entropy_spatial_weighted_smoothed_matches_torch():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 3, 4))
    t = rng.integers(0, 5, size=(2, 3, 4))
    t[0, 1, 2] = 1  # also an ignore_index that is a class
    w = rng.random(5) + 0.5
    ref = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(t),
                                            weight=torch.tensor(w), ignore_index=1,
                                            label_smoothing=0.2)
    got = F.cross_entropy(t64(x), cucnn.tensor(t), t64(w, False), ignore_index=1,
                          label_smoothing=0.2)
    np.testing.assert_allclose(got.item(), ref.item(), rtol=1e-12)


def test_weighted_mean_divides_by_the_weights_of_counted_targets():
    """Hand-worked: two rows, uniform logits over 3 classes, targets 0 and 2, weights (2, 9, 0.5):
    loss_i = w_t log 3; mean = (2 + 0.5) log 3 / (2 + 0.5) = log 3; a third ignored row changes
    nothing."""
    x = t64(np.zeros((3, 3)))
    w = t64([2.0, 9.0, 0.5], False)
    got = F.cross_entropy(x, cucnn.tensor([0, 2, -100]), w)
    np.testing.assert_allclose(got.item(), np.log(3), rtol=1e-15)
    s = F.cross_entropy(x, cucnn.tensor([0, 2, -100]), w, reduction="sum")
    np.testing.assert_allclose(s.item(), 2.5 * np.log(3), rtol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_weighted_smoothed_cross_entropy(reduction):
    x, t, w = _ce_inputs(1, 7, 5)
    tt, wt = cucnn.tensor(t), t64(w, False)
    gradcheck(lambda a: F.cross_entropy(a, tt, wt, reduction=reduction, label_smoothing=0.3),
              [t64(x)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_nll_loss(reduction):
    x, t, w = _ce_inputs(2, 8, 4)
    tt, wt = cucnn.tensor(t), t64(w, False)
    gradcheck(lambda a: F.nll_loss(a, tt, wt, reduction=reduction), [t64(x)])


@requires_torch
@pytest.mark.parametrize("device", ["cpu", "sim"])
def test_nll_loss_matches_torch_and_composes_to_cross_entropy(device):
    x, t, w = _ce_inputs(3)
    lsm = F.log_softmax(cucnn.tensor(x, device=device), dim=1)
    for weighted in (False, True):
        wc = cucnn.tensor(w, device=device) if weighted else None
        got = F.nll_loss(lsm, cucnn.tensor(t, device=device), wc)
        ref = torch.nn.functional.nll_loss(torch.log_softmax(torch.tensor(x), 1),
                                           torch.tensor(t),
                                           weight=torch.tensor(w) if weighted else None)
        np.testing.assert_allclose(got.item(), ref.item(), rtol=2e-5)
        direct = F.cross_entropy(cucnn.tensor(x, device=device), cucnn.tensor(t, device=device),
                                 wc)
        np.testing.assert_allclose(got.item(), direct.item(), rtol=2e-5)
    assert nn.NLLLoss()(lsm, cucnn.tensor(t, device=device)).item() == \
        F.nll_loss(lsm, cucnn.tensor(t, device=device)).item()


def _bce_inputs(seed=0, shape=(4, 5)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 4
    x[0, :3] = [80.0, -80.0, 1e4]  # large logits: no overflow
    y = rng.random(shape)
    y[1] = rng.integers(0, 2, shape[1])
    return x, y, rng.random(shape) + 0.1, rng.random(shape[-1:]) * 3


@requires_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_weights", [False, True])
def test_bce_with_logits_matches_torch(reduction, with_weights):
    x, y, w, pw = _bce_inputs()
    xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    kw = dict(weight=torch.tensor(w), pos_weight=torch.tensor(pw)) if with_weights else {}
    ref = torch.nn.functional.binary_cross_entropy_with_logits(xt, yt, reduction=reduction, **kw)
    ref.sum().backward()
    xc, yc = t64(x), t64(y)
    kc = dict(weight=t64(w, False), pos_weight=t64(pw, False)) if with_weights else {}
    got = F.binary_cross_entropy_with_logits(xc, yc, reduction=reduction, **kc)
    got.sum().backward()
    np.testing.assert_allclose(got.numpy(), ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(xc.grad.numpy(), xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(yc.grad.numpy(), yt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_bce_with_logits_hand_values_and_large_logits():
    # x = 0: log 2 whatever the target; x = +-1e4 with the matching label: 0; mismatched: 1e4.
    got = F.binary_cross_entropy_with_logits(t64([0.0, 1e4, -1e4, 1e4], False),
                                             t64([0.3, 1.0, 0.0, 0.0], False), reduction="none")
    np.testing.assert_allclose(got.numpy(), [np.log(2), 0.0, 0.0, 1e4], rtol=1e-15, atol=0)
    f32 = F.binary_cross_entropy_with_logits(cucnn.tensor([1e4, -1e4], device="sim"),
                                             cucnn.tensor([0.0, 1.0], device="sim"))
    assert np.isfinite(f32.item()) and f32.item() == pytest.approx(1e4)


def test_gradcheck_bce_with_logits():
    x, y, w, pw = _bce_inputs(1, (3, 4))
    x[0, :3] = [2.0, -1.5, 3.0]
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, t64(w, False),
                                                              pos_weight=t64(pw, False)),
              [t64(x), t64(y)])


def test_loss_modules_match_functional():
    x, t, w = _ce_inputs(5)
    xc, tc, wc = t64(x, False), cucnn.tensor(t), t64(w, False)
    assert nn.CrossEntropyLoss(wc, label_smoothing=0.1)(xc, tc).item() == \
        F.cross_entropy(xc, tc, wc, label_smoothing=0.1).item()
    assert nn.CrossEntropyLoss("sum")(xc, tc).item() == \
        F.cross_entropy(xc, tc, reduction="sum").item()  # the older positional reduction
    y = t64(np.random.default_rng(0).random(x.shape), False)
    assert nn.BCEWithLogitsLoss(reduction="sum")(xc, y).item() == \
        F.binary_cross_entropy_with_logits(xc, y, reduction="sum").item()


def test_loss_argument_errors():
    x, t = cucnn.tensor(np.zeros((4, 3))), cucnn.tensor([0, 1, 2, 0])  # float32
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\) \(one per class\), got "
                                         r"\(4,\)"):
        F.cross_entropy(x, t, cucnn.tensor(np.ones(4)))
    with pytest.raises(TypeError, match="weight must be a floating-point"):
        F.cross_entropy(x, t, cucnn.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"label_smoothing must be a float in \[0, 1\], got 1.5"):
        F.cross_entropy(x, t, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction must be .* got 'avg'"):
        F.nll_loss(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"target size \(4, 2\) must be the same as input size "
                                         r"\(4, 3\)"):
        F.binary_cross_entropy_with_logits(x, cucnn.tensor(np.zeros((4, 2))))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=cucnn.tensor(np.ones(2)))
    with pytest.raises(TypeError, match="target must be floating point"):
        F.binary_cross_entropy_with_logits(x, t)


# ---- the target check: on the device, raised on the host when read -------------------------------


@pytest.mark.parametrize("device", ["cpu", "sim"])
@pytest.mark.parametrize("fn", [F.cross_entropy, F.nll_loss])
def test_bad_target_raises_at_once_on_host_devices(device, fn):
    x = cucnn.tensor(np.zeros((5, 3)), device=device)
    for targets, row, v in (([0, 1, 3, 7, 0], 2, 3), ([0, -1, 2, -100, -5], 1, -1)):
        with pytest.raises(IndexError, match=rf"target\[{row}\] = {v} is out of range for 3 "
                                             r"classes"):
            fn(x, cucnn.tensor(targets, device=device))
    # the error is also a ValueError (what cucnn raised before it matched PyTorch's IndexError)
    with pytest.raises(ValueError):
        fn(x, cucnn.tensor([0, 0, 0, 0, 3], device=device))
    # spatial targets: the index is into the flattened target
    with pytest.raises(IndexError, match=r"target\[5\] = 4"):
        fn(cucnn.tensor(np.zeros((2, 3, 2, 2)), device=device),
           cucnn.tensor([[[0, 1], [2, 0]], [[1, 4], [0, 0]]], device=device))


def test_cuda_defers_the_check_until_check_targets(monkeypatch):
    """The cuda path keeps the status array (a device array there) and reads it only at
    check_targets(), or at once under CUCNN_LAUNCH_BLOCKING=1. Exercised here with host arrays by
    reporting as the cuda device would."""
    monkeypatch.setattr(ce, "_pending", [])
    monkeypatch.delenv("CUCNN_LAUNCH_BLOCKING", raising=False)
    _, _, _, status = ce.forward_full("sim", np.zeros((3, 4), np.float32), np.array([0, 9, 1]),
                                      -100)
    ok_status = np.full(1, ce.STATUS_NONE, dtype=np.int64)
    ce._report("cuda", ok_status, np.array([0, 1, 2]), 4, -100, "cross_entropy")
    ce._report("cuda", status, np.array([0, 9, 1]), 4, -100, "cross_entropy")
    assert len(ce._pending) == 2  # nothing raised yet: no host round trip
    with pytest.raises(IndexError, match=r"cross_entropy: target\[1\] = 9 is out of range"):
        ce.check_targets()
    assert not ce._pending
    ce.check_targets()  # nothing left
    monkeypatch.setenv("CUCNN_LAUNCH_BLOCKING", "1")
    with pytest.raises(IndexError, match=r"target\[1\] = 9"):
        ce._report("cuda", status, np.array([0, 9, 1]), 4, -100, "cross_entropy")


def test_pending_checks_are_bounded(monkeypatch):
    monkeypatch.setattr(ce, "_pending", [])
    monkeypatch.setattr(ce, "MAX_PENDING", 3)
    monkeypatch.delenv("CUCNN_LAUNCH_BLOCKING", raising=False)
    ok = np.full(1, ce.STATUS_NONE, dtype=np.int64)
    for _ in range(2):
        ce._report("cuda", ok, np.zeros(2, np.int64), 4, -100, "cross_entropy")
    assert len(ce._pending) == 2
    ce._report("cuda", ok, np.zeros(2, np.int64), 4, -100, "cross_entropy")
    assert ce._pending == []  # drained at the bound


def test_forward_reads_nothing_back_on_the_mean_path():
    """The mean's divisor is a device reduction of wt (sum of target weights), not a host count:
    the forward's result is computed from arrays only (checked here by the arrays it returns)."""
    x = np.zeros((4, 3), np.float32)
    loss, lse, wt, status = ce.forward_full("sim", x, np.array([0, -100, 2, 1]), -100,
                                            np.array([1.0, 2.0, 4.0], np.float32))
    np.testing.assert_array_equal(wt, [1.0, 0.0, 4.0, 2.0])
    assert isinstance(status, np.ndarray) and status.shape == (1,) and status[0] == ce.STATUS_NONE
