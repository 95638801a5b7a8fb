/*
 * One optimizer step and the validation loss (step.h).
 */
#include "train/step.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "data/loader.h"
#include "data/tokenizer.h"
#include "ops/checks.h"
#include "train/optim.h"

namespace lighthouse::train {
namespace {

// Counted targets of a local batch: those that are not PAD.
int64_t counted_targets(const LocalBatch& batch) { return batch.targets.ne(data::kPad).sum().item<int64_t>(); }

model::TokenLoss local_loss(const model::Llama& m, const LocalBatch& batch) {
  return m.token_loss(batch.inputs, batch.targets, data::kPad, batch.positions);
}

// A float32 scalar on `like`'s device: dividing by a device tensor is a true
// division everywhere (CUDA multiplies by the reciprocal of a CPU scalar).
at::Tensor scalar_like(double value, const at::Tensor& like) { return at::full({}, value, like.options()); }

}  // namespace

LocalBatch StepReducer::local_batch(const at::Tensor& tokens) {
  LH_CHECK(tokens.dim() == 2 && tokens.size(1) >= 2, "a next-token loss needs tokens [B, N+1] with N >= 1, got ",
           tokens.sizes());
  const int64_t N = tokens.size(1) - 1;
  return {tokens.narrow(1, 0, N), tokens.narrow(1, 1, N), at::Tensor()};
}

TrainStep::TrainStep(model::Llama& model, AdamW& optimizer, data::Loader& loader, int64_t grad_accum, double grad_clip,
                     StepReducer* reducer)
    : model_(model),
      optimizer_(optimizer),
      loader_(loader),
      grad_accum_(grad_accum),
      grad_clip_(grad_clip),
      reducer_(reducer ? reducer : &default_reducer_),
      params_(model.parameters()) {
  LH_CHECK(grad_accum > 0, "train.grad_accum must be positive, got ", grad_accum);
}

StepStats TrainStep::run(int64_t step, double lr, const AfterBackward& after_backward) {
  at::AutoGradMode grad_mode(true);  // whatever the caller's mode
  StepStats st;
  st.step = step;
  st.lr = lr;
  for (const auto& p : params_) p.mutable_grad() = at::Tensor();
  // The step's batches first: every backward divides by the step's total
  // count, known before the first forward.
  std::vector<LocalBatch> batches;
  int64_t local_count = 0;
  for (int64_t micro = 0; micro < grad_accum_; ++micro) {
    batches.push_back(reducer_->local_batch(loader_.next()));
    local_count += counted_targets(batches.back());
  }
  st.tokens = reducer_->total_count(local_count);
  const at::Device device = model_.device();
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device));
  const at::Tensor total = scalar_like(static_cast<double>(st.tokens), loss_sum);
  for (int64_t micro = 0; micro < grad_accum_; ++micro) {
    const model::TokenLoss loss = local_loss(model_, batches[static_cast<size_t>(micro)]);
    reducer_->before_backward(micro, grad_accum_);
    (loss.sum / total).backward();
    loss_sum += loss.sum.detach();
  }
  if (after_backward) after_backward(step, model_);
  reducer_->reduce_gradients(params_);
  st.loss = (reducer_->total_loss_sum(loss_sum) / total).item<double>();
  st.grad_norm = clip_grad_norm(params_, grad_clip_);
  st.finite = std::isfinite(st.loss) && std::isfinite(st.grad_norm);
  if (st.finite) {
    optimizer_.step(lr);
    st.updated = true;
  }
  return st;
}

double evaluate(const model::Llama& m, data::Loader& val, int64_t batches, StepReducer* reducer) {
  StepReducer one_process;
  StepReducer& r = reducer ? *reducer : one_process;
  at::NoGradGuard no_grad;
  val.reset();
  at::Tensor total = at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(m.device()));
  for (int64_t i = 0; i < batches; ++i) {
    const model::TokenLoss loss = local_loss(m, r.local_batch(val.next()));
    const at::Tensor sum = r.total_loss_sum(loss.sum);
    total += (sum / scalar_like(static_cast<double>(r.total_count(loss.count)), sum)).to(at::kDouble);
  }
  return total.item<double>() / static_cast<double>(batches);
}

}  // namespace lighthouse::train
