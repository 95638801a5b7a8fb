/*
 * Checkpoint directories: atomic save, verified load, pruning (checkpoint.h).
 */
#include "train/checkpoint.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "io/files.h"
#include "io/safetensors_torch.h"

namespace lighthouse::train {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

constexpr const char* kFormat = "lighthouse-checkpoint";
constexpr int kVersion = 1;
constexpr const char* kPrefix = "step_";

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

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const int64_t step = parse_step_name(e.path().filename().string());
    if (step >= 0 && e.is_directory() && fs::exists(e.path() / "state.json")) out.emplace_back(step, e.path());
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

Json file_entry(const fs::path& p) {
  return Json{{"bytes", static_cast<int64_t>(fs::file_size(p))}, {"sha256", io::sha256_file(p.string())}};
}

// Checks one listed file: present, the recorded size, the recorded hash.
void verify_file(const fs::path& dir, const std::string& name, const Json& entry) {
  const fs::path p = dir / name;
  std::error_code ec;
  if (!fs::exists(p, ec)) {
    throw CheckpointError("checkpoint " + dir.string() + " is incomplete: " + name + " is missing");
  }
  const auto want_bytes = entry.at("bytes").get<int64_t>();
  const auto have_bytes = static_cast<int64_t>(fs::file_size(p));
  if (have_bytes != want_bytes) {
    throw CheckpointError("checkpoint " + dir.string() + ": " + name + " is " +
                          (have_bytes < want_bytes ? "truncated" : "corrupted") + " (" + std::to_string(have_bytes) +
                          " bytes, state.json records " + std::to_string(want_bytes) + ")");
  }
  const std::string have = io::sha256_file(p.string());
  const std::string want = entry.at("sha256").get<std::string>();
  if (have != want) {
    throw CheckpointError("checkpoint " + dir.string() + ": " + name + " is corrupted (sha256 " + have +
                          ", state.json records " + want + ")");
  }
}

}  // namespace

std::string save_checkpoint(const std::string& root_str, const Checkpoint& ckpt, int64_t keep, const SaveHook& hook) {
  const auto stage = [&](const char* name) {
    if (hook) hook(name);
  };
  const fs::path root(root_str);
  fs::create_directories(root);
  // Leftovers of interrupted saves (this or an earlier process).
  for (const auto& e : fs::directory_iterator(root)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(".tmp-", 0) == 0 || n.rfind(".old-", 0) == 0) fs::remove_all(e.path());
  }
  const std::string name = step_name(ckpt.step);
  const fs::path tmp = root / (".tmp-" + name + "-" + std::to_string(getpid()));
  const fs::path final_dir = root / name;
  fs::create_directories(tmp);
  stage("tempdir");

  const Json meta_info = {{"format", kFormat}, {"step", ckpt.step}};
  io::save_safetensors((tmp / "model.safetensors").string(), to_named(ckpt.weights),
                       {{"format", "pt"}, {"lighthouse", meta_info.dump()}});
  stage("model");
  io::save_safetensors((tmp / "optimizer.safetensors").string(), to_named(ckpt.optimizer),
                       {{"format", "pt"}, {"lighthouse", meta_info.dump()}});
  stage("optimizer");

  Json state = {
      {"format", kFormat},
      {"version", kVersion},
      {"step", ckpt.step},
      {"optimizer_steps", ckpt.optimizer_steps},
      {"skipped_steps", ckpt.skipped_steps},
      {"loader_state", ckpt.loader_state},
      {"rng", {{"cpu", ckpt.cpu_rng}, {"cuda", ckpt.cuda_rng}}},
      {"config", config::to_toml(ckpt.config)},
      {"files",
       {{"model.safetensors", file_entry(tmp / "model.safetensors")},
        {"optimizer.safetensors", file_entry(tmp / "optimizer.safetensors")}}},
  };
  io::write_file_atomic((tmp / "state.json").string(), state.dump(2) + "\n");
  stage("state");

  // A checkpoint of the same step (a run resumed from an earlier step)
  // moves aside before the new one takes its name; the other checkpoints
  // stay usable throughout.
  const fs::path old = root / (".old-" + name + "-" + std::to_string(getpid()));
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  stage("rename");
  if (fs::exists(old)) fs::remove_all(old);

  const auto all = list_checkpoints(root);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) fs::remove_all(all[i].second);
  stage("prune");
  return final_dir.string();
}

