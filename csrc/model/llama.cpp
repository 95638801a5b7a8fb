/*
 * The Llama decoder (llama.h): weights, RoPE, blocks, hidden states, logits
 * and the next-token loss. Attention and the way blocks run (directly or
 * checkpointed) are given from outside.
 */
#include "model/llama.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "ops/checks.h"

namespace lighthouse::model {

namespace {

constexpr int kLayerParams = 9;
const char* const kLayerParamNames[kLayerParams] = {
    "input_layernorm.weight",  "self_attn.q_proj.weight", "self_attn.k_proj.weight",
    "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight"};

// Hugging Face LlamaRMSNorm: normalise in fp32, scale in the input dtype.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(var + eps)).to(x.scalar_type());
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x [B, N, H, d]; cos, sin [N, d] fp32. The rotation runs in fp32 and the
// result returns to x's dtype.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor c = cos.unsqueeze(1), s = sin.unsqueeze(1);  // [N, 1, d]
  return (xf * c + rotate_half(xf) * s).to(x.scalar_type());
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, at::ScalarType dtype) { return at::linear(x, w.to(dtype)); }

}  // namespace

RopeTables rope_tables(const at::Tensor& positions, int64_t head_dim, double theta) {
  LH_CHECK(positions.dim() == 1 && positions.scalar_type() == at::kLong, "positions must be int64 [N], got ",
           positions.scalar_type(), " ", positions.sizes());
  // As transformers' default RoPE: inv_freq = 1 / theta^(2i/d) in fp32,
  // angles = position * inv_freq, then [angles, angles].
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(positions.device());
  const at::Tensor exponent =
      at::arange(0, head_dim, 2, f32.dtype(at::kLong)).to(at::kFloat) / static_cast<double>(head_dim);
  const at::Tensor inv_freq = 1.0 / at::pow(theta, exponent);
  const at::Tensor angles = positions.to(at::kFloat).unsqueeze(1) * inv_freq.unsqueeze(0);  // [N, d/2]
  const at::Tensor emb = at::cat({angles, angles}, -1);
  return {emb.cos(), emb.sin()};
}

RopeTables rope_tables(int64_t seq_len, int64_t head_dim, double theta, at::Device device) {
  return rope_tables(at::arange(seq_len, at::TensorOptions().dtype(at::kLong).device(device)), head_dim, theta);
}

Llama::Llama(const config::ModelConfig& model, AttentionPlan attention, at::Device device, uint64_t seed)
    : model_(model), device_(device), head_dim_(config::head_dim(model)) {
  set_attention(std::move(attention));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const double out_std = model.init_std / std::sqrt(2.0 * static_cast<double>(model.layers));
  const auto ends_with = [](const std::string& s, const char* suffix) {
    const size_t n = std::char_traits<char>::length(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
  };
  // Initialised on CPU with the private generator, then moved: the same seed
  // gives the same weights on every device.
  for (const auto& [name, shape] : parameter_shapes(model)) {
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
    if (shape.size() == 1) {
      t.fill_(1.0);  // RMSNorm gains
    } else if (ends_with(name, "o_proj.weight") || ends_with(name, "down_proj.weight")) {
      t.normal_(0.0, out_std, gen);  // residual-branch outputs: depth-scaled
    } else {
      t.normal_(0.0, model.init_std, gen);
    }
    if (name.rfind("model.layers.", 0) == 0 && ends_with(name, kLayerParamNames[0])) {
      layer_offset_.push_back(params_.size());
    }
    params_.emplace_back(name, t.to(device).requires_grad_(true));
  }
}

std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(const config::ModelConfig& model) {
  const int64_t D = model.d_model, H = model.heads, Hkv = model.kv_heads, d = config::head_dim(model),
                F = model.ffn_hidden, V = model.vocab_size;
  const std::vector<int64_t> shapes[kLayerParams] = {{D}, {H * d, D}, {Hkv * d, D}, {Hkv * d, D}, {D, H * d},
                                                     {D}, {F, D},     {F, D},       {D, F}};
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  out.emplace_back("model.embed_tokens.weight", std::vector<int64_t>{V, D});
  for (int64_t l = 0; l < model.layers; ++l) {
    for (int i = 0; i < kLayerParams; ++i) {
      out.emplace_back("model.layers." + std::to_string(l) + "." + kLayerParamNames[i], shapes[i]);
    }
  }
  out.emplace_back("model.norm.weight", std::vector<int64_t>{D});
  out.emplace_back("lm_head.weight", std::vector<int64_t>{V, D});
  return out;
}

void Llama::set_attention(AttentionPlan plan) {
  LH_CHECK(static_cast<int64_t>(plan.size()) == model_.layers, "the attention plan has ",
           static_cast<int64_t>(plan.size()), " layers, the model ", model_.layers);
  for (size_t i = 0; i < plan.size(); ++i) {
    LH_CHECK(plan[i] != nullptr, "the attention plan has no attention for layer ", static_cast<int64_t>(i));
  }
  attention_ = std::move(plan);
}

const Attention& Llama::attention(int64_t layer) const {
  LH_CHECK(layer >= 0 && layer < model_.layers, "layer ", layer, " out of range (the model has ", model_.layers,
           " layers)");
  return *attention_[static_cast<size_t>(layer)];
}

void Llama::set_compute_dtype(at::ScalarType dtype) {
  LH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "compute dtype must be float32 or bfloat16, got ", dtype);
  compute_dtype_ = dtype;
}

