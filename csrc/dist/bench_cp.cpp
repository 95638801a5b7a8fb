#include "bench_cp.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "lighthouse/lighthouse.h"
#include "lighthouse/lighthouse_cp.h"
#include "ops/checks.h"
#include "process_group.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace lighthouse::dist {
namespace {

using Json = nlohmann::ordered_json;

at::ScalarType parse_dtype(const std::string& s) {
  if (s == "float32" || s == "fp32") return at::kFloat;
  if (s == "bfloat16" || s == "bf16") return at::kBFloat16;
  if (s == "float16" || s == "fp16") return at::kHalf;
  if (s == "float64" || s == "fp64") return at::kDouble;
  LH_CHECK(false, "--dtype must be float32, bfloat16, float16 or float64, got '", s, "'");
}

void sync(const at::Device& device) {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#endif
  (void)device;
}

// Median over runs of the slowest rank's time in ms; every run starts after
// a barrier so that the ranks start together.
class Timer {
 public:
  Timer(const World& w, const at::Device& device, int warmup, int repeats)
      : w_(w), device_(device), warmup_(warmup), repeats_(repeats) {}

  double median_ms(const std::function<void()>& fn) const {
    for (int i = 0; i < warmup_; ++i) fn();
    std::vector<double> ms;
    for (int i = 0; i < repeats_; ++i) {
      sync(device_);
      barrier(w_.world, "bench: barrier before a timed run");
      const auto t0 = std::chrono::steady_clock::now();
      fn();
      sync(device_);
      const double mine = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      double slowest = 0;
      for (const at::Tensor& t : all_gather(w_.world, at::tensor({mine}, at::kDouble).to(device_), "bench: times")) {
        slowest = std::max(slowest, t.item<double>());
      }
      ms.push_back(slowest);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  }

 private:
  const World& w_;
  at::Device device_;
  int warmup_, repeats_;
};

void forward_backward(const std::function<at::Tensor()>& forward, const std::vector<at::Tensor>& inputs,
                      const at::Tensor& grad_out) {
  const at::Tensor out = forward();
  torch::autograd::grad({out}, inputs, {grad_out});
}

struct Inputs {
  at::Tensor q, k, v, go;
};

// The whole sequence (same seed on every rank), leaves requiring grad.
Inputs whole_inputs(const CpBenchArgs& a, int64_t n, at::ScalarType dtype, const at::Device& device) {
  at::manual_seed(1234 + n);
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  return {at::randn({a.batch, n, a.heads, a.head_dim}, opts).requires_grad_(),
          at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts).requires_grad_(),
          at::randn({a.batch, n, a.kv_heads, a.head_dim}, opts).requires_grad_(),
          at::randn({a.batch, n, a.heads, a.head_dim}, opts)};
}

Inputs shard_inputs(const Inputs& in, const CpChunks& ch) {
  auto sh = [&](const at::Tensor& x, bool leaf) {
    at::Tensor y = cp::shard(x.detach(), ch.rank, ch.size);
    return leaf ? y.requires_grad_() : y;
  };
  return {sh(in.q, true), sh(in.k, true), sh(in.v, true), sh(in.go, false)};
}

// At the smallest valid N: identical entries, and the output close to the
// one-device op's (a loose bound: this guards the timing, the tests prove
// exactness). Returns a one-line summary; throws on a mismatch.
std::string validate(const CpBenchArgs& a, const World& w, const Options& o, at::ScalarType dtype,
                     const at::Device& device) {
  const CpChunks ch{w.cp->getRank(), w.cp->getSize()};
  const int64_t n = min_sequence_length(o);
  cp::check_geometry(n, o, ch.size);
  const Inputs in = whole_inputs(a, n, dtype, device);
  const Inputs loc = shard_inputs(in, ch);
  at::NoGradGuard no_grad;
  const bool same = cp::select(loc.q, loc.k, o, w.cp).equal(cp::shard(select(in.q, in.k, o), ch.rank, ch.size, 2));
  LH_CHECK(same, "bench --cp validation: entries differ from the one-device op's on rank ", w.rank());
  const at::Tensor ref = cp::shard(attention(in.q, in.k, in.v, o), ch.rank, ch.size).to(at::kFloat);
  const at::Tensor got = cp::attention(loc.q, loc.k, loc.v, o, w.cp).to(at::kFloat);
  const double err = (got - ref).norm().item<double>() / ref.norm().item<double>();
  const double bound = (dtype == at::kFloat || dtype == at::kDouble) ? 1e-4 : 2e-2;
  LH_CHECK(err < bound, "bench --cp validation: output differs from the one-device op's on rank ", w.rank(),
           ", relative error ", err);
  char buf[200];
  std::snprintf(buf, sizeof buf, "validated at N=%lld: entries identical, relative error %.2e vs the one-device op",
                static_cast<long long>(n), err);
  return buf;
}

std::string fmt_ms(double ms) {
  char buf[32];
  if (!(ms > 0)) return "-";
  std::snprintf(buf, sizeof buf, ms < 10 ? "%.3f" : (ms < 1000 ? "%.2f" : "%.0f"), ms);
  return buf;
}

std::string fmt_ratio(double r) {
  char buf[32];
  if (!(r > 0)) return "-";
  std::snprintf(buf, sizeof buf, "%.2fx", r);
  return buf;
}

}  // namespace

