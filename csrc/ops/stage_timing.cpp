/*
 * time_stages and inner_sdpa (include/lighthouse/stages.h): the op's own
 * stage functions (stages.h, sdpa.h) run one at a time under the caller's
 * clock, on the inputs a real call would give them.
 */
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

#include <algorithm>

#include "checks.h"
#include "lighthouse/stages.h"
#include "sdpa.h"
#include "stages.h"

namespace lighthouse {

std::vector<std::pair<std::string, double>> time_stages(const at::Tensor& q, const at::Tensor& k,
                                                        const at::Tensor& v, const at::Tensor& grad_out,
                                                        const Options& o, const StageClock& time) {
  at::NoGradGuard no_grad;
  const Geometry g = detail::check_inputs("lighthouse.time_stages", q, k, v, o);
  std::vector<std::pair<std::string, double>> ms;
  detail::Plan plan;
  const double plan_ms = time([&] { plan = detail::make_plan(q, k, v, g, o, /*pool_coarse=*/true); });
  const double scores_ms = time([&] {
    detail::Plan tmp;
    detail::pyramid_scores(q, k, g, v, &tmp);
  });
  ms.emplace_back("scores", scores_ms);
  ms.emplace_back("select", std::max(0.0, plan_ms - scores_ms));
  at::Tensor qg, kg, vg;
  ms.emplace_back("gather", time([&] {
    const std::vector<at::Tensor> out =
        detail::gather({q, k, v}, plan, g, {plan.coarse_q, plan.coarse_k, plan.coarse_v});
    qg = out[0];
    kg = out[1];
    vg = out[2];
  }));
  at::Tensor og;
  const double sdpa_fwd_ms = time([&] { og = detail::causal_sdpa(qg, kg, vg, o.backend); });
  ms.emplace_back("sdpa_fwd", sdpa_fwd_ms);
  ms.emplace_back("scatter", time([&] { detail::scatter(og, plan, g); }));
  at::Tensor dog;
  ms.emplace_back("scatter_bwd", time([&] { dog = detail::scatter_backward(grad_out, plan, g); }));
  {
    at::AutoGradMode grad(true);
    const at::Tensor qr = qg.detach().requires_grad_(), kr = kg.detach().requires_grad_(),
                     vr = vg.detach().requires_grad_();
    const double fwd_bwd_ms = time([&] {
      const at::Tensor out = detail::causal_sdpa(qr, kr, vr, o.backend);
      torch::autograd::grad({out}, {qr, kr, vr}, {dog});
    });
    ms.emplace_back("sdpa_bwd", std::max(0.0, fwd_bwd_ms - sdpa_fwd_ms));
  }
  ms.emplace_back("gather_bwd", time([&] {
    detail::gather_backward(dog, g.H, plan, g);
    detail::gather_backward(dog, g.H_kv, plan, g);
    detail::gather_backward(dog, g.H_kv, plan, g);
  }));
  return ms;
}

at::Tensor inner_sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, SdpaBackend backend) {
  return detail::causal_sdpa(q, k, v, backend);
}

}  // namespace lighthouse
