// The Llama model: Hugging Face names and shapes, causality, the dense path
// against an independent math reference, the attention plan (chosen outside
// the model, the stage switch equal to a fresh dense model), the block
// runner seam, RoPE from positions, hidden states and lm_head on selected
// rows, the loss as sum / count equal to cross_entropy's mean bit for bit,
// bf16 compute, and clear weight-loading errors.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <map>
#include <string>

#include "config/config.h"
#include "lighthouse/lighthouse.h"
#include "model/attention.h"
#include "model/llama.h"
#include "small_model.h"

namespace lighthouse::model {
namespace {

using testing::random_tokens;
using testing::small_config;
using testing::small_model;
using testing::weights_of;

// Not a multiple of p^(L-1): the op pads inside.
constexpr int64_t kSeq = 701;

TEST(Model, HuggingFaceNamesAndShapes) {
  const auto c = small_config();
  const Llama m = small_model(c, 0);
  std::map<std::string, std::vector<int64_t>> want = {
      {"model.embed_tokens.weight", {320, 64}},
      {"model.norm.weight", {64}},
      {"lm_head.weight", {320, 64}},
  };
  for (int l = 0; l < 3; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    want[p + "input_layernorm.weight"] = {64};
    want[p + "post_attention_layernorm.weight"] = {64};
    want[p + "self_attn.q_proj.weight"] = {64, 64};
    want[p + "self_attn.k_proj.weight"] = {32, 64};
    want[p + "self_attn.v_proj.weight"] = {32, 64};
    want[p + "self_attn.o_proj.weight"] = {64, 64};
    want[p + "mlp.gate_proj.weight"] = {128, 64};
    want[p + "mlp.up_proj.weight"] = {128, 64};
    want[p + "mlp.down_proj.weight"] = {64, 128};
  }
  ASSERT_EQ(m.named_parameters().size(), want.size());
  int64_t total = 0;
  for (const auto& [name, t] : m.named_parameters()) {
    ASSERT_TRUE(want.count(name)) << name;
    EXPECT_EQ(t.sizes().vec(), want[name]) << name;
    EXPECT_EQ(t.scalar_type(), at::kFloat);
    EXPECT_TRUE(t.requires_grad());
    total += t.numel();
  }
  EXPECT_EQ(m.num_parameters(), total);
  EXPECT_EQ(m.layer_kinds(),
            (std::vector<AttentionKind>{AttentionKind::kDense, AttentionKind::kLighthouse, AttentionKind::kDense}));
}

TEST(Model, InitIsSeededAndPrivate) {
  const auto c = small_config();
  const at::Tensor before = at::detail::getDefaultCPUGenerator().get_state();
  const Llama a = small_model(c, 7), b = small_model(c, 7), other = small_model(c, 8);
  EXPECT_TRUE(at::equal(before, at::detail::getDefaultCPUGenerator().get_state()));  // global RNG untouched
  for (size_t i = 0; i < a.named_parameters().size(); ++i) {
    EXPECT_TRUE(at::equal(a.named_parameters()[i].second, b.named_parameters()[i].second));
  }
  EXPECT_FALSE(at::equal(a.named_parameters()[0].second, other.named_parameters()[0].second));
}

TEST(Model, MinSequenceLengthAgreesWithTheOp) {
  for (int64_t L : {2, 3, 4}) {
    for (int64_t p : {2, 4, 8}) {
      for (int64_t k : {128, 512, 1536}) {
        config::LighthouseConfig l;
        l.levels = L;
        l.pool = p;
        l.top_k = k;
        Options o;
        o.levels = L;
        o.pool = p;
        o.top_k = k;
        EXPECT_EQ(config::min_seq_len(l), min_sequence_length(o));
      }
    }
  }
}

// Dense causal GQA attention with plain tensor ops and an explicit mask.
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  // [B, N, H, d], [B, N, H_kv, d] -> [B, N, H, d]
  const int64_t group = q.size(2) / k.size(2), N = q.size(1);
  const at::Tensor qh = q.transpose(1, 2).to(at::kDouble);
  const at::Tensor kh = k.repeat_interleave(group, 2).transpose(1, 2).to(at::kDouble);
  const at::Tensor vh = v.repeat_interleave(group, 2).transpose(1, 2).to(at::kDouble);
  at::Tensor s = at::matmul(qh, kh.transpose(-1, -2)) / std::sqrt(static_cast<double>(q.size(3)));
  const at::Tensor mask = at::ones({N, N}, at::kBool).triu(1);
  s = s.masked_fill(mask, -std::numeric_limits<double>::infinity());
  return at::matmul(at::softmax(s, -1), vh).transpose(1, 2).to(q.scalar_type());
}

TEST(Model, DenseBlockMatchesAMathReference) {
  auto c = small_config();
  c.model.attention = "dense";
  Llama m = small_model(c, 3);
  // Rebuild layer 0 with plain ops: RMSNorm, HF rotate-half RoPE, GQA, SwiGLU.
  const auto& p = m.named_parameters();
  std::map<std::string, at::Tensor> w;
  for (const auto& [n, t] : p) w[n] = t.detach();
  const int64_t B = 2, N = 37, D = 64, H = 4, Hkv = 2, d = 16;
  at::manual_seed(11);
  const at::Tensor x = at::randn({B, N, D});
  const std::string pre = "model.layers.0.";
  auto norm = [&](const at::Tensor& t, const at::Tensor& g) {
    return g * t / at::sqrt(t.pow(2).mean(-1, true) + c.model.norm_eps);
  };
  // RoPE from its definition: pairs (i, i + d/2) rotate by pos * theta^(-2i/d).
  auto rope = [&](const at::Tensor& t) {
    at::Tensor out = t.clone();
    for (int64_t i = 0; i < d / 2; ++i) {
      const double freq = std::pow(c.model.rope_theta, -2.0 * i / d);
      const at::Tensor ang = at::arange(N, at::kDouble).mul(freq).to(at::kFloat).view({1, N, 1});
      const at::Tensor a = t.select(3, i), b = t.select(3, i + d / 2);
      out.select(3, i).copy_(a * ang.cos() - b * ang.sin());
      out.select(3, i + d / 2).copy_(b * ang.cos() + a * ang.sin());
    }
    return out;
  };
  const at::Tensor h = norm(x, w[pre + "input_layernorm.weight"]);
  const at::Tensor q = rope(at::matmul(h, w[pre + "self_attn.q_proj.weight"].t()).view({B, N, H, d}));
  const at::Tensor k = rope(at::matmul(h, w[pre + "self_attn.k_proj.weight"].t()).view({B, N, Hkv, d}));
  const at::Tensor v = at::matmul(h, w[pre + "self_attn.v_proj.weight"].t()).view({B, N, Hkv, d});
  const at::Tensor x1 =
      x + at::matmul(reference_attention(q, k, v).reshape({B, N, D}), w[pre + "self_attn.o_proj.weight"].t());
  const at::Tensor h2 = norm(x1, w[pre + "post_attention_layernorm.weight"]);
  const at::Tensor ff = at::matmul(
      at::silu(at::matmul(h2, w[pre + "mlp.gate_proj.weight"].t())) * at::matmul(h2, w[pre + "mlp.up_proj.weight"].t()),
      w[pre + "mlp.down_proj.weight"].t());
  const at::Tensor want = x1 + ff;

  at::NoGradGuard ng;
  const RopeTables tables = rope_tables(N, d, c.model.rope_theta, at::kCPU);
  AttentionContext context;
  context.positions = at::arange(N, at::kLong);
  LayerWeights lw{w[pre + "input_layernorm.weight"],  w[pre + "self_attn.q_proj.weight"],
                  w[pre + "self_attn.k_proj.weight"], w[pre + "self_attn.v_proj.weight"],
                  w[pre + "self_attn.o_proj.weight"], w[pre + "post_attention_layernorm.weight"],
                  w[pre + "mlp.gate_proj.weight"],    w[pre + "mlp.up_proj.weight"],
                  w[pre + "mlp.down_proj.weight"]};
  const at::Tensor got = m.block(lw, x, tables, DenseAttention(), context);
  EXPECT_LT((got - want).abs().max().item<double>(), 2e-5);
}

TEST(Model, DenseModelIsCausal) {
  auto c = small_config();
  c.model.attention = "dense";
  const Llama m = small_model(c, 1);
  at::NoGradGuard ng;
  const at::Tensor t = random_tokens(2, 64, 5);
  at::Tensor t2 = t.clone();
  t2.narrow(1, 40, 24).random_(0, 259);
  const at::Tensor a = m.forward(t), b = m.forward(t2);
  EXPECT_TRUE(at::equal(a.narrow(1, 0, 40), b.narrow(1, 0, 40)));
  EXPECT_FALSE(at::equal(a.narrow(1, 40, 24), b.narrow(1, 40, 24)));
}

TEST(Model, LossStartsNearUniform) {
  const auto c = small_config(kSeq);
  const Llama m = small_model(c, 4);
  at::NoGradGuard ng;
  const double loss = m.loss(random_tokens(1, c.train.seq_len + 1, 3), 258).item<double>();
  EXPECT_NEAR(loss, std::log(320.0), 0.3);
}

TEST(Model, StageSwitchEqualsAFreshDenseModel) {
  const auto c = small_config(kSeq);
  Llama m = small_model(c, 5);
  const at::Tensor tokens = random_tokens(2, c.train.seq_len, 13);
  const auto before = weights_of(m);
  at::NoGradGuard ng;
  const at::Tensor lh_logits = m.forward(tokens);
  const AttentionPlan stage1 = m.attention_plan();
  m.set_attention(switch_to_dense(stage1));
  EXPECT_EQ(m.layer_kinds(), std::vector<AttentionKind>(3, AttentionKind::kDense));
  // The dense layers keep their objects; only the Lighthouse one is replaced.
  EXPECT_EQ(m.attention_plan()[0], stage1[0]);
  EXPECT_EQ(m.attention_plan()[2], stage1[2]);
  EXPECT_NE(m.attention_plan()[1], stage1[1]);
  for (const auto& [name, t] : m.named_parameters()) EXPECT_TRUE(at::equal(t, before.at(name))) << name;
  const at::Tensor switched = m.forward(tokens);
  EXPECT_FALSE(at::allclose(switched, lh_logits));  // the switch changes the computation

  Llama fresh(c.model, dense_plan(c.model.layers), at::kCPU, 99);
  fresh.load_weights(before);
  EXPECT_TRUE(at::equal(fresh.forward(tokens), switched));
}

TEST(Model, Bf16ComputeIsCloseToFp32) {
  const auto c = small_config(kSeq);
  Llama m = small_model(c, 6);
  const at::Tensor tokens = random_tokens(1, c.train.seq_len + 1, 17);
  at::NoGradGuard ng;
  const double fp32 = m.loss(tokens, 258).item<double>();
  m.set_compute_dtype(at::kBFloat16);
  const at::Tensor logits = m.forward(tokens.narrow(1, 0, c.train.seq_len));
  EXPECT_EQ(logits.scalar_type(), at::kFloat);
  const double bf16 = m.loss(tokens, 258).item<double>();
  EXPECT_NEAR(bf16, fp32, 0.02);
  EXPECT_NE(bf16, fp32);
  for (const auto& p : m.parameters()) EXPECT_EQ(p.scalar_type(), at::kFloat);
}

TEST(Model, LoadWeightsNamesTheProblem) {
  const auto c = small_config();
  Llama m = small_model(c, 0);
  auto w = weights_of(m);
  auto expect_error = [&](const std::map<std::string, at::Tensor>& ws, const std::string& needle) {
    try {
      m.load_weights(ws);
      ADD_FAILURE() << "no error, expected: " << needle;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto bad = w;
  bad["model.layers.1.mlp.up_proj.weight"] = at::zeros({97, 64});
  expect_error(bad, "tensor 'model.layers.1.mlp.up_proj.weight' has shape [97, 64] but the model expects [128, 64]");
  bad = w;
  bad.erase("lm_head.weight");
  expect_error(bad, "missing tensor 'lm_head.weight'");
  bad = w;
  bad["model.layers.3.mlp.up_proj.weight"] = at::zeros({128, 64});
  expect_error(bad,
               "unexpected tensor 'model.layers.3.mlp.up_proj.weight': the model (3 layers) has no such parameter");
  EXPECT_NO_THROW(m.load_weights(w));
}

TEST(Model, AttentionPlanFollowsTheConfig) {
  auto c = small_config();
  c.model.layers = 5;
  c.model.dense_layers = {0, 1, -1};
  EXPECT_EQ(plan_map(attention_plan(c.model, c.lighthouse)), "DDLLD");
  const AttentionPlan plan = attention_plan(c.model, c.lighthouse);
  const auto* lh = dynamic_cast<const LighthouseAttention*>(plan[2].get());
  ASSERT_NE(lh, nullptr);
  EXPECT_EQ(lh->options().levels, 3);
  EXPECT_EQ(lh->options().pool, 2);
  EXPECT_EQ(lh->options().top_k, 128);
  c.model.attention = "dense";
  EXPECT_EQ(plan_map(attention_plan(c.model, c.lighthouse)), "DDDDD");
  EXPECT_EQ(plan_map(switch_to_dense(plan)), "DDDDD");
  EXPECT_FALSE(any_lighthouse(switch_to_dense(plan)));
  // A plan must cover every layer, with an object per layer.
  Llama m = small_model(small_config(), 0);
  try {
    m.set_attention(dense_plan(2));
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the attention plan has 2 layers, the model 3"), std::string::npos)
        << e.what();
  }
  AttentionPlan holes = dense_plan(3);
  holes[1] = nullptr;
  EXPECT_THROW(m.set_attention(holes), c10::Error);
}

// The block runner sees every layer in order, and a runner that computes
// the block itself changes nothing.
TEST(Model, BlockRunnerWrapsEveryBlock) {
  const auto c = small_config(kSeq);
  Llama m = small_model(c, 8);
  const at::Tensor tokens = random_tokens(1, kSeq, 21);
  at::NoGradGuard ng;
  const at::Tensor plain = m.forward(tokens);
  std::vector<int64_t> seen;
  m.set_block_runner([&](const Llama& model, const at::Tensor& x, const RopeTables& rope, const AttentionContext& ctx) {
    seen.push_back(ctx.layer);
    EXPECT_EQ(ctx.positions.size(0), kSeq);
    return model.run_block(x, rope, ctx);
  });
  EXPECT_TRUE(at::equal(m.forward(tokens), plain));
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2}));
  m.set_block_runner({});
  EXPECT_TRUE(at::equal(m.forward(tokens), plain));
}

