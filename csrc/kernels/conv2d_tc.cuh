// conv2d_tc.cuh — 2-D convolution on tensor cores: TF32 inputs, fp32 accumulation (the tensor-core
// path of the conv family; the fp32 FFMA kernels and the GEMM mapping are in conv2d.cuh).
//
// The same three implicit GEMMs as conv2d.cuh:
//
//   pass      GEMM-M         GEMM-N      GEMM-K          A (M x K)              B (K x N)
//   forward   N*P*Q pixels   K filters   C*R*S           x gathered (im2col)    w
//   dgrad     N*H*W pixels   C           K*R*S           dy gathered            w
//   wgrad     K              C*R*S       N*P*Q (split)   dy                     x gathered
//
// run by one kernel, conv_tc_kernel, on mma.sync.m16n8k8 TF32 (simt_tc.h):
//   - a block computes a BM x BN tile with (BM/WM) x (BN/WN) warps, each a WM x WN warp tile of
//     (WM/16) x (WN/8) mma fragments held in registers (fp32 accumulators);
//   - K advances in slices of kTcBK = 32, fetched global -> shared by cp.async (4-byte .ca, with
//     src-size 0 zero-filling every out-of-bounds element: padding, the edge of a tile, channel and
//     filter counts that are not multiples of anything), kTcStages = 3 slices in flight: the copy
//     of slice t+2 overlaps the mma of slice t, one barrier per slice;
//   - shared layout per operand [kTcBK][ROWS + 8] (ROWS = BM for A, BN for B). The async stores
//     put consecutive rows (lanes) in consecutive words: conflict-free when ROWS >= 32. The fragment
//     loads read word (k0 + tig) * (ROWS + 8) + row0 + g (tig = lane % 4, g = lane / 4): with
//     ROWS + 8 = 8 mod 32 the four tig rows land in four disjoint groups of 8 banks, conflict-free.
//     The 16-wide B tile of narrow layers maps a warp's two k-rows 2 apart (tc_koff), so its
//     stores are conflict-free too. The memory profiler proves both per source line
//     (tests/test_conv2d_tf32_profile.py).
//   - operands are rounded to TF32 with cvt.rna.tf32.f32 when a fragment is loaded from shared
//     memory (cp.async cannot convert on the way); the epilogue adds the bias and applies ReLU
//     (forward), or writes the wgrad split's partial sums to the workspace, reduced in split order
//     by conv2d_split_reduce_kernel: no float atomics, bitwise reproducible.
// Tiles: 128x128 (4 warps of 64x64) for large layers, 64x64 (4 warps of 32x32) when 128x128 tiles
// would not fill the GPU, 128x32 and 128x16 (4 warps) for the narrow GEMMs of small layers (LeNet's
// 6 and 16 filters). The tile and the split-K factor come from conv2d.cuh's one chooser,
// conv_plan, over the TF32 tile table kTcTiles (conv2d_tc_*_plan); forward and dgrad split K
// when the caller passes a workspace, wgrad always may. Every channel and filter count is taken (the gathers zero-fill); the fp32
// kernels remain for allow_tf32 off, devices before sm_80, and operands over 2^29 elements
// (conv2d_tc_supported, the one shape rule).
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/conv2d.cuh"
#include "simt.h"

