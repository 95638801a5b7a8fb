// safetensors.h (torch-free): the round-trip property over random headers,
// and rejection of every kind of bad file with a message that says what is
// wrong (TESTING.md items 13 and 16; the fuzz target is tests/fuzz/safetensors_fuzz.cpp).
#include <gtest/gtest.h>

#include <random>

#include "io/safetensors.h"
#include "test_util.h"

namespace lighthouse::io {
namespace {

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A file with this exact JSON text and data section.
std::string make_file(const std::string& json, const std::string& data) { return le64(json.size()) + json + data; }

Header parse(const std::string& file) {
  return parse_header(reinterpret_cast<const uint8_t*>(file.data()), file.size());
}

const DType kAllDTypes[] = {DType::kF64, DType::kF32, DType::kF16, DType::kBF16, DType::kI64,
                            DType::kI32, DType::kI16, DType::kI8,  DType::kU8,   DType::kBool};

std::string random_name(std::mt19937_64& rng) {
  static const char* kPieces[] = {"w", "layers.0.", "attn", "\"q\"", "back\\slash", "é", "漢字", "\x01", " ", "__x"};
  std::string s;
  const int n = 1 + static_cast<int>(rng() % 4);
  for (int i = 0; i < n; ++i) s += kPieces[rng() % 10];
  return s + std::to_string(rng() % 1000);
}

Header random_header(std::mt19937_64& rng) {
  Header h;
  const int n = static_cast<int>(rng() % 7);
  std::set<std::string> names;
  for (int i = 0; i < n; ++i) {
    TensorInfo t;
    do t.name = random_name(rng);
    while (!names.insert(t.name).second);
    t.dtype = kAllDTypes[rng() % 10];
    const int rank = static_cast<int>(rng() % 5);
    for (int r = 0; r < rank; ++r) t.shape.push_back(static_cast<int64_t>(rng() % 6));  // zeros included
    h.tensors.push_back(std::move(t));
  }
  const int m = static_cast<int>(rng() % 3);
  for (int i = 0; i < m; ++i) h.metadata[random_name(rng)] = random_name(rng);
  return h;
}

TEST(Safetensors, DTypeNamesAndSizes) {
  for (DType t : kAllDTypes) {
    EXPECT_EQ(dtype_from_name(dtype_name(t)), t);
    EXPECT_GT(dtype_size(t), 0u);
  }
  EXPECT_EQ(dtype_size(DType::kBF16), 2u);
  EXPECT_EQ(dtype_size(DType::kF64), 8u);
  EXPECT_FALSE(dtype_from_name("F8_E4M3").has_value());
  EXPECT_FALSE(dtype_from_name("f32").has_value());
}

// Random headers -> serialize -> parse -> equal (names with quotes, escapes,
// control characters and non-ASCII; empty and scalar tensors; metadata).
TEST(Safetensors, RoundTripProperty) {
  std::mt19937_64 rng(2026);
  for (int trial = 0; trial < 500; ++trial) {
    Header h = random_header(rng);
    const uint64_t data_size = assign_offsets(h);
    const std::string prefix = serialize_header(h);
    ASSERT_EQ(prefix.size() % 8, 0u);
    std::string data(data_size, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    Header got = parse(prefix + data);
    h.data_offset = prefix.size();
    ASSERT_EQ(got, h) << "trial " << trial << ": " << prefix.substr(8);
    // Re-serializing what was parsed gives the same bytes.
    EXPECT_EQ(serialize_header(got), prefix);
  }
}

TEST(Safetensors, ParsesReferenceLayout) {
  // As the reference writer lays it out: metadata first, keys in any order, padding spaces.
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
      R"("a":{"shape":[],"data_offsets":[0,4],"dtype":"I32"},"e":{"dtype":"BF16","shape":[0,3],"data_offsets":[12,12]}}   )";
  Header h = parse(make_file(json, std::string(12, 'x')));
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "a");  // data order
  EXPECT_EQ(h.tensors[1].name, "b");
  EXPECT_EQ(h.tensors[2].name, "e");
  EXPECT_TRUE(h.tensors[0].shape.empty());
  EXPECT_EQ(h.tensors[2].shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.data_offset, 8 + json.size());
  EXPECT_TRUE(parse(make_file("{}", "")).tensors.empty());
}

struct BadCase {
  const char* what;
  std::string file;
  const char* needle;
};

TEST(Safetensors, RejectsBadFilesWithClearMessages) {
  const std::string ok_json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  auto one = [](const std::string& entry, size_t data) {
    return make_file(R"({"a":)" + entry + "}", std::string(data, 'x'));
  };
  const std::vector<BadCase> cases = {
      {"empty file", "", "too small: 0 bytes"},
      {"short file", "abc", "too small: 3 bytes"},
      {"huge header length", le64(kMaxHeaderBytes + 1) + "{}", "exceeds the limit"},
      {"header length past the end", le64(1000) + "{}", "truncated: the header needs 1008 bytes"},
      {"data cut short", make_file(ok_json, std::string(5, 'x')), "past the end of the data section (5 bytes)"},
      {"not JSON", make_file("{not json}", ""), "invalid JSON header"},
      {"not an object", make_file("[1, 2]", ""), "not a JSON object"},
      {"invalid UTF-8", make_file("{\"\xff\":{}}", ""), "invalid JSON header"},
      {"trailing garbage after JSON", make_file("{} x", ""), "invalid JSON header"},
      {"unknown dtype", one(R"({"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]})", 2),
       "unsupported dtype \"F8_E4M3\""},
      {"dtype not a string", one(R"({"dtype":4,"shape":[2],"data_offsets":[0,8]})", 8), "dtype must be a string"},
      {"shape/size mismatch", one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})", 8),
       "shape [3] of F32 is 12 bytes, data_offsets [0, 8] hold 8"},
      {"negative dimension", one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})", 8), "non-negative integer"},
      {"float offset", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8.0]})", 8), "non-negative integer"},
      {"offsets not a pair", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})", 8), "must be [begin, end]"},
      {"end before begin", one(R"({"dtype":"U8","shape":[0],"data_offsets":[8,0]})", 8), "end before begin"},
      {"shape overflow", one(R"({"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]})", 8),
       "overflows"},
      {"huge number", one(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1e30]})", 1), "non-negative integer"},
      {"missing field", one(R"({"dtype":"F32","shape":[2]})", 8), "missing data_offsets"},
      {"unknown field", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1})", 8), "unknown field \"x\""},
      {"tensor not an object", one("[1]", 0), "must be an object"},
      {"metadata not strings", make_file(R"({"__metadata__":{"a":1}})", ""), "\"__metadata__\" value for \"a\""},
      {"duplicate name",
       make_file(
           R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
           "xy"),
       "duplicate key \"a\""},
      {"duplicate field", one(R"({"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]})", 1),
       "duplicate key \"dtype\""},
      {"overlap",
       make_file(
           R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
           std::string(6, 'x')),
       "tensors \"a\" and \"b\" overlap"},
      {"hole",
       make_file(
           R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
           std::string(6, 'x')),
       "bytes [2, 4) of the data section belong to no tensor"},
      {"trailing bytes", make_file(ok_json, std::string(9, 'x')), "the data section has 9 bytes, the tensors cover 8"},
      {"deep nesting", make_file(R"({"a":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})", "x"), "nested deeper"},
      {"very deep nesting", make_file(std::string(100000, '[') + std::string(100000, ']'), ""), "not a JSON object"},
      {"very deep object", make_file("{\"a\":" + std::string(100000, '['), ""), "nested deeper"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_ERROR_HAS(parse(c.file), c.needle);
  }
  EXPECT_NO_THROW(parse(make_file(ok_json, std::string(8, 'x'))));
}

