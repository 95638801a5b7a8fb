/*
 * `lighthouse bench [op]`: Lighthouse attention against stock dense causal
 * SDPA in the same run, on CPU or CUDA.
 *
 * For each (N, top_k): forward and forward+backward time of Lighthouse, of
 * dense SDPA (the stock kernels a dense model would call, on [B, N, H, d]
 * inputs viewed as [B, H, N, d]), and of SDPA alone on S tokens (the floor:
 * Lighthouse runs that very call); the ratios; optionally a per-stage
 * breakdown and, on CUDA, peak memory. Validates before timing (CUDA against
 * the CPU twin). Times are medians of `--repeats` runs after `--warmup`
 * runs: CUDA events with the L2 cache flushed before each run, or a steady
 * clock on CPU. Prints a table; `--json` writes every number.
 * `--cp W` (under torchrun): the context-parallel op instead (csrc/dist/bench_cp.h).
 */
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/grad_mode.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "dist/bench_cp.h"
#include "lighthouse/lighthouse.h"
#include "ops/checks.h"
#include "ops/sdpa.h"
#include "ops/stages.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace lighthouse::cli {
namespace {

using Json = nlohmann::ordered_json;

struct BenchArgs {
  std::string device;
  std::vector<int64_t> seq_lens;
  std::vector<int64_t> top_ks;
  int64_t batch = 1;
  int64_t heads = 0;
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t levels = 3;
  int64_t pool = 4;
  std::string dtype;
  std::string scorer = "norm";
  std::string backend = "auto";
  std::vector<std::string> dense_backends;
  int warmup = 1;
  int repeats = 0;
  int64_t dense_max_n = 0;
  bool stages = false;
  bool no_dense = false;
  std::string json_path;
  int64_t cp = 0;  // > 0: context parallelism over this many ranks (torchrun)
};

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "float32" || s == "fp32") return at::kFloat;
  if (s == "bfloat16" || s == "bf16") return at::kBFloat16;
  if (s == "float16" || s == "fp16") return at::kHalf;
  if (s == "float64" || s == "fp64") return at::kDouble;
  TORCH_CHECK(false, "--dtype must be float32, bfloat16, float16 or float64, got '", s, "'");
}

void synchronize(const at::Device& device) {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) at::cuda::getCurrentCUDAStream(device.index()).synchronize();
#else
  (void)device;
#endif
}

// Median time in ms of `fn` on `device`.
class Timer {
 public:
  static constexpr double kSlowMs = 1000.0;

  Timer(at::Device device, int warmup, int repeats) : device_(device), warmup_(warmup), repeats_(repeats) {
#ifdef LIGHTHOUSE_WITH_CUDA
    if (device.is_cuda()) {
      // Larger than the L2 of any current GPU: writing it evicts our data.
      flush_ = at::empty({int64_t{256} << 20}, at::TensorOptions().dtype(at::kByte).device(device));
    }
#endif
  }

