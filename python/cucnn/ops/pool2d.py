"""max_pool2d and avg_pool2d (kernels: csrc/kernels/pool2d.cuh), PyTorch's arguments and edge
semantics, plus Keras's "valid"/"same" padding.

* Padding: an int, a pair, explicit ``(top, bottom, left, right)`` (TensorFlow/ONNX uneven
  paddings; explicit padding is padding for ``count_include_pad``), "valid" or "same".
* Output size: floor (or ceil with ``ceil_mode``) of (H + top + bottom - dilation*(k-1) - 1)/stride
  + 1, rounding towards -inf as PyTorch does (so with ceil_mode a kernel larger than the padded
  input gives one window); with ceil_mode the last window must start inside the input or the
  left padding, else it is dropped. A window entirely in the padding (possible with dilation)
  gives -inf with index -1 and passes no gradient. "same": output ceil(H/stride), asymmetric
  padding (odd pixel bottom/right) that never wins a max and is never counted in an average.
  Padding over half the kernel is an error, and so are sizes past the kernels' 32-bit indexing.
* max: NaN propagates (the first NaN in the window wins, and its index points at it); ties keep
  the first maximum in row-major window order; ``return_indices`` gives h*W + w per plane.
* avg: ``count_include_pad`` counts explicit padding, never the cells ceil_mode adds;
  ``divisor_override`` replaces the divisor.

Max pooling keeps its indices for backward; average pooling keeps nothing but shapes.
"""
from __future__ import annotations

import numpy as np

from .. import _backend
from ..tensor import Function, Tensor, check_float_tensor
from ._geometry import output_length, resolve_padding
from ._spec import BenchCase, Case, OpSpec, int_pair, nasty, register

_INT32_MAX = 2 ** 31 - 1  # the kernels index a plane's rows and columns with int

# ---- geometry -------------------------------------------------------------------------------------


def geometry(hw, kernel_size, stride, padding, dilation, ceil_mode, what):
    """(kernel, stride, (top, bottom, left, right), dilation, (P, Q), same) for an input of size
    hw, every argument checked. padding: an int, a pair, (top, bottom, left, right) (each side at
    most half the effective kernel, as PyTorch's symmetric rule), "valid" or "same". The padding
    and the output sizes are convolution's (ops/_geometry.py: resolve_padding, output_length with
    ceil_mode); "same" gives ceil(H / stride) whatever ceil_mode."""
    kernel = int_pair(kernel_size, "kernel_size", 1, what)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else int_pair(stride, "stride", 1, what)
    dilation = int_pair(dilation, "dilation", 1, what)
    eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    same = isinstance(padding, str) and padding == "same"
    pads = resolve_padding(padding, hw, kernel, stride, dilation, what)
    if not isinstance(padding, str):
        for p, e in zip(pads, (eff[0], eff[0], eff[1], eff[1])):
            if 2 * p > e:
                raise ValueError(f"{what}: padding should be at most half of the effective "
                                 f"kernel size, got padding {padding}, kernel_size {kernel_size}"
                                 f" and dilation {dilation}")
    out = []
    for size, k, e, s, d, lo, hi in ((hw[0], kernel[0], eff[0], stride[0], dilation[0], pads[0],
                                      pads[1]),
                                     (hw[1], kernel[1], eff[1], stride[1], dilation[1], pads[2],
                                      pads[3])):
        o = output_length(size, k, s, lo, hi, d, ceil_mode=ceil_mode and not same)
        if size + lo + hi + e + s > _INT32_MAX:
            raise ValueError(f"{what}: input {hw[0]}x{hw[1]} with padding {padding}, kernel_size "
                             f"{kernel_size}, stride {stride} and dilation {dilation} exceeds the "
                             f"32-bit indexing of the pooling kernels (padded size plus "
                             f"effective kernel plus stride must be below 2**31 on each axis)")
        out.append(max(o, 0))
    if out[0] <= 0 or out[1] <= 0:
        raise ValueError(f"{what}: output size would be {out[0]}x{out[1]} for input {hw[0]}x"
                         f"{hw[1]}, kernel_size {kernel}, stride {stride}, padding {padding}, "
                         f"dilation {dilation}")
    return kernel, stride, pads, dilation, tuple(out), same


