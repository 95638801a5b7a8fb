/*
 * The passkey test's grid, scoring and JSON (niah.h).
 */
#include "eval/niah.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "data/tokenizer.h"
#include "eval/progress.h"
#include "ops/checks.h"

namespace lighthouse::eval {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// First maximum of the ten digit logits and the passkey's softmax
// probability among them (in double).
void score(const float* digit_logits, int passkey, int* predicted, double* p) {
  int best = 0;
  for (int i = 1; i < 10; ++i) {
    if (digit_logits[i] > digit_logits[best]) best = i;
  }
  const double top = digit_logits[best];
  double sum = 0;
  for (int i = 0; i < 10; ++i) sum += std::exp(static_cast<double>(digit_logits[i]) - top);
  *predicted = best;
  *p = std::exp(static_cast<double>(digit_logits[passkey]) - top) / sum;
}

}  // namespace

NiahResult run_niah(NextTokenModel& model, const NiahProtocol& p, const NiahOptions& o) {
  validate(p);
  NiahResult res;
  res.protocol = p;
  const int64_t D = static_cast<int64_t>(p.depths.size()), T = p.trials;
  int64_t total_tokens = 0;
  for (const int64_t c : p.contexts) total_tokens += c * D * T;
  ProgressLine progress(o.quiet ? "" : o.label, total_tokens, "tok");
  int64_t done_tokens = 0;

  for (const int64_t context : p.contexts) {
    const size_t first_cell = res.cells.size();
    std::vector<NiahTrial> trials;
    for (const int64_t depth : p.depths) {
      NiahCell cell;
      cell.context = context;
      cell.depth = depth;
      cell.trials = T;
      res.cells.push_back(cell);
      const std::vector<NiahTrial> t = cell_trials(p, context, depth);
      trials.insert(trials.end(), t.begin(), t.end());
    }
    const int64_t batch = o.batch > 0 ? o.batch : std::max<int64_t>(1, 65536 / context);
    for (size_t start = 0; start < trials.size(); start += static_cast<size_t>(batch)) {
      const size_t n = std::min(trials.size() - start, static_cast<size_t>(batch));
      at::Tensor tokens = at::empty({static_cast<int64_t>(n), context}, at::TensorOptions().dtype(at::kLong));
      std::vector<int64_t> needle(n);
      for (size_t i = 0; i < n; ++i) {
        const NiahPrompt prompt = build_prompt(p, trials[start + i]);
        std::copy(prompt.tokens.begin(), prompt.tokens.end(), tokens.data_ptr<int64_t>() + i * context);
        needle[i] = prompt.needle_start;
      }
      const at::Tensor logits = model.last_logits(tokens);
      if (logits.dim() != 2 || logits.size(0) != static_cast<int64_t>(n) ||
          logits.size(1) < kFirstDigitToken + 10 || logits.scalar_type() != at::kFloat || !logits.device().is_cpu()) {
        throw std::runtime_error(detail::message("the model returned last-position logits ", logits.scalar_type(),
                                                 " ", logits.sizes(), " on ", logits.device(), " for ",
                                                 static_cast<int64_t>(n), " prompts; expected CPU float32 [",
                                                 static_cast<int64_t>(n), ", V >= 58]"));
      }
      const at::Tensor digits = logits.narrow(1, kFirstDigitToken, 10).contiguous();
      const float* d = digits.data_ptr<float>();
      for (size_t i = 0; i < n; ++i) {
        const NiahTrial& t = trials[start + i];
        for (int j = 0; j < 10; ++j) {
          if (!std::isfinite(d[i * 10 + j])) {
            throw std::runtime_error("non-finite digit logit at context " + str(t.context) + ", depth " +
                                     str(t.depth) + ", trial " + str(t.index));
          }
        }
        NiahCell& cell = res.cells[first_cell + static_cast<size_t>((start + i) / static_cast<size_t>(T))];
        int predicted = 0;
        double prob = 0;
        score(d + i * 10, t.digit, &predicted, &prob);
        cell.seeds.push_back(t.seed);
        cell.digits.push_back(t.digit);
        cell.predicted.push_back(predicted);
        cell.p_trials.push_back(prob);
        cell.needle_tokens.push_back(needle[i]);
        cell.correct += predicted == t.digit;
      }
      done_tokens += static_cast<int64_t>(n) * context;
      res.prompts += static_cast<int64_t>(n);
      progress.update(done_tokens, "context " + str(context));
    }
  }
  progress.finish();
  for (NiahCell& c : res.cells) {
    c.accuracy = static_cast<double>(c.correct) / static_cast<double>(c.trials);
    double s = 0;
    for (const double v : c.p_trials) s += v;
    c.p_correct = s / static_cast<double>(c.trials);
    res.mean_accuracy += c.accuracy;
    res.mean_p_correct += c.p_correct;
  }
  res.mean_accuracy /= static_cast<double>(res.cells.size());
  res.mean_p_correct /= static_cast<double>(res.cells.size());
  res.prompt_tokens = total_tokens;
  res.seconds = progress.seconds();
  return res;
}

