/*
 * The Llama decoder (llama.h) and its activation checkpointing.
 *
 * Activation checkpointing: LibTorch's C++ API has no checkpoint utility, so
 * BlockCheckpoint is a custom autograd Function per decoder layer. Forward
 * runs the block without a graph and saves only its input; backward
 * recomputes the block with a graph on detached copies of the input and the
 * weights and differentiates it (a reentrant backward, like PyTorch's
 * checkpoint(use_reentrant=True)). The recompute is bit-identical to the
 * forward because nothing in a block is random and the Lighthouse op is
 * deterministic.
 */
#include "model/llama.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>

#include "model/lighthouse_options.h"

namespace lighthouse::model {

const char* to_string(AttentionMode mode) { return mode == AttentionMode::kDense ? "dense" : "lighthouse"; }

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

// Reentrant per-layer checkpoint (see the file comment). Tensor arguments
// are listed one by one because custom Functions do not traverse vectors.
class BlockCheckpoint : public torch::autograd::Function<BlockCheckpoint> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const Llama* model, int64_t mode,
                                                const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                                const at::Tensor& w0, const at::Tensor& w1, const at::Tensor& w2,
                                                const at::Tensor& w3, const at::Tensor& w4, const at::Tensor& w5,
                                                const at::Tensor& w6, const at::Tensor& w7, const at::Tensor& w8) {
    ctx->saved_data["model"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(model));
    ctx->saved_data["mode"] = mode;
    ctx->save_for_backward({x, cos, sin, w0, w1, w2, w3, w4, w5, w6, w7, w8});
    const LayerWeights w{w0, w1, w2, w3, w4, w5, w6, w7, w8};
    return {model->block(w, x, cos, sin, static_cast<AttentionMode>(mode))};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    const auto* model = reinterpret_cast<const Llama*>(static_cast<intptr_t>(ctx->saved_data["model"].toInt()));
    const auto mode = static_cast<AttentionMode>(ctx->saved_data["mode"].toInt());
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    at::AutoGradMode grad_mode(true);
    torch::autograd::variable_list inputs;  // x, then the 9 weights
    inputs.push_back(saved[0].detach().requires_grad_(true));
    for (int i = 0; i < kLayerParams; ++i) inputs.push_back(saved[3 + i].detach().requires_grad_(true));
    const LayerWeights w{inputs[1], inputs[2], inputs[3], inputs[4], inputs[5],
                         inputs[6], inputs[7], inputs[8], inputs[9]};
    const at::Tensor y = model->block(w, inputs[0], saved[1], saved[2], mode);
    const torch::autograd::variable_list g =
        torch::autograd::grad({y}, inputs, {grad_out[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                              /*allow_unused=*/true);
    // One entry per forward argument: model, mode, x, cos, sin, w0..w8.
    torch::autograd::variable_list out = {at::Tensor(), at::Tensor(), g[0], at::Tensor(), at::Tensor()};
    for (int i = 0; i < kLayerParams; ++i) out.push_back(g[1 + i]);
    return out;
  }
};

}  // namespace

std::pair<at::Tensor, at::Tensor> rope_tables(int64_t seq_len, int64_t head_dim, double theta, at::Device device) {
  // As transformers' default RoPE: inv_freq = 1 / theta^(2i/d) in fp32,
  // angles = position * inv_freq, then [angles, angles].
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor exponent =
      at::arange(0, head_dim, 2, f32.dtype(at::kLong)).to(at::kFloat) / static_cast<double>(head_dim);
  const at::Tensor inv_freq = 1.0 / at::pow(theta, exponent);
  const at::Tensor pos = at::arange(seq_len, f32.dtype(at::kLong)).to(at::kFloat);
  const at::Tensor angles = pos.unsqueeze(1) * inv_freq.unsqueeze(0);  // [N, d/2]
  const at::Tensor emb = at::cat({angles, angles}, -1);
  return {emb.cos(), emb.sin()};
}

Llama::Llama(const config::ModelConfig& model, const config::LighthouseConfig& lighthouse, at::Device device,
             uint64_t seed)
    : model_(model),
      lighthouse_(lighthouse),
      lh_options_(op_options(lighthouse)),
      device_(device),
      head_dim_(config::head_dim(model)) {

  const AttentionMode other = model.attention == "dense" ? AttentionMode::kDense : AttentionMode::kLighthouse;
  modes_.assign(model.layers, other);
  for (const int64_t i : config::resolved_dense_layers(model)) modes_[i] = AttentionMode::kDense;

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

void Llama::set_compute_dtype(at::ScalarType dtype) {
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kBFloat16, "compute dtype must be float32 or bfloat16, got ", dtype);
  compute_dtype_ = dtype;
}

