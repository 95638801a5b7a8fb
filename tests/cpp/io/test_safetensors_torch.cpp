// safetensors_torch.h: save/load of ATen tensors, bit for bit, every dtype,
// empty and scalar tensors, non-contiguous inputs, metadata; bad files stop
// with a message naming the file and the problem; a failed save leaves the
// old file.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "io/files.h"
#include "io/safetensors_torch.h"
#include "test_util.h"

namespace lighthouse::io {
namespace {

using lighthouse::testing::TempDir;
using lighthouse::testing::write_bytes;

bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

// Random tensor of any supported dtype, random bits for floats (NaN and Inf patterns included).
at::Tensor random_tensor(at::ScalarType dtype, at::IntArrayRef shape, std::mt19937_64& rng) {
  at::Tensor bytes = at::empty(
      {at::empty(shape, at::TensorOptions().dtype(dtype)).numel() * static_cast<int64_t>(c10::elementSize(dtype))},
      at::kByte);
  auto* p = bytes.data_ptr<uint8_t>();
  for (int64_t i = 0; i < bytes.numel(); ++i) p[i] = static_cast<uint8_t>(rng());
  if (dtype == at::kBool) return (bytes.view({-1}) % 2).to(at::kBool).view(shape).clone();
  return bytes.view(dtype).view(shape).clone();
}

const at::ScalarType kDTypes[] = {at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong,
                                  at::kInt,    at::kShort, at::kChar, at::kByte,     at::kBool};

TEST(SafetensorsTorch, RoundTripAllDTypesBitwise) {
  TempDir dir;
  std::mt19937_64 rng(3);
  NamedTensors tensors;
  int i = 0;
  for (at::ScalarType dt : kDTypes) {
    tensors.emplace_back("t" + std::to_string(i++) + "." + c10::toString(dt), random_tensor(dt, {3, 5}, rng));
    tensors.emplace_back("scalar." + std::string(c10::toString(dt)), random_tensor(dt, {}, rng));
    tensors.emplace_back("empty." + std::string(c10::toString(dt)), random_tensor(dt, {0, 4}, rng));
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"step", "12"}};
  const std::string path = dir / "m.safetensors";
  save_safetensors(path, tensors, meta);
  std::map<std::string, std::string> got_meta;
  NamedTensors got = load_safetensors(path, &got_meta);
  EXPECT_EQ(got_meta, meta);
  ASSERT_EQ(got.size(), tensors.size());
  for (size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].first, tensors[k].first);  // order kept
    EXPECT_TRUE(bitwise_equal(got[k].second, tensors[k].second)) << got[k].first;
    EXPECT_TRUE(got[k].second.is_contiguous());
  }
  // The torch-free parser accepts it, the data section starts 8-aligned.
  const std::string file = read_file(path);
  Header h = parse_header(reinterpret_cast<const uint8_t*>(file.data()), file.size());
  EXPECT_EQ(h.data_offset % 8, 0u);
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(read_safetensors_header(path), h);
}

TEST(SafetensorsTorch, RandomTensorsProperty) {
  TempDir dir;
  std::mt19937_64 rng(99);
  for (int trial = 0; trial < 30; ++trial) {
    NamedTensors tensors;
    const int n = static_cast<int>(rng() % 5);
    for (int k = 0; k < n; ++k) {
      std::vector<int64_t> shape(rng() % 4);
      for (auto& d : shape) d = static_cast<int64_t>(rng() % 4);
      tensors.emplace_back("p" + std::to_string(k), random_tensor(kDTypes[rng() % 10], shape, rng));
    }
    save_safetensors(dir / "p.safetensors", tensors);
    NamedTensors got = load_safetensors(dir / "p.safetensors");
    ASSERT_EQ(got.size(), tensors.size());
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].first, tensors[k].first);
      EXPECT_TRUE(bitwise_equal(got[k].second, tensors[k].second)) << "trial " << trial << " " << got[k].first;
    }
  }
}

TEST(SafetensorsTorch, NonContiguousSavedAsValues) {
  TempDir dir;
  at::Tensor base = at::arange(24, at::kFloat).view({4, 6});
  at::Tensor t = base.t().slice(0, 1, 5, 2);  // strided view
  save_safetensors(dir / "v.safetensors", {{"v", t}});
  auto got = load_safetensors(dir / "v.safetensors");
  EXPECT_TRUE(at::equal(got[0].second, t));
}

TEST(SafetensorsTorch, SaveErrors) {
  TempDir dir;
  const std::string path = dir / "x.safetensors";
  save_safetensors(path, {{"a", at::ones({2})}});
  const std::string before = read_file(path);
  EXPECT_ERROR_HAS(save_safetensors(path, {{"c", at::ones({2}, at::kComplexFloat)}}), "unsupported dtype ComplexFloat");
  EXPECT_ERROR_HAS(save_safetensors(path, {{"a", at::ones({2})}, {"a", at::ones({2})}}), "duplicate tensor name 'a'");
  EXPECT_ERROR_HAS(save_safetensors(path, {{"u", at::Tensor()}}), "undefined");
  EXPECT_ERROR_HAS(save_safetensors(path, {{"__metadata__", at::ones({1})}}), "__metadata__");
  EXPECT_EQ(read_file(path), before);  // failed saves leave the old file
  EXPECT_ERROR_HAS(save_safetensors(dir / "no/dir/x.safetensors", {{"a", at::ones({1})}}), "cannot create");
}

TEST(SafetensorsTorch, LoadErrorsNameFileAndProblem) {
  TempDir dir;
  const std::string path = dir / "m.safetensors";
  save_safetensors(path, {{"w", at::randn({16, 16})}, {"b", at::randn({16})}}, {{"format", "pt"}});
  const std::string good = read_file(path);

  EXPECT_ERROR_HAS(load_safetensors(dir / "missing.safetensors"),
                   "safetensors '" + (dir / "missing.safetensors") + "': cannot open: No such file");
  EXPECT_ERROR_HAS(load_safetensors(dir.path()), "not a regular file");

  write_bytes(path, good.substr(0, good.size() - 10));
  EXPECT_ERROR_HAS(load_safetensors(path), "safetensors '" + path + "': truncated or corrupt");
  write_bytes(path, good.substr(0, 20));
  EXPECT_ERROR_HAS(load_safetensors(path), "safetensors '" + path + "': truncated: the header needs");
  write_bytes(path, good.substr(0, 4));
  EXPECT_ERROR_HAS(load_safetensors(path), "too small: 4 bytes");
  write_bytes(path, "");
  EXPECT_ERROR_HAS(load_safetensors(path), "too small: 0 bytes");

  std::string corrupt = good;
  corrupt[9] = '#';  // the first key's opening quote
  write_bytes(path, corrupt);
  EXPECT_ERROR_HAS(load_safetensors(path), "invalid JSON header");

  std::string wrong_len = good;
  wrong_len[7] = '\x7f';  // absurd header length
  write_bytes(path, wrong_len);
  EXPECT_ERROR_HAS(load_safetensors(path), "exceeds the limit");

  write_bytes(path, good + "extra");
  EXPECT_ERROR_HAS(load_safetensors(path), "trailing bytes");
}

}  // namespace
}  // namespace lighthouse::io
