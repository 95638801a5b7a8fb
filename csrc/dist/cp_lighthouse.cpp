/*
 * Lighthouse attention under context parallelism (shared/LIGHTHOUSE.md
 * section 10), on the chunk-batched layout of cp_attention.h:
 *
 *   plan      = scores + cascade per chunk, top_k / (2W)     local (whole tiles)
 *   q~,k~,v~  = gather(q, k, v, plan)   [2B, H, S_c, d]       local
 *   o~        = causal_attention(q~, k~, v~)                  the chunks' sub-sequences
 *                                                             concatenate, in chunk order,
 *                                                             into the one-device one
 *   out       = scatter(o~, plan, spill_in)                   local + spill
 *
 * The spill: the shift of step 6 pushes the output of a chunk's last entry of
 * each level l >= 1 up to c_l - 1 rows into the next chunk. Each chunk sends
 * those L - 1 rows (zeros where the entry was not emitted) to the owner of
 * the next chunk, whose scatter adds them at their place in the level order,
 * so every output row is summed exactly as on one device. The backward
 * mirrors it: each chunk sends its first c_{L-1} - 1 rows of the output
 * gradient back to the previous chunk's owner, whose scatter backward
 * continues those entries' sums across the boundary in token order. Both
 * exchanges are small all-gathers.
 */
#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

#include <optional>
#include <vector>

#include "cp_attention.h"
#include "kernels/geometry.h"
#include "ops/autograd.h"
#include "ops/checks.h"
#include "ops/stages.h"
#include "process_group.h"

