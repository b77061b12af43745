// conv2d.cuh — 2-D convolution (cross-correlation, as deep-learning libraries compute it), NCHW:
//
//   y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, c, p*sh - pt + r*dh, q*sw - pl + s*dw] * w[k,c,r,s]
//
// x is (N, C, H, W), w (K, C, R, S), y (N, K, P, Q); pt/pl are the top/left padding (the bottom
// and right padding only change P and Q, so Keras's asymmetric "same" needs nothing here).
//
// All three passes are implicit GEMMs (no im2col is materialised) run by one tiled kernel,
// conv_gemm_kernel, which is told how to gather its two operands and where to put the result:
//
//   pass      GEMM-M         GEMM-N      GEMM-K          A (M x K)              B (K x N)
//   forward   N*P*Q pixels   K filters   C*R*S           x gathered (im2col)    w
//   dgrad     N*H*W pixels   C           K*R*S           dy gathered            w
//   wgrad     K              C*R*S       N*P*Q (split)   dy                     x gathered
//
// The kernel: a BM x BN output tile per block of 256 threads, each thread a (BM/16) x (BN/16)
// register micro-tile; BK = 16 slices of A and B staged in shared memory, double-buffered: the next
// slice is fetched into registers while the current one is multiplied, so global latency hides
// behind the FMAs, and one barrier per slice suffices. Every load slot keeps a cursor over its
// reduction index (c, r, s or n, p, q) that advances by BK with carries, so the inner loop has no
// integer division; the (n, p, q) of a thread's output row is decoded once. Weight slices are read
// with float4 loads where rows are 16-byte aligned. The forward epilogue adds the bias and,
// optionally, applies ReLU.
//
// wgrad's reduction (N*P*Q, 100,352 for a ResNet-50 layer at batch 32) is split over blockIdx.z
// into a workspace, then conv2d_wgrad_reduce_kernel adds the partial sums in split order: no float
// atomics anywhere, results bitwise identical run to run and across SIMT orders. The bias gradient
// is a block reduction per filter, also in a fixed order.
//
// Versions: 0 naive direct kernels, one thread per output element (kept for tests and the
// benchmarks); 1 the tiled implicit GEMM.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "simt.h"

