/*
 * The training run: set-up, resume, the loop's bookkeeping around TrainStep
 * (schedule, the stage switch, validation, checkpoints, metrics, time
 * limit), and a resumed run's history (trainer.h).
 *
 * Paths go through io/files.h, never std::filesystem (see checkpoint.cpp).
 */
#include "train/trainer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

#include "data/loader.h"
#include "data/pack.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "model/lighthouse_options.h"
#include "train/activation_checkpoint.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/runtime.h"

namespace lighthouse::train {
namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string join(const std::string& dir, const std::string& name) { return dir + "/" + name; }

bool switch_due(const config::Config& c, int64_t completed_steps) {
  const int64_t at = config::switch_step(c);
  return at > 0 && completed_steps >= at;
}

Checkpoint snapshot(const config::Config& cfg, int64_t step, const model::Llama& m, const AdamW& opt,
                    std::vector<RankState> ranks, int64_t skipped) {
  Checkpoint c;
  c.step = step;
  c.optimizer_steps = opt.steps_taken();
  c.skipped_steps = skipped;
  c.ranks = std::move(ranks);
  c.config = cfg;
  for (const auto& [name, t] : m.named_parameters()) c.weights[name] = t.detach();
  c.optimizer = opt.state();
  return c;
}

std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> out;
  if (!io::is_regular_file(path)) return out;
  const std::string text = io::read_file(path);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const Json j = Json::parse(text.substr(start, end - start), nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer()) out.push_back(j);
    start = end + 1;
  }
  return out;
}

}  // namespace

model::AttentionPlan plan_at(const config::Config& c, int64_t completed_steps) {
  const model::AttentionPlan plan = model::attention_plan(c.model, c.lighthouse);
  return switch_due(c, completed_steps) ? model::switch_to_dense(plan) : plan;
}

std::string run_label(const config::Config& c) {
  if (!config::uses_lighthouse(c)) return "dense";
  return config::switch_step(c) > 0 ? "two-stage" : "lighthouse";
}

void ensure_packed(const config::Config& c) {
  // pack() writes manifest.json last (it renames a complete directory into
  // place), so its presence means a packed dataset; the loader checks the rest.
  if (io::path_exists(join(c.data.dir, "manifest.json"))) return;
  data::PackOptions p;
  const std::string corpus = c.data.corpus.empty() ? data::default_corpus_dir() : c.data.corpus;
  p.inputs = {corpus};
  p.out_dir = c.data.dir;
  std::fprintf(stderr, "[data] %s is not packed yet: packing %s\n", p.out_dir.c_str(), corpus.c_str());
  data::PackSummary s;
  try {
    s = data::pack(p);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot pack the corpus: ") + e.what() +
                             " (scripts/setup.sh installs the default corpus; or set data.corpus / data.dir)");
  }
  std::fprintf(stderr, "[data] packed %lld documents: %s train tokens, %s validation tokens (%lld files skipped)\n",
               static_cast<long long>(s.train_documents + s.val_documents),
               format_count(static_cast<double>(s.train_tokens)).c_str(),
               format_count(static_cast<double>(s.val_tokens)).c_str(), static_cast<long long>(s.files_skipped));
}

