#include "bindings.hpp"

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "grpo_dynamics/fit.hpp"
#include "grpo_dynamics/fit_kernel.hpp"
#include "grpo_dynamics/messages.hpp"

namespace {

using Int64Array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
namespace gd = grpo_dynamics;
constexpr long long kMaxInt = std::numeric_limits<int>::max();

// Ragged batch: series i is r[offsets[i]:offsets[i+1]] (and the same slice of weights) against
// t[t_offsets[i] : t_offsets[i] + length]. A shared time grid is t_offsets == 0 for every series.
py::dict fit_batch(const DoubleArray& t, const Int64Array& t_offsets, const DoubleArray& r,
                   const Int64Array& offsets, const std::optional<DoubleArray>& weights,
                   const std::string& model_name, const DoubleArray& lower,
                   const DoubleArray& upper, const std::optional<DoubleArray>& p0,
                   const py::object& threads_arg, const gd::FitOptions& opt) {
  const int threads = static_cast<int>(int_arg(threads_arg, "threads", 0, kMaxInt));
  gd::validate(opt);
  const gd::FitModel model = gd::fit_model_from_name(model_name);
  const int p = gd::fit_model_num_params(model);
  if (offsets.ndim() != 1 || offsets.size() < 1)
    throw std::invalid_argument("offsets: expected a 1-D array of n_series + 1 entries");
  const std::size_t n_series = static_cast<std::size_t>(offsets.size()) - 1;
  require_1d(t_offsets, "t_offsets: expected one entry per series", static_cast<py::ssize_t>(n_series));
  const std::int64_t* off = offsets.data();
  const std::int64_t* toff = t_offsets.data();
  if (off[0] != 0 || off[n_series] != static_cast<std::int64_t>(r.size()))
    throw std::invalid_argument("offsets: must start at 0 and end at len(r)");
  if (weights && weights->size() != r.size())
    throw std::invalid_argument("weights: must have the same layout as r");
  if (lower.size() != p || upper.size() != p)
    throw std::invalid_argument("bounds: expected " + std::to_string(p) + " values per side");
  if (p0 && static_cast<std::size_t>(p0->size()) != n_series * p)
    throw std::invalid_argument("p0: expected n_series x " + std::to_string(p) + " values");
  std::vector<gd::SeriesView> series(n_series);
  for (std::size_t i = 0; i < n_series; ++i) {
    const std::int64_t len = off[i + 1] - off[i];
    if (len < 0) throw std::invalid_argument("offsets: must be non-decreasing");
    if (toff[i] < 0 || toff[i] + len > static_cast<std::int64_t>(t.size()))
      throw std::invalid_argument("t_offsets: series " + std::to_string(i) + " runs past the end of t");
    series[i].t = t.data() + toff[i];
    series[i].r = r.data() + off[i];
    series[i].w = weights ? weights->data() + off[i] : nullptr;
    series[i].n = static_cast<std::size_t>(len);
  }
  gd::FitBounds bounds{std::vector<double>(lower.data(), lower.data() + p),
                       std::vector<double>(upper.data(), upper.data() + p)};
  const auto ns = static_cast<py::ssize_t>(n_series);
  const auto pp = static_cast<py::ssize_t>(p);
  py::array_t<double> params({ns, pp}), stderr_({ns, pp}), cov({ns, pp, pp}), lo({ns, pp}),
      hi({ns, pp});
  py::array_t<std::uint8_t> at_bound({ns, pp});
  py::array_t<double> rss(ns), r2(ns), sigma2(ns), aic(ns), bic(ns), r2_ceiling(ns), r2_window(ns);
  py::array_t<std::int32_t> n_iter(ns), status(ns), n_points(ns), window_used(ns);
  std::vector<std::string> reason;
  gd::BatchFitOutput out;
  out.params = params.mutable_data();
  out.stderr_ = stderr_.mutable_data();
  out.cov = cov.mutable_data();
  out.lower = lo.mutable_data();
  out.upper = hi.mutable_data();
  out.at_bound = at_bound.mutable_data();
  out.rss = rss.mutable_data();
  out.r2 = r2.mutable_data();
  out.r2_ceiling = r2_ceiling.mutable_data();
  out.r2_window = r2_window.mutable_data();
  out.window = window_used.mutable_data();
  out.sigma2 = sigma2.mutable_data();
  out.aic = aic.mutable_data();
  out.bic = bic.mutable_data();
  out.n_iter = n_iter.mutable_data();
  out.status = status.mutable_data();
  out.n_points = n_points.mutable_data();
  out.reason = &reason;
  const double* p0_data = p0 ? p0->data() : nullptr;
  gd::Cancel cancel = python_cancel();
  {
    py::gil_scoped_release release;  // the whole batch runs without the GIL
    gd::fit_batch(series, model, bounds, opt, p0_data, threads, out, &cancel);
  }
  raise_if_cancelled(cancel);
  py::dict d;
  d["params"] = params;
  d["stderr"] = stderr_;
  d["covariance"] = cov;
  d["lower"] = lo;
  d["upper"] = hi;
  d["at_bound"] = at_bound.attr("astype")("bool");
  d["rss"] = rss;
  d["r2"] = r2;
  d["r2_ceiling"] = r2_ceiling;
  d["r2_window"] = r2_window;
  d["window"] = window_used;
  d["sigma2"] = sigma2;
  d["aic"] = aic;
  d["bic"] = bic;
  d["n_iter"] = n_iter;
  d["status"] = status;
  d["n_points"] = n_points;
  d["reason"] = reason;
  return d;
}

py::tuple logistic_curve(const DoubleArray& t, double r_lo, double r_hi, double t_mid, double s) {
  require_1d(t, "t: must be a 1-D array of times");
  const auto n = static_cast<py::ssize_t>(t.shape(0));
  py::array_t<double> value(n), jac({n, static_cast<py::ssize_t>(gd::kMaxFitParams)});
  const double* t_ptr = t.data();
  double* value_ptr = value.mutable_data();
  double* jac_ptr = jac.mutable_data();
  {
    py::gil_scoped_release release;
    gd::logistic_curve(t_ptr, static_cast<std::size_t>(n), r_lo, r_hi, t_mid, s, value_ptr, jac_ptr);
  }
  return py::make_tuple(value, jac);
}

std::string repr(const gd::FitOptions& o) {
  const auto f = [](double x) { return gd::format_value(x); };
  return "FitOptions(max_iter=" + std::to_string(o.max_iter) + ", ftol=" + f(o.ftol) +
         ", xtol=" + f(o.xtol) + ", gtol=" + f(o.gtol) + ", n_starts=" + std::to_string(o.n_starts) +
         ", restart_rss_ratio=" + f(o.restart_rss_ratio) + ", t0=" + f(o.t0) +
         ", range_widen=" + f(o.range_widen) + ", mu_max=" + f(o.mu_max) +
         ", singular_rcond=" + f(o.singular_rcond) + ", nested_mu0=" + (o.nested_mu0 ? "True" : "False") +
         ", nested_mu_max=" + f(o.nested_mu_max) + ", window=" + std::to_string(o.window) + ")";
}

// Integer fields go through int_arg (range-checked, named); the others are typed by pybind11.
template <int gd::FitOptions::*Field>
void int_property(py::class_<gd::FitOptions>& cls, const char* name, long long lo, long long hi) {
  cls.def_property(
      name, [](const gd::FitOptions& o) { return o.*Field; },
      [name, lo, hi](gd::FitOptions& o, const py::object& v) { o.*Field = static_cast<int>(int_arg(v, name, lo, hi)); });
}

void bind_fit_options(py::module_& m) {
  const gd::FitOptions d;  // the defaults are defined once, in fit.hpp
  py::class_<gd::FitOptions> cls(m, "FitOptions",
                                 "Options of the bounded Levenberg-Marquardt fitter (docs/fitting.md); "
                                 "keyword-only, validated on construction.");
  cls.def(py::init([](const py::object& max_iter, double ftol, double xtol, double gtol,
                      const py::object& n_starts, double restart_rss_ratio, double t0, double range_widen,
                      double mu_max, double singular_rcond, bool nested_mu0, double nested_mu_max,
                      const py::object& window) {
            gd::FitOptions o;
            o.max_iter = static_cast<int>(int_arg(max_iter, "max_iter", 1, gd::kMaxFitIter));
            o.ftol = ftol;
            o.xtol = xtol;
            o.gtol = gtol;
            o.n_starts = static_cast<int>(int_arg(n_starts, "n_starts", 1, kMaxInt));
            o.restart_rss_ratio = restart_rss_ratio;
            o.t0 = t0;
            o.range_widen = range_widen;
            o.mu_max = mu_max;
            o.singular_rcond = singular_rcond;
            o.nested_mu0 = nested_mu0;
            o.nested_mu_max = nested_mu_max;
            o.window = static_cast<int>(int_arg(window, "window", 0, kMaxInt));
            gd::validate(o);
            return o;
          }),
          py::kw_only(), py::arg("max_iter") = d.max_iter, py::arg("ftol") = d.ftol,
          py::arg("xtol") = d.xtol, py::arg("gtol") = d.gtol, py::arg("n_starts") = d.n_starts,
          py::arg("restart_rss_ratio") = d.restart_rss_ratio, py::arg("t0") = d.t0,
          py::arg("range_widen") = d.range_widen, py::arg("mu_max") = d.mu_max,
          py::arg("singular_rcond") = d.singular_rcond, py::arg("nested_mu0") = d.nested_mu0,
          py::arg("nested_mu_max") = d.nested_mu_max, py::arg("window") = d.window);
  int_property<&gd::FitOptions::max_iter>(cls, "max_iter", 1, gd::kMaxFitIter);
  int_property<&gd::FitOptions::n_starts>(cls, "n_starts", 1, kMaxInt);
  int_property<&gd::FitOptions::window>(cls, "window", 0, kMaxInt);
  cls.def_readwrite("ftol", &gd::FitOptions::ftol)
      .def_readwrite("xtol", &gd::FitOptions::xtol)
      .def_readwrite("gtol", &gd::FitOptions::gtol)
      .def_readwrite("restart_rss_ratio", &gd::FitOptions::restart_rss_ratio)
      .def_readwrite("t0", &gd::FitOptions::t0)
      .def_readwrite("range_widen", &gd::FitOptions::range_widen)
      .def_readwrite("mu_max", &gd::FitOptions::mu_max)
      .def_readwrite("singular_rcond", &gd::FitOptions::singular_rcond)
      .def_readwrite("nested_mu0", &gd::FitOptions::nested_mu0)
      .def_readwrite("nested_mu_max", &gd::FitOptions::nested_mu_max)
      .def("__repr__", &repr);
}

// The fitter's inner loop on one uniform grid, for tests (docs/fitting.md, "Speed").
py::tuple fit_normal_sums(double t_first, double dt, const DoubleArray& y, const DoubleArray& w,
                          double r0, double r_inf, double tau, double mu, double t0, int n_params,
                          const std::optional<DoubleArray>& scale) {
  require_1d(y, "y: must be a 1-D array");
  require_1d(w, "w: must be a 1-D array of the length of y", y.shape(0));
  if (n_params != 3 && n_params != 4)
    throw std::invalid_argument(gd::must("n_params", "3 or 4", n_params));
  if (n_params == 3 && mu != 0.0) throw std::invalid_argument(gd::must("mu", "0 with n_params = 3", mu));
  if (scale) require_1d(*scale, "scale: must have 4 entries", 4);
  if (!std::isfinite(t_first)) throw std::invalid_argument(gd::must("t_first", "finite", t_first));
  if (!(dt > 0) || !std::isfinite(dt)) throw std::invalid_argument(gd::must("dt", "finite and > 0", dt));
  const gd::OscillatorParams params{r0, r_inf, tau, mu, t0, 0.0};
  gd::detail::validate(params);
  gd::detail::NormalSums sums;
  py::array_t<double> values(y.shape(0));
  const bool finite = gd::detail::oscillator_normal_sums(
      t_first, dt, static_cast<std::size_t>(y.shape(0)), params, y.data(), w.data(), n_params,
      scale ? scale->data() : nullptr, sums, values.mutable_data());
  py::array_t<double> a({4, 4});
  py::array_t<double> g(4);
  for (int j = 0; j < 4; ++j) {
    g.mutable_at(j) = sums.g[j];
    for (int k = 0; k < 4; ++k) a.mutable_at(j, k) = j <= k ? sums.a[j][k] : sums.a[k][j];
  }
  return py::make_tuple(finite, sums.rss, a, g, values);
}

}  // namespace

