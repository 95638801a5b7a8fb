/*
 * make_geometry: the derived sizes of one Lighthouse call (see params.h).
 * Assumes a valid config: geometry_problems() (geometry_check.h) names what
 * is wrong with one, for the op's input checks and the config validator.
 */
#pragma once

#include "params.h"

namespace lighthouse {

// The smallest r >= 0 with 2^r >= x: the exact log2 of a power of two (the
// code base's one log2 helper; constexpr, also in CUDA code). At most 63.
LH_HD constexpr int32_t ceil_log2(int64_t x) {
  int32_t r = 0;
  while (r < 63 && (int64_t{1} << r) < x) ++r;
  return r;
}

// Smallest valid sequence length for a config: k_top * p^(L-1), i.e. 128
// coarsest entries per tile.
inline int64_t min_seq_len(int32_t L, int32_t log2_p, int64_t k_top) {
  return k_top << ((L - 1) * log2_p);
}

inline Geometry make_geometry(int64_t B, int64_t N, int64_t H, int64_t H_kv, int64_t d, int32_t L,
                              int32_t log2_p, int64_t k_top) {
  Geometry g;
  g.B = B;
  g.N = N;
  g.H = H;
  g.H_kv = H_kv;
  g.d = d;
  g.L = L;
  g.log2_p = log2_p;
  g.k_top = k_top;
  g.T = k_top / kSelectPerLevel;
  const int64_t unit = g.T << ((L - 1) * log2_p);  // p^(L-1) * T
  g.N_pad = (N + unit - 1) / unit * unit;
  g.C = g.level_size(L - 1) / g.T;
  g.E = g.C + int64_t{L - 1} * g.p() * kSelectPerLevel;
  g.S = g.T * g.E;
  int64_t off = 0;
  for (int l = 0; l < L; ++l) {
    g.level_offset[l] = off;
    off += g.level_size(l);
  }
  g.level_offset[L] = off;
  g.P = off;
  return g;
}

}  // namespace lighthouse
