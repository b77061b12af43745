// batchnorm.cuh — 2-D batch normalisation over NCHW: statistics per channel c over N*H*W, forward
// and backward, training (batch statistics) and eval (running statistics) mode.
//
//   forward   y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c],   invstd = 1 / sqrt(var + eps)
//             training: mean, var = the batch's mean and biased variance; running_mean/var move
//             toward the batch's mean and *unbiased* variance by `factor` (PyTorch's momentum, or
//             1/num_batches_tracked for its cumulative average); eval: mean, var = running ones
//   backward  dgamma = sum(dy * xhat), dbeta = sum(dy), xhat = (x - mean) * invstd
//             training: dx = gamma * invstd * (dy - dbeta/n - xhat * dgamma/n)   (n = N*H*W)
//             eval:     dx = gamma * invstd * dy
//
// Channel c is N runs of H*W contiguous floats, a stride of C*H*W apart. A reduction over it is
// split into `splits` contiguous chunks of the flattened (n, hw) range (grid splits x C), each
// block reducing its chunk in a fixed tree; a second kernel combines a channel's chunks in index
// order. Many channels fill the GPU with splits = 1; few channels with a big N*H*W get more
// chunks per channel. No atomics: results are bitwise reproducible.
//
// Statistics are Welford's running (count, mean, M2) per thread, merged with Chan et al.'s
// pairwise formula up the tree — no E[x^2] - E[x]^2 cancellation when |mean| >> std. Counts are a
// function of the indices alone, so every merge is in a fixed order with fixed weights.
//
// Versions: 0 is one thread per channel doing a sequential two-pass mean/variance (and sequential
// backward sums) in double; 1 is the split Welford reduction above, all float. The elementwise
// kernels are shared.
#pragma once

#include <cstdint>

#include "kernels/common.cuh"
#include "simt.h"

