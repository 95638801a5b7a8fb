/*
 * Step FLOPs and datasheet peaks (train_flops.h).
 */
#include "bench/train_flops.h"

#include "kernels/geometry.h"

namespace lighthouse::bench {

StepFlops step_flops(const config::Config& cfg, const std::vector<bool>& lighthouse_layers) {
  const config::ModelConfig& m = cfg.model;
  const double D = static_cast<double>(m.d_model), H = static_cast<double>(m.heads),
               Hkv = static_cast<double>(m.kv_heads), d = static_cast<double>(config::head_dim(m)),
               F = static_cast<double>(m.ffn_hidden), V = static_cast<double>(m.vocab_size);
  const double batch = static_cast<double>(cfg.train.batch), n = static_cast<double>(cfg.train.seq_len);
  const double micro = static_cast<double>(cfg.train.grad_accum);
  const double per_layer = D * (H + 2 * Hkv) * d + H * d * D + 3 * D * F;
  StepFlops f;
  f.matmul = micro * 6 * batch * n * (static_cast<double>(lighthouse_layers.size()) * per_layer + V * D);
  double s = 0;
  for (const bool lh : lighthouse_layers) {
    if (lh && s == 0) {
      const config::LighthouseConfig& l = cfg.lighthouse;
      s = static_cast<double>(make_geometry(1, cfg.train.seq_len, m.heads, m.kv_heads, config::head_dim(m),
                                            static_cast<int32_t>(l.levels), ceil_log2(l.pool), l.top_k)
                                  .S);
    }
    const double rows = lh ? s : n;
    f.attention += micro * 3 * 2 * batch * H * rows * rows * d;
  }
  return f;
}

double datasheet_peak_flops(const std::string& name) {
  const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return 989.4e12;
  if (has("H100")) return has("PCIe") ? 756e12 : 989.4e12;
  if (has("B200")) return 2.25e15;
  if (has("A100")) return 312e12;
  return 0;
}

}  // namespace lighthouse::bench