TEST(Model, RopeTablesFromPositions) {
  const int64_t d = 16, N = 64;
  const RopeTables full = rope_tables(N, d, 10000.0, at::kCPU);
  // Default positions 0..N-1: the same tables.
  const RopeTables from_positions = rope_tables(at::arange(N, at::kLong), d, 10000.0);
  EXPECT_TRUE(at::equal(full.cos, from_positions.cos));
  EXPECT_TRUE(at::equal(full.sin, from_positions.sin));
  // Two separate ranges (a rank's head and tail chunks): the full table's rows.
  const at::Tensor rows = at::cat({at::arange(0, 8, at::kLong), at::arange(48, 64, at::kLong)});
  const RopeTables part = rope_tables(rows, d, 10000.0);
  EXPECT_TRUE(at::equal(part.cos, full.cos.index_select(0, rows)));
  EXPECT_TRUE(at::equal(part.sin, full.sin.index_select(0, rows)));
  // From the definition: the angle of row p, frequency i is p * theta^(-2i/d).
  EXPECT_NEAR(part.cos[9][3].item<double>(), std::cos(49 * std::pow(10000.0, -6.0 / 16)), 1e-5);
  EXPECT_NEAR(part.sin[9][11].item<double>(), std::sin(49 * std::pow(10000.0, -6.0 / 16)), 1e-5);
}

