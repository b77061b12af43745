"""conv2d and linear (kernels: csrc/kernels/conv2d.cuh).

Cross-correlation as deep-learning libraries compute it, NCHW, with PyTorch's arguments (groups
included: one convolution per group). Padding is an int, a pair, an explicit (top, bottom, left,
right), "valid", or "same" as Keras/TensorFlow define it for any stride (output ceil(H / stride),
the odd pixel of padding at the bottom/right); at stride 1 that is PyTorch's "same". The
arguments are validated once into a ConvGeometry (_geometry.py). ``linear`` is a 1x1 convolution
of x viewed as (N, F, 1, 1), so dense layers run on the same kernels — a fully connected layer is
a 1x1 convolution.
"""
from __future__ import annotations

import numpy as np

from .. import _backend, backends
from ..tensor import Function, Tensor, check_float_tensor
from . import _geometry
from ._geometry import ConvGeometry
from ._spec import BenchCase, Case, OpSpec, int_pair, nasty, register

# ---- geometry (one place: _geometry.py, shared with pooling) -------------------------------------


def _pair(v, name: str, minimum: int) -> tuple:
    return int_pair(v, name, minimum, "conv2d")


def resolve_padding(padding, hw: tuple, kernel: tuple, stride: tuple, dilation: tuple) -> tuple:
    """(top, bottom, left, right) from an int, a pair, a 4-tuple, "valid" or "same" (Keras)."""
    return _geometry.resolve_padding(padding, hw, kernel, stride, dilation, "conv2d")


output_size = _geometry.output_size


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
        n = mod.conv2d_tc_forward_workspace(x.shape, w.shape, stride, pads, dilation)
        workspace = _backend.empty(device, (n,)) if n else None  # NaN on sim, as below
        mod.conv2d_tc_forward(x, w, None if b is None else xp.ascontiguousarray(b), y, stride, pads,
                              dilation, bool(relu), _backend.stream(device), workspace)
        return y
    n = mod.conv2d_forward_workspace(x.shape, w.shape, stride, pads, dilation) if version else 0
    workspace = _backend.empty(device, (n,)) if n else None  # NaN on sim: unwritten partials show
    mod.conv2d_forward(x, w, None if b is None else xp.ascontiguousarray(b), y, stride, pads,
                       dilation, bool(relu), version, _backend.stream(device), workspace)
    return y


def backward_data(device, dy, w, x_shape, stride, pads, dilation, version=1):
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None:
        return backward_data_oracle(xp, dy, w, x_shape, stride, pads, dilation)
    dx = _backend.empty(device, x_shape)
    if _tf32_eligible(mod, version, x_shape, w.shape, stride, pads, dilation):
        n = mod.conv2d_tc_dgrad_workspace(x_shape, w.shape, stride, pads, dilation)
        workspace = _backend.empty(device, (n,)) if n else None  # NaN on sim
        mod.conv2d_tc_backward_data(xp.ascontiguousarray(dy), xp.ascontiguousarray(w), dx, stride,
                                    pads, dilation, _backend.stream(device), workspace)
        return dx
    n = mod.conv2d_dgrad_workspace(x_shape, w.shape, stride, pads, dilation) if version else 0
    workspace = _backend.empty(device, (n,)) if n else None
    mod.conv2d_backward_data(xp.ascontiguousarray(dy), xp.ascontiguousarray(w), dx, stride, pads,
                             dilation, version, _backend.stream(device), workspace)
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


def backward_weight_and_bias(device, dy, x, w_shape, stride, pads, dilation, version=1,
                             cols=None):
    """(dw, db) of a convolution with a bias. On the fp32 tiled path (version 1, TF32 off or not
    eligible) db comes out of the weight-gradient GEMM itself where that is free: the plan's last
    column tile has a spare column (C*R*S not a multiple of its width), which the kernel fills
    with ones, so the FMAs it runs anyway sum dy (conv2d.cuh, WgradLoadBT); the split-K reduction
    then adds the splits' partial sums in order, as for dw. Elsewhere db is backward_bias's
    separate reduction (TF32, version 0, cpu, or no spare column)."""
    mod = _backend.native(device)
    xp = _backend.xp_of(device)
    if mod is None or version == 0 or \
            _tf32_eligible(mod, version, x.shape, w_shape, stride, pads, dilation):
        return (backward_weight(device, dy, x, w_shape, stride, pads, dilation, version, cols),
                backward_bias(device, dy))
    n = mod.conv2d_wgrad_workspace(x.shape, w_shape, stride, pads, dilation, bias=True)
    workspace = _backend.empty(device, (max(n, 1),))  # NaN on sim: an unwritten partial shows
    dw, db = _backend.empty(device, w_shape), _backend.empty(device, (w_shape[0],))
    dy = xp.ascontiguousarray(dy)
    fused = mod.conv2d_backward_weight(dy, xp.ascontiguousarray(x), dw, workspace, stride, pads,
                                       dilation, version, _backend.stream(device), db=db)
    if not fused:
        mod.conv2d_backward_bias(dy, db, _backend.stream(device))
    return dw, db


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


