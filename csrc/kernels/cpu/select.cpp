/*
 * CPU twin of select: the stratified top-k cascade, one work item per
 * (row, head, tile).
 *
 * Inside a tile, from level L-1 down to 1: candidates are the tile's C
 * coarsest entries, then the p children of each entry selected one level up.
 * The 64 candidates with the largest q score are selected, then the 64 with
 * the largest k score among the rest (ties: smaller index first). Every
 * candidate is emitted; at level 0 all children of the level-1 selection are.
 * The tile's entries are written in causal-key order into its own slots
 * [tile * E, (tile + 1) * E), and the inverse map for the tile's own pyramid
 * ranges is rewritten (-1 where not emitted): no item touches another's
 * outputs.
 */
#include <algorithm>
#include <functional>
#include <utility>
#include <vector>

#include "../select_keys.h"
#include "kernels_cpu.h"

namespace lighthouse {
namespace {

// Marks the (up to) `count` best unmarked candidates by `scores`.
void mark_top(const std::vector<int64_t>& cands, const float* scores, int count,
              std::vector<char>& marked, std::vector<uint64_t>& keys) {
  keys.clear();
  for (size_t i = 0; i < cands.size(); ++i) {
    if (!marked[i]) keys.push_back(rank_key(scores[cands[i]], static_cast<int64_t>(i)));
  }
  const size_t n = std::min<size_t>(count, keys.size());
  std::nth_element(keys.begin(), keys.begin() + n, keys.end(), std::greater<uint64_t>());
  for (size_t r = 0; r < n; ++r) marked[rank_key_index(keys[r])] = 1;
}

}  // namespace

void run_select_cpu(const SelectParams& p, const CpuExec& ex) {
  const Geometry& g = p.g;
  const int64_t group = g.H / p.sk_heads;
  ex.run(g.B * g.H * g.T, 1, [&](int64_t begin, int64_t end) {
    std::vector<int64_t> cands, next;
    std::vector<char> marked;
    std::vector<uint64_t> keys;
    std::vector<std::pair<int64_t, int32_t>> emitted;
    emitted.reserve(g.E);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t tile = item % g.T;
      const int64_t h = (item / g.T) % g.H;
      const int64_t b = item / g.T / g.H;
      const float* sq = p.sq_ptr + (b * g.H + h) * g.P;
      const float* sk = p.sk_ptr + (b * p.sk_heads + h / group) * g.P;
      int32_t* inv = p.inv_ptr + (b * g.H + h) * g.P;
      int32_t* entries = p.entries_ptr + (b * g.H + h) * g.S + tile * g.E;

      for (int l = 0; l < g.L; ++l) {
        const int64_t n_tile = g.level_size(l) / g.T;
        std::fill_n(inv + g.level_offset[l] + tile * n_tile, n_tile, -1);
      }

      emitted.clear();
      cands.clear();
      for (int64_t j = tile * g.C; j < (tile + 1) * g.C; ++j) cands.push_back(j);
      for (int l = g.L - 1; l >= 1; --l) {
        // cands is ascending (coarsest range, then children of ascending
        // parents), so a candidate's position in it orders like its index.
        const int64_t off = g.level_offset[l];
        marked.assign(cands.size(), 0);
        mark_top(cands, sq + off, kSelectHalf, marked, keys);
        mark_top(cands, sk + off, kSelectPerLevel - kSelectHalf, marked, keys);
        next.clear();
        for (size_t i = 0; i < cands.size(); ++i) {
          const int64_t j = cands[i];
          emitted.emplace_back(causal_key(g, l, j, marked[i] != 0), static_cast<int32_t>(off + j));
          if (marked[i]) {
            for (int64_t c = 0; c < g.p(); ++c) next.push_back(j * g.p() + c);
          }
        }
        cands.swap(next);
      }
      for (const int64_t j : cands) emitted.emplace_back(causal_key(g, 0, j, false), static_cast<int32_t>(j));

      std::sort(emitted.begin(), emitted.end());
      for (int64_t s = 0; s < g.E; ++s) {
        entries[s] = emitted[s].second;
        inv[emitted[s].second] = static_cast<int32_t>(tile * g.E + s);
      }
    }
  });
}

}  // namespace lighthouse
