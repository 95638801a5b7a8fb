/*
 * Config parsing, overrides, TOML output and validation (see config.h).
 *
 * One table of fields drives everything: each field has a section, a key, a
 * kind and an accessor, so parse_toml, apply_override, to_toml, equality and
 * --help cannot disagree about which keys exist or what type they have.
 */
#include "config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>

#include "kernels/geometry.h"

namespace lighthouse::config {

// Presets generated from configs/*.toml at configure time (presets.cpp.in).
const std::vector<std::pair<std::string, std::string>>& embedded_presets();

namespace {

enum class Kind { kInt, kFloat, kBool, kString, kIntList };

struct Field {
  const char* section;
  const char* key;
  Kind kind;
  const char* help;
  void* (*get)(Config&);
};

#define LH_FIELD(sec, name, kind, help)                                            \
  Field {                                                                          \
#sec, #name, Kind::kind, help, [](Config & c) -> void* { return &c.sec.name; } \
  }

const std::vector<Field>& fields() {
  static const std::vector<Field> f = {
      LH_FIELD(model, d_model, kInt, "hidden size"),
      LH_FIELD(model, layers, kInt, "decoder layers"),
      LH_FIELD(model, heads, kInt, "query heads"),
      LH_FIELD(model, kv_heads, kInt, "key/value heads (GQA); must divide heads"),
      LH_FIELD(model, head_dim, kInt, "head dim; 0: d_model / heads"),
      LH_FIELD(model, ffn_hidden, kInt, "SwiGLU hidden size"),
      LH_FIELD(model, vocab_size, kInt, "vocabulary incl. padding (>= 259: 256 bytes + BOS, EOS, PAD)"),
      LH_FIELD(model, rope_theta, kFloat, "RoPE base"),
      LH_FIELD(model, norm_eps, kFloat, "RMSNorm epsilon"),
      LH_FIELD(model, init_std, kFloat, "std of the normal weight init"),
      LH_FIELD(model, attention, kString, "attention of the non-dense layers: lighthouse | dense"),
      LH_FIELD(model, dense_layers, kIntList, "layers that always run dense SDPA; negative counts from the end"),
      LH_FIELD(lighthouse, levels, kInt, "pyramid levels L (>= 2)"),
      LH_FIELD(lighthouse, pool, kInt, "pooling factor p (power of two >= 2)"),
      LH_FIELD(lighthouse, top_k, kInt, "top-k budget (multiple of 128)"),
      LH_FIELD(lighthouse, scorer, kString, "norm | dilated"),
      LH_FIELD(lighthouse, dilation, kInt, "dilated scorer's r (power of two)"),
      LH_FIELD(lighthouse, backend, kString, "inner SDPA: auto | cudnn | flash | efficient | math"),
      LH_FIELD(train, seq_len, kInt, "context length in tokens"),
      LH_FIELD(train, batch, kInt, "sequences per micro-batch"),
      LH_FIELD(train, grad_accum, kInt, "micro-batches per optimizer step"),
      LH_FIELD(train, steps, kInt, "optimizer steps"),
      LH_FIELD(train, seed, kInt, "seed of the weights and the data order"),
      LH_FIELD(train, device, kString, "auto | cpu | cuda | cuda:N"),
      LH_FIELD(train, precision, kString, "auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16"),
      LH_FIELD(train, activation_checkpointing, kBool, "recompute each block in backward"),
      LH_FIELD(train, deterministic, kBool, "bit-exact reruns (see README)"),
      LH_FIELD(train, threads, kInt, "CPU threads; 0: all cores (2 when deterministic)"),
      LH_FIELD(train, nonfinite, kString, "non-finite loss or gradients: stop | skip"),
      LH_FIELD(train, baseline, kBool, "also train a dense-only baseline and compare"),
      LH_FIELD(train, max_seconds, kFloat, "stop with a checkpoint after this wall time; 0: none"),
      LH_FIELD(train, run_dir, kString, "output directory"),
      LH_FIELD(optim, lr, kFloat, "peak learning rate"),
      LH_FIELD(optim, beta1, kFloat, "AdamW beta1"),
      LH_FIELD(optim, beta2, kFloat, "AdamW beta2"),
      LH_FIELD(optim, eps, kFloat, "AdamW epsilon"),
      LH_FIELD(optim, weight_decay, kFloat, "decoupled weight decay (matrices only)"),
      LH_FIELD(optim, grad_clip, kFloat, "global grad-norm clip; 0: off"),
      LH_FIELD(optim, warmup_steps, kInt, "linear warm-up steps"),
      LH_FIELD(optim, schedule, kString, "after warm-up: cosine | linear | constant"),
      LH_FIELD(optim, min_lr_ratio, kFloat, "final lr / peak lr (cosine, linear)"),
      LH_FIELD(stage2, start_step, kInt, "steps of Stage 1, then every layer is dense; 0: no switch; -1: by start_fraction"),
      LH_FIELD(stage2, start_fraction, kFloat, "Stage 1 as a fraction of train.steps (nearest step, half down); 0: unused"),
      LH_FIELD(data, dir, kString, "packed corpus directory (packed automatically if missing)"),
      LH_FIELD(data, corpus, kString, "raw text corpus to pack; empty: the default corpus"),
      LH_FIELD(checkpoint, every, kInt, "steps between checkpoints; 0: at the switch and the end only"),
      LH_FIELD(checkpoint, keep, kInt, "newest checkpoints kept"),
      LH_FIELD(eval, every, kInt, "steps between validation passes; 0: at the end only"),
      LH_FIELD(eval, batches, kInt, "validation micro-batches per pass"),
      LH_FIELD(log, every, kInt, "steps between progress lines when not on a terminal"),
  };
  return f;
}

#undef LH_FIELD

template <typename T>
T& ref(const Field& f, Config& c) {
  return *static_cast<T*>(f.get(c));
}
template <typename T>
const T& cref(const Field& f, const Config& c) {
  return *static_cast<const T*>(f.get(const_cast<Config&>(c)));
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kInt:
      return "integer";
    case Kind::kFloat:
      return "float";
    case Kind::kBool:
      return "bool";
    case Kind::kString:
      return "string";
    case Kind::kIntList:
      return "integer list";
  }
  return "?";
}

std::string dotted(const Field& f) { return std::string(f.section) + "." + f.key; }

std::string known_keys(const std::string& section) {
  std::string s;
  for (const Field& f : fields()) {
    if (section == f.section) s += (s.empty() ? "" : ", ") + std::string(f.key);
  }
  return s;
}

std::string known_sections() {
  std::string s;
  std::set<std::string> seen;
  for (const Field& f : fields()) {
    if (seen.insert(f.section).second) s += (s.empty() ? "" : ", ") + std::string(f.section);
  }
  return s;
}

const Field& find_field(const std::string& section, const std::string& key, const std::string& origin) {
  bool section_known = false;
  for (const Field& f : fields()) {
    if (section != f.section) continue;
    section_known = true;
    if (key == f.key) return f;
  }
  if (!section_known) {
    throw ConfigError(origin + ": unknown section [" + section + "]; sections are " + known_sections());
  }
  throw ConfigError(origin + ": unknown key '" + section + "." + key + "'; keys of [" + section + "] are " +
                    known_keys(section));
}

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  std::string s = buf;
  // TOML reads "10000" as an integer: keep floats recognisable.
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

// The code point of the UTF-8 sequence at s[i] and its length, or
// {-1, 1} for a byte that does not start a valid sequence.
std::pair<int32_t, size_t> decode_utf8(const std::string& s, size_t i) {
  const unsigned char c = s[i];
  const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (len == 0 || i + len > s.size()) return {-1, 1};
  int32_t cp = len == 1 ? c : c & (0x7f >> len);
  for (size_t j = 1; j < len; ++j) {
    const unsigned char cc = s[i + j];
    if ((cc & 0xc0) != 0x80) return {-1, 1};
    cp = (cp << 6) | (cc & 0x3f);
  }
  const int32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return {-1, 1};
  return {cp, len};
}

// A TOML basic string, ASCII only: quotes, backslashes, control characters
// and every non-ASCII character are escapes (\uXXXX, \UXXXXXXXX), so the
// output parses back with any TOML reader (see parse_toml on ASCII). A byte
// that is not valid UTF-8 becomes U+FFFD.
std::string quote(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const auto [cp, len] = decode_utf8(s, i);
    i += len;
    char buf[16];
    if (cp == '"' || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp >= 0x20 && cp < 0x7f) {
      out += static_cast<char>(cp);
    } else if (cp >= 0 && cp <= 0xffff) {
      std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(cp));
      out += buf;
    } else if (cp > 0xffff) {
      std::snprintf(buf, sizeof buf, "\\U%08X", static_cast<unsigned>(cp));
      out += buf;
    } else {
      out += "\\uFFFD";
    }
  }
  return out + "\"";
}

