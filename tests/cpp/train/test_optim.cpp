// The optimizer side of a step: AdamW equals torch::optim::AdamW bit for
// bit (the default, unfused CPU path), the fused multi-tensor path equals it
// within the tolerance rule, the learning-rate schedule, global grad-norm
// clipping, and the comparison of the main job (jump and recovery
// definitions).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <limits>

#include "train/optim.h"
#include "train/recipe.h"

namespace lighthouse::train {
namespace {

TEST(AdamW, EqualsTorchAdamWBitForBit) {
  config::OptimConfig cfg;
  cfg.beta1 = 0.9;
  cfg.beta2 = 0.95;
  cfg.eps = 1e-8;
  cfg.weight_decay = 0.1;
  at::manual_seed(1);
  std::vector<std::pair<std::string, at::Tensor>> ours = {{"w", at::randn({7, 5}).requires_grad_()},
                                                          {"g", at::randn({5}).requires_grad_()}};
  std::vector<at::Tensor> theirs = {ours[0].second.detach().clone().requires_grad_(),
                                    ours[1].second.detach().clone().requires_grad_()};
  AdamW opt(ours, cfg);
  // Weight decay on matrices only: two parameter groups for torch.
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<at::Tensor>{theirs[0]},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-3).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1)));
  groups.emplace_back(std::vector<at::Tensor>{theirs[1]},
                      std::make_unique<torch::optim::AdamWOptions>(
                          torch::optim::AdamWOptions(1e-3).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.0)));
  torch::optim::AdamW ref(std::move(groups));
  for (int step = 1; step <= 6; ++step) {
    const double lr = 1e-3 * step;  // a changing lr, as under a schedule
    for (auto& g : ref.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    for (size_t i = 0; i < 2; ++i) {
      const at::Tensor grad = at::randn(ours[i].second.sizes());
      ours[i].second.mutable_grad() = grad.clone();
      theirs[i].mutable_grad() = grad.clone();
    }
    opt.step(lr);
    ref.step();
    for (size_t i = 0; i < 2; ++i) ASSERT_TRUE(at::equal(ours[i].second, theirs[i])) << "step " << step << " " << i;
  }
  EXPECT_EQ(opt.steps_taken(), 6);
  // Its moments are the ones torch keeps.
  const auto state = opt.state();
  const auto& ref_state = static_cast<torch::optim::AdamWParamState&>(*ref.state().at(theirs[0].unsafeGetTensorImpl()));
  EXPECT_TRUE(at::equal(state.at("exp_avg.w"), ref_state.exp_avg()));
  EXPECT_TRUE(at::equal(state.at("exp_avg_sq.w"), ref_state.exp_avg_sq()));
}

// Parameters, each with its own gradient sequence, in `dtype`.
std::vector<std::pair<std::string, at::Tensor>> adamw_params(at::ScalarType dtype) {
  at::manual_seed(5);
  return {{"w", at::randn({33, 17}).to(dtype).requires_grad_()},
          {"e", at::randn({9, 4, 3}).to(dtype).requires_grad_()},
          {"g", at::randn({17}).to(dtype).requires_grad_()}};
}

// Runs `steps` updates of `impl` on a copy of `start` with the gradients of
// `grads` (per step, per parameter) and returns the parameters and moments.
std::vector<at::Tensor> run_adamw(const std::vector<std::pair<std::string, at::Tensor>>& start,
                                  const std::vector<std::vector<at::Tensor>>& grads, const config::OptimConfig& cfg,
                                  AdamWImpl impl, at::ScalarType dtype) {
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (const auto& [name, t] : start) params.emplace_back(name, t.detach().to(dtype).clone().requires_grad_());
  AdamW opt(params, cfg, impl);
  EXPECT_EQ(opt.fused(), impl == AdamWImpl::kFused);
  for (size_t step = 0; step < grads.size(); ++step) {
    for (size_t i = 0; i < params.size(); ++i) params[i].second.mutable_grad() = grads[step][i].to(dtype);
    opt.step(1e-2 * static_cast<double>(step + 1));
  }
  std::vector<at::Tensor> out;
  for (const auto& [name, t] : params) out.push_back(t.detach());
  for (const auto& [name, t] : opt.state()) out.push_back(t);
  return out;
}

TEST(AdamW, DefaultOnCpuIsUnfused) {
  auto params = adamw_params(at::kFloat);
  EXPECT_FALSE(AdamW(params, config::OptimConfig{}).fused());
}

