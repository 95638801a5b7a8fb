// The fused kernels' own transcendentals (kernels/fused_math.h) against
// long-double libm: exp, log and sin/cos to a few double ulps over the
// ranges the kernels use, the special values, and the row reduction order.
// Torch-free, like the kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "kernels/cpu/fused_rows.h"
#include "kernels/fused_math.h"

namespace lighthouse::fused_math {
namespace {

double rel_err(double got, long double want) {
  return static_cast<double>(std::fabs((static_cast<long double>(got) - want) / want));
}

TEST(FusedMath, ExpIsAccurateToAFewUlps) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> wide(-700.0, 700.0), narrow(-2.0, 2.0);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const double x = i % 2 ? wide(rng) : narrow(rng);
    worst = std::max(worst, rel_err(exp_d(x), std::exp(static_cast<long double>(x))));
  }
  EXPECT_LT(worst, 4e-16) << "worst relative error";
  EXPECT_EQ(exp_d(0.0), 1.0);
  EXPECT_TRUE(std::isinf(exp_d(711.0)) && exp_d(711.0) > 0);
  EXPECT_EQ(exp_d(-800.0), 0.0);
  EXPECT_EQ(exp_d(-std::numeric_limits<double>::infinity()), 0.0);
  EXPECT_TRUE(std::isinf(exp_d(std::numeric_limits<double>::infinity())));
  EXPECT_TRUE(std::isnan(exp_d(std::nan(""))));
}

TEST(FusedMath, Fp32ExpIsAccurateToAFewFp32Ulps) {
  std::mt19937_64 rng(10);
  std::uniform_real_distribution<float> wide(-87.0f, 88.0f), narrow(-8.0f, 8.0f);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const float x = i % 2 ? wide(rng) : narrow(rng);
    worst = std::max(worst, rel_err(exp_f(x), std::exp(static_cast<long double>(x))));
  }
  EXPECT_LT(worst, 3.0 * 5.96e-8) << "worst relative error (fp32 ulp 2^-24 = 5.96e-8)";
  EXPECT_EQ(exp_f(0.0f), 1.0f);
  EXPECT_TRUE(std::isinf(exp_f(100.0f)));
  EXPECT_EQ(exp_f(-200.0f), 0.0f);
  EXPECT_TRUE(std::isnan(exp_f(std::nanf(""))));
}

TEST(FusedMath, LogIsAccurateToAFewUlps) {
  std::mt19937_64 rng(8);
  std::uniform_real_distribution<double> mant(1.0, 2.0);
  std::uniform_int_distribution<int> expo(-1070, 1020);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const double x = std::ldexp(mant(rng), i % 3 ? expo(rng) : 0);
    const long double want = std::log(static_cast<long double>(x));
    if (want == 0) continue;
    // Relative error, except near log = 0 where the absolute error counts.
    const double err = static_cast<double>(std::fabs(static_cast<long double>(log_d(x)) - want)) /
                       static_cast<double>(std::max<long double>(std::fabs(want), 1.0L));
    worst = std::max(worst, err);
  }
  EXPECT_LT(worst, 4e-16);
  EXPECT_EQ(log_d(1.0), 0.0);
  EXPECT_TRUE(std::isinf(log_d(0.0)) && log_d(0.0) < 0);
  EXPECT_TRUE(std::isnan(log_d(-1.0)));
  EXPECT_TRUE(std::isinf(log_d(std::numeric_limits<double>::infinity())));
  EXPECT_NEAR(log_d(5e-324), std::log(5e-324), 1e-12);  // subnormal input
}

TEST(FusedMath, SinCosAreAccurateForRopeAngles) {
  // RoPE angles: fp32 products of positions < 2^24 and frequencies <= 1.
  std::mt19937_64 rng(9);
  std::uniform_int_distribution<int64_t> pos(0, (int64_t{1} << 24) - 1);
  std::uniform_real_distribution<float> freq(1e-6f, 1.0f);
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    const float a = rope_angle(pos(rng), freq(rng));
    double s, c;
    sincos_d(a, &s, &c);
    const long double la = a;
    worst = std::max(
        {worst, static_cast<double>(std::fabs(s - std::sin(la))), static_cast<double>(std::fabs(c - std::cos(la)))});
  }
  EXPECT_LT(worst, 4e-16) << "worst absolute error";
  double s, c;
  sincos_d(0.0, &s, &c);
  EXPECT_EQ(s, 0.0);
  EXPECT_EQ(c, 1.0);
  sincos_d(1e9, &s, &c);  // beyond the supported range: NaN, not garbage
  EXPECT_TRUE(std::isnan(s) && std::isnan(c));
}

TEST(FusedMath, RowSumFollowsTheLaneOrder) {
  // Element i goes to lane (i / 4) % 32; lanes sum in index order, then a
  // halving tree. 2^53 and a 1 share lane 0 (2^53 + 1 rounds to 2^53), two
  // 1s meet in lane 16 (2), and the tree adds 2^53 + 2 exactly. Summing in
  // index order would give 2^53.
  std::vector<double> x(256, 0.0);
  const double big = 9007199254740992.0;  // 2^53
  x[0] = big;
  x[128] = 1.0;
  x[64] = 1.0;
  x[192] = 1.0;
  EXPECT_EQ(row_sum(256, [&](int64_t i) { return x[i]; }), big + 2.0);
  double sequential = 0;
  for (const double v : x) sequential += v;
  EXPECT_EQ(sequential, big);
  EXPECT_EQ(row_lane(5), 1);
  EXPECT_EQ(row_lane(127), 31);
  EXPECT_EQ(row_lane(128), 0);
}

}  // namespace
}  // namespace lighthouse::fused_math
