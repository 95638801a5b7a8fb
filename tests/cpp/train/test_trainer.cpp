// The trainer on real text (TESTING.md items 9, 10, 11, 13, 14):
// - the loss falls; the tiny preset's first steps in deterministic mode
//   equal a stored trace (tests/assets/tiny_loss_trace.json) exactly;
// - exact resume: 2K steps == K steps + resume to 2K (losses, weights,
//   optimizer moments, data position, RNG);
// - the stage switch: weights untouched, step count continues, every layer
//   dense afterwards, the same as resuming the Stage-1 checkpoint with
//   attention = dense, and the model's logits equal a fresh dense model's;
// - resuming a mismatched checkpoint stops with a message;
// - non-finite loss or gradients: stop before the optimizer step naming
//   the step (parameters unchanged), or skip;
// - metrics and validation lines are in their files when their step ends,
//   and a failed write is an error, not a lost line;
// - checkpoints pruned inside a run (the path of the GPU exit crash, also
//   run with libtorch.so preloaded: ctest trainer_with_torch_first);
// - the main job resumed from the directory given to --run-dir continues
//   every arm where it stopped and equals the uninterrupted job.
//
// Data: a small pack of the default corpus in the build tree (made by the
// ctest fixture train_data, or here if missing).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "../data/test_pack.h"
#include "data/loader.h"
#include "data/pack.h"
#include "io/files.h"
#include "model/llama.h"
#include "small_model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/recipe.h"
#include "train/runtime.h"
#include "train/trainer.h"

namespace lighthouse::train {
namespace {
using Json = nlohmann::ordered_json;
using lighthouse::testing::expect_equal_tensors;
using lighthouse::testing::TempDir;
using lighthouse::testing::weights_of;

// Deterministic mode's environment must be in place before MKL's first call.
const bool kEnvSet = (deterministic_env(), true);

std::string test_data_dir() { return LIGHTHOUSE_TEST_DATA_DIR; }

class TrainerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    lighthouse::testing::ensure_test_pack(test_data_dir());
  }

  // The shared small model (tests/cpp/model/small_model.h: 3 layers D L D,
  // 1024 tokens a step, Lighthouse gathers 768) trained on real text.
  config::Config small(int64_t steps) const {
    config::Config c = lighthouse::testing::small_config(1024);
    c.train.batch = 1;
    c.train.steps = steps;
    c.train.deterministic = true;
    c.train.run_dir = dir_ / "run";
    c.optim.lr = 1e-2;
    c.optim.warmup_steps = 3;
    c.data.dir = test_data_dir();
    c.eval.batches = 2;
    return c;
  }

  RunOptions quiet(const std::string& run_dir = "") const {
    RunOptions o;
    o.quiet = true;
    o.run_dir = run_dir;
    return o;
  }

  static std::vector<Json> jsonl(const std::string& p) {
    std::vector<Json> out;
    const std::string text = io::read_file(p);
    size_t start = 0;
    while (start < text.size()) {
      const size_t end = text.find('\n', start);
      out.push_back(Json::parse(text.substr(start, end - start)));
      start = end + 1;
    }
    return out;
  }

  static std::vector<double> losses_of(const std::string& metrics) {
    std::vector<double> out;
    for (const Json& j : jsonl(metrics)) out.push_back(j["loss"].get<double>());
    return out;
  }

  static std::map<std::string, at::Tensor> params_of(model::Llama& m) { return weights_of(m); }

  TempDir dir_;
};

TEST_F(TrainerTest, LossFallsOnRealText) {
  auto c = small(60);
  c.train.deterministic = false;
  const RunResult r = run_training(c, quiet());
  ASSERT_EQ(r.losses.size(), 60u);
  EXPECT_NEAR(r.losses.front(), std::log(320.0), 0.3);  // uniform over the padded vocabulary
  // From 5.77 (uniform) to well below it; a model that learns nothing
  // stays above ~4.5 (the byte unigram entropy is ~3.2 nats on this text).
  double last10 = 0;
  for (size_t i = 50; i < 60; ++i) last10 += r.losses[i] / 10;
  EXPECT_LT(last10, 3.7) << "first " << r.losses.front();
  EXPECT_LT(r.final_val_loss, 3.7);
  // Metrics: one line per step with the documented fields.
  const auto m = jsonl(r.run_dir + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 60u);
  for (const char* k : {"step", "stage", "attention", "loss", "lr", "grad_norm", "tokens_per_s", "mem_bytes"}) {
    EXPECT_TRUE(m[10].contains(k)) << k;
  }
  EXPECT_EQ(jsonl(r.run_dir + "/val.jsonl").back()["step"], 60);
}

