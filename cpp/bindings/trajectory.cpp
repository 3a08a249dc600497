#include "bindings.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "grpo_dynamics/messages.hpp"
#include "grpo_dynamics/trajectory.hpp"

namespace {

using grpo_dynamics::OscillatorParams;

void check_times(const double* t, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(t[i])) throw std::invalid_argument("t: must be finite, got t[" + std::to_string(i) + "] = " + grpo_dynamics::format_value(t[i]));
}

py::array_t<double> evaluate(const DoubleArray& t, double r0, double r_inf, double tau, double mu,
                             double t0, double v0, bool with_jacobian) {
  require_1d(t, "t: must be a 1-D array of times");
  const auto n = static_cast<std::size_t>(t.shape(0));
  const OscillatorParams params{r0, r_inf, tau, mu, t0, v0};
  py::array_t<double> value(static_cast<py::ssize_t>(n));
  py::array_t<double> jac;
  if (with_jacobian)
    jac = py::array_t<double>({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(grpo_dynamics::kNumTrajectoryParams)});
  const double* t_ptr = t.data();
  double* value_ptr = value.mutable_data();
  double* jac_ptr = with_jacobian ? jac.mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    check_times(t_ptr, n);
    grpo_dynamics::trajectory(t_ptr, n, params, value_ptr, jac_ptr);
  }
  return with_jacobian ? jac : value;
}

py::tuple evaluate_uniform(double t_first, double dt, const py::object& n_arg, double r0, double r_inf, double tau,
                           double mu, double t0, double v0) {
  const auto n = static_cast<py::ssize_t>(int_arg(n_arg, "n", 0, std::numeric_limits<py::ssize_t>::max() / 64));
  const OscillatorParams params{r0, r_inf, tau, mu, t0, v0};
  py::array_t<double> value(n);
  py::array_t<double> jac({n, static_cast<py::ssize_t>(grpo_dynamics::kNumTrajectoryParams)});
  double* value_ptr = value.mutable_data();
  double* jac_ptr = jac.mutable_data();
  {
    py::gil_scoped_release release;
    grpo_dynamics::trajectory_uniform(t_first, dt, static_cast<std::size_t>(n), params, value_ptr, jac_ptr);
  }
  return py::make_tuple(value, jac);
}

}  // namespace

void bind_trajectory(py::module_& m) {
  m.def(
      "trajectory",
      [](const DoubleArray& t, double r0, double r_inf, double tau, double mu, double t0, double v0) {
        return evaluate(t, r0, r_inf, tau, mu, t0, v0, false);
      },
      py::arg("t"), py::arg("r0"), py::arg("r_inf"), py::arg("tau"), py::arg("mu"), py::arg("t0") = 0.0,
      py::arg("v0") = 0.0, "Closed-form trajectory r(t) (docs/model.md, closed form).");
  m.def(
      "trajectory_jacobian",
      [](const DoubleArray& t, double r0, double r_inf, double tau, double mu, double t0, double v0) {
        return evaluate(t, r0, r_inf, tau, mu, t0, v0, true);
      },
      py::arg("t"), py::arg("r0"), py::arg("r_inf"), py::arg("tau"), py::arg("mu"), py::arg("t0") = 0.0,
      py::arg("v0") = 0.0, "Analytic Jacobian, columns (r0, r_inf, tau, mu, t0, v0).");
  m.def("trajectory_uniform", &evaluate_uniform, py::arg("t_first"), py::arg("dt"), py::arg("n"), py::arg("r0"),
        py::arg("r_inf"), py::arg("tau"), py::arg("mu"), py::arg("t0") = 0.0, py::arg("v0") = 0.0,
        "Value and Jacobian on the uniform grid t_first + i dt by recurrences (fast path).");
}
