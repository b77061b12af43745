"""ResNet-18 / ResNet-20 in the zoo (torchvision's architecture and state-dict names; a ResNet-18
state dict made by PyTorch loads and gives the same logits), the augmentation transforms, the
DataLoader's transform, and `cucnn train --model resnet20`."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

import cucnn
import cucnn.train  # noqa: F401  (cucnn.train.run)
from cucnn import cli, data, models, transforms
from cucnn.testing import assert_close

try:
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None
requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def _torch_resnet18(num_classes, in_channels):
    """torchvision's ResNet-18, written out in plain torch.nn (torchvision is not a dependency)."""
    tnn = torch.nn

    class BasicBlock(tnn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = tnn.Sequential(tnn.Conv2d(inplanes, planes, 1, stride,
                                                            bias=False), tnn.BatchNorm2d(planes))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class ResNet18(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU(inplace=True)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            c = 64
            for i, w in enumerate((64, 128, 256, 512)):
                blocks = [BasicBlock(c, w, 2 if i else 1), BasicBlock(w, w, 1)]
                c = w
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18()


def test_resnet18_parameter_count_and_key_names():
    m = models.resnet18(num_classes=10, in_channels=3)
    assert sum(p.numel() for p in m.parameters()) == 11_181_642
    assert sum(p.numel() for p in models.resnet18().parameters()) == 11_689_512  # 1000 classes
    keys = list(m.state_dict())
    for k in ("conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked",
              "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
              "layer2.0.downsample.1.running_var", "layer4.1.bn2.bias", "fc.weight", "fc.bias"):
        assert k in keys, k
    assert "layer1.0.downsample.0.weight" not in keys  # stage 1 keeps the shape: identity


def test_resnet20_shape_and_size():
    m = models.resnet20()
    assert sum(p.numel() for p in m.parameters()) == 272_186
    with cucnn.no_grad():
        assert m(cucnn.tensor(np.zeros((2, 1, 28, 28), np.float32))).shape == (2, 10)
        # global average pooling: any input size
        assert m(cucnn.tensor(np.zeros((1, 1, 32, 20), np.float32))).shape == (1, 10)
    assert "resnet20" in models.MODELS and "resnet18" in models.MODELS


@requires_torch
def test_a_pytorch_resnet18_state_dict_loads_and_gives_the_same_logits():
    torch.manual_seed(0)
    ref = _torch_resnet18(10, 3)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.num_batches_tracked.fill_(5)
    ref.eval()
    sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
    ours = models.resnet18(num_classes=10, in_channels=3)
    assert list(ours.state_dict()) == list(sd)
    result = ours.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    ours.eval()
    x = np.random.default_rng(2).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    with cucnn.no_grad():
        got = ours(cucnn.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert int(ours.layer1[0].bn1.num_batches_tracked.item()) == 5


def test_resnet20_on_sim_matches_cpu():
    """The whole network (conv, BN, residual adds, global pooling) in training mode, forward and
    backward, on the kernels against the cpu path."""
    grads = {}
    for device in ("cpu", "sim"):
        cucnn.manual_seed(0)
        m = models.resnet20(device=device)
        x = cucnn.tensor(np.random.default_rng(1).standard_normal((3, 1, 12, 10)), device=device)
        y = m(x)
        (y * cucnn.tensor(np.linspace(-1, 1, 30).reshape(3, 10), device=device)).sum().backward()
        grads[device] = {n: p.grad.numpy() for n, p in m.named_parameters()}
        grads[device]["logits"] = y.numpy()
        grads[device]["running_var"] = m.layer3[2].bn2.running_var.numpy()
    for k, v in grads["cpu"].items():
        assert_close(grads["sim"][k], v, rtol=1e-3, name=k)


# ---- transforms -----------------------------------------------------------------------------------


def test_random_crop_cuts_windows_of_the_padded_image():
    x = np.arange(2 * 3 * 5 * 6, dtype=np.float32).reshape(2, 3, 5, 6)
    cucnn.manual_seed(4)
    y = transforms.RandomCrop((5, 6), padding=2, fill=-1.0)(x)
    assert y.shape == x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=-1.0)
    for n in range(2):
        hits = [(i, j) for i in range(5) for j in range(5)
                if np.array_equal(padded[n, :, i:i + 5, j:j + 6], y[n])]
        assert hits, f"sample {n} is not a window of its padded image"
    cucnn.manual_seed(4)
    np.testing.assert_array_equal(transforms.RandomCrop((5, 6), 2, -1.0)(x), y)  # seeded
    assert np.array_equal(transforms.RandomCrop(3)(x).shape, (2, 3, 3, 3))


def test_flip_and_normalize():
    x = np.random.default_rng(0).standard_normal((4, 2, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(transforms.RandomHorizontalFlip(0.0)(x), x)
    cucnn.manual_seed(1)
    y = transforms.RandomHorizontalFlip()(x)
    flipped = [np.array_equal(y[i], x[i, ..., ::-1]) for i in range(4)]
    assert all(f or np.array_equal(y[i], x[i]) for i, f in enumerate(flipped))
    z = transforms.Normalize([1.0, -1.0], [2.0, 0.5])(x)
    np.testing.assert_allclose(z[:, 0], (x[:, 0] - 1) / 2, rtol=1e-6)
    np.testing.assert_allclose(z[:, 1], (x[:, 1] + 1) / 0.5, rtol=1e-6)
    c = transforms.Compose([transforms.RandomHorizontalFlip(1.0), transforms.Normalize(0, 2)])
    np.testing.assert_allclose(c(x), x[..., ::-1] / 2, rtol=1e-6)


def test_transform_errors():
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="larger than the padded image"):
        transforms.RandomCrop(7, padding=1)(x)
    with pytest.raises(ValueError, match="size"):
        transforms.RandomCrop(0)
    with pytest.raises(ValueError, match="padding"):
        transforms.RandomCrop(3, padding=-1)
    with pytest.raises(ValueError, match="probability"):
        transforms.RandomHorizontalFlip(1.5)
    with pytest.raises(ValueError, match="non-zero"):
        transforms.Normalize(0.0, 0.0)
    with pytest.raises(ValueError, match="2 values for 1 channels"):
        transforms.Normalize([0, 0], [1, 1])(x)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        transforms.RandomHorizontalFlip()(x[0])
    with pytest.raises(TypeError, match="callable"):
        transforms.Compose([1])
    with pytest.raises(TypeError, match="transform must be callable"):
        data.DataLoader(data.XO(8), 4, transform=3)


def test_dataloader_applies_the_transform_to_images_only():
    ds = data.XO(10)
    plain = list(data.DataLoader(ds, 4))
    flipped = list(data.DataLoader(ds, 4, transform=transforms.RandomHorizontalFlip(1.0)))
    for (a, ya), (b, yb) in zip(plain, flipped):
        np.testing.assert_array_equal(b, a[..., ::-1])
        np.testing.assert_array_equal(ya, yb)


# ---- the command ----------------------------------------------------------------------------------


def test_cli_trains_resnet20_with_augmentation(tmp_path, capsys):
    root = tmp_path / "idx"
    root.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 8)):
        data.write_idx(root / f"{prefix}-images-idx3-ubyte.gz",
                       rng.integers(0, 256, size=(n, 28, 28)).astype(np.uint8))
        data.write_idx(root / f"{prefix}-labels-idx1-ubyte.gz",
                       rng.integers(0, 10, size=n).astype(np.uint8))
    out = tmp_path / "run"
    rc = cli.main(["train", "--model", "resnet20", "--dataset", "fashion-mnist", "--data-root",
                   str(root), "--epochs", "1", "--batch-size", "16", "--val-size", "8",
                   "--device", "cpu", "--out", str(out), "--no-plots"])
    assert rc == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["parameters"] == 272_186
    assert "RandomCrop" in metrics["augmentation"] and "RandomHorizontalFlip" in \
        metrics["augmentation"]
    ck = cucnn.checkpoint.load(out / "checkpoint.npz")
    assert int(ck["model"]["bn1.num_batches_tracked"]) == 2  # 32 images in batches of 16
    args = cli._parser().parse_args(["train", "--model", "resnet20", "--no-augment"])
    assert args.augment is False
    assert cli._parser().parse_args(["train"]).augment is None  # the model decides


def test_train_run_without_augmentation_records_none(tmp_path):
    metrics = cucnn.train.run("xo", "xo", 1, 50, device="cpu", out=tmp_path / "xo", plots=False,
                              augment=False, stream=io.StringIO())
    assert metrics["augmentation"] is None
    metrics = cucnn.train.run("xo", "xo", 1, 50, device="cpu", out=tmp_path / "xo2", plots=False,
                              augment=True, stream=io.StringIO())
    assert "RandomCrop(size=(9, 9)" in metrics["augmentation"]


@requires_torch
def test_resnet20_trains_like_its_pytorch_twin_from_the_same_weights():
    """The benchmark's PyTorch ResNet-20 and models.resnet20 from one state dict, SGD with
    momentum on the same batches: the losses, the running statistics and the eval-mode logits
    stay together step after step (training-mode BN, backward through residuals and BN, the
    running updates and eval all as PyTorch's)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "resnet20_fashion.py"
    spec = importlib.util.spec_from_file_location("bench_resnet20_fashion", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    torch.manual_seed(0)
    ref = bench.torch_resnet20(torch)
    ours = models.resnet20()
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    topt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    oopt = cucnn.optim.SGD(list(ours.parameters()), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    for step in range(3):
        x = (rng.standard_normal((8, 1, 14, 14)) + 0.3).astype(np.float32)
        y = rng.integers(0, 10, 8)
        tl = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tl.backward()
        topt.step()
        ol = cucnn.functional.cross_entropy(ours(cucnn.tensor(x)), cucnn.tensor(y))
        oopt.zero_grad()
        ol.backward()
        oopt.step()
        assert abs(float(ol.item()) - float(tl.detach())) < 1e-4, step
    sd, rsd = ours.state_dict(), ref.state_dict()
    for k in ("bn1.running_mean", "layer2.0.downsample.1.running_var", "layer3.2.bn2.running_var"):
        assert_close(sd[k], rsd[k].numpy(), rtol=1e-3, name=k)
    ref.eval()
    ours.eval()
    x = rng.standard_normal((4, 1, 14, 14)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    with cucnn.no_grad():
        # Not tighter: a pre-activation within rounding of 0 flips a ReLU mask, which moves
        # a gradient by a whole element's contribution (seen: 1% on layer1.1's weights at
        # step 1 between 1 and 2 BLAS threads, each accurate to 1e-6 against float64).
        assert_close(ours(cucnn.tensor(x)).numpy(), expected, rtol=5e-2, name="eval logits")
