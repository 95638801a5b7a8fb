/*
 * Input validation at the API boundary and the bridges from at::Tensor to
 * the kernel params (csrc/kernels/params.h). Every rule of the spec's
 * "Inputs, shapes and errors" is checked here, with messages naming the value.
 */
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <type_traits>

#include "lighthouse/lighthouse.h"
#include "../kernels/params.h"

namespace lighthouse::detail {

// Error messages built without streaming numbers through std::ostream: on a
// GPU machine (Ubuntu 24.04, GCC 13, torch 2.11 wheel) `ostream << long`
// inside TORCH_CHECK crashed in libstdc++ when this library was loaded into
// Python, while strings streamed fine. LH_CHECK formats every argument here
// and hands TORCH_CHECK one string.
inline void append(std::string& s, const char* x) { s += x; }
inline void append(std::string& s, const std::string& x) { s += x; }
inline void append(std::string& s, std::string_view x) { s.append(x.data(), x.size()); }
inline void append(std::string& s, char c) { s += c; }
inline void append(std::string& s, bool b) { s += b ? "true" : "false"; }
template <typename T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool> && !std::is_same_v<T, char>,
                                       int> = 0>
void append(std::string& s, T x) {
  s += std::to_string(x);
}
inline void append(std::string& s, double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  s += buf;
}
inline void append(std::string& s, c10::IntArrayRef a) {
  s += '[';
  for (size_t i = 0; i < a.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a[i]);
  }
  s += ']';
}
inline void append(std::string& s, c10::ScalarType t) { s += c10::toString(t); }
inline void append(std::string& s, const c10::Device& d) { s += d.str(); }

template <typename... Args>
std::string message(const Args&... args) {
  std::string s;
  (append(s, args), ...);
  return s;
}

// Validates the config alone (levels, pool, top_k, dilation).
void check_options(const Options& o);

// Validates q, k (and v if defined) and the config together; returns the
// geometry of the call. `op` names the caller in messages.
Geometry check_inputs(const char* op, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                      const Options& o);

// Geometry from sizes of an already validated call.
Geometry geometry_for(int64_t B, int64_t N, int64_t H, int64_t H_kv, int64_t d, const Options& o);

DType to_dtype(const at::Tensor& t);
// A [B, N, heads, d] tensor as params; `t` must have a contiguous last dim.
TokenTensor token_tensor(const at::Tensor& t);
// A [B, H, S, d] tensor as params; `t` must have a contiguous last dim.
SubTensor sub_tensor(const at::Tensor& t);
// `t` itself if the kernels can read it in place (last dim contiguous; on
// CUDA also 16-byte aligned rows), else a contiguous copy.
at::Tensor kernel_ready(const at::Tensor& t);

}  // namespace lighthouse::detail

// TORCH_CHECK with the message formatted by lighthouse::detail::message.
#define LH_CHECK(cond, ...) TORCH_CHECK(cond, ::lighthouse::detail::message(__VA_ARGS__))
