/*
 * Checkpoint directories: atomic save, verified load, pruning, and finding
 * the checkpoint a path names (checkpoint.h).
 *
 * Paths go through the POSIX helpers of io/files.h, never std::filesystem:
 * in a process where libtorch's exported copy of std::filesystem wins the
 * symbol lookup, remove_all of a non-empty directory calls a null function
 * pointer (docs/design.md, "std::filesystem and the torch wheel").
 */
#include "train/checkpoint.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

#include "io/files.h"
#include "io/safetensors_torch.h"

namespace lighthouse::train {
using Json = nlohmann::ordered_json;

namespace {

constexpr const char* kFormat = "lighthouse-checkpoint";
constexpr int kVersion = 2;  // 2: per-rank states ("ranks"); 1: one loader and RNG state, still read
constexpr const char* kPrefix = "step_";

std::string join(const std::string& dir, const std::string& name) {
  if (dir.empty()) return name;
  return dir.back() == '/' ? dir + name : dir + "/" + name;
}

// `path` without trailing slashes ("/" stays "/").
std::string trim_slashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// The directory above a path, lexically ("a/b/c" -> "a/b", "c" -> ".").
std::string parent_dir(const std::string& path) {
  const std::string p = trim_slashes(path);
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

int64_t file_bytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    throw CheckpointError("cannot stat " + path + ": " + std::strerror(errno));
  }
  return static_cast<int64_t>(st.st_size);
}

std::string step_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%06lld", kPrefix, static_cast<long long>(step));
  return buf;
}

// The step of a complete checkpoint directory name ("step_000060"), or -1.
int64_t parse_step_name(const std::string& name) {
  if (name.rfind(kPrefix, 0) != 0 || name.size() == std::string(kPrefix).size()) return -1;
  const std::string digits = name.substr(std::string(kPrefix).size());
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 15) return -1;
  return std::stoll(digits);
}

// The complete checkpoints (step_N directories with a state.json) of
// `root`, by step; empty if root is not a directory.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!io::is_directory(root)) return out;
  for (const std::string& name : io::list_dir(root)) {
    const int64_t step = parse_step_name(name);
    const std::string dir = join(root, name);
    if (step >= 0 && io::is_directory(dir) && io::is_regular_file(join(dir, "state.json"))) {
      out.emplace_back(step, dir);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

io::NamedTensors to_named(const std::map<std::string, at::Tensor>& m) {
  io::NamedTensors out;
  for (const auto& [name, t] : m) out.emplace_back(name, t.detach().to(at::kCPU).contiguous());
  return out;
}

std::map<std::string, at::Tensor> from_named(const io::NamedTensors& v) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : v) out[name] = t;
  return out;
}

Json file_entry(const std::string& path) {
  return Json{{"bytes", file_bytes(path)}, {"sha256", io::sha256_file(path)}};
}

// Checks one listed file: present, the recorded size, the recorded hash.
void verify_file(const std::string& dir, const std::string& name, const Json& entry) {
  const std::string p = join(dir, name);
  if (!io::is_regular_file(p)) {
    throw CheckpointError("checkpoint " + dir + " is incomplete: " + name + " is missing");
  }
  const auto want_bytes = entry.at("bytes").get<int64_t>();
  const int64_t have_bytes = file_bytes(p);
  if (have_bytes != want_bytes) {
    throw CheckpointError("checkpoint " + dir + ": " + name + " is " +
                          (have_bytes < want_bytes ? "truncated" : "corrupted") + " (" + std::to_string(have_bytes) +
                          " bytes, state.json records " + std::to_string(want_bytes) + ")");
  }
  const std::string have = io::sha256_file(p);
  const std::string want = entry.at("sha256").get<std::string>();
  if (have != want) {
    throw CheckpointError("checkpoint " + dir + ": " + name + " is corrupted (sha256 " + have +
                          ", state.json records " + want + ")");
  }
}

Json rank_json(int64_t rank, const RankState& r) {
  return Json{{"rank", rank}, {"loader_state", r.loader_state}, {"rng", {{"cpu", r.cpu_rng}, {"cuda", r.cuda_rng}}}};
}

