/*
 * Runs the plotting script built into the program (csrc/eval/plots.py,
 * embedded at build time) with python3, so plots need no Python package
 * from the source tree. Torch-free: the trainer links it too.
 *
 * Failure to plot is never fatal to the caller's real work: the functions
 * return "" when the PNG was written, else a one-line reason (python3 not
 * found, matplotlib missing, the script's error); callers print it as a
 * warning (evaluation, training) or an error (`lighthouse plot`).
 * The interpreter is $LIGHTHOUSE_PYTHON if set, else python3 on PATH.
 */
#pragma once

#include <string>
#include <vector>

namespace lighthouse::eval {

// The embedded script's text.
const std::string& plots_script();

// Runs `python3 plots.py args...`; "" on success, else why not.
std::string run_plots(const std::vector<std::string>& args);

// The figures (see plots.py): a NIAH heatmap from niah.json; loss-by-position
// lines from loss.json files (every result in them); training and validation
// loss of run directories (arms, or roots of arms) vs tokens and wall-clock.
std::string plot_niah(const std::string& niah_json, const std::string& png);
std::string plot_loss(const std::vector<std::string>& loss_jsons, const std::string& png);
std::string plot_runs(const std::vector<std::string>& run_dirs, const std::string& png);

}  // namespace lighthouse::eval
