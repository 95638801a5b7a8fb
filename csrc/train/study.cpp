/*
 * The study (study.h): plan, the resumable arm runner with whole-study
 * progress, the Stage-1 branch snapshots, and the report built from the
 * arms' files. Paths go through io/files.h (no std::filesystem).
 */
#include "train/study.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>

#include "data/loader.h"
#include "io/files.h"
#include "train/checkpoint.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace lighthouse::train {
namespace {

std::string join(const std::string& a, const std::string& b) { return a + "/" + b; }

std::string step_dir_name(int64_t step) {
  char b[32];
  std::snprintf(b, sizeof b, "step_%06lld", static_cast<long long>(step));
  return b;
}

std::string fixed(double v, int digits) { return format_fixed(v, digits); }

std::string signed_fixed(double v, int digits) {
  char b[32];
  std::snprintf(b, sizeof b, "%+.*f", digits, v);
  return b;
}

// Step of the newest complete checkpoint of a run directory; 0 if none.
int64_t newest_checkpoint_step(const std::string& run_dir) {
  if (!io::is_directory(join(run_dir, "checkpoints"))) return 0;
  const std::string dir = latest_checkpoint(run_dir);
  if (dir.empty()) return 0;
  const std::string name = dir.substr(dir.find_last_of('/') + 1);
  return std::stoll(name.substr(std::string("step_").size()));
}

std::vector<Json> read_jsonl(const std::string& path) {
  std::vector<Json> out;
  if (!io::is_regular_file(path)) return out;
  const std::string text = io::read_file(path);
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    Json j = Json::parse(text.substr(start, end - start), nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer()) out.push_back(std::move(j));
    start = end + 1;
  }
  return out;
}

void write_jsonl(const std::string& path, const std::vector<Json>& records) {
  std::string text;
  for (const Json& r : records) text += r.dump() + "\n";
  io::write_file_atomic(path, text);
}

// The Stage-1 checkpoint at step K, as branches/step_K (hard links: the
// checkpoint's files are never rewritten in place; a copy where links fail).
void snapshot_branch(const std::string& stage1_dir, int64_t k, const std::string& branch) {
  const std::string src = join(join(stage1_dir, "checkpoints"), step_dir_name(k));
  if (!io::is_regular_file(join(src, "state.json")))
    throw std::runtime_error("the Stage-1 checkpoint at step " + std::to_string(k) + " (" + src +
                             ") is gone, so its switching arm cannot branch from it: remove " + stage1_dir +
                             " to train Stage 1 again");
  const std::string tmp = branch + ".tmp";
  io::remove_tree(tmp);
  io::make_dirs(tmp);
  for (const std::string& name : io::list_dir(src)) {
    const std::string from = join(src, name), to = join(tmp, name);
    if (::link(from.c_str(), to.c_str()) != 0) io::write_file_atomic(to, io::read_file(from));
  }
  io::rename_path(tmp, branch);
}

// Whole-study progress: steps done per arm, measured step times by
// attention, an ETA for everything left.
class StudyProgress {
 public:
  StudyProgress(const StudyPlan& p, bool quiet) : plan_(p), quiet_(quiet) {}
  void set_done(const std::string& arm, int64_t done) { done_[arm] = done; }
  void start_arm(const std::string& arm, const std::string& what, bool lighthouse) {
    arm_ = arm;
    lighthouse_ = lighthouse;
    last_tick_ = {};
    line("start " + arm + ": " + what);
  }
  // One training step of the current arm finished its backward pass.
  void tick(int64_t step) {
    const auto now = std::chrono::steady_clock::now();
    if (last_tick_ != std::chrono::steady_clock::time_point{}) {
      const double dt = std::chrono::duration<double>(now - last_tick_).count();
      double& mean = lighthouse_ ? t_lighthouse_ : t_dense_;
      int64_t& n = lighthouse_ ? n_lighthouse_ : n_dense_;
      mean = (mean * static_cast<double>(n) + dt) / static_cast<double>(n + 1);
      ++n;
    }
    last_tick_ = now;
    done_[arm_] = step - start_offset(arm_);
    if (now - last_line_ > std::chrono::seconds(30)) line(arm_ + " at step " + std::to_string(step));
  }
  void line(const std::string& what) {
    last_line_ = std::chrono::steady_clock::now();
    if (quiet_) return;
    std::fprintf(stderr, "[study] %s | %lld of %lld study steps done%s\n", what.c_str(),
                 static_cast<long long>(done()), static_cast<long long>(plan_.total_steps()), eta().c_str());
    std::fflush(stderr);
  }

