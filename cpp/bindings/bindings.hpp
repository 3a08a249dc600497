// Shared binding header: included first by every binding file (one file per concept).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include "grpo_dynamics/parallel.hpp"

namespace py = pybind11;

// C-contiguous float64 input, converted (copied) only when the caller's array is not already so.
using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

// Shape check shared by the binding files: throws std::invalid_argument(message) (a ValueError in
// Python) unless `array` is 1-D and, when length >= 0, has exactly that length.
inline void require_1d(const py::array& array, const std::string& message, py::ssize_t length = -1) {
  if (array.ndim() != 1 || (length >= 0 && array.shape(0) != length)) throw std::invalid_argument(message);
}

// An integer argument as the core takes it: any Python integer (or numpy integer, via
// operator.index) in [lo, hi], else a short ValueError naming the argument in the package's one
// format ("delay: must be <= 10000, got 2000000"), instead of pybind11's long "incompatible
// function arguments" TypeError for integers beyond the C++ type.
inline long long int_arg(const py::handle& value, const char* name, long long lo,
                         long long hi = std::numeric_limits<long long>::max()) {
  const std::string prefix = std::string(name) + ": must be ";
  if (PyBool_Check(value.ptr()) || !PyIndex_Check(value.ptr()))
    throw std::invalid_argument(prefix + "an integer, got " + py::repr(value).cast<std::string>());
  const py::int_ number = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
  if (!number) throw py::error_already_set();
  int overflow = 0;
  const long long x = PyLong_AsLongLongAndOverflow(number.ptr(), &overflow);
  if (overflow < 0 || (overflow == 0 && x < lo))
    throw std::invalid_argument(prefix + ">= " + std::to_string(lo) + ", got " + py::str(number).cast<std::string>());
  if (overflow > 0 || x > hi)
    throw std::invalid_argument(prefix + "<= " + std::to_string(hi) + ", got " + py::str(number).cast<std::string>());
  return x;
}

// Ctrl-C for long calls that run without the GIL: the Cancel polls PyErr_CheckSignals (GIL
// re-acquired, calling thread only, every 50 ms). After the GIL-free section, call
// raise_if_cancelled: it raises the pending KeyboardInterrupt (or whatever the handler raised).
inline grpo_dynamics::Cancel python_cancel() {
  return grpo_dynamics::Cancel([] {
    py::gil_scoped_acquire acquire;
    return PyErr_CheckSignals() != 0;
  });
}

inline void raise_if_cancelled(const grpo_dynamics::Cancel& cancel) {
  if (!cancel.requested()) return;
  if (PyErr_Occurred()) throw py::error_already_set();
  PyErr_SetNone(PyExc_KeyboardInterrupt);
  throw py::error_already_set();
}

void bind_trajectory(py::module_& m);
void bind_fit(py::module_& m);
void bind_stability(py::module_& m);