Json niah_json(const NiahResult& r, const Json& meta) {
  const NiahProtocol& p = r.protocol;
  Json protocol = {{"generator", kNiahGenerator},
                   {"tokenizer", data::kTokenizerName},
                   {"bos", p.bos},
                   {"bos_token", data::kBos},
                   {"digit_tokens", {kFirstDigitToken, kFirstDigitToken + 9}},
                   {"alphabet", p.alphabet},
                   {"word_min", p.word_min},
                   {"word_max", p.word_max},
                   {"needle", p.needle},
                   {"question", p.question},
                   {"seed", p.seed},
                   {"seed_stream", kNiahStream},
                   {"contexts", p.contexts},
                   {"depths", p.depths},
                   {"trials", p.trials},
                   {"layout", "[BOS] filler[:b] needle filler[b:] question; see csrc/eval/niah_prompt.h"}};
  Json cells = Json::array();
  for (const NiahCell& c : r.cells) {
    cells.push_back({{"context", c.context},
                     {"depth", c.depth},
                     {"trials", c.trials},
                     {"correct", c.correct},
                     {"accuracy", c.accuracy},
                     {"p_correct", c.p_correct},
                     {"seeds", c.seeds},
                     {"digits", c.digits},
                     {"predicted", c.predicted},
                     {"p_correct_trials", c.p_trials},
                     {"needle_token", c.needle_tokens}});
  }
  return Json{{"format", "lighthouse-niah"},
              {"version", 1},
              {"model", meta},
              {"mean_accuracy", r.mean_accuracy},
              {"mean_p_correct", r.mean_p_correct},
              {"chance", 0.1},
              {"prompts", r.prompts},
              {"prompt_tokens", r.prompt_tokens},
              {"seconds", r.seconds},
              {"protocol", protocol},
              {"cells", cells}};
}

NiahProtocol protocol_from_json(const Json& j) {
  const Json& q = j.contains("protocol") ? j.at("protocol") : j;
  if (q.value("generator", "") != std::string(kNiahGenerator)) {
    throw std::invalid_argument("not a " + std::string(kNiahGenerator) + " protocol (generator '" +
                                q.value("generator", "") + "')");
  }
  NiahProtocol p;
  p.alphabet = q.at("alphabet").get<std::string>();
  p.word_min = q.at("word_min").get<int64_t>();
  p.word_max = q.at("word_max").get<int64_t>();
  p.needle = q.at("needle").get<std::string>();
  p.question = q.at("question").get<std::string>();
  p.bos = q.at("bos").get<bool>();
  p.seed = q.at("seed").get<uint64_t>();
  p.contexts = q.at("contexts").get<std::vector<int64_t>>();
  p.depths = q.at("depths").get<std::vector<int64_t>>();
  p.trials = q.at("trials").get<int64_t>();
  return p;
}

std::string niah_summary(const NiahResult& r) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "NIAH mean accuracy %.3f (p_correct %.3f; chance 0.100) over %zu contexts x %zu depths x %lld trials",
                r.mean_accuracy, r.mean_p_correct, r.protocol.contexts.size(), r.protocol.depths.size(),
                static_cast<long long>(r.protocol.trials));
  return buf;
}

}  // namespace lighthouse::eval
