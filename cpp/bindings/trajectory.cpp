#include "bindings.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

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

// "(3, 4)" for an array's shape, as numpy prints it ("(5,)" in 1-D).
std::string shape_text(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) out += (d ? ", " : "") + std::to_string(a.shape(d));
  return out + (a.ndim() == 1 ? ",)" : ")");
}

// A float64 C-contiguous copy (or view) of any numeric array; a ValueError naming the argument
// for anything that does not convert (strings, objects, None) instead of pybind11's TypeError.
DoubleArray as_double_array(const py::object& value, const char* name) {
  if (value.is_none()) throw std::invalid_argument(std::string(name) + ": must be a real numeric array, got None");
  if (py::isinstance<py::array>(value)) {
    const char kind = py::reinterpret_borrow<py::array>(value).dtype().kind();
    if (kind != 'f' && kind != 'i' && kind != 'u')
      throw std::invalid_argument(std::string(name) + ": must be a real numeric array, got dtype " +
                                  py::str(py::reinterpret_borrow<py::array>(value).dtype()).cast<std::string>());
  }
  DoubleArray out = DoubleArray::ensure(value);
  if (!out) throw std::invalid_argument(std::string(name) + ": must be a real numeric array, got " +
                                        py::repr(value).cast<std::string>());
  return out;
}

// One fitted curve per row (the oscillator from rest at t0, docs/model.md "Closed-form
// trajectory"): values[i, :] = r(t[i, :]) with params[i] = (r0, r_inf, tau[, mu]) (mu = 0 for
// three columns, the exponential). A row whose parameters are not finite, or outside the model's
// domain (tau <= 0, mu < 0), gives NaN; so does a NaN time. Rows are split over `threads`
// workers (0: all cores) without the GIL; every row is computed alone, so the result does not
// depend on the thread count.
py::array_t<double> trajectory_rows(const py::object& params_arg, const py::object& t_arg, double t0,
                                    const py::object& threads_arg) {
  const int threads = static_cast<int>(int_arg(threads_arg, "threads", 0, std::numeric_limits<int>::max()));
  const DoubleArray params = as_double_array(params_arg, "params");
  const DoubleArray t = as_double_array(t_arg, "t");
  if (params.ndim() != 2 || (params.shape(1) != 3 && params.shape(1) != 4))
    throw std::invalid_argument("params: must be a 2-D array with 3 or 4 columns (r0, r_inf, tau[, mu]), got shape " +
                                shape_text(params));
  if (t.ndim() != 2 || t.shape(0) != params.shape(0))
    throw std::invalid_argument("t: must be a 2-D array with one row per row of params (" +
                                std::to_string(params.shape(0)) + "), got shape " + shape_text(t));
  if (!std::isfinite(t0)) throw std::invalid_argument(grpo_dynamics::must("t0", "finite", t0));
  const auto n = static_cast<std::size_t>(params.shape(0));
  const auto m = static_cast<std::size_t>(t.shape(1));
  const auto cols = static_cast<std::size_t>(params.shape(1));
  py::array_t<double> values({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m)});
  const double* p_ptr = params.data();
  const double* t_ptr = t.data();
  double* v_ptr = values.mutable_data();
  {
    py::gil_scoped_release release;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    // Below this many points per worker, starting a thread costs more than it saves.
    constexpr std::size_t kPointsPerWorker = 1 << 15;
    const std::size_t n_workers =
        grpo_dynamics::resolve_threads(threads, std::max<std::size_t>(1, std::min(n, n * m / kPointsPerWorker)));
    grpo_dynamics::run_workers(n_workers, [&](std::size_t worker) {
      const std::size_t begin = n * worker / n_workers, end = n * (worker + 1) / n_workers;
      for (std::size_t i = begin; i < end; ++i) {
        const double* p = p_ptr + i * cols;
        const double* ti = t_ptr + i * m;
        double* out = v_ptr + i * m;
        const OscillatorParams row{p[0], p[1], p[2], cols == 4 ? p[3] : 0.0, t0, 0.0};
        try {
          grpo_dynamics::trajectory(ti, m, row, out, nullptr);  // validates the row first
        } catch (const std::invalid_argument&) {  // outside the model's domain: a NaN row
          std::fill(out, out + m, nan);
          continue;
        }
        for (std::size_t j = 0; j < m; ++j)
          if (std::isnan(ti[j])) out[j] = nan;
      }
    });
  }
  return values;
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
  m.def("trajectory_rows", &trajectory_rows, py::arg("params"), py::arg("t"), py::arg("t0") = 0.0,
        py::arg("threads") = 1,
        "One closed-form curve per row: values (n, m) at t (n, m) for params (n, 3 or 4) = "
        "(r0, r_inf, tau[, mu]); NaN rows where the parameters are not finite or tau <= 0 or mu < 0.");
}
