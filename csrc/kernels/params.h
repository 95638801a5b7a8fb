/*
 * Parameters shared by every Lighthouse stage, on CPU and CUDA alike.
 *
 * Torch-free on purpose: raw pointers, element strides (int64) and sizes.
 * The LibTorch glue in csrc/ops fills these structs; the CPU twins in
 * kernels/cpu and the CUDA kernels in kernels/cuda read them.
 *
 * Conventions (names as in shared/LIGHTHOUSE.md):
 *   token tensors   [B, N, heads, d]  (the model's layout), last dim contiguous
 *   sub tensors     [B, H, S, d]      (the gathered sub-sequence), last dim contiguous
 *   scores          [B, heads, P]     fp32, contiguous, pyramid index order
 *   entries         [B, H, S]         int32 pyramid index of each slot, causal order
 *   inv             [B, H, P]         int32 slot of each pyramid entry, or -1
 * Positions t >= N (the padding up to N_pad) are zero tokens: they are never
 * read or written, and their scores are 0.
 */
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LH_HD __host__ __device__ __forceinline__
#else
#define LH_HD inline
#endif

namespace lighthouse {

constexpr int kMaxLevels = 16;      // L <= kMaxLevels
constexpr int kSelectPerLevel = 128;  // entries a tile selects at each level
constexpr int kSelectHalf = 64;       // of which by q score, the rest by k score

enum class DType : int32_t { kFloat32 = 0, kFloat64 = 1, kBFloat16 = 2, kFloat16 = 3 };

// Geometry of one call. Filled by make_geometry (geometry.h); every stage
// takes it by value inside its params.
struct Geometry {
  int64_t B = 0;      // batch rows
  int64_t N = 0;      // real sequence length
  int64_t N_pad = 0;  // N rounded up to a multiple of p^(L-1) * T
  int64_t H = 0;      // query heads
  int64_t H_kv = 0;   // key/value heads, H % H_kv == 0
  int64_t d = 0;      // head dim
  int32_t L = 0;      // levels, 2 <= L <= kMaxLevels
  int32_t log2_p = 0; // pooling factor p = 1 << log2_p
  int64_t k_top = 0;  // top-k budget, a multiple of 128
  int64_t T = 0;      // tiles per row = k_top / 128
  int64_t C = 0;      // coarsest entries per tile (>= 128)
  int64_t E = 0;      // entries emitted per tile = C + (L-1) * p * 128
  int64_t S = 0;      // sub-sequence length = T * E
  int64_t P = 0;      // pyramid entries per row = sum_l N_pad / p^l
  // pyr(l, j) = level_offset[l] + j; level_offset[L] == P.
  int64_t level_offset[kMaxLevels + 1] = {};

