"""The MobileNet-v2-style model: its parameter count worked out here layer by layer, shapes on
28x28 and 32x32 inputs, the residual connections, cpu/sim agreement, gradients reaching every
parameter, and the CLI/zoo entry."""
from __future__ import annotations

import numpy as np

import cucnn
import cucnn.functional as F
from cucnn import models


def _conv(cin, cout, k):
    return cin * cout * k * k + cout  # weight + bias


def _dw(c):
    return c * 3 * 3 + c  # one 3x3 filter and a bias per channel


def _expected_params(num_classes=10, in_channels=1, last=256):
    total, c = _conv(in_channels, 16, 3), 16
    for t, out, n, _ in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2)):
        for _ in range(n):
            hidden = c * t
            total += (_conv(c, hidden, 1) if t != 1 else 0) + _dw(hidden) + _conv(hidden, out, 1)
            c = out
    return total + _conv(c, last, 1) + last * num_classes + num_classes


def test_parameter_count_matches_the_worked_count():
    m = models.create("mobilenet_v2")
    assert _expected_params() == 131_402
    assert sum(p.data.size for p in m.parameters()) == 131_402
    m3 = models.MobileNetV2Small(num_classes=100, in_channels=3)
    assert sum(p.data.size for p in m3.parameters()) == _expected_params(100, 3)


def test_depthwise_layers_and_residuals():
    m = models.create("mobilenet_v2")
    blocks = [b for b in m.features if isinstance(b, models.InvertedResidual)]
    assert [b.residual for b in blocks] == [True, False, True, False, True, False, True]
    dws = [mod for b in blocks for mod in b.conv if getattr(mod, "weight", None) is not None
           and mod.weight.shape[1] == 1 and mod.weight.shape[2:] == (3, 3)]
    assert len(dws) == 7


def test_forward_shapes_and_cpu_sim_agree():
    rng = np.random.default_rng(0)
    cucnn.manual_seed(0)
    m = models.create("mobilenet_v2")
    x = rng.standard_normal((2, 1, 28, 28)).astype(np.float32)
    y_cpu = m(cucnn.tensor(x)).numpy()
    assert y_cpu.shape == (2, 10)
    y_sim = m.to("sim")(cucnn.tensor(x, device="sim")).numpy()
    np.testing.assert_allclose(y_sim, y_cpu, rtol=1e-4, atol=1e-5)
    m32 = models.MobileNetV2Small(in_channels=3)
    assert m32(cucnn.tensor(rng.standard_normal((1, 3, 32, 32)))).shape == (1, 10)


def test_gradients_reach_every_parameter_and_a_step_lowers_the_loss():
    cucnn.manual_seed(1)
    rng = np.random.default_rng(1)
    m = models.create("mobilenet_v2")
    x = cucnn.tensor(rng.standard_normal((8, 1, 28, 28)))
    t = cucnn.tensor(rng.integers(0, 10, 8))
    opt = cucnn.optim.Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(4):
        opt.zero_grad()
        loss = F.cross_entropy(m(x), t)
        loss.backward()
        if not losses:
            assert all(p.grad is not None and np.abs(p.grad.numpy()).sum() > 0
                       for p in m.parameters())
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_zoo_and_cli_entry(capsys):
    assert models.MODELS["mobilenet_v2"].input_shape == (1, 28, 28)
    assert isinstance(models.mobilenet_v2(), models.MobileNetV2Small)
    from cucnn import cli
    assert cli.main(["summary", "--model", "mobilenet_v2"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 131,402" in out and "(None, 10)" in out
