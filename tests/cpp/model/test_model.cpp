// The Llama model: Hugging Face names and shapes, causality, the dense path
// against an independent math reference, activation checkpointing equal to
// the plain backward, the stage switch equal to a fresh dense model, bf16
// compute, and clear weight-loading errors.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <map>
#include <string>

#include "lighthouse/lighthouse.h"
#include "config/config.h"
#include "model/llama.h"

namespace lighthouse::model {
namespace {

config::Config small_config() {
  config::Config c;
  c.model.d_model = 64;
  c.model.layers = 3;
  c.model.heads = 4;
  c.model.kv_heads = 2;
  c.model.ffn_hidden = 96;
  c.model.vocab_size = 320;
  c.model.dense_layers = {0};
  c.lighthouse.levels = 2;
  c.lighthouse.pool = 2;
  c.lighthouse.top_k = 128;  // N >= 256
  c.train.seq_len = 300;     // needs padding inside the op
  return c;
}

at::Tensor random_tokens(int64_t B, int64_t N, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(0, 259, {B, N}, g, at::TensorOptions().dtype(at::kLong));
}

std::map<std::string, at::Tensor> weights_of(const Llama& m) {
  std::map<std::string, at::Tensor> w;
  for (const auto& [name, t] : m.named_parameters()) w[name] = t.detach().clone();
  return w;
}

TEST(Model, HuggingFaceNamesAndShapes) {
  const auto c = small_config();
  const Llama m(c.model, c.lighthouse, at::kCPU, 0);
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
    want[p + "mlp.gate_proj.weight"] = {96, 64};
    want[p + "mlp.up_proj.weight"] = {96, 64};
    want[p + "mlp.down_proj.weight"] = {64, 96};
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
  EXPECT_EQ(m.layer_mode(0), AttentionMode::kDense);
  EXPECT_EQ(m.layer_mode(1), AttentionMode::kLighthouse);
  EXPECT_EQ(m.layer_mode(2), AttentionMode::kLighthouse);
}

TEST(Model, InitIsSeededAndPrivate) {
  const auto c = small_config();
  const at::Tensor before = at::detail::getDefaultCPUGenerator().get_state();
  const Llama a(c.model, c.lighthouse, at::kCPU, 7), b(c.model, c.lighthouse, at::kCPU, 7),
      other(c.model, c.lighthouse, at::kCPU, 8);
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
  Llama m(c.model, c.lighthouse, at::kCPU, 3);
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
  const auto [cos, sin] = rope_tables(N, d, c.model.rope_theta, at::kCPU);
  LayerWeights lw{w[pre + "input_layernorm.weight"],  w[pre + "self_attn.q_proj.weight"],
                  w[pre + "self_attn.k_proj.weight"], w[pre + "self_attn.v_proj.weight"],
                  w[pre + "self_attn.o_proj.weight"], w[pre + "post_attention_layernorm.weight"],
                  w[pre + "mlp.gate_proj.weight"],    w[pre + "mlp.up_proj.weight"],
                  w[pre + "mlp.down_proj.weight"]};
  const at::Tensor got = m.block(lw, x, cos, sin, AttentionMode::kDense);
  EXPECT_LT((got - want).abs().max().item<double>(), 2e-5);
}

TEST(Model, DenseModelIsCausal) {
  auto c = small_config();
  c.model.attention = "dense";
  const Llama m(c.model, c.lighthouse, at::kCPU, 1);
  at::NoGradGuard ng;
  const at::Tensor t = random_tokens(2, 64, 5);
  at::Tensor t2 = t.clone();
  t2.narrow(1, 40, 24).random_(0, 259);
  const at::Tensor a = m.forward(t), b = m.forward(t2);
  EXPECT_TRUE(at::equal(a.narrow(1, 0, 40), b.narrow(1, 0, 40)));
  EXPECT_FALSE(at::equal(a.narrow(1, 40, 24), b.narrow(1, 40, 24)));
}

// Loss and every parameter gradient of one forward/backward.
std::pair<double, std::vector<at::Tensor>> loss_and_grads(Llama& m, const at::Tensor& tokens) {
  for (const auto& p : m.parameters()) p.mutable_grad() = at::Tensor();
  const at::Tensor loss = m.loss(tokens, 258);
  loss.backward();
  std::vector<at::Tensor> g;
  for (const auto& p : m.parameters()) g.push_back(p.grad().clone());
  return {loss.item<double>(), g};
}

TEST(Model, ActivationCheckpointingGivesTheSameGradients) {
  const auto c = small_config();  // layers 1, 2 run Lighthouse
  Llama m(c.model, c.lighthouse, at::kCPU, 2);
  const at::Tensor tokens = random_tokens(2, c.train.seq_len + 1, 9);
  const auto [plain_loss, plain] = loss_and_grads(m, tokens);
  m.set_activation_checkpointing(true);
  const auto [ckpt_loss, ckpt] = loss_and_grads(m, tokens);
  EXPECT_EQ(plain_loss, ckpt_loss);
  for (size_t i = 0; i < plain.size(); ++i) {
    SCOPED_TRACE(m.named_parameters()[i].first);
    EXPECT_GT(plain[i].abs().sum().item<double>(), 0.0);  // every parameter gets a gradient
    EXPECT_TRUE(at::equal(plain[i], ckpt[i]));            // same ops, same order: bit-identical
  }
}

TEST(Model, LossStartsNearUniform) {
  const auto c = small_config();
  const Llama m(c.model, c.lighthouse, at::kCPU, 4);
  at::NoGradGuard ng;
  const double loss = m.loss(random_tokens(1, c.train.seq_len + 1, 3), 258).item<double>();
  EXPECT_NEAR(loss, std::log(320.0), 0.3);
}

TEST(Model, StageSwitchEqualsAFreshDenseModel) {
  const auto c = small_config();
  Llama m(c.model, c.lighthouse, at::kCPU, 5);
  const at::Tensor tokens = random_tokens(2, c.train.seq_len, 13);
  const auto before = weights_of(m);
  at::NoGradGuard ng;
  const at::Tensor lh_logits = m.forward(tokens);
  EXPECT_EQ(m.set_all_dense(), 2);
  for (int l = 0; l < 3; ++l) EXPECT_EQ(m.layer_mode(l), AttentionMode::kDense);
  for (const auto& [name, t] : m.named_parameters()) EXPECT_TRUE(at::equal(t, before.at(name))) << name;
  const at::Tensor switched = m.forward(tokens);
  EXPECT_FALSE(at::allclose(switched, lh_logits));  // the switch changes the computation

  auto dense_cfg = c;
  dense_cfg.model.attention = "dense";
  Llama fresh(dense_cfg.model, dense_cfg.lighthouse, at::kCPU, 99);
  fresh.load_weights(before);
  EXPECT_TRUE(at::equal(fresh.forward(tokens), switched));
}

TEST(Model, Bf16ComputeIsCloseToFp32) {
  const auto c = small_config();
  Llama m(c.model, c.lighthouse, at::kCPU, 6);
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
  Llama m(c.model, c.lighthouse, at::kCPU, 0);
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
  expect_error(bad, "tensor 'model.layers.1.mlp.up_proj.weight' has shape [97, 64] but the model expects [96, 64]");
  bad = w;
  bad.erase("lm_head.weight");
  expect_error(bad, "missing tensor 'lm_head.weight'");
  bad = w;
  bad["model.layers.3.mlp.up_proj.weight"] = at::zeros({96, 64});
  expect_error(bad, "unexpected tensor 'model.layers.3.mlp.up_proj.weight'");
  EXPECT_NO_THROW(m.load_weights(w));
}

}  // namespace
}  // namespace lighthouse::model
