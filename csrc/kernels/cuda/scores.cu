/*
 * pyramid_scores on CUDA: in one pass over q and k (and v when pooling),
 * the per-token l2 norms, the span max of every level, and optionally the
 * pooled coarsest rows of q, k, v (CoarsePool).
 *
 * Task = (batch row, coarsest span, source, head), one group of `lanes`
 * threads each, heads of a span on neighbouring groups so a warp reads
 * contiguous memory. A group walks its span's c tokens with 16-byte loads,
 * four loads in flight: it adds each row into the pooled sum (fp32, tokens in
 * order, as the gather and the CPU twin do) and reduces the row's sum of
 * squares in fp64 across the group; the norm is rounded to fp32 once (NaN
 * ranks as +inf), exactly like the CPU twin, so both rank entries
 * identically. No block barrier and nothing but streaming in this kernel;
 * the levels (max over p children) follow in one small kernel per level,
 * which reads the level below from L2. Writes every element of sq and sk,
 * padding positions (t >= N) as 0.
 */
#include <cmath>

#include "common.cuh"
#include "kernels_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kThreads = 128;  // small blocks: ~90 registers a thread, still ~20 warps an SM

struct ScoreLayout {
  int lanes;  // threads per row, a power of two <= 32
  int nvec;   // 16-byte vectors per row
};

template <typename T, int kVpl>
__global__ void __launch_bounds__(kThreads) scores_kernel(ScoresParams p, ScoreLayout lay) {
  constexpr int kVec = Vec<T>::kElems;
  constexpr int kUnroll = 8 / kVpl;  // tokens in flight per lane (eight 16-byte loads)
  const Geometry& g = p.g;
  const bool pooling = p.pool.q_ptr != nullptr;
  const int hq = static_cast<int>(p.q_src.heads);
  const int hk = static_cast<int>(p.k_src.heads);
  const int heads = hq + hk + (pooling ? static_cast<int>(p.pool.v.heads) : 0);
  const int64_t c = g.span(g.L - 1);
  const int64_t n_coarse = g.level_size(g.L - 1);
  const int lane = threadIdx.x % lay.lanes;
  const int groups = kThreads / lay.lanes;
  const float scale = 1.0f / static_cast<float>(c);
  const int64_t tasks = g.B * n_coarse * heads;
  const int64_t stride = int64_t{gridDim.x} * groups;

  // Every lane runs every iteration (the shuffles need whole warps); groups
  // past the last task idle with zeros.
  for (int64_t base = int64_t{blockIdx.x} * groups; base < tasks; base += stride) {
    const int64_t task = base + threadIdx.x / lay.lanes;
    const bool active = task < tasks;
    const int hh = active ? static_cast<int>(task % heads) : 0;
    const int64_t j = active ? (task / heads) % n_coarse : 0;
    const int64_t b = active ? task / heads / n_coarse : 0;
    const int side = hh < hq ? 0 : (hh < hq + hk ? 1 : 2);
    const int head = side == 0 ? hh : (side == 1 ? hh - hq : hh - hq - hk);
    const TokenTensor& src = side == 0 ? p.q_src : (side == 1 ? p.k_src : p.pool.v);
    const T* base_ptr = static_cast<const T*>(src.ptr) + b * src.batch_stride + head * src.head_stride;
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
      // Raw 16-byte loads first (all in flight), converted one at a time.
      uint4 raw[kUnroll][kVpl];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t t = t0 + u;
        const bool real = active && t < t_begin + c && t < g.N;
#pragma unroll
        for (int v = 0; v < kVpl; ++v) {
          const int vi = lane + v * lay.lanes;
          raw[u][v] = (real && vi < lay.nvec)
                          ? __ldg(reinterpret_cast<const uint4*>(base_ptr + t * src.seq_stride + vi * kVec))
                          : make_uint4(0u, 0u, 0u, 0u);
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        double sq = 0.0;
#pragma unroll
        for (int v = 0; v < kVpl; ++v) {
          float x[kVec];
          unpack(raw[u][v], x, static_cast<const T*>(nullptr));
#pragma unroll
          for (int e = 0; e < kVec; ++e) {
            acc[v][e] += x[e];
            sq += static_cast<double>(x[e]) * static_cast<double>(x[e]);
          }
        }
        for (int off = lay.lanes / 2; off > 0; off /= 2) sq += __shfl_xor_sync(0xffffffffu, sq, off, lay.lanes);
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
}

// Level l of every (row, scored head) from level l-1.
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
    float* row = hh < hq ? p.sq_ptr + (b * hq + hh) * g.P : p.sk_ptr + (b * (heads - hq) + hh - hq) * g.P;
    const float* prev = row + g.level_offset[l - 1] + (j << g.log2_p);
    float m = prev[0];
    for (int c = 1; c < (1 << g.log2_p); ++c) m = fmaxf(m, prev[c]);
    row[g.level_offset[l] + j] = m;
  }
}

template <typename T, int kVpl>
void launch_scores(const ScoresParams& p, const ScoreLayout& lay, cudaStream_t stream) {
  const int64_t heads = p.q_src.heads + p.k_src.heads + (p.pool.q_ptr != nullptr ? p.pool.v.heads : 0);
  const int64_t tasks = p.g.B * p.g.level_size(p.g.L - 1) * heads;
  scores_kernel<T, kVpl><<<grid_blocks(tasks, kThreads / lay.lanes), kThreads, 0, stream>>>(p, lay);
  LH_CHECK_LAUNCH();
  const int64_t scored = p.q_src.heads + p.k_src.heads;
  for (int l = 1; l < p.g.L; ++l) {
    level_kernel<<<grid_blocks(p.g.B * scored * p.g.level_size(l), kThreads), kThreads, 0, stream>>>(p, l);
    LH_CHECK_LAUNCH();
  }
}

template <typename T>
void dispatch_scores(const ScoresParams& p, cudaStream_t stream) {
  ScoreLayout lay;
  lay.nvec = static_cast<int>(p.g.d / Vec<T>::kElems);
  lay.lanes = 1;
  while (lay.lanes < 32 && lay.lanes < lay.nvec) lay.lanes *= 2;
  const int vpl = (lay.nvec + lay.lanes - 1) / lay.lanes;
  if (vpl == 1) {
    launch_scores<T, 1>(p, lay, stream);
  } else if (vpl == 2) {
    launch_scores<T, 2>(p, lay, stream);
  } else if (vpl <= 4) {
    launch_scores<T, 4>(p, lay, stream);
  } else {
    throw std::runtime_error("lighthouse CUDA scores: head dim " + std::to_string(p.g.d) + " is too large");
  }
}

}  // namespace
}  // namespace cuda

void run_scores(const ScoresParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T, cuda::dispatch_scores<T>(p, stream));
}

}  // namespace lighthouse
