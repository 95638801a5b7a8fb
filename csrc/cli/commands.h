/*
 * Subcommands of the `lighthouse` program. Each takes the arguments after
 * its name (argv[0] is the subcommand) and returns the process exit code.
 */
#pragma once

namespace lighthouse::cli {

int bench_main(int argc, char** argv);

}  // namespace lighthouse::cli
