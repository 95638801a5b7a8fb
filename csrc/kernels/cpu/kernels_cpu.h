/*
 * CPU twins of every Lighthouse stage. Same params as the CUDA kernels
 * (kernels/cuda/kernels_cuda.h); the tests use them as the reference for the
 * CUDA versions, and the CPU op is the same pipeline over them.
 * All are deterministic: fixed reduction order, no shared writes.
 */
#pragma once

#include "../params.h"
#include "exec.h"

namespace lighthouse {

// fp32 scores of every pyramid entry. Writes all of sq and sk.
void run_scores_cpu(const ScoresParams& p, const CpuExec& ex);
// Entries (causal order) and inverse map. Writes all of entries and inv.
void run_select_cpu(const SelectParams& p, const CpuExec& ex);
// Pool-on-gather forward. Writes xg [B, H, S, d] entirely.
void run_gather_cpu(const GatherParams& p, const CpuExec& ex);
// Pool-on-gather backward. Writes dx for positions t < N.
void run_gather_backward_cpu(const GatherBackwardParams& p, const CpuExec& ex);
// Scatter forward. Writes out for positions t < N.
void run_scatter_cpu(const ScatterParams& p, const CpuExec& ex);
// Scatter backward. Writes dog [B, H, S, d] entirely.
void run_scatter_backward_cpu(const ScatterBackwardParams& p, const CpuExec& ex);

}  // namespace lighthouse
