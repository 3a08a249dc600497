// The one error-message format of the package: "name: must be <rule>, got <value>".
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace grpo_dynamics {

// Shortest of %.15g / %.17g that reads back as the same double (1e-12, not 9.9999999999999998e-13).
inline std::string format_value(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", value);
  if (std::strtod(buf, nullptr) != value) std::snprintf(buf, sizeof buf, "%.17g", value);
  return buf;
}

inline std::string must(const std::string& name, const std::string& rule, double value) {
  return name + ": must be " + rule + ", got " + format_value(value);
}

}  // namespace grpo_dynamics
