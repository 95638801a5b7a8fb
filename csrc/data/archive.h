/*
 * Reading the corpus's packaged files (torch-free): whole files that may be
 * compressed, and the members of tar archives, as streams.
 *
 * Compression is told by the first bytes, never by the name: gzip (1f 8b;
 * dictzip files such as GCIDE's .dict.dz are gzip too) through zlib, xz
 * (fd 37 7a 58 5a 00) through liblzma, anything else is read as is.
 * Concatenated gzip members and xz streams are read to the end. A build
 * without zlib or liblzma (CMake found no zlib1g-dev / liblzma-dev) reads
 * plain files and throws on compressed ones, saying which package to install.
 *
 * Tar: POSIX ustar, GNU (long names in 'L' entries) and pax (per-member
 * 'path' and 'size' records) headers, header checksums verified, sizes in
 * octal or base-256. The stream ends at the first all-zero header block or
 * at the end of the data. Errors (std::runtime_error) name the archive, the
 * member and the byte offset: a bad checksum, a truncated member, corrupt
 * compressed data.
 */
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace lighthouse::data {

enum class Compression { kNone, kGzip, kXz };
// From the first bytes of a file (at least 6 for xz; fewer give kNone).
Compression detect_compression(std::string_view head);
const char* compression_name(Compression);  // "none", "gzip", "xz"
// Whether this build can decompress it (kNone: always).
bool can_decompress(Compression);

// Sequential reader of a file's decompressed bytes.
class DecompressingReader {
 public:
  explicit DecompressingReader(const std::string& path);  // throws: unreadable, or compression not built in
  ~DecompressingReader();
  DecompressingReader(const DecompressingReader&) = delete;
  DecompressingReader& operator=(const DecompressingReader&) = delete;

  // Up to n bytes into out; fewer only at the end (0: the end). Throws on
  // corrupt or truncated compressed data, naming the path.
  size_t read(void* out, size_t n);
  // Exactly n bytes, or throws "<what> is truncated" naming the path.
  void read_exact(void* out, size_t n, const std::string& what);
  Compression compression() const { return compression_; }
  uint64_t position() const { return position_; }  // decompressed bytes returned so far
  const std::string& path() const { return path_; }

  struct Impl;

 private:
  size_t fill_input();  // raw bytes into the input buffer; 0 at end of file
  std::string path_;
  int fd_ = -1;
  Compression compression_ = Compression::kNone;
  std::string in_;  // raw input buffer
  size_t in_pos_ = 0, in_end_ = 0;
  bool in_eof_ = false;
  uint64_t position_ = 0;
  std::unique_ptr<Impl> impl_;
};

// A whole file, decompressed if it is compressed.
std::string read_decompressed(const std::string& path);

struct TarMember {
  std::string name;  // as stored (long GNU / pax names resolved), e.g. "linux-source-6.1/kernel/fork.c"
  char type = '0';   // '0' regular file, '1' hard link, '2' symbolic link, '5' directory, ...
  uint64_t size = 0;
  uint64_t offset = 0;  // of the member's header in the decompressed stream
  bool is_regular() const { return type == '0' || type == '\0' || type == '7'; }
};

// Calls fn(member, data) for every member (file, directory, link, ...) in
// archive order; data holds a regular member's content (empty otherwise)
// and is valid only during the call. The archive may be compressed.
void for_each_tar_member(const std::string& path,
                         const std::function<void(const TarMember&, std::string_view data)>& fn);

}  // namespace lighthouse::data
