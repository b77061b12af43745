// Planted kernels for tests/test_kernel_report.py: each has one loop whose instruction mix is known
// by construction (the loops are kept rolled with `#pragma unroll 1`). Compiled at test time only.
#include <cstdint>

namespace planted {

// 16 FFMA per LDS.128: each iteration reads one float4 from shared memory and feeds 16 independent
// accumulator chains (each FMA depends on its own previous value, so none can be merged).
__global__ void ffma_lds128(float* out, int n) {
  __shared__ float4 tile[256];
  const int t = threadIdx.x;
  tile[t] = make_float4(t, t + 1, t + 2, t + 3);
  __syncthreads();
  float acc[16];
#pragma unroll
  for (int j = 0; j < 16; ++j) acc[j] = out[j];
#pragma unroll 1
  for (int i = 0; i < n; ++i) {
    const float4 v = tile[(t + i) & 255];
    const float c[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int j = 0; j < 16; ++j) acc[j] = fmaf(acc[j], c[j % 4], c[(j + 1) % 4]);
  }
  float s = 0.0f;
#pragma unroll
  for (int j = 0; j < 16; ++j) s += acc[j];
  out[t] = s;
}

// No FMA: a copy loop (one 32-bit global load and store per iteration, one FADD).
__global__ void copy_add(float* __restrict__ out, const float* __restrict__ in, int n) {
#pragma unroll 1
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    out[i] = in[i] + 1.0f;
}

// A nested loop: the outer loop holds no FMA, the inner one 4 FFMA; the hot loop is the inner one.
template <int kInner>
__global__ void nested(float* out, int n, int m) {
  float a = out[threadIdx.x], b = out[threadIdx.x + 1], c = out[threadIdx.x + 2],
        d = out[threadIdx.x + 3];
#pragma unroll 1
  for (int i = 0; i < n; ++i) {
    out[i] = a;
#pragma unroll 1
    for (int j = 0; j < m; ++j) {
      a = fmaf(a, b, 1.0f);
      b = fmaf(b, c, 2.0f);
      c = fmaf(c, d, 3.0f);
      d = fmaf(d, a, 4.0f);
    }
  }
  out[threadIdx.x] = a + b + c + d;
}
template __global__ void nested<7>(float*, int, int);

// Tensor cores: two mma.sync m16n8k8 TF32 per iteration (two HMMA.1688 on sm_80 and sm_90).
__global__ void hmma_tf32(float* out, const uint32_t* a, const uint32_t* b, int n) {
  float d0[4] = {0, 0, 0, 0}, d1[4] = {0, 0, 0, 0};
  const int t = threadIdx.x;
#pragma unroll 1
  for (int i = 0; i < n; ++i) {
    const uint32_t a0 = a[i * 128 + t], a1 = a[i * 128 + 32 + t], a2 = a[i * 128 + 64 + t],
                   a3 = a[i * 128 + 96 + t], b0 = b[i * 64 + t], b1 = b[i * 64 + 32 + t];
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d0[0]), "+f"(d0[1]), "+f"(d0[2]), "+f"(d0[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d1[0]), "+f"(d1[1]), "+f"(d1[2]), "+f"(d1[3])
        : "r"(a3), "r"(a2), "r"(a1), "r"(a0), "r"(b1), "r"(b0));
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) out[t * 8 + j] = d0[j], out[t * 8 + 4 + j] = d1[j];
}

// A cold path inside the loop: 8 FFMA every iteration and, only when a flag is set, 16 stores
// (no FMA). The static body counts the cold stores; the lean path branches around them.
__global__ void cold_store(float* out, const int* flags, int n) {
  float a = out[0], b = out[1], c = out[2], d = out[3];
#pragma unroll 1
  for (int i = 0; i < n; ++i) {
    a = fmaf(a, b, 1.0f); b = fmaf(b, c, 2.0f); c = fmaf(c, d, 3.0f); d = fmaf(d, a, 4.0f);
    a = fmaf(a, b, 5.0f); b = fmaf(b, c, 6.0f); c = fmaf(c, d, 7.0f); d = fmaf(d, a, 8.0f);
    if (flags[i]) {
#pragma unroll
      for (int j = 0; j < 16; ++j) out[flags[i + 1] + 64 * j] = j & 1 ? a : d;
    }
  }
  out[threadIdx.x] = a + b + c + d;
}

}  // namespace planted
