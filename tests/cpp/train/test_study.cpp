// The recipe study (train/study.h) end to end on CPU, in seconds, on the
// small test pack (deterministic mode):
// - every switching arm branches from ONE Stage-1 run: its first dense step
//   starts from exactly the Stage-1 checkpoint's weights at its switch step,
//   and Stage 1 trains each step once;
// - an arm equals the plain runs it stands for, bit for bit: the dense arm a
//   dense run, a switching arm (Stage 1 to K, resumed dense tail) a
//   two-stage run switching at K (losses, switch validation both ways,
//   final validation loss);
// - a study interrupted mid-arm and run again continues from the newest
//   checkpoints to the same numbers; a finished study re-run trains nothing;
// - the plan's and the data's errors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>
#include <string>

#include "../data/test_pack.h"
#include "../io/test_util.h"
#include "data/pack.h"
#include "io/files.h"
#include "model/llama.h"
#include "train/checkpoint.h"
#include "train/runtime.h"
#include "train/study.h"
#include "train/trainer.h"

namespace lighthouse::train {
namespace {

using lighthouse::testing::TempDir;

const bool kEnvSet = (deterministic_env(), true);

std::string test_data_dir() { return LIGHTHOUSE_TEST_DATA_DIR; }

// 3 layers (D L D), 512 tokens a step, 6 steps; Lighthouse L=3, p=2,
// top_k=128 (the shortest context it takes); fractions 0.5 and 0.75 switch
// after steps 3 and 4.
config::Config small(const std::string& run_dir) {
  config::Config c;
  c.model.d_model = 64;
  c.model.layers = 3;
  c.model.heads = 4;
  c.model.kv_heads = 2;
  c.model.ffn_hidden = 128;
  c.model.dense_layers = {0, -1};
  c.lighthouse.levels = 3;
  c.lighthouse.pool = 2;
  c.lighthouse.top_k = 128;
  c.train.seq_len = 512;
  c.train.steps = 6;
  c.train.deterministic = true;
  c.train.run_dir = run_dir;
  c.optim.lr = 1e-2;
  c.optim.warmup_steps = 2;
  c.optim.schedule = "constant";
  c.checkpoint.every = 2;
  c.eval.every = 2;
  c.eval.batches = 1;
  c.data.dir = test_data_dir();
  return c;
}

struct Recorded {
  std::map<std::string, std::vector<int64_t>> steps;                     // per arm, trained steps
  std::map<std::string, std::map<std::string, at::Tensor>> first_weights;  // per tail, at its first step
};

class StudyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    (void)kEnvSet;
    lighthouse::testing::ensure_test_pack(test_data_dir());
  }
  static void TearDownTestSuite() {
    delete whole_;
    delete recorded_;
    delete suite_dir_;
    whole_ = nullptr;
  }
  // One uninterrupted study per test process (made on first use), recording
  // each step's arm and each tail's weights at its first step (after the
  // backward pass, before the update: the weights it starts from).
  static const StudyReport& whole() {
    if (whole_) return *whole_;
    suite_dir_ = new TempDir();
    recorded_ = new Recorded();
    StudyOptions opt;
    opt.out_dir = *suite_dir_ / "whole";
    opt.quiet = true;
    opt.after_backward = [](const std::string& a, int64_t step, model::Llama& m) {
      recorded_->steps[a].push_back(step);
      if (a.rfind("switch-", 0) == 0 && !recorded_->first_weights.count(a)) {
        EXPECT_FALSE(m.any_lighthouse()) << a << " trains dense";
        for (const auto& [n, t] : m.named_parameters()) recorded_->first_weights[a][n] = t.detach().clone();
      }
    };
    whole_ = new StudyReport(run_study(plan_study(small(*suite_dir_ / "whole"), {0.75, 0.5}), opt));
    return *whole_;
  }
  static TempDir* suite_dir_;
  static Recorded* recorded_;
  static StudyReport* whole_;
  TempDir tmp_;
};
TempDir* StudyTest::suite_dir_ = nullptr;
Recorded* StudyTest::recorded_ = nullptr;
StudyReport* StudyTest::whole_ = nullptr;

