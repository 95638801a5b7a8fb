/*
 * `lighthouse <command> ...`: the project's command-line entry point.
 */
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstring>
#include <exception>

#include "commands.h"

namespace {

struct Command {
  const char* name;
  const char* help;
  int (*main)(int, char**);
};

const Command kCommands[] = {
    {"bench", "op benchmark: Lighthouse vs dense causal SDPA (CPU or CUDA)", lighthouse::cli::bench_main},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: lighthouse <command> [options]\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(out, "  %-8s %s\n", c.name, c.help);
  std::fprintf(out, "\n`lighthouse <command> --help` shows a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (!std::strcmp(argv[1], c.name)) {
      try {
        return c.main(argc - 1, argv + 1);
      } catch (const c10::Error& e) {
        std::fprintf(stderr, "lighthouse %s: error: %s\n", c.name, e.what_without_backtrace());
        return 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "lighthouse %s: error: %s\n", c.name, e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "lighthouse: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
