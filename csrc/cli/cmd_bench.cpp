/*
 * `lighthouse bench [op]`: Lighthouse attention against stock dense causal
 * SDPA in the same run, on CPU or CUDA. This file parses the arguments and
 * prints; the measuring is csrc/bench/op_bench.h (what is timed, how, and
 * the validation before timing).
 *
 * Prints a table, a row per (N, top_k) as it completes, and with --stages a
 * per-stage table; `--json` writes every number (rewritten after each row).
 * The default CUDA grid is two geometries: B=1 H=8 d=128 L=3 p=4 over N
 * (with issue 14's N = 200,000) and issue 14's B=2 H=16 H_kv=4 d=64 L=4
 * p=4 at N = 262,144 (JSON: under "extra_grids").
 * `lighthouse bench train` is the training-step benchmark (cmd_bench_train.cpp).
 * `--cp W`, under torchrun: the context-parallel op instead (csrc/bench/cp_bench.h).
 */
#include <ATen/Context.h>
#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench/cp_bench.h"
#include "bench/op_bench.h"
#include "commands.h"

namespace lighthouse::cli {

// `lighthouse bench train` (cmd_bench_train.cpp).
int bench_train_main(int argc, char** argv);

namespace {

using bench::format_ms;
using bench::format_ratio;

bench::Table results_table(const bench::OpBench& b) {
  bench::Table t;
  t.column("N", "", 9).column("top_k", "", 6).column("S", "", 7);
  t.group().column("LH fwd", "ms", 10).column("LH f+b", "ms", 10);
  t.group().column("S-SDPA fwd", "ms", 10).column("S-SDPA f+b", "ms", 10);
  t.group().column("LH/flr", "fwd", 7).column("LH/flr", "f+b", 7);
  for (const auto backend : b.dense_backends()) {
    t.group().column("dn-" + to_string(backend), "fwd ms", 9).column("f+b", "ms", 9);
    t.column("speedup", "fwd", 7).column("speedup", "f+b", 7);
  }
  if (b.device().is_cuda()) t.group().column("mem LH/dn", "f+b peak", 9);
  return t;
}

std::vector<std::string> results_cells(const bench::OpBench& b, const bench::OpBenchRow& r) {
  std::vector<std::string> c = {std::to_string(r.n),
                                std::to_string(r.top_k),
                                std::to_string(r.s),
                                format_ms(r.lh_fwd),
                                format_ms(r.lh_fwd_bwd),
                                format_ms(r.floor_fwd),
                                format_ms(r.floor_fwd_bwd),
                                format_ratio(r.over_floor_fwd),
                                format_ratio(r.over_floor_fwd_bwd)};
  for (const auto& [f, fb] : r.dense) {
    c.push_back(format_ms(f));
    c.push_back(format_ms(fb));
    c.push_back(format_ratio(f / r.lh_fwd));
    c.push_back(format_ratio(fb / r.lh_fwd_bwd));
  }
  if (b.device().is_cuda()) {
    c.push_back(format_ratio(static_cast<double>(r.lh_peak_bytes) / static_cast<double>(r.dense_peak_bytes)));
  }
  return c;
}

void print_stages(const std::vector<bench::OpBenchRow>& rows) {
  bench::Table t;
  t.column("N", "", 9);
  for (const auto& [name, ms] : rows.front().stages) t.column(name, "", 11);
  std::printf("\nLighthouse stages (ms, each timed alone)\n");
  t.print_header();
  for (const auto& r : rows) {
    std::vector<std::string> cells = {std::to_string(r.n)};
    for (const auto& [name, ms] : r.stages) cells.push_back(format_ms(ms));
    t.print_row(cells);
  }
}

// One grid (one geometry, several N): prints its table a row at a time;
// `write` receives the grid's JSON document after each row.
void run_grid(const bench::OpBenchConfig& a, const std::function<void(const bench::Json&)>& write) {
  bench::OpBench b(a);
  std::printf("%s\n", b.validation().c_str());
  std::printf(
      "\nLighthouse vs dense causal SDPA on %s: %s, B=%lld H=%lld H_kv=%lld d=%lld, L=%lld p=%lld, scorer %s, "
      "inner SDPA %s; median of up to %d runs (3 when a run exceeds %.0f ms, 1 above 5x that) after %d warm-up;\n"
      "Lighthouse and SDPA on S timed alternately, LH/flr the median of the per-pair ratios\n",
      b.device().str().c_str(), a.dtype.c_str(), static_cast<long long>(a.batch), static_cast<long long>(a.heads),
      static_cast<long long>(a.kv_heads), static_cast<long long>(a.head_dim), static_cast<long long>(a.levels),
      static_cast<long long>(a.pool), a.scorer.c_str(), b.backend_used().c_str(), a.repeats, bench::Timer::kSlowMs,
      a.warmup);
  const bench::Table table = results_table(b);
  table.print_header();

  bench::Json rows = bench::Json::array();
  std::vector<bench::OpBenchRow> done;
  for (size_t i = 0; i < a.seq_lens.size(); ++i) {
    const int64_t top_k = a.top_ks.size() == 1 ? a.top_ks[0] : a.top_ks[i];
    std::fprintf(stderr, "[bench] N=%lld top_k=%lld ...\n", static_cast<long long>(a.seq_lens[i]),
                 static_cast<long long>(top_k));
    const bench::OpBenchRow r = b.run(i);
    rows.push_back(b.row_json(r));
    done.push_back(r);
    table.print_row(results_cells(b, r));
    write(b.document(rows));
    std::fprintf(stderr, "[bench] N=%lld: Lighthouse fwd+bwd %s ms, SDPA on S %s ms\n", static_cast<long long>(r.n),
                 format_ms(r.lh_fwd_bwd).c_str(), format_ms(r.floor_fwd_bwd).c_str());
  }
  if (a.stages) print_stages(done);
  std::fflush(stdout);
}

// The grids in order; the JSON file is the first grid's document with the
// others under "extra_grids".
int run_bench(const std::vector<bench::OpBenchConfig>& grids, const std::string& json_path) {
  std::vector<bench::Json> docs(grids.size());
  for (size_t g = 0; g < grids.size(); ++g) {
    run_grid(grids[g], [&](const bench::Json& doc) {
      docs[g] = doc;
      if (json_path.empty()) return;
      bench::Json out = docs[0];
      if (grids.size() > 1) {
        out["extra_grids"] = bench::Json::array();
        for (size_t i = 1; i <= g && i < docs.size(); ++i) out["extra_grids"].push_back(docs[i]);
      }
      bench::write_json(json_path, out);
    });
  }
  if (!json_path.empty()) std::printf("wrote %s\n", json_path.c_str());
  return 0;
}

// `--cp W`: every rank measures, rank 0 prints.
int run_cp_bench(const bench::OpBenchConfig& a, int64_t cp, const std::string& json_path) {
  bench::CpBench b(a, cp, std::chrono::minutes(10));
  const dist::World& w = b.world();
  const bool dense = !a.dense_backends.empty();
  bench::Table t;
  t.column("N", "", 9).column("top_k", "", 6).column("S", "", 8);
  t.group().column("CP LH fwd", "ms", 10).column("CP LH f+b", "ms", 10);
  t.group().column("1-dev fwd", "ms", 10).column("1-dev f+b", "ms", 10);
  t.group().column("speedup", "fwd", 8).column("speedup", "f+b", 8);
  if (dense) t.group().column("CP dn fwd", "ms", 10).column("CP dn f+b", "ms", 10);
  if (b.is_main()) {
    std::printf("%s\n", b.validation().c_str());
    std::printf("\nLighthouse under context parallelism on %s x %lld (cp=%lld, dp=%lld; 1-dev: the one-device op on the "
                "whole sequence, on every rank; CP dn: dense %s): %s, B=%lld H=%lld H_kv=%lld d=%lld, L=%lld p=%lld, "
                "inner SDPA %s; median of %d runs of the slowest rank after %d warm-up\n",
                b.device().is_cuda() ? "cuda" : "cpu", static_cast<long long>(w.world_size()),
                static_cast<long long>(w.layout.cp), static_cast<long long>(w.layout.dp),
                dense ? a.dense_backends.front().c_str() : "-", a.dtype.c_str(), static_cast<long long>(a.batch),
                static_cast<long long>(a.heads), static_cast<long long>(a.kv_heads),
                static_cast<long long>(a.head_dim), static_cast<long long>(a.levels), static_cast<long long>(a.pool),
                a.backend.c_str(), a.repeats, a.warmup);
    t.print_header();
  }
  bench::Json rows = bench::Json::array();
  for (size_t i = 0; i < a.seq_lens.size(); ++i) {
    const bench::CpBenchRow r = b.run(i);
    rows.push_back(b.row_json(r));
    if (!b.is_main()) continue;
    std::vector<std::string> cells = {std::to_string(r.n),
                                      std::to_string(r.top_k),
                                      std::to_string(r.s),
                                      format_ms(r.cp_fwd),
                                      format_ms(r.cp_fwd_bwd),
                                      format_ms(r.one_fwd),
                                      format_ms(r.one_fwd_bwd),
                                      format_ratio(r.one_fwd / r.cp_fwd),
                                      format_ratio(r.one_fwd_bwd / r.cp_fwd_bwd)};
    if (dense) {
      cells.push_back(format_ms(r.dense_fwd));
      cells.push_back(format_ms(r.dense_fwd_bwd));
    }
    t.print_row(cells);
    if (!json_path.empty()) bench::write_json(json_path, b.document(rows));
  }
  if (b.is_main() && !json_path.empty()) std::printf("wrote %s\n", json_path.c_str());
  dist::barrier(w.world, "bench: the end");
  return 0;
}

int bench_main(int argc, char** argv) {
  bench::OpBenchConfig a;
  a.heads = a.kv_heads = a.head_dim = a.repeats = 0;  // 0: by device, below
  a.dtype = "";
  bool no_dense = false;
  std::string json_path;
  int64_t cp = 0;
  CLI::App app{"Lighthouse attention vs dense causal SDPA, forward and forward+backward", "lighthouse bench"};
  app.add_option("--device", a.device, "cpu or cuda (default: cuda when available)");
  app.add_option("--seq-lens", a.seq_lens, "sequence lengths N")->delimiter(',');
  app.add_option("--top-k", a.top_ks, "top_k, one value or one per N")->delimiter(',');
  app.add_option("--batch", a.batch, "batch B")->capture_default_str();
  app.add_option("--heads", a.heads, "query heads H (default: 4 on CPU, 8 on CUDA)");
  app.add_option("--kv-heads", a.kv_heads, "key/value heads (default: H)");
  app.add_option("--head-dim", a.head_dim, "head dim d (default: 64 on CPU, 128 on CUDA)");
  app.add_option("--levels", a.levels, "levels L")->capture_default_str();
  app.add_option("--pool", a.pool, "pooling factor p")->capture_default_str();
  app.add_option("--dtype", a.dtype, "float32 | bfloat16 | float16 (default: float32 on CPU, bfloat16 on CUDA)");
  app.add_option("--scorer", a.scorer, "norm | dilated")->capture_default_str();
  app.add_option("--backend", a.backend, "inner SDPA backend: auto | cudnn | flash | efficient | math")
      ->capture_default_str();
  app.add_option("--dense", a.dense_backends,
                 "dense baselines (default: flash (the CPU flash kernel) on CPU; cudnn,flash on CUDA)")
      ->delimiter(',');
  app.add_flag("--no-dense", no_dense, "skip the dense baselines");
  app.add_option("--dense-max-n", a.dense_max_n, "skip dense baselines above this N (0: never)");
  app.add_option("--warmup", a.warmup, "warm-up runs per measurement")->capture_default_str();
  app.add_option("--repeats", a.repeats, "timed runs per measurement (default: 3 on CPU, 10 on CUDA)");
  app.add_flag("--stages", a.stages, "also time each stage alone");
  app.add_option("--json", json_path, "write all numbers to this JSON file");
  app.add_option("--cp", cp,
                 "context parallelism over W ranks, under torchrun: the CP op against the one-device op "
                 "(torchrun --nproc-per-node W --no-python ./build/lighthouse bench op --cp W ...)");
  app.allow_extras(false);
  // `lighthouse bench train ...`: the training-step benchmark (cmd_bench_train.cpp).
  if (argc > 1 && std::string(argv[1]) == "train") return bench_train_main(argc - 1, argv + 1);
  // `lighthouse bench op ...` is the same as `lighthouse bench ...`.
  std::vector<char*> args(argv, argv + argc);
  if (args.size() > 1 && std::string(args[1]) == "op") args.erase(args.begin() + 1);
  try {
    app.parse(static_cast<int>(args.size()), args.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  if (a.device.empty()) a.device = at::hasCUDA() ? "cuda" : "cpu";
  const bool cuda = a.device.rfind("cuda", 0) == 0;
  TORCH_CHECK(cuda || a.device == "cpu", "--device must be cpu or cuda, got '", a.device, "'");
  TORCH_CHECK(!cuda || at::hasCUDA(), "--device cuda: no CUDA device available (or this build has no CUDA)");
  if (a.heads == 0) a.heads = cuda ? 8 : 4;
  if (a.kv_heads == 0) a.kv_heads = a.heads;
  if (a.head_dim == 0) a.head_dim = cuda ? 128 : 64;
  if (a.dtype.empty()) a.dtype = cuda ? "bfloat16" : "float32";
  if (a.repeats == 0) a.repeats = cuda ? 10 : 3;
  if (a.dense_backends.empty())
    a.dense_backends = cuda ? std::vector<std::string>{"cudnn", "flash"} : std::vector<std::string>{"flash"};
  std::vector<bench::OpBenchConfig> grids;
  if (a.seq_lens.empty()) {
    if (cuda) {
      // The default grid, with N = 200,000 (padded to 200,704) from issue 14.
      a.seq_lens = {32768, 65536, 98304, 131072, 200000, 262144, 524288, 1048576};
      if (a.top_ks.empty()) a.top_ks = {2048, 4096, 1536, 4096, 2048, 4096, 4096, 4096};
      // Issue 14's second untuned shape: batch 2, GQA 16/4 heads of 64, L=4.
      bench::OpBenchConfig gqa = a;
      gqa.batch = 2;
      gqa.heads = 16;
      gqa.kv_heads = 4;
      gqa.head_dim = 64;
      gqa.levels = 4;
      gqa.pool = 4;
      gqa.seq_lens = {262144};
      gqa.top_ks = {2048};
      grids.push_back(gqa);
    } else {
      a.seq_lens = {8192, 16384, 32768};
    }
  }
  if (a.top_ks.empty()) a.top_ks = {512};
  grids.insert(grids.begin(), a);
  for (auto& g : grids) {
    if (no_dense) g.dense_backends.clear();
  }
  TORCH_CHECK(a.repeats >= 1 && a.warmup >= 0, "--repeats must be >= 1 and --warmup >= 0");
  if (cp > 0) return run_cp_bench(grids.front(), cp, json_path);
  return run_bench(grids, json_path);
}

}  // namespace

LIGHTHOUSE_COMMAND(bench, "benchmarks: the op (Lighthouse vs dense causal SDPA; `bench train`: a training step)",
                   bench_main);

}  // namespace lighthouse::cli
