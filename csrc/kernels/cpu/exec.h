/*
 * CpuExec: how a CPU twin runs its independent work items.
 *
 * The kernel layer is torch-free, so it does not pick a thread pool itself:
 * the caller passes one (csrc/ops passes at::parallel_for). Every CPU twin
 * splits its work so that each item writes a disjoint part of the outputs and
 * reduces in a fixed order, so results do not depend on the thread count.
 */
#pragma once

#include <cstdint>
#include <functional>

namespace lighthouse {

struct CpuExec {
  using Body = std::function<void(int64_t begin, int64_t end)>;
  // Runs body over [0, n) in chunks of at least `grain` items, possibly in
  // parallel. Empty: serial.
  std::function<void(int64_t n, int64_t grain, const Body& body)> parallel_for;

  void run(int64_t n, int64_t grain, const Body& body) const {
    if (n <= 0) return;
    if (parallel_for) {
      parallel_for(n, grain, body);
    } else {
      body(0, n);
    }
  }
};

}  // namespace lighthouse
