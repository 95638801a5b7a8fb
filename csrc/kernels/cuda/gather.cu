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
 * A group of `lanes` threads owns one row; each thread moves 16-byte vectors.
 * Sums run in fp32 in the same order as the CPU twins (tokens ascending;
 * heads, then levels), and the scales are powers of two, so these stages
 * agree with the CPU twins bit for bit. Indices within a row of the batch
 * (tokens, slots, pyramid entries) are 32-bit (the launchers check that they
 * fit); (batch row, head) pairs come from the grid's y dimension (slot
 * gather) or from one 64-bit division per block task (token gather), so no
 * kernel divides 64-bit integers per row.
 */
#include <cstdio>
#include <cstdlib>

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
  const void* coarse;          // optional pooled coarsest rows [B, heads, N_{L-1}, d] (gather forward)
};

struct SlotJobs {
  SlotJob job[3];
  int count;
};

// out[b, h, s] = scale * sum_{t in span(s)} x[b, t, h / group].
// kShifted: the span of scatter-backward, [j c + c - 1, j c + 2c - 2]; else [j c, j c + c - 1].
// `coarse` (may be null): the level L-1 rows, copied instead of re-pooled.
// kSpill (kShifted only): `spill` holds rows N .. N + spill_rows - 1 of x, the
// next chunk's first rows under context parallelism (params.h). A separate
// instantiation, so the one-device kernels are compiled exactly as without it.
template <typename T, bool kShifted, bool kSpill>
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
    const T* coarse = job.coarse == nullptr
                          ? nullptr
                          : static_cast<const T*>(job.coarse) +
                                (int64_t{b} * job.x.heads + h / group) * g.level_size(g.L - 1) * g.d;
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
      if (!kShifted && coarse != nullptr && l == g.L - 1) {
        const T* row = coarse + int64_t{j} * g.d;
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
        // Four loads in flight, added in token order.
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

// out[b, t, hx] = sum over h in group(hx), then over levels l, of
// (kScaled ? 1/c_l : 1) * rows[b, h, inv(l, index_l(t))], with index_l(t) =
// t / c_l, or (t + 1) / c_l - 1 when kShifted. Positions t < N only.
//
// A block owns `chunk` consecutive tokens of one (row, output head), in three
// steps separated by barriers:
//   1. the slots of every (head, level, index) the chunk needs, into shared
//      memory (one coalesced read of inv);
//   2. the rows of levels >= 1, few (about chunk / c_l + 1 per level and
//      head) and shared by neighbouring tokens, into shared memory;
//   3. the sums: each lane group takes kTok tokens at a time (neighbouring
//      groups neighbouring tokens), issues their level-0 row loads together,
//      adds the staged rows of the other levels and stores.
// Sums in the fixed order: heads, then levels.
struct TokenLayout {
  RowLayout row;
  int chunk;        // tokens per block task (a power of two)
  int max_rows;     // staged rows (levels >= 1) per task, all heads of the group; the slots follow them
  bool heads_fast;  // task order: pairs of one chunk together (else chunks of one pair)
};

// Tokens per block task, unless shared memory is short. 256 measured on an
// H200 (scripts/tune-token-gather.sh, 2026-12-01): gather backward 10% faster
// than 128 on issue 14's shapes (2.40 -> 2.16 ms at B=2 N=256K H=16/4 d=64;
// 0.86 -> 0.79 ms at N=200,000), 64 slower; the task order made no
// difference beyond noise.
constexpr int kChunk = 256;
// Tokens in flight per lane group. Measured on an H100 (bench op --stages,
// 2026-11-22): 2 tokens and four blocks an SM beat 4 tokens with three or
// four blocks (scatter 0.30 vs 0.32-0.34 ms at N=256K, top_k=512).
constexpr int kTok = 2;

__device__ __forceinline__ int level_index(int t, int shift, bool shifted) {
  return shifted ? ((t + 1) >> shift) - 1 : t >> shift;
}

// kSpill (kShifted only): `spill` holds [B, H, L, d] rows added for level l
// where index_l(t) is -1 (the previous chunk's last entries, params.h); a
// separate instantiation, so the one-device kernels are compiled as without it.
template <typename T, bool kShifted, bool kScaled, bool kSpill>
__global__ void __launch_bounds__(kThreads, 4)  // <= 64 registers: four blocks an SM
    token_gather_kernel(Geometry g, SubTensor rows, TokenTensor out, const int32_t* __restrict__ inv, TokenLayout lay,
                        SubTensor spill) {
  constexpr int kVec = Vec<T>::kElems;
  extern __shared__ uint4 smem[];
  const int row_vecs = static_cast<int>(g.d / kVec);
  uint4* staged = smem;                                                        // [max_rows][row_vecs]
  int32_t* slot = reinterpret_cast<int32_t*>(smem + lay.max_rows * row_vecs);  // [group][per_head]
  __shared__ int first_j[kMaxLevels];         // first level-l index the chunk needs
  __shared__ int level_slot[kMaxLevels + 1];  // slot-array offset of (head 0, level l)

  const int lane = threadIdx.x % lay.row.lanes;
  const int group_id = threadIdx.x / lay.row.lanes;
  const int groups = kThreads / lay.row.lanes;
  const int heads = static_cast<int>(out.heads);
  const int group = static_cast<int>(g.H) / heads;
  const int N = static_cast<int>(g.N);
  const int chunks = (N + lay.chunk - 1) / lay.chunk;
  const int pairs = static_cast<int>(g.B) * heads;
  const int64_t tasks = int64_t{chunks} * pairs;
  // Tasks in launch order: with lay.heads_fast the (row, head) pairs of one
  // chunk run side by side (their outputs interleave in memory), else the
  // chunks of one pair.
  for (int64_t task = blockIdx.x; task < tasks; task += gridDim.x) {
    const int y = static_cast<int>(lay.heads_fast ? task % pairs : task / chunks);
    const int ch = static_cast<int>(lay.heads_fast ? task / pairs : task % chunks);
    {
      const int hx = y % heads;
      const int b = y / heads;
      const T* rows_b = static_cast<const T*>(rows.ptr) + b * rows.batch_stride;
      const int t_first = ch * lay.chunk;
      const int t_last = min(t_first + lay.chunk, N) - 1;
      if (threadIdx.x == 0) {
        int run = 0;
        for (int l = 0; l < g.L; ++l) {
          const int shift = l * g.log2_p;
          const int lo = max(level_index(t_first, shift, kShifted), 0);
          const int hi = level_index(t_last, shift, kShifted);
          first_j[l] = lo;
          level_slot[l] = run;
          run += hi >= lo ? hi - lo + 1 : 0;
        }
        level_slot[g.L] = run;
      }
      __syncthreads();
      const int per_head = level_slot[g.L];                  // slots per head, all levels
      const int staged_per_head = per_head - level_slot[1];  // levels >= 1

      // Step 1: the slots.
      for (int hl = 0; hl < group; ++hl) {
        const int32_t* inv_row = inv + (int64_t{b} * g.H + hx * group + hl) * g.P;
        for (int r = threadIdx.x; r < per_head; r += kThreads) {
          int l = 0;
          while (r >= level_slot[l + 1]) ++l;
          slot[hl * per_head + r] = inv_row[g.level_offset[l] + first_j[l] + (r - level_slot[l])];
        }
      }
      __syncthreads();
      // Step 2: the rows of levels >= 1; a missing one is staged as zeros.
      // Adding +0 leaves every sum bit for bit as it was (a sum that starts
      // at +0 is never -0), so step 3 adds every level without a check.
      for (int hl = 0; hl < group; ++hl) {
        const T* head_rows = rows_b + (hx * group + hl) * rows.head_stride;
        for (int sr = group_id; sr < staged_per_head; sr += groups) {
          const int32_t sl = slot[hl * per_head + level_slot[1] + sr];
          for (int v = 0; v < lay.row.vec_per_lane; ++v) {
            const int vi = lane + v * lay.row.lanes;
            staged[(hl * staged_per_head + sr) * row_vecs + vi] =
                sl >= 0 ? __ldg(reinterpret_cast<const uint4*>(head_rows + sl * rows.seq_stride + vi * kVec))
                        : make_uint4(0u, 0u, 0u, 0u);
          }
        }
      }
      __syncthreads();

      // Step 3: the sums.
      for (int base = t_first + group_id; base <= t_last; base += groups * kTok) {
        for (int v = 0; v < lay.row.vec_per_lane; ++v) {
          const int vi = lane + v * lay.row.lanes;
          float acc[kTok][kVec];
#pragma unroll
          for (int u = 0; u < kTok; ++u) {
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[u][e] = 0.0f;
          }
          for (int hl = 0; hl < group; ++hl) {
            const T* head_rows = rows_b + (hx * group + hl) * rows.head_stride + vi * kVec;
            const int32_t* head_slots = slot + hl * per_head;
            const uint4* head_staged = staged + (hl * staged_per_head - level_slot[1]) * row_vecs + vi;
            uint4 raw0[kTok];
#pragma unroll
            for (int u = 0; u < kTok; ++u) {
              const int t = base + u * groups;
              const int32_t sl = t <= t_last ? head_slots[t - first_j[0]] : -1;  // level 0: index t
              raw0[u] = sl >= 0 ? __ldg(reinterpret_cast<const uint4*>(head_rows + sl * rows.seq_stride))
                                : make_uint4(0u, 0u, 0u, 0u);
            }
#pragma unroll
            for (int u = 0; u < kTok; ++u) {
              const int t = base + u * groups;
              if (t > t_last) continue;  // past the chunk: its slots are not looked up
              float a[kVec];
              unpack(raw0[u], a, static_cast<const T*>(nullptr));
#pragma unroll
              for (int e = 0; e < kVec; ++e) acc[u][e] += a[e];  // level 0: scale 1; a missing row adds +0
              for (int l = 1; l < g.L; ++l) {
                const int shift = l * g.log2_p;
                const int j = level_index(t, shift, kShifted);
                if (j < 0) {
                  if (kSpill) {
                    load_vec(static_cast<const T*>(spill.ptr) + b * spill.batch_stride +
                                 (hx * group + hl) * spill.head_stride + l * spill.seq_stride + vi * kVec,
                             a);
#pragma unroll
                    for (int e = 0; e < kVec; ++e) acc[u][e] += a[e];
                  }
                  continue;
                }
                const int rr = level_slot[l] + j - first_j[l];
                unpack(head_staged[rr * row_vecs], a, static_cast<const T*>(nullptr));
                const float scale = kScaled ? __int_as_float((127 - shift) << 23) : 1.0f;  // 2^-shift, exact
#pragma unroll
                for (int e = 0; e < kVec; ++e) acc[u][e] += kScaled ? __fmul_rn(a[e], scale) : a[e];  // no FMA: as the CPU twin
              }
            }
          }
#pragma unroll
          for (int u = 0; u < kTok; ++u) {
            const int t = base + u * groups;
            if (t > t_last) continue;
            T* dst = static_cast<T*>(out.ptr) + b * out.batch_stride + hx * out.head_stride + t * out.seq_stride;
            store_vec(dst + vi * kVec, acc[u]);
          }
        }
      }
      __syncthreads();  // before the next task overwrites the staged rows and slots
    }
  }
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
  slot_gather_kernel<T, kShifted, false>
      <<<grid, kThreads, 0, stream>>>(g, jobs, entries, lay, spill, static_cast<int>(spill_rows));
  LH_CHECK_LAUNCH();
}

// The token gather's launch choices (defaults above);
// LIGHTHOUSE_TOKEN_GATHER="chunk=C,heads_fast=0|1" overrides them for tuning
// runs (scripts/tune-token-gather.sh; read once).
struct TokenTuning {
  int chunk = kChunk;
  bool heads_fast = false;
};

inline TokenTuning token_tuning() {
  static const TokenTuning t = [] {
    TokenTuning r;
    const char* env = std::getenv("LIGHTHOUSE_TOKEN_GATHER");
    if (env == nullptr) return r;
    int c = 0, h = 0;
    if (std::sscanf(env, "chunk=%d,heads_fast=%d", &c, &h) == 2 && c >= kTok && (c & (c - 1)) == 0) {
      r.chunk = c;
      r.heads_fast = h != 0;
    } else {
      throw std::runtime_error(std::string("LIGHTHOUSE_TOKEN_GATHER='") + env +
                               "': expected chunk=C,heads_fast=0|1 with C a power of two");
    }
    return r;
  }();
  return t;
}

template <typename T, bool kShifted, bool kScaled>
void launch_token_gather(const Geometry& g, const SubTensor& rows, const TokenTensor& out, const int32_t* inv,
                         cudaStream_t stream, const SubTensor& spill = {}) {
  check_32bit(g, kShifted ? "scatter" : "gather backward");
  // Per head and chunk: at most chunk / c_l + 2 indices of level l >= 1 (the
  // shifted ones can straddle one more span), and the chunk's level-0 ones.
  // Chunks halve until the staged rows and slots fit the budget.
  constexpr size_t kSmemBudget = 64 * 1024;  // keeps several blocks on an SM
  const int64_t group = g.H / out.heads;
  const TokenTuning tune = token_tuning();
  TokenLayout lay;
  lay.row = row_layout<T>(g.d);
  lay.heads_fast = tune.heads_fast;
  size_t smem = 0;
  for (lay.chunk = tune.chunk;; lay.chunk /= 2) {
    int64_t staged = 0;
    for (int l = 1; l < g.L; ++l) staged += (lay.chunk >> (l * g.log2_p)) + 2;
    lay.max_rows = static_cast<int>(group * staged);
    smem = static_cast<size_t>(lay.max_rows) * static_cast<size_t>(g.d) * sizeof(T) +
           static_cast<size_t>(group * (lay.chunk + 2 + staged)) * sizeof(int32_t);
    if (smem <= kSmemBudget || lay.chunk <= kTok) break;
  }
  const dim3 grid(grid_blocks(((g.N + lay.chunk - 1) / lay.chunk) * g.B * out.heads, 1));
  auto launch = [&](auto kernel) {
    if (smem > 48 * 1024) {
      LH_CUDA_CHECK(
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
    }
    kernel<<<grid, kThreads, smem, stream>>>(g, rows, out, inv, lay, spill);
  };
  if constexpr (kShifted) {
    if (spill.ptr != nullptr) {
      launch(token_gather_kernel<T, true, kScaled, true>);
      LH_CHECK_LAUNCH();
      return;
    }
  }
  launch(token_gather_kernel<T, kShifted, kScaled, false>);
  LH_CHECK_LAUNCH();
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
