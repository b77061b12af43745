// depthwise_conv2d.cuh — depthwise convolution (groups == C, channel multiplier M = K / C), the
// MobileNet case a GEMM tile wastes: each output channel k reads only input channel c = k / M, so
// there is no reduction over channels and the work is R*S multiply-adds per output.
//
//   forward  y[n,k,p,q]  = bias[k] + sum_{r,s} w[k,0,r,s] x[n, k/M, p*sh - pt + r*dh, q*sw - pl + s*dw]
//   dgrad    dx[n,c,h,w] = sum_{m,r,s} w[c*M+m,0,r,s] dy[n, c*M+m, p, q]  over (p, q) with
//                          p*sh - pt + r*dh == h and q*sw - pl + s*dw == w
//   wgrad    dw[k,0,r,s] = sum_{n,p,q} dy[n,k,p,q] x[n, k/M, p*sh - pt + r*dh, q*sw - pl + s*dw]
//   bias     conv2d_backward_bias (conv2d.cuh): a per-filter sum of dy, the same for any groups.
//
// Versions
//   0  direct: one thread per output / input-gradient / weight element (the reference).
//   1  forward: one block per (n, k, output tile TQ wide and TY*RPT tall, RPT = 4); the input
//      tile with its halo is staged in shared memory once (coalesced along W, zeros for padding),
//      each thread keeps RPT vertically adjacent outputs in registers and, for 3x3, the 9 weights in registers
//      (a template for R = S = 3; other sizes read the weights from shared memory). TQ = 8/16/32
//      follows Q so that 7x7 and 14x14 planes do not run mostly idle 32-wide tiles.
//      dgrad: the same tiling on dx with the filter taps flipped: each thread gathers its RPT input
//      gradients from a shared dy tile per output channel m of the group (a stride-1 instance
//      without the divisibility tests and divisions that strided dgrad needs).
//      wgrad: one block per filter k, warps over output rows and lanes over columns of each image
//      in a fixed order, keeping the R*S partial sums in registers (3x3) or one tap at a time
//      (other sizes), then a fixed-tree block reduction per tap: deterministic, no atomics.
// Geometry travels in ConvShape (conv2d.cuh) with K = C * M and the weight's channel dim 1.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "kernels/conv2d.cuh"
#include "simt.h"

