/*
 * The packed dataset format and its reader (torch-free): what pack()
 * (pack.h) writes and the Loader (loader.h) reads. The reader needs nothing
 * of the packer.
 *
 * Directory (format "lighthouse-packed", version 1):
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
 * (1 byte per text token).
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lighthouse::data {

constexpr int kPackFormatVersion = 1;
constexpr const char* kPackFormat = "lighthouse-packed";

enum class Split { kTrain, kVal };
const char* split_name(Split);  // "train" / "val"

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