namespace cucnn {

struct BNShape {
  int N, C, HW;   // x is (N, C, HW)
  int splits;     // chunks per channel of the flattened (n, hw) range
  int64_t chunk;  // elements per chunk (the last may be shorter)
};

// Welford's state of a run of values.
struct Welford {
  float mean, m2;
  int count;
};

// Chan et al.: merge two disjoint runs. Not symmetric in its rounding, so callers fix the order.
__device__ __forceinline__ Welford welford_merge(Welford a, Welford b) {
  if (b.count == 0) return a;
  if (a.count == 0) return b;
  const int n = a.count + b.count;
  const float fb = static_cast<float>(b.count) / static_cast<float>(n);
  const float delta = b.mean - a.mean;
  Welford r;
  r.mean = a.mean + delta * fb;
  r.m2 = a.m2 + b.m2 + delta * delta * static_cast<float>(a.count) * fb;
  r.count = n;
  return r;
}

// Lane 0 gets the merge of the warp's 32 states, always as (lower lanes, higher lanes).
__device__ __forceinline__ Welford warp_welford(Welford w) {
  for (int offset = 16; offset > 0; offset /= 2) {
    Welford o;
    o.mean = __shfl_down_sync(kFullMask, w.mean, offset);
    o.m2 = __shfl_down_sync(kFullMask, w.m2, offset);
    o.count = __shfl_down_sync(kFullMask, w.count, offset);
    w = welford_merge(w, o);  // lanes >= 32 - offset merge garbage they never pass on
  }
  return w;
}

// The flattened index k of channel c's range (n = k / HW, hw = k % HW, memory offset
// (n*C + c)*HW + hw) walked by a block's threads with a constant stride: one division at the
// start, then adds. The step is blockDim = dn * HW + dhw; in memory that is dn planes of C*HW
// plus dhw, and crossing the end of a plane skips the other C - 1 channels' planes.
struct ChannelWalk {
  int64_t off, step, wrap;
  int hw, dhw;
  __device__ __forceinline__ ChannelWalk(int64_t k, int c, const BNShape& s, int stride_) {
    const int64_t n = k / s.HW;
    hw = static_cast<int>(k - n * s.HW);
    off = (n * s.C + c) * s.HW + hw;
    const int dn = stride_ / s.HW;
    dhw = stride_ - dn * s.HW;
    step = static_cast<int64_t>(dn) * s.C * s.HW + dhw;
    wrap = static_cast<int64_t>(s.C - 1) * s.HW;
  }
  __device__ __forceinline__ void advance(int HW) {
    hw += dhw;
    off += step;
    if (hw >= HW) {
      hw -= HW;
      off += wrap;
    }
  }
};

// partial[c, split] = Welford (mean, m2) of the split's chunk; x is (N, C, HW).
// Block size 256 (kBNBlock); static shared for the 8 warp states.
__global__ void batchnorm_stats_partial_kernel(float* __restrict__ partial,
                                               const float* __restrict__ x, BNShape s) {
  const int c = static_cast<int>(blockIdx.y), split = static_cast<int>(blockIdx.x);
  const int64_t total = static_cast<int64_t>(s.N) * s.HW;
  const int64_t lo = split * s.chunk, hi = lo + s.chunk < total ? lo + s.chunk : total;
  Welford w{0.0f, 0.0f, 0};
  int64_t k = lo + threadIdx.x;
  if (k < hi) {
    ChannelWalk it(k, c, s, static_cast<int>(blockDim.x));
    for (; k < hi; k += blockDim.x) {
      // consecutive threads read consecutive hw of one plane: coalesced within each run
      const float v = x[it.off];
      ++w.count;
      const float delta = v - w.mean;
      // the fast reciprocal-multiply (2 ulp) instead of IEEE division's slow path: the update
      // is a correction of size delta/count, so its rounding stays below the mean's own
      w.mean += __fdividef(delta, static_cast<float>(w.count));
      w.m2 += delta * (v - w.mean);
      it.advance(s.HW);
    }
  }
  __shared__ Welford warps[32];
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  w = warp_welford(w);
  if (lane == 0) warps[warp] = w;
  __syncthreads();  // every warp's state is written
  if (warp == 0) {
    const int nwarps = static_cast<int>(blockDim.x / 32);
    w = lane < nwarps ? warps[lane] : Welford{0.0f, 0.0f, 0};
    w = warp_welford(w);
    if (lane == 0) {
      float* p = partial + (static_cast<int64_t>(c) * s.splits + split) * 2;
      p[0] = w.mean;
      p[1] = w.m2;
    }
  }
}

// One warp per channel: merge the channel's splits in index order (lane j takes splits j, j+32,
// ... sequentially, then a shfl_down tree), then write mean and invstd and update running stats.
// running_mean/var may be null (track_running_stats=False).
__global__ void batchnorm_stats_finalize_kernel(float* __restrict__ mean,
                                                float* __restrict__ invstd,
                                                float* __restrict__ running_mean,
                                                float* __restrict__ running_var,
                                                const float* __restrict__ partial, BNShape s,
                                                float eps, float factor) {
  const int c = static_cast<int>(blockIdx.x), lane = static_cast<int>(threadIdx.x);
  const int64_t total = static_cast<int64_t>(s.N) * s.HW;
  Welford w{0.0f, 0.0f, 0};
  for (int j = lane; j < s.splits; j += 32) {
    const int64_t lo = j * s.chunk;
    const int64_t len = (lo + s.chunk < total ? lo + s.chunk : total) - lo;
    const float* p = partial + (static_cast<int64_t>(c) * s.splits + j) * 2;
    w = welford_merge(w, Welford{p[0], p[1], static_cast<int>(len)});
  }
  w = warp_welford(w);
  if (lane == 0) {
    const float n = static_cast<float>(total);
    const float var = w.m2 / n;  // biased: what normalisation uses
    mean[c] = w.mean;
    invstd[c] = 1.0f / sqrtf(var + eps);
    if (running_mean != nullptr) {
      const float unbiased = w.m2 / (n - 1.0f);
      running_mean[c] = (1.0f - factor) * running_mean[c] + factor * w.mean;
      running_var[c] = (1.0f - factor) * running_var[c] + factor * unbiased;
    }
  }
}

// Version 0: one thread per channel, a plain two-pass over the channel's N*H*W values with double
// accumulators (a float sum of 10^4 values near 1000 loses the mean; v1's Welford does not).
__global__ void batchnorm_stats_naive_kernel(float* __restrict__ mean, float* __restrict__ invstd,
                                             float* __restrict__ running_mean,
                                             float* __restrict__ running_var,
                                             const float* __restrict__ x, BNShape s, float eps,
                                             float factor) {
  const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= s.C) return;
  double sum = 0.0;
  for (int n = 0; n < s.N; ++n)
    for (int i = 0; i < s.HW; ++i) sum += x[(static_cast<int64_t>(n) * s.C + c) * s.HW + i];
  const double count = static_cast<double>(static_cast<int64_t>(s.N) * s.HW);
  const double m = sum / count;
  double ss = 0.0;
  for (int n = 0; n < s.N; ++n)
    for (int i = 0; i < s.HW; ++i) {
      const double d = x[(static_cast<int64_t>(n) * s.C + c) * s.HW + i] - m;
      ss += d * d;
    }
  mean[c] = static_cast<float>(m);
  invstd[c] = static_cast<float>(1.0 / sqrt(ss / count + eps));
  if (running_mean != nullptr) {
    running_mean[c] = (1.0f - factor) * running_mean[c] + factor * static_cast<float>(m);
    running_var[c] = (1.0f - factor) * running_var[c] +
                     factor * static_cast<float>(ss / (count - 1.0));
  }
}