namespace cucnn {

constexpr int kDwThreads = 128;  // threads per forward/dgrad block (TQ x TY)
constexpr int kDwRows = 4;       // RPT: outputs per thread, vertically adjacent
constexpr int kDwWgradBlock = 256;
constexpr int kDwMaxShared = 48 * 1024;  // beyond it (huge dilation/stride) version 0 runs

// ---- version 0: direct ----------------------------------------------------------------------------

// y is (N, K, P, Q), x (N, C, H, W), w (K, 1, R, S), bias (K,) or null; one thread per output
__global__ void depthwise_conv2d_forward_naive_kernel(float* __restrict__ y,
                                                      const float* __restrict__ x,
                                                      const float* __restrict__ w,
                                                      const float* __restrict__ bias, ConvShape s) {
  const int64_t total = static_cast<int64_t>(s.N) * s.K * s.P * s.Q;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int q = static_cast<int>(i % s.Q), p = static_cast<int>(i / s.Q % s.P);
  const int64_t nk = i / (static_cast<int64_t>(s.P) * s.Q);
  const int k = static_cast<int>(nk % s.K);
  const int64_t n = nk / s.K;
  const int c = k / (s.K / s.C);
  const float* xp = x + (n * s.C + c) * s.H * s.W;
  float acc = bias ? bias[k] : 0.0f;
  for (int r = 0; r < s.R; ++r)
    for (int t = 0; t < s.S; ++t) {
      const int ih = p * s.sh - s.pt + r * s.dh, iw = q * s.sw - s.pl + t * s.dw;
      if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
      acc += w[(static_cast<int64_t>(k) * s.R + r) * s.S + t] * xp[static_cast<int64_t>(ih) * s.W + iw];
    }
  y[i] = acc;
}

// dx is (N, C, H, W), dy (N, K, P, Q); one thread per input element
__global__ void depthwise_conv2d_dgrad_naive_kernel(float* __restrict__ dx,
                                                    const float* __restrict__ dy,
                                                    const float* __restrict__ w, ConvShape s) {
  const int64_t total = static_cast<int64_t>(s.N) * s.C * s.H * s.W;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int iw = static_cast<int>(i % s.W), ih = static_cast<int>(i / s.W % s.H);
  const int64_t nc = i / (static_cast<int64_t>(s.H) * s.W);
  const int c = static_cast<int>(nc % s.C);
  const int64_t n = nc / s.C;
  const int M = s.K / s.C;
  float acc = 0.0f;
  for (int m = 0; m < M; ++m) {
    const int k = c * M + m;
    const float* dyp = dy + (n * s.K + k) * s.P * s.Q;
    for (int r = 0; r < s.R; ++r)
      for (int t = 0; t < s.S; ++t) {
        const int hp = ih + s.pt - r * s.dh, wq = iw + s.pl - t * s.dw;
        if (hp < 0 || wq < 0 || hp % s.sh || wq % s.sw) continue;
        const int p = hp / s.sh, q = wq / s.sw;
        if (p >= s.P || q >= s.Q) continue;
        acc += w[(static_cast<int64_t>(k) * s.R + r) * s.S + t] *
               dyp[static_cast<int64_t>(p) * s.Q + q];
      }
  }
  dx[i] = acc;
}

// dw is (K, 1, R, S); one thread per weight element, a serial sum over (n, p, q)
__global__ void depthwise_conv2d_wgrad_naive_kernel(float* __restrict__ dw,
                                                    const float* __restrict__ dy,
                                                    const float* __restrict__ x, ConvShape s) {
  const int64_t total = static_cast<int64_t>(s.K) * s.R * s.S;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= total) return;
  const int t = static_cast<int>(i % s.S), r = static_cast<int>(i / s.S % s.R);
  const int k = static_cast<int>(i / (static_cast<int64_t>(s.R) * s.S));
  const int c = k / (s.K / s.C);
  float acc = 0.0f;
  for (int64_t n = 0; n < s.N; ++n)
    for (int p = 0; p < s.P; ++p)
      for (int q = 0; q < s.Q; ++q) {
        const int ih = p * s.sh - s.pt + r * s.dh, iw = q * s.sw - s.pl + t * s.dw;
        if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
        acc += dy[((n * s.K + k) * s.P + p) * s.Q + q] *
               x[((n * s.C + c) * s.H + ih) * s.W + iw];
      }
  dw[i] = acc;
}

// ---- version 1: shared-memory tiles ---------------------------------------------------------------

// Input rows/columns a tile of `out` outputs needs along one axis.
__host__ __device__ __forceinline__ int dw_span(int out, int stride, int taps, int dilation) {
  return (out - 1) * stride + (taps - 1) * dilation + 1;
}

