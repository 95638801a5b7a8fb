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

// Counted targets of tokens [B, N+1] (CPU): the last N of each row that are
// not PAD.
int64_t counted_targets(const at::Tensor& tokens) {
  return tokens.narrow(1, 1, tokens.size(1) - 1).ne(data::kPad).sum().item<int64_t>();
}

// A float32 scalar on `like`'s device: dividing by a device tensor is a true
// division everywhere (CUDA multiplies by the reciprocal of a CPU scalar).
at::Tensor scalar_like(double value, const at::Tensor& like) { return at::full({}, value, like.options()); }

}  // namespace

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
  std::vector<at::Tensor> batches;
  int64_t local_count = 0;
  for (int64_t micro = 0; micro < grad_accum_; ++micro) {
    batches.push_back(loader_.next());
    local_count += counted_targets(batches.back());
  }
  st.tokens = reducer_->total_count(local_count);
  const at::Device device = model_.device();
  at::Tensor loss_sum = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(device));
  const at::Tensor total = scalar_like(static_cast<double>(st.tokens), loss_sum);
  for (int64_t micro = 0; micro < grad_accum_; ++micro) {
    const model::TokenLoss loss = model_.next_token_loss(batches[static_cast<size_t>(micro)], data::kPad);
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
    const model::TokenLoss loss = m.next_token_loss(val.next(), data::kPad);
    const at::Tensor sum = r.total_loss_sum(loss.sum);
    total += (sum / scalar_like(static_cast<double>(r.total_count(loss.count)), sum)).to(at::kDouble);
  }
  return total.item<double>() / static_cast<double>(batches);
}

}  // namespace lighthouse::train
