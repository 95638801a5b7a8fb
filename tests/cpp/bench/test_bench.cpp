// The benchmark library (csrc/bench): the table layout the CLI prints (exact
// text), number formats, the CPU timer, and a tiny op benchmark on CPU whose
// rows and JSON carry every number the CLI reports.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "bench/op_bench.h"
#include "bench/report.h"
#include "bench/timer.h"

namespace lighthouse::bench {
namespace {

TEST(BenchTable, GroupsAndWidthsAsPrinted) {
  Table t;
  t.column("N", "", 5).column("S", "", 4);
  t.group().column("fwd", "ms", 6).column("f+b", "ms", 6);
  EXPECT_EQ(t.columns(), 4u);
  EXPECT_EQ(t.header(),
            "    N    S |    fwd    f+b\n"
            "           |     ms     ms\n");
  EXPECT_EQ(t.row({"1024", "768", "0.125", "12.50"}), " 1024  768 |  0.125  12.50\n");
  // A cell wider than its column is printed whole.
  EXPECT_EQ(t.row({"1234567", "1", "2", "3"}), "1234567    1 |      2      3\n");
  EXPECT_THROW(t.row({"1", "2"}), std::logic_error);
  // Without units there is one header line.
  Table u;
  u.column("N", "", 3).column("scores", "", 8);
  EXPECT_EQ(u.header(), "  N   scores\n");
}

TEST(BenchFormat, MillisecondsAndRatios) {
  EXPECT_EQ(format_ms(0.12345), "0.123");
  EXPECT_EQ(format_ms(12.345), "12.35");  // 12.345 is stored as 12.3450000000000006
  EXPECT_EQ(format_ms(1234.5), "1234");  // round half to even: %.0f
  EXPECT_EQ(format_ms(0), "-");
  EXPECT_EQ(format_ratio(1.005), "1.00x");
  EXPECT_EQ(format_ratio(2.5), "2.50x");
  EXPECT_EQ(format_ratio(-1), "-");
  EXPECT_EQ(format_ratio(1.0 / 0.0), "-");
  EXPECT_EQ(utc_timestamp().size(), 20u);  // 2026-12-01T12:00:00Z
}

TEST(BenchTimer, MedianOnCpu) {
  const Timer timer(at::kCPU, /*warmup=*/1, /*repeats=*/3);
  int calls = 0;
  const double ms = timer.median_ms([&] {
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  });
  EXPECT_EQ(calls, 4);  // 1 warm-up + 3 timed
  EXPECT_GE(ms, 19.0);
  EXPECT_LT(ms, 2000.0);
  EXPECT_EQ(peak_bytes(at::kCPU, [] {}), 0);
}

TEST(BenchTimer, PairedAlternatesAndTakesTheMedianRatio) {
  const Timer timer(at::kCPU, /*warmup=*/1, /*repeats=*/3);
  std::string order;
  const Timer::Paired t = timer.paired_median_ms(
      [&] {
        order += 'a';
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
      },
      [&] {
        order += 'b';
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      });
  EXPECT_EQ(order, "abababab");  // 1 warm-up pair + 3 timed pairs, alternating
  EXPECT_GE(t.a_ms, 39.0);
  EXPECT_GE(t.b_ms, 19.0);
  // Each pair's ratio is near 2: sleeps only overshoot, by a few ms on an
  // idle machine; the bounds leave room for a loaded one.
  EXPECT_GT(t.ratio, 1.2);
  EXPECT_LT(t.ratio, 3.0);
}

TEST(OpBench, TinyRunOnCpu) {
  OpBenchConfig c;
  c.device = "cpu";
  c.seq_lens = {512, 600};
  c.top_ks = {128};
  c.heads = 2;
  c.kv_heads = 1;
  c.head_dim = 16;
  c.levels = 2;
  c.pool = 2;
  c.dense_backends = {"flash"};
  c.warmup = 0;
  c.repeats = 1;
  c.stages = true;
  OpBench b(c);
  EXPECT_EQ(b.validation(), "validated: CPU output finite, S as specified");
  EXPECT_EQ(b.device().str(), "cpu");
  Json rows = Json::array();
  for (size_t i = 0; i < 2; ++i) {
    const OpBenchRow r = b.run(i);
    EXPECT_EQ(r.n, c.seq_lens[i]);
    EXPECT_EQ(r.top_k, 128);
    // L=2, p=2, top_k=128: N pads to an even length; S = N_pad / 2 + 256.
    EXPECT_EQ(r.s, i == 0 ? 512 : 556);
    for (double ms : {r.lh_fwd, r.lh_fwd_bwd, r.floor_fwd, r.floor_fwd_bwd}) EXPECT_GT(ms, 0);
    // One timed pair: the ratio is that pair's.
    EXPECT_DOUBLE_EQ(r.over_floor_fwd, r.lh_fwd / r.floor_fwd);
    EXPECT_DOUBLE_EQ(r.over_floor_fwd_bwd, r.lh_fwd_bwd / r.floor_fwd_bwd);
    ASSERT_EQ(r.dense.size(), 1u);
    EXPECT_GT(r.dense[0].first, 0);
    ASSERT_EQ(r.stages.size(), 8u);
    const char* names[] = {"scores", "select", "gather", "sdpa_fwd", "scatter", "scatter_bwd", "sdpa_bwd", "gather_bwd"};
    for (size_t k = 0; k < 8; ++k) EXPECT_EQ(r.stages[k].first, names[k]);
    rows.push_back(b.row_json(r));
  }
  const Json doc = b.document(rows);
  for (const char* key : {"date", "device", "dtype", "B", "H", "H_kv", "d", "levels", "pool", "scorer",
                          "inner_sdpa_backend", "warmup", "repeats", "timing", "validation", "rows"}) {
    EXPECT_TRUE(doc.contains(key)) << key;
  }
  EXPECT_FALSE(doc.contains("gpu"));
  const Json& row = doc["rows"][1];
  EXPECT_EQ(row["N"], 600);
  EXPECT_EQ(row["S"], 556);
  for (const char* key : {"lighthouse_fwd_ms", "sdpa_on_S_fwd_bwd_ms", "lighthouse_over_floor_fwd",
                          "dense_flash_fwd_ms", "speedup_vs_dense_flash_fwd_bwd"}) {
    EXPECT_TRUE(row.contains(key)) << key;
  }
  EXPECT_TRUE(row["stages"].contains("gather_bwd_ms"));
  EXPECT_FALSE(row.contains("lighthouse_peak_bytes"));  // CUDA only
}

TEST(OpBench, BadSettingsNameTheValue) {
  OpBenchConfig c;
  c.device = "cpu";
  c.seq_lens = {512};
  c.top_ks = {128, 256};
  try {
    OpBench b(c);
    FAIL() << "no error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("one per sequence length (1), got 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_dtype("int8"), c10::Error);
}

}  // namespace
}  // namespace lighthouse::bench
