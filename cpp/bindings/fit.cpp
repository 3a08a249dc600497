#include "bindings.hpp"

void bind_fit(py::module_& /*m*/) {}