// Eval mode: invstd from the running variance (mean is the running mean itself).
__global__ void batchnorm_invstd_kernel(float* __restrict__ invstd, const float* __restrict__ var,
                                        int C, float eps) {
  const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (c < C) invstd[c] = 1.0f / sqrtf(var[c] + eps);
}

// y = (x - mean) * (invstd * gamma) + beta over (N, C, HW); gamma/beta null when not affine.
// A block walks whole planes (n, c) so the channel is known without a division per element;
// threads stride over the plane's H*W (coalesced).
__global__ void batchnorm_apply_kernel(float* __restrict__ y, const float* __restrict__ x,
                                       const float* __restrict__ mean,
                                       const float* __restrict__ invstd,
                                       const float* __restrict__ gamma,
                                       const float* __restrict__ beta, BNShape s) {
  const int64_t planes = static_cast<int64_t>(s.N) * s.C;
  for (int64_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
    const int c = static_cast<int>(pl % s.C);
    const float m = mean[c];
    const float a = gamma != nullptr ? invstd[c] * gamma[c] : invstd[c];
    const float b = beta != nullptr ? beta[c] : 0.0f;
    const float* xp = x + pl * s.HW;
    float* yp = y + pl * s.HW;
    for (int i = static_cast<int>(threadIdx.x); i < s.HW; i += blockDim.x)
      yp[i] = (xp[i] - m) * a + b;
  }
}

// partial[c, split] = (sum dy, sum dy * xhat) over the split's chunk.
__global__ void batchnorm_backward_partial_kernel(float* __restrict__ partial,
                                                  const float* __restrict__ dy,
                                                  const float* __restrict__ x,
                                                  const float* __restrict__ mean,
                                                  const float* __restrict__ invstd, BNShape s) {
  const int c = static_cast<int>(blockIdx.y), split = static_cast<int>(blockIdx.x);
  const int64_t total = static_cast<int64_t>(s.N) * s.HW;
  const int64_t lo = split * s.chunk, hi = lo + s.chunk < total ? lo + s.chunk : total;
  const float m = mean[c], is = invstd[c];
  float sdy = 0.0f, sdyx = 0.0f;
  int64_t k = lo + threadIdx.x;
  if (k < hi) {
    ChannelWalk it(k, c, s, static_cast<int>(blockDim.x));
    for (; k < hi; k += blockDim.x) {
      const float g = dy[it.off];
      sdy += g;
      sdyx += g * ((x[it.off] - m) * is);
      it.advance(s.HW);
    }
  }
  __shared__ float smem[33];
  sdy = block_reduce(sdy, smem, SumOp());
  sdyx = block_reduce(sdyx, smem, SumOp());
  if (threadIdx.x == 0) {
    float* p = partial + (static_cast<int64_t>(c) * s.splits + split) * 2;
    p[0] = sdy;
    p[1] = sdyx;
  }
}

