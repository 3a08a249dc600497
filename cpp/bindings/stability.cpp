#include "bindings.hpp"

void bind_stability(py::module_& /*m*/) {}