def _group_slices(g: ConvGeometry):
    """(channel slice, filter slice) of each group."""
    cg, kg = g.C // g.groups, g.K // g.groups
    return [(slice(i * cg, (i + 1) * cg), slice(i * kg, (i + 1) * kg)) for i in range(g.groups)]


class Conv2d(Function):
    """Carries the ConvGeometry F.conv2d validated. Depthwise shapes (groups == C) run on the
    depthwise kernels (ops/depthwise_conv2d.py); other groups > 1 run one convolution per group
    (the same kernels, on contiguous copies of the group's channels) and concatenate."""

    @staticmethod
    def forward(ctx, x, w, b, geom):
        ctx.save_for_backward(x, w)
        return _conv_forward(ctx, x, w, b, geom, relu=False)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        return _conv_grads(ctx, dy, x, w)


class Conv2dReLU(Function):
    """relu(conv2d(x, w, b)) fused (issue 18): forward is one conv launch with the ReLU epilogue,
    backward is relu's mask (one launch) and then the conv gradients, so a training step saves
    the activation's forward launch. Same values as Conv2d then relu (the epilogue may keep the
    sign of a -0 that a separate relu turns into +0; values and gradients are equal)."""

    @staticmethod
    def forward(ctx, x, w, b, geom):
        y = _conv_forward(ctx, x, w, b, geom, relu=True)
        ctx.save_for_backward(x, w, y)
        return y

    @staticmethod
    def backward(ctx, dy):
        from . import activation
        x, w, y = ctx.saved_tensors
        return _conv_grads(ctx, activation.backward(ctx.device, "relu", dy, y), x, w)


def _conv_forward(ctx, x, w, b, geom, relu):
    ctx.geom = geom
    ctx.has_bias = b is not None
    ctx.cols = None
    xp = _backend.xp_of(ctx.device)
    if geom.groups > 1:
        from . import depthwise_conv2d as dwc  # lazy: depthwise_conv2d imports this module
        if dwc.route(geom.C, geom.K, geom.groups):
            y = dwc.forward(ctx.device, x, w, b, *geom.args)
            if relu:
                from . import activation
                y = activation.forward(ctx.device, "relu", y)
            return y
        ys = [forward(ctx.device, xp.ascontiguousarray(x[:, cs]), w[ks],
                      None if b is None else b[ks], *geom.args, relu=relu)
              for cs, ks in _group_slices(geom)]
        return xp.ascontiguousarray(xp.concatenate(ys, axis=1))
    if _backend.native(ctx.device) is None and ctx.needs_input_grad[1] and \
            geom.C * geom.R * geom.S * geom.N * geom.P * geom.Q * x.itemsize <= KEEP_COLS_BYTES:
        ctx.cols = _im2col(xp, x, geom.R, geom.S, *geom.args)[0]
    return forward(ctx.device, x, w, b, *geom.args, relu=relu, cols=ctx.cols)


def _conv_grads(ctx, dy, x, w):
    g = ctx.geom
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    need_b = need_b and ctx.has_bias
    if g.groups == 1:
        dx = backward_data(ctx.device, dy, w, x.shape, *g.args) if need_x else None
        if need_w and need_b:  # db fused into the weight-gradient GEMM where it is free
            dw, db = backward_weight_and_bias(ctx.device, dy, x, w.shape, *g.args, cols=ctx.cols)
        else:
            dw = backward_weight(ctx.device, dy, x, w.shape, *g.args,
                                 cols=ctx.cols) if need_w else None
            db = backward_bias(ctx.device, dy) if need_b else None
        return dx, dw, db, None
    db = backward_bias(ctx.device, dy) if need_b else None
    from . import depthwise_conv2d as dwc  # lazy: depthwise_conv2d imports this module
    if dwc.route(g.C, g.K, g.groups):
        dx = dwc.backward_data(ctx.device, dy, w, x.shape, *g.args) if need_x else None
        dw = dwc.backward_weight(ctx.device, dy, x, w.shape, *g.args) if need_w else None
        return dx, dw, db, None
    xp = _backend.xp_of(ctx.device)
    one = g.group()
    parts = [(xp.ascontiguousarray(dy[:, ks]), cs, ks) for cs, ks in _group_slices(g)]
    dx = xp.concatenate([backward_data(ctx.device, dyg, w[ks], one.x_shape, *g.args)
                         for dyg, cs, ks in parts], axis=1) if need_x else None
    dw = xp.concatenate([backward_weight(ctx.device, dyg, xp.ascontiguousarray(x[:, cs]),
                                         one.w_shape, *g.args)
                         for dyg, cs, ks in parts], axis=0) if need_w else None
    return (None if dx is None else xp.ascontiguousarray(dx),
            None if dw is None else xp.ascontiguousarray(dw), db, None)