// Every truncation and every single-byte corruption of a valid file either
// parses or throws std::runtime_error: never another exception, never a crash.
TEST(Safetensors, TruncationAndCorruptionNeverCrash) {
  std::mt19937_64 rng(5);
  Header h = random_header(rng);
  while (h.tensors.size() < 3) h = random_header(rng);
  const uint64_t size = assign_offsets(h);
  const std::string file = serialize_header(h) + std::string(size, 'd');
  for (size_t cut = 0; cut < file.size(); ++cut) {
    EXPECT_THROW(parse(file.substr(0, cut)), std::runtime_error) << "cut at " << cut;
  }
  int parsed = 0;
  for (size_t i = 0; i < file.size(); ++i) {
    for (int v : {0, int{'"'}, int{'{'}, int{']'}, int{'9'}, 0xff}) {
      std::string bad = file;
      bad[i] = static_cast<char>(v);
      try {
        parse(bad);
        ++parsed;
      } catch (const std::runtime_error&) {
      }
    }
  }
  EXPECT_GT(parsed, 0);  // data bytes and some header bytes are free to change
}

TEST(Safetensors, SerializeRejectsBadHeaders) {
  Header h;
  h.tensors.push_back({"__metadata__", DType::kU8, {1}, 0, 0});
  assign_offsets(h);
  EXPECT_ERROR_HAS(serialize_header(h), "__metadata__");
  Header d;
  d.tensors.push_back({"a", DType::kU8, {1}, 0, 0});
  d.tensors.push_back({"a", DType::kU8, {1}, 0, 0});
  assign_offsets(d);
  EXPECT_ERROR_HAS(serialize_header(d), "duplicate tensor name");
  Header u;
  u.tensors.push_back({"bad\xff", DType::kU8, {1}, 0, 0});
  assign_offsets(u);
  EXPECT_ERROR_HAS(serialize_header(u), "cannot serialize");
  Header n;
  n.tensors.push_back({"neg", DType::kU8, {-1}, 0, 0});
  EXPECT_ERROR_HAS(assign_offsets(n), "negative or overflows");
}

}  // namespace
}  // namespace lighthouse::io
