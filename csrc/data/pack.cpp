/*
 * pack(): text files -> byte shards + document index + manifest (pack.h;
 * the format and its reader: packed.h).
 */
#include "data/pack.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "data/pack_output.h"
#include "data/rng.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "io/utf8.h"

namespace lighthouse::data {
namespace {

using Json = nlohmann::ordered_json;
using detail::check_replaceable;
using detail::utf8_cut;

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

std::string percent(uint64_t part, uint64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", 100.0 * static_cast<double>(part) / static_cast<double>(whole));
  return buf;
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

}  // namespace

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
  const std::string out_dir = opt.out_dir, partial = opt.out_dir + ".partial";
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
  auto write = [&](const char* name, const std::vector<const InputFile*>& docs) {
    std::vector<uint64_t> sizes;
    for (const InputFile* d : docs) sizes.push_back(d->text.size());
    return detail::write_split(
        partial, name, sizes, [&](size_t i) { return std::string_view(docs[i]->text); }, opt.shard_bytes,
        &sum.bytes_on_disk);
  };
  const detail::SplitOut tr = write("train", train);
  const detail::SplitOut va = write("val", val);
  sum.dataset_id = detail::dataset_id(tr, va);
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
  m["splits"] = detail::splits_json(tr, va);
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

  detail::install_pack(partial, out_dir);
  return sum;
}

}  // namespace lighthouse::data
