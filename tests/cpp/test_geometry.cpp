// make_geometry against values computed by hand for specific configs, and
// properties that do not restate its formulas (N_pad is the smallest
// multiple of the padding unit >= N, the levels partition the pyramid, the
// CPU cascade emits exactly S entries); ceil_log2; and geometry_problems,
// the rules the op and the config validator share (geometry_check.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/geometry.h"
#include "kernels/geometry_check.h"

namespace lighthouse {
namespace {

struct HandCase {
  int L, log2_p;
  int64_t k_top, N;
  // Worked out by hand from shared/LIGHTHOUSE.md (unit = T * p^(L-1)).
  int64_t T, N_pad, C, E, S, P, tile_len;
  std::vector<int64_t> offsets;  // level_offset[0..L]
};

const HandCase kHand[] = {
    // p=4, T=4, unit 64; levels 8192, 2048, 512.
    {3, 2, 512, 8192, 4, 8192, 128, 1152, 4608, 10752, 2048, {0, 8192, 10240, 10752}},
    // p=2, T=1, unit 2; levels 300, 150.
    {2, 1, 128, 300, 1, 300, 150, 406, 406, 450, 300, {0, 300, 450}},
    // p=2, T=3, unit 24: 3073 -> 3096; levels 3096, 1548, 774, 387.
    {4, 1, 384, 3073, 3, 3096, 129, 897, 2691, 5805, 1032, {0, 3096, 4644, 5418, 5805}},
    // p=8, T=2, unit 128: 16385 -> 16512; levels 16512, 2064, 258.
    {3, 3, 256, 16385, 2, 16512, 129, 2177, 4354, 18834, 8256, {0, 16512, 18576, 18834}},
};

TEST(Geometry, HandComputedConfigs) {
  for (const HandCase& c : kHand) {
    SCOPED_TRACE("L=" + std::to_string(c.L) + " log2_p=" + std::to_string(c.log2_p) + " k_top=" +
                 std::to_string(c.k_top) + " N=" + std::to_string(c.N));
    const Geometry g = make_geometry(2, c.N, 4, 2, 64, c.L, c.log2_p, c.k_top);
    EXPECT_EQ(g.T, c.T);
    EXPECT_EQ(g.N_pad, c.N_pad);
    EXPECT_EQ(g.C, c.C);
    EXPECT_EQ(g.E, c.E);
    EXPECT_EQ(g.S, c.S);
    EXPECT_EQ(g.P, c.P);
    EXPECT_EQ(g.tile_len(), c.tile_len);
    for (int l = 0; l <= c.L; ++l) EXPECT_EQ(g.level_offset[l], c.offsets[l]) << "level " << l;
  }
  // The smallest valid lengths: k_top * p^(L-1).
  EXPECT_EQ(min_seq_len(3, 2, 512), 8192);
  EXPECT_EQ(min_seq_len(2, 1, 128), 256);
  EXPECT_EQ(min_seq_len(4, 1, 384), 3072);
  EXPECT_EQ(min_seq_len(3, 3, 256), 16384);
}

// The levels the scores pass pools (CoarsePool): L-2 as well as L-1 when
// L-2's spans hold 16 tokens or more. Rows: the pyramid entries from there.
TEST(Geometry, PooledLevelsByHand) {
  struct Case {
    int L, log2_p, first;
  };
  // (3, p=2): span(1) = 2; (3, p=4): 4; (4, p=4): span(2) = 16; (3, p=16): span(1) = 16;
  // (2, p=8): L-2 is level 0; (5, p=2): span(3) = 8; (6, p=2): span(4) = 16.
  for (const Case c : {Case{3, 1, 2}, Case{3, 2, 2}, Case{4, 2, 2}, Case{3, 4, 1}, Case{2, 3, 1}, Case{5, 1, 4},
                       Case{6, 1, 4}}) {
    const Geometry g = make_geometry(1, min_seq_len(c.L, c.log2_p, 128) + 3, 2, 1, 16, c.L, c.log2_p, 128);
    EXPECT_EQ(g.pool_first(), c.first) << "L=" << c.L << " log2_p=" << c.log2_p;
    int64_t rows = 0;
    for (int l = c.first; l < c.L; ++l) rows += g.level_size(l);
    EXPECT_EQ(g.pooled_rows(), rows) << "L=" << c.L << " log2_p=" << c.log2_p;
  }
}

TEST(Geometry, PaddingIsTheSmallestMultipleOfTheUnit) {
  for (int L : {2, 3, 4}) {
    for (int log2_p : {1, 2, 3}) {
      for (int64_t k_top : {128, 384, 512}) {
        // The padding unit: T tiles of p^(L-1) base positions each.
        const int64_t unit = (k_top / 128) * (int64_t{1} << ((L - 1) * log2_p));
        const int64_t min_n = min_seq_len(L, log2_p, k_top);
        for (int64_t N : {min_n, min_n + 1, min_n + unit - 1, min_n + unit, 3 * min_n - 5}) {
          const Geometry g = make_geometry(1, N, 1, 1, 8, L, log2_p, k_top);
          // Search upwards from N: the first multiple of the unit.
          int64_t want = N;
          while (want % unit != 0) ++want;
          EXPECT_EQ(g.N_pad, want) << "N=" << N << " unit=" << unit;
        }
      }
    }
  }
}

TEST(Geometry, LevelsPartitionThePyramid) {
  for (const HandCase& c : kHand) {
    const Geometry g = make_geometry(1, c.N, 1, 1, 8, c.L, c.log2_p, c.k_top);
    // Every pyramid index belongs to exactly the level whose range holds it,
    // and a level-l entry spans p^l base positions: the levels cover N_pad
    // each, so the pyramid holds sum_l N_pad / p^l entries.
    int64_t covered = 0;
    for (int l = 0; l < c.L; ++l) {
      const int64_t first = g.level_offset[l], last = g.level_offset[l + 1] - 1;
      EXPECT_EQ(g.level_of(first), l);
      EXPECT_EQ(g.level_of(last), l);
      EXPECT_EQ((last - first + 1) * g.span(l), g.N_pad) << "level " << l;
      covered += last - first + 1;
    }
    EXPECT_EQ(covered, g.P);
  }
}

// The CPU cascade fills exactly S slots with distinct entries, and its
// inverse map marks exactly S pyramid entries: S is what select() emits.
TEST(Geometry, SubsequenceLengthIsWhatTheCascadeEmits) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(0.f, 10.f);
  for (const HandCase& c : kHand) {
    const Geometry g = make_geometry(1, c.N, 2, 1, 8, c.L, c.log2_p, c.k_top);
    std::vector<float> sq(g.H * g.P), sk(g.H_kv * g.P);
    for (auto& x : sq) x = u(rng);
    for (auto& x : sk) x = u(rng);
    std::vector<int32_t> entries(g.H * g.S, -7), inv(g.H * g.P, -7);
    SelectParams p;
    p.g = g;
    p.sq_ptr = sq.data();
    p.sk_ptr = sk.data();
    p.sk_heads = g.H_kv;
    p.entries_ptr = entries.data();
    p.inv_ptr = inv.data();
    run_select_cpu(p, CpuExec{});
    for (int64_t h = 0; h < g.H; ++h) {
      std::vector<int32_t> row(entries.begin() + h * g.S, entries.begin() + (h + 1) * g.S);
      std::sort(row.begin(), row.end());
      EXPECT_GE(row.front(), 0) << "a slot was left unwritten";
      EXPECT_EQ(std::adjacent_find(row.begin(), row.end()), row.end()) << "an entry was emitted twice";
      const int64_t marked = std::count_if(inv.begin() + h * g.P, inv.begin() + (h + 1) * g.P,
                                           [](int32_t s) { return s >= 0; });
      EXPECT_EQ(marked, c.S);
    }
  }
}

TEST(Geometry, CeilLog2) {
  EXPECT_EQ(ceil_log2(1), 0);
  EXPECT_EQ(ceil_log2(2), 1);
  EXPECT_EQ(ceil_log2(3), 2);
  EXPECT_EQ(ceil_log2(4), 2);
  EXPECT_EQ(ceil_log2(1024), 10);
  EXPECT_EQ(ceil_log2(1025), 11);
  EXPECT_EQ(ceil_log2(int64_t{1} << 40), 40);
  EXPECT_EQ(ceil_log2(0), 0);
  EXPECT_EQ(ceil_log2(-5), 0);
  EXPECT_EQ(ceil_log2(INT64_MAX), 63);  // no overflow
}

// --- geometry_problems ------------------------------------------------------

GeometryArgs args(int64_t L, int64_t p, int64_t k, int64_t N = -1) {
  GeometryArgs a;
  a.levels = L;
  a.pool = p;
  a.top_k = k;
  a.seq_len = N;
  return a;
}

std::string all_messages(const std::vector<GeometryProblem>& ps) {
  std::string s;
  for (const auto& p : ps) s += p.message + " | " + p.fix + "\n";
  return s;
}

TEST(GeometryProblems, ValidGeometriesHaveNone) {
  EXPECT_TRUE(geometry_problems(args(3, 4, 1536)).empty());
  EXPECT_TRUE(geometry_problems(args(3, 2, 128, 512)).empty());
  EXPECT_TRUE(geometry_problems(args(2, 2, 128, 100000)).empty());
  GeometryArgs d = args(3, 2, 128, 4096);
  d.dilated = true;
  d.dilation = 4;
  EXPECT_TRUE(geometry_problems(d).empty());
}

TEST(GeometryProblems, EachRuleNamesTheValueAndTheFix) {
  const auto one = [](const GeometryArgs& a, const std::string& message, const std::string& fix) {
    const auto ps = geometry_problems(a);
    ASSERT_EQ(ps.size(), 1u) << all_messages(ps);
    EXPECT_EQ(ps[0].message, message);
    EXPECT_NE(ps[0].fix.find(fix), std::string::npos) << ps[0].fix;
  };
  one(args(1, 2, 128), "levels must be >= 2, got 1", "Set levels to 2 or more");
  one(args(17, 2, 128), "levels must be <= 16, got 17", "Lower levels");
  one(args(3, 6, 128), "pool must be a power of two >= 2, got 6", "Set pool to 2, 4, 8");
  one(args(3, 2, 200), "top_k must be a positive multiple of 128, got 200", "Set top_k to 128, 256");
  one(args(3, int64_t{1} << 20, 128), "config too large: top_k * pool^(levels-1) = 128 * 1048576^2 exceeds 2^40 tokens",
      "Lower levels, pool or top_k");
  GeometryArgs d = args(3, 2, 128);
  d.dilated = true;
  d.dilation = 12;
  one(d, "dilation must be a power of two >= 1, got 12", "Set dilation to 1, 2, 4");
  one(args(3, 2, 256, 1000),
      "sequence length N=1000 is too short for levels=3, pool=2, top_k=256: the smallest valid N is 1024 "
      "(top_k * pool^(levels-1), 128 coarsest entries per tile)",
      "Raise N to >= 1024");
  one(args(2, 2, 128, int64_t{1} << 31), "sequence length N=2147483648 is too long: the pyramid has more than 2^31 "
      "entries per row (limit 2^31)", "Lower N");
  one(args(2, 2, 128, (int64_t{1} << 31) - 100),
      "sequence length N=2147483548 is too long: the pyramid has 3221225322 entries per row (limit 2^31)", "Lower N");
}

TEST(GeometryProblems, DilationMustDivideThePaddedLength) {
  // L=3, p=2, top_k=256: unit 2 * 4 = 8, so N=1025 pads to 1032 = 8 * 129.
  GeometryArgs a = args(3, 2, 256, 1025);
  a.dilated = true;
  a.dilation = 16;
  auto ps = geometry_problems(a);
  ASSERT_EQ(ps.size(), 1u) << all_messages(ps);
  EXPECT_TRUE(ps[0].about_sequence);
  EXPECT_EQ(ps[0].message, "dilation=16 must divide the padded sequence length 1032");
  EXPECT_EQ(ps[0].fix, "Lower dilation to <= 8, or change N.");
  a.dilation = 8;  // the largest power of two dividing 1032
  EXPECT_TRUE(geometry_problems(a).empty());
  a.dilated = false;  // the norm scorer ignores the dilation
  a.dilation = 16;
  EXPECT_TRUE(geometry_problems(a).empty());
}

TEST(GeometryProblems, OptionsAloneAndAllProblemsAtOnce) {
  // Without a sequence length only the options are checked.
  EXPECT_TRUE(geometry_problems(args(3, 2, 256)).empty());
  // Every option problem is reported, and none about N while options are bad.
  GeometryArgs a = args(1, 3, 100, 5);
  a.dilated = true;
  a.dilation = 0;
  const auto ps = geometry_problems(a);
  ASSERT_EQ(ps.size(), 4u) << all_messages(ps);
  EXPECT_EQ(ps[0].message, "levels must be >= 2, got 1");
  EXPECT_EQ(ps[1].message, "pool must be a power of two >= 2, got 3");
  EXPECT_EQ(ps[2].message, "top_k must be a positive multiple of 128, got 100");
  EXPECT_EQ(ps[3].message, "dilation must be a power of two >= 1, got 0");
  for (const auto& p : ps) EXPECT_FALSE(p.about_sequence);
}

TEST(GeometryProblems, MessagesUseTheCallersNames) {
  GeometryNames n;
  n.levels = "lighthouse.levels";
  n.pool = "lighthouse.pool";
  n.top_k = "lighthouse.top_k";
  n.dilation = "lighthouse.dilation";
  n.seq_len = "train.seq_len";
  auto ps = geometry_problems(args(3, 2, 128, 256), n);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_NE(ps[0].message.find("train.seq_len=256 is too short for lighthouse.levels=3, lighthouse.pool=2, "
                               "lighthouse.top_k=128: the smallest valid train.seq_len is 512"),
            std::string::npos)
      << ps[0].message;
  EXPECT_EQ(ps[0].fix, "Raise train.seq_len to >= 512, or lower lighthouse.top_k, lighthouse.pool or lighthouse.levels.");
  ps = geometry_problems(args(3, 5, 128), n);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ps[0].message, "lighthouse.pool must be a power of two >= 2, got 5");
}

}  // namespace
}  // namespace lighthouse
