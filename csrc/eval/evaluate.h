/*
 * Evaluation jobs on checkpoints, as `lighthouse eval` runs them (and as
 * other tools call them): load, evaluate, write JSON and PNG into a
 * directory.
 *
 *   niah: <out>/niah.json, <out>/niah.png
 *   loss: <out>/loss.json ({"format": "lighthouse-loss", "results": [one
 *         per checkpoint]}), <out>/loss_by_position.png (one line each)
 *
 * A plot that cannot be drawn (python3 or matplotlib missing) is a warning
 * on stderr; the JSON is written first either way.
 */
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "eval/loss.h"
#include "eval/model_adapter.h"
#include "eval/niah.h"

namespace lighthouse::eval {

struct NiahJob {
  std::string checkpoint;              // checkpoint, run directory, or a root holding one run
  std::string attention;               // "" (as trained at that step), "dense" or "lighthouse"
  DeviceOptions device;
  std::vector<int64_t> contexts;       // empty: default_contexts(train.seq_len)
  std::vector<int64_t> depths;         // empty: default_depths()
  int64_t trials = 20;
  uint64_t seed = 0;
  int64_t batch = 0;                   // 0: automatic (NiahOptions)
  std::string out_dir;
  std::string save_prompts;  // if set: every prompt's token ids as safetensors, one int64 tensor
                             // "context_<C>" [depths * trials, C] per context (cells in order)
  bool plot = true;
  bool quiet = false;
};

struct LossJob {
  std::vector<std::string> checkpoints;  // each as in NiahJob
  std::string attention;
  DeviceOptions device;
  int64_t seq_len = 0;     // 0: each checkpoint's train.seq_len
  int64_t batch = 0;       // windows per model call; 0: max(1, 65536 / seq_len)
  int64_t windows = 0;     // 0: every validation window
  std::string data_dir;    // "": each checkpoint's data.dir
  std::string out_dir;
  bool plot = true;
  bool quiet = false;
};

// The protocol of a NIAH job for a model trained at `train_len` (defaults
// filled in). With Lighthouse attention, contexts below the op's minimum
// length `min_len` are an error if given, and left out of the defaults.
NiahProtocol niah_protocol(const NiahJob& job, int64_t train_len, bool lighthouse, int64_t min_len);

NiahResult run_niah_job(const NiahJob& job);
std::vector<LossResult> run_loss_job(const LossJob& job);

// Writes `j` to `path` atomically (pretty-printed).
void write_json(const std::string& path, const Json& j);

}  // namespace lighthouse::eval
