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
//   dgrad     N*H*W pixels   C           K*R*S           dy gathered            w flipped
//             per stride phase (a, b): N*(H/sh)*(W/sw) x C x K*(R/sh)*(S/sw), as forward
//   wgrad     K              C*R*S       N*P*Q (split)   dy                     x gathered
//
// The kernel: a BM x BN output tile per block of 256 threads (16 x 16), each thread a (BM/16) x
// (BN/16) register micro-tile: 8 x 8 in the 128 x 128 tile, 8 x 4 / 4 x 8 in 128 x 64 / 64 x 128,
// 4 x 4 in 64 x 64, and 1- or 2-column tiles (256 x 16, 64 x 16, 128 x 32, 64 x 32) for narrow
// GEMMs. A thread's fragment is float4 groups 64 floats apart (Frag), so every 128-bit shared load
// of a warp reads 16 consecutive float4 (conflict-free; the slice stores and tap-table writes are
// laid out to be conflict-free too, which tests/test_conv2d_profile.py checks with the sim memory
// profiler for every tile and pass); fragments are double-buffered in
// registers (step kk+1 loaded while step kk's FMAs run). BK = 16 slices of A and B are staged in
// shared memory, double-buffered: the next slice is fetched into registers while the current one
// is multiplied, so global latency hides behind the FMAs, and one barrier per slice suffices.
// Gathers go through per-slice tap tables (TableGather): 16 threads decode the slice's reduction
// indices (c, r, s / k, r, s / n, p, q) with carry-stepped cursors into shared memory, two slices
// ahead, and each load slot costs a broadcast read, two adds, two unsigned compares and an address
// add — no division or modulo in any slot's gather. dgrad is forward's GEMM run once per stride
// phase on a flipped copy of the filter (conv2d_dgrad_phases): a stride-1 problem of the phase's
// taps only. Offsets are 32-bit when the tensors allow
// (conv_index32), else the int64 instantiations run. Each thread's output row is decoded once. wgrad reads dy K-major (16 consecutive (p, q) per half-warp); forward reads the
// weights as predicated float4s where rows are 16-byte aligned. The forward epilogue adds the
// bias and, optionally, applies ReLU.
//
// One chooser, conv_plan, picks the tile and the split-K factor of every pass from the GEMM shape,
// the tiles' occupancy and 132 SMs (see there). Split K (wgrad and dgrad always may; forward when
// the caller passes a workspace) writes partial sums per split into a workspace and
// conv2d_split_reduce_kernel adds them in split order (then the bias and ReLU for the forward
// pass): no float atomics anywhere, results bitwise identical run to run and across SIMT orders.
// The bias gradient rides in the wgrad GEMM where that is free (conv2d_wgrad_fuses_bias: the last
// column tile has a spare column, which B fills with ones, so db[k] = sum_j dy[k][j] * 1 comes out
// of FMAs the tile runs anyway, split partials and all); elsewhere it is a block reduction per
// filter (conv2d_bias_grad_kernel), also in a fixed order.
//
// Known difference: the implicit-GEMM dgrad gathers dy with zeros where a filter tap falls outside
// the output, so with an infinite weight 0 * inf = NaN reaches input cells no infinite tap touches;
// the array-code oracle (cpu) and the naive version 0 skip those taps (tests/test_conv2d.py pins it).
// Taps of another stride phase never meet a pixel (each phase multiplies its own taps only).
//
// Empty problems (no filters, no channels, an empty batch) launch nothing or run empty
// reductions; the plan of an empty GEMM is one split (no division by a zero tile count).
//
// Versions: 0 naive direct kernels, one thread per output element (kept for tests and the
// benchmarks); 1 the tiled implicit GEMM.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

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

// --- operand loaders: init once per thread, then gather a K-slice into registers and store it
// to smem laid out [kConvBK][ROWS + 4] (the pad keeps float4 alignment) ---

// ---- gathers through a per-slice tap table ("optimized" iterators) ----
// Every thread of a block gathers the same BK reduction indices k in a slice; what k means for the
// gather (a channel/filter offset, a row and a column displacement, and whether k is in range) is
// the same for all of them. So threads 0..15 decode the slice's 16 k-values once (each keeps one
// cursor, advanced by BK with carries: no division) into a shared table, two slices ahead of use,
// and each load slot costs a table read (a warp-wide broadcast), two adds, two unsigned compares
// and an add for the address. A thread's own row (its output pixel, or its filter tap for wgrad)
// is decoded once: row displacements h0/w0, a base offset and the column limit (0 for a row past
// M, which fails every compare). Offsets are Index: int when conv_index32(s) holds, else int64.
template <class Index>
struct alignas(16) TapEntry {
  Index off;      // added to the row's base offset
  int dr, ds;     // added to the row's h0 / w0
  int hlim;       // the row limit (0 when k is past the split's end: the compare always fails)
};

template <int ROWS, class Index>
struct TableGather {
  using Map = Strided<ROWS>;
  using Entry = TapEntry<Index>;
  static constexpr int kSlots = Map::kSlots;
  static constexpr bool kTable = true;
  // The slice's row pitch in shared memory. A warp stores 32 / ROWS k-rows of ROWS floats: with 16
  // rows two k-rows, 16 floats apart (pitch 16: one wavefront; 20 put k and k+1 on banks 0..15 and
  // 20..35, a 2-way conflict). The 16-wide tiles read B one float at a time: no float4 alignment.
  static constexpr int kPitch = ROWS == 16 ? 16 : ROWS + 4;
  const float* src;
  Index base;
  int h0, w0, wlim;
  Cursor3 dcur;  // decoder (threads < kConvBK): the digits of dk
  int64_t dk;
  __device__ void init_decoder(int64_t k_begin, int MID, int LO) {
    dk = k_begin + static_cast<int>(threadIdx.x) % kConvBK;
    dcur.init(dk, MID, LO);
  }
  __device__ void decode_advance(const Cursor3& step, int MID, int LO) {
    dk += kConvBK;
    dcur.advance(step, MID, LO);
  }
  __device__ __forceinline__ void load(const Entry* table, float* r) const {
    const int t = static_cast<int>(threadIdx.x);
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      const Entry e = table[Map::kk(t, i)];
      const unsigned h = static_cast<unsigned>(h0 + e.dr), w = static_cast<unsigned>(w0 + e.ds);
      const bool in = h < static_cast<unsigned>(e.hlim) && w < static_cast<unsigned>(wlim);
      r[i] = in ? src[base + e.off] : 0.0f;
    }
  }
  __device__ void store(float* smem, const float* r) const {
    const int t = static_cast<int>(threadIdx.x);
    for (int i = 0; i < kSlots; ++i) smem[Map::kk(t, i) * kPitch + Map::row(t)] = r[i];
  }
};

// forward A through the table: rows are output pixels m = (n, p, q), K is (c, r, s).
// h0 = p*sh - pt, w0 = q*sw - pl, base = n*C*H*W + h0*W + w0; entry of (c, r, s):
// off = c*H*W + r*dh*W + s*dw, dr = r*dh, ds = s*dw, limit H.
template <int BM, class Index>
struct FwdLoadAT : TableGather<BM, Index> {
  using Base = TableGather<BM, Index>;
  using typename Base::Entry;
  using Base::src, Base::base, Base::h0, Base::w0, Base::wlim, Base::dcur, Base::dk;
  __device__ void init(const ConvShape& s, const float* x, int64_t m0, int64_t k0, int64_t M) {
    const int64_t m = m0 + Base::Map::row(static_cast<int>(threadIdx.x));
    const bool valid = m < M;
    const int64_t pq = static_cast<int64_t>(s.P) * s.Q;
    const int64_t n = valid ? m / pq : 0;
    const int rem = static_cast<int>(valid ? m - n * pq : 0);
    h0 = rem / s.Q * s.sh - s.pt;
    w0 = rem % s.Q * s.sw - s.pl;
    wlim = valid ? s.W : 0;
    base = static_cast<Index>(n * s.C * static_cast<int64_t>(s.H) * s.W +
                              static_cast<int64_t>(h0) * s.W + w0);
    src = x;
    this->init_decoder(k0, s.R, s.S);
  }
  __device__ Entry decode(const ConvShape& s, int64_t kend) const {
    const bool ok = dk < kend;
    const int dr = dcur.mid * s.dh, ds = dcur.lo * s.dw;
    const int64_t off =
        static_cast<int64_t>(dcur.hi) * s.H * s.W + static_cast<int64_t>(dr) * s.W + ds;
    return Entry{static_cast<Index>(ok ? off : 0), ok ? dr : 0, ok ? ds : 0, ok ? s.H : 0};
  }
  __device__ void decode_advance(const ConvShape& s, const Cursor3& step) {
    Base::decode_advance(step, s.R, s.S);
  }
};

