// adaptive_pool2d.cuh — adaptive average and max pooling of NCHW planes to any (P, Q), forward
// and backward.
//
//   window of output row p: [floor(p*H/P), ceil((p+1)*H/P))   (PyTorch's start/end formulas;
//   columns likewise with W, Q). Windows cover the input, may overlap, and for P > H repeat rows.
//   avg  y = sum over the window / its size
//   max  y = max over the window; a NaN wins (the first one), ties keep the first maximum in
//        row-major window order (as cucnn's max_pool2d); idx = h*W + w within the plane
//
// Backward is a gather, not a scatter: input row h lies in the windows p in
// [floor(h*P/H), ceil((h+1)*P/H) - 1], so each input cell sums its windows' gradients in a fixed
// order — no atomics, bitwise reproducible.
//
// Output 1x1 (global pooling, the head of every ResNet) has its own forward path: one warp per
// plane, lanes striding over H*W (coalesced), a shuffle tree combines them. The general path is
// one thread per output element (a window read per thread), version 0 of the global case too.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "simt.h"

namespace cucnn {

struct AdaptiveShape {
  int64_t planes;  // N * C
  int H, W, P, Q;
};

// 32-bit arithmetic: the binding checks that in * out + in + out fits (a 64-bit division costs
// dozens of instructions and doubled the registers of the backward kernel).
__device__ __forceinline__ int adaptive_start(int i, int in, int out) { return i * in / out; }
__device__ __forceinline__ int adaptive_end(int i, int in, int out) {
  return ((i + 1) * in + out - 1) / out;
}

// The max rule for a candidate v at index k against the current (m, arg): strict '>' keeps the
// first of equal maxima; the first NaN wins and stays.
__device__ __forceinline__ bool max_takes(float v, float m, int64_t arg) {
  return arg < 0 || v > m || (v != v && m == m);
}

// y is (planes, P, Q); x is (planes, H, W).
__global__ void adaptive_avg_pool2d_forward_kernel(float* __restrict__ y,
                                                   const float* __restrict__ x, AdaptiveShape s) {
  const int64_t total = s.planes * s.P * s.Q;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int q = static_cast<int>(i % s.Q), p = static_cast<int>(i / s.Q % s.P);
    const float* xp = x + i / (static_cast<int64_t>(s.P) * s.Q) * s.H * s.W;
    const int h0 = adaptive_start(p, s.H, s.P), h1 = adaptive_end(p, s.H, s.P);
    const int w0 = adaptive_start(q, s.W, s.Q), w1 = adaptive_end(q, s.W, s.Q);
    float acc = 0.0f;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) acc += xp[h * s.W + w];
    y[i] = acc / static_cast<float>((h1 - h0) * (w1 - w0));
  }
}

__global__ void adaptive_max_pool2d_forward_kernel(float* __restrict__ y,
                                                   int64_t* __restrict__ idx,
                                                   const float* __restrict__ x, AdaptiveShape s) {
  const int64_t total = s.planes * s.P * s.Q;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int q = static_cast<int>(i % s.Q), p = static_cast<int>(i / s.Q % s.P);
    const float* xp = x + i / (static_cast<int64_t>(s.P) * s.Q) * s.H * s.W;
    const int h0 = adaptive_start(p, s.H, s.P), h1 = adaptive_end(p, s.H, s.P);
    const int w0 = adaptive_start(q, s.W, s.Q), w1 = adaptive_end(q, s.W, s.Q);
    float m = -__builtin_huge_valf();
    int64_t arg = -1;
    for (int h = h0; h < h1; ++h)
      for (int w = w0; w < w1; ++w) {
        const float v = xp[h * s.W + w];
        if (max_takes(v, m, arg)) {
          m = v;
          arg = static_cast<int64_t>(h) * s.W + w;
        }
      }
    y[i] = m;
    idx[i] = arg;
  }
}

// ---- global (P = Q = 1): one warp per plane -------------------------------------------------------

