/*
 * The rank layout of data x context parallelism and the rules a parallel
 * configuration must satisfy (shared/PARALLEL.md). Torch-free and
 * header-only, like kernels/geometry_check.h whose rules it extends: the
 * trainer's configuration (csrc/config/validate.cpp), the process groups and
 * the CP op all use these, under their own names for the values.
 *
 * Layout: world = dp * cp ranks, cp-fastest: rank = dp_rank * cp + cp_rank,
 * so the ranks of one CP group are neighbours (on one node they share
 * NVLink). Head-tail load balancing: with W = cp ranks the sequence is cut
 * into 2W equal chunks and CP rank r holds chunks r and 2W-1-r, in that order.
 */
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/geometry_check.h"

namespace lighthouse::dist {

// Where one rank sits in a dp x cp grid.
struct ParallelLayout {
  int64_t dp = 1;
  int64_t cp = 1;
  int64_t rank = 0;

  int64_t world_size() const { return dp * cp; }
  int64_t cp_rank() const { return rank % cp; }
  int64_t dp_rank() const { return rank / cp; }
  // Global ranks of this rank's CP group (consecutive) and DP group (stride cp).
  std::vector<int64_t> cp_group_ranks() const {
    std::vector<int64_t> r;
    for (int64_t i = 0; i < cp; ++i) r.push_back(dp_rank() * cp + i);
    return r;
  }
  std::vector<int64_t> dp_group_ranks() const {
    std::vector<int64_t> r;
    for (int64_t i = 0; i < dp; ++i) r.push_back(i * cp + cp_rank());
    return r;
  }
};

// Head-tail chunks of one CP group of W ranks.
struct CpChunks {
  int64_t rank = 0;  // CP rank r
  int64_t size = 1;  // W

