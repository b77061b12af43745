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


@dataclass(frozen=True)
class ModelInfo:
    build: Callable
    input_shape: tuple  # one sample, (C, H, W)
    dataset: str
    doc: str


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
