// data: the byte tokenizer, text classification, pack() (determinism, a
// disjoint val split, max_bytes, skipped files, clear errors) and the Loader
// (windows, epochs, exact state save/restore, clear errors) (TESTING.md item 15).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "data/loader.h"
#include "data/pack.h"
#include "data/tokenizer.h"
#include "io/files.h"
#include "test_util.h"

namespace lighthouse::data {
namespace {

using lighthouse::testing::slurp;
using lighthouse::testing::TempDir;
using lighthouse::testing::write_bytes;

// Seeded text made of words, some multi-byte UTF-8.
std::string random_text(std::mt19937_64& rng, size_t approx_bytes) {
  static const char* kWords[] = {"the",   "kernel", "scheduler", "päivä", "naïve", "→",    "memory", "driver", "über",
                                 "patch", "\n",     "  ",        "0x1f",  "lock",  "日本", "queue",  "."};
  std::string s;
  while (s.size() < approx_bytes) {
    s += kWords[rng() % 17];
    s += ' ';
  }
  return s;
}

// A corpus: `n` text files in nested directories, plus an empty and a binary file.
std::map<std::string, std::string> make_corpus(const std::string& root, int n, uint64_t seed, size_t bytes = 600) {
  std::mt19937_64 rng(seed);
  std::map<std::string, std::string> texts;
  for (int i = 0; i < n; ++i) {
    const std::string rel = (i % 3 ? "sub" + std::to_string(i % 4) + "/" : "") + "doc" + std::to_string(i) + ".rst";
    texts[rel] = random_text(rng, bytes / 2 + rng() % bytes);
    write_bytes(root + "/" + rel, texts[rel]);
  }
  write_bytes(root + "/empty.txt", "");
  std::string junk(4096, '\0');
  for (auto& c : junk) c = static_cast<char>(rng());
  write_bytes(root + "/sub1/image.png", junk);
  return texts;
}

PackSummary pack_dir(const std::string& in, const std::string& out, uint64_t seed = 0, double val = 0.2,
                     uint64_t max_bytes = 0, uint64_t shard_bytes = 16u << 20) {
  PackOptions o;
  o.inputs = {in};
  o.out_dir = out;
  o.seed = seed;
  o.val_fraction = val;
  o.max_bytes = max_bytes;
  o.shard_bytes = shard_bytes;
  return pack(o);
}

std::vector<std::string> documents(const PackedSplit& s) {
  std::vector<std::string> out;
  for (int64_t d = 0; d < s.documents(); ++d)
    out.emplace_back(s.bytes.begin() + static_cast<std::ptrdiff_t>(s.offsets[d]),
                     s.bytes.begin() + static_cast<std::ptrdiff_t>(s.offsets[d + 1]));
  return out;
}

// ------------------------------------------------------------------ tokenizer

TEST(Tokenizer, RoundTripAllBytes) {
  std::mt19937_64 rng(1);
  std::string text(5000, '\0');
  for (auto& c : text) c = static_cast<char>(rng());
  for (int b = 0; b < 256; ++b) text[b] = static_cast<char>(b);
  const auto tokens = encode(text);
  ASSERT_EQ(tokens.size(), text.size());
  for (size_t i = 0; i < 256; ++i) EXPECT_EQ(tokens[i], static_cast<int64_t>(i));
  EXPECT_EQ(decode(tokens), text);
}

TEST(Tokenizer, DocumentsAndSpecialTokens) {
  const auto doc = encode_document("hé");
  EXPECT_EQ(doc, (std::vector<int64_t>{kBos, 'h', 0xc3, 0xa9, kEos}));
  EXPECT_EQ(decode(doc), "hé");
  EXPECT_EQ(decode(doc, /*show_special=*/true), "<|bos|>hé<|eos|>");
  EXPECT_EQ(decode({kPad, 'a'}, true), "<|pad|>a");
  EXPECT_EQ(kNumTokens, 259);
  try {
    decode({'a', 300});
    FAIL() << "no error";
  } catch (const std::out_of_range& e) {
    EXPECT_NE(std::string(e.what()).find("token 300 at position 1"), std::string::npos) << e.what();
  }
  EXPECT_THROW(decode({-1}), std::out_of_range);
}

TEST(ClassifyText, TextAndJunk) {
  EXPECT_EQ(classify_text("plain text\n\twith tabs\r\n"), "");
  EXPECT_EQ(classify_text("UTF-8: päivä → 日本 🙂\n"), "");
  EXPECT_EQ(classify_text(""), "empty");
  EXPECT_EQ(classify_text(std::string("abc\0def", 7)), "binary: NUL bytes");
  std::string latin1(100, 'a');
  for (int i = 0; i < 10; ++i) latin1[i * 10] = '\xe9';  // 10% Latin-1 bytes
  EXPECT_EQ(classify_text(latin1), "binary: 10.0% invalid UTF-8");
  std::string stray(1000, 'a');
  stray[500] = '\xff';  // 0.1%: kept
  EXPECT_EQ(classify_text(stray), "");
  EXPECT_EQ(classify_text(std::string(50, '\x01')), "binary: 100.0% control characters");
  EXPECT_NE(classify_text("\xed\xa0\x80 surrogate"), "");  // 3 of 13 bytes invalid
  EXPECT_NE(classify_text("\xc0\xaf overlong"), "");
}

// ------------------------------------------------------------------ pack

TEST(Pack, DeterministicDisjointAndComplete) {
  TempDir tmp;
  const auto texts = make_corpus(tmp / "in", 30, 42);
  const PackSummary a = pack_dir(tmp / "in", tmp / "out_a", 7, 0.2, 0, 4000);
  const PackSummary b = pack_dir(tmp / "in", tmp / "out_b", 7, 0.2, 0, 4000);
  // Byte-identical output.
  const auto names = io::list_dir(tmp / "out_a");
  EXPECT_GT(names.size(), 5u);  // several shards
  for (const auto& n : names) EXPECT_EQ(slurp(tmp / "out_a/" + n), slurp(tmp / "out_b/" + n)) << n;
  EXPECT_EQ(a.dataset_id, b.dataset_id);

  EXPECT_EQ(a.files_seen, 32);
  EXPECT_EQ(a.files_skipped, 2);
  std::map<std::string, std::string> reasons;
  for (const auto& s : a.skipped) reasons[s.path.substr(s.path.find_last_of('/') + 1)] = s.reason;
  EXPECT_EQ(reasons["empty.txt"], "empty");
  EXPECT_EQ(reasons["image.png"], "binary: NUL bytes");
  EXPECT_EQ(a.train_documents + a.val_documents, 30);
  EXPECT_GT(a.val_documents, 0);
  EXPECT_EQ(a.train_tokens, a.train_bytes + 2 * static_cast<uint64_t>(a.train_documents));

  // Every text file is exactly one document of exactly one split; val holds about 20% of the bytes.
  const PackedSplit train = read_packed_split(tmp / "out_a", Split::kTrain);
  const PackedSplit val = read_packed_split(tmp / "out_a", Split::kVal);
  std::multiset<std::string> got, want;
  for (const auto& d : documents(train)) got.insert(d);
  std::set<std::string> val_docs;
  for (const auto& d : documents(val)) got.insert(d), val_docs.insert(d);
  for (const auto& [rel, t] : texts) want.insert(t);
  EXPECT_EQ(got, want);
  for (const auto& d : documents(train)) EXPECT_EQ(val_docs.count(d), 0u);
  const double frac =
      static_cast<double>(val.bytes.size()) / static_cast<double>(val.bytes.size() + train.bytes.size());
  EXPECT_GT(frac, 0.15);
  EXPECT_LT(frac, 0.35);
  EXPECT_EQ(train.dataset_id, a.dataset_id);

  // The manifest lists every file with its size, sha256 and split.
  const auto m = nlohmann::json::parse(slurp(tmp / "out_a/manifest.json"));
  EXPECT_EQ(m["format"], "lighthouse-packed");
  EXPECT_EQ(m["tokenizer"], "bytes-v1");
  ASSERT_EQ(m["files"].size(), 32u);
  for (const auto& f : m["files"]) {
    const std::string rel = f["path"];
    if (texts.count(rel)) {
      EXPECT_EQ(f["sha256"], io::sha256_hex(texts.at(rel))) << rel;
      EXPECT_EQ(f["bytes"], texts.at(rel).size());
      EXPECT_TRUE(f["split"] == "train" || f["split"] == "val");
    } else {
      EXPECT_EQ(f["split"], "skipped") << rel;
    }
  }
  EXPECT_EQ(m["splits"]["val"]["documents"], a.val_documents);

  // Another seed: another order and split.
  const PackSummary c = pack_dir(tmp / "in", tmp / "out_c", 8, 0.2, 0, 4000);
  EXPECT_NE(c.dataset_id, a.dataset_id);
}

TEST(Pack, MaxBytesCutsAtCharacterBoundary) {
  TempDir tmp;
  make_corpus(tmp / "in", 20, 5, 2000);
  const PackSummary s = pack_dir(tmp / "in", tmp / "out", 0, 0.1, 5001);
  EXPECT_LE(s.train_bytes + s.val_bytes, 5001u);
  EXPECT_GE(s.train_bytes + s.val_bytes, 4998u);
  EXPECT_GT(s.files_unused, 0);
  for (Split sp : {Split::kTrain, Split::kVal})
    for (const auto& d : documents(read_packed_split(tmp / "out", sp))) EXPECT_EQ(classify_text(d), "") << d;
}

TEST(Pack, NonRegularEntriesAreCounted) {
  TempDir tmp;
  make_corpus(tmp / "in", 4, 9);
  ASSERT_EQ(symlink("/nonexistent/target", (tmp / "in/dangling.txt").c_str()), 0);
  const PackSummary s = pack_dir(tmp / "in", tmp / "out");
  EXPECT_EQ(s.files_seen, 7);
  EXPECT_EQ(s.files_skipped, 3);
  bool found = false;
  for (const auto& k : s.skipped) found |= k.path == tmp / "in/dangling.txt" && k.reason == "not a regular file";
  EXPECT_TRUE(found);
}

TEST(Pack, RepackReplacesAndSkipsOwnOutput) {
  TempDir tmp;
  make_corpus(tmp / "in", 10, 3);
  const PackSummary a = pack_dir(tmp / "in", tmp / "in/packed");
  const PackSummary b = pack_dir(tmp / "in", tmp / "in/packed");  // output inside the input: not read back
  EXPECT_EQ(a.files_seen, b.files_seen);
  EXPECT_EQ(a.dataset_id, b.dataset_id);
  EXPECT_FALSE(io::path_exists(tmp / "in/packed.partial"));
  EXPECT_FALSE(io::path_exists(tmp / "in/packed.old"));
}

TEST(Pack, ClearErrors) {
  TempDir tmp;
  EXPECT_ERROR_HAS(pack_dir(tmp / "nope", tmp / "out"), "input '" + (tmp / "nope") + "' does not exist");
  io::make_dirs(tmp / "emptydir");
  EXPECT_ERROR_HAS(pack_dir(tmp / "emptydir", tmp / "out"), "no files in the inputs");
  write_bytes(tmp / "blank/a.txt", "");
  EXPECT_ERROR_HAS(pack_dir(tmp / "blank", tmp / "out"), "all skipped (1 empty, 0 not text or not regular)");
  write_bytes(tmp / "junk/a.bin", std::string("\x7f"
                                              "ELF\0\0\0",
                                              7));
  EXPECT_ERROR_HAS(pack_dir(tmp / "junk", tmp / "out"), "all skipped (0 empty, 1 not text or not regular)");
  write_bytes(tmp / "one/a.txt", "only one document");
  EXPECT_ERROR_HAS(pack_dir(tmp / "one", tmp / "out", 0, 0.1), "cannot split 1 document");
  EXPECT_NO_THROW(pack_dir(tmp / "one", tmp / "out", 0, 0.0));
  write_bytes(tmp / "mine/notes.txt", "my notes");
  EXPECT_ERROR_HAS(pack_dir(tmp / "one", tmp / "mine", 0, 0.0), "is not a packed dataset (it holds 'notes.txt')");
  EXPECT_EQ(slurp(tmp / "mine/notes.txt"), "my notes");
  EXPECT_ERROR_HAS(pack_dir(tmp / "one", tmp / "out", 0, 1.5), "val_fraction must be in [0, 1)");
  // A file that cannot be read stops the pack, naming it (works as root too).
  PackOptions o;
  o.inputs = {"/proc/self/mem"};
  o.out_dir = tmp / "out";
  EXPECT_ERROR_HAS(pack(o), "cannot read '/proc/self/mem'");
  if (geteuid() != 0) {
    write_bytes(tmp / "locked/a.txt", "secret");
    chmod((tmp / "locked/a.txt").c_str(), 0);
    EXPECT_ERROR_HAS(pack_dir(tmp / "locked", tmp / "out", 0, 0.0), "Permission denied");
  }
}

// ------------------------------------------------------------------ loader

// The token stream of a split, built independently of the Loader.
std::vector<int64_t> stream_of(const std::string& dir, Split split) {
  std::vector<int64_t> out;
  for (const auto& d : documents(read_packed_split(dir, split))) {
    auto t = encode_document(d);
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

std::vector<at::Tensor> take(Loader& l, int n) {
  std::vector<at::Tensor> out;
  for (int i = 0; i < n; ++i) out.push_back(l.next());
  return out;
}

void expect_same(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "batch " << i;
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    make_corpus(tmp_ / "in", 12, 77, 300);
    pack_dir(tmp_ / "in", dir_, 0, 0.25);
  }
  TempDir tmp_;
  std::string dir_ = tmp_ / "packed";
};

TEST_F(LoaderTest, ValWindowsAreTheStreamInOrder) {
  const auto stream = stream_of(dir_, Split::kVal);
  const int64_t seq = 16, batch = 3;
  Loader l(dir_, Split::kVal, batch, seq, /*seed=*/123);
  EXPECT_EQ(l.windows_per_epoch(), (static_cast<int64_t>(stream.size()) - 1) / seq);
  EXPECT_EQ(l.tokens_per_epoch(), l.windows_per_epoch() * seq);
  at::Tensor x = l.next();
  ASSERT_EQ(x.sizes(), (at::IntArrayRef{batch, seq + 1}));
  EXPECT_EQ(x.scalar_type(), at::kLong);
  EXPECT_EQ(x[0][0].item<int64_t>(), kBos);
  for (int64_t r = 0; r < batch; ++r)
    for (int64_t i = 0; i <= seq; ++i) EXPECT_EQ(x[r][i].item<int64_t>(), stream[r * seq + i]) << r << "," << i;
  // Seed-independent, restartable.
  Loader other(dir_, Split::kVal, batch, seq, /*seed=*/999);
  EXPECT_TRUE(at::equal(other.next(), x));
  l.next();
  l.reset();
  EXPECT_TRUE(at::equal(l.next(), x));
}

TEST_F(LoaderTest, TrainEpochIsAPermutationOfAllWindows) {
  const auto stream = stream_of(dir_, Split::kTrain);
  const int64_t seq = 32;
  Loader l(dir_, Split::kTrain, 1, seq, 5);
  const int64_t w = l.windows_per_epoch();
  ASSERT_GT(w, 20);
  std::multiset<std::vector<int64_t>> got, want;
  for (int64_t k = 0; k < w; ++k) {
    at::Tensor x = l.next();
    got.insert(std::vector<int64_t>(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + seq + 1));
    want.insert(std::vector<int64_t>(stream.begin() + k * seq, stream.begin() + k * seq + seq + 1));
    EXPECT_EQ(l.epoch(), k + 1 == w ? 1 : 0);
  }
  EXPECT_EQ(got, want);
  // Not in stream order, and the next epoch is reshuffled.
  EXPECT_NE(epoch_permutation(w, 5, 0), epoch_permutation(w, 5, 1));
  auto p = epoch_permutation(w, 5, 0);
  EXPECT_FALSE(std::is_sorted(p.begin(), p.end()));
}

// Pins the PRNG: the order must be the same on every platform and build.
TEST(EpochPermutation, Golden) {
  EXPECT_EQ(epoch_permutation(10, 0, 0), (std::vector<int64_t>{3, 8, 1, 6, 5, 2, 4, 9, 7, 0}));
  EXPECT_EQ(epoch_permutation(10, 0, 1), (std::vector<int64_t>{1, 6, 3, 5, 8, 0, 7, 9, 4, 2}));
  EXPECT_EQ(epoch_permutation(10, 1, 0), (std::vector<int64_t>{7, 2, 4, 3, 1, 0, 9, 5, 8, 6}));
}

TEST_F(LoaderTest, DeterministicGivenSeed) {
  Loader a(dir_, Split::kTrain, 4, 16, 11), b(dir_, Split::kTrain, 4, 16, 11), c(dir_, Split::kTrain, 4, 16, 12);
  auto xa = take(a, 5), xb = take(b, 5), xc = take(c, 5);
  expect_same(xa, xb);
  bool differs = false;
  for (int i = 0; i < 5; ++i) differs |= !at::equal(xa[i], xc[i]);
  EXPECT_TRUE(differs);
}

// Save after k batches, restore into a fresh loader: the next batches are
// identical, across epoch boundaries and with a batch that straddles one.
TEST_F(LoaderTest, StateRestoresExactly) {
  const int64_t seq = 16;
  const int64_t w = Loader(dir_, Split::kTrain, 1, seq, 3).windows_per_epoch();
  int64_t batch = 5;
  while (w % batch == 0) ++batch;  // a batch that straddles the epoch boundary
  const int64_t batches_per_epoch = w / batch;
  for (int64_t k : {int64_t{0}, int64_t{1}, batches_per_epoch - 1, batches_per_epoch, 2 * batches_per_epoch + 1}) {
    SCOPED_TRACE("saved after " + std::to_string(k) + " batches");
    Loader a(dir_, Split::kTrain, batch, seq, 3);
    take(a, static_cast<int>(k));
    const std::string saved = a.state().dump();  // through text, as a checkpoint stores it
    const auto rest_a = take(a, static_cast<int>(batches_per_epoch + 3));
    EXPECT_GE(a.epoch(), 1);
    Loader b(dir_, Split::kTrain, batch, seq, 3);
    b.load_state(nlohmann::json::parse(saved));
    expect_same(take(b, static_cast<int>(batches_per_epoch + 3)), rest_a);
    EXPECT_EQ(b.state(), a.state());
  }
  // Val state too.
  Loader v(dir_, Split::kVal, 2, 8, 0);
  take(v, 3);
  Loader v2(dir_, Split::kVal, 2, 8, 0);
  v2.load_state(v.state());
  expect_same(take(v2, 4), take(v, 4));
}

TEST_F(LoaderTest, StateMismatchesAreNamed) {
  Loader a(dir_, Split::kTrain, 4, 16, 3);
  take(a, 2);
  const auto s = a.state();
  EXPECT_ERROR_HAS(Loader(dir_, Split::kTrain, 4, 32, 3).load_state(s), "seq_len is 16 in the state, 32 here");
  EXPECT_ERROR_HAS(Loader(dir_, Split::kTrain, 8, 16, 3).load_state(s), "batch is 4 in the state, 8 here");
  EXPECT_ERROR_HAS(Loader(dir_, Split::kTrain, 4, 16, 4).load_state(s), "seed is 3 in the state, 4 here");
  EXPECT_ERROR_HAS(Loader(dir_, Split::kVal, 4, 16, 3).load_state(s), "split is \"train\" in the state, \"val\" here");
  // Another dataset.
  make_corpus(tmp_ / "in2", 12, 78, 300);
  pack_dir(tmp_ / "in2", tmp_ / "packed2", 0, 0.25);
  EXPECT_ERROR_HAS(Loader(tmp_ / "packed2", Split::kTrain, 4, 16, 3).load_state(s), "(another dataset or a re-pack)");
  EXPECT_ERROR_HAS(a.load_state(nlohmann::json{{"epoch", 1}}), "not a loader state");
  auto broken = s;
  broken.erase("position");
  EXPECT_ERROR_HAS(a.load_state(broken), "malformed");
  auto far = s;
  far["position"] = 1 << 30;
  EXPECT_ERROR_HAS(a.load_state(far), "out of range");
}

TEST(Loader, CorpusSmallerThanOneSequence) {
  TempDir tmp;
  write_bytes(tmp / "in/a.txt", "ten bytes!");
  pack_dir(tmp / "in", tmp / "p", 0, 0.0);
  EXPECT_ERROR_HAS(Loader(tmp / "p", Split::kTrain, 1, 64, 0),
                   "has 12 tokens; one sequence needs seq_len + 1 = 65 tokens");
  Loader ok(tmp / "p", Split::kTrain, 3, 11, 0);  // exactly one window: every row is it
  at::Tensor x = ok.next();
  EXPECT_EQ(ok.windows_per_epoch(), 1);
  EXPECT_TRUE(at::equal(x[0], x[2]));
  EXPECT_EQ(decode(std::vector<int64_t>(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + 12), true),
            "<|bos|>ten bytes!<|eos|>");
  EXPECT_ERROR_HAS(Loader(tmp / "p", Split::kVal, 1, 4, 0), "the val split is empty");
  EXPECT_ERROR_HAS(Loader(tmp / "p", Split::kTrain, 0, 4, 0), "batch must be positive");
  EXPECT_ERROR_HAS(Loader(tmp / "p", Split::kTrain, 1, 0, 0), "seq_len must be positive");
}

TEST(Loader, BadDirectoriesAreNamed) {
  TempDir tmp;
  EXPECT_ERROR_HAS(Loader(tmp / "none", Split::kTrain, 1, 4, 0), "no such directory");
  EXPECT_ERROR_HAS(Loader(tmp.path(), Split::kTrain, 1, 4, 0), "no manifest.json");
  make_corpus(tmp / "in", 6, 1);
  pack_dir(tmp / "in", tmp / "p", 0, 0.2);
  const std::string shard = tmp / "p/train-00000.bin";
  const std::string good = slurp(shard);
  std::string flipped = good;
  flipped[good.size() / 2] ^= 1;
  write_bytes(shard, flipped);
  EXPECT_ERROR_HAS(Loader(tmp / "p", Split::kTrain, 1, 4, 0), "does not match its sha256");
  write_bytes(shard, good.substr(0, good.size() - 1));
  EXPECT_ERROR_HAS(Loader(tmp / "p", Split::kTrain, 1, 4, 0), "truncated or modified");
  write_bytes(shard, good);
  write_bytes(tmp / "p/manifest.json", "{\"format\": ");
  EXPECT_ERROR_HAS(Loader(tmp / "p", Split::kTrain, 1, 4, 0), "corrupt manifest.json");
}

// The installed corpus (scripts/setup.sh), capped: packs and loads.
TEST(Corpus, InstalledCorpusPacks) {
  if (!io::is_directory(default_corpus_dir())) GTEST_SKIP() << "corpus not installed: " << default_corpus_dir();
  TempDir tmp;
  PackOptions o;
  o.inputs = {default_corpus_dir()};
  o.out_dir = tmp / "p";
  o.max_bytes = 1'000'000;
  const PackSummary s = pack(o);
  EXPECT_GT(s.files_seen, 1000);
  EXPECT_GE(s.train_bytes + s.val_bytes, 999'990u);
  Loader l(o.out_dir, Split::kTrain, 2, 1024, 0);
  at::Tensor x = l.next();
  EXPECT_EQ(x.size(1), 1025);
  EXPECT_LT(x.max().item<int64_t>(), kNumTokens);
}

}  // namespace
}  // namespace lighthouse::data
