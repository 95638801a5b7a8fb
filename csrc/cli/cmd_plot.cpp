/*
 * `lighthouse plot RUN_DIR... --out FILE.png`: figures of runs, drawn by the
 * plotting script built into the program (csrc/eval/plot.h).
 *
 *   --kind curves    training and validation loss vs tokens and vs
 *                    wall-clock, stage switch marked, every run on one figure
 *                    (a run root such as runs/tiny stands for its arms)
 *   --kind position  loss by position from each run's loss.json (or loss.json
 *                    files given directly), one line per result
 *   --kind niah      the passkey heatmap of one run's niah.json (or the file)
 */
#include <CLI/CLI.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.h"
#include "eval/plot.h"
#include "io/files.h"

namespace lighthouse::cli {
namespace {

// `name` inside each path (a file itself, a run, or a root of runs).
std::vector<std::string> find_files(const std::vector<std::string>& paths, const std::string& name) {
  std::vector<std::string> out;
  for (const std::string& p : paths) {
    if (io::is_regular_file(p)) {
      out.push_back(p);
    } else if (io::is_regular_file(p + "/" + name)) {
      out.push_back(p + "/" + name);
    } else {
      const size_t before = out.size();
      if (io::is_directory(p)) {
        for (const std::string& sub : io::list_dir(p)) {
          if (io::is_regular_file(p + "/" + sub + "/" + name)) out.push_back(p + "/" + sub + "/" + name);
        }
      }
      if (out.size() == before) throw std::invalid_argument("no " + name + " in " + p + " or its runs");
    }
  }
  return out;
}

int plot_main(int argc, char** argv) {
  std::vector<std::string> paths;
  std::string out, kind = "curves";
  CLI::App app{"Plot runs: loss curves (training and validation vs tokens and wall-clock, the stage switch marked), "
               "loss by position, or a passkey heatmap.",
               "lighthouse plot"};
  app.add_option("runs", paths, "run directories (arms), roots of runs (e.g. runs/tiny), or result files")
      ->required();
  app.add_option("--out", out, "PNG file to write")->required();
  app.add_option("--kind", kind, "curves | position | niah")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::string why;
  if (kind == "curves") {
    why = eval::plot_runs(paths, out);
  } else if (kind == "position") {
    why = eval::plot_loss(find_files(paths, "loss.json"), out);
  } else if (kind == "niah") {
    const std::vector<std::string> files = find_files(paths, "niah.json");
    if (files.size() != 1) throw std::invalid_argument("--kind niah draws one niah.json; found " +
                                                       std::to_string(files.size()));
    why = eval::plot_niah(files[0], out);
  } else {
    throw std::invalid_argument("--kind must be curves, position or niah, got '" + kind + "'");
  }
  if (!why.empty()) throw std::runtime_error(why);
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

LIGHTHOUSE_COMMAND(plot, "plot runs: loss curves, loss by position, passkey heatmap", plot_main);

}  // namespace lighthouse::cli
