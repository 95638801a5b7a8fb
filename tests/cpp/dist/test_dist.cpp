// Multi-process tests of csrc/dist on CPU with Gloo, run by ctest under
// torchrun (tests/cpp/dist/CMakeLists.txt: 2 and 4 processes):
//   torchrun --standalone --nproc-per-node N --no-python build/tests/cpp/test_dist
// Every rank runs every test in the same order (they are collectives); a
// rank's failure fails torchrun. Without torchrun the tests that need
// several processes are skipped with a message (never reported as run).
//
// Exactness is checked as in tests/python/tolerances.py: identical entries;
// float64 results within 1e-10 * max|ref| of the one-process op; float32
// results within 2x (outputs) / 3x (gradients) the one-process float32
// op's error against the float64 op, plus the rounding noise of the float64
// reference.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "dist/process_group.h"
#include "lighthouse/lighthouse.h"
#include "lighthouse/lighthouse_cp.h"

namespace lighthouse {
namespace {

using dist::World;

const World& world_for(int64_t dp, int64_t cp) {
  static std::vector<std::pair<std::pair<int64_t, int64_t>, World>> worlds;
  for (const auto& w : worlds) {
    if (w.first == std::make_pair(dp, cp)) return w.second;
  }
  dist::InitOptions o;
  o.dp = dp;
  o.cp = cp;
  o.timeout = std::chrono::seconds(120);
  worlds.emplace_back(std::make_pair(dp, cp), dist::init(at::kCPU, o));
  return worlds.back().second;
}

int64_t world_size() { return dist::read_env().world_size; }

#define REQUIRE_WORLD(n)                                                                                  \
  do {                                                                                                    \
    if (world_size() < (n))                                                                               \
      GTEST_SKIP() << "needs " << (n) << " processes under torchrun (WORLD_SIZE=" << world_size() << ")"; \
  } while (0)

double max_abs(const at::Tensor& x) { return x.abs().max().item<double>(); }
double max_err(const at::Tensor& a, const at::Tensor& b) { return max_abs(a.to(at::kDouble) - b.to(at::kDouble)); }

// The float64 reference rounded to float32, plus its own float64 noise.
double noise(const at::Tensor& ref) {
  const at::Tensor r = ref.to(at::kDouble);
  return max_abs(r.to(at::kFloat).to(at::kDouble) - r) + 2 * max_abs((r + 0.3) - 0.3 - r);
}

// err(actual vs ref64) <= factor * err(stock vs ref64) + noise(ref64).
void expect_within_rule(const std::string& name, const at::Tensor& actual, const at::Tensor& stock,
                        const at::Tensor& ref, double factor) {
  ASSERT_GT(max_abs(ref), 0.0) << name << ": the reference is all zeros";
  const double err = max_err(actual, ref);
  if (actual.scalar_type() == at::kDouble) {
    EXPECT_LE(err, 1e-10 * max_abs(ref)) << name << " (float64)";
    return;
  }
  const double bound = factor * max_err(stock, ref) + noise(ref);
  EXPECT_LE(err, bound) << name << ": err " << err << " > " << factor << " * stock err " << max_err(stock, ref)
                        << " + noise " << noise(ref);
}

struct Inputs {
  at::Tensor q, k, v, go;  // whole sequence, float64
};

Inputs make_inputs(int64_t B, int64_t N, int64_t H, int64_t H_kv, int64_t d, uint64_t seed) {
  at::manual_seed(seed);  // same on every rank
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  return {at::randn({B, N, H, d}, f64), at::randn({B, N, H_kv, d}, f64), at::randn({B, N, H_kv, d}, f64),
          at::randn({B, N, H, d}, f64)};
}

struct Result {
  at::Tensor out, dq, dk, dv;
};

template <typename Fn>
Result run(Fn fn, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& go) {
  const at::Tensor ql = q.detach().requires_grad_(), kl = k.detach().requires_grad_(), vl = v.detach().requires_grad_();
  const at::Tensor out = fn(ql, kl, vl);
  const auto g = torch::autograd::grad({out}, {ql, kl, vl}, {go});
  return {out.detach(), g[0], g[1], g[2]};
}

Result shard_result(const Result& r, int64_t rank, int64_t W) {
  return {cp::shard(r.out, rank, W), cp::shard(r.dq, rank, W), cp::shard(r.dk, rank, W), cp::shard(r.dv, rank, W)};
}

// CP Lighthouse vs the one-process op, in float64 and float32.
void check_lighthouse(const cp::Group& group, const Options& o, int64_t B, int64_t N, int64_t H, int64_t H_kv,
                      int64_t d, uint64_t seed) {
  const int64_t r = group->getRank(), W = group->getSize();
  const Inputs in = make_inputs(B, N, H, H_kv, d, seed);
  auto sh = [&](const at::Tensor& x, at::ScalarType t) { return cp::shard(x, r, W).to(t); };

  // Entries: this rank's slices of the one-process selection, exactly.
  const at::Tensor q32 = in.q.to(at::kFloat), k32 = in.k.to(at::kFloat), v32 = in.v.to(at::kFloat);
  const at::Tensor entries = select(q32, k32, o);
  const at::Tensor cp_entries = cp::select(sh(in.q, at::kFloat), sh(in.k, at::kFloat), o, group);
  EXPECT_TRUE(cp_entries.equal(cp::shard(entries, r, W, 2))) << "entries differ on rank " << r;

  // One process: float64 with the float32 selection (reference), float32 (stock).
  auto whole = [&](const std::optional<at::Tensor>& e) {
    return [&o, e](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) { return attention(q, k, v, o, e); };
  };
  const Result ref = shard_result(run(whole(entries), in.q, in.k, in.v, in.go), r, W);
  const Result stock = shard_result(run(whole(std::nullopt), q32, k32, v32, in.go.to(at::kFloat)), r, W);
  auto cp_fn = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return cp::attention(q, k, v, o, group);
  };
  for (at::ScalarType t : {at::kDouble, at::kFloat}) {
    const std::string tag =
        std::string("lighthouse W=") + std::to_string(W) + " rank " + std::to_string(r) + " " + c10::toString(t);
    // CP float64 runs with its own selection, which equals the float32 one on
    // these inputs only if no score is near a tie: compare float64 CP with the
    // float64 one-process op instead.
    const Result got = run(cp_fn, sh(in.q, t), sh(in.k, t), sh(in.v, t), sh(in.go, t));
    if (t == at::kDouble) {
      // Usually the same selection as float32's: then `ref` is the float64 op.
      const bool same = select(in.q, in.k, o).equal(entries);
      const Result ref64 = same ? ref : shard_result(run(whole(std::nullopt), in.q, in.k, in.v, in.go), r, W);
      expect_within_rule(tag + " out", got.out, got.out, ref64.out, 2);
      expect_within_rule(tag + " dq", got.dq, got.dq, ref64.dq, 3);
      expect_within_rule(tag + " dk", got.dk, got.dk, ref64.dk, 3);
      expect_within_rule(tag + " dv", got.dv, got.dv, ref64.dv, 3);
      continue;
    }
    expect_within_rule(tag + " out", got.out, stock.out, ref.out, 2);
    expect_within_rule(tag + " dq", got.dq, stock.dq, ref.dq, 3);
    expect_within_rule(tag + " dk", got.dk, stock.dk, ref.dk, 3);
    expect_within_rule(tag + " dv", got.dv, stock.dv, ref.dv, 3);
  }
}

// CP dense attention vs one-process causal SDPA.
void check_dense(const cp::Group& group, int64_t B, int64_t N, int64_t H, int64_t H_kv, int64_t d, uint64_t seed) {
  const int64_t r = group->getRank(), W = group->getSize();
  const Inputs in = make_inputs(B, N, H, H_kv, d, seed);
  auto sdpa = [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    const int64_t g = q.size(2) / k.size(2);
    return at::scaled_dot_product_attention(q.transpose(1, 2), k.repeat_interleave(g, 2).transpose(1, 2),
                                            v.repeat_interleave(g, 2).transpose(1, 2), std::nullopt, 0.0, true)
        .transpose(1, 2);
  };
  const Result ref = shard_result(run(sdpa, in.q, in.k, in.v, in.go), r, W);
  const Result stock = shard_result(
      run(sdpa, in.q.to(at::kFloat), in.k.to(at::kFloat), in.v.to(at::kFloat), in.go.to(at::kFloat)), r, W);
  auto cp_fn = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    return cp::dense_attention(q, k, v, group);
  };
  for (at::ScalarType t : {at::kDouble, at::kFloat}) {
    auto sh = [&](const at::Tensor& x) { return cp::shard(x, r, W).to(t); };
    const Result got = run(cp_fn, sh(in.q), sh(in.k), sh(in.v), sh(in.go));
    const std::string tag =
        std::string("dense W=") + std::to_string(W) + " rank " + std::to_string(r) + " " + c10::toString(t);
    const Result& s = t == at::kDouble ? got : stock;
    expect_within_rule(tag + " out", got.out, s.out, ref.out, 2);
    expect_within_rule(tag + " dq", got.dq, s.dq, ref.dq, 3);
    expect_within_rule(tag + " dk", got.dk, s.dk, ref.dk, 3);
    expect_within_rule(tag + " dv", got.dv, s.dv, ref.dv, 3);
  }
}

