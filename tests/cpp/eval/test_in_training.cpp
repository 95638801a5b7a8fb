// Evaluation inside training (TrainingEval): the files a run directory
// gets (niah.jsonl, eval/niah_step_N.json, niah.json, loss.json), resume
// keeping the lines up to the resumed step, the end-of-run loss equal to
// the trainer's validation loss on the same windows, and settings that
// cannot work refused before training starts, naming the key.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "../data/test_pack.h"
#include "data/loader.h"
#include "config/config.h"
#include "data/pack.h"
#include "eval/in_training.h"
#include "io/files.h"
#include "model/llama.h"
#include "train/trainer.h"

namespace lighthouse::eval {
namespace {

std::string data_dir() { return lighthouse::testing::ensure_test_pack(LIGHTHOUSE_TEST_DATA_DIR); }

class TrainingEvalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = io::make_temp_dir("lh-eval-train");
    setenv("LIGHTHOUSE_PYTHON", "/nonexistent/python3", 1);  // plots are other tests' business
  }
  void TearDown() override {
    io::remove_tree(dir_);
    unsetenv("LIGHTHOUSE_PYTHON");
  }
  config::Config config() const {
    config::Config c;
    c.model.d_model = 64;
    c.model.layers = 2;
    c.model.heads = 4;
    c.model.kv_heads = 2;
    c.model.ffn_hidden = 96;
    c.model.attention = "dense";
    c.train.seq_len = 256;
    c.train.batch = 2;
    c.eval.batches = 3;
    c.eval.niah_every = 2;
    c.eval.niah_trials = 10;
    c.data.dir = data_dir();
    return c;
  }
  std::vector<std::string> notes_;
  std::string dir_;
};

TEST_F(TrainingEvalTest, PassesWriteTheirFilesAndTheFinalLossIsTheValidationLoss) {
  const config::Config c = config();
  model::Llama m(c.model, model::attention_plan(c.model, c.lighthouse), at::kCPU, 1);
  TrainingEval te(c, dir_, -1, "run", [&](const std::string& s) { notes_.push_back(s); }, true);
  EXPECT_TRUE(te.niah_due(2));
  EXPECT_FALSE(te.niah_due(3));
  EXPECT_EQ(te.protocol().contexts, (std::vector<int64_t>{256}));  // train.seq_len below 4K: itself
  const NiahSummary a = te.niah(m, 2, 1, false);
  const NiahSummary b = te.niah(m, 4, 1, true);
  EXPECT_EQ(a.prompts, 11 * 10);
  EXPECT_EQ(a.accuracy, b.accuracy);  // same weights, same prompts
  EXPECT_TRUE(io::is_regular_file(dir_ + "/eval/niah_step_000002.json"));
  EXPECT_TRUE(io::is_regular_file(dir_ + "/eval/niah_step_000004.json"));
  EXPECT_TRUE(io::is_regular_file(dir_ + "/niah.json"));
  const Json final_json = Json::parse(io::read_file(dir_ + "/niah.json"));
  EXPECT_EQ(final_json.at("model").at("step"), 4);
  EXPECT_EQ(final_json.at("model").at("attention"), "dense");
  const std::string lines = io::read_file(dir_ + "/niah.jsonl");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2);

  const LossResult r = te.final_loss(m, 4);
  EXPECT_EQ(r.windows, 6);
  EXPECT_EQ(r.tokens, 6 * 256);
  data::Loader val(c.data.dir, data::Split::kVal, c.train.batch, c.train.seq_len, 0);
  EXPECT_NEAR(r.loss, train::evaluate(m, val, c.eval.batches), 2e-6 * r.loss);
  const Json loss = Json::parse(io::read_file(dir_ + "/loss.json"));
  EXPECT_EQ(loss.at("results").size(), 1u);
  EXPECT_EQ(loss.at("results")[0].at("model").at("step"), 4);
  // No python here: a warning, never a failure.
  bool warned = false;
  for (const auto& n : notes_) warned = warned || n.find("warning: no plot") != std::string::npos;
  EXPECT_TRUE(warned);

  // A run resumed at step 2 keeps niah.jsonl's line of step 2 only.
  TrainingEval resumed(c, dir_, 2, "run", [](const std::string&) {}, true);
  const std::string kept = io::read_file(dir_ + "/niah.jsonl");
  EXPECT_EQ(std::count(kept.begin(), kept.end(), '\n'), 1);
}

