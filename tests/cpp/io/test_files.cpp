// files.h: SHA-256 against FIPS 180-4 / NIST vectors and sha256sum, atomic
// writes (an interrupted write leaves the old file), clear read errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <random>

#include "io/files.h"
#include "test_util.h"

namespace lighthouse::io {
namespace {

using lighthouse::testing::slurp;
using lighthouse::testing::TempDir;
using lighthouse::testing::write_bytes;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                 "mnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, StreamingEqualsOneShot) {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::string data(rng() % 1000, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    Sha256 s;
    for (size_t pos = 0; pos < data.size();) {
      size_t n = std::min<size_t>(rng() % 130, data.size() - pos);
      s.update(data.data() + pos, n);
      pos += n;
    }
    EXPECT_EQ(s.hex_digest(), sha256_hex(data)) << "length " << data.size();
  }
}

// Lengths around the 55/56/64-byte padding boundaries against coreutils' sha256sum.
TEST(Sha256, AgreesWithSha256sum) {
  TempDir dir;
  std::mt19937_64 rng(11);
  for (size_t len : {1, 54, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 4097}) {
    std::string data(len, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    const std::string path = dir / "x.bin";
    write_bytes(path, data);
    FILE* p = popen(("sha256sum '" + path + "'").c_str(), "r");
    ASSERT_NE(p, nullptr);
    char buf[65] = {};
    ASSERT_EQ(fread(buf, 1, 64, p), 64u);
    pclose(p);
    EXPECT_EQ(sha256_hex(data), std::string(buf)) << "length " << len;
    EXPECT_EQ(sha256_file(path), std::string(buf)) << "length " << len;
  }
}

TEST(Files, ReadErrorsNameThePath) {
  TempDir dir;
  EXPECT_ERROR_HAS(read_file(dir / "missing.txt"), "cannot read '" + (dir / "missing.txt") + "': No such file");
  EXPECT_ERROR_HAS(read_file(dir.path()), "is a directory");
  EXPECT_ERROR_HAS(sha256_file(dir / "missing.txt"), "missing.txt");
  write_bytes(dir / "a.txt", "hello");
  EXPECT_EQ(read_file(dir / "a.txt"), "hello");
}

size_t count_entries(const std::string& dir) { return list_dir(dir).size(); }

TEST(Files, PathHelpers) {
  TempDir dir;
  make_dirs(dir / "a/b/c");
  EXPECT_TRUE(is_directory(dir / "a/b/c"));
  write_file_atomic(dir / "a/b/f.txt", "x");
  write_file_atomic(dir / "a/e.txt", "y");
  EXPECT_EQ(list_dir(dir / "a"), (std::vector<std::string>{"b", "e.txt"}));
  EXPECT_TRUE(is_regular_file(dir / "a/e.txt"));
  EXPECT_FALSE(is_regular_file(dir / "a/b"));
  EXPECT_EQ(canonical_path(dir / "a/b/../e.txt"), canonical_path(dir / "a/e.txt"));
  EXPECT_EQ(canonical_path(dir / "a/new/x"), canonical_path(dir / "a") + "/new/x");
  EXPECT_ERROR_HAS(list_dir(dir / "missing"), "cannot read directory");
  EXPECT_ERROR_HAS(make_dirs(dir / "a/e.txt/sub"), "a/e.txt");
  rename_path(dir / "a/b", dir / "a/d");
  EXPECT_TRUE(is_directory(dir / "a/d/c"));
  EXPECT_ERROR_HAS(rename_path(dir / "a/none", dir / "a/z"), "cannot rename");
  remove_tree(dir / "a");
  EXPECT_FALSE(path_exists(dir / "a"));
  EXPECT_NO_THROW(remove_tree(dir / "a"));
}

TEST(Files, AtomicWriteReplacesAndLeavesNoTemp) {
  TempDir dir;
  const std::string path = dir / "f.bin";
  write_file_atomic(path, "old content");
  EXPECT_EQ(read_file(path), "old content");
  write_file_atomic(path, std::string("new\0content", 11));
  EXPECT_EQ(read_file(path), std::string("new\0content", 11));
  EXPECT_EQ(count_entries(dir.path()), 1u);
  EXPECT_ERROR_HAS(write_file_atomic(dir / "no/such/dir/f", "x"), "cannot create temporary file");
}

TEST(Files, AbandonedAtomicFileLeavesOldFile) {
  TempDir dir;
  const std::string path = dir / "f.bin";
  write_file_atomic(path, "old content");
  {
    AtomicFile f(path);
    f.write("half of the new con");
    EXPECT_TRUE(path_exists(f.temp_path()));
    EXPECT_EQ(read_file(path), "old content");
  }  // no commit: an exception between write and commit
  EXPECT_EQ(read_file(path), "old content");
  EXPECT_EQ(count_entries(dir.path()), 1u);
}

// A process that dies mid-write (no destructor runs) leaves the old file intact.
TEST(Files, CrashMidWriteLeavesOldFile) {
  TempDir dir;
  const std::string path = dir / "f.bin";
  const std::string old_content(100000, 'o');
  write_file_atomic(path, old_content);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    AtomicFile* f = new AtomicFile(path);
    f->write(std::string(50000, 'n'));
    _exit(0);  // crash: no commit, no cleanup
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(read_file(path), old_content);
  // The temporary file may remain (as after a real crash), under a hidden name.
  for (const std::string& name : list_dir(dir.path())) {
    if (name != "f.bin") EXPECT_EQ(name.rfind(".f.bin.tmp.", 0), 0u) << name;
  }
}

TEST(Paths, BaseNameIsTheLastNameWithTrailingSlashesIgnored) {
  EXPECT_EQ(base_name("runs/tiny/two-stage/"), "two-stage");
  EXPECT_EQ(base_name("runs/tiny/two-stage"), "two-stage");
  EXPECT_EQ(base_name("dense"), "dense");
  EXPECT_EQ(base_name("/"), "/");
  EXPECT_EQ(base_name("/a//"), "a");
}

}  // namespace
}  // namespace lighthouse::io