def conv2d_relu(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                dilation=1, groups: int = 1) -> Tensor:
    """relu(conv2d(input, weight, bias, ...)) as one fused Function (one forward launch, one
    backward mask); nn.Sequential uses it for a Conv2d followed by a ReLU."""
    return conv2d(input, weight, bias, stride, padding, dilation, groups, _relu=True)


def linear_relu(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """relu(linear(input, weight, bias)) fused as conv2d_relu of a 1x1 convolution."""
    return linear(input, weight, bias, _relu=True)


# ---- functional -----------------------------------------------------------------------------------


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1, _relu: bool = False) -> Tensor:
    """2-D cross-correlation of input (N, C, H, W) with weight (K, C / groups, R, S), plus bias
    (K,). padding: an int, a pair, (top, bottom, left, right), "valid" or "same" (Keras, any
    stride). Zero filters raise (as PyTorch does); zero input channels give bias-only outputs.
    ``_relu`` (internal; conv2d_relu, nn.Sequential) fuses a following ReLU."""
    return _conv2d(input, weight, bias, stride, padding, dilation, groups, relu=_relu)


def _conv2d(input, weight, bias, stride, padding, dilation, groups, allow_no_filters=False,
            relu=False):
    check_float_tensor(input, "conv2d", "input")
    check_float_tensor(weight, "conv2d", "weight")
    if bias is not None:
        check_float_tensor(bias, "conv2d", "bias")
    geom = ConvGeometry.from_shapes(input.shape, weight.shape, stride, padding, dilation, groups,
                                    "conv2d", allow_no_filters)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},) (one per filter), "
                         f"got {bias.shape}")
    devices = {t.device for t in (input, weight, bias) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"conv2d: expected all tensors on the same device, got "
                         f"{sorted(devices)}")
    return (Conv2dReLU if relu else Conv2d).apply(input, weight, bias, geom)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None,
           _relu: bool = False) -> Tensor:
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
    y = _conv2d(input.reshape(n, F_, 1, 1), weight.reshape(O, F_, 1, 1), bias, 1, 0, 1, 1,
                allow_no_filters=True, relu=_relu)
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
    # dgrad stride phases: strides beyond the kernel (pixels no tap reaches), gcd(stride, dilation)
    _case("s4-k1", 2, 5, 9, 7, 6, 1, 1, stride=4),
    _case("s3-k2", 1, 3, 10, 11, 4, 2, 2, stride=3, padding=(1, 0)),
    _case("s2-d2", 2, 3, 13, 12, 5, 3, 3, stride=2, padding=2, dilation=2),
    _case("s3x2-k5-d2", 1, 4, 17, 14, 3, 5, 3, stride=(3, 2), padding=(2, 1), dilation=(2, 3)),
    _case("wide-K", 1, 16, 6, 6, 70, 3, 3, padding=1),
    _case("deep-reduction", 2, 40, 6, 5, 33, 3, 3, padding=1),
    _case("linear", 7, 37, 1, 1, 13, 1, 1),
    _case("linear-batch1", 1, 50, 1, 1, 3, 1, 1),
    _case("empty-batch", 0, 3, 5, 5, 4, 3, 3),
]


# ---- benchmark cases (benchmarks/ops.py, benchmarks/model.py) -------------------------------------