int64_t Llama::set_all_dense() {
  int64_t changed = 0;
  for (auto& m : modes_) {
    changed += m == AttentionMode::kLighthouse;
    m = AttentionMode::kDense;
  }
  return changed;
}

bool Llama::any_lighthouse() const {
  for (const auto m : modes_) {
    if (m == AttentionMode::kLighthouse) return true;
  }
  return false;
}

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
    TORCH_CHECK(known, "unexpected tensor '", name, "': the model (", model_.layers, " layers) has no such parameter");
  }
  at::NoGradGuard no_grad;
  for (auto& [name, p] : params_) {
    const auto it = weights.find(name);
    TORCH_CHECK(it != weights.end(), "missing tensor '", name, "'");
    TORCH_CHECK(it->second.sizes() == p.sizes(), "tensor '", name, "' has shape ", it->second.sizes(),
                " but the model expects ", p.sizes());
    p.copy_(it->second);
  }
}

LayerWeights Llama::layer_weights(int64_t layer) const {
  const size_t o = layer_offset_.at(layer);
  return {params_[o].second,     params_[o + 1].second, params_[o + 2].second,
          params_[o + 3].second, params_[o + 4].second, params_[o + 5].second,
          params_[o + 6].second, params_[o + 7].second, params_[o + 8].second};
}

at::Tensor Llama::attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, AttentionMode mode) const {
  // q [B, N, H, d], k, v [B, N, H_kv, d] -> [B, N, H, d]
  if (mode == AttentionMode::kLighthouse) return lighthouse::attention(q, k, v, lh_options_);
  const bool gqa = q.size(2) != k.size(2);
  return at::scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                          /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true,
                                          /*scale=*/std::nullopt, /*enable_gqa=*/gqa)
      .transpose(1, 2);
}

at::Tensor Llama::block(const LayerWeights& w, const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                        AttentionMode mode) const {
  const int64_t B = x.size(0), N = x.size(1);
  const at::ScalarType dt = compute_dtype_;
  const double eps = model_.norm_eps;
  const at::Tensor h = rms_norm(x, w.input_norm, eps).to(dt);
  const at::Tensor q = apply_rope(linear(h, w.wq, dt).view({B, N, model_.heads, head_dim_}), cos, sin);
  const at::Tensor k = apply_rope(linear(h, w.wk, dt).view({B, N, model_.kv_heads, head_dim_}), cos, sin);
  const at::Tensor v = linear(h, w.wv, dt).view({B, N, model_.kv_heads, head_dim_});
  const at::Tensor o = attention(q, k, v, mode).reshape({B, N, model_.heads * head_dim_});
  const at::Tensor x1 = x + linear(o, w.wo, dt);  // fp32 residual
  const at::Tensor h2 = rms_norm(x1, w.post_norm, eps).to(dt);
  const at::Tensor m = linear(at::silu(linear(h2, w.w_gate, dt)) * linear(h2, w.w_up, dt), w.w_down, dt);
  return x1 + m;
}

at::Tensor Llama::forward(const at::Tensor& tokens) const {
  TORCH_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong, "tokens must be int64 [B, N], got ",
              tokens.scalar_type(), " ", tokens.sizes());
  const int64_t N = tokens.size(1);
  const auto [cos, sin] = rope_tables(N, head_dim_, model_.rope_theta, device_);
  at::Tensor x = at::embedding(params_[0].second, tokens.to(device_));  // [B, N, D] fp32
  const bool recompute = checkpointing_ && at::GradMode::is_enabled();
  for (int64_t l = 0; l < model_.layers; ++l) {
    const LayerWeights w = layer_weights(l);
    if (recompute) {
      x = BlockCheckpoint::apply(this, static_cast<int64_t>(modes_[l]), x, cos, sin, w.input_norm, w.wq, w.wk, w.wv,
                                 w.wo, w.post_norm, w.w_gate, w.w_up, w.w_down)[0];
    } else {
      x = block(w, x, cos, sin, modes_[l]);
    }
  }
  const size_t n = params_.size();
  const at::Tensor h = rms_norm(x, params_[n - 2].second, model_.norm_eps).to(compute_dtype_);
  return linear(h, params_[n - 1].second, compute_dtype_).to(at::kFloat);
}

at::Tensor Llama::loss(const at::Tensor& tokens, int64_t ignore_index) const {
  TORCH_CHECK(tokens.dim() == 2 && tokens.size(1) >= 2, "loss needs tokens [B, N+1] with N >= 1, got ", tokens.sizes());
  const int64_t N = tokens.size(1) - 1;
  const at::Tensor logits = forward(tokens.narrow(1, 0, N));
  const at::Tensor targets = tokens.narrow(1, 1, N).to(device_).reshape({-1});
  return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets, /*weight=*/{}, at::Reduction::Mean,
                                ignore_index);
}

}  // namespace lighthouse::model
