// simt_tc.h — tensor-core and asynchronous-copy instructions for kernels: TF32 mma.sync, the
// cvt.rna.tf32.f32 rounding, and cp.async with its commit/wait groups. Included by simt.h.
//
// Under nvcc each wrapper is one inline PTX instruction (sm_80 and later; on an older target the
// wrapper traps, so a build for sm_75 still compiles and a launch there fails loudly instead of
// computing garbage — callers only route to these kernels on sm_80+).
//
// Under the host compiler each is emulated as the PTX ISA defines it, built only on the runtime's
// public primitives (thread indices, __syncwarp, per-block thread_local storage):
//
//   simt::mma_m16n8k8_tf32  a warp-collective operation. Every lane deposits its fragment
//       registers in per-warp staging storage and meets the others at a full-mask __syncwarp (so an
//       exited lane, a missing lane or a divergent call is the runtime's error naming the caller's
//       line); each lane then assembles A (16x8), B (8x8) and C (16x8) from all 32 fragments and
//       computes its own D fragment; a second __syncwarp keeps the staging storage alive until
//       every lane has read it. Operands with any of the low 13 bits set (not TF32 values: a
//       forgotten cvt) are an error naming the line.
//       Arithmetic: each product of two TF32 values is exact in fp32 (11 x 11 significand bits);
//       D[i][j] = round_to_fp32(C[i][j] + sum_k A[i][k] * B[k][j]) with the sum taken in double in
//       k order, i.e. (to within double's 53 bits) exact products summed once and rounded once.
//       Real tensor cores do not specify their internal rounding (they truncate some partial sums);
//       the emulation picks the most accurate well-defined answer, which is also what the NumPy
//       TF32 reference computes per 8-term chunk, so tests can hold the two tightly together.
//   simt::cvt_rna_tf32  round to nearest, ties away from zero, to a 10-bit mantissa (low 13 bits
//       zero), exactly as the SASS ptxas emits for it: +-inf stay, overflow rounds to inf, a NaN
//       keeps its sign and upper payload.
//   simt::cp_async_* / cp_async_commit / cp_async_wait<N>  each thread keeps a queue of its
//       copies; commit closes the open group; wait<N> lands every copy of all but the newest N
//       groups. A copy reads its source when it is issued (legal: the copy may happen at any time
//       before the wait) and writes its destination only when its thread waits: until then the
//       destination keeps dynamic shared memory's NaN poison, so a read before the wait (or, by
//       another thread, before the barrier that follows the wait) sees NaN in some SIMT order and
//       is a race under the TSan build. A kernel must wait_group 0 before it exits (as any correct
//       pipeline does); copies left queued by a block that ended in an error are dropped when the
//       thread's next block (different index or launch) first uses the queue.
//
// Memory profiler (profile.cpp): the copies' global reads (at issue) and shared writes (at the
// wait) are constant-size 4-byte accesses made by instrumented code, attributed to the kernel's
// cp.async line (and the issue's execution count, so each warp's copies of one instruction are
// one request at both ends). The emulation's own bookkeeping (the copy queue, the mma staging:
// hardware state and registers on a GPU) is compiled without the instrumentation
// (SIMT_TC_UNTRACED), so it is neither memory traffic to the profiler nor a race to TSan.
#pragma once

#include <cstdint>

#if !SIMT_HOST_EMULATION
// ---------------------------------------------------------------------------------------------
// nvcc
namespace simt {

// cvt.rna.tf32.f32: the result is an fp32 bit pattern with the low 13 bits zero.
__device__ __forceinline__ unsigned cvt_rna_tf32(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return r;
#elif defined(__CUDA_ARCH__)
  __trap();
  return 0u;
#else
  (void)x;
  return 0u;
#endif
}

// D = A * B + C; PTX ISA "Matrix Fragments for mma.m16n8k8" (.tf32 A and B, .f32 C/D).
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const unsigned (&a)[4],
                                                 const unsigned (&b)[2], const float (&c)[4]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%10,%11,%12,%13};"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]),
        "f"(c[2]), "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  (void)a; (void)b; (void)c; (void)d;
  __trap();
#else
  (void)a; (void)b; (void)c; (void)d;
#endif
}

// cp.async.cg.shared.global, 16 bytes; src_bytes < 16 zero-fills the rest (0: all zeros, and src
// is not read). dst and src 16-byte aligned.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(s), "l"(src), "r"(src_bytes)
               : "memory");
