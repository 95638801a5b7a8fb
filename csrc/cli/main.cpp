/*
 * `lighthouse <command> ...`: the project's command-line entry point. The
 * commands register themselves (commands.h); errors become one clear line
 * and exit code 1.
 */
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>

#include "commands.h"

namespace lighthouse::cli {

std::vector<Command>& command_registry() {
  static std::vector<Command> commands;
  return commands;
}

}  // namespace lighthouse::cli

namespace {

void usage(FILE* out) {
  auto commands = lighthouse::cli::command_registry();
  std::sort(commands.begin(), commands.end(),
            [](const auto& a, const auto& b) { return std::strcmp(a.name, b.name) < 0; });
  std::fprintf(out, "usage: lighthouse <command> [options]\n\ncommands:\n");
  for (const auto& c : commands) std::fprintf(out, "  %-8s %s\n", c.name, c.help);
  std::fprintf(out, "\n`lighthouse <command> --help` shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : lighthouse::cli::command_registry()) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.main(argc - 1, argv + 1);
    } catch (const c10::Error& e) {
      std::fprintf(stderr, "lighthouse %s: error: %s\n", c.name, e.what_without_backtrace());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lighthouse %s: error: %s\n", c.name, e.what());
    }
    return 1;
  }
  std::fprintf(stderr, "lighthouse: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