std::string format_value(const Field& f, const Config& c) {
  switch (f.kind) {
    case Kind::kInt:
      return std::to_string(cref<int64_t>(f, c));
    case Kind::kFloat:
      return format_double(cref<double>(f, c));
    case Kind::kBool:
      return cref<bool>(f, c) ? "true" : "false";
    case Kind::kString:
      return quote(cref<std::string>(f, c));
    case Kind::kIntList: {
      std::string s = "[";
      const auto& v = cref<std::vector<int64_t>>(f, c);
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
      return s + "]";
    }
  }
  return "";
}

// --- TOML input -----------------------------------------------------------

const char* toml_type_name(const toml::node& node) {
  if (node.is_table()) return "table";
  if (node.is_array()) return "array";
  if (node.is_string()) return "string";
  if (node.is_integer()) return "integer";
  if (node.is_floating_point()) return "float";
  if (node.is_boolean()) return "bool";
  return "date/time";
}

void set_from_node(const Field& f, Config& c, const toml::node& node, const std::string& where) {
  const auto wrong = [&] {
    return ConfigError(where + ": '" + dotted(f) + "' must be " + (f.kind == Kind::kInt ? "an " : "a ") +
                       kind_name(f.kind) + ", got a TOML " + toml_type_name(node));
  };
  switch (f.kind) {
    case Kind::kInt:
      if (!node.is_integer()) throw wrong();
      ref<int64_t>(f, c) = node.as_integer()->get();
      return;
    case Kind::kFloat:
      if (node.is_floating_point()) {
        ref<double>(f, c) = node.as_floating_point()->get();
      } else if (node.is_integer()) {
        ref<double>(f, c) = static_cast<double>(node.as_integer()->get());
      } else {
        throw wrong();
      }
      return;
    case Kind::kBool:
      if (!node.is_boolean()) throw wrong();
      ref<bool>(f, c) = node.as_boolean()->get();
      return;
    case Kind::kString:
      if (!node.is_string()) throw wrong();
      ref<std::string>(f, c) = node.as_string()->get();
      return;
    case Kind::kIntList: {
      if (!node.is_array()) throw wrong();
      std::vector<int64_t> v;
      for (const toml::node& e : *node.as_array()) {
        if (!e.is_integer()) throw wrong();
        v.push_back(e.as_integer()->get());
      }
      ref<std::vector<int64_t>>(f, c) = std::move(v);
      return;
    }
  }
}