// wgrad B through the table: x gathered as an (N*P*Q) x (C*R*S) matrix; rows are filter taps
// j = (c, r, s), K is (n, p, q). h0 = r*dh - pt, w0 = s*dw - pl, base = c*H*W + h0*W + w0; entry
// of (n, p, q): off = n*C*H*W + p*sh*W + q*sw, dr = p*sh, ds = q*sw, limit H.
// The fused bias gradient: when the GEMM's N is C*R*S + 1 (conv2d_backward_weight with db, on a
// plan whose last column tile has a spare column), column C*R*S of B is all ones, so the GEMM
// computes db[k] = sum_j dy[k][j] * 1 in the FMAs that tile runs anyway. The gather gives `fill`
// where the tap is outside x: 0, or 1 on that column (whose limits fail every compare). Past the
// split's end A is 0, so the ones there add nothing.
template <int BN, class Index>
struct WgradLoadBT : TableGather<BN, Index> {
  using Base = TableGather<BN, Index>;
  using typename Base::Entry;
  using Base::src, Base::base, Base::h0, Base::w0, Base::wlim, Base::dcur, Base::dk;
  float fill;
  __device__ void init(const ConvShape& s, const float* x, int n0, int64_t k0, int N) {
    const int j = n0 + Base::Map::row(static_cast<int>(threadIdx.x));
    const int rs = s.R * s.S;
    const bool valid = j < s.C * rs;
    fill = j == s.C * rs && N > j ? 1.0f : 0.0f;
    const int c = valid ? j / rs : 0, r = valid ? j % rs / s.S : 0, q = valid ? j % s.S : 0;
    h0 = r * s.dh - s.pt;
    w0 = q * s.dw - s.pl;
    wlim = valid ? s.W : 0;
    base = static_cast<Index>(static_cast<int64_t>(c) * s.H * s.W + static_cast<int64_t>(h0) * s.W +
                              w0);
    src = x;
    this->init_decoder(k0, s.P, s.Q);
  }
  __device__ Entry decode(const ConvShape& s, int64_t kend) const {
    const bool ok = dk < kend;
    const int dr = dcur.mid * s.sh, ds = dcur.lo * s.sw;
    const int64_t off = static_cast<int64_t>(dcur.hi) * s.C * s.H * s.W +
                        static_cast<int64_t>(dr) * s.W + ds;
    return Entry{static_cast<Index>(ok ? off : 0), ok ? dr : 0, ok ? ds : 0, ok ? s.H : 0};
  }
  __device__ void decode_advance(const ConvShape& s, const Cursor3& step) {
    Base::decode_advance(step, s.P, s.Q);
  }
  __device__ __forceinline__ void load(const Entry* table, float* r) const {  // Base's, with fill
    const int t = static_cast<int>(threadIdx.x);
#pragma unroll
    for (int i = 0; i < Base::kSlots; ++i) {
      const Entry e = table[Base::Map::kk(t, i)];
      const unsigned h = static_cast<unsigned>(h0 + e.dr), w = static_cast<unsigned>(w0 + e.ds);
      const bool in = h < static_cast<unsigned>(e.hlim) && w < static_cast<unsigned>(wlim);
      r[i] = in ? src[base + e.off] : fill;
    }
  }
};

// forward B: the weights as a (C*R*S) x K matrix, i.e. w rows read along K. "Contiguous"
// mapping: each thread loads SLOTS consecutive K-values (its k-group g) of one filter n. kVec (the
// launcher's choice when C*R*S % 4 == 0 and w is 16-byte aligned): as float4s, each predicated on
// its own (split ends are multiples of 4 then), so the loop holds no scalar path.
// Which thread takes which (n, g): a warp takes F = 4 * SLOTS consecutive filters and 8 / SLOTS
// consecutive k-groups, so that its shared stores (slice row g * SLOTS + i, column n; the pitch
// BN + 4 is 4 mod 32 banks, 20 for BN = 16) land on 32 distinct banks: the groups' rows are
// 4 * SLOTS * pitch apart, i.e. 0 (BN 128, one group a warp), 16 (64), 8 (32) or 4 * (5 g mod 8)
// (16) banks, and the F columns fill the gaps. (Two threads a filter at BN = 128 put k and k + 8
// on the same bank: 2-way conflicts.) The global reads keep their sectors: each filter's
// SLOTS * 32 / F floats of a warp are contiguous.
template <int BN, bool kVec>
struct FwdLoadBT {
  static constexpr int kSlots = BN * kConvBK / kConvThreads;
  static constexpr bool kTable = false;
  using Entry = int;  // no table
  static constexpr int kF = 4 * kSlots;           // filters a warp covers (4 warps span BN)
  static constexpr int kGroupsPerWarp = 32 / kF;  // k-groups a warp covers
  static_assert(BN == 4 * kF, "four warps span the filter columns");
  static __device__ __forceinline__ int filt(int t) { return kF * (t / 32 % 4) + t % 32 % kF; }
  static __device__ __forceinline__ int kgrp(int t) {
    return kGroupsPerWarp * (t / 128) + t % 32 / kF;
  }
  const float* row;  // w at filter n
  bool valid;
  int64_t k, crs;
  __device__ void init(const ConvShape& s, const float* w, int n0, int64_t k0) {
    const int t = static_cast<int>(threadIdx.x);
    const int n = n0 + filt(t);
    crs = static_cast<int64_t>(s.C) * s.R * s.S;
    valid = n < s.K;
    row = w + (valid ? n : 0) * crs;
    k = k0 + kgrp(t) * kSlots;
  }
  __device__ void load(const ConvShape&, int64_t kend, float* r) const {
    // how many of this thread's slots are inside the split (one 64-bit compare, then 32-bit ones)
    const int64_t rem = kend - k;
    const int lim = !valid || rem <= 0 ? 0 : rem < kSlots ? static_cast<int>(rem) : kSlots;
    const float* p = row + k;
    if constexpr (kVec && kSlots % 4 == 0) {  // k is a multiple of 4: aligned
#pragma unroll
      for (int i = 0; i < kSlots; i += 4) {
        const float4 v =
            i < lim ? *reinterpret_cast<const float4*>(p + i) : make_float4(0, 0, 0, 0);
        r[i] = v.x; r[i + 1] = v.y; r[i + 2] = v.z; r[i + 3] = v.w;
      }
    } else {
#pragma unroll
      for (int i = 0; i < kSlots; ++i) r[i] = i < lim ? p[i] : 0.0f;
    }
  }
  __device__ void advance(const ConvShape&, const Cursor3&) { k += kConvBK; }
  __device__ void store(float* smem, const float* r) const {
    const int t = static_cast<int>(threadIdx.x);
    const int n = filt(t), kk = kgrp(t) * kSlots;
    for (int i = 0; i < kSlots; ++i) smem[(kk + i) * (BN + 4) + n] = r[i];
  }
};

