// Shared binding header: included first by every binding file (one file per concept).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

namespace py = pybind11;

// C-contiguous float64 input, converted (copied) only when the caller's array is not already so.
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Shape check shared by the binding files: throws std::invalid_argument(message) (a ValueError in
// Python) unless `array` is 1-D and, when length >= 0, has exactly that length.
inline void require_1d(const py::array& array, const std::string& message, py::ssize_t length = -1) {
  if (array.ndim() != 1 || (length >= 0 && array.shape(0) != length)) throw std::invalid_argument(message);
}

void bind_trajectory(py::module_& m);
void bind_fit(py::module_& m);
void bind_stability(py::module_& m);
