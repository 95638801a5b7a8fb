/*
 * Batches of token windows from a packed directory (packed.h), with exact
 * resume.
 *
 * The split's token stream is its documents, each BOS + bytes + EOS,
 * concatenated (T tokens). Window w is tokens [w * seq_len, w * seq_len +
 * seq_len + 1): consecutive windows share one token, so every token is a
 * target exactly once per epoch; W = (T - 1) / seq_len windows per epoch.
 * Batches take windows in order from the epoch's order, row by row, and cross
 * epoch boundaries mid-batch if they must.
 *   train: epoch e's order is a permutation of 0..W-1 drawn from (seed, e)
 *          with our own PRNG (splitmix64 + Fisher-Yates): identical on every
 *          platform and library version.
 *   val:   windows in order 0, 1, ..., from the start (seed unused), so
 *          validation losses are comparable across runs; reset() restarts.
 * state() is everything needed to resume exactly (dataset_id, split,
 * seq_len, batch, seed, epoch, position); load_state() refuses a state from
 * another dataset or with another split, seq_len, batch or seed, naming the
 * mismatch.
 *
 * Data parallel: every rank constructs its loader with the same (global)
 * batch and seed and its (rank, world); all ranks walk the same windows and
 * rank r returns rows [r * batch / world, (r + 1) * batch / world) of each
 * global batch (batch % world must be 0). The union of the ranks' rows is
 * exactly the single-process batch, and the state (a global position) is
 * the same on every rank. rank 0 of world 1 is the single-process loader.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/packed.h"
#include "data/tokenizer.h"

namespace lighthouse::data {

// The window order of the torch-free core, exposed for tests.
std::vector<int64_t> epoch_permutation(int64_t windows, uint64_t seed, int64_t epoch);

class Loader {
 public:
  // dir: output of pack(). batch: the global batch (rows of all ranks).
  // Throws if the split has fewer than seq_len + 1 tokens ("... needs
  // seq_len + 1 = N tokens, the split has M"), on a non-positive batch or
  // seq_len, on a rank outside [0, world) or a batch that world does not
  // divide, or on a bad directory (read_packed_split).
  Loader(const std::string& dir, Split split, int64_t batch, int64_t seq_len, uint64_t seed, int64_t rank = 0,
         int64_t world = 1);

  // This rank's rows of the next global batch: int64 CPU
  // [batch / world, seq_len + 1]; inputs = [:, :-1], targets = [:, 1:].
  at::Tensor next();
  // Same rows into a caller's buffer of (batch / world) * (seq_len + 1) int64.
  void next_into(int64_t* out);

  nlohmann::json state() const;
  void load_state(const nlohmann::json& s);
  void reset();  // back to epoch 0, position 0

  int64_t tokens_per_epoch() const { return windows_ * seq_len_; }  // target tokens per epoch
  int64_t windows_per_epoch() const { return windows_; }
  int64_t epoch() const { return epoch_; }
  int64_t position() const { return position_; }  // windows taken in the current epoch
  int64_t split_tokens() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t batch() const { return batch_; }  // global
  int64_t local_batch() const { return batch_ / world_; }
  int64_t rank() const { return rank_; }
  int64_t world() const { return world_; }
  int64_t seq_len() const { return seq_len_; }
  Split split() const { return split_; }
  const std::string& dataset_id() const { return dataset_id_; }

 private:
  int64_t window_at(int64_t index);  // the index-th window of epoch_ (builds its order)

  std::string dir_, dataset_id_;
  Split split_;
  int64_t batch_, seq_len_;
  uint64_t seed_;
  int64_t rank_, world_;
  std::vector<uint16_t> tokens_;  // the split's token stream
  int64_t windows_ = 0;
  int64_t epoch_ = 0, position_ = 0;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace lighthouse::data