// wgrad A: dy as a K x (N*P*Q) matrix: A[k][(n, p, q)] = dy[n, k, p, q]. "K-major" mapping: thread
// t reads reduction index t % kConvBK, so each half-warp reads 16 consecutive (p, q) of one filter
// row (64 contiguous bytes, not 16 lone floats P*Q apart), and all slots of a thread share one
// cursor: their addresses differ by constants.
// Rows: with w = t / 32 and h = t / 16 % 2, register j holds row 32 (j / 2) + 4 w + 2 (j % 2) + h,
// so a load instruction reads two adjacent rows (when P*Q*4 is not a multiple of 32 bytes, one of
// them is sector-aligned). The shared store is a transpose: 16 k-rows, whose pitch BM + 4 is
// 4 mod 32 banks, so k and k + 8 share banks; store instruction j therefore writes register j on
// the lanes with k % 16 < 8 and register j ^ 1 (2 rows further) on the others, and the 32 lanes
// cover 4 row residues x 8 k: one wavefront (the plain transpose was 2-way). Costs a select a slot.
template <int BM>
struct WgradLoadA {
  static constexpr int kSlots = BM * kConvBK / kConvThreads;
  static_assert(kSlots % 2 == 0, "registers come in (even, odd) row pairs");
  static constexpr bool kTable = false;
  using Entry = int;  // no table
  const float* base;  // dy at the thread's first (even-register) row, image 0
  int64_t k, image, pair_step;  // pair_step: 32 rows; an odd register's row is 2 rows further
  int rows;  // M - the first row, at most BM (register j's row is valid iff its offset < rows)
  Cursor3 cur;  // (n, p, q) of k
  static __device__ __forceinline__ int row0(int t) { return 4 * (t / 32) + t / 16 % 2; }
  __device__ void init(const ConvShape& s, const float* dy, int64_t m0, int64_t k0, int64_t M) {
    const int t = static_cast<int>(threadIdx.x);
    const int64_t pq = static_cast<int64_t>(s.P) * s.Q;
    const int64_t re = m0 + row0(t);  // the row of register 0
    rows = re < M ? static_cast<int>(M - re < BM ? M - re : BM) : 0;
    base = dy + (re < M ? re : 0) * pq;
    k = k0 + t % kConvBK;
    cur.init(k, s.P, s.Q);
    image = static_cast<int64_t>(s.K) * pq;
    pair_step = 32 * pq;
  }
  __device__ void load(const ConvShape& s, int64_t kend, float* r) const {
    const bool in = k < kend;
    const float* p = base + (cur.hi * image + static_cast<int64_t>(cur.mid) * s.Q + cur.lo);
#pragma unroll
    for (int j = 0; j < kSlots; j += 2) {
      r[j] = in && j / 2 * 32 < rows ? p[j / 2 * pair_step] : 0.0f;
      r[j + 1] = in && j / 2 * 32 + 2 < rows ? p[j / 2 * pair_step + pair_step / 16] : 0.0f;
    }
  }
  __device__ void advance(const ConvShape& s, const Cursor3& step) {
    k += kConvBK;
    cur.advance(step, s.P, s.Q);
  }
  __device__ void store(float* smem, const float* r) const {
    const int t = static_cast<int>(threadIdx.x);
    const int kk = t % kConvBK;
    const bool hi = kk >= kConvBK / 2;
    float* at = smem + kk * (BM + 4) + row0(t);
    float* even = at + (hi ? 2 : 0);  // where store instruction j of an even j writes
    float* odd = at + (hi ? 0 : 2);
#pragma unroll
    for (int j = 0; j < kSlots; j += 2) {
      even[j / 2 * 32] = hi ? r[j + 1] : r[j];
      odd[j / 2 * 32] = hi ? r[j] : r[j + 1];
    }
  }
};

// --- epilogues ---
// With split-K (blockIdx.z > 0 exists) each split writes its partial sums to its own slice of a
// workspace laid out like the output, zstride floats apart; conv2d_split_reduce_kernel then adds
// the slices in split order and applies the bias and ReLU.

struct FwdStore {  // y[n, k, p, q] = acc + bias[k], optionally ReLU
  float* y;
  const float* bias;
  int relu;
  int64_t zstride;  // 0 without split-K
  __device__ void operator()(const ConvShape& s, int64_t m, int k, float acc) const {
    const int64_t pq = static_cast<int64_t>(s.P) * s.Q;
    const int64_t n = m / pq;
    if (bias) acc += bias[k];
    y[static_cast<int64_t>(blockIdx.z) * zstride + (n * s.K + k) * pq + (m - n * pq)] =
        relu && acc < 0.0f ? 0.0f : acc;
  }
};
// dgrad runs as forward convolutions of dy, one per stride phase (conv2d_dgrad_phases): the
// kernel's shape g is the phase's problem, its output pixel m = (n, i, j) of channel c is
// dx[n, c, a + sh*i, b + sw*j]. Split-K partials go to dense (N, C, g.P, g.Q) slices instead
// (a = b = 0, sh = sw = 1, H = g.P, W = g.Q), zstride floats apart.
struct DgradPhaseStore {
  float* out;
  int64_t zstride;  // 0 without split-K
  int a, b, sh, sw, H, W;  // out is (N, C, H, W); the phase's rows a + sh*i, columns b + sw*j
  __device__ void operator()(const ConvShape& g, int64_t m, int c, float acc) const {
    const int64_t pq = static_cast<int64_t>(g.P) * g.Q;
    const int64_t n = m / pq;
    const int rem = static_cast<int>(m - n * pq);
    const int i = rem / g.Q, j = rem - i * g.Q;
    out[static_cast<int64_t>(blockIdx.z) * zstride +
        ((n * g.K + c) * H + a + static_cast<int64_t>(sh) * i) * W + b +
        static_cast<int64_t>(sw) * j] = acc;
  }
};
// workspace[split][zstride]: dw's partial sums [k][(c, r, s)], then (zstride = K*C*R*S + K, the
// fused bias gradient) the bias column's [k]: column j = C*R*S of the GEMM.
struct WgradStore {
  float* ws;
  int64_t zstride;
  __device__ void operator()(const ConvShape& s, int64_t k, int j, float acc) const {
    const int64_t crs = static_cast<int64_t>(s.C) * s.R * s.S;
    float* split = ws + static_cast<int64_t>(blockIdx.z) * zstride;
    if (j < crs) split[k * crs + j] = acc;
    else split[s.K * crs + k] = acc;
  }
};

// Thread-fragment layout of a T-wide register micro-tile over a 16-thread dimension of the block
// tile. T a multiple of 4: the fragment is T/4 float4 groups 64 floats apart (group g of thread i
// at g*64 + 4*i), so each 128-bit shared load of a warp reads 16 consecutive float4 — no bank
// conflicts — and the output writes of a group are contiguous. T = 1 or 2: contiguous.
template <int T>
struct Frag {
  static __device__ __forceinline__ int at(int i, int j) {
    if constexpr (T % 4 == 0) return (j / 4) * 64 + i * 4 + j % 4;
    else return i * T + j;
  }
  static __device__ __forceinline__ void load(float (&f)[T], const float* row, int i) {
    if constexpr (T % 4 == 0) {
#pragma unroll
      for (int g = 0; g < T / 4; ++g) {
        const float4 v = *reinterpret_cast<const float4*>(row + g * 64 + i * 4);
        f[4 * g] = v.x; f[4 * g + 1] = v.y; f[4 * g + 2] = v.z; f[4 * g + 3] = v.w;
      }
    } else if constexpr (T == 2) {
      const float2 v = *reinterpret_cast<const float2*>(row + i * 2);
      f[0] = v.x; f[1] = v.y;
    } else {
#pragma unroll
      for (int j = 0; j < T; ++j) f[j] = row[i * T + j];
    }
  }
};

