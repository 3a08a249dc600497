#include "bindings.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "grpo_dynamics/fit.hpp"

namespace {

using Int64Array = py::array_t<std::int64_t, py::array::c_style | py::array::forcecast>;
namespace gd = grpo_dynamics;

// Ragged batch: series i is r[offsets[i]:offsets[i+1]] (and the same slice of weights) against
// t[t_offsets[i] : t_offsets[i] + length]. A shared time grid is t_offsets == 0 for every series.
py::dict fit_batch(const DoubleArray& t, const Int64Array& t_offsets, const DoubleArray& r,
                   const Int64Array& offsets, const std::optional<DoubleArray>& weights,
                   const std::string& model_name, const DoubleArray& lower,
                   const DoubleArray& upper, const std::optional<DoubleArray>& p0, int threads,
                   double t0, int max_iter, int n_starts, double ftol, double xtol, double gtol,
                   double range_widen, double mu_max, double restart_rss_ratio,
                   bool nested_mu0, double nested_mu_max, int window) {
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
  gd::FitOptions opt;
  opt.t0 = t0;
  opt.max_iter = max_iter;
  opt.n_starts = n_starts;
  opt.ftol = ftol;
  opt.xtol = xtol;
  opt.gtol = gtol;
  opt.range_widen = range_widen;
  opt.mu_max = mu_max;
  opt.restart_rss_ratio = restart_rss_ratio;
  opt.nested_mu0 = nested_mu0;
  opt.nested_mu_max = nested_mu_max;
  opt.window = window;

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
  {
    py::gil_scoped_release release;  // the whole batch runs without the GIL
    gd::fit_batch(series, model, bounds, opt, p0_data, threads, out);
  }
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
  const auto n = static_cast<py::ssize_t>(t.size());
  py::array_t<double> value(n), jac({n, static_cast<py::ssize_t>(gd::kMaxFitParams)});
  gd::logistic_curve(t.data(), static_cast<std::size_t>(n), r_lo, r_hi, t_mid, s,
                     value.mutable_data(), jac.mutable_data());
  return py::make_tuple(value, jac);
}

}  // namespace

void bind_fit(py::module_& m) {
  m.def("fit_batch", &fit_batch, py::arg("t"), py::arg("t_offsets"), py::arg("r"),
        py::arg("offsets"), py::arg("weights"), py::arg("model"), py::arg("lower"),
        py::arg("upper"), py::arg("p0"), py::arg("threads"), py::arg("t0") = 0.0,
        py::arg("max_iter") = 200, py::arg("n_starts") = 2, py::arg("ftol") = 1e-10,
        py::arg("xtol") = 1e-10, py::arg("gtol") = 1e-10, py::arg("range_widen") = 1.0,
        py::arg("mu_max") = 1e4, py::arg("restart_rss_ratio") = 2.0,
        py::arg("nested_mu0") = true, py::arg("nested_mu_max") = 1e-2, py::arg("window") = 0,
        "Fit every series of a ragged batch with bounded Levenberg-Marquardt (docs/fitting.md).");
  m.def("logistic_curve", &logistic_curve, py::arg("t"), py::arg("r_lo"), py::arg("r_hi"),
        py::arg("t_mid"), py::arg("s"),
        "Logistic curve and its analytic Jacobian (columns r_lo, r_hi, t_mid, s).");
  m.def("fit_model_param_names",
        [](const std::string& model) {
          return gd::fit_model_param_names(gd::fit_model_from_name(model));
        },
        py::arg("model"), "Parameter names of a fit model, in column order.");
}