  LH_HD int64_t p() const { return int64_t{1} << log2_p; }
  // Span of a level-l entry, c_l = p^l.
  LH_HD int64_t span(int l) const { return int64_t{1} << (l * log2_p); }
  // Entries at level l, N_l = N_pad / p^l.
  LH_HD int64_t level_size(int l) const { return N_pad >> (l * log2_p); }
  // Base positions per tile.
  LH_HD int64_t tile_len() const { return N_pad / T; }
  // Level of a pyramid index.
  LH_HD int level_of(int64_t pyr) const {
    int l = 0;
    while (l + 1 < L && pyr >= level_offset[l + 1]) ++l;
    return l;
  }
  // The lowest level whose rows the scores pass pools (CoarsePool): L-2 as
  // well as L-1 when level L-2's spans hold at least 16 tokens (a gather of
  // such an entry reads 16 or more token rows, and pooling it costs at most a
  // sixteenth of a row per token to write), else L-1 alone.
  LH_HD int pool_first() const { return L >= 3 && span(L - 2) >= 16 ? L - 2 : L - 1; }
  // Pooled rows per (row, head): the pyramid entries of levels >= pool_first().
  LH_HD int64_t pooled_rows() const { return P - level_offset[pool_first()]; }
};

// A token tensor [B, N, heads, d]; strides in elements, last dim contiguous.
struct TokenTensor {
  void* ptr = nullptr;
  int64_t batch_stride = 0;
  int64_t seq_stride = 0;
  int64_t head_stride = 0;
  int64_t heads = 0;
};

// A gathered sub-sequence tensor [B, H, S, d]; strides in elements, last dim contiguous.
struct SubTensor {
  void* ptr = nullptr;
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
  int64_t seq_stride = 0;
};

// The coarse levels' pooled q, k, v, written by the scores pass when it reads
// q and k anyway (norm scorer): the gather then copies one row per entry of
// these levels instead of re-reading its c_l tokens. The levels are
// g.pool_first() .. L-1; row r of a head is pyramid entry
// level_offset[pool_first()] + r (R = g.pooled_rows() rows). Same arithmetic
// as the gather's own pooling (each span's tokens summed in order in the
// accumulator type, times 1/c_l), so results do not depend on which path
// pooled.
struct CoarsePool {
  TokenTensor v;          // [B, N, H_kv, d], read only (q, k are the scores' q_src, k_src)
  void* q_ptr = nullptr;  // [B, q_src.heads, R, d] out, contiguous; null: no pooling
  void* k_ptr = nullptr;  // [B, k_src.heads, R, d] out, contiguous
  void* v_ptr = nullptr;  // [B, v.heads, R, d] out, contiguous
};

// Stage 1 and 2: per-token l2 norms (accumulated in fp64, rounded once to
// fp32, NaN ranked as +inf), then per level the max over each span; and,
// optionally, the pooled coarse rows (CoarsePool).
// q_src/k_src are q and k for the norm scorer, the dilated scorer's two SDPA
// outputs otherwise; their head counts may differ (GQA).
struct ScoresParams {
  Geometry g;
  DType dtype = DType::kFloat32;
  TokenTensor q_src;  // [B, N, Hq_src, d], read only
  TokenTensor k_src;  // [B, N, Hk_src, d], read only
  float* sq_ptr = nullptr;  // [B, q_src.heads, P]
  float* sk_ptr = nullptr;  // [B, k_src.heads, P]
  CoarsePool pool;          // optional
};

// Stage 3 and 4: the stratified cascade per (row, head, tile), entries in
// causal order, and the inverse map.
struct SelectParams {
  Geometry g;
  const float* sq_ptr = nullptr;  // [B, H, P]
  const float* sk_ptr = nullptr;  // [B, sk_heads, P]; query head h uses sk head h / (H / sk_heads)
  int64_t sk_heads = 0;
  int32_t* entries_ptr = nullptr;  // [B, H, S] out
  int32_t* inv_ptr = nullptr;      // [B, H, P] out
};

// Pool-on-gather, forward, one tensor at a time (q, k or v):
// xg[b, h, s] = mean of x over the span of entry s (zero tokens past N count
// in the mean), read from head h / (H / x.heads) of x (GQA).
struct GatherParams {
  Geometry g;
  DType dtype = DType::kFloat32;
  TokenTensor x;                         // [B, N, heads, d], read only; heads divides H
  SubTensor xg;                          // [B, H, S, d] out
  const int32_t* entries_ptr = nullptr;  // [B, H, S]
  const void* coarse_ptr = nullptr;      // optional [B, heads, R, d] pooled coarse rows of x (CoarsePool)
};

// The token sums' fixed order (gather backward and scatter, on every device):
// for each output row t, in fp32 from +0,
//   coarse = sum over the heads h of the group (head order), then the levels
//            l = 1 .. L-1 (level order), of the level-l terms;
//   fine   = sum over the heads h (head order) of the level-0 term;
//   out    = fine + coarse.
// The level-l index of t for l >= 1 is a function of its level-1 index, so
// the p tokens of one level-1 span share `coarse`: the CUDA kernel adds it
// once for all of them (kernels/cuda/gather.cu). A missing row adds nothing,
// bit for bit as +0 would (a sum that starts at +0 is never -0).
//
// Pool-on-gather, backward, one tensor at a time: dx[b, t, hx] = sum over the
// query heads h of group hx and the levels l of dxg[b, h, inv(l, t / c_l)] /
// c_l, in the token sums' order above. Per tensor so the caller can free each
// gathered gradient once used.
struct GatherBackwardParams {
  Geometry g;
  DType dtype = DType::kFloat32;
  SubTensor dxg;                     // [B, H, S, d], read only
  TokenTensor dx;                    // [B, N, heads, d] out; heads divides H
  const int32_t* inv_ptr = nullptr;  // [B, H, P]
};

// Scatter, forward, written as a gather: out[b, t, h] = sum over levels l of
// og[b, h, inv(l, (t + 1) / c_l - 1)] (the causality shift c_l - 1), in the
// token sums' order above (one head a group).
//
// Context parallelism (shared/PARALLEL.md): when the rows [0, N) are one chunk
// of a longer sequence, the shift of the previous chunk's last entry of each
// level l >= 1 reaches this chunk's rows t < c_l - 1, where the index above is
// -1. `spill_in` holds those rows: row l is the previous chunk's og row of its
// last level-l entry, zeros where that entry was not emitted (adding +0 keeps
// a sum bit for bit, as it starts at +0 and so is never -0). They are added at
// level l's place in the coarse sum, exactly as one device adds them.
struct ScatterParams {
  Geometry g;
  DType dtype = DType::kFloat32;
  SubTensor og;                    // [B, H, S, d], read only
  TokenTensor out;                 // [B, N, H, d] out
  const int32_t* inv_ptr = nullptr;  // [B, H, P]
  SubTensor spill_in;              // optional [B, H, L, d] (seq_stride steps levels), read only; ptr null: none
};

// Scatter, backward: dog[b, h, s] = sum of dout over the shifted span of
// entry s, [j c + c - 1, j c + 2c - 2] clipped to N.
//
// Context parallelism: `spill_dout` holds the next chunk's first rows of
// dout; rows t in [N, N + spill_rows) of a shifted span are read from its row
// t - N, continuing each sum in token order as one device does (the span is
// then clipped to N + spill_rows).
struct ScatterBackwardParams {
  Geometry g;
  DType dtype = DType::kFloat32;
  TokenTensor dout;                // [B, N, H, d], read only
  SubTensor dog;                   // [B, H, S, d] out
  const int32_t* entries_ptr = nullptr;  // [B, H, S]
  TokenTensor spill_dout;          // optional [B, spill_rows, H, d], read only; ptr null: none
  int64_t spill_rows = 0;
  // [B, H, P] inverse map of `entries` (the op always passes it). The CUDA
  // window kernel reads it where it runs instead of the slot gather (its
  // rule: kernels/cuda/gather.cu); null keeps the slot gather. The CPU twin
  // reads `entries` only.
  const int32_t* inv_ptr = nullptr;
};

}  // namespace lighthouse
