// cross_entropy.cuh — cross-entropy from logits with int64 class targets, fused with log-softmax,
// with PyTorch's class weights w and label smoothing e (C classes, W = sum_c w_c; w = 1 if none).
//
//   forward   lse_i  = m_i + log(sum_j exp(x_ij - m_i))   (m_i the row max: no overflow)
//             loss_i = (1-e) w_t (lse_i - x_it) + (e/C) sum_c w_c (lse_i - x_ic)
//             wt_i   = w_t, the row's share of a "mean" divisor         (both 0 for ignore_index)
//   backward  dx_ij  = dloss_i * (p_ij a_i - (1-e) w_t [j == t] - (e/C) w_j),
//             p_ij = exp(x_ij - lse_i), a_i = (1-e) w_t + (e/C) W       (0 for ignore_index)
//
// The forward saves lse (one float per row) so the backward is a single elementwise pass that never
// materialises softmax. The reduction over rows is left to the caller: "mean" divides by sum(wt)
// on the device, so no count crosses to the host.
//
// Targets are checked here, not on the host (no device-to-host sync per step): a row whose target
// is neither ignore_index nor in [0, C) gets a NaN loss, wt and gradient, never an out-of-bounds
// read, and atomicMin records the first such row in `status` (the caller fills it with INT64_MAX
// before the launch; integer atomics, so the value is the same in any order). The Python layer
// reads it: at once on sim, lazily on cuda (see ops/cross_entropy.py).
//
// Versions: 1 only (warp per row forward, grid-stride elementwise backward); the naive reference is
// softmax version 0 plus the oracle.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "simt.h"

namespace cucnn {

constexpr int kCrossEntropyWarpsPerBlock = 4;
constexpr int kCrossEntropyBlock = 256;

__device__ __forceinline__ bool ce_bad_target(int64_t t, int cols, int64_t ignore_index) {
  return t != ignore_index && (t < 0 || t >= cols);
}

// loss, lse, wt are (rows,); x is (rows, cols); target is (rows,); weight is (cols,) or null;
// status is (1,), the first bad row (left alone when every target is good).
__global__ void __launch_bounds__(32 * kCrossEntropyWarpsPerBlock)
    cross_entropy_forward_kernel(float* __restrict__ loss, float* __restrict__ lse,
                                 float* __restrict__ wt, int64_t* __restrict__ status,
                                 const float* __restrict__ x, const int64_t* __restrict__ target,
                                 const float* __restrict__ weight, int64_t rows, int cols,
                                 int64_t ignore_index, float smoothing) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= rows) return;  // whole warp
  const int lane = static_cast<int>(threadIdx.x);
  const float* xr = x + row * cols;
  float m = MaxOp::identity;
  for (int c = lane; c < cols; c += 32) m = fmaxf(m, xr[c]);
  m = warp_reduce(m, MaxOp{});
  float s = 0.0f;
  for (int c = lane; c < cols; c += 32) s += expf(xr[c] - m);
  s = warp_reduce(s, SumOp{});
  const float l = m + logf(s);
  const int64_t t = target[row];
  // Smoothing term: sum_c w_c (lse - x_c), each term non-negative, a third pass only when e > 0
  // (with e == 0 PyTorch never forms it, so an infinite term cannot turn the loss into NaN).
  float smooth = 0.0f;
  if (smoothing != 0.0f && t != ignore_index) {
    for (int c = lane; c < cols; c += 32) smooth += (weight ? weight[c] : 1.0f) * (l - xr[c]);
    smooth = warp_reduce(smooth, SumOp{});
  }
  if (lane == 0) {
    lse[row] = l;
    if (t == ignore_index) {
      loss[row] = 0.0f;
      wt[row] = 0.0f;
    } else if (ce_bad_target(t, cols, ignore_index)) {
      loss[row] = __int_as_float(0x7fc00000);  // NaN; see header
      wt[row] = __int_as_float(0x7fc00000);
      atomicMin(reinterpret_cast<unsigned long long*>(status),
                static_cast<unsigned long long>(row));
    } else {
      const float w = weight ? weight[t] : 1.0f;
      float v = w * (l - xr[t]);
      if (smoothing != 0.0f)
        v = (1.0f - smoothing) * v + smoothing / static_cast<float>(cols) * smooth;
      loss[row] = v;
      wt[row] = w;
    }
  }
}

// dx, x are (rows, cols); target, lse, dloss are (rows,); weight is (cols,) or null, wsum (1,) its
// sum (null with weight null: W = C).
__global__ void __launch_bounds__(kCrossEntropyBlock)
    cross_entropy_backward_kernel(float* __restrict__ dx, const float* __restrict__ x,
                                  const int64_t* __restrict__ target, const float* __restrict__ lse,
                                  const float* __restrict__ dloss, const float* __restrict__ weight,
                                  const float* __restrict__ wsum, int64_t rows, int cols,
                                  int64_t ignore_index, float smoothing) {
  const int64_t n = rows * cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const float e_c = smoothing / static_cast<float>(cols);
  const float W = wsum ? wsum[0] : static_cast<float>(cols);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const int64_t row = i / cols;
    const int64_t col = i - row * cols;
    const int64_t t = target[row];
    if (t == ignore_index) {
      dx[i] = 0.0f;
    } else if (ce_bad_target(t, cols, ignore_index)) {
      dx[i] = __int_as_float(0x7fc00000);
    } else {
      const float p = expf(x[i] - lse[row]);
      const float w = weight ? weight[t] : 1.0f;
      const float hit = col == t ? (1.0f - smoothing) * w : 0.0f;
      float g = p * ((1.0f - smoothing) * w) - hit;
      if (smoothing != 0.0f) g += e_c * (p * W - (weight ? weight[col] : 1.0f));
      dx[i] = g * dloss[row];
    }
  }
}

// ---- launchers ------------------------------------------------------------------------------------

// Per-row loss, log-sum-exp and target weight; status gets the first bad row (caller-initialised).
inline void cross_entropy_forward(float* loss, float* lse, float* wt, int64_t* status,
                                  const float* x, const int64_t* target, const float* weight,
                                  int64_t rows, int cols, int64_t ignore_index, float smoothing,
                                  cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 block(32, kCrossEntropyWarpsPerBlock);
  const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(rows, kCrossEntropyWarpsPerBlock)));
  simt::launch(cross_entropy_forward_kernel, grid, block, 0, stream, loss, lse, wt, status, x,
               target, weight, rows, cols, ignore_index, smoothing);
}

// dx of the per-row loss times dloss[:, None], rows with ignore_index zero.
inline void cross_entropy_backward(float* dx, const float* x, const int64_t* target,
                                   const float* lse, const float* dloss, const float* weight,
                                   const float* wsum, int64_t rows, int cols, int64_t ignore_index,
                                   float smoothing, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  simt::launch(cross_entropy_backward_kernel, dim3(grid_stride_blocks(n, kCrossEntropyBlock)),
               dim3(kCrossEntropyBlock), 0, stream, dx, x, target, lse, dloss, weight, wsum, rows,
               cols, ignore_index, smoothing);
}

}  // namespace cucnn
