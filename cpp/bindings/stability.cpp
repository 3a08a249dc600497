#include "bindings.hpp"

#include <pybind11/eigen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "grpo_dynamics/messages.hpp"
#include "grpo_dynamics/stability.hpp"

namespace {

namespace gd = grpo_dynamics;
constexpr long long kMaxInt = std::numeric_limits<int>::max();

// The lag as the core takes it, range-checked and named after what it is for the lag model.
// `dense`: the call builds the (D+1)x(D+1) companion (eigen-solve, Lyapunov): kMaxDenseDelay.
long lag_arg(const py::handle& lag_steps, gd::LagModel lag_model, bool dense = false) {
  if (lag_model == gd::LagModel::kRefresh)
    return static_cast<long>(int_arg(lag_steps, "refresh_interval", 1, gd::kMaxRefreshInterval));
  return static_cast<long>(int_arg(lag_steps, "delay", 0, dense ? gd::kMaxDenseDelay : gd::kMaxDelay));
}

gd::LinearModel make_model(double momentum, double c_lag, double c_now, const std::string& lag_model,
                           const py::handle& lag_steps, bool dense = false) {
  const gd::LagModel lag = gd::parse_lag_model(lag_model);
  gd::LinearModel model{momentum, c_lag, c_now, lag, lag_arg(lag_steps, lag, dense)};
  gd::validate(model);
  return model;
}

py::dict spectrum(double momentum, double c_lag, double c_now, const std::string& lag_model,
                  const py::object& lag_steps) {
  const gd::LinearModel model = make_model(momentum, c_lag, c_now, lag_model, lag_steps, true);
  gd::Spectrum spec;
  {
    py::gil_scoped_release release;
    spec = gd::spectrum(model);
  }
  py::dict out;
  out["eigenvalues"] = Eigen::VectorXcd(spec.eigenvalues);
  out["dominant"] = spec.dominant;
  out["spectral_radius"] = spec.spectral_radius;
  out["decay_rate"] = spec.decay_rate;
  out["regime"] = std::string(gd::regime_name(spec.regime));
  return out;
}

py::tuple stationary_variance(double momentum, double c_lag, double c_now, const std::string& lag_model,
                              const py::object& lag_steps) {
  const gd::LinearModel model = make_model(momentum, c_lag, c_now, lag_model, lag_steps, true);
  gd::StationaryVariance result;
  gd::Cancel cancel = python_cancel();
  {
    py::gil_scoped_release release;
    result = gd::stationary_variance(model, &cancel);
  }
  raise_if_cancelled(cancel);
  py::array_t<double> per_phase(static_cast<py::ssize_t>(result.per_phase.size()));
  std::copy(result.per_phase.begin(), result.per_phase.end(), per_phase.mutable_data());
  return py::make_tuple(result.mean, per_phase);
}

const double* column(const DoubleArray& array, py::ssize_t n, const char* name) {
  require_1d(array, std::string(name) + ": must be a 1-D array of the same length as momentum", n);
  return array.data();
}

py::dict grid(const DoubleArray& momentum, const DoubleArray& c_lag, const DoubleArray& c_now,
              const DoubleArray& lag_steps, const std::string& lag_model, const py::object& threads_arg) {
  const int threads = static_cast<int>(int_arg(threads_arg, "threads", 0, kMaxInt));
  require_1d(momentum, "momentum: must be a 1-D array");
  const py::ssize_t n = momentum.shape(0);
  const double* momentum_ptr = momentum.data();
  const double* c_lag_ptr = column(c_lag, n, "c_lag");
  const double* c_now_ptr = column(c_now, n, "c_now");
  const double* lag_ptr = column(lag_steps, n, "lag_steps");
  const gd::LagModel model = gd::parse_lag_model(lag_model);
  // Sizes that cannot finish are an error, not an invalid point (those are bad physics).
  const long cap = model == gd::LagModel::kDelay ? gd::kMaxDelay : gd::kMaxRefreshInterval;
  double largest = -std::numeric_limits<double>::infinity();
  for (py::ssize_t i = 0; i < n; ++i)
    if (std::isfinite(lag_ptr[i])) largest = std::max(largest, lag_ptr[i]);
  if (largest > static_cast<double>(cap))
    throw std::invalid_argument(gd::must("lag_steps", "<= " + std::to_string(cap) + " for lag_model='" +
                                                          lag_model + "'", largest));
  py::array_t<double> radius(n), decay(n), dominant_real(n), dominant_imag(n);
  py::array_t<std::int32_t> regime(n);
  const gd::GridOutput out{radius.mutable_data(), decay.mutable_data(), dominant_real.mutable_data(),
                           dominant_imag.mutable_data(), regime.mutable_data()};
  gd::Cancel cancel = python_cancel();
  {
    py::gil_scoped_release release;
    gd::evaluate_grid(static_cast<std::size_t>(n), momentum_ptr, c_lag_ptr, c_now_ptr, lag_ptr, model, out,
                      threads, &cancel);
  }
  raise_if_cancelled(cancel);
  py::dict result;
  result["spectral_radius"] = radius;
  result["decay_rate"] = decay;
  result["dominant_real"] = dominant_real;
  result["dominant_imag"] = dominant_imag;
  result["regime_code"] = regime;
  return result;
}

long critical_refresh_interval(double momentum, double c_lag, double c_now, const py::object& max_interval) {
  const long limit = static_cast<long>(int_arg(max_interval, "max_interval", 1, gd::kMaxRefreshInterval));
  gd::Cancel cancel = python_cancel();
  long k;
  {
    py::gil_scoped_release release;
    k = gd::critical_refresh_interval(momentum, c_lag, c_now, limit, &cancel);
  }
  raise_if_cancelled(cancel);
  return k;
}

long critical_delay(double momentum, double c_lag, double c_now, const py::object& max_delay) {
  const long limit = static_cast<long>(int_arg(max_delay, "max_delay", 0, gd::kMaxDelay));
  gd::Cancel cancel = python_cancel();
  long d;
  {
    py::gil_scoped_release release;
    d = gd::critical_delay(momentum, c_lag, c_now, limit, &cancel);
  }
  raise_if_cancelled(cancel);
  return d;
}

double critical_scale(double momentum, double c_lag, double c_now, const std::string& lag_model,
                      const py::object& lag_steps, const std::string& criterion, double scan_ratio,
                      double decoupled_decay) {
  const gd::LinearModel model = make_model(momentum, c_lag, c_now, lag_model, lag_steps);
  gd::Cancel cancel = python_cancel();
  double scale;
  {
    py::gil_scoped_release release;
    scale = gd::critical_scale(model, criterion, scan_ratio, &cancel, decoupled_decay);
  }
  raise_if_cancelled(cancel);
  return scale;
}

}  // namespace

