"""The oracle itself, in float64: against hand-computed values, independent implementations
(scipy.special) and finite differences (gradcheck of every Function on the cpu device)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.special

import cucnn
import cucnn.functional as F
from cucnn.ops import activation, cross_entropy, softmax
from cucnn.testing import gradcheck


def t64(a, requires_grad=True):
    return cucnn.tensor(np.asarray(a, np.float64), device="cpu", requires_grad=requires_grad,
                        dtype=np.float64)


def test_softmax_hand_values():
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(softmax.forward_oracle(np, np.array([1.0, 2.0, 3.0]), False),
                               e / e.sum(), rtol=1e-15)
    # The course's overflow example: naive exp(x)/sum(exp(x)) gives NaN here; ours must not.
    big = np.array([1000.0, 1001.0, 1002.0])
    np.testing.assert_allclose(softmax.forward_oracle(np, big, False), e / e.sum(), rtol=1e-13)
    np.testing.assert_allclose(softmax.forward_oracle(np, big, True),
                               np.log(e / e.sum()), rtol=1e-13)
    np.testing.assert_allclose(softmax.forward_oracle(np, np.zeros(3), False), [1 / 3] * 3,
                               rtol=1e-15)


def test_softmax_edge_rows():
    x = np.array([[-np.inf, -np.inf], [-np.inf, 0.0], [np.nan, 1.0], [np.inf, 1.0]])
    y = softmax.forward_oracle(np, x, False)
    assert np.isnan(y[0]).all()                      # all -inf: NaN, as PyTorch
    np.testing.assert_array_equal(y[1], [0.0, 1.0])  # -inf gets probability 0
    assert np.isnan(y[2]).all() and np.isnan(y[3]).all()


@pytest.mark.parametrize("shape", [(4, 7), (3, 1), (2, 3, 5)])
def test_softmax_against_scipy(shape):
    x = np.random.default_rng(0).standard_normal(shape) * 30
    np.testing.assert_allclose(softmax.forward_oracle(np, x, False),
                               scipy.special.softmax(x, axis=-1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(softmax.forward_oracle(np, x, True),
                               scipy.special.log_softmax(x, axis=-1), rtol=1e-12, atol=1e-12)


def test_cross_entropy_against_scipy_and_hand_values():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5)) * 10
    t = np.array([0, 4, 2, 2, 1, 3])
    loss, lse = cross_entropy.forward_oracle(np, x, t, -100)
    np.testing.assert_allclose(lse, scipy.special.logsumexp(x, axis=1), rtol=1e-13)
    np.testing.assert_allclose(loss, -scipy.special.log_softmax(x, axis=1)[np.arange(6), t],
                               rtol=1e-12)
    # uniform logits over C classes: loss log(C)
    loss, _ = cross_entropy.forward_oracle(np, np.zeros((1, 10)), np.array([3]), -100)
    np.testing.assert_allclose(loss, [np.log(10)], rtol=1e-15)
    # backward: softmax - onehot
    g = cross_entropy.backward_oracle(np, x, t, lse, np.ones(6), -100)
    p = scipy.special.softmax(x, axis=1)
    p[np.arange(6), t] -= 1
    np.testing.assert_allclose(g, p, rtol=1e-12, atol=1e-15)


def test_activation_hand_values():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.nan])
    np.testing.assert_array_equal(activation.forward_oracle(np, "relu", x), [0, 0, 0, 3, np.nan])
    np.testing.assert_array_equal(activation.forward_oracle(np, "leaky_relu", x, 0.1),
                                  [-0.2, -0.0, 0.0, 3.0, np.nan])
    np.testing.assert_allclose(activation.forward_oracle(np, "sigmoid", np.array([0.0, 2.0])),
                               [0.5, scipy.special.expit(2.0)], rtol=1e-15)
    np.testing.assert_allclose(activation.forward_oracle(np, "tanh", np.array([0.5])),
                               [np.tanh(0.5)], rtol=1e-15)
    # relu's backward: 0 at 0, passes the gradient where y is NaN (PyTorch)
    y = activation.forward_oracle(np, "relu", x)
    np.testing.assert_array_equal(activation.backward_oracle(np, "relu", np.ones(5), y),
                                  [0, 0, 0, 1, 1])


# ---- finite differences: every Function, in float64 ----------------------------------------------

def _away_from_zero(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.3, x)  # relu/leaky kinks are not differentiable


@pytest.mark.parametrize("fn", [F.relu, lambda x: F.leaky_relu(x, 0.1), F.sigmoid, F.tanh])
def test_gradcheck_activations(fn):
    gradcheck(fn, [t64(_away_from_zero((3, 7), 0))])


@pytest.mark.parametrize("dim", [-1, 0, 1])
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_gradcheck_softmax(fn, dim):
    x = np.random.default_rng(2).standard_normal((4, 6, 3)) * 3
    gradcheck(lambda a: fn(a, dim=dim), [t64(x)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_gradcheck_cross_entropy(reduction):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((7, 5)) * 2
    t = cucnn.tensor(np.array([0, 4, -100, 2, 1, 3, -100]))
    gradcheck(lambda a: F.cross_entropy(a, t, reduction=reduction), [t64(x)])


def test_gradcheck_cross_entropy_spatial():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 3, 5))
    t = cucnn.tensor(rng.integers(0, 4, size=(2, 3, 5)))
    gradcheck(lambda a: F.cross_entropy(a, t), [t64(x)])


def test_cross_entropy_matches_log_softmax_composition():
    rng = np.random.default_rng(5)
    x = t64(rng.standard_normal((8, 6)), requires_grad=False)
    t = cucnn.tensor(rng.integers(0, 6, size=8))
    direct = F.cross_entropy(x, t).item()
    lsm = F.log_softmax(x, dim=1).numpy()
    np.testing.assert_allclose(direct, -lsm[np.arange(8), t.numpy()].mean(), rtol=1e-13)


def test_cross_entropy_mean_with_every_target_ignored_is_nan():
    x = t64(np.zeros((3, 4)))
    t = cucnn.tensor(np.full(3, -100))
    assert np.isnan(F.cross_entropy(x, t).item())
    assert F.cross_entropy(x, t, reduction="sum").item() == 0.0
