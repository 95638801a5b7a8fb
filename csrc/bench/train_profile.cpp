/*
 * The profiler breakdown (train_profile.h): event collection, the enclosing
 * chains, and the classification table.
 */
#include "bench/train_profile.h"

#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_kineto.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <unordered_map>

namespace lighthouse::bench {

const char* category_name(Category c) {
  static const char* const kNames[kCategories] = {
      "matmul",    "attention", "lighthouse_stages", "normalisation", "rope", "activation", "loss",
      "optimizer", "copies",    "recompute",         "other"};
  return kNames[static_cast<int>(c)];
}

namespace {

struct Rule {
  Category category;
  std::vector<const char*> substrings;  // any of them in the name
};

// In order; the first rule with a matching substring wins for a name.
const std::vector<Rule>& rules() {
  static const std::vector<Rule> kRules = {
      {Category::kAttention,
       {"flash", "fmha", "sdpa", "scaled_dot_product", "efficient_attention", "cudnn_attention", "FlashAttention",
        "CudnnAttention", "EfficientAttention"}},
      {Category::kNorm, {"rms_norm", "RmsNorm", "NormQkv", "AddNormGateUp"}},
      {Category::kRope, {"rope_kernel", "RopeFunction", "RopeOneFunction"}},
      {Category::kActivation, {"swiglu", "Swiglu", "SwigluDown"}},
      {Category::kLoss,
       {"cross_entropy", "CrossEntropy", "ordered_sum", "nll_loss", "log_softmax", "NllLoss", "LogSoftmax"}},
      {Category::kLighthouse, {"lighthouse::", "GatherFunction", "ScatterFunction"}},
      {Category::kMatmul,
       {"gemm", "Gemm", "GEMM", "cutlass", "cublas", "xmma", "nvjet", "aten::mm", "aten::addmm", "aten::bmm",
        "aten::baddbmm", "aten::_scaled_mm", "MmBackward", "AddmmBackward", "BmmBackward"}},
      {Category::kOptimizer, {"adam", "Adam", "multi_tensor", "foreach", "lh::optimizer"}},
      {Category::kCopies,
       {"Memcpy", "Memset", "memcpy", "memset", "copy_kernel", "CatArray", "aten::copy_", "aten::_to_copy", "aten::to",
        "aten::contiguous", "aten::clone", "aten::cat", "ToCopyBackward", "CatBackward", "CloneBackward"}},
      {Category::kNorm, {"lh::norm"}},
      {Category::kRope, {"lh::rope"}},
      {Category::kActivation, {"lh::activation"}},
      {Category::kLoss, {"lh::loss"}},
      {Category::kAttention, {"lh::attention"}},
  };
  return kRules;
}

bool match(const std::string& name, Category* out) {
  for (const Rule& r : rules()) {
    for (const char* s : r.substrings) {
      // aten:: patterns name whole ops: "aten::mm" must not match "aten::mm_foo".
      const std::string pat(s);
      const size_t at = name.find(pat);
      if (at == std::string::npos) continue;
      if (pat.rfind("aten::", 0) == 0) {
        const size_t end = at + pat.size();
        if (end < name.size() && (std::isalnum(static_cast<unsigned char>(name[end])) || name[end] == '_')) continue;
      }
      *out = r.category;
      return true;
    }
  }
  return false;
}

bool is_recompute(const std::vector<std::string>& names) {
  for (const std::string& n : names) {
    if (n == "lh::recompute") return true;
  }
  return false;
}

// Kineto activity types (libkineto::ActivityType) of the CPU-side events:
// torch ops and scopes, and the CUDA runtime/driver calls, whose correlation
// ids are separate numberings.
constexpr uint8_t kCpuOp = 0, kUserAnnotation = 1, kCudaRuntime = 7, kCudaDriver = 8;

struct Node {
  const torch::autograd::profiler::KinetoEvent* event;
  int64_t parent = -1;
  uint64_t start = 0, end = 0;
  double child_ns = 0;
};

}  // namespace

Category classify(const std::vector<std::string>& names, const std::vector<std::string>& forward_names) {
  if (is_recompute(names) || is_recompute(forward_names)) return Category::kRecompute;
  Category c;
  for (const std::string& n : names) {
    if (match(n, &c)) return c;
  }
  for (const std::string& n : forward_names) {
    if (match(n, &c)) return c;
  }
  return Category::kOther;
}

Breakdown profile_breakdown(const std::function<void()>& fn, bool cuda) {
  namespace prof = torch::autograd::profiler;
  using torch::profiler::impl::ActivityType;
  using torch::profiler::impl::ProfilerConfig;
  using torch::profiler::impl::ProfilerState;
  const ProfilerConfig config(ProfilerState::KINETO);
  std::set<ActivityType> activities = {ActivityType::CPU};
  if (cuda) activities.insert(ActivityType::CUDA);
  prof::prepareProfiler(config, activities);
  prof::enableProfiler(config, activities);
  try {
    fn();
  } catch (...) {
    prof::disableProfiler();
    throw;
  }
  const std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  const std::vector<prof::KinetoEvent>& events = result->events();

  // CPU events per thread, nested by time: parents and self times.
  std::vector<Node> nodes;
  std::unordered_map<uint64_t, std::vector<int64_t>> by_thread;
  std::unordered_map<uint64_t, int64_t> op_by_correlation, runtime_by_correlation;  // correlation id -> node
  for (const auto& e : events) {
    if (e.deviceType() != c10::DeviceType::CPU) continue;
    Node n;
    n.event = &e;
    n.start = e.startNs();
    n.end = e.startNs() + e.durationNs();
    by_thread[e.startThreadId()].push_back(static_cast<int64_t>(nodes.size()));
    nodes.push_back(n);
  }
  for (auto& [thread, ids] : by_thread) {
    std::sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) {
      return nodes[a].start != nodes[b].start ? nodes[a].start < nodes[b].start : nodes[a].end > nodes[b].end;
    });
    std::vector<int64_t> stack;
    for (const int64_t id : ids) {
      while (!stack.empty() && nodes[stack.back()].end <= nodes[id].start) stack.pop_back();
      if (!stack.empty() && nodes[stack.back()].end >= nodes[id].end) {
        nodes[id].parent = stack.back();
        nodes[stack.back()].child_ns += static_cast<double>(nodes[id].end - nodes[id].start);
      }
      stack.push_back(id);
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const uint8_t kind = nodes[i].event->activityType();
    if (kind == kCpuOp || kind == kUserAnnotation) {
      op_by_correlation[nodes[i].event->correlationId()] = static_cast<int64_t>(i);
    } else if (kind == kCudaRuntime || kind == kCudaDriver) {
      runtime_by_correlation[nodes[i].event->correlationId()] = static_cast<int64_t>(i);
    }
  }
  const auto chain = [&](int64_t id) {
    std::vector<std::string> out;
    for (; id >= 0; id = nodes[id].parent) out.push_back(nodes[id].event->name());
    return out;
  };
  // Forward ops by (thread, sequence number): the outermost of each.
  std::map<std::pair<uint64_t, int64_t>, int64_t> forward_op;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& e = *nodes[i].event;
    if (e.sequenceNr() < 0 || e.name().rfind("autograd::", 0) == 0 ||
        e.scope() == static_cast<uint8_t>(at::RecordScope::BACKWARD_FUNCTION)) {
      continue;
    }
    const auto key = std::make_pair(e.startThreadId(), e.sequenceNr());
    const auto it = forward_op.find(key);
    if (it == forward_op.end() || nodes[it->second].start > nodes[i].start) forward_op[key] = static_cast<int64_t>(i);
  }
  const auto forward_chain = [&](int64_t id) {
    for (; id >= 0; id = nodes[id].parent) {
      const auto& e = *nodes[id].event;
      if (e.name().rfind("autograd::engine::evaluate_function", 0) != 0 || e.sequenceNr() < 0) continue;
      const auto it = forward_op.find({e.fwdThreadId(), e.sequenceNr()});
      if (it != forward_op.end()) return chain(it->second);
    }
    return std::vector<std::string>();
  };

  Breakdown out;
  out.device_time = cuda;
  std::map<std::string, std::pair<Category, double>> by_name;
  const auto add = [&](const std::string& name, Category c, double ms) {
    out.ms[static_cast<int>(c)] += ms;
    out.total_ms += ms;
    ++out.items;
    auto& slot = by_name[name.substr(0, 160)];
    slot.first = c;
    slot.second += ms;
  };
  if (cuda) {
    for (const auto& e : events) {
      if (e.deviceType() != c10::DeviceType::CUDA) continue;
      // The op that launched it: linked by correlation, else the runtime
      // call with the kernel's own correlation id.
      int64_t launcher = -1;
      auto it = op_by_correlation.find(e.linkedCorrelationId());
      if (e.linkedCorrelationId() != 0 && it != op_by_correlation.end()) {
        launcher = it->second;
      } else if ((it = runtime_by_correlation.find(e.correlationId())) != runtime_by_correlation.end()) {
        launcher = it->second;
      }
      std::vector<std::string> names = {e.name()};
      std::vector<std::string> fwd;
      if (launcher >= 0) {
        const std::vector<std::string> c = chain(launcher);
        names.insert(names.end(), c.begin(), c.end());
        fwd = forward_chain(launcher);
      }
      add(e.name(), classify(names, fwd), static_cast<double>(e.durationNs()) / 1e6);
    }
  }
  // CPU self time: on CPU, and on CUDA when the profiler saw no GPU
  // activity (no CUPTI where the program runs): then device_time is false.
  if (out.items == 0) {
    out.device_time = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      const double self_ns = static_cast<double>(nodes[i].end - nodes[i].start) - nodes[i].child_ns;
      if (self_ns <= 0) continue;
      add(nodes[i].event->name(), classify(chain(static_cast<int64_t>(i)), forward_chain(static_cast<int64_t>(i))),
          self_ns / 1e6);
    }
  }
  std::vector<Breakdown::Top> top;
  for (const auto& [name, v] : by_name) top.push_back({name, v.first, v.second});
  std::sort(top.begin(), top.end(), [](const Breakdown::Top& a, const Breakdown::Top& b) { return a.ms > b.ms; });
  if (top.size() > 20) top.resize(20);
  out.top = top;
  return out;
}

}  // namespace lighthouse::bench