RankState rank_from(const Json& j) {
  RankState r;
  r.loader_state = j.at("loader_state");
  r.cpu_rng = j.at("rng").at("cpu").get<std::string>();
  r.cuda_rng = j.at("rng").at("cuda").get<std::string>();
  return r;
}

}  // namespace

std::string save_checkpoint(const std::string& root, const Checkpoint& ckpt, int64_t keep, const SaveHook& hook) {
  const auto stage = [&](const char* name) {
    if (hook) hook(name);
  };
  if (ckpt.ranks.empty()) throw CheckpointError("save_checkpoint: the checkpoint holds no rank state");
  io::make_dirs(root);
  // Leftovers of interrupted saves (this or an earlier process).
  for (const std::string& n : io::list_dir(root)) {
    if (n.rfind(".tmp-", 0) == 0 || n.rfind(".old-", 0) == 0) io::remove_tree(join(root, n));
  }
  const std::string name = step_name(ckpt.step);
  const std::string tmp = join(root, ".tmp-" + name + "-" + std::to_string(getpid()));
  const std::string final_dir = join(root, name);
  io::make_dirs(tmp);
  stage("tempdir");

  const Json meta_info = {{"format", kFormat}, {"step", ckpt.step}};
  io::save_safetensors(join(tmp, "model.safetensors"), to_named(ckpt.weights),
                       {{"format", "pt"}, {"lighthouse", meta_info.dump()}});
  stage("model");
  io::save_safetensors(join(tmp, "optimizer.safetensors"), to_named(ckpt.optimizer),
                       {{"format", "pt"}, {"lighthouse", meta_info.dump()}});
  stage("optimizer");

  Json ranks = Json::array();
  for (size_t r = 0; r < ckpt.ranks.size(); ++r) ranks.push_back(rank_json(static_cast<int64_t>(r), ckpt.ranks[r]));
  Json state = {
      {"format", kFormat},
      {"version", kVersion},
      {"step", ckpt.step},
      {"optimizer_steps", ckpt.optimizer_steps},
      {"skipped_steps", ckpt.skipped_steps},
      {"ranks", ranks},
      {"config", config::to_toml(ckpt.config)},
      {"files",
       {{"model.safetensors", file_entry(join(tmp, "model.safetensors"))},
        {"optimizer.safetensors", file_entry(join(tmp, "optimizer.safetensors"))}}},
  };
  io::write_file_atomic(join(tmp, "state.json"), state.dump(2) + "\n");
  stage("state");

  // A checkpoint of the same step (a run resumed from an earlier step)
  // moves aside before the new one takes its name; the other checkpoints
  // stay usable throughout.
  const std::string old = join(root, ".old-" + name + "-" + std::to_string(getpid()));
  if (io::path_exists(final_dir)) io::rename_path(final_dir, old);
  io::rename_path(tmp, final_dir);
  io::fsync_dir(root);
  stage("rename");
  io::remove_tree(old);

  const auto all = list_checkpoints(root);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) io::remove_tree(all[i].second);
  stage("prune");
  return final_dir;
}

namespace {

Json read_state(const std::string& dir) {
  if (!io::is_directory(dir)) {
    throw CheckpointError("checkpoint " + dir + " does not exist (or is not a directory)");
  }
  if (!io::is_regular_file(join(dir, "state.json"))) {
    throw CheckpointError("checkpoint " + dir + " is incomplete: state.json is missing");
  }
  Json state;
  try {
    state = Json::parse(io::read_file(join(dir, "state.json")));
    if (state.at("format").get<std::string>() != kFormat) {
      throw CheckpointError("checkpoint " + dir + ": state.json is not a " + kFormat);
    }
    const int version = state.at("version").get<int>();
    if (version < 1 || version > kVersion) {
      throw CheckpointError("checkpoint " + dir + ": format version " + std::to_string(version) +
                            ", this program reads versions 1 to " + std::to_string(kVersion));
    }
  } catch (const Json::exception& e) {
    throw CheckpointError("checkpoint " + dir + ": state.json is corrupted (" + e.what() + ")");
  }
  return state;
}

config::Config config_of(const Json& state, const std::string& dir) {
  try {
    return config::parse_toml(state.at("config").get<std::string>(), dir + "/state.json config");
  } catch (const Json::exception& e) {
    throw CheckpointError("checkpoint " + dir + ": state.json has no config (" + e.what() + ")");
  } catch (const config::ConfigError& e) {
    throw CheckpointError("checkpoint " + dir + ": its config is invalid: " + e.what());
  }
}

}  // namespace

