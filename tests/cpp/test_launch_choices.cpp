// The parser of LIGHTHOUSE_TOKEN_GATHER (kernels/cuda/launch_choices.h), the
// variable by which tuning runs and the GPU fallback tests force the token
// gather's launch choices: each accepted form sets what it names and keeps
// the rest, and anything else (a trailing character, a value out of range, a
// missing field) is refused with the choices left as they were.
#include <gtest/gtest.h>

#include "kernels/cuda/launch_choices.h"

namespace lighthouse {
namespace cuda {
namespace {

TEST(TokenTuningParse, AcceptsEachFormAndKeepsTheUnnamedChoices) {
  TokenTuning r;
  ASSERT_TRUE(parse_token_tuning("cells=16,coop=0", r));
  EXPECT_EQ(r.cells, 16);
  EXPECT_EQ(r.coop, 0);
  EXPECT_EQ(r.heads, TokenTuning{}.heads);
  EXPECT_EQ(r.tasks, TokenTuning{}.tasks);
  EXPECT_EQ(r.block, TokenTuning{}.block);

  TokenTuning s;
  ASSERT_TRUE(parse_token_tuning("cells=4,coop=1,heads=0,tasks=3", s));
  EXPECT_EQ(s.cells, 4);
  EXPECT_EQ(s.coop, 1);
  EXPECT_EQ(s.heads, 0);
  EXPECT_EQ(s.tasks, 3);
  EXPECT_EQ(s.block, TokenTuning{}.block);

  TokenTuning t;
  ASSERT_TRUE(parse_token_tuning("cells=2,coop=0,heads=1,tasks=16,block=256", t));
  EXPECT_EQ(t.cells, 2);
  EXPECT_EQ(t.coop, 0);
  EXPECT_EQ(t.heads, 1);
  EXPECT_EQ(t.tasks, 16);
  EXPECT_EQ(t.block, 256);
  ASSERT_TRUE(parse_token_tuning("cells=2,coop=0,heads=1,tasks=16,block=128", t));
  EXPECT_EQ(t.block, 128);
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
