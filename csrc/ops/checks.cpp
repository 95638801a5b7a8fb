/*
 * Input checks of the op (checks.h). The geometry rules (levels, pool,
 * top_k, dilation, the sequence length) are geometry_problems
 * (kernels/geometry_check.h), shared with the config validator; this file
 * adds the tensor rules (ranks, dtypes, devices, shapes, heads) and raises
 * the first problem as a c10::Error.
 */
#include "checks.h"

#include <c10/util/Exception.h>

#include <vector>

#include "../kernels/geometry.h"
#include "../kernels/geometry_check.h"

namespace lighthouse::detail {
namespace {

GeometryArgs geometry_args(const Options& o, int64_t seq_len) {
  GeometryArgs a;
  a.levels = o.levels;
  a.pool = o.pool;
  a.top_k = o.top_k;
  a.dilated = o.scorer == Scorer::kDilated;
  a.dilation = o.dilation;
  a.seq_len = seq_len;
  return a;
}

// Raises the first problem: "lighthouse: " before a problem of the options
// alone, "<op>: " before one about the sequence length.
void raise_first(const char* op, const std::vector<GeometryProblem>& problems) {
  if (problems.empty()) return;
  const GeometryProblem& p = problems.front();
  LH_CHECK(false, p.about_sequence ? op : "lighthouse", ": ", p.message);
}

void check_rank(const char* op, const char* name, const at::Tensor& t, const char* shape) {
  LH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  LH_CHECK(t.dim() == 4, op, ": ", name, " must be ", shape, ", got a ", t.dim(), "-d tensor of shape ",
              t.sizes());
}

}  // namespace

void check_options(const Options& o) { raise_first("lighthouse", geometry_problems(geometry_args(o, -1))); }

Geometry geometry_for(int64_t B, int64_t N, int64_t H, int64_t H_kv, int64_t d, const Options& o) {
  return make_geometry(B, N, H, H_kv, d, static_cast<int32_t>(o.levels), ceil_log2(o.pool), o.top_k);
}

Geometry check_inputs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const Options& o) {
  check_rank(op, "q", q, "[B, N, H, d]");
  check_rank(op, "k", k, "[B, N, H_kv, d]");
  if (v.defined()) check_rank(op, "v", v, "[B, N, H_kv, d]");

  const auto dt = q.scalar_type();
  LH_CHECK(dt == at::kHalf || dt == at::kBFloat16 || dt == at::kFloat || dt == at::kDouble, op,
              ": q must be float16, bfloat16, float32 or float64, got ", dt);
  LH_CHECK(k.scalar_type() == dt, op, ": q, k and v must share a dtype, got q ", dt, " and k ",
              k.scalar_type());
  LH_CHECK(k.device() == q.device(), op, ": q, k and v must be on one device, got q on ", q.device(),
              " and k on ", k.device());
  if (v.defined()) {
    LH_CHECK(v.scalar_type() == dt, op, ": q, k and v must share a dtype, got q ", dt, " and v ",
                v.scalar_type());
    LH_CHECK(v.device() == q.device(), op, ": q, k and v must be on one device, got q on ", q.device(),
                " and v on ", v.device());
  }
  LH_CHECK(q.device().is_cpu() || q.device().is_cuda() || q.device().is_meta(), op,
              ": only CPU and CUDA tensors are supported, got ", q.device());

  const int64_t B = q.size(0), N = q.size(1), H = q.size(2), d = q.size(3);
  const int64_t H_kv = k.size(2);
  LH_CHECK(k.size(0) == B && k.size(1) == N && k.size(3) == d, op,
              ": k must be [B, N, H_kv, d] with B, N, d as in q ", q.sizes(), ", got ", k.sizes());
  if (v.defined()) {
    LH_CHECK(v.sizes() == k.sizes(), op, ": v must have the shape of k ", k.sizes(), ", got ", v.sizes());
  }
  LH_CHECK(H > 0, op, ": q must have at least one head, got H=", H);
  LH_CHECK(H_kv > 0, op, ": k must have at least one head, got H_kv=", H_kv);
  LH_CHECK(H % H_kv == 0, op, ": the query heads H=", H, " must be a multiple of the key/value heads H_kv=",
              H_kv);
  LH_CHECK(d > 0, op, ": head dim d must be > 0, got ", d);
  if (q.is_cuda()) {
    LH_CHECK(dt != at::kDouble, op, ": float64 is supported on CPU only; on CUDA use float32, bfloat16 or float16");
    const int64_t vec = 16 / static_cast<int64_t>(q.element_size());
    LH_CHECK(d % vec == 0, op, ": on CUDA the head dim must be a multiple of ", vec, " for ", dt, ", got d=", d);
  }

  check_options(o);
  if (o.scorer == Scorer::kDilated) LH_CHECK(v.defined(), op, ": the dilated scorer needs v");
  raise_first(op, geometry_problems(geometry_args(o, N)));
  const Geometry g = geometry_for(B, N, H, H_kv, d, o);
  return g;
}

DType to_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::kFloat32;
    case at::kDouble:
      return DType::kFloat64;
    case at::kBFloat16:
      return DType::kBFloat16;
    case at::kHalf:
      return DType::kFloat16;
    default:
      LH_CHECK(false, "lighthouse: unsupported dtype ", t.scalar_type());
  }
}

TokenTensor token_tensor(const at::Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.dim() == 4 && (t.size(3) <= 1 || t.stride(3) == 1));
  return TokenTensor{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2), t.size(2)};
}

SubTensor sub_tensor(const at::Tensor& t) {
  TORCH_INTERNAL_ASSERT(t.dim() == 4 && (t.size(3) <= 1 || t.stride(3) == 1));
  return SubTensor{t.data_ptr(), t.stride(0), t.stride(1), t.stride(2)};
}

at::Tensor kernel_ready(const at::Tensor& t) {
  if (t.size(-1) > 1 && t.stride(-1) != 1) return t.contiguous();
  if (t.is_cuda()) {
    // The CUDA kernels move 16 bytes per access.
    const int64_t vec = 16 / static_cast<int64_t>(t.element_size());
    bool aligned = reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
    for (int64_t i = 0; i + 1 < t.dim(); ++i) aligned = aligned && (t.size(i) <= 1 || t.stride(i) % vec == 0);
    if (!aligned) return t.contiguous();
  }
  return t;
}

}  // namespace lighthouse::detail
