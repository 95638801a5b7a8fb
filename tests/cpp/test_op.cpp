// The C++ API (lighthouse/lighthouse.h) on CPU: shapes, autograd through
// the dispatcher, fixed selection, determinism, and the bad-input rules with
// messages that name the value.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <string>

#include "lighthouse/lighthouse.h"

namespace lighthouse {
namespace {

Options small_options() {
  Options o;
  o.levels = 3;
  o.pool = 2;
  o.top_k = 256;
  return o;
}

at::Tensor randn(std::initializer_list<int64_t> shape, at::ScalarType dt = at::kFloat) {
  return at::randn(shape, at::TensorOptions().dtype(dt));
}

// Expects `fn` to throw a c10::Error whose message contains every needle.
template <typename Fn>
void expect_error(Fn fn, std::initializer_list<std::string> needles) {
  try {
    fn();
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "message: " << msg << "\nmissing: " << n;
    return;
  }
  ADD_FAILURE() << "no error thrown";
}

TEST(Op, ShapesAndSubsequenceLength) {
  at::manual_seed(0);
  const Options o = small_options();
  const int64_t n = min_sequence_length(o) + 5;
  EXPECT_EQ(min_sequence_length(o), 1024);
  const at::Tensor q = randn({2, n, 4, 16}), k = randn({2, n, 2, 16}), v = randn({2, n, 2, 16});
  const at::Tensor out = attention(q, k, v, o);
  EXPECT_EQ(out.sizes(), q.sizes());
  EXPECT_TRUE(out.isfinite().all().item<bool>());
  const at::Tensor e = select(q, k, o);
  EXPECT_EQ(e.scalar_type(), at::kLong);
  EXPECT_EQ(e.sizes(), (std::vector<int64_t>{2, 4, subsequence_length(n, o)}));
  // N_pad = 1024 + 2 * 4 (unit p^(L-1) * T = 4 * 2 = 8) -> S = 1032/4 + 2*2*256
  EXPECT_EQ(subsequence_length(n, o), 1032 / 4 + 2 * 2 * 256);
}

TEST(Op, GradientsFlowAndFixedSelectionMatches) {
  at::manual_seed(1);
  const Options o = small_options();
  const int64_t n = 2048;
  const at::Tensor q = randn({1, n, 2, 8}).requires_grad_(), k = randn({1, n, 2, 8}).requires_grad_(),
                   v = randn({1, n, 2, 8}).requires_grad_();
  const at::Tensor out = attention(q, k, v, o);
  const at::Tensor go = at::randn_like(out);
  const auto grads = torch::autograd::grad({out}, {q, k, v}, {go});
  for (const auto& g : grads) EXPECT_TRUE(g.isfinite().all().item<bool>());
  // Every position gets gradient in v (its entries always reach an output).
  EXPECT_GT(grads[2].norm(2, {-1}).min().item<float>(), 0.f);

  const at::Tensor e = select(q.detach(), k.detach(), o);
  const at::Tensor out_fixed = attention(q, k, v, o, e);
  EXPECT_TRUE(out_fixed.equal(out));
  const auto grads_fixed = torch::autograd::grad({out_fixed}, {q, k, v}, {go});
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(grads_fixed[i].equal(grads[i]));
}

// The forward pools the coarse rows in its scores pass; with given entries
// the gather pools them itself. Same arithmetic, so bit-identical results.
// levels=4, pool=4 pools two levels (spans of 16 and 64 tokens), the small
// options one (the coarsest).
TEST(Op, FusedCoarsePoolingMatchesGatherPooling) {
  at::manual_seed(3);
  Options two = small_options();
  two.levels = 4;
  two.pool = 4;
  two.top_k = 128;
  for (const Options& o : {small_options(), two}) {
    const int64_t n = min_sequence_length(o) + 500 + 37;
    for (const auto dt : {at::kFloat, at::kBFloat16, at::kHalf, at::kDouble}) {
      const at::Tensor q = randn({2, n, 4, 16}, dt), k = randn({2, n, 2, 16}, dt), v = randn({2, n, 2, 16}, dt);
      const at::Tensor fused = attention(q, k, v, o);
      const at::Tensor unfused = attention(q, k, v, o, select(q, k, o));
      EXPECT_TRUE(fused.equal(unfused)) << dt << " levels " << o.levels;
    }
  }
}

TEST(Op, DeterministicRepeats) {
  at::manual_seed(2);
  const Options o = small_options();
  const at::Tensor q = randn({2, 3000, 4, 32}).requires_grad_(), k = randn({2, 3000, 1, 32}).requires_grad_(),
                   v = randn({2, 3000, 1, 32}).requires_grad_();
  const at::Tensor go = randn({2, 3000, 4, 32});
  at::Tensor out0;
  std::vector<at::Tensor> g0;
  for (int rep = 0; rep < 5; ++rep) {
    const at::Tensor out = attention(q, k, v, o);
    const auto g = torch::autograd::grad({out}, {q, k, v}, {go});
    if (rep == 0) {
      out0 = out;
      g0 = g;
      continue;
    }
    EXPECT_TRUE(out.equal(out0));
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(g[i].equal(g0[i]));
  }
}

TEST(Op, BadInputsNameTheValue) {
  const Options o = small_options();
  const at::Tensor q = randn({1, 1024, 2, 8}), k = randn({1, 1024, 2, 8}), v = randn({1, 1024, 2, 8});
  expect_error([&] { attention(randn({1024, 2, 8}), k, v, o); }, {"q must be [B, N, H, d]", "3-d"});
  expect_error([&] { attention(q, randn({1, 1024, 2}), v, o); }, {"k must be"});
  expect_error([&] { attention(q, k.to(at::kDouble), v, o); }, {"share a dtype", "Double"});
  expect_error([&] { attention(q.to(at::kInt), k.to(at::kInt), v.to(at::kInt), o); }, {"float16, bfloat16", "Int"});
  expect_error([&] { attention(q, k.to(at::kMeta), v, o); }, {"one device", "meta"});
  expect_error([&] { attention(q, randn({1, 1000, 2, 8}), v, o); }, {"k must be [B, N, H_kv, d]"});
  expect_error([&] { attention(randn({1, 1024, 3, 8}), k, v, o); }, {"H=3", "H_kv=2"});
  expect_error([&] { attention(q, k, randn({1, 1024, 2, 4}), o); }, {"v must have the shape of k"});
  Options bad = o;
  bad.pool = 3;
  expect_error([&] { attention(q, k, v, bad); }, {"pool must be a power of two", "got 3"});
  bad = o;
  bad.top_k = 200;
  expect_error([&] { attention(q, k, v, bad); }, {"top_k must be a positive multiple of 128", "got 200"});
  bad = o;
  bad.levels = 1;
  expect_error([&] { attention(q, k, v, bad); }, {"levels must be >= 2", "got 1"});
  bad = o;
  bad.top_k = 512;
  expect_error([&] { attention(q, k, v, bad); }, {"N=1024 is too short", "smallest valid N is 2048"});
  expect_error([&] { parse_backend("cudnnn"); }, {"cudnnn"});
  expect_error([&] { parse_scorer("l2"); }, {"'l2'"});
  bad = o;
  bad.backend = SdpaBackend::kCudnn;
  expect_error([&] { attention(q, k, v, bad); }, {"'cudnn' needs CUDA"});
  const at::Tensor e = select(q, k, o);
  expect_error([&] { attention(q, k, v, o, e.narrow(2, 0, 10)); }, {"entries must be [B, H, S]"});
  expect_error([&] { attention(q, k, v, o, at::zeros_like(e)); }, {"must not repeat"});
  expect_error([&] { attention(q, k, v, o, e + 100000); }, {"pyramid indices in [0,"});
}

TEST(Op, MetaTensorsGiveShapes) {
  const Options o = small_options();
  const auto meta = at::TensorOptions().device(at::kMeta);
  const at::Tensor q = at::empty({2, 1100, 4, 8}, meta), k = at::empty({2, 1100, 2, 8}, meta);
  EXPECT_EQ(attention(q, k, k, o).sizes(), q.sizes());
  EXPECT_EQ(select(q, k, o).size(2), subsequence_length(1100, o));
}

}  // namespace
}  // namespace lighthouse
