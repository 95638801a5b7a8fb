// libFuzzer target: the trainer's config parser (csrc/config/config.h) on
// arbitrary bytes. First byte even: the rest is a TOML file; odd: it is an
// override "key\nvalue" applied to the tiny preset. Either may only succeed
// or throw ConfigError (anything else escaping aborts). Whatever parses must
// survive validate() (ConfigError only) and the round trip:
// to_toml(parse_toml(to_toml(c))) == to_toml(c), and == on the Config when
// no float is NaN (NaN != NaN).
// Found so far: toml++ 3.3 reaches __builtin_unreachable on some non-ASCII
// characters outside strings (now refused before parsing: csrc/config/toml_io.cpp).
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "config/config.h"

namespace {

bool has_nan(const lighthouse::config::Config& c) {
  using namespace lighthouse::config;
  for (const Field& f : fields()) {
    if (f.kind == Kind::kFloat && std::isnan(f.ref<double>(c))) return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lighthouse::config;
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  Config c;
  try {
    if (data[0] % 2 == 0) {
      c = parse_toml(text, "fuzz.toml");
    } else {
      c = load_preset("tiny");
      const size_t nl = text.find('\n');
      apply_override(c, text.substr(0, nl), nl == std::string::npos ? "" : text.substr(nl + 1));
    }
  } catch (const ConfigError&) {
    return 0;
  }
  bool valid = true;
  try {
    validate(c);
  } catch (const ConfigError&) {
    valid = false;
  }
  // to_toml always prints something parse_toml reads back. An override's
  // string may be invalid UTF-8, which prints as U+FFFD, so the Config
  // itself is compared only when it came from TOML or passed validate().
  const std::string out = to_toml(c);
  Config back;
  try {
    back = parse_toml(out, "round-trip.toml");
  } catch (const ConfigError&) {
    std::abort();
  }
  if (to_toml(back) != out) std::abort();
  if ((data[0] % 2 == 0 || valid) && !has_nan(c) && !(back == c)) std::abort();
  return 0;
}
