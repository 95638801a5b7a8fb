/*
 * The four data-moving stages on CUDA, as two gather kernels (no atomics,
 * every output element written once by one thread, fixed summation order):
 *
 *   slot_gather:  one output row per sub-sequence slot, summing a span of
 *                 token rows.    gather forward   (span of entry s, times 1/c;
 *                                                  q, k and v in one launch)
 *                                scatter backward (shifted span c-1 later, clipped to N,
 *                                                  or continued into the next chunk's rows)
 *   token_gather: one output row per token, summing over heads and levels
 *                 the slot rows that cover it.
 *                                gather backward  (span of t, times 1/c, GQA heads summed)
 *                                scatter forward  (shifted spans holding t, plus the
 *                                                  previous chunk's spill rows)
 *
 * A group of `lanes` threads owns one row (the token gather: one level-1
 * span of rows); each thread moves 16-byte vectors. Sums run in fp32 in the
 * same order as the CPU twins (slot gather: tokens ascending; token gather:
 * the order of params.h), and the scales are powers of two, so these stages
 * agree with the CPU twins bit for bit. Indices within a row of the batch
 * (tokens, slots, pyramid entries) are 32-bit (the launchers check that they
 * fit); (batch row, head) pairs come from the grid's y dimension, so no
 * kernel divides 64-bit integers per row.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "kernels_cuda.h"
#include "launch_choices.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// The 16-byte vector at p (read-only path) where `present`, else zeros. A
// missing row so adds +0, which leaves a sum that starts at +0 unchanged, bit
// for bit.
template <typename T>
__device__ __forceinline__ uint4 load_or_zero(bool present, const T* p) {
  return present ? __ldg(reinterpret_cast<const uint4*>(p)) : make_uint4(0u, 0u, 0u, 0u);
}

// acc += raw (16 bytes of T) in fp32, element by element.
template <typename T>
__device__ __forceinline__ void add_vec(float (&acc)[Vec<T>::kElems], const uint4& raw) {
  float a[Vec<T>::kElems];
  unpack(raw, a, static_cast<const T*>(nullptr));
#pragma unroll
  for (int e = 0; e < Vec<T>::kElems; ++e) acc[e] += a[e];
}

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

void check_32bit(const Geometry& g, const char* what) {
  if (g.P >= (int64_t{1} << 31) || g.S >= (int64_t{1} << 31) || g.B * g.H >= (int64_t{1} << 31)) {
    throw std::runtime_error(std::string("lighthouse CUDA ") + what + ": N=" + std::to_string(g.N) +
                             " gives indices beyond the kernels' 32-bit range");
  }
}

// One tensor of a slot gather.
struct SlotJob {
  TokenTensor x;               // [B, N, heads, d] read
  SubTensor out;               // [B, H, S, d] written
  const void* coarse;          // optional pooled coarse rows [B, heads, R, d] (gather forward; CoarsePool)
};

struct SlotJobs {
  SlotJob job[3];
  int count;
};

// out[b, h, s] = scale * sum_{t in span(s)} x[b, t, h / group].
// kShifted: the span of scatter-backward, [j c + c - 1, j c + 2c - 2]; else [j c, j c + c - 1].
// `coarse` (may be null): the rows of levels >= pool_first(), copied instead
// of re-pooled: the coarsest level's alone, or with kTwo level L-2's too (a
// separate instantiation, so the one-level kernel is compiled as before).
// kSpill (kShifted only): `spill` holds rows N .. N + spill_rows - 1 of x, the
// next chunk's first rows under context parallelism (params.h). A separate
// instantiation, so the one-device kernels are compiled exactly as without it.
template <typename T, bool kShifted, bool kSpill, bool kTwo = false>
__global__ void __launch_bounds__(kThreads)
    slot_gather_kernel(Geometry g, SlotJobs jobs, const int32_t* __restrict__ entries, RowLayout lay,
                       TokenTensor spill, int spill_rows) {
  constexpr int kVec = Vec<T>::kElems;
  const int lane = threadIdx.x % lay.lanes;
  const int rows_per_block = kThreads / lay.lanes;
  const int S = static_cast<int>(g.S);
  const int H = static_cast<int>(g.H);
  const int N = static_cast<int>(g.N);
  const int pairs = static_cast<int>(g.B) * H;
  for (int y = blockIdx.y; y < jobs.count * pairs; y += gridDim.y) {
    const int ji = y / pairs;
    const int h = (y - ji * pairs) % H;
    const int b = (y - ji * pairs) / H;
    // Constant indices only: a dynamic index into the kernel's parameters
    // would copy them to local memory.
    const SlotJob job = ji == 0 ? jobs.job[0] : (ji == 1 ? jobs.job[1] : jobs.job[2]);
    const int group = H / static_cast<int>(job.x.heads);
    const T* src = static_cast<const T*>(job.x.ptr) + b * job.x.batch_stride + (h / group) * job.x.head_stride;
    // Pooled rows per (row, head): N_{L-1}, or with kTwo those of levels
    // pool_first() = L-2 and L-1, from pyramid entry pooled_from on.
    const T* coarse = job.coarse == nullptr ? nullptr
                                            : static_cast<const T*>(job.coarse) +
                                                  (int64_t{b} * job.x.heads + h / group) *
                                                      (kTwo ? g.pooled_rows() : g.level_size(g.L - 1)) * g.d;
    const int pooled_from = kTwo ? static_cast<int>(g.level_offset[g.pool_first()]) : 0;
    T* dst_row0 = static_cast<T*>(job.out.ptr) + b * job.out.batch_stride + h * job.out.head_stride;
    const T* spill_row0 =
        kSpill ? static_cast<const T*>(spill.ptr) + b * spill.batch_stride + h * spill.head_stride : nullptr;
    const int32_t* row_entries = entries + (int64_t{b} * H + h) * S;
    const int stride = gridDim.x * rows_per_block;
    int s = blockIdx.x * rows_per_block + static_cast<int>(threadIdx.x) / lay.lanes;
    int next = s < S ? row_entries[s] : 0;
    for (; s < S; s += stride) {
      // The next row's entry is read before this row's data: one memory
      // round trip a row, not two.
      const int pyr = next;
      if (s + stride < S) next = row_entries[s + stride];
      const int l = g.level_of(pyr);
      const int j = pyr - static_cast<int>(g.level_offset[l]);
      T* dst = dst_row0 + s * job.out.seq_stride;
      if (!kShifted && coarse != nullptr && (kTwo ? pyr >= pooled_from : l == g.L - 1)) {
        const T* row = coarse + int64_t{kTwo ? pyr - pooled_from : j} * g.d;
        for (int v = 0; v < lay.vec_per_lane; ++v) {
          const int col = (lane + v * lay.lanes) * kVec;
          *reinterpret_cast<uint4*>(dst + col) = __ldg(reinterpret_cast<const uint4*>(row + col));
        }
        continue;
      }
      const int shift = l * g.log2_p;
      const int c = 1 << shift;
      const int first = (j << shift) + (kShifted ? c - 1 : 0);
      const int t0 = min(first, N);
      const int t1 = min(first + c, N);
      const float scale = kShifted ? 1.0f : 1.0f / static_cast<float>(c);
      for (int v = 0; v < lay.vec_per_lane; ++v) {
        const int col = (lane + v * lay.lanes) * kVec;
        const T* p = src + t0 * job.x.seq_stride + col;
        float acc[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[e] = 0.0f;
        int t = t0;
        // Four loads in flight, added in token order. (Eight measured no
        // faster on an H200, 2026-12-01: benchmarks/gather_bench.py.)
        for (; t + 4 <= t1; t += 4) {
          float a[4][kVec];
#pragma unroll
          for (int u = 0; u < 4; ++u) load_vec(p + u * job.x.seq_stride, a[u]);
          p += 4 * job.x.seq_stride;
#pragma unroll
          for (int u = 0; u < 4; ++u) {
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[e] += a[u][e];
          }
        }
        for (; t < t1; ++t) {
          float a[kVec];
          load_vec(p, a);
          p += job.x.seq_stride;
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[e] += a[e];
        }
        // The span continues into the next chunk's rows, in token order
        // (first < N always). For fp32 this costs 8 bytes of register spill
        // in this CP-only instantiation; the one-device ones are unchanged.
        if (kSpill) {
          const int rows = min(first + c - N, spill_rows);
          const T* sp = spill_row0 + col;
          for (int r = 0; r < rows; ++r, sp += spill.seq_stride) {
            float a[kVec];
            load_vec(sp, a);
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[e] += a[e];
          }
        }
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[e] *= scale;
        store_vec(dst + col, acc);
      }
    }
  }
}

// The gather forward with two rows in flight for each lane group (the
// default; LIGHTHOUSE_SLOT_GATHER=row runs slot_gather_kernel): the same
// sums in the same order as slot_gather_kernel<T, false, false, kTwo>, but a
// lane group takes rows s and s + stride together and issues the first
// loads of both (up to four token rows each, or a pooled row) before it adds
// or stores either. slot_gather_kernel has one row in flight a group at 64
// registers (half the SM's threads), so a row that is one load (a level-0
// entry, a pooled row: most rows) leaves one 16-byte load a thread in flight.
// Here three blocks an SM (80 registers, a few bytes of spill outside the
// row loop with two pooled levels) with two rows each. Spans longer than
// four tokens finish one row at a time, as before. Measured on an H200
// (2026-12-02, benchmarks/gather_bench.py, q, k and v, ms, pair / row, two
// runs each): B=2 N=262,144 H=16/4 d=64 L=4 0.317, 0.339 / 0.472, 0.465;
// H=8 d=128 L=3 N=200,000 0.171, 0.181 / 0.194, 0.178; N=98,304 0.128,
// 0.120 / 0.137, 0.140.
template <typename T>
struct PairSpan {
  const T* p;  // first token row (or the pooled row), at column 0
  int n;       // token rows to sum; -1: a pooled row, copied bit for bit
  int shift;   // log2 c: the sum is scaled by 2^-shift
};

template <typename T, bool kTwo>
__global__ void __launch_bounds__(kThreads, 3)
    slot_gather_pair_kernel(Geometry g, SlotJobs jobs, const int32_t* __restrict__ entries, RowLayout lay) {
  constexpr int kVec = Vec<T>::kElems;
  const int lane = threadIdx.x % lay.lanes;
  const int rows_per_block = kThreads / lay.lanes;
  const int S = static_cast<int>(g.S);
  const int H = static_cast<int>(g.H);
  const int N = static_cast<int>(g.N);
  const int pairs = static_cast<int>(g.B) * H;
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u);
  for (int y = blockIdx.y; y < jobs.count * pairs; y += gridDim.y) {
    const int ji = y / pairs;
    const int h = (y - ji * pairs) % H;
    const int b = (y - ji * pairs) / H;
    const SlotJob job = ji == 0 ? jobs.job[0] : (ji == 1 ? jobs.job[1] : jobs.job[2]);
    const int group = H / static_cast<int>(job.x.heads);
    const int step = static_cast<int>(job.x.seq_stride);  // checked by the launcher
    const T* src = static_cast<const T*>(job.x.ptr) + b * job.x.batch_stride + (h / group) * job.x.head_stride;
    const T* coarse = job.coarse == nullptr ? nullptr
                                            : static_cast<const T*>(job.coarse) +
                                                  (int64_t{b} * job.x.heads + h / group) *
                                                      (kTwo ? g.pooled_rows() : g.level_size(g.L - 1)) * g.d;
    const int pooled_from = kTwo ? static_cast<int>(g.level_offset[g.pool_first()]) : 0;
    T* dst_row0 = static_cast<T*>(job.out.ptr) + b * job.out.batch_stride + h * job.out.head_stride;
    const int32_t* row_entries = entries + (int64_t{b} * H + h) * S;
    auto span_of = [&](int pyr) {
      const int l = g.level_of(pyr);
      const int j = pyr - static_cast<int>(g.level_offset[l]);
      PairSpan<T> r;
      if (coarse != nullptr && (kTwo ? pyr >= pooled_from : l == g.L - 1)) {
        r.p = coarse + int64_t{kTwo ? pyr - pooled_from : j} * g.d;
        r.n = -1;
        r.shift = 0;
        return r;
      }
      const int shift = l * g.log2_p;
      const int c = 1 << shift;
      const int first = j << shift;
      const int t0 = min(first, N);
      r.p = src + int64_t{t0} * step;
      r.n = min(first + c, N) - t0;
      r.shift = shift;
      return r;
    };
    const int stride = gridDim.x * rows_per_block;
    int s = blockIdx.x * rows_per_block + static_cast<int>(threadIdx.x) / lay.lanes;
    int next_a = s < S ? row_entries[s] : 0;
    int next_b = s + stride < S ? row_entries[s + stride] : 0;
    for (; s < S; s += 2 * stride) {
      const bool has_b = s + stride < S;
      const PairSpan<T> A = span_of(next_a);
      PairSpan<T> Bs = span_of(next_b);
      if (!has_b) Bs.n = 0;
      // The next pair's entries, read before this pair's data.
      if (s + 2 * stride < S) next_a = row_entries[s + 2 * stride];
      if (s + 3 * stride < S) next_b = row_entries[s + 3 * stride];
      T* dst_a = dst_row0 + s * job.out.seq_stride;
      T* dst_b = dst_row0 + (s + stride) * job.out.seq_stride;
      for (int v = 0; v < lay.vec_per_lane; ++v) {
        const int col = (lane + v * lay.lanes) * kVec;
        uint4 ra[4], rb[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          ra[u] = u < A.n || (u == 0 && A.n < 0) ? __ldg(reinterpret_cast<const uint4*>(A.p + u * step + col)) : zero;
        }
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          rb[u] = u < Bs.n || (u == 0 && Bs.n < 0) ? __ldg(reinterpret_cast<const uint4*>(Bs.p + u * step + col)) : zero;
        }
        // Row A, then row B: tokens ascending from +0, times 1/c.
        auto finish = [&](const PairSpan<T>& R, const uint4 (&raw)[4], T* dst) {
          if (R.n < 0) {
            *reinterpret_cast<uint4*>(dst + col) = raw[0];
            return;
          }
          float acc[kVec];
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[e] = 0.0f;
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            if (u >= R.n) break;
            add_vec<T>(acc, raw[u]);
          }
          // Longer spans (more than four tokens: rare in the pooled
          // layouts): four loads in flight, added in token order.
          const T* p = R.p + 4 * step + col;
          for (int t = 4; t < R.n; t += 4) {
            uint4 more[4];
#pragma unroll
            for (int u = 0; u < 4; ++u) {
              more[u] = t + u < R.n ? __ldg(reinterpret_cast<const uint4*>(p + u * step)) : zero;
            }
            p += 4 * step;
#pragma unroll
            for (int u = 0; u < 4; ++u) {
              if (t + u >= R.n) break;
              add_vec<T>(acc, more[u]);
            }
          }
          const float scale = __int_as_float((127 - R.shift) << 23);  // 1 / c, exact
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[e] *= scale;
          store_vec(dst + col, acc);
        };
        finish(A, ra, dst_a);
        if (has_b) finish(Bs, rb, dst_b);
      }
    }
  }
}

// The token gather (gather backward, scatter): out[b, t, hx] sums, over the
// heads h of group(hx) and the levels l, (kScaled ? 1/c_l : 1) *
// rows[b, h, inv(l, index_l(t))], with index_l(t) = t >> (l log2_p), or
// ((t + 1) >> (l log2_p)) - 1 when kShifted. Positions t < N only.
//
// For l >= 1, index_l(t) depends on t only through its cell u = t >> log2_p
// (kShifted: u = (t + 1) >> log2_p, so index_l(t) = (u >> ((l-1) log2_p)) - 1):
// the p tokens of a cell share every coarse row. So the sum is split, in a fixed order that the CPU
// twins follow (params.h):
//   coarse(u) = sum over h (head order), then l = 1 .. L-1 (level order)
//   fine(t)   = sum over h (head order) of the level-0 row (index t)
//   out(t)    = fine(t) + coarse(u)
// each from +0 in fp32. A lane group owns one cell of one (row, head) at a
// time: it adds the coarse rows once, then the cell's tokens; a missing row
// is skipped, which leaves a sum bit for bit as adding +0 would (a sum that
// starts at +0 is never -0). The loads of a batch (slots, then rows) are
// issued together. Neighbouring lane groups take neighbouring cells.
//
// kSpill (kShifted only): `spill` holds [B, H, L, d] rows, added unscaled at
// level l's place when index_l(t) is -1 (the previous chunk's last entries,
// params.h); a separate instantiation, so the one-device kernels are compiled
// as without it.
constexpr int kBatch = 4;  // row loads in flight together per lane group

// kCoop: the lanes of a group load the slots of up to `lanes` pairs at once,
// one each, and pass them round by shuffles (else every lane loads every
// slot itself, kBatch at a time); a round of level-0 slots that are all
// missing skips its row loads altogether. kCoop needs lanes to be a multiple
// of kBatch (the launcher ensures it): the pair counters advance a whole
// batch at a time, so a round of fewer pairs than a batch would label the
// next round's pairs wrongly.
template <typename T, bool kShifted, bool kScaled, bool kSpill, bool kCoop>
__global__ void __launch_bounds__(kThreads, 4)
    token_gather_kernel(Geometry g, SubTensor rows, TokenTensor out, const int32_t* __restrict__ inv, RowLayout lay,
                        SubTensor spill) {
  constexpr int kVec = Vec<T>::kElems;
  __shared__ int level_off[kMaxLevels];  // pyramid offset of each level (fits 32 bits: the launcher checks)
  if (threadIdx.x < kMaxLevels) level_off[threadIdx.x] = static_cast<int>(g.level_offset[threadIdx.x]);
  __syncthreads();
  const int lane = threadIdx.x % lay.lanes;
  const int groups = kThreads / lay.lanes;
  // The lanes of this group, for the shuffles (they always run together).
  const unsigned gmask =
      lay.lanes == 32 ? 0xffffffffu : ((1u << lay.lanes) - 1u) << (threadIdx.x % 32 / lay.lanes * lay.lanes);
  const int round = kCoop ? lay.lanes : kBatch;  // pairs whose slots are loaded together
  const int heads = static_cast<int>(out.heads);
  const int group = static_cast<int>(g.H) / heads;
  const int N = static_cast<int>(g.N);
  const int L = g.L;
  const int lp = g.log2_p;
  const int p = 1 << lp;
  // Cells holding positions 0 .. N-1 (kShifted: cell u holds t = u p - 1 ..
  // u p + p - 2, so cell 0 holds one position fewer).
  const int cells = kShifted ? (N >> lp) + 1 : (N + p - 1) >> lp;
  const int pairs = static_cast<int>(g.B) * heads;
  const int stride = gridDim.x * groups;
  const int coarse_pairs = group * (L - 1);  // pair k: head k / (L-1), level k % (L-1) + 1
  const int fine_pairs = p * group;          // pair k: token k / group, head k % group
  // Offsets within one (row, head group) fit 32 bits (the launcher checks).
  const int row_step = static_cast<int>(rows.seq_stride), head_step = static_cast<int>(rows.head_stride);
  const int inv_step = static_cast<int>(g.P);
  for (int y = blockIdx.y; y < pairs; y += gridDim.y) {
    const int hx = y % heads;
    const int b = y / heads;
    const T* rows_b = static_cast<const T*>(rows.ptr) + b * rows.batch_stride + hx * group * rows.head_stride;
    const int32_t* inv_b = inv + (int64_t{b} * g.H + int64_t{hx} * group) * g.P;
    T* out_b = static_cast<T*>(out.ptr) + b * out.batch_stride + hx * out.head_stride;
    const T* spill_b =
        kSpill ? static_cast<const T*>(spill.ptr) + b * spill.batch_stride + hx * group * spill.head_stride : nullptr;
    for (int u = blockIdx.x * groups + static_cast<int>(threadIdx.x) / lay.lanes; u < cells; u += stride) {
      const int t_begin = (u << lp) - (kShifted ? 1 : 0);
      // Slot of a coarse pair: -1 nothing to add (no row); -2 before this
      // chunk (a spill row when kSpill, else nothing).
      auto coarse_slot = [&](int hl, int l) {
        const int j = (u >> ((l - 1) * lp)) - (kShifted ? 1 : 0);
        return j < 0 ? -2 : __ldg(inv_b + (hl * inv_step + level_off[l] + j));
      };
      auto fine_slot = [&](int hl, int t) { return t >= 0 && t < N ? __ldg(inv_b + (hl * inv_step + t)) : -1; };
      for (int v = 0; v < lay.vec_per_lane; ++v) {
        const int col = (lane + v * lay.lanes) * kVec;
        // coarse(u): the (head, level) pairs in order.
        float coarse[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) coarse[e] = 0.0f;
        int next_hl = 0, next_l = 1;  // the next pair
        for (int k0 = 0; k0 < coarse_pairs; k0 += round) {
          int mine = -1;  // kCoop: the slot of pair k0 + lane
          if (kCoop && k0 + lane < coarse_pairs) {
            const int hl = (k0 + lane) / (L - 1);
            mine = coarse_slot(hl, k0 + lane - hl * (L - 1) + 1);
          }
          const int n = min(round, coarse_pairs - k0);
          for (int i0 = 0; i0 < n; i0 += kBatch) {
            int sl[kBatch], lv[kBatch], hv[kBatch];
#pragma unroll
            for (int i = 0; i < kBatch; ++i) {
              lv[i] = next_l;
              hv[i] = next_hl;
              if (++next_l == L) {
                next_l = 1;
                ++next_hl;
              }
              if (kCoop) {
                const int got = __shfl_sync(gmask, mine, i0 + i, lay.lanes);
                sl[i] = i0 + i < n ? got : -1;
              } else {
                sl[i] = i0 + i < n ? coarse_slot(hv[i], lv[i]) : -1;
              }
            }
            uint4 raw[kBatch];
#pragma unroll
            for (int i = 0; i < kBatch; ++i) {
              const bool spilled = kSpill && sl[i] == -2;
              const T* src = spilled ? spill_b + hv[i] * spill.head_stride + lv[i] * spill.seq_stride + col
                                     : rows_b + (hv[i] * head_step + sl[i] * row_step + col);
              raw[i] = sl[i] >= 0 || spilled ? __ldg(reinterpret_cast<const uint4*>(src)) : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int i = 0; i < kBatch; ++i) {
              if (sl[i] == -1 || (sl[i] == -2 && !kSpill)) continue;
              float a[kVec];
              unpack(raw[i], a, static_cast<const T*>(nullptr));
              // 2^-(l log2_p), exact; spill rows are never scaled (scatter only).
              const float scale = __int_as_float((127 - lv[i] * lp) << 23);
#pragma unroll
              for (int e = 0; e < kVec; ++e) {
                coarse[e] += (kScaled && sl[i] >= 0) ? __fmul_rn(a[e], scale) : a[e];  // no FMA: as the CPU twin
              }
            }
          }
        }
        // The cell's tokens: (token, head) pairs in order; a token is stored
        // after its last head.
        float fine[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) fine[e] = 0.0f;
        int next_t = t_begin;
        next_hl = 0;
        for (int k0 = 0; k0 < fine_pairs; k0 += round) {
          int mine = -1;
          bool any = true;  // kCoop: whether a slot of the round is present
          if (kCoop) {
            if (k0 + lane < fine_pairs) {
              const int tok = (k0 + lane) / group;
              mine = fine_slot(k0 + lane - tok * group, t_begin + tok);
            }
            any = __any_sync(gmask, mine >= 0);
          }
          const int n = min(round, fine_pairs - k0);
          for (int i0 = 0; i0 < n; i0 += kBatch) {
            int sl[kBatch], tv[kBatch], hv[kBatch];
#pragma unroll
            for (int i = 0; i < kBatch; ++i) {
              tv[i] = next_t;
              hv[i] = next_hl;
              if (++next_hl == group) {
                next_hl = 0;
                ++next_t;
              }
              if (kCoop) {
                const int got = any ? __shfl_sync(gmask, mine, i0 + i, lay.lanes) : -1;
                sl[i] = i0 + i < n ? got : -1;
              } else {
                sl[i] = i0 + i < n ? fine_slot(hv[i], tv[i]) : -1;
              }
            }
            uint4 raw[kBatch];
#pragma unroll
            for (int i = 0; i < kBatch; ++i) {
              raw[i] = sl[i] >= 0 ? __ldg(reinterpret_cast<const uint4*>(rows_b + (hv[i] * head_step + sl[i] * row_step + col)))
                                  : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int i = 0; i < kBatch; ++i) {
              if (i0 + i >= n) break;
              if (sl[i] >= 0) {
                float a[kVec];
                unpack(raw[i], a, static_cast<const T*>(nullptr));
#pragma unroll
                for (int e = 0; e < kVec; ++e) fine[e] += a[e];
              }
              if (hv[i] == group - 1) {  // the token's last head
                if (tv[i] >= 0 && tv[i] < N) {
                  float o[kVec];
#pragma unroll
                  for (int e = 0; e < kVec; ++e) o[e] = fine[e] + coarse[e];
                  store_vec(out_b + int64_t{tv[i]} * out.seq_stride + col, o);
                }
#pragma unroll
                for (int e = 0; e < kVec; ++e) fine[e] = 0.0f;
              }
            }
          }
        }
      }
    }
  }
}

// The token gather for one head a group (dq; the scatter): the same sums in
// the same order as token_gather_kernel, with these changes (the first two
// measured together, not apart: H200, 2026-12-02, benchmarks/gather_bench.py,
// the numbers at token_tuning below; docs/benchmarks.md):
//  - neighbouring lane groups take neighbouring heads of one cell, so a warp
//    writes whole stretches of a token row rather than one head's slice of
//    tokens far apart;
//  - a group loads its next cell's slots (inv) while it loads this cell's
//    rows, and all of a cell's rows (coarse and fine) together: about one
//    memory round trip a cell instead of four;
//  - launch bounds (256, 3): up to 85 registers, no spills (with (256, 4)
//    it spilled 44 bytes and ran 10-15% slower);
//  - blocks of 128 threads (block=128, the default): it uses 72 registers,
//    so an SM holds 28 of its warps in 7 blocks of 128 but only 24 in 3 of
//    256. Measured on an H200 (2026-12-02, fourth session; ncu on N=200,000
//    dq: achieved occupancy 35% -> 41%, 200 -> 180 us): dq 0.18 -> 0.16 ms
//    at N=200,000, 0.48 -> 0.42 ms on the GQA shape; 64-thread blocks
//    (launch bounds (64, 16): 64 registers, 44 bytes spilled) were no faster
//    than 256.
// Up to kOneLevels - 1 coarse levels and cells of up to kOneCell tokens
// (L <= 4, p <= 4); else, and under context parallelism (spill rows),
// token_gather_kernel runs.
constexpr int kOneLevels = 4;
constexpr int kOneCell = 4;

template <typename T, bool kShifted, bool kScaled, int kBlock, int kMinBlocks>
__global__ void __launch_bounds__(kBlock, kMinBlocks)
    token_gather_heads_kernel(Geometry g, SubTensor rows, TokenTensor out, const int32_t* __restrict__ inv,
                              RowLayout lay) {
  constexpr int kVec = Vec<T>::kElems;
  constexpr int kC = kOneLevels - 1;
  const int lane = threadIdx.x % lay.lanes;
  const int groups = kBlock / lay.lanes;
  const int H = static_cast<int>(g.H);
  const int N = static_cast<int>(g.N);
  const int C = g.L - 1;  // coarse levels
  const int lp = g.log2_p;
  const int p = 1 << lp;
  const int cells = kShifted ? (N >> lp) + 1 : (N + p - 1) >> lp;
  const int tasks = cells * H;  // per batch row; checked by the launcher
  const int stride = gridDim.x * groups;
  int level_off[kC];
#pragma unroll
  for (int k = 0; k < kC; ++k) level_off[k] = k < C ? static_cast<int>(g.level_offset[k + 1]) : 0;
  for (int b = blockIdx.y; b < static_cast<int>(g.B); b += gridDim.y) {
    const T* rows_b = static_cast<const T*>(rows.ptr) + b * rows.batch_stride;
    const int32_t* inv_b = inv + int64_t{b} * H * g.P;
    T* out_b = static_cast<T*>(out.ptr) + b * out.batch_stride;
    // Slots of task `task` (-1: no row to add).
    auto load_slots = [&](int task, int (&cs)[kC], int (&fs)[kOneCell]) {
      const int h = task % H;
      const int u = task / H;
      const int32_t* inv_h = inv_b + int64_t{h} * g.P;
      const int t_begin = (u << lp) - (kShifted ? 1 : 0);
#pragma unroll
      for (int k = 0; k < kC; ++k) {
        const int j = (u >> (k * lp)) - (kShifted ? 1 : 0);
        cs[k] = task < tasks && k < C && j >= 0 ? __ldg(inv_h + (level_off[k] + j)) : -1;
      }
#pragma unroll
      for (int i = 0; i < kOneCell; ++i) {
        const int t = t_begin + i;
        fs[i] = task < tasks && i < p && t >= 0 && t < N ? __ldg(inv_h + t) : -1;
      }
    };
    int task = blockIdx.x * groups + static_cast<int>(threadIdx.x) / lay.lanes;
    int cs[kC], fs[kOneCell];
    load_slots(task, cs, fs);
    for (; task < tasks; task += stride) {
      int next_cs[kC], next_fs[kOneCell];
      load_slots(task + stride, next_cs, next_fs);
      const int h = task % H;
      const int u = task / H;
      const int t_begin = (u << lp) - (kShifted ? 1 : 0);
      const T* rows_h = rows_b + h * rows.head_stride;
      T* out_h = out_b + h * out.head_stride;
      for (int v = 0; v < lay.vec_per_lane; ++v) {
        const int col = (lane + v * lay.lanes) * kVec;
        uint4 craw[kC], fraw[kOneCell];
#pragma unroll
        for (int k = 0; k < kC; ++k) {
          craw[k] = load_or_zero(cs[k] >= 0, rows_h + (int64_t{cs[k]} * rows.seq_stride + col));
        }
#pragma unroll
        for (int i = 0; i < kOneCell; ++i) {
          fraw[i] = load_or_zero(fs[i] >= 0, rows_h + (int64_t{fs[i]} * rows.seq_stride + col));
        }
        // coarse(u): levels 1 .. L-1 in order, from +0.
        float coarse[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) coarse[e] = 0.0f;
#pragma unroll
        for (int k = 0; k < kC; ++k) {
          if (cs[k] < 0) continue;
          float a[kVec];
          unpack(craw[k], a, static_cast<const T*>(nullptr));
          const float scale = __int_as_float((127 - (k + 1) * lp) << 23);  // 2^-(l log2_p), exact
#pragma unroll
          for (int e = 0; e < kVec; ++e) coarse[e] += kScaled ? __fmul_rn(a[e], scale) : a[e];  // no FMA
        }
        // The cell's tokens: fine(t) from +0, then fine(t) + coarse(u).
#pragma unroll
        for (int i = 0; i < kOneCell; ++i) {
          const int t = t_begin + i;
          if (i >= p || t < 0 || t >= N) continue;
          float fine[kVec];
#pragma unroll
          for (int e = 0; e < kVec; ++e) fine[e] = 0.0f;
          if (fs[i] >= 0) add_vec<T>(fine, fraw[i]);
          float o[kVec];
#pragma unroll
          for (int e = 0; e < kVec; ++e) o[e] = fine[e] + coarse[e];
          store_vec(out_h + int64_t{t} * out.seq_stride + col, o);
        }
      }
#pragma unroll
      for (int k = 0; k < kC; ++k) cs[k] = next_cs[k];
#pragma unroll
      for (int i = 0; i < kOneCell; ++i) fs[i] = next_fs[i];
    }
  }
}

// The gather backward for a GQA group of kG = 2 or 4 heads with p = 4 (dk,
// dv): the same sums in the same order as token_gather_kernel, with less
// work a (head, level) pair. Nsight Compute showed token_gather_kernel bound
// by instruction issue there (75% of issue slots, 22% of DRAM bandwidth; H200,
// 2026-12-02, docs/benchmarks.md); most of its instructions go to per-pair
// bookkeeping, shuffles and divisions by the runtime group size, while
// about 3% of level-0 pairs and 12.5% of level-1 pairs have a row (random
// q, k at N = 262,144, top_k 2048, L = 4). Here, for a lane group's cell u
// and kv head x, with the group size, the cell and the level count bounded
// at compile time:
//  - every lane loads the slots itself (the same addresses across a lane
//    group, so one request serves it): kG (L-1) coarse slots and, per head,
//    the cell's four level-0 slots, as one 16-byte vector where the slot
//    table allows (vec_slots: P % 4 == 0 and the table 16-byte aligned,
//    checked by the launcher), else one at a time;
//  - the coarse rows are added without branches: a missing row is loaded as
//    zeros, and adding the resulting +0 leaves the sum's bits unchanged (the
//    sum starts at +0 and so is never -0);
//  - a token whose kG level-0 slots are all missing (the common case) skips
//    its fine sum: out(t) = +0 + coarse(u) = coarse(u), bit for bit.
// Neighbouring lane groups take neighbouring cells of one (row, kv head),
// as in token_gather_kernel.
template <typename T, int kG>
__global__ void __launch_bounds__(kThreads, 3)
    token_gather_gqa_kernel(Geometry g, SubTensor rows, TokenTensor out, const int32_t* __restrict__ inv,
                            RowLayout lay, bool vec_slots) {
  static_assert(kG == 2 || kG == 4, "two or four heads a group");
  constexpr int kVec = Vec<T>::kElems;
  constexpr int kC = kOneLevels - 1;
  const int lane = threadIdx.x % lay.lanes;
  const int groups = kThreads / lay.lanes;
  const int heads = static_cast<int>(out.heads);
  const int N = static_cast<int>(g.N);
  const int C = g.L - 1;
  const int cells = (N + 3) >> 2;
  const int pairs = static_cast<int>(g.B) * heads;
  const int stride = gridDim.x * groups;
  const int inv_step = static_cast<int>(g.P);
  const int row_step = static_cast<int>(rows.seq_stride), head_step = static_cast<int>(rows.head_stride);
  int level_off[kC];
#pragma unroll
  for (int k = 0; k < kC; ++k) level_off[k] = k < C ? static_cast<int>(g.level_offset[k + 1]) : 0;
  for (int y = blockIdx.y; y < pairs; y += gridDim.y) {
    const int x = y % heads;
    const int b = y / heads;
    const T* rows_x = static_cast<const T*>(rows.ptr) + b * rows.batch_stride + int64_t{x} * kG * rows.head_stride;
    const int32_t* inv_x = inv + (int64_t{b} * g.H + int64_t{x} * kG) * g.P;
    T* out_x = static_cast<T*>(out.ptr) + b * out.batch_stride + x * out.head_stride;
    for (int u = blockIdx.x * groups + static_cast<int>(threadIdx.x) / lay.lanes; u < cells; u += stride) {
      int cs[kG][kC];
      int4 fs[kG];  // the cell's level-0 slots of head h: tokens 4u .. 4u + 3
#pragma unroll
      for (int h = 0; h < kG; ++h) {
#pragma unroll
        for (int k = 0; k < kC; ++k) {
          cs[h][k] = k < C ? __ldg(inv_x + (h * inv_step + level_off[k] + (u >> (2 * k)))) : -1;
        }
        const int32_t* f = inv_x + (h * inv_step + 4 * u);
        fs[h] = vec_slots ? __ldg(reinterpret_cast<const int4*>(f)) : make_int4(__ldg(f), __ldg(f + 1), __ldg(f + 2), __ldg(f + 3));
      }
      for (int v = 0; v < lay.vec_per_lane; ++v) {
        const int col = (lane + v * lay.lanes) * kVec;
        // coarse(u): the (head, level) pairs in order, from +0.
        float coarse[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) coarse[e] = 0.0f;
#pragma unroll
        for (int h = 0; h < kG; ++h) {
          uint4 raw[kC];
#pragma unroll
          for (int k = 0; k < kC; ++k) {
            raw[k] = load_or_zero(cs[h][k] >= 0, rows_x + (h * head_step + cs[h][k] * row_step + col));
          }
#pragma unroll
          for (int k = 0; k < kC; ++k) {
            if (k >= C) break;  // uniform over the grid
            float a[kVec];
            unpack(raw[k], a, static_cast<const T*>(nullptr));
            const float scale = __int_as_float((127 - 2 * (k + 1)) << 23);  // 4^-(k+1), exact
#pragma unroll
            for (int e = 0; e < kVec; ++e) coarse[e] += __fmul_rn(a[e], scale);  // no FMA: as the CPU twin
          }
        }
        // The cell's tokens: fine(t), the heads in order from +0, then + coarse(u).
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int t = 4 * u + i;
          int sl[kG];
#pragma unroll
          for (int h = 0; h < kG; ++h) sl[h] = i == 0 ? fs[h].x : i == 1 ? fs[h].y : i == 2 ? fs[h].z : fs[h].w;
          float o[kVec];
#pragma unroll
          for (int e = 0; e < kVec; ++e) o[e] = coarse[e];
          int all = sl[0];
#pragma unroll
          for (int h = 1; h < kG; ++h) all &= sl[h];
          if (all != -1) {  // some head has a level-0 row for t (a missing slot is -1, all bits set)
            uint4 fr[kG];
#pragma unroll
            for (int h = 0; h < kG; ++h) {
              fr[h] = load_or_zero(sl[h] >= 0, rows_x + (h * head_step + sl[h] * row_step + col));
            }
            float fine[kVec];
#pragma unroll
            for (int e = 0; e < kVec; ++e) fine[e] = 0.0f;
#pragma unroll
            for (int h = 0; h < kG; ++h) {
              if (sl[h] >= 0) add_vec<T>(fine, fr[h]);
            }
#pragma unroll
            for (int e = 0; e < kVec; ++e) o[e] = fine[e] + coarse[e];
          }
          if (t < N) store_vec(out_x + int64_t{t} * out.seq_stride + col, o);
        }
      }
    }
  }
}

// The scatter backward as one pass over dout (the "window" kernel). Each
// entry's row is the sum the slot gather computes: the tokens of its shifted
// span in order, in fp32 from +0, rounded once. The slot gather reads a token
// once for every selected entry that covers it, up to L times; here one lane
// group walks the shifted span of one top-level entry (level L-1), reading
// each token row once, keeps one running sum per level, and stores each
// entry's sum when its span ends, if the entry has a slot (inv).
//
// Shifted spans nest: entry m of level l covers [c_l (m+1) - 1, c_l (m+2) - 2],
// so every level-l span is a run of whole level-1 spans ("cells": cell i is
// [p (i+1) - 1, p (i+2) - 2]) and lies inside one top-level span. Top span j
// covers cells (j+1) c/p - 1 .. (j+2) c/p - 2; window w = j + 1 runs from
// w = 0 (j = -1: no top entry, but tokens 0 .. c-2 hold finer entries) to
// N_{L-1}. Tokens past N (past N + spill_rows with kSpill) add nothing.
// Neighbouring lane groups take neighbouring heads of one window, so a warp
// reads whole stretches of a token row.
constexpr int kWindowLevels = 4;  // L up to this: the window kernel; else the slot gather

// kL = L (2 .. kWindowLevels): one running sum per level >= 1, in registers.
// Three blocks an SM (up to 85 registers): four (64 registers, spilling)
// measured 0.531 instead of 0.400 ms on B=2 N=262,144 H=16/4 d=64 L=4 and no
// faster with L=3 (H200, 2026-12-01).
template <typename T, bool kSpill, int kL>
__global__ void __launch_bounds__(kThreads, 3)
    window_scatter_backward_kernel(Geometry g, TokenTensor dout, SubTensor dog, const int32_t* __restrict__ inv,
                                   RowLayout lay, TokenTensor spill, int spill_rows) {
  constexpr int kVec = Vec<T>::kElems;
  const int lane = threadIdx.x % lay.lanes;
  const int groups = kThreads / lay.lanes;
  const int H = static_cast<int>(g.H);
  constexpr int L = kL;
  const int lp = g.log2_p;
  const int p = 1 << lp;
  const int N = static_cast<int>(g.N);
  const int N_pad = static_cast<int>(g.N_pad);
  const int end = N + (kSpill ? spill_rows : 0);      // tokens from here on add nothing
  const int cells = 1 << ((L - 2) * lp);              // cells per top span, c_{L-1} / p
  const int tasks = (static_cast<int>(g.level_size(L - 1)) + 1) * H;  // per batch row; checked by the launcher
  // Level l = k + 1 (k = 0 .. L - 2, unrolled) has count(k) entries, at
  // pyramid offset g.level_offset[k + 1] (a constant operand), and its spans
  // are 2^shift(k) cells long.
  auto count = [&](int k) { return N_pad >> ((k + 1) * lp); };
  auto shift = [&](int k) { return k * lp; };
  for (int b = blockIdx.y; b < static_cast<int>(g.B); b += gridDim.y) {
    for (int task = blockIdx.x * groups + static_cast<int>(threadIdx.x) / lay.lanes; task < tasks;
         task += gridDim.x * groups) {
      const int h = task % H;
      const int w = task / H;
      const T* src = static_cast<const T*>(dout.ptr) + b * dout.batch_stride + h * dout.head_stride;
      const T* spill_src =
          kSpill ? static_cast<const T*>(spill.ptr) + b * spill.batch_stride + h * spill.head_stride : nullptr;
      const int32_t* inv_bh = inv + (int64_t{b} * H + h) * g.P;
      T* dst = static_cast<T*>(dog.ptr) + b * dog.batch_stride + h * dog.head_stride;
      for (int v = 0; v < lay.vec_per_lane; ++v) {
        const int col = (lane + v * lay.lanes) * kVec;
        float acc[kL - 1][kVec];  // running sums of levels 1 .. L-1
#pragma unroll
        for (int k = 0; k < kL - 1; ++k) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[k][e] = 0.0f;
        }
        for (int i = w * cells - 1; i < (w + 1) * cells - 1; ++i) {
          // Slots of the coarse entries whose spans end with cell i (-1: none
          // or not selected), loaded with the cell's rows.
          int coarse_slot[kL - 1];
#pragma unroll
          for (int k = 0; k < kL - 1; ++k) {
            const int m = ((i + 1) >> shift(k)) - 1;  // i + 1 >= 0
            const bool ends = ((i + 2) & ((1 << shift(k)) - 1)) == 0;
            coarse_slot[k] = ends && m >= 0 && m < count(k)
                                 ? __ldg(inv_bh + (static_cast<int>(g.level_offset[k + 1]) + m))
                                 : -1;
          }
          const int t_cell = p * (i + 1) - 1;
          for (int u0 = 0; u0 < p; u0 += kBatch) {
            uint4 raw[kBatch];
            int fine_slot[kBatch];
#pragma unroll
            for (int u = 0; u < kBatch; ++u) {
              const int t = t_cell + u0 + u;
              const bool in = u0 + u < p && t >= 0;
              const T* row = !in || t >= end ? nullptr
                             : (!kSpill || t < N) ? src + int64_t{t} * dout.seq_stride + col
                                                  : spill_src + int64_t{t - N} * spill.seq_stride + col;
              raw[u] = load_or_zero(row != nullptr, row);
              fine_slot[u] = in && t < N_pad ? __ldg(inv_bh + t) : -1;
            }
#pragma unroll
            for (int u = 0; u < kBatch; ++u) {
              if (u0 + u >= p) break;
              const int t = t_cell + u0 + u;
              float a[kVec];
              unpack(raw[u], a, static_cast<const T*>(nullptr));
              if (t >= 0 && t < end) {
#pragma unroll
                for (int k = 0; k < kL - 1; ++k) {
#pragma unroll
                  for (int e = 0; e < kVec; ++e) acc[k][e] += a[e];
                }
              }
              if (fine_slot[u] >= 0) {  // a level-0 entry: its one token, from +0
                float o[kVec];
#pragma unroll
                for (int e = 0; e < kVec; ++e) o[e] = 0.0f + a[e];
                store_vec(dst + int64_t{fine_slot[u]} * dog.seq_stride + col, o);
              }
            }
          }
#pragma unroll
          for (int k = 0; k < kL - 1; ++k) {
            if (((i + 2) & ((1 << shift(k)) - 1)) != 0) continue;
            if (coarse_slot[k] >= 0) store_vec(dst + int64_t{coarse_slot[k]} * dog.seq_stride + col, acc[k]);
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[k][e] = 0.0f;
          }
        }
      }
    }
  }
}

// A launch choice forced from the environment, for tests and measurements:
// -1 where `name` is unset, 1 for `one`, 0 for `zero`; anything else is an
// error naming both.
inline int env_switch(const char* name, const char* one, const char* zero) {
  const char* env = std::getenv(name);
  if (env == nullptr) return -1;
  if (std::string(env) == one) return 1;
  if (std::string(env) == zero) return 0;
  throw std::runtime_error(std::string(name) + "='" + env + "': expected " + one + " or " + zero);
}

// The scatter backward's kernel. The slot gather reads, per tile, the
// tile's tokens once for the coarsest level plus 128 p c_l tokens for each
// finer level l < L-1; the window kernel reads them once, but writes its
// slots in token order, scattered over the output. Measured on an H200
// (2026-12-01, benchmarks/gather_bench.py, ms window / slot): B=2 N=262,144
// H=16/4 d=64 L=4 0.400 / 0.623 (slot reads 1.66x the tokens); H=8 d=128 L=3
// N=98,304 0.088 / 0.099 (1.31x), N=262,144 0.209 / 0.236 (1.31x),
// N=200,000 0.163 / 0.163 (1.20x), N=1,048,576 0.747 / 0.617 (1.08x). So the
// window kernel runs where the slot gather would read at least 1.25x the
// tokens (and L <= kWindowLevels).
// LIGHTHOUSE_SCATTER_BACKWARD=window|slot forces one (read once; for
// measurements and tests).
inline bool scatter_backward_by_window(const Geometry& g) {
  static const int forced = env_switch("LIGHTHOUSE_SCATTER_BACKWARD", "window", "slot");
  if (g.L > kWindowLevels) return false;
  if (forced >= 0) return forced == 1;
  int64_t finer = 0;  // tokens the finer levels' entries of one tile span
  for (int l = 0; l < g.L - 1; ++l) finer += kSelectPerLevel * g.p() * g.span(l);
  return 4 * finer >= g.tile_len();
}

template <typename T>
void launch_window_scatter_backward(const ScatterBackwardParams& p, cudaStream_t stream) {
  const Geometry& g = p.g;
  check_32bit(g, "scatter backward");
  const int64_t tasks = (g.level_size(g.L - 1) + 1) * g.H;
  if (tasks >= (int64_t{1} << 31) - kThreads || g.N_pad + g.span(g.L - 1) >= (int64_t{1} << 31)) {
    throw std::runtime_error("lighthouse CUDA scatter backward: N=" + std::to_string(g.N) +
                             " gives indices beyond the kernel's 32-bit range");
  }
  const RowLayout lay = row_layout<T>(g.d);
  const dim3 grid(grid_blocks(tasks, kThreads / lay.lanes), grid_y(g.B));
  auto launch = [&](auto levels) {
    constexpr int kL = decltype(levels)::value;
    if (p.spill_dout.ptr != nullptr) {
      window_scatter_backward_kernel<T, true, kL>
          <<<grid, kThreads, 0, stream>>>(g, p.dout, p.dog, p.inv_ptr, lay, p.spill_dout, static_cast<int>(p.spill_rows));
    } else {
      window_scatter_backward_kernel<T, false, kL>
          <<<grid, kThreads, 0, stream>>>(g, p.dout, p.dog, p.inv_ptr, lay, p.spill_dout, 0);
    }
    LH_CHECK_LAUNCH();
  };
  static_assert(kWindowLevels == 4, "one launch case per level count");
  if (g.L == 2) {
    launch(std::integral_constant<int, 2>{});
  } else if (g.L == 3) {
    launch(std::integral_constant<int, 3>{});
  } else {
    launch(std::integral_constant<int, 4>{});
  }
}

// LIGHTHOUSE_SLOT_GATHER=pair|row picks the gather forward's kernel
// (slot_gather_pair_kernel or slot_gather_kernel; read once; for
// measurements and tests).
inline bool slot_gather_pairs() {
  static const bool pairs = env_switch("LIGHTHOUSE_SLOT_GATHER", "pair", "row") != 0;
  return pairs;
}

template <typename T, bool kShifted>
void launch_slot_gather(const Geometry& g, const SlotJobs& jobs, const int32_t* entries, cudaStream_t stream,
                        const TokenTensor& spill = {}, int64_t spill_rows = 0) {
  check_32bit(g, kShifted ? "scatter backward" : "gather");
  const RowLayout lay = row_layout<T>(g.d);
  // About kRowsPerGroup rows for each lane group: the block's set-up (which
  // tensor, row and head) is paid once for all of them.
  constexpr int64_t kRowsPerGroup = 8;
  const dim3 grid(grid_blocks(g.S, kThreads / lay.lanes * kRowsPerGroup), grid_y(jobs.count * g.B * g.H));
  if constexpr (kShifted) {
    if (spill.ptr != nullptr) {
      slot_gather_kernel<T, true, true>
          <<<grid, kThreads, 0, stream>>>(g, jobs, entries, lay, spill, static_cast<int>(spill_rows));
      LH_CHECK_LAUNCH();
      return;
    }
  }
  if constexpr (!kShifted) {
    bool narrow = true;  // the pair kernel's row offsets are 32-bit
    for (int i = 0; i < jobs.count; ++i) narrow = narrow && jobs.job[i].x.seq_stride < (int64_t{1} << 28);
    if (slot_gather_pairs() && narrow) {
      if (g.pool_first() == g.L - 2) {
        slot_gather_pair_kernel<T, true><<<grid, kThreads, 0, stream>>>(g, jobs, entries, lay);
      } else {
        slot_gather_pair_kernel<T, false><<<grid, kThreads, 0, stream>>>(g, jobs, entries, lay);
      }
      LH_CHECK_LAUNCH();
      return;
    }
    if (g.pool_first() == g.L - 2) {  // two pooled levels (the layout of any job's coarse rows)
      slot_gather_kernel<T, false, false, true>
          <<<grid, kThreads, 0, stream>>>(g, jobs, entries, lay, spill, static_cast<int>(spill_rows));
      LH_CHECK_LAUNCH();
      return;
    }
  }
  slot_gather_kernel<T, kShifted, false>
      <<<grid, kThreads, 0, stream>>>(g, jobs, entries, lay, spill, static_cast<int>(spill_rows));
  LH_CHECK_LAUNCH();
}

// The token gather's launch choices: cells per lane group and launch (the
// grid covers the cells of a (row, head) pair about this many times over),
// and whether the lanes load the slots cooperatively (kCoop): by default
// when a group sums several heads (and the row has lanes enough). Measured on an H200 (2026-12-01,
// benchmarks/gather_bench.py, B=2 N=262,144 H=16/4 d=64 L=4), kCoop took the
// gather backward of dk (four heads a group) from 0.417 to 0.356 ms, but
// those of one head a group from 0.634 to 0.645 ms (dq) and 0.593 to 0.632 ms
// (the scatter).
// For one head a group, token_gather_heads_kernel runs where it applies
// (heads=1, the default; heads=0 forces token_gather_kernel, here and for
// the GQA kernel token_gather_gqa_kernel below), each group
// taking about `tasks` (cell, head) tasks. Measured on an H200 (2026-12-02,
// benchmarks/gather_bench.py, ms, old kernel -> heads kernel): B=2 N=262,144
// H=16/4 d=64 L=4: dq 0.650 -> 0.477, scatter 0.616 -> 0.467; H=8 d=128 L=3
// N=200,000: dq 0.232 -> 0.182, scatter 0.211 -> 0.178; N=98,304: 0.118 ->
// 0.099, 0.108 -> 0.097. tasks=4 and 16, and launch bounds (256, 4), were
// slower. The same head-major mapping in token_gather_kernel (several heads a
// group: dk, dv under GQA) measured 0.374 ms against 0.360, so that kernel
// keeps its mapping.
// LIGHTHOUSE_TOKEN_GATHER="cells=R,coop=0|1[,heads=0|1,tasks=R[,block=128|256]]" overrides
// these choices for tuning runs (scripts/tune-token-gather.sh; read once).
// (TokenTuning and its parser: launch_choices.h.)
inline TokenTuning token_tuning() {
  static const TokenTuning t = [] {
    TokenTuning r;
    const char* env = std::getenv("LIGHTHOUSE_TOKEN_GATHER");
    if (env != nullptr && !parse_token_tuning(env, r)) {
      throw std::runtime_error(std::string("LIGHTHOUSE_TOKEN_GATHER='") + env +
                               "': expected cells=R,coop=0|1[,heads=0|1,tasks=R[,block=128|256]] with R >= 1");
    }
    return r;
  }();
  return t;
}

template <typename T, bool kShifted, bool kScaled>
void launch_token_gather(const Geometry& g, const SubTensor& rows, const TokenTensor& out, const int32_t* inv,
                         cudaStream_t stream, const SubTensor& spill = {}) {
  check_32bit(g, kShifted ? "scatter" : "gather backward");
  const int64_t group = g.H / out.heads;
  if (group * g.P >= (int64_t{1} << 31) || group * rows.head_stride + g.S * rows.seq_stride >= (int64_t{1} << 31)) {
    throw std::runtime_error("lighthouse CUDA token gather: N=" + std::to_string(g.N) + ", " +
                             std::to_string(group) + " heads a group give offsets beyond the kernel's 32-bit range");
  }
  const RowLayout lay = row_layout<T>(g.d);
  const int64_t cells = (g.N >> g.log2_p) + 1;
  const TokenTuning tune = token_tuning();
  if (spill.ptr == nullptr && group == 1 && tune.heads == 1 && g.L <= kOneLevels && g.p() <= kOneCell) {
    const int64_t tasks = cells * g.H;
    const int64_t per_block = tune.block / lay.lanes * tune.tasks;
    const dim3 grid(grid_blocks(tasks, per_block), grid_y(g.B));
    // task + one grid stride must fit 32 bits too (the next task's slots).
    if (tasks + int64_t{grid.x} * (tune.block / lay.lanes) >= (int64_t{1} << 31)) {
      throw std::runtime_error("lighthouse CUDA token gather: N=" + std::to_string(g.N) + ", H=" +
                               std::to_string(g.H) + " give more (cell, head) tasks than the kernel's 32-bit index");
    }
    if (tune.block == 128) {
      token_gather_heads_kernel<T, kShifted, kScaled, 128, 6><<<grid, 128, 0, stream>>>(g, rows, out, inv, lay);
    } else {
      token_gather_heads_kernel<T, kShifted, kScaled, 256, 3><<<grid, 256, 0, stream>>>(g, rows, out, inv, lay);
    }
    LH_CHECK_LAUNCH();
    return;
  }
  if constexpr (!kShifted && kScaled) {
    // The GQA kernel (dk, dv): two or four heads a group, p = 4, L <= 4
    // (heads=0 forces token_gather_kernel).
    if ((group == 2 || group == 4) && tune.heads == 1 && g.L <= kOneLevels && g.p() == 4) {
      const bool vec_slots = g.P % 4 == 0 && reinterpret_cast<uintptr_t>(inv) % 16 == 0;
      const dim3 grid(grid_blocks(cells, kThreads / lay.lanes * tune.cells), grid_y(g.B * out.heads));
      if (group == 2) {
        token_gather_gqa_kernel<T, 2><<<grid, kThreads, 0, stream>>>(g, rows, out, inv, lay, vec_slots);
      } else {
        token_gather_gqa_kernel<T, 4><<<grid, kThreads, 0, stream>>>(g, rows, out, inv, lay, vec_slots);
      }
      LH_CHECK_LAUNCH();
      return;
    }
  }
  const dim3 grid(grid_blocks(cells, kThreads / lay.lanes * tune.cells), grid_y(g.B * out.heads));
  auto launch = [&](auto kernel) {
    kernel<<<grid, kThreads, 0, stream>>>(g, rows, out, inv, lay, spill);
    LH_CHECK_LAUNCH();
  };
  if constexpr (kShifted) {
    if (spill.ptr != nullptr) {  // CP only: one variant
      launch(token_gather_kernel<T, true, kScaled, true, true>);
      return;
    }
  }
  // kCoop needs lanes to be a multiple of kBatch (head rows of 64 bytes or
  // more); smaller rows never take it, whatever the tuning says.
  const bool coop_fits = lay.lanes % kBatch == 0;
  if (coop_fits && (tune.coop == 1 || (tune.coop == -1 && group > 1))) {
    launch(token_gather_kernel<T, kShifted, kScaled, false, true>);
  } else {
    launch(token_gather_kernel<T, kShifted, kScaled, false, false>);
  }
}

}  // namespace
}  // namespace cuda

void run_gather(const GatherParams* p, int count, cudaStream_t stream) {
  if (count < 1 || count > 3) throw std::runtime_error("lighthouse CUDA gather: 1 to 3 tensors at a time");
  cuda::SlotJobs jobs{};
  jobs.count = count;
  for (int i = 0; i < count; ++i) {
    if (p[i].dtype != p[0].dtype || p[i].entries_ptr != p[0].entries_ptr) {
      throw std::runtime_error("lighthouse CUDA gather: tensors of one launch share dtype and entries");
    }
    jobs.job[i] = cuda::SlotJob{p[i].x, p[i].xg, p[i].coarse_ptr};
  }
  LH_CUDA_DISPATCH(p[0].dtype, T, (cuda::launch_slot_gather<T, false>(p[0].g, jobs, p[0].entries_ptr, stream)));
}

void run_scatter_backward(const ScatterBackwardParams& p, cudaStream_t stream) {
  if (p.inv_ptr != nullptr && cuda::scatter_backward_by_window(p.g)) {
    LH_CUDA_DISPATCH(p.dtype, T, (cuda::launch_window_scatter_backward<T>(p, stream)));
    return;
  }
  cuda::SlotJobs jobs{};
  jobs.count = 1;
  jobs.job[0] = cuda::SlotJob{p.dout, p.dog, nullptr};
  LH_CUDA_DISPATCH(p.dtype, T,
                   (cuda::launch_slot_gather<T, true>(p.g, jobs, p.entries_ptr, stream, p.spill_dout, p.spill_rows)));
}

void run_gather_backward(const GatherBackwardParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T, (cuda::launch_token_gather<T, false, true>(p.g, p.dxg, p.dx, p.inv_ptr, stream)));
}

void run_scatter(const ScatterParams& p, cudaStream_t stream) {
  LH_CUDA_DISPATCH(p.dtype, T,
                   (cuda::launch_token_gather<T, true, false>(p.g, p.og, p.out, p.inv_ptr, stream, p.spill_in)));
}

}  // namespace lighthouse
