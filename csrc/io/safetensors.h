/*
 * The safetensors file format, torch-free (fuzzed: tests/fuzz/safetensors_fuzz.cpp).
 *
 * A file is: 8-byte little-endian header length n, n bytes of JSON header
 * (an object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of string -> string), then the data
 * section. Offsets are relative to the data section.
 *
 * parse_header validates everything a reader relies on, so a caller may copy
 * tensor bytes [data_offset + begin, data_offset + end) without further
 * checks: header length within the file and at most 100 MB, valid UTF-8 JSON
 * object, known dtypes, non-negative shapes whose element count times the
 * item size equals end - begin (no overflow), ranges in bounds, no overlap,
 * no hole and no trailing bytes (the data section is exactly covered, as the
 * reference implementation requires), unique names. Errors are
 * std::runtime_error with a message that says what is wrong; no input makes
 * it crash, hang or throw anything else.
 *
 * Header::tensors are in data order: by (begin, end), ties in header order.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lighthouse::io {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
  bool operator==(const TensorInfo& o) const {
    return name == o.name && dtype == o.dtype && shape == o.shape && begin == o.begin && end == o.end;
  }
};

struct Header {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // file offset of the data section: 8 + header length
  bool operator==(const Header& o) const {
    return tensors == o.tensors && metadata == o.metadata && data_offset == o.data_offset;
  }
};

constexpr uint64_t kMaxHeaderBytes = 100'000'000;

size_t dtype_size(DType);       // bytes per element
const char* dtype_name(DType);  // "F32", "BF16", "BOOL", ...
std::optional<DType> dtype_from_name(std::string_view);

// Parses and fully validates a whole safetensors file image.
Header parse_header(const uint8_t* file, size_t size);
// Same, from the file's first bytes only (at least the 8-byte length and the
// header), validating the ranges against the whole file's size. For readers
// that stream the data section.
Header parse_header_prefix(const uint8_t* prefix, size_t prefix_size, uint64_t file_size);
// Number of bytes parse_header_prefix needs: 8 + the header length read from
// the first 8 bytes (throws if fewer than 8 bytes or the length is too large).
uint64_t header_prefix_size(const uint8_t* first8, size_t size);

// Lays the tensors out contiguously in their current order (sets begin/end
// from dtype and shape); returns the data section's size. Throws on a
// negative dimension or a size overflow.
uint64_t assign_offsets(Header&);
// The bytes that precede the data section: the 8-byte length and the JSON
// header padded with spaces so that the data section starts at a multiple of
// 8. Tensors are written in the order given; begin/end must already be set
// (assign_offsets). For h in data order, parse_header(serialize_header(h) + data) == h with
// data_offset = serialize_header(h).size().
std::string serialize_header(const Header&);

}  // namespace lighthouse::io
