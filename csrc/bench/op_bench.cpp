// The op benchmark (op_bench.h).
#include "bench/op_bench.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdio>
#include <functional>

#include "lighthouse/stages.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace lighthouse::bench {
namespace {

at::Device resolve_device(const std::string& name) {
  at::Device device(name);
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, at::cuda::current_device());
#endif
  return device;
}

// Forward + backward of `forward` with gradient `grad_out` w.r.t. `inputs`.
void forward_backward(const std::function<at::Tensor()>& forward, const std::vector<at::Tensor>& inputs,
                      const at::Tensor& grad_out) {
  const at::Tensor out = forward();
  torch::autograd::grad({out}, inputs, {grad_out});
}

at::Tensor dense_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, SdpaBackend backend) {
  // [B, N, H, d] viewed as [B, H, N, d], as a dense model calls it.
  at::Tensor qt = q.transpose(1, 2), kt = k.transpose(1, 2), vt = v.transpose(1, 2);
  if (kt.size(1) != qt.size(1)) {
    const int64_t group = qt.size(1) / kt.size(1);
    kt = kt.repeat_interleave(group, 1);
    vt = vt.repeat_interleave(group, 1);
  }
  return inner_sdpa(qt, kt, vt, backend).transpose(1, 2);
}

// Checks the op on `device` against the CPU twins at a small N: identical
// entries, outputs within a loose bound. Returns a one-line summary.
std::string validate(const OpBenchConfig& a, const Options& o, at::ScalarType dtype, const at::Device& device) {
  const int64_t n = min_sequence_length(o) + 3 * o.pool;  // needs padding on purpose
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  const at::Tensor q = at::randn({a.batch, n, a.heads, a.head_dim}, opts);
  const at::Tensor k = at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts);
  const at::Tensor v = at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts);
  at::NoGradGuard no_grad;
  const at::Tensor out = attention(q, k, v, o);
  TORCH_CHECK(out.isfinite().all().item<bool>(), "bench validation: non-finite output");
  if (!device.is_cuda()) {
    const at::Tensor e = select(q, k, o, v);
    TORCH_CHECK(e.size(2) == subsequence_length(n, o), "bench validation: wrong sub-sequence length");
    return "validated: CPU output finite, S as specified";
  }
  Options cpu_o = o;
  cpu_o.backend = SdpaBackend::kAuto;
  const at::Tensor qc = q.cpu().to(at::kFloat), kc = k.cpu().to(at::kFloat), vc = v.cpu().to(at::kFloat);
  const bool same_entries = select(q, k, o, v).cpu().equal(select(qc, kc, cpu_o, vc));
  TORCH_CHECK(same_entries || o.scorer != Scorer::kNorm, "bench validation: CUDA entries differ from the CPU twin");
  const at::Tensor ref = attention(qc, kc, vc, cpu_o);
  const double err = (out.cpu().to(at::kFloat) - ref).norm().item<double>() / ref.norm().item<double>();
  TORCH_CHECK(err < 2e-2, "bench validation: CUDA output differs from the CPU twin, relative error ", err);
  char buf[160];
  std::snprintf(buf, sizeof buf, "validated against the CPU twin at N=%lld: entries %s, relative error %.2e",
                static_cast<long long>(n), same_entries ? "identical" : "differ (dilated scorer)", err);
  return buf;
}

}  // namespace

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "float32" || s == "fp32") return at::kFloat;
  if (s == "bfloat16" || s == "bf16") return at::kBFloat16;
  if (s == "float16" || s == "fp16") return at::kHalf;
  if (s == "float64" || s == "fp64") return at::kDouble;
  TORCH_CHECK(false, "--dtype must be float32, bfloat16, float16 or float64, got '", s, "'");
}

OpBench::OpBench(OpBenchConfig config)
    : c_(std::move(config)),
      device_(resolve_device(c_.device)),
      dtype_(parse_dtype(c_.dtype)),
      timer_(device_, c_.warmup, c_.repeats) {
  TORCH_CHECK(!c_.seq_lens.empty(), "bench: no sequence length given");
  TORCH_CHECK(c_.top_ks.size() == 1 || c_.top_ks.size() == c_.seq_lens.size(),
              "--top-k takes one value or one per sequence length (", c_.seq_lens.size(), "), got ", c_.top_ks.size());
  options_.levels = c_.levels;
  options_.pool = c_.pool;
  options_.scorer = parse_scorer(c_.scorer);
  options_.backend = parse_backend(c_.backend);
  for (const auto& b : c_.dense_backends) dense_.push_back(parse_backend(b));
  at::manual_seed(0);

  options_.top_k = c_.top_ks.front();
  validation_ = validate(c_, options_, dtype_, device_);
  const auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  const at::Tensor probe = at::empty({c_.batch, c_.heads, 128, c_.head_dim}, opts);
  backend_used_ = to_string(resolve_backend(options_.backend, probe, probe, probe));
}

