/*
 * Subcommands of the `lighthouse` program register themselves:
 *
 *   LIGHTHOUSE_COMMAND(train, "pre-train a model", train_main);
 *
 * in a csrc/cli/cmd_*.cpp file (linked into the program directly, so the
 * registration is never dropped). A command's main takes the arguments after
 * its name (argv[0] is the command name) and returns the exit code.
 */
#pragma once

#include <vector>

namespace lighthouse::cli {

struct Command {
  const char* name;
  const char* help;
  int (*main)(int argc, char** argv);
};

std::vector<Command>& command_registry();

struct CommandRegistrar {
  explicit CommandRegistrar(const Command& c) { command_registry().push_back(c); }
};

}  // namespace lighthouse::cli

#define LIGHTHOUSE_COMMAND(name, help, fn) \
  static ::lighthouse::cli::CommandRegistrar lighthouse_command_##name({#name, help, fn})
