/*
 * The public CP API (lighthouse/lighthouse_cp.h): checks on the rank's
 * [B, N/W, ...] chunks, the chunk-batched view the internals run on, and the
 * head-tail sharding helpers.
 */
#include <ATen/Functions.h>

#include "cp_attention.h"
#include "lighthouse/lighthouse_cp.h"
#include "ops/checks.h"
#include "parallel.h"

namespace lighthouse::cp {
namespace {

// [B, 2n, X, d] -> chunk-batched [2B, n, X, d] (a view when contiguous).
at::Tensor chunk_batched(const at::Tensor& x) {
  return x.reshape({2 * x.size(0), x.size(1) / 2, x.size(2), x.size(3)});
}

at::Tensor unchunk(const at::Tensor& x) { return x.reshape({x.size(0) / 2, 2 * x.size(1), x.size(2), x.size(3)}); }

void check_chunks(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const char* names[3] = {"q", "k", "v"};
  const at::Tensor* ts[3] = {&q, &k, &v};
  for (int i = 0; i < 3; ++i) {
    if (!ts[i]->defined() && i == 2) continue;
    LH_CHECK(ts[i]->defined() && ts[i]->dim() == 4, op, ": ", names[i],
             " must be this rank's two chunks [B, N/W, heads, d], got ",
             ts[i]->defined() ? ts[i]->sizes() : c10::IntArrayRef{});
    LH_CHECK(ts[i]->size(0) == q.size(0) && ts[i]->size(1) == q.size(1), op, ": ", names[i],
             " must have q's batch and sequence sizes ", q.sizes(), ", got ", ts[i]->sizes());
  }
  LH_CHECK(q.size(1) % 2 == 0 && q.size(1) > 0, op,
           ": the rank's sequence length must be even (two equal chunks), got ", q.size(1));
}

}  // namespace

at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Options& options,
                     const Group& group) {
  check_chunks("lighthouse.cp_attention", q, k, v);
  if (q.size(0) == 0) return at::empty(q.sizes(), q.options());
  const dist::CpGroup cp = dist::cp_group(group);
  return unchunk(dist::lighthouse_attention(chunk_batched(q), chunk_batched(k), chunk_batched(v), options, cp));
}

at::Tensor dense_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const Group& group,
                           SdpaBackend backend) {
  const char* op = "lighthouse.cp_dense_attention";
  check_chunks(op, q, k, v);
  LH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type(), op,
           ": q, k and v must share a dtype, got ", q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type());
  LH_CHECK(k.device() == q.device() && v.device() == q.device(), op, ": q, k and v must be on one device, got ",
           q.device(), ", ", k.device(), ", ", v.device());
  LH_CHECK(v.sizes() == k.sizes(), op, ": v must have the shape of k ", k.sizes(), ", got ", v.sizes());
  LH_CHECK(k.size(3) == q.size(3), op, ": k must have q's head dim ", q.size(3), ", got ", k.size(3));
  LH_CHECK(k.size(2) > 0 && q.size(2) % k.size(2) == 0, op, ": the query heads H=", q.size(2),
           " must be a multiple of the key/value heads H_kv=", k.size(2));
  if (q.size(0) == 0) return at::empty(q.sizes(), q.options());
  const dist::CpGroup cp = dist::cp_group(group);
  // [2B, n, X, d] -> [2B, X, n, d] views for the SDPA layout.
  const at::Tensor o = dist::causal_attention(chunk_batched(q).transpose(1, 2), chunk_batched(k).transpose(1, 2),
                                              chunk_batched(v).transpose(1, 2), cp, backend);
  return unchunk(o.transpose(1, 2));
}

at::Tensor select(const at::Tensor& q, const at::Tensor& k, const Options& options, const Group& group) {
  check_chunks("lighthouse.cp_select", q, k, at::Tensor());
  const dist::CpGroup cp = dist::cp_group(group);
  const at::Tensor local = dist::lighthouse_select(chunk_batched(q), chunk_batched(k), options, cp);  // [2B, H, S_c]
  const int64_t B = q.size(0), H = local.size(1), S_c = local.size(2);
  return local.view({B, 2, H, S_c}).permute({0, 2, 1, 3}).reshape({B, H, 2 * S_c});
}

void check_geometry(int64_t seq_len, const Options& options, int64_t cp) {
  const std::string err = dist::cp_geometry_error(seq_len, options.levels, options.pool, options.top_k, cp);
  LH_CHECK(err.empty(), "lighthouse: ", err);
}

at::Tensor shard(const at::Tensor& x, int64_t rank, int64_t size, int64_t dim) {
  LH_CHECK(size >= 1 && rank >= 0 && rank < size, "lighthouse.cp.shard: rank ", rank, " outside [0, ", size, ")");
  const int64_t d = c10::maybe_wrap_dim(dim, x.dim());
  const std::string err = dist::cp_dense_error(x.size(d), size);
  LH_CHECK(err.empty(), "lighthouse.cp.shard: ", err);
  const int64_t n = x.size(d) / (2 * size);
  const dist::CpChunks ch{rank, size};
  return at::cat({x.narrow(d, ch.chunk(0) * n, n), x.narrow(d, ch.chunk(1) * n, n)}, d);
}

at::Tensor unshard(const std::vector<at::Tensor>& shards, int64_t dim) {
  LH_CHECK(!shards.empty(), "lighthouse.cp.unshard: no shards");
  const int64_t size = static_cast<int64_t>(shards.size());
  const int64_t d = c10::maybe_wrap_dim(dim, shards[0].dim());
  const int64_t n2 = shards[0].size(d);
  LH_CHECK(n2 % 2 == 0, "lighthouse.cp.unshard: a shard holds two equal chunks, got length ", n2);
  for (const at::Tensor& s : shards) {
    LH_CHECK(s.sizes() == shards[0].sizes(), "lighthouse.cp.unshard: shards differ in shape: ", shards[0].sizes(),
             " and ", s.sizes());
  }
  const dist::CpChunks ch{0, size};
  std::vector<at::Tensor> chunks;
  for (int64_t c = 0; c < ch.chunks(); ++c)
    chunks.push_back(shards[ch.owner(c)].narrow(d, ch.local_index(c) * n2 / 2, n2 / 2));
  return at::cat(chunks, d);
}

at::Tensor positions(int64_t seq_len, int64_t rank, int64_t size, const at::Device& device) {
  return shard(at::arange(seq_len, at::TensorOptions().dtype(at::kLong).device(device)), rank, size, 0);
}

}  // namespace lighthouse::cp