 private:
  int64_t start_offset(const std::string& arm) const {
    for (size_t i = 0; i < plan_.fractions.size(); ++i)
      if (arm == switch_arm_name(plan_.fractions[i])) return plan_.switch_steps[i];
    return 0;
  }
  int64_t done() const {
    int64_t d = 0;
    for (const auto& [arm, n] : done_) d += n;
    return d;
  }
  std::string eta() const {
    const int64_t k_max = plan_.switch_steps.back();
    auto get = [&](const std::string& a) {
      auto it = done_.find(a);
      return it == done_.end() ? int64_t{0} : it->second;
    };
    const int64_t left_l = k_max - get("stage1");
    int64_t left_d = plan_.steps - get("dense");
    for (size_t i = 0; i < plan_.fractions.size(); ++i)
      left_d += plan_.steps - plan_.switch_steps[i] - get(switch_arm_name(plan_.fractions[i]));
    if (left_l + left_d == 0) return "";
    double tl = t_lighthouse_, td = t_dense_;
    if (n_lighthouse_ == 0 && n_dense_ == 0) return ", ETA after the first measured steps";
    if (n_lighthouse_ == 0) tl = td;  // until measured: no faster than dense
    if (n_dense_ == 0) td = tl;
    return ", ETA " + format_duration(static_cast<double>(left_l) * tl + static_cast<double>(left_d) * td) +
           " (training steps only)";
  }

  const StudyPlan& plan_;
  bool quiet_;
  std::map<std::string, int64_t> done_;
  std::string arm_;
  bool lighthouse_ = false;
  std::chrono::steady_clock::time_point last_tick_{}, last_line_{};
  double t_lighthouse_ = 0, t_dense_ = 0;
  int64_t n_lighthouse_ = 0, n_dense_ = 0;
};

// ---------------------------------------------------------------- report

struct ArmCurves {
  std::vector<Json> metrics;  // steps 1..n, in order
  std::vector<Json> val;      // selected validation records
  bool complete = false;
};

// Records of `runs` (run dir, first step, last step) stitched in step order.
std::vector<Json> stitch(const std::vector<std::tuple<std::string, int64_t, int64_t>>& runs) {
  std::vector<Json> out;
  for (const auto& [dir, first, last] : runs) {
    for (Json& r : read_jsonl(join(dir, "metrics.jsonl"))) {
      const int64_t s = r["step"].get<int64_t>();
      if (s < first || s > last || s != static_cast<int64_t>(out.size()) + 1 || !r.contains("loss")) continue;
      r["segment_start"] = false;
      out.push_back(std::move(r));
    }
  }
  // A process segment starts where the run's own clock restarts.
  for (size_t i = 0; i < out.size(); ++i) {
    const bool first = i == 0 || out[i].value("elapsed_s", 0.0) < out[i - 1].value("elapsed_s", 0.0) ||
                       (i > 0 && out[i].value("attention", "") != out[i - 1].value("attention", ""));
    out[i]["segment_start"] = first;
  }
  return out;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Validation records of a run at the steps a study reports: multiples of
// eval.every, `extra` steps, and the last step.
std::vector<Json> select_val(const std::string& dir, int64_t first, int64_t last, int64_t every,
                             const std::vector<int64_t>& extra) {
  std::vector<Json> out;
  for (Json& v : read_jsonl(join(dir, "val.jsonl"))) {
    const int64_t s = v["step"].get<int64_t>();
    if (s < first || s > last) continue;
    const bool wanted = (every > 0 && s % every == 0) || s == last ||
                        std::find(extra.begin(), extra.end(), s) != extra.end();
    if (!wanted) continue;
    if (!out.empty() && out.back()["step"] == v["step"] && out.back()["attention"] == v["attention"]) {
      out.back() = std::move(v);  // a re-validated step: the newest record
    } else {
      out.push_back(std::move(v));
    }
  }
  return out;
}

RunResult as_run_result(const std::string& label, const ArmCurves& c, int64_t switch_step, double before,
                        double after) {
  RunResult r;
  r.label = label;
  r.first_step = 1;
  r.last_step = static_cast<int64_t>(c.metrics.size());
  for (const Json& m : c.metrics) r.losses.push_back(m["loss"].get<double>());
  r.switch_step = switch_step;
  r.switch_val_before = before;
  r.switch_val_after = after;
  return r;
}

}  // namespace

