// The large-corpus path, torch-free: reading gzip/xz files and tar archives
// (GNU, pax and ustar headers, as the system's tar writes them), packing a
// named corpus from a fixture root that imitates the unpacked Debian
// packages (an archive member stream, per-source caps, chunking, binary
// skip, de-duplication, a document-disjoint val split), the
// --max-train-tokens subset, verify_packed(), and the errors for missing
// packages and corrupt files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "data/archive.h"
#include "data/corpus.h"
#include "data/pack.h"
#include "data/recall_mix.h"
#include "data/verify.h"
#include "io/files.h"
#include "test_util.h"

namespace lighthouse::data {
namespace {

using lighthouse::testing::slurp;
using lighthouse::testing::TempDir;
using lighthouse::testing::write_bytes;

// Runs a shell command (the system's tar, gzip, xz), failing the test on a non-zero exit.
void sh(const std::string& cmd) { ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd; }

// Seeded prose-like text with blank-line paragraph breaks and multi-byte characters.
std::string random_text(std::mt19937_64& rng, size_t bytes) {
  static const char* kWords[] = {"the", "word", "naïve", "→", "entry", "lock", "日本", "\n", "\n\n", "queue", "."};
  std::string s;
  while (s.size() < bytes) {
    s += kWords[rng() % 11];
    s += ' ';
  }
  return s;
}

std::vector<std::string> documents(const PackedSplit& s) {
  std::vector<std::string> out;
  for (int64_t d = 0; d < s.documents(); ++d)
    out.emplace_back(s.bytes.begin() + static_cast<std::ptrdiff_t>(s.offsets[d]),
                     s.bytes.begin() + static_cast<std::ptrdiff_t>(s.offsets[d + 1]));
  return out;
}

// ---------------------------------------------------------------- archives

TEST(Archive, CompressedFilesReadBack) {
  ASSERT_TRUE(can_decompress(Compression::kGzip)) << "built without zlib (install zlib1g-dev, re-run cmake)";
  ASSERT_TRUE(can_decompress(Compression::kXz)) << "built without liblzma (install liblzma-dev, re-run cmake)";
  TempDir tmp;
  std::mt19937_64 rng(7);
  const std::string a = random_text(rng, 300000), b = random_text(rng, 5000);
  write_bytes(tmp / "a", a);
  write_bytes(tmp / "b", b);
  sh("cd " + tmp.path() + " && gzip -n -c a > a.gz && gzip -n -c b > b.gz && cat a.gz b.gz > ab.gz && xz -c a > a.xz");
  EXPECT_EQ(detect_compression(slurp(tmp / "a.gz")), Compression::kGzip);
  EXPECT_EQ(detect_compression(slurp(tmp / "a.xz")), Compression::kXz);
  EXPECT_EQ(detect_compression(a), Compression::kNone);
  EXPECT_EQ(read_decompressed(tmp / "a.gz"), a);
  EXPECT_EQ(read_decompressed(tmp / "a.xz"), a);
  EXPECT_EQ(read_decompressed(tmp / "ab.gz"), a + b);  // concatenated members
  EXPECT_EQ(read_decompressed(tmp / "a"), a);           // plain

  // Truncated and corrupt compressed data are errors naming the file.
  const std::string xz = slurp(tmp / "a.xz"), gz = slurp(tmp / "a.gz");
  write_bytes(tmp / "cut.xz", xz.substr(0, xz.size() / 2));
  write_bytes(tmp / "cut.gz", gz.substr(0, gz.size() / 2));
  EXPECT_ERROR_HAS(read_decompressed(tmp / "cut.xz"), "cut.xz': the xz data is truncated");
  EXPECT_ERROR_HAS(read_decompressed(tmp / "cut.gz"), "cut.gz': the gzip data is truncated");
  std::string bad = xz;
  bad[bad.size() / 2] ^= 0x55;
  write_bytes(tmp / "bad.xz", bad);
  EXPECT_ERROR_HAS(read_decompressed(tmp / "bad.xz"), "bad.xz': corrupt xz data");
  EXPECT_ERROR_HAS(read_decompressed(tmp / "absent.gz"), "cannot read '");
}

// One tree written by the system's tar in each header format (and
// compressions): the same regular members with the same bytes.
TEST(Archive, TarMembersInEveryFormat) {
  TempDir tmp;
  std::mt19937_64 rng(11);
  std::map<std::string, std::string> files;
  const std::string deep = "tree/" + std::string(60, 'd') + "/" + std::string(70, 'e') + "/long-file-name.c";
  for (const std::string& name : {std::string("tree/a.txt"), std::string("tree/sub/b.rst"), deep})
    files[name] = random_text(rng, 1000 + rng() % 20000);
  files["tree/empty"] = "";
  for (const auto& [name, text] : files) write_bytes(tmp / name, text);
  ASSERT_EQ(::symlink("a.txt", (tmp / "tree/link").c_str()), 0);
  const std::string cd = "cd " + tmp.path() + " && ";
  sh(cd + "tar --format=gnu -cf gnu.tar tree && tar --format=pax -cJf pax.tar.xz tree && "
          "tar --format=ustar -czf ustar.tar.gz tree");
  for (const std::string archive : {"gnu.tar", "pax.tar.xz", "ustar.tar.gz"}) {
    SCOPED_TRACE(archive);
    std::map<std::string, std::string> got;
    std::set<char> types;
    for_each_tar_member(tmp / archive, [&](const TarMember& m, std::string_view data) {
      types.insert(m.type);
      if (m.is_regular()) got[m.name] = std::string(data);
      if (!m.is_regular()) EXPECT_TRUE(data.empty());
    });
    EXPECT_EQ(got, files);
    EXPECT_TRUE(types.count('2')) << "the symbolic link is reported, not read";
    EXPECT_TRUE(types.count('5')) << "directories are reported";
  }
}

TEST(Archive, CorruptTarIsNamed) {
  TempDir tmp;
  write_bytes(tmp / "t/x.txt", std::string(3000, 'x'));
  sh("cd " + tmp.path() + " && tar --format=gnu -cf x.tar t");
  std::string tar = slurp(tmp / "x.tar");
  std::string bad = tar;
  bad[520] ^= 0x01;  // the second header (t/x.txt)'s name
  write_bytes(tmp / "bad.tar", bad);
  EXPECT_ERROR_HAS(for_each_tar_member(tmp / "bad.tar", [](const TarMember&, std::string_view) {}),
                   "bad tar header checksum at byte 512");
  write_bytes(tmp / "cut.tar", tar.substr(0, 512 * 2 + 1000));
  EXPECT_ERROR_HAS(for_each_tar_member(tmp / "cut.tar", [](const TarMember&, std::string_view) {}),
                   "member 't/x.txt' is truncated");
  write_bytes(tmp / "text.tar", std::string(2048, 'a'));
  EXPECT_ERROR_HAS(for_each_tar_member(tmp / "text.tar", [](const TarMember&, std::string_view) {}),
                   "not a tar archive");
}

// ---------------------------------------------------------------- corpus

// A fixture root imitating unpacked packages: "src-pkg" holds a .tar.xz
// source tree (docs, code, generated headers to exclude, a binary, an empty
// file, a duplicate), "doc-pkg" plain and gzip-compressed text files, a
// symbolic link and one long dictionary file to cut into pieces.
struct Fixture {
  std::map<std::string, std::string> docs, code, prose, generated;
  std::string dict, duplicate_of, duplicate;