# ---- oracle ---------------------------------------------------------------------------------------


def _axis_range(size, out, st, offset):
    """Outputs o in [lo, hi) whose tap at ``offset`` (o*st + offset) lies inside [0, size), and the
    input slice those taps read; None when there are none."""
    lo = max(0, -(offset // st))  # ceil(-offset / st): the first tap at or after row 0
    hi = min(out, (size - 1 - offset) // st + 1) if offset < size else 0
    if lo >= hi:
        return None
    start = lo * st + offset
    return slice(lo, hi), slice(start, start + (hi - lo - 1) * st + 1, st)


def _taps(H, W, P, Q, kernel, stride, pads, dilation):
    """For each tap (r, s) in row-major window order that some window reads inside the input:
    (output rows, output columns, input rows, input columns) as slices. Taps in the padding are
    left out, so every array operation below is on views, never on gathered copies."""
    for r in range(kernel[0]):
        rows = _axis_range(H, P, stride[0], r * dilation[0] - pads[0])
        for s in range(kernel[1]):
            cols = _axis_range(W, Q, stride[1], s * dilation[1] - pads[2])
            if rows is not None and cols is not None:
                yield rows[0], cols[0], rows[1], cols[1]


def _inside(H, W, P, Q, kernel, stride, pads, dilation) -> bool:
    """Every tap of every window reads the input (no padding, no ceil overhang)."""
    return not any(pads) and (P - 1) * stride[0] + (kernel[0] - 1) * dilation[0] < H \
        and (Q - 1) * stride[1] + (kernel[1] - 1) * dilation[1] < W


def max_forward_oracle(xp, x, kernel, stride, pads, dilation, out):
    """Scan the taps in row-major window order with the kernel's update rule."""
    N, C, H, W = x.shape
    P, Q = out
    if x.size == 0:  # no window to scan (and no (P, Q) index plane to build)
        return xp.empty((N, C, P, Q), dtype=x.dtype), xp.empty((N, C, P, Q), dtype=np.int64)
    if xp is np and _inside(H, W, P, Q, kernel, stride, pads, dilation):
        fast = _max_forward_inside(x, kernel, stride, dilation, out)
        if fast is not None:
            return fast
    m = xp.full((N, C, P, Q), -np.inf, dtype=x.dtype)
    idx = xp.full((N, C, P, Q), -1, dtype=np.int64)
    for ps, qs, hs, ws in _taps(H, W, P, Q, kernel, stride, pads, dilation):
        v, mv, iv = x[:, :, hs, ws], m[:, :, ps, qs], idx[:, :, ps, qs]
        take = (iv < 0) | (v > mv) | (xp.isnan(v) & ~xp.isnan(mv))
        flat = xp.asarray(np.arange(H)[hs][:, None] * W + np.arange(W)[ws][None, :])
        m[:, :, ps, qs] = xp.where(take, v, mv)
        idx[:, :, ps, qs] = xp.where(take, flat, iv)
    return m, idx


def _max_forward_inside(x, kernel, stride, dilation, out):
    """The same rule when no tap falls outside the input, on strided views: the maximum by a
    chain of np.maximum (which propagates NaN), then the index of the first tap equal to it.
    Windows holding a NaN (no tap equals NaN) take the general scan."""
    W = x.shape[3]
    P, Q = out
    taps = [(r, s) for r in range(kernel[0]) for s in range(kernel[1])]
    views = [x[:, :, r * dilation[0]:r * dilation[0] + stride[0] * (P - 1) + 1:stride[0],
               s * dilation[1]:s * dilation[1] + stride[1] * (Q - 1) + 1:stride[1]]
             for r, s in taps]
    m = views[0].copy()
    for v in views[1:]:
        np.maximum(m, v, out=m)
    if np.isnan(m).any():
        return None
    small = np.uint8 if len(taps) <= 255 else np.int64  # tap numbers: a quarter of the traffic
    t = np.full(m.shape, len(taps) - 1, dtype=small)
    for k in range(len(taps) - 2, -1, -1):  # backwards, so the first equal tap wins
        # t = k where equal; arithmetic on a 0/1 array beats masked stores and np.where
        t -= (t - small(k)) * (views[k] == m).view(np.uint8).astype(small, copy=False)
    offset = np.array([r * dilation[0] * W + s * dilation[1] for r, s in taps], dtype=np.int64)
    base = (np.arange(P)[:, None] * stride[0] * W + np.arange(Q)[None, :] * stride[1])
    return m, offset[t] + base


def max_backward_oracle(xp, dy, idx, x_shape, overlap=True):
    """Scatter-add each output's gradient to its argmax. Where windows overlap, one input cell can
    be chosen by several outputs: bincount sums them (in float64, then rounded once); where they
    cannot, no cell is chosen twice and a plain scatter does."""
    N, C, H, W = x_shape
    rows = xp.repeat(xp.arange(N * C), dy.shape[2] * dy.shape[3])
    idx, g = idx.reshape(-1), dy.reshape(-1)
    valid = idx >= 0  # -1: a window entirely in the padding chose no cell and passes no gradient
    if not bool(valid.all()):
        rows, idx, g = rows[valid], idx[valid], g[valid]
    if overlap:
        flat = rows * (H * W) + idx
        dx = xp.bincount(flat, weights=g, minlength=N * C * H * W)
        return dx.astype(dy.dtype, copy=False).reshape(x_shape)
    dx = xp.zeros((N * C, H * W), dtype=dy.dtype)
    dx[rows, idx] = g
    return dx.reshape(x_shape)


def _divisors(H, W, P, Q, kernel, stride, pads, include_pad, divisor_override):
    if divisor_override:
        return np.full((P, Q), float(divisor_override))
    hs = np.arange(P) * stride[0] - pads[0]
    ws = np.arange(Q) * stride[1] - pads[2]
    he, we = np.minimum(hs + kernel[0], H + pads[1]), np.minimum(ws + kernel[1], W + pads[3])
    if not include_pad:
        hs, ws, he, we = np.maximum(hs, 0), np.maximum(ws, 0), np.minimum(he, H), np.minimum(we, W)
    return (he - hs)[:, None] * (we - ws)[None, :].astype(np.float64)


def avg_forward_oracle(xp, x, kernel, stride, pads, out, include_pad, divisor_override):
    N, C, H, W = x.shape
    P, Q = out
    acc = xp.zeros((N, C, P, Q), dtype=x.dtype)
    with np.errstate(invalid="ignore"):  # inf + -inf is NaN, as in the kernel
        for ps, qs, hs, ws in _taps(H, W, P, Q, kernel, stride, pads, (1, 1)):
            acc[:, :, ps, qs] += x[:, :, hs, ws]  # taps in window order, as the kernel sums
    div = _divisors(H, W, P, Q, kernel, stride, pads, include_pad, divisor_override)
    return acc / xp.asarray(div, dtype=x.dtype)


def avg_backward_oracle(xp, dy, x_shape, kernel, stride, pads, include_pad, divisor_override):
    N, C, H, W = x_shape
    P, Q = dy.shape[2:]
    g = dy / xp.asarray(_divisors(H, W, P, Q, kernel, stride, pads, include_pad,
                                  divisor_override), dtype=dy.dtype)
    dx = xp.zeros((N, C, H, W), dtype=dy.dtype)
    for ps, qs, hs, ws in _taps(H, W, P, Q, kernel, stride, pads, (1, 1)):
        dx[:, :, hs, ws] += g[:, :, ps, qs]  # within one tap no two outputs share an input
    return dx


# ---- dispatch -------------------------------------------------------------------------------------


def max_forward(device, x, kernel, stride, pads, dilation, out):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return max_forward_oracle(xp, x, kernel, stride, pads, dilation, out)
    x = xp.ascontiguousarray(x)
    y = _backend.empty(device, x.shape[:2] + tuple(out))
    idx = _backend.empty(device, x.shape[:2] + tuple(out), np.int64)
    mod.max_pool2d_forward(x, y, idx, kernel, stride, pads, dilation, _backend.stream(device))
    return y, idx


def max_backward(device, dy, idx, x_shape, kernel, stride, pads, dilation):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        overlap = any(s < (k - 1) * d + 1 for k, s, d in zip(kernel, stride, dilation))
        return max_backward_oracle(xp, dy, idx, x_shape, overlap)
    dx = _backend.empty(device, x_shape)
    mod.max_pool2d_backward(xp.ascontiguousarray(dy), xp.ascontiguousarray(idx), dx, kernel,
                            stride, pads, dilation, _backend.stream(device))
    return dx


def avg_forward(device, x, kernel, stride, pads, out, include_pad, divisor_override):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return avg_forward_oracle(xp, x, kernel, stride, pads, out, include_pad, divisor_override)
    x = xp.ascontiguousarray(x)
    y = _backend.empty(device, x.shape[:2] + tuple(out))
    mod.avg_pool2d_forward(x, y, kernel, stride, pads, bool(include_pad),
                           int(divisor_override or 0), _backend.stream(device))
    return y


def avg_backward(device, dy, x_shape, kernel, stride, pads, include_pad, divisor_override):
    mod, xp = _backend.native(device), _backend.xp_of(device)
    if mod is None:
        return avg_backward_oracle(xp, dy, x_shape, kernel, stride, pads, include_pad,
                                   divisor_override)
    dx = _backend.empty(device, x_shape)
    mod.avg_pool2d_backward(xp.ascontiguousarray(dy), dx, kernel, stride, pads, bool(include_pad),
                            int(divisor_override or 0), _backend.stream(device))
    return dx


# ---- autograd -------------------------------------------------------------------------------------


class MaxPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, pads, dilation, out):
        y, idx = max_forward(ctx.device, x, kernel, stride, pads, dilation, out)
        ctx.save_for_backward(idx)  # indices only: backward needs nothing else
        ctx.args = (x.shape, kernel, stride, pads, dilation)
        return y, idx

    @staticmethod
    def backward(ctx, dy, _didx):
        (idx,) = ctx.saved_tensors
        return (max_backward(ctx.device, dy, idx, *ctx.args),) + (None,) * 5


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, pads, out, include_pad, divisor_override):
        ctx.args = (x.shape, kernel, stride, pads, include_pad, divisor_override)
        return avg_forward(ctx.device, x, kernel, stride, pads, out, include_pad,
                           divisor_override)

    @staticmethod
    def backward(ctx, dy):
        return (avg_backward(ctx.device, dy, *ctx.args),) + (None,) * 6


# ---- functional -----------------------------------------------------------------------------------


def _check(x, what):
    check_float_tensor(x, what)
    if x.ndim != 4:
        raise ValueError(f"{what}: input must be 4-D (N, C, H, W), got shape {x.shape}")


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """Max over each window; with return_indices also the flat h*W + w of each maximum."""
    _check(input, "max_pool2d")
    kernel, stride, pads, dilation, out, _ = geometry(input.shape[2:], kernel_size, stride,
                                                      padding, dilation, ceil_mode, "max_pool2d")
    y, idx = MaxPool2d.apply(input, kernel, stride, pads, dilation, out)
    return (y, idx) if return_indices else y


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None):
    """Mean over each window (see the module docstring for the divisor)."""
    _check(input, "avg_pool2d")
    if divisor_override is not None and (isinstance(divisor_override, bool) or
                                         not isinstance(divisor_override, (int, np.integer))
                                         or divisor_override <= 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got "
                         f"{divisor_override!r}")
    kernel, stride, pads, _, out, same = geometry(input.shape[2:], kernel_size, stride, padding,
                                                  1, ceil_mode, "avg_pool2d")
    include_pad = bool(count_include_pad) and not same  # Keras never counts "same" padding
    return AvgPool2d.apply(input, kernel, stride, pads, out, include_pad, divisor_override)