config::Config checkpoint_config(const std::string& dir) { return config_of(read_state(dir), dir); }

Checkpoint load_checkpoint(const std::string& dir, bool with_optimizer) {
  const Json state = read_state(dir);
  Checkpoint c;
  c.path = dir;
  c.config = config_of(state, dir);
  try {
    c.step = state.at("step").get<int64_t>();
    c.optimizer_steps = state.at("optimizer_steps").get<int64_t>();
    c.skipped_steps = state.at("skipped_steps").get<int64_t>();
    if (state.at("version").get<int>() == 1) {
      c.ranks.push_back(rank_from(state));  // one process: the state at the top level
    } else {
      const Json& ranks = state.at("ranks");
      for (size_t r = 0; r < ranks.size(); ++r) {
        if (ranks[r].at("rank").get<int64_t>() != static_cast<int64_t>(r)) {
          throw CheckpointError("checkpoint " + dir + ": state.json lists rank " + ranks[r].at("rank").dump() +
                                " at position " + std::to_string(r));
        }
        c.ranks.push_back(rank_from(ranks[r]));
      }
      if (c.ranks.empty()) throw CheckpointError("checkpoint " + dir + ": state.json holds no rank state");
    }
    verify_file(dir, "model.safetensors", state.at("files").at("model.safetensors"));
    if (with_optimizer) verify_file(dir, "optimizer.safetensors", state.at("files").at("optimizer.safetensors"));
  } catch (const Json::exception& e) {
    throw CheckpointError("checkpoint " + dir + ": state.json is corrupted or incomplete (" + e.what() + ")");
  }
  try {
    c.weights = from_named(io::load_safetensors(join(dir, "model.safetensors"), nullptr));
    if (with_optimizer) c.optimizer = from_named(io::load_safetensors(join(dir, "optimizer.safetensors"), nullptr));
  } catch (const std::exception& e) {
    // Hashes matched, so the files are as written: a bug or a foreign file.
    throw CheckpointError("checkpoint " + dir + ": cannot read its safetensors files: " + e.what());
  }
  return c;
}

const RankState& rank_state(const Checkpoint& ckpt, int64_t rank, int64_t world) {
  if (static_cast<int64_t>(ckpt.ranks.size()) != world || rank < 0 || rank >= world) {
    throw CheckpointError("checkpoint " + ckpt.path + " holds the state of " + std::to_string(ckpt.ranks.size()) +
                          " process(es); this run has " + std::to_string(world) + " (rank " + std::to_string(rank) +
                          "): resume with the same number of processes");
  }
  return ckpt.ranks[static_cast<size_t>(rank)];
}

std::string latest_checkpoint(const std::string& path) {
  if (io::is_regular_file(join(path, "state.json"))) return path;
  for (const std::string& root : {join(path, "checkpoints"), path}) {
    const auto all = list_checkpoints(root);
    if (!all.empty()) return all.back().second;
  }
  return "";
}

std::vector<std::string> recipe_arms(const std::string& dir) {
  std::vector<std::string> arms;
  if (!io::is_directory(dir)) return arms;
  for (const std::string& name : io::list_dir(dir)) {
    if (name == "checkpoints" || parse_step_name(name) >= 0) continue;  // a run or checkpoints directory's own
    if (!list_checkpoints(join(join(dir, name), "checkpoints")).empty()) arms.push_back(name);
  }
  return arms;  // list_dir sorts
}