RunResult with_history(RunResult r) {
  std::vector<double> losses;
  std::vector<int> stages;
  int64_t first = 0, tokens = 0;
  for (const Json& j : read_jsonl(join(r.run_dir, "metrics.jsonl"))) {
    const int64_t step = j["step"].get<int64_t>();
    if (step >= r.first_step || !j.contains("loss") || j.value("nonfinite", false)) continue;
    if (first == 0) first = step;
    if (step != first + static_cast<int64_t>(losses.size())) return r;  // a gap: not a run's own record
    losses.push_back(j["loss"].get<double>());
    stages.push_back(j.value("stage", 1));
    tokens = j.value("tokens", int64_t{0});  // cumulative
  }
  if (losses.empty() || first != 1 || first + static_cast<int64_t>(losses.size()) != r.first_step) return r;
  const bool trained_now = !r.losses.empty();
  losses.insert(losses.end(), r.losses.begin(), r.losses.end());
  stages.insert(stages.end(), r.stages.begin(), r.stages.end());
  r.losses = std::move(losses);
  r.stages = std::move(stages);
  r.first_step = 1;
  r.tokens += tokens;
  if (!trained_now) r.last_step = r.first_step + static_cast<int64_t>(r.losses.size()) - 1;
  // The switch: two validation records of one step, Lighthouse then dense.
  const std::vector<Json> vals = read_jsonl(join(r.run_dir, "val.jsonl"));
  if (r.switch_step == 0) {
    for (size_t i = 0; i + 1 < vals.size(); ++i) {
      if (vals[i]["step"] == vals[i + 1]["step"] && vals[i].value("attention", "") == "lighthouse" &&
          vals[i + 1].value("attention", "") == "dense") {
        r.switch_step = vals[i]["step"].get<int64_t>();
        r.switch_val_before = vals[i]["val_loss"].get<double>();
        r.switch_val_after = vals[i + 1]["val_loss"].get<double>();
      }
    }
  }
  if (!trained_now) {
    for (const Json& v : vals) {
      if (v["step"].get<int64_t>() == r.last_step) r.final_val_loss = v["val_loss"].get<double>();
    }
  }
  return r;
}

struct Trainer::State {
  State(const config::Config& c, const RunOptions& o) : cfg(c), opt(o) {}
  config::Config cfg;
  RunOptions opt;
  Stopwatch wall;
  Runtime rt;
  RunResult res;
  std::string ckpt_root;
  std::unique_ptr<Progress> progress;
  std::unique_ptr<data::Loader> loader, val_loader;
  std::unique_ptr<model::Llama> model;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<TrainStep> train_step;
  std::unique_ptr<JsonlWriter> metrics, val_log;
  std::unique_ptr<RunObserver> observer;
  int64_t step = 0, skipped = 0;
  int stage = 1;

  void note(const std::string& s) {
    if (!opt.quiet && opt.primary) progress->note(s);
  }
  void write_metrics(const Json& record) {
    if (metrics) metrics->write(record);
  }
  void save(int64_t at_step) {
    RankState local;
    local.loader_state = loader->state();
    local.cpu_rng = rng_state_hex(at::kCPU);
    local.cuda_rng = rt.device.is_cuda() ? rng_state_hex(rt.device) : "";
    std::vector<RankState> ranks = opt.gather_rank_states ? opt.gather_rank_states(local) : std::vector{local};
    if (!opt.primary) return;
    res.last_checkpoint = save_checkpoint(
        ckpt_root, snapshot(cfg, at_step, *model, *optimizer, std::move(ranks), skipped), cfg.checkpoint.keep);
    note("checkpoint " + res.last_checkpoint);
  }
  double validate_now(int64_t at_step) {
    const double v = evaluate(*model, *val_loader, cfg.eval.batches, opt.reducer.get());
    if (val_log) {
      val_log->write({{"step", at_step},
                      {"stage", stage},
                      {"attention", model->any_lighthouse() ? "lighthouse" : "dense"},
                      {"val_loss", v},
                      {"val_tokens", cfg.eval.batches * cfg.train.batch * cfg.train.seq_len},
                      {"elapsed_s", wall.seconds()}});
    }
    note("step " + std::to_string(at_step) + ": validation loss " + fmt("%.4f", v));
    return v;
  }
};

