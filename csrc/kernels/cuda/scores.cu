/*
 * pyramid_scores on CUDA: in one pass over q and k (and v when pooling),
 * the per-token l2 norms, the span max of every level, and optionally the
 * pooled coarsest rows of q, k, v (CoarsePool).
 *
 * A block owns `spans` consecutive coarsest spans of one batch row (at least
 * 16 tokens) and every head of every source. A group of `lanes` threads
 * walks one (span, source, head) row by row with 16-byte loads, four loads
 * in flight: it adds each row into the pooled sum (fp32, tokens in order, as
 * the gather and the CPU twin do) and reduces the row's sum of squares in
 * fp64 across the group; the norm is rounded to fp32 once (NaN ranks as
 * +inf), exactly like the CPU twin, so both rank entries identically. Then the
 * block reduces its spans' levels (max over p children), reading back the
 * scores it just wrote. Writes every element of sq and sk, padding positions
 * (t >= N) as 0.
 */
#include <cmath>

#include "common.cuh"
#include "kernels_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kMaxThreads = 512;
constexpr int kMinTokens = 16;  // per block

struct ScoreLayout {
  int lanes;    // threads per row, a power of two <= 32
  int nvec;     // 16-byte vectors per row
  int spans;    // coarsest spans per block
  int threads;  // per block
};

template <typename T, int kVpl>
__global__ void __launch_bounds__(kMaxThreads) scores_kernel(ScoresParams p, ScoreLayout lay) {
  constexpr int kVec = Vec<T>::kElems;
  constexpr int kUnroll = 4 / kVpl;  // tokens in flight per lane (four 16-byte loads)
  const Geometry& g = p.g;
  const bool pooling = p.pool.q_ptr != nullptr;
  const int hq = static_cast<int>(p.q_src.heads);
  const int hk = static_cast<int>(p.k_src.heads);
  const int heads = hq + hk + (pooling ? static_cast<int>(p.pool.v.heads) : 0);
  const int64_t c = g.span(g.L - 1);
  const int64_t n_coarse = g.level_size(g.L - 1);
  const int64_t blocks_per_row = (n_coarse + lay.spans - 1) / lay.spans;
  const int lane = threadIdx.x % lay.lanes;
  const int group = threadIdx.x / lay.lanes;
  const int groups = lay.threads / lay.lanes;
  const float scale = 1.0f / static_cast<float>(c);

  for (int64_t blk = blockIdx.x; blk < g.B * blocks_per_row; blk += gridDim.x) {
    const int64_t b = blk / blocks_per_row;
    const int64_t j0 = (blk % blocks_per_row) * lay.spans;
    const int n_spans = static_cast<int>(min(static_cast<int64_t>(lay.spans), n_coarse - j0));

    // Every lane runs every iteration (the shuffles need whole warps);
    // groups past the last task idle with zeros.
    for (int task0 = 0; task0 < n_spans * heads; task0 += groups) {
      const int task = task0 + group;
      const bool active = task < n_spans * heads;
      const int hh = active ? task % heads : 0;
      const int64_t j = j0 + (active ? task / heads : 0);
      const int side = hh < hq ? 0 : (hh < hq + hk ? 1 : 2);
      const int head = side == 0 ? hh : (side == 1 ? hh - hq : hh - hq - hk);
      const TokenTensor& src = side == 0 ? p.q_src : (side == 1 ? p.k_src : p.pool.v);
      const T* base = static_cast<const T*>(src.ptr) + b * src.batch_stride + head * src.head_stride;
      float* scores = side == 0 ? p.sq_ptr + (b * hq + head) * g.P
                                : (side == 1 ? p.sk_ptr + (b * hk + head) * g.P : nullptr);

      float acc[kVpl][kVec];
#pragma unroll
      for (int v = 0; v < kVpl; ++v) {
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[v][e] = 0.0f;
      }
      const int64_t t_begin = j * c;
      for (int64_t t0 = t_begin; t0 < t_begin + c; t0 += kUnroll) {
        float x[kUnroll][kVpl][kVec];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int64_t t = t0 + u;
          const bool real = active && t < t_begin + c && t < g.N;
#pragma unroll
          for (int v = 0; v < kVpl; ++v) {
            const int vi = lane + v * lay.lanes;
            if (real && vi < lay.nvec) {
              load_vec(base + t * src.seq_stride + vi * kVec, x[u][v]);
            } else {
#pragma unroll
              for (int e = 0; e < kVec; ++e) x[u][v][e] = 0.0f;
            }
          }
        }
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          double sq = 0.0;
#pragma unroll
          for (int v = 0; v < kVpl; ++v) {
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
              acc[v][e] += x[u][v][e];
              sq += static_cast<double>(x[u][v][e]) * static_cast<double>(x[u][v][e]);
            }
          }
          for (int off = lay.lanes / 2; off > 0; off /= 2) sq += __shfl_down_sync(0xffffffffu, sq, off, lay.lanes);
          const int64_t t = t0 + u;
          if (active && side < 2 && lane == 0 && t < t_begin + c) {
            float s = static_cast<float>(sqrt(sq));
            if (isnan(s)) s = INFINITY;
            scores[t] = s;  // 0 for padding positions (t >= N)
          }
        }
      }
      if (active && pooling) {
        void* dst = side == 0 ? p.pool.q_ptr : (side == 1 ? p.pool.k_ptr : p.pool.v_ptr);
        T* row = static_cast<T*>(dst) + ((b * src.heads + head) * n_coarse + j) * g.d;
#pragma unroll
        for (int v = 0; v < kVpl; ++v) {
          const int vi = lane + v * lay.lanes;
          if (vi < lay.nvec) {
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[v][e] *= scale;
            store_vec(row + vi * kVec, acc[v]);
          }
        }
      }
    }
    __syncthreads();  // the block's level-0 scores are written

    // Levels 1..L-1 of the block's spans, each from the level below.
    for (int l = 1; l < g.L; ++l) {
      const int64_t per_span = int64_t{1} << ((g.L - 1 - l) * g.log2_p);
      const int64_t items = static_cast<int64_t>(n_spans) * per_span * (hq + hk);
      for (int64_t i = threadIdx.x; i < items; i += lay.threads) {
        const int hh = static_cast<int>(i / (n_spans * per_span));
        const int64_t jl = j0 * per_span + i % (n_spans * per_span);
        float* row = hh < hq ? p.sq_ptr + (b * hq + hh) * g.P : p.sk_ptr + (b * hk + hh - hq) * g.P;
        const float* prev = row + g.level_offset[l - 1] + (jl << g.log2_p);
        float m = prev[0];
        for (int ch = 1; ch < (1 << g.log2_p); ++ch) m = fmaxf(m, prev[ch]);
        row[g.level_offset[l] + jl] = m;
      }
      __syncthreads();
    }
  }
}