namespace {

Json read_state(const std::string& dir_str) {
  const fs::path dir(dir_str);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw CheckpointError("checkpoint " + dir_str + " does not exist (or is not a directory)");
  }
  if (!fs::exists(dir / "state.json")) {
    throw CheckpointError("checkpoint " + dir_str + " is incomplete: state.json is missing");
  }
  Json state;
  try {
    state = Json::parse(io::read_file((dir / "state.json").string()));
    if (state.at("format").get<std::string>() != kFormat) {
      throw CheckpointError("checkpoint " + dir_str + ": state.json is not a " + kFormat);
    }
    const int version = state.at("version").get<int>();
    if (version != kVersion) {
      throw CheckpointError("checkpoint " + dir_str + ": format version " + std::to_string(version) +
                            ", this program reads version " + std::to_string(kVersion));
    }
  } catch (const Json::exception& e) {
    throw CheckpointError("checkpoint " + dir_str + ": state.json is corrupted (" + e.what() + ")");
  }
  return state;
}

config::Config config_of(const Json& state, const std::string& dir_str) {
  try {
    return config::parse_toml(state.at("config").get<std::string>(), dir_str + "/state.json config");
  } catch (const Json::exception& e) {
    throw CheckpointError("checkpoint " + dir_str + ": state.json has no config (" + e.what() + ")");
  } catch (const config::ConfigError& e) {
    throw CheckpointError("checkpoint " + dir_str + ": its config is invalid: " + e.what());
  }
}

}  // namespace

config::Config checkpoint_config(const std::string& dir) { return config_of(read_state(dir), dir); }

Checkpoint load_checkpoint(const std::string& dir_str, bool with_optimizer) {
  const fs::path dir(dir_str);
  const Json state = read_state(dir_str);
  Checkpoint c;
  c.path = dir_str;
  c.config = config_of(state, dir_str);
  try {
    c.step = state.at("step").get<int64_t>();
    c.optimizer_steps = state.at("optimizer_steps").get<int64_t>();
    c.skipped_steps = state.at("skipped_steps").get<int64_t>();
    c.loader_state = state.at("loader_state");
    c.cpu_rng = state.at("rng").at("cpu").get<std::string>();
    c.cuda_rng = state.at("rng").at("cuda").get<std::string>();
    verify_file(dir, "model.safetensors", state.at("files").at("model.safetensors"));
    if (with_optimizer) verify_file(dir, "optimizer.safetensors", state.at("files").at("optimizer.safetensors"));
  } catch (const Json::exception& e) {
    throw CheckpointError("checkpoint " + dir_str + ": state.json is corrupted or incomplete (" + e.what() + ")");
  }
  try {
    c.weights = from_named(io::load_safetensors((dir / "model.safetensors").string(), nullptr));
    if (with_optimizer)
      c.optimizer = from_named(io::load_safetensors((dir / "optimizer.safetensors").string(), nullptr));
  } catch (const std::exception& e) {
    // Hashes matched, so the files are as written: a bug or a foreign file.
    throw CheckpointError("checkpoint " + dir_str + ": cannot read its safetensors files: " + e.what());
  }
  return c;
}

std::string latest_checkpoint(const std::string& path_str) {
  const fs::path p(path_str);
  if (fs::exists(p / "state.json")) return p.string();
  for (const fs::path& root : {p / "checkpoints", p}) {
    const auto all = list_checkpoints(root);
    if (!all.empty()) return all.back().second.string();
  }
  return "";
}

void remove_checkpoints_after(const std::string& root, int64_t step) {
  for (const auto& [s, path] : list_checkpoints(root)) {
    if (s > step) fs::remove_all(path);
  }
}

std::string run_dir_of(const std::string& checkpoint_dir) {
  return fs::path(checkpoint_dir).lexically_normal().parent_path().parent_path().string();
}

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