TEST(AdamW, FusedEqualsUnfusedWithinTheToleranceRule) {
  // The rule (tests/python/tolerances.py): the fused result's error against
  // a float64 run is at most 2x the unfused fp32 run's error plus the
  // reference's rounding to fp32. Six steps, a changing lr, weight decay on
  // the matrices only.
  config::OptimConfig cfg;
  cfg.beta1 = 0.9;
  cfg.beta2 = 0.95;
  cfg.eps = 1e-8;
  cfg.weight_decay = 0.1;
  const auto start = adamw_params(at::kFloat);
  std::vector<std::vector<at::Tensor>> grads;
  for (int step = 0; step < 6; ++step) {
    std::vector<at::Tensor> g;
    for (const auto& [name, t] : start) g.push_back(at::randn(t.sizes()) * (step + 1));
    grads.push_back(g);
  }
  const auto ref = run_adamw(start, grads, cfg, AdamWImpl::kUnfused, at::kDouble);
  const auto stock = run_adamw(start, grads, cfg, AdamWImpl::kUnfused, at::kFloat);
  const auto fused = run_adamw(start, grads, cfg, AdamWImpl::kFused, at::kFloat);
  ASSERT_EQ(ref.size(), fused.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = (fused[i].to(at::kDouble) - ref[i]).abs().max().item<double>();
    const double stock_err = (stock[i].to(at::kDouble) - ref[i]).abs().max().item<double>();
    const double noise = (ref[i].to(at::kFloat).to(at::kDouble) - ref[i]).abs().max().item<double>();
    EXPECT_LE(err, 2 * stock_err + noise) << "tensor " << i << ": fused err " << err << ", unfused err " << stock_err;
    EXPECT_GT(ref[i].abs().max().item<double>(), 0) << "tensor " << i;
  }
}

TEST(AdamW, StateRoundTripAndErrors) {
  config::OptimConfig cfg;
  std::vector<std::pair<std::string, at::Tensor>> p = {{"a", at::ones({3, 2}).requires_grad_()}};
  AdamW opt(p, cfg);
  p[0].second.mutable_grad() = at::full({3, 2}, 0.5);
  opt.step(1e-2);
  AdamW other(p, cfg);
  other.load_state(opt.state(), opt.steps_taken());
  EXPECT_EQ(other.steps_taken(), 1);
  EXPECT_TRUE(at::equal(other.state().at("exp_avg.a"), opt.state().at("exp_avg.a")));
  auto bad = opt.state();
  bad["exp_avg.a"] = at::zeros({2, 3});
  try {
    other.load_state(bad, 1);
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'exp_avg.a' has shape [2, 3] but the parameter has shape [3, 2]"),
              std::string::npos)
        << e.what();
  }
  bad = opt.state();
  bad.erase("exp_avg_sq.a");
  EXPECT_THROW(other.load_state(bad, 1), c10::Error);
}

TEST(Schedule, WarmupThenCosineLinearConstant) {
  config::Config c;
  c.train.steps = 110;
  c.optim.lr = 1e-3;
  c.optim.warmup_steps = 10;
  c.optim.min_lr_ratio = 0.1;
  c.optim.schedule = "cosine";
  EXPECT_DOUBLE_EQ(lr_at(c, 1), 1e-4);
  EXPECT_DOUBLE_EQ(lr_at(c, 5), 5e-4);
  EXPECT_DOUBLE_EQ(lr_at(c, 10), 1e-3);
  EXPECT_NEAR(lr_at(c, 60), 0.55e-3, 1e-12);  // half-way: (1 + 0.1) / 2
  EXPECT_NEAR(lr_at(c, 110), 1e-4, 1e-12);
  EXPECT_GT(lr_at(c, 30), lr_at(c, 31));
  c.optim.schedule = "linear";
  EXPECT_NEAR(lr_at(c, 60), 0.55e-3, 1e-12);
  EXPECT_NEAR(lr_at(c, 35), 1e-3 * (1 - 0.9 * 0.25), 1e-12);
  c.optim.schedule = "constant";
  EXPECT_DOUBLE_EQ(lr_at(c, 100), 1e-3);
  c.optim.warmup_steps = 0;
  c.optim.schedule = "cosine";
  EXPECT_GT(lr_at(c, 1), 0.99e-3);
}

TEST(ClipGradNorm, MatchesTheDefinition) {
  at::manual_seed(3);
  std::vector<at::Tensor> p = {at::randn({4, 4}).requires_grad_(), at::randn({3}).requires_grad_(),
                               at::randn({2}).requires_grad_()};
  p[0].mutable_grad() = at::randn({4, 4}) * 3;
  p[1].mutable_grad() = at::randn({3}) * 3;  // p[2] has no gradient: skipped
  const double want = std::sqrt(p[0].grad().pow(2).sum().item<double>() + p[1].grad().pow(2).sum().item<double>());
  const at::Tensor g0 = p[0].grad().clone();
  const double norm = clip_grad_norm(p, 1.0);
  EXPECT_NEAR(norm, want, 1e-5 * want);
  const double after = std::sqrt(p[0].grad().pow(2).sum().item<double>() + p[1].grad().pow(2).sum().item<double>());
  EXPECT_NEAR(after, 1.0, 1e-5);
  EXPECT_TRUE(at::allclose(p[0].grad(), g0 * (1.0 / (want + 1e-6)), 1e-5, 1e-7));
  // Below the threshold: unchanged. 0: no clipping.
  const at::Tensor g1 = p[0].grad().clone();
  clip_grad_norm(p, 100.0);
  EXPECT_TRUE(at::equal(p[0].grad(), g1));
  p[0].mutable_grad().mul_(1000);
  const at::Tensor g2 = p[0].grad().clone();
  clip_grad_norm(p, 0.0);
  EXPECT_TRUE(at::equal(p[0].grad(), g2));
  // Non-finite: reported, gradients left alone.
  p[1].mutable_grad()[0] = std::numeric_limits<float>::quiet_NaN();
  const at::Tensor g3 = p[0].grad().clone();
  EXPECT_TRUE(std::isnan(clip_grad_norm(p, 1.0)));
  EXPECT_TRUE(at::equal(p[0].grad(), g3));
  p[1].mutable_grad()[0] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(std::isinf(clip_grad_norm(p, 1.0)));
}

