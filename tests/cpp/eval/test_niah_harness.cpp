// The passkey harness proven with test doubles behind NextTokenModel, the
// interface the real model uses too (TESTING.md item 17):
// - a model that reads the passkey out of the prompt's text scores 1.0 in
//   every cell;
// - a constant model (the same logits for every prompt) scores exactly the
//   share of its favourite digit: 0.1 in every cell when trials is a
//   multiple of 10 (digits balanced), and its mean p_correct is exactly
//   0.1 (the ten digits' probabilities sum to one);
// - a random-guess model's mean accuracy over n trials is within 4 binomial
//   standard deviations of 0.1: |acc - 0.1| <= 4 * sqrt(0.09 / n);
// - the batch size does not change any result; the JSON rebuilds every
//   prompt the model saw, bit for bit; bad model output is an error.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "eval/niah.h"

namespace lighthouse::eval {
namespace {

constexpr int64_t kVocab = 320;

std::vector<int64_t> row(const at::Tensor& tokens, int64_t b) {
  const int64_t* p = tokens.data_ptr<int64_t>() + b * tokens.size(1);
  return std::vector<int64_t>(p, p + tokens.size(1));
}

// Finds "The passkey is <digit>" in the prompt and puts a large logit on it.
class CopyModel : public NextTokenModel {
 public:
  at::Tensor last_logits(const at::Tensor& tokens) override {
    at::Tensor out = at::zeros({tokens.size(0), kVocab});
    const std::string key = "The passkey is ";
    for (int64_t b = 0; b < tokens.size(0); ++b) {
      const std::vector<int64_t> t = row(tokens, b);
      prompts.push_back(t);
      int found = -1;
      for (size_t i = 0; i + key.size() < t.size() && found < 0; ++i) {
        bool match = true;
        for (size_t j = 0; j < key.size() && match; ++j) match = t[i + j] == static_cast<unsigned char>(key[j]);
        const int64_t next = t[i + key.size()];
        if (match && next >= '0' && next <= '9') found = static_cast<int>(next - '0');
      }
      EXPECT_GE(found, 0) << "no passkey in prompt " << b;
      if (found >= 0) out[b][kFirstDigitToken + found] = 5.0;
    }
    return out;
  }
  std::vector<std::vector<int64_t>> prompts;  // every prompt seen, in order
};

// The same logits whatever the prompt.
class ConstantModel : public NextTokenModel {
 public:
  explicit ConstantModel(at::Tensor logits) : logits_(std::move(logits)) {}
  at::Tensor last_logits(const at::Tensor& tokens) override {
    return logits_.unsqueeze(0).expand({tokens.size(0), kVocab}).contiguous();
  }

 private:
  at::Tensor logits_;  // [V]
};

// Random logits drawn from a seeded generator, unrelated to the prompt.
class RandomModel : public NextTokenModel {
 public:
  at::Tensor last_logits(const at::Tensor& tokens) override {
    return at::randn({tokens.size(0), kVocab}, gen_);
  }

