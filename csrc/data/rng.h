/*
 * A tiny, fully specified PRNG for data order (torch-free): splitmix64,
 * Lemire's unbiased bounded draw with rejection, Fisher-Yates. Unlike
 * std::uniform_int_distribution / std::shuffle, the sequence is the same on
 * every platform and standard library, so packed datasets and loader orders
 * are reproducible everywhere.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace lighthouse::data {

struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0, unbiased.
  uint64_t below(uint64_t n) {
    __uint128_t m = static_cast<__uint128_t>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        m = static_cast<__uint128_t>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
};

// A seed for stream `stream` (what it orders) and index (e.g. the epoch).
inline uint64_t mix_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  SplitMix64 a(seed ^ 0x6c69676874686f75ULL);  // "lighthou"
  uint64_t s = a.next() ^ (stream * 0xd1b54a32d192ed03ULL);
  SplitMix64 b(s);
  return b.next() ^ SplitMix64(index + 0x5851f42d4c957f2dULL).next();
}

template <typename T>
void shuffle(std::vector<T>& v, SplitMix64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace lighthouse::data