void Llama::set_block_runner(BlockRunner runner) { runner_ = std::move(runner); }

std::vector<at::Tensor> Llama::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, t] : params_) out.push_back(t);
  return out;
}

int64_t Llama::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : params_) n += t.numel();
  return n;
}

void Llama::load_weights(const std::map<std::string, at::Tensor>& weights) {
  for (const auto& [name, t] : weights) {
    bool known = false;
    for (const auto& [pname, p] : params_) known = known || pname == name;
    LH_CHECK(known, "unexpected tensor '", name, "': the model (", model_.layers, " layers) has no such parameter");
  }
  at::NoGradGuard no_grad;
  for (auto& [name, p] : params_) {
    const auto it = weights.find(name);
    LH_CHECK(it != weights.end(), "missing tensor '", name, "'");
    LH_CHECK(it->second.sizes() == p.sizes(), "tensor '", name, "' has shape ", it->second.sizes(),
             " but the model expects ", p.sizes());
    p.copy_(it->second);
  }
}

LayerWeights Llama::layer_weights(int64_t layer) const {
  LH_CHECK(layer >= 0 && layer < model_.layers, "layer ", layer, " out of range (the model has ", model_.layers,
           " layers)");
  const size_t o = layer_offset_[static_cast<size_t>(layer)];
  return {params_[o].second,     params_[o + 1].second, params_[o + 2].second,
          params_[o + 3].second, params_[o + 4].second, params_[o + 5].second,
          params_[o + 6].second, params_[o + 7].second, params_[o + 8].second};
}

at::Tensor Llama::block(const LayerWeights& w, const at::Tensor& x, const RopeTables& rope, const Attention& attention,
                        const AttentionContext& context) const {
  const int64_t B = x.size(0), N = x.size(1);
  const at::ScalarType dt = compute_dtype_;
  const double eps = model_.norm_eps;
  const at::Tensor h = rms_norm(x, w.input_norm, eps).to(dt);
  const at::Tensor q = apply_rope(linear(h, w.wq, dt).view({B, N, model_.heads, head_dim_}), rope.cos, rope.sin);
  const at::Tensor k = apply_rope(linear(h, w.wk, dt).view({B, N, model_.kv_heads, head_dim_}), rope.cos, rope.sin);
  const at::Tensor v = linear(h, w.wv, dt).view({B, N, model_.kv_heads, head_dim_});
  const at::Tensor o = attention.forward(q, k, v, context).reshape({B, N, model_.heads * head_dim_});
  const at::Tensor x1 = x + linear(o, w.wo, dt);  // fp32 residual
  const at::Tensor h2 = rms_norm(x1, w.post_norm, eps).to(dt);
  const at::Tensor m = linear(at::silu(linear(h2, w.w_gate, dt)) * linear(h2, w.w_up, dt), w.w_down, dt);
  return x1 + m;
}

