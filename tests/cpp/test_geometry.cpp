// make_geometry: padding, S, per-tile counts and pyramid offsets follow the
// spec's formulas.
#include <gtest/gtest.h>

#include "kernels/geometry.h"

namespace lighthouse {
namespace {

TEST(Geometry, FormulasOverAGrid) {
  for (int L : {2, 3, 4, 5}) {
    for (int log2_p : {1, 2, 3}) {
      for (int64_t k_top : {128, 256, 512, 1536}) {
        const int64_t p = int64_t{1} << log2_p;
        const int64_t min_n = min_seq_len(L, log2_p, k_top);
        for (int64_t N : {min_n, min_n + 1, min_n + 77, 3 * min_n - 5}) {
          const Geometry g = make_geometry(2, N, 4, 2, 64, L, log2_p, k_top);
          const int64_t unit = (k_top / 128) << ((L - 1) * log2_p);
          EXPECT_EQ(g.N_pad % unit, 0);
          EXPECT_GE(g.N_pad, N);
          EXPECT_LT(g.N_pad - N, unit);
          EXPECT_EQ(g.T, k_top / 128);
          EXPECT_GE(g.C, 128);
          EXPECT_EQ(g.C * g.T, g.level_size(L - 1));
          EXPECT_EQ(g.E, g.C + (L - 1) * p * 128);
          // S = N_pad / p^(L-1) + (L-1) * p * k_top
          EXPECT_EQ(g.S, g.N_pad / g.span(L - 1) + (L - 1) * p * k_top);
          int64_t total = 0;
          for (int l = 0; l < L; ++l) {
            EXPECT_EQ(g.level_offset[l], total);
            EXPECT_EQ(g.level_size(l), g.N_pad / g.span(l));
            total += g.level_size(l);
            EXPECT_EQ(g.level_of(g.level_offset[l]), l);
            EXPECT_EQ(g.level_of(g.level_offset[l] + g.level_size(l) - 1), l);
          }
          EXPECT_EQ(g.P, total);
          EXPECT_EQ(g.level_offset[L], total);
        }
      }
    }
  }
}

TEST(Geometry, SmallestValidLength) {
  EXPECT_EQ(min_seq_len(3, 2, 512), 512 * 16);
  EXPECT_EQ(min_seq_len(2, 1, 128), 256);
  const Geometry g = make_geometry(1, min_seq_len(3, 2, 512), 1, 1, 8, 3, 2, 512);
  EXPECT_EQ(g.C, 128);
  EXPECT_EQ(g.N_pad, g.N);
}

}  // namespace
}  // namespace lighthouse