  double median_ms(const std::function<void()>& fn) const {
    for (int i = 0; i < warmup_; ++i) fn();
    synchronize(device_);
    std::vector<double> ms;
    for (int i = 0; i < repeats_; ++i) {
      ms.push_back(once_ms(fn));
      // Slow measurements (dense attention at long N): three runs suffice,
      // one when a run takes over five seconds.
      if (ms.front() > 5 * kSlowMs || (ms.front() > kSlowMs && ms.size() >= 3)) break;
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

 private:
  double once_ms(const std::function<void()>& fn) const {
#ifdef LIGHTHOUSE_WITH_CUDA
    if (device_.is_cuda()) {
      flush_.zero_();
      at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
      start.record();
      fn();
      stop.record();
      stop.synchronize();
      return start.elapsed_time(stop);
    }
#endif
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    synchronize(device_);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }

  at::Device device_;
  int warmup_, repeats_;
  at::Tensor flush_;
};

// Peak bytes allocated on the device while `fn` runs, above what was
// allocated before it; 0 on CPU.
int64_t peak_bytes(const at::Device& device, const std::function<void()>& fn) {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    synchronize(device);
    alloc::resetPeakStats(device.index());
    const int64_t before = alloc::getDeviceStats(device.index()).allocated_bytes[0].current;
    fn();
    synchronize(device);
    return alloc::getDeviceStats(device.index()).allocated_bytes[0].peak - before;
  }
#endif
  (void)fn;
  return 0;
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
  return detail::causal_sdpa(qt, kt, vt, backend).transpose(1, 2);
}

std::string fmt_ms(double ms) {
  char buf[32];
  if (ms <= 0) return "-";
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.3f" : (ms < 1000 ? "%.2f" : "%.0f"), ms);
  return buf;
}

std::string fmt_ratio(double r) {
  char buf[32];
  if (!(r > 0) || !std::isfinite(r)) return "-";
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

// Checks the op on `device` against the CPU twins at a small N: identical
// entries, outputs within a loose bound. Returns a one-line summary.
std::string validate(const BenchArgs& a, const Options& o, at::ScalarType dtype, const at::Device& device) {
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

struct StageTimes {
  std::vector<std::pair<std::string, double>> ms;
};

// Times each stage alone, forward and backward, with the op's own functions.
StageTimes time_stages(const Timer& timer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                       const at::Tensor& grad_out, const Options& o) {
  at::NoGradGuard no_grad;
  const Geometry g = detail::check_inputs("bench", q, k, v, o);
  StageTimes st;
  detail::Plan plan;
  const double plan_ms = timer.median_ms([&] { plan = detail::make_plan(q, k, v, g, o, /*pool_coarse=*/true); });
  const double scores_ms = timer.median_ms([&] {
    detail::Plan tmp;
    detail::pyramid_scores(q, k, g, v, &tmp);
  });
  st.ms.emplace_back("scores", scores_ms);
  st.ms.emplace_back("select", std::max(0.0, plan_ms - scores_ms));
  at::Tensor qg, kg, vg;
  st.ms.emplace_back("gather", timer.median_ms([&] {
    const std::vector<at::Tensor> out = detail::gather({q, k, v}, plan, g, {plan.coarse_q, plan.coarse_k, plan.coarse_v});
    qg = out[0];
    kg = out[1];
    vg = out[2];
  }));
  at::Tensor og;
  st.ms.emplace_back("sdpa_fwd", timer.median_ms([&] { og = detail::causal_sdpa(qg, kg, vg, o.backend); }));
  st.ms.emplace_back("scatter", timer.median_ms([&] { detail::scatter(og, plan, g); }));
  at::Tensor dog;
  st.ms.emplace_back("scatter_bwd", timer.median_ms([&] { dog = detail::scatter_backward(grad_out, plan, g); }));
  {
    at::AutoGradMode grad(true);
    const at::Tensor qr = qg.detach().requires_grad_(), kr = kg.detach().requires_grad_(),
                     vr = vg.detach().requires_grad_();
    const double fb = timer.median_ms(
        [&] { forward_backward([&] { return detail::causal_sdpa(qr, kr, vr, o.backend); }, {qr, kr, vr}, dog); });
    st.ms.emplace_back("sdpa_bwd", std::max(0.0, fb - st.ms[3].second));
  }
  st.ms.emplace_back("gather_bwd", timer.median_ms([&] {
    detail::gather_backward(dog, g.H, plan, g);
    detail::gather_backward(dog, g.H_kv, plan, g);
    detail::gather_backward(dog, g.H_kv, plan, g);
  }));
  return st;
}

struct Line {
  int64_t n, top_k, s;
  double lh_f, lh_fb, floor_f, floor_fb;
  std::vector<std::pair<double, double>> dense;
  int64_t lh_mem, dense_mem;
  StageTimes stages;
};

void print_header(const BenchArgs& a, const std::vector<SdpaBackend>& dense, const at::Device& device,
                  const std::string& backend_used) {
  std::printf("\nLighthouse vs dense causal SDPA on %s: %s, B=%lld H=%lld H_kv=%lld d=%lld, L=%lld p=%lld, scorer %s, "
              "inner SDPA %s; median of up to %d runs (3 when a run exceeds %.0f ms, 1 above 5x that) after %d warm-up\n",
              device.str().c_str(), a.dtype.c_str(), static_cast<long long>(a.batch), static_cast<long long>(a.heads),
              static_cast<long long>(a.kv_heads), static_cast<long long>(a.head_dim), static_cast<long long>(a.levels),
              static_cast<long long>(a.pool), a.scorer.c_str(), backend_used.c_str(), a.repeats, Timer::kSlowMs,
              a.warmup);
  std::printf("%9s %6s %7s | %10s %10s | %10s %10s | %7s %7s", "N", "top_k", "S", "LH fwd", "LH f+b", "S-SDPA fwd",
              "S-SDPA f+b", "LH/flr", "LH/flr");
  for (const auto b : dense) std::printf(" | %9s %9s %7s %7s", ("dn-" + to_string(b)).c_str(), "f+b", "speedup", "speedup");
  if (device.is_cuda()) std::printf(" | %9s", "mem LH/dn");
  std::printf("\n%9s %6s %7s | %10s %10s | %10s %10s | %7s %7s", "", "", "", "ms", "ms", "ms", "ms", "fwd", "f+b");
  for (size_t bi = 0; bi < dense.size(); ++bi) std::printf(" | %9s %9s %7s %7s", "fwd ms", "ms", "fwd", "f+b");
  if (device.is_cuda()) std::printf(" | %9s", "f+b peak");
  std::printf("\n");
  std::fflush(stdout);
}

void print_row(const Line& l, const at::Device& device) {
  std::printf("%9lld %6lld %7lld | %10s %10s | %10s %10s | %7s %7s", static_cast<long long>(l.n),
              static_cast<long long>(l.top_k), static_cast<long long>(l.s), fmt_ms(l.lh_f).c_str(),
              fmt_ms(l.lh_fb).c_str(), fmt_ms(l.floor_f).c_str(), fmt_ms(l.floor_fb).c_str(),
              fmt_ratio(l.lh_f / l.floor_f).c_str(), fmt_ratio(l.lh_fb / l.floor_fb).c_str());
  for (const auto& [f, fb] : l.dense) {
    std::printf(" | %9s %9s %7s %7s", fmt_ms(f).c_str(), fmt_ms(fb).c_str(), fmt_ratio(f / l.lh_f).c_str(),
                fmt_ratio(fb / l.lh_fb).c_str());
  }
  if (device.is_cuda()) std::printf(" | %9s", fmt_ratio(double(l.lh_mem) / double(l.dense_mem)).c_str());
  std::printf("\n");
  std::fflush(stdout);
}

void write_json(const BenchArgs& a, const at::Device& device, const std::string& backend_used,
                const std::string& validation, const Json& rows) {
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  Json doc = {{"date", date},
              {"device", device.str()},
              {"dtype", a.dtype},
              {"B", a.batch},
              {"H", a.heads},
              {"H_kv", a.kv_heads},
              {"d", a.head_dim},
              {"levels", a.levels},
              {"pool", a.pool},
              {"scorer", a.scorer},
              {"inner_sdpa_backend", backend_used},
              {"warmup", a.warmup},
              {"repeats", a.repeats},
              {"validation", validation},
              {"rows", rows}};
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) doc["gpu"] = at::cuda::getDeviceProperties(device.index())->name;
#endif
  std::ofstream(a.json_path) << doc.dump(2) << "\n";
}

int run_bench(const BenchArgs& a) {
  at::Device device(a.device);
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, at::cuda::current_device());
#endif
  const at::ScalarType dtype = parse_dtype(a.dtype);
  Options o;
  o.levels = a.levels;
  o.pool = a.pool;
  o.scorer = parse_scorer(a.scorer);
  o.backend = parse_backend(a.backend);
  std::vector<SdpaBackend> dense;
  if (!a.no_dense) {
    for (const auto& b : a.dense_backends) dense.push_back(parse_backend(b));
  }
  const Timer timer(device, a.warmup, a.repeats);
  at::manual_seed(0);

  o.top_k = a.top_ks.front();
  const std::string validation = validate(a, o, dtype, device);
  std::printf("%s\n", validation.c_str());

  Json rows = Json::array();
  std::vector<Line> lines;
  std::string backend_used;
  {
    const auto opts = at::TensorOptions().dtype(dtype).device(device);
    const at::Tensor probe = at::empty({a.batch, a.heads, 128, a.head_dim}, opts);
    backend_used = to_string(resolve_backend(o.backend, probe, probe, probe));
  }
  print_header(a, dense, device, backend_used);
  for (size_t i = 0; i < a.seq_lens.size(); ++i) {
    const int64_t n = a.seq_lens[i];
    o.top_k = a.top_ks.size() == 1 ? a.top_ks[0] : a.top_ks[i];
    std::fprintf(stderr, "[bench] N=%lld top_k=%lld ...\n", static_cast<long long>(n), static_cast<long long>(o.top_k));
    const auto opts = at::TensorOptions().dtype(dtype).device(device);
    const at::Tensor q = at::randn({a.batch, n, a.heads, a.head_dim}, opts).requires_grad_();
    const at::Tensor k = at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts).requires_grad_();
    const at::Tensor v = at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts).requires_grad_();
    const at::Tensor grad_out = at::randn({a.batch, n, a.heads, a.head_dim}, opts);
    Line line{};
    line.n = n;
    line.top_k = o.top_k;
    line.s = subsequence_length(n, o);