// The kernel's view of a loader: table loaders read the slice's tap table, the others step their
// own cursors.
constexpr int kConvTableBytes = 2 * 2 * kConvBK * 32;  // A and B tables, double-buffered
template <class L>
__device__ __forceinline__ void conv_gather(const L& l, const ConvShape& s, int64_t kend, float* r,
                                            const unsigned char* table) {
  if constexpr (L::kTable) l.load(reinterpret_cast<const typename L::Entry*>(table), r);
  else l.load(s, kend, r);
}
template <class L>
__device__ __forceinline__ void conv_step_loader(L& l, const ConvShape& s, const Cursor3& step) {
  if constexpr (!L::kTable) l.advance(s, step);
}
// Threads < kConvBK write the entries of the slice the decoders point at; all advance.
// A 16-byte entry is one 128-bit store, the 16 lanes' contiguous. A 32-byte entry (64-bit offsets,
// the strided-dgrad phase entry) is two 16-byte halves; stored in the same order by every lane,
// the 8 lanes of a quarter-warp would span 256 bytes (2-way bank conflicts), so lanes 4..7 of each
// 8 write their second half first: each store then covers 8 distinct 16-byte bank groups.
template <class L>
__device__ __forceinline__ void conv_fill_table(L& l, const ConvShape& s, int64_t kend,
                                                const Cursor3& step, unsigned char* table) {
  if constexpr (L::kTable) {
    using Entry = typename L::Entry;
    if (threadIdx.x < kConvBK) {
      const Entry e = l.decode(s, kend);
      if constexpr (sizeof(Entry) == 16) {
        reinterpret_cast<Entry*>(table)[threadIdx.x] = e;
      } else {
        static_assert(sizeof(Entry) == 32, "table entries are 16 or 32 bytes");
        int4 half[2];
        memcpy(half, &e, sizeof e);
        int4* dst = reinterpret_cast<int4*>(table) + 2 * threadIdx.x;
        const unsigned first = threadIdx.x / 4 % 2;
        dst[first] = first ? half[1] : half[0];
        dst[first ^ 1] = first ? half[0] : half[1];
      }
    }
    l.decode_advance(s, step);
  }
}

// B loaders that need the GEMM's N (wgrad's fused bias column) take it as a fifth init argument.
template <class L, class = void>
struct ConvInitTakesN : std::false_type {};
template <class L>
struct ConvInitTakesN<L, std::void_t<decltype(std::declval<L&>().init(
                             std::declval<const ConvShape&>(), std::declval<const float*>(), 0,
                             int64_t{0}, 0))>> : std::true_type {};
template <class L>
__device__ __forceinline__ void conv_init_b(L& l, const ConvShape& s, const float* b, int n0,
                                            int64_t k0, int N) {
  if constexpr (ConvInitTakesN<L>::value) l.init(s, b, n0, k0, N);
  else l.init(s, b, n0, k0);
}

// The shared-memory row pitch of a loader's slice: its kPitch, else ROWS + 4 (the pad keeps float4
// alignment). conv_gemm_smem sizes every slice at ROWS + 4, so no pitch may exceed it.
template <class L, int ROWS, class = void>
struct ConvPitch {
  static constexpr int value = ROWS + 4;
};
template <class L, int ROWS>
struct ConvPitch<L, ROWS, std::void_t<decltype(L::kPitch)>> {
  static constexpr int value = L::kPitch;
};

// C[M x N] = A[M x Kdim] * B[Kdim x N] over this block's split of Kdim.
// Grid (ceil(M/BM), ceil(N/BN), splits); block 256 = 16 x 16 threads, thread (tx, ty) a
// (BM/16) x (BN/16) micro-tile (8 x 8 in the 128 x 128 tile); dynamic shared memory
// conv_gemm_smem(BM, BN). A and B slices are double-buffered in shared memory (one barrier per
// BK slice) and the fragments in registers (the loads of step kk+1 are issued before the FMAs of
// step kk).
// The tiles of at most 64 x 64 ask for 3 blocks an SM (85 registers): left alone, ptxas capped
// one of them at 64 registers and spilled.
template <int BM, int BN, class LoadA, class LoadB, class Store>
__global__ void __launch_bounds__(kConvThreads, BM <= 64 && BN <= 64 ? 3 : 1)
    conv_gemm_kernel(ConvShape s, const float* a_src, const float* b_src, Store store, int64_t M,
                     int N, int64_t Kdim, int64_t k_per_split, Cursor3 step) {
  constexpr int TM = BM / 16, TN = BN / 16;
  constexpr int SA = LoadA::kSlots, SB = LoadB::kSlots;
  constexpr int LA = ConvPitch<LoadA, BM>::value, LB = ConvPitch<LoadB, BN>::value;  // row pitches
  static_assert(LA <= BM + 4 && LB <= BN + 4, "conv_gemm_smem sizes a slice row at ROWS + 4");
  SIMT_DYNAMIC_SHARED(float, smem);
  float* As = smem;                  // [2][kConvBK][LA]
  float* Bs = smem + 2 * kConvBK * LA;  // [2][kConvBK][LB]
  // tap tables [2][kConvBK] of A then of B (32 bytes an entry at most)
  unsigned char* TA = reinterpret_cast<unsigned char*>(Bs + 2 * kConvBK * LB);
  unsigned char* TB = TA + 2 * kConvBK * 32;

  const int t = static_cast<int>(threadIdx.x);
  const int tx = t % 16, ty = t / 16;  // tx spans M (contiguous output writes), ty spans N
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int n0 = static_cast<int>(blockIdx.y) * BN;
  const int64_t k_begin = static_cast<int64_t>(blockIdx.z) * k_per_split;
  const int64_t k_end = k_begin + k_per_split < Kdim ? k_begin + k_per_split : Kdim;

  LoadA la;
  LoadB lb;
  la.init(s, a_src, m0, k_begin, M);
  conv_init_b(lb, s, b_src, n0, k_begin, N);
  float ra[SA], rb[SB];
  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

  const int64_t tiles = k_end > k_begin ? (k_end - k_begin + kConvBK - 1) / kConvBK : 0;
  const int tsz = kConvBK * 32;  // bytes of one table buffer
  conv_fill_table(la, s, k_end, step, TA);  // slices 0 and 1
  conv_fill_table(lb, s, k_end, step, TB);
  conv_fill_table(la, s, k_end, step, TA + tsz);
  conv_fill_table(lb, s, k_end, step, TB + tsz);
  __syncthreads();  // the tables of slices 0 and 1 are written
  if (tiles > 0) {
    conv_gather(la, s, k_end, ra, TA);
    conv_gather(lb, s, k_end, rb, TB);
    la.store(As, ra);
    lb.store(Bs, rb);
  }
  __syncthreads();  // slice 0 is in shared memory
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int cur = static_cast<int>(tile & 1);
    const bool more = tile + 1 < tiles;
    if (more) {  // fetch the next slice into registers while this one is multiplied
      conv_step_loader(la, s, step);
      conv_step_loader(lb, s, step);
      conv_gather(la, s, k_end, ra, TA + (cur ^ 1) * tsz);
      conv_gather(lb, s, k_end, rb, TB + (cur ^ 1) * tsz);
    }
    const float* as = As + cur * kConvBK * LA;
    const float* bs = Bs + cur * kConvBK * LB;
    float fa[2][TM], fb[2][TN];
    Frag<TM>::load(fa[0], as, tx);
    Frag<TN>::load(fb[0], bs, ty);
#pragma unroll
    for (int kk = 0; kk < kConvBK; ++kk) {
      if (kk + 1 < kConvBK) {  // the next step's fragments, while this step's FMAs run
        Frag<TM>::load(fa[(kk + 1) & 1], as + (kk + 1) * LA, tx);
        Frag<TN>::load(fb[(kk + 1) & 1], bs + (kk + 1) * LB, ty);
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(fa[kk & 1][i], fb[kk & 1][j], acc[i][j]);
    }
    if (more) {  // the other buffer was last read one slice ago, before the previous barrier
      la.store(As + (cur ^ 1) * kConvBK * LA, ra);
      lb.store(Bs + (cur ^ 1) * kConvBK * LB, rb);
    }
    if (tile + 2 < tiles) {  // slice tile+2's tables, into the buffers slice tile's loads read
      conv_fill_table(la, s, k_end, step, TA + cur * tsz);
      conv_fill_table(lb, s, k_end, step, TB + cur * tsz);
    }
    __syncthreads();  // the next slice is complete, and everyone is done with this one
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + Frag<TM>::at(tx, i);
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int n = n0 + Frag<TN>::at(ty, j);
      if (n < N) store(s, m, n, acc[i][j]);
    }
  }
}