// --- override input -------------------------------------------------------

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool parse_int(const std::string& text, int64_t* out) {
  const std::string s = trim(text);
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

bool parse_double(const std::string& text, double* out) {
  const std::string s = trim(text);
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno == ERANGE || end != s.c_str() + s.size()) return false;
  *out = v;
  return true;
}

}  // namespace

bool operator==(const Config& a, const Config& b) {
  for (const Field& f : fields()) {
    bool same = false;
    switch (f.kind) {
      case Kind::kInt:
        same = cref<int64_t>(f, a) == cref<int64_t>(f, b);
        break;
      case Kind::kFloat:
        same = cref<double>(f, a) == cref<double>(f, b);
        break;
      case Kind::kBool:
        same = cref<bool>(f, a) == cref<bool>(f, b);
        break;
      case Kind::kString:
        same = cref<std::string>(f, a) == cref<std::string>(f, b);
        break;
      case Kind::kIntList:
        same = cref<std::vector<int64_t>>(f, a) == cref<std::vector<int64_t>>(f, b);
        break;
    }
    if (!same) return false;
  }
  return true;
}

Config parse_toml(const std::string& text, const std::string& origin, Config base) {
  // ASCII only: toml++ 3.3 reaches __builtin_unreachable (undefined
  // behaviour) on some non-ASCII characters outside strings (found by
  // tests/fuzz/config_fuzz.cpp, e.g. U+01E2). Strings can still hold any
  // character through \u escapes, which is what to_toml writes.
  for (size_t i = 0, line = 1, col = 1; i < text.size(); ++i, ++col) {
    const unsigned char ch = text[i];
    if (ch == '\n') {
      ++line;
      col = 0;
    } else if (ch >= 0x80) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "0x%02X", ch);
      throw ConfigError(origin + ":" + std::to_string(line) + ":" + std::to_string(col) + ": non-ASCII byte " + buf +
                        ": config files must be ASCII; write other characters inside strings as \\uXXXX escapes");
    }
  }
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ":" << e.source().begin.column
        << ": invalid TOML: " << e.description();
    throw ConfigError(msg.str());
  }
  for (auto&& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    if (!section_node.is_table()) {
      // A top-level key: either a misplaced key or an unknown section.
      throw ConfigError(origin + ": '" + section + "' must be a [section] table; sections are " + known_sections());
    }
    for (auto&& [key, node] : *section_node.as_table()) {
      const std::string where = origin + ":" + std::to_string(node.source().begin.line);
      const Field& f = find_field(section, std::string(key.str()), where);
      set_from_node(f, base, node, where);
    }
    // An empty or unknown section is still checked by name.
    if (section_node.as_table()->empty()) {
      bool known = false;
      for (const Field& f : fields()) known = known || section == f.section;
      if (!known) throw ConfigError(origin + ": unknown section [" + section + "]; sections are " + known_sections());
    }
  }
  return base;
}

