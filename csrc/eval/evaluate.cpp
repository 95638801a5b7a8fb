/*
 * Evaluation jobs on checkpoints (evaluate.h).
 */
#include "eval/evaluate.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <ATen/ATen.h>

#include "eval/plot.h"
#include "io/files.h"
#include "io/safetensors_torch.h"
#include "config/config.h"
#include "ops/checks.h"

namespace lighthouse::eval {

void write_json(const std::string& path, const Json& j) { io::write_file_atomic(path, j.dump(2) + "\n"); }

NiahProtocol niah_protocol(const NiahJob& job, int64_t train_len, bool lighthouse, int64_t min_len) {
  NiahProtocol p;
  p.trials = job.trials;
  p.seed = job.seed;
  p.depths = job.depths.empty() ? default_depths() : job.depths;
  if (!job.contexts.empty()) {
    p.contexts = job.contexts;
    for (const int64_t c : p.contexts) {
      if (lighthouse && c < min_len) {
        throw std::invalid_argument(detail::message(
            "context ", c, " is shorter than Lighthouse attention allows for this geometry (N >= ", min_len,
            " = top_k * pool^(levels-1)): use longer contexts or --attention dense"));
      }
    }
  } else {
    for (const int64_t c : default_contexts(train_len)) {
      if (!lighthouse || c >= min_len) p.contexts.push_back(c);
    }
  }
  validate(p);
  return p;
}

namespace {

// The prompts of a protocol as NiahJob::save_prompts describes.
void save_prompts(const NiahProtocol& p, const std::string& path) {
  io::NamedTensors out;
  for (const int64_t c : p.contexts) {
    const int64_t rows = static_cast<int64_t>(p.depths.size()) * p.trials;
    at::Tensor t = at::empty({rows, c}, at::TensorOptions().dtype(at::kLong));
    int64_t* dst = t.data_ptr<int64_t>();
    for (const int64_t d : p.depths) {
      for (const NiahTrial& trial : cell_trials(p, c, d)) {
        const NiahPrompt prompt = build_prompt(p, trial);
        dst = std::copy(prompt.tokens.begin(), prompt.tokens.end(), dst);
      }
    }
    out.emplace_back("context_" + std::to_string(c), t);
  }
  io::save_safetensors(path, out, {{"format", "pt"}, {"generator", kNiahGenerator}});
}

}  // namespace

NiahResult run_niah_job(const NiahJob& job) {
  if (job.out_dir.empty()) throw std::invalid_argument("no output directory given");
  EvalModel m = load_model(job.checkpoint, job.attention, job.device);
  const bool lighthouse = m.attention == "lighthouse";
  const NiahProtocol p =
      niah_protocol(job, m.config.train.seq_len, lighthouse, config::min_seq_len(m.config.lighthouse));
  if (!job.quiet) {
    const Json meta = m.meta();
    std::fprintf(stderr, "[niah] %s (step %lld, %s attention, layers %s) on %s, %s: %zu contexts x %zu depths x %lld trials\n",
                 m.checkpoint.c_str(), static_cast<long long>(m.step), m.attention.c_str(),
                 meta.at("layers").get<std::string>().c_str(), meta.at("device").get<std::string>().c_str(),
                 meta.at("precision").get<std::string>().c_str(), p.contexts.size(), p.depths.size(),
                 static_cast<long long>(p.trials));
  }
  LlamaEval model(*m.model);
  NiahOptions o;
  o.batch = job.batch;
  o.label = "niah";
  o.quiet = job.quiet;
  const NiahResult r = run_niah(model, p, o);
  io::make_dirs(job.out_dir);
  const std::string json_path = job.out_dir + "/niah.json";
  write_json(json_path, niah_json(r, m.meta()));
  if (!job.save_prompts.empty()) save_prompts(p, job.save_prompts);
  std::printf("%s\n  %s (%.1f s)\n", niah_summary(r).c_str(), json_path.c_str(), r.seconds);
  if (job.plot) {
    const std::string png = job.out_dir + "/niah.png";
    const std::string why = plot_niah(json_path, png);
    if (why.empty()) {
      std::printf("  %s\n", png.c_str());
    } else {
      std::fprintf(stderr, "warning: no plot %s: %s\n", png.c_str(), why.c_str());
    }
  }
  std::fflush(stdout);
  return r;
}

std::vector<LossResult> run_loss_job(const LossJob& job) {
  if (job.out_dir.empty()) throw std::invalid_argument("no output directory given");
  if (job.checkpoints.empty()) throw std::invalid_argument("no checkpoint given");
  std::vector<LossResult> out;
  Json results = Json::array();
  for (const std::string& path : job.checkpoints) {
    EvalModel m = load_model(path, job.attention, job.device);
    LossOptions o;
    o.data_dir = job.data_dir.empty() ? m.config.data.dir : job.data_dir;
    o.seq_len = job.seq_len > 0 ? job.seq_len : m.config.train.seq_len;
    o.batch = job.batch > 0 ? job.batch : std::max<int64_t>(1, 65536 / o.seq_len);
    o.windows = job.windows;
    o.label = job.quiet ? "" : "loss " + m.run;
    if (m.attention == "lighthouse" && o.seq_len < config::min_seq_len(m.config.lighthouse)) {
      throw std::invalid_argument(detail::message("--seq-len ", o.seq_len,
                                                  " is shorter than Lighthouse attention allows here (N >= ",
                                                  config::min_seq_len(m.config.lighthouse), "); use --attention dense"));
    }
    LlamaEval model(*m.model);
    const LossResult r = evaluate_loss(model, o);
    std::printf("%s (step %lld, %s): held-out loss %.4f nats/token over %lld tokens (%lld windows of %lld)\n",
                m.run.c_str(), static_cast<long long>(m.step), m.attention.c_str(), r.loss,
                static_cast<long long>(r.tokens), static_cast<long long>(r.windows),
                static_cast<long long>(r.seq_len));
    results.push_back(loss_json(r, m.meta()));
    out.push_back(r);
  }
  io::make_dirs(job.out_dir);
  const std::string json_path = job.out_dir + "/loss.json";
  write_json(json_path, Json{{"format", "lighthouse-loss"}, {"version", 1}, {"results", results}});
  std::printf("  %s\n", json_path.c_str());
  if (job.plot) {
    const std::string png = job.out_dir + "/loss_by_position.png";
    const std::string why = plot_loss({json_path}, png);
    if (why.empty()) {
      std::printf("  %s\n", png.c_str());
    } else {
      std::fprintf(stderr, "warning: no plot %s: %s\n", png.c_str(), why.c_str());
    }
  }
  std::fflush(stdout);
  return out;
}

}  // namespace lighthouse::eval