// out = sum over splits of the workspace, in split order (deterministic); then, for the forward
// pass, + bias[k] (k = i / pq % K) and ReLU. A split's slice is zstride floats; n2 > 0 (wgrad's
// fused bias gradient): elements n .. n + n2 - 1 of each slice are summed into out2.
__global__ void conv2d_split_reduce_kernel(float* out, const float* ws, int64_t n, int splits,
                                           const float* bias, int64_t pq, int K, int relu,
                                           int64_t zstride, float* out2, int64_t n2) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n + n2;
       i += stride) {
    float acc = 0.0f;
    for (int z = 0; z < splits; ++z) acc += ws[z * zstride + i];
    if (i >= n) {
      out2[i - n] = acc;
      continue;
    }
    if (bias) acc += bias[i / pq % K];
    out[i] = relu && acc < 0.0f ? 0.0f : acc;
  }
}

// ---- dgrad by stride phase: the kernels around the GEMM ----
// wf (C, K, Ra, Sb), the flipped filter of one stride phase (conv2d_dgrad_phases):
// wf[c, k, i, j] = w[k, c, r0 + rstep*(Ra-1-i), s0 + sstep*(Sb-1-j)], so the phase is a forward
// convolution of dy with filters wf (forward's B, read as contiguous float4s). w is (K, C, R, S).
__global__ void conv2d_dgrad_weight_kernel(float* wf, const float* w, ConvShape s, int r0,
                                           int rstep, int Ra, int s0, int sstep, int Sb) {
  const int64_t n = static_cast<int64_t>(s.C) * s.K * Ra * Sb;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += stride) {
    const int j = static_cast<int>(e % Sb), i = static_cast<int>(e / Sb % Ra);
    const int64_t ck = e / (static_cast<int64_t>(Sb) * Ra);
    const int64_t k = ck % s.K, c = ck / s.K;
    const int r = r0 + rstep * (Ra - 1 - i), q = s0 + sstep * (Sb - 1 - j);
    wf[e] = w[((k * s.C + c) * s.R + r) * s.S + q];
  }
}

// The pixels of one stride phase of dx = the sum of its split partials (dense (N, C, rows, cols)
// slices n floats apart), added in split order (deterministic), scattered to rows a + sh*i and
// columns b + sw*j of dx (N, C, H, W).
__global__ void conv2d_dgrad_phase_reduce_kernel(float* dx, const float* ws, int64_t n,
                                                 int splits, int rows, int cols,
                                                 DgradPhaseStore st) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t plane = static_cast<int64_t>(rows) * cols;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += stride) {
    float acc = 0.0f;
    for (int z = 0; z < splits; ++z) acc += ws[z * n + e];
    const int64_t nc = e / plane;
    const int rem = static_cast<int>(e - nc * plane);
    const int i = rem / cols, j = rem - i * cols;
    dx[(nc * st.H + st.a + static_cast<int64_t>(st.sh) * i) * st.W + st.b +
       static_cast<int64_t>(st.sw) * j] = acc;
  }
}

// dx = 0 where no filter tap reaches (a stride larger than the dilated kernel leaves whole
// phases of the input untouched by the forward pass); the phases with taps overwrite theirs.
__global__ void conv2d_dgrad_zero_kernel(float* dx, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += stride)
    dx[e] = 0.0f;
}

// ---- the tile and split chooser ------------------------------------------------------------------

constexpr int kConvSMs = 132;  // H100/H200 SXM; the plan is a function of the shape alone

// A block tile of a GEMM kernel: its size, the micro-tile of one thread (tm x tn outputs), and the
// blocks one SM holds at once (from ptxas's registers and the shared memory; see the table below).
struct ConvTile {
  int bm, bn, tm, tn, blocks_per_sm;
};
struct ConvPlan {
  int tile;         // index into the candidate table
  int splits;       // split-K factor (1: none)
  int64_t blocks;   // ceil(M/bm) * ceil(N/bn) * splits
  int64_t k_per_split;
};

// The one tile/split chooser (the tensor-core path passes its own table and BK). For each
// candidate tile and split factor z it estimates the time as
//   waves * blocks_per_sm * (bm * bn * K-length per split) / efficiency + reduction traffic,
// waves = ceil(blocks * z / (sms * blocks_per_sm)): a partly filled wave costs a whole one, which
// is what makes small grids split K (or take a smaller tile) until they fill the GPU at the
// kernel's occupancy. efficiency = tm*tn / (tm + tn), the FMAs per float read from shared memory
// (8x8: 4, 4x4: 2, 16x1: 0.94). The reduction costs 2 floats of memory traffic per output per
// split, weighted as 36 FMAs a float (an H200 SM does 128 FMAs per clock and moves about 3.5
// floats). Splits need at least min_slices BK-slices each and at most max_splits (1: no split-K).
// A plan that launches a full wave at its occupancy beats one that does not, and one that gives
// every SM a block beats one that leaves SMs idle; then the lower cost wins; ties go to fewer
// splits, then the earlier tile. Deterministic: the same shape, the same plan.
inline ConvPlan conv_plan(int64_t M, int64_t N, int64_t Kdim, const ConvTile* tiles, int ntiles,
                          int bk, int min_slices, int max_splits, int sms = kConvSMs) {
  ConvPlan best{0, 1, 0, 0};
  double best_cost = -1.0;
  int best_fill = -1;
  const int64_t slices = simt::ceil_div<int64_t>(Kdim > 0 ? Kdim : 1, bk);
  for (int i = 0; i < ntiles; ++i) {
    const ConvTile& t = tiles[i];
    const int64_t blocks = simt::ceil_div<int64_t>(M, t.bm) * simt::ceil_div<int64_t>(N, t.bn);
    if (blocks == 0) continue;
    const double eff = static_cast<double>(t.tm) * t.tn / (t.tm + t.tn);
    for (int z = 1; z <= max_splits; ++z) {
      const int64_t per = simt::ceil_div<int64_t>(slices, z);  // slices per split
      if (z > 1 && per < min_slices) break;                   // shorter as z grows
      if (simt::ceil_div<int64_t>(slices, per) < z) continue;  // an empty split
      const int64_t total = blocks * z;
      const int64_t wave = static_cast<int64_t>(sms) * t.blocks_per_sm;
      const double waves = static_cast<double>(simt::ceil_div<int64_t>(total, wave));
      double cost = waves * t.blocks_per_sm * (static_cast<double>(t.bm) * t.bn * per * bk) / eff;
      if (z > 1) cost += 72.0 * z * static_cast<double>(M) * N / sms;
      // fill 2: a full wave at the kernel's occupancy; 1: a block for every SM; 0: neither
      const int fill = total >= wave ? 2 : total >= sms ? 1 : 0;
      if (best_cost < 0 || fill > best_fill || (fill == best_fill && cost < best_cost)) {
        best_cost = cost;
        best_fill = fill;
        best = ConvPlan{i, z, total, per * bk};
      }
    }
  }
  if (best_cost < 0) best.k_per_split = slices * bk;
  return best;
}

// ---- launchers ------------------------------------------------------------------------------------

constexpr int kConvNaiveBlock = 128;
constexpr int kConvBiasBlock = 256;