// y is (N, K, P, Q). Grid: x = (n * K + k) * tiles_q + tile column, y = tile row. Block (TQ, TY).
// Dynamic shared memory: the input tile, span_h x span_w floats, then R*S weights (generic R, S).
// KR = KS = 0: R and S at run time.
template <int TQ, int KR, int KS>
__global__ void __launch_bounds__(kDwThreads)
    depthwise_conv2d_forward_kernel(float* __restrict__ y, const float* __restrict__ x,
                                    const float* __restrict__ w, const float* __restrict__ bias,
                                    ConvShape s, int tiles_q) {
  SIMT_DYNAMIC_SHARED(float, smem);
  const int R = KR ? KR : s.R, S = KS ? KS : s.S;
  const int TY = static_cast<int>(blockDim.y);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t plane = blockIdx.x / tiles_q;  // n * K + k
  const int q0 = static_cast<int>(blockIdx.x - plane * tiles_q) * TQ;
  const int p0 = static_cast<int>(blockIdx.y) * TY * kDwRows;
  const int k = static_cast<int>(plane % s.K);
  const int64_t n = plane / s.K;
  const int c = k / (s.K / s.C);
  const int span_h = dw_span(TY * kDwRows, s.sh, R, s.dh), span_w = dw_span(TQ, s.sw, S, s.dw);
  const int h0 = p0 * s.sh - s.pt, w0 = q0 * s.sw - s.pl;
  const float* xp = x + (n * s.C + c) * static_cast<int64_t>(s.H) * s.W;
  float* ws = smem + span_h * span_w;
  // Stage the tile: consecutive threads read consecutive columns (coalesced); padding is zero.
  // Rows by threadIdx.y, columns by threadIdx.x: no division per element.
  for (int rr = ty; rr < span_h; rr += TY) {
    const int h = h0 + rr;
    const bool row_in = h >= 0 && h < s.H;
    const float* xrow = xp + static_cast<int64_t>(h) * s.W;
    for (int cc = tx; cc < span_w; cc += TQ) {
      const int ww = w0 + cc;
      smem[rr * span_w + cc] = row_in && ww >= 0 && ww < s.W ? xrow[ww] : 0.0f;
    }
  }
  const float* wk = w + static_cast<int64_t>(k) * R * S;
  if (!KR)
    for (int i = ty * TQ + tx; i < R * S; i += TY * TQ) ws[i] = wk[i];
  __syncthreads();  // tile and weights complete
  float acc[kDwRows];
  const float b = bias ? bias[k] : 0.0f;
#pragma unroll
  for (int j = 0; j < kDwRows; ++j) acc[j] = b;
  const float* row0 = smem + ty * kDwRows * s.sh * span_w + tx * s.sw;
  if (KR) {
    float wr[KR ? KR * KS : 1];  // the filter in registers: the same for every output of the block
#pragma unroll
    for (int i = 0; i < KR * KS; ++i) wr[i] = __ldg(wk + i);
#pragma unroll
    for (int r = 0; r < KR; ++r)
#pragma unroll
      for (int t = 0; t < KS; ++t)
#pragma unroll
        for (int j = 0; j < kDwRows; ++j)
          acc[j] += wr[r * KS + t] * row0[(j * s.sh + r * s.dh) * span_w + t * s.dw];
  } else {
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < S; ++t) {
        const float wv = ws[r * S + t];
#pragma unroll
        for (int j = 0; j < kDwRows; ++j)
          acc[j] += wv * row0[(j * s.sh + r * s.dh) * span_w + t * s.dw];
      }
  }
  const int q = q0 + tx;
  float* yp = y + plane * static_cast<int64_t>(s.P) * s.Q;
#pragma unroll
  for (int j = 0; j < kDwRows; ++j) {
    const int p = p0 + ty * kDwRows + j;
    if (p < s.P && q < s.Q) yp[static_cast<int64_t>(p) * s.Q + q] = acc[j];
  }
}

