// Shared binding header: included first by every binding file (one file per concept).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

// C-contiguous float64 input, converted (copied) only when the caller's array is not already so.
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

void bind_trajectory(py::module_& m);
void bind_fit(py::module_& m);
void bind_stability(py::module_& m);
