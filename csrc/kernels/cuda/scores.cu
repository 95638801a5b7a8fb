/*
 * pyramid_scores on CUDA: per-token l2 norms of q_src and k_src, then the
 * span max per level, in one pass over q and k.
 *
 * A block owns kTokens consecutive tokens of one batch row and every head of
 * both sources (the rows it reads are contiguous in the model's [B, N, H, d]
 * layout). Groups of `lanes` threads reduce one row with 16-byte loads; the
 * sum of squares runs in fp64 and is rounded to fp32 once, exactly like the
 * CPU twin, so both rank entries identically (NaN ranks as +inf). The norms
 * go to shared memory, then each level's max over p children is taken there
 * while a level's span fits in the block; coarser levels (spans above
 * kTokens) are reduced by a small per-level kernel from global memory.
 * Writes every element of sq and sk, padding positions (t >= N) as 0.
 */
#include <cmath>

#include "common.cuh"
#include "kernels_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTokens = 64;

struct ScoreLayout {
  int lanes;          // threads per row
  int vec_per_lane;   // 16-byte vectors each of them reads
  int block_levels;   // levels [0, block_levels) are reduced in the block
};

__device__ __forceinline__ float* score_row(const ScoresParams& p, int64_t b, int hh) {
  const int hq = static_cast<int>(p.q_src.heads);
  return hh < hq ? p.sq_ptr + (b * hq + hh) * p.g.P : p.sk_ptr + (b * p.k_src.heads + (hh - hq)) * p.g.P;
}

template <typename T>
__global__ void __launch_bounds__(kThreads) scores_kernel(ScoresParams p, ScoreLayout lay) {
  extern __shared__ float smem[];  // [levels][rows_total heads][kTokens >> (l log2p)]
  constexpr int kVec = Vec<T>::kElems;
  const Geometry& g = p.g;
  const int hq = static_cast<int>(p.q_src.heads);
  const int heads = hq + static_cast<int>(p.k_src.heads);
  const int64_t blocks_per_row = (g.N_pad + kTokens - 1) / kTokens;
  const int group_id = threadIdx.x / lay.lanes;
  const int lane = threadIdx.x % lay.lanes;
  const int groups = kThreads / lay.lanes;

  for (int64_t blk = blockIdx.x; blk < g.B * blocks_per_row; blk += gridDim.x) {
    const int64_t b = blk / blocks_per_row;
    const int64_t t0 = (blk % blocks_per_row) * kTokens;
    const int n_tok = static_cast<int>(g.N_pad - t0 < kTokens ? g.N_pad - t0 : kTokens);

    // Level 0: one row (token, head) per lane group. Every lane runs every
    // iteration (the shuffles need the whole warp); rows past the end idle.
    for (int r0 = 0; r0 < n_tok * heads; r0 += groups) {
      const int r = r0 + group_id;
      const bool active = r < n_tok * heads;
      const int tl = r / heads;
      const int hh = r % heads;
      const int64_t t = t0 + tl;
      double acc = 0.0;
      if (active && t < g.N) {
        const TokenTensor& src = hh < hq ? p.q_src : p.k_src;
        const T* row = static_cast<const T*>(src.ptr) + b * src.batch_stride +
                       (hh < hq ? hh : hh - hq) * src.head_stride + t * src.seq_stride;
        for (int v = 0; v < lay.vec_per_lane; ++v) {
          float x[kVec];
          load_vec(row + (lane + v * lay.lanes) * kVec, x);
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc += static_cast<double>(x[e]) * static_cast<double>(x[e]);
        }
      }
      for (int off = lay.lanes / 2; off > 0; off /= 2) acc += __shfl_down_sync(0xffffffffu, acc, off, lay.lanes);
      if (active && lane == 0) {
        float s = static_cast<float>(sqrt(acc));
        if (isnan(s)) s = INFINITY;
        smem[hh * kTokens + tl] = s;
      }
    }
    __syncthreads();

    // Write level 0 and reduce the block's levels, coalesced along tokens.
    int level_base = 0;
    for (int l = 0; l < lay.block_levels; ++l) {
      const int width = kTokens >> (l * g.log2_p);
      const int n_l = n_tok >> (l * g.log2_p);
      const int prev_width = width << g.log2_p;
      const int prev_base = level_base - heads * prev_width;
      for (int i = threadIdx.x; i < heads * n_l; i += kThreads) {
        const int hh = i / n_l;
        const int jl = i % n_l;
        float m;
        if (l == 0) {
          m = smem[hh * width + jl];
        } else {
          const float* prev = smem + prev_base + hh * prev_width + (jl << g.log2_p);
          m = prev[0];
          for (int c = 1; c < (1 << g.log2_p); ++c) m = fmaxf(m, prev[c]);
          smem[level_base + hh * width + jl] = m;
        }
        score_row(p, b, hh)[g.level_offset[l] + (t0 >> (l * g.log2_p)) + jl] = m;
      }
      __syncthreads();
      level_base += heads * width;
    }
    __syncthreads();
  }
}

