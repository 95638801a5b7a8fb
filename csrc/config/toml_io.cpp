/*
 * TOML in and out, overrides, presets and --help (toml_io.h), all driven by
 * the field table (schema.h). toml++ parses the files and formats every
 * value written (strings escaped to ASCII, floats with 17 significant
 * digits); the layout (sections and keys in schema order) is ours.
 */
#include "config/toml_io.h"

#include <toml++/toml.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

namespace lighthouse::config {

// Presets generated from configs/*.toml at configure time (presets.cpp.in).
const std::vector<std::pair<std::string, std::string>>& embedded_presets();

namespace {

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

bool known_section(const std::string& section) {
  for (const Field& f : fields()) {
    if (section == f.section) return true;
  }
  return false;
}

const Field& find_field(const std::string& section, const std::string& key, const std::string& origin) {
  for (const Field& f : fields()) {
    if (section == f.section && key == f.key) return f;
  }
  if (!known_section(section)) {
    throw ConfigError(origin + ": unknown section [" + section + "]; sections are " + known_sections());
  }
  throw ConfigError(origin + ": unknown key '" + section + "." + key + "'; keys of [" + section + "] are " +
                    known_keys(section));
}

const char* article(Kind k) { return k == Kind::kInt ? "an " : "a "; }

// --- TOML output ------------------------------------------------------------

// A value as TOML, by toml++: basic strings with every non-ASCII character
// and control character escaped (format_flags::none: no literal, multi-line
// or raw Unicode strings), floats with 17 significant digits.
template <typename Node>
std::string toml_text(const Node& node) {
  std::ostringstream os;
  os << toml::toml_formatter{node, toml::format_flags::none};
  return os.str();
}

std::string format_value(const Field& f, const Config& c) {
  switch (f.kind) {
    case Kind::kInt:
      return toml_text(toml::value<int64_t>{f.ref<int64_t>(c)});
    case Kind::kFloat:
      return toml_text(toml::value<double>{f.ref<double>(c)});
    case Kind::kBool:
      return toml_text(toml::value<bool>{f.ref<bool>(c)});
    case Kind::kString:
      return toml_text(toml::value<std::string>{f.ref<std::string>(c)});
    case Kind::kIntList: {
      toml::array a;
      for (const int64_t v : f.ref<std::vector<int64_t>>(c)) a.push_back(v);
      return toml_text(a);
    }
  }
  return "";
}

// --- TOML input -------------------------------------------------------------

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
    return ConfigError(where + ": '" + f.dotted() + "' must be " + article(f.kind) + kind_name(f.kind) +
                       ", got a TOML " + toml_type_name(node));
  };
  switch (f.kind) {
    case Kind::kInt:
      if (!node.is_integer()) throw wrong();
      f.ref<int64_t>(c) = node.as_integer()->get();
      return;
    case Kind::kFloat:
      if (node.is_floating_point()) {
        f.ref<double>(c) = node.as_floating_point()->get();
      } else if (node.is_integer()) {
        f.ref<double>(c) = static_cast<double>(node.as_integer()->get());
      } else {
        throw wrong();
      }
      return;
    case Kind::kBool:
      if (!node.is_boolean()) throw wrong();
      f.ref<bool>(c) = node.as_boolean()->get();
      return;
    case Kind::kString:
      if (!node.is_string()) throw wrong();
      f.ref<std::string>(c) = node.as_string()->get();
      return;
    case Kind::kIntList: {
      if (!node.is_array()) throw wrong();
      std::vector<int64_t> v;
      for (const toml::node& e : *node.as_array()) {
        if (!e.is_integer()) throw wrong();
        v.push_back(e.as_integer()->get());
      }
      f.ref<std::vector<int64_t>>(c) = std::move(v);
      return;
    }
  }
}

// --- override input ---------------------------------------------------------
// Command-line values are not TOML (strings unquoted, lists without
// brackets, "1" for true), so they are read here.

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
      set_from_node(find_field(section, std::string(key.str()), where), base, node, where);
    }
    // An empty section is still checked by name.
    if (!known_section(section)) {
      throw ConfigError(origin + ": unknown section [" + section + "]; sections are " + known_sections());
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
    return ConfigError(origin + ": '" + value + "' is not " + article(f.kind) + kind_name(f.kind) +
                       (f.kind == Kind::kIntList ? " (write e.g. 0,1,-1)" : ""));
  };
  switch (f.kind) {
    case Kind::kInt:
      if (!parse_int(value, &f.ref<int64_t>(config))) throw bad();
      return;
    case Kind::kFloat:
      if (!parse_double(value, &f.ref<double>(config))) throw bad();
      return;
    case Kind::kBool: {
      const std::string v = trim(value);
      if (v == "true" || v == "1") {
        f.ref<bool>(config) = true;
      } else if (v == "false" || v == "0") {
        f.ref<bool>(config) = false;
      } else {
        throw bad();
      }
      return;
    }
    case Kind::kString:
      f.ref<std::string>(config) = value;
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
      f.ref<std::vector<int64_t>>(config) = std::move(v);
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

std::string describe_keys(const Config& config) {
  std::string out;
  for (const Field& f : fields()) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "  --%-34s %-13s %-16s %s\n", f.dotted().c_str(), kind_name(f.kind),
                  format_value(f, config).c_str(), f.help);
    out += buf;
  }
  return out;
}

}  // namespace lighthouse::config
