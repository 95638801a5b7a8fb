/*
 * The passkey prompts of the needle-in-a-haystack test (shared/EVAL.md
 * section 3), torch-free: pure text and seeds, so tests can check them
 * exactly and anyone can rebuild them from the JSON the harness writes.
 *
 * A prompt of context length C (tokens, byte tokenizer bytes-v1):
 *
 *   [BOS] filler[0:b] needle(digit) filler[b:F] question
 *
 * - filler: F bytes of random "words" over `alphabet` (letters and digits),
 *   each followed by one space, so it ends with a space. F = C - bos -
 *   |needle| - |question|: the prompt is exactly C tokens.
 * - needle: `needle` with every "{d}" replaced by the passkey digit; it ends
 *   with a space, so the filler after it starts on a word boundary.
 * - b: the word boundary (0, or a position right after a space; F is one)
 *   nearest to depth% of F (ties to the earlier one): depth 0 puts the
 *   needle right after BOS, depth 100 right before the question.
 * - question: ends with "The passkey is ", so the next token is the digit.
 *
 * Generator (lighthouse-niah-v1), all draws from data::SplitMix64 with its
 * unbiased below(n):
 * - cell (C, depth): rng = SplitMix64(mix_seed(seed, kNiahStream, C * 101 +
 *   depth)); digits = [t % 10 for t in 0..T-1], Fisher-Yates shuffled with
 *   rng (data::shuffle); then trial t's seed = rng.next(), t = 0..T-1.
 *   Every digit occurs floor(T/10) or ceil(T/10) times in every cell.
 * - filler of a trial: rng = SplitMix64(trial seed); while r = F - |filler|
 *   > 0: L = word_min + below(word_max - word_min + 1); if r - (L + 1) <
 *   word_min + 1, L = r - 1 (the last word takes the rest); then L
 *   characters alphabet[below(|alphabet|)] and a space.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lighthouse::eval {

constexpr const char* kNiahGenerator = "lighthouse-niah-v1";
constexpr uint64_t kNiahStream = 0x6e696168;  // "niah", the data::mix_seed stream of the cells
constexpr int64_t kFirstDigitToken = '0';     // byte tokens '0'..'9' = 48..57

struct NiahProtocol {
  std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  int64_t word_min = 2;  // filler word length in bytes (the last word of a filler may differ)
  int64_t word_max = 8;
  std::string needle = "The passkey is {d}. Remember it. {d} is the passkey. ";
  std::string question = "What is the passkey? The passkey is ";
  bool bos = true;  // the prompt starts with BOS, as every training document does
  uint64_t seed = 0;
  std::vector<int64_t> contexts;  // prompt lengths in tokens
  std::vector<int64_t> depths;    // percent, 0..100
  int64_t trials = 20;            // per (context, depth) cell
};

// One prompt of the grid.
struct NiahTrial {
  int64_t context = 0;
  int64_t depth = 0;
  int64_t index = 0;  // trial number within its cell
  uint64_t seed = 0;  // of its filler
  int digit = 0;      // the passkey
};

struct NiahPrompt {
  std::vector<int64_t> tokens;  // exactly context tokens
  int64_t needle_start = 0;     // token index of the needle's first byte
  int64_t filler_bytes = 0;     // F
};

// The default depths 0, 10, ..., 100.
std::vector<int64_t> default_depths();
// The default contexts for a model trained at `train_len`: powers of two
// from 4096 up to train_len, plus train_len itself (only train_len if it is
// below 4096).
std::vector<int64_t> default_contexts(int64_t train_len);

// Throws std::invalid_argument naming the offending value: empty or
// duplicate contexts/depths, a depth outside 0..100, trials < 1, an empty or
// non-alphanumeric alphabet, word lengths outside 1 <= min <= max, a needle
// without "{d}", a needle not ending in a space, a question not ending in
// "is ", non-ASCII text, or a context too short for BOS + needle + question
// + one word (names the smallest context that fits).
void validate(const NiahProtocol& p);

// The needle with its digit filled in.
std::string needle_text(const NiahProtocol& p, int digit);
// Filler bytes F of a prompt of `context` tokens.
int64_t filler_bytes(const NiahProtocol& p, int64_t context);
// The trials of cell (context, depth), in order (see the file comment).
std::vector<NiahTrial> cell_trials(const NiahProtocol& p, int64_t context, int64_t depth);
// The filler text of a trial (F bytes).
std::string filler_text(const NiahProtocol& p, uint64_t trial_seed, int64_t bytes);
// The needle's byte offset b in a filler for `depth` (see the file comment).
int64_t needle_offset(const std::string& filler, int64_t depth);
// The prompt of a trial.
NiahPrompt build_prompt(const NiahProtocol& p, const NiahTrial& trial);

}  // namespace lighthouse::eval
