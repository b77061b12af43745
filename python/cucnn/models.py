"""The course's networks (NCHW, PyTorch layer order). Each builder returns a Module whose forward
gives class scores (logits); apply ``F.softmax`` for probabilities (cross-entropy takes logits).

``MODELS`` maps a name to its builder, the input shape of one sample and a default data set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import nn


class LeNet5(nn.Sequential):
    """LeNet-5 as the course builds it: Conv 6 5x5 "same" + ReLU, MaxPool 2, Conv 16 5x5 + ReLU,
    MaxPool 2, Flatten, Linear 120 + ReLU, 84 + ReLU, 10. 61,706 parameters."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, device: str = "cpu"):
        super().__init__(
            nn.Conv2d(in_channels, 6, 5, padding="same", device=device), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, device=device), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120, device=device), nn.ReLU(),
            nn.Linear(120, 84, device=device), nn.ReLU(),
            nn.Linear(84, num_classes, device=device))


class MnistCNN(nn.Sequential):
    """The small MNIST CNN: Conv 16 3x3 + ReLU, MaxPool 2, Conv 16 3x3 + ReLU, MaxPool 2, Flatten,
    Linear 32 + ReLU, 10 (28 -> 26 -> 13 -> 11 -> 5)."""

    def __init__(self, num_classes: int = 10, device: str = "cpu"):
        super().__init__(
            nn.Conv2d(1, 16, 3, device=device), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, device=device), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 5 * 5, 32, device=device), nn.ReLU(),
            nn.Linear(32, num_classes, device=device))


def _conv_stack(channels, kernel, strides, padding, device, in_channels=1):
    layers, c = [], in_channels
    for k, s in zip(channels, strides):
        layers += [nn.Conv2d(c, k, kernel, stride=s, padding=padding, device=device), nn.ReLU()]
        c = k
    return layers


class AllConvNet(nn.Sequential):
    """The all-convolutional Fashion-MNIST net: four 7x7 "valid" convs of 32, 64, 128, 256 with
    ReLU (28 -> 22 -> 16 -> 10 -> 4), Flatten, Linear 10."""

    def __init__(self, num_classes: int = 10, device: str = "cpu"):
        super().__init__(*_conv_stack((32, 64, 128, 256), 7, (1, 1, 1, 1), "valid", device),
                         nn.Flatten(), nn.Linear(256 * 4 * 4, num_classes, device=device))


class StridedConvNet(nn.Sequential):
    """Its strided variant: 3x3 "valid" convs of 32, 64, 128, 256 with strides 1, 2, 1, 2
    (28 -> 26 -> 12 -> 10 -> 4), Flatten, Linear 10."""

    def __init__(self, num_classes: int = 10, device: str = "cpu"):
        super().__init__(*_conv_stack((32, 64, 128, 256), 3, (1, 2, 1, 2), "valid", device),
                         nn.Flatten(), nn.Linear(256 * 4 * 4, num_classes, device=device))


class FullyConvNet(nn.Sequential):
    """The fully convolutional variant: 3x3 "same" convs of 32, 64, 128, 256 with strides 1, 2, 1, 2
    (28 -> 28 -> 14 -> 14 -> 7), a 7x7 conv of 512 + ReLU and a 1x1 conv of 10. On 28x28 input
    the map of class scores is 1x1 and comes back as (N, 10); on larger input it stays a map
    (N, 10, H', W'): one prediction per 28x28 window, at a stride of 4 pixels."""

    def __init__(self, num_classes: int = 10, device: str = "cpu"):
        super().__init__(*_conv_stack((32, 64, 128, 256), 3, (1, 2, 1, 2), "same", device),
                         nn.Conv2d(256, 512, 7, device=device), nn.ReLU(),
                         nn.Conv2d(512, num_classes, 1, device=device))

    def forward(self, x):
        y = super().forward(x)
        return y.flatten(1) if y.shape[2:] == (1, 1) else y


class MLP(nn.Sequential):
    """The dense MLP: 784 -> 512 -> 512 -> 10 with ReLU and dropout 0.2."""

    def __init__(self, num_classes: int = 10, in_features: int = 784, device: str = "cpu"):
        super().__init__(nn.Flatten(),
                         nn.Linear(in_features, 512, device=device), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(512, 512, device=device), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(512, num_classes, device=device))