 private:
  at::Generator gen_ = at::detail::createCPUGenerator(7);
};

NiahProtocol protocol(int64_t trials) {
  NiahProtocol p;
  p.contexts = {300, 700};
  p.depths = {0, 25, 50, 90, 100};
  p.trials = trials;
  p.seed = 5;
  return p;
}

NiahOptions quiet(int64_t batch) {
  NiahOptions o;
  o.batch = batch;
  o.quiet = true;
  return o;
}

TEST(NiahHarness, ModelThatCopiesThePasskeyScoresOne) {
  CopyModel m;
  const NiahResult r = run_niah(m, protocol(20), quiet(0));
  ASSERT_EQ(r.cells.size(), 10u);
  for (const NiahCell& c : r.cells) {
    EXPECT_EQ(c.correct, 20);
    EXPECT_EQ(c.accuracy, 1.0);
    // softmax over the ten digits with one logit at 5 and nine at 0.
    EXPECT_NEAR(c.p_correct, std::exp(5.0) / (std::exp(5.0) + 9.0), 1e-6);
    EXPECT_EQ(c.predicted, c.digits);
  }
  EXPECT_EQ(r.mean_accuracy, 1.0);
  EXPECT_EQ(r.prompts, 2 * 5 * 20);
  EXPECT_EQ(r.prompt_tokens, (300 + 700) * 5 * 20);
}

TEST(NiahHarness, ConstantModelScoresExactlyChanceWhenDigitsAreBalanced) {
  at::Generator gen = at::detail::createCPUGenerator(11);
  const at::Tensor logits = at::randn({kVocab}, gen);
  const int64_t favourite = logits.narrow(0, kFirstDigitToken, 10).argmax().item<int64_t>();
  ConstantModel m(logits);
  const NiahResult r = run_niah(m, protocol(30), quiet(7));
  for (const NiahCell& c : r.cells) {
    EXPECT_EQ(c.correct, 3) << "context " << c.context << " depth " << c.depth;
    EXPECT_NEAR(c.p_correct, 0.1, 1e-12);
    for (const int p : c.predicted) EXPECT_EQ(p, favourite);
  }
  EXPECT_NEAR(r.mean_accuracy, 0.1, 1e-12);
  EXPECT_NEAR(r.mean_p_correct, 0.1, 1e-12);
}

TEST(NiahHarness, RandomGuessesScoreChanceWithinSamplingError) {
  RandomModel m;
  NiahProtocol p = protocol(50);
  p.depths = {0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  const NiahResult r = run_niah(m, p, quiet(0));
  const double n = static_cast<double>(r.prompts);  // 1100 trials
  const double bound = 4.0 * std::sqrt(0.1 * 0.9 / n);
  EXPECT_LE(std::fabs(r.mean_accuracy - 0.1), bound) << "n = " << n;
  EXPECT_LE(std::fabs(r.mean_p_correct - 0.1), bound);
  EXPECT_GT(r.mean_accuracy, 0.0);
}

TEST(NiahHarness, BatchSizeChangesNothing) {
  CopyModel a, b;
  const NiahResult one = run_niah(a, protocol(10), quiet(1));
  const NiahResult many = run_niah(b, protocol(10), quiet(13));
  EXPECT_EQ(a.prompts, b.prompts);
  EXPECT_EQ(niah_json(one, {}).at("cells"), niah_json(many, {}).at("cells"));
}

TEST(NiahHarness, TheJsonRebuildsEveryPromptBitForBit) {
  CopyModel m;
  const NiahResult r = run_niah(m, protocol(10), quiet(4));
  const Json j = Json::parse(niah_json(r, {{"run", "test"}}).dump());
  const NiahProtocol p = protocol_from_json(j);
  EXPECT_EQ(p.contexts, protocol(10).contexts);
  EXPECT_EQ(p.depths, protocol(10).depths);
  size_t k = 0;
  for (const Json& cell : j.at("cells")) {
    const auto seeds = cell.at("seeds").get<std::vector<uint64_t>>();
    const auto digits = cell.at("digits").get<std::vector<int>>();
    const auto needles = cell.at("needle_token").get<std::vector<int64_t>>();
    ASSERT_EQ(static_cast<int64_t>(seeds.size()), p.trials);
    for (int64_t t = 0; t < p.trials; ++t, ++k) {
      NiahTrial trial;
      trial.context = cell.at("context").get<int64_t>();
      trial.depth = cell.at("depth").get<int64_t>();
      trial.index = t;
      trial.seed = seeds[static_cast<size_t>(t)];
      trial.digit = digits[static_cast<size_t>(t)];
      const NiahPrompt prompt = build_prompt(p, trial);
      ASSERT_EQ(prompt.tokens, m.prompts[k]) << "cell " << trial.context << "/" << trial.depth << " trial " << t;
      EXPECT_EQ(prompt.needle_start, needles[static_cast<size_t>(t)]);
    }
  }
  EXPECT_EQ(k, m.prompts.size());
}

class BadModel : public NextTokenModel {
 public:
  explicit BadModel(at::Tensor out) : out_(std::move(out)) {}
  at::Tensor last_logits(const at::Tensor& tokens) override { return out_; }

 private:
  at::Tensor out_;
};

TEST(NiahHarness, BadModelOutputIsAnErrorThatSaysWhat) {
  NiahProtocol p = protocol(10);
  p.contexts = {300};
  p.depths = {50};
  BadModel wrong_rows(at::zeros({3, kVocab}));
  try {
    run_niah(wrong_rows, p, quiet(0));
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("[3, 320]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("for 10 prompts"), std::string::npos) << e.what();
  }
  at::Tensor nan = at::zeros({10, kVocab});
  nan[4][kFirstDigitToken + 2] = std::nan("");
  BadModel non_finite(nan);
  try {
    run_niah(non_finite, p, quiet(0));
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite digit logit at context 300, depth 50, trial 4"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lighthouse::eval
