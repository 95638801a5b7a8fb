#include "parallel.h"

#include <stdexcept>

namespace lighthouse::dist {
namespace {

std::string str(int64_t x) { return std::to_string(x); }

// "a or b" for the multiples of `unit` around x (only b when a would be < lo).
std::string nearest_multiples(int64_t x, int64_t unit, int64_t lo) {
  const int64_t below = x / unit * unit;
  const int64_t above = below + unit;
  if (below >= lo && below > 0) return str(below) + " or " + str(above);
  return str(above);
}

}  // namespace

std::vector<int64_t> ParallelLayout::cp_group_ranks() const {
  std::vector<int64_t> ranks;
  for (int64_t i = 0; i < cp; ++i) ranks.push_back(dp_rank() * cp + i);
  return ranks;
}

std::vector<int64_t> ParallelLayout::dp_group_ranks() const {
  std::vector<int64_t> ranks;
  for (int64_t i = 0; i < dp; ++i) ranks.push_back(i * cp + cp_rank());
  return ranks;
}

std::string parallel_error(int64_t dp, int64_t cp, int64_t world_size) {
  if (dp < 1 || cp < 1) {
    return "parallel: dp and cp must be >= 1, got dp=" + str(dp) + ", cp=" + str(cp);
  }
  if (dp * cp == world_size) return "";
  std::string valid;
  for (int64_t c = 1; c <= world_size; ++c) {
    if (world_size % c != 0) continue;
    if (!valid.empty()) valid += ", ";
    valid += "dp=" + str(world_size / c) + " cp=" + str(c);
  }
  return "parallel: dp * cp must equal the number of processes: dp=" + str(dp) + " * cp=" + str(cp) + " = " +
         str(dp * cp) + ", but WORLD_SIZE=" + str(world_size) +
         (world_size == 1 ? " (not started by torchrun, or with one process)" : "") + ". Valid for " +
         str(world_size) + " processes: " + valid +
         " (set --parallel.dp/--parallel.cp, or start dp*cp processes with torchrun --nproc-per-node)";
}

ParallelLayout make_parallel_layout(int64_t dp, int64_t cp, int64_t world_size, int64_t rank) {
  const std::string err = parallel_error(dp, cp, world_size);
  if (!err.empty()) throw std::invalid_argument(err);
  if (rank < 0 || rank >= world_size) {
    throw std::invalid_argument("parallel: rank " + str(rank) + " is outside [0, " + str(world_size) + ")");
  }
  return ParallelLayout{dp, cp, rank};
}

std::string cp_geometry_error(int64_t seq_len, int64_t levels, int64_t pool, int64_t top_k, int64_t cp) {
  if (cp < 1) return "context parallelism: cp must be >= 1, got " + str(cp);
  if (levels < 2 || pool < 2 || (pool & (pool - 1)) != 0 || top_k <= 0 || top_k % 128 != 0) {
    return "context parallelism: invalid Lighthouse config levels=" + str(levels) + ", pool=" + str(pool) +
           ", top_k=" + str(top_k) + " (levels >= 2, pool a power of two >= 2, top_k a positive multiple of 128)";
  }
  const int64_t tiles = top_k / 128;
  const int64_t chunks = 2 * cp;
  if (tiles % chunks != 0) {
    std::string cps;
    int64_t lower = 0, upper = 0;
    for (int64_t w = 1; 2 * w <= tiles; ++w) {
      if (tiles % (2 * w) != 0) continue;
      if (w < cp) lower = w;
      if (w > cp && upper == 0) upper = w;
    }
    if (lower > 0) cps = "cp=" + str(lower);
    if (upper > 0) cps += (cps.empty() ? "" : " or ") + std::string("cp=") + str(upper);
    return "context parallelism: cp=" + str(cp) + " cuts the sequence into 2*cp=" + str(chunks) +
           " chunks of whole tiles, so " + str(chunks) + " must divide the tiles T = top_k/128 = " + str(tiles) +
           " (top_k=" + str(top_k) + "). Nearest valid: " +
           (cps.empty() ? std::string("no cp > 0 splits an odd T") : cps) + " for top_k=" + str(top_k) +
           "; or top_k=" + nearest_multiples(top_k, 128 * chunks, 128 * chunks) + " for cp=" + str(cp);
  }
  int64_t coarse_span = 1;
  for (int64_t l = 1; l < levels; ++l) coarse_span *= pool;
  const int64_t min_n = top_k * coarse_span;
  const int64_t unit = coarse_span * tiles;
  if (seq_len < min_n) {
    return "context parallelism: sequence length N=" + str(seq_len) + " is below the smallest valid N " +
           str(min_n) + " (top_k * pool^(levels-1)) for levels=" + str(levels) + ", pool=" + str(pool) +
           ", top_k=" + str(top_k);
  }
  if (seq_len % unit != 0) {
    return "context parallelism: sequence length N=" + str(seq_len) + " must be a multiple of pool^(levels-1) * T = " +
           str(unit) + " (whole tiles, no padding, for levels=" + str(levels) + ", pool=" + str(pool) +
           ", top_k=" + str(top_k) + "). Nearest valid: N=" + nearest_multiples(seq_len, unit, min_n);
  }
  return "";
}

std::string cp_dense_error(int64_t seq_len, int64_t cp) {
  if (cp < 1) return "context parallelism: cp must be >= 1, got " + str(cp);
  if (seq_len < 2 * cp || seq_len % (2 * cp) != 0) {
    return "context parallelism: sequence length N=" + str(seq_len) + " must split into 2*cp=" + str(2 * cp) +
           " equal chunks. Nearest valid: N=" + nearest_multiples(seq_len, 2 * cp, 2 * cp);
  }
  return "";
}

}  // namespace lighthouse::dist
