/*
 * Shards, index, dataset id and the final swap of a packed directory
 * (pack_output.h).
 */
#include "data/pack_output.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "io/files.h"

namespace lighthouse::data::detail {

size_t utf8_cut(std::string_view s, size_t limit) {
  if (limit >= s.size()) return s.size();
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80 && limit - cut < 3) --cut;
  return cut;
}

bool is_packed_file_name(const std::string& name) {
  if (name == "manifest.json" || name == "documents.tsv" || name == "spool.tmp") return true;
  auto ends = [&](const char* suffix) {
    std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return (name.rfind("train", 0) == 0 || name.rfind("val", 0) == 0) && (ends(".bin") || ends(".idx"));
}

void check_replaceable(const std::string& dir, const std::string& what) {
  if (!io::path_exists(dir)) return;
  if (!io::is_directory(dir)) throw std::runtime_error(what + " '" + dir + "' exists and is not a directory");
  for (const std::string& name : io::list_dir(dir)) {
    if (!io::is_regular_file(dir + "/" + name) || !is_packed_file_name(name))
      throw std::runtime_error(what + " '" + dir + "' exists and is not a packed dataset (it holds '" + name +
                               "'); choose another output directory");
  }
}

SplitOut write_split(const std::string& dir, const char* name, const std::vector<uint64_t>& sizes,
                     const std::function<std::string_view(size_t)>& doc, uint64_t shard_bytes, uint64_t* on_disk) {
  SplitOut out;
  std::vector<uint64_t> offsets{0};
  for (uint64_t s : sizes) offsets.push_back(offsets.back() + s);
  out.bytes = offsets.back();
  out.documents = static_cast<int64_t>(sizes.size());

  size_t d = 0, doc_pos = 0;
  std::string_view text;
  if (!sizes.empty()) text = doc(0);
  for (int shard = 0; d < sizes.size(); ++shard) {
    char shard_name[64];
    std::snprintf(shard_name, sizeof(shard_name), "%s-%05d.bin", name, shard);
    io::AtomicFile f(dir + "/" + shard_name);
    io::Sha256 sha;
    uint64_t written = 0;
    while (d < sizes.size() && written < shard_bytes) {
      if (text.size() != sizes[d])
        throw std::runtime_error("pack: document " + std::to_string(d) + " of " + name + " changed size while packing");
      const size_t take = static_cast<size_t>(std::min<uint64_t>(text.size() - doc_pos, shard_bytes - written));
      f.write(text.data() + doc_pos, take);
      sha.update(text.data() + doc_pos, take);
      written += take;
      doc_pos += take;
      if (doc_pos == text.size()) {
        ++d, doc_pos = 0;
        if (d < sizes.size()) text = doc(d);
      }
    }
    f.commit();
    out.shards.push_back(Json{{"name", shard_name}, {"bytes", written}, {"sha256", sha.hex_digest()}});
    *on_disk += written;
  }
  std::string idx(offsets.size() * 8, '\0');
  for (size_t i = 0; i < offsets.size(); ++i)
    for (int b = 0; b < 8; ++b) idx[8 * i + b] = static_cast<char>((offsets[i] >> (8 * b)) & 0xff);
  const std::string idx_name = std::string(name) + ".idx";
  io::write_file_atomic(dir + "/" + idx_name, idx);
  *on_disk += idx.size();
  out.index = Json{{"name", idx_name}, {"bytes", idx.size()}, {"sha256", io::sha256_hex(idx)}};
  return out;
}

std::string dataset_id(const SplitOut& train, const SplitOut& val) {
  io::Sha256 id;
  for (const SplitOut* s : {&train, &val}) {
    id.update(s->index["sha256"].get<std::string>());
    for (const auto& sh : s->shards) id.update(sh["sha256"].get<std::string>());
    id.update("|");
  }
  return id.hex_digest();
}

Json splits_json(const SplitOut& train, const SplitOut& val) {
  Json splits;
  for (const auto& [name, s] : {std::pair<const char*, const SplitOut*>{"train", &train}, {"val", &val}}) {
    splits[name] = {{"documents", s->documents},
                    {"bytes", s->bytes},
                    {"tokens", s->tokens()},
                    {"index", s->index},
                    {"shards", s->shards}};
  }
  return splits;
}

void install_pack(const std::string& partial, const std::string& out_dir) {
  const std::string old = out_dir + ".old";
  check_replaceable(old, "leftover directory");
  io::remove_tree(old);
  if (io::path_exists(out_dir)) io::rename_path(out_dir, old);
  io::rename_path(partial, out_dir);
  io::remove_tree(old);
  const std::string canon = io::canonical_path(out_dir);
  io::fsync_dir(canon.substr(0, std::max<size_t>(1, canon.find_last_of('/'))));
}

}  // namespace lighthouse::data::detail
