/*
 * pack(): text files -> byte shards + document index + manifest (pack.h),
 * and read_packed_split(), its checked reader.
 */
#include "data/pack.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/rng.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "io/utf8.h"

namespace lighthouse::data {
namespace {

using Json = nlohmann::ordered_json;

constexpr uint64_t kShuffleStream = 1;

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

struct InputFile {
  int input = 0;
  std::string rel;   // path relative to its input directory (or the file as given)
  std::string path;  // path to open
  // Filled while packing.
  enum Status { kUnused, kSkipped, kTrain, kVal } status = kUnused;
  uint64_t bytes = 0, used_bytes = 0;
  std::string sha256, reason;
  std::string text;  // the document (used part), until written
};

// Largest cut <= limit that does not split a UTF-8 sequence.
size_t utf8_cut(std::string_view s, size_t limit) {
  if (limit >= s.size()) return s.size();
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xc0) == 0x80 && limit - cut < 3) --cut;
  return cut;
}

std::string percent(uint64_t part, uint64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

bool is_packed_file_name(const std::string& name) {
  if (name == "manifest.json") return true;
  auto ends = [&](const char* suffix) {
    std::string s(suffix);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return (name.rfind("train", 0) == 0 || name.rfind("val", 0) == 0) && (ends(".bin") || ends(".idx"));
}

// Throws unless `dir` is absent, empty or holds only files pack() writes.
void check_replaceable(const std::string& dir, const std::string& what) {
  if (!io::path_exists(dir)) return;
  if (!io::is_directory(dir)) fail(what + " '" + dir + "' exists and is not a directory");
  for (const std::string& name : io::list_dir(dir)) {
    if (!io::is_regular_file(dir + "/" + name) || !is_packed_file_name(name))
      fail(what + " '" + dir + "' exists and is not a packed dataset (it holds '" + name +
           "'); choose another output directory");
  }
}

// Regular files under dir (symlinks followed), as paths relative to it, in
// sorted order; directories in `skip` (canonical paths) are not entered.
// Other entries (dangling links, sockets, FIFOs) go to `others`.
void walk(const std::string& dir, const std::string& rel, const std::vector<std::string>& skip,
          std::vector<std::string>* out, std::vector<std::string>* others) {
  for (const std::string& name : io::list_dir(dir)) {
    const std::string path = dir + "/" + name, r = rel.empty() ? name : rel + "/" + name;
    if (io::is_directory(path)) {
      if (std::find(skip.begin(), skip.end(), io::canonical_path(path)) != skip.end()) continue;
      walk(path, r, skip, out, others);
    } else if (io::is_regular_file(path)) {
      out->push_back(r);
    } else {
      others->push_back(path);
    }
  }
}

void collect(const PackOptions& opt, std::vector<InputFile>* files, std::vector<SkippedFile>* others) {
  // Never pack our own output (out_dir inside an input).
  const std::vector<std::string> skip = {io::canonical_path(opt.out_dir), io::canonical_path(opt.out_dir + ".partial"),
                                         io::canonical_path(opt.out_dir + ".old")};
  for (size_t i = 0; i < opt.inputs.size(); ++i) {
    std::string in = opt.inputs[i];
    while (in.size() > 1 && in.back() == '/') in.pop_back();
    if (!io::path_exists(in)) fail("input '" + in + "' does not exist");
    if (io::is_directory(in)) {
      std::vector<std::string> rels, other;
      walk(in, "", skip, &rels, &other);
      for (const std::string& o : other) others->push_back({o, "not a regular file"});
      std::sort(rels.begin(), rels.end());
      for (const std::string& r : rels) {
        InputFile f;
        f.input = static_cast<int>(i);
        f.rel = r;
        f.path = in + "/" + r;
        files->push_back(std::move(f));
      }
    } else if (io::is_regular_file(in)) {
      InputFile f;
      f.input = static_cast<int>(i);
      f.rel = in;
      f.path = in;
      files->push_back(std::move(f));
    } else {
      fail("input '" + in + "' is neither a file nor a directory");
    }
  }
}

struct SplitOut {
  uint64_t bytes = 0;
  int64_t documents = 0;
  Json shards = Json::array();
  Json index;
};

// Writes one split's documents (in order) as shards + index into dir.
SplitOut write_split(const std::string& dir, const char* name, const std::vector<const InputFile*>& docs,
                     uint64_t shard_bytes, uint64_t* on_disk) {
  SplitOut out;
  std::vector<uint64_t> offsets{0};
  for (const InputFile* d : docs) offsets.push_back(offsets.back() + d->text.size());
  out.bytes = offsets.back();
  out.documents = static_cast<int64_t>(docs.size());

  size_t doc = 0, doc_pos = 0;
  for (int shard = 0; doc < docs.size(); ++shard) {
    char shard_name[64];
    std::snprintf(shard_name, sizeof(shard_name), "%s-%05d.bin", name, shard);
    io::AtomicFile f(dir + "/" + shard_name);
    io::Sha256 sha;
    uint64_t written = 0;
    while (doc < docs.size() && written < shard_bytes) {
      const std::string& t = docs[doc]->text;
      size_t take = static_cast<size_t>(std::min<uint64_t>(t.size() - doc_pos, shard_bytes - written));
      f.write(t.data() + doc_pos, take);
      sha.update(t.data() + doc_pos, take);
      written += take;
      doc_pos += take;
      if (doc_pos == t.size()) ++doc, doc_pos = 0;
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

}  // namespace

const char* split_name(Split s) { return s == Split::kTrain ? "train" : "val"; }

std::string default_corpus_dir() {
  if (const char* env = std::getenv("LIGHTHOUSE_CORPUS_DIR"); env && *env) return env;
  return "/usr/share/doc/linux-doc-6.1/html/_sources";
}

std::string classify_text(std::string_view bytes) {
  if (bytes.empty()) return "empty";
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t n = bytes.size();
  uint64_t invalid = 0, control = 0;
  for (size_t i = 0; i < n;) {
    const unsigned char c = p[i];
    if (c == 0) return "binary: NUL bytes";
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v' && c != 0x1b) || c == 0x7f)
        ++control;
      ++i;
      continue;
    }
    const size_t len = io::decode_utf8(bytes, i).length;
    if (len == 0) {
      ++invalid;
      ++i;
    } else {
      i += len;
    }
  }
  // More than 1%: not text (a stray byte or two in a long file is tolerated and kept as is).
  if (invalid * 100 > n) return "binary: " + percent(invalid, n) + " invalid UTF-8";
  if (control * 100 > n) return "binary: " + percent(control, n) + " control characters";
  return "";
}

PackSummary pack(const PackOptions& opt) {
  if (opt.inputs.empty()) fail("no input given: name text files or directories");
  if (opt.out_dir.empty()) fail("no output directory given");
  if (!(opt.val_fraction >= 0.0 && opt.val_fraction < 1.0))
    fail("val_fraction must be in [0, 1), got " + std::to_string(opt.val_fraction));
  if (opt.shard_bytes == 0) fail("shard_bytes must be positive");
  const std::string out_dir = opt.out_dir, partial = opt.out_dir + ".partial", old = opt.out_dir + ".old";
  check_replaceable(out_dir, "output directory");
  check_replaceable(partial, "leftover directory");

  std::vector<InputFile> files;
  PackSummary sum;
  collect(opt, &files, &sum.skipped);
  sum.out_dir = opt.out_dir;
  sum.files_seen = static_cast<int64_t>(files.size() + sum.skipped.size());
  if (files.empty()) fail("no files in the inputs (empty directory?)");

  // Read in the seeded order until max_bytes.
  std::vector<size_t> order(files.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  SplitMix64 rng(mix_seed(opt.seed, kShuffleStream, 0));
  shuffle(order, rng);
  std::vector<size_t> docs;  // indices into files, in order
  uint64_t total = 0, read_bytes = 0;
  PackProgress progress;
  progress.files_total = static_cast<int64_t>(files.size());
  bool full = false;
  for (size_t k = 0; k < order.size(); ++k) {
    InputFile& f = files[order[k]];
    if (full) {
      ++sum.files_unused;
      continue;
    }
    std::string text = io::read_file(f.path);  // throws "cannot read '<path>': <reason>"
    f.bytes = text.size();
    f.sha256 = io::sha256_hex(text);
    read_bytes += text.size();
    f.reason = classify_text(text);
    if (!f.reason.empty()) {
      f.status = InputFile::kSkipped;
      sum.skipped.push_back({f.path, f.reason});
    } else {
      if (opt.max_bytes > 0 && total + text.size() > opt.max_bytes) {
        text.resize(utf8_cut(text, opt.max_bytes - total));
        full = true;
      }
      if (text.empty()) {
        f.status = InputFile::kUnused;
        ++sum.files_unused;
      } else {
        f.used_bytes = text.size();
        f.text = std::move(text);
        total += f.used_bytes;
        docs.push_back(order[k]);
        f.status = InputFile::kTrain;
      }
    }
    progress.files_done = static_cast<int64_t>(k + 1);
    progress.bytes_read = read_bytes;
    if (opt.progress) opt.progress(progress);
  }
  if (opt.progress && full) {
    progress.files_done = progress.files_total;
    opt.progress(progress);
  }
  sum.files_skipped = static_cast<int64_t>(sum.skipped.size());
  if (docs.empty()) {
    int64_t empty = 0;
    for (const auto& s : sum.skipped) empty += s.reason == "empty";
    fail("no text in the inputs: " + std::to_string(sum.files_seen) + " file(s), all skipped (" +
         std::to_string(empty) + " empty, " + std::to_string(sum.files_skipped - empty) + " not text or not regular)");
  }

  // Split by document: the first documents of the order go to val.
  std::vector<const InputFile*> train, val;
  if (opt.val_fraction > 0.0) {
    if (docs.size() < 2)
      fail("cannot split 1 document into train and val: give more files, or val_fraction 0 (--val-fraction 0)");
    const double target = opt.val_fraction * static_cast<double>(total);
    uint64_t val_bytes = 0;
    for (size_t i = 0; i < docs.size(); ++i) {
      InputFile& f = files[docs[i]];
      if (static_cast<double>(val_bytes) < target && i + 1 < docs.size()) {
        f.status = InputFile::kVal;
        val_bytes += f.used_bytes;
        val.push_back(&f);
      } else {
        train.push_back(&f);
      }
    }
  } else {
    for (size_t i : docs) train.push_back(&files[i]);
  }

  // Write into <out>.partial, then swap it into place.
  io::remove_tree(partial);
  io::make_dirs(partial);
  const SplitOut tr = write_split(partial, "train", train, opt.shard_bytes, &sum.bytes_on_disk);
  const SplitOut va = write_split(partial, "val", val, opt.shard_bytes, &sum.bytes_on_disk);

  io::Sha256 id;
  for (const SplitOut* s : {&tr, &va}) {
    id.update(s->index["sha256"].get<std::string>());
    for (const auto& sh : s->shards) id.update(sh["sha256"].get<std::string>());
    id.update("|");
  }
  sum.dataset_id = id.hex_digest();
  sum.train_documents = tr.documents;
  sum.val_documents = va.documents;
  sum.train_bytes = tr.bytes;
  sum.val_bytes = va.bytes;
  sum.train_tokens = tr.bytes + 2 * static_cast<uint64_t>(tr.documents);
  sum.val_tokens = va.bytes + 2 * static_cast<uint64_t>(va.documents);

  Json m;
  m["format"] = kPackFormat;
  m["format_version"] = kPackFormatVersion;
  m["tokenizer"] = kTokenizerName;
  m["dataset_id"] = sum.dataset_id;
  m["options"] = {{"val_fraction", opt.val_fraction},
                  {"seed", opt.seed},
                  {"max_bytes", opt.max_bytes},
                  {"shard_bytes", opt.shard_bytes}};
  m["inputs"] = opt.inputs;
  m["counts"] = {{"files_seen", sum.files_seen},
                 {"files_skipped", sum.files_skipped},
                 {"files_unused", sum.files_unused},
                 {"documents", sum.train_documents + sum.val_documents},
                 {"bytes", sum.train_bytes + sum.val_bytes}};
  Json splits;
  for (const auto& [name, s] : {std::pair<const char*, const SplitOut*>{"train", &tr}, {"val", &va}}) {
    splits[name] = {{"documents", s->documents},
                    {"bytes", s->bytes},
                    {"tokens", s->bytes + 2 * static_cast<uint64_t>(s->documents)},
                    {"index", s->index},
                    {"shards", s->shards}};
  }
  m["splits"] = std::move(splits);
  Json fl = Json::array();
  static const char* kStatus[] = {"unused", "skipped", "train", "val"};
  for (const InputFile& f : files) {
    Json e = {{"input", f.input}, {"path", f.rel}, {"split", kStatus[f.status]}};
    if (f.status != InputFile::kUnused || !f.sha256.empty()) {
      e["bytes"] = f.bytes;
      e["sha256"] = f.sha256;
    }
    if (f.used_bytes != 0 && f.used_bytes != f.bytes) e["used_bytes"] = f.used_bytes;
    if (!f.reason.empty()) e["reason"] = f.reason;
    fl.push_back(std::move(e));
  }
  for (const SkippedFile& k : sum.skipped)
    if (k.reason == "not a regular file")
      fl.push_back(Json{{"path", k.path}, {"split", "skipped"}, {"reason", k.reason}});
  m["files"] = std::move(fl);
  const std::string manifest = m.dump(1) + "\n";
  io::write_file_atomic(partial + "/manifest.json", manifest);
  sum.bytes_on_disk += manifest.size();

  // Swap: old -> <out>.old, partial -> out, drop old.
  check_replaceable(old, "leftover directory");
  io::remove_tree(old);
  if (io::path_exists(out_dir)) io::rename_path(out_dir, old);
  io::rename_path(partial, out_dir);
  io::remove_tree(old);
  const std::string canon = io::canonical_path(out_dir);
  io::fsync_dir(canon.substr(0, std::max<size_t>(1, canon.find_last_of('/'))));
  return sum;
}

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
