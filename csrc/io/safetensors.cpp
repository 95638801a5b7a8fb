/*
 * safetensors header parsing, validation and serialization (torch-free).
 *
 * The JSON text is parsed by nlohmann-json with a callback that rejects
 * nesting deeper than a valid header needs (depth 3) and duplicate keys
 * (which the library would silently merge), so hostile headers cost at most
 * linear time and memory. Every nlohmann exception becomes a
 * std::runtime_error; the fuzz target checks that nothing else escapes.
 */
#include "io/safetensors.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <stdexcept>

namespace lighthouse::io {
namespace {

using Json = nlohmann::ordered_json;

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

std::string show(const std::string& name) {
  // Names come from untrusted files: dump() escapes them (valid UTF-8 here).
  return Json(name).dump();
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Bytes of a tensor of this dtype and shape; false on overflow.
bool tensor_bytes(DType dtype, const std::vector<int64_t>& shape, uint64_t* bytes) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *bytes = n;
  return true;
}

Json parse_json(const uint8_t* begin, const uint8_t* end) {
  // Duplicate-key detection for the two levels that hold keys.
  std::set<std::string> top_keys, entry_keys;
  auto cb = [&](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= 3) fail("invalid header: JSON nested deeper than a safetensors header");
        if (depth == 1 && event == Json::parse_event_t::object_start) entry_keys.clear();
        break;
      case Json::parse_event_t::key: {
        const std::string& k = parsed.get_ref<const std::string&>();
        if (depth == 1 && !top_keys.insert(k).second) fail("invalid header: duplicate key " + show(k));
        if (depth == 2 && !entry_keys.insert(k).second) fail("invalid header: duplicate key " + show(k));
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(begin, end, cb);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("invalid JSON header: ") + e.what());
  }
}

uint64_t get_uint(const Json& v, const std::string& what) {
  if (!v.is_number_unsigned()) fail(what + " must be a non-negative integer, got " + v.dump());
  return v.get<uint64_t>();
}

}  // namespace

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kF64:
    case DType::kI64:
      return 8;
    case DType::kF32:
    case DType::kI32:
      return 4;
    case DType::kF16:
    case DType::kBF16:
    case DType::kI16:
      return 2;
    case DType::kI8:
    case DType::kU8:
    case DType::kBool:
      return 1;
  }
  fail("invalid DType " + std::to_string(static_cast<int>(t)));
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kF64:
      return "F64";
    case DType::kF32:
      return "F32";
    case DType::kF16:
      return "F16";
    case DType::kBF16:
      return "BF16";
    case DType::kI64:
      return "I64";
    case DType::kI32:
      return "I32";
    case DType::kI16:
      return "I16";
    case DType::kI8:
      return "I8";
    case DType::kU8:
      return "U8";
    case DType::kBool:
      return "BOOL";
  }
  fail("invalid DType " + std::to_string(static_cast<int>(t)));
}

std::optional<DType> dtype_from_name(std::string_view s) {
  static const std::pair<const char*, DType> kNames[] = {
      {"F64", DType::kF64}, {"F32", DType::kF32}, {"F16", DType::kF16}, {"BF16", DType::kBF16}, {"I64", DType::kI64},
      {"I32", DType::kI32}, {"I16", DType::kI16}, {"I8", DType::kI8},   {"U8", DType::kU8},     {"BOOL", DType::kBool}};
  for (const auto& [name, t] : kNames)
    if (s == name) return t;
  return std::nullopt;
}

uint64_t header_prefix_size(const uint8_t* first8, size_t size) {
  if (size < 8)
    fail("too small: " + std::to_string(size) + " bytes; a safetensors file starts with an 8-byte header length");
  uint64_t n = read_le64(first8);
  if (n > kMaxHeaderBytes)
    fail("corrupt: header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) +
         " bytes");
  return 8 + n;
}

