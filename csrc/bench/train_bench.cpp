/*
 * The training-step benchmark (train_bench.h).
 */
#include "bench/train_bench.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <ATen/record_function.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "data/tokenizer.h"
#include "device/device.h"
#include "model/llama.h"
#include "ops/checks.h"
#include "train/activation_checkpoint.h"
#include "train/optim.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace lighthouse::bench {
namespace {

// Marks the phases of a step: CUDA events on the current stream, or the
// steady clock after a synchronisation on CPU.
class PhaseClock {
 public:
  explicit PhaseClock(const at::Device& device) : device_(device) {}

  void mark() {
#ifdef LIGHTHOUSE_WITH_CUDA
    if (device_.is_cuda()) {
      events_.push_back(std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault));
      events_.back()->record();
      return;
    }
#endif
    device::synchronize(device_);
    times_.push_back(std::chrono::steady_clock::now());
  }

  // Milliseconds between marks i and i + 1 (after all work is done).
  std::vector<double> intervals() {
    std::vector<double> out;
#ifdef LIGHTHOUSE_WITH_CUDA
    if (device_.is_cuda()) {
      if (!events_.empty()) events_.back()->synchronize();
      for (size_t i = 0; i + 1 < events_.size(); ++i) out.push_back(events_[i]->elapsed_time(*events_[i + 1]));
      return out;
    }
#endif
    for (size_t i = 0; i + 1 < times_.size(); ++i) {
      out.push_back(std::chrono::duration<double, std::milli>(times_[i + 1] - times_[i]).count());
    }
    return out;
  }

 private:
  at::Device device_;
#ifdef LIGHTHOUSE_WITH_CUDA
  std::vector<std::unique_ptr<at::cuda::CUDAEvent>> events_;
#endif
  std::vector<std::chrono::steady_clock::time_point> times_;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void release_cached_memory(const at::Device& device) {
#ifdef LIGHTHOUSE_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#else
  (void)device;
#endif
}

std::string layer_map(const std::vector<bool>& lighthouse) {
  std::string s;
  for (const bool lh : lighthouse) s += lh ? 'L' : 'D';
  return s;
}

}  // namespace

std::string method_note() {
  return "model FLOPs per step = matmul 6*T*(layers*(D(H+2H_kv)d + HdD + 3DF) + VD) + attention "
         "sum over layers of 6*B*H*n^2*d (causal; n = N dense, n = S Lighthouse); T = B*N tokens; "
         "no recompute counted; MFU = FLOPs / step time / peak";
}

TrainBench::TrainBench(TrainBenchConfig config) : c_(std::move(config)), device_(c_.device) {
  LH_CHECK(c_.warmup >= 0 && c_.steps >= 1, "bench train: --warmup must be >= 0 and --steps >= 1, got ",
           static_cast<int64_t>(c_.warmup), " and ", static_cast<int64_t>(c_.steps));
  // "cuda" alone has no index; the memory statistics need one.
  if (device_.is_cuda() && !device_.has_index()) device_ = at::Device(at::kCUDA, 0);
  c_.config.train.grad_accum = 1;
  c_.config.train.device = c_.device;
  config::validate(c_.config);
  if (c_.peak_flops > 0) {
    peak_flops_ = c_.peak_flops;
    peak_source_ = "given (--peak-tflops)";
  } else if (device_.is_cuda()) {
    peak_flops_ = datasheet_peak_flops(device_name(device_));
    peak_source_ = peak_flops_ > 0 ? "datasheet dense bf16 of " + device_name(device_)
                                   : "unknown GPU " + device_name(device_) + ": no MFU (give --peak-tflops)";
  } else {
    peak_source_ = "CPU: no MFU";
  }
}

