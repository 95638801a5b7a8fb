/*
 * Held-out loss and loss by position (loss.h).
 */
#include "eval/loss.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "data/loader.h"
#include "data/tokenizer.h"
#include "eval/progress.h"
#include "ops/checks.h"

namespace lighthouse::eval {

std::vector<PositionBucket> position_buckets(int64_t seq_len) {
  if (seq_len < 1) throw std::invalid_argument(detail::message("seq_len must be >= 1, got ", seq_len));
  std::vector<PositionBucket> out;
  for (int64_t first = 1, last = 16; first <= seq_len; first = last + 1, last *= 2) {
    out.push_back({first, std::min(last, seq_len)});
  }
  return out;
}

LossResult evaluate_loss(TokenLossModel& model, const LossOptions& o) {
  if (o.batch < 1) throw std::invalid_argument(detail::message("batch must be >= 1, got ", o.batch));
  if (o.windows < 0) throw std::invalid_argument(detail::message("windows must be >= 0, got ", o.windows));
  data::Loader loader(o.data_dir, data::Split::kVal, /*batch=*/1, o.seq_len, /*seed=*/0);
  const int64_t N = o.seq_len, available = loader.windows_per_epoch();
  const int64_t K = o.windows > 0 ? o.windows : available;
  if (K > available) {
    throw std::invalid_argument(detail::message("asked for ", K, " validation windows of ", N + 1, " tokens, but ",
                                                o.data_dir, " has ", available, " (",
                                                loader.split_tokens(), " tokens)"));
  }
  LossResult r;
  r.data_dir = o.data_dir;
  r.dataset_id = loader.dataset_id();
  r.seq_len = N;
  r.windows = K;
  r.buckets = position_buckets(N);
  std::vector<double> pos_sum(static_cast<size_t>(N), 0.0);
  std::vector<int64_t> pos_count(static_cast<size_t>(N), 0);
  ProgressLine progress(o.label, K * N, "tok");
  for (int64_t start = 0; start < K; start += o.batch) {
    const int64_t n = std::min(o.batch, K - start);
    at::Tensor tokens = at::empty({n, N + 1}, at::TensorOptions().dtype(at::kLong));
    int64_t* t = tokens.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) loader.next_into(t + i * (N + 1));
    const at::Tensor losses = model.token_losses(tokens);
    if (losses.dim() != 2 || losses.size(0) != n || losses.size(1) != N || losses.scalar_type() != at::kFloat ||
        !losses.device().is_cpu()) {
      throw std::runtime_error(detail::message("the model returned token losses ", losses.scalar_type(), " ",
                                               losses.sizes(), " on ", losses.device(), " for windows [", n, ", ",
                                               N + 1, "]; expected CPU float32 [", n, ", ", N, "]"));
    }
    const at::Tensor lc = losses.contiguous();
    const float* l = lc.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t p = 0; p < N; ++p) {
        if (t[i * (N + 1) + p + 1] == data::kPad) continue;
        const float v = l[i * N + p];
        if (!std::isfinite(v)) {
          throw std::runtime_error(detail::message("non-finite loss at validation window ", start + i,
                                                   ", position ", p + 1));
        }
        pos_sum[static_cast<size_t>(p)] += v;
        ++pos_count[static_cast<size_t>(p)];
      }
    }
    progress.update((start + n) * N, "validation windows " + std::to_string(start + n) + "/" + std::to_string(K));
  }
  progress.finish();
  double total = 0;
  for (const PositionBucket& b : r.buckets) {
    double s = 0;
    int64_t c = 0;
    for (int64_t p = b.first; p <= b.last; ++p) {
      s += pos_sum[static_cast<size_t>(p - 1)];
      c += pos_count[static_cast<size_t>(p - 1)];
    }
    r.bucket_loss.push_back(c > 0 ? s / static_cast<double>(c) : std::nan(""));
    r.bucket_tokens.push_back(c);
    total += s;
    r.tokens += c;
  }
  r.loss = total / static_cast<double>(r.tokens);
  r.seconds = progress.seconds();
  return r;
}

nlohmann::ordered_json loss_json(const LossResult& r, const nlohmann::ordered_json& meta) {
  nlohmann::ordered_json buckets = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r.buckets.size(); ++i) {
    buckets.push_back({{"first", r.buckets[i].first},
                       {"last", r.buckets[i].last},
                       {"loss", r.bucket_loss[i]},
                       {"tokens", r.bucket_tokens[i]}});
  }
  return {{"model", meta},
          {"split", "val"},
          {"data_dir", r.data_dir},
          {"dataset_id", r.dataset_id},
          {"seq_len", r.seq_len},
          {"windows", r.windows},
          {"window_order", "the split's first windows, in order (data::Loader val)"},
          {"tokens", r.tokens},
          {"loss", r.loss},
          {"unit", "nats per token (byte tokens, plus BOS and EOS per document)"},
          {"buckets", buckets},
          {"seconds", r.seconds}};
}

}  // namespace lighthouse::eval
