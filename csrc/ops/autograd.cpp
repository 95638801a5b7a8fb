#include "autograd.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>

#include <utility>
#include <vector>

#include "attention.h"

namespace lighthouse::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void save_config(AutogradContext* ctx, int64_t levels, int64_t pool, int64_t top_k) {
  ctx->saved_data["levels"] = levels;
  ctx->saved_data["pool"] = pool;
  ctx->saved_data["top_k"] = top_k;
}

int64_t saved_int(AutogradContext* ctx, const char* key) { return ctx->saved_data.at(key).toInt(); }

struct GatherFunction : torch::autograd::Function<GatherFunction> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& entries, const at::Tensor& inv, const OptTensor& coarse_q,
                               const OptTensor& coarse_k, const OptTensor& coarse_v, int64_t levels, int64_t pool,
                               int64_t top_k) {
    ctx->save_for_backward({inv});
    ctx->saved_data["seq_len"] = q.sym_size(1);
    ctx->saved_data["heads_q"] = q.sym_size(2);
    ctx->saved_data["heads_kv"] = k.sym_size(2);
    save_config(ctx, levels, pool, top_k);
    at::AutoDispatchBelowADInplaceOrView below;
    auto [qg, kg, vg] = gather_op().call(q, k, v, entries, inv, coarse_q, coarse_k, coarse_v, levels, pool, top_k);
    return {qg, kg, vg};
  }

  // One input gradient at a time, releasing each gathered gradient once used:
  // the peak holds one [B, H, S, d] gradient beside dq, dk, dv, not three.
  // `grads` by reference: the autograd node moved its only copies in here
  // (undefined ones already materialized as zeros, the Function default).
  static variable_list backward(AutogradContext* ctx, variable_list& grads) {
    const at::Tensor inv = ctx->get_saved_variables()[0];
    const c10::SymInt seq_len = ctx->saved_data.at("seq_len").toSymInt();
    const c10::SymInt heads[3] = {ctx->saved_data.at("heads_q").toSymInt(),
                                  ctx->saved_data.at("heads_kv").toSymInt(),
                                  ctx->saved_data.at("heads_kv").toSymInt()};
    const int64_t levels = saved_int(ctx, "levels"), pool = saved_int(ctx, "pool"), top_k = saved_int(ctx, "top_k");
    variable_list out(11);
    for (int i = 0; i < 3; ++i) {
      at::Tensor dxg = std::move(grads[i]);
      out[i] = gather_backward_op().call(dxg, inv, seq_len, heads[i], levels, pool, top_k);
    }
    return out;
  }
};

struct ScatterFunction : torch::autograd::Function<ScatterFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& og, const at::Tensor& entries,
                            const at::Tensor& inv, const c10::SymInt& seq_len, int64_t levels, int64_t pool,
                            int64_t top_k) {
    ctx->save_for_backward({entries, inv});
    save_config(ctx, levels, pool, top_k);
    at::AutoDispatchBelowADInplaceOrView below;
    return scatter_op().call(og, entries, inv, seq_len, levels, pool, top_k);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    at::Tensor dog = scatter_backward_op().call(grads[0], saved[0], saved[1], saved_int(ctx, "levels"),
                                                saved_int(ctx, "pool"), saved_int(ctx, "top_k"));
    variable_list out(7);
    out[0] = std::move(dog);
    return out;
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> plan_autograd(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t levels, int64_t pool, int64_t top_k,
    c10::string_view scorer, int64_t dilation, c10::string_view backend, const OptTensor& entries) {
  at::AutoDispatchBelowADInplaceOrView below;
  return plan_op().call(q, k, v, levels, pool, top_k, scorer, dilation, backend, entries);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_autograd(const at::Tensor& q, const at::Tensor& k,
                                                               const at::Tensor& v, const at::Tensor& entries,
                                                               const at::Tensor& inv, const OptTensor& coarse_q,
                                                               const OptTensor& coarse_k, const OptTensor& coarse_v,
                                                               int64_t levels, int64_t pool, int64_t top_k) {
  const variable_list out =
      GatherFunction::apply(q, k, v, entries, inv, coarse_q, coarse_k, coarse_v, levels, pool, top_k);
  return {out[0], out[1], out[2]};
}

at::Tensor scatter_autograd(const at::Tensor& og, const at::Tensor& entries, const at::Tensor& inv,
                            c10::SymInt seq_len, int64_t levels, int64_t pool, int64_t top_k) {
  return ScatterFunction::apply(og, entries, inv, seq_len, levels, pool, top_k);
}

}  // namespace lighthouse::detail