std::vector<double> doubles(const Json& a) {
  std::vector<double> out;
  for (const Json& v : a) out.push_back(v.get<double>());
  return out;
}

const Json& arm(const StudyReport& r, const std::string& name) {
  for (const Json& a : r.json["arms"])
    if (a["name"] == name) return a;
  throw std::runtime_error("no arm " + name);
}

TEST_F(StudyTest, ArmsBranchFromOneStage1RunAndEqualTheirPlainRuns) {
  const StudyReport& r = whole();
  const config::Config base = small(*suite_dir_ / "whole");
  const StudyPlan plan = plan_study(base, {0.75, 0.5});
  ASSERT_EQ(plan.switch_steps, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(plan.total_steps(), 6 + 4 + 3 + 2);
  ASSERT_TRUE(r.complete);
  auto& steps = recorded_->steps;
  EXPECT_EQ(steps["dense"], (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(steps["stage1"], (std::vector<int64_t>{1, 2, 3, 4}));  // once, for both switches
  EXPECT_EQ(steps["switch-0.5"], (std::vector<int64_t>{4, 5, 6}));
  EXPECT_EQ(steps["switch-0.75"], (std::vector<int64_t>{5, 6}));
  for (const auto& [a, k] : std::vector<std::pair<std::string, int64_t>>{{"switch-0.5", 3}, {"switch-0.75", 4}}) {
    SCOPED_TRACE(a);
    const Checkpoint c =
        load_checkpoint(*suite_dir_ / ("whole/stage1/checkpoints/step_00000" + std::to_string(k)), false);
    ASSERT_EQ(c.step, k);
    const auto& first = recorded_->first_weights[a];
    ASSERT_EQ(first.size(), c.weights.size());
    for (const auto& [n, t] : c.weights) EXPECT_TRUE(at::equal(first.at(n), t)) << n;
    // Validation at every eval.every step, at the switch both ways, at the end.
    std::vector<std::pair<int64_t, std::string>> val, want;
    for (const Json& v : arm(r, a)["val"]) val.emplace_back(v["step"].get<int64_t>(), v["attention"].get<std::string>());
    for (int64_t s : {int64_t{2}, k, int64_t{4}, int64_t{6}}) {
      if (!want.empty() && want.back().first == s) continue;
      if (s <= k) want.emplace_back(s, "lighthouse");
      if (s >= k) want.emplace_back(s, "dense");
    }
    EXPECT_EQ(val, want);
    EXPECT_EQ(arm(r, a)["switch_step"], k);
    EXPECT_GT(arm(r, a)["train_seconds"].get<double>(), 0.0);
  }

  // The dense arm = a dense run; a switching arm = a two-stage run.
  config::Config dense = base;
  dense.model.attention = "dense";
  dense.stage2.start_step = 0;
  RunOptions ro;
  ro.quiet = true;
  ro.run_dir = tmp_ / "plain-dense";
  const RunResult d = run_training(dense, ro);
  EXPECT_EQ(doubles(arm(r, "dense")["train_loss"]), d.losses);
  EXPECT_EQ(arm(r, "dense")["final_val_loss"].get<double>(), d.final_val_loss);
  config::Config two = base;
  two.stage2.start_step = 3;
  ro.run_dir = tmp_ / "plain-two-stage";
  const RunResult t = run_training(two, ro);
  ASSERT_EQ(t.switch_step, 3);
  const Json& j = arm(r, "switch-0.5");
  EXPECT_EQ(doubles(j["train_loss"]), t.losses);
  EXPECT_EQ(j["final_val_loss"].get<double>(), t.final_val_loss);
  EXPECT_EQ(j["switch"]["val_loss_lighthouse"].get<double>(), t.switch_val_before);
  EXPECT_EQ(j["switch"]["val_loss_dense"].get<double>(), t.switch_val_after);

  // The curves for plotting, one run directory per arm; the report.
  EXPECT_TRUE(io::is_regular_file(*suite_dir_ / "whole/arms/switch-0.5/metrics.jsonl"));
  EXPECT_NE(io::read_file(*suite_dir_ / "whole/study.md").find("| switch-0.75 | 4 (0.7500) | 6 ("), std::string::npos);

  // Finished: running it again trains nothing and reports the same.
  StudyOptions opt;
  opt.out_dir = *suite_dir_ / "whole";
  opt.quiet = true;
  int64_t trained = 0;
  opt.after_backward = [&](const std::string&, int64_t, model::Llama&) { ++trained; };
  const StudyReport again = run_study(plan, opt);
  EXPECT_EQ(trained, 0);
  EXPECT_EQ(again.json["arms"], r.json["arms"]);
}

TEST_F(StudyTest, InterruptedStudyContinuesToTheSameNumbers) {
  const StudyPlan plan = plan_study(small(tmp_ / "b"), {0.5, 0.75});
  StudyOptions opt;
  opt.quiet = true;
  opt.out_dir = tmp_ / "b";
  // Crash in Stage 1 after its step-3 branch point, then in the first tail
  // (checkpoints every 2 steps); each run continues from the newest checkpoints.
  for (const auto& [crash_arm, crash_step] :
       std::vector<std::pair<std::string, int64_t>>{{"stage1", 4}, {"switch-0.5", 5}}) {
    opt.after_backward = [crash_arm = crash_arm, crash_step = crash_step](const std::string& a, int64_t step,
                                                                         model::Llama&) {
      if (a == crash_arm && step == crash_step) throw std::runtime_error("simulated crash");
    };
    EXPECT_THROW(run_study(plan, opt), std::runtime_error);
  }
  std::vector<std::string> trained;
  opt.after_backward = [&](const std::string& a, int64_t step, model::Llama&) {
    trained.push_back(a + ":" + std::to_string(step));
  };
  const StudyReport resumed = run_study(plan, opt);
  ASSERT_TRUE(resumed.complete);
  // Only what was left: the 0.5 tail from its step-4 checkpoint, the 0.75 tail.
  EXPECT_EQ(trained, (std::vector<std::string>{"switch-0.5:5", "switch-0.5:6", "switch-0.75:5", "switch-0.75:6"}));
  for (const std::string a : {"dense", "switch-0.5", "switch-0.75"}) {
    SCOPED_TRACE(a);
    EXPECT_EQ(arm(resumed, a)["train_loss"], arm(whole(), a)["train_loss"]);
    EXPECT_EQ(arm(resumed, a)["final_val_loss"], arm(whole(), a)["final_val_loss"]);
    EXPECT_EQ(arm(resumed, a).value("switch", Json()), arm(whole(), a).value("switch", Json()));
    EXPECT_EQ(arm(resumed, a)["val"].size(), arm(whole(), a)["val"].size());
  }
}

TEST_F(StudyTest, PlanAndDataErrorsSayWhatToChange) {
  config::Config base = small(tmp_ / "s");
  EXPECT_ERROR_HAS(plan_study(base, {0.5, 0.5}), "switch fraction 0.500000 is given twice");
  EXPECT_ERROR_HAS(plan_study(base, {1.0}), "outside (0, 1)");
  EXPECT_ERROR_HAS(plan_study(base, {}), "at least one switch fraction");
  EXPECT_ERROR_HAS(plan_study(base, {0.5, 0.55}), "give the same switch step 3 of 6");
  config::Config dense = base;
  dense.model.attention = "dense";
  EXPECT_ERROR_HAS(plan_study(dense, {0.5}), "needs Lighthouse layers");

  base.data.dir = tmp_ / "no-data";
  StudyOptions opt;
  opt.quiet = true;
  opt.out_dir = tmp_ / "s";
  EXPECT_ERROR_HAS(run_study(plan_study(base, {0.5}), opt), "holds no packed dataset: pack it first");
  EXPECT_FALSE(io::path_exists(tmp_ / "no-data"));

  // Another config in the same directory is refused.
  base.data.dir = test_data_dir();
  base.train.steps = 4;
  opt.time_limit_s = 1;  // leaves no time to start an arm: nothing trains
  const StudyReport r = run_study(plan_study(base, {0.5}), opt);
  EXPECT_FALSE(r.complete);
  base.optim.lr = 2e-2;
  EXPECT_ERROR_HAS(run_study(plan_study(base, {0.5}), opt), "holds a study of another config");
}

}  // namespace
}  // namespace lighthouse::train