  Corpus corpus() const {
    Corpus c;
    c.name = "fixture";
    c.val_fraction = 0.1;
    c.sources = {
        {"docs", "src-pkg", "prose", "GPL-2.0", "usr/src/tree.tar.xz", {"tree/Documentation/*"}, {}, 0, 0},
        {"code", "src-pkg", "code", "GPL-2.0", "usr/src/tree.tar.xz", {"*"}, {"*/generated/*"}, 60000, 0},
        {"dict", "doc-pkg", "prose", "GPL-2.0+", "", {"usr/share/dict/*.dz"}, {}, 0, 4000},
        {"prose", "doc-pkg", "prose", "PSF-2.0", "", {"usr/share/doc/*"}, {"*.html"}, 0, 0},
    };
    return c;
  }
};

Fixture make_fixture(const std::string& root, uint64_t seed = 3) {
  Fixture f;
  std::mt19937_64 rng(seed);
  const std::string tree = root + "/build/tree";
  for (int i = 0; i < 12; ++i) {
    const std::string name = "tree/Documentation/doc" + std::to_string(i) + ".rst";
    f.docs[name] = random_text(rng, 500 + rng() % 3000);
  }
  for (int i = 0; i < 40; ++i) {
    const std::string name = "tree/kernel/sub" + std::to_string(i % 5) + "/file" + std::to_string(i) + ".c";
    f.code[name] = "int f" + std::to_string(i) + "(void) {\n" + random_text(rng, 1000 + rng() % 4000) + "}\n";
  }
  f.generated["tree/drivers/generated/regs.h"] = random_text(rng, 9000);
  f.duplicate_of = "tree/kernel/sub1/file1.c";
  f.duplicate = "tree/kernel/zcopy.c";  // sorts after its original: the copy is dropped
  for (const auto& m : {f.docs, f.code, f.generated})
    for (const auto& [name, text] : m) write_bytes(root + "/build/" + name, text);
  write_bytes(root + "/build/" + f.duplicate, f.code[f.duplicate_of]);
  std::string junk(2000, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  write_bytes(root + "/build/tree/kernel/blob.bin", junk);
  write_bytes(root + "/build/tree/kernel/empty.c", "");
  io::make_dirs(root + "/src-pkg/usr/src");
  sh("cd " + root + "/build && tar --format=gnu -cJf ../src-pkg/usr/src/tree.tar.xz tree");

  const std::string doc = root + "/doc-pkg/usr/share/doc";
  for (int i = 0; i < 6; ++i) {
    const std::string name = "usr/share/doc/guide" + std::to_string(i) + ".txt";
    f.prose[name] = random_text(rng, 800 + rng() % 2000);
    write_bytes(root + "/doc-pkg/" + name, f.prose[name]);
  }
  // A gzip-compressed page is read decompressed; an HTML page is excluded.
  f.prose["usr/share/doc/page.1.gz"] = random_text(rng, 3000);
  write_bytes(root + "/build/page.1", f.prose["usr/share/doc/page.1.gz"]);
  sh("gzip -n -c " + root + "/build/page.1 > " + doc + "/page.1.gz");
  write_bytes(doc + "/index.html", "<html>" + random_text(rng, 500) + "</html>");
  EXPECT_EQ(::symlink("guide0.txt", (doc + "/alias.txt").c_str()), 0);
  f.dict = random_text(rng, 30000);
  write_bytes(root + "/build/dict", f.dict);
  io::make_dirs(root + "/doc-pkg/usr/share/dict");
  sh("gzip -n -c " + root + "/build/dict > " + root + "/doc-pkg/usr/share/dict/words.dict.dz");
  write_bytes(root + "/packages.txt", "src-pkg 1.0-1\ndoc-pkg 2:3.4-5\n");
  return f;
}

CorpusPackSummary pack_fixture(const Fixture& f, const std::string& root, const std::string& out, uint64_t seed = 0,
                               uint64_t max_train_tokens = 0, uint64_t shard_bytes = 16u << 20) {
  CorpusPackOptions o;
  o.corpus = f.corpus();
  o.root = root;
  o.out_dir = out;
  o.seed = seed;
  o.max_train_tokens = max_train_tokens;
  o.shard_bytes = shard_bytes;
  return pack_corpus(o);
}

TEST(CorpusPack, SourcesSplitsAndSkips) {
  TempDir tmp;
  const std::string root = tmp / "root";
  const Fixture f = make_fixture(root);
  const CorpusPackSummary s = pack_fixture(f, root, tmp / "out", 0, 0, 9000);

  const PackedSplit train = read_packed_split(tmp / "out", Split::kTrain);
  const PackedSplit val = read_packed_split(tmp / "out", Split::kVal);
  const auto tr = documents(train), va = documents(val);
  EXPECT_GT(tr.size(), 0u);
  EXPECT_GT(va.size(), 0u);
  std::multiset<std::string> all(tr.begin(), tr.end());
  all.insert(va.begin(), va.end());
  // Disjoint by document: no text in both splits.
  for (const std::string& d : va) EXPECT_EQ(std::count(tr.begin(), tr.end(), d), 0);

  // Docs, prose and (decompressed) gzip pages: every one, once.
  for (const auto* m : {&f.docs, &f.prose})
    for (const auto& [name, text] : *m) EXPECT_EQ(all.count(text), 1u) << name;
  // The excluded generated header, HTML page, binary and empty file: nowhere.
  EXPECT_EQ(all.count(f.generated.begin()->second), 0u);
  for (const std::string& d : all) {
    EXPECT_EQ(d.find("<html>"), std::string::npos);
    EXPECT_EQ(d.find('\0'), std::string::npos);
    EXPECT_FALSE(d.empty());
  }
  // The duplicate: its first copy at most once (the code source is capped).
  EXPECT_LE(all.count(f.code.at(f.duplicate_of)), 1u);
  EXPECT_EQ(s.duplicates, 1);
  bool dup_named = false;
  for (const auto& k : s.pack.skipped)
    dup_named |= k.path == "code:" + f.duplicate && k.reason == "duplicate of code:" + f.duplicate_of;
  EXPECT_TRUE(dup_named);
  EXPECT_EQ(s.excluded_members, 1);  // the generated header
  EXPECT_EQ(s.non_regular, 1);       // the symbolic link, not followed

  // Code: capped at 60,000 bytes in whole documents (the last may overshoot).
  uint64_t code_bytes = 0, max_code = 0;
  int64_t code_docs = 0;
  for (const auto& [name, text] : f.code) {
    max_code = std::max<uint64_t>(max_code, text.size());
    if (all.count(text)) code_bytes += text.size(), ++code_docs;
  }
  EXPECT_LT(code_docs, static_cast<int64_t>(f.code.size()) - 10) << "the cap left documents out";
  EXPECT_GE(code_bytes, 60000u);
  EXPECT_LT(code_bytes, 60000u + max_code);
  const SourceSummary& code = s.sources[1];
  EXPECT_EQ(code.name, "code");
  EXPECT_EQ(code.train_documents + code.val_documents, code_docs);
  EXPECT_EQ(code.skipped, 2);  // binary + empty
  EXPECT_EQ(code.version, "1.0-1");
  EXPECT_EQ(s.sources[2].version, "2:3.4-5");

  // The dictionary: pieces of at most 4000 bytes that cut at blank lines
  // and put together give the text back.
  std::vector<std::pair<size_t, std::string>> pieces;
  for (const std::string& d : all) {
    const size_t at = f.dict.find(d);
    if (at != std::string::npos && d.size() > 200) pieces.emplace_back(at, d);
  }
  std::sort(pieces.begin(), pieces.end());
  EXPECT_GE(pieces.size(), 8u);  // 30,000 bytes in pieces of at most 4,000
  std::string joined;
  for (const auto& [at, d] : pieces) {
    EXPECT_EQ(at, joined.size());
    EXPECT_LE(d.size(), 4000u);
    if (at + d.size() < f.dict.size()) EXPECT_EQ(d.substr(d.size() - 2), "\n\n");
    joined += d;
  }
  EXPECT_EQ(joined, f.dict);
  EXPECT_EQ(s.sources[2].documents, static_cast<int64_t>(pieces.size()));

  // Counts agree with the files; documents.tsv lists every document.
  EXPECT_EQ(s.pack.train_tokens, train.tokens());
  EXPECT_EQ(s.pack.val_tokens, val.tokens());
  uint64_t per_source = 0;
  for (const SourceSummary& ss : s.sources) per_source += ss.train_tokens + ss.val_tokens;
  EXPECT_EQ(per_source, train.tokens() + val.tokens());
  const std::string tsv = slurp(tmp / "out/documents.tsv");
  EXPECT_NE(tsv.find("duplicate\tcode\t"), std::string::npos);
  EXPECT_NE(tsv.find("skipped\tcode\t2000\t"), std::string::npos);
  EXPECT_NE(tsv.find("usr/share/dict/words.dict.dz#0"), std::string::npos);
  EXPECT_FALSE(io::path_exists(tmp / "out/spool.tmp"));
  EXPECT_FALSE(io::path_exists(tmp / "out.partial"));
  EXPECT_GT(train.bytes.size(), 9000u) << "several shards";
  EXPECT_EQ(verify_packed(tmp / "out").dataset_id, s.pack.dataset_id);
}

TEST(CorpusPack, DeterministicGivenSeed) {
  TempDir tmp;
  const std::string root = tmp / "root";
  const Fixture f = make_fixture(root);
  const std::string a = pack_fixture(f, root, tmp / "a", 5).pack.dataset_id;
  const std::string b = pack_fixture(f, root, tmp / "b", 5).pack.dataset_id;
  const std::string c = pack_fixture(f, root, tmp / "c", 6).pack.dataset_id;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(slurp(tmp / "a/manifest.json").size(), slurp(tmp / "b/manifest.json").size());
}

// --max-train-tokens: the same val split, train = the first documents of the
// full pack's train order, a dataset id of its own, and a valid dataset.
TEST(CorpusPack, MaxTrainTokensIsAPrefixWithTheSameVal) {
  TempDir tmp;
  const std::string root = tmp / "root";
  const Fixture f = make_fixture(root);
  const CorpusPackSummary full = pack_fixture(f, root, tmp / "full");
  const uint64_t cap = full.pack.train_tokens / 3;
  const CorpusPackSummary sub = pack_fixture(f, root, tmp / "sub", 0, cap);
  EXPECT_NE(full.pack.dataset_id, sub.pack.dataset_id);
  EXPECT_EQ(slurp(tmp / "full/val.idx"), slurp(tmp / "sub/val.idx"));
  EXPECT_EQ(slurp(tmp / "full/val-00000.bin"), slurp(tmp / "sub/val-00000.bin"));
  const auto ft = documents(read_packed_split(tmp / "full", Split::kTrain));
  const auto st = documents(read_packed_split(tmp / "sub", Split::kTrain));
  ASSERT_LT(st.size(), ft.size());
  EXPECT_TRUE(std::equal(st.begin(), st.end(), ft.begin()));
  EXPECT_GE(sub.pack.train_tokens, cap);
  EXPECT_LT(sub.pack.train_tokens - (st.back().size() + 2), cap);
  EXPECT_EQ(sub.pack.files_unused, static_cast<int64_t>(ft.size() - st.size()) + full.pack.files_unused);
  EXPECT_EQ(verify_packed(tmp / "sub").train_tokens, sub.pack.train_tokens);
}

TEST(CorpusPack, MissingPackagesSayWhatToRun) {
  TempDir tmp;
  const std::string root = tmp / "root";
  const Fixture f = make_fixture(root);
  write_bytes(root + "/packages.txt", "src-pkg 1.0-1\n");
  const std::string msg = lighthouse::testing::error_of([&] { pack_fixture(f, root, tmp / "out"); });
  EXPECT_NE(msg.find("needs Debian packages that are not unpacked under '" + root + "': doc-pkg"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("LIGHTHOUSE_LARGE_CORPUS=1 bash scripts/setup.sh"), std::string::npos) << msg;
  EXPECT_NE(msg.find("apt-get download doc-pkg\n"), std::string::npos) << msg;
  EXPECT_FALSE(io::path_exists(tmp / "out"));

  // Listed, but its archive is gone: named.
  write_bytes(root + "/packages.txt", "src-pkg 1.0-1\ndoc-pkg 1\n");
  io::remove_tree(root + "/src-pkg/usr/src/tree.tar.xz");
  EXPECT_ERROR_HAS(pack_fixture(f, root, tmp / "out"), "its archive '" + root + "/src-pkg/usr/src/tree.tar.xz' is missing");

  const Corpus& large = find_corpus("large");
  EXPECT_EQ(missing_packages(large, tmp / "nowhere"), large.packages());
  EXPECT_ERROR_HAS(find_corpus("huge"), "unknown corpus 'huge'; known corpora: small (the default: linux-doc-6.1), large");
}

TEST(CorpusPack, SourceMatchingNothingIsAnError) {
  TempDir tmp;
  const std::string root = tmp / "root";
  const Fixture f = make_fixture(root);
  CorpusPackOptions o;
  o.corpus = f.corpus();
  o.corpus.sources[3].include = {"usr/share/doc/none/*"};
  o.root = root;
  o.out_dir = tmp / "out";
  EXPECT_ERROR_HAS(pack_corpus(o), "source 'prose' of corpus 'fixture' matched no file");
}

// The large corpus's description: the packages setup.sh unpacks, every
// source with a licence and a kind, caps where documented.
TEST(CorpusSpec, LargeCorpus) {
  const Corpus& c = find_corpus("large");
  EXPECT_EQ(c.packages(), (std::vector<std::string>{"linux-source-6.1", "dict-gcide", "python3.11-doc", "perl-doc",
                                                    "git-doc", "manpages", "manpages-dev"}));
  for (const CorpusSource& s : c.sources) {
    EXPECT_FALSE(s.licence.empty()) << s.name;
    EXPECT_TRUE(s.kind == "prose" || s.kind == "code") << s.name;
    EXPECT_FALSE(s.include.empty()) << s.name;
  }
  EXPECT_GT(c.val_fraction, 0.0);
}

// ---------------------------------------------------------------- retrieval mix

TEST(RecallMix, DocumentsAreDeterministicAndDisjointFromThePasskeyTest) {
  std::set<int> templates;
  for (uint64_t i = 0; i < 200; ++i) {
    const RecallDocument d = recall_document(9, i, 1000, 20000);
    EXPECT_EQ(d.text, recall_document(9, i, 1000, 20000).text);
    EXPECT_NE(d.text, recall_document(10, i, 1000, 20000).text);
    templates.insert(d.template_index);
    ASSERT_GE(d.key.size(), 1u);
    ASSERT_LE(d.key.size(), 6u);
    // Ends with the answer; the fact states it once, before the question.
    EXPECT_EQ(d.text.substr(d.text.size() - d.key.size() - 1), d.key + "\n");
    const size_t fact_end = d.text.find(". ", d.fact_offset);
    EXPECT_NE(d.text.substr(d.fact_offset, fact_end - d.fact_offset).find(d.key), std::string::npos);
    // Digits only in the fact and the answer: the filler has none.
    size_t digits = 0;
    for (char c : d.text) digits += c >= '0' && c <= '9';
    EXPECT_EQ(digits, 2 * d.key.size());
    for (const char* eval_word : {"passkey", "Passkey", "Remember", "What is the"})
      EXPECT_EQ(d.text.find(eval_word), std::string::npos) << eval_word;
    EXPECT_GE(d.text.size(), 900u);
    EXPECT_LE(d.text.size(), 20200u);
    EXPECT_EQ(classify_text(d.text), "");
  }
  EXPECT_EQ(templates.size(), recall_templates().size());
}

// In a pack: train only, the share asked for, the real documents' order kept.
TEST(CorpusPack, RecallMixIsAddedToTrainOnly) {
  TempDir tmp;
  const std::string root = tmp / "root";
  const Fixture f = make_fixture(root);
  const CorpusPackSummary plain = pack_fixture(f, root, tmp / "plain");
  CorpusPackOptions o;
  o.corpus = f.corpus();
  o.root = root;
  o.out_dir = tmp / "mix";
  o.recall_share = 0.05;
  o.recall_min_bytes = 200;
  o.recall_max_bytes = 2000;
  const CorpusPackSummary mix = pack_corpus(o);
  EXPECT_NE(mix.pack.dataset_id, plain.pack.dataset_id);
  EXPECT_EQ(slurp(tmp / "mix/val.idx"), slurp(tmp / "plain/val.idx"));
  const SourceSummary& rs = mix.sources.back();
  ASSERT_EQ(rs.name, "recall-mix");
  EXPECT_EQ(rs.val_documents, 0);
  EXPECT_GE(static_cast<double>(rs.train_tokens), 0.05 * static_cast<double>(plain.pack.train_tokens));
  EXPECT_LT(static_cast<double>(rs.train_tokens), 0.05 * static_cast<double>(plain.pack.train_tokens) + 2002);
  EXPECT_EQ(mix.pack.train_tokens, plain.pack.train_tokens + rs.train_tokens);
  // Take the synthetic documents out: the plain pack's train order.
  const auto real = documents(read_packed_split(tmp / "plain", Split::kTrain));
  std::vector<std::string> rest;
  int64_t synthetic = 0;
  for (const std::string& d : documents(read_packed_split(tmp / "mix", Split::kTrain))) {
    bool is_recall = false;
    for (uint64_t i = 0; i < static_cast<uint64_t>(rs.documents) && !is_recall; ++i)
      is_recall = d == recall_document(0, i, 200, 2000).text;
    if (is_recall) {
      ++synthetic;
    } else {
      rest.push_back(d);
    }
  }
  EXPECT_EQ(synthetic, rs.documents);
  EXPECT_GT(synthetic, 2);
  EXPECT_EQ(rest, real);
  EXPECT_NE(slurp(tmp / "mix/manifest.json").find("\"generator\": \"lighthouse-recall-v1\""), std::string::npos);
}

// ---------------------------------------------------------------- verify

TEST(Verify, CorruptionIsNamed) {
  TempDir tmp;
  const std::string root = tmp / "root";
  const Fixture f = make_fixture(root);
  pack_fixture(f, root, tmp / "out", 0, 0, 9000);
  const PackVerification ok = verify_packed(tmp / "out");
  EXPECT_GT(ok.shards, 2);

  std::string shard = slurp(tmp / "out/train-00001.bin");
  shard[100] ^= 0x20;
  write_bytes(tmp / "out/train-00001.bin", shard);
  EXPECT_ERROR_HAS(verify_packed(tmp / "out"), "train-00001.bin' does not match its sha256");
  shard[100] ^= 0x20;
  write_bytes(tmp / "out/train-00001.bin", shard);
  EXPECT_EQ(verify_packed(tmp / "out").dataset_id, ok.dataset_id);

  std::string manifest = slurp(tmp / "out/manifest.json");
  const size_t at = manifest.find(ok.dataset_id);
  manifest[at] = manifest[at] == '0' ? '1' : '0';
  write_bytes(tmp / "out/manifest.json", manifest);
  EXPECT_ERROR_HAS(verify_packed(tmp / "out"), "the files give dataset id " + ok.dataset_id);

  io::remove_tree(tmp / "out/val.idx");
  EXPECT_ERROR_HAS(verify_packed(tmp / "out"), "val.idx' is missing");
  EXPECT_ERROR_HAS(verify_packed(tmp / "nothing"), "no such directory");
}

}  // namespace
}  // namespace lighthouse::data