// Level l from level l-1 in global memory, for levels whose span exceeds the
// block's tokens.
__global__ void __launch_bounds__(kThreads) level_kernel(ScoresParams p, int l) {
  const Geometry& g = p.g;
  const int hq = static_cast<int>(p.q_src.heads);
  const int heads = hq + static_cast<int>(p.k_src.heads);
  const int64_t n_l = g.level_size(l);
  const int64_t items = g.B * heads * n_l;
  for (int64_t i = blockIdx.x * int64_t{kThreads} + threadIdx.x; i < items; i += int64_t{gridDim.x} * kThreads) {
    const int64_t j = i % n_l;
    const int hh = static_cast<int>((i / n_l) % heads);
    const int64_t b = i / n_l / heads;
    float* row = score_row(p, b, hh);
    const float* prev = row + g.level_offset[l - 1] + (j << g.log2_p);
    float m = prev[0];
    for (int c = 1; c < (1 << g.log2_p); ++c) m = fmaxf(m, prev[c]);
    row[g.level_offset[l] + j] = m;
  }
}

template <typename T>
void launch_scores(const ScoresParams& p, cudaStream_t stream) {
  const Geometry& g = p.g;
  const int nvec = static_cast<int>(g.d / Vec<T>::kElems);
  ScoreLayout lay;
  lay.lanes = 1;
  while (lay.lanes < 32 && nvec % (lay.lanes * 2) == 0) lay.lanes *= 2;
  lay.vec_per_lane = nvec / lay.lanes;
  lay.block_levels = 1;
  while (lay.block_levels < g.L && g.span(lay.block_levels) <= kTokens) {
    ++lay.block_levels;
  }
  const int heads = static_cast<int>(p.q_src.heads + p.k_src.heads);
  size_t smem = 0;
  for (int l = 0; l < lay.block_levels; ++l) smem += sizeof(float) * heads * (kTokens >> (l * g.log2_p));
  if (smem > 48 * 1024) {
    LH_CUDA_CHECK(cudaFuncSetAttribute(scores_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem)));
  }
  const int64_t blocks = g.B * ((g.N_pad + kTokens - 1) / kTokens);
  scores_kernel<T><<<grid_blocks(blocks, 1), kThreads, smem, stream>>>(p, lay);
  LH_CHECK_LAUNCH();
  for (int l = lay.block_levels; l < g.L; ++l) {
    level_kernel<<<grid_blocks(g.B * heads * g.level_size(l), kThreads), kThreads, 0, stream>>>(p, l);
    LH_CHECK_LAUNCH();
  }
}

}  // namespace
}  // namespace cuda

void run_scores(const ScoresParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T, cuda::launch_scores<T>(p, stream));
}

}  // namespace lighthouse
