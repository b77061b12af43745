// pool2d.cuh — max and average pooling over NCHW planes, forward and backward.
//
//   max   y[n,c,p,q] = max over the window's cells inside the input (padding never wins);
//         a NaN in the window wins (the first NaN); ties keep the first maximum in row-major
//         window order; idx[n,c,p,q] = h*W + w of the winner within its plane (PyTorch's indices)
//   avg   y[n,c,p,q] = sum of the window's cells inside the input / divisor, where the divisor is
//         divisor_override if given, else the window clipped to the explicitly padded input
//         (count_include_pad) or to the input itself — never the cells ceil_mode adds
//
// Windows start at p*sh - pt, q*sw - pl (top/left padding; bottom/right only change P and Q, so
// Keras's asymmetric "same" needs nothing here) and step by the dilation (max only).
//
// Backward is a gather, not a scatter: each input cell sums the gradients of the windows that
// contain it (for max, the windows whose saved index is this cell), visiting them in a fixed order.
// Overlapping windows (3x3 stride 2) are exact, there are no atomics, and results are bitwise
// reproducible. Pooling is memory-bound: one thread per element, grid-stride, 64-bit offsets.
// There is one version (the direct kernel is already the memory-bound optimum's shape).
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "simt.h"

namespace cucnn {

struct PoolShape {
  int64_t planes;  // N * C
  int H, W, P, Q;
  int R, S, sh, sw, pt, pb, pl, pr, dh, dw;
};

// The window of output (p, q) along one axis, clipped: [start, end) in input coordinates with the
// dilation step, and the first index whose cell is inside the input.
__device__ __forceinline__ int window_first(int start, int d) {
  // smallest r >= 0 with start + r*d >= 0
  return start >= 0 ? 0 : (-start + d - 1) / d;
}

// y, idx are (planes, P, Q); x is (planes, H, W)
__global__ void max_pool2d_forward_kernel(float* __restrict__ y, int64_t* __restrict__ idx,
                                          const float* __restrict__ x, PoolShape s) {
  const int64_t total = s.planes * s.P * s.Q;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int q = static_cast<int>(i % s.Q), p = static_cast<int>(i / s.Q % s.P);
    const int64_t plane = i / (static_cast<int64_t>(s.P) * s.Q);
    const float* xp = x + plane * s.H * s.W;
    const int h0 = p * s.sh - s.pt, w0 = q * s.sw - s.pl;
    float m = -__builtin_huge_valf();
    int64_t arg = -1;
    for (int r = window_first(h0, s.dh); r < s.R; ++r) {
      const int ih = h0 + r * s.dh;
      if (ih >= s.H) break;
      for (int t = window_first(w0, s.dw); t < s.S; ++t) {
        const int iw = w0 + t * s.dw;
        if (iw >= s.W) break;
        const float v = xp[ih * s.W + iw];
        // strict '>' keeps the first of equal maxima; the first NaN wins and stays
        if (arg < 0 || v > m || (v != v && m == m)) {
          m = v;
          arg = static_cast<int64_t>(ih) * s.W + iw;
        }
      }
    }
    y[i] = m;
    idx[i] = arg;
  }
}

// dx is (planes, H, W); dy, idx are (planes, P, Q)
__global__ void max_pool2d_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                           const int64_t* __restrict__ idx, PoolShape s) {
  const int64_t total = s.planes * s.H * s.W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int iw = static_cast<int>(i % s.W), ih = static_cast<int>(i / s.W % s.H);
    const int64_t plane = i / (static_cast<int64_t>(s.H) * s.W);
    const int64_t me = static_cast<int64_t>(ih) * s.W + iw;
    const float* g = dy + plane * s.P * s.Q;
    const int64_t* ix = idx + plane * s.P * s.Q;
    float acc = 0.0f;
    // every (p, r) with p*sh - pt + r*dh == ih, in increasing p (then q): a fixed order
    for (int r = s.R - 1; r >= 0; --r) {
      const int hp = ih + s.pt - r * s.dh;
      if (hp < 0 || hp % s.sh) continue;
      const int p = hp / s.sh;
      if (p >= s.P) continue;
      for (int t = s.S - 1; t >= 0; --t) {
        const int wp = iw + s.pl - t * s.dw;
        if (wp < 0 || wp % s.sw) continue;
        const int q = wp / s.sw;
        if (q >= s.Q) continue;
        const int64_t o = static_cast<int64_t>(p) * s.Q + q;
        if (ix[o] == me) acc += g[o];
      }
    }
    dx[i] = acc;
  }
}

