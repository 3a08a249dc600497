#include "bindings.hpp"

void bind_trajectory(py::module_& /*m*/) {}
