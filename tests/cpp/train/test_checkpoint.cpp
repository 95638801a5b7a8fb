// Checkpoints (TESTING.md item 13): exact round trip; a save interrupted at
// any stage leaves the previous checkpoint usable; truncated, corrupted,
// incomplete and mismatched checkpoints stop with a message that says what
// is wrong; the newest K are kept.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "model/llama.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/runtime.h"

namespace lighthouse::train {
namespace {
namespace fs = std::filesystem;

config::Config small_config() {
  config::Config c;
  c.model.d_model = 32;
  c.model.layers = 2;
  c.model.heads = 2;
  c.model.kv_heads = 1;
  c.model.ffn_hidden = 48;
  c.model.dense_layers = {0};
  c.lighthouse.levels = 2;
  c.lighthouse.pool = 2;
  c.lighthouse.top_k = 128;
  c.train.seq_len = 256;
  return c;
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("lh-ckpt-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A checkpoint of a small model after `updates` AdamW updates.
  Checkpoint make(int64_t step, const config::Config& cfg, uint64_t seed = 0) {
    model::Llama m(cfg.model, cfg.lighthouse, at::kCPU, seed);
    AdamW opt(m.named_parameters(), cfg.optim);
    at::manual_seed(static_cast<uint64_t>(step));
    for (const auto& p : m.parameters()) p.mutable_grad() = at::randn(p.sizes());
    opt.step(1e-3);
    Checkpoint c;
    c.step = step;
    c.optimizer_steps = opt.steps_taken();
    c.loader_state = {{"position", step}, {"epoch", 0}};
    c.cpu_rng = rng_state_hex(at::kCPU);
    c.config = cfg;
    for (const auto& [name, t] : m.named_parameters()) c.weights[name] = t.detach().clone();
    c.optimizer = opt.state();
    for (auto& [k, v] : c.optimizer) v = v.clone();
    return c;
  }

  static void expect_same(const Checkpoint& a, const Checkpoint& b) {
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.optimizer_steps, b.optimizer_steps);
    EXPECT_EQ(a.loader_state, b.loader_state);
    EXPECT_EQ(a.cpu_rng, b.cpu_rng);
    EXPECT_EQ(a.config, b.config);
    ASSERT_EQ(a.weights.size(), b.weights.size());
    for (const auto& [k, v] : a.weights) EXPECT_TRUE(at::equal(v, b.weights.at(k))) << k;
    ASSERT_EQ(a.optimizer.size(), b.optimizer.size());
    for (const auto& [k, v] : a.optimizer) EXPECT_TRUE(at::equal(v, b.optimizer.at(k))) << k;
  }

  static std::string error_of(const std::string& dir) {
    try {
      load_checkpoint(dir);
    } catch (const CheckpointError& e) {
      return e.what();
    }
    return "";
  }

  fs::path root_;
};

TEST_F(CheckpointTest, RoundTripIsExact) {
  const auto cfg = small_config();
  const Checkpoint c = make(7, cfg);
  const std::string dir = save_checkpoint(root_.string(), c, 3);
  EXPECT_EQ(fs::path(dir).filename(), "step_000007");
  const Checkpoint back = load_checkpoint(dir);
  expect_same(c, back);
  EXPECT_EQ(latest_checkpoint(root_.string()), dir);
  EXPECT_EQ(checkpoint_config(dir), cfg);
  // The RNG state restores the generator exactly.
  const at::Tensor a = at::randn({4});
  set_rng_state_hex(at::kCPU, back.cpu_rng);
  at::manual_seed(999);
  set_rng_state_hex(at::kCPU, back.cpu_rng);
  const at::Tensor b = at::randn({4});
  set_rng_state_hex(at::kCPU, back.cpu_rng);
  EXPECT_TRUE(at::equal(at::randn({4}), b));
  (void)a;
}

TEST_F(CheckpointTest, KeepsTheNewestK) {
  const auto cfg = small_config();
  for (int64_t s : {1, 2, 3, 4}) save_checkpoint(root_.string(), make(s, cfg), 2);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root_)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step_000003", "step_000004"}));
  remove_checkpoints_after(root_.string(), 3);
  EXPECT_EQ(fs::path(latest_checkpoint(root_.string())).filename(), "step_000003");
}

TEST_F(CheckpointTest, InterruptedSaveLeavesThePreviousUsable) {
  const auto cfg = small_config();
  const Checkpoint first = make(1, cfg);
  save_checkpoint(root_.string(), first, 2);
  for (const char* stage : {"tempdir", "model", "optimizer", "state", "rename", "prune"}) {
    SCOPED_TRACE(stage);
    const Checkpoint second = make(2, cfg, 5);
    EXPECT_THROW(save_checkpoint(root_.string(), second, 2,
                                 [&](const std::string& s) {
                                   if (s == stage) throw std::runtime_error("simulated crash");
                                 }),
                 std::runtime_error);
    // Whatever the newest complete checkpoint is, it loads and is exact.
    const std::string latest = latest_checkpoint(root_.string());
    const bool renamed = std::string(stage) == "rename" || std::string(stage) == "prune";
    EXPECT_EQ(fs::path(latest).filename(), renamed ? "step_000002" : "step_000001");
    expect_same(load_checkpoint(latest), renamed ? second : first);
    expect_same(load_checkpoint((root_ / "step_000001").string()), first);
    fs::remove_all(root_ / "step_000002");
  }
  // The next save removes the leftovers of the interrupted ones.
  save_checkpoint(root_.string(), make(3, cfg), 2);
  for (const auto& e : fs::directory_iterator(root_)) {
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();
  }
}

TEST_F(CheckpointTest, TruncatedCorruptedIncompleteFilesAreNamed) {
  const auto cfg = small_config();
  const std::string dir = save_checkpoint(root_.string(), make(4, cfg), 2);
  const fs::path model = fs::path(dir) / "model.safetensors";
  const auto size = fs::file_size(model);
  const std::string original = [&] {
    std::ifstream in(model, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  auto restore = [&] { std::ofstream(model, std::ios::binary | std::ios::trunc) << original; };

  fs::resize_file(model, size / 2);
  EXPECT_NE(error_of(dir).find("model.safetensors is truncated (" + std::to_string(size / 2) + " bytes"),
            std::string::npos)
      << error_of(dir);
  restore();

  std::mt19937 rng(5);
  for (int trial = 0; trial < 5; ++trial) {
    std::string bad = original;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    std::ofstream(model, std::ios::binary | std::ios::trunc) << bad;
    EXPECT_NE(error_of(dir).find("model.safetensors is corrupted (sha256"), std::string::npos) << error_of(dir);
  }
  restore();
  EXPECT_EQ(error_of(dir), "");

  fs::remove(fs::path(dir) / "optimizer.safetensors");
  EXPECT_NE(error_of(dir).find("is incomplete: optimizer.safetensors is missing"), std::string::npos);
  // Without the optimizer (export, logits) the weights still load.
  EXPECT_NO_THROW(load_checkpoint(dir, /*with_optimizer=*/false));

  const fs::path state = fs::path(dir) / "state.json";
  std::ofstream(state, std::ios::trunc) << "{\"format\": \"lighthouse-checkpoint\", \"version\": 1, \"st";
  EXPECT_NE(error_of(dir).find("state.json is corrupted"), std::string::npos) << error_of(dir);
  fs::remove(state);
  EXPECT_NE(error_of(dir).find("is incomplete: state.json is missing"), std::string::npos);
  EXPECT_EQ(latest_checkpoint(root_.string()), "");  // not a complete checkpoint any more
  EXPECT_NE(error_of((root_ / "nope").string()).find("does not exist"), std::string::npos);
}

TEST(CheckpointCompat, OtherShapeOrVocabularyIsNamed) {
  const config::ModelConfig saved = small_config().model;
  config::ModelConfig other = saved;
  other.vocab_size = 384;
  try {
    check_compatible(saved, other, "checkpoint X");
    ADD_FAILURE();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.vocab_size = 320 in the checkpoint, 384 here"), std::string::npos)
        << e.what();
  }
  other = saved;
  other.layers = 3;
  other.d_model = 64;
  try {
    check_compatible(saved, other, "checkpoint X");
    ADD_FAILURE();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.d_model = 32 in the checkpoint, 64 here"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("model.layers = 2 in the checkpoint, 3 here"), std::string::npos);
  }
  other = saved;
  other.attention = "dense";  // modes and geometry may change (the stage switch)
  other.dense_layers = {};
  EXPECT_NO_THROW(check_compatible(saved, other, "checkpoint X"));
}

}  // namespace
}  // namespace lighthouse::train