namespace lighthouse::dist {
namespace {

using detail::Plan;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// [B, H, L, d]: row l >= 1 is og's row of the last level-l entry of the
// chunk (slot inv(l, N_l - 1)), zeros where it was not emitted; row 0 zeros.
at::Tensor last_entry_rows(const at::Tensor& og, const Plan& plan, const Geometry& g) {
  const at::Tensor zero_row = at::zeros({g.B, g.H, 1, g.d}, og.options());
  std::vector<at::Tensor> rows{zero_row};
  for (int l = 1; l < g.L; ++l) {
    const at::Tensor slot =
        plan.inv.select(2, g.level_offset[l] + g.level_size(l) - 1).to(at::kLong).view({g.B, g.H, 1, 1});
    const at::Tensor row = og.gather(2, slot.clamp_min(0).expand({g.B, g.H, 1, g.d}));
    rows.push_back(at::where(slot >= 0, row, zero_row));
  }
  return at::cat(rows, 2);
}

// For each local chunk, the all-gathered rows of the chunk `step` away
// (-1: previous, +1: next) in [2B, X, Y, Z]; zeros where there is none.
at::Tensor from_neighbours(const std::vector<at::Tensor>& per_rank, const CpChunks& ch, int step) {
  const at::Tensor& like = per_rank[0];
  at::Tensor out = at::zeros_like(like);
  const int64_t B = like.size(0) / 2;
  for (int a = 0; a < 2; ++a) {
    const int64_t c = ch.chunk(a) + step;
    if (c < 0 || c >= ch.chunks()) continue;
    const at::Tensor src = per_rank[ch.owner(c)];
    out.view({B, 2, like.size(1), like.size(2), like.size(3)})
        .select(1, a)
        .copy_(src.view({B, 2, src.size(1), src.size(2), src.size(3)}).select(1, ch.local_index(c)));
  }
  return out;
}

struct ScatterState : torch::CustomClassHolder {
  CpGroup cp;
  Geometry g;
};

struct CpScatterFunction : torch::autograd::Function<CpScatterFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& og, const at::Tensor& entries,
                            const at::Tensor& inv, c10::intrusive_ptr<ScatterState> state) {
    Plan plan;
    plan.entries = entries;
    plan.inv = inv;
    const std::vector<at::Tensor> spill = all_gather(state->cp.group, last_entry_rows(og, plan, state->g),
                                                     "CP Lighthouse scatter: exchange of the spill rows");
    ctx->save_for_backward({entries, inv});
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return detail::scatter(og, plan, state->g, from_neighbours(spill, state->cp.chunks, -1));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto state = c10::static_intrusive_pointer_cast<ScatterState>(ctx->saved_data["state"].toCapsule());
    const variable_list saved = ctx->get_saved_variables();
    const Geometry& g = state->g;
    const at::Tensor dout = grads[0];
    const int64_t rows = g.span(g.L - 1) - 1;  // the farthest any entry's shifted span reaches past its chunk
    const std::vector<at::Tensor> heads =
        all_gather(state->cp.group, dout.narrow(1, 0, rows),
                   "CP Lighthouse scatter backward: exchange of the first output-gradient rows");
    Plan plan;
    plan.entries = saved[0];
    plan.inv = saved[1];
    const at::Tensor dog = detail::scatter_backward(dout, plan, g, from_neighbours(heads, state->cp.chunks, +1));
    return {dog, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// Validates a rank's chunk-batched inputs; returns the chunks' geometry and
// options (top_k / (2W)).
std::pair<Geometry, Options> chunk_geometry(const char* op, const at::Tensor& q, const at::Tensor& k,
                                            const at::Tensor& v, const Options& o, const CpGroup& cp) {
  LH_CHECK(o.scorer == Scorer::kNorm, op, ": context parallelism supports the 'norm' scorer only, got '",
           to_string(o.scorer), "'");
  const int64_t W = cp.chunks.size;
  // q.size(1) is one chunk's length: the whole sequence holds 2W chunks.
  const std::string err = cp_geometry_error(q.size(1) * 2 * W, o.levels, o.pool, o.top_k, W);
  LH_CHECK(err.empty(), op, ": ", err);
  Options oc = o;
  oc.top_k = o.top_k / (2 * W);
  const Geometry g = detail::check_inputs(op, q, k, v, oc);
  TORCH_INTERNAL_ASSERT(g.N_pad == g.N);
  return {g, oc};
}

}  // namespace

at::Tensor lighthouse_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Options& o,
                                const CpGroup& cp) {
  const char* op = "lighthouse.cp_attention";
  const auto [g, oc] = chunk_geometry(op, q, k, v, o, cp);
  Plan plan = detail::make_plan(q, k, v, g, oc, /*pool_coarse=*/true);
  const auto opt = [](const at::Tensor& t) { return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt; };
  auto [qg, kg, vg] = detail::gather_autograd(q, k, v, plan.entries, plan.inv, opt(plan.coarse_q), opt(plan.coarse_k),
                                              opt(plan.coarse_v), oc.levels, oc.pool, oc.top_k);
  plan.coarse_q = plan.coarse_k = plan.coarse_v = at::Tensor();  // free before the attention
  const at::Tensor og = causal_attention(qg, kg, vg, cp, o.backend);
  auto state = c10::make_intrusive<ScatterState>();
  state->cp = cp;
  state->g = g;
  return CpScatterFunction::apply(og, plan.entries, plan.inv, state);
}

at::Tensor lighthouse_select(const at::Tensor& q, const at::Tensor& k, const Options& o, const CpGroup& cp) {
  const char* op = "lighthouse.cp_select";
  const auto [g, oc] = chunk_geometry(op, q, k, at::Tensor(), o, cp);
  const at::Tensor local = detail::make_plan(q, k, at::Tensor(), g, oc).entries.to(at::kLong);  // [2B, H, S_c]
  // Chunk c's level-l entry j is the whole sequence's level-l entry c * N_l + j.
  const CpChunks& ch = cp.chunks;
  const Geometry whole = detail::geometry_for(1, g.N * ch.chunks(), 1, 1, 1, o);
  const at::Tensor chunk_of_row =
      at::tensor(std::vector<int64_t>{ch.chunk(0), ch.chunk(1)}, local.options()).repeat({g.B / 2}).view({g.B, 1, 1});
  at::Tensor out = at::full_like(local, -1);
  for (int l = 0; l < g.L; ++l) {
    const at::Tensor in_level = (local >= g.level_offset[l]) & (local < g.level_offset[l + 1]);
    out = at::where(in_level, local - g.level_offset[l] + chunk_of_row * g.level_size(l) + whole.level_offset[l], out);
  }
  return out;
}

at::Tensor cp_scatter(const at::Tensor& og, const at::Tensor& entries, int64_t seq_len, const Options& o,
                      const at::Tensor& spill_in) {
  const char* op = "lighthouse._cp_scatter";
  detail::check_options(o);
  LH_CHECK(og.dim() == 4, op, ": og must be [B, H, S, d], got ", og.sizes());
  const Geometry g = detail::geometry_for(og.size(0), seq_len, og.size(1), og.size(1), og.size(3), o);
  LH_CHECK(seq_len >= min_sequence_length(o) && g.N_pad == g.N, op, ": seq_len=", seq_len,
           " must be a multiple of pool^(levels-1) * T = ", g.span(g.L - 1) * g.T, ", at least ",
           min_sequence_length(o));
  LH_CHECK(og.size(2) == g.S, op, ": og must have S=", g.S, " slots, got ", og.size(2));
  if (spill_in.defined()) {
    LH_CHECK(spill_in.sizes() == at::IntArrayRef({g.B, g.H, g.L, g.d}) && spill_in.scalar_type() == og.scalar_type() &&
                 spill_in.device() == og.device(),
             op, ": spill_in must be [B, H, L, d] = [", g.B, ", ", g.H, ", ", g.L, ", ", g.d, "] like og, got ",
             spill_in.sizes());
  }
  return detail::scatter(og, detail::plan_from_entries(entries, g, og.device()), g, spill_in);
}

at::Tensor cp_scatter_backward(const at::Tensor& dout, const at::Tensor& entries, int64_t seq_len, const Options& o,
                               const at::Tensor& spill_dout) {
  const char* op = "lighthouse._cp_scatter_backward";
  detail::check_options(o);
  LH_CHECK(dout.dim() == 4 && dout.size(1) == seq_len, op, ": dout must be [B, N, H, d] with N=seq_len=", seq_len,
           ", got ", dout.sizes());
  const Geometry g = detail::geometry_for(dout.size(0), seq_len, dout.size(2), dout.size(2), dout.size(3), o);
  LH_CHECK(seq_len >= min_sequence_length(o) && g.N_pad == g.N, op, ": seq_len=", seq_len,
           " must be a multiple of pool^(levels-1) * T = ", g.span(g.L - 1) * g.T, ", at least ",
           min_sequence_length(o));
  if (spill_dout.defined()) {
    LH_CHECK(spill_dout.dim() == 4 && spill_dout.size(0) == g.B && spill_dout.size(2) == g.H &&
                 spill_dout.size(3) == g.d && spill_dout.scalar_type() == dout.scalar_type() &&
                 spill_dout.device() == dout.device(),
             op, ": spill_dout must be [B, R, H, d] like dout, got ", spill_dout.sizes());
  }
  return detail::scatter_backward(dout, detail::plan_from_entries(entries, g, dout.device()), g, spill_dout);
}

}  // namespace lighthouse::dist
