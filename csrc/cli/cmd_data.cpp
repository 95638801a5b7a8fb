/*
 * `lighthouse data`: packs text into byte-token shards with a held-out
 * validation split and a manifest.
 *
 *   lighthouse data [INPUT...] [--out DIR]      files/directories (pack.h); with no
 *                                               INPUT the small default corpus
 *                                               (Debian's linux-doc-6.1 sources)
 *   lighthouse data --corpus large [--max-train-tokens 110M] [--out DIR]
 *                                               a named corpus of Debian packages
 *                                               (corpus.h), unpacked under --root
 *   lighthouse data --corpus large --list-packages   its packages, one a line
 *   lighthouse data --verify DIR [--dataset-id ID]   check a packed directory
 *
 * Prints progress on stderr and a summary on stdout; exit code 1 with the
 * error (what to install, what to change) on failure.
 */
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "commands.h"
#include "data/corpus.h"
#include "data/pack.h"
#include "data/verify.h"
#include "io/files.h"

namespace lighthouse::cli {
namespace {

std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

std::string millions(uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2fM", static_cast<double>(n) / 1e6);
  return buf;
}

void print_skipped(const std::vector<data::SkippedFile>& skipped, const char* listed_in) {
  const size_t show = std::min<size_t>(skipped.size(), 10);
  for (size_t i = 0; i < show; ++i)
    std::printf("    skipped  %s (%s)\n", skipped[i].path.c_str(), skipped[i].reason.c_str());
  if (skipped.size() > show) std::printf("    ... and %zu more (see %s)\n", skipped.size() - show, listed_in);
}

void print_splits(const data::PackSummary& s) {
  std::printf("  train      %lld documents, %llu tokens\n", static_cast<long long>(s.train_documents),
              static_cast<unsigned long long>(s.train_tokens));
  std::printf("  val        %lld documents, %llu tokens\n", static_cast<long long>(s.val_documents),
              static_cast<unsigned long long>(s.val_tokens));
  std::printf("  on disk    %s (tokenizer bytes-v1, 1 byte per text token)\n", mb(s.bytes_on_disk).c_str());
  std::printf("  dataset_id %s\n", s.dataset_id.c_str());
}

int verify_main(const std::string& dir, const std::string& expected) {
  const data::PackVerification v = data::verify_packed(dir);
  if (!expected.empty() && v.dataset_id != expected)
    throw std::runtime_error("packed dataset '" + dir + "' is dataset " + v.dataset_id + ", expected " + expected +
                             " (another pack, or another subset: re-carry it)");
  std::printf("verified %s: %lld shards, %s checked\n", dir.c_str(), static_cast<long long>(v.shards),
              mb(v.bytes).c_str());
  std::printf("  train      %lld documents, %llu tokens\n", static_cast<long long>(v.train_documents),
              static_cast<unsigned long long>(v.train_tokens));
  std::printf("  val        %lld documents, %llu tokens\n", static_cast<long long>(v.val_documents),
              static_cast<unsigned long long>(v.val_tokens));
  std::printf("  dataset_id %s%s\n", v.dataset_id.c_str(), expected.empty() ? "" : " (as expected)");
  return 0;
}

int corpus_main(data::CorpusPackOptions opt, bool quiet) {
  const bool tty = isatty(2);
  auto last = std::chrono::steady_clock::now();
  std::string last_source;
  if (!quiet) {
    opt.progress = [&](const data::CorpusProgress& p) {
      const auto now = std::chrono::steady_clock::now();
      const bool new_source = p.source != last_source;
      if (!new_source && now - last < std::chrono::seconds(tty ? 1 : 10)) return;
      last = now;
      if (tty && new_source && !last_source.empty()) std::fputc('\n', stderr);
      last_source = p.source;
      std::fprintf(stderr, tty ? "\r[data] %-14s %lld files read, %s   " : "[data] %s: %lld files read, %s\n",
                   p.source.c_str(), static_cast<long long>(p.files), mb(p.bytes).c_str());
      std::fflush(stderr);
    };
    std::fprintf(stderr, "[data] packing corpus %s from %s into %s\n", opt.corpus.name.c_str(),
                 (opt.root.empty() ? data::default_debian_root() : opt.root).c_str(), opt.out_dir.c_str());
  }
  const data::CorpusPackSummary s = data::pack_corpus(opt);
  if (!quiet && tty) std::fputc('\n', stderr);

  std::printf("packed %s (corpus %s)\n", s.pack.out_dir.c_str(), opt.corpus.name.c_str());
  std::printf("  %-14s %-17s %-19s %-5s %7s %7s %5s %9s %12s %11s %8s\n", "source", "package", "version", "kind",
              "files", "skipped", "dups", "documents", "train tokens", "val tokens", "unused");
  uint64_t prose = 0, train = 0;
  for (const data::SourceSummary& ss : s.sources) {
    std::printf("  %-14s %-17s %-19s %-5s %7lld %7lld %5lld %9lld %12s %11s %8lld\n", ss.name.c_str(),
                ss.package.c_str(), ss.version.c_str(), ss.kind.c_str(), static_cast<long long>(ss.files),
                static_cast<long long>(ss.skipped), static_cast<long long>(ss.duplicates),
                static_cast<long long>(ss.documents), millions(ss.train_tokens).c_str(),
                millions(ss.val_tokens).c_str(), static_cast<long long>(ss.unused_documents));
    train += ss.train_tokens;
    if (ss.kind == "prose") prose += ss.train_tokens;
  }
  std::printf("  files      %lld read, %lld skipped (not text or empty), %lld duplicates, %lld documents unused "
              "(caps), %lld archive members outside the sources, %lld links not followed\n",
              static_cast<long long>(s.pack.files_seen), static_cast<long long>(s.pack.files_skipped - s.duplicates),
              static_cast<long long>(s.duplicates), static_cast<long long>(s.pack.files_unused),
              static_cast<long long>(s.excluded_members), static_cast<long long>(s.non_regular));
  print_skipped(s.pack.skipped, "documents.tsv");
  if (train > 0)
    std::printf("  prose      %.1f%% of the train tokens\n", 100.0 * static_cast<double>(prose) / static_cast<double>(train));
  print_splits(s.pack);
  return 0;
}

int data_main(int argc, char** argv) {
  CLI::App app{"Pack text into byte-token shards + a validation split (tokenizer bytes-v1)", "lighthouse data"};
  data::PackOptions opt;
  std::vector<std::string> inputs;
  uint64_t shard_mb = 16, max_train_tokens = 0;
  bool quiet = false, list_packages = false;
  std::string corpus = "small", root, verify_dir, expected_id;
  opt.out_dir = "data/packed";
  app.add_option("inputs", inputs,
                 "text files or directories (walked recursively); default: the installed corpus (" +
                     data::default_corpus_dir() + ")");
  app.add_option("--corpus", corpus,
                 "a named corpus instead of INPUT: small (the default, linux-doc-6.1) or large (Debian packages "
                 "unpacked under --root; README Data)")
      ->capture_default_str();
  app.add_option("--root", root, "where the corpus's Debian packages are unpacked (default $LIGHTHOUSE_DEBIAN_ROOT or " +
                                     data::default_debian_root() + ")");
  app.add_option("-o,--out", opt.out_dir,
                 "output directory (replaced if it holds an older pack); default data/packed, data/<corpus> with "
                 "--corpus");
  app.add_option("--val-fraction", opt.val_fraction,
                 "fraction of the bytes held out for validation, by document (default 0.01; the corpus's own "
                 "with --corpus)")
      ->check(CLI::Range(0.0, 0.999));
  app.add_option("--seed", opt.seed, "seed of the document order and the split")->capture_default_str();
  app.add_option("--max-bytes", opt.max_bytes,
                 "cap on the document bytes in all (e.g. 30MB); files taken in the seeded order, 0: no cap")
      ->transform(CLI::AsSizeValue(true));
  app.add_option("--max-train-tokens", max_train_tokens,
                 "with --corpus: cap on the train tokens (e.g. 110M), whole documents in the seeded order; the "
                 "val split stays that of the full corpus")
      ->transform(CLI::AsSizeValue(true));
  double recall_share = 0;
  app.add_option("--recall-share", recall_share,
                 "with --corpus: add synthetic retrieval documents (a fact asked for at the end; templates and "
                 "filler disjoint from the passkey test's) of this share of the train tokens, e.g. 0.01")
      ->check(CLI::Range(0.0, 0.5));
  app.add_option("--shard-mb", shard_mb, "shard size in MB (1e6 bytes)")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app.add_flag("--list-packages", list_packages, "with --corpus: print its Debian packages, one a line, and exit");
  app.add_option("--verify", verify_dir, "check the packed directory DIR against its manifest and exit");
  app.add_option("--dataset-id", expected_id, "with --verify: the dataset id it must have");
  app.add_flag("-q,--quiet", quiet, "no progress output");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  opt.shard_bytes = shard_mb * 1000000;

  if (!verify_dir.empty()) return verify_main(verify_dir, expected_id);
  if (!expected_id.empty()) throw std::runtime_error("--dataset-id goes with --verify DIR");

  if (corpus != "small") {
    const data::Corpus& named = data::find_corpus(corpus);
    if (list_packages) {
      for (const std::string& p : named.packages()) std::printf("%s\n", p.c_str());
      return 0;
    }
    if (!inputs.empty())
      throw std::runtime_error("give either INPUT files/directories or --corpus " + corpus + ", not both");
    if (opt.max_bytes != 0)
      throw std::runtime_error("--max-bytes caps packs of files/directories; with --corpus use --max-train-tokens");
    data::CorpusPackOptions c;
    c.corpus = named;
    if (app.count("--val-fraction")) c.corpus.val_fraction = opt.val_fraction;
    c.root = root;
    c.out_dir = app.count("--out") ? opt.out_dir : "data/" + corpus;
    c.seed = opt.seed;
    c.max_train_tokens = max_train_tokens;
    c.recall_share = recall_share;
    c.shard_bytes = opt.shard_bytes;
    return corpus_main(c, quiet);
  }
  if (list_packages) {
    std::printf("linux-doc-6.1\n");
    return 0;
  }
  if (max_train_tokens != 0)
    throw std::runtime_error("--max-train-tokens goes with --corpus large; cap files/directories with --max-bytes");
  if (recall_share != 0) throw std::runtime_error("--recall-share goes with --corpus large");
  if (!root.empty()) throw std::runtime_error("--root goes with --corpus large");

  if (inputs.empty()) {
    const std::string dir = data::default_corpus_dir();
    if (!io::is_directory(dir))
      throw std::runtime_error("the default corpus '" + dir +
                               "' is not installed: run `bash scripts/setup.sh` (installs Debian's linux-doc-6.1) or "
                               "name text files or directories to pack");
    inputs.push_back(dir);
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
  print_skipped(s.skipped, "manifest.json");
  print_splits(s);
  return 0;
}

}  // namespace

LIGHTHOUSE_COMMAND(data, "pack text into byte-token shards with a validation split", data_main);

}  // namespace lighthouse::cli