RunResult synthetic(const std::vector<double>& losses, int64_t switch_step) {
  RunResult r;
  r.first_step = 1;
  r.last_step = static_cast<int64_t>(losses.size());
  r.losses = losses;
  r.switch_step = switch_step;
  r.label = "two-stage";
  r.attention = "lighthouse -> dense";
  return r;
}

TEST(Compare, JumpAndRecoveryAgainstTheBaseline) {
  // 12 steps, switch after step 6 (window 3). Before the switch the run is
  // 0.1 above the baseline (0.4 on one outlier batch, which the median
  // ignores); after it the gap is 0.5, 0.2, 0.1, -0.05, 0, 0.01.
  const std::vector<double> base = {5, 4.5, 4, 3.8, 3.6, 3.4, 3.3, 3.2, 3.1, 3.0, 2.9, 2.8};
  std::vector<double> main = base;
  for (int i = 0; i < 6; ++i) main[i] += i == 4 ? 0.4 : 0.1;
  const double gaps[] = {0.5, 0.2, 0.1, -0.05, 0.0, 0.01};
  for (int i = 6; i < 12; ++i) main[i] += gaps[i - 6];
  RunResult m = synthetic(main, 6);
  m.switch_val_before = 3.5;
  m.switch_val_after = 3.75;
  const RunResult b = synthetic(base, 0);
  const Comparison c = compare_runs(m, &b, 3);
  ASSERT_TRUE(c.has_switch);
  EXPECT_EQ(c.switch_step, 6);
  EXPECT_EQ(c.window, 3);
  EXPECT_NEAR(c.val_jump, 0.25, 1e-12);
  EXPECT_NEAR(c.pre_switch_loss, 3.9, 1e-12);  // median of 3.9, 4.0, 3.5
  EXPECT_NEAR(c.loss_after_switch, 3.8, 1e-12);
  EXPECT_NEAR(c.pre_switch_gap, 0.1, 1e-12);  // median of 0.1, 0.4, 0.1
  EXPECT_NEAR(c.gap_after_switch, 0.5, 1e-12);
  EXPECT_NEAR(c.train_jump, 0.4, 1e-12);
  EXPECT_EQ(c.recovered_step, 9);        // gap 0.1 <= 0.1
  EXPECT_EQ(c.below_baseline_step, 10);  // gap -0.05
  const std::string table = format_comparison(c, m, &b);
  EXPECT_NE(table.find("recovered after 3 steps (step 9"), std::string::npos) << table;
  EXPECT_NE(table.find("at or below the dense baseline first at step 10"), std::string::npos) << table;
  EXPECT_NE(table.find("3.5000 with Lighthouse -> 3.7500 with the same weights dense: +0.2500"), std::string::npos)
      << table;
  const Json j = comparison_json(c, m, &b);
  EXPECT_EQ(j["switch"]["steps_to_recover"].get<int64_t>(), 3);
}

TEST(Compare, WithoutBaselineAndWithoutRecovery) {
  const RunResult m = synthetic({4, 3, 2, 2.5, 2.4, 2.3}, 3);
  const Comparison c = compare_runs(m, nullptr, 2);
  EXPECT_NEAR(c.pre_switch_loss, 2.5, 1e-12);  // median of 3, 2
  EXPECT_NEAR(c.train_jump, 0.0, 1e-12);
  EXPECT_EQ(c.recovered_step, 4);  // 2.5 <= 2.5
  const RunResult never = synthetic({4, 3, 2, 3.5, 3.4, 3.3}, 3);
  const Comparison n = compare_runs(never, nullptr, 2);
  EXPECT_EQ(n.recovered_step, -1);
  EXPECT_NE(format_comparison(n, never, nullptr).find("not recovered within the run (3 dense steps)"),
            std::string::npos);
  EXPECT_FALSE(compare_runs(synthetic({4, 3}, 0), nullptr).has_switch);
}

}  // namespace
}  // namespace lighthouse::train
