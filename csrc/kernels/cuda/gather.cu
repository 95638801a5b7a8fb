/*
 * The four data-moving stages on CUDA, as two gather kernels (no atomics,
 * every output element written once by one thread, fixed summation order):
 *
 *   slot_gather:  one output row per sub-sequence slot, summing a span of
 *                 token rows.    gather forward   (span of entry s, times 1/c)
 *                                scatter backward (shifted span c-1 later, clipped to N)
 *   token_gather: one output row per token, summing over heads and levels
 *                 the slot rows that cover it.
 *                                gather backward  (span of t, times 1/c, GQA heads summed)
 *                                scatter forward  (shifted spans holding t)
 *
 * A group of `lanes` threads owns one row; each thread moves 16-byte vectors.
 * Sums run in fp32 in the same order as the CPU twins (tokens ascending;
 * heads, then levels), and the scales are powers of two, so these stages
 * agree with the CPU twins bit for bit.
 */
#include "common.cuh"
#include "kernels_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kThreads = 256;

struct RowLayout {
  int lanes;         // threads per row (a power of two <= 32)
  int vec_per_lane;  // 16-byte vectors each of them moves
};

template <typename T>
RowLayout row_layout(int64_t d) {
  const int nvec = static_cast<int>(d / Vec<T>::kElems);
  RowLayout lay{1, 0};
  while (lay.lanes < 32 && nvec % (lay.lanes * 2) == 0) lay.lanes *= 2;
  lay.vec_per_lane = nvec / lay.lanes;
  return lay;
}

// out[b, h, s] = scale * sum_{t in span(s)} x[b, t, h / group].
// kShifted: the span of scatter-backward, [j c + c - 1, j c + 2c - 2]; else [j c, j c + c - 1].
// `coarse` (gather forward only, may be null): pooled coarsest rows of x,
// [B, heads, N_{L-1}, d], copied instead of re-pooled.
template <typename T, bool kShifted>
__global__ void __launch_bounds__(kThreads)
    slot_gather_kernel(Geometry g, TokenTensor x, SubTensor out, const int32_t* __restrict__ entries,
                       const T* __restrict__ coarse, RowLayout lay) {
  constexpr int kVec = Vec<T>::kElems;
  const int lane = threadIdx.x % lay.lanes;
  const int rows_per_block = kThreads / lay.lanes;
  const int64_t group = g.H / x.heads;
  const int64_t items = g.B * g.H * g.S;
  for (int64_t item = int64_t{blockIdx.x} * rows_per_block + threadIdx.x / lay.lanes; item < items;
       item += int64_t{gridDim.x} * rows_per_block) {
    const int64_t s = item % g.S;
    const int64_t h = (item / g.S) % g.H;
    const int64_t b = item / g.S / g.H;
    const int64_t pyr = entries[item];
    const int l = g.level_of(pyr);
    T* dst = static_cast<T*>(out.ptr) + b * out.batch_stride + h * out.head_stride + s * out.seq_stride;
    if (!kShifted && coarse != nullptr && l == g.L - 1) {
      const T* src = coarse + ((b * x.heads + h / group) * g.level_size(l) + (pyr - g.level_offset[l])) * g.d;
      for (int v = 0; v < lay.vec_per_lane; ++v) {
        const int64_t col = (lane + v * lay.lanes) * Vec<T>::kElems;
        *reinterpret_cast<uint4*>(dst + col) = __ldg(reinterpret_cast<const uint4*>(src + col));
      }
      continue;
    }
    const int64_t c = g.span(l);
    const int64_t first = (pyr - g.level_offset[l]) * c + (kShifted ? c - 1 : 0);
    const int64_t t0 = min(first, g.N);
    const int64_t t1 = min(first + c, g.N);
    const float scale = kShifted ? 1.0f : 1.0f / static_cast<float>(c);
    const T* src = static_cast<const T*>(x.ptr) + b * x.batch_stride + (h / group) * x.head_stride;
    for (int v = 0; v < lay.vec_per_lane; ++v) {
      const int64_t col = (lane + v * lay.lanes) * kVec;
      float acc[kVec];
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[e] = 0.0f;
      int64_t t = t0;
      // Four loads in flight, added in token order.
      for (; t + 4 <= t1; t += 4) {
        float a[4][kVec];
#pragma unroll
        for (int u = 0; u < 4; ++u) load_vec(src + (t + u) * x.seq_stride + col, a[u]);
#pragma unroll
        for (int u = 0; u < 4; ++u) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[e] += a[u][e];
        }
      }
      for (; t < t1; ++t) {
        float a[kVec];
        load_vec(src + t * x.seq_stride + col, a);
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[e] += a[e];
      }
#pragma unroll
      for (int e = 0; e < kVec; ++e) acc[e] *= scale;
      store_vec(dst + col, acc);
    }
  }
}