// One warp per channel: dbeta[c] = sum dy, dgamma[c] = sum dy*xhat from the splits in a fixed
// order (lane-strided, then xor butterflies: + is commutative, so every lane agrees).
__global__ void batchnorm_backward_finalize_kernel(float* __restrict__ dgamma,
                                                   float* __restrict__ dbeta,
                                                   const float* __restrict__ partial, BNShape s) {
  const int c = static_cast<int>(blockIdx.x), lane = static_cast<int>(threadIdx.x);
  float a = 0.0f, b = 0.0f;
  for (int j = lane; j < s.splits; j += 32) {
    const float* p = partial + (static_cast<int64_t>(c) * s.splits + j) * 2;
    a += p[0];
    b += p[1];
  }
  a = warp_reduce(a, SumOp());
  b = warp_reduce(b, SumOp());
  if (lane == 0) {
    dbeta[c] = a;
    dgamma[c] = b;
  }
}

// Version 0: one thread per channel, sequential sums (double accumulators).
__global__ void batchnorm_backward_naive_kernel(float* __restrict__ dgamma,
                                                float* __restrict__ dbeta,
                                                const float* __restrict__ dy,
                                                const float* __restrict__ x,
                                                const float* __restrict__ mean,
                                                const float* __restrict__ invstd, BNShape s) {
  const int c = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (c >= s.C) return;
  double a = 0.0, b = 0.0;
  for (int n = 0; n < s.N; ++n)
    for (int i = 0; i < s.HW; ++i) {
      const int64_t o = (static_cast<int64_t>(n) * s.C + c) * s.HW + i;
      a += dy[o];
      b += dy[o] * ((x[o] - mean[c]) * invstd[c]);
    }
  dbeta[c] = static_cast<float>(a);
  dgamma[c] = static_cast<float>(b);
}

// dx over (N, C, HW), planes as in batchnorm_apply_kernel. training: the full formula with the
// channel sums; eval: the statistics are constants, dx = gamma * invstd * dy.
__global__ void batchnorm_backward_apply_kernel(float* __restrict__ dx,
                                                const float* __restrict__ dy,
                                                const float* __restrict__ x,
                                                const float* __restrict__ mean,
                                                const float* __restrict__ invstd,
                                                const float* __restrict__ gamma,
                                                const float* __restrict__ dgamma,
                                                const float* __restrict__ dbeta, BNShape s,
                                                int training) {
  const int64_t planes = static_cast<int64_t>(s.N) * s.C;
  const float inv_n = 1.0f / static_cast<float>(static_cast<int64_t>(s.N) * s.HW);
  for (int64_t pl = blockIdx.x; pl < planes; pl += gridDim.x) {
    const int c = static_cast<int>(pl % s.C);
    const float is = invstd[c];
    const float a = gamma != nullptr ? gamma[c] * is : is;
    const float* gp = dy + pl * s.HW;
    float* dp = dx + pl * s.HW;
    if (training) {
      const float m = mean[c], mdy = dbeta[c] * inv_n, mdyx = dgamma[c] * inv_n;
      const float* xp = x + pl * s.HW;
      for (int i = static_cast<int>(threadIdx.x); i < s.HW; i += blockDim.x)
        dp[i] = a * (gp[i] - mdy - ((xp[i] - m) * is) * mdyx);
    } else {
      for (int i = static_cast<int>(threadIdx.x); i < s.HW; i += blockDim.x) dp[i] = a * gp[i];
    }
  }
}

// ---- launchers ------------------------------------------------------------------------------------

constexpr int kBNBlock = 256;
constexpr int64_t kBNMinChunk = 4096;  // elements a block reduces at least (16 per thread)
constexpr int kBNTargetBlocks = 4 * 132;  // a few waves of an H100/H200's SMs

