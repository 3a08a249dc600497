#include "bindings.hpp"

#include <pybind11/eigen.h>

#include <stdexcept>
#include <string>

#include "grpo_dynamics/stability.hpp"

namespace {

namespace gs = grpo_dynamics::stability;

gs::LinearModel make_model(double momentum, double c_lag, double c_now, const std::string& lag_model,
                           long lag_steps) {
  gs::LinearModel model{momentum, c_lag, c_now, gs::parse_lag_model(lag_model), lag_steps};
  gs::validate(model);
  return model;
}

py::dict spectrum(double momentum, double c_lag, double c_now, const std::string& lag_model,
                  long lag_steps) {
  const gs::LinearModel model = make_model(momentum, c_lag, c_now, lag_model, lag_steps);
  gs::Spectrum spec;
  {
    py::gil_scoped_release release;
    spec = gs::spectrum(model);
  }
  py::dict out;
  out["eigenvalues"] = Eigen::VectorXcd(spec.eigenvalues);
  out["dominant"] = spec.dominant;
  out["spectral_radius"] = spec.spectral_radius;
  out["decay_rate"] = spec.decay_rate;
  out["regime"] = std::string(gs::regime_name(spec.regime));
  return out;
}

py::tuple stationary_variance(double momentum, double c_lag, double c_now, const std::string& lag_model,
                              long lag_steps) {
  const gs::LinearModel model = make_model(momentum, c_lag, c_now, lag_model, lag_steps);
  gs::StationaryVariance result;
  {
    py::gil_scoped_release release;
    result = gs::stationary_variance(model);
  }
  py::array_t<double> per_phase(static_cast<py::ssize_t>(result.per_phase.size()));
  std::copy(result.per_phase.begin(), result.per_phase.end(), per_phase.mutable_data());
  return py::make_tuple(result.mean, per_phase);
}

const double* column(const DoubleArray& array, py::ssize_t n, const char* name) {
  require_1d(array, std::string(name) + " must be a 1-D array of the same length as momentum", n);
  return array.data();
}

py::dict grid(const DoubleArray& momentum, const DoubleArray& c_lag, const DoubleArray& c_now,
              const DoubleArray& lag_steps, const std::string& lag_model, int threads) {
  require_1d(momentum, "momentum must be a 1-D array");
  const py::ssize_t n = momentum.shape(0);
  const double* momentum_ptr = momentum.data();
  const double* c_lag_ptr = column(c_lag, n, "c_lag");
  const double* c_now_ptr = column(c_now, n, "c_now");
  const double* lag_ptr = column(lag_steps, n, "lag_steps");
  const gs::LagModel model = gs::parse_lag_model(lag_model);
  py::array_t<double> radius(n), decay(n), dominant_real(n), dominant_imag(n);
  py::array_t<std::int32_t> regime(n);
  const gs::GridOutput out{radius.mutable_data(), decay.mutable_data(), dominant_real.mutable_data(),
                           dominant_imag.mutable_data(), regime.mutable_data()};
  {
    py::gil_scoped_release release;
    gs::evaluate_grid(static_cast<std::size_t>(n), momentum_ptr, c_lag_ptr, c_now_ptr, lag_ptr, model, out,
                      threads);
  }
  py::dict result;
  result["spectral_radius"] = radius;
  result["decay_rate"] = decay;
  result["dominant_real"] = dominant_real;
  result["dominant_imag"] = dominant_imag;
  result["regime_code"] = regime;
  return result;
}

}  // namespace

void bind_stability(py::module_& m) {
  m.def(
      "stability_transition_matrix",
      [](double momentum, double c_lag, double c_now, const std::string& lag_model, long lag_steps) {
        return Eigen::MatrixXd(gs::transition_matrix(make_model(momentum, c_lag, c_now, lag_model, lag_steps)));
      },
      py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"), py::arg("lag_model"), py::arg("lag_steps"),
      "Refresh-cycle (monodromy) matrix or delay companion matrix (docs/stability.md).");
  m.def(
      "refresh_cycle",
      [](double momentum, double c_lag, double c_now, long refresh_interval) {
        const gs::RefreshCycle cycle = gs::refresh_cycle(momentum, c_lag, c_now, refresh_interval);
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
        return Eigen::MatrixXd(gs::solve_discrete_lyapunov(transition, noise));
      },
      py::arg("transition"), py::arg("noise"), "Solve P = F P F^T + Q.");
  m.def(
      "roots_inside_radius",
      [](const std::vector<double>& coeffs, double radius) { return gs::roots_inside_radius(coeffs, radius); },
      py::arg("coeffs"), py::arg("radius"), "Schur-Cohn: all polynomial roots strictly inside |z| < radius.");
  m.def(
      "critical_refresh_interval",
      [](double momentum, double c_lag, double c_now, long max_interval) {
        py::gil_scoped_release release;
        return gs::critical_refresh_interval(momentum, c_lag, c_now, max_interval);
      },
      py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"), py::arg("max_interval"),
      "Smallest unstable refresh interval K (0 if none up to max_interval).");
  m.def(
      "critical_delay",
      [](double momentum, double c_lag, double c_now, long max_delay) {
        py::gil_scoped_release release;
        return gs::critical_delay(momentum, c_lag, c_now, max_delay);
      },
      py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"), py::arg("max_delay"),
      "Smallest unstable delay D (-1 if none up to max_delay).");
  m.def(
      "critical_scale",
      [](double momentum, double c_lag, double c_now, const std::string& lag_model, long lag_steps,
         const std::string& criterion, double scan_ratio) {
        const gs::LinearModel model = make_model(momentum, c_lag, c_now, lag_model, lag_steps);
        py::gil_scoped_release release;
        return gs::critical_scale(model, criterion, scan_ratio);
      },
      py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"), py::arg("lag_model"), py::arg("lag_steps"),
      py::arg("criterion"), py::arg("scan_ratio"),
      "Smallest common stiffness scale at which the criterion ('unstable'|'oscillatory') holds.");
  m.def("stability_grid", &grid, py::arg("momentum"), py::arg("c_lag"), py::arg("c_now"),
        py::arg("lag_steps"), py::arg("lag_model"), py::arg("threads") = 0,
        "Spectral radius, decay rate, dominant eigenvalue and regime code per grid point (threaded).");
}
