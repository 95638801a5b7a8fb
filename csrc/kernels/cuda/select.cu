/*
 * select on CUDA: the stratified top-k cascade, one block per
 * (row, head, tile), writing the tile's entries directly in causal order plus
 * the inverse map. No global sort, no float atomics.
 *
 * Top-64 choices are exact radix selects over the 64-bit rank keys
 * (select_keys.h: score bits, then complemented index), 8 bits per pass with
 * an integer shared-memory histogram, so they pick exactly the CPU twin's
 * sets. The coarsest candidates (C of them, possibly many) are never stored:
 * keys are recomputed from the scores at each pass and membership is a
 * comparison with the two thresholds.
 *
 * Causal order without sorting: the emitted entries of a tile form a forest
 * (a selected entry's children are the next level's candidates), and key
 * order is the post-order walk of that forest with children in position
 * order. So each entry's slot is its subtree's start plus its subtree size
 * minus one; sizes are summed bottom-up and starts propagated top-down.
 */
#include "../select_keys.h"
#include "common.cuh"
#include "kernels_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kSel = kSelectPerLevel;  // 128 selected per level and tile

// Shared scratch of the block-wide primitives.
struct Scratch {
  int hist[256];
  int warp_sums[kWarps];
  int bin, above, bin_count, total;
};

// The k-th largest of the non-zero keys key(i), i in [0, n): keys >= the
// returned threshold are exactly the top k (keys are unique). Key 0 means
// "not a candidate". Requires at least k non-zero keys.
template <typename KeyFn>
__device__ uint64_t topk_threshold(int n, int k, KeyFn key, Scratch& sc) {
  uint64_t prefix = 0, mask = 0;
  int remaining = k;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += kThreads) sc.hist[i] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += kThreads) {
      const uint64_t x = key(i);
      if (x != 0 && (x & mask) == prefix) atomicAdd(&sc.hist[(x >> shift) & 0xff], 1);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      // Lane L owns bins [8L, 8L+8); find the bin where the count from the
      // top first reaches `remaining`.
      const int lane = threadIdx.x;
      int own = 0;
      for (int e = 0; e < 8; ++e) own += sc.hist[lane * 8 + e];
      int suffix = own;  // inclusive suffix sum over lanes >= lane
      for (int off = 1; off < 32; off *= 2) {
        const int t = __shfl_down_sync(0xffffffffu, suffix, off);
        if (lane + off < 32) suffix += t;
      }
      int above = suffix - own;
      for (int e = 7; e >= 0; --e) {
        const int bin = lane * 8 + e;
        const int cnt = sc.hist[bin];
        if (above < remaining && above + cnt >= remaining) {
          sc.bin = bin;
          sc.above = above;
          sc.bin_count = cnt;
        }
        above += cnt;
      }
    }
    __syncthreads();
    remaining -= sc.above;
    prefix |= static_cast<uint64_t>(sc.bin) << shift;
    mask |= uint64_t{0xff} << shift;
    const bool done = sc.bin_count == remaining;  // the whole bin is in
    __syncthreads();
    if (done) break;
  }
  return prefix;
}

// Calls out(rank, i) for each i in [0, n) with flag(i), rank = the number of
// flagged j < i. Returns the count. Block-uniform.
template <typename FlagFn, typename OutFn>
__device__ int compact(int n, FlagFn flag, OutFn out, Scratch& sc) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  int base = 0;
  for (int chunk = 0; chunk < n; chunk += kThreads) {
    const int i = chunk + threadIdx.x;
    const bool f = i < n && flag(i);
    const unsigned ballot = __ballot_sync(0xffffffffu, f);
    if (lane == 0) sc.warp_sums[warp] = __popc(ballot);
    __syncthreads();
    if (threadIdx.x == 0) {
      int run = 0;
      for (int w = 0; w < kWarps; ++w) {
        const int c = sc.warp_sums[w];
        sc.warp_sums[w] = run;
        run += c;
      }
      sc.total = run;
    }
    __syncthreads();
    if (f) out(base + sc.warp_sums[warp] + __popc(ballot & ((1u << lane) - 1u)), i);
    base += sc.total;
    __syncthreads();
  }
  return base;
}

// Dynamic shared memory of one block; M = 128 * p candidates per finer level.
struct Layout {
  int M;
  size_t sel_j, start_rank, size_top, pre_top, flag, rank, size, bytes;
};