TEST(Dist, SingleProcessWithoutTorchrun) {
  if (dist::read_env().distributed) GTEST_SKIP() << "started by torchrun";
  const World w = dist::init(at::kCPU, {});
  EXPECT_FALSE(w.distributed());
  EXPECT_FALSE(w.world.defined());
  EXPECT_EQ(w.layout.world_size(), 1);
  dist::InitOptions two;
  two.cp = 2;
  try {
    dist::init(at::kCPU, two);
    ADD_FAILURE() << "cp=2 in one process must be an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("WORLD_SIZE=1"), std::string::npos) << e.what();
  }
}

TEST(Dist, GroupsAreCpFastest) {
  REQUIRE_WORLD(2);
  const int64_t n = world_size();
  const int64_t cp = 2, dp = n / 2;
  const World& w = world_for(dp, cp);
  ASSERT_TRUE(w.world.defined() && w.cp.defined() && w.dp.defined());
  EXPECT_EQ(w.world->getSize(), n);
  EXPECT_EQ(w.cp->getSize(), cp);
  EXPECT_EQ(w.dp->getSize(), dp);
  EXPECT_EQ(w.cp->getRank(), w.rank() % cp);
  // The members of my CP group, as the group sees them: consecutive ranks.
  const auto members = dist::all_gather(w.cp, at::tensor({w.rank()}), "test: CP members");
  for (int64_t i = 0; i < cp; ++i) EXPECT_EQ(members[i].item<int64_t>(), w.layout.cp_group_ranks()[i]);
  at::Tensor sum = at::tensor({static_cast<double>(w.rank())});
  dist::all_reduce_sum(w.dp, sum, "test: DP sum");
  double want = 0;
  for (int64_t r : w.layout.dp_group_ranks()) want += static_cast<double>(r);
  EXPECT_EQ(sum.item<double>(), want);
}

