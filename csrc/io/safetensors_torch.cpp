/*
 * safetensors <-> ATen. The header is validated in full (safetensors.cpp)
 * before any tensor is allocated, so a bad file costs no large allocation;
 * data is read straight into each tensor's storage.
 */
#include "io/safetensors_torch.h"

#include <ATen/ops/empty.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include "io/files.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so must the host be");

namespace lighthouse::io {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& msg) {
  throw std::runtime_error("safetensors '" + path + "': " + msg);
}

class Fd {
 public:
  explicit Fd(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail(path, std::string("cannot stat: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~Fd() { ::close(fd_); }
  uint64_t size() const { return size_; }
  // Reads exactly n bytes at offset; a short read means the file changed or is truncated.
  void read_at(void* dst, uint64_t n, uint64_t offset) const {
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (r < 0) {
        if (errno == EINTR) continue;
        fail(path_, std::string("read error: ") + std::strerror(errno));
      }
      if (r == 0) fail(path_, "truncated while reading (the file shrank?)");
      p += r;
      n -= static_cast<uint64_t>(r);
      offset += static_cast<uint64_t>(r);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

Header read_header(const Fd& f, const std::string& path) {
  try {
    uint8_t first8[8] = {};
    uint64_t have = std::min<uint64_t>(8, f.size());
    f.read_at(first8, have, 0);
    uint64_t need = header_prefix_size(first8, have);
    if (need > f.size())
      fail(path,
           "truncated: the header needs " + std::to_string(need) + " bytes, the file has " + std::to_string(f.size()));
    std::string prefix(need, '\0');
    f.read_at(prefix.data(), need, 0);
    return parse_header_prefix(reinterpret_cast<const uint8_t*>(prefix.data()), prefix.size(), f.size());
  } catch (const std::runtime_error& e) {
    if (std::strncmp(e.what(), "safetensors '", 13) == 0) throw;
    fail(path, e.what());
  }
}

}  // namespace

at::ScalarType to_scalar_type(DType t) {
  switch (t) {
    case DType::kF64:
      return at::kDouble;
    case DType::kF32:
      return at::kFloat;
    case DType::kF16:
      return at::kHalf;
    case DType::kBF16:
      return at::kBFloat16;
    case DType::kI64:
      return at::kLong;
    case DType::kI32:
      return at::kInt;
    case DType::kI16:
      return at::kShort;
    case DType::kI8:
      return at::kChar;
    case DType::kU8:
      return at::kByte;
    case DType::kBool:
      return at::kBool;
  }
  throw std::runtime_error("invalid DType " + std::to_string(static_cast<int>(t)));
}

DType from_scalar_type(at::ScalarType t) {
  switch (t) {
    case at::kDouble:
      return DType::kF64;
    case at::kFloat:
      return DType::kF32;
    case at::kHalf:
      return DType::kF16;
    case at::kBFloat16:
      return DType::kBF16;
    case at::kLong:
      return DType::kI64;
    case at::kInt:
      return DType::kI32;
    case at::kShort:
      return DType::kI16;
    case at::kChar:
      return DType::kI8;
    case at::kByte:
      return DType::kU8;
    case at::kBool:
      return DType::kBool;
    default:
      throw std::runtime_error(std::string("safetensors: unsupported dtype ") + c10::toString(t) +
                               " (supported: float64 float32 float16 bfloat16 int64 int32 int16 int8 uint8 bool)");
  }
}

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata) {
  Header h;
  h.metadata = metadata;
  std::vector<at::Tensor> data;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) fail(path, "tensor '" + name + "' is undefined");
    if (!names.insert(name).second) fail(path, "duplicate tensor name '" + name + "'");
    TensorInfo t;
    t.name = name;
    try {
      t.dtype = from_scalar_type(tensor.scalar_type());
    } catch (const std::runtime_error& e) {
      fail(path, "tensor '" + name + "': " + e.what());
    }
    t.shape.assign(tensor.sizes().begin(), tensor.sizes().end());
    h.tensors.push_back(std::move(t));
    data.push_back(tensor.detach().to(at::kCPU).contiguous());
  }
  std::string prefix;
  try {
    assign_offsets(h);
    prefix = serialize_header(h);
  } catch (const std::runtime_error& e) {
    fail(path, e.what());
  }
  AtomicFile f(path);
  f.write(prefix);
  for (size_t i = 0; i < data.size(); ++i) {
    const at::Tensor& t = data[i];
    const uint64_t nbytes = h.tensors[i].end - h.tensors[i].begin;
    if (nbytes != t.nbytes()) fail(path, "internal: size mismatch for '" + h.tensors[i].name + "'");
    if (nbytes > 0) f.write(t.data_ptr(), nbytes);
  }
  f.commit();
}

Header read_safetensors_header(const std::string& path) {
  Fd f(path);
  return read_header(f, path);
}

NamedTensors load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  Fd f(path);
  Header h = read_header(f, path);
  NamedTensors out;
  out.reserve(h.tensors.size());
  for (const TensorInfo& t : h.tensors) {
    at::Tensor x = at::empty(t.shape, at::TensorOptions().dtype(to_scalar_type(t.dtype)));
    if (t.end > t.begin) f.read_at(x.data_ptr(), t.end - t.begin, h.data_offset + t.begin);
    out.emplace_back(t.name, std::move(x));
  }
  if (metadata) *metadata = std::move(h.metadata);
  return out;
}

}  // namespace lighthouse::io
