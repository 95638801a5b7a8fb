/*
 * Exact load-balanced causal attention over head-tail chunks (see
 * cp_attention.h), forward and backward, from stock SDPA kernels.
 *
 * Forward, per local query chunk c (global index):
 *   diag   = SDPA(q_c, K_c, V_c, causal)          its own chunk
 *   prefix = SDPA(q_c, K_<c, V_<c, no mask)        all earlier chunks (c > 0)
 *   lse    = logaddexp(lse_prefix, lse_diag)
 *   out    = exp(lse_prefix - lse) out_prefix + exp(lse_diag - lse) out_diag
 * (merged in the LSE's precision, fp32 or fp64). Backward, per block: the
 * stock backward given the merged out and LSE; dq sums the blocks; dK, dV
 * accumulate per owner rank (fp32 for 16-bit inputs) and are reduce-scattered.
 * K and V are all-gathered again in the backward rather than kept.
 */
#include "cp_attention.h"

#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "ops/checks.h"
#include "process_group.h"
#include "sdpa_lse.h"

namespace lighthouse::dist {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward needs beside the saved tensors.
struct AttentionState : torch::CustomClassHolder {
  CpGroup cp;
  SdpaBackend requested = SdpaBackend::kAuto;
  SdpaBackend backend = SdpaBackend::kAuto;  // resolved in the forward
  LseMeta meta[2][2];                        // [local chunk][0: diagonal, 1: prefix]
};

at::ScalarType acc_type(at::ScalarType t) { return (t == at::kHalf || t == at::kBFloat16) ? at::kFloat : t; }

// Local chunk a of a chunk-batched [2B, X, Y, Z] tensor: [B, X, Y, Z].
at::Tensor local_chunk(const at::Tensor& x, int a) {
  return x.view({x.size(0) / 2, 2, x.size(1), x.size(2), x.size(3)}).select(1, a);
}

// The gathered K and V of every chunk, from one all-gather of stacked [k, v].
struct GatheredKV {
  std::vector<at::Tensor> per_rank;  // W x [2, 2B, H_kv, m, d]
  CpChunks chunks;

