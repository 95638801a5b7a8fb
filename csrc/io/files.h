/*
 * Whole-file I/O with crash safety, and SHA-256 (torch-free).
 *
 * Invariants: a file written through AtomicFile / write_file_atomic is either
 * the complete old content or the complete new content after any crash: the
 * bytes go to a temporary file in the same directory, which is fsync'ed,
 * renamed over the target, and the directory is fsync'ed. An AtomicFile that
 * is destroyed without commit() removes its temporary file and leaves the
 * target untouched. Errors are std::runtime_error naming the path and the
 * OS reason.
 *
 * The path helpers below are plain POSIX on purpose: libtorch.so (2.11
 * wheel) exports its own copy of std::filesystem's free functions, which
 * take precedence in any program linked with it and crash (remove_all
 * segfaults). Code that may be linked with torch uses these instead.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lighthouse::io {

// Streams bytes to `path` atomically. Usage:
//   AtomicFile f(path); f.write(p, n); ...; f.commit();
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();  // without commit(): closes and removes the temporary file
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  // fsync the temporary file, rename it over the target, fsync the directory.
  void commit();

  const std::string& temp_path() const { return temp_path_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  std::string path_, temp_path_;
  int fd_ = -1;
  bool committed_ = false;
  uint64_t bytes_written_ = 0;
};

// Atomic whole-file write (AtomicFile + commit).
void write_file_atomic(const std::string& path, std::string_view bytes);
// Whole file; throws "cannot read '<path>': <reason>" (missing, a directory, ...).
std::string read_file(const std::string& path);
// fsync a directory (after a rename into it); throws on failure.
void fsync_dir(const std::string& dir);

// Path helpers (POSIX; see the note at the top).
bool path_exists(const std::string& path);      // follows symlinks
bool is_directory(const std::string& path);     // follows symlinks
bool is_regular_file(const std::string& path);  // follows symlinks
// Entry names of a directory (no "." or ".."), sorted bytewise; throws naming the directory.
std::vector<std::string> list_dir(const std::string& dir);
void make_dirs(const std::string& path);    // mkdir -p; throws naming the path
void remove_tree(const std::string& path);  // rm -rf without following symlinks; absent is fine
void rename_path(const std::string& from, const std::string& to);
// The last name of a path, lexically, trailing slashes ignored
// ("runs/tiny/two-stage/" -> "two-stage", "/" -> "/").
std::string base_name(const std::string& path);
// Absolute, symlink-free form of path (its parent's, plus the last name, if
// path does not exist yet); for comparing paths.
std::string canonical_path(const std::string& path);
// A new empty directory under $TMPDIR (or /tmp) named prefix-XXXXXX.
std::string make_temp_dir(const std::string& prefix);

// SHA-256 (FIPS 180-4), streaming.
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  std::string hex_digest();  // finishes; the object must not be updated after
 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Lower-case hex digest of the bytes / of a file's content (streamed).
std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::string& path);

}  // namespace lighthouse::io