# ---- spec -----------------------------------------------------------------------------------------


def _compute(device, inputs, version):
    x, dy, g = inputs["x"], inputs["dy"], inputs["geometry"]
    kernel, stride, pads, dilation, out = g
    y, idx = max_forward(device, x, kernel, stride, pads, dilation, out)
    res = {"max_y": y, "max_idx": idx,
           "max_dx": max_backward(device, dy, idx, x.shape, kernel, stride, pads, dilation)}
    if dilation == (1, 1):
        for inc in (True, False):
            tag = "incl" if inc else "excl"
            res[f"avg_{tag}_y"] = avg_forward(device, x, kernel, stride, pads, out, inc, None)
            res[f"avg_{tag}_dx"] = avg_backward(device, dy, x.shape, kernel, stride, pads, inc,
                                                None)
        res["avg_div3_y"] = avg_forward(device, x, kernel, stride, pads, out, True, 3)
        res["avg_div3_dx"] = avg_backward(device, dy, x.shape, kernel, stride, pads, True, 3)
    return res


def _case(name, N, C, H, W, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
          special=None):
    g = geometry((H, W), kernel_size, stride, padding, dilation, ceil_mode, "case")
    kernel, stride_, pads, dilation_, out, _ = g

    def make(rng):
        if special == "ties":
            x = rng.integers(-2, 3, size=(N, C, H, W)).astype(np.float64)  # many equal maxima
        else:
            x = nasty(rng, (N, C, H, W))
        if special == "nonfinite" and x.size:
            flat = x.reshape(-1)
            flat[rng.choice(flat.size, size=max(1, flat.size // 6), replace=False)] = np.nan
            flat[rng.choice(flat.size, size=max(1, flat.size // 8), replace=False)] = np.inf
            flat[rng.choice(flat.size, size=max(1, flat.size // 8), replace=False)] = -np.inf
            x[0, 0, :, :] = -np.inf  # a plane of -inf: index must still point inside it
        # Exactly representable in float32, so the oracle sees the very ties the kernel sees.
        x = x.astype(np.float32).astype(np.float64)
        return {"x": x, "dy": nasty(rng, (N, C) + out),
                "geometry": (kernel, stride_, pads, dilation_, out)}

    return Case(f"{name}-{N}x{C}x{H}x{W}", make, reduce_len=kernel[0] * kernel[1])


_cases = [
    _case("2x2s2", 2, 3, 8, 6, 2),
    _case("3x3s2p1-resnet", 2, 2, 9, 11, 3, 2, 1),
    _case("3x3s1-overlap", 1, 3, 7, 8, 3, 1),
    _case("ceil-7to4", 2, 2, 7, 7, 2, 2, ceil_mode=True),
    _case("ceil-3x3s2p1", 1, 2, 10, 9, 3, 2, 1, ceil_mode=True),
    _case("global", 2, 3, 5, 7, (5, 7)),
    _case("1x1", 2, 2, 4, 5, 1),
    _case("nonsquare", 2, 2, 9, 10, (3, 2), (2, 3), (1, 0)),
    _case("dilation2", 2, 2, 11, 10, 3, 1, 1, dilation=2),
    _case("same-s2", 2, 2, 9, 8, 3, 2, "same"),
    _case("same-s2-2x2", 1, 2, 7, 7, 2, 2, "same"),
    _case("valid", 1, 2, 9, 9, 3, 3, "valid"),
    _case("asym-3x3s2", 2, 3, 9, 10, 3, 2, (0, 1, 1, 0)),
    _case("asym-2x2s2-sameupper", 1, 2, 7, 7, 2, 2, (0, 1, 0, 1)),
    _case("asym-ceil", 1, 2, 8, 9, 3, 2, (1, 0, 0, 1), ceil_mode=True),
    _case("asym-dil2", 1, 2, 11, 9, 3, 1, (2, 0, 1, 2), dilation=2),
    _case("N1-odd", 1, 5, 13, 11, 3, 2),
    _case("lenet", 3, 6, 28, 28, 2),
    _case("empty-batch", 0, 3, 6, 6, 2),
    _case("window-in-padding", 2, 2, 2, 3, (2, 2), (1, 1), (1, 0), dilation=(3, 1)),
    _case("ceil-kernel-over-input", 1, 2, 5, 5, 7, 3, ceil_mode=True),
    _case("ties", 2, 2, 8, 9, 3, 2, 1, special="ties"),
    _case("nonfinite", 2, 2, 9, 8, 3, 2, 1, special="nonfinite"),
    _case("nonfinite-overlap", 1, 3, 6, 7, 3, 1, special="nonfinite"),
]



# ---- benchmark cases (benchmarks/ops.py, benchmarks/model.py) -------------------------------------

# (label, op, N, C, H, W, kernel, stride, pad)
BENCH_SHAPES = [
    ("max-3x3s2p1", "max", 32, 64, 112, 112, 3, 2, 1),
    ("max-2x2s2", "max", 1024, 64, 31, 31, 2, 2, 0),
    ("avg-lenet1", "avg", 64, 6, 28, 28, 2, 2, 0),
    ("avg-lenet2", "avg", 64, 16, 10, 10, 2, 2, 0),
]


def bench_shapes(suite: str) -> list:
    if suite == "full":
        return list(BENCH_SHAPES)
    if suite == "small":
        return [(lb, op, max(1, N // 16), C, max(H // 4, 6), max(W // 4, 6), k, s, p)
                for lb, op, N, C, H, W, k, s, p in BENCH_SHAPES]
    return [(lb, op, 1, 3, 9, 10, k, s, p) for lb, op, N, C, H, W, k, s, p in BENCH_SHAPES[1:3]]


def bench_case(label, op, N, C, H, W, k, s, p) -> list:
    """Forward and backward of one pooling shape (square window, PyTorch defaults otherwise)."""
    kernel, stride, pads, dil, out, _ = geometry((H, W), k, s, p, 1, False, "bench")
    P, Q = out
    shape = f"{N}x{C}x{H}x{W} {k}x{k}/{s} p{p}"
    params = dict(N=N, C=C, H=H, W=W, P=P, Q=Q, kernel=k, stride=s, pad=p)

    def make(rng):
        return {"x": rng.standard_normal((N, C, H, W), dtype=np.float32),
                "dy": rng.standard_normal((N, C, P, Q), dtype=np.float32)}
    nin, nout = N * C * H * W, N * C * P * Q
    if op == "max":
        def fwd(dv, i, v):
            return max_forward(dv, i["x"], kernel, stride, pads, dil, out)[0]

        def bwd(dv, i, v):
            _, idx = i.setdefault("_fwd", max_forward(dv, i["x"], kernel, stride, pads, dil, out))
            return max_backward(dv, i["dy"], idx, i["x"].shape, kernel, stride, pads, dil)

        def t_fwd(torch, i):
            return torch.nn.functional.max_pool2d(i["x"], k, s, p)

        def t_bwd(torch, i):
            _, idx = i.setdefault("_fwd", torch.nn.functional.max_pool2d(
                i["x"], k, s, p, return_indices=True))
            return torch.ops.aten.max_pool2d_with_indices_backward(
                i["dy"], i["x"], [k, k], [s, s], [p, p], [1, 1], False, idx)
        fb, bb = 4 * nin + 12 * nout, 12 * nout + 4 * nin  # int64 indices
    else:
        def fwd(dv, i, v):
            return avg_forward(dv, i["x"], kernel, stride, pads, out, True, None)

        def bwd(dv, i, v):
            return avg_backward(dv, i["dy"], i["x"].shape, kernel, stride, pads, True, None)

        def t_fwd(torch, i):
            return torch.nn.functional.avg_pool2d(i["x"], k, s, p)

        def t_bwd(torch, i):
            return torch.ops.aten.avg_pool2d_backward(i["dy"], i["x"], [k, k], [s, s], [p, p],
                                                      False, True, None)
        fb, bb = 4 * nin + 4 * nout, 4 * nout + 4 * nin
    name = f"{op}_pool2d"
    return [BenchCase(name, "fwd", label, shape, params, make, fwd, t_fwd,
                      bytes=fb, reduce_len=k * k),
            BenchCase(name, "bwd", label, shape, params, make, bwd, t_bwd, bytes=bb,
                      reduce_len=k * k)]


def _bench(suite: str) -> list:
    return [c for shp in bench_shapes(suite) for c in bench_case(*shp)]


SPEC = register(OpSpec("pool2d", _cases, _compute, versions=(1,), exact=("max_y", "max_idx"),
                       bench=_bench,
                       doc="max_pool2d (values, indices, dx) and avg_pool2d (three divisor modes)"))
