// softmax.cuh — softmax and log_softmax over the last axis of a (rows, cols) view, forward and
// backward. The Python layer moves `dim` last and makes the array contiguous.
//
//   forward    m = max(x);  s = sum(exp(x - m));  softmax = exp(x - m) / s,  log_softmax = x - m - log s
//   backward   softmax:     dx = y * (dy - sum(dy * y))
//              log_softmax: dx = dy - exp(y) * sum(dy)
//
// Subtracting the row maximum is what keeps exp from overflowing on logits like [1000, 1001, 1002].
// Edge semantics follow PyTorch without special cases: a row of all -inf has m = -inf, x - m = NaN,
// so the row is NaN; a NaN anywhere in a row reaches the sum and makes the row NaN; -inf entries
// get probability 0.
//
// Versions:
//   0  naive: one thread per row, three serial passes (kept for tests and for the benchmarks)
//   1  warp per row, for cols <= 1024: the row is held in registers (PER_LANE values per lane) so it
//      is read once; max and sum are xor-butterfly reductions
//   1  block per row (kSoftmaxBlock threads), for longer rows: strided passes, block reductions
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "simt.h"

namespace cucnn {

constexpr int kSoftmaxWarpsPerBlock = 4;
constexpr int kSoftmaxBlock = 512;
constexpr int kSoftmaxWarpMaxCols = 1024;

// ---- version 0 ----------------------------------------------------------------------------------

// y, x are (rows, cols)
template <bool LOG>
__global__ void softmax_forward_naive_kernel(float* y, const float* x, int64_t rows, int cols) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  const float* xr = x + row * cols;
  float* yr = y + row * cols;
  float m = MaxOp::identity;
  for (int c = 0; c < cols; ++c) m = fmaxf(m, xr[c]);
  float s = 0.0f;
  for (int c = 0; c < cols; ++c) s += expf(xr[c] - m);
  const float log_s = logf(s);
  for (int c = 0; c < cols; ++c) yr[c] = LOG ? xr[c] - m - log_s : expf(xr[c] - m) / s;
}

// dx, y, dy are (rows, cols)
template <bool LOG>
__global__ void softmax_backward_naive_kernel(float* dx, const float* y, const float* dy,
                                              int64_t rows, int cols) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  const float* yr = y + row * cols;
  const float* gr = dy + row * cols;
  float* dr = dx + row * cols;
  float dot = 0.0f;
  for (int c = 0; c < cols; ++c) dot += LOG ? gr[c] : gr[c] * yr[c];
  for (int c = 0; c < cols; ++c)
    dr[c] = LOG ? gr[c] - expf(yr[c]) * dot : yr[c] * (gr[c] - dot);
}

// ---- version 1: warp per row ----------------------------------------------------------------------

// y, x are (rows, cols), cols <= 32 * PER_LANE. Block (32, kSoftmaxWarpsPerBlock): warp y = row.
template <bool LOG, int PER_LANE>
__global__ void __launch_bounds__(32 * kSoftmaxWarpsPerBlock)
    softmax_forward_warp_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t rows,
                                int cols) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= rows) return;  // the whole warp leaves together; no block barrier follows
  const int lane = static_cast<int>(threadIdx.x);
  const float* xr = x + row * cols;
  float v[PER_LANE];
  float m = MaxOp::identity;
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    const int c = lane + 32 * k;  // lanes read consecutive addresses: coalesced
    v[k] = c < cols ? xr[c] : MaxOp::identity;
    m = fmaxf(m, v[k]);
  }
  m = warp_reduce(m, MaxOp{});
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    if (lane + 32 * k < cols) {
      const float e = expf(v[k] - m);
      s += e;
      if (!LOG) v[k] = e;
    }
  }
  s = warp_reduce(s, SumOp{});
  const float log_s = logf(s);
  float* yr = y + row * cols;
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    const int c = lane + 32 * k;
    if (c < cols) yr[c] = LOG ? v[k] - m - log_s : v[k] / s;
  }
}

// dx, y, dy are (rows, cols), cols <= 32 * PER_LANE
template <bool LOG, int PER_LANE>
__global__ void __launch_bounds__(32 * kSoftmaxWarpsPerBlock)
    softmax_backward_warp_kernel(float* __restrict__ dx, const float* __restrict__ y,
                                 const float* __restrict__ dy, int64_t rows, int cols) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= rows) return;
  const int lane = static_cast<int>(threadIdx.x);
  const float* yr = y + row * cols;
  const float* gr = dy + row * cols;
  float yv[PER_LANE], gv[PER_LANE];
  float dot = 0.0f;
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    const int c = lane + 32 * k;
    yv[k] = c < cols ? yr[c] : 0.0f;
    gv[k] = c < cols ? gr[c] : 0.0f;
    dot += LOG ? gv[k] : gv[k] * yv[k];
  }
  dot = warp_reduce(dot, SumOp{});
  float* dr = dx + row * cols;
#pragma unroll
  for (int k = 0; k < PER_LANE; ++k) {
    const int c = lane + 32 * k;
    if (c < cols) dr[c] = LOG ? gv[k] - expf(yv[k]) * dot : yv[k] * (gv[k] - dot);
  }
}

// ---- version 1: block per row ---------------------------------------------------------------------

