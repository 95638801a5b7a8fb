// The training step apart from the loop (step.h) and the seams data
// parallelism builds on:
// - activation checkpointing, applied by training code around the model's
//   blocks, gives bit-identical losses and gradients;
// - a step of two micro-batches (a power of two) gives bit for bit the
//   gradients of the former mean-of-means (each micro-batch's mean / 2);
// - the loader splits each global batch by rows among ranks; their union is
//   the single-process batch, and a batch the ranks do not divide is refused;
// - two simulated processes (rows split, gradients and counts summed by a
//   StepReducer) take the single-process step: the same loss and update up
//   to the summation order.
//
// Data: the trainer tests' pack (ctest fixture train_data).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../data/test_pack.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "model/llama.h"
#include "small_model.h"
#include "test_util.h"
#include "train/activation_checkpoint.h"
#include "train/optim.h"
#include "train/runtime.h"
#include "train/step.h"

namespace lighthouse::train {
namespace {

using lighthouse::testing::random_tokens;
using lighthouse::testing::small_config;
using lighthouse::testing::small_model;

std::string data_dir() { return lighthouse::testing::ensure_test_pack(LIGHTHOUSE_TEST_DATA_DIR); }

std::vector<at::Tensor> grads_of(const model::Llama& m) {
  std::vector<at::Tensor> g;
  for (const auto& p : m.parameters()) g.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
  return g;
}

TEST(ActivationCheckpointing, GivesTheSameLossAndGradients) {
  const auto c = small_config(701);  // layer 1 runs Lighthouse; the op pads 701 inside
  model::Llama m = small_model(c, 2);
  const at::Tensor tokens = random_tokens(2, 702, 9);
  const auto run = [&] {
    for (const auto& p : m.parameters()) p.mutable_grad() = at::Tensor();
    const at::Tensor loss = m.loss(tokens, data::kPad);
    loss.backward();
    return std::make_pair(loss.item<float>(), grads_of(m));
  };
  const auto [plain_loss, plain] = run();
  apply_activation_checkpointing(m);
  const auto [ckpt_loss, ckpt] = run();
  EXPECT_EQ(plain_loss, ckpt_loss);
  for (size_t i = 0; i < plain.size(); ++i) {
    SCOPED_TRACE(m.named_parameters()[i].first);
    EXPECT_GT(plain[i].abs().sum().item<double>(), 0.0);  // every parameter gets a gradient
    EXPECT_TRUE(at::equal(plain[i], ckpt[i]));            // same ops, same order: bit-identical
  }
  // Without grad mode (evaluation) blocks run directly; off again: the default.
  {
    at::NoGradGuard ng;
    EXPECT_EQ(m.loss(tokens, data::kPad).item<float>(), plain_loss);
  }
  apply_activation_checkpointing(m, false);
  EXPECT_EQ(run().first, plain_loss);
}

// The former step: each micro-batch's mean loss / grad_accum, backward.
TEST(TrainStep, TwoMicroBatchesEqualTheMeanOfMeansBitForBit) {
  auto c = small_config(512);
  const std::string dir = data_dir();
  data::Loader loader(dir, data::Split::kTrain, 1, 512, 0), replay(dir, data::Split::kTrain, 1, 512, 0);
  model::Llama m = small_model(c, 3), reference = small_model(c, 3);
  AdamW opt(m.named_parameters(), c.optim);
  std::vector<at::Tensor> step_grads;
  TrainStep step(m, opt, loader, /*grad_accum=*/2, /*grad_clip=*/0.0);
  const StepStats st = step.run(1, 1e-3, [&](int64_t, model::Llama& model) { step_grads = grads_of(model); });
  EXPECT_TRUE(st.finite && st.updated);
  EXPECT_EQ(st.tokens, 2 * 512);
  double mean_of_means = 0;
  for (int micro = 0; micro < 2; ++micro) {
    const at::Tensor loss = reference.loss(replay.next(), data::kPad);
    (loss / 2.0).backward();
    mean_of_means += loss.item<double>() / 2;
  }
  const std::vector<at::Tensor> want = grads_of(reference);
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(at::equal(step_grads[i], want[i])) << reference.named_parameters()[i].first;
  }
  EXPECT_NEAR(st.loss, mean_of_means, 1e-6);
  EXPECT_EQ(opt.steps_taken(), 1);
}

TEST(Loader, SplitsTheGlobalBatchByRowsAmongRanks) {
  const std::string dir = data_dir();
  data::Loader one(dir, data::Split::kTrain, 4, 64, 5);
  std::vector<data::Loader> ranks;
  for (int64_t r = 0; r < 2; ++r) ranks.emplace_back(dir, data::Split::kTrain, 4, 64, 5, r, 2);
  for (int batch = 0; batch < 3; ++batch) {
    const at::Tensor all = one.next();
    const at::Tensor r0 = ranks[0].next(), r1 = ranks[1].next();
    EXPECT_EQ(r0.sizes(), (std::vector<int64_t>{2, 65}));
    EXPECT_TRUE(at::equal(r0, all.narrow(0, 0, 2)));
    EXPECT_TRUE(at::equal(r1, all.narrow(0, 2, 2)));
    EXPECT_FALSE(at::equal(r0, r1));
  }
  // The state is the global position, the same on every rank.
  EXPECT_EQ(ranks[0].state(), one.state());
  EXPECT_EQ(ranks[1].state(), one.state());
  EXPECT_EQ(ranks[1].local_batch(), 2);
  EXPECT_ERROR_HAS(data::Loader(dir, data::Split::kTrain, 3, 64, 5, 0, 2),
                   "the global batch (3 rows) does not split over 2 ranks");
  EXPECT_ERROR_HAS(data::Loader(dir, data::Split::kTrain, 4, 64, 5, 2, 2), "rank 2 of world 2");
}

// Two processes simulated in one: rank 1 steps first and hands its count,
// loss sum and gradients to rank 0's reducer, which sums them as an
// all-reduce would.
class Rank1Capture : public StepReducer {
 public:
  explicit Rank1Capture(int64_t global_count) : global_count_(global_count) {}
  int64_t total_count(int64_t local) override {
    local_count = local;
    return global_count_;
  }
  void reduce_gradients(const std::vector<at::Tensor>& params) override {
    for (const auto& p : params) grads.push_back(p.grad().clone());
  }
  at::Tensor total_loss_sum(const at::Tensor& local) override {
    loss_sum = local.clone();
    return local;
  }
  int64_t local_count = 0;
  std::vector<at::Tensor> grads;
  at::Tensor loss_sum;