void apply_override(Config& config, const std::string& dotted_key, const std::string& value) {
  const size_t dot = dotted_key.find('.');
  if (dot == std::string::npos) {
    throw ConfigError("override '" + dotted_key + "': expected --section.key value (sections: " + known_sections() +
                      ")");
  }
  const std::string origin = "--" + dotted_key;
  const Field& f = find_field(dotted_key.substr(0, dot), dotted_key.substr(dot + 1), origin);
  const auto bad = [&] {
    return ConfigError(origin + ": '" + value + "' is not " + (f.kind == Kind::kInt ? "an " : "a ") +
                       kind_name(f.kind) + (f.kind == Kind::kIntList ? " (write e.g. 0,1,-1)" : ""));
  };
  switch (f.kind) {
    case Kind::kInt:
      if (!parse_int(value, &ref<int64_t>(f, config))) throw bad();
      return;
    case Kind::kFloat:
      if (!parse_double(value, &ref<double>(f, config))) throw bad();
      return;
    case Kind::kBool: {
      const std::string v = trim(value);
      if (v == "true" || v == "1") {
        ref<bool>(f, config) = true;
      } else if (v == "false" || v == "0") {
        ref<bool>(f, config) = false;
      } else {
        throw bad();
      }
      return;
    }
    case Kind::kString:
      ref<std::string>(f, config) = value;
      return;
    case Kind::kIntList: {
      std::string s = trim(value);
      if (!s.empty() && s.front() == '[') {
        if (s.back() != ']') throw bad();
        s = trim(s.substr(1, s.size() - 2));
      }
      std::vector<int64_t> v;
      size_t pos = 0;
      while (!s.empty()) {
        const size_t comma = s.find(',', pos);
        int64_t x = 0;
        if (!parse_int(s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos), &x)) throw bad();
        v.push_back(x);
        if (comma == std::string::npos) break;
        pos = comma + 1;
      }
      ref<std::vector<int64_t>>(f, config) = std::move(v);
      return;
    }
  }
}

std::string to_toml(const Config& config) {
  std::string out;
  std::string section;
  for (const Field& f : fields()) {
    if (section != f.section) {
      section = f.section;
      out += (out.empty() ? "[" : "\n[") + section + "]\n";
    }
    out += std::string(f.key) + " = " + format_value(f, config) + "\n";
  }
  return out;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : embedded_presets()) names.push_back(name);
  return names;
}

const std::string& preset_text(const std::string& name) {
  for (const auto& [n, text] : embedded_presets()) {
    if (n == name) return text;
  }
  std::string list;
  for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
  throw ConfigError("unknown preset '" + name + "'; presets are " + list + " (configs/*.toml)");
}

Config load_preset(const std::string& name) { return parse_toml(preset_text(name), "configs/" + name + ".toml"); }

int64_t head_dim(const ModelConfig& m) { return m.head_dim > 0 ? m.head_dim : (m.heads > 0 ? m.d_model / m.heads : 0); }

std::vector<int64_t> resolved_dense_layers(const ModelConfig& m) {
  std::set<int64_t> s;
  for (const int64_t i : m.dense_layers) {
    const int64_t j = i < 0 ? i + m.layers : i;
    if (j >= 0 && j < m.layers) s.insert(j);
  }
  return {s.begin(), s.end()};
}

bool uses_lighthouse(const Config& c) {
  return c.model.attention == "lighthouse" &&
         static_cast<int64_t>(resolved_dense_layers(c.model).size()) < c.model.layers;
}

int64_t switch_step(const Config& c) {
  if (c.stage2.start_step >= 0) return c.stage2.start_step;
  const double f = c.stage2.start_fraction;
  if (!(f > 0 && f < 1) || c.train.steps < 1) return 0;
  // Nearest step, a half rounded down: f * steps < steps, so no overflow.
  return static_cast<int64_t>(std::ceil(f * static_cast<double>(c.train.steps) - 0.5));
}

