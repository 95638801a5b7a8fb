/*
 * CPU twin of pyramid_scores: base-token l2 norms, then span max per level,
 * and optionally the pooled coarse rows of q, k, v (CoarsePool: levels
 * pool_first() .. L-1).
 *
 * Work item = (row, source, head, tile): a tile is a whole number of
 * coarsest spans, so all levels of a tile come from that tile's base scores.
 * Sources: q_src, k_src (scored, and pooled if requested), then v (pooled
 * only). The sum of squares runs in fp64 and is rounded to fp32 once, so the
 * score is the correctly rounded norm in practice whatever the summation
 * order: the CPU and CUDA paths rank entries identically. NaN ranks as +inf.
 */
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels_cpu.h"
#include "numeric.h"

namespace lighthouse {
namespace {

template <typename T>
float token_norm(const T* x, int64_t d) {
  double acc = 0.0;
  for (int64_t i = 0; i < d; ++i) {
    const double v = static_cast<double>(Scalar<T>::load(x + i));
    acc += v * v;
  }
  const float r = static_cast<float>(std::sqrt(acc));
  return std::isnan(r) ? std::numeric_limits<float>::infinity() : r;
}

// Mean of each span of the tile at the pooled levels into `out` [R, d]
// (row level_offset[l] - level_offset[pool_first()] + j for entry j of
// level l), each span's tokens summed in order.
template <typename T>
void pool_tile(const Geometry& g, const T* base, int64_t seq_stride, int64_t tile, T* out) {
  using Acc = typename Scalar<T>::Acc;
  std::vector<Acc> acc(g.d);
  for (int l = g.pool_first(); l < g.L; ++l) {
    const int64_t c = g.span(l);
    const int64_t n_tile = g.tile_len() >> (l * g.log2_p);
    const Acc scale = Acc(1) / static_cast<Acc>(c);
    T* rows = out + (g.level_offset[l] - g.level_offset[g.pool_first()]) * g.d;
    for (int64_t j = tile * n_tile; j < (tile + 1) * n_tile; ++j) {
      std::fill(acc.begin(), acc.end(), Acc(0));
      for (int64_t t = j * c; t < std::min((j + 1) * c, g.N); ++t) {
        const T* row = base + t * seq_stride;
        for (int64_t i = 0; i < g.d; ++i) acc[i] += Scalar<T>::load(row + i);
      }
      for (int64_t i = 0; i < g.d; ++i) Scalar<T>::store(rows + j * g.d + i, acc[i] * scale);
    }
  }
}

template <typename T>
void scores_impl(const ScoresParams& p, const CpuExec& ex) {
  const Geometry& g = p.g;
  const bool pooling = p.pool.q_ptr != nullptr;
  const int64_t hq = p.q_src.heads;
  const int64_t hk = p.k_src.heads;
  const int64_t hv = pooling ? p.pool.v.heads : 0;
  const int64_t heads = hq + hk + hv;
  const int64_t n_pooled = g.pooled_rows();
  const int64_t tile_len = g.tile_len();
  ex.run(g.B * heads * g.T, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t tile = item % g.T;
      const int64_t hh = (item / g.T) % heads;
      const int64_t b = item / g.T / heads;
      const int side = hh < hq ? 0 : (hh < hq + hk ? 1 : 2);
      const int64_t head = side == 0 ? hh : (side == 1 ? hh - hq : hh - hq - hk);
      const TokenTensor& src = side == 0 ? p.q_src : (side == 1 ? p.k_src : p.pool.v);
      const T* base = static_cast<const T*>(src.ptr) + b * src.batch_stride + head * src.head_stride;
      if (pooling) {
        void* dst = side == 0 ? p.pool.q_ptr : (side == 1 ? p.pool.k_ptr : p.pool.v_ptr);
        pool_tile(g, base, src.seq_stride, tile, static_cast<T*>(dst) + (b * src.heads + head) * n_pooled * g.d);
      }
      if (side == 2) continue;

      float* out = side == 0 ? p.sq_ptr + (b * hq + head) * g.P : p.sk_ptr + (b * hk + head) * g.P;
      const int64_t t0 = tile * tile_len;
      for (int64_t t = t0; t < t0 + tile_len; ++t) {
        out[t] = t < g.N ? token_norm(base + t * src.seq_stride, g.d) : 0.0f;
      }
      const int64_t p_ = g.p();
      for (int l = 1; l < g.L; ++l) {
        const int64_t n_tile = tile_len >> (l * g.log2_p);
        const float* prev = out + g.level_offset[l - 1];
        float* cur = out + g.level_offset[l];
        for (int64_t j = tile * n_tile; j < (tile + 1) * n_tile; ++j) {
          float m = prev[j * p_];
          for (int64_t c = 1; c < p_; ++c) m = std::fmax(m, prev[j * p_ + c]);
          cur[j] = m;
        }
      }
    }
  });
}

}  // namespace

void run_scores_cpu(const ScoresParams& p, const CpuExec& ex) {
  LH_CPU_DISPATCH(p.dtype, T, scores_impl<T>(p, ex));
}

}  // namespace lighthouse
