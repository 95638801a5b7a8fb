/*
 * CPU twin of scatter, forward and backward, both written as gathers.
 *
 * Forward item = (row, chunk of positions): position t sums, over the levels,
 * the output of the level-l entry whose shifted span [j c + c - 1, j c + 2c - 2]
 * holds t, i.e. j = (t + 1) / c - 1, found through the inverse map; in the
 * fixed order of params.h (levels >= 1, then level 0 added to their sum).
 * Backward item = (row, head, chunk of slots): each entry sums the output
 * gradient over its shifted span, clipped to N.
 * Under context parallelism both continue across the chunk boundary through
 * the spill rows (params.h), in the same order as on one device.
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
void scatter_impl(const ScatterParams& p, const CpuExec& ex) {
  using Acc = typename Scalar<T>::Acc;
  const Geometry& g = p.g;
  const int64_t chunks = (g.N + kPosChunk - 1) / kPosChunk;
  ex.run(g.B * chunks, 1, [&](int64_t begin, int64_t end) {
    // The fixed order of params.h: coarse = levels >= 1 in level order, then
    // out = level 0 + coarse. `coarse` depends on t only through
    // (t + 1) >> log2_p, so it is summed once per (shifted) level-1 span, per head.
    std::vector<Acc> coarse(g.H * g.d);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t chunk = item % chunks;
      const int64_t b = item / chunks;
      const int32_t* inv_b = p.inv_ptr + b * g.H * g.P;
      const T* rows_b = static_cast<const T*>(p.og.ptr) + b * p.og.batch_stride;
      const T* spill_b = p.spill_in.ptr == nullptr
                             ? nullptr
                             : static_cast<const T*>(p.spill_in.ptr) + b * p.spill_in.batch_stride;
      const int64_t t_end = std::min(g.N, (chunk + 1) * kPosChunk);
      int64_t cell = -1;
      for (int64_t t = chunk * kPosChunk; t < t_end; ++t) {
        if (((t + 1) >> g.log2_p) != cell) {
          cell = (t + 1) >> g.log2_p;
          std::fill(coarse.begin(), coarse.end(), Acc(0));
          for (int64_t h = 0; h < g.H; ++h) {
            Acc* acc = coarse.data() + h * g.d;
            for (int l = 1; l < g.L; ++l) {
              const int64_t j = ((t + 1) >> (l * g.log2_p)) - 1;
              if (j < 0) {  // the previous chunk's last level-l entry, if any (ScatterParams::spill_in)
                if (spill_b != nullptr) {
                  const T* row = spill_b + h * p.spill_in.head_stride + l * p.spill_in.seq_stride;
                  for (int64_t i = 0; i < g.d; ++i) acc[i] += Scalar<T>::load(row + i);
                }
                continue;
              }
              const int32_t slot = inv_b[h * g.P + g.level_offset[l] + j];
              if (slot < 0) continue;
              const T* row = rows_b + h * p.og.head_stride + slot * p.og.seq_stride;
              for (int64_t i = 0; i < g.d; ++i) acc[i] += Scalar<T>::load(row + i);
            }
          }
        }
        for (int64_t h = 0; h < g.H; ++h) {
          const int32_t slot0 = inv_b[h * g.P + t];  // level 0: j = t
          const T* row0 = slot0 < 0 ? nullptr : rows_b + h * p.og.head_stride + slot0 * p.og.seq_stride;
          const Acc* acc = coarse.data() + h * g.d;
          T* dst = static_cast<T*>(p.out.ptr) + b * p.out.batch_stride + h * p.out.head_stride +
                   t * p.out.seq_stride;
          for (int64_t i = 0; i < g.d; ++i) {
            const Acc fine = row0 == nullptr ? Acc(0) : Acc(0) + Scalar<T>::load(row0 + i);
            Scalar<T>::store(dst + i, fine + acc[i]);
          }
        }
      }
    }
  });
}

template <typename T>
void scatter_backward_impl(const ScatterBackwardParams& p, const CpuExec& ex) {
  using Acc = typename Scalar<T>::Acc;
  const Geometry& g = p.g;
  const int64_t chunks = (g.S + kSlotChunk - 1) / kSlotChunk;
  ex.run(g.B * g.H * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<Acc> acc(g.d);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t chunk = item % chunks;
      const int64_t h = (item / chunks) % g.H;
      const int64_t b = item / chunks / g.H;
      const int32_t* entries = p.entries_ptr + (b * g.H + h) * g.S;
      const T* src = static_cast<const T*>(p.dout.ptr) + b * p.dout.batch_stride + h * p.dout.head_stride;
      const int64_t spill_rows = p.spill_dout.ptr == nullptr ? 0 : p.spill_rows;
      const T* spill = p.spill_dout.ptr == nullptr ? nullptr
                       : static_cast<const T*>(p.spill_dout.ptr) + b * p.spill_dout.batch_stride +
                             h * p.spill_dout.head_stride;
      const int64_t s_end = std::min(g.S, (chunk + 1) * kSlotChunk);
      for (int64_t s = chunk * kSlotChunk; s < s_end; ++s) {
        const int64_t pyr = entries[s];
        const int l = g.level_of(pyr);
        const int64_t c = g.span(l);
        const int64_t t0 = (pyr - g.level_offset[l]) * c + c - 1;
        const int64_t t1 = std::min(t0 + c, g.N + spill_rows);
        std::fill(acc.begin(), acc.end(), Acc(0));
        for (int64_t t = t0; t < t1; ++t) {
          const T* row = t < g.N ? src + t * p.dout.seq_stride : spill + (t - g.N) * p.spill_dout.seq_stride;
          for (int64_t i = 0; i < g.d; ++i) acc[i] += Scalar<T>::load(row + i);
        }
        T* dst = static_cast<T*>(p.dog.ptr) + b * p.dog.batch_stride + h * p.dog.head_stride +
                 s * p.dog.seq_stride;
        for (int64_t i = 0; i < g.d; ++i) Scalar<T>::store(dst + i, acc[i]);
      }
    }
  });
}

}  // namespace

void run_scatter_cpu(const ScatterParams& p, const CpuExec& ex) {
  LH_CPU_DISPATCH(p.dtype, T, scatter_impl<T>(p, ex));
}

void run_scatter_backward_cpu(const ScatterBackwardParams& p, const CpuExec& ex) {
  LH_CPU_DISPATCH(p.dtype, T, scatter_backward_impl<T>(p, ex));
}

}  // namespace lighthouse
