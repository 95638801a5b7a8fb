// The CPU twins without torch: structure of the selection (counts, causal
// order, coverage, fan-in, inverse map), independence from the thread count,
// and the adjoint identities of gather and scatter in fp64.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "kernels/cpu/kernels_cpu.h"
#include "kernels/geometry.h"
#include "kernels/select_keys.h"

namespace lighthouse {
namespace {

// Runs chunks on `threads` std::threads in an interleaved order, so any
// dependence on the split or order shows.
CpuExec threaded_exec(int threads) {
  return CpuExec{[threads](int64_t n, int64_t, const CpuExec::Body& body) {
    std::vector<std::thread> pool;
    const int64_t chunk = std::max<int64_t>(1, n / (threads * 3));
    for (int w = 0; w < threads; ++w) {
      pool.emplace_back([&, w] {
        for (int64_t b = (threads - 1 - w) * chunk; b < n; b += threads * chunk) body(b, std::min(n, b + chunk));
      });
    }
    for (auto& t : pool) t.join();
  }};
}

struct Case {
  int64_t B, N, H, H_kv, d;
  int L, log2_p;
  int64_t k_top;
};

struct Selection {
  Geometry g;
  std::vector<float> q, k;
  std::vector<int32_t> entries, inv;
};

Selection run_selection(const Case& c, const CpuExec& ex, uint32_t seed) {
  Selection s;
  s.g = make_geometry(c.B, c.N, c.H, c.H_kv, c.d, c.L, c.log2_p, c.k_top);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  s.q.resize(c.B * c.N * c.H * c.d);
  s.k.resize(c.B * c.N * c.H_kv * c.d);
  for (auto& x : s.q) x = nd(rng);
  for (auto& x : s.k) x = nd(rng);
  // A few exact ties and a NaN token, to exercise the tie-break and NaN rule.
  for (int64_t i = 0; i < c.d; ++i) s.q[5 * c.H * c.d + i] = s.q[i];
  s.q[7 * c.H * c.d] = std::numeric_limits<float>::quiet_NaN();

  const Geometry& g = s.g;
  std::vector<float> sq(g.B * g.H * g.P, -1.f), sk(g.B * g.H_kv * g.P, -1.f);
  ScoresParams sp;
  sp.g = g;
  sp.dtype = DType::kFloat32;
  sp.q_src = {s.q.data(), c.N * c.H * c.d, c.H * c.d, c.d, c.H};
  sp.k_src = {s.k.data(), c.N * c.H_kv * c.d, c.H_kv * c.d, c.d, c.H_kv};
  sp.sq_ptr = sq.data();
  sp.sk_ptr = sk.data();
  run_scores_cpu(sp, ex);
  for (float x : sq) EXPECT_GE(x, 0.f);  // written everywhere, NaN mapped to +inf
  for (float x : sk) EXPECT_GE(x, 0.f);

  s.entries.assign(g.B * g.H * g.S, -7);
  s.inv.assign(g.B * g.H * g.P, -7);
  SelectParams p;
  p.g = g;
  p.sq_ptr = sq.data();
  p.sk_ptr = sk.data();
  p.sk_heads = g.H_kv;
  p.entries_ptr = s.entries.data();
  p.inv_ptr = s.inv.data();
  run_select_cpu(p, ex);
  return s;
}

const Case kCases[] = {
    {1, 256, 1, 1, 8, 2, 1, 128},      {2, 4096 + 13, 4, 2, 16, 3, 2, 256}, {1, 8192, 2, 1, 8, 4, 1, 384},
    {1, 8192 * 8 + 5, 2, 2, 8, 3, 3, 128}, {2, 2048, 3, 1, 4, 2, 2, 512},
};

TEST(SelectCpu, Structure) {
  for (const Case& c : kCases) {
    const Selection s = run_selection(c, CpuExec{}, 3);
    const Geometry& g = s.g;
    for (int64_t row = 0; row < g.B * g.H; ++row) {
      const int32_t* e = s.entries.data() + row * g.S;
      const int32_t* inv = s.inv.data() + row * g.P;
      // inverse map: exactly the emitted entries, pointing at their slots
      int64_t mapped = 0;
      for (int64_t i = 0; i < g.P; ++i) {
        ASSERT_GE(inv[i], -1);
        if (inv[i] >= 0) {
          ++mapped;
          ASSERT_EQ(e[inv[i]], i);
        }
      }
      ASSERT_EQ(mapped, g.S);
      std::vector<int64_t> per_level(g.L, 0);
      std::vector<int> fan_in(g.N_pad, 0);
      for (int64_t tile = 0; tile < g.T; ++tile) {
        int64_t prev_key = std::numeric_limits<int64_t>::min();
        std::fill(per_level.begin(), per_level.end(), 0);
        for (int64_t s_ = tile * g.E; s_ < (tile + 1) * g.E; ++s_) {
          const int l = g.level_of(e[s_]);
          const int64_t j = e[s_] - g.level_offset[l];
          ++per_level[l];
          // selected <=> some child is emitted
          const bool selected = l > 0 && inv[g.level_offset[l - 1] + j * g.p()] >= 0;
          if (l > 0) {
            for (int64_t ch = 0; ch < g.p(); ++ch) {
              ASSERT_EQ(inv[g.level_offset[l - 1] + j * g.p() + ch] >= 0, selected);
            }
          }
          const int64_t key = causal_key(g, l, j, selected);
          ASSERT_GT(key, prev_key) << "keys must strictly increase";
          prev_key = key;
          ASSERT_GE(key, (tile * g.tile_len()) << g.L);
          ASSERT_LT(key, ((tile + 1) * g.tile_len()) << g.L);
          for (int64_t t = j * g.span(l); t < (j + 1) * g.span(l); ++t) ++fan_in[t];
        }
        EXPECT_EQ(per_level[g.L - 1], g.C);
        for (int l = 0; l < g.L - 1; ++l) EXPECT_EQ(per_level[l], g.p() * 128) << "level " << l;
      }
      for (int64_t t = 0; t < g.N_pad; ++t) {
        ASSERT_GE(fan_in[t], 1) << "every position covered";
        ASSERT_LE(fan_in[t], g.L) << "fan-in <= L";
      }
      for (int64_t j = 0; j < g.level_size(g.L - 1); ++j) ASSERT_GE(inv[g.level_offset[g.L - 1] + j], 0);
    }
  }
}

TEST(SelectCpu, IndependentOfThreadCount) {
  for (const Case& c : kCases) {
    const Selection serial = run_selection(c, CpuExec{}, 9);
    for (int threads : {2, 3, 8}) {
      const Selection par = run_selection(c, threaded_exec(threads), 9);
      EXPECT_EQ(par.entries, serial.entries);
      EXPECT_EQ(par.inv, serial.inv);
    }
  }
}

// <A x, y> == <x, A^T y> for gather and scatter, in fp64 where the two sides
// round alike up to ~1e-12.
TEST(StagesCpu, AdjointIdentities) {
  const Case c{2, 4096 + 40, 4, 2, 8, 3, 2, 256};
  const Selection s = run_selection(c, CpuExec{}, 4);
  const Geometry& g = s.g;
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  auto randv = [&](size_t n) {
    std::vector<double> v(n);
    for (auto& x : v) x = nd(rng);
    return v;
  };
  auto dot = [](const std::vector<double>& a, const std::vector<double>& b) {
    double r = 0;
    for (size_t i = 0; i < a.size(); ++i) r += a[i] * b[i];
    return r;
  };
  const size_t n_tok = g.B * g.N * g.H * g.d, n_sub = g.B * g.H * g.S * g.d;
  auto tok = [&](std::vector<double>& v, int64_t heads) {
    return TokenTensor{v.data(), g.N * heads * g.d, heads * g.d, g.d, heads};
  };
  auto sub = [&](std::vector<double>& v) { return SubTensor{v.data(), g.H * g.S * g.d, g.S * g.d, g.d}; };
  const CpuExec ex = threaded_exec(2);

  // scatter
  std::vector<double> x = randv(n_sub), y = randv(n_tok), ax(n_tok, NAN), aty(n_sub, NAN);
  ScatterParams sp{g, DType::kFloat64, sub(x), tok(ax, g.H), s.inv.data()};
  run_scatter_cpu(sp, ex);
  ScatterBackwardParams sbp{g, DType::kFloat64, tok(y, g.H), sub(aty), s.entries.data()};
  run_scatter_backward_cpu(sbp, ex);
  const double lhs = dot(ax, y), rhs = dot(x, aty);
  EXPECT_NEAR(lhs, rhs, 1e-9 * std::fabs(lhs)) << "scatter adjoint";

  // gather, per tensor: q (H heads) and k (H_kv heads, GQA sum in backward)
  double glhs = 0, grhs = 0;
  for (int64_t heads : {g.H, g.H_kv}) {
    const size_t n_x = g.B * g.N * heads * g.d;
    std::vector<double> xs = randv(n_x), xg(n_sub, NAN), yg = randv(n_sub), dx(n_x, NAN);
    GatherParams gp{g, DType::kFloat64, tok(xs, heads), sub(xg), s.entries.data()};
    run_gather_cpu(gp, ex);
    GatherBackwardParams gbp{g, DType::kFloat64, sub(yg), tok(dx, heads), s.inv.data()};
    run_gather_backward_cpu(gbp, ex);
    glhs += dot(xg, yg);
    grhs += dot(xs, dx);
  }
  EXPECT_NEAR(glhs, grhs, 1e-9 * std::fabs(glhs)) << "gather adjoint";
}

}  // namespace
}  // namespace lighthouse
