/*
 * Data and context parallelism for the trainer (train_parallel.h).
 */
#include "train_parallel.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "lighthouse/lighthouse_cp.h"
#include "ops/checks.h"

namespace lighthouse::dist {
namespace {

using Group = c10::intrusive_ptr<c10d::ProcessGroup>;

// Gradient buckets of at most this many bytes (one parameter larger than
// that is a bucket of its own), filled in parameter order.
constexpr int64_t kBucketBytes = int64_t{25} << 20;

class ParallelReducer final : public train::StepReducer {
 public:
  explicit ParallelReducer(const World& w) : world_(w.world), cp_rank_(w.layout.cp_rank()), cp_(w.layout.cp) {}

  train::LocalBatch local_batch(const at::Tensor& tokens) override {
    train::LocalBatch whole = StepReducer::local_batch(tokens);
    if (cp_ == 1) return whole;
    const int64_t N = whole.inputs.size(1);
    LH_CHECK(N % (2 * cp_) == 0, "parallel.cp=", cp_, ": the sequence of ", N, " tokens must split into ", 2 * cp_,
             " equal chunks (train.seq_len a multiple of ", 2 * cp_, ")");
    return {cp::shard(whole.inputs, cp_rank_, cp_), cp::shard(whole.targets, cp_rank_, cp_),
            cp::positions(N, cp_rank_, cp_)};
  }

  int64_t total_count(int64_t local_count) override {
    at::Tensor t = at::tensor({local_count}, at::kLong);
    all_reduce_sum(world_, t, "training: all-reduce of the step's target count");
    return t.item<int64_t>();
  }

  void reduce_gradients(const std::vector<at::Tensor>& parameters) override {
    std::vector<at::Tensor> bucket;
    int64_t bytes = 0;
    for (const at::Tensor& p : parameters) {
      const at::Tensor& g = p.grad();
      if (!g.defined()) continue;  // the same parameters on every rank (same model, same plan)
      const int64_t b = g.numel() * static_cast<int64_t>(g.element_size());
      if (!bucket.empty() && (bytes + b > kBucketBytes || g.scalar_type() != bucket[0].scalar_type() ||
                              g.device() != bucket[0].device())) {
        flush(bucket);
        bytes = 0;
      }
      bucket.push_back(g);
      bytes += b;
    }
    if (!bucket.empty()) flush(bucket);
  }

  at::Tensor total_loss_sum(const at::Tensor& local_sum) override {
    at::Tensor t = local_sum.detach().clone();
    all_reduce_sum(world_, t, "training: all-reduce of the loss");
    return t;
  }

 private:
  // One all-reduce of the bucket's gradients, flattened in order; the sums
  // go back into the gradients.
  void flush(std::vector<at::Tensor>& bucket) {
    std::vector<at::Tensor> flat;
    flat.reserve(bucket.size());
    for (const at::Tensor& g : bucket) flat.push_back(g.reshape({-1}));
    at::Tensor buffer = at::cat(flat);
    all_reduce_sum(world_, buffer, "training: all-reduce of a gradient bucket");
    int64_t offset = 0;
    for (at::Tensor& g : bucket) {
      g.copy_(buffer.narrow(0, offset, g.numel()).view(g.sizes()));
      offset += g.numel();
    }
    bucket.clear();
  }

