/*
 * The activation memory estimate and the greedy plan (memory_plan.h).
 */
#include "train/memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "kernels/geometry.h"

namespace lighthouse::train {

const char* to_string(LayerRecompute r) {
  switch (r) {
    case LayerRecompute::kNone:
      return "keep";
    case LayerRecompute::kSelective:
      return "selective";
    default:
      return "full";
  }
}

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
// The loss's chunked logits and their gradient (csrc/ops/fused.cpp keeps a
// chunk near 32 MB), and slack for the allocator's rounding.
constexpr double kLossChunkBytes = 2 * 32.0 * 1024 * 1024;

// Forward FLOPs per token of one layer (matmuls and attention), the cost of
// recomputing it.
double forward_flops(const config::ModelConfig& m, bool lighthouse, double n, double s) {
  const double D = static_cast<double>(m.d_model), H = static_cast<double>(m.heads),
               Hkv = static_cast<double>(m.kv_heads), d = static_cast<double>(config::head_dim(m)),
               F = static_cast<double>(m.ffn_hidden);
  const double matmul = 2 * (D * (H + 2 * Hkv) * d + H * d * D + 3 * D * F);
  const double rows = lighthouse ? s * s / n : n;  // causal attention over the rows it attends
  return matmul + 2 * rows * H * d;
}

}  // namespace

std::string CheckpointPlan::describe() const {
  int64_t counts[3] = {0, 0, 0}, stored = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    ++counts[static_cast<int>(layers[l])];
    stored += layers[l] == LayerRecompute::kFull && stores_input[l];
  }
  char buf[200];
  std::snprintf(buf, sizeof buf, "%lld keep, %lld selective, %lld full (%lld stored inputs); est. %.1f of %.1f GiB%s",
                static_cast<long long>(counts[0]), static_cast<long long>(counts[1]), static_cast<long long>(counts[2]),
                static_cast<long long>(stored), estimated_bytes / kGiB, budget_bytes / kGiB,
                fits ? "" : " (over budget)");
  return buf;
}

MemoryModel memory_model(const config::Config& cfg, const std::vector<bool>& lighthouse_layers, int64_t dtype_bytes,
                         int64_t parameters) {
  const config::ModelConfig& m = cfg.model;
  const double D = static_cast<double>(m.d_model), H = static_cast<double>(m.heads),
               Hkv = static_cast<double>(m.kv_heads), d = static_cast<double>(config::head_dim(m)),
               F = static_cast<double>(m.ffn_hidden), e = static_cast<double>(dtype_bytes);
  const int64_t N = cfg.train.seq_len;
  MemoryModel out;
  out.tokens = cfg.train.batch * N;
  double s_over_n = 0, p_over_n = 0;
  if (std::find(lighthouse_layers.begin(), lighthouse_layers.end(), true) != lighthouse_layers.end()) {
    const config::LighthouseConfig& lh = cfg.lighthouse;
    const Geometry g = make_geometry(1, N, m.heads, m.kv_heads, config::head_dim(m), static_cast<int32_t>(lh.levels),
                                     static_cast<int32_t>(ceil_log2(lh.pool)), lh.top_k);
    s_over_n = static_cast<double>(g.S) / static_cast<double>(N);
    p_over_n = static_cast<double>(g.P) / static_cast<double>(N);
  }
  // Dense SDPA keeps q, k, v and its fp32 log-sum-exp (its output is o);
  // Lighthouse keeps the gathered q~, k~, v~, o~ (H heads each), their
  // log-sum-exp and the int32 plan (entries over S, inverse map over P).
  const double dense_att = e * (H + 2 * Hkv) * d + 4 * H;
  const double lh_att = s_over_n * (4 * e * H * d + 4 * H) + 4 * H * s_over_n + 4 * H * p_over_n;
  for (const bool lh : lighthouse_layers) {
    const double att = lh ? lh_att : dense_att;
    out.keep.push_back(4 * D + e * D + att + e * H * d + 4 * D + e * D + 3 * e * F);
    out.selective.push_back(4 * D + att + e * H * d + e * D + 2 * e * F);
    out.full.push_back(4 * D);
    // The stock block also keeps both norms' fp32 normalised rows, RoPE's
    // fp32 copies of q and k (twice: the rotation and its rotate_half), and
    // silu(gate).
    out.keep_unfused.push_back(out.keep.back() + 8 * D + 8 * (H + Hkv) * d + e * F);
    out.forward_flops.push_back(forward_flops(m, lh, static_cast<double>(N), s_over_n * static_cast<double>(N)));
  }
  const double tokens = static_cast<double>(out.tokens);
  out.static_bytes = 16.0 * static_cast<double>(parameters);
  out.loss_bytes = tokens * (e * D + 4 * D + 32) + kLossChunkBytes;
  out.stored_input_bytes = tokens * 4 * D;
  const double widest = out.selective.empty() ? 0 : *std::max_element(out.selective.begin(), out.selective.end());
  out.transient_bytes = tokens * (widest + 4 * D + 4 * e * F);
  return out;
}