constexpr int kGlobalBlock = 256;  // 8 planes per block

// y[plane] = mean of the plane. Lanes sum a strided share, then xor butterflies (a fixed tree).
__global__ void global_avg_pool2d_forward_kernel(float* __restrict__ y,
                                                 const float* __restrict__ x, int64_t planes,
                                                 int HW) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t pl = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
       pl < planes; pl += warps) {  // the same trip count for every lane of a warp
    const float* xp = x + pl * HW;
    float acc = 0.0f;
    for (int i = lane; i < HW; i += 32) acc += xp[i];
    acc = warp_reduce(acc, SumOp());
    if (lane == 0) y[pl] = acc / static_cast<float>(HW);
  }
}

// y[plane], idx[plane] = the plane's maximum and its first index, NaN first. The (value, index)
// rule is a total order (NaN > everything, then value, then lower index), so the butterfly gives
// every lane the same winner whatever the pairing.
__global__ void global_max_pool2d_forward_kernel(float* __restrict__ y, int64_t* __restrict__ idx,
                                                 const float* __restrict__ x, int64_t planes,
                                                 int HW) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / 32);
  for (int64_t pl = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
       pl < planes; pl += warps) {
    const float* xp = x + pl * HW;
    float m = -__builtin_huge_valf();
    int arg = -1;
    for (int i = lane; i < HW; i += 32) {  // increasing i: the lane's first max / first NaN
      const float v = xp[i];
      if (max_takes(v, m, arg)) {
        m = v;
        arg = i;
      }
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      const float om = __shfl_xor_sync(kFullMask, m, offset);
      const int oa = __shfl_xor_sync(kFullMask, arg, offset);
      // does the other lane's candidate beat ours? (an empty lane, arg < 0, never does)
      bool take;
      if (oa < 0 || arg < 0) {
        take = arg < 0 && oa >= 0;
      } else {
        const bool on = om != om, mn = m != m;
        take = on != mn ? on : (on ? oa < arg : (om > m || (om == m && oa < arg)));
      }
      if (take) {
        m = om;
        arg = oa;
      }
    }
    if (lane == 0) {
      y[pl] = m;
      idx[pl] = arg;
    }
  }
}

// ---- backward (gather) ----------------------------------------------------------------------------

// The windows containing input row h: [first, last].
__device__ __forceinline__ int adaptive_first(int h, int in, int out) { return h * out / in; }
__device__ __forceinline__ int adaptive_last(int h, int in, int out) {
  return ((h + 1) * out + in - 1) / in - 1;
}

// dx is (planes, H, W); dy is (planes, P, Q)
__global__ void adaptive_avg_pool2d_backward_kernel(float* __restrict__ dx,
                                                    const float* __restrict__ dy,
                                                    AdaptiveShape s) {
  const int64_t total = s.planes * s.H * s.W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int w = static_cast<int>(i % s.W), h = static_cast<int>(i / s.W % s.H);
    const float* g = dy + i / (static_cast<int64_t>(s.H) * s.W) * s.P * s.Q;
    const int p0 = adaptive_first(h, s.H, s.P), p1 = adaptive_last(h, s.H, s.P);
    const int q0 = adaptive_first(w, s.W, s.Q), q1 = adaptive_last(w, s.W, s.Q);
    float acc = 0.0f;
    for (int p = p0; p <= p1; ++p) {
      const int rows = adaptive_end(p, s.H, s.P) - adaptive_start(p, s.H, s.P);
      for (int q = q0; q <= q1; ++q) {
        const int cols = adaptive_end(q, s.W, s.Q) - adaptive_start(q, s.W, s.Q);
        acc += g[static_cast<int64_t>(p) * s.Q + q] / static_cast<float>(rows * cols);
      }
    }
    dx[i] = acc;
  }
}