CheckpointRef resolve_checkpoint(const std::string& path, const std::string& arm) {
  CheckpointRef ref;
  const std::string single = latest_checkpoint(path);
  if (!single.empty()) {
    ref.checkpoint = single;
    ref.run_dir = run_dir_of(single);
    if (!arm.empty() && io::base_name(ref.run_dir) != arm) {
      throw CheckpointError("--arm " + arm + ": " + path + " is the checkpoint of run " + ref.run_dir +
                            ", not of an arm named " + arm + " (give the directory that holds the arms)");
    }
    return ref;
  }
  const std::vector<std::string> arms = recipe_arms(path);
  if (arms.empty()) {
    throw CheckpointError("no complete checkpoint in " + path + " (looked for " + join(path, "state.json") + ", " +
                          join(path, "checkpoints/step_*") + ", " + join(path, "step_*") + " and " +
                          join(path, "<arm>/checkpoints/step_*") + ")");
  }
  std::string list;
  for (const auto& a : arms) list += (list.empty() ? "" : ", ") + a;
  if (!arm.empty()) {
    if (std::find(arms.begin(), arms.end(), arm) == arms.end()) {
      throw CheckpointError("--arm " + arm + ": " + path +
                            " has no arm of that name with a checkpoint (its arms: " + list + ")");
    }
    ref.arm = arm;
  } else if (arms.size() == 1) {
    ref.arm = arms[0];
  } else {
    std::vector<std::string> main;
    for (const auto& a : arms) {
      if (a != "dense") main.push_back(a);
    }
    if (main.size() != 1) {
      throw CheckpointError(path + " holds several runs (" + list + "): choose one with --arm NAME or give " +
                            join(path, "NAME"));
    }
    ref.arm = main[0];
  }
  for (const auto& a : arms) {
    if (a != ref.arm) ref.other_arms.push_back(a);
  }
  ref.run_dir = join(path, ref.arm);
  ref.checkpoint = latest_checkpoint(ref.run_dir);
  return ref;
}

std::string describe_arm_choice(const CheckpointRef& ref, const std::string& path) {
  if (ref.arm.empty()) return "";
  std::string s = "arm " + ref.arm + " of " + path;
  if (!ref.other_arms.empty()) {
    std::string list;
    for (const auto& a : ref.other_arms) list += (list.empty() ? "" : ", ") + a;
    s += " (also there: " + list + "; choose with --arm)";
  }
  return s;
}

void remove_checkpoints_after(const std::string& root, int64_t step) {
  for (const auto& [s, path] : list_checkpoints(root)) {
    if (s > step) io::remove_tree(path);
  }
}

std::string run_dir_of(const std::string& checkpoint_dir) { return parent_dir(parent_dir(checkpoint_dir)); }

void check_compatible(const config::ModelConfig& saved, const config::ModelConfig& wanted, const std::string& what) {
  std::vector<std::string> diffs;
  const auto cmp = [&](const char* key, auto a, auto b) {
    if (a != b) {
      std::ostringstream s;
      s << "model." << key << " = " << a << " in the checkpoint, " << b << " here";
      diffs.push_back(s.str());
    }
  };
  cmp("vocab_size", saved.vocab_size, wanted.vocab_size);
  cmp("d_model", saved.d_model, wanted.d_model);
  cmp("layers", saved.layers, wanted.layers);
  cmp("heads", saved.heads, wanted.heads);
  cmp("kv_heads", saved.kv_heads, wanted.kv_heads);
  cmp("head_dim", config::head_dim(saved), config::head_dim(wanted));
  cmp("ffn_hidden", saved.ffn_hidden, wanted.ffn_hidden);
  cmp("rope_theta", saved.rope_theta, wanted.rope_theta);
  cmp("norm_eps", saved.norm_eps, wanted.norm_eps);
  if (diffs.empty()) return;
  std::string msg = what + " does not match this model: ";
  for (size_t i = 0; i < diffs.size(); ++i) msg += (i ? "; " : "") + diffs[i];
  throw CheckpointError(msg + " (use the checkpoint's config, e.g. drop --preset/--config when resuming)");
}

}  // namespace lighthouse::train