TrainBenchRun TrainBench::run(const std::string& attention, bool fused) {
  LH_CHECK(attention == "lighthouse" || attention == "dense",
           "bench train: attention must be lighthouse or dense, got '", attention, "'");
  config::Config cfg = c_.config;
  if (attention == "dense") cfg.model.attention = "dense";
  cfg.train.fused = fused;
  TrainBenchRun r;
  r.attention = attention;
  r.fused = fused;
  const at::ScalarType dtype = cfg.train.precision == "fp32" || (cfg.train.precision == "auto" && !device_.is_cuda())
                                   ? at::kFloat
                                   : at::kBFloat16;
  at::manual_seed(static_cast<uint64_t>(cfg.train.seed));
  try {
    model::Llama model(cfg.model, model::attention_plan(cfg.model, cfg.lighthouse), device_,
                       static_cast<uint64_t>(cfg.train.seed));
    model.set_compute_dtype(dtype);
    model.set_fused(fused);
    r.checkpointing = train::configure_checkpointing(model, cfg, device_);
    std::vector<bool> lh_layers;
    for (const auto kind : model.layer_kinds()) lh_layers.push_back(kind == model::AttentionKind::kLighthouse);
    r.layers = layer_map(lh_layers);
    train::AdamW opt(model.named_parameters(), cfg.optim, fused ? train::AdamWImpl::kAuto : train::AdamWImpl::kUnfused);
    r.fused_optimizer = opt.fused();
    const std::vector<at::Tensor> params = model.parameters();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(cfg.train.seed) + 1);
    const at::Tensor tokens =
        at::randint(0, 256, {cfg.train.batch, cfg.train.seq_len + 1}, gen, at::TensorOptions().dtype(at::kLong))
            .to(device_);
    r.tokens = cfg.train.batch * cfg.train.seq_len;

    const auto step = [&](PhaseClock* clock) {
      at::AutoGradMode grad_mode(true);
      for (const auto& p : params) p.mutable_grad() = at::Tensor();
      if (clock) clock->mark();
      const at::Tensor loss = model::mean_loss(model.next_token_loss(tokens, data::kPad));
      if (clock) clock->mark();
      loss.backward();
      if (clock) clock->mark();
      {
        RECORD_USER_SCOPE("lh::optimizer");
        train::clip_grad_norm(params, cfg.optim.grad_clip);
        opt.step(cfg.optim.lr);
      }
      if (clock) clock->mark();
      r.losses.push_back(loss.item<double>());
    };
    for (int i = 0; i < c_.warmup; ++i) step(nullptr);
    device::synchronize(device_);
    device::reset_peak_memory(device_);
    std::vector<double> fwd, bwd, optim;
    for (int i = 0; i < c_.steps; ++i) {
      PhaseClock clock(device_);
      step(&clock);
      const std::vector<double> t = clock.intervals();
      fwd.push_back(t[0]);
      bwd.push_back(t[1]);
      optim.push_back(t[2]);
    }
    r.peak_bytes = device_.is_cuda() ? device::peak_memory_bytes(device_) : 0;
    r.forward_ms = median(fwd);
    r.backward_ms = median(bwd);
    r.optimizer_ms = median(optim);
    r.step_ms = r.forward_ms + r.backward_ms + r.optimizer_ms;
    r.tokens_per_s = static_cast<double>(r.tokens) / (r.step_ms / 1000.0);
    r.flops = step_flops(cfg, lh_layers);
    r.achieved_flops = r.flops.total() / (r.step_ms / 1000.0);
    r.mfu = peak_flops_ > 0 ? r.achieved_flops / peak_flops_ : 0;
    if (c_.profile) {
      r.breakdown = profile_breakdown(
          [&] {
            step(nullptr);
            device::synchronize(device_);
          },
          device_.is_cuda());
      r.profiled = true;
    }
  } catch (...) {
    // The model and its activations are gone: free the cache for the next
    // configuration (after an out-of-memory error, say).
    release_cached_memory(device_);
    throw;
  }
  release_cached_memory(device_);
  return r;
}

Json TrainBench::run_json(const TrainBenchRun& r) const {
  Json j;
  j["attention"] = r.attention;
  j["fused"] = r.fused;
  j["layers"] = r.layers;
  j["checkpointing"] = r.checkpointing;
  j["fused_optimizer"] = r.fused_optimizer;
  j["tokens_per_step"] = r.tokens;
  j["forward_ms"] = r.forward_ms;
  j["backward_ms"] = r.backward_ms;
  j["optimizer_ms"] = r.optimizer_ms;
  j["step_ms"] = r.step_ms;
  j["tokens_per_s"] = r.tokens_per_s;
  j["model_flops_per_step"] = {
      {"matmul", r.flops.matmul}, {"attention", r.flops.attention}, {"total", r.flops.total()}};
  j["achieved_tflops"] = r.achieved_flops / 1e12;
  j["mfu"] = r.mfu;
  j["peak_memory_bytes"] = r.peak_bytes;
  j["losses"] = r.losses;
  if (r.profiled) {
    Json b;
    for (int c = 0; c < kCategories; ++c) b[category_name(static_cast<Category>(c))] = r.breakdown.ms[c];
    j["breakdown_ms"] = b;
    j["breakdown_total_ms"] = r.breakdown.total_ms;
    j["breakdown_time"] = r.breakdown.device_time ? "GPU kernel time" : "CPU self time";
    Json top = Json::array();
    for (const auto& t : r.breakdown.top) {
      top.push_back({{"name", t.name}, {"category", category_name(t.category)}, {"ms", t.ms}});
    }
    j["top"] = top;
  }
  return j;
}

Json TrainBench::document(const Json& runs) const {
  Json j;
  j["benchmark"] = "lighthouse bench train";
  j["date"] = utc_timestamp();
  j["device"] = device_.str();
  j["device_name"] = device_name(device_);
  j["preset"] = c_.preset;
  j["seq_len"] = c_.config.train.seq_len;
  j["batch"] = c_.config.train.batch;
  j["precision"] = c_.config.train.precision;
  j["warmup"] = c_.warmup;
  j["steps"] = c_.steps;
  j["peak_flops"] = peak_flops_;
  j["peak_source"] = peak_source_;
  j["method"] = method_note();
  j["runs"] = runs;
  return j;
}

}  // namespace lighthouse::bench