// The tiny preset's first steps (with a switch after step 3) on the test
// pack, deterministic. LIGHTHOUSE_UPDATE_ASSETS=1 rewrites the stored trace.
TEST_F(TrainerTest, TinyPresetMatchesTheStoredLossTrace) {
  config::Config c = config::load_preset("tiny");
  c.train.steps = 6;
  c.stage2.start_step = 3;
  c.train.deterministic = true;
  c.train.baseline = false;
  c.data.dir = test_data_dir();
  c.train.run_dir = dir_ / "tiny";
  const RunResult r = run_training(c, quiet());
  const std::string asset = std::string(LIGHTHOUSE_ASSETS_DIR) + "/tiny_loss_trace.json";
  if (std::getenv("LIGHTHOUSE_UPDATE_ASSETS")) {
    Json j = {{"what",
               "training losses of `lighthouse train --preset tiny --train.steps 6 --stage2.start_step 3 "
               "--deterministic` on the test pack (default corpus, max_bytes 4000000, val_fraction 0.02)"},
              {"torch", "2.11.0"},
              {"losses", r.losses}};
    io::write_file_atomic(asset, j.dump(2) + "\n");
    GTEST_SKIP() << "rewrote " << asset;
  }
  ASSERT_TRUE(io::path_exists(asset)) << asset << " is missing (LIGHTHOUSE_UPDATE_ASSETS=1 writes it)";
  const Json want = Json::parse(io::read_file(asset));
  const auto losses = want["losses"].get<std::vector<double>>();
  ASSERT_EQ(r.losses.size(), losses.size());
  for (size_t i = 0; i < losses.size(); ++i) {
    EXPECT_EQ(r.losses[i], losses[i]) << "step " << i + 1 << ": " << std::hexfloat << r.losses[i] << " vs "
                                      << losses[i];
  }
  // A rerun in the same process is bit-identical too.
  c.train.run_dir = dir_ / "tiny2";
  EXPECT_EQ(run_training(c, quiet()).losses, r.losses);
}

