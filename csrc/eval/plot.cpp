/*
 * Running the embedded plotting script (plot.h): the script is written to a
 * fresh temporary directory and run with posix_spawnp (no shell, so paths
 * need no quoting); the directory is removed afterwards.
 */
#include "eval/plot.h"

#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "io/files.h"

extern char** environ;

namespace lighthouse::eval {

namespace {

constexpr int kMissingMatplotlib = 3;  // plots.py's exit status

}  // namespace

std::string run_plots(const std::vector<std::string>& args) {
  const char* env = std::getenv("LIGHTHOUSE_PYTHON");
  const std::string python = env && *env ? env : "python3";
  std::string dir;
  try {
    dir = io::make_temp_dir("lighthouse-plots");
    io::write_file_atomic(dir + "/plots.py", plots_script());
  } catch (const std::exception& e) {
    if (!dir.empty()) io::remove_tree(dir);
    return std::string("cannot write the plotting script: ") + e.what();
  }
  std::vector<std::string> argv_s = {python, dir + "/plots.py"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ);
  int status = 0;
  if (rc == 0) {
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  io::remove_tree(dir);
  if (rc != 0) {
    return "cannot run " + python + " (" + std::strerror(rc) + "); install python3 with matplotlib or set " +
           "LIGHTHOUSE_PYTHON";
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status) && WEXITSTATUS(status) == kMissingMatplotlib) {
    return "matplotlib is not installed for " + python + " (pip install matplotlib)";
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127) return python + " was not found";
  return "the plotting script failed (" + python + " exit status " +
         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) + "; see above)";
}

std::string plot_niah(const std::string& niah_json, const std::string& png) {
  return run_plots({"niah", niah_json, png});
}

std::string plot_loss(const std::vector<std::string>& loss_jsons, const std::string& png) {
  std::vector<std::string> args = {"loss", png};
  args.insert(args.end(), loss_jsons.begin(), loss_jsons.end());
  return run_plots(args);
}

std::string plot_runs(const std::vector<std::string>& run_dirs, const std::string& png) {
  std::vector<std::string> args = {"runs", png};
  args.insert(args.end(), run_dirs.begin(), run_dirs.end());
  return run_plots(args);
}

}  // namespace lighthouse::eval
