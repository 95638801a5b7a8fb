/*
 * verify_packed(): a packed directory's files against its manifest
 * (verify.h), with the dataset id recomputed as pack_output.h defines it.
 */
#include "data/verify.h"

#include <stdexcept>

#include "data/pack.h"
#include "data/pack_output.h"
#include "io/files.h"

namespace lighthouse::data {

PackVerification verify_packed(const std::string& dir) {
  const std::string where = "packed dataset '" + dir + "'";
  auto fail = [&](const std::string& what) -> void { throw std::runtime_error(where + ": " + what); };
  if (!io::is_directory(dir)) fail("no such directory");
  if (!io::is_regular_file(dir + "/manifest.json")) fail("no manifest.json (not a packed dataset)");
  PackVerification out;
  try {
    const detail::Json m = detail::Json::parse(io::read_file(dir + "/manifest.json"));
    if (!m.is_object() || m.value("format", "") != kPackFormat) fail("manifest.json is not a lighthouse-packed manifest");
    if (m.at("format_version").get<int>() != kPackFormatVersion)
      fail("format version " + m.at("format_version").dump() + ", this build reads " +
           std::to_string(kPackFormatVersion));
    detail::SplitOut splits[2];
    const char* names[2] = {"train", "val"};
    for (int k = 0; k < 2; ++k) {
      const detail::Json& s = m.at("splits").at(names[k]);
      detail::SplitOut& so = splits[k];
      so.documents = s.at("documents").get<int64_t>();
      so.bytes = s.at("bytes").get<uint64_t>();
      uint64_t shard_total = 0;
      for (const detail::Json& sh : s.at("shards")) {
        const std::string path = dir + "/" + sh.at("name").get<std::string>();
        if (!io::is_regular_file(path)) fail("shard '" + path + "' is missing");
        const std::string data = io::read_file(path);
        if (data.size() != sh.at("bytes").get<uint64_t>())
          fail("shard '" + path + "' has " + std::to_string(data.size()) + " bytes, the manifest says " +
               sh.at("bytes").dump());
        if (io::sha256_hex(data) != sh.at("sha256").get<std::string>())
          fail("shard '" + path + "' does not match its sha256 in the manifest (corrupt)");
        shard_total += data.size();
        so.shards.push_back(sh);
        ++out.shards;
      }
      if (shard_total != so.bytes)
        fail(std::string(names[k]) + " shards hold " + std::to_string(shard_total) + " bytes, the manifest says " +
             std::to_string(so.bytes));
      const std::string idx_path = dir + "/" + s.at("index").at("name").get<std::string>();
      if (!io::is_regular_file(idx_path)) fail("index '" + idx_path + "' is missing");
      const std::string idx = io::read_file(idx_path);
      if (idx.size() != 8 * static_cast<uint64_t>(so.documents + 1) ||
          io::sha256_hex(idx) != s.at("index").at("sha256").get<std::string>())
        fail("index '" + idx_path + "' does not match the manifest (corrupt)");
      uint64_t prev = 0;
      for (int64_t i = 0; i <= so.documents; ++i) {
        uint64_t v = 0;
        for (int b = 7; b >= 0; --b) v = (v << 8) | static_cast<unsigned char>(idx[8 * i + b]);
        if ((i == 0 && v != 0) || (i > 0 && v <= prev)) fail("index '" + idx_path + "' is not increasing from 0");
        prev = v;
      }
      if (prev != so.bytes) fail("index '" + idx_path + "' does not span the shards");
      so.index = s.at("index");
      out.bytes += shard_total + idx.size();
    }
    out.dataset_id = detail::dataset_id(splits[0], splits[1]);
    if (out.dataset_id != m.at("dataset_id").get<std::string>())
      fail("the files give dataset id " + out.dataset_id + ", the manifest says " + m.at("dataset_id").dump());
    out.train_documents = splits[0].documents;
    out.val_documents = splits[1].documents;
    out.train_tokens = splits[0].tokens();
    out.val_tokens = splits[1].tokens();
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("corrupt manifest.json: ") + e.what());
  }
  return out;
}

}  // namespace lighthouse::data
