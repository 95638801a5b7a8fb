/*
 * The writing side of a packed directory (pack.h's format), shared by
 * pack() (files and directories) and pack_corpus() (named corpora,
 * corpus.h): shards + index of one split, the dataset id, the manifest's
 * split entries, and the swap of "<out>.partial" into place. Internal to
 * lighthouse_data_core.
 *
 * dataset_id = sha256 over, per split (train, then val): the index's sha256
 * hex, every shard's sha256 hex, then "|". verify_packed() (verify.h)
 * recomputes it from the files.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace lighthouse::data::detail {

using Json = nlohmann::ordered_json;

// Largest cut <= limit that does not split a UTF-8 sequence of s.
size_t utf8_cut(std::string_view s, size_t limit);

// Whether pack() may have written a file of this name (manifest.json,
// train-NNNNN.bin, val.idx, ..., pack_corpus()'s documents.tsv and its
// transient spool.tmp).
bool is_packed_file_name(const std::string& name);
// Throws unless `dir` is absent, empty or holds only files pack() writes.
void check_replaceable(const std::string& dir, const std::string& what);

struct SplitOut {
  uint64_t bytes = 0;
  int64_t documents = 0;
  Json shards = Json::array();
  Json index;
  uint64_t tokens() const { return bytes + 2 * static_cast<uint64_t>(documents); }
};

// Writes one split's documents (sizes[i] bytes each, in order; doc(i) returns
// document i, valid until the next call) as shards of at most shard_bytes +
// the index into dir; adds the bytes written to *on_disk.
SplitOut write_split(const std::string& dir, const char* name, const std::vector<uint64_t>& sizes,
                     const std::function<std::string_view(size_t)>& doc, uint64_t shard_bytes, uint64_t* on_disk);

std::string dataset_id(const SplitOut& train, const SplitOut& val);
// {"train": {...}, "val": {...}}: documents, bytes, tokens, index, shards.
Json splits_json(const SplitOut& train, const SplitOut& val);

// Moves the finished `partial` directory to out_dir, replacing an older
// pack there (through "<out_dir>.old"), and fsyncs the parent.
void install_pack(const std::string& partial, const std::string& out_dir);

}  // namespace lighthouse::data::detail
