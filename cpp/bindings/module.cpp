#include "bindings.hpp"

// Only registers: each concept lives in its own binding file.
PYBIND11_MODULE(_core, m) {
  m.doc() = "grpo_dynamics compiled core: trajectory, fit, stability";
  bind_trajectory(m);
  bind_fit(m);
  bind_stability(m);
}