    const at::Tensor qs = at::randn({a.batch, a.heads, line.s, a.head_dim}, opts).requires_grad_();
    const at::Tensor ks = at::randn({a.batch, a.heads, line.s, a.head_dim}, opts).requires_grad_();
    const at::Tensor vs = at::randn({a.batch, a.heads, line.s, a.head_dim}, opts).requires_grad_();
    const at::Tensor gs = at::randn({a.batch, a.heads, line.s, a.head_dim}, opts);

    auto lh = [&] { return attention(q, k, v, o); };
    line.lh_f = timer.median_ms(lh);
    line.lh_fb = timer.median_ms([&] { forward_backward(lh, {q, k, v}, grad_out); });
    line.lh_mem = peak_bytes(device, [&] { forward_backward(lh, {q, k, v}, grad_out); });
    auto floor = [&] { return detail::causal_sdpa(qs, ks, vs, o.backend); };
    line.floor_f = timer.median_ms(floor);
    line.floor_fb = timer.median_ms([&] { forward_backward(floor, {qs, ks, vs}, gs); });
    for (size_t bi = 0; bi < dense.size(); ++bi) {
      if (a.dense_max_n > 0 && n > a.dense_max_n) {
        line.dense.emplace_back(0.0, 0.0);
        continue;
      }
      auto dn = [&] { return dense_sdpa(q, k, v, dense[bi]); };
      const double f = timer.median_ms(dn);
      const double fb = timer.median_ms([&] { forward_backward(dn, {q, k, v}, grad_out); });
      line.dense.emplace_back(f, fb);
      if (bi == 0) line.dense_mem = peak_bytes(device, [&] { forward_backward(dn, {q, k, v}, grad_out); });
    }
    if (a.stages) line.stages = time_stages(timer, q.detach(), k.detach(), v.detach(), grad_out, o);