at::Tensor Llama::run_block(const at::Tensor& x, const RopeTables& rope, const AttentionContext& context) const {
  return block(layer_weights(context.layer), x, rope, attention(context.layer), context);
}

at::Tensor Llama::positions_for(int64_t seq_len, const at::Tensor& positions) const {
  if (!positions.defined()) return at::arange(seq_len, at::TensorOptions().dtype(at::kLong).device(device_));
  LH_CHECK(positions.dim() == 1 && positions.scalar_type() == at::kLong && positions.size(0) == seq_len,
           "positions must be int64 [N] with N = ", seq_len, " (the tokens' length), got ", positions.scalar_type(),
           " ", positions.sizes());
  return positions.to(device_);
}

at::Tensor Llama::hidden(const at::Tensor& tokens, const at::Tensor& positions) const {
  LH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong, "tokens must be int64 [B, N], got ",
           tokens.scalar_type(), " ", tokens.sizes());
  AttentionContext context;
  context.positions = positions_for(tokens.size(1), positions);
  const RopeTables rope = rope_tables(context.positions, head_dim_, model_.rope_theta);
  at::Tensor x = at::embedding(params_[0].second, tokens.to(device_));  // [B, N, D] fp32
  for (int64_t l = 0; l < model_.layers; ++l) {
    context.layer = l;
    x = runner_ ? runner_(*this, x, rope, context) : run_block(x, rope, context);
  }
  return rms_norm(x, params_[params_.size() - 2].second, model_.norm_eps).to(compute_dtype_);
}

at::Tensor Llama::logits(const at::Tensor& hidden) const {
  LH_CHECK(hidden.dim() >= 1 && hidden.size(-1) == model_.d_model,
           "hidden rows must be [..., D] with D = ", model_.d_model, ", got ", hidden.sizes());
  return linear(hidden.to(compute_dtype_), params_.back().second, compute_dtype_).to(at::kFloat);
}

at::Tensor Llama::forward(const at::Tensor& tokens, const at::Tensor& positions) const {
  return logits(hidden(tokens, positions));
}

TokenLoss Llama::token_loss(const at::Tensor& inputs, const at::Tensor& targets, int64_t ignore_index,
                            const at::Tensor& positions) const {
  LH_CHECK(targets.scalar_type() == at::kLong && targets.sizes() == inputs.sizes(),
           "targets must be int64 of the inputs' shape ", inputs.sizes(), ", got ", targets.scalar_type(), " ",
           targets.sizes());
  const at::Tensor logits = forward(inputs, positions);
  // Reduction::Sum is the very sum Reduction::Mean divides by the count, so
  // sum / count equals cross_entropy's mean bit for bit (tests/cpp/model).
  TokenLoss out;
  out.sum = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.to(device_).reshape({-1}),
                                   /*weight=*/{}, at::Reduction::Sum, ignore_index);
  out.count = targets.ne(ignore_index).sum().item<int64_t>();
  return out;
}

TokenLoss Llama::next_token_loss(const at::Tensor& tokens, int64_t ignore_index) const {
  LH_CHECK(tokens.dim() == 2 && tokens.size(1) >= 2, "a next-token loss needs tokens [B, N+1] with N >= 1, got ",
           tokens.sizes());
  const int64_t N = tokens.size(1) - 1;
  return token_loss(tokens.narrow(1, 0, N), tokens.narrow(1, 1, N), ignore_index);
}

at::Tensor mean_loss(const TokenLoss& loss) {
  // A device tensor as the divisor: a true division on every device (CUDA
  // turns a division by a CPU scalar into a multiplication by its reciprocal).
  return loss.sum / at::full({}, static_cast<double>(loss.count), loss.sum.options());
}

at::Tensor Llama::loss(const at::Tensor& tokens, int64_t ignore_index) const {
  return mean_loss(next_token_loss(tokens, ignore_index));
}

}  // namespace lighthouse::model