namespace cucnn {

constexpr int kTcBK = 32;
constexpr int kTcStages = 3;
constexpr int kTcPad = 8;  // words of padding per shared row: ROWS + 8 = 8 (mod 32)

template <int BM_, int BN_, int WM_, int WN_>
struct TcTile {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_;
  static constexpr int kWarpsM = BM / WM, kWarpsN = BN / WN;
  static constexpr int kThreads = kWarpsM * kWarpsN * 32;
  static constexpr int kFragsM = WM / 16, kFragsN = WN / 8;
  static constexpr int kStrideA = BM + kTcPad, kStrideB = BN + kTcPad;
  static constexpr int kStageFloats = kTcBK * (kStrideA + kStrideB);
  // the stages, then the tap tables: kTcTables per operand of kTcBK int4
  static constexpr size_t kTableBytes = size_t{3} * 2 * kTcBK * 16;
  static constexpr size_t kSmemBytes =
      size_t{kTcStages} * kStageFloats * sizeof(float) + kTableBytes;
  static_assert(WM % 16 == 0 && WN % 8 == 0 && BM % WM == 0 && BN % WN == 0, "bad tile");
};
using TcTileLarge = TcTile<128, 128, 64, 64>;
using TcTileSmall = TcTile<64, 64, 32, 32>;
using TcTileN32 = TcTile<128, 32, 32, 32>;
using TcTileN16 = TcTile<128, 16, 32, 16>;

// A mixed-radix counter (hi, mid, lo) over a reduction index, radices (-, MID, LO), advanced by a
// fixed step without division (the step's digits are computed once).
struct TcCursor {
  int hi, mid, lo;
  __device__ __forceinline__ void init(int64_t k, int MID, int LO) {
    lo = static_cast<int>(k % LO);
    mid = static_cast<int>(k / LO % MID);
    hi = static_cast<int>(k / (static_cast<int64_t>(LO) * MID));
  }
  __device__ __forceinline__ void advance(const TcCursor& step, int MID, int LO) {
    lo += step.lo;
    mid += step.mid;
    hi += step.hi;
    if (lo >= LO) { lo -= LO; ++mid; }
    if (mid >= MID) { mid -= MID; ++hi; }
  }
};

// --- operand gathers: where element (row, k) of an operand lives, as an offset from the operand's
// base pointer, and whether it exists (false: padding, zero). init(s, row, valid) once per thread;
// the offset splits into a row part (row_part, once per thread) and a tap part (tap, per
// reduction index, decoded into the slice's table), with the bounds checked on the sum of their
// row/column displacements (kTwoBounds) and, for strided dgrad, a phase key. All offsets are 32-bit: every
// tensor has fewer than 2^31 elements (conv2d_tc_supported), which keeps the per-element address
// arithmetic to a few integer instructions.

struct TcFwdA {  // x gathered: row m = (n, p, q), k = (c, r, s)
  int img, ih0, iw0;  // img: offset of image n
  __device__ void init(const ConvShape& s, int m, bool valid) {
    const int pq = s.P * s.Q;
    const int n = valid ? m / pq : 0, rem = valid ? m - n * pq : 0;
    ih0 = rem / s.Q * s.sh - s.pt;
    iw0 = rem % s.Q * s.sw - s.pl;
    img = n * s.C * s.H * s.W;
  }
  // Table form (TcTableLoader): offset = row part + tap part, bounds ih0 + r*dh < H, iw0 + s*dw < W.
  static constexpr bool kTwoBounds = true, kPhase = false;
  __device__ void row_part(const ConvShape& s, int& base, int& ra, int& rb, unsigned& la,
                           unsigned& lb) const {
    base = img + ih0 * s.W + iw0;
    ra = ih0;
    rb = iw0;
    la = static_cast<unsigned>(s.H);
    lb = static_cast<unsigned>(s.W);
  }
  __device__ static int4 tap(const ConvShape& s, const TcCursor& c) {
    return make_int4((c.hi * s.H + c.mid * s.dh) * s.W + c.lo * s.dw, c.mid * s.dh, c.lo * s.dw,
                     0);
  }
};

struct TcFwdB {  // w: row = filter, k = (c, r, s), contiguous
  int row;
  __device__ void init(const ConvShape& s, int n, bool valid) {
    row = (valid ? n : 0) * s.C * s.R * s.S;
  }
  static constexpr bool kTwoBounds = false, kPhase = false;
  __device__ void row_part(const ConvShape&, int& base, int& ra, int& rb, unsigned& la,
                           unsigned& lb) const {
    base = row;
    ra = rb = 0;
    la = lb = 1;
  }
  __device__ static int4 tap(const ConvShape& s, const TcCursor& c) {
    return make_int4((c.hi * s.R + c.mid) * s.S + c.lo, 0, 0, 0);
  }
};

// kStrided: a stride other than 1 (only output pixels on the stride grid read an input pixel);
// the unit-stride instantiation has no division in its loop.
template <bool kStrided>
struct TcDgradA {  // dy gathered: row m = (n, h, w), k = (k, r, s)
  int img, hp, wp;  // hp, wp: h + pt, w + pl
  __device__ void init(const ConvShape& s, int m, bool valid) {
    const int hw = s.H * s.W;
    const int n = valid ? m / hw : 0, rem = valid ? m - n * hw : 0;
    hp = rem / s.W + s.pt;
    wp = rem % s.W + s.pl;
    img = n * s.K * s.P * s.Q;
  }
  // Table form. Unit stride: p = hp - r*dh, q = wp - s*dw within [0, P) x [0, Q). Strided
  // (kPhase): with hp = sh*hq + hr and r*dh = sh*qr + rr (0 <= hr, rr < sh), hp - r*dh is on the
  // stride grid iff hr == rr, and then p = hq - qr: the row keeps (hq, wq) and the phase key
  // hr | wr << 16, the tap (-qr, -qs) and rr | rs << 16; no division in a slot (the decoder
  // divides once per tap and slice).
  static constexpr bool kTwoBounds = true, kPhase = kStrided;
  __device__ void row_part(const ConvShape& s, int& base, int& ra, int& rb, unsigned& la,
                           unsigned& lb) const {
    ra = kStrided ? hp / s.sh : hp;
    rb = kStrided ? wp / s.sw : wp;
    base = img + ra * s.Q + rb;
    la = static_cast<unsigned>(s.P);
    lb = static_cast<unsigned>(s.Q);
  }
  __device__ int phase_key(const ConvShape& s) const { return hp % s.sh | wp % s.sw << 16; }
  __device__ static int4 tap(const ConvShape& s, const TcCursor& c) {
    if constexpr (kStrided) {
      const int rd = c.mid * s.dh, sd = c.lo * s.dw;
      const int qr = rd / s.sh, qs = sd / s.sw;
      return make_int4(c.hi * s.P * s.Q - qr * s.Q - qs, -qr, -qs,
                       (rd - qr * s.sh) | (sd - qs * s.sw) << 16);
    } else {
      return make_int4(c.hi * s.P * s.Q - c.mid * s.dh * s.Q - c.lo * s.dw, -c.mid * s.dh,
                       -c.lo * s.dw, 0);
    }
  }
};

struct TcDgradB {  // w: row = channel c, k = (k, r, s): B[(k, r, s)][c] = w[k, c, r, s]
  int col;
  __device__ void init(const ConvShape& s, int c, bool valid) { col = (valid ? c : 0) * s.R * s.S; }
  static constexpr bool kTwoBounds = false, kPhase = false;
  __device__ void row_part(const ConvShape&, int& base, int& ra, int& rb, unsigned& la,
                           unsigned& lb) const {
    base = col;
    ra = rb = 0;
    la = lb = 1;
  }
  __device__ static int4 tap(const ConvShape& s, const TcCursor& c) {
    return make_int4((c.hi * s.C * s.R + c.mid) * s.S + c.lo, 0, 0, 0);
  }
};

struct TcWgradA {  // dy: row = filter k, k = (n, p, q)
  int row;
  __device__ void init(const ConvShape& s, int k, bool valid) { row = (valid ? k : 0) * s.P * s.Q; }
  static constexpr bool kTwoBounds = false, kPhase = false;
  __device__ void row_part(const ConvShape&, int& base, int& ra, int& rb, unsigned& la,
                           unsigned& lb) const {
    base = row;
    ra = rb = 0;
    la = lb = 1;
  }
  __device__ static int4 tap(const ConvShape& s, const TcCursor& c) {
    return make_int4((c.hi * s.K * s.P + c.mid) * s.Q + c.lo, 0, 0, 0);
  }
};

struct TcWgradB {  // x gathered: row j = (c, r, s), k = (n, p, q)
  int chan, roff, soff;  // chan: offset of channel c; r*dh - pt, s*dw - pl
  __device__ void init(const ConvShape& s, int j, bool valid) {
    const int rs = s.R * s.S, jj = valid ? j : 0;
    roff = jj % rs / s.S * s.dh - s.pt;
    soff = jj % s.S * s.dw - s.pl;
    chan = jj / rs * s.H * s.W;
  }
  static constexpr bool kTwoBounds = true, kPhase = false;
  __device__ void row_part(const ConvShape& s, int& base, int& ra, int& rb, unsigned& la,
                           unsigned& lb) const {
    base = chan + roff * s.W + soff;
    ra = roff;
    rb = soff;
    la = static_cast<unsigned>(s.H);
    lb = static_cast<unsigned>(s.W);
  }
  __device__ static int4 tap(const ConvShape& s, const TcCursor& c) {
    return make_int4(c.hi * s.C * s.H * s.W + c.mid * s.sh * s.W + c.lo * s.sw, c.mid * s.sh,
                     c.lo * s.sw, 0);
  }
};

// One operand's loads: thread t owns row t % ROWS of the tile and the K-offsets
// koff(t / ROWS) + (THREADS / ROWS) * i of each slice (consecutive lanes: consecutive rows, so the
// shared stores of a warp hit consecutive banks). A missing element is a 4-byte cp.async with
// src-size 0 (zero fill, nothing read) from the operand's base.
// koff: with ROWS >= 32 a warp stores one k-row (32 consecutive words: conflict-free). With
// ROWS = 16 a warp stores two k-rows of 16 words; k-rows h and h + 1 would start 16 + 8 = 24
// words apart and share 8 banks (2-way), so the thread-to-k map swaps bits 0 and 1 of t / 16: a
// warp's two k-rows are 2 apart, 2 * 24 = 48 = 16 (mod 32) words, banks 0-15 and 16-31.
template <int ROWS>
__device__ __forceinline__ int tc_koff(int h) {
  if constexpr (ROWS == 16) return (h & ~3) | (h & 1) << 1 | (h >> 1 & 1);
  return h;
}

// The loads go through a per-slice tap table in shared memory (the fp32 kernels' TableGather
// idea; every gather's offset splits into a row part and a tap part): one
// warp of the block (`decoder`) decodes each slice's kTcBK reduction indices into int4 taps
// (offset part, two bound parts; a tap past the end of this split gets kTcBadTap, which fails the
// bound check) a few slices ahead, stepping one cursor per lane; every other slot then costs a
// broadcast LDS.128 of its tap, the adds and unsigned compares of the bounds and the cp.async.
constexpr int kTcBadTap = -(1 << 29);
constexpr int kTcTables = 3;  // tap tables in flight per operand (slices t+2 read, t+3 written)

template <int ROWS, int THREADS, class Gather>
struct TcTableLoader {
  static constexpr bool kKMajor = false;
  static constexpr int kGap = THREADS / ROWS;
  static constexpr int kSlots = ROWS * kTcBK / THREADS;
  static_assert(THREADS % ROWS == 0 && kSlots >= 1, "tile rows and threads do not match");
  static_assert(ROWS >= 32 || (ROWS == 16 && kGap % 4 == 0), "no conflict-free store map");
  const float* src;
  int base, ra, rb, kofs;  // row parts; this thread's first k within the slice
  int key;                 // Gather::kPhase: the row's phase on the stride grid
  unsigned la, lb;
  // decoder lanes: the cursor of k = slice start + lane, and that k
  TcCursor dcur, step;
  int dk;
  __device__ void init(const ConvShape& s, const float* src_, int row0, int rows, int k_begin,
                       int MID, int LO) {
    const int t = static_cast<int>(threadIdx.x);
    src = src_;
    const bool valid = row0 + t % ROWS < rows;
    Gather g;
    g.init(s, row0 + t % ROWS, valid);
    g.row_part(s, base, ra, rb, la, lb);
    if (!valid) ra = kTcBadTap;
    key = 0;
    if constexpr (Gather::kPhase) key = g.phase_key(s);
    kofs = tc_koff<ROWS>(t / ROWS);
    dk = k_begin + t % 32;
    dcur.init(dk, MID, LO);
    step.init(kTcBK, MID, LO);
  }
  // The decoder warp writes the next slice's taps into tab[kTcBK] (called once per slice, in order).
  __device__ __forceinline__ void decode(const ConvShape& s, int k_end, int4* tab, int MID,
                                         int LO, int decoder) {
    if (static_cast<int>(threadIdx.x) / 32 == decoder) {
      int4 e = Gather::tap(s, dcur);
      if (dk >= k_end) e.y = kTcBadTap;
      tab[threadIdx.x % 32] = e;
      dcur.advance(step, MID, LO);
      dk += kTcBK;
    }
  }
  __device__ __forceinline__ void issue(const ConvShape&, int, float* smem, int, int,
                                        const int4* tab) {
    const int t = static_cast<int>(threadIdx.x);
    float* dst = smem + kofs * (ROWS + kTcPad) + t % ROWS;
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      const int4 e = tab[kofs + i * kGap];
      bool in = static_cast<unsigned>(ra + e.y) < la;
      if constexpr (Gather::kTwoBounds) in = in && static_cast<unsigned>(rb + e.z) < lb;
      if constexpr (Gather::kPhase) in = in && e.w == key;
      // A valid offset is >= 0 (unsigned: no sign extension). Out of bounds the address is never
      // read (src-size 0 is the LDGSTS ignore-src predicate), so no select is needed.
      const unsigned off = static_cast<unsigned>(base + e.x);
      simt::cp_async_4(dst + i * kGap * (ROWS + kTcPad), src + off, in ? 4 : 0);
    }
  }
};

