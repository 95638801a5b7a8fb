/*
 * CPU twin of pool-on-gather, forward and backward, one tensor at a time.
 * The pyramid is never stored: each gathered entry averages its span of base
 * tokens directly.
 *
 * Forward item = (row, head, chunk of slots): writes whole rows of xg; the
 * entries of the pooled levels (pool_first() .. L-1) are copied from the
 * pooled rows when the scores pass made them (GatherParams::coarse_ptr), with
 * the same values either way.
 * Backward item = (row, chunk of positions): each base token sums, over the
 * query heads of its group and the levels, the gradient of the entry covering
 * it divided by the span length, in the fixed order of params.h (levels >= 1,
 * then level 0, then the two sums added).
 */
#include <algorithm>
#include <vector>

#include "kernels_cpu.h"
#include "numeric.h"

namespace lighthouse {
namespace {

constexpr int64_t kSlotChunk = 64;
constexpr int64_t kPosChunk = 64;

template <typename T>
void gather_impl(const GatherParams& p, const CpuExec& ex) {
  using Acc = typename Scalar<T>::Acc;
  const Geometry& g = p.g;
  const int64_t group = g.H / p.x.heads;
  const int64_t chunks = (g.S + kSlotChunk - 1) / kSlotChunk;
  ex.run(g.B * g.H * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<Acc> acc(g.d);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t chunk = item % chunks;
      const int64_t h = (item / chunks) % g.H;
      const int64_t b = item / chunks / g.H;
      const int32_t* entries = p.entries_ptr + (b * g.H + h) * g.S;
      const T* src = static_cast<const T*>(p.x.ptr) + b * p.x.batch_stride + (h / group) * p.x.head_stride;
      T* dst = static_cast<T*>(p.xg.ptr) + b * p.xg.batch_stride + h * p.xg.head_stride;
      const T* coarse = p.coarse_ptr == nullptr
                            ? nullptr
                            : static_cast<const T*>(p.coarse_ptr) + (b * p.x.heads + h / group) * g.pooled_rows() * g.d;
      const int64_t pooled_from = g.level_offset[g.pool_first()];
      const int64_t s_end = std::min(g.S, (chunk + 1) * kSlotChunk);
      for (int64_t s = chunk * kSlotChunk; s < s_end; ++s) {
        const int64_t pyr = entries[s];
        const int l = g.level_of(pyr);
        if (coarse != nullptr && pyr >= pooled_from) {  // pooled already by the scores pass
          std::copy_n(coarse + (pyr - pooled_from) * g.d, g.d, dst + s * p.xg.seq_stride);
          continue;
        }
        const int64_t c = g.span(l);
        const int64_t t0 = std::min((pyr - g.level_offset[l]) * c, g.N);
        const int64_t t1 = std::min(t0 + c, g.N);
        std::fill(acc.begin(), acc.end(), Acc(0));
        for (int64_t t = t0; t < t1; ++t) {
          const T* row = src + t * p.x.seq_stride;
          for (int64_t i = 0; i < g.d; ++i) acc[i] += Scalar<T>::load(row + i);
        }
        const Acc scale = Acc(1) / static_cast<Acc>(c);  // exact: c is a power of two
        T* out = dst + s * p.xg.seq_stride;
        for (int64_t i = 0; i < g.d; ++i) Scalar<T>::store(out + i, acc[i] * scale);
      }
    }
  });
}

template <typename T>
void gather_backward_impl(const GatherBackwardParams& p, const CpuExec& ex) {
  using Acc = typename Scalar<T>::Acc;
  const Geometry& g = p.g;
  const int64_t heads = p.dx.heads;
  const int64_t group = g.H / heads;
  const int64_t chunks = (g.N + kPosChunk - 1) / kPosChunk;
  ex.run(g.B * chunks, 1, [&](int64_t begin, int64_t end) {
    // The fixed order of params.h: coarse = levels >= 1 (heads, then levels),
    // fine = level 0 (heads), out = fine + coarse. `coarse` depends on t only
    // through t >> log2_p, so it is summed once per level-1 span, per head.
    std::vector<Acc> coarse(heads * g.d), fine(g.d);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t chunk = item % chunks;
      const int64_t b = item / chunks;
      const int32_t* inv_b = p.inv_ptr + b * g.H * g.P;
      const T* rows_b = static_cast<const T*>(p.dxg.ptr) + b * p.dxg.batch_stride;
      const int64_t t_end = std::min(g.N, (chunk + 1) * kPosChunk);
      int64_t cell = -1;
      for (int64_t t = chunk * kPosChunk; t < t_end; ++t) {
        if ((t >> g.log2_p) != cell) {
          cell = t >> g.log2_p;
          std::fill(coarse.begin(), coarse.end(), Acc(0));
          for (int64_t hx = 0; hx < heads; ++hx) {
            Acc* acc = coarse.data() + hx * g.d;
            for (int64_t h = hx * group; h < (hx + 1) * group; ++h) {
              for (int l = 1; l < g.L; ++l) {
                const int32_t slot = inv_b[h * g.P + g.level_offset[l] + (t >> (l * g.log2_p))];
                if (slot < 0) continue;
                const Acc scale = Acc(1) / static_cast<Acc>(g.span(l));
                const T* row = rows_b + h * p.dxg.head_stride + slot * p.dxg.seq_stride;
                for (int64_t i = 0; i < g.d; ++i) acc[i] += Scalar<T>::load(row + i) * scale;
              }
            }
          }
        }
        for (int64_t hx = 0; hx < heads; ++hx) {
          std::fill(fine.begin(), fine.end(), Acc(0));
          for (int64_t h = hx * group; h < (hx + 1) * group; ++h) {
            const int32_t slot = inv_b[h * g.P + t];
            if (slot < 0) continue;
            const T* row = rows_b + h * p.dxg.head_stride + slot * p.dxg.seq_stride;
            for (int64_t i = 0; i < g.d; ++i) fine[i] += Scalar<T>::load(row + i);
          }
          const Acc* acc = coarse.data() + hx * g.d;
          T* dst = static_cast<T*>(p.dx.ptr) + b * p.dx.batch_stride + hx * p.dx.head_stride + t * p.dx.seq_stride;
          for (int64_t i = 0; i < g.d; ++i) Scalar<T>::store(dst + i, fine[i] + acc[i]);
        }
      }
    }
  });
}

}  // namespace

void run_gather_cpu(const GatherParams& p, const CpuExec& ex) { LH_CPU_DISPATCH(p.dtype, T, gather_impl<T>(p, ex)); }

void run_gather_backward_cpu(const GatherBackwardParams& p, const CpuExec& ex) {
  LH_CPU_DISPATCH(p.dtype, T, gather_backward_impl<T>(p, ex));
}

}  // namespace lighthouse