// The divisor of window (p, q); see the header.
__device__ __forceinline__ float avg_divisor(const PoolShape& s, int p, int q, int include_pad,
                                             int divisor_override) {
  if (divisor_override > 0) return static_cast<float>(divisor_override);
  int hs = p * s.sh - s.pt, ws = q * s.sw - s.pl;
  int he = hs + s.R < s.H + s.pb ? hs + s.R : s.H + s.pb;
  int we = ws + s.S < s.W + s.pr ? ws + s.S : s.W + s.pr;
  if (!include_pad) {
    hs = hs > 0 ? hs : 0;
    ws = ws > 0 ? ws : 0;
    he = he < s.H ? he : s.H;
    we = we < s.W ? we : s.W;
  }
  return static_cast<float>((he - hs) * (we - ws));
}

// y is (planes, P, Q); x is (planes, H, W). No dilation (as PyTorch's avg_pool2d).
__global__ void avg_pool2d_forward_kernel(float* __restrict__ y, const float* __restrict__ x,
                                          PoolShape s, int include_pad, int divisor_override) {
  const int64_t total = s.planes * s.P * s.Q;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int q = static_cast<int>(i % s.Q), p = static_cast<int>(i / s.Q % s.P);
    const int64_t plane = i / (static_cast<int64_t>(s.P) * s.Q);
    const float* xp = x + plane * s.H * s.W;
    const int h0 = p * s.sh - s.pt, w0 = q * s.sw - s.pl;
    float acc = 0.0f;
    for (int ih = h0 > 0 ? h0 : 0; ih < h0 + s.R && ih < s.H; ++ih)
      for (int iw = w0 > 0 ? w0 : 0; iw < w0 + s.S && iw < s.W; ++iw)
        acc += xp[static_cast<int64_t>(ih) * s.W + iw];  // H * W may pass 2**31
    y[i] = acc / avg_divisor(s, p, q, include_pad, divisor_override);
  }
}

// dx is (planes, H, W); dy is (planes, P, Q)
__global__ void avg_pool2d_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                           PoolShape s, int include_pad, int divisor_override) {
  const int64_t total = s.planes * s.H * s.W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int iw = static_cast<int>(i % s.W), ih = static_cast<int>(i / s.W % s.H);
    const int64_t plane = i / (static_cast<int64_t>(s.H) * s.W);
    const float* g = dy + plane * s.P * s.Q;
    // windows containing ih: p*sh - pt <= ih < p*sh - pt + R
    const int p_lo = ih + s.pt - s.R + 1 > 0 ? simt::ceil_div(ih + s.pt - s.R + 1, s.sh) : 0;
    const int p_hi = (ih + s.pt) / s.sh < s.P - 1 ? (ih + s.pt) / s.sh : s.P - 1;
    const int q_lo = iw + s.pl - s.S + 1 > 0 ? simt::ceil_div(iw + s.pl - s.S + 1, s.sw) : 0;
    const int q_hi = (iw + s.pl) / s.sw < s.Q - 1 ? (iw + s.pl) / s.sw : s.Q - 1;
    float acc = 0.0f;
    for (int p = p_lo; p <= p_hi; ++p)
      for (int q = q_lo; q <= q_hi; ++q)
        acc += g[static_cast<int64_t>(p) * s.Q + q] /
               avg_divisor(s, p, q, include_pad, divisor_override);
    dx[i] = acc;
  }
}

// ---- launchers ------------------------------------------------------------------------------------

constexpr int kPoolBlock = 256;

inline dim3 pool_grid(int64_t n) { return dim3(grid_stride_blocks(n, kPoolBlock)); }

// y, idx (planes, P, Q) from x (planes, H, W).
inline void max_pool2d_forward(float* y, int64_t* idx, const float* x, const PoolShape& s,
                               cudaStream_t stream) {
  simt::launch(max_pool2d_forward_kernel, pool_grid(s.planes * s.P * s.Q), dim3(kPoolBlock), 0,
               stream, y, idx, x, s);
}

inline void max_pool2d_backward(float* dx, const float* dy, const int64_t* idx,
                                const PoolShape& s, cudaStream_t stream) {
  simt::launch(max_pool2d_backward_kernel, pool_grid(s.planes * s.H * s.W), dim3(kPoolBlock), 0,
               stream, dx, dy, idx, s);
}

inline void avg_pool2d_forward(float* y, const float* x, const PoolShape& s, bool include_pad,
                               int divisor_override, cudaStream_t stream) {
  simt::launch(avg_pool2d_forward_kernel, pool_grid(s.planes * s.P * s.Q), dim3(kPoolBlock), 0,
               stream, y, x, s, include_pad ? 1 : 0, divisor_override);
}

inline void avg_pool2d_backward(float* dx, const float* dy, const PoolShape& s, bool include_pad,
                                int divisor_override, cudaStream_t stream) {
  simt::launch(avg_pool2d_backward_kernel, pool_grid(s.planes * s.H * s.W), dim3(kPoolBlock), 0,
               stream, dx, dy, s, include_pad ? 1 : 0, divisor_override);
}

}  // namespace cucnn
