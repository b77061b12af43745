// activation.cuh — elementwise activations, forward and backward:
//   relu        y = x > 0 ? x : 0 (NaN stays NaN)      dx = y > 0 ? dy : 0    (saves y; grad at 0 is 0)
//   leaky_relu  y = x > 0 ? x : a*x                    dx = x > 0 ? dy : a*dy (saves x)
//   sigmoid     y = 1 / (1 + exp(-x))                  dx = dy * y * (1 - y)  (saves y)
//   tanh        y = tanh(x)                            dx = dy * (1 - y*y)    (saves y)
// The backward follows PyTorch at the edges: relu passes the gradient where y is NaN.
//
// Versions (one grid-stride kernel, templated):
//   0  scalar: one float per thread per iteration
//   1  float4: four floats per load and store when every pointer is 16-byte aligned (NumPy and CuPy
//      allocations are), then a scalar tail; memory-bound ops live or die by load width.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "simt.h"

namespace cucnn {

enum class Act : int { relu = 0, leaky_relu = 1, sigmoid = 2, tanh = 3 };

template <Act A>
__device__ __forceinline__ float act_forward(float x, float alpha) {
  if constexpr (A == Act::relu) return (x > 0.0f || x != x) ? x : 0.0f;
  if constexpr (A == Act::leaky_relu) return x > 0.0f ? x : x * alpha;
  if constexpr (A == Act::sigmoid) return 1.0f / (1.0f + expf(-x));
  if constexpr (A == Act::tanh) return tanhf(x);
  return x;
}

// s is the saved tensor: y for relu, sigmoid and tanh; x for leaky_relu.
template <Act A>
__device__ __forceinline__ float act_backward(float dy, float s, float alpha) {
  if constexpr (A == Act::relu) return s <= 0.0f ? 0.0f : dy;
  if constexpr (A == Act::leaky_relu) return s > 0.0f ? dy : dy * alpha;
  if constexpr (A == Act::sigmoid) return dy * s * (1.0f - s);
  if constexpr (A == Act::tanh) return dy * (1.0f - s * s);
  return dy;
}

// y, x are (n,)
template <Act A, bool VEC>
__global__ void activation_forward_kernel(float* __restrict__ y, const float* __restrict__ x,
                                          int64_t n, float alpha) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (VEC) {
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      float4 v = reinterpret_cast<const float4*>(x)[i];
      v.x = act_forward<A>(v.x, alpha);
      v.y = act_forward<A>(v.y, alpha);
      v.z = act_forward<A>(v.z, alpha);
      v.w = act_forward<A>(v.w, alpha);
      reinterpret_cast<float4*>(y)[i] = v;
    }
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) y[i] = act_forward<A>(x[i], alpha);
}

// dx, dy, s are (n,)
template <Act A, bool VEC>
__global__ void activation_backward_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                           const float* __restrict__ s, int64_t n, float alpha) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if constexpr (VEC) {
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      const float4 g = reinterpret_cast<const float4*>(dy)[i];
      const float4 v = reinterpret_cast<const float4*>(s)[i];
      reinterpret_cast<float4*>(dx)[i] =
          make_float4(act_backward<A>(g.x, v.x, alpha), act_backward<A>(g.y, v.y, alpha),
                      act_backward<A>(g.z, v.z, alpha), act_backward<A>(g.w, v.w, alpha));
    }
    done = n4 * 4;
  }
  for (int64_t i = done + first; i < n; i += stride) dx[i] = act_backward<A>(dy[i], s[i], alpha);
}

// ---- launchers --------------------------------------------------------------------------------

constexpr int kActivationBlock = 256;

inline bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

template <Act A>
void activation_forward_typed(float* y, const float* x, int64_t n, float alpha, int version,
                              cudaStream_t stream) {
  const bool vec = version >= 1 && aligned16(x) && aligned16(y);
  const dim3 grid(grid_stride_blocks(vec ? n / 4 + 1 : n, kActivationBlock));
  if (vec)
    simt::launch(activation_forward_kernel<A, true>, grid, dim3(kActivationBlock), 0, stream, y, x,
                 n, alpha);
  else
    simt::launch(activation_forward_kernel<A, false>, grid, dim3(kActivationBlock), 0, stream, y,
                 x, n, alpha);
}

template <Act A>
void activation_backward_typed(float* dx, const float* dy, const float* s, int64_t n, float alpha,
                               int version, cudaStream_t stream) {
  const bool vec = version >= 1 && aligned16(dx) && aligned16(dy) && aligned16(s);
  const dim3 grid(grid_stride_blocks(vec ? n / 4 + 1 : n, kActivationBlock));
  if (vec)
    simt::launch(activation_backward_kernel<A, true>, grid, dim3(kActivationBlock), 0, stream, dx,
                 dy, s, n, alpha);
  else
    simt::launch(activation_backward_kernel<A, false>, grid, dim3(kActivationBlock), 0, stream, dx,
                 dy, s, n, alpha);
}

// y = act(x). n may be 0.
inline void activation_forward(Act act, float* y, const float* x, int64_t n, float alpha,
                               int version, cudaStream_t stream) {
  if (n == 0) return;
  switch (act) {
    case Act::relu: return activation_forward_typed<Act::relu>(y, x, n, alpha, version, stream);
    case Act::leaky_relu:
      return activation_forward_typed<Act::leaky_relu>(y, x, n, alpha, version, stream);
    case Act::sigmoid:
      return activation_forward_typed<Act::sigmoid>(y, x, n, alpha, version, stream);
    case Act::tanh: return activation_forward_typed<Act::tanh>(y, x, n, alpha, version, stream);
  }
}

// dx = act'(saved) * dy. n may be 0.
inline void activation_backward(Act act, float* dx, const float* dy, const float* s, int64_t n,
                                float alpha, int version, cudaStream_t stream) {
  if (n == 0) return;
  switch (act) {
    case Act::relu:
      return activation_backward_typed<Act::relu>(dx, dy, s, n, alpha, version, stream);
    case Act::leaky_relu:
      return activation_backward_typed<Act::leaky_relu>(dx, dy, s, n, alpha, version, stream);
    case Act::sigmoid:
      return activation_backward_typed<Act::sigmoid>(dx, dy, s, n, alpha, version, stream);
    case Act::tanh:
      return activation_backward_typed<Act::tanh>(dx, dy, s, n, alpha, version, stream);
  }
}

}  // namespace cucnn