template <int ROWS, int THREADS, class Gather>
using TcLoaderFor = TcTableLoader<ROWS, THREADS, Gather>;

// 16-byte loads for an operand whose rows are contiguous along GEMM-K in groups of 4 (forward's
// B = w when C*R*S % 4 == 0, wgrad's A = dy when P*Q % 4 == 0; w or dy 16-byte aligned, checked
// by the launcher): each cp.async.cg copies 4 consecutive k of one row, so the operand is stored
// K-major, [ROWS][kTcBK + 4] (kTcKMajorPad: a row is 36 words). Lane l of a warp copies chunk
// l % 8 of row l / 8: the 8 lanes of each 128-bit phase write one row's 128 contiguous bytes
// (conflict-free), and the fragment loads read word row * 36 + k, bank 4 g + tig (+ const):
// conflict-free too. The k part of an offset comes from a tap table of the slice's 8 chunk starts
// (a chunk never straddles a row's end or the split's, both multiples of 4).
constexpr int kTcKMajorPad = 4;
template <int ROWS, int THREADS, class Gather>
struct TcVec16Loader {
  static constexpr bool kKMajor = true;
  static constexpr int kStride = kTcBK + kTcKMajorPad;
  static constexpr int kRowGap = THREADS / 8;  // rows between a thread's slots
  static constexpr int kSlots = ROWS * 8 / THREADS;
  static_assert(THREADS % 8 == 0 && ROWS % kRowGap == 0 && kSlots >= 1, "tile and threads");
  const float* src;
  int base, row_step, rows_left, chunk;  // base: row part of slot 0; row_step: between slots
  TcCursor dcur, step;
  int dk;
  __device__ void init(const ConvShape& s, const float* src_, int row0, int rows, int k_begin,
                       int MID, int LO) {
    const int t = static_cast<int>(threadIdx.x);
    src = src_;
    chunk = t % 8;
    const int r = row0 + t / 8;
    rows_left = rows - r;  // slot i is a row while i * kRowGap < rows_left
    Gather g0, g1;
    int ra, rb, b1;
    unsigned la, lb;
    g0.init(s, r < rows ? r : 0, true);
    g0.row_part(s, base, ra, rb, la, lb);
    g1.init(s, (r < rows ? r : 0) + 1, true);  // rows are equally spaced: the step of one row
    g1.row_part(s, b1, ra, rb, la, lb);
    row_step = (b1 - base) * kRowGap;
    dk = k_begin + 4 * (t % 8);  // decoder lanes 0-7: the taps of the slice's 8 chunks
    dcur.init(dk, MID, LO);
    step.init(kTcBK, MID, LO);
  }
  // Only the chunk starts are decoded, into tab[0..7] (128 contiguous bytes: the decode's
  // 128-bit stores and the issue's broadcast reads are conflict-free).
  __device__ __forceinline__ void decode(const ConvShape& s, int k_end, int4* tab, int MID,
                                         int LO, int decoder) {
    if (static_cast<int>(threadIdx.x) / 32 == decoder && threadIdx.x % 32 < 8) {
      int4 e = Gather::tap(s, dcur);
      if (dk >= k_end) e.y = kTcBadTap;
      tab[threadIdx.x % 32] = e;
      dcur.advance(step, MID, LO);
      dk += kTcBK;
    }
  }
  __device__ __forceinline__ void issue(const ConvShape&, int, float* smem, int, int,
                                        const int4* tab) {
    const int t = static_cast<int>(threadIdx.x);
    float* dst = smem + (t / 8) * kStride + chunk * 4;
    const int4 e = tab[chunk];
    const bool kin = e.y == 0;  // kTcBadTap past the split's end
#pragma unroll
    for (int i = 0; i < kSlots; ++i) {
      const bool in = kin && i * kRowGap < rows_left;
      const unsigned off = static_cast<unsigned>(base + i * row_step + e.x);
      simt::cp_async_16(dst + i * kRowGap * kStride, src + off, in ? 16 : 0);
    }
  }
};

