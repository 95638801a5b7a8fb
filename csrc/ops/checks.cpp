#include "checks.h"

#include <c10/util/Exception.h>

#include <limits>

#include "../kernels/geometry.h"

namespace lighthouse::detail {
namespace {

bool is_power_of_two(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

int log2_exact(int64_t x) {
  int r = 0;
  while ((int64_t{1} << r) < x) ++r;
  return r;
}

void check_rank(const char* op, const char* name, const at::Tensor& t, const char* shape) {
  LH_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
  LH_CHECK(t.dim() == 4, op, ": ", name, " must be ", shape, ", got a ", t.dim(), "-d tensor of shape ",
              t.sizes());
}

}  // namespace

void check_options(const Options& o) {
  LH_CHECK(o.levels >= 2, "lighthouse: levels must be >= 2, got ", o.levels);
  LH_CHECK(o.levels <= kMaxLevels, "lighthouse: levels must be <= ", kMaxLevels, ", got ", o.levels);
  LH_CHECK(o.pool >= 2 && is_power_of_two(o.pool), "lighthouse: pool must be a power of two >= 2, got ",
              o.pool);
  LH_CHECK(o.top_k > 0 && o.top_k % kSelectPerLevel == 0,
              "lighthouse: top_k must be a positive multiple of ", kSelectPerLevel, ", got ", o.top_k);
  const int shift = static_cast<int>(o.levels - 1) * log2_exact(o.pool);
  LH_CHECK(shift + log2_exact(o.top_k) <= 40, "lighthouse: config too large: top_k * pool^(levels-1) = ",
              o.top_k, " * ", o.pool, "^", o.levels - 1, " exceeds 2^40 tokens");
  if (o.scorer == Scorer::kDilated) {
    LH_CHECK(o.dilation >= 1 && is_power_of_two(o.dilation),
                "lighthouse: dilation must be a power of two >= 1, got ", o.dilation);
  }
}

Geometry geometry_for(int64_t B, int64_t N, int64_t H, int64_t H_kv, int64_t d, const Options& o) {
  return make_geometry(B, N, H, H_kv, d, static_cast<int32_t>(o.levels), log2_exact(o.pool), o.top_k);
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
  const int64_t min_n = min_seq_len(static_cast<int32_t>(o.levels), log2_exact(o.pool), o.top_k);
  LH_CHECK(N >= min_n, op, ": sequence length N=", N, " is too short for levels=", o.levels,
              ", pool=", o.pool, ", top_k=", o.top_k, ": the smallest valid N is ", min_n,
              " (top_k * pool^(levels-1), 128 coarsest entries per tile)");

  const Geometry g = geometry_for(B, N, H, H_kv, d, o);
  LH_CHECK(g.P < std::numeric_limits<int32_t>::max() && g.S < std::numeric_limits<int32_t>::max(), op,
              ": sequence length N=", N, " is too long: the pyramid has ", g.P, " entries per row (limit 2^31)");
  if (o.scorer == Scorer::kDilated) {
    LH_CHECK(v.defined(), op, ": the dilated scorer needs v");
    LH_CHECK(g.N_pad % o.dilation == 0, op, ": dilation=", o.dilation,
                " must divide the padded sequence length ", g.N_pad);
  }
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