template <typename T, int kVpl>
void launch_scores(const ScoresParams& p, const ScoreLayout& lay, cudaStream_t stream) {
  const int64_t n_coarse = p.g.level_size(p.g.L - 1);
  const int64_t blocks = p.g.B * ((n_coarse + lay.spans - 1) / lay.spans);
  scores_kernel<T, kVpl><<<grid_blocks(blocks, 1), lay.threads, 0, stream>>>(p, lay);
  LH_CHECK_LAUNCH();
}

template <typename T>
void dispatch_scores(const ScoresParams& p, cudaStream_t stream) {
  const Geometry& g = p.g;
  ScoreLayout lay;
  lay.nvec = static_cast<int>(g.d / Vec<T>::kElems);
  lay.lanes = 1;
  while (lay.lanes < 32 && lay.lanes < lay.nvec) lay.lanes *= 2;
  const int vpl = (lay.nvec + lay.lanes - 1) / lay.lanes;
  const int64_t c = g.span(g.L - 1);
  lay.spans = static_cast<int>(c >= kMinTokens ? 1 : kMinTokens / c);
  const int64_t heads = p.q_src.heads + p.k_src.heads + (p.pool.q_ptr != nullptr ? p.pool.v.heads : 0);
  const int64_t want = heads * lay.spans * lay.lanes;
  lay.threads = static_cast<int>(want >= kMaxThreads ? kMaxThreads : (want + 31) / 32 * 32);
  if (vpl == 1) {
    launch_scores<T, 1>(p, lay, stream);
  } else if (vpl == 2) {
    launch_scores<T, 2>(p, lay, stream);
  } else if (vpl <= 4) {
    launch_scores<T, 4>(p, lay, stream);
  } else {
    throw std::runtime_error("lighthouse CUDA scores: head dim " + std::to_string(g.d) + " is too large");
  }
}

}  // namespace
}  // namespace cuda

void run_scores(const ScoresParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T, cuda::dispatch_scores<T>(p, stream));
}

}  // namespace lighthouse