// dx is (N, C, H, W). Grid: x = (n * C + c) * tiles_w + tile column, y = tile row; block (TQ, TY),
// each thread RPT vertically adjacent dx elements. Per output channel m of the group, the dy rows
// and columns the tile's taps can reach are staged in shared memory (zeros outside dy); a tap
// contributes where (h + pt - r*dh) is a multiple of the stride. Dynamic shared memory: the dy
// tile, dspan_h x dspan_w floats.
template <int TQ, bool S1>
__global__ void __launch_bounds__(kDwThreads)
    depthwise_conv2d_dgrad_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                  const float* __restrict__ w, ConvShape s, int tiles_w) {
  SIMT_DYNAMIC_SHARED(float, smem);
  const int TY = static_cast<int>(blockDim.y);
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int64_t plane = blockIdx.x / tiles_w;  // n * C + c
  const int wc0 = static_cast<int>(blockIdx.x - plane * tiles_w) * TQ;
  const int hr0 = static_cast<int>(blockIdx.y) * TY * kDwRows;
  const int c = static_cast<int>(plane % s.C);
  const int64_t n = plane / s.C;
  const int M = s.K / s.C;
  // dy rows reachable from dx rows [hr0, hr0 + TY*RPT): p in [ceil((hr0 + pt - (R-1)dh)/sh),
  // floor((hr0 + TY*RPT - 1 + pt)/sh)]; floor division of possibly negative numbers done on
  // offsets kept non-negative by adding a multiple of the stride.
  const int lo_h = hr0 + s.pt - (s.R - 1) * s.dh, lo_w = wc0 + s.pl - (s.S - 1) * s.dw;
  const int p_lo = lo_h >= 0 ? (lo_h + s.sh - 1) / s.sh : -((-lo_h) / s.sh);
  const int q_lo = lo_w >= 0 ? (lo_w + s.sw - 1) / s.sw : -((-lo_w) / s.sw);
  const int p_hi = (hr0 + TY * kDwRows - 1 + s.pt) / s.sh;
  const int q_hi = (wc0 + TQ - 1 + s.pl) / s.sw;
  const int dspan_h = p_hi - p_lo + 1, dspan_w = q_hi - q_lo + 1;
  float acc[kDwRows];
#pragma unroll
  for (int j = 0; j < kDwRows; ++j) acc[j] = 0.0f;
  const int iw = wc0 + tx;
  for (int m = 0; m < M; ++m) {
    const int k = c * M + m;
    const float* dyp = dy + (n * s.K + k) * static_cast<int64_t>(s.P) * s.Q;
    if (m) __syncthreads();  // everyone is done with the previous channel's tile
    for (int rr = ty; rr < dspan_h; rr += TY) {
      const int p = p_lo + rr;
      const bool row_in = p >= 0 && p < s.P;
      const float* dyrow = dyp + static_cast<int64_t>(p) * s.Q;
      for (int cc = tx; cc < dspan_w; cc += TQ) {
        const int q = q_lo + cc;
        smem[rr * dspan_w + cc] = row_in && q >= 0 && q < s.Q ? dyrow[q] : 0.0f;
      }
    }
    __syncthreads();  // tile complete
    const float* wk = w + static_cast<int64_t>(k) * s.R * s.S;
    for (int r = 0; r < s.R; ++r) {
      // The tile row each of the thread's RPT rows reads through tap row r, or -1 where
      // h + pt - r*dh is negative or not a multiple of the stride. Rows and columns the bounds
      // p_lo..p_hi, q_lo..q_hi admit are inside the tile by construction.
      int roff[kDwRows];
#pragma unroll
      for (int j = 0; j < kDwRows; ++j) {
        const int hp = hr0 + ty * kDwRows + j + s.pt - r * s.dh;
        roff[j] = hp < 0 || (!S1 && hp % s.sh) ? -1 : ((S1 ? hp : hp / s.sh) - p_lo) * dspan_w;
      }
      for (int t = 0; t < s.S; ++t) {
        const int wq = iw + s.pl - t * s.dw;  // q * sw for the tap, if divisible
        if (wq < 0 || (!S1 && wq % s.sw)) continue;
        const int cc = (S1 ? wq : wq / s.sw) - q_lo;
        const float wv = __ldg(wk + r * s.S + t);
#pragma unroll
        for (int j = 0; j < kDwRows; ++j)
          if (roff[j] >= 0) acc[j] += wv * smem[roff[j] + cc];
      }
    }
  }
  float* dxp = dx + plane * static_cast<int64_t>(s.H) * s.W;
#pragma unroll
  for (int j = 0; j < kDwRows; ++j) {
    const int ih = hr0 + ty * kDwRows + j;
    if (ih < s.H && iw < s.W) dxp[static_cast<int64_t>(ih) * s.W + iw] = acc[j];
  }
}

