/*
 * The rank layout of data x context parallelism and the rules that a
 * parallel configuration must satisfy (shared/PARALLEL.md). Torch-free, so
 * that the trainer's configuration can validate with the same rules the op
 * and the process groups use (one rule, one place).
 *
 * Layout: world = dp * cp ranks, cp-fastest: rank = dp_rank * cp + cp_rank,
 * so the ranks of one CP group are neighbours (on one node they share
 * NVLink). Head-tail load balancing: with W = cp ranks the sequence is cut
 * into 2W equal chunks and CP rank r holds chunks r and 2W-1-r, in that order.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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
  std::vector<int64_t> cp_group_ranks() const;
  std::vector<int64_t> dp_group_ranks() const;
};

// Throws std::invalid_argument naming the values and the valid choices
// unless dp >= 1, cp >= 1, dp * cp == world_size and 0 <= rank < world_size.
ParallelLayout make_parallel_layout(int64_t dp, int64_t cp, int64_t world_size, int64_t rank);

// The same rules as a message ("" when valid), for configuration checks.
std::string parallel_error(int64_t dp, int64_t cp, int64_t world_size);

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

// Why a Lighthouse layer of this geometry cannot run under context
// parallelism of `cp` ranks on a sequence of `seq_len` tokens, naming the
// nearest valid choices; "" when it can. Rules: the 2cp chunks must hold
// whole tiles of the one-device geometry, so 2cp divides T = top_k / 128,
// and seq_len needs no padding: a multiple of p^(L-1) * T (and at least
// top_k * p^(L-1), the smallest valid N). pool is a power of two >= 2.
std::string cp_geometry_error(int64_t seq_len, int64_t levels, int64_t pool, int64_t top_k, int64_t cp);

// Why a dense layer cannot run under context parallelism ("" when it can):
// seq_len must split into 2cp equal chunks.
std::string cp_dense_error(int64_t seq_len, int64_t cp);

}  // namespace lighthouse::dist
