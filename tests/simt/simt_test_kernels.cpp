// Kernels that exercise the SIMT runtime, some of them with planted bugs. They live only in the
// tests: tests/conftest.py compiles this file with the runtime (csrc/simt/*.cpp) into a small
// shared library (plain C entry points, loaded with ctypes), optionally with sanitizers.
//
// Every entry point returns 0 on success, or 1 with the error text in err.
#include "simt.h"

#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

int guard(char* err, int errlen, void (*fn)(void*), void* arg) {
  try {
    fn(arg);
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(err, static_cast<size_t>(errlen), "%s", e.what());
    return 1;
  }
}

template <typename F>
int guarded(char* err, int errlen, F f) {
  return guard(err, errlen, [](void* p) { (*static_cast<F*>(p))(); }, &f);
}

// ---- correct kernels -----------------------------------------------------------------------------

// out[b*T + t] = value written by thread (t+shift) % T of the same block, through shared memory.
__global__ void rotate_kernel(float* out, int shift) {
  SIMT_DYNAMIC_SHARED(float, s);
  int t = static_cast<int>(threadIdx.x), T = static_cast<int>(blockDim.x);
  s[t] = static_cast<float>(blockIdx.x * 1000 + t);
  __syncthreads();  // every slot written before any is read
  out[blockIdx.x * T + t] = s[(t + shift) % T];
}

// The same with the barrier missing: some order reads a slot before it is written (NaN).
__global__ void rotate_no_barrier_kernel(float* out, int shift) {
  SIMT_DYNAMIC_SHARED(float, s);
  int t = static_cast<int>(threadIdx.x), T = static_cast<int>(blockDim.x);
  s[t] = static_cast<float>(blockIdx.x * 1000 + t);
  out[blockIdx.x * T + t] = s[(t + shift) % T];
}

// Several barriers in a loop: a running block sum with a tree of barriers.
__global__ void block_sum_kernel(const float* in, float* out) {
  SIMT_DYNAMIC_SHARED(float, s);
  unsigned t = threadIdx.x;
  s[t] = in[blockIdx.x * blockDim.x + t];
  __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

// op: 0 idx, 1 up, 2 down, 3 xor.  out[i] = shuffle of in[i] with arg, width.
__global__ void shuffle_kernel(const float* in, float* out, int op, int arg, int width,
                               unsigned mask) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned lane = threadIdx.x % 32;
  if (!(mask >> lane & 1u)) {
    out[i] = -1.0f;
    return;
  }
  float v = in[i], r = 0.0f;
  switch (op) {
    case 0: r = __shfl_sync(mask, v, arg, width); break;
    case 1: r = __shfl_up_sync(mask, v, static_cast<unsigned>(arg), width); break;
    case 2: r = __shfl_down_sync(mask, v, static_cast<unsigned>(arg), width); break;
    default: r = __shfl_xor_sync(mask, v, arg, width); break;
  }
  out[i] = r;
}

// 64-bit values travel through shuffles too.
__global__ void shuffle_double_kernel(const double* in, double* out) {
  unsigned i = threadIdx.x;
  out[i] = __shfl_xor_sync(0xffffffffu, in[i], 1);
}

// out[3*i + 0..2] = ballot, all, any of pred[i] over the lanes in mask.
__global__ void vote_kernel(const int* pred, unsigned* out, unsigned mask) {
  unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  unsigned lane = threadIdx.x % 32;
  if (!(mask >> lane & 1u)) return;
  int p = pred[i];
  out[3 * i + 0] = __ballot_sync(mask, p);
  out[3 * i + 1] = static_cast<unsigned>(__all_sync(mask, p));
  out[3 * i + 2] = static_cast<unsigned>(__any_sync(mask, p));
  __syncwarp(mask);
}

// Atomics from every thread of every block.
__global__ void atomics_kernel(int* icount, unsigned* umax, float* fsum, int* cas_winner,
                               unsigned* exch) {
  unsigned g = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(icount, 1);
  atomicMax(umax, g);
  atomicAdd(fsum, 0.5f);  // exact in float for the counts used here
  atomicCAS(cas_winner, -1, static_cast<int>(g));
  atomicExch(exch, g);
}

// Indices in 3-D grids and blocks.
__global__ void index_kernel(int* out) {
  unsigned bl = (blockIdx.z * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
  unsigned tl = (threadIdx.z * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
  unsigned nthreads = blockDim.x * blockDim.y * blockDim.z;
  out[bl * nthreads + tl] = static_cast<int>(bl * 100000 + tl);
}

// Reads dynamic shared memory without writing it: must see the NaN refill.
__global__ void read_unwritten_shared_kernel(float* out) {
  SIMT_DYNAMIC_SHARED(float, s);
  out[blockIdx.x * blockDim.x + threadIdx.x] = s[threadIdx.x];
  __syncthreads();
  s[threadIdx.x] = 1.0f;  // the next block must not see this
}

// ---- planted bugs --------------------------------------------------------------------------------

__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x % 2 == 0) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

__global__ void early_return_barrier_kernel(float* out, int n) {
  if (static_cast<int>(threadIdx.x) >= n) return;  // the classic bug
  out[threadIdx.x] = 1.0f;
  __syncthreads();
}

__global__ void exited_lane_shuffle_kernel(float* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void barrier_in_warp_op_kernel(float* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  } else {
    __syncthreads();
  }
}

// For the sanitizer builds (tests/test_sanitizers.py): each bug is caught by the check meant for it.

// AddressSanitizer: the last thread reads one element past the end of `in` (`<=` for `<`).
__global__ void oob_global_read_kernel(const float* in, float* out, int n) {
  int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i <= n) out[i] = in[i];  // PLANTED: out-of-bounds read
}

