"""The public functional API (PyTorch names and semantics)."""
from .ops.adaptive_pool2d import adaptive_avg_pool2d, adaptive_max_pool2d
from .ops.activation import leaky_relu, relu, sigmoid, tanh
from .ops.batchnorm import batch_norm
from .ops.composite import dropout, mse_loss
from .ops.conv2d import conv2d, linear
from .ops.cross_entropy import cross_entropy
from .ops.cross_entropy import nll_loss
from .ops.composite import binary_cross_entropy_with_logits, pad
from .ops.pool2d import avg_pool2d, max_pool2d
from .ops.softmax import log_softmax, softmax

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "log_softmax", "cross_entropy",
           "conv2d", "linear", "max_pool2d", "avg_pool2d", "dropout", "mse_loss",
           "batch_norm", "adaptive_avg_pool2d", "adaptive_max_pool2d"]
__all__ += ["nll_loss", "binary_cross_entropy_with_logits", "pad"]
