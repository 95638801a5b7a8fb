/*
 * `lighthouse data [INPUT...] [--out DIR]`: packs text into byte-token
 * shards with a held-out validation split and a manifest (data/pack.h).
 * With no INPUT, packs the installed corpus (Debian's linux-doc-6.1
 * reStructuredText sources, installed by scripts/setup.sh). Prints progress
 * on stderr and a summary on stdout.
 */
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.h"
#include "data/pack.h"
#include "io/files.h"

namespace lighthouse::cli {
namespace {

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

int data_main(int argc, char** argv) {
  CLI::App app{"Pack text files into byte-token shards + a validation split (tokenizer bytes-v1)", "lighthouse data"};
  data::PackOptions opt;
  std::vector<std::string> inputs;
  uint64_t shard_mb = 16;
  bool quiet = false;
  opt.out_dir = "data/packed";
  app.add_option("inputs", inputs,
                 "text files or directories (walked recursively); default: the installed corpus (" +
                     data::default_corpus_dir() + ")");
  app.add_option("-o,--out", opt.out_dir, "output directory (replaced if it holds an older pack)")
      ->capture_default_str();
  app.add_option("--val-fraction", opt.val_fraction, "fraction of the bytes held out for validation, by document")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 0.999));
  app.add_option("--seed", opt.seed, "seed of the document order and the split")->capture_default_str();
  app.add_option("--max-bytes", opt.max_bytes,
                 "cap on the document bytes in all (e.g. 30MB); files taken in the seeded order, 0: no cap")
      ->transform(CLI::AsSizeValue(true));
  app.add_option("--shard-mb", shard_mb, "shard size in MB (1e6 bytes)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_flag("-q,--quiet", quiet, "no progress output");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  opt.shard_bytes = shard_mb * 1000000;
  if (inputs.empty()) {
    const std::string corpus = data::default_corpus_dir();
    if (!io::is_directory(corpus))
      throw std::runtime_error("the default corpus '" + corpus +
                               "' is not installed: run `bash scripts/setup.sh` (installs Debian's linux-doc-6.1) or "
                               "name text files or directories to pack");
    inputs.push_back(corpus);
  }
  opt.inputs = inputs;

  const bool tty = isatty(2);
  auto last = std::chrono::steady_clock::now();
  int64_t last_decile = -1;
  if (!quiet) {
    opt.progress = [&](const data::PackProgress& p) {
      const bool done = p.files_done == p.files_total;
      if (tty) {
        auto now = std::chrono::steady_clock::now();
        if (!done && now - last < std::chrono::milliseconds(200)) return;
        last = now;
        std::fprintf(stderr, "\r[data] read %lld/%lld files, %s%s", static_cast<long long>(p.files_done),
                     static_cast<long long>(p.files_total), mb(p.bytes_read).c_str(), done ? "\n" : "   ");
      } else {
        const int64_t decile = p.files_total ? p.files_done * 10 / p.files_total : 10;
        if (decile == last_decile) return;
        last_decile = decile;
        std::fprintf(stderr, "[data] read %lld/%lld files, %s\n", static_cast<long long>(p.files_done),
                     static_cast<long long>(p.files_total), mb(p.bytes_read).c_str());
      }
      std::fflush(stderr);
    };
    std::fprintf(stderr, "[data] packing %zu input(s) into %s\n", inputs.size(), opt.out_dir.c_str());
  }

  const data::PackSummary s = data::pack(opt);

  std::printf("packed %s\n", s.out_dir.c_str());
  std::printf("  files      %lld seen, %lld skipped (not text or empty), %lld unused (--max-bytes)\n",
              static_cast<long long>(s.files_seen), static_cast<long long>(s.files_skipped),
              static_cast<long long>(s.files_unused));
  const size_t show = std::min<size_t>(s.skipped.size(), 10);
  for (size_t i = 0; i < show; ++i)
    std::printf("    skipped  %s (%s)\n", s.skipped[i].path.c_str(), s.skipped[i].reason.c_str());
  if (s.skipped.size() > show) std::printf("    ... and %zu more (see manifest.json)\n", s.skipped.size() - show);
  std::printf("  train      %lld documents, %llu tokens\n", static_cast<long long>(s.train_documents),
              static_cast<unsigned long long>(s.train_tokens));
  std::printf("  val        %lld documents, %llu tokens\n", static_cast<long long>(s.val_documents),
              static_cast<unsigned long long>(s.val_tokens));
  std::printf("  on disk    %s (tokenizer bytes-v1, 1 byte per text token)\n", mb(s.bytes_on_disk).c_str());
  std::printf("  dataset_id %s\n", s.dataset_id.c_str());
  return 0;
}

}  // namespace

LIGHTHOUSE_COMMAND(data, "pack text into byte-token shards with a validation split", data_main);

}  // namespace lighthouse::cli