// The fp32 tiles. blocks_per_sm: the fewest over the passes' instantiations of
// min(65536 / (registers * 256), 228 KB / shared memory), registers from ptxas -v for sm_90
// (CUDA 13.0, 2026-11-29, every pass, int32 and int64 gathers): 128x128 163-167 (1 block; capping
// it at 128 registers for 2 blocks spills), 128x64 119-127 and 64x128 115-127 (2), 64x64 79-80
// (3), 128x32 102-117 (2), 64x32 79-80 (3), 256x16 112-129 (1), 64x16 78-80 (3). The 64-row tiles
// with 1 or 2 columns per thread exist for narrow GEMMs (LeNet's 6 and 16 filters, a 1-filter
// head) that must still fill 132 SMs.
constexpr ConvTile kConvTiles[] = {
    {128, 128, 8, 8, 1}, {128, 64, 8, 4, 2}, {64, 128, 4, 8, 2}, {64, 64, 4, 4, 3},
    {128, 32, 8, 2, 2},  {64, 32, 4, 2, 3},  {256, 16, 16, 1, 1}, {64, 16, 4, 1, 3},
};
constexpr int kConvNumTiles = sizeof(kConvTiles) / sizeof(kConvTiles[0]);

inline size_t conv_gemm_smem(int bm, int bn) {
  return 2 * kConvBK * static_cast<size_t>(bm + 4 + bn + 4) * sizeof(float) + kConvTableBytes;
}

// The step of a load cursor when K advances by kConvBK, as digits of radices (-, MID, LO).
inline Cursor3 conv_step(int MID, int LO) {
  Cursor3 c;
  c.lo = kConvBK % LO;
  c.mid = kConvBK / LO % MID;
  c.hi = static_cast<int>(kConvBK / (static_cast<int64_t>(LO) * MID));
  return c;
}

// A test hook: force every pass's tile (index into kConvTiles) and split factor (clamped to what
// the reduction length and the pass allow), so every tile and split path is checked on small
// shapes. tile < 0: the chooser decides (the default).
struct ConvPlanOverride {
  int tile = -1, splits = 1;
  bool force64 = false;  // the 64-bit offset instantiations even for small tensors
};
inline ConvPlanOverride& conv_plan_override() {
  static ConvPlanOverride o;
  return o;
}
// The plan of a forced tile (an index into `tiles`) and split factor, the factor clamped to
// [1, max_splits] and to no empty split. Serves both test hooks (fp32 and TF32 tables).
inline ConvPlan conv_plan_forced(int tile, int splits, int64_t M, int64_t N, int64_t Kdim,
                                 const ConvTile* tiles, int bk, int max_splits) {
  const int64_t slices = simt::ceil_div<int64_t>(Kdim > 0 ? Kdim : 1, bk);
  int64_t z = splits < 1 ? 1 : splits > max_splits ? max_splits : splits;
  const int64_t per = simt::ceil_div<int64_t>(slices, z);
  z = simt::ceil_div<int64_t>(slices, per);  // no empty split
  const ConvTile& t = tiles[tile];
  return ConvPlan{tile, static_cast<int>(z),
                  simt::ceil_div<int64_t>(M, t.bm) * simt::ceil_div<int64_t>(N, t.bn) * z,
                  per * bk};
}
inline ConvPlan conv_plan_apply_override(ConvPlan p, int64_t M, int64_t N, int64_t Kdim,
                                         int max_splits) {
  const ConvPlanOverride& o = conv_plan_override();
  if (o.tile < 0 || o.tile >= kConvNumTiles) return p;
  return conv_plan_forced(o.tile, o.splits, M, N, Kdim, kConvTiles, kConvBK, max_splits);
}

// 32-bit gather offsets: every base + offset a table gather forms, valid or not, stays within
// +-(x + dy + w elements + 4 * row extent * column extent), the extents bounding any row or
// column index (padding, stride and dilation included). Otherwise the int64 instantiations.
inline bool conv_index32(const ConvShape& s) {
  if (conv_plan_override().force64) return false;
  const int64_t eh =
      s.pt + static_cast<int64_t>(s.P) * s.sh + static_cast<int64_t>(s.R) * s.dh + s.H;
  const int64_t ew =
      s.pl + static_cast<int64_t>(s.Q) * s.sw + static_cast<int64_t>(s.S) * s.dw + s.W;
  const int64_t x = static_cast<int64_t>(s.N) * s.C * s.H * s.W;
  const int64_t y = static_cast<int64_t>(s.N) * s.K * s.P * s.Q;
  const int64_t w = static_cast<int64_t>(s.K) * s.C * s.R * s.S;
  return x + y + w + 4 * eh * (ew + 1) < INT32_MAX;
}
template <int BN>
using FwdLoadBV = FwdLoadBT<BN, true>;
template <int BN>
using FwdLoadBS = FwdLoadBT<BN, false>;
template <int BM>
using FwdLoadA32 = FwdLoadAT<BM, int>;
template <int BM>
using FwdLoadA64 = FwdLoadAT<BM, int64_t>;
template <int BN>
using WgradLoadB32 = WgradLoadBT<BN, int>;
template <int BN>
using WgradLoadB64 = WgradLoadBT<BN, int64_t>;

// The passes' plans. Forward splits K only when given a workspace (max_splits > 1); dgrad (which
// always has one) and wgrad always may, wgrad with splits of at least 8 slices (its reduction is
// long).
constexpr int kConvMaxSplits = 64;
inline ConvPlan conv2d_gemm_plan(int64_t M, int64_t N, int64_t Kdim, int min_slices,
                                 int max_splits) {
  return conv_plan_apply_override(
      conv_plan(M, N, Kdim, kConvTiles, kConvNumTiles, kConvBK, min_slices, max_splits), M, N,
      Kdim, max_splits);
}
inline ConvPlan conv2d_forward_plan(const ConvShape& s, int max_splits = kConvMaxSplits) {
  return conv2d_gemm_plan(static_cast<int64_t>(s.N) * s.P * s.Q, s.K,
                          static_cast<int64_t>(s.C) * s.R * s.S, 2, max_splits);
}