namespace cucnn {

struct ConvShape {
  int N, C, H, W;        // input
  int K, R, S;           // filters
  int P, Q;              // output
  int sh, sw, pt, pl;    // stride, top/left padding
  int dh, dw;            // dilation
};

constexpr int kConvThreads = 256;
constexpr int kConvBK = 16;

// ---- version 0: direct ----------------------------------------------------------------------------

// y is (N, K, P, Q); one thread per output element
__global__ void conv2d_forward_naive_kernel(float* y, const float* x, const float* w,
                                            const float* bias, ConvShape s, int relu) {
  const int64_t total = static_cast<int64_t>(s.N) * s.K * s.P * s.Q;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int q = static_cast<int>(i % s.Q), p = static_cast<int>(i / s.Q % s.P);
  const int k = static_cast<int>(i / (static_cast<int64_t>(s.Q) * s.P) % s.K);
  const int64_t n = i / (static_cast<int64_t>(s.Q) * s.P * s.K);
  float acc = 0.0f;
  for (int c = 0; c < s.C; ++c)
    for (int r = 0; r < s.R; ++r)
      for (int t = 0; t < s.S; ++t) {
        const int ih = p * s.sh - s.pt + r * s.dh, iw = q * s.sw - s.pl + t * s.dw;
        if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
        acc += x[((n * s.C + c) * s.H + ih) * s.W + iw] *
               w[((static_cast<int64_t>(k) * s.C + c) * s.R + r) * s.S + t];
      }
  if (bias) acc += bias[k];
  y[i] = relu && acc < 0.0f ? 0.0f : acc;
}

// dx is (N, C, H, W); one thread per input element, gathering every (k, r, s) that reads it
__global__ void conv2d_dgrad_naive_kernel(float* dx, const float* dy, const float* w, ConvShape s) {
  const int64_t total = static_cast<int64_t>(s.N) * s.C * s.H * s.W;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int iw = static_cast<int>(i % s.W), ih = static_cast<int>(i / s.W % s.H);
  const int c = static_cast<int>(i / (static_cast<int64_t>(s.W) * s.H) % s.C);
  const int64_t n = i / (static_cast<int64_t>(s.W) * s.H * s.C);
  float acc = 0.0f;
  for (int k = 0; k < s.K; ++k)
    for (int r = 0; r < s.R; ++r)
      for (int t = 0; t < s.S; ++t) {
        const int ph = ih + s.pt - r * s.dh, pw = iw + s.pl - t * s.dw;
        if (ph < 0 || pw < 0 || ph % s.sh || pw % s.sw) continue;
        const int p = ph / s.sh, q = pw / s.sw;
        if (p >= s.P || q >= s.Q) continue;
        acc += dy[((n * s.K + k) * s.P + p) * s.Q + q] *
               w[((static_cast<int64_t>(k) * s.C + c) * s.R + r) * s.S + t];
      }
  dx[i] = acc;
}

// dw is (K, C, R, S); one thread per weight
__global__ void conv2d_wgrad_naive_kernel(float* dw, const float* dy, const float* x, ConvShape s) {
  const int64_t total = static_cast<int64_t>(s.K) * s.C * s.R * s.S;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int t = static_cast<int>(i % s.S), r = static_cast<int>(i / s.S % s.R);
  const int c = static_cast<int>(i / (static_cast<int64_t>(s.S) * s.R) % s.C);
  const int k = static_cast<int>(i / (static_cast<int64_t>(s.S) * s.R * s.C));
  float acc = 0.0f;
  for (int64_t n = 0; n < s.N; ++n)
    for (int p = 0; p < s.P; ++p)
      for (int q = 0; q < s.Q; ++q) {
        const int ih = p * s.sh - s.pt + r * s.dh, iw = q * s.sw - s.pl + t * s.dw;
        if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
        acc += dy[((n * s.K + k) * s.P + p) * s.Q + q] * x[((n * s.C + c) * s.H + ih) * s.W + iw];
      }
  dw[i] = acc;
}

// db is (K,); one block per filter, a fixed-order block reduction over (N, P, Q).
// Dynamic shared memory: 33 floats.
__global__ void conv2d_bias_grad_kernel(float* db, const float* dy, ConvShape s) {
  SIMT_DYNAMIC_SHARED(float, smem);
  const int k = static_cast<int>(blockIdx.x);
  const int64_t pq = static_cast<int64_t>(s.P) * s.Q;
  float acc = 0.0f;
  for (int64_t n = 0; n < s.N; ++n) {
    const float* row = dy + (n * s.K + k) * pq;
    for (int64_t j = threadIdx.x; j < pq; j += blockDim.x) acc += row[j];
  }
  acc = block_reduce(acc, smem, SumOp{});
  if (threadIdx.x == 0) db[k] = acc;
}

// ---- version 1: the tiled implicit GEMM -----------------------------------------------------------

// A mixed-radix counter (hi, mid, lo) with radices (-, MID, LO) that advances by a fixed step
// whose digits are precomputed, so moving a load slot to the next K-slice costs two compares.
struct Cursor3 {
  int hi, mid, lo;
  __device__ __forceinline__ void init(int64_t k, int MID, int LO) {
    lo = static_cast<int>(k % LO);
    mid = static_cast<int>(k / LO % MID);
    hi = static_cast<int>(k / (static_cast<int64_t>(LO) * MID));
  }
  __device__ __forceinline__ void advance(const Cursor3& step, int MID, int LO) {
    lo += step.lo;
    mid += step.mid;
    hi += step.hi;
    if (lo >= LO) { lo -= LO; ++mid; }
    if (mid >= MID) { mid -= MID; ++hi; }
  }
};

// Thread t's load slots under the "strided" mapping: row (t % ROWS) of the tile, K-offsets
// t / ROWS + (256 / ROWS) * i. Consecutive threads read consecutive rows: coalesced where the
// operand is contiguous along its row index.
template <int ROWS>
struct Strided {
  static constexpr int kSlots = ROWS * kConvBK / kConvThreads;
  static constexpr int kGap = kConvThreads / ROWS;  // K distance between a thread's slots
  static __device__ __forceinline__ int row(int t) { return t % ROWS; }
  static __device__ __forceinline__ int kk(int t, int i) {
    return t / ROWS + (kConvThreads / ROWS) * i;
  }
};

// --- operand loaders: init once per thread, then load / advance per K-slice ---
// Each writes its slice into smem laid out [kConvBK][ROWS + 4] (the pad keeps float4 alignment).

// The bookkeeping every strided loader shares: the reduction index k of the thread's first slot
// and its cursor over the radices (-, MID, LO). The other slots lie kGap further along K each, so
// their cursors are stepped from the first inside the load loop rather than kept: one cursor in
// registers instead of kSlots (16 in the 256-row tiles), which is what kept the tall tiles at
// 190 registers a thread.
template <int ROWS>
struct StridedSlots {
  using Map = Strided<ROWS>;
  int64_t k0;
  Cursor3 cur0, gap;  // gap: the digits of kGap
  __device__ void init_slots(int64_t k_begin, int MID, int LO) {
    k0 = k_begin + Map::kk(static_cast<int>(threadIdx.x), 0);
    cur0.init(k0, MID, LO);
    gap.init(Map::kGap, MID, LO);
  }
  __device__ void advance_slots(const Cursor3& step, int MID, int LO) {
    k0 += kConvBK;
    cur0.advance(step, MID, LO);
  }
  // f(i, k, cursor) for each slot i, in order.
  template <class F>
  __device__ __forceinline__ void for_slots(int MID, int LO, F&& f) const {
    Cursor3 c = cur0;
    int64_t k = k0;
#pragma unroll
    for (int i = 0; i < Map::kSlots; ++i) {
      f(i, k, c);
      c.advance(gap, MID, LO);
      k += Map::kGap;
    }
  }
  __device__ void store(float* smem, const float* r) const {
    const int t = static_cast<int>(threadIdx.x);
    for (int i = 0; i < Map::kSlots; ++i) smem[Map::kk(t, i) * (ROWS + 4) + Map::row(t)] = r[i];
  }
};

// forward A: im2col of x; rows are output pixels m = (n, p, q), K is (c, r, s)
template <int BM>
struct FwdLoadA : StridedSlots<BM> {
  using Base = StridedSlots<BM>;
  using Base::for_slots, Base::init_slots, Base::advance_slots, typename Base::Map;
  const float* base;  // x at image n
  int ih0, iw0;
  bool valid;
  // slot cursors: (c, r, s)
  __device__ void init(const ConvShape& s, const float* x, int64_t m0, int64_t k0, int64_t M) {
    const int t = static_cast<int>(threadIdx.x);
    const int64_t m = m0 + Map::row(t);
    valid = m < M;
    const int64_t pq = static_cast<int64_t>(s.P) * s.Q;
    const int64_t n = valid ? m / pq : 0;
    const int rem = static_cast<int>(valid ? m - n * pq : 0);
    ih0 = rem / s.Q * s.sh - s.pt;
    iw0 = rem % s.Q * s.sw - s.pl;
    base = x + n * s.C * static_cast<int64_t>(s.H) * s.W;
    init_slots(k0, s.R, s.S);
  }
  __device__ void load(const ConvShape& s, int64_t kend, float* r) const {
    for_slots(s.R, s.S, [&](int i, int64_t k, const Cursor3& c) {
      const int ih = ih0 + c.mid * s.dh, iw = iw0 + c.lo * s.dw;
      const bool in = valid && k < kend && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W;
      r[i] = in ? base[(static_cast<int64_t>(c.hi) * s.H + ih) * s.W + iw] : 0.0f;
    });
  }
  __device__ void advance(const ConvShape& s, const Cursor3& step) {
    advance_slots(step, s.R, s.S);
  }
};

// forward B: the weights as a (C*R*S) x K matrix, i.e. w rows read along K. "Contiguous"
// mapping: each thread loads SLOTS consecutive K-values of one filter, one float4 when SLOTS == 4
// and rows are 16-byte aligned.
template <int BN>
struct FwdLoadB {
  static constexpr int kSlots = BN * kConvBK / kConvThreads;
  static constexpr int kThreadsPerRow = kConvBK / kSlots;
  const float* row;  // w at filter n
  bool valid, vec;
  int64_t k, crs;
  __device__ void init(const ConvShape& s, const float* w, int n0, int64_t k0) {
    const int t = static_cast<int>(threadIdx.x);
    const int n = n0 + t / kThreadsPerRow;
    crs = static_cast<int64_t>(s.C) * s.R * s.S;
    valid = n < s.K;
    row = w + (valid ? n : 0) * crs;
    k = k0 + (t % kThreadsPerRow) * kSlots;
    vec = kSlots == 4 && crs % 4 == 0 && reinterpret_cast<std::uintptr_t>(w) % 16 == 0;
  }
  __device__ void load(const ConvShape&, int64_t kend, float* r) const {
    if constexpr (kSlots == 4) {
      if (vec && valid && k + 3 < kend) {  // k is a multiple of 4: aligned
        const float4 v = *reinterpret_cast<const float4*>(row + k);
        r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
        return;
      }
    }
    for (int i = 0; i < kSlots; ++i) r[i] = valid && k + i < kend ? row[k + i] : 0.0f;
  }
  __device__ void advance(const ConvShape&, const Cursor3&) { k += kConvBK; }
  __device__ void store(float* smem, const float* r) const {
    const int t = static_cast<int>(threadIdx.x);
    const int n = t / kThreadsPerRow, kk = (t % kThreadsPerRow) * kSlots;
    for (int i = 0; i < kSlots; ++i) smem[(kk + i) * (BN + 4) + n] = r[i];
  }
};

// dgrad A: dy gathered; rows are input pixels m = (n, h, w), K is (k, r, s)
template <int BM>
struct DgradLoadA : StridedSlots<BM> {
  using Base = StridedSlots<BM>;
  using Base::for_slots, Base::init_slots, Base::advance_slots, typename Base::Map;
  const float* base;  // dy at image n
  int hp, wp;         // h + pt, w + pl
  bool valid;
  // slot cursors: (k, r, s)
  __device__ void init(const ConvShape& s, const float* dy, int64_t m0, int64_t k0, int64_t M) {
    const int t = static_cast<int>(threadIdx.x);
    const int64_t m = m0 + Map::row(t);
    valid = m < M;
    const int64_t hw = static_cast<int64_t>(s.H) * s.W;
    const int64_t n = valid ? m / hw : 0;
    const int rem = static_cast<int>(valid ? m - n * hw : 0);
    hp = rem / s.W + s.pt;
    wp = rem % s.W + s.pl;
    base = dy + n * s.K * static_cast<int64_t>(s.P) * s.Q;
    init_slots(k0, s.R, s.S);
  }
  __device__ void load(const ConvShape& s, int64_t kend, float* r) const {
    for_slots(s.R, s.S, [&](int i, int64_t k, const Cursor3& c) {
      r[i] = 0.0f;
      const int ph = hp - c.mid * s.dh, pw = wp - c.lo * s.dw;
      if (!valid || k >= kend || ph < 0 || pw < 0) return;
      int p = ph, q = pw;
      if (s.sh != 1) {  // only output rows on the stride grid read this pixel
        if (ph % s.sh) return;
        p = ph / s.sh;
      }
      if (s.sw != 1) {
        if (pw % s.sw) return;
        q = pw / s.sw;
      }
      if (p < s.P && q < s.Q) r[i] = base[(static_cast<int64_t>(c.hi) * s.P + p) * s.Q + q];
    });
  }
  __device__ void advance(const ConvShape& s, const Cursor3& step) {
    advance_slots(step, s.R, s.S);
  }
};

// dgrad B: w as a (K*R*S) x C matrix: B[(k, r, s)][c] = w[k, c, r, s]
template <int BN>
struct DgradLoadB : StridedSlots<BN> {
  using Base = StridedSlots<BN>;
  using Base::for_slots, Base::init_slots, Base::advance_slots, typename Base::Map;
  const float* col;  // w at channel c
  bool valid;
  // slot cursors: (k, r, s)
  int64_t crs;
  __device__ void init(const ConvShape& s, const float* w, int n0, int64_t k0) {
    const int t = static_cast<int>(threadIdx.x);
    const int c = n0 + Map::row(t);
    valid = c < s.C;
    col = w + static_cast<int64_t>(valid ? c : 0) * s.R * s.S;
    crs = static_cast<int64_t>(s.C) * s.R * s.S;
    init_slots(k0, s.R, s.S);
  }
  __device__ void load(const ConvShape& s, int64_t kend, float* r) const {
    for_slots(s.R, s.S, [&](int i, int64_t k, const Cursor3& c) {
      r[i] = valid && k < kend ? col[c.hi * crs + c.mid * s.S + c.lo] : 0.0f;
    });
  }
  __device__ void advance(const ConvShape& s, const Cursor3& step) {
    advance_slots(step, s.R, s.S);
  }
};

// wgrad A: dy as a K x (N*P*Q) matrix: A[k][(n, p, q)] = dy[n, k, p, q]
template <int BM>
struct WgradLoadA : StridedSlots<BM> {
  using Base = StridedSlots<BM>;
  using Base::for_slots, Base::init_slots, Base::advance_slots, typename Base::Map;
  const float* base;  // dy at filter k of image 0
  bool valid;
  // slot cursors: (n, p, q)
  __device__ void init(const ConvShape& s, const float* dy, int64_t m0, int64_t k0, int64_t M) {
    const int t = static_cast<int>(threadIdx.x);
    const int64_t m = m0 + Map::row(t);
    valid = m < M;
    base = dy + (valid ? m : 0) * static_cast<int64_t>(s.P) * s.Q;
    init_slots(k0, s.P, s.Q);
  }
  __device__ void load(const ConvShape& s, int64_t kend, float* r) const {
    const int64_t image = static_cast<int64_t>(s.K) * s.P * s.Q;
    for_slots(s.P, s.Q, [&](int i, int64_t k, const Cursor3& c) {
      r[i] = valid && k < kend ? base[c.hi * image + static_cast<int64_t>(c.mid) * s.Q + c.lo]
                               : 0.0f;
    });
  }
  __device__ void advance(const ConvShape& s, const Cursor3& step) {
    advance_slots(step, s.P, s.Q);
  }
};

// wgrad B: x gathered as an (N*P*Q) x (C*R*S) matrix: B[(n, p, q)][(c, r, s)]
template <int BN>
struct WgradLoadB : StridedSlots<BN> {
  using Base = StridedSlots<BN>;
  using Base::for_slots, Base::init_slots, Base::advance_slots, typename Base::Map;
  const float* base;  // x at channel c of image 0
  int roff, soff;     // r*dh - pt, s*dw - pl
  bool valid;
  // slot cursors: (n, p, q)
  __device__ void init(const ConvShape& s, const float* x, int n0, int64_t k0) {
    const int t = static_cast<int>(threadIdx.x);
    const int j = n0 + Map::row(t);
    const int rs = s.R * s.S;
    valid = j < s.C * rs;
    const int c = valid ? j / rs : 0, r = valid ? j % rs / s.S : 0, q = valid ? j % s.S : 0;
    roff = r * s.dh - s.pt;
    soff = q * s.dw - s.pl;
    base = x + static_cast<int64_t>(c) * s.H * s.W;
    init_slots(k0, s.P, s.Q);
  }
  __device__ void load(const ConvShape& s, int64_t kend, float* r) const {
    const int64_t image = static_cast<int64_t>(s.C) * s.H * s.W;
    for_slots(s.P, s.Q, [&](int i, int64_t k, const Cursor3& c) {
      const int ih = c.mid * s.sh + roff, iw = c.lo * s.sw + soff;
      const bool in = valid && k < kend && ih >= 0 && ih < s.H && iw >= 0 && iw < s.W;
      r[i] = in ? base[c.hi * image + static_cast<int64_t>(ih) * s.W + iw] : 0.0f;
    });
  }
  __device__ void advance(const ConvShape& s, const Cursor3& step) {
    advance_slots(step, s.P, s.Q);
  }
};

// --- epilogues ---

struct FwdStore {  // y[n, k, p, q] = acc + bias[k], optionally ReLU
  float* y;
  const float* bias;
  int relu;
  __device__ void operator()(const ConvShape& s, int64_t m, int k, float acc) const {
    const int64_t pq = static_cast<int64_t>(s.P) * s.Q;
    const int64_t n = m / pq;
    if (bias) acc += bias[k];
    y[(n * s.K + k) * pq + (m - n * pq)] = relu && acc < 0.0f ? 0.0f : acc;
  }
};
struct DgradStore {  // dx[n, c, h, w]
  float* dx;
  __device__ void operator()(const ConvShape& s, int64_t m, int c, float acc) const {
    const int64_t hw = static_cast<int64_t>(s.H) * s.W;
    const int64_t n = m / hw;
    dx[(n * s.C + c) * hw + (m - n * hw)] = acc;
  }
};
struct WgradStore {  // workspace[split][k][(c, r, s)]
  float* ws;
  __device__ void operator()(const ConvShape& s, int64_t k, int j, float acc) const {
    const int64_t crs = static_cast<int64_t>(s.C) * s.R * s.S;
    ws[(static_cast<int64_t>(blockIdx.z) * s.K + k) * crs + j] = acc;
  }
};

// C[M x N] = A[M x Kdim] * B[Kdim x N] over this block's split of Kdim.
// Grid (ceil(M/BM), ceil(N/BN), splits); block 256; dynamic shared memory conv_gemm_smem(BM, BN).
template <int BM, int BN, class LoadA, class LoadB, class Store>
__global__ void __launch_bounds__(kConvThreads)
    conv_gemm_kernel(ConvShape s, const float* a_src, const float* b_src, Store store, int64_t M,
                     int N, int64_t Kdim, int64_t k_per_split, Cursor3 step) {
  constexpr int TM = BM / 16, TN = BN / 16;
  constexpr int SA = BM * kConvBK / kConvThreads, SB = BN * kConvBK / kConvThreads;
  SIMT_DYNAMIC_SHARED(float, smem);
  float* As = smem;                            // [2][kConvBK][BM + 4]
  float* Bs = smem + 2 * kConvBK * (BM + 4);   // [2][kConvBK][BN + 4]

  const int t = static_cast<int>(threadIdx.x);
  const int tx = t % 16, ty = t / 16;  // tx spans M (contiguous output writes), ty spans N
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int n0 = static_cast<int>(blockIdx.y) * BN;
  const int64_t k_begin = static_cast<int64_t>(blockIdx.z) * k_per_split;
  const int64_t k_end = k_begin + k_per_split < Kdim ? k_begin + k_per_split : Kdim;

  LoadA la;
  LoadB lb;
  la.init(s, a_src, m0, k_begin, M);
  lb.init(s, b_src, n0, k_begin);
  float ra[SA], rb[SB];
  float acc[TM][TN];
  for (int i = 0; i < TM; ++i)
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  const int64_t tiles = k_end > k_begin ? (k_end - k_begin + kConvBK - 1) / kConvBK : 0;
  if (tiles > 0) {
    la.load(s, k_end, ra);
    lb.load(s, k_end, rb);
    la.store(As, ra);
    lb.store(Bs, rb);
  }
  __syncthreads();  // slice 0 is in shared memory
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int cur = static_cast<int>(tile & 1);
    const bool more = tile + 1 < tiles;
    if (more) {  // fetch the next slice into registers while this one is multiplied
      la.advance(s, step);
      lb.advance(s, step);
      la.load(s, k_end, ra);
      lb.load(s, k_end, rb);
    }
    const float* as = As + cur * kConvBK * (BM + 4);
    const float* bs = Bs + cur * kConvBK * (BN + 4);
#pragma unroll
    for (int kk = 0; kk < kConvBK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; i += 4) {
        const float4 v = *reinterpret_cast<const float4*>(as + kk * (BM + 4) + tx * TM + i);
        a[i] = v.x; a[i + 1] = v.y; a[i + 2] = v.z; a[i + 3] = v.w;
      }
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = bs[kk * (BN + 4) + ty * TN + j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) {  // the other buffer was last read one slice ago, before the previous barrier
      la.store(As + (cur ^ 1) * kConvBK * (BM + 4), ra);
      lb.store(Bs + (cur ^ 1) * kConvBK * (BN + 4), rb);
    }
    __syncthreads();  // the next slice is complete, and everyone is done with this one
  }
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + tx * TM + i;
    if (m >= M) continue;
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + ty * TN + j;
      if (n < N) store(s, m, n, acc[i][j]);
    }
  }
}