void bind_stability(py::module_& m) {
  py::dict regime_names;
  for (gd::Regime regime : gd::kRegimes) regime_names[py::int_(static_cast<int>(regime))] = gd::regime_name(regime);
  m.attr("REGIME_NAMES") = regime_names;
  m.attr("MAX_REFRESH_INTERVAL") = gd::kMaxRefreshInterval;
  m.attr("MAX_DELAY") = gd::kMaxDelay;
  m.attr("MAX_DENSE_DELAY") = gd::kMaxDenseDelay;
  m.attr("MIN_SCAN_RATIO") = gd::kMinScanRatio;
  m.def(
      "stability_transition_matrix",
      [](double momentum, double c_lag, double c_now, const std::string& lag_model, const py::object& lag_steps) {
        return Eigen::MatrixXd(gd::transition_matrix(make_model(momentum, c_lag, c_now, lag_model, lag_steps, true)));
      },
      py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"), py::arg("lag_model"), py::arg("lag_steps"),
      "Refresh-cycle (monodromy) matrix or delay companion matrix (docs/stability.md).");
  m.def(
      "refresh_cycle",
      [](double momentum, double c_lag, double c_now, const py::object& refresh_interval) {
        const long k = lag_arg(refresh_interval, gd::LagModel::kRefresh);
        const gd::RefreshCycle cycle = gd::refresh_cycle(momentum, c_lag, c_now, k);
        return py::make_tuple(Eigen::Matrix2d(cycle.monodromy), Eigen::Vector2d(cycle.noise_gain));
      },
      py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"), py::arg("refresh_interval"),
      "Closed-form cycle map M and per-cycle noise gain h: y_{n+1} = M y_n + h e_n.");
  m.def("stability_spectrum", &spectrum, py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"),
        py::arg("lag_model"), py::arg("lag_steps"),
        "Eigenvalues (Eigen), dominant eigenvalue, spectral radius, per-step decay rate, regime.");
  m.def("stationary_variance_unit", &stationary_variance, py::arg("momentum"), py::arg("c_lag"),
        py::arg("c_now"), py::arg("lag_model"), py::arg("lag_steps"),
        "Exact stationary Var(x) per unit noise variance: (phase mean, per-phase array).");
  m.def(
      "solve_discrete_lyapunov",
      [](const Eigen::MatrixXd& transition, const Eigen::MatrixXd& noise) {
        py::gil_scoped_release release;
        return Eigen::MatrixXd(gd::solve_discrete_lyapunov(transition, noise));
      },
      py::arg("transition"), py::arg("noise"), "Solve P = F P F^T + Q.");
  m.def(
      "roots_inside_radius",
      [](const std::vector<double>& coeffs, double radius) { return gd::roots_inside_radius(coeffs, radius); },
      py::arg("coeffs"), py::arg("radius"), "Schur-Cohn: all polynomial roots strictly inside |z| < radius.");
  m.def("critical_refresh_interval", &critical_refresh_interval, py::arg("momentum"), py::arg("c_lag"),
        py::arg("c_now"), py::arg("max_interval"),
        "Smallest unstable refresh interval K (0 if none up to max_interval). Interruptible.");
  m.def("critical_delay", &critical_delay, py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"),
        py::arg("max_delay"), "Smallest unstable delay D (-1 if none up to max_delay). Interruptible.");
  m.def("critical_scale", &critical_scale, py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"),
        py::arg("lag_model"), py::arg("lag_steps"), py::arg("criterion"), py::arg("scan_ratio"),
        py::arg("decoupled_decay") = 0.0,
        "Smallest common stiffness scale at which the criterion ('unstable'|'oscillatory') holds; "
        "decoupled_decay > 0: the scale is AdamW's lr, momentum (1 - lr decay), capped at 1 / decay. "
        "Interruptible.");
  m.def("stability_grid", &grid, py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"),
        py::arg("lag_steps"), py::arg("lag_model"), py::arg("threads") = 0,
        "Spectral radius, decay rate, dominant eigenvalue and regime code per grid point (threaded, "
        "interruptible).");
}
