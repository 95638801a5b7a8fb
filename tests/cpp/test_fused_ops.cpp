// The fused ops' C++ API where Python cannot reach it: RoPE rotates q and k
// in place (same storage, autograd history rebased) on the views a model
// gets from its projections, and differentiates through them exactly like
// the copying form; the block pieces' recompute switch changes nothing.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "ops/fused.h"

namespace lighthouse::fused {
namespace {

TEST(FusedRope, InPlaceOnProjectionViewsDifferentiatesLikeACopy) {
  at::manual_seed(3);
  const int64_t B = 2, N = 11, D = 24, H = 3, Hkv = 1, d = 8;
  const at::Tensor x = at::randn({B, N, D}).requires_grad_();
  const at::Tensor wq = at::randn({H * d, D}).requires_grad_(), wk = at::randn({Hkv * d, D}).requires_grad_();
  const at::Tensor positions = at::arange(100, 100 + N);
  const at::Tensor inv_freq = rope_inv_freq(d, 10000.0, at::kCPU);
  const at::Tensor gq = at::randn({B, N, H, d}), gk = at::randn({B, N, Hkv, d});

  // In place on views of the projections, as the model does.
  at::Tensor q = at::linear(x, wq).view({B, N, H, d});
  at::Tensor k = at::linear(x, wk).view({B, N, Hkv, d});
  const void* q_storage = q.data_ptr();
  rope_(q, k, positions, inv_freq);
  EXPECT_EQ(q.data_ptr(), q_storage);
  const auto g_inplace = torch::autograd::grad({q, k}, {x, wq, wk}, {gq, gk});

  // The same on copies.
  const at::Tensor q2 = at::linear(x, wq).view({B, N, H, d}).clone();
  const at::Tensor k2 = at::linear(x, wk).view({B, N, Hkv, d}).clone();
  const auto [rq, rk] = rope_(q2, k2, positions, inv_freq);
  EXPECT_TRUE(at::equal(q, rq));
  EXPECT_TRUE(at::equal(k, rk));
  const auto g_copy = torch::autograd::grad({rq, rk}, {x, wq, wk}, {gq, gk});
  for (size_t i = 0; i < g_copy.size(); ++i) EXPECT_TRUE(at::equal(g_inplace[i], g_copy[i])) << i;
  // The backward is the inverse rotation: rotating dq back and forth is the identity up to rounding.
  EXPECT_GT(g_copy[0].abs().sum().item<double>(), 0);
}

TEST(FusedRope, InPlaceOnNormQkvOutputs) {
  // The model's fused path: q, k from norm_qkv (separate tensors) rotate as
  // one pair; the gradients equal those through copies.
  at::manual_seed(4);
  const int64_t B = 1, N = 9, D = 16, d = 8;
  const at::Tensor x = at::randn({B, N, D}).requires_grad_(), nw = at::rand({D}).add_(0.5).requires_grad_();
  const at::Tensor wq = at::randn({2 * d, D}).requires_grad_(), wk = at::randn({d, D}).requires_grad_();
  const at::Tensor wv = at::randn({d, D}).requires_grad_();
  const at::Tensor positions = at::arange(N), inv_freq = rope_inv_freq(d, 1e4, at::kCPU);
  const at::Tensor gq = at::randn({B, N, 2, d}), gk = at::randn({B, N, 1, d});
  auto [q, k, v] = norm_qkv(x, nw, 1e-5, wq, wk, wv, d, at::kFloat, /*recompute=*/true);
  EXPECT_FALSE(q.is_view() || k.is_view());
  rope_(q, k, positions, inv_freq);
  const auto g1 = torch::autograd::grad({q, k}, {x, nw, wq, wk}, {gq, gk});
  auto [q2, k2, v2] = norm_qkv(x, nw, 1e-5, wq, wk, wv, d, at::kFloat, /*recompute=*/false);
  const auto [rq, rk] = rope_(q2.clone(), k2.clone(), positions, inv_freq);
  EXPECT_TRUE(at::equal(q, rq) && at::equal(k, rk));
  const auto g2 = torch::autograd::grad({rq, rk}, {x, nw, wq, wk}, {gq, gk});
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_TRUE(at::equal(g1[i], g2[i])) << i;
}

TEST(FusedRope, LeafThatRequiresGradIsRefused) {
  const at::Tensor q = at::randn({1, 4, 1, 8}).requires_grad_(), k = at::randn({1, 4, 1, 8});
  EXPECT_THROW(rope_(q, k, at::arange(4), rope_inv_freq(8, 1e4, at::kCPU)), c10::Error);
}

}  // namespace
}  // namespace lighthouse::fused
