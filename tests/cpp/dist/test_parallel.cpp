// The torch-free parallel rules (csrc/dist/parallel.h): cp-fastest rank
// layout, head-tail chunk ownership, and the errors that name the valid
// choices for a bad dp x cp or a geometry that cannot be split (also under
// the config's key names).
#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>

#include "config/config.h"
#include "dist/parallel.h"

namespace lighthouse::dist {
namespace {

void expect_contains(const std::string& text, std::initializer_list<std::string> needles) {
  for (const auto& n : needles) EXPECT_NE(text.find(n), std::string::npos) << "message: " << text << "\nmissing: " << n;
}

TEST(ParallelLayout, CpFastestGroups) {
  // dp=3, cp=2: ranks 0,1 | 2,3 | 4,5 form CP groups; 0,2,4 and 1,3,5 DP groups.
  const ParallelLayout l = make_parallel_layout(3, 2, 6, 3);
  EXPECT_EQ(l.cp_rank(), 1);
  EXPECT_EQ(l.dp_rank(), 1);
  EXPECT_EQ(l.cp_group_ranks(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(l.dp_group_ranks(), (std::vector<int64_t>{1, 3, 5}));
  // Every rank is in exactly one CP group and one DP group.
  std::set<std::vector<int64_t>> cp_groups, dp_groups;
  for (int64_t r = 0; r < 6; ++r) {
    const ParallelLayout x = make_parallel_layout(3, 2, 6, r);
    cp_groups.insert(x.cp_group_ranks());
    dp_groups.insert(x.dp_group_ranks());
    EXPECT_EQ(x.cp_group_ranks()[x.cp_rank()], r);
    EXPECT_EQ(x.dp_group_ranks()[x.dp_rank()], r);
  }
  EXPECT_EQ(cp_groups.size(), 3u);
  EXPECT_EQ(dp_groups.size(), 2u);
}

TEST(ParallelLayout, WorldSizeMismatchNamesTheChoices) {
  const std::string err = parallel_error(2, 2, 2);
  expect_contains(err, {"dp=2 * cp=2 = 4", "WORLD_SIZE=2", "dp=2 cp=1", "dp=1 cp=2"});
  EXPECT_THROW(make_parallel_layout(2, 2, 2, 0), std::invalid_argument);
  expect_contains(parallel_error(0, 1, 1), {"dp=0"});
  EXPECT_TRUE(parallel_error(2, 4, 8).empty());
  EXPECT_THROW(make_parallel_layout(1, 2, 2, 2), std::invalid_argument);
}

TEST(CpChunks, HeadTailOwnership) {
  for (int64_t W : {1, 2, 3, 4}) {
    std::set<int64_t> seen;
    for (int64_t r = 0; r < W; ++r) {
      const CpChunks ch{r, W};
      EXPECT_EQ(ch.chunk(0), r);
      EXPECT_EQ(ch.chunk(1), 2 * W - 1 - r);
      for (int a = 0; a < 2; ++a) {
        EXPECT_EQ(ch.owner(ch.chunk(a)), r);
        EXPECT_EQ(ch.local_index(ch.chunk(a)), a);
        seen.insert(ch.chunk(a));
      }
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), 2 * W);  // every chunk held once
  }
}

TEST(CpGeometry, ValidAndInvalidSplits) {
  // L=3, p=4, top_k=1536: T=12 tiles, unit p^2 * T = 192, smallest N = 24576.
  EXPECT_TRUE(cp_geometry_error(98304, 3, 4, 1536, 2).empty());
  EXPECT_TRUE(cp_geometry_error(98304, 3, 4, 1536, 6).empty());
  // 2*4 = 8 does not divide 12: nearest cp 3 and 6; nearest top_k for cp=4: 1024, 2048.
  expect_contains(cp_geometry_error(98304, 3, 4, 1536, 4),
                  {"cp=4", "T = top_k/128 = 12", "cp=3 or cp=6", "top_k=1024 or 2048"});
  // An odd T splits for no cp.
  expect_contains(cp_geometry_error(98304, 3, 4, 384, 2), {"no cp > 1", "top_k=512"});
  // N not a multiple of the tile unit: no padding under CP.
  expect_contains(cp_geometry_error(98304 + 64, 3, 4, 1536, 2), {"N=98368", "192", "N=98304 or 98496"});
  expect_contains(cp_geometry_error(12288, 3, 4, 1536, 2), {"smallest valid N is 24576"});
  EXPECT_TRUE(cp_dense_error(96, 4).empty());
  expect_contains(cp_dense_error(100, 4), {"2*cp=8", "N=96 or 104"});
}

TEST(CpGeometry, MessagesUseTheCallersNames) {
  ParallelNames n;
  n.cp = "parallel.cp";
  n.top_k = "lighthouse.top_k";
  n.seq_len = "train.seq_len";
  expect_contains(cp_geometry_error(98304, 3, 4, 1536, 4, n),
                  {"parallel.cp=4", "lighthouse.top_k/128 = 12", "parallel.cp=3 or parallel.cp=6"});
  expect_contains(cp_geometry_error(98368, 3, 4, 1536, 2, n), {"train.seq_len=98368"});
  // The one-device rules come first, in geometry_problems' words.
  expect_contains(cp_geometry_error(98304, 3, 3, 1536, 2, n), {"pool must be a power of two >= 2, got 3"});
}

// The trainer's [parallel] section: its rules come from parallel.h, under the
// config's keys, and are reported with the other problems.
std::string config_error(const config::Config& c) {
  try {
    config::validate(c);
  } catch (const config::ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ParallelConfig, DefaultsAndOverrides) {
  config::Config c = config::load_preset("tiny");
  EXPECT_EQ(c.parallel.dp, 1);
  EXPECT_EQ(c.parallel.cp, 1);
  config::apply_override(c, "parallel.cp", "2");
  config::apply_override(c, "parallel.dp", "3");
  EXPECT_EQ(c.parallel.cp, 2);
  EXPECT_EQ(c.parallel.dp, 3);
  EXPECT_EQ(config::parse_toml(config::to_toml(c), "round-trip"), c);
}

TEST(ParallelConfig, ValidationNamesTheKeys) {
  config::Config c = config::load_preset("tiny");  // L=3, p=2, top_k=128: one tile, no CP split
  c.parallel.cp = 2;
  expect_contains(config_error(c),
                  {"parallel.cp=2", "lighthouse.top_k/128 = 1", "lighthouse.top_k=512 for parallel.cp=2"});
  c.lighthouse.top_k = 512;  // T = 4 = 2 * cp; seq_len 4096 is a multiple of 2^2 * 4
  EXPECT_EQ(config_error(c), "");
  c.train.seq_len = 4098;
  expect_contains(config_error(c), {"train.seq_len=4098 must split into 2*parallel.cp=4 equal chunks"});
  c.train.seq_len = 4104;  // splits in 4, but not in whole tiles of 16
  expect_contains(config_error(c), {"train.seq_len=4104 must be a multiple of", "4096 or 4112"});
  c.train.seq_len = 4096;
  c.lighthouse.scorer = "dilated";
  expect_contains(config_error(c), {"lighthouse.scorer must be norm under context parallelism"});
  // A dense model needs only the 2*cp equal chunks.
  c = config::load_preset("tiny");
  c.model.attention = "dense";
  c.model.dense_layers = {};
  c.parallel.cp = 2;
  EXPECT_EQ(config_error(c), "");
  c.parallel.dp = 0;
  c.parallel.timeout_s = 0;
  const std::string msg = config_error(c);
  expect_contains(msg, {"parallel.dp must be >= 1, got 0", "parallel.timeout_s must be in [1, 604800]"});
  // Each DP rank takes batch/dp rows.
  c = config::load_preset("tiny");  // batch 1
  c.parallel.dp = 2;
  expect_contains(config_error(c), {"train.batch=1 must be a multiple of parallel.dp=2", "--train.batch 2"});
  c.train.batch = 4;
  EXPECT_EQ(config_error(c), "");
}

}  // namespace
}  // namespace lighthouse::dist
