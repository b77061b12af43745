// Planted cp.async kernels whose memory traffic is known by construction, for the memory
// profiler's view of the cp.async emulation (tests/test_conv2d_tf32_profile.py). Each measured
// copy is on a line marked `// PLANT: name`: its global read (at issue) and its shared write (at
// the wait) must both be attributed to that line. Built with `python -m cucnn.tools.simcc
// --profile`.
#include <cstring>
#include <exception>

#include "simt.h"

// 16-byte copies: thread t copies in[4t .. 4t+3] to s[4t ..]; a warp reads 512 contiguous bytes
// (16 sectors) and writes 512 contiguous bytes of shared memory (4 phases of 8 lanes, 1 wavefront
// each). Then out = s.
__global__ void cp16_kernel(float* out, const float* in) {
  SIMT_DYNAMIC_SHARED(float, s);
  const int t = static_cast<int>(threadIdx.x);
  const float* src = in + 4 * (blockIdx.x * blockDim.x + t);
  simt::cp_async_16(&s[4 * t], src, 16);  // PLANT: cp16
  simt::cp_async_commit();
  simt::cp_async_wait<0>();
  __syncthreads();
  for (int i = 0; i < 4; ++i) out[4 * (blockIdx.x * blockDim.x + t) + i] = s[4 * t + i];
}

// 4-byte copies, two per thread on one line (two requests per warp), with a planted shared-memory
// layout: pitch 1 (conflict-free: 1 wavefront) or 2 (two lanes per bank: 2 wavefronts); the global
// side reads in[stride * i] (stride 1: 4 sectors per request, stride 32: 32). Lanes whose index is
// a multiple of `hole` copy with src-size 0 (zero fill: nothing read). out = s, in thread order.
__global__ void cp4_kernel(float* out, const float* in, int pitch, int stride, int hole) {
  SIMT_DYNAMIC_SHARED(float, s);
  const int t = static_cast<int>(threadIdx.x), T = static_cast<int>(blockDim.x);
  for (int k = 0; k < 2; ++k) {
    const int i = static_cast<int>(blockIdx.x) * 2 * T + k * T + t;
    const bool read = hole == 0 || t % hole != 0;
    simt::cp_async_4(&s[(k * T + t) * pitch], read ? in + i * stride : in, read ? 4 : 0);  // PLANT: cp4
  }
  simt::cp_async_commit();
  simt::cp_async_wait<0>();
  __syncthreads();
  for (int k = 0; k < 2; ++k)
    out[static_cast<int>(blockIdx.x) * 2 * T + k * T + t] = s[(k * T + t) * pitch];
}

extern "C" {

int p_set_order(const char* order) {
  try {
    simt::set_order(order);
    return 0;
  } catch (const std::exception&) {
    return 1;
  }
}

// cp16: n floats (multiple of 4 * threads); cp4: n floats (multiple of 2 * threads).
int p_cp16(float* out, const float* in, int n, int threads) {
  try {
    simt::launch(cp16_kernel, dim3(static_cast<unsigned>(n / (4 * threads))),
                 dim3(static_cast<unsigned>(threads)), 4 * sizeof(float) * threads, nullptr, out,
                 in);
    return 0;
  } catch (const std::exception&) {
    return 1;
  }
}
int p_cp4(float* out, const float* in, int n, int threads, int pitch, int stride, int hole) {
  try {
    simt::launch(cp4_kernel, dim3(static_cast<unsigned>(n / (2 * threads))),
                 dim3(static_cast<unsigned>(threads)),
                 2 * sizeof(float) * static_cast<size_t>(threads * pitch), nullptr, out, in,
                 pitch, stride, hole);
    return 0;
  } catch (const std::exception&) {
    return 1;
  }
}

}  // extern "C"