TEST_F(TrainerTest, ResumeReproducesTheUninterruptedRunExactly) {
  // 2K = 12 steps with the switch after step 8 and 2 accumulated
  // micro-batches; K = 6.
  auto c = small(12);
  c.train.grad_accum = 2;
  c.stage2.start_step = 8;
  c.checkpoint.keep = 10;
  const RunResult full = run_training(c, quiet(dir_ / "full"));

  RunOptions first = quiet(dir_ / "split");
  first.stop_after = 6;
  const RunResult a = run_training(c, first);
  EXPECT_EQ(a.last_step, 6);
  RunOptions second = quiet();
  second.resume = dir_ / "split";  // a run directory: its newest checkpoint
  Trainer t(c, second);
  EXPECT_EQ(t.step(), 6);
  const RunResult b = t.run();
  EXPECT_EQ(b.first_step, 7);
  EXPECT_EQ(b.switch_step, 8);

  std::vector<double> joined = a.losses;
  joined.insert(joined.end(), b.losses.begin(), b.losses.end());
  EXPECT_EQ(joined, full.losses);
  EXPECT_EQ(b.final_val_loss, full.final_val_loss);

  const Checkpoint x = load_checkpoint(latest_checkpoint(dir_ / "full"));
  const Checkpoint y = load_checkpoint(latest_checkpoint(dir_ / "split"));
  EXPECT_EQ(x.step, 12);
  EXPECT_EQ(y.step, 12);
  expect_equal_tensors(x.weights, y.weights);
  expect_equal_tensors(x.optimizer, y.optimizer);
  EXPECT_EQ(x.optimizer_steps, y.optimizer_steps);
  ASSERT_EQ(x.ranks.size(), 1u);
  ASSERT_EQ(y.ranks.size(), 1u);
  EXPECT_EQ(x.ranks[0].loader_state, y.ranks[0].loader_state);
  EXPECT_EQ(x.ranks[0].loader_state["position"], 12 * 2);  // windows: steps x grad_accum x batch
  EXPECT_EQ(x.ranks[0].cpu_rng, y.ranks[0].cpu_rng);
  // The resumed run's metrics file reads like the uninterrupted one's, and
  // its result with the history read back is the whole run.
  const auto mf = jsonl(full.run_dir + "/metrics.jsonl");
  const auto ms = jsonl(b.run_dir + "/metrics.jsonl");
  ASSERT_EQ(mf.size(), ms.size());
  for (size_t i = 0; i < mf.size(); ++i) {
    EXPECT_EQ(mf[i]["step"], ms[i]["step"]);
    EXPECT_EQ(mf[i]["loss"], ms[i]["loss"]);
    EXPECT_EQ(mf[i]["stage"], ms[i]["stage"]);
  }
  const RunResult whole = with_history(b);
  EXPECT_EQ(whole.first_step, 1);
  EXPECT_EQ(whole.losses, full.losses);
  EXPECT_EQ(whole.stages, full.stages);
  EXPECT_EQ(whole.switch_step, 8);
  EXPECT_EQ(whole.switch_val_before, full.switch_val_before);
  EXPECT_EQ(whole.switch_val_after, full.switch_val_after);
  EXPECT_EQ(whole.tokens, full.tokens);
}

TEST_F(TrainerTest, StageSwitchKeepsWeightsAndMakesEveryLayerDense) {
  auto c = small(8);
  c.stage2.start_step = 4;
  std::map<int64_t, std::map<std::string, at::Tensor>> params_at;  // before each step's update
  std::map<int64_t, std::vector<model::AttentionKind>> modes_at;
  RunOptions o = quiet(dir_ / "switch");
  o.after_backward = [&](int64_t step, model::Llama& m) {
    params_at[step] = params_of(m);
    modes_at[step] = m.layer_kinds();
  };
  Trainer t(c, o);
  const RunResult r = t.run();
  EXPECT_EQ(r.switch_step, 4);
  // The switch is evaluated on held-out data both ways, and logged.
  EXPECT_GT(r.switch_val_before, 0.0);
  EXPECT_GT(r.switch_val_after, 0.0);
  EXPECT_NE(r.switch_val_before, r.switch_val_after);
  const auto vals = jsonl(r.run_dir + "/val.jsonl");
  ASSERT_GE(vals.size(), 3u);
  EXPECT_EQ(vals[0]["step"], 4);
  EXPECT_EQ(vals[0]["attention"], "lighthouse");
  EXPECT_EQ(vals[1]["step"], 4);
  EXPECT_EQ(vals[1]["attention"], "dense");
  EXPECT_EQ(vals[1]["val_loss"].get<double>(), r.switch_val_after);
  using model::AttentionKind;
  for (int64_t s = 1; s <= 4; ++s) {
    EXPECT_EQ(modes_at[s],
              (std::vector<AttentionKind>{AttentionKind::kDense, AttentionKind::kLighthouse, AttentionKind::kDense}));
  }
  for (int64_t s = 5; s <= 8; ++s) EXPECT_EQ(modes_at[s], std::vector<AttentionKind>(3, AttentionKind::kDense));
  // The Stage-1 checkpoint (after step 4) holds exactly the weights step 5
  // starts from: the switch did not touch them.
  const Checkpoint stage1 = load_checkpoint(r.run_dir + "/checkpoints/step_000004");
  expect_equal_tensors(stage1.weights, params_at[5]);
  EXPECT_EQ(stage1.config.model.attention, "lighthouse");
  // Step numbering continues; stages and attention are logged.
  const auto m = jsonl(r.run_dir + "/metrics.jsonl");
  ASSERT_EQ(m.size(), 8u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(m[i]["step"], static_cast<int64_t>(i + 1));
    EXPECT_EQ(m[i]["stage"], i < 4 ? 1 : 2);
    EXPECT_EQ(m[i]["attention"], i < 4 ? "lighthouse" : "dense");
  }
  // The switched model is an ordinary dense transformer: its logits equal
  // a fresh dense model's loaded from the same weights.
  model::Llama fresh(c.model, model::dense_plan(c.model.layers), at::kCPU, 123);
  fresh.load_weights(params_of(t.model()));
  data::Loader val(c.data.dir, data::Split::kVal, 2, c.train.seq_len, 0);
  const at::Tensor tokens = val.next().narrow(1, 0, c.train.seq_len);
  {
    at::NoGradGuard ng;
    EXPECT_TRUE(at::equal(t.model().forward(tokens), fresh.forward(tokens)));
  }

  // Resuming the Stage-1 checkpoint with attention = dense is the same run.
  auto resumed_cfg = c;
  resumed_cfg.model.attention = "dense";
  RunOptions ro = quiet(dir_ / "resumed");
  ro.resume = stage1.path;
  const RunResult rr = run_training(resumed_cfg, ro);
  EXPECT_EQ(rr.first_step, 5);
  EXPECT_EQ(rr.losses, std::vector<double>(r.losses.begin() + 4, r.losses.end()));
  EXPECT_EQ(jsonl(rr.run_dir + "/metrics.jsonl").front()["stage"], 2);
}