  int64_t chunks() const { return 2 * size; }
  // Global chunk of local chunk a (0: early, 1: late).
  int64_t chunk(int a) const { return a == 0 ? rank : 2 * size - 1 - rank; }
  // The CP rank that holds chunk c, and which of its two local chunks it is.
  int64_t owner(int64_t c) const { return c < size ? c : 2 * size - 1 - c; }
  int local_index(int64_t c) const { return c < size ? 0 : 1; }
};

// What messages call each value (the config passes its keys).
struct ParallelNames : GeometryNames {
  std::string dp = "dp";
  std::string cp = "cp";
};

// "a or b": the multiples of `unit` around x (only the upper one when the
// lower is below `lo`).
inline std::string nearest_multiples(int64_t x, int64_t unit, int64_t lo) {
  const int64_t below = x / unit * unit;
  const int64_t above = below + unit;
  if (below >= lo && below > 0) return std::to_string(below) + " or " + std::to_string(above);
  return std::to_string(above);
}

// Why dp x cp cannot lay out `world_size` processes ("" when it can), with
// the valid choices.
inline std::string parallel_error(int64_t dp, int64_t cp, int64_t world_size, const ParallelNames& n = {}) {
  using std::to_string;
  if (dp < 1 || cp < 1) {
    return n.dp + " and " + n.cp + " must be >= 1, got " + n.dp + "=" + to_string(dp) + ", " + n.cp + "=" +
           to_string(cp);
  }
  if (dp * cp == world_size) return "";
  std::string valid;
  for (int64_t c = 1; c <= world_size; ++c) {
    if (world_size % c != 0) continue;
    valid += (valid.empty() ? "" : ", ") + n.dp + "=" + to_string(world_size / c) + " " + n.cp + "=" + to_string(c);
  }
  return n.dp + " * " + n.cp + " must equal the number of processes: " + n.dp + "=" + to_string(dp) + " * " + n.cp +
         "=" + to_string(cp) + " = " + to_string(dp * cp) + ", but WORLD_SIZE=" + to_string(world_size) +
         (world_size == 1 ? " (one process: not started by torchrun, or with --nproc-per-node 1)" : "") +
         ". Valid for " + to_string(world_size) + " processes: " + valid + "; or start " + to_string(dp * cp) +
         " processes (torchrun --nproc-per-node)";
}

// Throws std::invalid_argument (parallel_error's message) unless dp x cp lays
// out world_size processes and 0 <= rank < world_size.
inline ParallelLayout make_parallel_layout(int64_t dp, int64_t cp, int64_t world_size, int64_t rank) {
  const std::string err = parallel_error(dp, cp, world_size);
  if (!err.empty()) throw std::invalid_argument(err);
  if (rank < 0 || rank >= world_size) {
    throw std::invalid_argument("rank " + std::to_string(rank) + " is outside [0, " + std::to_string(world_size) + ")");
  }
  return ParallelLayout{dp, cp, rank};
}

// Why a Lighthouse layer cannot run on `seq_len` tokens under context
// parallelism of `cp` ranks ("" when it can), naming the nearest valid
// choices. First the one-device rules (geometry_problems), then: the 2cp
// chunks hold whole tiles of the one-device geometry, so 2cp divides
// T = top_k / 128, and seq_len needs no padding (a multiple of
// pool^(levels-1) * T). Norm scorer only (callers check the scorer).
inline std::string cp_geometry_error(int64_t seq_len, int64_t levels, int64_t pool, int64_t top_k, int64_t cp,
                                     const ParallelNames& n = {}) {
  using std::to_string;
  if (cp < 1) return n.cp + " must be >= 1, got " + to_string(cp);
  GeometryArgs args;
  args.levels = levels;
  args.pool = pool;
  args.top_k = top_k;
  args.seq_len = seq_len;
  const std::vector<GeometryProblem> base = geometry_problems(args, n);
  if (!base.empty()) return base.front().message + ". " + base.front().fix;
  const int64_t tiles = top_k / kSelectPerLevel;
  const int64_t chunks = 2 * cp;
  if (tiles % chunks != 0) {
    int64_t lower = 0, upper = 0;
    for (int64_t w = 1; 2 * w <= tiles; ++w) {
      if (tiles % (2 * w) != 0) continue;
      if (w < cp) lower = w;
      if (w > cp && upper == 0) upper = w;
    }
    std::string cps;
    if (lower > 0) cps = n.cp + "=" + to_string(lower);
    if (upper > 0) cps += (cps.empty() ? "" : " or ") + n.cp + "=" + to_string(upper);
    return "context parallelism: " + n.cp + "=" + to_string(cp) + " cuts the sequence into 2*" + n.cp + "=" +
           to_string(chunks) + " chunks of whole tiles, so " + to_string(chunks) +
           " must divide the tiles T = " + n.top_k + "/128 = " + to_string(tiles) +
           ". Nearest valid: " + (cps.empty() ? std::string("no ") + n.cp + " > 1 splits an odd T" : cps) + " for " +
           n.top_k + "=" + to_string(top_k) + "; or " + n.top_k + "=" +
           nearest_multiples(top_k, 128 * chunks, 128 * chunks) + " for " + n.cp + "=" + to_string(cp);
  }
  const int64_t unit = (int64_t{1} << ((levels - 1) * ceil_log2(pool))) * tiles;
  if (seq_len % unit != 0) {
    const int64_t min_n = min_seq_len(static_cast<int32_t>(levels), ceil_log2(pool), top_k);
    return "context parallelism: sequence length " + n.seq_len + "=" + to_string(seq_len) + " must be a multiple of " +
           n.pool + "^(" + n.levels + "-1) * T = " + to_string(unit) +
           " (chunks of whole tiles, no padding). Nearest valid: " + n.seq_len + "=" +
           nearest_multiples(seq_len, unit, min_n);
  }
  return "";
}

// Why a dense layer cannot run on `seq_len` tokens under context parallelism
// of `cp` ranks ("" when it can): the sequence splits into 2cp equal chunks.
inline std::string cp_dense_error(int64_t seq_len, int64_t cp, const ParallelNames& n = {}) {
  using std::to_string;
  if (cp < 1) return n.cp + " must be >= 1, got " + to_string(cp);
  if (seq_len < 2 * cp || seq_len % (2 * cp) != 0) {
    return "context parallelism: sequence length " + n.seq_len + "=" + to_string(seq_len) + " must split into 2*" +
           n.cp + "=" + to_string(2 * cp) + " equal chunks. Nearest valid: " + n.seq_len + "=" +
           nearest_multiples(seq_len, 2 * cp, 2 * cp);
  }
  return "";
}

}  // namespace lighthouse::dist