__host__ __device__ inline Layout make_layout(int L, int p) {
  Layout lay;
  lay.M = kSel * p;
  size_t off = sizeof(Scratch);
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off += (bytes + 15) / 16 * 16;
    return at;
  };
  lay.sel_j = take(sizeof(int) * L * kSel);       // [L][128] j of the selected, by rank
  lay.start_rank = take(sizeof(int) * L * kSel);  // [L][128] subtree start of the selected, by rank
  lay.size_top = take(sizeof(int) * kSel);        // [128] subtree size of the selected coarsest
  lay.pre_top = take(sizeof(int) * (kSel + 1));   // [129] exclusive prefix of (size_top - 1)
  lay.flag = take(sizeof(int8_t) * L * lay.M);    // [L][M] selected?
  lay.rank = take(sizeof(int) * L * lay.M);       // [L][M] rank among the selected, or -1
  lay.size = take(sizeof(int) * L * lay.M);       // [L][M] subtree size
  lay.bytes = off;
  return lay;
}

__global__ void __launch_bounds__(kThreads) select_kernel(SelectParams p, Layout lay) {
  extern __shared__ __align__(16) unsigned char smem[];
  Scratch& sc = *reinterpret_cast<Scratch*>(smem);
  int* sel_j = reinterpret_cast<int*>(smem + lay.sel_j);
  int* start_rank = reinterpret_cast<int*>(smem + lay.start_rank);
  int* size_top = reinterpret_cast<int*>(smem + lay.size_top);
  int* pre_top = reinterpret_cast<int*>(smem + lay.pre_top);
  int8_t* flag = reinterpret_cast<int8_t*>(smem + lay.flag);
  int* rank = reinterpret_cast<int*>(smem + lay.rank);
  int* size = reinterpret_cast<int*>(smem + lay.size);

  const Geometry& g = p.g;
  const int L = g.L;
  const int pp = 1 << g.log2_p;
  const int M = lay.M;
  const int64_t group = g.H / p.sk_heads;

  for (int64_t blk = blockIdx.x; blk < g.B * g.H * g.T; blk += gridDim.x) {
    const int64_t tile = blk % g.T;
    const int64_t h = (blk / g.T) % g.H;
    const int64_t b = blk / g.T / g.H;
    const float* sq = p.sq_ptr + (b * g.H + h) * g.P;
    const float* sk = p.sk_ptr + (b * p.sk_heads + h / group) * g.P;
    int32_t* inv = p.inv_ptr + (b * g.H + h) * g.P;
    int32_t* entries = p.entries_ptr + (b * g.H + h) * g.S;

    // The tile's own pyramid ranges start as "not emitted".
    for (int l = 0; l < L; ++l) {
      const int64_t n_tile = g.level_size(l) / g.T;
      int32_t* base = inv + g.level_offset[l] + tile * n_tile;
      for (int64_t i = threadIdx.x; i < n_tile; i += kThreads) base[i] = -1;
    }

    // Coarsest level: C candidates j0 + i.
    const int C = static_cast<int>(g.C);
    const int64_t j0 = tile * g.C;
    {
      const int64_t off = g.level_offset[L - 1];
      auto key_q = [&](int i) { return rank_key(sq[off + j0 + i], j0 + i); };
      const uint64_t thr_q = topk_threshold(C, kSelectHalf, key_q, sc);
      auto key_k = [&](int i) { return key_q(i) >= thr_q ? uint64_t{0} : rank_key(sk[off + j0 + i], j0 + i); };
      const uint64_t thr_k = topk_threshold(C, kSel - kSelectHalf, key_k, sc);
      int* sel = sel_j + (L - 1) * kSel;
      compact(
          C, [&](int i) { return key_q(i) >= thr_q || key_k(i) >= thr_k; },
          [&](int r, int i) { sel[r] = static_cast<int>(j0 + i); }, sc);
    }

    // Finer levels L-2 .. 1: the p children of each selected parent, in
    // position order (parents by rank, children contiguous).
    for (int l = L - 2; l >= 1; --l) {
      const int64_t off = g.level_offset[l];
      const int* parent = sel_j + (l + 1) * kSel;
      auto j_of = [&](int i) { return static_cast<int64_t>(parent[i >> g.log2_p]) * pp + (i & (pp - 1)); };
      auto key_q = [&](int i) {
        const int64_t j = j_of(i);
        return rank_key(sq[off + j], j);
      };
      const uint64_t thr_q = topk_threshold(M, kSelectHalf, key_q, sc);
      auto key_k = [&](int i) {
        const int64_t j = j_of(i);
        return key_q(i) >= thr_q ? uint64_t{0} : rank_key(sk[off + j], j);
      };
      const uint64_t thr_k = topk_threshold(M, kSel - kSelectHalf, key_k, sc);
      int8_t* fl = flag + l * M;
      int* rk = rank + l * M;
      for (int i = threadIdx.x; i < M; i += kThreads) {
        fl[i] = (key_q(i) >= thr_q || key_k(i) >= thr_k) ? 1 : 0;
        rk[i] = -1;
      }
      __syncthreads();
      int* sel = sel_j + l * kSel;
      compact(
          M, [&](int i) { return fl[i] != 0; },
          [&](int r, int i) {
            sel[r] = static_cast<int>(j_of(i));
            rk[i] = r;
          },
          sc);
    }

    // Subtree sizes, bottom-up (level-0 entries are leaves of size 1).
    for (int l = 1; l <= L - 2; ++l) {
      const int* child_size = size + (l - 1) * M;
      for (int i = threadIdx.x; i < M; i += kThreads) {
        int sz = 1;
        const int r = rank[l * M + i];
        if (r >= 0) {
          for (int c = 0; c < pp; ++c) sz += l == 1 ? 1 : child_size[r * pp + c];
        }
        size[l * M + i] = sz;
      }
      __syncthreads();
    }
    for (int r = threadIdx.x; r < kSel; r += kThreads) {
      int sz = 1;
      for (int c = 0; c < pp; ++c) sz += L - 2 == 0 ? 1 : size[(L - 2) * M + r * pp + c];
      size_top[r] = sz;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int run = 0;
      for (int r = 0; r < kSel; ++r) {
        pre_top[r] = run;
        run += size_top[r] - 1;
      }
      pre_top[kSel] = run;
    }
    __syncthreads();

    // Coarsest entries: start = i + (extra size of the selected before it).
    {
      const int64_t off = g.level_offset[L - 1];
      const int* sel = sel_j + (L - 1) * kSel;
      const int64_t tile_base = tile * g.E;
      for (int i = threadIdx.x; i < C; i += kThreads) {
        const int j = static_cast<int>(j0 + i);
        int lo = 0, hi = kSel;  // count of selected with index < j
        while (lo < hi) {
          const int mid = (lo + hi) / 2;
          if (sel[mid] < j) {
            lo = mid + 1;
          } else {
            hi = mid;
          }
        }
        const bool selected = lo < kSel && sel[lo] == j;
        const int start = static_cast<int>(tile_base) + i + pre_top[lo];
        const int slot = selected ? start + size_top[lo] - 1 : start;
        if (selected) start_rank[(L - 1) * kSel + lo] = start;
        entries[slot] = static_cast<int32_t>(off + j);
        inv[off + j] = slot;
      }
      __syncthreads();
    }

    // Finer levels, top-down: a child's start follows its parent's start and
    // its elder siblings' subtrees.
    for (int l = L - 2; l >= 0; --l) {
      const int64_t off = g.level_offset[l];
      const int* parent = sel_j + (l + 1) * kSel;
      const int* parent_start = start_rank + (l + 1) * kSel;
      for (int i = threadIdx.x; i < M; i += kThreads) {
        const int r = i >> g.log2_p;
        const int c = i & (pp - 1);
        int start = parent_start[r];
        for (int e = 0; e < c; ++e) start += l == 0 ? 1 : size[l * M + r * pp + e];
        const int sz = l == 0 ? 1 : size[l * M + i];
        const int slot = start + sz - 1;
        const int64_t j = static_cast<int64_t>(parent[r]) * pp + c;
        if (l >= 1 && rank[l * M + i] >= 0) start_rank[l * kSel + rank[l * M + i]] = start;
        entries[slot] = static_cast<int32_t>(off + j);
        inv[off + j] = slot;
      }
      __syncthreads();
    }
  }
}

}  // namespace
}  // namespace cuda

void run_select(const SelectParams& p, cudaStream_t stream) {
  const cuda::Layout lay = cuda::make_layout(p.g.L, static_cast<int>(p.g.p()));
  if (lay.bytes > 48 * 1024) {
    LH_CUDA_CHECK(cudaFuncSetAttribute(cuda::select_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(lay.bytes)));
  }
  const int64_t blocks = p.g.B * p.g.H * p.g.T;
  cuda::select_kernel<<<cuda::grid_blocks(blocks, 1), cuda::kThreads, lay.bytes, stream>>>(p, lay);
  LH_CHECK_LAUNCH();
}

}  // namespace lighthouse