 private:
  int64_t global_count_;
};

class Rank0Sum : public StepReducer {
 public:
  explicit Rank0Sum(const Rank1Capture& other) : other_(other) {}
  int64_t total_count(int64_t local) override { return local + other_.local_count; }
  void reduce_gradients(const std::vector<at::Tensor>& params) override {
    reduced.clear();
    for (size_t i = 0; i < params.size(); ++i)
      reduced.push_back(params[i].mutable_grad().add_(other_.grads[i]).clone());
  }
  at::Tensor total_loss_sum(const at::Tensor& local) override { return local + other_.loss_sum; }
  std::vector<at::Tensor> reduced;

 private:
  const Rank1Capture& other_;
};

// One process: the identity, recording the gradients it would reduce.
class Record : public StepReducer {
 public:
  void reduce_gradients(const std::vector<at::Tensor>& params) override {
    grads.clear();
    for (const auto& p : params) grads.push_back(p.grad().clone());
  }
  std::vector<at::Tensor> grads;
};

TEST(TrainStep, ARowSplitOverTwoProcessesTakesTheSingleProcessStep) {
  const auto c = small_config(512);
  const std::string dir = data_dir();
  data::Loader single_data(dir, data::Split::kTrain, 2, 512, 7);
  data::Loader rank0_data(dir, data::Split::kTrain, 2, 512, 7, 0, 2),
      rank1_data(dir, data::Split::kTrain, 2, 512, 7, 1, 2);
  model::Llama single = small_model(c, 4), rank0 = small_model(c, 4), rank1 = small_model(c, 4);
  AdamW opt_single(single.named_parameters(), c.optim), opt0(rank0.named_parameters(), c.optim),
      opt1(rank1.named_parameters(), c.optim);
  Rank1Capture r1(/*global_count=*/2 * 2 * 512);
  Rank0Sum r0(r1);
  Record one;
  TrainStep s_single(single, opt_single, single_data, 2, 1.0, &one), s1(rank1, opt1, rank1_data, 2, 1.0, &r1),
      s0(rank0, opt0, rank0_data, 2, 1.0, &r0);
  for (int64_t step = 1; step <= 2; ++step) {
    r1.grads.clear();
    const StepStats want = s_single.run(step, 1e-3);
    s1.run(step, 1e-3);
    const StepStats got = s0.run(step, 1e-3);
    EXPECT_EQ(got.tokens, want.tokens);
    EXPECT_NEAR(got.loss, want.loss, 1e-6);
    EXPECT_NEAR(got.grad_norm, want.grad_norm, 1e-5 * want.grad_norm);
    EXPECT_TRUE(got.updated);
    // The summed gradients are the single process's up to the summation
    // order; rank 1's own are far from them (half the rows).
    ASSERT_EQ(r0.reduced.size(), one.grads.size());
    for (size_t i = 0; i < one.grads.size(); ++i) {
      SCOPED_TRACE(single.named_parameters()[i].first);
      const double scale = one.grads[i].abs().max().item<double>();
      EXPECT_LE((r0.reduced[i] - one.grads[i]).abs().max().item<double>(), 1e-5 * scale);
    }
    EXPECT_FALSE(at::allclose(r1.grads[1], one.grads[1], 1e-2, 1e-6));
    // Every process continues from rank 0's weights and moments (the others
    // would compute the same update; the single process is synced likewise,
    // since AdamW's first steps amplify rounding where a gradient is ~0).
    at::NoGradGuard ng;
    for (model::Llama* m : {&rank1, &single}) m->load_weights(lighthouse::testing::weights_of(rank0));
    opt1.load_state(opt0.state(), opt0.steps_taken());
    opt_single.load_state(opt0.state(), opt0.steps_taken());
  }
}

TEST(Evaluate, IsTheMeanOfEachBatchsSumOverCount) {
  const auto c = small_config(512);
  data::Loader val(data_dir(), data::Split::kVal, 1, 512, 0);
  const model::Llama m = small_model(c, 5);
  double want = 0;
  {
    at::NoGradGuard ng;
    val.reset();
    for (int i = 0; i < 3; ++i) want += m.loss(val.next(), data::kPad).item<double>();
  }
  val.next();  // evaluate resets first
  EXPECT_EQ(evaluate(m, val, 3), want / 3);
}

}  // namespace
}  // namespace lighthouse::train
