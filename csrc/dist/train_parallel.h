/*
 * The trainer under torchrun: data and context parallelism through the
 * trainer's seams (shared/PARALLEL.md). Library `lighthouse_dist_train`
 * (the trainer plus lighthouse_dist; the shared liblighthouse_dist.so stays
 * free of the trainer).
 *
 *   dist::World w = dist::init(device, {dp, cp, timeout});
 *   train::RunOptions opt = dist::parallel_run_options(w, base);   // then run_training / run_recipe
 *
 * What each process does (ranks cp-fastest, dp x cp = world size):
 *   - Data: the loaders take DP rank d's rows of every global batch (the CP
 *     ranks of one group read the same rows); with cp > 1 each rank keeps
 *     its head-tail chunks (r and 2W-1-r of 2W) of the inputs and of the
 *     next-token targets (shifted before sharding) and their global
 *     positions, which the model's RoPE uses.
 *   - Attention: every dense layer runs cp::dense_attention and every
 *     Lighthouse layer cp::attention on the CP group (exact CP attention);
 *     the stage switch turns CP Lighthouse layers into CP dense ones.
 *   - Loss and gradients: each rank's loss is the sum over its own targets
 *     divided by the step's global count of targets (an all-reduce of the
 *     counts); the gradients are then summed over all ranks (over CP: each
 *     rank's loss covers its tokens only; over DP: the global normalisation
 *     makes the sum the mean) by all-reduces of fixed buckets in parameter
 *     order, so every rank holds the same bits and a deterministic run
 *     repeats bit for bit. The reported loss is the all-reduced sum over the
 *     global count.
 *   - Rank 0 alone writes metrics, validation lines, config and checkpoints;
 *     a checkpoint holds every rank's loader and RNG state (all-gathered
 *     before the save) and resumes exactly with the same number of
 *     processes (another number is an error naming both).
 *   - Decisions that could differ by rank are agreed: the time limit stops
 *     every rank after the same step.
 * In one process (no torchrun) the options are returned unchanged.
 */
#pragma once

#include <memory>
#include <string>

#include "model/attention.h"
#include "process_group.h"
#include "train/trainer.h"

namespace lighthouse::dist {

// Causal dense attention of a layer whose rows are this rank's head-tail
// chunks: cp::dense_attention on the CP group. kind() = kDense.
class CpDenseAttention final : public model::Attention {
 public:
  explicit CpDenseAttention(c10::intrusive_ptr<c10d::ProcessGroup> group) : group_(std::move(group)) {}
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const model::AttentionContext& context) const override;
  model::AttentionKind kind() const override { return model::AttentionKind::kDense; }
  std::string describe() const override;

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
};

// Lighthouse attention of the whole sequence on this rank's chunks:
// cp::attention with the one-device options. kind() = kLighthouse; its
// dense form is a CpDenseAttention on the same group.
class CpLighthouseAttention final : public model::Attention {
 public:
  CpLighthouseAttention(const Options& options, c10::intrusive_ptr<c10d::ProcessGroup> group)
      : options_(options), group_(std::move(group)) {}
  at::Tensor forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                     const model::AttentionContext& context) const override;
  model::AttentionKind kind() const override { return model::AttentionKind::kLighthouse; }
  std::string describe() const override;
  std::shared_ptr<const model::Attention> dense_form() const override;

 private:
  Options options_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
};

// The plan with every layer in its context-parallel form on `group`
// (DenseAttention -> CpDenseAttention, LighthouseAttention ->
// CpLighthouseAttention with the same options; CP forms are kept).
model::AttentionPlan context_parallel_plan(const model::AttentionPlan& plan,
                                           const c10::intrusive_ptr<c10d::ProcessGroup>& group);

// The StepReducer of a dp x cp job (see the header comment).
std::shared_ptr<train::StepReducer> make_step_reducer(const World& world);

// `base` with the data- and context-parallel settings of `world`: rank,
// world, data_rank, data_world, reducer, primary (rank 0),
// gather_rank_states, adapt_plan (cp > 1), any_process. Unchanged in one
// process.
train::RunOptions parallel_run_options(const World& world, train::RunOptions base);

}  // namespace lighthouse::dist