double estimate_bytes(const MemoryModel& model, const CheckpointPlan& plan) {
  const double tokens = static_cast<double>(model.tokens);
  double total = model.static_bytes + model.loss_bytes + model.transient_bytes;
  int64_t run = 0, longest = 0;
  for (size_t l = 0; l < plan.layers.size(); ++l) {
    switch (plan.layers[l]) {
      case LayerRecompute::kNone:
        total += tokens * (plan.fused ? model.keep[l] : model.keep_unfused[l]);
        break;
      case LayerRecompute::kSelective:
        total += tokens * model.selective[l];
        break;
      case LayerRecompute::kFull:
        if (plan.stores_input[l]) total += tokens * model.full[l];
        break;
    }
    run = plan.layers[l] == LayerRecompute::kFull && !plan.stores_input[l] ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  // A segment's backward regenerates its inputs after the first.
  return total + static_cast<double>(longest) * model.stored_input_bytes;
}

CheckpointPlan plan_checkpointing(const MemoryModel& model, double budget_bytes, bool fused) {
  const int64_t L = static_cast<int64_t>(model.keep.size());
  CheckpointPlan plan;
  plan.budget_bytes = budget_bytes;
  plan.fused = fused;
  plan.layers.assign(L, LayerRecompute::kFull);
  plan.stores_input.assign(L, true);
  plan.estimated_bytes = estimate_bytes(model, plan);
  if (plan.estimated_bytes > budget_bytes) {
    // Fewer stored inputs: m segments as even as possible, longest first.
    for (int64_t m = L - 1; m >= 1; --m) {
      const int64_t q = L / m, r = L % m;
      int64_t l = 0;
      for (int64_t seg = 0; seg < m; ++seg) {
        const int64_t len = q + (seg < r ? 1 : 0);
        for (int64_t i = 0; i < len; ++i, ++l) plan.stores_input[l] = i == 0;
      }
      plan.estimated_bytes = estimate_bytes(model, plan);
      if (plan.estimated_bytes <= budget_bytes) return plan;
    }
    plan.fits = false;
    return plan;
  }
  // Upgrades, best forward time saved per byte first.
  struct Upgrade {
    int64_t layer;
    LayerRecompute from, to;
    double bytes, gain;
  };
  std::vector<Upgrade> ups;
  const double tokens = static_cast<double>(model.tokens);
  for (int64_t l = 0; l < L; ++l) {
    // The forward FLOPs of a layer, in proportion: what a full recompute
    // repeats. The element-wise work a selective layer repeats is a few
    // percent of it.
    const double cost = model.forward_flops[l];
    if (fused) {
      ups.push_back({l, LayerRecompute::kFull, LayerRecompute::kSelective,
                     tokens * (model.selective[l] - model.full[l]), 0.97 * cost});
      ups.push_back({l, LayerRecompute::kSelective, LayerRecompute::kNone,
                     tokens * (model.keep[l] - model.selective[l]), 0.03 * cost});
    } else {
      ups.push_back(
          {l, LayerRecompute::kFull, LayerRecompute::kNone, tokens * (model.keep_unfused[l] - model.full[l]), cost});
    }
  }
  std::stable_sort(ups.begin(), ups.end(),
                   [](const Upgrade& a, const Upgrade& b) { return a.gain / a.bytes > b.gain / b.bytes; });
  // Applying one upgrade can enable its follow-up (selective -> keep):
  // sweep until nothing changes.
  for (bool changed = true; changed;) {
    changed = false;
    for (const Upgrade& u : ups) {
      if (plan.layers[u.layer] != u.from) continue;
      CheckpointPlan next = plan;
      next.layers[u.layer] = u.to;
      next.estimated_bytes = estimate_bytes(model, next);
      if (next.estimated_bytes <= budget_bytes) {
        plan = next;
        changed = true;
      }
    }
  }
  return plan;
}

}  // namespace lighthouse::train
