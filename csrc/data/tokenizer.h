/*
 * The byte-level tokenizer "bytes-v1" (torch-free): tokens 0..255 are the
 * bytes of the UTF-8 text, then three special tokens. The model pads its
 * vocabulary to a larger size; rows >= kNumTokens are never produced.
 * A document is BOS + bytes + EOS (encode_document).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lighthouse::data {

constexpr int64_t kBos = 256, kEos = 257, kPad = 258, kNumTokens = 259;
constexpr const char* kTokenizerName = "bytes-v1";

std::vector<int64_t> encode(std::string_view text);           // one token per byte
std::vector<int64_t> encode_document(std::string_view text);  // BOS + bytes + EOS
// Bytes back to text. Special tokens are dropped, or written as "<|bos|>",
// "<|eos|>", "<|pad|>" with show_special. A token outside [0, kNumTokens)
// throws std::out_of_range naming the token and its position.
std::string decode(const int64_t* tokens, size_t n, bool show_special = false);
inline std::string decode(const std::vector<int64_t>& tokens, bool show_special = false) {
  return decode(tokens.data(), tokens.size(), show_special);
}

}  // namespace lighthouse::data