int64_t StudyPlan::total_steps() const {
  int64_t t = steps + (switch_steps.empty() ? 0 : switch_steps.back());
  for (int64_t k : switch_steps) t += steps - k;
  return t;
}

std::string switch_arm_name(double fraction) {
  char b[32];
  std::snprintf(b, sizeof b, "switch-%g", fraction);
  return b;
}

StudyPlan plan_study(const config::Config& base, std::vector<double> fractions) {
  config::validate(base);
  if (!config::uses_lighthouse(base))
    throw config::ConfigError(
        "the study needs Lighthouse layers in the base config (model.attention = \"lighthouse\" and some layers not "
        "in model.dense_layers)");
  if (fractions.empty()) throw config::ConfigError("the study needs at least one switch fraction (--fractions)");
  std::sort(fractions.begin(), fractions.end());
  StudyPlan p;
  p.base = base;
  p.steps = base.train.steps;
  for (size_t i = 0; i < fractions.size(); ++i) {
    const double f = fractions[i];
    if (!(f > 0.0 && f < 1.0))
      throw config::ConfigError("switch fraction " + std::to_string(f) + " is outside (0, 1)");
    if (i > 0 && f == fractions[i - 1]) throw config::ConfigError("switch fraction " + std::to_string(f) + " is given twice");
    config::Config t = base;
    t.stage2.start_step = -1;
    t.stage2.start_fraction = f;
    config::validate(t);  // names a fraction that rounds to step 0 or S
    const int64_t k = config::switch_step(t);
    if (!p.switch_steps.empty() && k == p.switch_steps.back())
      throw config::ConfigError("switch fractions " + std::to_string(fractions[i - 1]) + " and " + std::to_string(f) +
                                " give the same switch step " + std::to_string(k) + " of " +
                                std::to_string(p.steps) + " (use more train.steps)");
    t.stage2.start_step = k;
    t.stage2.start_fraction = 0;
    p.fractions.push_back(f);
    p.switch_steps.push_back(k);
    p.tails.push_back(t);
  }
  p.dense = base;
  p.dense.model.attention = "dense";
  p.dense.stage2.start_step = 0;
  p.dense.stage2.start_fraction = 0;
  p.stage1 = base;
  p.stage1.stage2.start_step = 0;
  p.stage1.stage2.start_fraction = 0;
  // No branch point is pruned before it is snapshotted.
  p.stage1.checkpoint.keep = base.checkpoint.keep + static_cast<int64_t>(fractions.size());
  config::validate(p.dense);
  config::validate(p.stage1);
  return p;
}

