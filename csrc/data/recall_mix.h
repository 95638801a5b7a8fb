/*
 * Synthetic retrieval documents for the training mix (issue 10, "retrieval
 * at small scale"): a small share of documents in which a fact stated once
 * is asked for at the end, so that a small byte-level model can learn to
 * copy from far back in its context. Torch-free, deterministic from the
 * seed (generator "lighthouse-recall-v1"; draws from data::SplitMix64).
 *
 * Kept disjoint from the evaluation's passkey prompts (shared/EVAL.md
 * section 3, csrc/eval/niah_prompt.h), so that the test measures a skill,
 * not a memorised template:
 *  - filler: sentences of pronounceable lower-case words (consonant-vowel
 *    syllables), a capital letter only at a sentence start, ". " between
 *    sentences, never a digit; the evaluation's filler is random
 *    letter-and-digit strings without punctuation;
 *  - the fact and its question: the templates below; none says "passkey",
 *    "Remember" or "What is the ..."; the answer is a number of 1 to 6
 *    digits (the evaluation's is one digit after "The passkey is ").
 * A document: filler, the fact at a uniform depth, filler, the question and
 * the answer, then "\n". Its length is log-uniform in [min_bytes, max_bytes].
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lighthouse::data {

constexpr const char* kRecallGenerator = "lighthouse-recall-v1";

struct RecallTemplate {
  const char* fact;      // "{w}": a made-up name, "{k}": the number
  const char* question;  // ends right before the number
};
const std::vector<RecallTemplate>& recall_templates();

struct RecallDocument {
  std::string text;
  std::string key;         // the number asked for (the text ends with it + "\n")
  size_t fact_offset = 0;  // byte offset of the fact in text
  int template_index = 0;
};

// Document `index` of the mix for `seed`; about `bytes` long (at least the
// fact, the question and a few filler words).
RecallDocument recall_document(uint64_t seed, uint64_t index, int64_t min_bytes, int64_t max_bytes);

}  // namespace lighthouse::data