// --- epilogues: store(s, m, n, acc) for one element of the GEMM result ---

// Split K (forward and dgrad, as conv2d.cuh's FwdStore): y / dx is the workspace, one slice laid
// out like the output per split, zstride floats apart, no bias and no ReLU; conv2d_split_reduce
// adds the slices in split order and then applies them.
struct TcFwdStore {  // y[n, k, p, q] = acc + bias[k], optionally ReLU
  float* y;
  const float* bias;
  int relu;
  int64_t zstride;  // 0 without split-K
  __device__ __forceinline__ void operator()(const ConvShape& s, int64_t m, int k,
                                             float acc) const {
    const int64_t pq = static_cast<int64_t>(s.P) * s.Q;
    const int64_t n = m / pq;
    if (bias) acc += bias[k];
    y[static_cast<int64_t>(blockIdx.z) * zstride + (n * s.K + k) * pq + (m - n * pq)] =
        relu && acc < 0.0f ? 0.0f : acc;
  }
};
struct TcDgradStore {  // dx[n, c, h, w]
  float* dx;
  int64_t zstride;  // 0 without split-K
  __device__ __forceinline__ void operator()(const ConvShape& s, int64_t m, int c,
                                             float acc) const {
    const int64_t hw = static_cast<int64_t>(s.H) * s.W;
    const int64_t n = m / hw;
    dx[static_cast<int64_t>(blockIdx.z) * zstride + (n * s.C + c) * hw + (m - n * hw)] = acc;
  }
};
struct TcWgradStore {  // workspace[split][k][(c, r, s)]
  float* ws;
  __device__ __forceinline__ void operator()(const ConvShape& s, int64_t k, int j,
                                             float acc) const {
    const int64_t crs = static_cast<int64_t>(s.C) * s.R * s.S;
    ws[(static_cast<int64_t>(blockIdx.z) * s.K + k) * crs + j] = acc;
  }
};

