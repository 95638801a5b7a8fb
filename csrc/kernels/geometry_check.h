/*
 * geometry_problems: everything wrong with a Lighthouse geometry (levels,
 * pool, top_k, scorer, dilation and, when given, the sequence length N), as
 * a list of problems that each name the offending value and say what to
 * change. The one set of rules: the op's input checks (csrc/ops/checks.cpp)
 * raise the first problem as an error, the config validator
 * (csrc/config/validate.cpp) reports them all with its own key names, so a
 * config that validates runs and the two never disagree.
 *
 * Torch-free and header-only (the config library includes it without
 * linking the kernels). Numbers are formatted with std::to_string, never
 * through an ostream (see LH_CHECK in csrc/ops/checks.h).
 */
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "geometry.h"
#include "params.h"

namespace lighthouse {

// What messages call each quantity: the op's argument names by default; the
// config validator passes its keys ("lighthouse.pool", "train.seq_len").
struct GeometryNames {
  std::string levels = "levels";
  std::string pool = "pool";
  std::string top_k = "top_k";
  std::string dilation = "dilation";
  std::string seq_len = "N";
};

struct GeometryArgs {
  int64_t levels = 3;
  int64_t pool = 4;
  int64_t top_k = 1536;
  bool dilated = false;  // the dilated scorer; dilation is checked only then
  int64_t dilation = 4;
  int64_t seq_len = -1;  // N; negative: check the options alone
};

struct GeometryProblem {
  bool about_sequence = false;  // a rule on N (false: on the options alone)
  std::string message;          // names the value: "pool must be a power of two >= 2, got 3"
  std::string fix;              // what to change, a sentence: "Set pool to 2, 4, 8, ..."
};

// Limits of one call: L <= kMaxLevels, top_k * pool^(levels-1) <= 2^40
// tokens, fewer than 2^31 pyramid entries and sub-sequence slots per row.
constexpr int kMaxTokensLog2 = 40;

// Every problem of `a`, in a fixed order: levels, pool, top_k, size,
// dilation, then (options valid and a.seq_len >= 0) the sequence length and
// the dilated scorer's padding. Empty: make_geometry may be called.
inline std::vector<GeometryProblem> geometry_problems(const GeometryArgs& a, const GeometryNames& n = {}) {
  using std::to_string;
  std::vector<GeometryProblem> out;
  const auto add = [&](bool about_sequence, std::string message, std::string fix) {
    out.push_back({about_sequence, std::move(message), std::move(fix)});
  };
  const auto power_of_two = [](int64_t x) { return x > 0 && (x & (x - 1)) == 0; };

  bool sizes_ok = true;
  if (a.levels < 2) {
    add(false, n.levels + " must be >= 2, got " + to_string(a.levels), "Set " + n.levels + " to 2 or more.");
    sizes_ok = false;
  }
  if (a.levels > kMaxLevels) {
    add(false, n.levels + " must be <= " + to_string(kMaxLevels) + ", got " + to_string(a.levels),
        "Lower " + n.levels + ".");
    sizes_ok = false;
  }
  if (!(a.pool >= 2 && power_of_two(a.pool))) {
    add(false, n.pool + " must be a power of two >= 2, got " + to_string(a.pool), "Set " + n.pool + " to 2, 4, 8, ...");
    sizes_ok = false;
  }
  if (!(a.top_k > 0 && a.top_k % kSelectPerLevel == 0)) {
    add(false,
        n.top_k + " must be a positive multiple of " + to_string(kSelectPerLevel) + ", got " + to_string(a.top_k),
        "Set " + n.top_k + " to 128, 256, 384, ...");
    sizes_ok = false;
  }
  if (sizes_ok) {
    const int64_t shift = (a.levels - 1) * ceil_log2(a.pool);
    if (shift + ceil_log2(a.top_k) > kMaxTokensLog2) {
      add(false,
          "config too large: " + n.top_k + " * " + n.pool + "^(" + n.levels + "-1) = " + to_string(a.top_k) + " * " +
              to_string(a.pool) + "^" + to_string(a.levels - 1) + " exceeds 2^" + to_string(kMaxTokensLog2) +
              " tokens",
          "Lower " + n.levels + ", " + n.pool + " or " + n.top_k + ".");
      sizes_ok = false;
    }
  }
  if (a.dilated && !(a.dilation >= 1 && power_of_two(a.dilation))) {
    add(false, n.dilation + " must be a power of two >= 1, got " + to_string(a.dilation),
        "Set " + n.dilation + " to 1, 2, 4, ...");
  }
  if (!out.empty() || a.seq_len < 0) return out;

  const int32_t L = static_cast<int32_t>(a.levels), log2_p = ceil_log2(a.pool);
  const int64_t N = a.seq_len, min_n = min_seq_len(L, log2_p, a.top_k);
  if (N < min_n) {
    add(true,
        "sequence length " + n.seq_len + "=" + to_string(N) + " is too short for " + n.levels + "=" +
            to_string(a.levels) + ", " + n.pool + "=" + to_string(a.pool) + ", " + n.top_k + "=" + to_string(a.top_k) +
            ": the smallest valid " + n.seq_len + " is " + to_string(min_n) + " (" + n.top_k + " * " + n.pool + "^(" +
            n.levels + "-1), 128 coarsest entries per tile)",
        "Raise " + n.seq_len + " to >= " + to_string(min_n) + ", or lower " + n.top_k + ", " + n.pool + " or " +
            n.levels + ".");
    return out;
  }
  constexpr int64_t kLimit = std::numeric_limits<int32_t>::max();
  if (N >= kLimit) {  // P >= N_pad >= N: too long, and make_geometry could overflow
    add(true,
        "sequence length " + n.seq_len + "=" + to_string(N) +
            " is too long: the pyramid has more than 2^31 entries per row (limit 2^31)",
        "Lower " + n.seq_len + ".");
    return out;
  }
  const Geometry g = make_geometry(1, N, 1, 1, 1, L, log2_p, a.top_k);
  if (g.P >= kLimit || g.S >= kLimit) {
    add(true,
        "sequence length " + n.seq_len + "=" + to_string(N) + " is too long: the pyramid has " + to_string(g.P) +
            " entries per row (limit 2^31)",
        "Lower " + n.seq_len + ".");
    return out;
  }
  if (a.dilated && g.N_pad % a.dilation != 0) {
    // N_pad is a multiple of T * p^(L-1), a power of two times T.
    const int64_t largest = g.N_pad & -g.N_pad;  // the largest power of two dividing N_pad
    add(true,
        n.dilation + "=" + to_string(a.dilation) + " must divide the padded sequence length " + to_string(g.N_pad),
        "Lower " + n.dilation + " to <= " + to_string(largest) + ", or change " + n.seq_len + ".");
  }
  return out;
}

}  // namespace lighthouse