// ---- dgrad by stride phase ----
// dx[n, c, h, w] = sum over (k, r, s) of dy[n, k, p, q] * w[k, c, r, s] where h + pt - r*dh =
// p*sh with 0 <= p < P (and likewise for w, q). The input rows h = a + sh*i of one phase a
// (0 <= a < sh) are reached only by the taps r with sh | a + pt - r*dh: r = r0 + rstep*j with
// rstep = sh / gcd(sh, dh), and then p = i + c0 - j*dh', c0 = (a + pt - r0*dh) / sh, dh' =
// dh / gcd(sh, dh). With the taps flipped (j = Ra-1-j') that is a stride-1 forward convolution
// of dy with dilation dh' and top padding (Ra-1)*dh' - c0 (negative when the padding exceeds
// the kernel: the gathers' unsigned compares take any offset). So each phase (a, b) runs the
// forward GEMM (FwdLoadAT, and FwdLoadBT reading the phase's flipped filter, built by
// conv2d_dgrad_weight_kernel, as contiguous float4s) on its own shape: no tap table for B, no
// phase compare, no division and no off-phase (zero) tap in the loop. Stride 1 is the single
// phase (0, 0) with the whole flipped filter: "dgrad as a convolution with flipped weights".
// Phases no tap reaches (a stride larger than the dilated kernel) are zero-filled first.
struct DgradTaps {
  int first, step, count;  // taps first + step*j, j < count (count 0: none reach the phase)
  int dil, pad;            // the phase problem's dilation and (top or left) padding
};
inline int conv_gcd(int a, int b) {
  while (b != 0) {
    const int r = a % b;
    a = b;
    b = r;
  }
  return a;
}
// Of one dimension: the taps of phase a (0 <= a < stride) of an extent-R filter.
inline DgradTaps conv_dgrad_taps(int a, int pad, int stride, int dil, int R) {
  const int g = conv_gcd(stride, dil);
  DgradTaps t{0, stride / g, 0, dil / g, 0};
  for (int r = 0; r < R && r < stride; ++r) {  // r*dil mod stride has period stride/g
    const int64_t d = static_cast<int64_t>(a) + pad - static_cast<int64_t>(r) * dil;
    if (d % stride != 0) continue;
    t.first = r;
    t.count = (R - 1 - r) / t.step + 1;
    t.pad = static_cast<int>(static_cast<int64_t>(t.count - 1) * t.dil - d / stride);
    break;
  }
  return t;
}
struct DgradPhase {
  int a, b;          // dx rows a + sh*i, columns b + sw*j
  DgradTaps tr, ts;  // its taps along R and S
  ConvShape g;       // dy (N, K, P, Q) * wf (C, K, tr.count, ts.count) -> (N, C, rows, cols)
  ConvPlan plan;     // forward's plan of g
  int64_t w_off;     // wf in the workspace (floats; a multiple of 4: float4-aligned)
};
struct DgradPhases {
  std::vector<DgradPhase> phases;  // those some tap reaches
  bool zero_fill;                  // some dx pixel no tap reaches
  int64_t weights, partials;       // workspace floats: the flipped filters, then split partials
};
// 32-bit offsets for a phase problem (its padding may be negative: bound it by its magnitude).
inline bool conv2d_dgrad_index32(ConvShape g) {
  g.pt = g.pt < 0 ? -g.pt : g.pt;
  g.pl = g.pl < 0 ? -g.pl : g.pl;
  return conv_index32(g);
}
inline DgradPhases conv2d_dgrad_phases(const ConvShape& s) {
  DgradPhases d{{}, false, 0, 0};
  std::vector<DgradTaps> rows, cols;  // phases with taps
  std::vector<int> ra, cb;
  for (int a = 0; a < s.sh && a < s.H; ++a) {
    const DgradTaps t = conv_dgrad_taps(a, s.pt, s.sh, s.dh, s.R);
    if (t.count == 0) d.zero_fill = true;
    else rows.push_back(t), ra.push_back(a);
  }
  for (int b = 0; b < s.sw && b < s.W; ++b) {
    const DgradTaps t = conv_dgrad_taps(b, s.pl, s.sw, s.dw, s.S);
    if (t.count == 0) d.zero_fill = true;
    else cols.push_back(t), cb.push_back(b);
  }
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < cols.size(); ++j) {
      DgradPhase ph;
      ph.a = ra[i];
      ph.b = cb[j];
      ph.tr = rows[i];
      ph.ts = cols[j];
      ph.g = ConvShape{s.N, s.K, s.P, s.Q, s.C, ph.tr.count, ph.ts.count,
                       (s.H - ph.a + s.sh - 1) / s.sh, (s.W - ph.b + s.sw - 1) / s.sw, 1, 1,
                       ph.tr.pad, ph.ts.pad, ph.tr.dil, ph.ts.dil};
      ph.plan = conv2d_forward_plan(ph.g);
      ph.w_off = d.weights;
      d.weights += (static_cast<int64_t>(s.C) * s.K * ph.tr.count * ph.ts.count + 3) / 4 * 4;
      const int64_t out = static_cast<int64_t>(s.N) * s.C * ph.g.P * ph.g.Q;
      if (ph.plan.splits > 1 && ph.plan.splits * out > d.partials) d.partials = ph.plan.splits * out;
      d.phases.push_back(ph);
    }
  return d;
}
// dgrad's plan as conv2d_plan reports it: its first phase's (the only one at stride 1).
inline ConvPlan conv2d_dgrad_plan(const ConvShape& s) {
  const DgradPhases d = conv2d_dgrad_phases(s);
  return d.phases.empty() ? ConvPlan{0, 1, 0, 0} : d.phases[0].plan;
}
inline ConvPlan conv2d_wgrad_plan(const ConvShape& s) {
  return conv2d_gemm_plan(s.K, static_cast<int64_t>(s.C) * s.R * s.S,
                          static_cast<int64_t>(s.N) * s.P * s.Q, 8, 256);
}

template <template <int> class LA, template <int> class LB, class Store>
void conv_gemm_launch(const ConvPlan& plan, int64_t M, int N, int64_t Kdim, const ConvShape& s,
                      const float* a, const float* b, Store store, Cursor3 step,
                      cudaStream_t stream) {
  auto go = [&](auto bm_c, auto bn_c) {
    constexpr int BM = decltype(bm_c)::value, BN = decltype(bn_c)::value;
    const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(M, BM)),
                    static_cast<unsigned>(simt::ceil_div(N, BN)),
                    static_cast<unsigned>(plan.splits));
    simt::launch(conv_gemm_kernel<BM, BN, LA<BM>, LB<BN>, Store>, grid, dim3(kConvThreads),
                 conv_gemm_smem(BM, BN), stream, s, a, b, store, M, N, Kdim, plan.k_per_split,
                 step);
  };
  using std::integral_constant;
  switch (plan.tile) {  // the order of kConvTiles
    case 0: go(integral_constant<int, 128>{}, integral_constant<int, 128>{}); break;
    case 1: go(integral_constant<int, 128>{}, integral_constant<int, 64>{}); break;
    case 2: go(integral_constant<int, 64>{}, integral_constant<int, 128>{}); break;
    case 3: go(integral_constant<int, 64>{}, integral_constant<int, 64>{}); break;
    case 4: go(integral_constant<int, 128>{}, integral_constant<int, 32>{}); break;
    case 5: go(integral_constant<int, 64>{}, integral_constant<int, 32>{}); break;
    case 6: go(integral_constant<int, 256>{}, integral_constant<int, 16>{}); break;
    default: go(integral_constant<int, 64>{}, integral_constant<int, 16>{}); break;
  }
}

inline void conv2d_split_reduce(float* out, const float* ws, int64_t n, int splits,
                                const float* bias, int64_t pq, int K, bool relu,
                                cudaStream_t stream, int64_t zstride = -1, float* out2 = nullptr,
                                int64_t n2 = 0) {
  simt::launch(conv2d_split_reduce_kernel, dim3(grid_stride_blocks(n + n2, kConvBiasBlock)),
               dim3(kConvBiasBlock), 0, stream, out, ws, n, splits, bias, pq, K, relu ? 1 : 0,
               zstride < 0 ? n : zstride, out2, n2);
}

// Floats of workspace conv2d_forward needs for its split-K plan (0: no split).
inline int64_t conv2d_forward_workspace(const ConvShape& s) {
  const ConvPlan p = conv2d_forward_plan(s);
  return p.splits > 1 ? p.splits * static_cast<int64_t>(s.N) * s.K * s.P * s.Q : 0;
}
// Floats of workspace conv2d_backward_data needs (version 1): the phases' flipped filters, then
// the split-K partials of the phase that needs the most.
inline int64_t conv2d_dgrad_workspace(const ConvShape& s) {
  if (static_cast<int64_t>(s.N) * s.C * s.H * s.W == 0) return 0;
  const DgradPhases d = conv2d_dgrad_phases(s);
  return d.weights + d.partials;
}

// y = conv2d(x, w) + bias (bias may be null), ReLU when relu. x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q).
// workspace: conv2d_forward_workspace(s) floats, or null (then no split-K).
inline void conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                           const ConvShape& s, bool relu, int version, cudaStream_t stream,
                           float* workspace = nullptr) {
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
  const ConvPlan plan = conv2d_forward_plan(s, workspace ? kConvMaxSplits : 1);
  const int64_t n = M * s.K;
  const FwdStore store = plan.splits == 1 ? FwdStore{y, bias, relu ? 1 : 0, 0}
                                          : FwdStore{workspace, nullptr, 0, n};
  const bool vec = Kdim % 4 == 0 && reinterpret_cast<std::uintptr_t>(w) % 16 == 0;
  const Cursor3 step = conv_step(s.R, s.S);
  if (conv_index32(s) && vec)
    conv_gemm_launch<FwdLoadA32, FwdLoadBV>(plan, M, s.K, Kdim, s, x, w, store, step, stream);
  else if (conv_index32(s))
    conv_gemm_launch<FwdLoadA32, FwdLoadBS>(plan, M, s.K, Kdim, s, x, w, store, step, stream);
  else if (vec)
    conv_gemm_launch<FwdLoadA64, FwdLoadBV>(plan, M, s.K, Kdim, s, x, w, store, step, stream);
  else
    conv_gemm_launch<FwdLoadA64, FwdLoadBS>(plan, M, s.K, Kdim, s, x, w, store, step, stream);
  if (plan.splits == 1) return;
  conv2d_split_reduce(y, workspace, n, plan.splits, bias, static_cast<int64_t>(s.P) * s.Q, s.K,
                      relu, stream);
}