TEST(Dist, LighthouseCp2) {
  REQUIRE_WORLD(2);
  const World& w = world_for(world_size() / 2, 2);
  Options o;
  o.levels = 3;
  o.pool = 4;
  o.top_k = 512;  // T = 4 = 2 * cp tiles; 15 spill rows at every chunk boundary
  check_lighthouse(w.cp, o, /*B=*/1, /*N=*/8192, /*H=*/2, /*H_kv=*/1, /*d=*/16, 11 + w.layout.dp_rank());
}

TEST(Dist, LighthouseCp4) {
  REQUIRE_WORLD(4);
  const World& w = world_for(world_size() / 4, 4);
  Options o;
  o.levels = 3;
  o.pool = 2;
  o.top_k = 1024;  // T = 8 = 2 * cp tiles; 3 spill rows at every chunk boundary
  check_lighthouse(w.cp, o, /*B=*/1, /*N=*/4096, /*H=*/2, /*H_kv=*/2, /*d=*/8, 21);
}

TEST(Dist, DenseCp) {
  REQUIRE_WORLD(2);
  const World& w2 = world_for(world_size() / 2, 2);
  check_dense(w2.cp, /*B=*/2, /*N=*/96, /*H=*/4, /*H_kv=*/2, /*d=*/16, 31);
  if (world_size() >= 4) {
    const World& w4 = world_for(world_size() / 4, 4);
    check_dense(w4.cp, /*B=*/1, /*N=*/128, /*H=*/2, /*H_kv=*/1, /*d=*/8, 32);
  }
}