TEST_F(TrainingEvalTest, OffByDefaultAndBadSettingsAreRefusedNamingTheKey) {
  config::Config c = config();
  c.eval.niah_every = 0;
  TrainingEval off(c, dir_, -1, "run", [](const std::string&) {}, true);
  EXPECT_FALSE(off.niah_enabled());
  EXPECT_FALSE(off.niah_due(2));
  EXPECT_FALSE(io::path_exists(dir_ + "/niah.jsonl"));
  c.eval.niah_every = 5;
  c.eval.niah_contexts = {64};
  try {
    TrainingEval bad(c, dir_, -1, "run", [](const std::string&) {}, true);
    ADD_FAILURE() << "no error";
  } catch (const config::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("eval.niah_contexts"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("context 64 is too short"), std::string::npos) << e.what();
  }
}

TEST(TrainingEvalConfig, TheValidatorNamesTheNiahKeys) {
  config::Config c = config::load_preset("tiny");  // Lighthouse L=3, p=2, top_k=128: N >= 512
  c.eval.niah_every = -1;
  c.eval.niah_trials = 0;
  c.eval.niah_contexts = {256, 1024};
  try {
    config::validate(c);
    ADD_FAILURE() << "no error";
  } catch (const config::ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("eval.niah_every must be >= 0 (0: off), got -1"), std::string::npos) << m;
    EXPECT_NE(m.find("eval.niah_trials must be >= 1, got 0"), std::string::npos) << m;
    EXPECT_NE(m.find("eval.niah_contexts: 256 is below 512"), std::string::npos) << m;
    EXPECT_EQ(m.find("1024"), std::string::npos) << m;
  }
}

// The trainer runs the evaluation through its observer hook: the passes
// land in the run directory at the steps due and at the end, the result
// carries the final passkey score, and training is bit for bit the run
// without evaluation (the passes draw no RNG and touch no weight).
TEST_F(TrainingEvalTest, TheTrainerRunsItThroughItsObserverWithoutChangingTraining) {
  config::Config c = config();
  c.train.steps = 4;
  c.optim.warmup_steps = 1;
  c.train.device = "cpu";
  c.train.deterministic = true;
  c.train.baseline = false;
  c.eval.every = 0;
  c.eval.niah_trials = 2;
  c.checkpoint.every = 0;
  train::RunOptions with;
  with.quiet = true;
  with.run_dir = dir_ + "/with";
  with.observer = training_observer();
  const train::RunResult a = train::run_training(c, with);
  train::RunOptions without = with;
  without.run_dir = dir_ + "/without";
  without.observer = nullptr;
  const train::RunResult b = train::run_training(c, without);

  EXPECT_EQ(a.losses, b.losses);  // exact
  EXPECT_EQ(a.final_val_loss, b.final_val_loss);
  EXPECT_LT(b.niah_accuracy, 0);  // not run
  ASSERT_GE(a.niah_accuracy, 0);
  const Json final_json = Json::parse(io::read_file(with.run_dir + "/niah.json"));
  EXPECT_EQ(final_json.at("model").at("step"), 4);
  EXPECT_EQ(final_json.at("mean_accuracy").get<double>(), a.niah_accuracy);
  EXPECT_EQ(final_json.at("mean_p_correct").get<double>(), a.niah_p_correct);
  const std::string lines = io::read_file(with.run_dir + "/niah.jsonl");
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 2);  // steps 2 and 4 (the end)
  EXPECT_TRUE(io::is_regular_file(with.run_dir + "/eval/niah_step_000002.json"));
  EXPECT_TRUE(io::is_regular_file(with.run_dir + "/loss.json"));
  EXPECT_FALSE(io::path_exists(without.run_dir + "/loss.json"));
  // The end-of-run loss by position covers the trainer's validation windows.
  const Json loss = Json::parse(io::read_file(with.run_dir + "/loss.json"));
  EXPECT_NEAR(loss.at("results")[0].at("loss").get<double>(), a.final_val_loss, 2e-6 * a.final_val_loss);
}

}  // namespace
}  // namespace lighthouse::eval