// C[M x N] = A[M x Kdim] * B[Kdim x N] over this block's split of Kdim, on TF32 tensor cores.
// Grid (ceil(M/BM), ceil(N/BN), splits); block Tile::kThreads; dynamic shared TcSmem::kBytes.
// MID, LO: the radices of the reduction index (R, S for forward and dgrad; P, Q for wgrad).
// __launch_bounds__(threads, 2): two resident blocks per SM (2 x 105-108 KB of shared memory fit
// the 228 KB of an H100 SM on the 128x128 tile, whose 64x64 warp tiles take 206-212 registers of
// the 255 the bound allows 128 threads); without the 2, ptxas picked 80 registers for the 64x64
// unit-stride dgrad and spilled.
// The loaders of one operand (kVec: the 16-byte K-major loads) and the shared memory of a kernel:
// per stage A then B, each [kTcBK][ROWS + kTcPad] or, K-major, [ROWS][kTcBK + kTcKMajorPad]; then
// the tap tables.
template <int ROWS, int THREADS, class Gather, bool kVec>
using TcOperandLoader = std::conditional_t<kVec, TcVec16Loader<ROWS, THREADS, Gather>,
                                           TcLoaderFor<ROWS, THREADS, Gather>>;
template <int ROWS, bool kKMajor>
constexpr int tc_operand_floats() {
  return kKMajor ? ROWS * (kTcBK + kTcKMajorPad) : kTcBK * (ROWS + kTcPad);
}
template <class Tile, bool kVecA, bool kVecB>
struct TcSmem {
  static constexpr int kAFloats = tc_operand_floats<Tile::BM, kVecA>();
  static constexpr int kStageFloats = kAFloats + tc_operand_floats<Tile::BN, kVecB>();
  static constexpr size_t kBytes =
      size_t{kTcStages} * kStageFloats * sizeof(float) + Tile::kTableBytes;
};