// dw is (K, 1, R, S); one block per filter k. Warp w of the block takes output rows p = w, w + 8,
// ..., lane l columns q = l, l + 32, ... of every image n in turn (no division per element; row
// bounds checked once per row, column bounds once per column), holding the R*S partial sums in
// registers (KR x KS known) or one tap per pass; then one fixed-tree block reduction per tap. The
// order of every addition is fixed: deterministic, no atomics. Dynamic shared memory: 33 floats.
template <int KR, int KS>
__global__ void __launch_bounds__(kDwWgradBlock)
    depthwise_conv2d_wgrad_kernel(float* __restrict__ dw, const float* __restrict__ dy,
                                  const float* __restrict__ x, ConvShape s) {
  SIMT_DYNAMIC_SHARED(float, smem);
  const int k = static_cast<int>(blockIdx.x);
  const int c = k / (s.K / s.C);
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int warps = static_cast<int>(blockDim.x / 32);
  const int64_t pq = static_cast<int64_t>(s.P) * s.Q, hw = static_cast<int64_t>(s.H) * s.W;
  constexpr int kTaps = KR ? KR * KS : 1;
  const int taps = KR ? kTaps : s.R * s.S;
  for (int tap0 = 0; tap0 < taps; tap0 += kTaps) {
    float acc[kTaps];
#pragma unroll
    for (int i = 0; i < kTaps; ++i) acc[i] = 0.0f;
    for (int64_t n = 0; n < s.N; ++n) {
      const float* dyp = dy + (n * s.K + k) * pq;
      const float* xp = x + (n * s.C + c) * hw;
      for (int p = warp; p < s.P; p += warps) {
        for (int q = lane; q < s.Q; q += 32) {
          const float g = dyp[static_cast<int64_t>(p) * s.Q + q];
#pragma unroll
          for (int u = 0; u < kTaps; ++u) {
            const int tap = tap0 + u;
            const int r = KR ? u / KS : tap / s.S, t = KR ? u % KS : tap % s.S;
            const int ih = p * s.sh - s.pt + r * s.dh, iw = q * s.sw - s.pl + t * s.dw;
            if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
              acc[u] += g * xp[static_cast<int64_t>(ih) * s.W + iw];
          }
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kTaps; ++u) {
      const float v = block_reduce(acc[u], smem, SumOp{});
      if (threadIdx.x == 0) dw[static_cast<int64_t>(k) * s.R * s.S + tap0 + u] = v;
    }
  }
}

// ---- launchers ------------------------------------------------------------------------------------

// Tile width for Q (or W) outputs, and the block height for P (or H) rows: 128 threads at most,
// fewer on small planes.
inline int dw_tile_q(int q) { return q <= 8 ? 8 : q <= 16 ? 16 : 32; }
inline int dw_block_rows(int tq, int rows) {
  const int need = static_cast<int>(simt::ceil_div<int64_t>(rows, kDwRows));
  const int most = kDwThreads / tq;
  return need < most ? (need > 0 ? need : 1) : most;
}

inline size_t dw_forward_smem(const ConvShape& s, int tq, int ty) {
  return sizeof(float) * (static_cast<size_t>(dw_span(ty * kDwRows, s.sh, s.R, s.dh)) *
                              dw_span(tq, s.sw, s.S, s.dw) + s.R * s.S);
}
inline size_t dw_dgrad_smem(const ConvShape& s, int tq, int ty) {
  const int64_t h = ((ty * kDwRows - 1) + (s.R - 1) * s.dh) / s.sh + 2;
  const int64_t w = ((tq - 1) + (s.S - 1) * s.dw) / s.sw + 2;
  return sizeof(float) * static_cast<size_t>(h * w);
}

// y = depthwise conv(x, w) + bias. version 0 direct, 1 tiled.
inline void depthwise_conv2d_forward(float* y, const float* x, const float* w, const float* bias,
                                     const ConvShape& s, int version, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(s.N) * s.K * s.P * s.Q;
  if (total == 0) return;
  const int tq = dw_tile_q(s.Q), ty = dw_block_rows(tq, s.P);
  const size_t smem = dw_forward_smem(s, tq, ty);
  if (version == 0 || smem > kDwMaxShared) {
    simt::launch(depthwise_conv2d_forward_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(total, 256))), dim3(256), 0,
                 stream, y, x, w, bias, s);
    return;
  }
  const int tiles_q = static_cast<int>(simt::ceil_div<int64_t>(s.Q, tq));
  const dim3 grid(static_cast<unsigned>(static_cast<int64_t>(s.N) * s.K * tiles_q),
                  static_cast<unsigned>(simt::ceil_div<int64_t>(s.P, ty * kDwRows)));
  const dim3 block(static_cast<unsigned>(tq), static_cast<unsigned>(ty));
  const bool k3 = s.R == 3 && s.S == 3;
#define CUCNN_DW_FWD(TQ)                                                                          \
  (k3 ? simt::launch(depthwise_conv2d_forward_kernel<TQ, 3, 3>, grid, block, smem, stream, y, x,  \
                     w, bias, s, tiles_q)                                                         \
      : simt::launch(depthwise_conv2d_forward_kernel<TQ, 0, 0>, grid, block, smem, stream, y, x,  \
                     w, bias, s, tiles_q))
  if (tq == 8) CUCNN_DW_FWD(8);
  else if (tq == 16) CUCNN_DW_FWD(16);
  else CUCNN_DW_FWD(32);
#undef CUCNN_DW_FWD
}