  Group world_;
  int64_t cp_rank_, cp_;
};

// A RankState as bytes and back (for the all-gather before a checkpoint).
at::Tensor encode(const train::RankState& s) {
  const std::string text =
      nlohmann::json{{"loader", s.loader_state}, {"cpu_rng", s.cpu_rng}, {"cuda_rng", s.cuda_rng}}.dump();
  at::Tensor t = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
  std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

train::RankState decode(const at::Tensor& bytes, int64_t length) {
  const std::string text(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(length));
  const nlohmann::json j = nlohmann::json::parse(text);
  train::RankState s;
  s.loader_state = j.at("loader");
  s.cpu_rng = j.at("cpu_rng").get<std::string>();
  s.cuda_rng = j.at("cuda_rng").get<std::string>();
  return s;
}

std::vector<train::RankState> gather_states(const Group& world, const train::RankState& local) {
  const at::Tensor mine = encode(local);
  std::vector<int64_t> lengths;
  for (const at::Tensor& n :
       all_gather(world, at::tensor({mine.numel()}, at::kLong), "checkpoint: all-gather of the ranks' state sizes")) {
    lengths.push_back(n.item<int64_t>());
  }
  int64_t longest = 0;
  for (const int64_t n : lengths) longest = std::max(longest, n);
  at::Tensor padded = at::zeros({longest}, at::kByte);
  padded.narrow(0, 0, mine.numel()).copy_(mine);
  const std::vector<at::Tensor> all = all_gather(world, padded, "checkpoint: all-gather of the ranks' states");
  std::vector<train::RankState> out;
  for (size_t r = 0; r < all.size(); ++r) out.push_back(decode(all[r], lengths[r]));
  return out;
}

}  // namespace

at::Tensor CpDenseAttention::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                     const model::AttentionContext&) const {
  return cp::dense_attention(q, k, v, group_);
}

std::string CpDenseAttention::describe() const {
  return "dense SDPA (causal), context-parallel over " + std::to_string(group_->getSize()) + " ranks";
}

at::Tensor CpLighthouseAttention::forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                          const model::AttentionContext&) const {
  return cp::attention(q, k, v, options_, group_);
}

std::string CpLighthouseAttention::describe() const {
  return "lighthouse L=" + std::to_string(options_.levels) + " p=" + std::to_string(options_.pool) +
         " top_k=" + std::to_string(options_.top_k) + " " + to_string(options_.scorer) + ", context-parallel over " +
         std::to_string(group_->getSize()) + " ranks";
}

std::shared_ptr<const model::Attention> CpLighthouseAttention::dense_form() const {
  return std::make_shared<const CpDenseAttention>(group_);
}

model::AttentionPlan context_parallel_plan(const model::AttentionPlan& plan, const Group& group) {
  const auto dense = std::make_shared<const CpDenseAttention>(group);
  model::AttentionPlan out = plan;
  for (auto& a : out) {
    if (dynamic_cast<const model::DenseAttention*>(a.get()) != nullptr) {
      a = dense;
    } else if (const auto* l = dynamic_cast<const model::LighthouseAttention*>(a.get())) {
      a = std::make_shared<const CpLighthouseAttention>(l->options(), group);
    } else {
      LH_CHECK(dynamic_cast<const CpDenseAttention*>(a.get()) != nullptr ||
                   dynamic_cast<const CpLighthouseAttention*>(a.get()) != nullptr,
               "context parallelism: no context-parallel form of the attention '", a->describe(), "'");
    }
  }
  return out;
}

std::shared_ptr<train::StepReducer> make_step_reducer(const World& world) {
  return std::make_shared<ParallelReducer>(world);
}

train::RunOptions parallel_run_options(const World& w, train::RunOptions base) {
  if (!w.distributed()) return base;
  base.rank = w.rank();
  base.world = w.world_size();
  base.data_rank = w.layout.dp_rank();
  base.data_world = w.layout.dp;
  base.primary = w.is_main();
  base.reducer = make_step_reducer(w);
  const Group world = w.world;
  base.gather_rank_states = [world](const train::RankState& local) { return gather_states(world, local); };
  base.any_process = [world](bool mine) {
    at::Tensor t = at::tensor({int64_t{mine ? 1 : 0}}, at::kLong);
    all_reduce_sum(world, t, "training: agreeing on the time limit");
    return t.item<int64_t>() > 0;
  };
  if (w.layout.cp > 1) {
    const Group cp = w.cp;
    base.adapt_plan = [cp](const model::AttentionPlan& plan) { return context_parallel_plan(plan, cp); };
  }
  return base;
}

}  // namespace lighthouse::dist