// dw = sum over splits of the workspace, in split order (deterministic).
__global__ void conv2d_wgrad_reduce_kernel(float* dw, const float* ws, int64_t n, int splits) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    float acc = 0.0f;
    for (int z = 0; z < splits; ++z) acc += ws[z * n + i];
    dw[i] = acc;
  }
}

// ---- launchers ------------------------------------------------------------------------------------

constexpr int kConvNaiveBlock = 128;
constexpr int kConvBiasBlock = 256;

inline size_t conv_gemm_smem(int bm, int bn) {
  return 2 * kConvBK * static_cast<size_t>(bm + 4 + bn + 4) * sizeof(float);
}

// The step of a load cursor when K advances by kConvBK, as digits of radices (-, MID, LO).
inline Cursor3 conv_step(int MID, int LO) {
  Cursor3 c;
  c.lo = kConvBK % LO;
  c.mid = kConvBK / LO % MID;
  c.hi = static_cast<int>(kConvBK / (static_cast<int64_t>(LO) * MID));
  return c;
}

template <template <int> class LA, template <int> class LB, class Store>
void conv_gemm_launch(int64_t M, int N, int64_t Kdim, int splits, const ConvShape& s,
                      const float* a, const float* b, Store store, Cursor3 step,
                      cudaStream_t stream) {
  const int64_t per_split =
      simt::ceil_div<int64_t>(simt::ceil_div<int64_t>(Kdim, splits), kConvBK) * kConvBK;
  // Narrow problems (LeNet's 6 and 16 filters) waste most of a 64-wide tile: use taller ones.
  auto go = [&](auto bm_c, auto bn_c) {
    constexpr int BM = decltype(bm_c)::value, BN = decltype(bn_c)::value;
    const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(M, BM)),
                    static_cast<unsigned>(simt::ceil_div(N, BN)), static_cast<unsigned>(splits));
    simt::launch(conv_gemm_kernel<BM, BN, LA<BM>, LB<BN>, Store>, grid, dim3(kConvThreads),
                 conv_gemm_smem(BM, BN), stream, s, a, b, store, M, N, Kdim, per_split, step);
  };
  if (N <= 16) go(std::integral_constant<int, 256>{}, std::integral_constant<int, 16>{});
  else if (N <= 32) go(std::integral_constant<int, 128>{}, std::integral_constant<int, 32>{});
  else go(std::integral_constant<int, 64>{}, std::integral_constant<int, 64>{});
}

