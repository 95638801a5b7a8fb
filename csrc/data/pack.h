/*
 * Packing text into byte-token shards (torch-free; `lighthouse data` runs it).
 *
 * Output directory (format "lighthouse-packed", version 1):
 *   manifest.json          format, tokenizer "bytes-v1", counts, the options,
 *                          every input file (path, size, sha256, split or
 *                          skip reason), every shard (size, sha256), and a
 *                          dataset_id (sha256 over the shards and indexes)
 *   <split>-NNNNN.bin      the split's document bytes, concatenated, cut into
 *                          shards of at most shard_bytes (a document may
 *                          span two shards)
 *   <split>.idx            uint64 little-endian document start offsets into
 *                          the split's concatenated bytes, plus the total
 *                          (documents + 1 entries)
 * for split in {train, val}. The token stream of a split is, per document,
 * BOS + bytes + EOS: tokens = bytes + 2 * documents. Stored as raw bytes
 * (1 byte per text token), so the Linux documentation corpus packs to about
 * 24 MB.
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

namespace lighthouse::data {

constexpr int kPackFormatVersion = 1;
constexpr const char* kPackFormat = "lighthouse-packed";

enum class Split { kTrain, kVal };
const char* split_name(Split);  // "train" / "val"

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

// One split of a packed directory in memory, checked against the manifest
// (shard sizes and sha256, index consistency). Errors name the directory and
// what is wrong (not a packed dataset, other format version, missing or
// corrupt shard, empty split).
struct PackedSplit {
  std::string dir;
  Split split = Split::kTrain;
  std::string dataset_id;
  std::vector<uint8_t> bytes;     // the split's documents, concatenated
  std::vector<uint64_t> offsets;  // document starts into bytes, plus bytes.size()
  int64_t documents() const { return static_cast<int64_t>(offsets.empty() ? 0 : offsets.size() - 1); }
  uint64_t tokens() const { return bytes.size() + 2 * static_cast<uint64_t>(documents()); }
};
PackedSplit read_packed_split(const std::string& dir, Split split);

}  // namespace lighthouse::data
