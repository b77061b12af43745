"""nn: modules, parameter counts, initialisation, state_dict, summary, dropout, losses."""
import numpy as np
import pytest

import cucnn
import cucnn.functional as F
from cucnn import models, nn
from cucnn.testing import assert_close

# (model, input shape, parameter count computed by hand from the layer sizes)
COUNTS = [
    ("lenet5", (1, 28, 28), (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84)
     + (84 * 10 + 10)),
    ("mnist_cnn", (1, 28, 28), (16 * 9 + 16) + (16 * 16 * 9 + 16) + (400 * 32 + 32) + (32 * 10 + 10)),
    ("allconv", (1, 28, 28), (32 * 49 + 32) + (64 * 32 * 49 + 64) + (128 * 64 * 49 + 128)
     + (256 * 128 * 49 + 256) + (4096 * 10 + 10)),
    ("allconv_strided", (1, 28, 28), (32 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 64 * 9 + 128)
     + (256 * 128 * 9 + 256) + (4096 * 10 + 10)),
    ("fully_conv", (1, 28, 28), (32 * 9 + 32) + (64 * 32 * 9 + 64) + (128 * 64 * 9 + 128)
     + (256 * 128 * 9 + 256) + (512 * 256 * 49 + 512) + (10 * 512 + 10)),
    ("mlp", (1, 28, 28), (784 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10)),
    ("xo", (1, 9, 9), 3 * 9 + 48 * 2 + 2),
    ("cifar10", (3, 32, 32), sum(k * c * 9 + k for c, k in zip((3, 32, 64, 128, 256, 512),
                                                               (32, 64, 128, 256, 512, 1024)))
     + (16384 * 512 + 512) + (512 * 10 + 10)),
    ("go_policy", (48, 19, 19), (192 * 48 * 25 + 192) + 11 * (192 * 192 * 9 + 192) + 192 + 361),
]


@pytest.mark.parametrize("name,shape,count", COUNTS, ids=[c[0] for c in COUNTS])
def test_parameter_counts_and_output_shapes(name, shape, count):
    m = models.create(name)
    assert sum(p.numel() for p in m.parameters()) == count
    with cucnn.no_grad():
        y = m(cucnn.tensor(np.zeros((2,) + shape)))
    assert y.shape == ((2, 361) if name == "go_policy" else (2, 10) if name != "xo" else (2, 2))


def test_vgg16_parameter_count():
    # The published count of VGG-16 (configuration D, 1000 classes).
    assert sum(p.numel() for p in models.create("vgg16").parameters()) == 138_357_544


def test_fully_conv_gives_a_score_map_on_larger_inputs():
    m = models.create("fully_conv")
    with cucnn.no_grad():
        y = m(cucnn.tensor(np.zeros((1, 1, 36, 44))))
    # 36 -> 18 -> 9 -> 7x7 conv -> 3; 44 -> 22 -> 11 -> 5
    assert y.shape == (1, 10, 3, 5)


def test_default_init_is_pytorch_bound_and_reproducible():
    cucnn.manual_seed(3)
    a = nn.Conv2d(6, 16, 5)
    cucnn.manual_seed(3)
    b = nn.Conv2d(6, 16, 5)
    assert np.array_equal(a.weight.numpy(), b.weight.numpy())
    bound = 1 / np.sqrt(6 * 25)  # kaiming_uniform(a=sqrt(5)) and the bias rule
    w = a.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound  # 2,400 draws fill it
    assert abs(w.std() - bound / np.sqrt(3)) < 0.05 * bound  # the std of U(-b, b)
    assert np.abs(a.bias.numpy()).max() <= bound
    lin = nn.Linear(400, 120)
    assert np.abs(lin.weight.numpy()).max() <= 1 / 20 and lin.bias.shape == (120,)


def test_named_parameters_children_and_modes():
    m = models.LeNet5()
    names = [n for n, _ in m.named_parameters()]
    assert names[:4] == ["0.weight", "0.bias", "3.weight", "3.bias"] and len(names) == 10
    assert len(list(m.children())) == 12
    m.eval()
    assert not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())
    assert nn.Conv2d(1, 2, 3, bias=False).bias is None
    assert [n for n, _ in nn.Conv2d(1, 2, 3, bias=False).named_parameters()] == ["weight"]


