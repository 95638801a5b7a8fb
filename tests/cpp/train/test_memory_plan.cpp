// Activation memory planning (csrc/train/memory_plan.h): the per-token
// counts of each mode by hand for one small shape, and the plan's
// properties on the paper presets: paper-530m keeps everything on an H200
// and recomputes on an 80 GB card, paper-1m needs segments on an H200, a
// plan never exceeds its budget, more budget never means more recompute,
// and an impossible budget is reported.
#include <gtest/gtest.h>

#include "config/config.h"
#include "train/memory_plan.h"

namespace lighthouse::train {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::vector<bool> lighthouse_layers(const config::Config& c) {
  std::vector<bool> out(c.model.layers, c.model.attention == "lighthouse");
  for (const int64_t l : config::resolved_dense_layers(c.model)) out[l] = false;
  return out;
}

int64_t parameters(const config::ModelConfig& m) {
  const int64_t D = m.d_model, d = config::head_dim(m);
  return 2 * m.vocab_size * D + D +
         m.layers * (2 * D + D * (m.heads + 2 * m.kv_heads) * d + m.heads * d * D + 3 * D * m.ffn_hidden);
}

MemoryModel model_of(const std::string& preset) {
  const config::Config c = config::load_preset(preset);
  return memory_model(c, lighthouse_layers(c), 2, parameters(c.model));
}

int64_t recomputing(const CheckpointPlan& p, LayerRecompute r) {
  int64_t n = 0;
  for (const auto x : p.layers) n += x == r;
  return n;
}

TEST(MemoryPlan, PerTokenCountsOfADenseLayer) {
  config::Config c;
  c.model.d_model = 8;
  c.model.heads = 2;
  c.model.kv_heads = 1;
  c.model.head_dim = 4;
  c.model.ffn_hidden = 12;
  c.model.layers = 1;
  c.train.seq_len = 16;
  const MemoryModel m = memory_model(c, {false}, 2, 1000);
  // attention (dense): q 8 + k, v 4 each, bf16 = 32 B, lse 2 heads fp32 = 8 B.
  const double att = 2 * (8 + 4 + 4) + 4 * 2;
  // keep: x 32 + h 16 + att + o 16 + s 32 + h2 16 + gate, up, act 3 * 24.
  EXPECT_DOUBLE_EQ(m.keep[0], 32 + 16 + att + 16 + 32 + 16 + 72);
  // selective: x 32 + att + o 16 + a 16 + gate, up 48.
  EXPECT_DOUBLE_EQ(m.selective[0], 32 + att + 16 + 16 + 48);
  EXPECT_DOUBLE_EQ(m.full[0], 32);
  EXPECT_DOUBLE_EQ(m.static_bytes, 16000);
  EXPECT_EQ(m.tokens, 16);
}

TEST(MemoryPlan, Paper530mKeepsEverythingOnAnH200) {
  const MemoryModel m = model_of("paper-530m");
  const CheckpointPlan p = plan_checkpointing(m, 0.9 * 131 * kGiB, /*fused=*/true);
  EXPECT_TRUE(p.fits);
  EXPECT_EQ(recomputing(p, LayerRecompute::kNone), 30) << p.describe();
  EXPECT_LE(p.estimated_bytes, p.budget_bytes);
}

TEST(MemoryPlan, Paper530mOnAnH100RecomputesAndDenseLayersComeFirst) {
  const MemoryModel m = model_of("paper-530m");
  const CheckpointPlan p = plan_checkpointing(m, 0.9 * 79 * kGiB, /*fused=*/true);
  EXPECT_TRUE(p.fits) << p.describe();
  EXPECT_LE(p.estimated_bytes, p.budget_bytes);
  EXPECT_GT(recomputing(p, LayerRecompute::kSelective) + recomputing(p, LayerRecompute::kFull), 0) << p.describe();
  // Dense layers (0, 1, 28, 29) recompute no more than any Lighthouse layer.
  for (const int64_t dense : {0, 1, 28, 29}) {
    for (int64_t l = 2; l < 28; ++l) EXPECT_LE(p.layers[dense], p.layers[l]) << dense << " vs " << l;
  }
}

TEST(MemoryPlan, Paper1mNeedsSegmentsOnAnH200) {
  const MemoryModel m = model_of("paper-1m");
  const CheckpointPlan p = plan_checkpointing(m, 0.9 * 131 * kGiB, /*fused=*/true);
  EXPECT_TRUE(p.fits) << p.describe();
  EXPECT_EQ(recomputing(p, LayerRecompute::kFull), 30) << p.describe();
  int64_t stored = 0;
  for (size_t l = 0; l < p.stores_input.size(); ++l) stored += p.stores_input[l];
  EXPECT_LT(stored, 30) << p.describe();
  EXPECT_GT(stored, 10) << p.describe();
  EXPECT_TRUE(p.stores_input[0]);
}

TEST(MemoryPlan, MoreBudgetNeverRecomputesMore) {
  for (const char* preset : {"paper-530m", "paper-1m", "tiny"}) {
    const MemoryModel m = model_of(preset);
    int64_t last = 1 << 30;
    for (double gib = 8; gib <= 256; gib *= 1.25) {
      const CheckpointPlan p = plan_checkpointing(m, gib * kGiB, true);
      if (!p.fits) continue;
      EXPECT_LE(p.estimated_bytes, p.budget_bytes) << preset << " " << gib;
      int64_t cost = 0;  // full 2, selective 1
      for (const auto x : p.layers) cost += x == LayerRecompute::kFull ? 2 : x == LayerRecompute::kSelective;
      for (const bool s : p.stores_input) cost += !s;
      EXPECT_LE(cost, last) << preset << " " << gib << ": " << p.describe();
      last = cost;
    }
  }
}

TEST(MemoryPlan, ImpossibleBudgetIsReported) {
  const CheckpointPlan p = plan_checkpointing(model_of("paper-1m"), 20 * kGiB, true);
  EXPECT_FALSE(p.fits);
  EXPECT_NE(p.describe().find("over budget"), std::string::npos);
}

TEST(MemoryPlan, UnfusedHasNoSelectiveLayers) {
  const CheckpointPlan p = plan_checkpointing(model_of("paper-530m"), 0.9 * 79 * kGiB, /*fused=*/false);
  EXPECT_EQ(recomputing(p, LayerRecompute::kSelective), 0) << p.describe();
}

}  // namespace
}  // namespace lighthouse::train
