#include "stages.h"

#include <ATen/Functions.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <vector>

#include "checks.h"
#include "launch.h"
#include "sdpa.h"
#include "../kernels/cpu/kernels_cpu.h"

#ifdef LIGHTHOUSE_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "../kernels/cuda/kernels_cuda.h"
#endif

namespace lighthouse::detail {
namespace {

constexpr const char* kWhat = "lighthouse";  // error prefix of launch()

// Gather of several tensors: the CPU twin one by one, CUDA in one launch.
void run_gather_all_cpu(const std::vector<GatherParams>& ps, const CpuExec& ex) {
  for (const GatherParams& p : ps) run_gather_cpu(p, ex);
}
#ifdef LIGHTHOUSE_WITH_CUDA
void run_gather_all(const std::vector<GatherParams>& ps, cudaStream_t stream) {
  run_gather(ps.data(), static_cast<int>(ps.size()), stream);
}
#endif

at::TensorOptions int_opts(const at::Device& device) { return at::TensorOptions().dtype(at::kInt).device(device); }

}  // namespace

std::tuple<at::Tensor, at::Tensor> pyramid_scores(const at::Tensor& q_src_in, const at::Tensor& k_src_in,
                                                  const Geometry& g, const at::Tensor& v_in, Plan* plan_out) {
  const at::Tensor q_src = kernel_ready(q_src_in);
  const at::Tensor k_src = kernel_ready(k_src_in);
  const auto f32 = at::TensorOptions().dtype(at::kFloat).device(q_src.device());
  at::Tensor sq = at::empty({g.B, q_src.size(2), g.P}, f32);
  at::Tensor sk = at::empty({g.B, k_src.size(2), g.P}, f32);
  ScoresParams p;
  p.g = g;
  p.dtype = to_dtype(q_src);
  p.q_src = token_tensor(q_src);
  p.k_src = token_tensor(k_src);
  p.sq_ptr = sq.data_ptr<float>();
  p.sk_ptr = sk.data_ptr<float>();
  at::Tensor v;
  if (plan_out != nullptr && v_in.defined()) {
    v = kernel_ready(v_in);
    const int64_t rows = g.pooled_rows();
    plan_out->coarse_q = at::empty({g.B, q_src.size(2), rows, g.d}, q_src.options());
    plan_out->coarse_k = at::empty({g.B, k_src.size(2), rows, g.d}, k_src.options());
    plan_out->coarse_v = at::empty({g.B, v.size(2), rows, g.d}, v.options());
    p.pool.v = token_tensor(v);
    p.pool.q_ptr = plan_out->coarse_q.data_ptr();
    p.pool.k_ptr = plan_out->coarse_k.data_ptr();
    p.pool.v_ptr = plan_out->coarse_v.data_ptr();
  }
  launch(kWhat, q_src.device(), p, run_scores_cpu, LH_CUDA_FN(run_scores));
  return {sq, sk};
}

Plan make_plan(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Geometry& g,
               const Options& o, bool pool_coarse) {
  at::NoGradGuard no_grad;
  Plan plan;
  at::Tensor sq, sk;
  if (o.scorer == Scorer::kNorm) {
    std::tie(sq, sk) = pool_coarse ? pyramid_scores(q, k, g, v, &plan) : pyramid_scores(q, k, g);
  } else {
    at::Tensor q_src, k_src;
    std::tie(q_src, k_src) = dilated_score_sources(q, k, v, g, o);
    std::tie(sq, sk) = pyramid_scores(q_src, k_src, g);
  }
  plan.entries = at::empty({g.B, g.H, g.S}, int_opts(q.device()));
  plan.inv = at::empty({g.B, g.H, g.P}, int_opts(q.device()));
  SelectParams p;
  p.g = g;
  p.sq_ptr = sq.data_ptr<float>();
  p.sk_ptr = sk.data_ptr<float>();
  p.sk_heads = sk.size(1);
  p.entries_ptr = plan.entries.data_ptr<int32_t>();
  p.inv_ptr = plan.inv.data_ptr<int32_t>();
  launch(kWhat, q.device(), p, run_select_cpu, LH_CUDA_FN(run_select));
  return plan;
}

void check_entries(const at::Tensor& entries, const Geometry& g, const at::Device& device) {
  LH_CHECK(entries.scalar_type() == at::kLong, "lighthouse: entries must be int64, got ",
              entries.scalar_type());
  LH_CHECK(entries.device() == device, "lighthouse: entries must be on ", device, " like q, got ",
              entries.device());
  LH_CHECK(entries.dim() == 3 && entries.size(0) == g.B && entries.size(1) == g.H && entries.size(2) == g.S,
              "lighthouse: entries must be [B, H, S] = [", g.B, ", ", g.H, ", ", g.S, "], got ", entries.sizes());
}

Plan plan_from_entries(const at::Tensor& entries, const Geometry& g, const at::Device& device) {
  at::NoGradGuard no_grad;
  check_entries(entries, g, device);
  Plan plan;
  plan.entries = entries.to(at::kInt).contiguous();
  plan.inv = at::full({g.B, g.H, g.P}, -1, int_opts(device));
  if (entries.numel() == 0) return plan;
  const int64_t lo = entries.min().item<int64_t>();
  const int64_t hi = entries.max().item<int64_t>();
  LH_CHECK(lo >= 0 && hi < g.P, "lighthouse: entries must be pyramid indices in [0, ", g.P, "), got [", lo,
              ", ", hi, "]");
  const at::Tensor slots = at::arange(g.S, int_opts(device)).expand({g.B, g.H, g.S}).contiguous();
  plan.inv.scatter_(2, entries, slots);
  LH_CHECK(plan.inv.gather(2, entries).equal(slots), "lighthouse: entries must not repeat a pyramid index");
  return plan;
}

std::vector<at::Tensor> gather(const std::vector<at::Tensor>& xs, const Plan& plan, const Geometry& g,
                               const std::vector<at::Tensor>& coarse) {
  TORCH_INTERNAL_ASSERT(!xs.empty() && xs.size() <= 3 && coarse.size() == xs.size());
  std::vector<at::Tensor> out;
  std::vector<GatherParams> params;
  std::vector<at::Tensor> inputs;  // kept alive until the launch
  for (size_t i = 0; i < xs.size(); ++i) {
    const at::Tensor x = kernel_ready(xs[i]);
    out.push_back(at::empty({g.B, g.H, g.S, g.d}, x.options()));
    GatherParams p;
    p.g = g;
    p.dtype = to_dtype(x);
    p.x = token_tensor(x);
    p.xg = sub_tensor(out.back());
    p.entries_ptr = plan.entries.data_ptr<int32_t>();
    if (coarse[i].defined()) {
      TORCH_INTERNAL_ASSERT(coarse[i].is_contiguous() && coarse[i].size(1) == x.size(2));
      p.coarse_ptr = coarse[i].data_ptr();
    }
    params.push_back(p);
    inputs.push_back(x);
  }
  launch(kWhat, inputs[0].device(), params, run_gather_all_cpu, LH_CUDA_FN(run_gather_all));
  return out;
}

at::Tensor gather_backward(const at::Tensor& dxg_in, int64_t heads, const Plan& plan, const Geometry& g) {
  const at::Tensor dxg = kernel_ready(dxg_in);
  at::Tensor dx = at::empty({g.B, g.N, heads, g.d}, dxg.options());
  GatherBackwardParams p;
  p.g = g;
  p.dtype = to_dtype(dxg);
  p.dxg = sub_tensor(dxg);
  p.dx = token_tensor(dx);
  p.inv_ptr = plan.inv.data_ptr<int32_t>();
  launch(kWhat, dxg.device(), p, run_gather_backward_cpu, LH_CUDA_FN(run_gather_backward));
  return dx;
}

at::Tensor scatter(const at::Tensor& og_in, const Plan& plan, const Geometry& g, const at::Tensor& spill_in) {
  const at::Tensor og = kernel_ready(og_in);
  at::Tensor out = at::empty({g.B, g.N, g.H, g.d}, og.options());
  ScatterParams p;
  p.g = g;
  p.dtype = to_dtype(og);
  p.og = sub_tensor(og);
  p.out = token_tensor(out);
  p.inv_ptr = plan.inv.data_ptr<int32_t>();
  at::Tensor spill;
  if (spill_in.defined()) {
    TORCH_INTERNAL_ASSERT(spill_in.sizes() == at::IntArrayRef({g.B, g.H, g.L, g.d}) &&
                          spill_in.scalar_type() == og.scalar_type() && spill_in.device() == og.device());
    spill = kernel_ready(spill_in);
    p.spill_in = sub_tensor(spill);
  }
  launch(kWhat, og.device(), p, run_scatter_cpu, LH_CUDA_FN(run_scatter));
  return out;
}

at::Tensor scatter_backward(const at::Tensor& dout_in, const Plan& plan, const Geometry& g,
                            const at::Tensor& spill_dout) {
  const at::Tensor dout = kernel_ready(dout_in);
  at::Tensor dog = at::empty({g.B, g.H, g.S, g.d}, dout.options());
  ScatterBackwardParams p;
  p.g = g;
  p.dtype = to_dtype(dout);
  p.dout = token_tensor(dout);
  p.dog = sub_tensor(dog);
  p.entries_ptr = plan.entries.data_ptr<int32_t>();
  p.inv_ptr = plan.inv.data_ptr<int32_t>();
  at::Tensor spill;
  if (spill_dout.defined()) {
    TORCH_INTERNAL_ASSERT(spill_dout.dim() == 4 && spill_dout.size(0) == g.B && spill_dout.size(2) == g.H &&
                          spill_dout.size(3) == g.d && spill_dout.scalar_type() == dout.scalar_type() &&
                          spill_dout.device() == dout.device());
    spill = kernel_ready(spill_dout);
    p.spill_dout = token_tensor(spill);
    p.spill_rows = spill.size(1);
  }
  launch(kWhat, dout.device(), p, run_scatter_backward_cpu, LH_CUDA_FN(run_scatter_backward));
  return dog;
}

}  // namespace lighthouse::detail