# (label, N, C, H, W, K, R, S, stride, pad): LeNet, small 3x3s, CIFAR, ResNet-50, VGG, speech
BENCH_SHAPES = [
    ("lenet-conv1", 64, 1, 28, 28, 6, 5, 5, 1, 2),
    ("lenet-conv2", 64, 6, 14, 14, 16, 5, 5, 1, 0),
    ("lenet-conv1-n256", 256, 1, 28, 28, 6, 5, 5, 1, 2),
    ("lenet-conv2-n256", 256, 6, 14, 14, 16, 5, 5, 1, 0),
    ("3x3-26", 64, 32, 26, 26, 64, 3, 3, 1, 0),
    ("3x3-31", 1024, 24, 31, 31, 64, 3, 3, 1, 1),
    ("cifar-first", 512, 3, 32, 32, 64, 3, 3, 1, 1),
    ("resnet-stem", 32, 3, 224, 224, 64, 7, 7, 2, 3),
    ("resnet-3x3-56", 32, 64, 56, 56, 64, 3, 3, 1, 1),
    ("resnet-1x1-56", 32, 64, 56, 56, 256, 1, 1, 1, 0),
    ("resnet-3x3-28", 32, 128, 28, 28, 128, 3, 3, 1, 1),
    ("resnet-1x1-14", 32, 1024, 14, 14, 256, 1, 1, 1, 0),
    ("resnet-3x3-7", 32, 512, 7, 7, 512, 3, 3, 1, 1),
    ("vgg-224", 16, 64, 224, 224, 64, 3, 3, 1, 1),
    ("vgg-56", 16, 256, 56, 56, 256, 3, 3, 1, 1),
    ("speech", 16, 1, 161, 700, 32, 5, 20, 2, 0),
]


def bench_shapes(suite: str) -> list:
    """The shapes of a suite: the full ones, or scaled down (batch, image size, channels) so that
    ``small`` runs on cpu in minutes and ``tiny`` (five shapes) on sim in seconds."""
    def scale(c, n_div, hw_div, ch_max):
        label, N, C, H, W, K, R, S, st, p = c
        return (label, max(1, N // n_div), min(C, ch_max), max(H // hw_div, R + 1),
                max(W // hw_div, S + 1), min(K, ch_max), R, S, st, p)
    if suite == "full":
        return list(BENCH_SHAPES)
    if suite == "small":
        return [scale(c, 16, 4, 64) for c in BENCH_SHAPES]
    pick = ("lenet-conv1", "lenet-conv2", "resnet-stem", "resnet-1x1-56", "speech")
    return [scale(c, 64, 8, 8) for c in BENCH_SHAPES if c[0] in pick]


def bench_case(label, N, C, H, W, K, R, S, st, p) -> list:
    """The three directions of one conv shape (stride and padding the same on both axes)."""
    stride, pads, dil = (st, st), (p, p, p, p), (1, 1)
    P, Q = output_size((H, W), (R, S), stride, pads, dil)
    params = dict(N=N, C=C, H=H, W=W, K=K, R=R, S=S, P=P, Q=Q, stride=st, pad=p, dilation=1)
    shape = f"{N}x{C}x{H}x{W}->{K} {R}x{S}/{st} p{p}"

    def make(rng):
        return {"x": rng.standard_normal((N, C, H, W), dtype=np.float32),
                "w": rng.standard_normal((K, C, R, S), dtype=np.float32) / np.float32(
                    np.sqrt(C * R * S)),
                "dy": rng.standard_normal((N, K, P, Q), dtype=np.float32)}

    runs = {
        "fwd": lambda dv, i, v: forward(dv, i["x"], i["w"], None, stride, pads, dil, version=v),
        "dgrad": lambda dv, i, v: backward_data(dv, i["dy"], i["w"], i["x"].shape, stride, pads,
                                                dil, version=v),
        "wgrad": lambda dv, i, v: backward_weight(dv, i["dy"], i["x"], i["w"].shape, stride,
                                                  pads, dil, version=v),
    }

    def torch_fn(direction):
        def run(torch, i):
            if direction == "fwd":
                return torch.nn.functional.conv2d(i["x"], i["w"], None, st, p)
            mask = [direction == "dgrad", direction == "wgrad", False]
            gx, gw, _ = torch.ops.aten.convolution_backward(
                i["dy"], i["x"], i["w"], None, [st, st], [p, p], [1, 1], False, [0, 0], 1, mask)
            return gx if direction == "dgrad" else gw
        return run
    flops = 2.0 * N * K * P * Q * C * R * S
    nx, nw, ny = N * C * H * W, K * C * R * S, N * K * P * Q
    moved = {"fwd": nx + nw + ny, "dgrad": ny + nw + nx, "wgrad": ny + nx + nw}
    return [BenchCase("conv2d", d, label, shape, params, make, runs[d], torch_fn(d), flops=flops,
                      bytes=4.0 * moved[d], reduce_len=max(C * R * S, N * P * Q, K * R * S),
                      tf32=True)
            for d in ("fwd", "dgrad", "wgrad")]


def _bench(suite: str) -> list:
    return [c for shp in bench_shapes(suite) for c in bench_case(*shp)]


SPEC = register(OpSpec("conv2d", _cases, _compute, versions=(0, 1), bench=_bench,
                       doc="conv2d forward (plain and fused ReLU), dgrad, wgrad, bias grad"))