    Json row = {{"N", n},
                {"top_k", o.top_k},
                {"S", line.s},
                {"lighthouse_fwd_ms", line.lh_f},
                {"lighthouse_fwd_bwd_ms", line.lh_fb},
                {"sdpa_on_S_fwd_ms", line.floor_f},
                {"sdpa_on_S_fwd_bwd_ms", line.floor_fb},
                {"lighthouse_over_floor_fwd", line.lh_f / line.floor_f},
                {"lighthouse_over_floor_fwd_bwd", line.lh_fb / line.floor_fb}};
    for (size_t bi = 0; bi < dense.size(); ++bi) {
      const std::string name = "dense_" + to_string(dense[bi]);
      if (line.dense[bi].first > 0) {
        row[name + "_fwd_ms"] = line.dense[bi].first;
        row[name + "_fwd_bwd_ms"] = line.dense[bi].second;
        row["speedup_vs_" + name + "_fwd"] = line.dense[bi].first / line.lh_f;
        row["speedup_vs_" + name + "_fwd_bwd"] = line.dense[bi].second / line.lh_fb;
      }
    }
    if (device.is_cuda()) {
      row["lighthouse_peak_bytes"] = line.lh_mem;
      row["dense_peak_bytes"] = line.dense_mem;
    }
    if (a.stages) {
      Json st = Json::object();
      for (const auto& [name, ms] : line.stages.ms) st[name + "_ms"] = ms;
      row["stages"] = st;
    }
    rows.push_back(row);
    lines.push_back(line);
    print_row(line, device);
    if (!a.json_path.empty()) write_json(a, device, backend_used, validation, rows);
    std::fprintf(stderr, "[bench] N=%lld: Lighthouse fwd+bwd %s ms, SDPA on S %s ms\n", static_cast<long long>(n),
                 fmt_ms(line.lh_fb).c_str(), fmt_ms(line.floor_fb).c_str());
  }

  if (a.stages) {
    std::printf("\nLighthouse stages (ms, each timed alone)\n%9s", "N");
    for (const auto& [name, ms] : lines.front().stages.ms) std::printf(" %11s", name.c_str());
    std::printf("\n");
    for (const Line& l : lines) {
      std::printf("%9lld", static_cast<long long>(l.n));
      for (const auto& [name, ms] : l.stages.ms) std::printf(" %11s", fmt_ms(ms).c_str());
      std::printf("\n");
    }
  }
  std::fflush(stdout);

  if (!a.json_path.empty()) std::printf("wrote %s\n", a.json_path.c_str());
  return 0;
}

