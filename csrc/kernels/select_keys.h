/*
 * The two orderings the cascade uses, shared by the CPU twin and the CUDA
 * kernel so that both make the same choices bit for bit.
 *
 * rank_key: "larger score first, then smaller index". Scores are
 *   non-negative fp32 (norms; NaN already mapped to +inf), so their bit
 *   patterns order like the values; the low word holds the complemented index.
 * causal_key: the position of an emitted entry in the sub-sequence, as an
 *   exact integer (the spec's key times 2^L):
 *     kept coarse at level l, and every level-0 entry:  j * c_l
 *     selected at level l >= 1:                          (j + 1) * c_l - 2^-l
 */
#pragma once

#include <cstdint>
#include <cstring>

#include "params.h"

namespace lighthouse {

LH_HD uint64_t rank_key(float score, int64_t j) {
#if defined(__CUDA_ARCH__)
  const uint32_t bits = __float_as_uint(score);
#else
  uint32_t bits;
  std::memcpy(&bits, &score, sizeof bits);
#endif
  return (uint64_t{bits} << 32) | (0xffffffffu - static_cast<uint32_t>(j));
}

LH_HD int64_t rank_key_index(uint64_t key) {
  return static_cast<int64_t>(0xffffffffu - static_cast<uint32_t>(key & 0xffffffffu));
}

LH_HD int64_t causal_key(const Geometry& g, int l, int64_t j, bool selected) {
  const int64_t c = g.span(l);
  if (selected) return (((j + 1) * c) << g.L) - (int64_t{1} << (g.L - l));
  return (j * c) << g.L;
}

}  // namespace lighthouse
