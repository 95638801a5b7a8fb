/*
 * The passkey prompts (niah_prompt.h).
 */
#include "eval/niah_prompt.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <set>
#include <stdexcept>

#include "data/rng.h"
#include "data/tokenizer.h"

namespace lighthouse::eval {

namespace {

bool ascii_printable(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

std::string str(int64_t v) { return std::to_string(v); }

}  // namespace

std::vector<int64_t> default_depths() {
  std::vector<int64_t> d;
  for (int64_t i = 0; i <= 100; i += 10) d.push_back(i);
  return d;
}

std::vector<int64_t> default_contexts(int64_t train_len) {
  std::vector<int64_t> c;
  for (int64_t n = 4096; n < train_len; n *= 2) c.push_back(n);
  c.push_back(train_len);
  return c;
}

std::string needle_text(const NiahProtocol& p, int digit) {
  std::string out;
  for (size_t i = 0; i < p.needle.size(); ++i) {
    if (p.needle.compare(i, 3, "{d}") == 0) {
      out += static_cast<char>('0' + digit);
      i += 2;
    } else {
      out += p.needle[i];
    }
  }
  return out;
}

int64_t filler_bytes(const NiahProtocol& p, int64_t context) {
  return context - (p.bos ? 1 : 0) - static_cast<int64_t>(needle_text(p, 0).size()) -
         static_cast<int64_t>(p.question.size());
}

void validate(const NiahProtocol& p) {
  const auto fail = [](const std::string& m) { throw std::invalid_argument(m); };
  if (p.alphabet.empty()) fail("the filler alphabet is empty");
  for (const char c : p.alphabet) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      fail(std::string("the filler alphabet must hold letters and digits only, got '") + c + "'");
    }
  }
  if (p.word_min < 1 || p.word_max < p.word_min) {
    fail("filler word lengths need 1 <= word_min <= word_max, got " + str(p.word_min) + " and " + str(p.word_max));
  }
  if (p.needle.find("{d}") == std::string::npos) fail("the needle must contain {d} (the digit), got '" + p.needle + "'");
  if (p.needle.empty() || p.needle.back() != ' ') fail("the needle must end with a space, got '" + p.needle + "'");
  if (p.question.empty() || p.question.back() != ' ') {
    fail("the question must end with a space (the digit follows), got '" + p.question + "'");
  }
  if (!ascii_printable(p.needle) || !ascii_printable(p.question)) fail("needle and question must be printable ASCII");
  if (p.trials < 1) fail("trials must be >= 1, got " + str(p.trials));
  if (p.contexts.empty()) fail("no contexts given");
  if (p.depths.empty()) fail("no depths given");
  const int64_t overhead = -filler_bytes(p, 0);  // BOS, needle and question
  const int64_t smallest = overhead + p.word_min + 1;
  std::set<int64_t> seen;
  for (const int64_t c : p.contexts) {
    if (c < smallest) {
      fail("context " + str(c) + " is too short for the prompt (BOS, needle, question and one filler word): use >= " +
           str(smallest));
    }
    if (!seen.insert(c).second) fail("context " + str(c) + " is given twice");
  }
  seen.clear();
  for (const int64_t d : p.depths) {
    if (d < 0 || d > 100) fail("depth " + str(d) + " is outside 0..100 (percent of the filler)");
    if (!seen.insert(d).second) fail("depth " + str(d) + " is given twice");
  }
}

std::vector<NiahTrial> cell_trials(const NiahProtocol& p, int64_t context, int64_t depth) {
  data::SplitMix64 rng(data::mix_seed(p.seed, kNiahStream, static_cast<uint64_t>(context * 101 + depth)));
  std::vector<int> digits(static_cast<size_t>(p.trials));
  for (int64_t t = 0; t < p.trials; ++t) digits[static_cast<size_t>(t)] = static_cast<int>(t % 10);
  data::shuffle(digits, rng);
  std::vector<NiahTrial> out;
  for (int64_t t = 0; t < p.trials; ++t) out.push_back({context, depth, t, rng.next(), digits[static_cast<size_t>(t)]});
  return out;
}

std::string filler_text(const NiahProtocol& p, uint64_t trial_seed, int64_t bytes) {
  data::SplitMix64 rng(trial_seed);
  const uint64_t span = static_cast<uint64_t>(p.word_max - p.word_min + 1);
  std::string s;
  s.reserve(static_cast<size_t>(bytes));
  while (static_cast<int64_t>(s.size()) < bytes) {
    const int64_t r = bytes - static_cast<int64_t>(s.size());
    int64_t len = p.word_min + static_cast<int64_t>(rng.below(span));
    if (r - (len + 1) < p.word_min + 1) len = r - 1;
    for (int64_t i = 0; i < len; ++i) s += p.alphabet[rng.below(p.alphabet.size())];
    s += ' ';
  }
  return s;
}

int64_t needle_offset(const std::string& filler, int64_t depth) {
  const int64_t F = static_cast<int64_t>(filler.size());
  const int64_t target = (depth * F + 50) / 100;
  int64_t best = 0;
  for (int64_t b = 1; b <= F; ++b) {
    if (filler[static_cast<size_t>(b - 1)] != ' ') continue;
    if (std::llabs(b - target) < std::llabs(best - target)) best = b;
    if (b > target) break;  // boundaries only move away from here on
  }
  return best;
}

NiahPrompt build_prompt(const NiahProtocol& p, const NiahTrial& trial) {
  NiahPrompt out;
  out.filler_bytes = filler_bytes(p, trial.context);
  const std::string filler = filler_text(p, trial.seed, out.filler_bytes);
  const int64_t b = needle_offset(filler, trial.depth);
  const std::string text = filler.substr(0, static_cast<size_t>(b)) + needle_text(p, trial.digit) +
                           filler.substr(static_cast<size_t>(b)) + p.question;
  if (p.bos) out.tokens.push_back(data::kBos);
  const std::vector<int64_t> bytes = data::encode(text);
  out.tokens.insert(out.tokens.end(), bytes.begin(), bytes.end());
  out.needle_start = (p.bos ? 1 : 0) + b;
  return out;
}

}  // namespace lighthouse::eval