  // [2, B, H_kv, m, d] of global chunk c.
  at::Tensor chunk(int64_t c) const {
    const at::Tensor& t = per_rank[chunks.owner(c)];
    return t.view({2, t.size(1) / 2, 2, t.size(2), t.size(3), t.size(4)}).select(2, chunks.local_index(c));
  }
  // [2, B, H_kv, c*m, d]: chunks 0 .. c-1 in order.
  at::Tensor prefix(int64_t c) const {
    std::vector<at::Tensor> parts;
    for (int64_t j = 0; j < c; ++j) parts.push_back(chunk(j));
    return at::cat(parts, 3);
  }
};

GatheredKV gather_kv(const CpGroup& cp, const at::Tensor& k, const at::Tensor& v, const char* what) {
  return GatheredKV{all_gather(cp.group, at::stack({k, v}), what), cp.chunks};
}

// [B, H_kv, L, d] -> [B, H, L, d] (query head h reads kv head h / (H / H_kv)).
at::Tensor expand_heads(const at::Tensor& x, int64_t heads) {
  const int64_t group = heads / x.size(1);
  return group > 1 ? x.repeat_interleave(group, 1) : x.contiguous();
}

// [B, H, L, d] -> [B, H_kv, L, d], summing each kv head's query heads in order.
at::Tensor reduce_heads(const at::Tensor& x, int64_t kv_heads, at::ScalarType acc) {
  const at::Tensor y = x.to(acc);
  const int64_t group = x.size(1) / kv_heads;
  if (group == 1) return y;
  return y.view({x.size(0), kv_heads, group, x.size(2), x.size(3)}).sum(2);
}

struct CausalAttentionFunction : torch::autograd::Function<CausalAttentionFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            c10::intrusive_ptr<AttentionState> state) {
    const CpChunks& ch = state->cp.chunks;
    const int64_t H = q.size(1);
    const GatheredKV kv = gather_kv(state->cp, k, v, "CP attention: all-gather of K and V");
    at::Tensor out = at::empty(q.sizes(), q.options());
    at::Tensor lse;
    for (int a = 0; a < 2; ++a) {
      const int64_t c = ch.chunk(a);
      const at::Tensor qa = local_chunk(q, a).contiguous();
      const at::Tensor kvc = kv.chunk(c);
      const at::Tensor kc = expand_heads(kvc[0], H), vc = expand_heads(kvc[1], H);
      if (a == 0) state->backend = resolve_lse_backend(state->requested, qa, kc, vc);
      LseBlock diag = sdpa_forward(state->backend, qa, kc, vc, /*causal=*/true);
      state->meta[a][0] = diag.meta;
      if (!lse.defined()) lse = at::empty({q.size(0), H, q.size(2)}, diag.lse.options());
      at::Tensor o_a = diag.out, lse_a = diag.lse;
      if (c > 0) {
        const at::Tensor kvp = kv.prefix(c);
        LseBlock pre = sdpa_forward(state->backend, qa, expand_heads(kvp[0], H), expand_heads(kvp[1], H),
                                    /*causal=*/false);
        state->meta[a][1] = pre.meta;
        lse_a = at::logaddexp(pre.lse, diag.lse);
        const at::ScalarType acc = lse_a.scalar_type();
        o_a = (at::exp(pre.lse - lse_a).unsqueeze(-1) * pre.out.to(acc) +
               at::exp(diag.lse - lse_a).unsqueeze(-1) * diag.out.to(acc));
      }
      local_chunk(out, a).copy_(o_a);
      lse.view({q.size(0) / 2, 2, H, q.size(2)}).select(1, a).copy_(lse_a);
    }
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["state"] = c10::IValue::make_capsule(state);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto state = c10::static_intrusive_pointer_cast<AttentionState>(ctx->saved_data["state"].toCapsule());
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    const CpChunks& ch = state->cp.chunks;
    const int64_t B = q.size(0) / 2, H = q.size(1), H_kv = k.size(1), m = q.size(2), d = q.size(3);
    const at::ScalarType acc = acc_type(q.scalar_type());
    const at::Tensor dout = grads[0];
    const GatheredKV kv = gather_kv(state->cp, k, v, "CP attention backward: all-gather of K and V");
    // Gradients of K and V per owner rank: [W][k/v][B][local chunk][H_kv, m, d].
    at::Tensor dkv = at::zeros({ch.size, 2, B, 2, H_kv, m, d}, q.options().dtype(acc));
    auto add_kv = [&](int64_t c, const at::Tensor& dk_c, const at::Tensor& dv_c) {
      at::Tensor slot = dkv.select(0, ch.owner(c)).select(2, ch.local_index(c));  // [2, B, H_kv, m, d]
      slot.select(0, 0).add_(reduce_heads(dk_c, H_kv, acc));
      slot.select(0, 1).add_(reduce_heads(dv_c, H_kv, acc));
    };
    at::Tensor dq = at::empty(q.sizes(), q.options());
    for (int a = 0; a < 2; ++a) {
      const int64_t c = ch.chunk(a);
      const at::Tensor qa = local_chunk(q, a).contiguous();
      const at::Tensor oa = local_chunk(out, a).contiguous();
      const at::Tensor la = lse.view({B, 2, H, m}).select(1, a).contiguous();
      const at::Tensor da = local_chunk(dout, a).contiguous();
      const at::Tensor kvc = kv.chunk(c);
      auto [dq_d, dk_d, dv_d] = sdpa_backward(state->backend, da, qa, expand_heads(kvc[0], H), expand_heads(kvc[1], H),
                                              oa, la, state->meta[a][0], /*causal=*/true);
      add_kv(c, dk_d, dv_d);
      at::Tensor dq_a = dq_d.to(acc);
      if (c > 0) {
        const at::Tensor kvp = kv.prefix(c);
        auto [dq_p, dk_p, dv_p] = sdpa_backward(state->backend, da, qa, expand_heads(kvp[0], H),
                                                expand_heads(kvp[1], H), oa, la, state->meta[a][1],
                                                /*causal=*/false);
        dq_a = dq_a + dq_p.to(acc);
        for (int64_t j = 0; j < c; ++j) add_kv(j, dk_p.narrow(2, j * m, m), dv_p.narrow(2, j * m, m));
      }
      local_chunk(dq, a).copy_(dq_a);
    }
    std::vector<at::Tensor> per_rank;
    for (int64_t j = 0; j < ch.size; ++j) per_rank.push_back(dkv.select(0, j));
    const at::Tensor mine =
        reduce_scatter_sum(state->cp.group, per_rank, "CP attention backward: reduce-scatter of the K and V gradients");
    // [2, B, 2, H_kv, m, d] -> chunk-batched [2B, H_kv, m, d] each.
    const at::Tensor dk = mine.select(0, 0).reshape({2 * B, H_kv, m, d}).to(k.scalar_type());
    const at::Tensor dv = mine.select(0, 1).reshape({2 * B, H_kv, m, d}).to(v.scalar_type());
    return {dq, dk, dv, at::Tensor()};
  }
};

}  // namespace

CpGroup cp_group(const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
  LH_CHECK(group.defined(), "lighthouse CP: the process group is undefined");
  return CpGroup{group, CpChunks{group->getRank(), group->getSize()}};
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const CpGroup& cp,
                            SdpaBackend backend) {
  TORCH_INTERNAL_ASSERT(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && q.size(0) % 2 == 0);
  auto state = c10::make_intrusive<AttentionState>();
  state->cp = cp;
  state->requested = backend;
  return CausalAttentionFunction::apply(q, k, v, state);
}

}  // namespace lighthouse::dist
