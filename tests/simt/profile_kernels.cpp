// Planted kernels whose memory traffic is known by construction, for the memory profiler's tests
// (tests/test_profiler.py). Each measured access is on a line marked `// PLANT: name`; the test
// finds the line by its marker. Built with `python -m cucnn.tools.simcc --profile`.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "simt.h"

// Coalesced 32-bit copy: a warp reads 32 consecutive floats, 128 bytes = 4 sectors.
__global__ void copy32_kernel(float* out, const float* in) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = in[i];  // PLANT: copy32
}

// Lanes 32 floats apart: every lane its own sector, 32 per request.
__global__ void stride32_kernel(float* out, const float* in) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = in[i * 32];  // PLANT: stride32
}

// float4 copy: 512 bytes per warp = 16 sectors, all of them needed.
__global__ void copy128_kernel(float4* out, const float4* in) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  out[i] = in[i];  // PLANT: copy128
}

// A float4 whose components are used one by one: the host compiler reads and writes it as four
// floats, which must still count as one 16-sector request each way.
__global__ void vec_components_kernel(float4* out, const float4* in) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  float4 v = in[i];  // PLANT: vec_load
  v.x += 1.0f;
  v.w *= 2.0f;
  out[i] = v;  // PLANT: vec_store
}

// Read-modify-write with two arrays on one line: two load requests and one store per warp.
__global__ void saxpy_kernel(float* y, const float* x) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  y[i] = 2.0f * x[i] + y[i];  // PLANT: saxpy
}

// A 32x32 tile in static shared memory, written by rows, read down a column: every lane's word
// is in the same bank (32 wavefronts); with rows padded to 33 words each lane has its own bank.
template <int PITCH>
__global__ void column_kernel(float* out, const float* in) {
  __shared__ float tile[32 * PITCH];
  int lane = threadIdx.x;
  for (int r = 0; r < 32; ++r) tile[r * PITCH + lane] = in[r * 32 + lane];
  __syncthreads();
  out[lane] = tile[lane * PITCH + 3];  // PLANT: column
}

// Every lane reads the same word of dynamic shared memory: one broadcast wavefront.
__global__ void broadcast_kernel(float* out, const float* in) {
  SIMT_DYNAMIC_SHARED(float, smem);
  if (threadIdx.x == 0) smem[5] = in[0];
  __syncthreads();
  out[threadIdx.x] = smem[5];  // PLANT: broadcast
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

// Runs the planted kernel `which` over n elements of `out`/`in` (sized by the caller).
int p_run(const char* which, float* out, const float* in, int n) {
  try {
    if (!std::strcmp(which, "copy32"))
      simt::launch(copy32_kernel, dim3(n / 256), dim3(256), 0, nullptr, out, in);
    else if (!std::strcmp(which, "stride32"))
      simt::launch(stride32_kernel, dim3(n / 256), dim3(256), 0, nullptr, out, in);
    else if (!std::strcmp(which, "copy128"))
      simt::launch(copy128_kernel, dim3(n / 4 / 256), dim3(256), 0, nullptr,
                   reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(in));
    else if (!std::strcmp(which, "vec_components"))
      simt::launch(vec_components_kernel, dim3(n / 4 / 256), dim3(256), 0, nullptr,
                   reinterpret_cast<float4*>(out), reinterpret_cast<const float4*>(in));
    else if (!std::strcmp(which, "saxpy"))
      simt::launch(saxpy_kernel, dim3(n / 256), dim3(256), 0, nullptr, out, in);
    else if (!std::strcmp(which, "column"))
      simt::launch(column_kernel<32>, dim3(1), dim3(32), 0, nullptr, out, in);
    else if (!std::strcmp(which, "column_padded"))
      simt::launch(column_kernel<33>, dim3(1), dim3(32), 0, nullptr, out, in);
    else if (!std::strcmp(which, "broadcast"))
      simt::launch(broadcast_kernel, dim3(2), dim3(64), 64 * sizeof(float), nullptr, out, in);
    else
      return 2;
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}

}  // extern "C"

#ifdef PLANT_MAIN
// A stand-alone program: SIMT_PROFILE=FILE makes it write its profile there at exit.
int main() {
  // 256-byte aligned, as cudaMalloc gives: a warp's 128 bytes then fill exactly 4 sectors.
  const size_t bytes = 32 * 4096 * sizeof(float);
  auto* in = static_cast<float*>(std::aligned_alloc(256, bytes));
  auto* out = static_cast<float*>(std::aligned_alloc(256, bytes));
  for (int i = 0; i < 32 * 4096; ++i) in[i] = 1.0f;
  if (p_run("copy32", out, in, 4096)) return 1;
  if (p_run("column_padded", out, in, 1024)) return 1;
  std::free(in);
  std::free(out);
  std::printf("ran\n");
  return 0;
}
#endif
