// The passkey prompts (TESTING.md item 17, torch-free): exact length, the
// needle on a word boundary at the requested depth, the filler's shape,
// digits balanced in every cell, distinct seeds, determinism, and errors
// that name the value. The checks re-derive what they test from the
// prompt's text, not from the generator's internals.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "data/tokenizer.h"
#include "eval/niah_prompt.h"

namespace lighthouse::eval {
namespace {

NiahProtocol protocol() {
  NiahProtocol p;
  p.contexts = {200, 257, 1000, 4096, 4097};
  p.depths = {0, 7, 10, 33, 50, 99, 100};
  p.trials = 13;
  p.seed = 42;
  return p;
}

// Splits a prompt into its parts by searching the text, independently of
// build_prompt's own offsets.
struct Parts {
  std::string before, needle, after, question;
};

Parts split(const NiahProtocol& p, const NiahPrompt& prompt, int digit) {
  EXPECT_EQ(prompt.tokens.front(), data::kBos);
  for (size_t i = 1; i < prompt.tokens.size(); ++i) EXPECT_LT(prompt.tokens[i], 256) << "position " << i;
  const std::string text = data::decode(std::vector<int64_t>(prompt.tokens.begin() + 1, prompt.tokens.end()));
  const std::string needle = needle_text(p, digit);
  const size_t at = text.find(needle);
  EXPECT_NE(at, std::string::npos);
  EXPECT_EQ(text.find(needle, at + 1), std::string::npos) << "the needle occurs twice";
  Parts parts;
  parts.before = text.substr(0, at);
  parts.needle = needle;
  const std::string rest = text.substr(at + needle.size());
  EXPECT_GE(rest.size(), p.question.size());
  parts.after = rest.substr(0, rest.size() - p.question.size());
  parts.question = rest.substr(rest.size() - p.question.size());
  return parts;
}

TEST(NiahPrompt, EveryPromptHasExactlyTheContextLengthAndEndsWithTheQuestion) {
  const NiahProtocol p = protocol();
  validate(p);
  for (const int64_t c : p.contexts) {
    for (const int64_t d : p.depths) {
      for (const NiahTrial& t : cell_trials(p, c, d)) {
        const NiahPrompt prompt = build_prompt(p, t);
        ASSERT_EQ(static_cast<int64_t>(prompt.tokens.size()), c) << "context " << c << " depth " << d;
        const Parts parts = split(p, prompt, t.digit);
        EXPECT_EQ(parts.question, p.question);
        EXPECT_EQ(parts.needle, "The passkey is " + std::to_string(t.digit) + ". Remember it. " +
                                    std::to_string(t.digit) + " is the passkey. ");
      }
    }
  }
}

TEST(NiahPrompt, NeedleSitsOnTheWordBoundaryNearestItsDepth) {
  const NiahProtocol p = protocol();
  for (const int64_t c : p.contexts) {
    for (const int64_t d : p.depths) {
      for (const NiahTrial& t : cell_trials(p, c, d)) {
        const NiahPrompt prompt = build_prompt(p, t);
        const Parts parts = split(p, prompt, t.digit);
        const std::string filler = parts.before + parts.after;
        const double F = static_cast<double>(filler.size());
        const double want = d / 100.0 * F;
        const double b = static_cast<double>(parts.before.size());
        ASSERT_EQ(prompt.needle_start, 1 + static_cast<int64_t>(parts.before.size()));
        // On a boundary: at the start or right after a space.
        ASSERT_TRUE(parts.before.empty() || parts.before.back() == ' ') << "context " << c << " depth " << d;
        // No boundary is nearer to depth% of the filler (slack 1: depth% is rounded to a whole byte,
        // which moves it by at most 0.5 for both distances).
        for (size_t i = 0; i <= filler.size(); ++i) {
          if (i > 0 && filler[i - 1] != ' ') continue;
          ASSERT_LE(std::fabs(b - want), std::fabs(static_cast<double>(i) - want) + 1.0)
              << "boundary " << i << " is nearer to " << want << " than the needle at " << b;
        }
        if (d == 0) EXPECT_EQ(b, 0);
        if (d == 100) EXPECT_TRUE(parts.after.empty());
      }
    }
  }
}

TEST(NiahPrompt, FillerIsWordsOfTheAlphabetSeparatedBySingleSpaces) {
  NiahProtocol p = protocol();
  std::map<size_t, int> lengths;
  std::set<char> chars;
  for (const int64_t c : {200, 4096}) {
    for (const NiahTrial& t : cell_trials(p, c, 50)) {
      const Parts parts = split(p, build_prompt(p, t), t.digit);
      const std::string filler = parts.before + parts.after;
      ASSERT_EQ(static_cast<int64_t>(filler.size()), filler_bytes(p, c));
      ASSERT_EQ(filler.back(), ' ');
      size_t start = 0;
      std::vector<std::string> words;
      for (size_t i = 0; i < filler.size(); ++i) {
        if (filler[i] != ' ') continue;
        words.push_back(filler.substr(start, i - start));
        start = i + 1;
      }
      for (size_t w = 0; w < words.size(); ++w) {
        const size_t n = words[w].size();
        ASSERT_GE(n, static_cast<size_t>(p.word_min)) << "an empty or short word: double space";
        ASSERT_LE(n, static_cast<size_t>(w + 1 == words.size() ? p.word_max + p.word_min : p.word_max));
        if (w + 1 < words.size()) ++lengths[n];
        for (const char ch : words[w]) {
          ASSERT_NE(p.alphabet.find(ch), std::string::npos) << "'" << ch << "' is not in the alphabet";
          chars.insert(ch);
        }
      }
    }
  }
  // Every word length and (nearly) every character occurs: it looks like random words.
  EXPECT_EQ(lengths.size(), static_cast<size_t>(p.word_max - p.word_min + 1));
  EXPECT_GE(chars.size(), p.alphabet.size() - 2);
}

TEST(NiahPrompt, DigitsAreBalancedInEveryCellAndSeedsAreDistinct) {
  for (const int64_t trials : {10, 20, 23, 7}) {
    NiahProtocol p = protocol();
    p.trials = trials;
    std::set<uint64_t> seeds;
    std::set<std::vector<int>> orders;
    for (const int64_t c : p.contexts) {
      for (const int64_t d : p.depths) {
        const std::vector<NiahTrial> ts = cell_trials(p, c, d);
        ASSERT_EQ(static_cast<int64_t>(ts.size()), trials);
        int count[10] = {};
        std::vector<int> order;
        for (const NiahTrial& t : ts) {
          ASSERT_GE(t.digit, 0);
          ASSERT_LE(t.digit, 9);
          ++count[t.digit];
          order.push_back(t.digit);
          seeds.insert(t.seed);
          EXPECT_EQ(t.context, c);
          EXPECT_EQ(t.depth, d);
        }
        for (int k = 0; k < 10; ++k) {
          EXPECT_GE(count[k], trials / 10) << "digit " << k << ", " << trials << " trials";
          EXPECT_LE(count[k], (trials + 9) / 10) << "digit " << k << ", " << trials << " trials";
        }
        orders.insert(order);
      }
    }
    const size_t cells = p.contexts.size() * p.depths.size();
    EXPECT_EQ(seeds.size(), cells * static_cast<size_t>(trials)) << "every trial has its own seed";
    EXPECT_GT(orders.size(), cells / 2) << "cells draw their own digit order";
  }
}

TEST(NiahPrompt, SameProtocolSamePromptsAndTheSeedChangesThem) {
  NiahProtocol p = protocol();
  NiahProtocol q = p;
  const NiahTrial t = cell_trials(p, 1000, 50)[3];
  EXPECT_EQ(build_prompt(p, t).tokens, build_prompt(q, cell_trials(q, 1000, 50)[3]).tokens);
  q.seed = p.seed + 1;
  EXPECT_NE(build_prompt(p, t).tokens, build_prompt(q, cell_trials(q, 1000, 50)[3]).tokens);
}

TEST(NiahPrompt, DefaultsFollowTheProtocol) {
  EXPECT_EQ(default_depths(), (std::vector<int64_t>{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}));
  EXPECT_EQ(default_contexts(32768), (std::vector<int64_t>{4096, 8192, 16384, 32768}));
  EXPECT_EQ(default_contexts(98304), (std::vector<int64_t>{4096, 8192, 16384, 32768, 65536, 98304}));
  EXPECT_EQ(default_contexts(4096), (std::vector<int64_t>{4096}));
  EXPECT_EQ(default_contexts(1024), (std::vector<int64_t>{1024}));
}

void expect_error(const NiahProtocol& p, const std::string& fragment) {
  try {
    validate(p);
    ADD_FAILURE() << "no error; expected one mentioning '" << fragment << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(NiahPrompt, BadProtocolsAreRefusedNamingTheValue) {
  NiahProtocol p = protocol();
  const int64_t smallest = 1 + static_cast<int64_t>(needle_text(p, 0).size() + p.question.size()) + p.word_min + 1;
  p.contexts = {smallest};
  validate(p);  // the smallest context that fits is accepted
  EXPECT_EQ(build_prompt(p, cell_trials(p, smallest, 100)[0]).tokens.size(), static_cast<size_t>(smallest));
  p.contexts = {smallest - 1};
  expect_error(p, "context " + std::to_string(smallest - 1) + " is too short");
  expect_error(p, ">= " + std::to_string(smallest));
  p = protocol();
  p.depths = {0, 101};
  expect_error(p, "depth 101");
  p = protocol();
  p.contexts = {512, 512};
  expect_error(p, "context 512 is given twice");
  p = protocol();
  p.needle = "The passkey is 7. ";
  expect_error(p, "{d}");
  p = protocol();
  p.trials = 0;
  expect_error(p, "trials must be >= 1, got 0");
  p = protocol();
  p.alphabet = "ab c";
  expect_error(p, "letters and digits");
  p = protocol();
  p.question = "What is the passkey?";
  expect_error(p, "must end with a space");
}

}  // namespace
}  // namespace lighthouse::eval
