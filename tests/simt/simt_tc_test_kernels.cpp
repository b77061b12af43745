// Kernels that exercise the tensor-core and cp.async emulation of simt_tc.h, some with planted
// bugs. Only the tests use them: tests/test_simt_tc.py compiles this file next to
// simt_test_kernels.cpp (through conftest.build_simt_test_lib) and calls the C entry points below.
//
// Every entry point returns 0 on success, or 1 with the error text in err.
#include "simt.h"

#include <cstdio>
#include <exception>

namespace {

template <typename F>
int tc_guarded(char* err, int errlen, F f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(err, static_cast<size_t>(errlen), "%s", e.what());
    return 1;
  }
}

// One m16n8k8 TF32 mma per warp. a (32, 4), b (32, 2), c (32, 4): each lane's fragment registers,
// prepared by the test from the PTX layouts; d (32, 4): each lane's result registers. convert: round
// the operands with cvt_rna_tf32 first (0 plants the "forgotten cvt" bug). skip_lane: that lane
// returns before the mma (a planted exited lane), -1 for none.
__global__ void tc_mma_kernel(const float* a, const float* b, const float* c, float* d,
                              int convert, int skip_lane) {
  const int lane = static_cast<int>(threadIdx.x);
  if (lane == skip_lane) return;
  unsigned af[4], bf[2];
  float cf[4], df[4];
  for (int i = 0; i < 4; ++i) {
    af[i] = convert ? simt::cvt_rna_tf32(a[lane * 4 + i]) : __float_as_uint(a[lane * 4 + i]);
    cf[i] = c[lane * 4 + i];
  }
  for (int i = 0; i < 2; ++i)
    bf[i] = convert ? simt::cvt_rna_tf32(b[lane * 2 + i]) : __float_as_uint(b[lane * 2 + i]);
  simt::mma_m16n8k8_tf32(df, af, bf, cf);
  for (int i = 0; i < 4; ++i) d[lane * 4 + i] = df[i];
}

// out[i] = the bits of cvt.rna.tf32.f32(in[i])
__global__ void tc_cvt_kernel(const float* in, unsigned* out, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) out[i] = simt::cvt_rna_tf32(in[i]);
}

// A 3-stage cp.async pipeline over `tiles` slices of blockDim.x floats: out[tile][t] is element
// (t + 1) % T of slice `tile`, read from shared memory (a neighbour's copy, so the barrier after the
// wait matters). variant 0: correct; 1: no cp.async.wait_group in the loop (only at the end);
// 2: no __syncthreads after the wait.
__global__ void tc_pipeline_kernel(const float* in, float* out, int tiles, int variant) {
  SIMT_DYNAMIC_SHARED(float, s);  // [3][T]
  const int t = static_cast<int>(threadIdx.x), T = static_cast<int>(blockDim.x);
  for (int st = 0; st < 2; ++st) {
    if (st < tiles) simt::cp_async_4(&s[st * T + t], in + st * T + t, 4);
    simt::cp_async_commit();
  }
  for (int tile = 0; tile < tiles; ++tile) {
    if (variant != 1) simt::cp_async_wait<1>();
    if (variant != 2) __syncthreads();
    const int next = tile + 2;
    if (next < tiles) simt::cp_async_4(&s[next % 3 * T + t], in + next * T + t, 4);
    simt::cp_async_commit();
    out[tile * T + t] = s[tile % 3 * T + (t + 1) % T];
  }
  simt::cp_async_wait<0>();
}

// 16-byte copies with zero fill: thread t copies in[4t .. 4t+3], of which only the elements below
// n exist (src-size 16, 8 or 0 bytes...), then everyone reads back shared memory.
__global__ void tc_copy16_kernel(const float* in, float* out, int n) {
  SIMT_DYNAMIC_SHARED(float, s);
  const int t = static_cast<int>(threadIdx.x);
  int have = n - 4 * t;
  have = have < 0 ? 0 : have > 4 ? 4 : have;
  simt::cp_async_16(&s[4 * t], have ? in + 4 * t : in, have * 4);
  simt::cp_async_commit();
  simt::cp_async_wait<0>();
  __syncthreads();
  for (int i = 0; i < 4; ++i) out[4 * t + i] = s[4 * t + i];
}

}  // namespace

extern "C" {

int tc_mma(const float* a, const float* b, const float* c, float* d, int threads, int convert,
           int skip_lane, char* err, int errlen) {
  return tc_guarded(err, errlen, [=] {
    simt::launch(tc_mma_kernel, dim3(1), dim3(static_cast<unsigned>(threads)), 0, nullptr, a, b, c,
                 d, convert, skip_lane);
  });
}
int tc_cvt(const float* in, unsigned* out, int n, char* err, int errlen) {
  return tc_guarded(err, errlen, [=] {
    simt::launch(tc_cvt_kernel, dim3(static_cast<unsigned>((n + 127) / 128)), dim3(128), 0,
                 nullptr, in, out, n);
  });
}
int tc_pipeline(const float* in, float* out, int threads, int tiles, int variant, char* err,
                int errlen) {
  return tc_guarded(err, errlen, [=] {
    simt::launch(tc_pipeline_kernel, dim3(1), dim3(static_cast<unsigned>(threads)),
                 3 * static_cast<size_t>(threads) * sizeof(float), nullptr, in, out, tiles,
                 variant);
  });
}
int tc_copy16(const float* in, float* out, int threads, int n, char* err, int errlen) {
  return tc_guarded(err, errlen, [=] {
    simt::launch(tc_copy16_kernel, dim3(1), dim3(static_cast<unsigned>(threads)),
                 4 * static_cast<size_t>(threads) * sizeof(float), nullptr, in, out, n);
  });
}

}  // extern "C"
