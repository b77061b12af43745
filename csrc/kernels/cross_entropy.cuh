// cross_entropy.cuh — cross-entropy from logits with int64 class targets, fused with log-softmax.
//
//   forward   lse_i = m_i + log(sum_j exp(x_ij - m_i))   (m_i the row max: no overflow)
//             loss_i = lse_i - x_i,t_i                    (0 where t_i == ignore_index)
//   backward  dx_ij = (exp(x_ij - lse_i) - [j == t_i]) * dloss_i   (0 where t_i == ignore_index)
//
// The forward saves lse (one float per row) so the backward is a single elementwise pass that never
// materialises softmax. The reduction over rows ("mean"/"sum") is left to the caller, which turns
// it into dloss. Targets are validated before launch; a target that is still out of range here
// yields a NaN loss rather than an out-of-bounds read.
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

// loss, lse are (rows,); x is (rows, cols); target is (rows,)
__global__ void __launch_bounds__(32 * kCrossEntropyWarpsPerBlock)
    cross_entropy_forward_kernel(float* __restrict__ loss, float* __restrict__ lse,
                                 const float* __restrict__ x, const int64_t* __restrict__ target,
                                 int64_t rows, int cols, int64_t ignore_index) {
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
  if (lane == 0) {
    const float l = m + logf(s);
    const int64_t t = target[row];
    lse[row] = l;
    if (t == ignore_index) loss[row] = 0.0f;
    else if (t < 0 || t >= cols) loss[row] = __int_as_float(0x7fc00000);  // NaN; see header
    else loss[row] = l - xr[t];
  }
}

// dx, x are (rows, cols); target, lse, dloss are (rows,)
__global__ void __launch_bounds__(kCrossEntropyBlock)
    cross_entropy_backward_kernel(float* __restrict__ dx, const float* __restrict__ x,
                                  const int64_t* __restrict__ target, const float* __restrict__ lse,
                                  const float* __restrict__ dloss, int64_t rows, int cols,
                                  int64_t ignore_index) {
  const int64_t n = rows * cols;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const int64_t row = i / cols;
    const int64_t col = i - row * cols;
    const int64_t t = target[row];
    if (t == ignore_index) {
      dx[i] = 0.0f;
    } else {
      const float p = expf(x[i] - lse[row]);
      dx[i] = (p - (col == t ? 1.0f : 0.0f)) * dloss[row];
    }
  }
}

// ---- launchers ------------------------------------------------------------------------------------

// Per-row loss and log-sum-exp. x is (rows, cols), target (rows,), loss and lse (rows,).
inline void cross_entropy_forward(float* loss, float* lse, const float* x, const int64_t* target,
                                  int64_t rows, int cols, int64_t ignore_index,
                                  cudaStream_t stream) {
  if (rows == 0) return;
  const dim3 block(32, kCrossEntropyWarpsPerBlock);
  const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(rows, kCrossEntropyWarpsPerBlock)));
  simt::launch(cross_entropy_forward_kernel, grid, block, 0, stream, loss, lse, x, target, rows,
               cols, ignore_index);
}

// dx = (softmax(x) - onehot(target)) * dloss[:, None], rows with ignore_index zero.
inline void cross_entropy_backward(float* dx, const float* x, const int64_t* target,
                                   const float* lse, const float* dloss, int64_t rows, int cols,
                                   int64_t ignore_index, cudaStream_t stream) {
  const int64_t n = rows * cols;
  if (n == 0) return;
  simt::launch(cross_entropy_backward_kernel, dim3(grid_stride_blocks(n, kCrossEntropyBlock)),
               dim3(kCrossEntropyBlock), 0, stream, dx, x, target, lse, dloss, rows, cols,
               ignore_index);
}

}  // namespace cucnn
