/*
 * bytes-v1: one token per byte, BOS/EOS/PAD after the 256 bytes.
 */
#include "data/tokenizer.h"

#include <stdexcept>

namespace lighthouse::data {

std::vector<int64_t> encode(std::string_view text) {
  std::vector<int64_t> out(text.size());
  for (size_t i = 0; i < text.size(); ++i) out[i] = static_cast<unsigned char>(text[i]);
  return out;
}

std::vector<int64_t> encode_document(std::string_view text) {
  std::vector<int64_t> out;
  out.reserve(text.size() + 2);
  out.push_back(kBos);
  for (char c : text) out.push_back(static_cast<unsigned char>(c));
  out.push_back(kEos);
  return out;
}

std::string decode(const int64_t* tokens, size_t n, bool show_special) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t t = tokens[i];
    if (t >= 0 && t < 256) {
      out.push_back(static_cast<char>(static_cast<unsigned char>(t)));
    } else if (t >= 256 && t < kNumTokens) {
      if (show_special) out += t == kBos ? "<|bos|>" : t == kEos ? "<|eos|>" : "<|pad|>";
    } else {
      throw std::out_of_range("decode: token " + std::to_string(t) + " at position " + std::to_string(i) +
                              " is outside the bytes-v1 vocabulary [0, " + std::to_string(kNumTokens) + ")");
    }
  }
  return out;
}

}  // namespace lighthouse::data
