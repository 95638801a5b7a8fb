/*
 * The evaluation harness over a recipe study (study_eval.h).
 */
#include "eval/study_eval.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "eval/evaluate.h"
#include "eval/plot.h"
#include "io/files.h"

namespace lighthouse::eval {

namespace {

std::string join(const std::string& a, const std::string& b) { return a + "/" + b; }

std::string fixed(double v, int digits) { return std::isnan(v) ? "-" : train::format_fixed(v, digits); }

Json read_json(const std::string& path) { return Json::parse(io::read_file(path)); }

struct Point {
  std::string arm, point, checkpoint, attention;  // attention "" = as the checkpoint's config trains
};

}  // namespace

StudyEval evaluate_study(const StudyEvalOptions& o) {
  const std::string study_json = join(o.study_dir, "study.json");
  if (!io::is_regular_file(study_json)) {
    throw std::runtime_error("no " + study_json + ": run `lighthouse study` (or --report) on " + o.study_dir +
                             " first");
  }
  const Json study = read_json(study_json);
  std::vector<Point> points;
  for (const Json& arm : study.at("arms")) {
    const std::string name = arm.at("name").get<std::string>();
    const Json& ck = arm.at("checkpoints");
    if (arm.at("complete").get<bool>()) points.push_back({name, "final", ck.at("final").get<std::string>(), "dense"});
    if (ck.contains("switch")) {
      // The Stage-1 checkpoint exists once Stage 1 passed the switch step.
      const std::string sw = ck.at("switch").get<std::string>();
      if (io::is_directory(sw)) {
        points.push_back({name, "lighthouse-at-switch", sw, "lighthouse"});
        points.push_back({name, "dense-at-switch", sw, "dense"});
      }
    }
  }
  if (points.empty()) throw std::runtime_error(o.study_dir + " has no complete arm and no switch checkpoint yet");

  Json rows = Json::array(), all_loss = Json::array();
  std::string table =
      "| arm | model | step | attention | passkey accuracy | p(right digit) | held-out loss | loss, last "
      "positions | seconds |\n|---|---|---:|---|---:|---:|---:|---:|---:|\n";
  size_t index = 0;
  for (const Point& p : points) {
    ++index;
    const std::string dir = join(join(join(o.study_dir, "eval"), p.arm), p.point);
    const std::string niah_path = join(dir, "niah.json"), loss_path = join(dir, "loss.json");
    double seconds = 0;
    if (!io::is_regular_file(niah_path) || !io::is_regular_file(loss_path)) {
      if (!o.quiet) {
        std::fprintf(stderr, "[study eval %zu/%zu] %s %s: %s (%s attention)\n", index, points.size(), p.arm.c_str(),
                     p.point.c_str(), p.checkpoint.c_str(), p.attention.c_str());
      }
      NiahJob nj;
      nj.checkpoint = p.checkpoint;
      nj.attention = p.attention;
      nj.device = o.device;
      nj.contexts = o.contexts;
      nj.trials = o.trials;
      nj.seed = o.seed;
      nj.out_dir = dir;
      nj.quiet = o.quiet;
      io::make_dirs(dir);
      const NiahResult nr = run_niah_job(nj);
      LossJob lj;
      lj.checkpoints = {p.checkpoint};
      lj.attention = p.attention;
      lj.device = o.device;
      lj.windows = o.loss_windows;
      lj.out_dir = dir;
      lj.quiet = o.quiet;
      const std::vector<LossResult> lr = run_loss_job(lj);
      seconds = nr.seconds + lr.at(0).seconds;
    }
    const Json niah = read_json(niah_path);
    Json loss = read_json(loss_path).at("results").at(0);
    loss["model"]["run"] = p.arm;
    all_loss.push_back(loss);
    const double acc = niah.at("mean_accuracy").get<double>(), pc = niah.at("mean_p_correct").get<double>();
    const double held_out = loss.at("loss").get<double>();
    const double last_bucket = loss.at("buckets").back().at("loss").get<double>();
    if (seconds == 0) seconds = niah.value("seconds", 0.0) + loss.value("seconds", 0.0);
    const int64_t step = loss.at("model").value("step", int64_t{-1});
    rows.push_back({{"arm", p.arm},
                    {"point", p.point},
                    {"checkpoint", p.checkpoint},
                    {"step", step},
                    {"attention", p.attention},
                    {"niah_mean_accuracy", acc},
                    {"niah_mean_p_correct", pc},
                    {"niah_contexts", niah.at("protocol").at("contexts")},
                    {"niah_trials", niah.at("protocol").at("trials")},
                    {"loss", held_out},
                    {"loss_last_bucket", last_bucket},
                    {"loss_last_bucket_first", loss.at("buckets").back().at("first")},
                    {"seconds", seconds},
                    {"dir", dir}});
    table += "| " + p.arm + " | " + p.point + " | " + std::to_string(step) + " | " + p.attention + " | " +
             fixed(acc, 3) + " | " + fixed(pc, 3) + " | " + fixed(held_out, 4) + " | " + fixed(last_bucket, 4) +
             " | " + fixed(seconds, 1) + " |\n";
  }

  std::vector<std::string> warnings;
  // The combined loss-by-position figure: final models and the Lighthouse
  // model at each switch (the dense-at-switch lines sit on the finals' scale
  // and are in eval/<arm>/dense-at-switch/).
  Json shown = Json::array();
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].point != "dense-at-switch") shown.push_back(all_loss[i]);
  }
  const std::string shown_path = join(join(o.study_dir, "eval"), "loss_by_position.json");
  write_json(shown_path, Json{{"format", "lighthouse-loss"}, {"version", 1}, {"results", shown}});
  std::string why = plot_loss({shown_path}, join(o.study_dir, "loss_by_position.png"));
  if (!why.empty()) warnings.push_back("loss_by_position.png: " + why);
  why = plot_runs({join(o.study_dir, "arms")}, join(o.study_dir, "curves.png"));
  if (!why.empty()) warnings.push_back("curves.png: " + why);

  StudyEval out;
  out.json = {{"format", "lighthouse-study-eval"},
              {"version", 1},
              {"study_dir", o.study_dir},
              {"trials", o.trials},
              {"seed", o.seed},
              {"rows", rows}};
  out.table = table;
  write_json(join(o.study_dir, "eval.json"), out.json);
  io::write_file_atomic(join(o.study_dir, "eval.md"),
                        "# Evaluation of the study's models\n\nPasskey test (EVAL.md section 3) and held-out loss "
                        "by position (section 2); \"loss, last positions\" is the last position bucket.\n\n" +
                            table);
  for (const std::string& w : warnings) std::fprintf(stderr, "warning: no plot %s\n", w.c_str());
  return out;
}

}  // namespace lighthouse::eval