int run_cp_bench(const CpBenchArgs& a) {
  const Env env = read_env();
  LH_CHECK(env.distributed, "bench op --cp ", a.cp, " runs under torchrun: torchrun --nproc-per-node ", a.cp,
           " --no-python ./build/lighthouse bench op --cp ", a.cp, " ...");
  const at::Device device = a.device == "cuda" ? local_device(env, c10::DeviceType::CUDA) : at::Device(at::kCPU);
  InitOptions io;
  io.cp = a.cp;
  io.dp = env.world_size % a.cp == 0 ? env.world_size / a.cp : 1;
  io.timeout = std::chrono::seconds(a.timeout_s);
  const World w = init(device, io);
  const bool main = w.rank() == 0;
  const at::ScalarType dtype = parse_dtype(a.dtype);
  const CpChunks ch{w.cp->getRank(), w.cp->getSize()};
  Options o;
  o.levels = a.levels;
  o.pool = a.pool;
  o.backend = parse_backend(a.backend);
  o.top_k = a.top_ks.front();
  const Timer timer(w, device, a.warmup, a.repeats);

  const std::string validation = validate(a, w, o, dtype, device);
  if (main) {
    std::printf("%s\n", validation.c_str());
    std::printf(
        "\nLighthouse under context parallelism on %s x %lld (cp=%lld, dp=%lld): %s, B=%lld H=%lld H_kv=%lld "
        "d=%lld, L=%lld p=%lld, inner SDPA %s; median of %d runs of the slowest rank after %d warm-up\n",
        device.is_cuda() ? "cuda" : "cpu", static_cast<long long>(w.world_size()), static_cast<long long>(w.layout.cp),
        static_cast<long long>(w.layout.dp), a.dtype.c_str(), static_cast<long long>(a.batch),
        static_cast<long long>(a.heads), static_cast<long long>(a.kv_heads), static_cast<long long>(a.head_dim),
        static_cast<long long>(a.levels), static_cast<long long>(a.pool), a.backend.c_str(), a.repeats, a.warmup);
    std::printf("%9s %6s %8s | %10s %10s | %10s %10s | %8s %8s | %10s %10s\n", "N", "top_k", "S", "CP LH fwd",
                "CP LH f+b", "1-dev fwd", "1-dev f+b", "speedup", "speedup", "CP dn fwd", "CP dn f+b");
    std::printf("%9s %6s %8s | %10s %10s | %10s %10s | %8s %8s | %10s %10s\n", "", "", "", "ms", "ms", "ms", "ms",
                "fwd", "f+b", "ms", "ms");
    std::fflush(stdout);
  }
  Json rows = Json::array();
  for (size_t i = 0; i < a.seq_lens.size(); ++i) {
    const int64_t n = a.seq_lens[i];
    o.top_k = a.top_ks.size() == 1 ? a.top_ks[0] : a.top_ks[i];
    cp::check_geometry(n, o, ch.size);
    const Inputs in = whole_inputs(a, n, dtype, device);
    const Inputs loc = shard_inputs(in, ch);
    auto lh = [&] { return cp::attention(loc.q, loc.k, loc.v, o, w.cp); };
    const double cp_f = timer.median_ms([&] {
      at::NoGradGuard no_grad;
      lh();
    });
    const double cp_fb = timer.median_ms([&] { forward_backward(lh, {loc.q, loc.k, loc.v}, loc.go); });
    double one_f = 0, one_fb = 0, dn_f = 0, dn_fb = 0;
    if (a.one_device) {
      auto one = [&] { return attention(in.q, in.k, in.v, o); };
      one_f = timer.median_ms([&] {
        at::NoGradGuard no_grad;
        one();
      });
      one_fb = timer.median_ms([&] { forward_backward(one, {in.q, in.k, in.v}, in.go); });
    }
    if (a.dense && (a.dense_max_n <= 0 || n <= a.dense_max_n)) {
      auto dn = [&] { return cp::dense_attention(loc.q, loc.k, loc.v, w.cp, o.backend); };
      dn_f = timer.median_ms([&] {
        at::NoGradGuard no_grad;
        dn();
      });
      dn_fb = timer.median_ms([&] { forward_backward(dn, {loc.q, loc.k, loc.v}, loc.go); });
    }
    const int64_t s = subsequence_length(n, o);
    if (main) {
      std::printf("%9lld %6lld %8lld | %10s %10s | %10s %10s | %8s %8s | %10s %10s\n", static_cast<long long>(n),
                  static_cast<long long>(o.top_k), static_cast<long long>(s), fmt_ms(cp_f).c_str(),
                  fmt_ms(cp_fb).c_str(), fmt_ms(one_f).c_str(), fmt_ms(one_fb).c_str(), fmt_ratio(one_f / cp_f).c_str(),
                  fmt_ratio(one_fb / cp_fb).c_str(), fmt_ms(dn_f).c_str(), fmt_ms(dn_fb).c_str());
      std::fflush(stdout);
    }
    Json row = {
        {"N", n}, {"top_k", o.top_k}, {"S", s}, {"cp_lighthouse_fwd_ms", cp_f}, {"cp_lighthouse_fwd_bwd_ms", cp_fb}};
    if (one_f > 0) {
      row["one_device_lighthouse_fwd_ms"] = one_f;
      row["one_device_lighthouse_fwd_bwd_ms"] = one_fb;
    }
    if (dn_f > 0) {
      row["cp_dense_fwd_ms"] = dn_f;
      row["cp_dense_fwd_bwd_ms"] = dn_fb;
    }
    rows.push_back(row);
  }
  if (main && !a.json_path.empty()) {
    char date[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    const Json doc = {{"date", date},
                      {"device", device.is_cuda() ? "cuda" : "cpu"},
                      {"world", w.world_size()},
                      {"cp", w.layout.cp},
                      {"dp", w.layout.dp},
                      {"dtype", a.dtype},
                      {"B", a.batch},
                      {"H", a.heads},
                      {"H_kv", a.kv_heads},
                      {"d", a.head_dim},
                      {"levels", a.levels},
                      {"pool", a.pool},
                      {"backend", a.backend},
                      {"validation", validation},
                      {"rows", rows}};
    std::ofstream(a.json_path) << doc.dump(2) << "\n";
    std::printf("wrote %s\n", a.json_path.c_str());
  }
  barrier(w.world, "bench: final barrier");
  return 0;
}

}  // namespace lighthouse::dist