// y, x are (rows, cols); one block per row; dynamic shared memory: 33 floats
template <bool LOG>
__global__ void __launch_bounds__(kSoftmaxBlock)
    softmax_forward_block_kernel(float* __restrict__ y, const float* __restrict__ x, int cols) {
  SIMT_DYNAMIC_SHARED(float, smem);
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float* yr = y + row * cols;
  float m = MaxOp::identity;
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x))
    m = fmaxf(m, xr[c]);
  m = block_reduce(m, smem, MaxOp{});
  float s = 0.0f;
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x))
    s += expf(xr[c] - m);
  s = block_reduce(s, smem, SumOp{});
  const float log_s = logf(s);
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x))
    yr[c] = LOG ? xr[c] - m - log_s : expf(xr[c] - m) / s;
}

// dx, y, dy are (rows, cols); one block per row; dynamic shared memory: 33 floats
template <bool LOG>
__global__ void __launch_bounds__(kSoftmaxBlock)
    softmax_backward_block_kernel(float* __restrict__ dx, const float* __restrict__ y,
                                  const float* __restrict__ dy, int cols) {
  SIMT_DYNAMIC_SHARED(float, smem);
  const int64_t row = blockIdx.x;
  const float* yr = y + row * cols;
  const float* gr = dy + row * cols;
  float* dr = dx + row * cols;
  float dot = 0.0f;
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x))
    dot += LOG ? gr[c] : gr[c] * yr[c];
  dot = block_reduce(dot, smem, SumOp{});
  for (int c = static_cast<int>(threadIdx.x); c < cols; c += static_cast<int>(blockDim.x))
    dr[c] = LOG ? gr[c] - expf(yr[c]) * dot : yr[c] * (gr[c] - dot);
}

// ---- launchers ------------------------------------------------------------------------------------

constexpr int kSoftmaxNaiveBlock = 128;

// PER_LANE: the smallest power of two with 32 * PER_LANE >= cols.
template <bool LOG, bool BACKWARD>
void softmax_warp_dispatch(float* out, const float* a, const float* b, int64_t rows, int cols,
                           cudaStream_t stream) {
  const dim3 block(32, kSoftmaxWarpsPerBlock);
  const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(rows, kSoftmaxWarpsPerBlock)));
  auto go = [&](auto per_lane) {
    constexpr int P = decltype(per_lane)::value;
    if constexpr (BACKWARD)
      simt::launch(softmax_backward_warp_kernel<LOG, P>, grid, block, 0, stream, out, a, b, rows,
                   cols);
    else
      simt::launch(softmax_forward_warp_kernel<LOG, P>, grid, block, 0, stream, out, a, rows, cols);
  };
  if (cols <= 32) go(std::integral_constant<int, 1>{});
  else if (cols <= 64) go(std::integral_constant<int, 2>{});
  else if (cols <= 128) go(std::integral_constant<int, 4>{});
  else if (cols <= 256) go(std::integral_constant<int, 8>{});
  else if (cols <= 512) go(std::integral_constant<int, 16>{});
  else go(std::integral_constant<int, 32>{});
}

// y = softmax(x) or log_softmax(x) along rows. x, y are (rows, cols).
inline void softmax_forward(float* y, const float* x, int64_t rows, int cols, bool log, int version,
                            cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  if (version == 0) {
    const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(rows, kSoftmaxNaiveBlock)));
    if (log)
      simt::launch(softmax_forward_naive_kernel<true>, grid, dim3(kSoftmaxNaiveBlock), 0, stream, y,
                   x, rows, cols);
    else
      simt::launch(softmax_forward_naive_kernel<false>, grid, dim3(kSoftmaxNaiveBlock), 0, stream,
                   y, x, rows, cols);
  } else if (cols <= kSoftmaxWarpMaxCols) {
    if (log) softmax_warp_dispatch<true, false>(y, x, nullptr, rows, cols, stream);
    else softmax_warp_dispatch<false, false>(y, x, nullptr, rows, cols, stream);
  } else {
    const dim3 grid(static_cast<unsigned>(rows));
    const size_t smem = 33 * sizeof(float);
    if (log)
      simt::launch(softmax_forward_block_kernel<true>, grid, dim3(kSoftmaxBlock), smem, stream, y,
                   x, cols);
    else
      simt::launch(softmax_forward_block_kernel<false>, grid, dim3(kSoftmaxBlock), smem, stream, y,
                   x, cols);
  }
}

// dx from the forward output y and the incoming gradient dy. All (rows, cols).
inline void softmax_backward(float* dx, const float* y, const float* dy, int64_t rows, int cols,
                             bool log, int version, cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  if (version == 0) {
    const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(rows, kSoftmaxNaiveBlock)));
    if (log)
      simt::launch(softmax_backward_naive_kernel<true>, grid, dim3(kSoftmaxNaiveBlock), 0, stream,
                   dx, y, dy, rows, cols);
    else
      simt::launch(softmax_backward_naive_kernel<false>, grid, dim3(kSoftmaxNaiveBlock), 0, stream,
                   dx, y, dy, rows, cols);
  } else if (cols <= kSoftmaxWarpMaxCols) {
    if (log) softmax_warp_dispatch<true, true>(dx, y, dy, rows, cols, stream);
    else softmax_warp_dispatch<false, true>(dx, y, dy, rows, cols, stream);
  } else {
    const dim3 grid(static_cast<unsigned>(rows));
    const size_t smem = 33 * sizeof(float);
    if (log)
      simt::launch(softmax_backward_block_kernel<true>, grid, dim3(kSoftmaxBlock), smem, stream,
                   dx, y, dy, cols);
    else
      simt::launch(softmax_backward_block_kernel<false>, grid, dim3(kSoftmaxBlock), smem, stream,
                   dx, y, dy, cols);
  }
}

}  // namespace cucnn
