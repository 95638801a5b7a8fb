/*
 * Packing text into byte-token shards (torch-free; `lighthouse data` runs it).
 *
 * Output: a packed directory as packed.h describes it (manifest, shards,
 * index per split); the Linux documentation corpus packs to about 24 MB.
 *
 * Determinism: the output depends only on the input files' relative paths
 * and contents and on the options (no time stamps, no absolute paths other
 * than the inputs as given): input files are walked in sorted order, then
 * shuffled with the seed; --max-bytes takes files in that shuffled order
 * (the last one cut at a UTF-8 boundary); the first documents of that order
 * go to val until val holds val_fraction of the bytes; the rest, in the same
 * order, to train. A document is one input file.
 *
 * Skipped, counted and listed (never silently): empty files and files that
 * are not text (any NUL byte, or more than 1% of bytes in invalid UTF-8 or
 * in control characters other than tab, newline, CR, FF, VT, ESC), and
 * entries that are not regular files (dangling links, FIFOs, ...). Errors
 * (std::runtime_error naming the path): a missing input, an unreadable
 * file, no text at all, out_dir that exists and is not a packed dataset.
 * pack() writes into "<out_dir>.partial" and renames it into place when
 * complete, replacing an older pack at out_dir.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "data/packed.h"

namespace lighthouse::data {

struct PackProgress {
  int64_t files_done = 0, files_total = 0;
  uint64_t bytes_read = 0;
};

struct PackOptions {
  std::vector<std::string> inputs;  // files or directories of text (walked recursively)
  std::string out_dir;
  double val_fraction = 0.01;  // of the bytes; 0: no val split
  uint64_t seed = 0;
  uint64_t max_bytes = 0;  // 0: no cap; else at most this many document bytes in all
  uint64_t shard_bytes = 16u << 20;
  std::function<void(const PackProgress&)> progress;  // optional, called after each file
};

struct SkippedFile {
  std::string path;
  std::string reason;  // "empty", "binary: NUL bytes", "binary: 3.1% invalid UTF-8", "not a regular file", ...
};

struct PackSummary {
  std::string out_dir;
  int64_t files_seen = 0;     // entries found in the inputs (files, and dangling links, FIFOs, ...)
  int64_t files_skipped = 0;  // empty, not text or not a regular file (listed in `skipped`)
  int64_t files_unused = 0;   // text files left out by max_bytes
  std::vector<SkippedFile> skipped;
  int64_t train_documents = 0, val_documents = 0;
  uint64_t train_bytes = 0, val_bytes = 0;    // document bytes
  uint64_t train_tokens = 0, val_tokens = 0;  // bytes + 2 per document (BOS, EOS)
  uint64_t bytes_on_disk = 0;                 // everything written to out_dir
  std::string dataset_id;
};

PackSummary pack(const PackOptions&);

// Where scripts/setup.sh installs the default corpus: $LIGHTHOUSE_CORPUS_DIR
// if set, else the reStructuredText sources of Debian's linux-doc-6.1
// (/usr/share/doc/linux-doc-6.1/html/_sources).
std::string default_corpus_dir();

// Text classification used by pack(): "" if text, else the skip reason.
std::string classify_text(std::string_view bytes);

}  // namespace lighthouse::data