// dx of the depthwise convolution.
inline void depthwise_conv2d_backward_data(float* dx, const float* dy, const float* w,
                                           const ConvShape& s, int version, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(s.N) * s.C * s.H * s.W;
  if (total == 0) return;
  const int tq = dw_tile_q(s.W), ty = dw_block_rows(tq, s.H);
  const size_t smem = dw_dgrad_smem(s, tq, ty);
  if (version == 0 || smem > kDwMaxShared) {
    simt::launch(depthwise_conv2d_dgrad_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(total, 256))), dim3(256), 0,
                 stream, dx, dy, w, s);
    return;
  }
  const int tiles_w = static_cast<int>(simt::ceil_div<int64_t>(s.W, tq));
  const dim3 grid(static_cast<unsigned>(static_cast<int64_t>(s.N) * s.C * tiles_w),
                  static_cast<unsigned>(simt::ceil_div<int64_t>(s.H, ty * kDwRows)));
  const dim3 block(static_cast<unsigned>(tq), static_cast<unsigned>(ty));
  const bool s1 = s.sh == 1 && s.sw == 1;  // no divisibility tests, no divisions
#define CUCNN_DW_DGRAD(TQ)                                                                        \
  (s1 ? simt::launch(depthwise_conv2d_dgrad_kernel<TQ, true>, grid, block, smem, stream, dx, dy,  \
                     w, s, tiles_w)                                                               \
      : simt::launch(depthwise_conv2d_dgrad_kernel<TQ, false>, grid, block, smem, stream, dx, dy, \
                     w, s, tiles_w))
  if (tq == 8) CUCNN_DW_DGRAD(8);
  else if (tq == 16) CUCNN_DW_DGRAD(16);
  else CUCNN_DW_DGRAD(32);
#undef CUCNN_DW_DGRAD
}

// dw of the depthwise convolution (deterministic: fixed-order block reductions, no atomics).
inline void depthwise_conv2d_backward_weight(float* dw, const float* dy, const float* x,
                                             const ConvShape& s, int version,
                                             cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(s.K) * s.R * s.S;
  if (total == 0) return;
  if (version == 0) {
    simt::launch(depthwise_conv2d_wgrad_naive_kernel,
                 dim3(static_cast<unsigned>(simt::ceil_div<int64_t>(total, 256))), dim3(256), 0,
                 stream, dw, dy, x, s);
    return;
  }
  if (s.R == 3 && s.S == 3)
    simt::launch(depthwise_conv2d_wgrad_kernel<3, 3>, dim3(static_cast<unsigned>(s.K)),
                 dim3(kDwWgradBlock), 33 * sizeof(float), stream, dw, dy, x, s);
  else
    simt::launch(depthwise_conv2d_wgrad_kernel<0, 0>, dim3(static_cast<unsigned>(s.K)),
                 dim3(kDwWgradBlock), 33 * sizeof(float), stream, dw, dy, x, s);
}

}  // namespace cucnn