// y = conv2d(x, w) + bias (bias may be null), ReLU when relu. x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q).
inline void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                           const ConvShape& s, bool relu, int version, cudaStream_t stream) {
  const int64_t M = static_cast<int64_t>(s.N) * s.P * s.Q;
  if (M == 0 || s.K == 0) return;
  if (version == 0) {
    const int64_t total = M * s.K;
    simt::launch(conv2d_forward_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(total, kConvNaiveBlock))),
                 dim3(kConvNaiveBlock), 0, stream, y, x, w, bias, s, relu ? 1 : 0);
    return;
  }
  const int64_t Kdim = static_cast<int64_t>(s.C) * s.R * s.S;
  conv_gemm_launch<FwdLoadA, FwdLoadB>(M, s.K, Kdim, 1, s, x, w, FwdStore{y, bias, relu ? 1 : 0},
                                       conv_step(s.R, s.S), stream);
}

// dx from dy and w. dx (N,C,H,W).
inline void conv2d_backward_data(float* dx, const float* dy, const float* w, const ConvShape& s,
                                 int version, cudaStream_t stream) {
  const int64_t M = static_cast<int64_t>(s.N) * s.H * s.W;
  if (M == 0 || s.C == 0) return;
  if (version == 0) {
    const int64_t total = M * s.C;
    simt::launch(conv2d_dgrad_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(total, kConvNaiveBlock))),
                 dim3(kConvNaiveBlock), 0, stream, dx, dy, w, s);
    return;
  }
  const int64_t Kdim = static_cast<int64_t>(s.K) * s.R * s.S;
  conv_gemm_launch<DgradLoadA, DgradLoadB>(M, s.C, Kdim, 1, s, dy, w, DgradStore{dx},
                                           conv_step(s.R, s.S), stream);
}