// dx from dy and w. dx (N,C,H,W). workspace: conv2d_dgrad_workspace(s) floats (version 1; it
// holds the flipped filters, so it is required whenever that is not 0).
inline void conv2d_backward_data(float* dx, const float* dy, const float* w, const ConvShape& s,
                                 int version, cudaStream_t stream, float* workspace = nullptr) {
  const int64_t M = static_cast<int64_t>(s.N) * s.H * s.W;
  if (M == 0 || s.C == 0) return;
  if (version == 0) {
    const int64_t total = M * s.C;
    simt::launch(conv2d_dgrad_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(total, kConvNaiveBlock))),
                 dim3(kConvNaiveBlock), 0, stream, dx, dy, w, s);
    return;
  }
  const DgradPhases d = conv2d_dgrad_phases(s);
  if (d.zero_fill)
    simt::launch(conv2d_dgrad_zero_kernel, dim3(grid_stride_blocks(M * s.C, kConvBiasBlock)),
                 dim3(kConvBiasBlock), 0, stream, dx, M * s.C);
  float* partials = workspace + d.weights;
  for (const DgradPhase& ph : d.phases) {
    const ConvShape& g = ph.g;
    float* wf = workspace + ph.w_off;
    const int64_t Kdim = static_cast<int64_t>(g.C) * g.R * g.S;
    if (Kdim > 0)
      simt::launch(conv2d_dgrad_weight_kernel,
                   dim3(grid_stride_blocks(Kdim * s.C, kConvBiasBlock)), dim3(kConvBiasBlock), 0,
                   stream, wf, w, s, ph.tr.first, ph.tr.step, g.R, ph.ts.first, ph.ts.step, g.S);
    const int64_t Mg = static_cast<int64_t>(g.N) * g.P * g.Q, n = Mg * s.C;
    const DgradPhaseStore direct{dx, 0, ph.a, ph.b, s.sh, s.sw, s.H, s.W};
    const DgradPhaseStore split{partials, n, 0, 0, 1, 1, g.P, g.Q};
    const DgradPhaseStore& store = ph.plan.splits == 1 ? direct : split;
    const bool vec = Kdim % 4 == 0 && reinterpret_cast<std::uintptr_t>(wf) % 16 == 0;
    const Cursor3 step = conv_step(g.R, g.S);
    if (conv2d_dgrad_index32(g) && vec)
      conv_gemm_launch<FwdLoadA32, FwdLoadBV>(ph.plan, Mg, s.C, Kdim, g, dy, wf, store, step,
                                              stream);
    else if (conv2d_dgrad_index32(g))
      conv_gemm_launch<FwdLoadA32, FwdLoadBS>(ph.plan, Mg, s.C, Kdim, g, dy, wf, store, step,
                                              stream);
    else if (vec)
      conv_gemm_launch<FwdLoadA64, FwdLoadBV>(ph.plan, Mg, s.C, Kdim, g, dy, wf, store, step,
                                              stream);
    else
      conv_gemm_launch<FwdLoadA64, FwdLoadBS>(ph.plan, Mg, s.C, Kdim, g, dy, wf, store, step,
                                              stream);
    if (ph.plan.splits == 1) continue;
    if (s.sh == 1 && s.sw == 1)  // the one phase is dx itself
      conv2d_split_reduce(dx, partials, n, ph.plan.splits, nullptr, 1, 1, false, stream);
    else
      simt::launch(conv2d_dgrad_phase_reduce_kernel, dim3(grid_stride_blocks(n, kConvBiasBlock)),
                   dim3(kConvBiasBlock), 0, stream, dx, partials, n, ph.plan.splits, g.P, g.Q,
                   direct);
  }
}

// How many splits wgrad uses (conv2d_wgrad_plan): a function of the shape alone, so results are
// reproducible. 1 for an empty problem.
inline int conv2d_wgrad_splits(const ConvShape& s) { return conv2d_wgrad_plan(s).splits; }

// Floats of workspace conv2d_backward_weight needs (version 1; version 0 needs none): per split,
// dw's partial sums, and K more when it is given db (room for the fused bias gradient's).
inline int64_t conv2d_wgrad_workspace(const ConvShape& s, bool with_bias = false) {
  return static_cast<int64_t>(conv2d_wgrad_splits(s)) * s.K *
         (static_cast<int64_t>(s.C) * s.R * s.S + (with_bias ? 1 : 0));
}

// Whether conv2d_backward_weight computes db in the same GEMM (the version-1 plan's last column
// tile has a spare column for the ones column of B: C*R*S not a multiple of the tile's width) —
// the free case. Elsewhere db is conv2d_backward_bias's job.
inline bool conv2d_wgrad_fuses_bias(const ConvShape& s) {
  const int crs = s.C * s.R * s.S;
  if (s.K == 0 || crs == 0) return false;
  return crs % kConvTiles[conv2d_wgrad_plan(s).tile].bn != 0;
}

// dw from dy and x. dw (K,C,R,S); workspace of conv2d_wgrad_workspace(s, db != null) floats.
// db (K,) or null: when conv2d_wgrad_fuses_bias(s) (version 1), db = sum of dy over (N, P, Q) is
// computed too, and the call returns true; otherwise db is untouched and it returns false.
inline bool conv2d_backward_weight(float* dw, float* workspace, const float* dy, const float* x,
                                   const ConvShape& s, int version, cudaStream_t stream,
                                   float* db = nullptr) {
  const int64_t n = static_cast<int64_t>(s.K) * s.C * s.R * s.S;
  if (n == 0) return false;
  if (version == 0) {
    simt::launch(conv2d_wgrad_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(n, kConvNaiveBlock))),
                 dim3(kConvNaiveBlock), 0, stream, dw, dy, x, s);
    return false;
  }
  const ConvPlan plan = conv2d_wgrad_plan(s);
  const int64_t Kdim = static_cast<int64_t>(s.N) * s.P * s.Q;
  const bool fused = db && conv2d_wgrad_fuses_bias(s);
  const int N = s.C * s.R * s.S + (fused ? 1 : 0);  // the ones column (same grid: a spare column)
  const int64_t zstride = n + (fused ? s.K : 0);
  const WgradStore store{workspace, zstride};
  if (conv_index32(s))
    conv_gemm_launch<WgradLoadA, WgradLoadB32>(plan, s.K, N, Kdim, s, dy, x, store,
                                               conv_step(s.P, s.Q), stream);
  else
    conv_gemm_launch<WgradLoadA, WgradLoadB64>(plan, s.K, N, Kdim, s, dy, x, store,
                                               conv_step(s.P, s.Q), stream);
  conv2d_split_reduce(dw, workspace, n, plan.splits, nullptr, 1, 1, false, stream, zstride,
                      fused ? db : nullptr, fused ? s.K : 0);
  return fused;
}

// db[k] = sum of dy[:, k, :, :]. db (K,).
inline void conv2d_backward_bias(float* db, const float* dy, const ConvShape& s,
                                 cudaStream_t stream) {
  if (s.K == 0) return;
  simt::launch(conv2d_bias_grad_kernel, dim3(static_cast<unsigned>(s.K)), dim3(kConvBiasBlock),
               33 * sizeof(float), stream, db, dy, s);
}

}  // namespace cucnn