template <class Tile, class GA, class GB, class Store, bool kVecA = false, bool kVecB = false>
__global__ void __launch_bounds__(Tile::kThreads, 2)
    conv_tc_kernel(ConvShape s, const float* a_src, const float* b_src, Store store, int64_t M,
                   int N, int64_t Kdim, int64_t k_per_split, int MID, int LO) {
  constexpr int BM = Tile::BM, BN = Tile::BN, FM = Tile::kFragsM, FN = Tile::kFragsN;
  constexpr int SA = Tile::kStrideA, SB = Tile::kStrideB, KS = kTcBK + kTcKMajorPad;
  using Smem = TcSmem<Tile, kVecA, kVecB>;
  constexpr int kStage = Smem::kStageFloats, kBOff = Smem::kAFloats;
  SIMT_DYNAMIC_SHARED(float, smem);  // [kTcStages][ A | B ], then the tap tables

  const int t = static_cast<int>(threadIdx.x);
  const int warp = t / 32, lane = t % 32, g = lane >> 2, tig = lane & 3;
  const int wm0 = warp % Tile::kWarpsM * Tile::WM, wn0 = warp / Tile::kWarpsM * Tile::WN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int n0 = static_cast<int>(blockIdx.y) * BN;
  const int64_t k_begin = static_cast<int64_t>(blockIdx.z) * k_per_split;
  const int64_t k_end = k_begin + k_per_split < Kdim ? k_begin + k_per_split : Kdim;
  const int64_t tiles = k_end > k_begin ? (k_end - k_begin + kTcBK - 1) / kTcBK : 0;

  using LA = TcOperandLoader<BM, Tile::kThreads, GA, kVecA>;
  using LB = TcOperandLoader<BN, Tile::kThreads, GB, kVecB>;
  LA la;
  LB lb;
  la.init(s, a_src, static_cast<int>(m0), static_cast<int>(M), static_cast<int>(k_begin), MID, LO);
  lb.init(s, b_src, n0, N, static_cast<int>(k_begin), MID, LO);
  const int k_last = static_cast<int>(k_end);
  // tap tables [kTcTables][A | B][kTcBK] after the stages; slice j uses table j % kTcTables
  int4* tabs = reinterpret_cast<int4*>(smem + kTcStages * kStage);
  static_assert(kTcTables == 3 && Tile::kTableBytes == kTcTables * 2 * kTcBK * sizeof(int4),
                "table layout");
  auto tab_a = [&](int j) { return tabs + j * 2 * kTcBK; };  // j: table index (slice % 3)
  auto tab_b = [&](int j) { return tab_a(j) + kTcBK; };

  float acc[FM][FN][4];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;

  // Prologue: the taps of slices 0 .. kTcTables-1 (warps 0 and 1 decode A's and B's), then
  // slices 0 .. kTcStages-2 in flight, one commit group each (empty past the end, so the group
  // count, and with it the wait below, stays the same).
#pragma unroll
  for (int j = 0; j < kTcTables; ++j) {
    la.decode(s, k_last, tab_a(j), MID, LO, 0);
    lb.decode(s, k_last, tab_b(j), MID, LO, 1);
  }
  __syncthreads();
#pragma unroll
  for (int st = 0; st < kTcStages - 1; ++st) {
    if (st < tiles) {
      float* stage = smem + st * kStage;
      la.issue(s, k_last, stage, MID, LO, tab_a(st));
      lb.issue(s, k_last, stage + kBOff, MID, LO, tab_b(st));
    }
    simt::cp_async_commit();
  }

  // Ring indices without 64-bit division: cur = tile % 3 (the stage of slice tile, and the table
  // slice tile used, rewritten below with slice tile + 3), nxt = (tile + 2) % 3.
  static_assert(kTcStages == 3 && kTcTables == 3, "ring indices assume 3 stages and 3 tables");
  int cur = 0, nxt = 2;
  for (int64_t tile = 0; tile < tiles; ++tile) {
    // This thread's copies of slice `tile` have landed; the barrier makes everyone's visible, and
    // says everyone has finished the mma of slice tile-1, whose stage is refilled next, and the
    // issue of slice tile (two iterations ago), whose tap table is rewritten below.
    simt::cp_async_wait<kTcStages - 2>();
    __syncthreads();
    const int64_t next = tile + kTcStages - 1;
    if (next < tiles) {
      float* stage = smem + nxt * kStage;
      la.issue(s, k_last, stage, MID, LO, tab_a(nxt));
      lb.issue(s, k_last, stage + kBOff, MID, LO, tab_b(nxt));
    }
    simt::cp_async_commit();
    // The taps of slice tile + 3 (read after the next barrier) into the table slice `tile` used.
    if (tile + kTcTables < tiles) {
      la.decode(s, k_last, tab_a(cur), MID, LO, 0);
      lb.decode(s, k_last, tab_b(cur), MID, LO, 1);
    }

    const float* as = smem + cur * kStage;
    cur = cur == 2 ? 0 : cur + 1;
    nxt = nxt == 2 ? 0 : nxt + 1;
    const float* bs = as + kBOff;
    // element (row, k) of this stage's A and B, in either layout
    auto a_at = [&](int row, int k) {
      if constexpr (LA::kKMajor) return as[row * KS + k];
      else return as[k * SA + row];
    };
    auto b_at = [&](int row, int k) {
      if constexpr (LB::kKMajor) return bs[row * KS + k];
      else return bs[k * SB + row];
    };
#pragma unroll
    for (int kk = 0; kk < kTcBK; kk += 8) {
      unsigned af[FM][4], bf[FN][2];
#pragma unroll
      for (int i = 0; i < FM; ++i) {
        const int r = wm0 + i * 16 + g;
        af[i][0] = simt::cvt_rna_tf32(a_at(r, kk + tig));
        af[i][1] = simt::cvt_rna_tf32(a_at(r + 8, kk + tig));
        af[i][2] = simt::cvt_rna_tf32(a_at(r, kk + tig + 4));
        af[i][3] = simt::cvt_rna_tf32(a_at(r + 8, kk + tig + 4));
      }
#pragma unroll
      for (int j = 0; j < FN; ++j) {
        bf[j][0] = simt::cvt_rna_tf32(b_at(wn0 + j * 8 + g, kk + tig));
        bf[j][1] = simt::cvt_rna_tf32(b_at(wn0 + j * 8 + g, kk + tig + 4));
      }
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) simt::mma_m16n8k8_tf32(acc[i][j], af[i], bf[j], acc[i][j]);
    }
  }
  simt::cp_async_wait<0>();  // nothing may be in flight when the block ends (only empty groups are)

  // Epilogue: element r of fragment (i, j) is row g (+8 for r >= 2), column 2 tig + (r & 1).
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int64_t m = m0 + wm0 + i * 16 + g + (r >= 2 ? 8 : 0);
        const int n = n0 + wn0 + j * 8 + 2 * tig + (r & 1);
        if (m < M && n < N) store(s, m, n, acc[i][j][r]);
      }
}

// ---- launchers ------------------------------------------------------------------------------------

// The one rule for which shapes run on the tensor-core kernels (the others take the fp32 ones):
// every operand, and the padded input plane, has at most 2^29 elements, so that every gather
// offset (an element's position in its tensor, and the out-of-bounds positions computed on the
// way) fits in 32 bits. Channel and filter counts and sizes do not matter: the gathers zero-fill.
constexpr int64_t kTcMaxElements = int64_t{1} << 29;
inline bool conv2d_tc_supported(const ConvShape& s) {
  const int64_t plane = (static_cast<int64_t>(s.P) * s.sh + static_cast<int64_t>(s.R) * s.dh) *
                        (static_cast<int64_t>(s.Q) * s.sw + static_cast<int64_t>(s.S) * s.dw);
  const int64_t x = static_cast<int64_t>(s.N) * s.C * s.H * s.W;
  const int64_t w = static_cast<int64_t>(s.K) * s.C * s.R * s.S;
  const int64_t y = static_cast<int64_t>(s.N) * s.K * s.P * s.Q;
  return x <= kTcMaxElements && w <= kTcMaxElements && y <= kTcMaxElements &&
         plane <= kTcMaxElements && static_cast<int64_t>(s.H) * s.W <= kTcMaxElements;
}

