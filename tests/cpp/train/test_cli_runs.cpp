// The commands as a user types them (issue 8, bug 3 and the done-when):
// - `lighthouse train --preset tiny --no-baseline --run-dir R --stop-after K`
//   then `lighthouse train --resume R` finishes with exactly the losses of
//   the uninterrupted run;
// - with the dense baseline, `--resume R` continues both arms where they
//   stopped;
// - `lighthouse export` and `lighthouse logits` take R (naming the arm they
//   took, --arm for another), an arm directory, its checkpoints/ or one
//   checkpoint; a directory without checkpoints is an error saying what was
//   looked for.
// The runs are the tiny preset shortened (512 tokens, a few steps) on the
// trainer tests' pack.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/files.h"
#include "io/safetensors_torch.h"
#include "test_util.h"

namespace lighthouse::train {
namespace {

using Json = nlohmann::ordered_json;
using lighthouse::testing::TempDir;

struct Output {
  int rc = -1;
  std::string text;  // stdout and stderr
};

class CliRuns : public ::testing::Test {
 protected:
  // Runs `lighthouse ARGS` (arguments without spaces or quotes).
  Output run(const std::string& args) {
    const std::string log = tmp_ / ("out-" + std::to_string(++calls_) + ".txt");
    const std::string cmd = std::string(LIGHTHOUSE_PROGRAM) + " " + args + " > " + log + " 2>&1";
    const int status = std::system(cmd.c_str());
    Output o;
    o.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    o.text = io::read_file(log);
    return o;
  }

  // The tiny preset, shortened: 512 tokens a step (Lighthouse L=3, p=2,
  // top_k=128 needs 512), deterministic, on the test pack.
  static std::string tiny(int64_t steps, int64_t switch_step) {
    return "--preset tiny --steps " + std::to_string(steps) + " --stage2.start_step " + std::to_string(switch_step) +
           " --train.seq_len 512 --eval.batches 1 --eval.every 0 --deterministic --log.every 100 --data.dir " +
           std::string(LIGHTHOUSE_TEST_DATA_DIR);
  }

  static std::vector<double> losses(const std::string& metrics) {
    std::vector<double> out;
    const std::string text = io::read_file(metrics);
    size_t start = 0;
    while (start < text.size()) {
      const size_t end = text.find('\n', start);
      out.push_back(Json::parse(text.substr(start, end - start))["loss"].get<double>());
      start = end + 1;
    }
    return out;
  }

