// simt.h — the one header every cucnn kernel includes.
//
// Under nvcc it is a thin pass-through to CUDA: the real built-ins, plus simt::launch (a <<<>>>
// launch followed by an error check that throws) and SIMT_DYNAMIC_SHARED.
//
// Under a host compiler it emulates the CUDA execution model on the CPU, so the same kernel source
// runs (and is tested) on machines with no GPU:
//   - every thread of a block is a fiber with its own guarded stack; a block's fibers stay on one
//     OS thread, and run one after another between synchronisation points in a chosen order
//     (SIMT_ORDER=forward|reverse|random:SEED), so a missing __syncthreads changes the answer;
//   - threadIdx/blockIdx/blockDim/gridDim are thread_local values the scheduler sets before each
//     resume (not macros), so auto, templates and printf behave as in CUDA;
//   - __shared__ is static thread_local (one OS thread runs one block at a time); dynamic shared
//     memory is a per-OS-thread buffer refilled with NaN bytes (0xFF) before every block;
//   - __syncthreads, __syncwarp, shuffles and votes complete when every participating thread has
//     arrived; a barrier or warp operation that some thread can never reach is an error that names
//     the function, block, thread and source line, never a hang;
//   - atomics are real atomics (blocks may run in parallel on SIMT_THREADS host threads).
// The runtime itself lives in fiber.cpp, scheduler.cpp, grid.cpp and profile.cpp (simt_runtime.h
// says which does what); simt_sources() in python/cucnn/tools/simcc.py lists them for builders.
#pragma once

#include <cstddef>
#include <cstdint>

namespace simt {
inline bool launch_blocking();  // CUCNN_LAUNCH_BLOCKING, shared by both compilers (at the end)
}

#if defined(__CUDACC__)
// ---------------------------------------------------------------------------------------------
// nvcc: pass through.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <utility>

#define SIMT_HOST_EMULATION 0

// Dynamic shared memory under one name for all kernels (CUDA requires every extern __shared__
// declaration of a translation unit to agree), aligned for float4.
#define SIMT_DYNAMIC_SHARED(T, name)                                        \
  extern __shared__ __align__(16) unsigned char simt_dynamic_smem_[];       \
  T* name = reinterpret_cast<T*>(simt_dynamic_smem_)

namespace simt {

[[noreturn]] inline void throw_cuda_error(cudaError_t err, const char* what, const char* file,
                                          int line) {
  throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(err) + " (" + what +
                           ") at " + file + ":" + std::to_string(line));
}

}  // namespace simt

// One error macro that throws; pybind11 turns std::runtime_error into RuntimeError.
#define SIMT_CUDA_CHECK(call)                                                   \
  do {                                                                          \
    cudaError_t simt_err_ = (call);                                             \
    if (simt_err_ != cudaSuccess)                                               \
      ::simt::throw_cuda_error(simt_err_, #call, __FILE__, __LINE__);           \
  } while (0)

#include <mutex>
#include <unordered_map>

namespace simt {

namespace detail {

// Large dynamic shared memory must be opted into per kernel (and device). The attribute is set the
// first time a kernel asks for more than the default 48 KiB and again only when it asks for more
// than before, not on every launch.
inline void reserve_dynamic_shared(const void* kernel, size_t bytes) {
  static std::mutex mutex;
  static std::unordered_map<const void*, size_t> granted[64];  // per device ordinal
  int device = 0;
  SIMT_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  size_t& have = granted[device & 63][kernel];
  if (bytes <= have) return;
  SIMT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(bytes)));
  have = bytes;
}

inline std::string kernel_name(const void* kernel) {
#if defined(CUDART_VERSION) && CUDART_VERSION >= 12030
  const char* name = nullptr;
  if (cudaFuncGetName(&name, kernel) == cudaSuccess && name) return name;
#endif
  (void)kernel;
  return "a kernel";
}

// CUCNN_LAUNCH_BLOCKING=1: wait for the launch and name the kernel whose execution failed, so an
// asynchronous fault is not blamed on whatever call happens to synchronise next.
inline void check_launch(const void* kernel, cudaStream_t stream) {
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(err) +
                             " (launching " + kernel_name(kernel) + ")");
  if (!launch_blocking()) return;
  err = cudaStreamSynchronize(stream);
  if (err == cudaSuccess) err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error: ") + cudaGetErrorString(err) + " (in " +
                             kernel_name(kernel) + ", CUCNN_LAUNCH_BLOCKING=1)");
}

}  // namespace detail

// The launch every launcher uses. An empty grid is a no-op (CUDA would reject it), so launchers
// need no special case for empty tensors.
template <typename... KArgs, typename... Args>
inline void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  const void* k = reinterpret_cast<const void*>(kernel);
  if (shared_bytes > 48 * 1024) detail::reserve_dynamic_shared(k, shared_bytes);
  kernel<<<grid, block, shared_bytes, stream>>>(static_cast<KArgs>(std::forward<Args>(args))...);
  detail::check_launch(k, stream);
}

}  // namespace simt