// How many splits wgrad uses: enough blocks to fill a GPU (about two waves on 132 SMs), each
// split at least 8 K-slices long. A function of the shape alone, so results are reproducible.
inline int conv2d_wgrad_splits(const ConvShape& s) {
  const int64_t Kdim = static_cast<int64_t>(s.N) * s.P * s.Q;
  const int64_t N = static_cast<int64_t>(s.C) * s.R * s.S;
  const int bm = N <= 16 ? 256 : N <= 32 ? 128 : 64, bn = N <= 16 ? 16 : N <= 32 ? 32 : 64;
  const int64_t tiles = simt::ceil_div<int64_t>(s.K, bm) * simt::ceil_div<int64_t>(N, bn);
  int64_t splits = simt::ceil_div<int64_t>(264, tiles);
  const int64_t max_splits = simt::ceil_div<int64_t>(Kdim, 8 * kConvBK);
  if (splits > max_splits) splits = max_splits;
  if (splits > 256) splits = 256;
  return static_cast<int>(splits < 1 ? 1 : splits);
}

// Floats of workspace conv2d_backward_weight needs (version 1; version 0 needs none).
inline int64_t conv2d_wgrad_workspace(const ConvShape& s) {
  return static_cast<int64_t>(conv2d_wgrad_splits(s)) * s.K * s.C * s.R * s.S;
}

