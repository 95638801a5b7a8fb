/*
 * Evaluation inside a training run (in_training.h).
 */
#include "eval/in_training.h"

#include <cstdio>
#include <stdexcept>
#include <utility>

#include "eval/evaluate.h"
#include "eval/model_adapter.h"
#include "eval/plot.h"
#include "io/files.h"
#include "train/metrics.h"

namespace lighthouse::eval {

namespace {


}  // namespace

TrainingEval::TrainingEval(const config::Config& c, std::string run_dir, int64_t resume_step, std::string label,
                           std::function<void(const std::string&)> note, bool quiet)
    : config_(c), run_dir_(std::move(run_dir)), label_(std::move(label)), note_(std::move(note)), quiet_(quiet) {
  if (!niah_enabled()) return;
  protocol_.trials = c.eval.niah_trials;
  protocol_.depths = default_depths();
  if (!c.eval.niah_contexts.empty()) {
    protocol_.contexts = c.eval.niah_contexts;
  } else {
    // Stage 1 runs the test with the Lighthouse layers on.
    const int64_t min_n = config::uses_lighthouse(c) ? config::min_seq_len(c.lighthouse) : 1;
    for (const int64_t n : default_contexts(c.train.seq_len)) {
      if (n >= min_n) protocol_.contexts.push_back(n);
    }
  }
  try {
    validate(protocol_);
  } catch (const std::invalid_argument& e) {
    throw config::ConfigError(std::string("eval.niah_contexts / eval.niah_trials: ") + e.what());
  }
  io::make_dirs(run_dir_ + "/eval");
  log_ = std::make_unique<train::JsonlWriter>(run_dir_ + "/niah.jsonl", resume_step);
}

TrainingEval::~TrainingEval() = default;

NiahSummary TrainingEval::niah(const model::Llama& model, int64_t step, int stage, bool final) {
  if (!niah_enabled()) throw std::logic_error("TrainingEval::niah: eval.niah_every is 0");
  LlamaEval adapter(model);
  NiahOptions o;
  o.label = label_ + " niah";
  o.quiet = quiet_;
  const NiahResult r = run_niah(adapter, protocol_, o);
  Json meta = {{"run", io::base_name(run_dir_)}, {"run_dir", run_dir_}, {"step", step}, {"stage", stage},
               {"train_seq_len", config_.train.seq_len}};
  meta.update(model_meta(model));
  const Json j = niah_json(r, meta);
  char name[64];
  std::snprintf(name, sizeof name, "/eval/niah_step_%06lld.json", static_cast<long long>(step));
  write_json(run_dir_ + name, j);
  log_->write({{"step", step},
               {"stage", stage},
               {"attention", meta.at("attention")},
               {"mean_accuracy", r.mean_accuracy},
               {"mean_p_correct", r.mean_p_correct},
               {"prompts", r.prompts},
               {"contexts", protocol_.contexts},
               {"trials", protocol_.trials},
               {"seconds", r.seconds}});
  note_("step " + std::to_string(step) + ": " + niah_summary(r) + " (" + meta.at("attention").get<std::string>() +
        ", " + train::format_fixed(r.seconds, 1) + " s)");
  if (final) {
    write_json(run_dir_ + "/niah.json", j);
    const std::string why = plot_niah(run_dir_ + "/niah.json", run_dir_ + "/niah.png");
    if (!why.empty()) note_("warning: no plot " + run_dir_ + "/niah.png: " + why);
  }
  return {step, r.mean_accuracy, r.mean_p_correct, r.prompts, r.seconds};
}

LossResult TrainingEval::final_loss(const model::Llama& model, int64_t step) {
  LlamaEval adapter(model);
  LossOptions o;
  o.data_dir = config_.data.dir;
  o.seq_len = config_.train.seq_len;
  o.batch = config_.train.batch;
  o.windows = config_.eval.batches * config_.train.batch;
  o.label = quiet_ ? "" : label_ + " loss";
  const LossResult r = evaluate_loss(adapter, o);
  Json meta = {{"run", io::base_name(run_dir_)}, {"run_dir", run_dir_}, {"step", step},
               {"train_seq_len", config_.train.seq_len}};
  meta.update(model_meta(model));
  write_json(run_dir_ + "/loss.json",
             Json{{"format", "lighthouse-loss"}, {"version", 1}, {"results", Json::array({loss_json(r, meta)})}});
  std::string buckets;
  for (size_t i = 0; i < r.buckets.size(); ++i) {
    buckets += (i ? ", " : "") + std::to_string(r.buckets[i].last) + ": " + train::format_fixed(r.bucket_loss[i], 3);
  }
  note_("loss by position (bucket end: loss) " + buckets + "; " + run_dir_ + "/loss.json");
  const std::string why = plot_loss({run_dir_ + "/loss.json"}, run_dir_ + "/loss_by_position.png");
  if (!why.empty()) note_("warning: no plot " + run_dir_ + "/loss_by_position.png: " + why);
  return r;
}

namespace {

class EvalObserver final : public train::RunObserver {
 public:
  EvalObserver(const config::Config& c, const std::string& run_dir, int64_t resume_step, const std::string& label,
               bool quiet, std::function<void(const std::string&)> note)
      : eval_(c, run_dir, resume_step, label, std::move(note), quiet) {}
  void after_step(const model::Llama& model, int64_t step, int stage) override {
    if (eval_.niah_due(step)) eval_.niah(model, step, stage, false);
  }
  void at_end(const model::Llama& model, int64_t step, int stage, train::RunResult& result) override {
    if (eval_.niah_enabled()) {
      const NiahSummary n = eval_.niah(model, step, stage, true);
      result.niah_accuracy = n.accuracy;
      result.niah_p_correct = n.p_correct;
    }
    eval_.final_loss(model, step);
  }

 private:
  TrainingEval eval_;
};

}  // namespace

train::ObserverFactory training_observer() {
  return [](const config::Config& c, const std::string& run_dir, int64_t resume_step, const std::string& label,
            bool quiet, std::function<void(const std::string&)> note) -> std::unique_ptr<train::RunObserver> {
    return std::make_unique<EvalObserver>(c, run_dir, resume_step, label, quiet, std::move(note));
  };
}

}  // namespace lighthouse::eval
