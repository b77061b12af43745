"""Issue 16's training conveniences: Module.apply/requires_grad_/hooks/cuda/cpu, ModuleList,
ModuleDict, Identity, nn.init, clip_grad_norm_/clip_grad_value_, AdamW, RMSprop, the
lr_scheduler module (30 steps equal to PyTorch's), TensorDataset and random_split."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import cucnn
import cucnn.nn as nn
import cucnn.optim as optim
from cucnn import data
from cucnn.optim import lr_scheduler

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

DEVICES = ["cpu", "sim"]
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed here; the "
                                 "NumPy-formula tests in this file still run")


# ---- Module conveniences --------------------------------------------------------------------------


def test_apply_visits_children_first_and_requires_grad_freezes():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    seen = []
    assert model.apply(lambda m: seen.append(type(m).__name__)) is model
    assert seen == ["Linear", "ReLU", "Linear", "Sequential", "Sequential"]
    model.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)
    assert all(np.all(m.bias.numpy() == 0) for m in model.modules() if isinstance(m, nn.Linear))
    assert model.requires_grad_(False) is model
    assert not any(p.requires_grad for p in model.parameters())
    model[0].requires_grad_()
    assert [p.requires_grad for p in model.parameters()] == [True, True, False, False]


def test_module_list_and_dict_register_parameters():
    layers = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 3)])
    layers.append(nn.Linear(3, 1))
    layers += [nn.ReLU()]
    layers.insert(0, nn.Identity())
    assert len(layers) == 5 and isinstance(layers[0], nn.Identity)
    assert isinstance(layers[-1], nn.ReLU) and len(layers[1:3]) == 2
    assert len(list(layers.parameters())) == 6
    names = [n for n, _ in layers.named_parameters()]
    assert names[0] == "1.weight" and names[-1] == "3.bias"
    del layers[0]
    assert [n for n, _ in layers.named_parameters()][0] == "0.weight"
    layers[0] = nn.Linear(2, 5)
    assert layers[0].out_features == 5
    with pytest.raises(TypeError, match="must be a Module"):
        layers.append(3)
    with pytest.raises(IndexError):
        layers[10]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
            self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})

        def forward(self, x, head="a"):
            for b in self.blocks:
                x = b(x)
            return self.heads[head](x)

    net = Net()
    assert len(list(net.parameters())) == 10 and "heads.b.bias" in dict(net.named_parameters())
    assert net(cucnn.zeros(5, 4)).shape == (5, 2) and net(cucnn.zeros(1, 4), "b").shape == (1, 1)
    heads = net.heads
    assert list(heads.keys()) == ["a", "b"] and "a" in heads and len(heads) == 2
    heads["c"] = nn.Identity()
    assert list(heads) == ["a", "b", "c"] and isinstance(heads.pop("c"), nn.Identity)
    with pytest.raises(TypeError, match="must be a Module"):
        heads["d"] = "not a module"
    sd = net.state_dict()
    net2 = Net()
    net2.load_state_dict(sd)
    x = cucnn.randn(2, 4)
    np.testing.assert_array_equal(net(x).numpy(), net2(x).numpy())


def test_identity_passes_through_and_ignores_arguments():
    m = nn.Identity(54, unused="x")
    x = cucnn.randn(3)
    assert m(x) is x


def test_forward_hooks_and_handles():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    calls = []
    h1 = model[0].register_forward_pre_hook(lambda m, args: calls.append(("pre", args[0].shape)))
    h2 = model[0].register_forward_hook(lambda m, args, out: calls.append(("post", out.shape)))
    x = cucnn.randn(4, 3)
    y = model(x)
    assert calls == [("pre", (4, 3)), ("post", (4, 2))]
    h1.remove()
    h2.remove()
    model(x)
    assert len(calls) == 2
    # a pre-hook can replace the input, a forward hook the output
    with model.register_forward_pre_hook(lambda m, args: args[0] * 0.0):
        with model.register_forward_hook(lambda m, args, out: out + 1.0):
            z = model(x)
    np.testing.assert_allclose(z.numpy(), model(cucnn.zeros(4, 3)).numpy() + 1.0)
    np.testing.assert_array_equal(model(x).numpy(), y.numpy())  # both removed by the with


def test_module_cuda_and_cpu():
    m = nn.Linear(2, 2).to("sim")
    assert m.cpu() is m and m.device == "cpu"
    assert m.to("sim:0").device == "sim"
    if cucnn.cuda.is_available():  # pragma: no cover - needs a GPU
        assert m.cuda().device == "cuda" and m.weight.device == "cuda"
    else:
        with pytest.raises(RuntimeError, match="not available"):
            m.cuda()


# ---- nn.init --------------------------------------------------------------------------------------


@needs_torch
def test_gains_and_fans_match_pytorch():
    for nl, param in (("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                      ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)):
        assert nn.init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param), rel=1e-15)
    for shape in ((5, 3), (8, 4, 3, 3), (2, 6, 5)):
        assert nn.init._calculate_fan_in_and_fan_out(cucnn.zeros(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


@pytest.mark.parametrize("device", DEVICES)
def test_init_distributions(device):
    cucnn.manual_seed(0)
    w = cucnn.zeros(256, 128, 3, 3, device=device)  # fan_in 1152, fan_out 2304
    fan_in, fan_out = 128 * 9, 256 * 9
    data_ptr = w.data

    def check(fn, kind, scale, **kw):
        assert fn(w, **kw) is w and w.data is data_ptr  # in place
        v = w.numpy()
        if kind == "uniform":
            assert np.abs(v).max() <= scale and np.abs(v).max() > 0.999 * scale
            assert v.std() == pytest.approx(scale / math.sqrt(3), rel=0.01)
        else:
            assert v.std() == pytest.approx(scale, rel=0.01) and abs(v.mean()) < scale * 0.01

    # PyTorch's default a=0 with "leaky_relu" is a slope of 0: gain sqrt(2)
    check(nn.init.kaiming_uniform_, "uniform", math.sqrt(2) * math.sqrt(3 / fan_in))
    check(nn.init.kaiming_uniform_, "uniform", math.sqrt(2) * math.sqrt(3 / fan_out),
          mode="fan_out", nonlinearity="relu")
    check(nn.init.kaiming_normal_, "normal", math.sqrt(2) / math.sqrt(fan_in), nonlinearity="relu")
    check(nn.init.kaiming_normal_, "normal", math.sqrt(2 / 1.25) / math.sqrt(fan_in), a=0.5)
    check(nn.init.xavier_uniform_, "uniform", math.sqrt(6 / (fan_in + fan_out)))
    check(nn.init.xavier_uniform_, "uniform", 5 / 3 * math.sqrt(6 / (fan_in + fan_out)),
          gain=nn.init.calculate_gain("tanh"))
    check(nn.init.xavier_normal_, "normal", math.sqrt(2 / (fan_in + fan_out)))
    check(nn.init.normal_, "normal", 0.02, std=0.02)
    nn.init.uniform_(w, -0.5, 2.0)
    assert w.numpy().min() >= -0.5 and w.numpy().max() < 2.0
    assert w.numpy().mean() == pytest.approx(0.75, abs=0.01)
    nn.init.constant_(w, 0.3)
    assert np.all(w.numpy() == np.float32(0.3))
    nn.init.ones_(w)
    assert np.all(w.numpy() == 1)
    nn.init.zeros_(w)
    assert np.all(w.numpy() == 0)


def test_init_is_seeded_and_same_on_every_device_and_skips_autograd():
    p = nn.Linear(7, 5).weight  # a Parameter: requires grad, yet init writes (as under no_grad)
    out = []
    for dev in ("cpu", "sim"):
        cucnn.manual_seed(11)
        out.append(nn.init.kaiming_uniform_(cucnn.zeros(5, 7, device=dev)).numpy())
    np.testing.assert_array_equal(out[0], out[1])
    cucnn.manual_seed(11)
    nn.init.kaiming_uniform_(p)
    np.testing.assert_array_equal(p.numpy(), out[0])
    assert p.is_leaf and p.grad_fn is None


def test_init_errors():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(cucnn.zeros(3))
    with pytest.raises(ValueError, match="Mode fan_avg not supported"):
        nn.init.kaiming_normal_(cucnn.zeros(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(TypeError, match="floating"):
        nn.init.normal_(cucnn.zeros(3, dtype=cucnn.int64))


# ---- clipping -------------------------------------------------------------------------------------


def _params_with_grads(device, grads):
    ps = []
    for g in grads:
        p = nn.Parameter(np.zeros_like(g), device=device)
        p.grad = cucnn.tensor(g, device=device)
        ps.append(p)
    return ps


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm_formula(device, norm_type, max_norm):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(s).astype(np.float32) for s in ((4, 3), (5,), (2, 2, 2))]
    ps = _params_with_grads(device, grads)
    total = nn.utils.clip_grad_norm_(ps, max_norm, norm_type)
    flat = np.concatenate([g.ravel().astype(np.float64) for g in grads])
    want = np.abs(flat).max() if norm_type == math.inf else \
        (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    assert isinstance(total, cucnn.Tensor) and total.ndim == 0
    assert float(total) == pytest.approx(want, rel=1e-5)
    coef = min(max_norm / (want + 1e-6), 1.0)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-5)


@needs_torch
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_and_value_match_pytorch(norm_type):
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s).astype(np.float32) * 3 for s in ((6, 3), (7,))]
    ps = _params_with_grads("cpu", grads)
    tps = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for tp, g in zip(tps, grads):
        tp.grad = torch.tensor(g)
    a = nn.utils.clip_grad_norm_(ps, 1.5, norm_type)
    b = torch.nn.utils.clip_grad_norm_(tps, 1.5, norm_type)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6)
    nn.utils.clip_grad_value_(ps, 0.1)
    torch.nn.utils.clip_grad_value_(tps, 0.1)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-6)


def test_clip_grad_edge_cases():
    assert float(nn.utils.clip_grad_norm_([nn.Parameter([1.0])], 1.0)) == 0.0  # no grads
    p = _params_with_grads("cpu", [np.array([np.inf, 1.0], np.float32)])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    q = _params_with_grads("cpu", [np.array([3.0, 4.0], np.float32)])[0]
    assert float(nn.utils.clip_grad_norm_(q, 1.0)) == pytest.approx(5.0)  # a single tensor


# ---- optimizers -----------------------------------------------------------------------------------


def _run_optimizer(make_c, make_t, steps=8, device="cpu"):
    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((4, 3)).astype(np.float32)
    grads = [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(steps)]
    p = nn.Parameter(w0.copy(), device=device)
    opt = make_c([p])
    tp = torch.tensor(w0.copy(), requires_grad=True)
    topt = make_t([tp])
    for g in grads:
        p.grad = cucnn.tensor(g, device=device)
        tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
        np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=2e-5, atol=2e-6)
    return opt


@needs_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kw", [{}, {"weight_decay": 0.1, "lr": 0.01}, {"amsgrad": True},
                                {"maximize": True, "betas": (0.8, 0.9), "eps": 1e-6}])
def test_adamw_matches_pytorch(device, kw):
    opt = _run_optimizer(lambda p: optim.AdamW(p, **kw), lambda p: torch.optim.AdamW(p, **kw),
                         device=device)
    sd = opt.state_dict()
    assert sd["state"][0]["step"] == 8 and ("max_exp_avg_sq" in sd["state"][0]) == \
        bool(kw.get("amsgrad"))


@needs_torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kw", [{}, {"momentum": 0.9}, {"centered": True},
                                {"centered": True, "momentum": 0.5, "weight_decay": 0.05},
                                {"alpha": 0.9, "eps": 1e-4, "maximize": True, "lr": 0.001}])
def test_rmsprop_matches_pytorch(device, kw):
    _run_optimizer(lambda p: optim.RMSprop(p, **kw), lambda p: torch.optim.RMSprop(p, **kw),
                   device=device)


def test_adamw_rmsprop_formulas_without_pytorch():
    """One step by hand (NumPy), so the formulas are checked where PyTorch is absent."""
    w, g = np.array([1.0, -2.0], np.float32), np.array([0.5, 0.25], np.float32)
    p = nn.Parameter(w.copy())
    p.grad = cucnn.tensor(g)
    optim.AdamW([p], lr=0.1, weight_decay=0.5).step()
    m, v = 0.1 * g, 0.001 * g * g
    want = w * (1 - 0.1 * 0.5) - 0.1 / 0.1 * m / (np.sqrt(v) / np.sqrt(0.001) + 1e-8)
    np.testing.assert_allclose(p.numpy(), want, rtol=1e-6)
    p = nn.Parameter(w.copy())
    p.grad = cucnn.tensor(g)
    optim.RMSprop([p], lr=0.1).step()
    np.testing.assert_allclose(p.numpy(), w - 0.1 * g / (np.sqrt(0.01 * g * g) + 1e-8),
                               rtol=1e-6)


def test_optimizer_argument_errors():
    p = [nn.Parameter([1.0])]
    with pytest.raises(ValueError, match="invalid lr"):
        optim.AdamW(p, lr=-1)
    with pytest.raises(ValueError, match="beta2"):
        optim.AdamW(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="invalid alpha"):
        optim.RMSprop(p, alpha=-0.1)


# ---- schedulers -----------------------------------------------------------------------------------

SCHEDULERS = [
    ("StepLR", {"step_size": 7, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": [3, 10, 10, 25], "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.9}),
    ("CosineAnnealingLR", {"T_max": 12, "eta_min": 0.001}),  # 30 steps wrap past T_max twice
    ("CosineAnnealingLR", {"T_max": 30}),
    ("LambdaLR", {"lr_lambda": lambda e: 1.0 / (1 + e)}),
    ("OneCycleLR", {"max_lr": 0.5, "total_steps": 30}),
    ("OneCycleLR", {"max_lr": [0.5, 0.2], "total_steps": 31, "anneal_strategy": "linear",
                    "three_phase": True, "pct_start": 0.4}),
    ("OneCycleLR", {"max_lr": 1.0, "epochs": 3, "steps_per_epoch": 10, "cycle_momentum": False}),
]


def _pairs(kind):
    """(cucnn optimizer, torch optimizer) with two param groups."""
    c = [nn.Parameter([1.0]), nn.Parameter([2.0])]
    tt = [torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)]
    if kind == "sgd":
        return (optim.SGD([{"params": [c[0]]}, {"params": [c[1]], "lr": 0.05}], lr=0.1,
                          momentum=0.9),
                torch.optim.SGD([{"params": [tt[0]]}, {"params": [tt[1]], "lr": 0.05}], lr=0.1,
                                momentum=0.9))
    return (optim.Adam([{"params": [c[0]]}, {"params": [c[1]], "lr": 0.05}], lr=0.1),
            torch.optim.Adam([{"params": [tt[0]]}, {"params": [tt[1]], "lr": 0.05}], lr=0.1))


@needs_torch
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("name,kw", SCHEDULERS, ids=[f"{n}{i}" for i, (n, _) in
                                                     enumerate(SCHEDULERS)])
def test_schedulers_match_pytorch_for_30_steps(name, kw, kind):
    copt, topt = _pairs(kind)
    cs = getattr(lr_scheduler, name)(copt, **kw)
    ts = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    assert cs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=0)
    for step in range(30 if name != "OneCycleLR" else cs.total_steps - 1):
        copt.step()
        topt.step()
        cs.step()
        ts.step()
        for cg, tg in zip(copt.param_groups, topt.param_groups):
            assert cg["lr"] == pytest.approx(tg["lr"], rel=1e-12, abs=1e-15), (step, name)
            if name == "OneCycleLR" and kw.get("cycle_momentum", True):
                key = "momentum" if kind == "sgd" else "betas"
                assert cg[key] == pytest.approx(tg[key], rel=1e-12), (step, key)
        assert cs.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12, abs=1e-15)
        assert cs.last_epoch == ts.last_epoch


def _schedule(make, steps):
    opt = optim.SGD([nn.Parameter([0.0])], lr=1.0)
    s = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        s.step()
        out.append(opt.param_groups[0]["lr"])
    return out, s


def test_schedulers_closed_forms_without_pytorch():
    lrs, _ = _schedule(lambda o: lr_scheduler.StepLR(o, 3, gamma=0.5), 7)
    assert lrs == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25]
    lrs, _ = _schedule(lambda o: lr_scheduler.MultiStepLR(o, [2, 5], gamma=0.1), 6)
    assert lrs == pytest.approx([1, 1, 0.1, 0.1, 0.1, 0.01, 0.01])
    lrs, _ = _schedule(lambda o: lr_scheduler.ExponentialLR(o, 0.5), 3)
    assert lrs == [1, 0.5, 0.25, 0.125]
    lrs, _ = _schedule(lambda o: lr_scheduler.LambdaLR(o, lambda e: e + 1), 3)
    assert lrs == [1, 2, 3, 4]
    lrs, _ = _schedule(lambda o: lr_scheduler.CosineAnnealingLR(o, 10, eta_min=0.1), 10)
    assert lrs == pytest.approx([0.1 + 0.9 * (1 + math.cos(math.pi * e / 10)) / 2
                                 for e in range(11)], rel=1e-12)
    lrs, s = _schedule(lambda o: lr_scheduler.OneCycleLR(o, max_lr=2.0, total_steps=10), 9)
    assert lrs[0] == pytest.approx(2.0 / 25) and max(lrs) == pytest.approx(2.0)
    assert lrs[-1] == pytest.approx(2.0 / 25 / 1e4)
    s.step()  # step 10 of 10 is allowed, as in PyTorch; one more is not
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        s.step()


def test_scheduler_state_dict_round_trip():
    def make(o):
        return lr_scheduler.StepLR(o, 2, gamma=0.5)

    lrs, s = _schedule(make, 5)
    state = pickle.loads(pickle.dumps(s.state_dict()))
    assert "optimizer" not in state and state["last_epoch"] == 5
    opt = optim.SGD([nn.Parameter([0.0])], lr=1.0)
    s2 = make(opt)
    s2.load_state_dict(state)
    opt.param_groups[0]["lr"] = s2.get_last_lr()[0]
    s.step()
    s2.step()
    assert s2.get_last_lr() == s.get_last_lr() and s2.last_epoch == 6
    lam = lr_scheduler.LambdaLR(optim.SGD([nn.Parameter([0.0])], lr=1.0), lambda e: 0.5 ** e)
    st = lam.state_dict()
    assert st["lr_lambdas"] == [None]  # functions are not saved, as PyTorch
    lam.load_state_dict(pickle.loads(pickle.dumps(st)))


def test_scheduler_errors():
    opt = optim.SGD([nn.Parameter([0.0])], lr=1.0)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR("sgd", 2)
    with pytest.raises(ValueError, match="step_size"):
        lr_scheduler.StepLR(opt, 0)
    with pytest.raises(ValueError, match="total_steps OR"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="pct_start"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=2.0)
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas"):
        lr_scheduler.LambdaLR(opt, [lambda e: 1, lambda e: 2])
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optim.SGD([nn.Parameter([0.0])], lr=1.0), 2, last_epoch=3)


def test_lr_scheduler_module_is_importable_as_in_pytorch():
    import importlib
    mod = importlib.import_module("cucnn.optim.lr_scheduler")
    from cucnn.optim.lr_scheduler import OneCycleLR
    assert mod is lr_scheduler and OneCycleLR is lr_scheduler.OneCycleLR


# ---- data -----------------------------------------------------------------------------------------


def test_tensor_dataset_with_the_dataloader():
    x = cucnn.randn(10, 3)
    y = cucnn.arange(10)
    ds = data.TensorDataset(x, y)
    assert len(ds) == 10
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), x.numpy()[3]) and yi.item() == 3
    batches = list(data.DataLoader(ds, batch_size=4))
    assert [b[0].shape for b in batches] == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(10))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x.numpy())
    with pytest.raises(ValueError, match="size mismatch"):
        data.TensorDataset(x, cucnn.arange(9))
    with pytest.raises(TypeError):
        data.TensorDataset([1, 2])


def test_random_split_lengths_fractions_and_seed():
    ds = data.TensorDataset(np.arange(10))
    a, b = data.random_split(ds, [7, 3], generator=0)
    assert len(a) == 7 and len(b) == 3
    idx = sorted(np.concatenate([a.indices, b.indices]).tolist())
    assert idx == list(range(10))  # a partition
    a2, _ = data.random_split(ds, [7, 3], generator=0)
    np.testing.assert_array_equal(a.indices, a2.indices)  # seeded
    cucnn.manual_seed(4)
    c1 = data.random_split(ds, [5, 5])[0].indices
    cucnn.manual_seed(4)
    np.testing.assert_array_equal(c1, data.random_split(ds, [5, 5])[0].indices)
    parts = data.random_split(range(11), [0.5, 0.3, 0.2], generator=1)
    assert [len(p) for p in parts] == [6, 3, 2]  # floors 5, 3, 2 = 10; the remainder to the first
    got = [v for _, (v,) in zip(range(3), data.DataLoader(a, batch_size=7))]
    np.testing.assert_array_equal(got[0], a.indices)
    assert a[0] == (ds[int(a.indices[0])])
    with pytest.raises(ValueError, match="Sum of input lengths"):
        data.random_split(ds, [5, 6])


@needs_torch
def test_random_split_fraction_lengths_match_pytorch():
    for n, fr in ((11, [0.5, 0.3, 0.2]), (10, [0.25, 0.75]), (7, [1 / 3] * 3)):
        ours = [len(p) for p in data.random_split(range(n), fr, generator=0)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fr)]
        assert ours == theirs


def test_train_epoch_and_evaluate_take_tensor_datasets_and_subsets():
    from cucnn import train
    import io
    cucnn.manual_seed(0)
    ds = data.TensorDataset(cucnn.randn(40, 1, 6, 6), cucnn.randint(3, (40,)))
    tr, va = data.random_split(ds, [30, 10], generator=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 3))
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    bar = io.StringIO()
    stats = train.train_epoch(model, opt, tr, "cpu", batch_size=8, seed=0, stream=bar)
    assert "4/4" in bar.getvalue() and 0 <= stats["train_acc"] <= 1
    loss, acc = train.evaluate(model, va, "cpu")
    assert math.isfinite(loss) and 0 <= acc <= 1