// -fsanitize=bounds (ASan cannot see inside a static array): 40 threads, a 32-slot tile.
__global__ void static_shared_overflow_kernel(float* out) {
  __shared__ float tile[32];
  tile[threadIdx.x] = 1.0f;  // PLANTED: overflow of a static shared array
  __syncthreads();
  out[threadIdx.x] = tile[threadIdx.x % 32];
}

// ThreadSanitizer: a thread reads its neighbour's shared slot with no barrier in between.
__global__ void missing_barrier_kernel(float* out) {
  SIMT_DYNAMIC_SHARED(float, s);
  unsigned t = threadIdx.x;
  s[t] = static_cast<float>(t);                   // RACE-WRITE
  out[t] = s[(t + 1) % blockDim.x];               // RACE-READ: needs a __syncthreads before it
}

// NaN poisoning: one element of the output is never written.
__global__ void unwritten_output_kernel(float* out, int n) {
  int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n && i != n / 2) out[i] = 2.0f * static_cast<float>(i);  // PLANTED: skips n/2
}

__global__ void throwing_kernel(float* out) {
  if (threadIdx.x == 3 && blockIdx.x == 1) __trap();
  out[threadIdx.x] = 1.0f;
}

}  // namespace

extern "C" {

int t_set_order(const char* order, char* err, int errlen) {
  return guarded(err, errlen, [=] { simt::set_order(order); });
}
int t_set_threads(int n, char* err, int errlen) {
  return guarded(err, errlen, [=] { simt::set_threads(n); });
}
int t_rotate(float* out, int blocks, int threads, int shift, int barrier, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    size_t smem = static_cast<size_t>(threads) * sizeof(float);
    if (barrier)
      simt::launch(rotate_kernel, dim3(blocks), dim3(threads), smem, nullptr, out, shift);
    else
      simt::launch(rotate_no_barrier_kernel, dim3(blocks), dim3(threads), smem, nullptr, out,
                   shift);
  });
}
int t_block_sum(const float* in, float* out, int blocks, int threads, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(block_sum_kernel, dim3(blocks), dim3(threads),
                 static_cast<size_t>(threads) * sizeof(float), nullptr, in, out);
  });
}
int t_shuffle(const float* in, float* out, int n, int op, int arg, int width, unsigned mask,
              char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(shuffle_kernel, dim3(static_cast<unsigned>(n / 64)), dim3(64), 0, nullptr, in,
                 out, op, arg, width, mask);
  });
}
int t_shuffle_double(const double* in, double* out, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(shuffle_double_kernel, dim3(1), dim3(32), 0, nullptr, in, out);
  });
}
int t_vote(const int* pred, unsigned* out, int n, unsigned mask, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(vote_kernel, dim3(static_cast<unsigned>(n / 64)), dim3(64), 0, nullptr, pred,
                 out, mask);
  });
}
int t_atomics(int blocks, int threads, int* icount, unsigned* umax, float* fsum, int* cas,
              unsigned* exch, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(atomics_kernel, dim3(blocks), dim3(threads), 0, nullptr, icount, umax, fsum, cas,
                 exch);
  });
}
int t_index(int* out, const unsigned* g, const unsigned* b, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(index_kernel, dim3(g[0], g[1], g[2]), dim3(b[0], b[1], b[2]), 0, nullptr, out);
  });
}
int t_read_unwritten_shared(float* out, int blocks, int threads, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(read_unwritten_shared_kernel, dim3(blocks), dim3(threads),
                 static_cast<size_t>(threads) * sizeof(float), nullptr, out);
  });
}
int t_unwritten_output(float* out, int n, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    simt::launch(unwritten_output_kernel, dim3(simt::ceil_div(n, 32)), dim3(32), 0, nullptr, out, n);
  });
}
int t_planted(const char* which, float* out, char* err, int errlen) {
  return guarded(err, errlen, [=] {
    std::string w = which;
    if (w == "divergent_barrier")
      simt::launch(divergent_barrier_kernel, dim3(1), dim3(64), 0, nullptr, out);
    else if (w == "early_return")
      simt::launch(early_return_barrier_kernel, dim3(1), dim3(64), 0, nullptr, out, 40);
    else if (w == "exited_lane")
      simt::launch(exited_lane_shuffle_kernel, dim3(1), dim3(32), 0, nullptr, out);
    else if (w == "barrier_in_warp_op")
      simt::launch(barrier_in_warp_op_kernel, dim3(1), dim3(32), 0, nullptr, out);
    else if (w == "trap")
      simt::launch(throwing_kernel, dim3(2), dim3(32), 0, nullptr, out);
    else if (w == "oob_global_read") {
      std::vector<float> in(37, 1.0f), res(38);  // heap buffers with redzones under ASan
      simt::launch(oob_global_read_kernel, dim3(2), dim3(32), 0, nullptr, in.data(), res.data(),
                   37);
    } else if (w == "static_shared_overflow")
      simt::launch(static_shared_overflow_kernel, dim3(1), dim3(40), 0, nullptr, out);
    else if (w == "missing_barrier")
      simt::launch(missing_barrier_kernel, dim3(2), dim3(64), 64 * sizeof(float), nullptr, out);
    else if (w == "bad_block")
      simt::launch(throwing_kernel, dim3(1), dim3(2048), 0, nullptr, out);
    else
      throw std::runtime_error("unknown planted kernel " + w);
  });
}

}  // extern "C"
