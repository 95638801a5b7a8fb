#include "autograd.h"

#include <ATen/Functions.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "../kernels/geometry.h"

namespace lighthouse::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

std::vector<int64_t> pack(const Geometry& g) { return {g.B, g.N, g.H, g.H_kv, g.d, g.L, g.log2_p, g.k_top}; }

Geometry unpack(const AutogradContext* ctx) {
  const std::vector<int64_t> v = ctx->saved_data.at("geometry").toIntVector();
  return make_geometry(v[0], v[1], v[2], v[3], v[4], static_cast<int32_t>(v[5]), static_cast<int32_t>(v[6]), v[7]);
}

void save_plan(AutogradContext* ctx, const Plan& plan, const Geometry& g) {
  ctx->save_for_backward({plan.entries, plan.inv});
  ctx->saved_data["geometry"] = pack(g);
}

Plan saved_plan(AutogradContext* ctx) {
  const variable_list saved = ctx->get_saved_variables();
  return Plan{saved[0], saved[1]};
}

struct GatherFunction : torch::autograd::Function<GatherFunction> {
  // `plan` travels as a non-tensor argument: its pooled coarsest rows are
  // forward-only inputs (often undefined), not graph inputs.
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const Plan* plan, const Geometry& g) {
    save_plan(ctx, *plan, g);
    return gather({q, k, v}, *plan, g, {plan->coarse_q, plan->coarse_k, plan->coarse_v});
  }

  // One input gradient at a time, releasing each gathered gradient once used:
  // the peak holds one [B, H, S, d] gradient beside dq, dk, dv, not three.
  // `grads` by reference: the autograd node moved its only copies in here
  // (undefined ones already materialized as zeros, the Function default).
  static variable_list backward(AutogradContext* ctx, variable_list& grads) {
    const Geometry g = unpack(ctx);
    const Plan plan = saved_plan(ctx);
    variable_list out(5);
    const int64_t heads[3] = {g.H, g.H_kv, g.H_kv};
    for (int i = 0; i < 3; ++i) {
      at::Tensor dxg = std::move(grads[i]);
      out[i] = gather_backward(dxg, heads[i], plan, g);
    }
    return out;
  }
};

struct ScatterFunction : torch::autograd::Function<ScatterFunction> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& og, const at::Tensor& entries,
                            const at::Tensor& inv, const Geometry& g) {
    const Plan plan{entries, inv};
    save_plan(ctx, plan, g);
    return scatter(og, plan, g);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {scatter_backward(grads[0], saved_plan(ctx), unpack(ctx)), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> gather_autograd(const at::Tensor& q, const at::Tensor& k,
                                                               const at::Tensor& v, const Plan& plan,
                                                               const Geometry& g) {
  const variable_list out = GatherFunction::apply(q, k, v, &plan, g);
  return {out[0], out[1], out[2]};
}

at::Tensor scatter_autograd(const at::Tensor& og, const Plan& plan, const Geometry& g) {
  return ScatterFunction::apply(og, plan.entries, plan.inv, g);
}

}  // namespace lighthouse::detail
