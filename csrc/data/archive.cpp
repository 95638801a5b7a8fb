/*
 * DecompressingReader (plain, gzip via zlib, xz via liblzma) and the tar
 * member stream (archive.h).
 */
#include "data/archive.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#ifdef LIGHTHOUSE_HAVE_ZLIB
#include <zlib.h>
#endif
#ifdef LIGHTHOUSE_HAVE_LZMA
#include <lzma.h>
#endif

namespace lighthouse::data {
namespace {

constexpr size_t kInputBuffer = 1 << 20;
constexpr size_t kBlock = 512;

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

std::string missing_library(Compression c, const std::string& path) {
  const bool gz = c == Compression::kGzip;
  return "cannot read '" + path + "': it is " + compression_name(c) + "-compressed and this build has no " +
         (gz ? "zlib (install zlib1g-dev" : "liblzma (install liblzma-dev") +
         ", then re-run cmake and rebuild; scripts/setup.sh installs it)";
}

}  // namespace

struct DecompressingReader::Impl {
#ifdef LIGHTHOUSE_HAVE_ZLIB
  z_stream z{};
  bool z_ready = false;
#endif
#ifdef LIGHTHOUSE_HAVE_LZMA
  lzma_stream x = LZMA_STREAM_INIT;
  bool x_ready = false;
#endif
  bool done = false;
  ~Impl() {
#ifdef LIGHTHOUSE_HAVE_ZLIB
    if (z_ready) inflateEnd(&z);
#endif
#ifdef LIGHTHOUSE_HAVE_LZMA
    if (x_ready) lzma_end(&x);
#endif
  }
};

Compression detect_compression(std::string_view head) {
  if (head.size() >= 2 && static_cast<unsigned char>(head[0]) == 0x1f && static_cast<unsigned char>(head[1]) == 0x8b)
    return Compression::kGzip;
  static const unsigned char kXz[6] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
  if (head.size() >= 6 && std::memcmp(head.data(), kXz, 6) == 0) return Compression::kXz;
  return Compression::kNone;
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kXz:
      return "xz";
    default:
      return "none";
  }
}

bool can_decompress(Compression c) {
  switch (c) {
    case Compression::kGzip:
#ifdef LIGHTHOUSE_HAVE_ZLIB
      return true;
#else
      return false;
#endif
    case Compression::kXz:
#ifdef LIGHTHOUSE_HAVE_LZMA
      return true;
#else
      return false;
#endif
    default:
      return true;
  }
}

DecompressingReader::DecompressingReader(const std::string& path)
    : path_(path), in_(kInputBuffer, '\0'), impl_(std::make_unique<Impl>()) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail("cannot read '" + path + "': " + std::strerror(errno));
  // Enough bytes for the magic (a short file is plain text).
  while (in_end_ < 6 && !in_eof_) fill_input();
  compression_ = detect_compression(std::string_view(in_.data(), in_end_));
  if (!can_decompress(compression_)) {
    ::close(fd_);
    fd_ = -1;
    fail(missing_library(compression_, path));
  }
#ifdef LIGHTHOUSE_HAVE_ZLIB
  if (compression_ == Compression::kGzip) {
    if (inflateInit2(&impl_->z, 15 + 16) != Z_OK) fail("cannot read '" + path + "': zlib inflateInit2 failed");
    impl_->z_ready = true;
  }