void bind_fit(py::module_& m) {
  bind_fit_options(m);
  py::tuple status_names(gd::kFitStatusNames.size());
  for (std::size_t i = 0; i < gd::kFitStatusNames.size(); ++i) status_names[i] = gd::kFitStatusNames[i];
  m.attr("FIT_STATUS_NAMES") = status_names;
  m.attr("MAX_FIT_ITER") = gd::kMaxFitIter;
  m.def("fit_batch", &fit_batch, py::arg("t"), py::arg("t_offsets"), py::arg("r"),
        py::arg("offsets"), py::arg("weights"), py::arg("model"), py::arg("lower"),
        py::arg("upper"), py::arg("p0"), py::arg("threads"), py::arg("options") = gd::FitOptions(),
        "Fit every series of a ragged batch with bounded Levenberg-Marquardt (docs/fitting.md).\n"
        "Ctrl-C interrupts it (KeyboardInterrupt) between series.");
  m.def("_fit_normal_sums", &fit_normal_sums, py::arg("t_first"), py::arg("dt"), py::arg("y"),
        py::arg("w"), py::arg("r0"), py::arg("r_inf"), py::arg("tau"), py::arg("mu"),
        py::arg("t0"), py::arg("n_params"), py::arg("scale") = py::none(),
        "(finite, rss, J^T W J, J^T W (f - y), f) of the fitter's inner loop on the grid "
        "t_first + i dt (for tests; columns r0, r_inf, tau, mu, each times scale).");
  m.def("_fit_kernel_isa", [] { return std::string(gd::detail::fit_kernel_isa()); },
        "The clone of the fitter's inner loop in use: 'avx2' or 'baseline'.");
  m.def("logistic_curve", &logistic_curve, py::arg("t"), py::arg("r_lo"), py::arg("r_hi"),
        py::arg("t_mid"), py::arg("s"),
        "Logistic curve and its analytic Jacobian (columns r_lo, r_hi, t_mid, s).");
  m.def("fit_model_param_names",
        [](const std::string& model) {
          return gd::fit_model_param_names(gd::fit_model_from_name(model));
        },
        py::arg("model"), "Parameter names of a fit model, in column order.");
}
