// The one small model of the C++ model, checkpoint and trainer tests
// (tests/cpp/model, tests/cpp/train), and helpers around it.
//
// 3 layers, D L D (layer 1 Lighthouse, the first and last dense), d_model
// 64, 4 query heads over 2 KV heads (GQA, head dim 16), SwiGLU width 128,
// vocabulary 320. Lighthouse L=3, p=2, top_k=128: N >= 512, and at the
// default context of 1024 tokens it gathers S = 1024/4 + 2*2*128 = 768.
#pragma once

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <string>

#include "model/attention.h"
#include "config/config.h"
#include "model/llama.h"

namespace lighthouse::testing {

inline config::Config small_config(int64_t seq_len = 1024) {
  config::Config c;
  c.model.d_model = 64;
  c.model.layers = 3;
  c.model.heads = 4;
  c.model.kv_heads = 2;
  c.model.ffn_hidden = 128;
  c.model.vocab_size = 320;
  c.model.dense_layers = {0, -1};
  c.lighthouse.levels = 3;
  c.lighthouse.pool = 2;
  c.lighthouse.top_k = 128;
  c.train.seq_len = seq_len;
  return c;
}

// The config's model (its attention plan) on CPU, initialised from `seed`.
inline model::Llama small_model(const config::Config& c, uint64_t seed) {
  return model::Llama(c.model, model::attention_plan(c.model, c.lighthouse), at::kCPU, seed);
}

// Byte and special-token ids (0..258) int64 [B, N] from a private generator.
inline at::Tensor random_tokens(int64_t B, int64_t N, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  return at::randint(0, 259, {B, N}, g, at::TensorOptions().dtype(at::kLong));
}

// Detached copies of a model's parameters by name.
inline std::map<std::string, at::Tensor> weights_of(const model::Llama& m) {
  std::map<std::string, at::Tensor> w;
  for (const auto& [name, t] : m.named_parameters()) w[name] = t.detach().clone();
  return w;
}

inline void expect_equal_tensors(const std::map<std::string, at::Tensor>& a,
                                 const std::map<std::string, at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    EXPECT_TRUE(at::equal(v, b.at(k))) << k;
  }
}

}  // namespace lighthouse::testing
