// Numeric constants shared by the core's translation units (defined once, here).
#pragma once

#include <limits>

namespace grpo_dynamics {

inline constexpr double kInf = std::numeric_limits<double>::infinity();
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kPi = 3.14159265358979323846;

}  // namespace grpo_dynamics