int64_t min_seq_len(const LighthouseConfig& l) {
  int32_t log2_p = 0;
  while ((int64_t{1} << log2_p) < l.pool) ++log2_p;
  return lighthouse::min_seq_len(static_cast<int32_t>(l.levels), log2_p, l.top_k);
}

namespace {

bool power_of_two(int64_t x) { return x > 0 && (x & (x - 1)) == 0; }

// Structural UTF-8 check (lead bytes and continuation bytes): TOML output
// of an invalid string could not be parsed back.
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    for (size_t j = 1; j < len; ++j) {
      if ((static_cast<unsigned char>(s[i + j]) & 0xc0) != 0x80) return false;
    }
    i += len;
  }
  return true;
}

bool one_of(const std::string& v, std::initializer_list<const char*> options) {
  for (const char* o : options) {
    if (v == o) return true;
  }
  return false;
}

}  // namespace

void validate(const Config& c) {
  std::vector<std::string> errors;
  const auto need = [&](bool ok, const std::string& msg) {
    if (!ok) errors.push_back(msg);
  };
  const auto str = [](auto v) {
    std::ostringstream s;
    s << v;
    return s.str();
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
  need(l.levels >= 2 && l.levels <= 16, "lighthouse.levels must be in [2, 16], got " + str(l.levels));
  need(l.pool >= 2 && power_of_two(l.pool) && l.pool <= 1024,
       "lighthouse.pool must be a power of two in [2, 1024], got " + str(l.pool));
  need(l.top_k >= 128 && l.top_k % 128 == 0 && l.top_k <= (int64_t{1} << 24),
       "lighthouse.top_k must be a positive multiple of 128, got " + str(l.top_k));
  need(one_of(l.scorer, {"norm", "dilated"}), "lighthouse.scorer must be norm or dilated, got '" + l.scorer + "'");
  need(l.dilation >= 1 && power_of_two(l.dilation) && l.dilation <= 1024,
       "lighthouse.dilation must be a power of two in [1, 1024], got " + str(l.dilation));
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
  need(c.log.every >= 1, "log.every must be >= 1, got " + str(c.log.every));
  for (const auto* s : {&t.run_dir, &c.data.dir, &c.data.corpus}) {
    need(valid_utf8(*s) && s->find('\0') == std::string::npos, "paths must be valid UTF-8: '" + *s + "'");
  }

  // The Lighthouse geometry must fit the context (only when a layer uses it).
  const bool geometry_ok = l.levels >= 2 && l.levels <= 16 && l.pool >= 2 && power_of_two(l.pool) && l.pool <= 1024 &&
                           l.top_k >= 128 && l.top_k % 128 == 0 && l.top_k <= (int64_t{1} << 24);
  if (geometry_ok && m.layers >= 1 && m.layers <= 4096 && uses_lighthouse(c)) {
    int log2_p = 0;
    while ((int64_t{1} << log2_p) < l.pool) ++log2_p;
    const int64_t shift = (l.levels - 1) * log2_p;
    if (shift > 40) {
      errors.push_back("lighthouse: pool^(levels-1) = " + str(l.pool) + "^" + str(l.levels - 1) +
                       " is too large: lower lighthouse.levels or lighthouse.pool");
    } else {
      const int64_t min_n = min_seq_len(l);
      need(t.seq_len >= min_n, "train.seq_len (" + str(t.seq_len) +
                                   ") is below the smallest context of the Lighthouse geometry (L=" + str(l.levels) +
                                   ", p=" + str(l.pool) + ", top_k=" + str(l.top_k) +
                                   "): top_k * p^(L-1) = " + str(min_n) + ". Raise train.seq_len to >= " + str(min_n) +
                                   ", or lower lighthouse.top_k / lighthouse.pool / lighthouse.levels");
    }
  }
  if (!errors.empty()) {
    std::string msg = errors.size() == 1 ? "invalid config: " : "invalid config:";
    for (const auto& e : errors) msg += (errors.size() == 1 ? "" : "\n  - ") + e;
    throw ConfigError(msg);
  }
}

std::string describe_keys(const Config& config) {
  std::string out;
  for (const Field& f : fields()) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "  --%-34s %-13s %-16s %s\n", dotted(f).c_str(), kind_name(f.kind),
                  format_value(f, config).c_str(), f.help);
    out += buf;
  }
  return out;
}

}  // namespace lighthouse::config