#elif defined(__CUDA_ARCH__)
  (void)dst; (void)src; (void)src_bytes;
  __trap();
#else
  (void)dst; (void)src; (void)src_bytes;
#endif
}

// cp.async.ca.shared.global, 4 bytes; src_bytes 0 writes a zero without reading src.
__device__ __forceinline__ void cp_async_4(void* dst, const void* src, int src_bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(s), "l"(src), "r"(src_bytes)
               : "memory");
#elif defined(__CUDA_ARCH__)
  (void)dst; (void)src; (void)src_bytes;
  __trap();
#else
  (void)dst; (void)src; (void)src_bytes;
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}

// Wait until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

}  // namespace simt

#else
// ---------------------------------------------------------------------------------------------
// Host emulation
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

// No ThreadSanitizer instrumentation (the profiler's and the TSan build's) for the emulation's
// bookkeeping. GCC does not inline instrumented code into such a function (nor the reverse), so
// the copies' own accesses (copy_in / copy_out) stay instrumented.
#define SIMT_TC_UNTRACED __attribute__((no_sanitize("thread"), noinline))

namespace simt {
namespace detail {
// profile.cpp: attribute this thread's next accesses (until profile_site_end) to file:line and to
// the given execution count of that site (0: the next one; returned). No-ops unless profiling.
std::uint32_t profile_site_begin(const char* file, int line, std::uint32_t count);
void profile_site_end();
}  // namespace detail
namespace tc_detail {

inline int linear_tid() {
  return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

[[noreturn]] inline void fail(const std::string& what, const SourceLoc& loc) {
  throw std::runtime_error(what + " in " + loc.func + " at " + loc.file + ":" +
                           std::to_string(loc.line));
}

// One lane's deposit for an mma: its A, B and C fragment registers.
struct MmaLane {
  unsigned a[4], b[2];
  float c[4];
};
// Per-block staging: one OS thread runs one block at a time, so static thread_local is exactly
// per-block storage (indexed by warp and lane; 32 warps = 1024 threads).
inline MmaLane (&mma_staging())[32][32] {
  static thread_local MmaLane s[32][32];
  return s;
}

inline void check_tf32(unsigned bits, const char* which, int lane, int reg, const SourceLoc& loc) {
  if (bits & 0x1fffu) {
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "mma.m16n8k8.tf32: operand %s (lane %d, register %d) is 0x%08x, not a TF32 "
                  "value (low 13 bits set: convert with cvt_rna_tf32 first)",
                  which, lane, reg, bits);
    fail(buf, loc);
  }
}

inline float as_float(unsigned bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// One thread's pending cp.async copies, in issue order; group g holds the copies issued between
// the gth and (g+1)th commit. Plain fixed-size storage, zero-initialised, no constructor: a
// thread_local with a constructor is initialised lazily behind a guard shared by all of the OS
// thread's fibers, which ThreadSanitizer (one fiber = one thread to it) reports as a race.
constexpr int kMaxPendingCopies = 160;  // per thread; the 3-stage 128x128 conv keeps at most 128
struct Copy {
  void* dst;
  const char* file;  // the issuing line and its execution count (for the profiler)
  int line;
  std::uint32_t count;
  unsigned group;
  unsigned char bytes, src_bytes;
  unsigned char data[16];  // the source bytes, read at issue
};
struct CopyData {
  unsigned char b[16];
};
typedef unsigned __attribute__((may_alias)) aliased_u32;

// The copy's global read (instrumented: 4-byte accesses, the tail byte by byte) into a local.
inline CopyData copy_in(const void* src, int n) {
  CopyData d{};
  const unsigned char* p = static_cast<const unsigned char*>(src);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const unsigned w = *reinterpret_cast<const aliased_u32*>(p + i);
    std::memcpy(d.b + i, &w, 4);
  }
  for (; i < n; ++i) d.b[i] = p[i];
  return d;
}
// The copy's shared write (instrumented: 4-byte stores; cp.async sizes are multiples of 4).
inline void copy_out(void* dst, const CopyData& d, int bytes) {
  unsigned char* q = static_cast<unsigned char*>(dst);
  for (int i = 0; i < bytes; i += 4) {
    unsigned w;
    std::memcpy(&w, d.b + i, 4);
    *reinterpret_cast<aliased_u32*>(q + i) = w;
  }
}
struct CopyQueue {
  Copy copies[kMaxPendingCopies];
  int size;
  unsigned committed;  // groups closed so far
  // The block the queue belongs to; a stale queue is dropped (see the header comment).
  unsigned bx, by, bz;
  const unsigned char* smem;
};
SIMT_TC_UNTRACED inline CopyQueue& copy_queue() {
  static thread_local CopyQueue q[1024];
  CopyQueue& mine = q[linear_tid()];
  const unsigned char* smem = ::simt::detail::dynamic_shared();
  if (mine.bx != blockIdx.x || mine.by != blockIdx.y || mine.bz != blockIdx.z ||
      mine.smem != smem) {
    mine.size = 0;
    mine.committed = 0;
    mine.bx = blockIdx.x;
    mine.by = blockIdx.y;
    mine.bz = blockIdx.z;
    mine.smem = smem;
  }
  return mine;
}

SIMT_TC_UNTRACED inline void enqueue(void* dst, const CopyData& d, int bytes, int src_bytes,
                                     const SourceLoc& loc, std::uint32_t count, const char* name) {
  CopyQueue& q = copy_queue();
  if (q.size == kMaxPendingCopies)
    fail(std::string(name) + ": more than " + std::to_string(kMaxPendingCopies) +
             " copies in flight in one thread (a missing cp.async.wait_group?)",
         loc);
  Copy& c = q.copies[q.size++];
  c.dst = dst;
  c.file = loc.file;
  c.line = loc.line;
  c.count = count;
  c.group = q.committed;
  c.bytes = static_cast<unsigned char>(bytes);
  c.src_bytes = static_cast<unsigned char>(src_bytes);
  std::memcpy(c.data, d.b, sizeof c.data);
}

inline void issue(void* dst, const void* src, int bytes, int src_bytes, const char* name,
                  const SourceLoc& loc) {
  if (src_bytes < 0 || src_bytes > bytes)
    fail(std::string(name) + ": src-size " + std::to_string(src_bytes) + " outside [0, " +
             std::to_string(bytes) + "]",
         loc);
  if (reinterpret_cast<std::uintptr_t>(dst) % static_cast<unsigned>(bytes) ||
      (src_bytes && reinterpret_cast<std::uintptr_t>(src) % static_cast<unsigned>(bytes)))
    fail(std::string(name) + ": addresses must be " + std::to_string(bytes) + "-byte aligned",
         loc);
  // The read happens now, attributed to the kernel's line; src-size 0 reads nothing.
  const std::uint32_t count = ::simt::detail::profile_site_begin(loc.file, loc.line, 0);
  const CopyData d = copy_in(src, src_bytes);
  ::simt::detail::profile_site_end();
  enqueue(dst, d, bytes, src_bytes, loc, count, name);
}

// Lands every copy of the groups older than `limit` (in issue order), keeps the others queued.
SIMT_TC_UNTRACED inline void land(unsigned limit_groups) {
  CopyQueue& q = copy_queue();
  int keep = 0;
  for (int i = 0; i < q.size; ++i) {
    const Copy& c = q.copies[i];
    if (c.group < limit_groups) {
      CopyData d;
      std::memcpy(d.b, c.data, sizeof d.b);  // zero past src_bytes (copy_in started from zeros)
      ::simt::detail::profile_site_begin(c.file, c.line, c.count);
      copy_out(c.dst, d, c.bytes);
      ::simt::detail::profile_site_end();
    } else {
      q.copies[keep++] = c;
    }
  }
  q.size = keep;
}
SIMT_TC_UNTRACED inline void commit() { ++copy_queue().committed; }
SIMT_TC_UNTRACED inline unsigned committed() { return copy_queue().committed; }

}  // namespace tc_detail

// Bit for bit what ptxas makes of cvt.rna.tf32.f32 for sm_80 and sm_90 (CUDA 13.0 SASS:
// FSETP.GEU |x|, +INF; @!P IADD 0x1000; LOP3 & 0xffffe000): adding half of the dropped unit to
// the magnitude rounds ties away from zero, a carry into the exponent is the correct next binade
// and the largest finite values round to inf; inf and NaN only lose their low 13 bits (a NaN whose
// payload lies only there would become inf: no NaN the hardware or NumPy makes looks like that).
inline unsigned cvt_rna_tf32(float x) {
  unsigned bits;
  std::memcpy(&bits, &x, 4);
  if ((bits & 0x7f800000u) != 0x7f800000u) bits += 0x1000u;
  return bits & 0xffffe000u;
}

// D = A * B + C for a 16x8x8 TF32 product, collectively by the 32 lanes of a warp.
// Fragment layouts: PTX ISA, section "Matrix Fragments for mma.m16n8k8", the .tf32 A and B and
// the .f32 C/D figures. With groupID = lane >> 2 and tig = lane % 4:
//   A (16x8, row): a0 (g, tig), a1 (g+8, tig), a2 (g, tig+4), a3 (g+8, tig+4)
//   B (8x8, col):  b0 (k = tig, n = g), b1 (k = tig+4, n = g)
//   C, D (16x8):   c0 (g, 2 tig), c1 (g, 2 tig + 1), c2 (g+8, 2 tig), c3 (g+8, 2 tig + 1)
SIMT_TC_UNTRACED inline void mma_m16n8k8_tf32(float (&d)[4], const unsigned (&a)[4],
                                              const unsigned (&b)[2], const float (&c)[4],
                                              SIMT_LOC_PARAMS) {
  using namespace tc_detail;
  const SourceLoc loc = SIMT_LOC;
  const int tid = linear_tid(), warp = tid / 32, lane = tid % 32;
  MmaLane(&st)[32] = mma_staging()[warp];
  for (int i = 0; i < 4; ++i) st[lane].a[i] = a[i], st[lane].c[i] = c[i];
  st[lane].b[0] = b[0];
  st[lane].b[1] = b[1];
  ::simt::detail::warp_op(WarpOp::sync, 0xffffffffu, 0, 0, warpSize, loc);  // all 32 deposited
  float A[16][8], B[8][8], C[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, t = l & 3;
    for (int i = 0; i < 4; ++i) check_tf32(st[l].a[i], "A", l, i, loc);
    for (int i = 0; i < 2; ++i) check_tf32(st[l].b[i], "B", l, i, loc);
    A[g][t] = as_float(st[l].a[0]);
    A[g + 8][t] = as_float(st[l].a[1]);
    A[g][t + 4] = as_float(st[l].a[2]);
    A[g + 8][t + 4] = as_float(st[l].a[3]);
    B[t][g] = as_float(st[l].b[0]);
    B[t + 4][g] = as_float(st[l].b[1]);
    C[g][2 * t] = st[l].c[0];
    C[g][2 * t + 1] = st[l].c[1];
    C[g + 8][2 * t] = st[l].c[2];
    C[g + 8][2 * t + 1] = st[l].c[3];
  }
  ::simt::detail::warp_op(WarpOp::sync, 0xffffffffu, 0, 0, warpSize, loc);  // all 32 have read
  const int g = lane >> 2, t = lane & 3;
  const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
  for (int i = 0; i < 4; ++i) {
    double acc = C[rows[i]][cols[i]];
    for (int k = 0; k < 8; ++k)
      acc += static_cast<double>(A[rows[i]][k]) * static_cast<double>(B[k][cols[i]]);
    d[i] = static_cast<float>(acc);
  }
}

inline void cp_async_16(void* dst, const void* src, int src_bytes, SIMT_LOC_PARAMS) {
  tc_detail::issue(dst, src, 16, src_bytes, "cp.async.cg 16", SIMT_LOC);
}
inline void cp_async_4(void* dst, const void* src, int src_bytes, SIMT_LOC_PARAMS) {
  tc_detail::issue(dst, src, 4, src_bytes, "cp.async.ca 4", SIMT_LOC);
}
inline void cp_async_commit() { tc_detail::commit(); }

// Lands every copy of the groups older than the newest N (copies issued after the last commit
// belong to no group yet and stay pending, as in PTX).
template <int N>
inline void cp_async_wait() {
  static_assert(N >= 0, "cp.async.wait_group N needs N >= 0");
  const unsigned committed = tc_detail::committed();
  tc_detail::land(committed >= static_cast<unsigned>(N) ? committed - static_cast<unsigned>(N)
                                                        : 0);  // groups [0, limit) complete
}

}  // namespace simt

#endif