Header parse_header_prefix(const uint8_t* prefix, size_t prefix_size, uint64_t file_size) {
  if (prefix_size > file_size) fail("internal: prefix larger than the file");
  const uint64_t need = header_prefix_size(prefix, prefix_size);
  if (need > file_size)
    fail("truncated: the header needs " + std::to_string(need) + " bytes (8 + header length " +
         std::to_string(need - 8) + "), the file has " + std::to_string(file_size));
  if (need > prefix_size) fail("internal: prefix shorter than the header");
  const uint8_t* json_begin = prefix + 8;
  const uint8_t* json_end = prefix + need;
  if (json_begin == json_end || *json_begin != '{')
    fail("corrupt: the header is not a JSON object (must start with '{')");

  Json j = parse_json(json_begin, json_end);
  if (!j.is_object()) fail("corrupt: the header is not a JSON object");

  Header h;
  h.data_offset = need;
  const uint64_t data_size = file_size - need;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const Json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail("corrupt: \"__metadata__\" must be an object of strings, got " + v.dump());
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail("corrupt: \"__metadata__\" value for " + show(m.key()) + " must be a string, got " + m.value().dump());
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string who = "tensor " + show(name);
    if (!v.is_object()) fail("corrupt: " + who + " must be an object, got " + v.dump());
    TensorInfo t;
    t.name = name;
    bool have_dtype = false, have_shape = false, have_offsets = false;
    for (auto f = v.begin(); f != v.end(); ++f) {
      const std::string& key = f.key();
      const Json& fv = f.value();
      if (key == "dtype") {
        if (!fv.is_string()) fail("corrupt: " + who + ": dtype must be a string, got " + fv.dump());
        auto d = dtype_from_name(fv.get_ref<const std::string&>());
        if (!d)
          fail(who + ": unsupported dtype " + fv.dump() + " (supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
        t.dtype = *d;
        have_dtype = true;
      } else if (key == "shape") {
        if (!fv.is_array()) fail("corrupt: " + who + ": shape must be an array, got " + fv.dump());
        for (const Json& d : fv) {
          uint64_t x = get_uint(d, "corrupt: " + who + ": shape dimension");
          if (x > static_cast<uint64_t>(INT64_MAX))
            fail("corrupt: " + who + ": shape dimension " + d.dump() + " too large");
          t.shape.push_back(static_cast<int64_t>(x));
        }
        have_shape = true;
      } else if (key == "data_offsets") {
        if (!fv.is_array() || fv.size() != 2)
          fail("corrupt: " + who + ": data_offsets must be [begin, end], got " + fv.dump());
        t.begin = get_uint(fv[0], "corrupt: " + who + ": data_offsets begin");
        t.end = get_uint(fv[1], "corrupt: " + who + ": data_offsets end");
        have_offsets = true;
      } else {
        fail("corrupt: " + who + ": unknown field " + show(key));
      }
    }
    if (!have_dtype || !have_shape || !have_offsets)
      fail(std::string("corrupt: ") + who + ": missing " +
           (!have_dtype   ? "dtype"
            : !have_shape ? "shape"
                          : "data_offsets"));
    if (t.end < t.begin)
      fail("corrupt: " + who + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
           "] end before begin");
    if (t.end > data_size)
      fail("truncated or corrupt: " + who + ": data_offsets [" + std::to_string(t.begin) + ", " +
           std::to_string(t.end) + "] past the end of the data section (" + std::to_string(data_size) + " bytes)");
    uint64_t bytes = 0;
    if (!tensor_bytes(t.dtype, t.shape, &bytes))
      fail("corrupt: " + who + ": shape " + shape_str(t.shape) + " overflows");
    if (bytes != t.end - t.begin)
      fail("corrupt: " + who + ": shape " + shape_str(t.shape) + " of " + dtype_name(t.dtype) + " is " +
           std::to_string(bytes) + " bytes, data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
           "] hold " + std::to_string(t.end - t.begin));
    h.tensors.push_back(std::move(t));
  }

  std::stable_sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo& t : h.tensors) {
    if (t.begin < covered)
      fail("corrupt: tensors " + show(prev->name) + " and " + show(t.name) + " overlap (bytes [" +
           std::to_string(t.begin) + ", " + std::to_string(covered) + "))");
    if (t.begin > covered)
      fail("corrupt: bytes [" + std::to_string(covered) + ", " + std::to_string(t.begin) +
           ") of the data section belong to no tensor");
    covered = t.end;
    if (t.end > t.begin) prev = &t;
  }
  if (covered != data_size)
    fail("corrupt: the data section has " + std::to_string(data_size) + " bytes, the tensors cover " +
         std::to_string(covered) + " (trailing bytes)");
  return h;
}

Header parse_header(const uint8_t* file, size_t size) {
  if (file == nullptr && size > 0) fail("internal: null buffer");
  const uint64_t need = header_prefix_size(file, size);
  if (need > size)
    fail("truncated: the header needs " + std::to_string(need) + " bytes (8 + header length " +
         std::to_string(need - 8) + "), the file has " + std::to_string(size));
  return parse_header_prefix(file, size, size);
}

uint64_t assign_offsets(Header& h) {
  uint64_t offset = 0;
  for (TensorInfo& t : h.tensors) {
    uint64_t bytes = 0;
    if (!tensor_bytes(t.dtype, t.shape, &bytes))
      fail("tensor " + show(t.name) + ": shape " + shape_str(t.shape) + " is negative or overflows");
    t.begin = offset;
    if (__builtin_add_overflow(offset, bytes, &offset)) fail("tensors too large: data size overflows");
    t.end = offset;
  }
  return offset;
}

std::string serialize_header(const Header& h) {
  Json j = Json::object();
  try {
    if (!h.metadata.empty()) {
      Json m = Json::object();
      for (const auto& [k, v] : h.metadata) m[k] = v;
      j["__metadata__"] = std::move(m);
    }
    for (const TensorInfo& t : h.tensors) {
      if (t.name == "__metadata__") fail("a tensor may not be named \"__metadata__\"");
      if (j.contains(t.name))
        fail("duplicate tensor name " + Json(t.name).dump(-1, ' ', false, Json::error_handler_t::replace));
      Json e = Json::object();
      e["dtype"] = dtype_name(t.dtype);
      e["shape"] = t.shape;
      e["data_offsets"] = {t.begin, t.end};
      j[t.name] = std::move(e);
    }
    std::string text = j.dump();
    while ((8 + text.size()) % 8 != 0) text.push_back(' ');
    std::string out(8, '\0');
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
    return out + text;
  } catch (const nlohmann::json::exception& e) {
    // dump() throws on names or metadata that are not valid UTF-8.
    fail(std::string("cannot serialize safetensors header: ") + e.what());
  }
}

}  // namespace lighthouse::io