// `--cp W`: the same options, for dist::run_cp_bench.
int run_cp(const BenchArgs& a) {
  dist::CpBenchArgs c;
  c.cp = a.cp;
  c.device = a.device.rfind("cuda", 0) == 0 ? "cuda" : "cpu";
  c.seq_lens = a.seq_lens;
  c.top_ks = a.top_ks;
  c.batch = a.batch;
  c.heads = a.heads;
  c.kv_heads = a.kv_heads;
  c.head_dim = a.head_dim;
  c.levels = a.levels;
  c.pool = a.pool;
  c.dtype = a.dtype;
  c.backend = a.backend;
  c.dense = !a.no_dense;
  c.dense_max_n = a.dense_max_n;
  c.warmup = a.warmup;
  c.repeats = a.repeats;
  c.json_path = a.json_path;
  return dist::run_cp_bench(c);
}

int bench_main(int argc, char** argv) {
  BenchArgs a;
  CLI::App app{"Lighthouse attention vs dense causal SDPA, forward and forward+backward", "lighthouse bench"};
  app.add_option("--device", a.device, "cpu or cuda (default: cuda when available)");
  app.add_option("--seq-lens", a.seq_lens, "sequence lengths N")->delimiter(',');
  app.add_option("--top-k", a.top_ks, "top_k, one value or one per N")->delimiter(',');
  app.add_option("--batch", a.batch, "batch B")->capture_default_str();
  app.add_option("--heads", a.heads, "query heads H (default: 4 on CPU, 8 on CUDA)");
  app.add_option("--kv-heads", a.kv_heads, "key/value heads (default: H)");
  app.add_option("--head-dim", a.head_dim, "head dim d (default: 64 on CPU, 128 on CUDA)");
  app.add_option("--levels", a.levels, "levels L")->capture_default_str();
  app.add_option("--pool", a.pool, "pooling factor p")->capture_default_str();
  app.add_option("--dtype", a.dtype, "float32 | bfloat16 | float16 (default: float32 on CPU, bfloat16 on CUDA)");
  app.add_option("--scorer", a.scorer, "norm | dilated")->capture_default_str();
  app.add_option("--backend", a.backend, "inner SDPA backend: auto | cudnn | flash | efficient | math")
      ->capture_default_str();
  app.add_option("--dense", a.dense_backends, "dense baselines (default: flash (the CPU flash kernel) on CPU; cudnn,flash on CUDA)")
      ->delimiter(',');
  app.add_flag("--no-dense", a.no_dense, "skip the dense baselines");
  app.add_option("--dense-max-n", a.dense_max_n, "skip dense baselines above this N (0: never)");
  app.add_option("--warmup", a.warmup, "warm-up runs per measurement")->capture_default_str();
  app.add_option("--repeats", a.repeats, "timed runs per measurement (default: 3 on CPU, 10 on CUDA)");
  app.add_flag("--stages", a.stages, "also time each stage alone");
  app.add_option("--json", a.json_path, "write all numbers to this JSON file");
  app.add_option("--cp", a.cp,
                 "context parallelism over this many ranks, under torchrun: the CP op vs the one-device op "
                 "(torchrun --nproc-per-node W --no-python ./build/lighthouse bench op --cp W)");
  app.allow_extras(false);
  // `lighthouse bench op ...` is the same as `lighthouse bench ...`.
  std::vector<char*> args(argv, argv + argc);
  if (args.size() > 1 && std::string(args[1]) == "op") args.erase(args.begin() + 1);
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (a.device.empty()) a.device = at::hasCUDA() ? "cuda" : "cpu";
  const bool cuda = a.device.rfind("cuda", 0) == 0;
  TORCH_CHECK(cuda || a.device == "cpu", "--device must be cpu or cuda, got '", a.device, "'");
  TORCH_CHECK(!cuda || at::hasCUDA(), "--device cuda: no CUDA device available (or this build has no CUDA)");
  if (a.heads == 0) a.heads = cuda ? 8 : 4;
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  if (a.head_dim == 0) a.head_dim = cuda ? 128 : 64;
  if (a.dtype.empty()) a.dtype = cuda ? "bfloat16" : "float32";
  if (a.repeats == 0) a.repeats = cuda ? 10 : 3;
  if (a.dense_backends.empty()) a.dense_backends = cuda ? std::vector<std::string>{"cudnn", "flash"}
                                                        : std::vector<std::string>{"flash"};
  if (a.seq_lens.empty()) {
    if (cuda) {
      a.seq_lens = {32768, 65536, 98304, 131072, 262144, 524288, 1048576};
      if (a.top_ks.empty()) a.top_ks = {2048, 4096, 1536, 4096, 4096, 4096, 4096};
    } else {
      a.seq_lens = {8192, 16384, 32768};
    }
  }
  if (a.top_ks.empty()) a.top_ks = {512};
  TORCH_CHECK(a.top_ks.size() == 1 || a.top_ks.size() == a.seq_lens.size(),
              "--top-k takes one value or one per sequence length (", a.seq_lens.size(), "), got ", a.top_ks.size());
  TORCH_CHECK(a.repeats >= 1 && a.warmup >= 0, "--repeats must be >= 1 and --warmup >= 0");
  if (a.cp > 0) return run_cp(a);
  return run_bench(a);
}

}  // namespace

LIGHTHOUSE_COMMAND(bench, "op benchmark: Lighthouse vs dense causal SDPA (CPU or CUDA)", bench_main);

}  // namespace lighthouse::cli