#else
// ---------------------------------------------------------------------------------------------
// Host compiler: emulate.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <type_traits>
#include <utility>

#define SIMT_HOST_EMULATION 1

// The runtime is private to each module that links it (cucnn._sim, a simcc program or library, the
// test libraries): two of them loaded in one process must not bind to each other's runtime or
// thread-local indices.
#pragma GCC visibility push(hidden)

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
  constexpr operator uint3() const { return uint3{x, y, z}; }
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint3 make_uint3(unsigned x, unsigned y, unsigned z) { return uint3{x, y, z}; }

struct CUstream_st;
using cudaStream_t = CUstream_st*;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// One OS thread runs one block at a time, so a thread_local static is exactly per-block storage.
// (Unlike dynamic shared memory it is not refilled with NaN between blocks: see README.)
#define __shared__ static thread_local

constexpr int warpSize = 32;

// Set by the scheduler before every resume of a fiber. thread_local, not macros.
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};

namespace simt {

struct SourceLoc {
  const char* file;
  int line;
  const char* func;
};

enum class WarpOp : int { sync, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, all, any };

namespace detail {

// Implemented in scheduler.cpp and grid.cpp.
void sync_threads(SourceLoc loc);
std::uint64_t warp_op(WarpOp op, unsigned mask, std::uint64_t value, int arg, int width,
                      SourceLoc loc);
unsigned char* dynamic_shared();
// `kernel` and the closure's extent are for the memory profiler (the kernel's name; the closure
// holds the kernel's parameters, whose reads are not memory traffic).
void run_grid(dim3 grid, dim3 block, size_t shared_bytes, void (*body)(void*), void* closure,
              const void* kernel, size_t closure_bytes);
[[noreturn]] void trap(SourceLoc loc);

template <typename T>
inline std::uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a type > 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <typename T>
inline T from_bits(std::uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

}  // namespace detail

// The launch every launcher uses, identical in signature to the nvcc one. Arguments are converted
// to the kernel's parameter types once; every simulated thread calls the kernel with them.
template <typename... KArgs, typename... Args>
inline void launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t shared_bytes,
                   cudaStream_t /*stream*/, Args&&... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args), "wrong number of kernel arguments");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
  (void)launch_blocking();  // sim launches are synchronous anyway; a malformed value is an error
  struct Closure {
    void (*kernel)(KArgs...);
    std::tuple<std::decay_t<KArgs>...> params;
  };
  Closure closure{kernel, std::tuple<std::decay_t<KArgs>...>(
                              static_cast<KArgs>(std::forward<Args>(args))...)};
  detail::run_grid(grid, block, shared_bytes,
                   [](void* raw) {
                     auto* c = static_cast<Closure*>(raw);
                     std::apply(c->kernel, c->params);
                   },
                   &closure, reinterpret_cast<const void*>(kernel), sizeof closure);
}

// Knobs (also read from SIMT_ORDER / SIMT_THREADS at load time).
void set_order(const char* order);  // "forward", "reverse" or "random:SEED"; throws otherwise
const char* get_order();
void set_threads(int n);            // host threads that run blocks in parallel, >= 1
int get_threads();

}  // namespace simt

#define SIMT_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::simt::detail::dynamic_shared())

// ---- barriers, shuffles, votes (source location is taken at the call site) --------------------
#define SIMT_LOC_PARAMS                                                              \
  const char *simt_file_ = __builtin_FILE(), int simt_line_ = __builtin_LINE(),      \
             const char *simt_func_ = __builtin_FUNCTION()
#define SIMT_LOC ::simt::SourceLoc{simt_file_, simt_line_, simt_func_}