#endif
#ifdef LIGHTHOUSE_HAVE_LZMA
  if (compression_ == Compression::kXz) {
    if (lzma_stream_decoder(&impl_->x, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
      fail("cannot read '" + path + "': liblzma could not start a decoder");
    impl_->x_ready = true;
  }
#endif
}

DecompressingReader::~DecompressingReader() {
  if (fd_ >= 0) ::close(fd_);
}

size_t DecompressingReader::fill_input() {
  if (in_pos_ == in_end_) in_pos_ = in_end_ = 0;
  if (in_eof_ || in_end_ == in_.size()) return in_end_ - in_pos_;
  for (;;) {
    const ssize_t n = ::read(fd_, in_.data() + in_end_, in_.size() - in_end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail("cannot read '" + path_ + "': " + std::strerror(errno));
    if (n == 0) in_eof_ = true;
    in_end_ += static_cast<size_t>(n);
    return in_end_ - in_pos_;
  }
}

size_t DecompressingReader::read(void* out, size_t n) {
  auto* dst = static_cast<unsigned char*>(out);
  size_t got = 0;
  if (compression_ == Compression::kNone) {
    while (got < n) {
      if (in_pos_ == in_end_ && fill_input() == 0) break;
      const size_t take = std::min(n - got, in_end_ - in_pos_);
      std::memcpy(dst + got, in_.data() + in_pos_, take);
      in_pos_ += take;
      got += take;
    }
    position_ += got;
    return got;
  }
#ifdef LIGHTHOUSE_HAVE_ZLIB
  if (compression_ == Compression::kGzip) {
    z_stream& z = impl_->z;
    while (got < n && !impl_->done) {
      if (in_pos_ == in_end_) fill_input();
      z.next_in = reinterpret_cast<Bytef*>(in_.data() + in_pos_);
      z.avail_in = static_cast<uInt>(in_end_ - in_pos_);
      z.next_out = dst + got;
      z.avail_out = static_cast<uInt>(std::min<size_t>(n - got, 1u << 30));
      const uInt avail_before = z.avail_out;
      const int rc = inflate(&z, Z_NO_FLUSH);
      in_pos_ = in_end_ - z.avail_in;
      got += avail_before - z.avail_out;
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow (concatenated files).
        if (in_pos_ == in_end_) fill_input();
        if (in_pos_ == in_end_) {
          impl_->done = true;
        } else {
          inflateReset(&z);
        }
      } else if (rc == Z_BUF_ERROR && in_eof_ && in_pos_ == in_end_) {
        fail("cannot read '" + path_ + "': the gzip data is truncated");
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail("cannot read '" + path_ + "': corrupt gzip data (" + (z.msg ? z.msg : "zlib error") + ")");
      }
    }
    position_ += got;
    return got;
  }
#endif
#ifdef LIGHTHOUSE_HAVE_LZMA
  if (compression_ == Compression::kXz) {
    lzma_stream& x = impl_->x;
    while (got < n && !impl_->done) {
      if (in_pos_ == in_end_) fill_input();
      x.next_in = reinterpret_cast<const uint8_t*>(in_.data() + in_pos_);
      x.avail_in = in_end_ - in_pos_;
      x.next_out = dst + got;
      x.avail_out = n - got;
      const lzma_action action = (in_eof_ && in_pos_ == in_end_) ? LZMA_FINISH : LZMA_RUN;
      const size_t avail_before = x.avail_out;
      const lzma_ret rc = lzma_code(&x, action);
      in_pos_ = in_end_ - x.avail_in;
      got += avail_before - x.avail_out;
      if (rc == LZMA_STREAM_END) {
        impl_->done = true;
      } else if (rc == LZMA_BUF_ERROR && action == LZMA_FINISH) {
        fail("cannot read '" + path_ + "': the xz data is truncated");
      } else if (rc != LZMA_OK && rc != LZMA_BUF_ERROR) {
        fail("cannot read '" + path_ + "': corrupt xz data (liblzma error " + std::to_string(static_cast<int>(rc)) +
             ")");
      }
    }
    position_ += got;
    return got;
  }
#endif
  fail(missing_library(compression_, path_));
}

void DecompressingReader::read_exact(void* out, size_t n, const std::string& what) {
  if (read(out, n) != n) fail("archive '" + path_ + "': " + what + " is truncated");
}

std::string read_decompressed(const std::string& path) {
  DecompressingReader r(path);
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = r.read(buf, sizeof(buf))) > 0;) out.append(buf, n);
  return out;
}

namespace {

// A NUL-terminated field of at most n bytes.
std::string field(const char* p, size_t n) { return std::string(p, strnlen(p, n)); }

// Header number: octal (leading spaces/zeros, ended by NUL or space) or
// base-256 (high bit of the first byte set).
bool parse_number(const char* p, size_t n, uint64_t* out) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  uint64_t v = 0;
  if (u[0] & 0x80) {
    v = u[0] & 0x7f;
    for (size_t i = 1; i < n; ++i) {
      if (v >> 56) return false;
      v = (v << 8) | u[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < n && p[i] == ' ') ++i;
  bool digits = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v >> 60) return false;
    v = v * 8 + static_cast<uint64_t>(p[i] - '0');
    digits = true;
  }
  if (i < n && p[i] != '\0' && p[i] != ' ') return false;
  *out = v;
  return digits || i == n || p[i] == '\0';
}

bool checksum_ok(const char* h) {
  uint64_t stored = 0;
  if (!parse_number(h + 148, 8, &stored)) return false;
  uint64_t unsigned_sum = 0;
  int64_t signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const bool in_field = i >= 148 && i < 156;
    unsigned_sum += in_field ? ' ' : static_cast<unsigned char>(h[i]);
    signed_sum += in_field ? ' ' : static_cast<signed char>(h[i]);
  }
  return stored == unsigned_sum || static_cast<int64_t>(stored) == signed_sum;
}

