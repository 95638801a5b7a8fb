// Checkpoints (TESTING.md item 13): exact round trip with one state per
// process; a save interrupted at any stage leaves the previous checkpoint
// usable; truncated, corrupted, incomplete and mismatched checkpoints stop
// with a message that says what is wrong; the newest K are kept; version-1
// state.json files still load; every path form a command accepts resolves
// (resolve_checkpoint).
//
// Paths through io/files.h only: this binary also runs with libtorch.so
// preloaded (ctest checkpoint_with_torch_first), where std::filesystem's
// remove_all is libtorch's copy and crashes.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "io/files.h"
#include "model/llama.h"
#include "small_model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/runtime.h"

namespace lighthouse::train {
namespace {

using lighthouse::testing::slurp;
using lighthouse::testing::small_config;
using lighthouse::testing::TempDir;
using lighthouse::testing::write_bytes;

class CheckpointTest : public ::testing::Test {
 protected:
  std::string root() const { return tmp_ / "ckpt"; }

  // A checkpoint of the small model after one AdamW update, with `ranks`
  // process states.
  Checkpoint make(int64_t step, const config::Config& cfg, uint64_t seed = 0, int ranks = 1) {
    model::Llama m = lighthouse::testing::small_model(cfg, seed);
    AdamW opt(m.named_parameters(), cfg.optim);
    at::manual_seed(static_cast<uint64_t>(step));
    for (const auto& p : m.parameters()) p.mutable_grad() = at::randn(p.sizes());
    opt.step(1e-3);
    Checkpoint c;
    c.step = step;
    c.optimizer_steps = opt.steps_taken();
    for (int r = 0; r < ranks; ++r) {
      RankState rs;
      rs.loader_state = {{"position", step}, {"epoch", r}};
      rs.cpu_rng = rng_state_hex(at::kCPU);
      at::randn({3});  // another state for the next rank
      c.ranks.push_back(rs);
    }
    c.config = cfg;
    for (const auto& [name, t] : m.named_parameters()) c.weights[name] = t.detach().clone();
    c.optimizer = opt.state();
    for (auto& [k, v] : c.optimizer) v = v.clone();
    return c;
  }

  static void expect_same(const Checkpoint& a, const Checkpoint& b) {
    EXPECT_EQ(a.step, b.step);
    EXPECT_EQ(a.optimizer_steps, b.optimizer_steps);
    ASSERT_EQ(a.ranks.size(), b.ranks.size());
    for (size_t r = 0; r < a.ranks.size(); ++r) {
      EXPECT_EQ(a.ranks[r].loader_state, b.ranks[r].loader_state) << "rank " << r;
      EXPECT_EQ(a.ranks[r].cpu_rng, b.ranks[r].cpu_rng) << "rank " << r;
      EXPECT_EQ(a.ranks[r].cuda_rng, b.ranks[r].cuda_rng) << "rank " << r;
    }
    EXPECT_EQ(a.config, b.config);
    lighthouse::testing::expect_equal_tensors(a.weights, b.weights);
    lighthouse::testing::expect_equal_tensors(a.optimizer, b.optimizer);
  }

  static std::string error_of(const std::string& dir) {
    try {
      load_checkpoint(dir);
    } catch (const CheckpointError& e) {
      return e.what();
    }
    return "";
  }

  static std::string base(const std::string& path) { return path.substr(path.rfind('/') + 1); }