// dw from dy and x. dw (K,C,R,S); workspace of conv2d_wgrad_workspace(s) floats.
inline void conv2d_backward_weight(float* dw, float* workspace, const float* dy, const float* x,
                                   const ConvShape& s, int version, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(s.K) * s.C * s.R * s.S;
  if (n == 0) return;
  if (version == 0) {
    simt::launch(conv2d_wgrad_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(n, kConvNaiveBlock))),
                 dim3(kConvNaiveBlock), 0, stream, dw, dy, x, s);
    return;
  }
  const int splits = conv2d_wgrad_splits(s);
  const int64_t Kdim = static_cast<int64_t>(s.N) * s.P * s.Q;
  conv_gemm_launch<WgradLoadA, WgradLoadB>(s.K, s.C * s.R * s.S, Kdim, splits, s, dy, x,
                                           WgradStore{workspace}, conv_step(s.P, s.Q), stream);
  simt::launch(conv2d_wgrad_reduce_kernel, dim3(grid_stride_blocks(n, kConvBiasBlock)),
               dim3(kConvBiasBlock), 0, stream, dw, workspace, n, splits);
}

// db[k] = sum of dy[:, k, :, :]. db (K,).
inline void conv2d_backward_bias(float* db, const float* dy, const ConvShape& s,
                                 cudaStream_t stream) {
  if (s.K == 0) return;
  simt::launch(conv2d_bias_grad_kernel, dim3(static_cast<unsigned>(s.K)), dim3(kConvBiasBlock),
               33 * sizeof(float), stream, db, dy, s);
}

}  // namespace cucnn
