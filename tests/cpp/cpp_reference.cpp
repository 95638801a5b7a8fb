// Writes the C++ API's results for fixed inputs to a file that
// tests/python/test_python_vs_cpp.py loads with torch.load and compares with
// torch.ops.lighthouse.* bit for bit.
//
//   lighthouse_cpp_reference OUT.pt
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdio>
#include <fstream>

#include "lighthouse/lighthouse.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.pt\n", argv[0]);
    return 2;
  }
  at::manual_seed(1234);
  lighthouse::Options o;
  o.levels = 3;
  o.pool = 4;
  o.top_k = 256;
  const int64_t n = lighthouse::min_sequence_length(o) + 37;
  const at::Tensor q = at::randn({2, n, 4, 32}).requires_grad_();
  const at::Tensor k = at::randn({2, n, 2, 32}).requires_grad_();
  const at::Tensor v = at::randn({2, n, 2, 32}).requires_grad_();
  const at::Tensor go = at::randn({2, n, 4, 32});
  const at::Tensor out = lighthouse::attention(q, k, v, o);
  const auto grads = torch::autograd::grad({out}, {q, k, v}, {go});
  const at::Tensor entries = lighthouse::select(q.detach(), k.detach(), o);

  c10::Dict<std::string, at::Tensor> d;
  d.insert("q", q.detach());
  d.insert("k", k.detach());
  d.insert("v", v.detach());
  d.insert("grad_out", go);
  d.insert("out", out.detach());
  d.insert("dq", grads[0]);
  d.insert("dk", grads[1]);
  d.insert("dv", grads[2]);
  d.insert("entries", entries);
  d.insert("config", at::tensor({o.levels, o.pool, o.top_k}, at::kLong));
  const std::vector<char> bytes = torch::jit::pickle_save(c10::IValue(d));
  std::ofstream(argv[1], std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return 0;
}
