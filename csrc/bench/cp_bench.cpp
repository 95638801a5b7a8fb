#include "bench/cp_bench.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include "device/device.h"
#include "lighthouse/lighthouse_cp.h"
#include "ops/checks.h"

namespace lighthouse::bench {
namespace {

at::Device rank_device(const OpBenchConfig& c) {
  const dist::Env env = dist::read_env();
  LH_CHECK(env.distributed, "bench op --cp runs under torchrun: torchrun --nproc-per-node W --no-python ",
           "./build/lighthouse bench op --cp W ...");
  return c.device.rfind("cuda", 0) == 0 ? dist::local_device(env, c10::DeviceType::CUDA) : at::Device(at::kCPU);
}

dist::World start(const at::Device& device, int64_t cp, std::chrono::milliseconds timeout) {
  const dist::Env env = dist::read_env();
  dist::InitOptions o;
  o.cp = cp;
  o.dp = std::max<int64_t>(1, env.world_size / cp);  // a mismatch: init names the valid choices
  o.timeout = timeout;
  return dist::init(device, o);
}

void forward_backward(const std::function<at::Tensor()>& forward, const std::vector<at::Tensor>& inputs,
                      const at::Tensor& grad_out) {
  const at::Tensor out = forward();
  torch::autograd::grad({out}, inputs, {grad_out});
}

struct Inputs {
  at::Tensor q, k, v, go;
};

// The whole sequence, the same on every rank (seeded by N), leaves requiring grad.
Inputs whole_inputs(const OpBenchConfig& c, int64_t n, at::ScalarType dtype, const at::Device& device) {
  at::manual_seed(1234 + n);
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  return {at::randn({c.batch, n, c.heads, c.head_dim}, opts).requires_grad_(),
          at::randn({c.batch, n, c.kv_heads, c.head_dim}, opts).requires_grad_(),
          at::randn({c.batch, n, c.kv_heads, c.head_dim}, opts).requires_grad_(),
          at::randn({c.batch, n, c.heads, c.head_dim}, opts)};
}

// This rank's head-tail chunks of `in`.
Inputs shard_inputs(const Inputs& in, const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
  auto sh = [&](const at::Tensor& x) { return cp::shard(x.detach(), group->getRank(), group->getSize()); };
  return {sh(in.q).requires_grad_(), sh(in.k).requires_grad_(), sh(in.v).requires_grad_(), sh(in.go)};
}

}  // namespace

CpBench::CpBench(OpBenchConfig config, int64_t cp, std::chrono::milliseconds timeout)
    : c_(std::move(config)),
      world_(start(rank_device(c_), cp, timeout)),
      device_(rank_device(c_)),
      dtype_(parse_dtype(c_.dtype)),
      timer_(device_, c_.warmup, 1) {
  LH_CHECK(c_.scorer == "norm", "bench op --cp: context parallelism supports the norm scorer only, got '", c_.scorer,
           "'");
  options_.levels = c_.levels;
  options_.pool = c_.pool;
  options_.backend = parse_backend(c_.backend);
  options_.top_k = c_.top_ks.front();
  const int64_t n = min_sequence_length(options_);
  cp::check_geometry(n, options_, world_.cp->getSize());
  const Inputs in = whole_inputs(c_, n, dtype_, device_);
  const Inputs loc = shard_inputs(in, world_.cp);
  at::NoGradGuard no_grad;
  const int64_t r = world_.cp->getRank(), W = world_.cp->getSize();
  const bool same = cp::select(loc.q, loc.k, options_, world_.cp).equal(cp::shard(select(in.q, in.k, options_), r, W, 2));
  LH_CHECK(same, "bench op --cp validation: entries differ from the one-device op's on rank ", world_.rank());
  const at::Tensor ref = cp::shard(attention(in.q, in.k, in.v, options_), r, W).to(at::kFloat);
  const at::Tensor got = cp::attention(loc.q, loc.k, loc.v, options_, world_.cp).to(at::kFloat);
  const double err = (got - ref).norm().item<double>() / ref.norm().item<double>();
  const double bound = (dtype_ == at::kFloat || dtype_ == at::kDouble) ? 1e-4 : 2e-2;
  LH_CHECK(err < bound, "bench op --cp validation: output differs from the one-device op's on rank ", world_.rank(),
           ", relative error ", err);
  char buf[200];
  std::snprintf(buf, sizeof buf, "validated at N=%lld: entries identical, relative error %.2e vs the one-device op",
                static_cast<long long>(n), err);
  validation_ = buf;
}

double CpBench::median_ms(const std::function<void()>& fn) const {
  for (int i = 0; i < c_.warmup; ++i) fn();
  std::vector<double> ms;
  for (int i = 0; i < c_.repeats; ++i) {
    device::synchronize(device_);
    dist::barrier(world_.world, "bench: barrier before a timed run");
    const double mine = timer_.once_ms(fn);
    double slowest = 0;
    for (const at::Tensor& t : dist::all_gather(world_.world, at::tensor({mine}, at::kDouble).to(device_),
                                                "bench: the ranks' times")) {
      slowest = std::max(slowest, t.item<double>());
    }
    ms.push_back(slowest);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

CpBenchRow CpBench::run(size_t i) {
  CpBenchRow row;
  row.n = c_.seq_lens[i];
  options_.top_k = c_.top_ks.size() == 1 ? c_.top_ks[0] : c_.top_ks[i];
  row.top_k = options_.top_k;
  row.s = subsequence_length(row.n, options_);
  cp::check_geometry(row.n, options_, world_.cp->getSize());
  const Inputs in = whole_inputs(c_, row.n, dtype_, device_);
  const Inputs loc = shard_inputs(in, world_.cp);
  auto no_grad = [](const std::function<at::Tensor()>& f) {
    return [f] {
      at::NoGradGuard guard;
      f();
    };
  };
  const std::function<at::Tensor()> lh = [&] { return cp::attention(loc.q, loc.k, loc.v, options_, world_.cp); };
  row.cp_fwd = median_ms(no_grad(lh));
  row.cp_fwd_bwd = median_ms([&] { forward_backward(lh, {loc.q, loc.k, loc.v}, loc.go); });
  const std::function<at::Tensor()> one = [&] { return attention(in.q, in.k, in.v, options_); };
  row.one_fwd = median_ms(no_grad(one));
  row.one_fwd_bwd = median_ms([&] { forward_backward(one, {in.q, in.k, in.v}, in.go); });
  if (!c_.dense_backends.empty() && (c_.dense_max_n <= 0 || row.n <= c_.dense_max_n)) {
    const SdpaBackend backend = parse_backend(c_.dense_backends.front());
    const std::function<at::Tensor()> dn = [&] { return cp::dense_attention(loc.q, loc.k, loc.v, world_.cp, backend); };
    row.dense_fwd = median_ms(no_grad(dn));
    row.dense_fwd_bwd = median_ms([&] { forward_backward(dn, {loc.q, loc.k, loc.v}, loc.go); });
  }
  return row;
}

Json CpBench::row_json(const CpBenchRow& r) const {
  Json j = {{"N", r.n},
            {"top_k", r.top_k},
            {"S", r.s},
            {"cp_lighthouse_fwd_ms", r.cp_fwd},
            {"cp_lighthouse_fwd_bwd_ms", r.cp_fwd_bwd},
            {"one_device_lighthouse_fwd_ms", r.one_fwd},
            {"one_device_lighthouse_fwd_bwd_ms", r.one_fwd_bwd}};
  if (r.dense_fwd > 0) {
    j["cp_dense_" + c_.dense_backends.front() + "_fwd_ms"] = r.dense_fwd;
    j["cp_dense_" + c_.dense_backends.front() + "_fwd_bwd_ms"] = r.dense_fwd_bwd;
  }
  return j;
}

Json CpBench::document(const Json& rows) const {
  Json doc = {{"date", utc_timestamp()},
              {"device", device_.is_cuda() ? "cuda" : "cpu"},
              {"world_size", world_.world_size()},
              {"cp", world_.layout.cp},
              {"dp", world_.layout.dp},
              {"dtype", c_.dtype},
              {"B", c_.batch},
              {"H", c_.heads},
              {"H_kv", c_.kv_heads},
              {"d", c_.head_dim},
              {"levels", c_.levels},
              {"pool", c_.pool},
              {"inner_sdpa_backend", c_.backend},
              {"warmup", c_.warmup},
              {"repeats", c_.repeats},
              {"validation", validation_},
              {"rows", rows}};
  const std::string gpu = device_name(device_);
  if (!gpu.empty()) doc["gpu"] = gpu;
  return doc;
}

}  // namespace lighthouse::bench
