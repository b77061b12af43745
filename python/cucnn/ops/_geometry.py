"""Sliding-window geometry shared by convolution and pooling: padding resolution ("valid", "same"
as Keras defines it for any stride, ints, pairs, explicit (top, bottom, left, right)), output sizes
(floor, or pooling's ceil_mode),
and ``ConvGeometry``, the one validated description of a convolution (the Python mirror of the
kernels' ``ConvShape``, like CUTLASS's ``Conv2dProblemSize``): F.conv2d computes it once and the
autograd Function, the dispatch and the kernels' arguments all come from it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ._spec import int_pair

#: The kernels index one image plane, one filter, the padded extent and the output plane with
#: 32-bit ints; every such size is checked against this before a launch.
INT_MAX = 2**31 - 1


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple:
    """Keras/TensorFlow "same" along one axis: output ceil(size / stride), total padding
    max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0), the odd pixel after (bottom or
    right). At stride 1 it is PyTorch's "same"."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def output_length(size: int, kernel: int, stride: int, before: int, after: int,
                  dilation: int, ceil_mode: bool = False) -> int:
    """Output positions along one axis; <= 0 when the kernel does not fit. Floor mode (convolution,
    pooling by default), or pooling's ceil_mode with PyTorch's rules: the division rounds towards
    -inf (a kernel larger than the padded input still gives one window), and a last window that
    would start in the right/bottom padding is dropped (it must start inside the input or the
    left/top padding)."""
    span = size + before + after - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and out > 0 and (out - 1) * stride >= size + before:
        out -= 1
    return out


def output_size(hw, kernel, stride, pads, dilation) -> tuple:
    """(P, Q) for an input (H, W), pads (top, bottom, left, right)."""
    return (output_length(hw[0], kernel[0], stride[0], pads[0], pads[1], dilation[0]),
            output_length(hw[1], kernel[1], stride[1], pads[2], pads[3], dilation[1]))


def resolve_padding(padding, hw: tuple, kernel: tuple, stride: tuple, dilation: tuple,
                    what: str = "conv2d") -> tuple:
    """(top, bottom, left, right) from an int, a pair (both sides of each axis), a 4-tuple
    (top, bottom, left, right), "valid" or "same" (Keras, any stride)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"{what}: padding must be an int, a pair, a 4-tuple (top, bottom, "
                             f"left, right), 'valid' or 'same', got {padding!r}")
        return (same_padding(hw[0], kernel[0], stride[0], dilation[0])
                + same_padding(hw[1], kernel[1], stride[1], dilation[1]))
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        pads = int_pair(padding[:2], "padding", 0, what) + int_pair(padding[2:], "padding", 0, what)
    else:
        ph, pw = int_pair(padding, "padding", 0, what)
        pads = (ph, ph, pw, pw)
    if max(pads) > INT_MAX:
        raise ValueError(f"{what}: padding must be at most {INT_MAX} (32-bit indices), got "
                         f"{padding}")
    return pads


@dataclass(frozen=True)
class ConvGeometry:
    """x (N, C, H, W) * w (K, C // groups, R, S) -> y (N, K, P, Q): the fields of the kernels'
    ConvShape plus the bottom/right padding and the groups."""
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    P: int
    Q: int
    stride: tuple    # (sh, sw)
    pads: tuple      # (top, bottom, left, right)
    dilation: tuple  # (dh, dw)
    groups: int = 1

    @property
    def x_shape(self) -> tuple:
        return (self.N, self.C, self.H, self.W)

    @property
    def w_shape(self) -> tuple:
        return (self.K, self.C // self.groups, self.R, self.S)

    @property
    def y_shape(self) -> tuple:
        return (self.N, self.K, self.P, self.Q)

    @property
    def args(self) -> tuple:
        """(stride, pads, dilation): what the dispatch functions and the bindings take."""
        return (self.stride, self.pads, self.dilation)

    @classmethod
    def from_shapes(cls, x_shape, w_shape, stride=1, padding=0, dilation=1, groups=1,
                    what: str = "conv2d", allow_no_filters: bool = False) -> "ConvGeometry":
        """Every argument checked (PyTorch's rules and error kinds; ValueError for values)."""
        x_shape, w_shape = tuple(x_shape), tuple(w_shape)
        if len(x_shape) != 4:
            raise ValueError(f"{what}: input must be 4-D (N, C, H, W), got shape {x_shape}")
        if len(w_shape) != 4:
            raise ValueError(f"{what}: weight must be 4-D (K, C, R, S), got shape {w_shape}")
        if isinstance(groups, bool) or not isinstance(groups, int):
            raise TypeError(f"{what}: groups must be an int, got {type(groups).__name__}")
        if groups < 1:
            raise ValueError(f"{what}: groups must be >= 1, got {groups}")
        N, C, H, W = x_shape
        K, Cg, R, S = w_shape
        if K == 0 and not allow_no_filters:
            raise ValueError(f"{what}: expected weight to have at least 1 filter (dimension 0), "
                             f"got shape {w_shape}")
        if R < 1 or S < 1:
            raise ValueError(f"{what}: weight must have a kernel of at least 1x1, got shape "
                             f"{w_shape}")
        if K % groups:
            raise ValueError(f"{what}: expected weight's {K} filters (dimension 0) to be "
                             f"divisible by groups={groups}, got weight {w_shape}")
        if C != Cg * groups:
            extra = f" with groups={groups}" if groups != 1 else ""
            raise ValueError(f"{what}: expected input with {Cg * groups} channels to match "
                             f"weight {w_shape}{extra}, got {C} (input shape {x_shape})")
        stride = int_pair(stride, "stride", 1, what)
        dilation = int_pair(dilation, "dilation", 1, what)
        pads = resolve_padding(padding, (H, W), (R, S), stride, dilation, what)
        eh, ew = dilation[0] * (R - 1) + 1, dilation[1] * (S - 1) + 1
        hp, wp = H + pads[0] + pads[1], W + pads[2] + pads[3]
        P, Q = output_size((H, W), (R, S), stride, pads, dilation)
        if P <= 0 or Q <= 0:
            raise ValueError(f"{what}: kernel ({eh}x{ew} with dilation) is larger than the padded "
                             f"input ({hp}x{wp}): the output size would be {P}x{Q}")
        for name, v in (("the padded input height H + top + bottom", hp),
                        ("the padded input width W + left + right", wp),
                        ("the dilated kernel", max(eh, ew)), ("stride", max(stride)),
                        ("dilation", max(dilation)), ("an input plane H*W", H * W),
                        ("an output plane P*Q", P * Q), ("a filter C/groups*R*S", Cg * R * S),
                        ("K*R*S", K * R * S), ("the batch size", N)):
            if v > INT_MAX:
                raise ValueError(f"{what}: {name} is {v}, more than the kernels' 32-bit indices "
                                 f"allow ({INT_MAX}); input {x_shape}, weight {w_shape}, "
                                 f"padding {pads}")
        return cls(N, C, H, W, K, R, S, P, Q, stride, pads, dilation, groups)

    def group(self) -> "ConvGeometry":
        """The geometry of one group: C / groups channels, K / groups filters."""
        return ConvGeometry(self.N, self.C // self.groups, self.H, self.W, self.K // self.groups,
                            self.R, self.S, self.P, self.Q, self.stride, self.pads, self.dilation)