#: The course's three hand-made 3x3 filters: the two diagonals and an X.
XO_FILTERS = np.array([[[1, -1, -1], [-1, 1, -1], [-1, -1, 1]],
                       [[-1, -1, 1], [-1, 1, -1], [1, -1, -1]],
                       [[1, -1, 1], [-1, 1, -1], [1, -1, 1]]], dtype=np.float32)


class XONet(nn.Sequential):
    """The X/O toy ConvNet: three 3x3 filters (9 -> 7), ReLU, 2x2 max pooling of stride 2 with the
    last window over the edge (ceil_mode: 7 -> 4), Flatten, a fully connected vote of 2. With
    ``course_filters`` the filters start as the course's diagonals and X, divided by 9 so that a
    feature map is the mean of the products."""

    def __init__(self, course_filters: bool = True, device: str = "cpu"):
        super().__init__(nn.Conv2d(1, 3, 3, bias=False, device=device), nn.ReLU(),
                         nn.MaxPool2d(2, 2, ceil_mode=True), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 2, device=device))
        if course_filters:
            self[0].load_state_dict({"weight": XO_FILTERS[:, None] / 9})


class Cifar10Net(nn.Sequential):
    """The course's CIFAR-10 net: 3x3 "same" convs of 32, 64, 128, 256, 512, 1024 with strides
    1, 2, 1, 2, 1, 2 and ReLU (32 -> 4), Flatten, Linear 512 + ReLU, 10."""

    def __init__(self, num_classes: int = 10, device: str = "cpu"):
        super().__init__(*_conv_stack((32, 64, 128, 256, 512, 1024), 3, (1, 2, 1, 2, 1, 2),
                                      "same", device, in_channels=3),
                         nn.Flatten(), nn.Linear(1024 * 4 * 4, 512, device=device), nn.ReLU(),
                         nn.Linear(512, num_classes, device=device))


class VGG16(nn.Sequential):
    """VGG-16 (configuration D) on 224x224x3: thirteen 3x3 convs (pad 1) in five blocks with 2x2
    max pooling, then Linear 4096, 4096 (ReLU, dropout 0.5) and 1000. 138,357,544 parameters."""

    CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M")

    def __init__(self, num_classes: int = 1000, device: str = "cpu"):
        layers, c = [], 3
        for v in self.CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1, device=device), nn.ReLU()]
                c = v
        super().__init__(*layers, nn.Flatten(),
                         nn.Linear(512 * 7 * 7, 4096, device=device), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, 4096, device=device), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(4096, num_classes, device=device))


class PointBias(nn.Module):
    """A learned bias per position of a (C, H, W) map (the Go network's bias per board point)."""

    def __init__(self, shape, device: str = "cpu"):
        super().__init__()
        self.bias = nn.Parameter(np.zeros(tuple(shape), dtype=np.float32), device=device)

    def forward(self, x):
        return x + self.bias


class GoPolicyNet(nn.Sequential):
    """The AlphaGo policy network: 48 feature planes of a 19x19 board, a zero-padded 5x5 conv of k
    filters, eleven zero-padded 3x3 convs of k filters (ReLU after each), a 1x1 conv to one plane
    with a bias per board point, flattened to 361 move scores (softmax gives the move
    distribution). k = 192 in the match version."""

    def __init__(self, k: int = 192, planes: int = 48, board: int = 19, device: str = "cpu"):
        layers = [nn.Conv2d(planes, k, 5, padding=2, device=device), nn.ReLU()]
        for _ in range(11):
            layers += [nn.Conv2d(k, k, 3, padding=1, device=device), nn.ReLU()]
        super().__init__(*layers, nn.Conv2d(k, 1, 1, bias=False, device=device),
                         PointBias((1, board, board), device=device), nn.Flatten())


# ---- residual networks ----------------------------------------------------------------------------