StudyReport run_study(const StudyPlan& plan, const StudyOptions& opt) {
  const std::string out = opt.out_dir.empty() ? plan.base.train.run_dir : opt.out_dir;
  io::make_dirs(out);
  // The study's data must be there: never pack a default corpus in its place.
  const std::string data_dir = plan.base.data.dir;
  if (!io::is_regular_file(join(data_dir, "manifest.json")))
    throw std::runtime_error("the study's data.dir '" + data_dir +
                             "' holds no packed dataset: pack it first (`lighthouse data --corpus large "
                             "--max-train-tokens 110M --out " + data_dir +
                             "`, or `lighthouse data --out " + data_dir +
                             "` for the small corpus) or unpack a carried copy (scripts/corpus-carry.sh unpack)");
  {
    // Tokens seen at most once? (the train split's windows per epoch)
    const Json m = Json::parse(io::read_file(join(data_dir, "manifest.json")));
    const int64_t train_tokens = m.at("splits").at("train").at("tokens").get<int64_t>();
    const int64_t windows = (train_tokens - 1) / plan.base.train.seq_len;
    const int64_t rows = plan.steps * plan.base.train.batch * plan.base.train.grad_accum;
    if (rows > windows && !opt.quiet)
      std::fprintf(stderr,
                   "[study] WARNING: each arm reads %lld windows of %lld tokens, the train split of %s has %lld: "
                   "tokens repeat (%.2f epochs); pack more text for a study without repeats\n",
                   static_cast<long long>(rows), static_cast<long long>(plan.base.train.seq_len), data_dir.c_str(),
                   static_cast<long long>(windows), static_cast<double>(rows) / static_cast<double>(windows));
  }

  // The study's identity: the same base config and fractions, or refuse.
  std::string identity = config::to_toml(plan.base) + "\n# study fractions:";
  for (double f : plan.fractions) identity += " " + fixed(f, 6);
  identity += "\n";
  const std::string id_path = join(out, "study.toml");
  if (io::is_regular_file(id_path)) {
    if (io::read_file(id_path) != identity)
      throw std::runtime_error("'" + out + "' holds a study of another config or other fractions (" + id_path +
                               "): continue it with that config, or choose another --out");
  } else {
    io::write_file_atomic(id_path, identity);
  }
  const auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
  StudyProgress progress(plan, opt.quiet);
  const std::string dense_dir = join(out, "dense"), stage1_dir = join(out, "stage1");
  const int64_t k_max = plan.switch_steps.back();
  progress.set_done("dense", newest_checkpoint_step(dense_dir));
  progress.set_done("stage1", std::min(newest_checkpoint_step(stage1_dir), k_max));
  for (size_t i = 0; i < plan.fractions.size(); ++i) {
    const int64_t c = newest_checkpoint_step(join(out, switch_arm_name(plan.fractions[i])));
    progress.set_done(switch_arm_name(plan.fractions[i]), c > 0 ? c - plan.switch_steps[i] : 0);
  }

  bool stopped = false;
  // Runs one arm segment; false when the time limit stopped it (or left no time to start).
  auto run_arm = [&](const std::string& arm, config::Config cfg, RunOptions ro, bool lighthouse,
                     const std::string& what, int64_t target, const std::function<void(Trainer&)>& before = {}) {
    if (opt.time_limit_s > 0) {
      const double left = opt.time_limit_s - elapsed();
      if (left < 10) return false;
      cfg.train.max_seconds = left;
    }
    progress.start_arm(arm, what, lighthouse);
    ro.label = arm;
    ro.quiet = opt.quiet;
    ro.after_backward = [&, arm](int64_t step, model::Llama& m) {
      progress.tick(step);
      if (opt.after_backward) opt.after_backward(arm, step, m);
    };
    Trainer t(cfg, ro);
    if (before) before(t);
    const RunResult r = t.run();
    return !r.time_limited && r.last_step >= target;
  };

  // Dense baseline.
  if (newest_checkpoint_step(dense_dir) < plan.steps) {
    RunOptions ro;
    ro.run_dir = dense_dir;
    if (newest_checkpoint_step(dense_dir) > 0) ro.resume = dense_dir;
    stopped = !run_arm("dense", plan.dense, ro, false, "all layers dense, steps to " + std::to_string(plan.steps),
                       plan.steps);
  }

  // Stage 1, segment by segment up to each switch step, then its snapshot.
  for (size_t i = 0; i < plan.switch_steps.size() && !stopped; ++i) {
    const int64_t k = plan.switch_steps[i];
    const std::string branch = join(join(out, "branches"), step_dir_name(k));
    if (io::is_regular_file(join(branch, "state.json"))) continue;
    const int64_t have = newest_checkpoint_step(stage1_dir);
    if (have < k) {
      RunOptions ro;
      ro.run_dir = stage1_dir;
      ro.stop_after = k;
      if (have > 0) ro.resume = stage1_dir;
      stopped = !run_arm("stage1", plan.stage1, ro, true,
                         "Lighthouse, steps " + std::to_string(have + 1) + "-" + std::to_string(k) +
                             " (the branch point of " + switch_arm_name(plan.fractions[i]) + ")",
                         k);
      if (stopped) break;
    }
    io::make_dirs(join(out, "branches"));
    snapshot_branch(stage1_dir, k, branch);
    progress.line("branch point " + branch);
  }

  // The dense tails, each from its branch point.
  for (size_t i = 0; i < plan.fractions.size() && !stopped; ++i) {
    const std::string arm = switch_arm_name(plan.fractions[i]), dir = join(out, arm);
    const int64_t k = plan.switch_steps[i];
    const int64_t have = newest_checkpoint_step(dir);
    if (have >= plan.steps) continue;
    RunOptions ro;
    ro.run_dir = dir;
    ro.resume = have > 0 ? dir : join(join(out, "branches"), step_dir_name(k));
    std::function<void(Trainer&)> before;
    if (!io::is_regular_file(join(dir, "switch.json"))) {
      // First start: the branch weights, now dense, on the validation batches.
      before = [&, dir, k](Trainer& t) {
        const config::Config& c = t.config();
        data::Loader val(c.data.dir, data::Split::kVal, c.train.batch, c.train.seq_len,
                         static_cast<uint64_t>(c.train.seed));
        const double dense = evaluate(t.model(), val, c.eval.batches);
        double lighthouse = std::nan("");
        for (const Json& v : read_jsonl(join(stage1_dir, "val.jsonl")))
          if (v["step"].get<int64_t>() == k && v.value("attention", "") == "lighthouse")
            lighthouse = v["val_loss"].get<double>();
        io::write_file_atomic(join(dir, "switch.json"), Json{{"step", k},
                                                             {"val_loss_lighthouse", lighthouse},
                                                             {"val_loss_dense", dense},
                                                             {"val_tokens", c.eval.batches * c.train.batch *
                                                                                c.train.seq_len}}
                                                            .dump(1) +
                                                            "\n");
        progress.line(arm + ": validation loss at step " + std::to_string(k) + ": " + fixed(lighthouse, 4) +
                      " with Lighthouse layers -> " + fixed(dense, 4) + " dense");
      };
    }
    stopped = !run_arm(arm, plan.tails[i], ro, false,
                       "dense tail, steps " + std::to_string(std::max(have, k) + 1) + "-" +
                           std::to_string(plan.steps) + " from " + ro.resume,
                       plan.steps, before);
  }

  StudyReport report = summarize_study(plan, out);
  progress.line(report.complete ? "complete: " + join(out, "study.md")
                                : "stopped by the time limit; run the same command again to continue");
  return report;
}

