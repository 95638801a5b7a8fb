/*
 * The synthetic retrieval documents (recall_mix.h).
 */
#include "data/recall_mix.h"

#include <cmath>

#include "data/rng.h"

namespace lighthouse::data {
namespace {

constexpr uint64_t kRecallStream = 5;
constexpr const char* kConsonants = "bdfgklmnprstvz";
constexpr const char* kVowels = "aeiou";

std::string word(SplitMix64& rng) {
  std::string w;
  const uint64_t syllables = 1 + rng.below(3);
  for (uint64_t i = 0; i < syllables; ++i) {
    w += kConsonants[rng.below(14)];
    w += kVowels[rng.below(5)];
  }
  if (rng.below(3) == 0) w += kConsonants[rng.below(14)];
  return w;
}

// Sentences of made-up words, about `bytes` long (whole sentences, each
// followed by a space).
std::string filler(SplitMix64& rng, int64_t bytes) {
  std::string out;
  while (static_cast<int64_t>(out.size()) < bytes) {
    const uint64_t words = 4 + rng.below(9);
    for (uint64_t i = 0; i < words; ++i) {
      std::string w = word(rng);
      if (i == 0) w[0] = static_cast<char>(w[0] - 'a' + 'A');
      out += w;
      out += i + 1 == words ? ". " : " ";
    }
  }
  return out;
}

std::string fill(const char* tmpl, const std::string& name, const std::string& key) {
  std::string out;
  for (const char* p = tmpl; *p;) {
    if (p[0] == '{' && p[1] == 'w' && p[2] == '}') {
      out += name;
      p += 3;
    } else if (p[0] == '{' && p[1] == 'W' && p[2] == '}') {
      std::string n = name;
      n[0] = static_cast<char>(n[0] - 'a' + 'A');
      out += n;
      p += 3;
    } else if (p[0] == '{' && p[1] == 'k' && p[2] == '}') {
      out += key;
      p += 3;
    } else {
      out += *p++;
    }
  }
  return out;
}

}  // namespace

const std::vector<RecallTemplate>& recall_templates() {
  static const std::vector<RecallTemplate> t = {
      {"Entry {w}: stored value {k}. ", "Entry {w}, stored value: "},
      {"{W} keeps {k} coins in a tin box. ", "How many coins does {w} keep in the tin box? "},
      {"The lock on the {w} gate opens with {k}. ", "To open the {w} gate, dial "},
      {"At the meeting {w} wrote {k} on a card. ", "On the card, {w} had written "},
      {"Item {w} was shipped in crate {k}. ", "Which crate held item {w}? Crate "},
  };
  return t;
}

RecallDocument recall_document(uint64_t seed, uint64_t index, int64_t min_bytes, int64_t max_bytes) {
  SplitMix64 rng(mix_seed(seed, kRecallStream, index));
  RecallDocument d;
  d.template_index = static_cast<int>(rng.below(recall_templates().size()));
  const RecallTemplate& t = recall_templates()[static_cast<size_t>(d.template_index)];
  const uint64_t digits = 1 + rng.below(6);
  for (uint64_t i = 0; i < digits; ++i) d.key += static_cast<char>('0' + rng.below(10));
  std::string name = word(rng);
  while (name.size() < 4) name += word(rng);
  const std::string fact = fill(t.fact, name, d.key), question = fill(t.question, name, d.key);
  // Length log-uniform in [min, max]; the fact at a uniform depth.
  const double u = static_cast<double>(rng.below(1u << 30)) / static_cast<double>(1u << 30);
  const double lo = static_cast<double>(std::max<int64_t>(min_bytes, 1));
  const double hi = static_cast<double>(std::max(max_bytes, min_bytes));
  const auto total = static_cast<int64_t>(lo * std::pow(hi / lo, u));
  const int64_t fixed = static_cast<int64_t>(fact.size() + question.size() + d.key.size() + 1);
  const int64_t room = std::max<int64_t>(total - fixed, 16);
  const auto before = static_cast<int64_t>(static_cast<double>(room) * static_cast<double>(rng.below(1001)) / 1000.0);
  d.text = filler(rng, before);
  d.fact_offset = d.text.size();
  d.text += fact;
  d.text += filler(rng, std::max<int64_t>(room - before, 1));
  d.text += question + d.key + "\n";
  return d;
}

}  // namespace lighthouse::data