// out[b, t, hx] = sum over h in group(hx), then over levels l, of
// (kScaled ? 1/c_l : 1) * rows[b, h, inv(l, index_l(t))], with index_l(t) =
// t / c_l, or (t + 1) / c_l - 1 when kShifted. Positions t < N only.
//
// A block owns `chunk` consecutive tokens of one (row, output head). Rows of
// levels >= 1 are few (about chunk / c_l + 1 per level and query head) and
// shared by neighbouring tokens: the block looks up all slots at once, then
// loads those rows at once into shared memory (two memory round trips per
// chunk, not two per token and level). Level-0 rows belong to one token each
// and are read straight from memory, several tokens in flight per lane.
// Sums in the fixed order: heads, then levels.
struct TokenLayout {
  RowLayout row;
  int chunk;     // tokens per block task
  int max_rows;  // staged rows (levels >= 1) per task, all heads of the group
  int max_slots;  // looked-up slots per task, all heads and levels
};

constexpr int kTokensInFlight = 2;

__device__ __forceinline__ int64_t level_index(int64_t t, int shift, bool shifted) {
  return shifted ? ((t + 1) >> shift) - 1 : t >> shift;
}

template <typename T, bool kShifted, bool kScaled>
__global__ void __launch_bounds__(kThreads)
    token_gather_kernel(Geometry g, SubTensor rows, TokenTensor out, const int32_t* __restrict__ inv, TokenLayout lay) {
  constexpr int kVec = Vec<T>::kElems;
  extern __shared__ uint4 smem[];
  const int row_vecs = static_cast<int>(g.d / kVec);
  uint4* staged = smem;                                                      // [max_rows][row_vecs]
  int32_t* slot = reinterpret_cast<int32_t*>(smem + lay.max_rows * row_vecs);  // [max_slots]
  __shared__ int64_t first_j[kMaxLevels];    // first level-l index the chunk needs
  __shared__ int level_slot[kMaxLevels + 1];  // slot-array offset of (head 0, level l)

  const int lane = threadIdx.x % lay.row.lanes;
  const int group_id = threadIdx.x / lay.row.lanes;
  const int groups = kThreads / lay.row.lanes;
  const int64_t heads = out.heads;
  const int64_t group = g.H / heads;
  const int64_t chunks = (g.N + lay.chunk - 1) / lay.chunk;
  for (int64_t task = blockIdx.x; task < g.B * heads * chunks; task += gridDim.x) {
    const int64_t ch = task % chunks;
    const int64_t hx = (task / chunks) % heads;
    const int64_t b = task / chunks / heads;
    const int64_t t_first = ch * lay.chunk;
    const int64_t t_last = min(t_first + lay.chunk, g.N) - 1;
    if (threadIdx.x == 0) {
      int run = 0;
      for (int l = 0; l < g.L; ++l) {
        const int shift = l * g.log2_p;
        const int64_t lo_raw = level_index(t_first, shift, kShifted);
        const int64_t lo = lo_raw > 0 ? lo_raw : 0;
        const int64_t hi = level_index(t_last, shift, kShifted);
        first_j[l] = lo;
        level_slot[l] = run;
        run += hi >= lo ? static_cast<int>(hi - lo + 1) : 0;
      }
      level_slot[g.L] = run;
    }
    __syncthreads();
    const int per_head = level_slot[g.L];         // slots per head, all levels
    const int staged_per_head = per_head - level_slot[1];  // levels >= 1
    const int n_slots = per_head * static_cast<int>(group);

    // Round trip 1: the slots of every needed (head, level, index).
    for (int r = threadIdx.x; r < n_slots; r += kThreads) {
      const int hl = r / per_head;
      const int rr = r % per_head;
      int l = 0;
      while (rr >= level_slot[l + 1]) ++l;
      const int64_t h = hx * group + hl;
      slot[r] = inv[(b * g.H + h) * g.P + g.level_offset[l] + first_j[l] + (rr - level_slot[l])];
    }
    __syncthreads();
    // Round trip 2: the rows of levels >= 1 into shared memory.
    for (int i = threadIdx.x; i < staged_per_head * static_cast<int>(group) * row_vecs; i += kThreads) {
      const int sr = i / row_vecs;  // staged row: head sr / staged_per_head
      const int vi = i % row_vecs;
      const int hl = sr / staged_per_head;
      const int32_t sl = slot[hl * per_head + level_slot[1] + sr % staged_per_head];
      if (sl >= 0) {
        const T* src = static_cast<const T*>(rows.ptr) + b * rows.batch_stride + (hx * group + hl) * rows.head_stride +
                       sl * rows.seq_stride + vi * kVec;
        staged[sr * row_vecs + vi] = __ldg(reinterpret_cast<const uint4*>(src));
      }
    }
    __syncthreads();

    // Sums: each lane group takes tokens in turn, kTokensInFlight at a time
    // so their level-0 loads overlap.
    for (int64_t t0 = t_first + group_id * kTokensInFlight; t0 <= t_last; t0 += groups * kTokensInFlight) {
      for (int v = 0; v < lay.row.vec_per_lane; ++v) {
        const int vi = lane + v * lay.row.lanes;
        float acc[kTokensInFlight][kVec];
#pragma unroll
        for (int u = 0; u < kTokensInFlight; ++u) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[u][e] = 0.0f;
        }
        for (int hl = 0; hl < group; ++hl) {
          const T* head_rows = static_cast<const T*>(rows.ptr) + b * rows.batch_stride +
                               (hx * group + hl) * rows.head_stride + vi * kVec;
          uint4 raw0[kTokensInFlight];
#pragma unroll
          for (int u = 0; u < kTokensInFlight; ++u) {
            const int64_t t = t0 + u;
            const int64_t j0 = level_index(t, 0, kShifted);  // = t
            const int32_t sl = t <= t_last ? slot[hl * per_head + static_cast<int>(j0 - first_j[0])] : -1;
            raw0[u] = sl >= 0 ? __ldg(reinterpret_cast<const uint4*>(head_rows + sl * rows.seq_stride))
                              : make_uint4(0u, 0u, 0u, 0u);
          }
#pragma unroll
          for (int u = 0; u < kTokensInFlight; ++u) {
            const int64_t t = t0 + u;
            if (t > t_last) continue;
            float a[kVec];
            unpack(raw0[u], a, static_cast<const T*>(nullptr));
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[u][e] += a[e];  // level 0: scale 1; a missing row adds +0
            for (int l = 1; l < g.L; ++l) {
              const int shift = l * g.log2_p;
              const int64_t j = level_index(t, shift, kShifted);
              if (j < 0) continue;
              const int rr = level_slot[l] + static_cast<int>(j - first_j[l]);
              if (slot[hl * per_head + rr] < 0) continue;
              unpack(staged[(hl * staged_per_head + rr - level_slot[1]) * row_vecs + vi], a,
                     static_cast<const T*>(nullptr));
              const float scale = kScaled ? 1.0f / static_cast<float>(int64_t{1} << shift) : 1.0f;
#pragma unroll
              for (int e = 0; e < kVec; ++e) acc[u][e] += kScaled ? __fmul_rn(a[e], scale) : a[e];  // no FMA: as the CPU twin
            }
          }
        }
#pragma unroll
        for (int u = 0; u < kTokensInFlight; ++u) {
          const int64_t t = t0 + u;
          if (t > t_last) continue;
          T* dst = static_cast<T*>(out.ptr) + b * out.batch_stride + hx * out.head_stride + t * out.seq_stride;
          store_vec(dst + vi * kVec, acc[u]);
        }
      }
    }
    __syncthreads();  // before the next task overwrites the staged rows and slots
  }
}

