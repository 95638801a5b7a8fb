/*
 * Held-out loss and loss by position (shared/EVAL.md sections 1 and 2).
 *
 * Windows: the first K windows of seq_len + 1 tokens of the validation
 * split, in order (data::Loader's val order; the same windows for every
 * model evaluated on the same pack and seq_len). Position i (1-based,
 * 1..N) is the i-th target of a window: the token predicted from the i
 * tokens before it. Held-out loss = the mean over every target of every
 * window (nats per token; the byte tokenizer's tokens are the text's bytes
 * plus a BOS and an EOS per document); PAD targets do not count.
 *
 * Buckets (log-spaced, factor 2): [1, 16], [17, 32], [33, 64], ..., the
 * last one ending at N (a shorter range if N is not 16 * 2^k). Every
 * position is in exactly one bucket; a bucket's loss is the mean over its
 * targets, its token count how many there were (counts sum to the tokens).
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lighthouse::eval {

// What the loss evaluation asks of a model.
class TokenLossModel {
 public:
  virtual ~TokenLossModel() = default;
  // tokens int64 [B, N+1] on CPU (windows) -> float32 [B, N] on CPU: the
  // cross-entropy of target tokens[:, i+1] given tokens[:, :i+1].
  virtual at::Tensor token_losses(const at::Tensor& tokens) = 0;
};

struct PositionBucket {
  int64_t first = 0, last = 0;  // 1-based positions, inclusive
};

// The buckets of windows of N = seq_len targets (see the file comment).
std::vector<PositionBucket> position_buckets(int64_t seq_len);

struct LossOptions {
  std::string data_dir;  // a packed dataset (lighthouse data)
  int64_t seq_len = 0;   // targets per window
  int64_t batch = 1;     // windows per model call
  int64_t windows = 0;   // windows to evaluate; 0: every window of the split
  std::string label;     // progress prefix; "" = silent
};

struct LossResult {
  std::string data_dir, dataset_id;
  int64_t seq_len = 0, windows = 0, tokens = 0;  // tokens: targets counted
  double loss = 0;                               // mean over them
  std::vector<PositionBucket> buckets;
  std::vector<double> bucket_loss;
  std::vector<int64_t> bucket_tokens;
  double seconds = 0;
};

LossResult evaluate_loss(TokenLossModel& model, const LossOptions& options);

// {"model": meta, "data_dir", "dataset_id", "seq_len", "windows", "tokens",
//  "loss", "unit", "buckets": [{"first", "last", "loss", "tokens"}...], "seconds"}
nlohmann::ordered_json loss_json(const LossResult& result, const nlohmann::ordered_json& meta);

}  // namespace lighthouse::eval