Trainer::Trainer(const config::Config& cfg_in, const RunOptions& opt) : s_(std::make_unique<State>(cfg_in, opt)) {
  State& s = *s_;
  const config::Config& cfg = s.cfg;
  config::validate(cfg);

  // Resume: the checkpoint must fit this config's model.
  Checkpoint resume;
  const bool resuming = !opt.resume.empty();
  if (resuming) {
    const std::string dir = latest_checkpoint(opt.resume);
    if (dir.empty()) throw CheckpointError("no complete checkpoint in " + opt.resume);
    resume = load_checkpoint(dir);
    check_compatible(resume.config.model, cfg.model, "checkpoint " + dir);
  }

  s.rt = setup_runtime(cfg.train);
  RunResult& res = s.res;
  res.label = opt.label;
  res.run_dir = !opt.run_dir.empty() ? opt.run_dir : resuming ? run_dir_of(resume.path) : cfg.train.run_dir;
  s.ckpt_root = join(res.run_dir, "checkpoints");
  if (opt.primary) io::make_dirs(res.run_dir);
  s.progress = std::make_unique<Progress>(opt.label, cfg.log.every);

  ensure_packed(cfg);
  const auto seed = static_cast<uint64_t>(cfg.train.seed);
  s.loader = std::make_unique<data::Loader>(cfg.data.dir, data::Split::kTrain, cfg.train.batch, cfg.train.seq_len, seed,
                                            opt.data_rank, opt.data_world);
  s.val_loader = std::make_unique<data::Loader>(cfg.data.dir, data::Split::kVal, cfg.train.batch, cfg.train.seq_len,
                                                seed, opt.data_rank, opt.data_world);

  // The global RNG is seeded for anything that draws from it; the model's
  // init and the data order have their own seeds.
  at::manual_seed(seed);
  model::AttentionPlan plan = model::attention_plan(cfg.model, cfg.lighthouse);
  if (opt.adapt_plan) plan = opt.adapt_plan(plan);
  s.model = std::make_unique<model::Llama>(cfg.model, std::move(plan), s.rt.device, seed);
  s.model->set_compute_dtype(s.rt.compute_dtype);
  s.model->set_fused(cfg.train.fused);
  s.optimizer = std::make_unique<AdamW>(s.model->named_parameters(), cfg.optim);
  if (resuming) {
    try {
      s.model->load_weights(resume.weights);
      s.optimizer->load_state(resume.optimizer, resume.optimizer_steps);
    } catch (const c10::Error& e) {
      throw CheckpointError("checkpoint " + resume.path + " does not fit this model: " + e.what_without_backtrace());
    }
    const RankState& mine = rank_state(resume, opt.rank, opt.world);
    s.loader->load_state(mine.loader_state);
    set_rng_state_hex(at::kCPU, mine.cpu_rng);
    if (s.rt.device.is_cuda() && !mine.cuda_rng.empty()) set_rng_state_hex(s.rt.device, mine.cuda_rng);
    s.step = resume.step;
    s.skipped = resume.skipped_steps;
    // Later checkpoints belong to the abandoned continuation of this run.
    if (opt.primary) remove_checkpoints_after(s.ckpt_root, s.step);
  }
  // Stage 2: after the switch step, or a Lighthouse checkpoint resumed dense.
  if (switch_due(cfg, s.step) ||
      (resuming && config::uses_lighthouse(resume.config) && !config::uses_lighthouse(cfg))) {
    s.model->set_attention(model::switch_to_dense(s.model->attention_plan()));
    s.stage = 2;
  }
  // Planned for the layout the run starts with; again at the stage switch.
  const std::string checkpointing = configure_checkpointing(*s.model, cfg, s.rt.device);
  s.train_step = std::make_unique<TrainStep>(*s.model, *s.optimizer, *s.loader, cfg.train.grad_accum,
                                             cfg.optim.grad_clip, opt.reducer.get());

  if (opt.primary) {
    s.metrics = std::make_unique<JsonlWriter>(join(res.run_dir, "metrics.jsonl"), resuming ? s.step : -1);
    s.val_log = std::make_unique<JsonlWriter>(join(res.run_dir, "val.jsonl"), resuming ? s.step : -1);
    io::write_file_atomic(join(res.run_dir, "config.toml"), config::to_toml(cfg));
    if (opt.observer) s.observer = opt.observer(cfg, res.run_dir, resuming ? s.step : -1, opt.label, opt.quiet,
                                         [st = &s](const std::string& m) { st->note(m); });
  }
  res.attention = !s.model->any_lighthouse()          ? "dense"
                  : config::switch_step(cfg) > s.step ? "lighthouse -> dense"
                                                      : "lighthouse";
  s.note(std::string(resuming ? "resuming " + resume.path + " at step " + std::to_string(s.step) : "new run") + " in " +
         res.run_dir);
  const int64_t tokens_per_step = cfg.train.batch * cfg.train.seq_len * cfg.train.grad_accum;
  s.note(std::to_string(s.model->num_parameters()) + " parameters, layers " +
         model::plan_map(s.model->attention_plan()) + " (D dense, L Lighthouse), context " +
         std::to_string(cfg.train.seq_len) + ", " + std::to_string(tokens_per_step) + " tokens/step, " +
         s.rt.describe() + (cfg.train.fused ? ", fused kernels" : "") + "; activation checkpointing: " + checkpointing);
  if (s.model->any_lighthouse()) {
    const Options o = model::op_options(cfg.lighthouse);
    s.note(
        "Lighthouse L=" + std::to_string(o.levels) + " p=" + std::to_string(o.pool) +
        " top_k=" + std::to_string(o.top_k) + " scorer=" + cfg.lighthouse.scorer + ": S=" +
        std::to_string(subsequence_length(cfg.train.seq_len, o)) + " of N=" + std::to_string(cfg.train.seq_len) +
        (config::switch_step(cfg) > s.step ? "; dense from step " + std::to_string(config::switch_step(cfg) + 1) : ""));
  }
}

