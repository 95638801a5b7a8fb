/*
 * The built-in corpora and pack_corpus() (corpus.h): read the sources'
 * files and archive members into a spool, skip binaries and duplicates,
 * cut long documents, apply the per-source caps, split by document into
 * val and train, write shards, documents.tsv and the manifest.
 */
#include "data/corpus.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "data/archive.h"
#include "data/pack_output.h"
#include "data/rng.h"
#include "data/recall_mix.h"
#include "data/tokenizer.h"
#include "io/files.h"

namespace lighthouse::data {
namespace {

using detail::Json;

constexpr uint64_t kSourceStream = 3;  // per-source order for max_bytes (index: source)
constexpr uint64_t kOrderStream = 4;   // order of all documents: val first, then train
constexpr uint64_t kRecallInsertStream = 6;  // positions of the synthetic retrieval documents

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// The large corpus: the Linux 6.1 source tree (C and its Documentation/),
// GCIDE, and the Python, Perl, git and Linux man-page documentation.
Corpus large_corpus() {
  Corpus c;
  c.name = "large";
  c.description =
      "Linux 6.1 source (C, capped) and its Documentation/, the GCIDE English dictionary, "
      "Python 3.11, Perl 5.36 and git documentation, Linux man pages (Debian 12 packages)";
  c.val_fraction = 0.005;
  const std::string kernel = "usr/src/linux-source-6.1.tar.xz";
  c.sources = {
      {"kernel-docs", "linux-source-6.1", "prose", "GPL-2.0 (Linux kernel documentation)", kernel,
       {"linux-source-6.1/Documentation/*"}, {}, 0, 0},
      // The generated AMD GPU register headers (asic_reg/, 400 MB of
      // #defines, 30% of the tree) are left out.
      {"kernel-code", "linux-source-6.1", "code", "GPL-2.0 (Linux kernel; some files dual-licensed)", kernel,
       {"*"}, {"linux-source-6.1/drivers/gpu/drm/amd/include/asic_reg/*"}, 240'000'000, 0},
      // One 40 MB dictionary file: cut into 256 KiB documents at entry breaks.
      {"gcide", "dict-gcide", "prose", "GPL-2.0-or-later (GCIDE)", "", {"usr/share/dictd/gcide.dict.dz"}, {}, 0,
       256 * 1024},
      {"python-docs", "python3.11-doc", "prose", "PSF-2.0 (Python documentation)", "",
       {"usr/share/doc/python3.11/html/_sources/*.rst.txt"}, {}, 0, 0},
      {"perl-docs", "perl-doc", "prose", "GPL-1.0-or-later OR Artistic-1.0 (Perl documentation)", "",
       {"usr/share/perl/*/pod/*.pod"}, {}, 0, 0},
      {"git-docs", "git-doc", "prose", "GPL-2.0 (git documentation)", "", {"usr/share/doc/git-doc/*.txt"}, {}, 0, 0},
      {"man-pages", "manpages", "prose", "Linux man-pages copyleft, GPL-2.0-or-later, BSD (man-pages project)", "",
       {"usr/share/man/*"}, {}, 0, 0},
      {"man-pages-dev", "manpages-dev", "prose", "Linux man-pages copyleft, GPL-2.0-or-later, BSD (man-pages project)",
       "", {"usr/share/man/*"}, {}, 0, 0},
  };
  return c;
}

bool glob_match(const std::vector<std::string>& patterns, const std::string& name) {
  for (const std::string& p : patterns)
    if (::fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
  return false;
}

bool source_matches(const CorpusSource& s, const std::string& name) {
  return glob_match(s.include, name) && !glob_match(s.exclude, name);
}

// Regular files (not through symbolic links) under dir as sorted relative
// paths; the number of other entries (links, FIFOs, ...) into *others.
void walk_no_follow(const std::string& dir, const std::string& rel, std::vector<std::string>* files,
                    std::vector<std::string>* others) {
  for (const std::string& name : io::list_dir(dir)) {
    const std::string path = dir + "/" + name, r = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) fail("cannot stat '" + path + "': " + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) {
      walk_no_follow(path, r, files, others);
    } else if (S_ISREG(st.st_mode)) {
      files->push_back(r);
    } else {
      others->push_back(r);
    }
  }
}

// Appends text to a file and reads it back by offset (pread).
class Spool {
 public:
  explicit Spool(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create '" + path + "': " + std::strerror(errno));
  }
  ~Spool() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  uint64_t append(std::string_view s) {
    const uint64_t at = size_;
    for (size_t done = 0; done < s.size();) {
      const ssize_t n = ::write(fd_, s.data() + done, s.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("cannot write '" + path_ + "': " + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    size_ += s.size();
    return at;
  }
  std::string_view read(uint64_t offset, uint64_t size) {
    buf_.resize(size);
    for (uint64_t done = 0; done < size;) {
      const ssize_t n = ::pread(fd_, buf_.data() + done, size - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("cannot read back '" + path_ + "' at byte " + std::to_string(offset + done));
      done += static_cast<uint64_t>(n);
    }
    return buf_;
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string buf_;
};

// One file or archive member that a source matched.
struct Entry {
  int source = 0;
  std::string name;
  uint64_t bytes = 0, spool = 0;
  std::string sha256;
  std::string reason;  // "" text; else why it was skipped
  bool duplicate = false;
};

// One document: an entry's text, or a piece of it.
struct Doc {
  size_t entry = 0;
  std::string name;
  uint64_t spool = 0, bytes = 0;
  enum Split { kUnused, kTrain, kVal } split = kUnused;
};

// Piece boundaries of text: at most limit bytes each, cut after the last
// blank line, else after the last newline, else at a character boundary.
std::vector<std::pair<uint64_t, uint64_t>> pieces(std::string_view text, uint64_t limit) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  uint64_t pos = 0;
  while (text.size() - pos > limit) {
    const std::string_view window = text.substr(pos, limit);
    size_t cut = window.rfind("\n\n");
    if (cut != std::string_view::npos && cut > 0) {
      cut += 2;
    } else if ((cut = window.rfind('\n')) != std::string_view::npos && cut > 0) {
      cut += 1;
    } else {
      cut = detail::utf8_cut(text.substr(pos), limit);
      if (cut == 0) cut = limit;
    }
    out.emplace_back(pos, cut);
    pos += cut;
  }
  if (pos < text.size()) out.emplace_back(pos, text.size() - pos);
  return out;
}

std::string tsv_field(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> Corpus::packages() const {
  std::vector<std::string> out;
  for (const CorpusSource& s : sources)
    if (std::find(out.begin(), out.end(), s.package) == out.end()) out.push_back(s.package);
  return out;
}

const std::vector<Corpus>& named_corpora() {
  static const std::vector<Corpus> corpora = {large_corpus()};
  return corpora;
}

const Corpus& find_corpus(const std::string& name) {
  std::string known = "small (the default: linux-doc-6.1)";
  for (const Corpus& c : named_corpora()) {
    if (c.name == name) return c;
    known += ", " + c.name;
  }
  fail("unknown corpus '" + name + "'; known corpora: " + known);
}

std::string default_debian_root() {
  if (const char* env = std::getenv("LIGHTHOUSE_DEBIAN_ROOT"); env && *env) return env;
  return "data/debian";
}

std::vector<std::pair<std::string, std::string>> unpacked_packages(const std::string& root) {
  std::vector<std::pair<std::string, std::string>> out;
  const std::string path = root + "/packages.txt";
  if (!io::is_regular_file(path)) return out;
  std::istringstream in(io::read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string name, version;
    if (!(words >> name) || name[0] == '#') continue;
    words >> version;
    out.emplace_back(name, version);
  }
  return out;
}

std::vector<std::string> missing_packages(const Corpus& corpus, const std::string& root) {
  const auto have = unpacked_packages(root);
  std::vector<std::string> missing;
  for (const std::string& p : corpus.packages()) {
    const bool listed = std::any_of(have.begin(), have.end(), [&](const auto& h) { return h.first == p; });
    if (!listed || !io::is_directory(root + "/" + p)) missing.push_back(p);
  }
  return missing;
}

std::string install_hint(const Corpus& corpus, const std::vector<std::string>& missing, const std::string& root) {
  std::string names, debs;
  for (const std::string& p : missing) {
    names += (names.empty() ? "" : " ") + p;
    debs += (debs.empty() ? "" : " ") + p + "_*.deb";
  }
  return "the corpus '" + corpus.name + "' needs Debian packages that are not unpacked under '" + root + "': " +
         names + ".\nRun `LIGHTHOUSE_LARGE_CORPUS=1 bash scripts/setup.sh` (downloads and unpacks them into " +
         default_debian_root() + "), or by hand:\n  apt-get download " + names + "\n  for f in " + debs +
         "; do p=$(dpkg-deb -f \"$f\" Package); dpkg-deb -x \"$f\" " + root + "/$p; dpkg-deb -W --showformat='${Package} ${Version}\\n' \"$f\" >> " +
         root + "/packages.txt; done";
}

CorpusPackSummary pack_corpus(const CorpusPackOptions& opt) {
  const Corpus& corpus = opt.corpus;
  const std::string root = opt.root.empty() ? default_debian_root() : opt.root;
  if (corpus.sources.empty()) fail("corpus '" + corpus.name + "' has no sources");
  if (opt.out_dir.empty()) fail("no output directory given");
  if (!(corpus.val_fraction >= 0.0 && corpus.val_fraction < 1.0))
    fail("val_fraction must be in [0, 1), got " + std::to_string(corpus.val_fraction));
  if (opt.shard_bytes == 0) fail("shard_bytes must be positive");
  if (const auto missing = missing_packages(corpus, root); !missing.empty())
    fail(install_hint(corpus, missing, root));
  std::map<std::string, std::string> versions;
  for (const auto& [p, v] : unpacked_packages(root)) versions[p] = v;

  const std::string out_dir = opt.out_dir, partial = opt.out_dir + ".partial";
  detail::check_replaceable(out_dir, "output directory");
  detail::check_replaceable(partial, "leftover directory");
  io::remove_tree(partial);
  io::make_dirs(partial);

  CorpusPackSummary sum;
  sum.pack.out_dir = out_dir;
  const size_t nsrc = corpus.sources.size();
  sum.sources.resize(nsrc);
  for (size_t s = 0; s < nsrc; ++s) {
    const CorpusSource& cs = corpus.sources[s];
    SourceSummary& ss = sum.sources[s];
    ss.name = cs.name, ss.package = cs.package, ss.kind = cs.kind, ss.licence = cs.licence;
    ss.version = versions[cs.package];
  }

  // 1. Read: every matched file / member into the spool.
  std::vector<Entry> entries;
  CorpusProgress progress;
  auto spool_owner = std::make_unique<Spool>(partial + "/spool.tmp");
  Spool& spool = *spool_owner;
  auto record = [&](int source, const std::string& name, std::string_view text) {
    Entry e;
    e.source = source;
    e.name = name;
    e.bytes = text.size();
    e.sha256 = io::sha256_hex(text);
    e.reason = classify_text(text);
    if (e.reason.empty()) e.spool = spool.append(text);
    entries.push_back(std::move(e));
    ++progress.files;
    progress.bytes += text.size();
    progress.source = corpus.sources[static_cast<size_t>(source)].name;
    if (opt.progress) opt.progress(progress);
  };
  for (const std::string& package : corpus.packages()) {
    const std::string dir = root + "/" + package;
    std::vector<int> file_sources;
    std::vector<std::string> archives;
    for (size_t s = 0; s < nsrc; ++s) {
      const CorpusSource& cs = corpus.sources[s];
      if (cs.package != package) continue;
      if (cs.archive.empty()) {
        file_sources.push_back(static_cast<int>(s));
      } else if (std::find(archives.begin(), archives.end(), cs.archive) == archives.end()) {
        archives.push_back(cs.archive);
      }
    }
    if (!file_sources.empty()) {
      std::vector<std::string> files, others;
      walk_no_follow(dir, "", &files, &others);
      for (const std::string& rel : others)
        for (int s : file_sources)
          if (source_matches(corpus.sources[static_cast<size_t>(s)], rel)) {
            ++sum.non_regular;
            break;
          }
      for (const std::string& rel : files) {
        for (int s : file_sources) {
          if (!source_matches(corpus.sources[static_cast<size_t>(s)], rel)) continue;
          record(s, rel, read_decompressed(dir + "/" + rel));
          break;
        }
      }
    }
    for (const std::string& archive : archives) {
      const std::string path = dir + "/" + archive;
      if (!io::is_regular_file(path))
        fail("package " + package + " is listed in " + root + "/packages.txt but its archive '" + path +
             "' is missing: unpack the package again (" + install_hint(corpus, {package}, root) + ")");
      for_each_tar_member(path, [&](const TarMember& m, std::string_view data) {
        int match = -1;
        for (size_t s = 0; s < nsrc && match < 0; ++s) {
          const CorpusSource& cs = corpus.sources[s];
          if (cs.package == package && cs.archive == archive && source_matches(cs, m.name)) match = static_cast<int>(s);
        }
        if (!m.is_regular()) {
          if (match >= 0 && m.type != '5') ++sum.non_regular;
          return;
        }
        if (match < 0) {
          ++sum.excluded_members;
          return;
        }
        record(match, m.name, data);
      });
    }
  }
  for (size_t s = 0; s < nsrc; ++s) {
    const bool any = std::any_of(entries.begin(), entries.end(), [&](const Entry& e) { return e.source == static_cast<int>(s); });
    if (!any)
      fail("source '" + corpus.sources[s].name + "' of corpus '" + corpus.name + "' matched no file in '" + root + "/" +
           corpus.sources[s].package + "' (another package version, or an incomplete unpack?)");
  }

  // Name order within each source; duplicates (first copy kept) in that order.
  std::vector<size_t> sorted(entries.size());
  for (size_t i = 0; i < sorted.size(); ++i) sorted[i] = i;
  std::stable_sort(sorted.begin(), sorted.end(), [&](size_t a, size_t b) {
    return entries[a].source != entries[b].source ? entries[a].source < entries[b].source
                                                  : entries[a].name < entries[b].name;
  });
  std::unordered_map<std::string, size_t> first_copy;
  for (size_t i : sorted) {
    Entry& e = entries[i];
    SourceSummary& ss = sum.sources[static_cast<size_t>(e.source)];
    ++ss.files;
    if (!e.reason.empty()) {
      ++ss.skipped;
      sum.pack.skipped.push_back({corpus.sources[static_cast<size_t>(e.source)].name + ":" + e.name, e.reason});
      continue;
    }
    const auto [it, inserted] = first_copy.emplace(e.sha256, i);
    if (!inserted) {
      e.duplicate = true;
      e.reason = "duplicate of " + corpus.sources[static_cast<size_t>(entries[it->second].source)].name + ":" +
                 entries[it->second].name;
      ++ss.duplicates;
      ++sum.duplicates;
      sum.pack.skipped.push_back({corpus.sources[static_cast<size_t>(e.source)].name + ":" + e.name, e.reason});
    }
  }

  // 2. Documents (pieces of long texts).
  std::vector<Doc> docs;
  std::vector<std::vector<size_t>> by_source(nsrc);
  for (size_t i : sorted) {
    const Entry& e = entries[i];
    if (!e.reason.empty()) continue;
    const uint64_t limit = corpus.sources[static_cast<size_t>(e.source)].chunk_bytes;
    std::vector<std::pair<uint64_t, uint64_t>> parts{{0, e.bytes}};
    if (limit > 0 && e.bytes > limit) parts = pieces(spool.read(e.spool, e.bytes), limit);
    for (size_t k = 0; k < parts.size(); ++k) {
      Doc d;
      d.entry = i;
      d.name = parts.size() == 1 ? e.name : e.name + "#" + std::to_string(k);
      d.spool = e.spool + parts[k].first;
      d.bytes = parts[k].second;
      by_source[static_cast<size_t>(e.source)].push_back(docs.size());
      SourceSummary& ss = sum.sources[static_cast<size_t>(e.source)];
      ++ss.documents;
      ss.text_bytes += d.bytes;
      docs.push_back(std::move(d));
    }
  }

  // 3. Per-source caps, in a seeded order per source.
  std::vector<size_t> taken;  // (source, name) order
  std::vector<bool> take(docs.size(), false);
  for (size_t s = 0; s < nsrc; ++s) {
    std::vector<size_t> order = by_source[s];
    SplitMix64 rng(mix_seed(opt.seed, kSourceStream, s));
    shuffle(order, rng);
    uint64_t bytes = 0;
    const uint64_t cap = corpus.sources[s].max_bytes;
    for (size_t d : order) {
      if (cap > 0 && bytes >= cap) break;
      take[d] = true;
      bytes += docs[d].bytes;
    }
  }
  for (size_t d = 0; d < docs.size(); ++d)
    if (take[d]) taken.push_back(d);
  if (taken.empty()) fail("corpus '" + corpus.name + "': no text in its sources (all skipped)");

  // 4. One seeded order: val first, then train up to max_train_tokens.
  SplitMix64 rng(mix_seed(opt.seed, kOrderStream, 0));
  shuffle(taken, rng);
  uint64_t total = 0;
  for (size_t d : taken) total += docs[d].bytes;
  std::vector<size_t> train, val;
  const double target = corpus.val_fraction * static_cast<double>(total);
  if (corpus.val_fraction > 0.0 && taken.size() < 2)
    fail("corpus '" + corpus.name + "': cannot split 1 document into train and val");
  uint64_t val_bytes = 0, train_tokens = 0;
  for (size_t i = 0; i < taken.size(); ++i) {
    Doc& d = docs[taken[i]];
    if (corpus.val_fraction > 0.0 && static_cast<double>(val_bytes) < target && i + 1 < taken.size()) {
      d.split = Doc::kVal;
      val_bytes += d.bytes;
      val.push_back(taken[i]);
    } else if (opt.max_train_tokens == 0 || train_tokens < opt.max_train_tokens) {
      d.split = Doc::kTrain;
      train_tokens += d.bytes + 2;
      train.push_back(taken[i]);
    }
  }
  if (train.empty()) fail("corpus '" + corpus.name + "': no document left for train (val_fraction too large?)");

  // 5. Synthetic retrieval documents, train only, at seeded positions.
  std::vector<size_t> recall_docs;
  if (opt.recall_share > 0) {
    if (!(opt.recall_share < 1.0)) fail("recall_share must be in [0, 1), got " + std::to_string(opt.recall_share));
    SourceSummary ss;
    ss.name = "recall-mix";
    ss.kind = "synthetic";
    ss.licence = std::string("generated (") + kRecallGenerator + ")";
    uint64_t real = 0;
    for (size_t d : train) real += docs[d].bytes + 2;
    const double target = opt.recall_share * static_cast<double>(real);
    uint64_t made = 0;
    for (uint64_t i = 0; static_cast<double>(made) < target; ++i) {
      const RecallDocument r = recall_document(opt.seed, i, opt.recall_min_bytes, opt.recall_max_bytes);
      Entry e;
      e.source = static_cast<int>(nsrc);
      e.name = "recall#" + std::to_string(i);
      e.bytes = r.text.size();
      e.sha256 = io::sha256_hex(r.text);
      e.spool = spool.append(r.text);
      entries.push_back(std::move(e));
      Doc d;
      d.entry = entries.size() - 1;
      d.name = entries.back().name;
      d.spool = entries.back().spool;
      d.bytes = entries.back().bytes;
      d.split = Doc::kTrain;
      docs.push_back(std::move(d));
      recall_docs.push_back(docs.size() - 1);
      made += r.text.size() + 2;
      ++ss.files;
      ++ss.documents;
      ss.text_bytes += r.text.size();
    }
    sum.sources.push_back(std::move(ss));
    SplitMix64 at(mix_seed(opt.seed, kRecallInsertStream, 0));
    std::vector<std::pair<uint64_t, size_t>> pos;  // (index in the real train order, document)
    for (size_t d : recall_docs) pos.emplace_back(at.below(train.size() + 1), d);
    std::stable_sort(pos.begin(), pos.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<size_t> mixed;
    size_t j = 0;
    for (size_t i = 0; i <= train.size(); ++i) {
      while (j < pos.size() && pos[j].first == i) mixed.push_back(pos[j++].second);
      if (i < train.size()) mixed.push_back(train[i]);
    }
    train = std::move(mixed);
  }

  // Shards from the spool.
  auto write = [&](const char* name, const std::vector<size_t>& list) {
    std::vector<uint64_t> sizes;
    for (size_t d : list) sizes.push_back(docs[d].bytes);
    return detail::write_split(
        partial, name, sizes, [&](size_t i) { return spool.read(docs[list[i]].spool, docs[list[i]].bytes); },
        opt.shard_bytes, &sum.pack.bytes_on_disk);
  };
  const detail::SplitOut tr = write("train", train);
  const detail::SplitOut va = write("val", val);
  sum.pack.dataset_id = detail::dataset_id(tr, va);

  // Counts.
  for (const Doc& d : docs) {
    SourceSummary& ss = sum.sources[static_cast<size_t>(entries[d.entry].source)];
    if (d.split == Doc::kTrain) {
      ++ss.train_documents;
      ss.train_tokens += d.bytes + 2;
    } else if (d.split == Doc::kVal) {
      ++ss.val_documents;
      ss.val_tokens += d.bytes + 2;
    } else {
      ++ss.unused_documents;
      ++sum.pack.files_unused;
    }
  }
  sum.pack.files_seen = static_cast<int64_t>(entries.size() - recall_docs.size());
  sum.pack.files_skipped = static_cast<int64_t>(sum.pack.skipped.size());
  sum.pack.train_documents = tr.documents;
  sum.pack.val_documents = va.documents;
  sum.pack.train_bytes = tr.bytes;
  sum.pack.val_bytes = va.bytes;
  sum.pack.train_tokens = tr.tokens();
  sum.pack.val_tokens = va.tokens();

  // documents.tsv: every entry (skipped ones with their reason) and document.
  std::string tsv = "split\tsource\tbytes\tsha256\tname\treason\n";
  std::vector<std::vector<size_t>> docs_of(entries.size());
  for (size_t d = 0; d < docs.size(); ++d) docs_of[docs[d].entry].push_back(d);
  static const char* kSplit[] = {"unused", "train", "val"};
  for (size_t i : sorted) {
    const Entry& e = entries[i];
    const std::string& source = corpus.sources[static_cast<size_t>(e.source)].name;
    if (!e.reason.empty()) {
      tsv += std::string(e.duplicate ? "duplicate" : "skipped") + "\t" + source + "\t" + std::to_string(e.bytes) +
             "\t" + e.sha256 + "\t" + tsv_field(e.name) + "\t" + tsv_field(e.reason) + "\n";
      continue;
    }
    for (size_t d : docs_of[i]) {
      const Doc& doc = docs[d];
      const std::string sha =
          docs_of[i].size() == 1 ? e.sha256 : io::sha256_hex(spool.read(doc.spool, doc.bytes));
      tsv += std::string(kSplit[doc.split]) + "\t" + source + "\t" + std::to_string(doc.bytes) + "\t" + sha + "\t" +
             tsv_field(doc.name) + "\t\n";
    }
  }
  for (size_t d : recall_docs) {
    const Entry& e = entries[docs[d].entry];
    tsv += "train\trecall-mix\t" + std::to_string(e.bytes) + "\t" + e.sha256 + "\t" + e.name + "\t\n";
  }
  io::write_file_atomic(partial + "/documents.tsv", tsv);
  sum.pack.bytes_on_disk += tsv.size();

  Json m;
  m["format"] = kPackFormat;
  m["format_version"] = kPackFormatVersion;
  m["tokenizer"] = kTokenizerName;
  m["dataset_id"] = sum.pack.dataset_id;
  m["options"] = {{"val_fraction", corpus.val_fraction},
                  {"seed", opt.seed},
                  {"max_bytes", 0},
                  {"max_train_tokens", opt.max_train_tokens},
                  {"recall_share", opt.recall_share},
                  {"shard_bytes", opt.shard_bytes}};
  m["inputs"] = Json::array({root});
  Json sources = Json::array();
  for (size_t s = 0; s < nsrc; ++s) {
    const CorpusSource& cs = corpus.sources[s];
    const SourceSummary& ss = sum.sources[s];
    Json j = {{"name", cs.name}, {"package", cs.package}, {"version", ss.version}, {"kind", cs.kind},
              {"licence", cs.licence}};
    if (!cs.archive.empty()) j["archive"] = cs.archive;
    j["include"] = cs.include;
    j["exclude"] = cs.exclude;
    j["max_bytes"] = cs.max_bytes;
    j["chunk_bytes"] = cs.chunk_bytes;
    j["counts"] = {{"files", ss.files},
                   {"skipped", ss.skipped},
                   {"duplicates", ss.duplicates},
                   {"documents", ss.documents},
                   {"text_bytes", ss.text_bytes},
                   {"unused_documents", ss.unused_documents},
                   {"train_documents", ss.train_documents},
                   {"train_tokens", ss.train_tokens},
                   {"val_documents", ss.val_documents},
                   {"val_tokens", ss.val_tokens}};
    sources.push_back(std::move(j));
  }
  m["corpus"] = {{"name", corpus.name},
                 {"description", corpus.description},
                 {"root", root},
                 {"documents_file", "documents.tsv"},
                 {"sources", std::move(sources)}};
  if (opt.recall_share > 0) {
    const SourceSummary& rs = sum.sources.back();
    Json templates = Json::array();
    for (const RecallTemplate& t : recall_templates()) templates.push_back({{"fact", t.fact}, {"question", t.question}});
    m["corpus"]["recall_mix"] = {{"generator", kRecallGenerator},
                                 {"share", opt.recall_share},
                                 {"seed", opt.seed},
                                 {"min_bytes", opt.recall_min_bytes},
                                 {"max_bytes", opt.recall_max_bytes},
                                 {"documents", rs.documents},
                                 {"train_tokens", rs.train_tokens},
                                 {"templates", templates},
                                 {"filler", "sentences of lower-case consonant-vowel words, capitalised first word, "
                                            "no digits"}};
  }
  m["counts"] = {{"files_seen", sum.pack.files_seen},
                 {"files_skipped", sum.pack.files_skipped - sum.duplicates},
                 {"duplicates", sum.duplicates},
                 {"files_unused", sum.pack.files_unused},
                 {"excluded_members", sum.excluded_members},
                 {"non_regular", sum.non_regular},
                 {"documents", sum.pack.train_documents + sum.pack.val_documents},
                 {"bytes", sum.pack.train_bytes + sum.pack.val_bytes}};
  m["splits"] = detail::splits_json(tr, va);
  const std::string manifest = m.dump(1) + "\n";
  io::write_file_atomic(partial + "/manifest.json", manifest);
  sum.pack.bytes_on_disk += manifest.size();
  spool_owner.reset();  // removes spool.tmp
  detail::install_pack(partial, out_dir);
  return sum;
}

}  // namespace lighthouse::data
