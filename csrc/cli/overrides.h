/*
 * `--section.key value` / `--section.key=value` config overrides on a command
 * line (train, study): split them from the other arguments. A value may start
 * with '-' (e.g. a negative layer index).
 */
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace lighthouse::cli {

inline std::vector<std::pair<std::string, std::string>> take_overrides(std::vector<std::string>& args) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> rest;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const size_t eq = a.find('=');
    const std::string name = a.substr(0, eq);
    if (a.rfind("--", 0) != 0 || name.find('.') == std::string::npos) {
      rest.push_back(a);
      continue;
    }
    if (eq != std::string::npos) {
      out.emplace_back(name.substr(2), a.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      out.emplace_back(name.substr(2), args[++i]);
    } else {
      throw config::ConfigError("override " + a + " needs a value");
    }
  }
  args = rest;
  return out;
}

}  // namespace lighthouse::cli