StudyReport summarize_study(const StudyPlan& plan, const std::string& out) {
  const int64_t S = plan.steps, every = plan.base.eval.every;
  const int64_t tokens_per_step = plan.base.train.batch * plan.base.train.seq_len * plan.base.train.grad_accum;
  const std::string dense_dir = join(out, "dense"), stage1_dir = join(out, "stage1");
  struct Arm {
    std::string name, kind;
    double fraction = 0;
    int64_t k = 0;
    ArmCurves c;
    double before = std::nan(""), after = std::nan("");
  };
  std::vector<Arm> arms;
  {
    Arm a;
    a.name = "dense";
    a.kind = "dense";
    a.c.metrics = stitch({{dense_dir, 1, S}});
    a.c.val = select_val(dense_dir, 1, S, every, {});
    arms.push_back(std::move(a));
  }
  for (size_t i = 0; i < plan.fractions.size(); ++i) {
    Arm a;
    a.name = switch_arm_name(plan.fractions[i]);
    a.kind = "two-stage";
    a.fraction = plan.fractions[i];
    a.k = plan.switch_steps[i];
    const std::string dir = join(out, a.name);
    a.c.metrics = stitch({{stage1_dir, 1, a.k}, {dir, a.k + 1, S}});
    a.c.val = select_val(stage1_dir, 1, a.k, every, {a.k});
    const std::string sw = join(dir, "switch.json");
    if (io::is_regular_file(sw)) {
      const Json j = Json::parse(io::read_file(sw));
      a.before = j.value("val_loss_lighthouse", std::nan(""));
      a.after = j.value("val_loss_dense", std::nan(""));
      a.c.val.push_back({{"step", a.k}, {"stage", 2}, {"attention", "dense"}, {"val_loss", a.after}});
    }
    for (Json& v : select_val(dir, a.k + 1, S, every, {})) a.c.val.push_back(std::move(v));
    arms.push_back(std::move(a));
  }

  Json jarms = Json::array();
  const Arm& dense = arms.front();
  const bool dense_complete = static_cast<int64_t>(dense.c.metrics.size()) == S;
  const RunResult dense_result = as_run_result("dense", dense.c, 0, 0, 0);
  double dense_seconds = 0;
  std::string table =
      "| arm | switch after step | steps (tokens) | final val loss | vs dense | train wall-clock | vs dense | "
      "val jump at switch (L -> D) | training jump | steps to recover | at/below dense from step |\n"
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  double dense_final = std::nan("");
  bool all_complete = true;
  io::make_dirs(join(out, "arms"));
  for (Arm& a : arms) {
    const int64_t n = static_cast<int64_t>(a.c.metrics.size());
    a.c.complete = n == S;
    all_complete = all_complete && a.c.complete;
    // Training-step seconds; a segment's first step at its kind's median.
    std::map<std::string, std::vector<double>> by_kind;
    for (const Json& m : a.c.metrics)
      if (!m["segment_start"].get<bool>()) by_kind[m.value("attention", "")].push_back(m.value("step_s", 0.0));
    std::map<std::string, double> med;
    for (const auto& [kind, v] : by_kind) med[kind] = median(v);
    double raw = 0, steady = 0;
    Json loss = Json::array();
    std::vector<Json> curve;
    std::vector<double> cumulative;
    for (const Json& m : a.c.metrics) {
      const double dt = m.value("step_s", 0.0);
      const std::string kind = m.value("attention", "");
      raw += dt;
      steady += m["segment_start"].get<bool>() && med.count(kind) ? med[kind] : dt;
      cumulative.push_back(steady);
      loss.push_back(m["loss"]);
      curve.push_back({{"step", m["step"]},
                       {"stage", m.value("attention", "") == "dense" && a.kind != "dense" ? 2 : 1},
                       {"attention", kind},
                       {"loss", m["loss"]},
                       {"tokens", m["step"].get<int64_t>() * tokens_per_step},
                       {"step_s", dt},
                       {"elapsed_s", steady}});
    }
    Json val = Json::array();
    std::vector<Json> val_curve;
    for (const Json& v : a.c.val) {
      const int64_t s = v["step"].get<int64_t>();
      const double wall = s >= 1 && s <= n ? cumulative[static_cast<size_t>(s - 1)] : std::nan("");
      Json r = {{"step", s},
                {"tokens", s * tokens_per_step},
                {"attention", v.value("attention", "")},
                {"val_loss", v["val_loss"]},
                {"train_seconds", wall}};
      val.push_back(r);
      r["elapsed_s"] = wall;
      val_curve.push_back(std::move(r));
    }
    const std::string arm_dir = join(join(out, "arms"), a.name);
    io::make_dirs(arm_dir);
    write_jsonl(join(arm_dir, "metrics.jsonl"), curve);
    write_jsonl(join(arm_dir, "val.jsonl"), val_curve);

    double final_val = std::nan("");
    if (a.c.complete)
      for (const Json& v : a.c.val)
        if (v["step"].get<int64_t>() == S) final_val = v["val_loss"].get<double>();
    Json j = {{"name", a.name},
              {"kind", a.kind},
              {"complete", a.c.complete},
              {"steps_done", n},
              {"tokens", n * tokens_per_step},
              {"final_val_loss", final_val},
              {"train_seconds", steady},
              {"train_seconds_raw", raw},
              {"train_loss", loss},
              {"val", val}};
    Json ckpts = {{"final", a.kind == "dense" ? join(join(dense_dir, "checkpoints"), step_dir_name(S))
                                              : join(join(join(out, a.name), "checkpoints"), step_dir_name(S))}};
    std::string row_switch = "-", jump = "-", train_jump = "-", recover = "-", below = "-";
    if (a.kind == "two-stage") {
      j["fraction"] = a.fraction;
      j["switch_step"] = a.k;
      ckpts["switch"] = join(join(out, "branches"), step_dir_name(a.k));
      row_switch = std::to_string(a.k) + " (" + fixed(a.fraction, 4) + ")";
      if (n > a.k && !std::isnan(a.after)) {
        const RunResult main = as_run_result(a.name, a.c, a.k, a.before, a.after);
        const Comparison c = compare_runs(main, dense_complete ? &dense_result : nullptr);
        j["switch"] = comparison_json(c, main, dense_complete ? &dense_result : nullptr)["switch"];
        jump = fixed(a.before, 4) + " -> " + fixed(a.after, 4) + " (" + signed_fixed(c.val_jump, 3) + ")";
        train_jump = signed_fixed(c.train_jump, 3);
        if (a.c.complete) {
          recover = c.recovered_step > 0 ? std::to_string(c.recovered_step - a.k) : "not within the run";
          below = !dense_complete          ? "(dense incomplete)"
                  : c.below_baseline_step > 0 ? std::to_string(c.below_baseline_step)
                                              : "never";
        }
      }
    }
    j["checkpoints"] = ckpts;
    if (a.kind == "dense") {
      dense_final = final_val;
      dense_seconds = steady;
    }
    const bool vs = a.c.complete && dense_complete && a.kind != "dense";
    table += "| " + a.name + " | " + row_switch + " | " + std::to_string(n) + " (" +
             format_count(static_cast<double>(n * tokens_per_step)) + ")" + (a.c.complete ? "" : ", incomplete") +
             " | " + (std::isnan(final_val) ? "-" : fixed(final_val, 4)) + " | " +
             (vs ? signed_fixed(final_val - dense_final, 4) : "-") + " | " + format_duration(steady) + " | " +
             (vs && dense_seconds > 0 ? signed_fixed(100.0 * (steady / dense_seconds - 1.0), 1) + "%" : "-") + " | " +
             jump + " | " + train_jump + " | " + recover + " | " + below + " |\n";
    jarms.push_back(std::move(j));
  }

  StudyReport r;
  r.complete = all_complete;
  r.table = table;
  Json fr = Json::array(), ks = Json::array();
  for (size_t i = 0; i < plan.fractions.size(); ++i) {
    fr.push_back(plan.fractions[i]);
    ks.push_back(plan.switch_steps[i]);
  }
  r.json = {{"study",
             {{"out_dir", out},
              {"complete", all_complete},
              {"steps", S},
              {"tokens_per_step", tokens_per_step},
              {"tokens_per_arm", S * tokens_per_step},
              {"fractions", fr},
              {"switch_steps", ks},
              {"eval_every", every},
              {"eval_batches", plan.base.eval.batches},
              {"val_tokens", plan.base.eval.batches * plan.base.train.batch * plan.base.train.seq_len},
              {"seed", plan.base.train.seed},
              {"data_dir", plan.base.data.dir},
              {"config", config::to_toml(plan.base)},
              {"definitions",
               "train_seconds: training steps only (a process segment's first step at its attention's median "
               "step time); switch: recipe.h (val jump = same weights dense minus Lighthouse on the same "
               "validation batches; training jump and recovery relative to the dense arm on the same batch)"}}},
            {"arms", jarms}};
  io::write_file_atomic(join(out, "study.json"), r.json.dump(1) + "\n");
  std::string md = "# Study " + out + (all_complete ? "" : " (incomplete)") + "\n\n" + std::to_string(S) +
                   " steps of " + std::to_string(tokens_per_step) + " tokens per arm (" +
                   format_count(static_cast<double>(S * tokens_per_step)) + "), validation every " +
                   std::to_string(every) + " steps on " + std::to_string(plan.base.eval.batches) +
                   " batches.\n\n" + table;
  io::write_file_atomic(join(out, "study.md"), md);
  return r;
}

}  // namespace lighthouse::train