Trainer::~Trainer() = default;

const config::Config& Trainer::config() const { return s_->cfg; }
model::Llama& Trainer::model() { return *s_->model; }
const AdamW& Trainer::optimizer() const { return *s_->optimizer; }
const data::Loader& Trainer::loader() const { return *s_->loader; }
int64_t Trainer::step() const { return s_->step; }

RunResult Trainer::run() {
  State& s = *s_;
  const config::Config& cfg = s.cfg;
  RunResult& res = s.res;
  model::Llama& model = *s.model;
  const int64_t last = s.opt.stop_after > 0 ? std::min(s.opt.stop_after, cfg.train.steps) : cfg.train.steps;
  const int64_t tokens_per_step = cfg.train.batch * cfg.train.seq_len * cfg.train.grad_accum;
  const bool show = !s.opt.quiet && s.opt.primary;
  const int64_t switch_at = config::switch_step(cfg);  // 0: none
  res.first_step = s.step + 1;
  const Stopwatch train_clock;
  double stage_seconds[2] = {0, 0};
  int64_t stage_tokens[2] = {0, 0};
  double timed_seconds = 0;  // steps after the first, for the ETA
  int64_t timed_steps = 0;
  while (s.step < last) {
    if (switch_due(cfg, s.step) && model.any_lighthouse()) {
      // The same weights on the same validation batches, before and after:
      // the switch's cost on held-out data, free of batch noise.
      res.switch_val_before = s.validate_now(s.step);
      const std::vector<model::AttentionKind> kinds = model.layer_kinds();
      const auto n = std::count(kinds.begin(), kinds.end(), model::AttentionKind::kLighthouse);
      model.set_attention(model::switch_to_dense(model.attention_plan()));
      res.switch_step = s.step;
      s.stage = 2;
      const std::string checkpointing = configure_checkpointing(model, cfg, s.rt.device);
      s.note("stage switch after step " + std::to_string(s.step) + ": " + std::to_string(n) +
             " Lighthouse layers -> dense SDPA (same weights, optimizer state and data order); activation "
             "checkpointing: " +
             checkpointing);
      res.switch_val_after = s.validate_now(s.step);
    }
    const int64_t step = s.step + 1;
    const Stopwatch step_clock;
    reset_peak_memory(s.rt.device);
    const StepStats st = s.train_step->run(step, lr_at(cfg, step), s.opt.after_backward);
    if (!st.finite) {
      const std::string what = "step " + std::to_string(step) + ": " +
                               (!std::isfinite(st.loss) ? "the loss is " + fmt("%g", st.loss)
                                                        : "the gradient norm is " + fmt("%g", st.grad_norm)) +
                               " (loss " + fmt("%g", st.loss) + ", gradient norm " + fmt("%g", st.grad_norm) + ")";
      if (cfg.train.nonfinite == "stop") {
        s.write_metrics({{"step", step},
                         {"stage", s.stage},
                         {"loss", st.loss},
                         {"grad_norm", st.grad_norm},
                         {"nonfinite", true},
                         {"action", "stop"}});
        if (show) s.progress->finish();
        throw NonFiniteError(
            what + "; stopped before the optimizer step, parameters unchanged" +
            (res.last_checkpoint.empty() ? std::string() : "; last checkpoint " + res.last_checkpoint) +
            ". Set train.nonfinite = skip to skip such steps.");
      }
      ++s.skipped;
      ++res.skipped_steps;
      s.note(what + "; step skipped (no optimizer update)");
    }
    s.step = step;
    synchronize(s.rt.device);
    const double dt = step_clock.seconds();
    if (step > res.first_step) {  // the first step includes one-time set-up
      stage_seconds[s.stage - 1] += dt;
      stage_tokens[s.stage - 1] += tokens_per_step;
      timed_seconds += dt;
      ++timed_steps;
    }
    const double mean_dt = timed_steps > 0 ? timed_seconds / static_cast<double>(timed_steps) : dt;
    const int64_t mem = peak_memory_bytes(s.rt.device);
    res.peak_memory_bytes = std::max(res.peak_memory_bytes, mem);
    res.losses.push_back(st.loss);
    res.stages.push_back(s.stage);
    res.tokens += tokens_per_step;
    const char* attention = model.any_lighthouse() ? "lighthouse" : "dense";
    s.write_metrics({{"step", step},
                     {"stage", s.stage},
                     {"attention", attention},
                     {"loss", st.loss},
                     {"lr", st.lr},
                     {"grad_norm", st.grad_norm},
                     {"tokens", step * tokens_per_step},
                     {"tokens_per_s", static_cast<double>(tokens_per_step) / dt},
                     {"step_s", dt},
                     {"elapsed_s", s.wall.seconds()},
                     {"mem_bytes", mem},
                     {"skipped", !st.finite}});
    if (show) {
      s.progress->update({step, last, s.stage, attention, st.loss, st.lr, static_cast<double>(tokens_per_step) / dt,
                          mean_dt * static_cast<double>(last - step)});
    }

    const bool at_end = step == last;
    bool out_of_time = cfg.train.max_seconds > 0 && s.wall.seconds() > cfg.train.max_seconds && !at_end;
    if (cfg.train.max_seconds > 0 && !at_end && s.opt.any_process) out_of_time = s.opt.any_process(out_of_time);
    const bool switch_next = step == switch_at && model.any_lighthouse();  // evaluates there anyway
    if (cfg.eval.every > 0 && step % cfg.eval.every == 0 && !at_end && !switch_next) s.validate_now(step);
    if ((cfg.checkpoint.every > 0 && step % cfg.checkpoint.every == 0) || step == switch_at || at_end || out_of_time) {
      s.save(step);
    }
    if (s.observer && !at_end) s.observer->after_step(model, step, s.stage);
    if (s.opt.after_step) s.opt.after_step(st);
    if (out_of_time) {
      res.time_limited = true;
      s.note("stopping after step " + std::to_string(step) +
             ": train.max_seconds = " + fmt("%g", cfg.train.max_seconds) + " reached");
      break;
    }
  }
  res.last_step = s.step;
  res.train_seconds = train_clock.seconds();
  if (res.first_step <= res.last_step) {
    res.final_val_loss = s.validate_now(s.step);
  } else {
    res = with_history(res);  // nothing left to train: the run as recorded
  }
  if (s.observer && s.step == cfg.train.steps && res.first_step <= res.last_step) {
    s.observer->at_end(model, s.step, s.stage, res);
  }
  if (stage_seconds[0] > 0) res.stage1_tokens_per_s = static_cast<double>(stage_tokens[0]) / stage_seconds[0];
  if (stage_seconds[1] > 0) res.stage2_tokens_per_s = static_cast<double>(stage_tokens[1]) / stage_seconds[1];
  res.wall_seconds = s.wall.seconds();
  if (show) s.progress->finish();
  return res;
}

RunResult run_training(const config::Config& config, const RunOptions& options) {
  return Trainer(config, options).run();
}

}  // namespace lighthouse::train
