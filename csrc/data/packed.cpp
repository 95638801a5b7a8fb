/*
 * read_packed_split(): one split of a packed directory, checked against its
 * manifest (packed.h).
 */
#include "data/packed.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/tokenizer.h"
#include "io/files.h"

namespace lighthouse::data {
namespace {

using Json = nlohmann::ordered_json;

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

}  // namespace

const char* split_name(Split s) { return s == Split::kTrain ? "train" : "val"; }

PackedSplit read_packed_split(const std::string& dir, Split split) {
  const std::string where = "packed dataset '" + dir + "'";
  if (!io::is_directory(dir)) fail(where + ": no such directory (run `lighthouse data` to make one)");
  const std::string manifest_path = dir + "/manifest.json";
  if (!io::path_exists(manifest_path))
    fail(where + ": no manifest.json, not a packed dataset (run `lighthouse data --out " + dir + "`)");
  PackedSplit out;
  out.dir = dir;
  out.split = split;
  try {
    const Json m = Json::parse(io::read_file(manifest_path));
    if (!m.is_object() || m.value("format", "") != kPackFormat)
      fail(where + ": manifest.json is not a lighthouse-packed manifest");
    if (m.at("format_version").get<int>() != kPackFormatVersion)
      fail(where + ": format version " + m.at("format_version").dump() + ", this build reads " +
           std::to_string(kPackFormatVersion) + " (re-run `lighthouse data`)");
    if (m.at("tokenizer").get<std::string>() != kTokenizerName)
      fail(where + ": tokenizer " + m.at("tokenizer").dump() + ", expected " + kTokenizerName);
    out.dataset_id = m.at("dataset_id").get<std::string>();
    const Json& s = m.at("splits").at(split_name(split));
    const int64_t documents = s.at("documents").get<int64_t>();
    const uint64_t bytes = s.at("bytes").get<uint64_t>();
    if (documents == 0)
      fail(where + ": the " + std::string(split_name(split)) + " split is empty" +
           (split == Split::kVal ? " (packed with --val-fraction 0?)" : ""));
    out.bytes.reserve(bytes);
    for (const Json& sh : s.at("shards")) {
      const std::string path = dir + "/" + sh.at("name").get<std::string>();
      std::string data = io::read_file(path);
      if (data.size() != sh.at("bytes").get<uint64_t>())
        fail(where + ": shard '" + path + "' has " + std::to_string(data.size()) + " bytes, the manifest says " +
             sh.at("bytes").dump() + " (truncated or modified; re-run `lighthouse data`)");
      if (io::sha256_hex(data) != sh.at("sha256").get<std::string>())
        fail(where + ": shard '" + path +
             "' does not match its sha256 in the manifest (corrupt; re-run `lighthouse data`)");
      out.bytes.insert(out.bytes.end(), data.begin(), data.end());
    }
    if (out.bytes.size() != bytes)
      fail(where + ": the shards hold " + std::to_string(out.bytes.size()) + " bytes, the manifest says " +
           std::to_string(bytes));
    const std::string idx_path = dir + "/" + s.at("index").at("name").get<std::string>();
    const std::string idx = io::read_file(idx_path);
    if (idx.size() != 8 * static_cast<uint64_t>(documents + 1) ||
        io::sha256_hex(idx) != s.at("index").at("sha256").get<std::string>())
      fail(where + ": index '" + idx_path + "' does not match the manifest (corrupt; re-run `lighthouse data`)");
    out.offsets.resize(static_cast<size_t>(documents + 1));
    for (size_t i = 0; i < out.offsets.size(); ++i) {
      uint64_t v = 0;
      for (int b = 7; b >= 0; --b) v = (v << 8) | static_cast<unsigned char>(idx[8 * i + b]);
      out.offsets[i] = v;
      if (i > 0 && v <= out.offsets[i - 1]) fail(where + ": index '" + idx_path + "' is not increasing (corrupt)");
    }
    if (out.offsets.front() != 0 || out.offsets.back() != bytes)
      fail(where + ": index '" + idx_path + "' does not span the shards (corrupt)");
  } catch (const nlohmann::json::exception& e) {
    fail(where + ": corrupt manifest.json: " + e.what());
  }
  return out;
}

}  // namespace lighthouse::data
