// bf16 / fp16 conversions of the CPU twins: exact round trips and
// round-to-nearest-even, checked against the compiler's _Float16 and an
// explicit nearest-neighbour search.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

#include "kernels/cpu/numeric.h"

namespace lighthouse {
namespace {

TEST(Numeric, Fp16ToFloatMatchesCompilerForAllBitPatterns) {
  for (uint32_t h = 0; h < 65536; ++h) {
    _Float16 ref;
    const uint16_t bits = static_cast<uint16_t>(h);
    std::memcpy(&ref, &bits, 2);
    const float want = static_cast<float>(ref);
    const float got = fp16_to_float(bits);
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << h;
    } else {
      EXPECT_EQ(float_to_bits(got), float_to_bits(want)) << "bits " << h;
    }
  }
}

TEST(Numeric, FloatToFp16RoundsLikeCompiler) {
  std::mt19937 rng(1);
  std::uniform_int_distribution<uint32_t> any;
  int checked = 0;
  for (int i = 0; i < 2000000; ++i) {
    const float f = bits_to_float(any(rng));
    const _Float16 ref = static_cast<_Float16>(f);
    uint16_t want;
    std::memcpy(&want, &ref, 2);
    const uint16_t got = float_to_fp16(f);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fp16_to_float(got)));
      continue;
    }
    ASSERT_EQ(got, want) << "float bits " << float_to_bits(f);
    ++checked;
  }
  // Every fp16 value and the midpoints between neighbours (ties to even).
  for (uint32_t h = 0; h < 0x7c00; ++h) {
    const float a = fp16_to_float(static_cast<uint16_t>(h));
    const float b = fp16_to_float(static_cast<uint16_t>(h + 1));
    EXPECT_EQ(float_to_fp16(a), h);
    const float mid = static_cast<float>((static_cast<double>(a) + b) / 2);
    const _Float16 ref = static_cast<_Float16>(mid);
    uint16_t want;
    std::memcpy(&want, &ref, 2);
    EXPECT_EQ(float_to_fp16(mid), want) << h;
  }
  EXPECT_GT(checked, 1000000);
}

TEST(Numeric, Bf16RoundTripAndNearestEven) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_float(static_cast<uint16_t>(b));
    if (std::isnan(f)) continue;
    EXPECT_EQ(float_to_bf16(f), b);
  }
  std::mt19937 rng(2);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t u = any(rng);
    const float f = bits_to_float(u);
    if (!std::isfinite(f)) continue;
    const uint16_t lo = static_cast<uint16_t>(u >> 16);
    const uint16_t got = float_to_bf16(f);
    const double x = f;
    const double dl = std::fabs(x - bf16_to_float(lo));
    const double dh = std::fabs(x - bf16_to_float(static_cast<uint16_t>(lo + 1)));
    if (std::isinf(bf16_to_float(static_cast<uint16_t>(lo + 1)))) continue;
    const uint16_t want = dl < dh ? lo : (dh < dl ? static_cast<uint16_t>(lo + 1) : ((lo & 1) ? lo + 1 : lo));
    ASSERT_EQ(got, want) << "float bits " << u;
  }
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
}

}  // namespace
}  // namespace lighthouse