// The shape with its split: enough blocks for the GPU, chunks of at least kBNMinChunk.
inline BNShape batchnorm_shape(int N, int C, int HW) {
  BNShape s{N, C, HW, 1, 0};
  const int64_t total = static_cast<int64_t>(N) * HW;
  int64_t splits = C >= kBNTargetBlocks ? 1 : (kBNTargetBlocks + C - 1) / C;
  const int64_t by_size = (total + kBNMinChunk - 1) / kBNMinChunk;
  if (splits > by_size) splits = by_size;
  if (splits < 1) splits = 1;
  s.splits = static_cast<int>(splits);
  s.chunk = (total + splits - 1) / splits;
  return s;
}

// Floats of workspace the training forward and the backward need: (C, splits, 2).
inline int64_t batchnorm_workspace(const BNShape& s) {
  return static_cast<int64_t>(s.C) * s.splits * 2;
}

inline dim3 bn_plane_grid(const BNShape& s) {
  const int64_t planes = static_cast<int64_t>(s.N) * s.C;
  return dim3(static_cast<unsigned>(planes < 65535 ? (planes > 0 ? planes : 1) : 65535));
}

// Training statistics (mean, invstd; running stats updated when non-null), then y.
inline void batchnorm_forward_train(float* y, float* mean, float* invstd, float* running_mean,
                                    float* running_var, float* workspace, const float* x,
                                    const float* gamma, const float* beta, const BNShape& s,
                                    float eps, float factor, int version, cudaStream_t stream) {
  if (version == 0) {
    simt::launch(batchnorm_stats_naive_kernel, dim3(simt::ceil_div(s.C, 64)), dim3(64), 0, stream,
                 mean, invstd, running_mean, running_var, x, s, eps, factor);
  } else {
    simt::launch(batchnorm_stats_partial_kernel, dim3(s.splits, s.C), dim3(kBNBlock), 0, stream,
                 workspace, x, s);
    simt::launch(batchnorm_stats_finalize_kernel, dim3(s.C), dim3(32), 0, stream, mean, invstd,
                 running_mean, running_var, workspace, s, eps, factor);
  }
  if (static_cast<int64_t>(s.N) * s.HW > 0)
    simt::launch(batchnorm_apply_kernel, bn_plane_grid(s), dim3(kBNBlock), 0, stream, y, x, mean,
                 invstd, gamma, beta, s);
}

// Eval: invstd from running_var, then y with the running mean.
inline void batchnorm_forward_eval(float* y, float* invstd, const float* running_mean,
                                   const float* running_var, const float* x, const float* gamma,
                                   const float* beta, const BNShape& s, float eps,
                                   cudaStream_t stream) {
  simt::launch(batchnorm_invstd_kernel, dim3(simt::ceil_div(s.C, kBNBlock)), dim3(kBNBlock), 0,
               stream, invstd, running_var, s.C, eps);
  if (static_cast<int64_t>(s.N) * s.HW > 0)
    simt::launch(batchnorm_apply_kernel, bn_plane_grid(s), dim3(kBNBlock), 0, stream, y, x,
                 running_mean, invstd, gamma, beta, s);
}

// dgamma, dbeta (always: they are also the sums dx needs) and dx.
inline void batchnorm_backward(float* dx, float* dgamma, float* dbeta, float* workspace,
                               const float* dy, const float* x, const float* mean,
                               const float* invstd, const float* gamma, const BNShape& s,
                               bool training, int version, cudaStream_t stream) {
  if (version == 0) {
    simt::launch(batchnorm_backward_naive_kernel, dim3(simt::ceil_div(s.C, 64)), dim3(64), 0,
                 stream, dgamma, dbeta, dy, x, mean, invstd, s);
  } else {
    simt::launch(batchnorm_backward_partial_kernel, dim3(s.splits, s.C), dim3(kBNBlock), 0,
                 stream, workspace, dy, x, mean, invstd, s);
    simt::launch(batchnorm_backward_finalize_kernel, dim3(s.C), dim3(32), 0, stream, dgamma,
                 dbeta, workspace, s);
  }
  if (static_cast<int64_t>(s.N) * s.HW > 0)
    simt::launch(batchnorm_backward_apply_kernel, bn_plane_grid(s), dim3(kBNBlock), 0, stream,
                 dx, dy, x, mean, invstd, gamma, dgamma, dbeta, s, training ? 1 : 0);
}

}  // namespace cucnn