__global__ void adaptive_max_pool2d_backward_kernel(float* __restrict__ dx,
                                                    const float* __restrict__ dy,
                                                    const int64_t* __restrict__ idx,
                                                    AdaptiveShape s) {
  const int64_t total = s.planes * s.H * s.W;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int w = static_cast<int>(i % s.W), h = static_cast<int>(i / s.W % s.H);
    const int64_t base = i / (static_cast<int64_t>(s.H) * s.W) * s.P * s.Q;
    const int64_t me = static_cast<int64_t>(h) * s.W + w;
    const int p0 = adaptive_first(h, s.H, s.P), p1 = adaptive_last(h, s.H, s.P);
    const int q0 = adaptive_first(w, s.W, s.Q), q1 = adaptive_last(w, s.W, s.Q);
    float acc = 0.0f;
    for (int p = p0; p <= p1; ++p)
      for (int q = q0; q <= q1; ++q) {
        const int64_t o = base + static_cast<int64_t>(p) * s.Q + q;
        if (idx[o] == me) acc += dy[o];
      }
    dx[i] = acc;
  }
}

// ---- launchers ------------------------------------------------------------------------------------

constexpr int kAdaptiveBlock = 256;

inline bool adaptive_is_global(const AdaptiveShape& s, int version) {
  return version >= 1 && s.P == 1 && s.Q == 1;
}

inline dim3 global_grid(int64_t planes) {
  const int64_t per = kGlobalBlock / 32;
  const int64_t blocks = (planes + per - 1) / per;
  return dim3(static_cast<unsigned>(blocks < 4096 ? blocks : 4096));
}

// y (planes, P, Q) from x (planes, H, W).
inline void adaptive_avg_pool2d_forward(float* y, const float* x, const AdaptiveShape& s,
                                        int version, cudaStream_t stream) {
  if (s.planes == 0) return;
  if (adaptive_is_global(s, version))
    simt::launch(global_avg_pool2d_forward_kernel, global_grid(s.planes), dim3(kGlobalBlock), 0,
                 stream, y, x, s.planes, s.H * s.W);
  else
    simt::launch(adaptive_avg_pool2d_forward_kernel,
                 dim3(grid_stride_blocks(s.planes * s.P * s.Q, kAdaptiveBlock)),
                 dim3(kAdaptiveBlock), 0, stream, y, x, s);
}

inline void adaptive_max_pool2d_forward(float* y, int64_t* idx, const float* x,
                                        const AdaptiveShape& s, int version,
                                        cudaStream_t stream) {
  if (s.planes == 0) return;
  if (adaptive_is_global(s, version))
    simt::launch(global_max_pool2d_forward_kernel, global_grid(s.planes), dim3(kGlobalBlock), 0,
                 stream, y, idx, x, s.planes, s.H * s.W);
  else
    simt::launch(adaptive_max_pool2d_forward_kernel,
                 dim3(grid_stride_blocks(s.planes * s.P * s.Q, kAdaptiveBlock)),
                 dim3(kAdaptiveBlock), 0, stream, y, idx, x, s);
}

inline void adaptive_avg_pool2d_backward(float* dx, const float* dy, const AdaptiveShape& s,
                                         cudaStream_t stream) {
  if (s.planes == 0) return;
  simt::launch(adaptive_avg_pool2d_backward_kernel,
               dim3(grid_stride_blocks(s.planes * s.H * s.W, kAdaptiveBlock)),
               dim3(kAdaptiveBlock), 0, stream, dx, dy, s);
}

inline void adaptive_max_pool2d_backward(float* dx, const float* dy, const int64_t* idx,
                                         const AdaptiveShape& s, cudaStream_t stream) {
  if (s.planes == 0) return;
  simt::launch(adaptive_max_pool2d_backward_kernel,
               dim3(grid_stride_blocks(s.planes * s.H * s.W, kAdaptiveBlock)),
               dim3(kAdaptiveBlock), 0, stream, dx, dy, idx, s);
}

}  // namespace cucnn
