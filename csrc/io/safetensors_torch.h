/*
 * safetensors <-> ATen tensors (the torch adapter over safetensors.h).
 *
 * save: CPU contiguous copies in the order given; dtypes f64/f32/f16/bf16/
 * i64/i32/i16/i8/u8/bool; metadata in "__metadata__" (Hugging Face wants
 * {"format": "pt"}); written atomically (files.h: temp file, fsync, rename,
 * fsync dir), streamed tensor by tensor (no whole-file copy in memory).
 * load: validates the header fully (safetensors.h) before reading data;
 * tensors come back in the file's data order as contiguous CPU tensors.
 * Errors are std::runtime_error "safetensors '<path>': <what is wrong>"
 * (missing, truncated, corrupt header, unsupported dtype, ...).
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace lighthouse::io {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
NamedTensors load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);
// The header alone (names, dtypes, shapes, metadata) without reading data.
Header read_safetensors_header(const std::string& path);

at::ScalarType to_scalar_type(DType);
DType from_scalar_type(at::ScalarType);  // throws for unsupported types, naming them

}  // namespace lighthouse::io