  TempDir tmp_;
};

TEST_F(CheckpointTest, RoundTripIsExact) {
  const auto cfg = small_config();
  for (const int ranks : {1, 3}) {
    SCOPED_TRACE(ranks);
    const Checkpoint c = make(7 + ranks, cfg, 0, ranks);
    const std::string dir = save_checkpoint(root(), c, 3);
    EXPECT_EQ(base(dir), ranks == 1 ? "step_000008" : "step_000010");
    const Checkpoint back = load_checkpoint(dir);
    expect_same(c, back);
    if (ranks > 1) EXPECT_NE(back.ranks[0].cpu_rng, back.ranks[1].cpu_rng);  // each its own
    EXPECT_EQ(latest_checkpoint(root()), dir);
    EXPECT_EQ(checkpoint_config(dir), cfg);
    EXPECT_EQ(&rank_state(back, ranks - 1, ranks), &back.ranks.back());
  }
  // The RNG state restores the generator exactly.
  const Checkpoint back = load_checkpoint(latest_checkpoint(root()));
  set_rng_state_hex(at::kCPU, back.ranks[0].cpu_rng);
  const at::Tensor b = at::randn({4});
  at::manual_seed(999);
  set_rng_state_hex(at::kCPU, back.ranks[0].cpu_rng);
  EXPECT_TRUE(at::equal(at::randn({4}), b));
}

TEST_F(CheckpointTest, RankStatesMustMatchTheNumberOfProcesses) {
  const Checkpoint c = load_checkpoint(save_checkpoint(root(), make(2, small_config(), 0, 2), 2));
  EXPECT_ERROR_HAS(rank_state(c, 0, 1), "holds the state of 2 process(es); this run has 1 (rank 0)");
  EXPECT_ERROR_HAS(rank_state(c, 2, 2), "this run has 2 (rank 2)");
  Checkpoint none = make(3, small_config());
  none.ranks.clear();
  EXPECT_ERROR_HAS(save_checkpoint(root(), none, 2), "holds no rank state");
}

// Checkpoints written before per-rank states (state.json version 1: one
// loader state and one RNG state at the top level) load as one rank.
TEST_F(CheckpointTest, ReadsVersionOneStateFiles) {
  const Checkpoint c = make(5, small_config());
  const std::string dir = save_checkpoint(root(), c, 2);
  nlohmann::ordered_json state = nlohmann::ordered_json::parse(io::read_file(dir + "/state.json"));
  ASSERT_EQ(state["version"], 2);
  ASSERT_EQ(state["ranks"].size(), 1u);
  nlohmann::ordered_json v1;
  for (auto it = state.begin(); it != state.end(); ++it) {
    if (it.key() == "ranks") {
      v1["loader_state"] = state["ranks"][0]["loader_state"];
      v1["rng"] = state["ranks"][0]["rng"];
    } else {
      v1[it.key()] = it.value();
    }
  }
  v1["version"] = 1;
  io::write_file_atomic(dir + "/state.json", v1.dump(2) + "\n");
  const Checkpoint back = load_checkpoint(dir);
  expect_same(c, back);
  v1["version"] = 3;
  io::write_file_atomic(dir + "/state.json", v1.dump(2) + "\n");
  EXPECT_NE(error_of(dir).find("format version 3, this program reads versions 1 to 2"), std::string::npos)
      << error_of(dir);
}

TEST_F(CheckpointTest, KeepsTheNewestK) {
  const auto cfg = small_config();
  for (int64_t s : {1, 2, 3, 4}) save_checkpoint(root(), make(s, cfg), 2);
  EXPECT_EQ(io::list_dir(root()), (std::vector<std::string>{"step_000003", "step_000004"}));
  remove_checkpoints_after(root(), 3);
  EXPECT_EQ(io::list_dir(root()), (std::vector<std::string>{"step_000003"}));
  EXPECT_EQ(base(latest_checkpoint(root())), "step_000003");
}

TEST_F(CheckpointTest, InterruptedSaveLeavesThePreviousUsable) {
  const auto cfg = small_config();
  const Checkpoint first = make(1, cfg);
  save_checkpoint(root(), first, 2);
  for (const char* stage : {"tempdir", "model", "optimizer", "state", "rename", "prune"}) {
    SCOPED_TRACE(stage);
    const Checkpoint second = make(2, cfg, 5);
    EXPECT_THROW(save_checkpoint(root(), second, 2,
                                 [&](const std::string& s) {
                                   if (s == stage) throw std::runtime_error("simulated crash");
                                 }),
                 std::runtime_error);
    // Whatever the newest complete checkpoint is, it loads and is exact.
    const std::string latest = latest_checkpoint(root());
    const bool renamed = std::string(stage) == "rename" || std::string(stage) == "prune";
    EXPECT_EQ(base(latest), renamed ? "step_000002" : "step_000001");
    expect_same(load_checkpoint(latest), renamed ? second : first);
    expect_same(load_checkpoint(root() + "/step_000001"), first);
    io::remove_tree(root() + "/step_000002");
  }
  // The next save removes the leftovers of the interrupted ones.
  save_checkpoint(root(), make(3, cfg), 2);
  for (const std::string& name : io::list_dir(root())) EXPECT_NE(name[0], '.') << name;
}

TEST_F(CheckpointTest, TruncatedCorruptedIncompleteFilesAreNamed) {
  const auto cfg = small_config();
  const std::string dir = save_checkpoint(root(), make(4, cfg), 2);
  const std::string model = dir + "/model.safetensors";
  const std::string original = slurp(model);
  const size_t size = original.size();
  auto restore = [&] { write_bytes(model, original); };

  write_bytes(model, original.substr(0, size / 2));
  EXPECT_NE(error_of(dir).find("model.safetensors is truncated (" + std::to_string(size / 2) + " bytes"),
            std::string::npos)
      << error_of(dir);
  restore();

  std::mt19937 rng(5);
  for (int trial = 0; trial < 5; ++trial) {
    std::string bad = original;
    bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    write_bytes(model, bad);
    EXPECT_NE(error_of(dir).find("model.safetensors is corrupted (sha256"), std::string::npos) << error_of(dir);
  }
  restore();
  EXPECT_EQ(error_of(dir), "");

  io::remove_tree(dir + "/optimizer.safetensors");
  EXPECT_NE(error_of(dir).find("is incomplete: optimizer.safetensors is missing"), std::string::npos);
  // Without the optimizer (export, logits) the weights still load.
  EXPECT_NO_THROW(load_checkpoint(dir, /*with_optimizer=*/false));

  const std::string state = dir + "/state.json";
  write_bytes(state, "{\"format\": \"lighthouse-checkpoint\", \"version\": 2, \"st");
  EXPECT_NE(error_of(dir).find("state.json is corrupted"), std::string::npos) << error_of(dir);
  io::remove_tree(state);
  EXPECT_NE(error_of(dir).find("is incomplete: state.json is missing"), std::string::npos);
  EXPECT_EQ(latest_checkpoint(root()), "");  // not a complete checkpoint any more
  EXPECT_NE(error_of(root() + "/nope").find("does not exist"), std::string::npos);
}

// Every form of path a command takes: the directory given to --run-dir
// (arms), an arm's run directory, its checkpoints/ and a checkpoint.
TEST_F(CheckpointTest, ResolvesEveryPathForm) {
  const auto cfg = small_config();
  const std::string R = tmp_ / "R";
  save_checkpoint(R + "/two-stage/checkpoints", make(4, cfg), 3);
  const std::string newest = save_checkpoint(R + "/two-stage/checkpoints", make(8, cfg), 3);
  const std::string dense = save_checkpoint(R + "/dense/checkpoints", make(6, cfg), 3);
  io::make_dirs(R + "/notes");  // not an arm: no checkpoints
  EXPECT_EQ(recipe_arms(R), (std::vector<std::string>{"dense", "two-stage"}));

  // The recipe directory: its main run, the baseline named as the other.
  CheckpointRef ref = resolve_checkpoint(R);
  EXPECT_EQ(ref.checkpoint, newest);
  EXPECT_EQ(ref.run_dir, R + "/two-stage");
  EXPECT_EQ(ref.arm, "two-stage");
  EXPECT_EQ(ref.other_arms, std::vector<std::string>{"dense"});
  EXPECT_EQ(describe_arm_choice(ref, R), "arm two-stage of " + R + " (also there: dense; choose with --arm)");
  ref = resolve_checkpoint(R + "/", "dense");
  EXPECT_EQ(ref.checkpoint, dense);
  EXPECT_EQ(ref.arm, "dense");
  EXPECT_ERROR_HAS(
      resolve_checkpoint(R, "lighthouse"),
      "--arm lighthouse: " + R + " has no arm of that name with a checkpoint (its arms: dense, two-stage)");

  // An arm, its checkpoints, one checkpoint: no arm to choose.
  for (const std::string& p : {R + "/two-stage", R + "/two-stage/", R + "/two-stage/checkpoints"}) {
    SCOPED_TRACE(p);
    ref = resolve_checkpoint(p);
    EXPECT_EQ(ref.checkpoint, newest);
    EXPECT_EQ(ref.run_dir, R + "/two-stage");
    EXPECT_EQ(ref.arm, "");
    EXPECT_EQ(describe_arm_choice(ref, p), "");
  }
  ref = resolve_checkpoint(R + "/two-stage/checkpoints/step_000004");
  EXPECT_EQ(base(ref.checkpoint), "step_000004");
  EXPECT_EQ(ref.run_dir, R + "/two-stage");
  EXPECT_EQ(resolve_checkpoint(R + "/two-stage", "two-stage").checkpoint, newest);
  EXPECT_ERROR_HAS(resolve_checkpoint(R + "/two-stage", "dense"), "not of an arm named dense");

  // Two main runs side by side: the user must choose.
  save_checkpoint(R + "/lighthouse/checkpoints", make(2, cfg), 3);
  EXPECT_ERROR_HAS(resolve_checkpoint(R), R + " holds several runs (dense, lighthouse, two-stage): choose one with "
                                              "--arm NAME");
  EXPECT_EQ(resolve_checkpoint(R, "lighthouse").arm, "lighthouse");
  // One arm only (a --no-baseline or dense-only run): that arm.
  const std::string solo = tmp_ / "solo";
  save_checkpoint(solo + "/dense/checkpoints", make(2, cfg), 3);
  EXPECT_EQ(resolve_checkpoint(solo).arm, "dense");
  EXPECT_EQ(resolve_checkpoint(solo).other_arms, std::vector<std::string>{});
  // Nothing there: say what was looked for.
  io::make_dirs(tmp_ / "empty");
  EXPECT_ERROR_HAS(resolve_checkpoint(tmp_ / "empty"), "no complete checkpoint in " + (tmp_ / "empty") +
                                                           " (looked for " + (tmp_ / "empty") + "/state.json");
  EXPECT_ERROR_HAS(resolve_checkpoint(tmp_ / "missing"), "no complete checkpoint in " + (tmp_ / "missing"));
}

TEST(CheckpointCompat, OtherShapeOrVocabularyIsNamed) {
  const config::ModelConfig saved = small_config().model;  // d_model 64, 3 layers
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
  other.layers = 4;
  other.d_model = 96;
  try {
    check_compatible(saved, other, "checkpoint X");
    ADD_FAILURE();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.d_model = 64 in the checkpoint, 96 here"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("model.layers = 3 in the checkpoint, 4 here"), std::string::npos);
  }
  other = saved;
  other.attention = "dense";  // modes and geometry may change (the stage switch)
  other.dense_layers = {};
  EXPECT_NO_THROW(check_compatible(saved, other, "checkpoint X"));
}

}  // namespace
}  // namespace lighthouse::train