template <typename T, bool kShifted>
void launch_slot_gather(const Geometry& g, const TokenTensor& x, const SubTensor& out, const int32_t* entries,
                        const void* coarse, cudaStream_t stream) {
  const RowLayout lay = row_layout<T>(g.d);
  const int64_t rows = g.B * g.H * g.S;
  slot_gather_kernel<T, kShifted><<<grid_blocks(rows, kThreads / lay.lanes), kThreads, 0, stream>>>(
      g, x, out, entries, static_cast<const T*>(coarse), lay);
  LH_CHECK_LAUNCH();
}

template <typename T, bool kShifted, bool kScaled>
void launch_token_gather(const Geometry& g, const SubTensor& rows, const TokenTensor& out, const int32_t* inv,
                         cudaStream_t stream) {
  constexpr size_t kSmemBudget = 48 * 1024;
  TokenLayout lay;
  lay.row = row_layout<T>(g.d);
  const int64_t group = g.H / out.heads;
  const size_t row_bytes = static_cast<size_t>(g.d) * sizeof(T);
  // Per head and chunk of C tokens: level-l rows number at most C / c_l + 1,
  // so levels >= 1 stage fewer than C + L rows (C / c_l <= C / 2^l summed),
  // and the slots of all levels fewer than 2C + L.
  auto smem_for = [&](int chunk) {
    return static_cast<size_t>(group * (chunk + g.L)) * row_bytes +
           static_cast<size_t>(group * (2 * chunk + g.L)) * sizeof(int32_t);
  };
  lay.chunk = 256;
  while (lay.chunk > kTokensInFlight && smem_for(lay.chunk) > kSmemBudget) lay.chunk /= 2;
  lay.max_rows = static_cast<int>(group * (lay.chunk + g.L));
  lay.max_slots = static_cast<int>(group * (2 * lay.chunk + g.L));
  const size_t smem = smem_for(lay.chunk);
  if (smem > kSmemBudget) {
    LH_CUDA_CHECK(cudaFuncSetAttribute(token_gather_kernel<T, kShifted, kScaled>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  }
  const int64_t tasks = g.B * out.heads * ((g.N + lay.chunk - 1) / lay.chunk);
  token_gather_kernel<T, kShifted, kScaled><<<grid_blocks(tasks, 1), kThreads, smem, stream>>>(g, rows, out, inv, lay);
  LH_CHECK_LAUNCH();
}

}  // namespace
}  // namespace cuda

void run_gather(const GatherParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T,
                   cuda::launch_slot_gather<T, false>(p.g, p.x, p.xg, p.entries_ptr, p.coarse_ptr, stream));
}

void run_scatter_backward(const ScatterBackwardParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T,
                   cuda::launch_slot_gather<T, true>(p.g, p.dout, p.dog, p.entries_ptr, nullptr, stream));
}

void run_gather_backward(const GatherBackwardParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T, (cuda::launch_token_gather<T, false, true>(p.g, p.dxg, p.dx, p.inv_ptr, stream)));
}

void run_scatter(const ScatterParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T, (cuda::launch_token_gather<T, true, false>(p.g, p.og, p.out, p.inv_ptr, stream)));
}

}  // namespace lighthouse
