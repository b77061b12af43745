"""conv2d and linear (kernels: csrc/kernels/conv2d.cuh).

Cross-correlation as deep-learning libraries compute it, NCHW, with PyTorch's arguments. Padding is
an int, a pair, "valid", or "same" as Keras/TensorFlow define it for any stride (output
ceil(H / stride), the odd pixel of padding at the bottom/right); at stride 1 that is PyTorch's
"same". ``linear`` is a 1x1 convolution of x viewed as (N, F, 1, 1), so dense layers run on the
same kernels — a fully connected layer is a 1x1 convolution.
"""
from __future__ import annotations

import numpy as np

from .. import _backend, backends
from ..tensor import Function, Tensor, check_float_tensor
from ._spec import Case, OpSpec, int_pair, nasty, register

# ---- geometry -------------------------------------------------------------------------------------


def _pair(v, name: str, minimum: int) -> tuple:
    return int_pair(v, name, minimum, "conv2d")


def resolve_padding(padding, hw: tuple, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """(top, bottom, left, right) from an int, a pair, "valid" or "same" (Keras, any stride)."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(f"conv2d: padding must be an int, a pair, 'valid' or 'same', "
                             f"got {padding!r}")
        pads = []
        for size, k, s, d in zip(hw, kernel, stride, dilation):
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]  # the odd pixel at the bottom/right
        return tuple(pads)
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph, pw, pw)


def output_size(hw, kernel, stride, pads, dilation) -> tuple:
    p = (hw[0] + pads[0] + pads[1] - dilation[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    q = (hw[1] + pads[2] + pads[3] - dilation[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    return p, q


# ---- oracle (im2col array code on xp) -------------------------------------------------------------


def _slices(P, Q, r, s, stride, dilation):
    """The rows and columns of the padded input that filter tap (r, s) reads, as slices."""
    h0, w0 = r * dilation[0], s * dilation[1]
    return (slice(h0, h0 + stride[0] * (P - 1) + 1, stride[0]),
            slice(w0, w0 + stride[1] * (Q - 1) + 1, stride[1]))


def _pointwise(R, S, stride, pads) -> bool:
    """A 1x1 convolution at stride 1 without padding (linear layers): im2col is the input itself."""
    return (R, S) == (1, 1) and stride == (1, 1) and not any(pads)


def _im2col(xp, x, R, S, stride, pads, dilation):
    """(N, C, H, W) -> cols (C*R*S, N*P*Q): column j holds the input patch under output pixel j,
    so a convolution is one GEMM with the (K, C*R*S) filter matrix."""
    N, C = x.shape[:2]
    P, Q = output_size(x.shape[2:], (R, S), stride, pads, dilation)
    xt = x.transpose(1, 0, 2, 3)  # (C, N, H, W), a view
    if _pointwise(R, S, stride, pads):
        return xt.reshape(C, N * P * Q), P, Q
    if any(pads):
        xt = xp.pad(xt, ((0, 0), (0, 0), (pads[0], pads[1]), (pads[2], pads[3])))
    cols = xp.empty((C, R, S, N, P, Q), dtype=x.dtype)
    for r in range(R):
        for s in range(S):
            hs, ws = _slices(P, Q, r, s, stride, dilation)
            cols[:, r, s] = xt[:, :, hs, ws]
    return cols.reshape(C * R * S, N * P * Q), P, Q


def _to_nchw(xp, a, N, K, P, Q):
    """(K, N*P*Q) -> (N, K, P, Q), contiguous."""
    return xp.ascontiguousarray(a.reshape(K, N, P, Q).transpose(1, 0, 2, 3))


def _from_nchw(t):
    """(N, K, P, Q) -> (K, N*P*Q): the GEMM layout of an output or its gradient."""
    N, K, P, Q = t.shape
    return t.transpose(1, 0, 2, 3).reshape(K, N * P * Q)


def forward_oracle(xp, x, w, b, stride, pads, dilation, cols=None):
    """``cols``: the input's im2col matrix when the caller has it (see Conv2d.forward)."""
    K, C, R, S = w.shape
    P, Q = output_size(x.shape[2:], (R, S), stride, pads, dilation)
    if cols is None:
        cols = _im2col(xp, x, R, S, stride, pads, dilation)[0]
    y = xp.matmul(w.reshape(K, C * R * S), cols)  # one BLAS GEMM
    if b is not None:
        y += b.reshape(K, 1)
    return _to_nchw(xp, y, x.shape[0], K, P, Q)


def backward_data_oracle(xp, dy, w, x_shape, stride, pads, dilation):
    """col2im of w^T dy: each tap's contribution added back where it was read."""
    N, C, H, W = x_shape
    K, _, R, S = w.shape
    P, Q = dy.shape[2:]
    dcols = xp.matmul(w.reshape(K, C * R * S).T, _from_nchw(dy))  # (C*R*S, N*P*Q)
    if _pointwise(R, S, stride, pads):
        return _to_nchw(xp, dcols, N, C, H, W)
    dcols = dcols.reshape(C, R, S, N, P, Q)
    dxpad = xp.zeros((C, N, H + pads[0] + pads[1], W + pads[2] + pads[3]), dtype=dy.dtype)
    for r in range(R):
        for s in range(S):
            hs, ws = _slices(P, Q, r, s, stride, dilation)
            dxpad[:, :, hs, ws] += dcols[:, r, s]
    return xp.ascontiguousarray(
        dxpad[:, :, pads[0]:pads[0] + H, pads[2]:pads[2] + W].transpose(1, 0, 2, 3))


def backward_weight_oracle(xp, dy, x, w_shape, stride, pads, dilation, cols=None):
    K, C, R, S = w_shape
    if cols is None:
        cols = _im2col(xp, x, R, S, stride, pads, dilation)[0]
    return xp.matmul(_from_nchw(dy), cols.T).reshape(w_shape).astype(dy.dtype, copy=False)


def backward_bias_oracle(xp, dy):
    return dy.sum(axis=(0, 2, 3))


# ---- dispatch -------------------------------------------------------------------------------------


def _tf32_eligible(mod, version, x_shape, w_shape, stride, pads, dilation) -> bool:
    """Whether a native conv runs on the TF32 tensor-core kernels (csrc/kernels/conv2d_tc.cuh): the
    tiled version, ``cucnn.backends.allow_tf32`` on, a module that can run them (sim, or a GPU of
    sm_80+), and a shape they take (``conv2d_tc_supported``, the C++ rule: any channel and filter
    counts, tensors up to 2^29 elements). The one place the fp32 fallback is decided."""
    return (version == 1 and backends.allow_tf32 and mod.conv2d_tc_available()
            and mod.conv2d_tc_supported(tuple(x_shape), tuple(w_shape), stride, pads, dilation))


def forward(device, x, w, b, stride, pads, dilation, relu=False, version=1, cols=None):
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None:
        y = forward_oracle(xp, x, w, b, stride, pads, dilation, cols)
        return xp.maximum(y, 0) if relu else y
    x, w = xp.ascontiguousarray(x), xp.ascontiguousarray(w)
    P, Q = output_size(x.shape[2:], w.shape[2:], stride, pads, dilation)
    y = _backend.empty(device, (x.shape[0], w.shape[0], max(P, 0), max(Q, 0)))
    if _tf32_eligible(mod, version, x.shape, w.shape, stride, pads, dilation):
        mod.conv2d_tc_forward(x, w, None if b is None else xp.ascontiguousarray(b), y, stride, pads,
                              dilation, bool(relu), _backend.stream(device))
        return y
    mod.conv2d_forward(x, w, None if b is None else xp.ascontiguousarray(b), y, stride, pads,
                       dilation, bool(relu), version, _backend.stream(device))
    return y


def backward_data(device, dy, w, x_shape, stride, pads, dilation, version=1):
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None:
        return backward_data_oracle(xp, dy, w, x_shape, stride, pads, dilation)
    dx = _backend.empty(device, x_shape)
    if _tf32_eligible(mod, version, x_shape, w.shape, stride, pads, dilation):
        mod.conv2d_tc_backward_data(xp.ascontiguousarray(dy), xp.ascontiguousarray(w), dx, stride,
                                    pads, dilation, _backend.stream(device))
        return dx
    mod.conv2d_backward_data(xp.ascontiguousarray(dy), xp.ascontiguousarray(w), dx, stride, pads,
                             dilation, version, _backend.stream(device))
    return dx


def backward_weight(device, dy, x, w_shape, stride, pads, dilation, version=1, cols=None):
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None:
        return backward_weight_oracle(xp, dy, x, w_shape, stride, pads, dilation, cols)
    if _tf32_eligible(mod, version, x.shape, w_shape, stride, pads, dilation):
        n = mod.conv2d_tc_wgrad_workspace(x.shape, w_shape, stride, pads, dilation)
        workspace, dw = _backend.empty(device, (max(n, 1),)), _backend.empty(device, w_shape)
        mod.conv2d_tc_backward_weight(xp.ascontiguousarray(dy), xp.ascontiguousarray(x), dw,
                                      workspace, stride, pads, dilation, _backend.stream(device))
        return dw
    n = mod.conv2d_wgrad_workspace(x.shape, w_shape, stride, pads, dilation) if version else 0
    workspace = _backend.empty(device, (max(n, 1),))  # NaN on sim: an unwritten partial shows
    dw = _backend.empty(device, w_shape)
    mod.conv2d_backward_weight(xp.ascontiguousarray(dy), xp.ascontiguousarray(x), dw, workspace,
                               stride, pads, dilation, version, _backend.stream(device))
    return dw


def backward_bias(device, dy):
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None:
        return backward_bias_oracle(xp, dy)
    db = _backend.empty(device, (dy.shape[1],))
    mod.conv2d_backward_bias(xp.ascontiguousarray(dy), db, _backend.stream(device))
    return db


# ---- autograd -------------------------------------------------------------------------------------


#: Largest im2col matrix (bytes) the array-code path keeps from forward for the weight gradient:
#: LeNet's are 1-5 MB; a VGG layer's would be gigabytes, and is rebuilt in backward instead.
KEEP_COLS_BYTES = 64 << 20


class Conv2d(Function):
    @staticmethod
    def forward(ctx, x, w, b, stride, pads, dilation):
        ctx.geometry = (stride, pads, dilation)
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        ctx.cols = None
        K, C, R, S = w.shape
        P, Q = output_size(x.shape[2:], (R, S), stride, pads, dilation)
        if _backend.native(ctx.device) is None and ctx.needs_input_grad[1] and \
                C * R * S * x.shape[0] * P * Q * x.itemsize <= KEEP_COLS_BYTES:
            ctx.cols = _im2col(_backend.xp_of(ctx.device), x, R, S, stride, pads, dilation)[0]
        return forward(ctx.device, x, w, b, stride, pads, dilation, cols=ctx.cols)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        stride, pads, dilation = ctx.geometry
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = backward_data(ctx.device, dy, w, x.shape, stride, pads, dilation) if need_x else None
        dw = backward_weight(ctx.device, dy, x, w.shape, stride, pads, dilation,
                             cols=ctx.cols) if need_w else None
        db = backward_bias(ctx.device, dy) if need_b and ctx.has_bias else None
        return dx, dw, db, None, None, None


# ---- functional -----------------------------------------------------------------------------------


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1) -> Tensor:
    """2-D cross-correlation of input (N, C, H, W) with weight (K, C, R, S), plus bias (K,)."""
    check_float_tensor(input, "conv2d", "input")
    check_float_tensor(weight, "conv2d", "weight")
    if bias is not None:
        check_float_tensor(bias, "conv2d", "bias")
    if input.ndim != 4:
        raise ValueError(f"conv2d: input must be 4-D (N, C, H, W), got shape {input.shape}")
    if weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be 4-D (K, C, R, S), got shape {weight.shape}")
    if input.shape[1] != weight.shape[1]:
        raise ValueError(f"conv2d: expected input with {weight.shape[1]} channels to match weight "
                         f"{weight.shape}, got {input.shape[1]} (input shape {input.shape})")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},) (one per filter), "
                         f"got {bias.shape}")
    devices = {t.device for t in (input, weight, bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"conv2d: expected all tensors on the same device, got "
                         f"{sorted(devices)}")
    stride = _pair(stride, "stride", 1)
    dilation = _pair(dilation, "dilation", 1)
    R, S = weight.shape[2:]
    pads = resolve_padding(padding, input.shape[2:], (R, S), stride, dilation)
    P, Q = output_size(input.shape[2:], (R, S), stride, pads, dilation)
    if P <= 0 or Q <= 0:
        eh, ew = dilation[0] * (R - 1) + 1, dilation[1] * (S - 1) + 1
        raise ValueError(f"conv2d: kernel ({eh}x{ew} with dilation) is larger than the padded "
                         f"input ({input.shape[2] + pads[0] + pads[1]}x"
                         f"{input.shape[3] + pads[2] + pads[3]}): the output size would be "
                         f"{P}x{Q}")
    return Conv2d.apply(input, weight, bias, stride, pads, dilation)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input (*, F) @ weight (O, F)^T + bias (O,), run as a 1x1 convolution."""
    check_float_tensor(input, "linear", "input")
    check_float_tensor(weight, "linear", "weight")
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape "
                         f"{weight.shape}")
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: expected input with {weight.shape[1]} features in its last "
                         f"dimension to match weight {weight.shape}, got shape {input.shape}")
    if bias is not None:
        check_float_tensor(bias, "linear", "bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got "
                             f"{bias.shape}")
    lead = input.shape[:-1]
    n = int(np.prod(lead)) if lead else 1
    F_, O = weight.shape[1], weight.shape[0]
    y = conv2d(input.reshape(n, F_, 1, 1), weight.reshape(O, F_, 1, 1), bias)
    return y.reshape(*lead, O)


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    """Versions 0 and 1 are the fp32 kernels whatever ``backends.allow_tf32`` says (the registry
    holds them to fp32 tolerances); version 2 is version 1 with TF32 allowed, i.e. the tensor-core
    kernels where the device has them (tests/test_conv2d_tf32.py holds it to TF32 tolerances)."""
    with backends.flags(allow_tf32=version == 2):
        return _compute_fp32_or_tf32(device, inputs, min(version, 1))


def _compute_fp32_or_tf32(device, inputs, version):
    x, w, b, dy = inputs["x"], inputs["w"], inputs["b"], inputs["dy"]
    g = (inputs["stride"], inputs["pads"], inputs["dilation"])
    y = forward(device, x, w, b, *g, version=version)
    return {
        "y": y,
        "y_relu": forward(device, x, w, b, *g, relu=True, version=version),
        "dx": backward_data(device, dy, w, x.shape, *g, version=version),
        "dw": backward_weight(device, dy, x, w.shape, *g, version=version),
        "db": backward_bias(device, dy),
    }


def _case(name, N, C, H, W, K, R, S, stride=1, padding=0, dilation=1):
    stride, dilation = _pair(stride, "stride", 1), _pair(dilation, "dilation", 1)
    pads = resolve_padding(padding, (H, W), (R, S), stride, dilation)
    P, Q = output_size((H, W), (R, S), stride, pads, dilation)

    def make(rng):
        return {"x": nasty(rng, (N, C, H, W)), "w": nasty(rng, (K, C, R, S)) / np.sqrt(C * R * S),
                "b": nasty(rng, (K,)), "dy": nasty(rng, (N, K, P, Q)), "stride": stride,
                "pads": pads, "dilation": dilation}

    reduce_len = max(C * R * S, N * P * Q, K * R * S, 1)
    return Case(f"{name}-{N}x{C}x{H}x{W}-k{K}x{R}x{S}-s{stride[0]}{stride[1]}-p{''.join(map(str, pads))}"
                f"-d{dilation[0]}{dilation[1]}", make, reduce_len=reduce_len)


_cases = [
    _case("1x1", 2, 8, 5, 6, 12, 1, 1),
    _case("3x3p1", 2, 5, 9, 7, 7, 3, 3, padding=1),
    _case("5x5p2", 2, 3, 11, 13, 6, 5, 5, padding=2),
    _case("lenet-conv1-same", 3, 1, 28, 28, 6, 5, 5, padding="same"),
    _case("lenet-conv2-valid", 2, 6, 14, 14, 16, 5, 5, padding="valid"),
    _case("resnet-stem", 1, 3, 23, 21, 9, 7, 7, stride=2, padding=3),
    _case("same-stride2", 2, 4, 13, 10, 5, 3, 3, stride=2, padding="same"),
    _case("same-stride2-even", 1, 3, 8, 8, 4, 4, 4, stride=2, padding="same"),
    _case("dilation2", 2, 3, 12, 11, 5, 3, 3, padding=2, dilation=2),
    _case("C1", 3, 1, 7, 9, 4, 3, 3, padding=1),
    _case("K1", 2, 6, 7, 5, 1, 3, 3),
    _case("N1-prime", 1, 7, 13, 17, 11, 3, 3, padding=1),
    _case("kernel-as-large-as-padded", 2, 3, 5, 4, 6, 7, 6, padding=1),
    _case("nonsquare", 2, 3, 11, 9, 5, 2, 5, stride=(2, 1), padding=(1, 2)),
    _case("pad-larger-than-half", 1, 2, 5, 6, 3, 3, 3, padding=3),
    _case("11x11-s4", 1, 3, 31, 29, 8, 11, 11, stride=4, padding=2),
    _case("wide-K", 1, 16, 6, 6, 70, 3, 3, padding=1),
    _case("deep-reduction", 2, 40, 6, 5, 33, 3, 3, padding=1),
    _case("linear", 7, 37, 1, 1, 13, 1, 1),
    _case("linear-batch1", 1, 50, 1, 1, 3, 1, 1),
    _case("empty-batch", 0, 3, 5, 5, 4, 3, 3),
]

SPEC = register(OpSpec("conv2d", _cases, _compute, versions=(0, 1),
                       doc="conv2d forward (plain and fused ReLU), dgrad, wgrad, bias grad"))