uint64_t padded(uint64_t size) { return (size + kBlock - 1) / kBlock * kBlock; }

// pax extended header records "LEN KEY=VALUE\n": the path and size.
void parse_pax(const std::string& data, const std::string& where, std::string* path, uint64_t* size, bool* has_size) {
  size_t pos = 0;
  while (pos < data.size()) {
    size_t sp = data.find(' ', pos);
    if (sp == std::string::npos) fail(where + ": malformed pax header record");
    uint64_t len = 0;
    for (size_t i = pos; i < sp; ++i) {
      if (data[i] < '0' || data[i] > '9') fail(where + ": malformed pax header record length");
      len = len * 10 + static_cast<uint64_t>(data[i] - '0');
    }
    if (len == 0 || pos + len > data.size() || data[pos + len - 1] != '\n')
      fail(where + ": malformed pax header record");
    const std::string rec = data.substr(sp + 1, pos + len - 1 - (sp + 1));
    const size_t eq = rec.find('=');
    if (eq != std::string::npos) {
      const std::string key = rec.substr(0, eq), value = rec.substr(eq + 1);
      if (key == "path") {
        *path = value;
      } else if (key == "size") {
        uint64_t v = 0;
        for (char c : value) {
          if (c < '0' || c > '9') fail(where + ": malformed pax size '" + value + "'");
          v = v * 10 + static_cast<uint64_t>(c - '0');
        }
        *size = v;
        *has_size = true;
      }
    }
    pos += len;
  }
}

}  // namespace

void for_each_tar_member(const std::string& path,
                         const std::function<void(const TarMember&, std::string_view data)>& fn) {
  DecompressingReader r(path);
  const std::string where = "archive '" + path + "'";
  char h[kBlock];
  std::string data, long_name, pax_path;
  uint64_t pax_size = 0;
  bool pax_has_size = false;
  for (;;) {
    const uint64_t offset = r.position();
    const size_t got = r.read(h, kBlock);
    if (got == 0) return;  // no end-of-archive blocks: tolerated
    if (got < kBlock) fail(where + ": truncated header at byte " + std::to_string(offset));
    bool zero = true;
    for (char c : h) zero = zero && c == 0;
    if (zero) return;
    if (!checksum_ok(h))
      fail(where + ": bad tar header checksum at byte " + std::to_string(offset) + " (not a tar archive, or corrupt)");
    TarMember m;
    m.type = h[156];
    m.offset = offset;
    if (!parse_number(h + 124, 12, &m.size))
      fail(where + ": bad size field in the header at byte " + std::to_string(offset));
    const bool posix = std::memcmp(h + 257, "ustar\0", 6) == 0;
    m.name = field(h, 100);
    if (posix && h[345] != '\0') m.name = field(h + 345, 155) + "/" + m.name;

    const bool meta = m.type == 'L' || m.type == 'K' || m.type == 'x' || m.type == 'g';
    if (meta || m.is_regular()) {
      if (!meta && pax_has_size) m.size = pax_size;
      data.resize(m.size);
      r.read_exact(data.data(), m.size, "member '" + (meta ? std::string("(header)") : m.name) + "'");
    }
    const std::string where_member = where + " at byte " + std::to_string(offset);
    uint64_t pad = padded(m.size) - m.size;
    if (!meta && !m.is_regular()) pad = padded(m.size);  // skip a link's or directory's (unused) data
    char skip[kBlock];
    while (pad > 0) {
      const size_t take = static_cast<size_t>(std::min<uint64_t>(pad, kBlock));
      r.read_exact(skip, take, "member '" + m.name + "'");
      pad -= take;
    }
    if (m.type == 'L') {
      long_name = field(data.data(), data.size());
      continue;
    }
    if (m.type == 'x') {
      parse_pax(data, where_member, &pax_path, &pax_size, &pax_has_size);
      continue;
    }
    if (m.type == 'K' || m.type == 'g') continue;
    if (!pax_path.empty()) {
      m.name = pax_path;
    } else if (!long_name.empty()) {
      m.name = long_name;
    }
    long_name.clear();
    pax_path.clear();
    pax_has_size = false;
    fn(m, m.is_regular() ? std::string_view(data) : std::string_view());
  }
}

}  // namespace lighthouse::data