  TempDir tmp_;
  int calls_ = 0;
};

#define EXPECT_RUN_OK(out) EXPECT_EQ((out).rc, 0) << (out).text

TEST_F(CliRuns, ResumingTheRunDirectoryGivesTheUninterruptedLosses) {
  const std::string full = tmp_ / "full", R = tmp_ / "R";
  EXPECT_RUN_OK(run("train " + tiny(6, 4) + " --no-baseline --run-dir " + full));
  const Output first = run("train " + tiny(6, 4) + " --no-baseline --run-dir " + R + " --stop-after 3");
  EXPECT_RUN_OK(first);
  ASSERT_EQ(losses(R + "/two-stage/metrics.jsonl").size(), 3u);
  const Output resumed = run("train --resume " + R);
  EXPECT_RUN_OK(resumed);
  EXPECT_NE(resumed.text.find("resuming " + R + "/two-stage/checkpoints/step_000003 at step 3"), std::string::npos)
      << resumed.text;
  const std::vector<double> want = losses(full + "/two-stage/metrics.jsonl");
  ASSERT_EQ(want.size(), 6u);
  EXPECT_EQ(losses(R + "/two-stage/metrics.jsonl"), want);
  // The summary covers the whole run: the switch after step 4 is in it.
  EXPECT_NE(resumed.text.find("switch after step 4"), std::string::npos) << resumed.text;
  EXPECT_EQ(Json::parse(io::read_file(R + "/comparison.json"))["switch"],
            Json::parse(io::read_file(full + "/comparison.json"))["switch"]);
}

TEST_F(CliRuns, ResumeExportAndLogitsTakeTheRunDirectoryOfBothArms) {
  const std::string B = tmp_ / "B", full = tmp_ / "Bfull";
  EXPECT_RUN_OK(run("train " + tiny(4, 2) + " --run-dir " + full));
  EXPECT_RUN_OK(run("train " + tiny(4, 2) + " --run-dir " + B + " --stop-after 2"));
  EXPECT_EQ(losses(B + "/dense/metrics.jsonl").size(), 2u);
  EXPECT_RUN_OK(run("train --resume " + B));
  for (const std::string arm : {"two-stage", "dense"}) {
    SCOPED_TRACE(arm);
    EXPECT_EQ(losses(B + "/" + arm + "/metrics.jsonl"), losses(full + "/" + arm + "/metrics.jsonl"));
    EXPECT_EQ(losses(B + "/" + arm + "/metrics.jsonl").size(), 4u);
  }

  // export: the main arm by default, named; --arm for the baseline; the
  // arm, checkpoints and checkpoint directories as before.
  Output o = run("export " + B + " " + (tmp_ / "hf-main"));
  EXPECT_RUN_OK(o);
  EXPECT_NE(o.text.find("using arm two-stage of " + B + " (also there: dense; choose with --arm)"), std::string::npos)
      << o.text;
  EXPECT_NE(o.text.find("exported " + B + "/two-stage/checkpoints/step_000004"), std::string::npos) << o.text;
  EXPECT_TRUE(io::is_regular_file(tmp_ / "hf-main/config.json"));
  o = run("export " + B + " " + (tmp_ / "hf-dense") + " --arm dense");
  EXPECT_RUN_OK(o);
  EXPECT_NE(o.text.find("exported " + B + "/dense/checkpoints/step_000004"), std::string::npos) << o.text;
  for (const std::string& p :
       {B + "/two-stage", B + "/two-stage/checkpoints", B + "/two-stage/checkpoints/step_000004"}) {
    o = run("export " + p + " " + (tmp_ / "hf-x") + " --overwrite");
    EXPECT_RUN_OK(o);
    EXPECT_NE(o.text.find("exported " + B + "/two-stage/checkpoints/step_000004"), std::string::npos) << o.text;
    EXPECT_EQ(o.text.find("using arm"), std::string::npos) << o.text;
  }
  o = run("export " + B + " " + (tmp_ / "hf-y") + " --arm lighthouse");
  EXPECT_NE(o.rc, 0);
  EXPECT_NE(o.text.find("--arm lighthouse: " + B +
                        " has no arm of that name with a checkpoint (its arms: dense, "
                        "two-stage)"),
            std::string::npos)
      << o.text;

  // logits: the same resolution.
  const std::string ids = tmp_ / "ids.safetensors";
  io::save_safetensors(ids, {{"input_ids", at::randint(0, 256, {1, 16}, at::kLong)}}, {{"format", "pt"}});
  o = run("logits " + B + " --tokens " + ids + " --out " + (tmp_ / "logits.safetensors"));
  EXPECT_RUN_OK(o);
  EXPECT_NE(o.text.find("using arm two-stage of " + B), std::string::npos) << o.text;
  EXPECT_NE(o.text.find("wrote logits [1, 16, 320]"), std::string::npos) << o.text;
  o = run("logits " + B + " --arm dense --tokens " + ids + " --out " + (tmp_ / "logits-dense.safetensors"));
  EXPECT_RUN_OK(o);
  EXPECT_NE(o.text.find(B + "/dense/checkpoints/step_000004"), std::string::npos) << o.text;

  // Nothing to take: say what was looked for.
  io::make_dirs(tmp_ / "empty");
  for (const std::string cmd :
       {"export " + (tmp_ / "empty") + " " + (tmp_ / "hf-z"), "train --resume " + (tmp_ / "empty")}) {
    o = run(cmd);
    EXPECT_NE(o.rc, 0);
    EXPECT_NE(o.text.find("no complete checkpoint in " + (tmp_ / "empty") + " (looked for"), std::string::npos)
        << o.text;
  }
}

}  // namespace
}  // namespace lighthouse::train