// Positions 0..N-1 are the default bit for bit; shifting every position by
// the same offset leaves dense attention's logits unchanged up to rounding
// (RoPE scores depend only on relative position) while positions that are
// not a shift move them by far more. q and k weights are scaled up so that
// attention is far from uniform and positions matter.
TEST(Model, PositionsRotateRowsAsInTheWholeSequence) {
  auto c = small_config();
  c.model.attention = "dense";
  Llama m = small_model(c, 9);
  auto w = weights_of(m);
  for (auto& [name, t] : w) {
    if (name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos) t.mul_(12.0);
  }
  m.load_weights(w);
  const int64_t N = 48;
  const at::Tensor tokens = random_tokens(2, N, 23);
  at::NoGradGuard ng;
  const at::Tensor base = m.forward(tokens);
  EXPECT_TRUE(at::equal(m.forward(tokens, at::arange(N, at::kLong)), base));
  const double shift = (m.forward(tokens, at::arange(N, at::kLong) + 100) - base).abs().max().item<double>();
  const double spread = (m.forward(tokens, at::arange(N, at::kLong) * 7) - base).abs().max().item<double>();
  EXPECT_GT(shift, 0.0);  // other angles, other rounding
  EXPECT_LT(shift, 1e-3);
  EXPECT_GT(spread, 100 * shift);
  try {
    m.forward(tokens, at::arange(N - 1, at::kLong));
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("positions must be int64 [N] with N = 48"), std::string::npos) << e.what();
  }
}