def test_zero_grad_and_to_device():
    m = models.XONet()
    x = cucnn.tensor(np.ones((2, 1, 9, 9)))
    F.cross_entropy(m(x), cucnn.tensor([0, 1])).backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    if cucnn.sim.is_available():
        m.to("sim")
        assert m.device == "sim" and all(p.device == "sim" for p in m.parameters())
        y = m(cucnn.tensor(np.ones((2, 1, 9, 9)), device="sim"))
        assert y.device == "sim"


def test_state_dict_round_trip_and_strict_errors():
    cucnn.manual_seed(0)
    a = models.LeNet5()
    cucnn.manual_seed(1)
    b = models.LeNet5()
    x = cucnn.tensor(np.random.default_rng(0).random((3, 1, 28, 28)))
    assert not np.allclose(a(x).numpy(), b(x).numpy())
    sd = a.state_dict()
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    assert np.array_equal(a(x).numpy(), b(x).numpy())
    sd["0.weight"][:] = 0  # a copy: the model is untouched
    assert not np.all(a[0].weight.numpy() == 0)

    bad = dict(a.state_dict())
    del bad["0.bias"]
    bad["extra.weight"] = np.zeros(3)
    with pytest.raises(RuntimeError, match=r"Missing key\(s\).*'0.bias'(.|\n)*Unexpected key"):
        b.load_state_dict(bad)
    res = b.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["0.bias"] and res.unexpected_keys == ["extra.weight"]
    wrong = dict(a.state_dict())
    wrong["0.weight"] = np.zeros((6, 1, 3, 3), dtype=np.float32)
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        b.load_state_dict(wrong)


def test_summary_table():
    text = models.LeNet5().summary((1, 28, 28), print_fn=None)
    lines = text.splitlines()
    assert lines[0] == 'Model: "LeNet5"'
    rows = [ln for ln in lines[1:] if "(" in ln and ")" in ln and "Layer" not in ln]
    assert len(rows) == 12
    assert "0 (Conv2d)" in rows[0] and "(None, 6, 28, 28)" in rows[0] and rows[0].endswith("156")
    assert "5 (MaxPool2d)" in rows[5] and "(None, 16, 5, 5)" in rows[5]
    assert "11 (Linear)" in rows[11] and rows[11].endswith("850")
    assert "Total params: 61,706" in text and "Trainable params: 61,706" in text
    assert "Non-trainable params: 0" in text
    printed = []
    models.XONet().summary((1, 9, 9), print_fn=printed.append)
    assert printed and "(None, 3, 4, 4)" in printed[0]  # 7x7 -> 4x4 with the overhanging window


def test_dropout_train_and_eval():
    x = cucnn.tensor(np.ones((200, 50)), requires_grad=True)
    cucnn.manual_seed(0)
    y = F.dropout(x, 0.2, training=True)
    v = y.numpy()
    assert set(np.unique(v)) <= {0.0, np.float32(1 / 0.8)}
    assert abs((v == 0).mean() - 0.2) < 0.02
    y.sum().backward()
    assert np.array_equal(x.grad.numpy(), v)  # gradient through the same scaled mask
    assert F.dropout(x, 0.2, training=False) is x
    layer = nn.Dropout(0.5)
    layer.eval()
    assert layer(x) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)
    with pytest.raises(ValueError, match="Dropout: p must be"):
        nn.Dropout(-0.1)


def test_mse_loss_and_its_gradient():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    ta = cucnn.tensor(a, requires_grad=True)
    loss = nn.MSELoss()(ta, cucnn.tensor(b))
    assert_close(loss.item(), ((a - b) ** 2).mean(), rtol=1e-6)
    loss.backward()
    assert_close(ta.grad.numpy(), 2 * (a - b) / a.size, rtol=1e-6)
    assert F.mse_loss(ta, cucnn.tensor(b), reduction="none").shape == (4, 3)
    with pytest.raises(ValueError, match=r"expected target of shape \(4, 3\)"):
        F.mse_loss(ta, cucnn.tensor(b[:2]))
    with pytest.raises(ValueError, match="reduction must be"):
        F.mse_loss(ta, cucnn.tensor(b), reduction="avg")


