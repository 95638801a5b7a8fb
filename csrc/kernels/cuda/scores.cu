/*
 * pyramid_scores on CUDA: in one pass over q and k (and v when pooling),
 * the per-token l2 norms, the span max of every level, and optionally the
 * pooled coarse rows of q, k, v (CoarsePool: the coarsest level, and with
 * kTwo level L-2 as well).
 *
 * Task = (batch row, coarsest span, source, head); one group of kLanes
 * threads runs it, heads of a span on neighbouring groups so that a warp
 * reads contiguous memory. A group walks its span's c tokens with 16-byte
 * loads, kTokens tokens at a time (four loads in flight per lane): it adds
 * each row into the pooled sum (fp32, tokens in order, as the gather and the
 * CPU twin do; with kTwo also into a second sum that restarts at every
 * level-(L-2) span, whose c_{L-2} >= 16 is a multiple of kTokens) and, for q
 * and k, each lane sums the squares of its elements
 * in fp64. The kTokens partial sums are then reduced across the group in
 * one transposed butterfly (each exchange halves the tokens a lane holds),
 * so one shuffle tree, one square root and one coalesced store serve
 * kTokens tokens. The norm is rounded to fp32 once (NaN ranks as +inf): the
 * fp64 sum makes it the correctly rounded norm in practice whatever the
 * order, so the CPU twin ranks entries identically. Padding positions
 * (t >= N) score 0. The levels (max over p children) follow in one small
 * kernel per level, which reads the level below from L2.
 */
#include <cmath>

#include "../geometry.h"
#include "common.cuh"
#include "kernels_cuda.h"