// hidden() then logits() is forward(); lm_head on one selected position per
// sequence gives that position's logits without the [B, N, V] tensor.
TEST(Model, HiddenStatesAndLogitsOfSelectedRows) {
  const auto c = small_config(kSeq);
  Llama m = small_model(c, 10);
  const at::Tensor tokens = random_tokens(2, kSeq, 25);
  at::NoGradGuard ng;
  const at::Tensor h = m.hidden(tokens);
  EXPECT_EQ(h.sizes(), (std::vector<int64_t>{2, kSeq, 64}));
  const at::Tensor full = m.forward(tokens);
  EXPECT_TRUE(at::equal(m.logits(h), full));
  const at::Tensor row = m.logits(h.select(1, 500));  // [B, V]
  EXPECT_EQ(row.sizes(), (std::vector<int64_t>{2, 320}));
  EXPECT_EQ(row.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::allclose(row, full.select(1, 500), 1e-5, 1e-5));
  m.set_compute_dtype(at::kBFloat16);
  EXPECT_EQ(m.hidden(tokens).scalar_type(), at::kBFloat16);
  EXPECT_EQ(m.logits(m.hidden(tokens).select(1, 3)).scalar_type(), at::kFloat);
}

// The loss is a sum over counted targets divided by their count: equal bit
// for bit to cross_entropy's mean, in value and in every gradient, with
// PAD targets ignored, fp32 and bf16 compute.
TEST(Model, LossIsSumOverCountEqualToCrossEntropyMeanBitForBit) {
  for (const at::ScalarType dtype : {at::kFloat, at::kBFloat16}) {
    SCOPED_TRACE(c10::toString(dtype));
    auto c = small_config();
    c.model.attention = "dense";  // the loss does not depend on it; dense is quicker on CPU
    const int64_t N = 300;
    Llama m = small_model(c, 11);
    m.set_compute_dtype(dtype);
    at::Tensor tokens = random_tokens(2, N + 1, 27);
    tokens.masked_fill_(tokens == 258, 65);  // no PAD but ...
    tokens.narrow(1, 200, 40).fill_(258);    // ... these 40 targets a row, which do not count
    const auto grads = [&](const at::Tensor& loss) {
      for (const auto& p : m.parameters()) p.mutable_grad() = at::Tensor();
      loss.backward();
      std::vector<at::Tensor> g;
      for (const auto& p : m.parameters()) g.push_back(p.grad().clone());
      return g;
    };
    const TokenLoss parts = m.next_token_loss(tokens, 258);
    EXPECT_EQ(parts.count, 2 * N - 2 * 40);
    const at::Tensor ours = m.loss(tokens, 258);
    const at::Tensor logits = m.forward(tokens.narrow(1, 0, N));
    const at::Tensor mean = at::cross_entropy_loss(logits.reshape({-1, 320}), tokens.narrow(1, 1, N).reshape({-1}), {},
                                                   at::Reduction::Mean, 258);
    EXPECT_EQ(ours.item<float>(), mean.item<float>());
    EXPECT_EQ(mean_loss(parts).item<float>(), mean.item<float>());
    const auto g_ours = grads(ours), g_mean = grads(mean);
    for (size_t i = 0; i < g_ours.size(); ++i) {
      EXPECT_TRUE(at::equal(g_ours[i], g_mean[i])) << m.named_parameters()[i].first;
    }
    EXPECT_GT(g_ours[1].abs().sum().item<double>(), 0.0);
  }
}

}  // namespace
}  // namespace lighthouse::model
