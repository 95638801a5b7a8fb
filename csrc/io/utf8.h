/*
 * UTF-8 decoding, strict (RFC 3629): no overlong forms, no surrogates,
 * nothing past U+10FFFF, no sequence cut off by the end of the text.
 *
 * The code base's one UTF-8 decoder: the config checks its strings with it
 * (csrc/config), the packer sniffs text with it (csrc/data/pack.cpp).
 * Header-only and torch-free.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace lighthouse::io {

struct Utf8Char {
  int32_t code_point = -1;  // -1: invalid
  size_t length = 0;        // bytes of the sequence; 0: invalid
};

// The character whose encoding starts at s[i] (i < s.size()), or {-1, 0}
// when the bytes there do not start a valid sequence.
inline Utf8Char decode_utf8(std::string_view s, size_t i) {
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(s[j]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return {c, 1};
  size_t len;
  int32_t min, cp;
  if ((c & 0xe0) == 0xc0) {
    len = 2, min = 0x80, cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3, min = 0x800, cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4, min = 0x10000, cp = c & 0x07;
  } else {
    return {};
  }
  if (s.size() - i < len) return {};
  for (size_t j = 1; j < len; ++j) {
    if ((byte(i + j) & 0xc0) != 0x80) return {};
    cp = (cp << 6) | (byte(i + j) & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {};
  return {cp, len};
}

// Whether all of `s` is valid UTF-8.
inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = decode_utf8(s, i).length;
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace lighthouse::io