// ---- the plan: conv2d.cuh's one chooser (conv_plan) over the TF32 tile table ------------------
// ConvTile fields for a TF32 tile. tm x tn is not a register tile here: conv_plan reads only
// tm*tn/(tm+tn), as the tile's efficiency (its cost is FMAs / efficiency), so the TF32 pairs are
// chosen to make that efficiency 32 / (busy-path instructions per HMMA). An SM issues 4 warp
// instructions a clock and an m16n8k8 HMMA is 1024 FMAs, so a tile at I instructions per HMMA does
// (32 / I) * 128 FMAs a clock: its cost is then in clocks x 128, the unit of conv_plan's split-K
// reduction term (FMAs at 128 a clock). Instructions per HMMA from the SASS of the 4-byte paths
// (benchmarks/results/kernels-sm90.md, CUDA 13.0, sm_90; the 16-byte paths are ~20% leaner):
// 128x128 9.8 -> 3.27 (7x6: 3.23), 64x64 20.2 -> 1.58 (8x2: 1.60), 128x32 23.6 -> 1.36 (4x2:
// 1.33), 128x16 41 -> 0.78 (4x1: 0.80). (The warp-tile measure used before, WM*WN/(WM+WN): 32,
// 16, 16, 10.7, made the tiles 3-8x cheaper against the reduction and sent layers whose 128x128
// grid is under a wave to the 128x16 tile rather than to split-K.)
// blocks_per_sm = min(65536 / (registers * threads), 228 KB / (shared bytes + 1 KB reserved)),
// registers from ptxas -v (CUDA 13.0, sm_90, every pass and path): 128x128 206-212 on 128 threads
// (2 blocks; __launch_bounds__(128, 2)), 64x64 / 128x32 / 128x16 at most 128 on 128 threads (4 by
// registers; shared memory, 4-byte layouts with the tap tables: 57, 69 and 63 KB give 3, 3 and 3).
// The order is the kernels' switch in conv_tc_launch and TcTileKind.
enum class TcTileKind { large, small, n32, n16 };
template <class T>
constexpr ConvTile tc_conv_tile(int reg_blocks, int tm, int tn) {
  const int smem_blocks = static_cast<int>(228 * 1024 / (T::kSmemBytes + 1024));
  return ConvTile{T::BM, T::BN, tm, tn, smem_blocks < reg_blocks ? smem_blocks : reg_blocks};
}
constexpr ConvTile kTcTiles[] = {
    tc_conv_tile<TcTileLarge>(2, 7, 6), tc_conv_tile<TcTileSmall>(4, 8, 2),
    tc_conv_tile<TcTileN32>(4, 4, 2), tc_conv_tile<TcTileN16>(4, 4, 1)};
constexpr int kTcNumTiles = sizeof(kTcTiles) / sizeof(kTcTiles[0]);

// Test hook, as conv_plan_override for the fp32 kernels: force the TF32 tile (index into
// kTcTiles) and the split factor (clamped to what the pass allows: forward and dgrad split only
// when given a workspace). tile < 0: the chooser decides.
struct TcPlanOverride {
  int tile = -1, splits = 1;
};
inline TcPlanOverride& conv_tc_plan_override() {
  static TcPlanOverride o;
  return o;
}

// The TF32 plan of a GEMM: conv_plan over kTcTiles with BK = 32 and at least 4 slices per split.
// Forward and dgrad split K (at most kConvMaxSplits, as the fp32 passes) only when the caller
// passes a workspace (max_splits 1 without); wgrad always may, at most 256 splits.
inline ConvPlan conv_tc_gemm_plan(int64_t M, int64_t N, int64_t Kdim, int max_splits) {
  ConvPlan p = conv_plan(M, N, Kdim, kTcTiles, kTcNumTiles, kTcBK, 4, max_splits);
  const TcPlanOverride& o = conv_tc_plan_override();
  if (o.tile < 0 || o.tile >= kTcNumTiles) return p;
  return conv_plan_forced(o.tile, o.splits, M, N, Kdim, kTcTiles, kTcBK, max_splits);
}
constexpr int kTcMaxWgradSplits = 256;
inline ConvPlan conv2d_tc_forward_plan(const ConvShape& s, int max_splits = kConvMaxSplits) {
  return conv_tc_gemm_plan(static_cast<int64_t>(s.N) * s.P * s.Q, s.K,
                           static_cast<int64_t>(s.C) * s.R * s.S, max_splits);
}
inline ConvPlan conv2d_tc_dgrad_plan(const ConvShape& s, int max_splits = kConvMaxSplits) {
  return conv_tc_gemm_plan(static_cast<int64_t>(s.N) * s.H * s.W, s.C,
                           static_cast<int64_t>(s.K) * s.R * s.S, max_splits);
}
inline ConvPlan conv2d_tc_wgrad_plan(const ConvShape& s) {
  return conv_tc_gemm_plan(s.K, static_cast<int64_t>(s.C) * s.R * s.S,
                           static_cast<int64_t>(s.N) * s.P * s.Q, kTcMaxWgradSplits);
}

template <class GA, class GB, class Store, bool kVecA = false, bool kVecB = false>
void conv_tc_launch(const ConvPlan& plan, int64_t M, int N, int64_t Kdim, const ConvShape& s,
                    const float* a, const float* b, Store store, int MID, int LO,
                    cudaStream_t stream) {
  auto go = [&](auto tile) {
    using T = decltype(tile);
    const dim3 grid(static_cast<unsigned>(simt::ceil_div<int64_t>(M, T::BM)),
                    static_cast<unsigned>(simt::ceil_div(N, T::BN)),
                    static_cast<unsigned>(plan.splits));
    simt::launch(conv_tc_kernel<T, GA, GB, Store, kVecA, kVecB>, grid, dim3(T::kThreads),
                 TcSmem<T, kVecA, kVecB>::kBytes, stream, s, a, b, store, M, N, Kdim,
                 plan.k_per_split, MID, LO);
  };
  switch (static_cast<TcTileKind>(plan.tile)) {  // the order of kTcTiles
    case TcTileKind::large: go(TcTileLarge{}); break;
    case TcTileKind::small: go(TcTileSmall{}); break;
    case TcTileKind::n32: go(TcTileN32{}); break;
    default: go(TcTileN16{}); break;
  }
}