inline void __syncthreads(SIMT_LOC_PARAMS) { ::simt::detail::sync_threads(SIMT_LOC); }
inline void __syncwarp(unsigned mask = 0xffffffffu, SIMT_LOC_PARAMS) {
  ::simt::detail::warp_op(::simt::WarpOp::sync, mask, 0, 0, warpSize, SIMT_LOC);
}
template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = warpSize, SIMT_LOC_PARAMS) {
  using namespace ::simt::detail;
  return from_bits<T>(warp_op(::simt::WarpOp::shfl_idx, mask, to_bits(var), src_lane, width,
                              SIMT_LOC));
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                        SIMT_LOC_PARAMS) {
  using namespace ::simt::detail;
  return from_bits<T>(warp_op(::simt::WarpOp::shfl_up, mask, to_bits(var),
                              static_cast<int>(delta), width, SIMT_LOC));
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize,
                          SIMT_LOC_PARAMS) {
  using namespace ::simt::detail;
  return from_bits<T>(warp_op(::simt::WarpOp::shfl_down, mask, to_bits(var),
                              static_cast<int>(delta), width, SIMT_LOC));
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize,
                         SIMT_LOC_PARAMS) {
  using namespace ::simt::detail;
  return from_bits<T>(warp_op(::simt::WarpOp::shfl_xor, mask, to_bits(var), lane_mask, width,
                              SIMT_LOC));
}
inline unsigned __ballot_sync(unsigned mask, int predicate, SIMT_LOC_PARAMS) {
  return static_cast<unsigned>(::simt::detail::warp_op(::simt::WarpOp::ballot, mask,
                                                       predicate != 0, 0, warpSize, SIMT_LOC));
}
inline int __all_sync(unsigned mask, int predicate, SIMT_LOC_PARAMS) {
  return static_cast<int>(::simt::detail::warp_op(::simt::WarpOp::all, mask, predicate != 0, 0,
                                                  warpSize, SIMT_LOC));
}
inline int __any_sync(unsigned mask, int predicate, SIMT_LOC_PARAMS) {
  return static_cast<int>(::simt::detail::warp_op(::simt::WarpOp::any, mask, predicate != 0, 0,
                                                  warpSize, SIMT_LOC));
}
[[noreturn]] inline void __trap(SIMT_LOC_PARAMS) { ::simt::detail::trap(SIMT_LOC); }

// ---- atomics: real atomics, since blocks may run on several host threads ---------------------
inline int atomicAdd(int* p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline float atomicAdd(float* p, float v) {
  // Compare-and-swap on the bit pattern, as CUDA did before native float atomics.
  auto* bits = reinterpret_cast<unsigned*>(p);
  unsigned old = __atomic_load_n(bits, __ATOMIC_RELAXED);
  for (;;) {
    float f;
    std::memcpy(&f, &old, 4);
    f += v;
    unsigned desired;
    std::memcpy(&desired, &f, 4);
    if (__atomic_compare_exchange_n(bits, &old, desired, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
      std::memcpy(&f, &old, 4);
      return f;
    }
  }
}
template <typename T>
inline T simt_atomic_cas_(T* p, T compare, T val) {
  __atomic_compare_exchange_n(p, &compare, val, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value, whether or not the swap happened
}
inline int atomicCAS(int* p, int c, int v) { return simt_atomic_cas_(p, c, v); }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { return simt_atomic_cas_(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c,
                                    unsigned long long v) {
  return simt_atomic_cas_(p, c, v);
}
inline int atomicExch(int* p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
inline unsigned atomicExch(unsigned* p, unsigned v) {
  return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
}
inline float atomicExch(float* p, float v) {
  unsigned nv;
  std::memcpy(&nv, &v, 4);
  unsigned old = __atomic_exchange_n(reinterpret_cast<unsigned*>(p), nv, __ATOMIC_RELAXED);
  float f;
  std::memcpy(&f, &old, 4);
  return f;
}
template <typename T>
inline T simt_atomic_max_(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (old < v &&
         !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline int atomicMax(int* p, int v) { return simt_atomic_max_(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return simt_atomic_max_(p, v); }
template <typename T>
inline T simt_atomic_min_(T* p, T v) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (v < old &&
         !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
  return simt_atomic_min_(p, v);
}

// ---- math intrinsics the kernels use (exact host versions; GPU ones differ in the last bits) --
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x != x ? 0.0f : std::fmin(std::fmax(x, 0.0f), 1.0f); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned i) { float x; std::memcpy(&x, &i, 4); return x; }
template <typename T>
inline T __ldg(const T* p) { return *p; }

#pragma GCC visibility pop
#endif  // __CUDACC__

// ---- shared by both compilers -----------------------------------------------------------------
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace simt {

// CUCNN_LAUNCH_BLOCKING=1 (like CUDA_LAUNCH_BLOCKING): every launch waits for its kernel and
// reports a failure naming it. Read once; unset, empty or 0 is off, 1 is on, anything else an
// error naming the variable. On sim every launch is synchronous anyway, but the value is checked.
inline bool launch_blocking() {
  static const int mode = [] {
    const char* v = std::getenv("CUCNN_LAUNCH_BLOCKING");
    if (!v || !*v || std::string(v) == "0") return 0;
    if (std::string(v) == "1") return 1;
    return -1;
  }();
  if (mode < 0)
    throw std::invalid_argument(std::string("CUCNN_LAUNCH_BLOCKING must be 0 or 1, got '") +
                                std::getenv("CUCNN_LAUNCH_BLOCKING") + "'");
  return mode == 1;
}

template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

}  // namespace simt

// Tensor-core mma, cvt.rna.tf32 and cp.async wrappers (PTX under nvcc, emulated on the host).
#include "simt_tc.h"