TEST_F(TrainerTest, MismatchedCheckpointIsRefusedWithAMessage) {
  auto c = small(2);
  const RunResult r = run_training(c, quiet(dir_ / "a"));
  auto expect_error = [&](config::Config other, const std::string& needle) {
    RunOptions o = quiet(dir_ / "b");
    o.resume = r.run_dir;
    try {
      run_training(other, o);
      ADD_FAILURE() << "no error, expected: " << needle;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto other = c;
  other.model.vocab_size = 384;
  expect_error(other, "model.vocab_size = 320 in the checkpoint, 384 here");
  other = c;
  other.model.layers = 4;
  expect_error(other, "model.layers = 3 in the checkpoint, 4 here");
  other = c;
  other.model.ffn_hidden = 96;
  expect_error(other, "model.ffn_hidden = 128 in the checkpoint, 96 here");
  // A damaged file is named too.
  const std::string ckpt = latest_checkpoint(r.run_dir);
  const std::string opt_file = ckpt + "/optimizer.safetensors";
  lighthouse::testing::write_bytes(opt_file, lighthouse::testing::slurp(opt_file).substr(0, 100));
  expect_error(c, "optimizer.safetensors is truncated");
}

TEST_F(TrainerTest, NonFiniteGradientsStopBeforeTheUpdate) {
  auto c = small(6);
  std::map<std::string, at::Tensor> before;
  RunOptions o = quiet(dir_ / "nan");
  o.after_backward = [&](int64_t step, model::Llama& m) {
    if (step != 3) return;
    before = params_of(m);
    m.named_parameters()[4].second.mutable_grad().view(-1)[7] = std::numeric_limits<float>::quiet_NaN();
  };
  Trainer t(c, o);
  try {
    t.run();
    ADD_FAILURE() << "no error";
  } catch (const NonFiniteError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step 3: the gradient norm is nan"), std::string::npos) << msg;
    EXPECT_NE(msg.find("stopped before the optimizer step, parameters unchanged"), std::string::npos) << msg;
  }
  expect_equal_tensors(before, params_of(t.model()));
  EXPECT_EQ(t.optimizer().steps_taken(), 2);
}

TEST_F(TrainerTest, NonFiniteLossStopsNamingTheStep) {
  auto c = small(6);
  std::map<std::string, at::Tensor> before;
  RunOptions o = quiet(dir_ / "inf");
  o.after_backward = [&](int64_t step, model::Llama& m) {
    at::NoGradGuard ng;
    // After step 2's backward, an infinite weight: step 3's loss is not finite.
    if (step == 2) m.named_parameters()[1].second.view(-1)[0] = std::numeric_limits<float>::infinity();
    if (step == 3) before = params_of(m);
  };
  Trainer t(c, o);
  try {
    t.run();
    ADD_FAILURE() << "no error";
  } catch (const NonFiniteError& e) {
    EXPECT_NE(std::string(e.what()).find("step 3: the loss is"), std::string::npos) << e.what();
  }
  expect_equal_tensors(before, params_of(t.model()));
  EXPECT_EQ(t.step(), 2);
}

TEST_F(TrainerTest, NonFiniteStepsAreSkippedWhenConfigured) {
  auto c = small(6);
  c.train.nonfinite = "skip";
  std::map<int64_t, std::map<std::string, at::Tensor>> at_step;
  RunOptions o = quiet(dir_ / "skip");
  o.after_backward = [&](int64_t step, model::Llama& m) {
    at_step[step] = params_of(m);
    if (step == 3) m.named_parameters()[4].second.mutable_grad().view(-1)[7] = std::numeric_limits<float>::infinity();
  };
  Trainer t(c, o);
  const RunResult r = t.run();
  EXPECT_EQ(r.last_step, 6);
  EXPECT_EQ(r.skipped_steps, 1);
  expect_equal_tensors(at_step[3], at_step[4]);  // step 3 changed nothing
  EXPECT_EQ(t.optimizer().steps_taken(), 5);
  const auto m = jsonl(r.run_dir + "/metrics.jsonl");
  EXPECT_EQ(m[2]["skipped"], true);
  EXPECT_EQ(m[3]["skipped"], false);
  const Checkpoint ck = load_checkpoint(r.last_checkpoint);
  EXPECT_EQ(ck.skipped_steps, 1);
  EXPECT_EQ(ck.optimizer_steps, 5);
}

// Bug 2: every line a step reports is in its file when the step ends (read
// back from the file by a hook while the writer is still open), and the
// writer reports a failed write instead of dropping lines.
TEST_F(TrainerTest, MetricsLinesAreInTheFileWhenTheirStepEnds) {
  auto c = small(4);
  c.eval.every = 2;
  c.eval.batches = 1;
  RunOptions o = quiet(dir_ / "flush");
  int64_t checked = 0;
  o.after_step = [&](const StepStats& st) {
    const auto m = jsonl(dir_ / "flush/metrics.jsonl");
    ASSERT_EQ(static_cast<int64_t>(m.size()), st.step);
    EXPECT_EQ(m.back()["step"], st.step);
    EXPECT_EQ(m.back()["loss"].get<double>(), st.loss);
    if (st.step == 2) EXPECT_EQ(jsonl(dir_ / "flush/val.jsonl").back()["step"], 2);
    ++checked;
  };
  run_training(c, o);
  EXPECT_EQ(checked, 4);
}

TEST(JsonlWriter, AFailedWriteIsAnErrorNamingTheFile) {
  JsonlWriter full("/dev/full", -1);  // every write fails with ENOSPC
  EXPECT_ERROR_HAS(full.write(Json{{"step", 1}}), "cannot write a record to /dev/full: No space left on device");
  EXPECT_ERROR_HAS(JsonlWriter("/nonexistent-dir/metrics.jsonl", -1), "cannot write /nonexistent-dir/metrics.jsonl");
}

TEST(JsonlWriter, ResumeKeepsTheRecordsUpToTheStep) {
  TempDir tmp;
  const std::string path = tmp / "m.jsonl";
  {
    JsonlWriter w(path, -1);
    for (int64_t s = 1; s <= 5; ++s) w.write(Json{{"step", s}, {"loss", 1.0 / static_cast<double>(s)}});
  }
  lighthouse::testing::write_bytes(path, lighthouse::testing::slurp(path) + "{\"step\": 6, \"lo");  // a torn line
  JsonlWriter w(path, 3);
  EXPECT_EQ(lighthouse::testing::slurp(path),
            "{\"step\":1,\"loss\":1.0}\n{\"step\":2,\"loss\":0.5}\n{\"step\":3,\"loss\":0.3333333333333333}\n");
  w.write(Json{{"step", 4}});
  EXPECT_EQ(lighthouse::testing::slurp(path).substr(lighthouse::testing::slurp(path).size() - 11), "{\"step\":4}\n");
}

// Bug 1's path: checkpoints pruned while training (keep = 2 of 4), a resume
// that removes the checkpoints after its step, and the run's end. Run again
// with libtorch.so preloaded (ctest trainer_with_torch_first), where
// std::filesystem's remove_all would be libtorch's copy.
TEST_F(TrainerTest, PrunesCheckpointsWhileTraining) {
  auto c = small(4);
  c.checkpoint.every = 1;
  c.checkpoint.keep = 2;
  c.stage2.start_step = 3;
  c.eval.batches = 1;
  const RunResult r = run_training(c, quiet(dir_ / "prune"));
  EXPECT_EQ(io::list_dir(dir_ / "prune/checkpoints"), (std::vector<std::string>{"step_000003", "step_000004"}));
  RunOptions again = quiet();
  again.resume = dir_ / "prune/checkpoints/step_000003";
  again.stop_after = 3;
  Trainer t(c, again);  // drops step_000004, the abandoned continuation
  EXPECT_EQ(io::list_dir(dir_ / "prune/checkpoints"), (std::vector<std::string>{"step_000003"}));
  EXPECT_EQ(r.last_step, 4);
}

// Done-when of issue 8 at the library level (the CLI form, one arm, is in
// test_cli_runs): the main job with its dense baseline, stopped after K
// steps and resumed from the directory given to --run-dir, continues both
// arms where they stopped and equals the uninterrupted job, comparison
// included; resuming the finished job again trains nothing.
TEST_F(TrainerTest, RecipeResumedFromItsRunDirectoryEqualsTheUninterruptedJob) {
  auto c = small(5);
  c.train.seq_len = 512;
  c.stage2.start_step = 4;
  c.eval.batches = 1;
  c.train.baseline = true;
  const std::string full = dir_ / "full", split = dir_ / "split";
  RunOptions o = quiet(full);
  run_recipe(c, o);
  o.run_dir = split;
  o.stop_after = 3;
  run_recipe(c, o);
  EXPECT_EQ(recipe_arms(split), (std::vector<std::string>{"dense", "two-stage"}));
  RunOptions resume = quiet();
  resume.resume = split;
  run_recipe(c, resume);
  for (const std::string arm : {"two-stage", "dense"}) {
    SCOPED_TRACE(arm);
    const std::vector<double> want = losses_of(full + "/" + arm + "/metrics.jsonl");
    ASSERT_EQ(want.size(), 5u);
    EXPECT_EQ(losses_of(split + "/" + arm + "/metrics.jsonl"), want);
    EXPECT_EQ(load_checkpoint(latest_checkpoint(split + "/" + arm)).step, 5);
  }
  // The comparison covers the whole runs, as the uninterrupted job's.
  const Json a = Json::parse(io::read_file(full + "/comparison.json"));
  const Json b = Json::parse(io::read_file(split + "/comparison.json"));
  ASSERT_TRUE(a.contains("switch"));
  EXPECT_EQ(a["switch"], b["switch"]);
  for (const char* key : {"final_val_loss", "tokens", "steps"}) {
    EXPECT_EQ(a["main"][key], b["main"][key]) << key;
    EXPECT_EQ(a["baseline"][key], b["baseline"][key]) << key;
  }
  // The finished job resumed again: nothing trained, the same report.
  run_recipe(c, resume);
  EXPECT_EQ(losses_of(split + "/two-stage/metrics.jsonl"), losses_of(full + "/two-stage/metrics.jsonl"));
  const Json again = Json::parse(io::read_file(split + "/comparison.json"));
  EXPECT_EQ(again["switch"], a["switch"]);
  EXPECT_EQ(again["main"]["final_val_loss"], a["main"]["final_val_loss"]);
}

}  // namespace
}  // namespace lighthouse::train