// The 16-byte path for an operand whose rows run along GEMM-K in runs of `run` elements: the runs
// a multiple of 4 floats and the tensor 16-byte aligned (every row start is then aligned).
inline bool conv_tc_vec16(const float* p, int64_t run) {
  return run % 4 == 0 && reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
}

// Floats of workspace conv2d_tc_forward needs for its split-K plan (0: no split).
inline int64_t conv2d_tc_forward_workspace(const ConvShape& s) {
  const ConvPlan p = conv2d_tc_forward_plan(s);
  return p.splits > 1 ? p.splits * static_cast<int64_t>(s.N) * s.K * s.P * s.Q : 0;
}
// Floats of workspace conv2d_tc_backward_data needs for its split-K plan (0: no split).
inline int64_t conv2d_tc_dgrad_workspace(const ConvShape& s) {
  const ConvPlan p = conv2d_tc_dgrad_plan(s);
  return p.splits > 1 ? p.splits * static_cast<int64_t>(s.N) * s.C * s.H * s.W : 0;
}

// y = conv2d(x, w) + bias (bias may be null), ReLU when relu, on TF32 tensor cores.
// workspace: conv2d_tc_forward_workspace(s) floats, or null (then no split-K).
inline void conv2d_tc_forward(float* y, const float* x, const float* w, const float* bias,
                              const ConvShape& s, bool relu, cudaStream_t stream,
                              float* workspace = nullptr) {
  const int64_t M = static_cast<int64_t>(s.N) * s.P * s.Q;
  if (M == 0 || s.K == 0) return;
  const int64_t Kdim = static_cast<int64_t>(s.C) * s.R * s.S;
  const ConvPlan plan = conv2d_tc_forward_plan(s, workspace ? kConvMaxSplits : 1);
  const int64_t n = M * s.K;
  const TcFwdStore store = plan.splits == 1 ? TcFwdStore{y, bias, relu ? 1 : 0, 0}
                                            : TcFwdStore{workspace, nullptr, 0, n};
  if (conv_tc_vec16(w, Kdim))  // w's rows contiguous along K in aligned groups of 4
    conv_tc_launch<TcFwdA, TcFwdB, TcFwdStore, false, true>(plan, M, s.K, Kdim, s, x, w, store,
                                                           s.R, s.S, stream);
  else
    conv_tc_launch<TcFwdA, TcFwdB>(plan, M, s.K, Kdim, s, x, w, store, s.R, s.S, stream);
  if (plan.splits == 1) return;
  conv2d_split_reduce(y, workspace, n, plan.splits, bias, static_cast<int64_t>(s.P) * s.Q, s.K,
                      relu, stream);
}

// dx from dy and w on TF32 tensor cores. dx (N,C,H,W). workspace: conv2d_tc_dgrad_workspace(s)
// floats, or null (then no split-K).
inline void conv2d_tc_backward_data(float* dx, const float* dy, const float* w, const ConvShape& s,
                                    cudaStream_t stream, float* workspace = nullptr) {
  const int64_t M = static_cast<int64_t>(s.N) * s.H * s.W;
  if (M == 0 || s.C == 0) return;
  const int64_t Kdim = static_cast<int64_t>(s.K) * s.R * s.S;
  const ConvPlan plan = conv2d_tc_dgrad_plan(s, workspace ? kConvMaxSplits : 1);
  const int64_t n = M * s.C;
  const TcDgradStore store = plan.splits == 1 ? TcDgradStore{dx, 0} : TcDgradStore{workspace, n};
  if (s.sh == 1 && s.sw == 1)
    conv_tc_launch<TcDgradA<false>, TcDgradB>(plan, M, s.C, Kdim, s, dy, w, store, s.R, s.S,
                                              stream);
  else
    conv_tc_launch<TcDgradA<true>, TcDgradB>(plan, M, s.C, Kdim, s, dy, w, store, s.R, s.S,
                                             stream);
  if (plan.splits == 1) return;
  conv2d_split_reduce(dx, workspace, n, plan.splits, nullptr, 1, 1, false, stream);
}

// wgrad splits: conv2d_tc_wgrad_plan (a function of the shape alone: reproducible results).
inline int conv2d_tc_wgrad_splits(const ConvShape& s) { return conv2d_tc_wgrad_plan(s).splits; }

// Floats of workspace conv2d_tc_backward_weight needs.
inline int64_t conv2d_tc_wgrad_workspace(const ConvShape& s) {
  return static_cast<int64_t>(conv2d_tc_wgrad_splits(s)) * s.K * s.C * s.R * s.S;
}

// dw from dy and x on TF32 tensor cores. dw (K,C,R,S); workspace of conv2d_tc_wgrad_workspace(s).
inline void conv2d_tc_backward_weight(float* dw, float* workspace, const float* dy, const float* x,
                                      const ConvShape& s, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(s.K) * s.C * s.R * s.S;
  if (n == 0) return;
  const ConvPlan plan = conv2d_tc_wgrad_plan(s);
  const int64_t Kdim = static_cast<int64_t>(s.N) * s.P * s.Q;
  if (conv_tc_vec16(dy, static_cast<int64_t>(s.P) * s.Q))  // dy's (p, q) planes: aligned 4s
    conv_tc_launch<TcWgradA, TcWgradB, TcWgradStore, true, false>(
        plan, s.K, s.C * s.R * s.S, Kdim, s, dy, x, TcWgradStore{workspace}, s.P, s.Q, stream);
  else
    conv_tc_launch<TcWgradA, TcWgradB>(plan, s.K, s.C * s.R * s.S, Kdim, s, dy, x,
                                       TcWgradStore{workspace}, s.P, s.Q, stream);
  conv2d_split_reduce(dw, workspace, n, plan.splits, nullptr, 1, 1, false, stream);
}

}  // namespace cucnn