TEST(Dist, BadGeometryNamesChoices) {
  REQUIRE_WORLD(2);
  const World& w = world_for(world_size() / 2, 2);
  Options o;
  o.levels = 3;
  o.pool = 4;
  o.top_k = 384;  // T = 3: cannot split into 4 chunks
  const at::Tensor q = at::randn({1, 4096, 2, 16});
  try {
    cp::attention(q, q, q, o, w.cp);
    ADD_FAILURE() << "no error";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    EXPECT_NE(msg.find("top_k=512"), std::string::npos) << msg;
  }
}

// Run by tests/python/test_cp_failure.py with LIGHTHOUSE_TEST_PEER_FAILURE set,
// two processes started by hand (not torchrun, whose agent would stop the
// others itself): rank 1 exits ("exit") or stalls ("stall") right after the
// groups are built, or never starts ("absent"); rank 0's next collective (or
// its start-up) must fail with our message within the 5 s timeout (plus
// slack), never hang.
TEST(Dist, DeadOrStalledPeerFailsWithMessage) {
  const char* mode = std::getenv("LIGHTHOUSE_TEST_PEER_FAILURE");
  if (mode == nullptr) GTEST_SKIP() << "run by tests/python/test_cp_failure.py";
  REQUIRE_WORLD(2);
  dist::InitOptions o;
  o.cp = 2;
  o.dp = world_size() / 2;
  o.timeout = std::chrono::seconds(5);
  if (std::string(mode) == "absent") {  // rank 1 never starts: rank 0's start-up fails, naming the store
    const auto start = std::chrono::steady_clock::now();
    try {
      dist::init(at::kCPU, o);
      ADD_FAILURE() << "init without rank 1 did not fail";
    } catch (const c10::Error& e) {
      const std::string msg = e.what_without_backtrace();
      std::printf("rank 0 error (absent peer): %s\n", msg.c_str());
      EXPECT_NE(msg.find("rank 0 of 2 could not host the store at 127.0.0.1"), std::string::npos) << msg;
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 30.0);
    return;
  }
  const World w = dist::init(at::kCPU, o);
  if (w.rank() != 0) {
    if (std::string(mode) == "stall") std::this_thread::sleep_for(std::chrono::seconds(60));
    std::fflush(stdout);
    std::_Exit(0);
  }
  const at::Tensor q = at::randn({1, 64, 2, 8});
  const auto start = std::chrono::steady_clock::now();
  try {
    cp::dense_attention(q, q, q, w.cp);
    ADD_FAILURE() << "the collective with a " << mode << " peer did not fail";
  } catch (const c10::Error& e) {
    const std::string msg = e.what_without_backtrace();
    std::printf("rank 0 error (%s peer): %s\n", mode, msg.c_str());
    EXPECT_NE(msg.find("lighthouse dist: CP attention: all-gather of K and V failed on rank 0 of 2"), std::string::npos)
        << msg;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("rank 0 failed after %.1f s\n", seconds);
  EXPECT_LT(seconds, 30.0);
}

}  // namespace
}  // namespace lighthouse