namespace lighthouse {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr unsigned kFullMask = 0xffffffffu;

// kLanes threads per row (8, 16 or 32), kVpl 16-byte vectors per lane.
// With kTwo and one vector a lane, at most 64 registers (eight blocks an SM,
// a few bytes spilled): left free it took 74 (six blocks), and the pass went
// from 0.52 to 0.72 ms on B=2 N=262,144 H=16/4 d=64 L=4; capped, 0.655 ms
// (H200, 2026-12-01, bench op --stages). 0: no cap, as without kTwo.
template <typename T, int kLanes, int kVpl, bool kTwo>
__global__ void __launch_bounds__(kThreads, kTwo && kVpl == 1 ? 8 : 0) scores_kernel(ScoresParams p, int nvec) {
  constexpr int kVec = Vec<T>::kElems;
  // Four 16-byte loads in flight per lane: measured on an H100 (bench op
  // --stages, 2026-11-22) 10% faster than eight (fewer registers, more warps).
  constexpr int kTokens = 4 / kVpl;  // tokens in flight per lane
  constexpr int kGroups = kThreads / kLanes;
  // Butterfly exchanges that split tokens between lanes, then plain ones.
  constexpr int kSplit = ceil_log2(kLanes) < ceil_log2(kTokens) ? ceil_log2(kLanes) : ceil_log2(kTokens);
  constexpr int kHeld = kTokens >> kSplit;     // tokens a lane holds after the split
  constexpr int kCopies = kLanes >> kSplit;    // lanes holding the same tokens
  const Geometry& g = p.g;
  const bool pooling = p.pool.q_ptr != nullptr;
  const int hq = static_cast<int>(p.q_src.heads);
  const int hk = static_cast<int>(p.k_src.heads);
  const int heads = hq + hk + (pooling ? static_cast<int>(p.pool.v.heads) : 0);
  const int c = static_cast<int>(g.span(g.L - 1));
  const int n_coarse = static_cast<int>(g.level_size(g.L - 1));
  const int lane = threadIdx.x % kLanes;
  const float scale = 1.0f / static_cast<float>(c);
  // Pooled rows per (row, head): kTwo, level L-2's (first, at offset 0), then
  // the coarsest level's; else the coarsest level's alone.
  const int64_t pooled = g.pooled_rows();
  const int64_t coarsest_row0 = g.level_offset[g.L - 1] - g.level_offset[g.pool_first()];
  const int c2 = kTwo ? static_cast<int>(g.span(g.L - 2)) : 1;
  const float scale2 = 1.0f / static_cast<float>(c2);
  const int tasks = n_coarse * heads;  // per batch row; < 2^31, checked by the launcher

  for (int64_t b = blockIdx.y; b < g.B; b += gridDim.y) {
    // Every lane runs every iteration (the shuffles need whole warps);
    // groups past the last task idle with zeros.
    for (int base = blockIdx.x * kGroups; base < tasks; base += gridDim.x * kGroups) {
      const int task = base + static_cast<int>(threadIdx.x) / kLanes;
      const bool active = task < tasks;
      const int hh = active ? task % heads : 0;
      const int j = active ? task / heads : 0;
      const int side = hh < hq ? 0 : (hh < hq + hk ? 1 : 2);
      const int head = side == 0 ? hh : (side == 1 ? hh - hq : hh - hq - hk);
      const TokenTensor& src = side == 0 ? p.q_src : (side == 1 ? p.k_src : p.pool.v);
      const int64_t t_begin = int64_t{j} * c;
      const int64_t t_end = min(t_begin + c, g.N);  // real tokens of the span
      const T* row = static_cast<const T*>(src.ptr) + b * src.batch_stride + head * src.head_stride +
                     t_begin * src.seq_stride + lane * kVec;
      float* scores = side == 0 ? p.sq_ptr + (b * hq + head) * g.P
                                : (side == 1 ? p.sk_ptr + (b * hk + head) * g.P : nullptr);
      // Warp-uniform: whether any group of this warp scores its rows.
      const bool norms = __any_sync(kFullMask, active && side < 2);

      float acc[kVpl][kVec];
#pragma unroll
      for (int v = 0; v < kVpl; ++v) {
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[v][e] = 0.0f;
      }
      // Pooled row r of this task's head (computed where stored).
      auto pool_row = [&](int64_t r) {
        void* dst = side == 0 ? p.pool.q_ptr : (side == 1 ? p.pool.k_ptr : p.pool.v_ptr);
        return static_cast<T*>(dst) + ((b * src.heads + head) * pooled + r) * g.d;
      };
      // kTwo only (the one-level kernel compiles as before kTwo existed):
      // level L-2's running sum, and this lane's part of its next row.
      float acc2[kTwo ? kVpl : 1][kVec];
      T* out2 = nullptr;
      if constexpr (kTwo) {
#pragma unroll
        for (int v = 0; v < kVpl; ++v) {
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc2[v][e] = 0.0f;
        }
        if (active && pooling) out2 = pool_row(int64_t{j} * (c / c2)) + lane * kVec;
      }
      for (int64_t t0 = t_begin; t0 < t_begin + c; t0 += kTokens) {
        // Raw 16-byte loads first (all in flight), converted one at a time.
        uint4 raw[kTokens][kVpl];
#pragma unroll
        for (int u = 0; u < kTokens; ++u) {
          const bool real = active && t0 + u < t_end;
#pragma unroll
          for (int v = 0; v < kVpl; ++v) {
            raw[u][v] = (real && lane + v * kLanes < nvec)
                            ? __ldg(reinterpret_cast<const uint4*>(row + v * kLanes * kVec))
                            : make_uint4(0u, 0u, 0u, 0u);
          }
          row += src.seq_stride;
        }
        double part[kTokens];
#pragma unroll
        for (int u = 0; u < kTokens; ++u) {
          part[u] = 0.0;
#pragma unroll
          for (int v = 0; v < kVpl; ++v) {
            float x[kVec];
            unpack(raw[u][v], x, static_cast<const T*>(nullptr));
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
              acc[v][e] += x[e];
              if constexpr (kTwo) acc2[v][e] += x[e];
              if (norms) part[u] = fma(static_cast<double>(x[e]), static_cast<double>(x[e]), part[u]);
            }
          }
        }
        if constexpr (kTwo) {
          if (((t0 + kTokens - t_begin) & (c2 - 1)) == 0) {  // a level-(L-2) span ends
            if (out2 != nullptr) {
#pragma unroll
              for (int v = 0; v < kVpl; ++v) {
                if (lane + v * kLanes < nvec) {
#pragma unroll
                  for (int e = 0; e < kVec; ++e) acc2[v][e] *= scale2;
                  store_vec(out2 + v * kLanes * kVec, acc2[v]);
                }
              }
              out2 += g.d;
            }
#pragma unroll
            for (int v = 0; v < kVpl; ++v) {
#pragma unroll
              for (int e = 0; e < kVec; ++e) acc2[v][e] = 0.0f;
            }
          }
        }
        if (!norms) continue;
        // Transposed butterfly: at exchange k (offset kLanes >> (k + 1)) a
        // lane keeps half of its tokens (the lower lane the first half) and
        // adds its partner's partial sums of them.
        int first = 0;  // first token this lane holds
#pragma unroll
        for (int k = 0; k < kSplit; ++k) {
          const int half = kTokens >> (k + 1);
          const int off = kLanes >> (k + 1);
          const bool upper = (lane & off) != 0;
#pragma unroll
          for (int i = 0; i < half; ++i) {
            const double send = upper ? part[i] : part[i + half];
            const double keep = upper ? part[i + half] : part[i];
            part[i] = keep + __shfl_xor_sync(kFullMask, send, off);
          }
          first += upper ? half : 0;
        }
#pragma unroll
        for (int off = kCopies / 2; off > 0; off /= 2) {
#pragma unroll
          for (int i = 0; i < kHeld; ++i) part[i] += __shfl_xor_sync(kFullMask, part[i], off);
        }
        if (active && side < 2 && lane % kCopies == 0) {
#pragma unroll
          for (int i = 0; i < kHeld; ++i) {
            const int64_t t = t0 + first + i;
            if (t < t_begin + c) {
              float s = static_cast<float>(sqrt(part[i]));
              if (isnan(s)) s = INFINITY;
              scores[t] = s;  // 0 for padding positions (t >= N)
            }
          }
        }
      }
      if (active && pooling) {
        void* dst = side == 0 ? p.pool.q_ptr : (side == 1 ? p.pool.k_ptr : p.pool.v_ptr);
        T* out = kTwo ? pool_row(coarsest_row0 + j)
                      : static_cast<T*>(dst) + ((b * src.heads + head) * n_coarse + j) * g.d;
#pragma unroll
        for (int v = 0; v < kVpl; ++v) {
          const int vi = lane + v * kLanes;
          if (vi < nvec) {
#pragma unroll
            for (int e = 0; e < kVec; ++e) acc[v][e] *= scale;
            store_vec(out + vi * kVec, acc[v]);
          }
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

template <typename T, int kLanes, int kVpl>
void launch_scores(const ScoresParams& p, int nvec, cudaStream_t stream) {
  const bool two = p.pool.q_ptr != nullptr && p.g.pool_first() == p.g.L - 2;
  const int64_t heads = p.q_src.heads + p.k_src.heads + (p.pool.q_ptr != nullptr ? p.pool.v.heads : 0);
  const int64_t tasks = p.g.level_size(p.g.L - 1) * heads;
  if (tasks >= (int64_t{1} << 31) - kThreads || p.g.span(p.g.L - 1) >= (int64_t{1} << 30)) {
    throw std::runtime_error("lighthouse CUDA scores: " + std::to_string(tasks) +
                             " coarsest spans x heads per batch row exceed the kernel's 32-bit task index");
  }
  const dim3 grid(grid_blocks(tasks, kThreads / kLanes), grid_y(p.g.B));
  if (two) {
    scores_kernel<T, kLanes, kVpl, true><<<grid, kThreads, 0, stream>>>(p, nvec);
  } else {
    scores_kernel<T, kLanes, kVpl, false><<<grid, kThreads, 0, stream>>>(p, nvec);
  }
  LH_CHECK_LAUNCH();
  const int64_t scored = p.q_src.heads + p.k_src.heads;
  for (int l = 1; l < p.g.L; ++l) {
    level_kernel<<<grid_blocks(p.g.B * scored * p.g.level_size(l), kThreads), kThreads, 0, stream>>>(p, l);
    LH_CHECK_LAUNCH();
  }
}

template <typename T>
void dispatch_scores(const ScoresParams& p, cudaStream_t stream) {
  const int nvec = static_cast<int>(p.g.d / Vec<T>::kElems);
  if (nvec <= 8) {
    launch_scores<T, 8, 1>(p, nvec, stream);
  } else if (nvec <= 16) {
    launch_scores<T, 16, 1>(p, nvec, stream);
  } else if (nvec <= 32) {
    launch_scores<T, 32, 1>(p, nvec, stream);
  } else if (nvec <= 64) {
    launch_scores<T, 32, 2>(p, nvec, stream);
  } else if (nvec <= 128) {
    launch_scores<T, 32, 4>(p, nvec, stream);
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