def test_cross_entropy_loss_module_matches_functional():
    x = cucnn.tensor(np.random.default_rng(1).standard_normal((5, 4)))
    t = cucnn.tensor([0, 3, 1, 1, 2])
    assert nn.CrossEntropyLoss()(x, t).item() == F.cross_entropy(x, t).item()


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="Conv2d: in_channels must be a positive int, got 0"):
        nn.Conv2d(0, 3, 3)
    with pytest.raises(ValueError, match="Conv2d: padding must be an int, a pair, 'valid' or "
                       "'same', got 'full'"):
        nn.Conv2d(1, 3, 3, padding="full")
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair of ints"):
        nn.Conv2d(1, 3, 2.5)
    with pytest.raises(ValueError, match="Linear: out_features must be a positive int"):
        nn.Linear(3, -1)
    with pytest.raises(TypeError, match="Sequential: argument 1 must be a Module, got int"):
        nn.Sequential(nn.ReLU(), 3)
    with pytest.raises(ValueError, match="unknown model 'lenet6'"):
        models.create("lenet6")
    with pytest.raises(ValueError, match="expected input with 1 channels to match weight"):
        models.LeNet5()(cucnn.tensor(np.zeros((1, 3, 28, 28))))


def test_manual_seed_argument():
    with pytest.raises(TypeError, match="manual_seed: seed must be an int, got float"):
        cucnn.manual_seed(1.5)


def test_checkpoint_round_trip_and_errors(tmp_path):
    from cucnn import checkpoint, optim
    cucnn.manual_seed(0)
    m = models.XONet(course_filters=False)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    F.cross_entropy(m(cucnn.tensor(np.ones((2, 1, 9, 9)))), cucnn.tensor([0, 1])).backward()
    opt.step()
    path = checkpoint.save(tmp_path / "ck.npz", m, opt, arch="xo", epoch=3, note="hi")
    ck = checkpoint.load(path)
    assert ck["arch"] == "xo" and ck["epoch"] == 3 and ck["meta"] == {"note": "hi"}
    assert ck["optimizer"]["type"] == "SGD" and ck["optimizer"]["param_groups"][0]["nesterov"] is True
    fresh = models.XONet(course_filters=False)
    fresh.load_state_dict(ck["model"])
    assert all(np.array_equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                    m.state_dict().values()))
    opt2 = optim.SGD(fresh.parameters(), lr=0.5)
    opt2.load_state_dict(ck["optimizer"])
    assert opt2.param_groups[0]["momentum"] == 0.9
    assert not list(tmp_path.glob("*.tmp.npz"))  # the temporary file was renamed into place
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        checkpoint.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a cucnn checkpoint"):
        checkpoint.load(tmp_path / "other.npz")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.npz")


def test_module_registration_errors():
    m = nn.Module()
    with pytest.raises(TypeError, match="register_parameter: w must be a Parameter or None, got "
                       "Tensor"):
        m.register_parameter("w", cucnn.tensor([1.0]))

    class Early(nn.Module):
        def __init__(self):
            self.x = 1  # before super().__init__()

    with pytest.raises(AttributeError, match=r"cannot assign before Module.__init__\(\) call"):
        Early()
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'missing'"):
        m.missing


def test_adam_betas_must_be_a_pair():
    from cucnn import optim
    with pytest.raises(ValueError, match=r"Adam: betas must be a pair, got 0.9"):
        optim.Adam(models.XONet().parameters(), betas=0.9)


def test_sim_module_override_must_exist(monkeypatch, tmp_path):
    from cucnn import _backend
    monkeypatch.setattr(_backend, "_sim_module", None)
    monkeypatch.setenv("CUCNN_SIM_MODULE", str(tmp_path / "_sim.so"))
    with pytest.raises(ImportError, match="CUCNN_SIM_MODULE=.*: no such extension module"):
        _backend.sim_module()
