/*
 * Checking a packed directory against its manifest (torch-free): every
 * shard's and index's size and sha256, the index's consistency with the
 * shards, and the dataset id recomputed from the files. For datasets that
 * travelled (scripts/corpus-carry.sh unpacks, then `lighthouse data
 * --verify DIR --dataset-id ID`).
 */
#pragma once

#include <cstdint>
#include <string>

namespace lighthouse::data {

struct PackVerification {
  std::string dataset_id;  // recomputed; equal to the manifest's
  int64_t train_documents = 0, val_documents = 0;
  uint64_t train_tokens = 0, val_tokens = 0;
  int64_t shards = 0;
  uint64_t bytes = 0;  // shard + index bytes checked
};

// Throws std::runtime_error naming the directory and the first mismatch
// (missing or corrupt file, an index that does not span its shards, a
// dataset id that differs from the manifest's).
PackVerification verify_packed(const std::string& dir);

}  // namespace lighthouse::data
