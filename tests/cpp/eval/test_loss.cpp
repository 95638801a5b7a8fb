// Held-out loss and loss by position (TESTING.md item 17, shared/EVAL.md
// sections 1-2):
// - the buckets tile 1..N with log-spaced edges;
// - with a test double whose per-token loss depends on the target and its
//   position, the evaluation sees the split's first windows in order (the
//   token stream rebuilt here from the packed documents) and its bucket
//   means and counts equal a recomputation from those windows;
// - with the real model, the held-out loss equals the trainer's validation
//   loss (train::evaluate, a different code path) on the same windows.
// Data: the small pack made by the ctest fixture train_data.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "../data/test_pack.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/tokenizer.h"
#include "eval/loss.h"
#include "eval/model_adapter.h"
#include "io/files.h"
#include "model/llama.h"
#include "train/trainer.h"

namespace lighthouse::eval {
namespace {

std::string data_dir() { return lighthouse::testing::ensure_test_pack(LIGHTHOUSE_TEST_DATA_DIR); }

// The validation token stream, rebuilt from the packed documents.
std::vector<int64_t> val_stream() {
  const data::PackedSplit s = data::read_packed_split(data_dir(), data::Split::kVal);
  std::vector<int64_t> out;
  for (int64_t d = 0; d < s.documents(); ++d) {
    out.push_back(data::kBos);
    for (uint64_t i = s.offsets[d]; i < s.offsets[d + 1]; ++i) out.push_back(s.bytes[i]);
    out.push_back(data::kEos);
  }
  return out;
}

TEST(LossBuckets, TileThePositionsWithLogSpacedEdges) {
  const auto b = position_buckets(4096);
  ASSERT_EQ(b.size(), 9u);
  const int64_t lasts[9] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
  for (size_t i = 0; i < b.size(); ++i) {
    EXPECT_EQ(b[i].last, lasts[i]);
    EXPECT_EQ(b[i].first, i == 0 ? 1 : lasts[i - 1] + 1);
  }
  const auto c = position_buckets(1000);
  EXPECT_EQ(c.back().first, 513);
  EXPECT_EQ(c.back().last, 1000);
  EXPECT_EQ(position_buckets(10).size(), 1u);
  EXPECT_EQ(position_buckets(10)[0].last, 10);
  for (int64_t n = 1; n <= 3000; n += 37) {  // contiguous cover of 1..n
    int64_t next = 1;
    for (const auto& x : position_buckets(n)) {
      ASSERT_EQ(x.first, next);
      ASSERT_GE(x.last, x.first);
      next = x.last + 1;
    }
    ASSERT_EQ(next, n + 1);
  }
  EXPECT_THROW(position_buckets(0), std::invalid_argument);
}

// loss of the target at position p (1-based) = (target % 7) + p / 1000.
class PositionModel : public TokenLossModel {
 public:
  at::Tensor token_losses(const at::Tensor& tokens) override {
    const int64_t B = tokens.size(0), N = tokens.size(1) - 1;
    at::Tensor out = at::empty({B, N});
    for (int64_t b = 0; b < B; ++b) {
      const int64_t* t = tokens.data_ptr<int64_t>() + b * (N + 1);
      windows.emplace_back(t, t + N + 1);
      for (int64_t p = 1; p <= N; ++p) out[b][p - 1] = static_cast<double>(t[p] % 7) + p / 1000.0;
    }
    return out;
  }
  std::vector<std::vector<int64_t>> windows;
};

TEST(LossByPosition, BucketsEqualARecomputationOverTheFirstWindows) {
  const int64_t N = 200, K = 11;
  PositionModel m;
  LossOptions o;
  o.data_dir = data_dir();
  o.seq_len = N;
  o.batch = 4;  // 4 + 4 + 3
  o.windows = K;
  const LossResult r = evaluate_loss(m, o);
  const std::vector<int64_t> stream = val_stream();
  ASSERT_EQ(m.windows.size(), static_cast<size_t>(K));
  for (int64_t w = 0; w < K; ++w) {
    const std::vector<int64_t> want(stream.begin() + w * N, stream.begin() + w * N + N + 1);
    ASSERT_EQ(m.windows[w], want) << "window " << w;
  }
  EXPECT_EQ(r.windows, K);
  EXPECT_EQ(r.tokens, K * N);
  const int64_t edges[][2] = {{1, 16}, {17, 32}, {33, 64}, {65, 128}, {129, 200}};
  ASSERT_EQ(r.buckets.size(), 5u);
  int64_t counted = 0;
  double all = 0;
  for (size_t i = 0; i < 5; ++i) {
    double sum = 0;
    for (int64_t w = 0; w < K; ++w) {
      for (int64_t p = edges[i][0]; p <= edges[i][1]; ++p) sum += static_cast<double>(stream[w * N + p] % 7) + p / 1000.0;
    }
    const int64_t n = K * (edges[i][1] - edges[i][0] + 1);
    EXPECT_EQ(r.bucket_tokens[i], n);
    EXPECT_NEAR(r.bucket_loss[i], sum / n, 1e-6) << "bucket " << edges[i][0] << "-" << edges[i][1];
    counted += r.bucket_tokens[i];
    all += sum;
  }
  EXPECT_EQ(counted, r.tokens);
  EXPECT_NEAR(r.loss, all / static_cast<double>(K * N), 1e-6);
  const auto j = loss_json(r, {{"run", "x"}});
  EXPECT_EQ(j.at("buckets").size(), 5u);
  EXPECT_EQ(j.at("buckets")[4].at("first"), 129);
  EXPECT_EQ(j.at("tokens"), K * N);
}

TEST(LossByPosition, DefaultIsEveryWindowAndTooManyIsAnError) {
  PositionModel m;
  LossOptions o;
  o.data_dir = data_dir();
  o.seq_len = 4096;
  o.batch = 8;
  const int64_t tokens = static_cast<int64_t>(val_stream().size());
  const int64_t W = (tokens - 1) / 4096;
  const LossResult r = evaluate_loss(m, o);
  EXPECT_EQ(r.windows, W);
  EXPECT_EQ(r.tokens, W * 4096);
  o.windows = W + 1;
  try {
    evaluate_loss(m, o);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("asked for " + std::to_string(W + 1) + " validation windows of 4097 tokens"),
              std::string::npos)
        << e.what();
  }
}

TEST(LossByPosition, RealModelHeldOutLossEqualsTheTrainersValidationLoss) {
  config::ModelConfig mc;
  mc.d_model = 64;
  mc.layers = 2;
  mc.heads = 4;
  mc.kv_heads = 2;
  mc.ffn_hidden = 96;
  mc.attention = "dense";
  model::Llama model(mc, model::attention_plan(mc, config::LighthouseConfig{}), at::kCPU, 3);
  const int64_t N = 256, K = 6;
  LlamaEval adapter(model);
  LossOptions o;
  o.data_dir = data_dir();
  o.seq_len = N;
  o.batch = 4;
  o.windows = K;
  const LossResult r = evaluate_loss(adapter, o);
  data::Loader val(data_dir(), data::Split::kVal, 1, N, 0);
  const double trainer = train::evaluate(model, val, K);
  EXPECT_NEAR(r.loss, trainer, 2e-6 * trainer);
  EXPECT_GT(r.loss, 3.0);  // an untrained model: about log(vocab)
  // An untrained model has no use for context: the buckets are flat-ish,
  // all near the mean.
  for (const double b : r.bucket_loss) EXPECT_NEAR(b, r.loss, 0.5);
}

}  // namespace
}  // namespace lighthouse::eval
