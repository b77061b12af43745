"""Layers, containers and losses (PyTorch's ``torch.nn`` names and semantics)."""
from .layers import (AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Flatten, LeakyReLU, Linear,
                     MaxPool2d, MSELoss, ReLU, Sigmoid, Softmax, Tanh)
from .layers import AdaptiveAvgPool2d, AdaptiveMaxPool2d, BatchNorm2d, Identity
from .layers import BCEWithLogitsLoss, NLLLoss, ZeroPad2d
from .module import IncompatibleKeys, Module, ModuleDict, ModuleList, Parameter, \
    RemovableHandle, Sequential
from . import init, utils  # noqa: F401

__all__ = ["Module", "Parameter", "Sequential", "IncompatibleKeys", "Conv2d", "Linear",
           "MaxPool2d", "AvgPool2d", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "Softmax", "Flatten",
           "Dropout", "CrossEntropyLoss", "MSELoss",
           "BatchNorm2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]
__all__ += ["Identity", "ModuleList", "ModuleDict", "RemovableHandle", "init", "utils"]
__all__ += ["NLLLoss", "BCEWithLogitsLoss", "ZeroPad2d"]