OpBenchRow OpBench::run(size_t i) {
  const OpBenchConfig& a = c_;
  Options o = options_;
  const int64_t n = a.seq_lens.at(i);
  o.top_k = a.top_ks.size() == 1 ? a.top_ks[0] : a.top_ks[i];
  const auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  const at::Tensor q = at::randn({a.batch, n, a.heads, a.head_dim}, opts).requires_grad_();
  const at::Tensor k = at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts).requires_grad_();
  const at::Tensor v = at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts).requires_grad_();
  const at::Tensor grad_out = at::randn({a.batch, n, a.heads, a.head_dim}, opts);
  OpBenchRow row;
  row.n = n;
  row.top_k = o.top_k;
  row.s = subsequence_length(n, o);

  const at::Tensor qs = at::randn({a.batch, a.heads, row.s, a.head_dim}, opts).requires_grad_();
  const at::Tensor ks = at::randn({a.batch, a.heads, row.s, a.head_dim}, opts).requires_grad_();
  const at::Tensor vs = at::randn({a.batch, a.heads, row.s, a.head_dim}, opts).requires_grad_();
  const at::Tensor gs = at::randn({a.batch, a.heads, row.s, a.head_dim}, opts);

  auto lh = [&] { return attention(q, k, v, o); };
  auto floor = [&] { return inner_sdpa(qs, ks, vs, o.backend); };
  const Timer::Paired fwd = timer_.paired_median_ms(lh, floor);
  const Timer::Paired fwd_bwd = timer_.paired_median_ms([&] { forward_backward(lh, {q, k, v}, grad_out); },
                                                        [&] { forward_backward(floor, {qs, ks, vs}, gs); });
  row.lh_fwd = fwd.a_ms;
  row.floor_fwd = fwd.b_ms;
  row.over_floor_fwd = fwd.ratio;
  row.lh_fwd_bwd = fwd_bwd.a_ms;
  row.floor_fwd_bwd = fwd_bwd.b_ms;
  row.over_floor_fwd_bwd = fwd_bwd.ratio;
  row.lh_peak_bytes = peak_bytes(device_, [&] { forward_backward(lh, {q, k, v}, grad_out); });
  for (size_t bi = 0; bi < dense_.size(); ++bi) {
    if (a.dense_max_n > 0 && n > a.dense_max_n) {
      row.dense.emplace_back(0.0, 0.0);
      continue;
    }
    auto dn = [&] { return dense_sdpa(q, k, v, dense_[bi]); };
    const double f = timer_.median_ms(dn);
    const double fb = timer_.median_ms([&] { forward_backward(dn, {q, k, v}, grad_out); });
    row.dense.emplace_back(f, fb);
    if (bi == 0) row.dense_peak_bytes = peak_bytes(device_, [&] { forward_backward(dn, {q, k, v}, grad_out); });
  }
  if (a.stages) {
    row.stages = time_stages(q.detach(), k.detach(), v.detach(), grad_out, o,
                             [&](const std::function<void()>& fn) { return timer_.median_ms(fn); });
  }
  return row;
}

Json OpBench::row_json(const OpBenchRow& r) const {
  Json row = {{"N", r.n},
              {"top_k", r.top_k},
              {"S", r.s},
              {"lighthouse_fwd_ms", r.lh_fwd},
              {"lighthouse_fwd_bwd_ms", r.lh_fwd_bwd},
              {"sdpa_on_S_fwd_ms", r.floor_fwd},
              {"sdpa_on_S_fwd_bwd_ms", r.floor_fwd_bwd},
              {"lighthouse_over_floor_fwd", r.over_floor_fwd},
              {"lighthouse_over_floor_fwd_bwd", r.over_floor_fwd_bwd}};
  for (size_t bi = 0; bi < dense_.size(); ++bi) {
    const std::string name = "dense_" + to_string(dense_[bi]);
    if (r.dense[bi].first > 0) {
      row[name + "_fwd_ms"] = r.dense[bi].first;
      row[name + "_fwd_bwd_ms"] = r.dense[bi].second;
      row["speedup_vs_" + name + "_fwd"] = r.dense[bi].first / r.lh_fwd;
      row["speedup_vs_" + name + "_fwd_bwd"] = r.dense[bi].second / r.lh_fwd_bwd;
    }
  }
  if (device_.is_cuda()) {
    row["lighthouse_peak_bytes"] = r.lh_peak_bytes;
    row["dense_peak_bytes"] = r.dense_peak_bytes;
  }
  if (c_.stages) {
    Json st = Json::object();
    for (const auto& [name, ms] : r.stages) st[name + "_ms"] = ms;
    row["stages"] = st;
  }
  return row;
}

Json OpBench::document(const Json& rows) const {
  Json doc = {{"date", utc_timestamp()},
              {"device", device_.str()},
              {"dtype", c_.dtype},
              {"B", c_.batch},
              {"H", c_.heads},
              {"H_kv", c_.kv_heads},
              {"d", c_.head_dim},
              {"levels", c_.levels},
              {"pool", c_.pool},
              {"scorer", c_.scorer},
              {"inner_sdpa_backend", backend_used_},
              {"warmup", c_.warmup},
              {"repeats", c_.repeats},
              {"timing", "Lighthouse and SDPA on S timed alternately; lighthouse_over_floor_* are medians of "
                         "the per-pair ratios"},
              {"validation", validation_},
              {"rows", rows}};
  if (device_.is_cuda()) doc["gpu"] = device_name(device_);
  return doc;
}

}  // namespace lighthouse::bench
