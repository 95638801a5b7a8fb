/*
 * CPU twin of pool-on-gather, forward and backward. The pyramid is never
 * stored: each gathered entry averages its span of base tokens directly.
 *
 * Forward item = (row, head, chunk of slots): writes whole rows of qg, kg, vg.
 * Backward item = (row, chunk of positions): each base token sums, level by
 * level, the gradient of the entry covering it divided by the span length
 * (k and v also over the query heads of their group, in head order).
 */
#include <algorithm>
#include <vector>

#include "kernels_cpu.h"
#include "numeric.h"

namespace lighthouse {
namespace {

constexpr int64_t kSlotChunk = 64;
constexpr int64_t kPosChunk = 64;

template <typename T, typename Acc>
void pool_span(const TokenTensor& x, int64_t b, int64_t head, int64_t t0, int64_t t1, Acc scale,
               int64_t d, Acc* acc, T* dst) {
  std::fill(acc, acc + d, Acc(0));
  const T* base = static_cast<const T*>(x.ptr) + b * x.batch_stride + head * x.head_stride;
  for (int64_t t = t0; t < t1; ++t) {
    const T* row = base + t * x.seq_stride;
    for (int64_t i = 0; i < d; ++i) acc[i] += Scalar<T>::load(row + i);
  }
  for (int64_t i = 0; i < d; ++i) Scalar<T>::store(dst + i, acc[i] * scale);
}

template <typename T>
void gather_impl(const GatherParams& p, const CpuExec& ex) {
  using Acc = typename Scalar<T>::Acc;
  const Geometry& g = p.g;
  const int64_t group = g.H / g.H_kv;
  const int64_t chunks = (g.S + kSlotChunk - 1) / kSlotChunk;
  ex.run(g.B * g.H * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<Acc> acc(g.d);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t chunk = item % chunks;
      const int64_t h = (item / chunks) % g.H;
      const int64_t b = item / chunks / g.H;
      const int32_t* entries = p.entries_ptr + (b * g.H + h) * g.S;
      const int64_t s_end = std::min(g.S, (chunk + 1) * kSlotChunk);
      for (int64_t s = chunk * kSlotChunk; s < s_end; ++s) {
        const int64_t pyr = entries[s];
        const int l = g.level_of(pyr);
        const int64_t j = pyr - g.level_offset[l];
        const int64_t c = g.span(l);
        const int64_t t0 = std::min(j * c, g.N);
        const int64_t t1 = std::min(t0 + c, g.N);
        const Acc scale = Acc(1) / static_cast<Acc>(c);  // exact: c is a power of two
        auto sub = [&](const SubTensor& y) {
          return static_cast<T*>(y.ptr) + b * y.batch_stride + h * y.head_stride + s * y.seq_stride;
        };
        pool_span<T>(p.q, b, h, t0, t1, scale, g.d, acc.data(), sub(p.qg));
        pool_span<T>(p.k, b, h / group, t0, t1, scale, g.d, acc.data(), sub(p.kg));
        pool_span<T>(p.v, b, h / group, t0, t1, scale, g.d, acc.data(), sub(p.vg));
      }
    }
  });
}

template <typename T>
void gather_backward_impl(const GatherBackwardParams& p, const CpuExec& ex) {
  using Acc = typename Scalar<T>::Acc;
  const Geometry& g = p.g;
  const int64_t group = g.H / g.H_kv;
  const int64_t chunks = (g.N + kPosChunk - 1) / kPosChunk;
  ex.run(g.B * chunks, 1, [&](int64_t begin, int64_t end) {
    std::vector<Acc> acc(g.d);
    // Adds dy[slot] / c_l for every level l and every query head in [h0, h1).
    auto accumulate = [&](const SubTensor& dy, int64_t b, int64_t h0, int64_t h1, int64_t t) {
      for (int64_t h = h0; h < h1; ++h) {
        const int32_t* inv = p.inv_ptr + (b * g.H + h) * g.P;
        const T* rows = static_cast<const T*>(dy.ptr) + b * dy.batch_stride + h * dy.head_stride;
        for (int l = 0; l < g.L; ++l) {
          const int32_t slot = inv[g.level_offset[l] + (t >> (l * g.log2_p))];
          if (slot < 0) continue;
          const Acc scale = Acc(1) / static_cast<Acc>(g.span(l));
          const T* row = rows + slot * dy.seq_stride;
          for (int64_t i = 0; i < g.d; ++i) acc[i] += Scalar<T>::load(row + i) * scale;
        }
      }
    };
    auto store = [&](const TokenTensor& x, int64_t b, int64_t head, int64_t t) {
      T* dst = static_cast<T*>(x.ptr) + b * x.batch_stride + head * x.head_stride + t * x.seq_stride;
      for (int64_t i = 0; i < g.d; ++i) Scalar<T>::store(dst + i, acc[i]);
    };
    for (int64_t item = begin; item < end; ++item) {
      const int64_t chunk = item % chunks;
      const int64_t b = item / chunks;
      const int64_t t_end = std::min(g.N, (chunk + 1) * kPosChunk);
      for (int64_t t = chunk * kPosChunk; t < t_end; ++t) {
        for (int64_t h = 0; h < g.H; ++h) {
          std::fill(acc.begin(), acc.end(), Acc(0));
          accumulate(p.dqg, b, h, h + 1, t);
          store(p.dq, b, h, t);
        }
        for (int64_t hk = 0; hk < g.H_kv; ++hk) {
          std::fill(acc.begin(), acc.end(), Acc(0));
          accumulate(p.dkg, b, hk * group, (hk + 1) * group, t);
          store(p.dk, b, hk, t);
          std::fill(acc.begin(), acc.end(), Acc(0));
          accumulate(p.dvg, b, hk * group, (hk + 1) * group, t);
          store(p.dv, b, hk, t);
        }
      }
    }
  });
}

}  // namespace

void run_gather_cpu(const GatherParams& p, const CpuExec& ex) {
  LH_CPU_DISPATCH(p.dtype, T, gather_impl<T>(p, ex));
}

void run_gather_backward_cpu(const GatherBackwardParams& p, const CpuExec& ex) {
  LH_CPU_DISPATCH(p.dtype, T, gather_backward_impl<T>(p, ex));
}

}  // namespace lighthouse
