/*
 * The token gather's launch choices (gather.cu) and the parser of
 * LIGHTHOUSE_TOKEN_GATHER, the variable that overrides them for tuning runs
 * and tests. Host-only and torch-free, so the CPU tests check the parser.
 * What each choice does and why the defaults are what they are: gather.cu,
 * above token_tuning().
 */
#pragma once

#include <cstdio>
#include <cstring>

namespace lighthouse {
namespace cuda {

struct TokenTuning {
  int cells = 4;
  int coop = -1;  // -1: when a group has several heads
  int heads = 1;
  int tasks = 8;
  int block = 128;  // threads a block of token_gather_heads_kernel (128 or 256)
};

// "cells=R,coop=0|1[,heads=0|1,tasks=R[,block=128|256]]" with R >= 1, the
// whole of `text` (nothing after the last number): the choices into `r`
// (the rest keep their values) and true; else false and `r` unchanged.
inline bool parse_token_tuning(const char* text, TokenTuning& r) {
  int c = 0, f = 0, h = 1, k = r.tasks, blk = r.block;
  int end2 = -1, end4 = -1, end5 = -1;  // where each of the three forms ends
  const int got = std::sscanf(text, "cells=%d,coop=%d%n,heads=%d,tasks=%d%n,block=%d%n", &c, &f, &end2, &h, &k,
                              &end4, &blk, &end5);
  const int len = static_cast<int>(std::strlen(text));
  const bool whole = (got == 2 && end2 == len) || (got == 4 && end4 == len) || (got == 5 && end5 == len);
  if (!whole || c < 1 || (f != 0 && f != 1) || (h != 0 && h != 1) || k < 1 || (blk != 256 && blk != 128)) {
    return false;
  }
  r.cells = c;
  r.coop = f;
  r.heads = h;
  r.tasks = k;
  r.block = blk;
  return true;
}

}  // namespace cuda
}  // namespace lighthouse
