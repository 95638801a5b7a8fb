/*
 * validate() (validate.h): every rule, every problem reported at once. The
 * Lighthouse geometry goes through geometry_problems (kernels/
 * geometry_check.h), the op's own rules, under the config's key names.
 */
#include "config/validate.h"

#include <cmath>
#include <initializer_list>
#include <sstream>

#include "dist/parallel.h"
#include "io/utf8.h"
#include "kernels/geometry_check.h"

namespace lighthouse::config {
namespace {

bool one_of(const std::string& v, std::initializer_list<const char*> options) {
  for (const char* o : options) {
    if (v == o) return true;
  }
  return false;
}

template <typename T>
std::string str(T v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

}  // namespace

void validate(const Config& c) {
  std::vector<std::string> errors;
  const auto need = [&](bool ok, const std::string& msg) {
    if (!ok) errors.push_back(msg);
  };
  const ModelConfig& m = c.model;
  need(m.d_model >= 1, "model.d_model must be >= 1, got " + str(m.d_model));
  need(m.layers >= 1 && m.layers <= 4096, "model.layers must be in [1, 4096], got " + str(m.layers));
  need(m.heads >= 1, "model.heads must be >= 1, got " + str(m.heads));
  need(m.kv_heads >= 1, "model.kv_heads must be >= 1, got " + str(m.kv_heads));
  if (m.heads >= 1 && m.kv_heads >= 1) {
    need(m.heads % m.kv_heads == 0,
         "model.kv_heads (" + str(m.kv_heads) + ") must divide model.heads (" + str(m.heads) + "): change one of them");
  }
  need(m.head_dim >= 0, "model.head_dim must be >= 0 (0: d_model / heads), got " + str(m.head_dim));
  if (m.head_dim == 0 && m.heads >= 1 && m.d_model >= 1) {
    need(m.d_model % m.heads == 0, "model.heads (" + str(m.heads) + ") does not divide model.d_model (" +
                                       str(m.d_model) + "): change one, or set model.head_dim explicitly");
  }
  const int64_t hd = head_dim(m);
  if (m.heads >= 1 && (m.head_dim > 0 || (m.d_model >= 1 && m.d_model % m.heads == 0))) {
    need(hd >= 2 && hd % 2 == 0, "the head dim (" + str(hd) + ") must be even for RoPE: change model.head_dim");
  }
  need(m.ffn_hidden >= 1, "model.ffn_hidden must be >= 1, got " + str(m.ffn_hidden));
  need(m.vocab_size >= 259 && m.vocab_size <= (int64_t{1} << 24),
       "model.vocab_size must hold the 259 byte-level tokens (256 bytes + BOS, EOS, PAD), got " + str(m.vocab_size));
  need(std::isfinite(m.rope_theta) && m.rope_theta > 1, "model.rope_theta must be > 1, got " + str(m.rope_theta));
  need(std::isfinite(m.norm_eps) && m.norm_eps > 0 && m.norm_eps < 1,
       "model.norm_eps must be in (0, 1), got " + str(m.norm_eps));
  need(std::isfinite(m.init_std) && m.init_std > 0 && m.init_std < 10,
       "model.init_std must be in (0, 10), got " + str(m.init_std));
  need(one_of(m.attention, {"lighthouse", "dense"}),
       "model.attention must be lighthouse or dense, got '" + m.attention + "'");
  for (const int64_t i : m.dense_layers) {
    need(i >= -m.layers && i < m.layers, "model.dense_layers: layer " + str(i) + " does not exist in a " +
                                             str(m.layers) + "-layer model (valid: -" + str(m.layers) + " .. " +
                                             str(m.layers - 1) + ")");
  }

  const LighthouseConfig& l = c.lighthouse;
  need(one_of(l.scorer, {"norm", "dilated"}), "lighthouse.scorer must be norm or dilated, got '" + l.scorer + "'");
  need(one_of(l.backend, {"auto", "cudnn", "flash", "efficient", "math"}),
       "lighthouse.backend must be auto, cudnn, flash, efficient or math, got '" + l.backend + "'");

  const TrainConfig& t = c.train;
  need(t.seq_len >= 2 && t.seq_len <= (int64_t{1} << 32), "train.seq_len must be in [2, 2^32], got " + str(t.seq_len));
  need(t.batch >= 1, "train.batch must be >= 1, got " + str(t.batch));
  need(t.grad_accum >= 1, "train.grad_accum must be >= 1, got " + str(t.grad_accum));
  need(t.steps >= 1, "train.steps must be >= 1, got " + str(t.steps));
  need(t.seed >= 0, "train.seed must be >= 0, got " + str(t.seed));
  const bool device_ok = t.device == "auto" || t.device == "cpu" || t.device == "cuda" ||
                         (t.device.rfind("cuda:", 0) == 0 && t.device.size() > 5 && t.device.size() < 9 &&
                          t.device.find_first_not_of("0123456789", 5) == std::string::npos);
  need(device_ok, "train.device must be auto, cpu, cuda or cuda:N, got '" + t.device + "'");
  need(one_of(t.precision, {"auto", "fp32", "bf16"}),
       "train.precision must be auto, fp32 or bf16, got '" + t.precision + "'");
  need(t.threads >= 0 && t.threads <= 1024, "train.threads must be in [0, 1024], got " + str(t.threads));
  need(one_of(t.nonfinite, {"stop", "skip"}), "train.nonfinite must be stop or skip, got '" + t.nonfinite + "'");
  need(std::isfinite(t.memory_budget_gb) && t.memory_budget_gb >= 0,
       "train.memory_budget_gb must be >= 0 (0: 90% of the GPU's memory), got " + str(t.memory_budget_gb));
  need(std::isfinite(t.max_seconds) && t.max_seconds >= 0,
       "train.max_seconds must be >= 0 (0: no limit), got " + str(t.max_seconds));
  need(!t.run_dir.empty(), "train.run_dir must not be empty");

  const OptimConfig& o = c.optim;
  need(std::isfinite(o.lr) && o.lr > 0 && o.lr < 10, "optim.lr must be in (0, 10), got " + str(o.lr));
  need(std::isfinite(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, "optim.beta1 must be in [0, 1), got " + str(o.beta1));
  need(std::isfinite(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, "optim.beta2 must be in [0, 1), got " + str(o.beta2));
  need(std::isfinite(o.eps) && o.eps > 0 && o.eps < 1, "optim.eps must be in (0, 1), got " + str(o.eps));
  need(std::isfinite(o.weight_decay) && o.weight_decay >= 0 && o.weight_decay < 1,
       "optim.weight_decay must be in [0, 1), got " + str(o.weight_decay));
  need(std::isfinite(o.grad_clip) && o.grad_clip >= 0,
       "optim.grad_clip must be >= 0 (0: off), got " + str(o.grad_clip));
  need(o.warmup_steps >= 0, "optim.warmup_steps must be >= 0, got " + str(o.warmup_steps));
  need(one_of(o.schedule, {"cosine", "linear", "constant"}),
       "optim.schedule must be cosine, linear or constant, got '" + o.schedule + "'");
  need(std::isfinite(o.min_lr_ratio) && o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1,
       "optim.min_lr_ratio must be in [0, 1], got " + str(o.min_lr_ratio));

  const Stage2Config& s2 = c.stage2;
  need(s2.start_step >= -1 && (s2.start_step <= 0 || s2.start_step < t.steps),
       "stage2.start_step must be 0 (no switch) or below train.steps (" + str(t.steps) + "), got " +
           str(s2.start_step) + " (-1: the switch at stage2.start_fraction)");
  const bool fraction_ok = std::isfinite(s2.start_fraction) && s2.start_fraction >= 0 && s2.start_fraction < 1;
  need(fraction_ok, "stage2.start_fraction must be in [0, 1) (0: unused), got " + str(s2.start_fraction));
  if (s2.start_step == -1 && fraction_ok && s2.start_fraction > 0 && t.steps >= 1) {
    const int64_t at = switch_step(c);
    need(at >= 1 && at < t.steps, "stage2.start_fraction (" + str(s2.start_fraction) + ") of train.steps (" +
                                      str(t.steps) + ") puts the switch after step " + str(at) +
                                      ", which must be in [1, train.steps - 1]: raise train.steps, change "
                                      "stage2.start_fraction, or set stage2.start_step (0: no switch)");
  }
  need(c.checkpoint.every >= 0, "checkpoint.every must be >= 0, got " + str(c.checkpoint.every));
  need(c.checkpoint.keep >= 1, "checkpoint.keep must be >= 1, got " + str(c.checkpoint.keep));
  need(c.eval.every >= 0, "eval.every must be >= 0, got " + str(c.eval.every));
  need(c.eval.batches >= 1, "eval.batches must be >= 1, got " + str(c.eval.batches));
  need(c.eval.niah_every >= 0, "eval.niah_every must be >= 0 (0: off), got " + str(c.eval.niah_every));
  need(c.eval.niah_trials >= 1, "eval.niah_trials must be >= 1, got " + str(c.eval.niah_trials));
  for (const int64_t n : c.eval.niah_contexts) {
    // Stage 1 runs the test with the Lighthouse layers on: the op's minimum length applies.
    const int64_t min_n = uses_lighthouse(c) ? min_seq_len(l) : 1;
    need(n >= min_n, "eval.niah_contexts: " + str(n) + " is below " + str(min_n) +
                         (uses_lighthouse(c) ? ", the smallest context of the Lighthouse geometry" : "") +
                         "; give longer contexts (or leave the list empty for the defaults)");
  }
  need(c.log.every >= 1, "log.every must be >= 1, got " + str(c.log.every));
  // A string that is not valid UTF-8 could not be written as TOML and read back.
  for (const auto* s : {&t.run_dir, &c.data.dir, &c.data.corpus}) {
    need(io::valid_utf8(*s) && s->find('\0') == std::string::npos, "paths must be valid UTF-8: '" + *s + "'");
  }

  // The Lighthouse geometry: the op's rules (kernels/geometry_check.h). The
  // options always; with the context of the run when a layer runs Lighthouse
  // (a dense model may use any context).
  GeometryArgs g;
  g.levels = l.levels;
  g.pool = l.pool;
  g.top_k = l.top_k;
  g.dilated = l.scorer == "dilated";
  g.dilation = l.dilation;
  const bool model_ok = m.layers >= 1 && m.layers <= 4096;
  if (model_ok && uses_lighthouse(c) && t.seq_len >= 2) g.seq_len = t.seq_len;
  GeometryNames names;
  names.levels = "lighthouse.levels";
  names.pool = "lighthouse.pool";
  names.top_k = "lighthouse.top_k";
  names.dilation = "lighthouse.dilation";
  names.seq_len = "train.seq_len";
  const std::vector<GeometryProblem> geometry = geometry_problems(g, names);
  for (const GeometryProblem& p : geometry) errors.push_back(p.message + ". " + p.fix);

  // Parallelism (dist/parallel.h): the layout's own rules here, dp * cp =
  // WORLD_SIZE when the processes start. Under context parallelism every
  // layer's sequence splits into 2*cp chunks (dense layers, and all of them
  // in Stage 2), and a Lighthouse layer's chunks hold whole tiles.
  const ParallelConfig& pc = c.parallel;
  need(pc.dp >= 1, "parallel.dp must be >= 1, got " + str(pc.dp));
  need(pc.cp >= 1, "parallel.cp must be >= 1, got " + str(pc.cp));
  need(std::isfinite(pc.timeout_s) && pc.timeout_s >= 1 && pc.timeout_s <= 7 * 86400,
       "parallel.timeout_s must be in [1, 604800], got " + str(pc.timeout_s));
  if (pc.dp >= 1 && t.batch >= 1) {
    need(t.batch % pc.dp == 0, "train.batch=" + str(t.batch) + " must be a multiple of parallel.dp=" + str(pc.dp) +
                                   " (each data-parallel rank takes batch/dp rows of every global batch): e.g. " +
                                   "--train.batch " + str(pc.dp * ((t.batch + pc.dp - 1) / pc.dp)));
  }
  if (pc.cp > 1 && t.seq_len >= 2) {
    dist::ParallelNames pn;
    static_cast<GeometryNames&>(pn) = names;
    pn.dp = "parallel.dp";
    pn.cp = "parallel.cp";
    const std::string dense = dist::cp_dense_error(t.seq_len, pc.cp, pn);
    need(dense.empty(), dense);
    if (model_ok && uses_lighthouse(c) && geometry.empty()) {
      need(l.scorer == "norm", "lighthouse.scorer must be norm under context parallelism (parallel.cp > 1), got '" +
                                   l.scorer + "'");
      const std::string split = dist::cp_geometry_error(t.seq_len, l.levels, l.pool, l.top_k, pc.cp, pn);
      need(split.empty(), split);
    }
  }

  if (!errors.empty()) {
    std::string msg = errors.size() == 1 ? "invalid config: " : "invalid config:";
    for (const auto& e : errors) msg += (errors.size() == 1 ? "" : "\n  - ") + e;
    throw ConfigError(msg);
  }
}

}  // namespace lighthouse::config
