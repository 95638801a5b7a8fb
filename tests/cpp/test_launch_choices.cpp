// The parser of LIGHTHOUSE_TOKEN_GATHER (kernels/cuda/launch_choices.h), the
// variable by which tuning runs and the GPU fallback tests force the token
// gather's launch choices: each accepted form sets what it names and keeps
// the rest, and anything else (a trailing character, a value out of range, a
// missing field) is refused with the choices left as they were.
#include <gtest/gtest.h>

#include <array>

#include "kernels/cuda/launch_choices.h"

namespace lighthouse {
namespace cuda {
namespace {

// The five choices in declaration order, to compare whole.
std::array<int, 5> choices(const TokenTuning& r) { return {r.cells, r.coop, r.heads, r.tasks, r.block}; }

TEST(TokenTuningParse, AcceptsEachFormAndKeepsTheUnnamedChoices) {
  const TokenTuning d;  // the defaults
  const struct {
    const char* text;
    std::array<int, 5> want;  // cells, coop, heads, tasks, block
  } cases[] = {
      {"cells=16,coop=0", {16, 0, d.heads, d.tasks, d.block}},
      {"cells=4,coop=1,heads=0,tasks=3", {4, 1, 0, 3, d.block}},
      {"cells=2,coop=0,heads=1,tasks=16,block=256", {2, 0, 1, 16, 256}},
      {"cells=2,coop=0,heads=1,tasks=16,block=128", {2, 0, 1, 16, 128}},
  };
  for (const auto& c : cases) {
    TokenTuning r;
    ASSERT_TRUE(parse_token_tuning(c.text, r)) << "'" << c.text << "'";
    EXPECT_EQ(choices(r), c.want) << "'" << c.text << "'";
  }
}

TEST(TokenTuningParse, RefusesAnythingElseAndLeavesTheChoices) {
  const char* bad[] = {
      "",
      "cells=4",
      "cells=4,coop=1x",
      "cells=4,coop=1,",
      "cells=4,coop=1,heads=1",
      "cells=4,coop=1,heads=1,tasks=8x",
      "cells=4,coop=1,heads=1,tasks=8,",
      "cells=4,coop=1,heads=1,tasks=8,block=64",
      "cells=4,coop=1,heads=1,tasks=8,block=256,",
      "cells=4,coop=1,heads=1,tasks=8,block=256 ",
      "cells=0,coop=1",
      "cells=4,coop=2",
      "cells=4,coop=1,heads=2,tasks=8",
      "cells=4,coop=1,heads=1,tasks=0",
      "coop=1,cells=4",
  };
  for (const char* text : bad) {
    TokenTuning r;
    r.cells = 7;
    r.block = 256;
    EXPECT_FALSE(parse_token_tuning(text, r)) << "'" << text << "'";
    EXPECT_EQ(r.cells, 7) << "'" << text << "'";
    EXPECT_EQ(r.block, 256) << "'" << text << "'";
  }
}

}  // namespace
}  // namespace cuda
}  // namespace lighthouse
