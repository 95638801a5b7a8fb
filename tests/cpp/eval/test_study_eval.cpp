// The evaluation harness over a recipe study (eval/study_eval.h): which
// models it evaluates (every complete arm's final model dense; each
// switching arm's Stage-1 checkpoint at its switch with Lighthouse layers
// and with the same weights dense), that each row is what it says it is,
// and that a second call reads the results back instead of re-running.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <stdexcept>
#include <string>

#include "../data/test_pack.h"
#include "../io/test_util.h"
#include "data/pack.h"
#include "eval/study_eval.h"
#include "io/files.h"
#include "train/runtime.h"
#include "train/study.h"

namespace lighthouse::eval {
namespace {

using lighthouse::testing::TempDir;

const bool kEnvSet = (train::deterministic_env(), setenv("LIGHTHOUSE_PYTHON", "/nonexistent/python3", 1), true);

std::string data_dir() { return lighthouse::testing::ensure_test_pack(LIGHTHOUSE_TEST_DATA_DIR); }

// D L D, 512 tokens a step, 6 steps; fraction 0.5 switches after step 3.
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
  c.train.device = "cpu";
  c.train.deterministic = true;
  c.train.run_dir = run_dir;
  c.optim.lr = 1e-2;
  c.optim.warmup_steps = 2;
  c.optim.schedule = "constant";
  c.eval.batches = 1;
  c.data.dir = data_dir();
  return c;
}

int64_t mtime_ns(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

TEST(StudyEval, EvaluatesEachArmsFinalModelAndBothSidesOfEachSwitch) {
  (void)kEnvSet;
  TempDir tmp;
  const std::string dir = tmp / "study";
  train::StudyOptions so;
  so.out_dir = dir;
  so.quiet = true;
  ASSERT_TRUE(train::run_study(train::plan_study(small(dir), {0.5}), so).complete);

  StudyEvalOptions o;
  o.study_dir = dir;
  o.device.device = "cpu";
  o.contexts = {512};
  o.trials = 2;
  o.loss_windows = 2;
  o.quiet = true;
  const StudyEval e = evaluate_study(o);
  const Json& rows = e.json.at("rows");
  ASSERT_EQ(rows.size(), 4u) << e.table;
  struct Want {
    const char* arm;
    const char* point;
    int64_t step;
    const char* attention;
  };
  const Want want[] = {{"dense", "final", 6, "dense"},
                       {"switch-0.5", "final", 6, "dense"},
                       {"switch-0.5", "lighthouse-at-switch", 3, "lighthouse"},
                       {"switch-0.5", "dense-at-switch", 3, "dense"}};
  for (size_t i = 0; i < 4; ++i) {
    const Json& r = rows[i];
    EXPECT_EQ(r.at("arm"), want[i].arm) << i;
    EXPECT_EQ(r.at("point"), want[i].point) << i;
    EXPECT_EQ(r.at("step"), want[i].step) << i;
    // What the files say was evaluated, not what the row was asked for.
    const Json niah = Json::parse(io::read_file(r.at("dir").get<std::string>() + "/niah.json"));
    EXPECT_EQ(niah.at("model").at("attention"), want[i].attention) << i;
    EXPECT_EQ(niah.at("model").at("step"), want[i].step) << i;
    EXPECT_EQ(niah.at("prompts"), 11 * 2) << i;
    const double acc = r.at("niah_mean_accuracy").get<double>();
    EXPECT_TRUE(acc >= 0 && acc <= 1) << acc;
    EXPECT_GT(r.at("loss").get<double>(), 0) << i;
    EXPECT_NE(e.table.find(std::string("| ") + want[i].arm + " | " + want[i].point + " | "), std::string::npos)
        << e.table;
  }
  // Same weights, two attentions: the Lighthouse layer changes the loss.
  EXPECT_NE(rows[2].at("loss").get<double>(), rows[3].at("loss").get<double>());
  // Stage 1's weights at step 3 are not the tail's at step 6.
  EXPECT_NE(rows[1].at("loss").get<double>(), rows[3].at("loss").get<double>());
  EXPECT_TRUE(io::is_regular_file(dir + "/eval.json"));
  EXPECT_TRUE(io::is_regular_file(dir + "/eval.md"));

  // Again: read back, nothing re-run.
  const std::string probe = rows[0].at("dir").get<std::string>() + "/niah.json";
  const int64_t before = mtime_ns(probe);
  const StudyEval again = evaluate_study(o);
  EXPECT_EQ(mtime_ns(probe), before);
  EXPECT_EQ(again.json.at("rows").size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(again.json.at("rows")[i].at("loss"), rows[i].at("loss"));
    EXPECT_EQ(again.json.at("rows")[i].at("niah_mean_accuracy"), rows[i].at("niah_mean_accuracy"));
  }
}

TEST(StudyEval, WithoutAStudyItSaysWhatToRun) {
  TempDir tmp;
  StudyEvalOptions o;
  o.study_dir = tmp / "nothing";
  try {
    evaluate_study(o);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("run `lighthouse study`"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lighthouse::eval
