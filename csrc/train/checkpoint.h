/*
 * Training checkpoints: one directory per step,
 *
 *   <run_dir>/checkpoints/step_000060/
 *     model.safetensors      fp32 weights, Hugging Face names
 *     optimizer.safetensors  AdamW moments: exp_avg.<name>, exp_avg_sq.<name>
 *     state.json             step, optimizer update count, per process
 *                            ("ranks": data position (loader state) and RNG
 *                            states), the full config (TOML), and the size
 *                            and sha256 of each file
 *
 * state.json version 2 holds "ranks": [{"rank": r, "loader_state": ...,
 * "rng": {"cpu": ..., "cuda": ...}}, ...], one entry per process of the run
 * (one for a single-process run); version 1 (one loader state and one RNG
 * state at the top level) is still read, as a single rank.
 *
 * Where checkpoints are found (resolve_checkpoint): `lighthouse train
 * --run-dir R` writes one directory per arm, R/two-stage (or R/lighthouse)
 * and, with the dense baseline, R/dense; each holds checkpoints/step_N. Every
 * command that reads a checkpoint accepts R, an arm directory R/<arm>, its
 * checkpoints/ directory or one checkpoint directory.
 *
 * Invariants:
 * - A checkpoint directory exists under its final name only when complete:
 *   it is written under a hidden temporary name and renamed; an interrupted
 *   save leaves the previous checkpoints untouched (the temporary directory
 *   is ignored and removed by the next save).
 * - Loading verifies every file against state.json (present, size, sha256)
 *   and the config against the model it is loaded into; any mismatch is an
 *   error that says what is wrong (truncated, corrupted, other shape, other
 *   vocabulary) instead of a crash or silently wrong weights.
 * - Saving then loading restores the training state bit for bit.
 */
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"

namespace lighthouse::train {

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The state one process of a run resumes from.
struct RankState {
  nlohmann::json loader_state;  // data::Loader::state()
  std::string cpu_rng;          // hex of the CPU generator state
  std::string cuda_rng;         // hex of the CUDA generator state ("" on CPU runs)
};

struct Checkpoint {
  std::string path;             // the directory (set by save/load)
  int64_t step = 0;             // training steps completed
  int64_t optimizer_steps = 0;  // AdamW updates taken (fewer if steps were skipped)
  int64_t skipped_steps = 0;
  std::vector<RankState> ranks;  // one per process, index = rank (save needs at least one)
  config::Config config;
  std::map<std::string, at::Tensor> weights;    // CPU tensors
  std::map<std::string, at::Tensor> optimizer;  // CPU tensors
};

// Called with the name of each stage of a save ("tempdir", "model",
// "optimizer", "state", "rename", "prune"); tests throw from it to simulate
// a crash at that point.
using SaveHook = std::function<void(const std::string& stage)>;

// Writes `ckpt` as <root>/step_<step> and keeps the newest `keep`
// checkpoints of `root`. Returns the directory.
std::string save_checkpoint(const std::string& root, const Checkpoint& ckpt, int64_t keep, const SaveHook& hook = {});

// Reads and verifies a checkpoint directory (the optimizer file only if
// `with_optimizer`). Throws CheckpointError.
Checkpoint load_checkpoint(const std::string& dir, bool with_optimizer = true);

// The config stored in a checkpoint (reads state.json only; no torch).
config::Config checkpoint_config(const std::string& dir);

// ranks[rank] of a run with `world` processes; throws CheckpointError if the
// checkpoint was written by another number of processes.
const RankState& rank_state(const Checkpoint& ckpt, int64_t rank, int64_t world);

// A checkpoint directory, a run (arm) directory (uses its checkpoints/) or a
// checkpoints directory -> the newest complete checkpoint; "" if none.
std::string latest_checkpoint(const std::string& path);

// The arms of a directory given to `lighthouse train --run-dir`: its
// subdirectories that hold a complete checkpoint (checkpoints/step_N),
// sorted by name, e.g. {"dense", "two-stage"}. Empty if it has none.
std::vector<std::string> recipe_arms(const std::string& dir);

// What a checkpoint path names.
struct CheckpointRef {
  std::string checkpoint;               // the newest complete checkpoint directory
  std::string run_dir;                  // its run (arm) directory: <run_dir>/checkpoints/step_N
  std::string arm;                      // the arm taken when `path` held arms ("" otherwise)
  std::vector<std::string> other_arms;  // the arms of `path` not taken
};

// Resolves `path`, one of
//   - a checkpoint directory (holds state.json),
//   - a checkpoints directory (holds step_N directories),
//   - a run (arm) directory (holds checkpoints/),
//   - a directory given to `lighthouse train --run-dir` (holds arms).
// For a directory with arms: `arm` if given (else CheckpointError naming
// the arms present); without `arm`, the only arm, or with a dense baseline
// the recipe's main arm (the one that is not "dense"); several main arms
// are an error asking for one. `arm` with any other form must be the name
// of the run directory. Throws CheckpointError saying what was looked for.
CheckpointRef resolve_checkpoint(const std::string& path, const std::string& arm = "");

// One line for commands that took an arm: "" if `ref.arm` is empty, else
// e.g. "arm two-stage of runs/tiny (also there: dense; choose with --arm)".
std::string describe_arm_choice(const CheckpointRef& ref, const std::string& path);

// Removes the checkpoints of `root` whose step is above `step` (a resumed
// run abandons them).
void remove_checkpoints_after(const std::string& root, int64_t step);

// The run directory a checkpoint belongs to (<run_dir>/checkpoints/step_N).
std::string run_dir_of(const std::string& checkpoint_dir);

// Throws CheckpointError if a model trained with `saved` cannot be loaded
// into one built from `wanted` (shape, vocabulary, RoPE, norm), naming each
// differing key. Attention modes, geometry and training keys may differ.
void check_compatible(const config::ModelConfig& saved, const config::ModelConfig& wanted, const std::string& what);

}  // namespace lighthouse::train
