// common.cuh — small pieces every kernel family shares: warp and block reductions, grid sizing.
//
// Reductions combine values in a fixed tree (lane-strided partials, then xor butterflies), so a
// result never depends on the order threads happen to run in: sim results are bitwise equal across
// SIMT orders, and GPU results run to run.
#pragma once

#include <cstdint>

#include "simt.h"

namespace cucnn {

constexpr unsigned kFullMask = 0xffffffffu;

struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
  static constexpr float identity = 0.0f;
};
// fmaxf ignores a NaN operand; softmax relies on the NaN then reaching the sum instead.
struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
  static constexpr float identity = -__builtin_huge_valf();
};

// Every lane of a full warp gets the reduction of all 32 lanes' values.
template <typename Op>
__device__ __forceinline__ float warp_reduce(float v, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Every thread of the block gets the reduction of all threads' values. blockDim.x must be a
// multiple of 32 (launchers guarantee it); smem needs 33 floats and is free again on return.
template <typename Op>
__device__ __forceinline__ float block_reduce(float v, float* smem, Op op) {
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int nwarps = static_cast<int>(blockDim.x / 32);
  v = warp_reduce(v, op);
  if (lane == 0) smem[warp] = v;
  __syncthreads();  // all warp partials written
  if (warp == 0) {
    v = lane < nwarps ? smem[lane] : Op::identity;
    v = warp_reduce(v, op);
    if (lane == 0) smem[32] = v;
  }
  __syncthreads();  // the total is written
  const float total = smem[32];
  __syncthreads();  // everyone has read it before a following reduction overwrites smem
  return total;
}

// Blocks for a grid-stride loop over `work` items: enough to fill an H100 (132 SMs) several times,
// few enough that each thread does a few items.
inline unsigned grid_stride_blocks(int64_t work, int block) {
  const int64_t blocks = (work + block - 1) / block;
  return static_cast<unsigned>(blocks < 4096 ? (blocks > 0 ? blocks : 0) : 4096);
}

}  // namespace cucnn