def _kaiming_normal_fan_out(conv) -> None:
    """torchvision's ResNet init: N(0, 2 / fan_out), fan_out = out_channels * kernel area, from
    cucnn.manual_seed's generator."""
    from . import _random
    k = conv.weight.shape
    std = float(np.sqrt(2.0 / (k[0] * k[2] * k[3])))
    data = _random.generator().normal(0.0, std, size=k).astype(np.float32)
    conv.weight = nn.Parameter(data, device=conv.weight.device)


class BasicBlock(nn.Module):
    """ResNet's basic block: 3x3 conv (stride) + BN + ReLU, 3x3 conv + BN, plus the shortcut
    (identity, or ``downsample`` = 1x1 conv with the stride + BN when the shape changes), ReLU.
    Attribute names are torchvision's, so state-dict keys match."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, device: str = "cpu"):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False,
                               device=device)
        self.bn1 = nn.BatchNorm2d(planes, device=device)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False, device=device)
        self.bn2 = nn.BatchNorm2d(planes, device=device)
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False, device=device),
                nn.BatchNorm2d(planes, device=device))
        else:
            self.downsample = None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """A ResNet of BasicBlocks. ``imagenet_stem``: torchvision's 7x7/2 conv + BN + ReLU + 3x3/2
    max pool, then stages of 64, 128, 256, 512 (ResNet-18/34); otherwise the CIFAR stem of He et
    al. (2016, section 4.2): one 3x3 conv + BN + ReLU, stages of 16, 32, 64 (ResNet-20/32/...).
    Global average pooling (any input size) and a Linear head."""

    def __init__(self, layers, widths, num_classes: int = 10, in_channels: int = 3,
                 imagenet_stem: bool = True, device: str = "cpu"):
        super().__init__()
        self.inplanes = widths[0]
        if imagenet_stem:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False,
                                   device=device)
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False,
                                   device=device)
        self.bn1 = nn.BatchNorm2d(widths[0], device=device)
        self.relu = nn.ReLU()
        if imagenet_stem:
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        else:
            self.maxpool = None
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(self.inplanes, w, 2 if (i > 0 and j == 0) else 1,
                                         device=device))
                self.inplanes = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1], num_classes, device=device)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                _kaiming_normal_fan_out(m)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        if self.maxpool is not None:
            x = self.maxpool(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.fc(self.avgpool(x).flatten(1))


class ResNet18(ResNet):
    """torchvision's ResNet-18: 11,181,642 parameters for 10 classes and 3 input channels
    (11,689,512 for 1000); state-dict keys as torchvision's (``layer1.0.conv1.weight``,
    ``layer2.0.downsample.0.weight``, ``bn1.running_mean``, ...)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, device: str = "cpu"):
        super().__init__((2, 2, 2, 2), (64, 128, 256, 512), num_classes, in_channels, True,
                         device)


class ResNet20(ResNet):
    """The CIFAR ResNet-20 of He et al. (3 stages of 3 BasicBlocks, 16/32/64 channels) with 1x1
    conv + BN projection shortcuts where the shape changes (their option B). On Fashion-MNIST's
    28x28 the maps are 28, 14, 7 before global pooling, so no padding or resizing is needed."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, device: str = "cpu"):
        super().__init__((3, 3, 3), (16, 32, 64), num_classes, in_channels, False, device)


# ---- MobileNet-v2 ----------------------------------------------------------------------------------


def _depthwise(channels: int, stride: int, device: str) -> nn.Module:
    """A 3x3 depthwise convolution: nn.Conv2d with groups = channels runs on the depthwise
    kernels (ops/depthwise_conv2d.py)."""
    return nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels,
                     device=device)


class InvertedResidual(nn.Module):
    """MobileNet-v2's block: 1x1 expansion by t (+ ReLU; absent when t = 1), 3x3 depthwise of the
    given stride (+ ReLU), 1x1 linear projection; the input is added back when the stride is 1
    and the channel count is kept."""

    def __init__(self, inp: int, oup: int, stride: int, expand: int, device: str = "cpu"):
        super().__init__()
        hidden = inp * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(inp, hidden, 1, device=device), nn.ReLU()]
        layers += [_depthwise(hidden, stride, device), nn.ReLU(),
                   nn.Conv2d(hidden, oup, 1, device=device)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inp == oup

    def forward(self, x):
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2Small(nn.Module):
    """A MobileNet-v2-style net for 28x28 (or 32x32) inputs: a 3x3 stem of 16, inverted residual
    blocks (expansion t, channels c, repeats n, first stride s) (1, 16, 1, 1), (6, 24, 2, 2),
    (6, 32, 2, 2), (6, 64, 2, 2) (28 -> 14 -> 7 -> 4), a 1x1 conv to 256, global average pooling
    and a linear classifier. ReLU in place of ReLU6 and biases in place of BatchNorm (the plain
    variant; no BN layer in this build). 131,402 parameters for 10 classes and 1 input channel."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2))

    def __init__(self, num_classes: int = 10, in_channels: int = 1, last_channels: int = 256,
                 device: str = "cpu"):
        super().__init__()
        layers, c = [nn.Conv2d(in_channels, 16, 3, padding=1, device=device), nn.ReLU()], 16
        for t, out, n, stride in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c, out, stride if i == 0 else 1, t, device))
                c = out
        layers += [nn.Conv2d(c, last_channels, 1, device=device), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last_channels, num_classes, device=device)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))  # global average pooling


