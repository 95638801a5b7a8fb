/*
 * Reading and writing a config (schema.h): TOML text in and out, the
 * `--section.key value` overrides of the command line, the presets built
 * into the program (configs/<name>.toml, embedded at build time by
 * presets.cmake), and the --help listing of every key.
 *
 * Sources, in order: a named preset or a TOML file, then overrides. A float
 * key also takes an integer. Unknown sections or keys and wrong types are
 * ConfigErrors whose message names the key and says what to change. Config
 * text is ASCII: other characters go inside strings as \uXXXX escapes (a
 * toml++ 3.3 bug on non-ASCII input, see parse_toml).
 *
 * Invariant: parse_toml(to_toml(c)) == c for every Config whose strings are
 * valid UTF-8 (the round trip; fuzzed by tests/fuzz/config_fuzz.cpp).
 */
#pragma once

#include <string>
#include <vector>

#include "config/schema.h"

namespace lighthouse::config {

// Parses TOML text (only the keys it names change `base`). `origin` names
// the source in messages. Throws ConfigError; does not validate.
Config parse_toml(const std::string& text, const std::string& origin, Config base = {});

// Applies one override, e.g. ("model.layers", "8"). Lists: "0,1,-1" or
// "[0, 1, -1]"; bools: true, false, 1, 0; strings as given (no quotes).
// Throws ConfigError; does not validate.
void apply_override(Config& config, const std::string& dotted_key, const std::string& value);

// Every key, written as TOML in schema order; parse_toml(to_toml(c)) == c.
std::string to_toml(const Config& config);

// The names of the presets built into the program, and a preset's TOML.
std::vector<std::string> preset_names();
const std::string& preset_text(const std::string& name);  // throws ConfigError naming the presets
Config load_preset(const std::string& name);

// One line per key: "section.key  type  default-or-current  help", for --help.
std::string describe_keys(const Config& config);

}  // namespace lighthouse::config