@dataclass(frozen=True)
class ModelInfo:
    build: Callable
    input_shape: tuple  # one sample, (C, H, W)
    dataset: str
    doc: str
    augment: bool = False  # `cucnn train` adds random crops and flips (cucnn.transforms)


MODELS = {
    "lenet5": ModelInfo(LeNet5, (1, 28, 28), "fashion-mnist", "LeNet-5 (61,706 parameters)"),
    "mnist_cnn": ModelInfo(MnistCNN, (1, 28, 28), "mnist", "the small MNIST CNN"),
    "allconv": ModelInfo(AllConvNet, (1, 28, 28), "fashion-mnist",
                         "four 7x7 valid convs, Flatten, Linear"),
    "allconv_strided": ModelInfo(StridedConvNet, (1, 28, 28), "fashion-mnist",
                                 "3x3 convs with strides 1, 2, 1, 2"),
    "fully_conv": ModelInfo(FullyConvNet, (1, 28, 28), "fashion-mnist",
                            "fully convolutional: a map of class scores on larger inputs"),
    "mlp": ModelInfo(MLP, (1, 28, 28), "fashion-mnist", "784-512-512-10, dropout 0.2"),
    "xo": ModelInfo(XONet, (1, 9, 9), "xo", "the X/O toy ConvNet"),
    "cifar10": ModelInfo(Cifar10Net, (3, 32, 32), "cifar10", "the course's CIFAR-10 net"),
    "vgg16": ModelInfo(VGG16, (3, 224, 224), "imagenet", "VGG-16 (138M parameters)"),
    "go_policy": ModelInfo(GoPolicyNet, (48, 19, 19), "go", "the AlphaGo policy network, k=192"),
    "resnet18": ModelInfo(ResNet18, (3, 224, 224), "imagenet",
                          "torchvision's ResNet-18 (11.7M parameters)", augment=True),
    "resnet20": ModelInfo(ResNet20, (1, 28, 28), "fashion-mnist",
                          "the CIFAR ResNet-20 (BatchNorm, residuals), 1 input channel",
                          augment=True),
    "mobilenet_v2": ModelInfo(MobileNetV2Small, (1, 28, 28), "fashion-mnist",
                              "MobileNet-v2-style: inverted residuals with depthwise 3x3"),
}


def create(name: str, device: str = "cpu", **kwargs) -> nn.Module:
    """Build a model of ``MODELS`` by name on ``device``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name].build(device=device, **kwargs)


def lenet5(**kw): return LeNet5(**kw)
def mnist_cnn(**kw): return MnistCNN(**kw)
def vgg16(**kw): return VGG16(**kw)
def go_policy(**kw): return GoPolicyNet(**kw)


def resnet18(num_classes: int = 1000, in_channels: int = 3, **kw):
    return ResNet18(num_classes, in_channels, **kw)


def resnet20(num_classes: int = 10, in_channels: int = 1, **kw):
    return ResNet20(num_classes, in_channels, **kw)
def mobilenet_v2(**kw): return MobileNetV2Small(**kw)
