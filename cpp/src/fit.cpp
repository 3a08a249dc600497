// Batched bounded Levenberg-Marquardt (docs/fitting.md). See fit.hpp for the contract.
#include "grpo_dynamics/fit.hpp"

#include <Eigen/Dense>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <limits>
#include <stdexcept>
#include <utility>

#include "grpo_dynamics/constants.hpp"
#include "grpo_dynamics/fit_kernel.hpp"
#include "grpo_dynamics/messages.hpp"
#include "grpo_dynamics/parallel.hpp"
#include "grpo_dynamics/trajectory.hpp"

namespace grpo_dynamics {

namespace {

// Profiling counters (per fit: LM runs, trial steps, model evaluations with the Jacobian, grid
// evaluations, escape runs, stopping reasons, points evaluated), compiled in only with
// -DGRPO_FIT_COUNTERS and printed to stderr at the end of fit_batch (not thread-safe across
// concurrent fit_batch calls; a profiling aid, never in a release build).
#ifdef GRPO_FIT_COUNTERS
struct Counters {
  long fits = 0, lm_runs = 0, iters = 0, evals_jac = 0, evals_val = 0, grid_evals = 0,
       escape_runs = 0, gn_stop = 0, rival_stop = 0, rejected = 0, pts = 0;
};
Counters g_count[64];
thread_local int t_tid = 0;
#define COUNT(field) (++g_count[t_tid].field)
#else
#define COUNT(field) ((void)0)
#endif

constexpr int kJacStride = kMaxFitParams;  // every model writes an n x 4 Jacobian
constexpr std::size_t kGridPoints = 64;    // starts are ranked on at most this many points
constexpr std::size_t kFitChunk = 16;      // series a worker takes at a time (fit_batch)

using MatP = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, kMaxFitParams, kMaxFitParams>;
using VecP = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, kMaxFitParams, 1>;

// Time points of one series, flagged when they lie on a uniform grid t_first + i * dt.
struct Grid {
  const double* t = nullptr;
  std::size_t n = 0;
  bool uniform = false;
  double dt = 0.0;
};

Grid make_grid(const double* t, std::size_t n) {
  Grid g{t, n, false, 0.0};
  if (n < 3) return g;
  const double dt = (t[n - 1] - t[0]) / static_cast<double>(n - 1);
  const double tol = 1e-12 * (std::fabs(t[0]) + std::fabs(t[n - 1]) + dt);
  for (std::size_t i = 1; i + 1 < n; ++i)
    if (std::fabs(t[i] - (t[0] + static_cast<double>(i) * dt)) > tol) return g;
  g.uniform = dt > 0;
  g.dt = dt;
  return g;
}

// Evaluates one model on one series' time points (values and the n x 4 Jacobian; LM's normal
// equations of the oscillator/exponential on uniform grids come from fit_kernel instead, see
// evaluate_normal). Uniform grids take the trajectory's recurrence path (multiplications, no
// exp/cos/sin).
class CurveModel {
 public:
  CurveModel(FitModel model, double t0) : model_(model), t0_(t0) {}
  int num_params() const { return fit_model_num_params(model_); }
  FitModel model() const { return model_; }

  // value[i] = model(t[i]); jac (row stride 4) = d value / d params, or null for values only.
  void eval(const Grid& g, const double* x, double* value, double* jac) const {
    if (model_ == FitModel::kLogistic) {
      logistic_curve(g.t, g.n, x[0], x[1], x[2], x[3], value, jac);
      return;
    }
    // The exponential is the oscillator with mu fixed at 0, its exact limit (column 3 unused).
    const OscillatorParams p{x[0], x[1], x[2], model_ == FitModel::kOscillator ? x[3] : 0.0, t0_,
                             0.0};
    if (g.uniform)
      trajectory_uniform(g.t[0], g.dt, g.n, p, value, jac, kJacStride);
    else
      trajectory(g.t, g.n, p, value, jac, kJacStride);
  }

 private:
  FitModel model_;
  double t0_;
};

struct LmRun {
  double x[kMaxFitParams] = {0, 0, 0, 0};
  double rss = kInf;
  int n_iter = 0;
  bool converged = false;
};

struct Workspace {
  std::vector<double> t, y, w;            // cleaned series
  std::vector<double> f, jac;             // scratch of the unfused evaluation (evaluate_normal)
  std::vector<double> gaps;               // scratch: spacings, for the median logging interval
  std::vector<double> f_best;             // the optimum's values, for the statistics
  std::vector<double> t_grid, y_grid, w_grid, shape;  // subsample used to rank starts
  // Start shapes A(u) of the start grid's (tau, mu) pairs on one uniform subsample, kept across
  // the series a worker fits: series on the same time grid share those pairs (they depend only
  // on the grid and the bounds), so each is computed once. The series' own tau63 shapes are not
  // kept. A different grid empties the cache (slots and their storage are reused).
  struct CachedShape {
    double tau, mu;
    std::vector<double> shape;
  };
  struct ShapeGridKey {
    FitModel model;
    double t_first, dt, t0;
    std::size_t m;
    bool operator==(const ShapeGridKey& o) const {
      return model == o.model && t_first == o.t_first && dt == o.dt && t0 == o.t0 && m == o.m;
    }
  };
  ShapeGridKey shape_grid{FitModel::kLogistic, 0.0, 0.0, 0.0, 0};  // no uniform grid yet
  std::vector<CachedShape> shape_cache;  // slots; the first shape_cache_used are valid
  std::size_t shape_cache_used = 0;
};

// A(u; tau, mu) of a start on the subsample `sub` (model values with r0 = 1, r_inf = 0). With
// `shared` (a pair of the start grid that every series on this grid has) it comes from, or goes
// to, the worker's cache.
const double* start_shape(const CurveModel& cm, const Grid& sub, const double (&x)[kMaxFitParams],
                          double t0, bool shared, Workspace& ws) {
  if (!sub.uniform || !shared) {
    cm.eval(sub, x, ws.shape.data(), nullptr);
    return ws.shape.data();
  }
  const Workspace::ShapeGridKey key{cm.model(), sub.t[0], sub.dt, t0, sub.n};
  if (!(key == ws.shape_grid)) {
    ws.shape_grid = key;
    ws.shape_cache_used = 0;
  }
  for (std::size_t k = 0; k < ws.shape_cache_used; ++k) {
    const Workspace::CachedShape& c = ws.shape_cache[k];
    if (c.tau == x[2] && c.mu == x[3]) return c.shape.data();
  }
  if (ws.shape_cache_used == ws.shape_cache.size()) ws.shape_cache.emplace_back();
  Workspace::CachedShape& slot = ws.shape_cache[ws.shape_cache_used];
  slot.shape.resize(sub.n);
  cm.eval(sub, x, slot.shape.data(), nullptr);  // may throw (a start outside the domain): not kept
  slot.tau = x[2];
  slot.mu = x[3];
  ++ws.shape_cache_used;
  return slot.shape.data();
}

struct Problem {
  const CurveModel* model;
  Grid grid;
  const double* t;
  const double* y;
  const double* w;
  std::size_t n;
  int p;
  double lower[kMaxFitParams];
  double upper[kMaxFitParams];
  // Parameters that LM moves in log coordinates (x[j] holds log of the model's parameter, the
  // bounds are logs too): the valley polish of fit_one. Empty (all false) everywhere else.
  bool log_param[kMaxFitParams] = {false, false, false, false};
};

double clip(double v, double lo, double hi) { return std::min(std::max(v, lo), hi); }

double weighted_rss(const double* f, const double* y, const double* w, std::size_t n) {
  double s = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double d = f[i] - y[i];
    s += w[i] * d * d;
  }
  return s;
}

// A = J^T W J, g = J^T W (f - y) over the first P columns; P fixed at compile time so that the
// inner products unroll (this pass is a sixth of a fit's time at 500 points).
template <int P>
void accumulate_normal(const double* f, const double* jac, const double* y, const double* w,
                       std::size_t n, double (&a)[kMaxFitParams][kMaxFitParams],
                       double (&gg)[kMaxFitParams]) {
  for (std::size_t i = 0; i < n; ++i) {
    const double* J = jac + i * kJacStride;
    const double wd = w[i] * (f[i] - y[i]);
    for (int j = 0; j < P; ++j) {
      const double wj = w[i] * J[j];
      gg[j] += J[j] * wd;
      for (int k = j; k < P; ++k) a[j][k] += wj * J[k];
    }
  }
}

void normal_equations(const double* f, const double* jac, const double* y, const double* w,
                      std::size_t n, int p, MatP& A, VecP& g) {
  double a[kMaxFitParams][kMaxFitParams] = {};
  double gg[kMaxFitParams] = {};
  if (p == 4)
    accumulate_normal<4>(f, jac, y, w, n, a, gg);
  else
    accumulate_normal<3>(f, jac, y, w, n, a, gg);
  A.resize(p, p);
  g.resize(p);
  for (int j = 0; j < p; ++j) {
    g(j) = gg[j];
    for (int k = j; k < p; ++k) A(j, k) = A(k, j) = a[j][k];
  }
}

// The parameters of the model at LM coordinates x (log coordinates exponentiated) and the
// chain-rule factor of each Jacobian column (d f / d log x = x d f / d x; 1 elsewhere).
bool model_coordinates(const Problem& pb, const double* x, double (&x_model)[kMaxFitParams],
                       double (&scale)[kMaxFitParams]) {
  bool any_log = false;
  for (int j = 0; j < kMaxFitParams; ++j) {
    const bool log_j = j < pb.p && pb.log_param[j];
    x_model[j] = j < pb.p ? (log_j ? std::exp(x[j]) : x[j]) : 0.0;
    scale[j] = log_j ? x_model[j] : 1.0;
    any_log = any_log || log_j;
  }
  return any_log;
}

bool eval_safe(const Problem& pb, const double* x, double* f, double* jac) {
  if (jac) COUNT(evals_jac); else COUNT(evals_val);
#ifdef GRPO_FIT_COUNTERS
  g_count[t_tid].pts += static_cast<long>(pb.n);
#endif
  double x_model[kMaxFitParams], scale[kMaxFitParams];
  const bool any_log = model_coordinates(pb, x, x_model, scale);
  try {
    pb.model->eval(pb.grid, x_model, f, jac);
  } catch (const std::exception&) {
    return false;  // a trial outside the model's domain is a rejected step, not a crash
  }
  if (any_log && jac)  // chain rule: d f / d log x = x d f / d x
    for (std::size_t i = 0; i < pb.n; ++i)
      for (int j = 0; j < pb.p; ++j)
        if (pb.log_param[j]) jac[i * kJacStride + j] *= scale[j];
  for (std::size_t i = 0; i < pb.n; ++i)
    if (!std::isfinite(f[i])) return false;
  return true;
}


// rss, A = J^T W J and g = J^T W (f - y) at the LM point x, and the model values into `values`
// when given; false when the model cannot be evaluated there (a rejected step). The oscillator
// and the exponential on a uniform grid take the fused pass; the logistic and irregular grids
// evaluate f and J into the workspace first.
bool evaluate_normal(const Problem& pb, const double* x, double t0, Workspace& ws, double& rss,
                     MatP& A, VecP& g, double* values = nullptr) {
  const FitModel m = pb.model->model();
  const int p = pb.p;
  if (m != FitModel::kLogistic && pb.grid.uniform) {
    COUNT(evals_jac);
#ifdef GRPO_FIT_COUNTERS
    g_count[t_tid].pts += static_cast<long>(pb.n);
#endif
    double x_model[kMaxFitParams], scale[kMaxFitParams];
    const bool any_log = model_coordinates(pb, x, x_model, scale);
    const OscillatorParams prm{x_model[0], x_model[1], x_model[2],
                               m == FitModel::kOscillator ? x_model[3] : 0.0, t0, 0.0};
    try {
      detail::validate(prm);
    } catch (const std::exception&) {
      return false;  // a trial outside the model's domain is a rejected step, not a crash
    }
    detail::NormalSums sums;
    if (!detail::oscillator_normal_sums(pb.grid.t[0], pb.grid.dt, pb.n, prm, pb.y, pb.w, p,
                                        any_log ? scale : nullptr, sums, values))
      return false;
    rss = sums.rss;
    A.resize(p, p);
    g.resize(p);
    for (int j = 0; j < p; ++j) {
      g(j) = sums.g[j];
      for (int k = j; k < p; ++k) A(j, k) = A(k, j) = sums.a[j][k];
    }
    return true;
  }
  if (values == nullptr) {
    ws.f.resize(pb.n);
    values = ws.f.data();
  }
  ws.jac.resize(pb.n * kJacStride);
  if (!eval_safe(pb, x, values, ws.jac.data())) return false;
  rss = weighted_rss(values, pb.y, pb.w, pb.n);
  normal_equations(values, ws.jac.data(), pb.y, pb.w, pb.n, p, A, g);
  return true;
}

// The optimum's RSS and normal equations, for the statistics (its values are in ws.f_best).
struct Optimum {
  double rss = kInf;
  MatP A;
  VecP g;
};

// Evaluates the optimum x (model coordinates): values into ws.f_best, RSS and normal equations
// into opt, by the same evaluation LM used (so the RSS is the one LM minimised).
bool evaluate_optimum(const Problem& pb, const double* x, double t0, Workspace& ws, Optimum& opt) {
  ws.f_best.resize(pb.n);
  return evaluate_normal(pb, x, t0, ws, opt.rss, opt.A, opt.g, ws.f_best.data());
}

// Classic Levenberg-Marquardt with Marquardt (diagonal) scaling and box bounds handled by an
// active set + projection: parameters held at a bound by the gradient leave the step system.
// `rival` (optional): the best optimum found so far. A run that comes within 1e-2 standard
// errors of it (dx^T J^T W J dx <= 1e-4 rss / n) without a lower RSS is in the same basin and
// stops there: it would only reconverge to the rival (saves the final iterations of restarts).
LmRun run_lm(const Problem& pb, const double* x_start, const FitOptions& o, Workspace& ws,
             const LmRun* rival = nullptr) {
  const int p = pb.p;
  COUNT(lm_runs);
  LmRun run;
  for (int j = 0; j < p; ++j) run.x[j] = clip(x_start[j], pb.lower[j], pb.upper[j]);
  double rss = kInf;
  MatP A, A_trial;
  VecP g, g_trial;
  if (!evaluate_normal(pb, run.x, o.t0, ws, rss, A, g)) return run;
  double diag[kMaxFitParams];
  for (int j = 0; j < p; ++j) diag[j] = std::max(A(j, j), 1e-300);
  double lambda = 1e-3;
  double nu = 2.0;
  int iter = 0;
  bool converged = false;
  while (iter < o.max_iter) {
    if (rss == 0.0) {
      converged = true;
      break;
    }
    // Active set: at a bound with the descent direction pointing outside, or fixed.
    int free_idx[kMaxFitParams];
    int nfree = 0;
    double gmax = 0.0;
    for (int j = 0; j < p; ++j) {
      if (pb.lower[j] == pb.upper[j]) continue;
      if (run.x[j] <= pb.lower[j] && g(j) > 0) continue;
      if (run.x[j] >= pb.upper[j] && g(j) < 0) continue;
      free_idx[nfree++] = j;
      if (A(j, j) > 0) gmax = std::max(gmax, std::fabs(g(j)) / std::sqrt(A(j, j) * rss));
    }
    if (nfree == 0 || gmax <= o.gtol) {
      converged = true;
      break;
    }
    MatP M(nfree, nfree);
    VecP rhs(nfree);
    for (int a = 0; a < nfree; ++a) {
      rhs(a) = -g(free_idx[a]);
      for (int b = 0; b < nfree; ++b) M(a, b) = A(free_idx[a], free_idx[b]);
    }
    // Gauss-Newton decrement g^T A^-1 g: the RSS reduction still available to the local
    // quadratic model. Below ftol * rss the optimum is reached: stop without a trial evaluation.
    {
      Eigen::LLT<MatP> gn(M);
      if (gn.info() == Eigen::Success && rhs.dot(gn.solve(rhs)) <= o.ftol * rss) {
        COUNT(gn_stop);
        converged = true;
        break;
      }
    }
    for (int a = 0; a < nfree; ++a) M(a, a) += lambda * diag[free_idx[a]];
    Eigen::LLT<MatP> llt(M);
    ++iter;
    COUNT(iters);
    if (llt.info() != Eigen::Success) {
      lambda *= nu;
      nu *= 2.0;
      continue;
    }
    const VecP delta = llt.solve(rhs);
    double x_trial[kMaxFitParams];
    for (int j = 0; j < p; ++j) x_trial[j] = run.x[j];
    for (int a = 0; a < nfree; ++a) {
      const int j = free_idx[a];
      x_trial[j] = clip(run.x[j] + delta(a), pb.lower[j], pb.upper[j]);
    }
    // Predicted reduction of the projected step from the local quadratic model.
    VecP step(p);
    double step_norm = 0.0, x_norm = 0.0;
    for (int j = 0; j < p; ++j) {
      step(j) = x_trial[j] - run.x[j];
      step_norm += diag[j] * step(j) * step(j);
      x_norm += diag[j] * run.x[j] * run.x[j];
    }
    step_norm = std::sqrt(step_norm);
    x_norm = std::sqrt(x_norm);
    const double pred = -(2.0 * g.dot(step) + step.dot(A * step));
    double rss_trial = kInf;
    if (!(step_norm > 0 && evaluate_normal(pb, x_trial, o.t0, ws, rss_trial, A_trial, g_trial)))
      rss_trial = kInf;
    const double actual = rss - rss_trial;
    const double rho = pred > 0 ? actual / pred : -1.0;
    const double rss_before = rss;
    if (rho > 1e-4 && actual > 0) {
      for (int j = 0; j < p; ++j) run.x[j] = x_trial[j];
      rss = rss_trial;
      std::swap(A, A_trial);
      std::swap(g, g_trial);
      for (int j = 0; j < p; ++j) diag[j] = std::max(diag[j], A(j, j));
      const double c = 2.0 * rho - 1.0;
      lambda *= std::max(1.0 / 3.0, 1.0 - c * c * c);
      nu = 2.0;
      if (rival != nullptr && std::isfinite(rival->rss) && rss >= rival->rss) {
        VecP dx(p);
        for (int j = 0; j < p; ++j) dx(j) = run.x[j] - rival->x[j];
        if (dx.dot(A * dx) <= 1e-4 * rival->rss / static_cast<double>(pb.n)) {
          COUNT(rival_stop);
          converged = true;
          break;
        }
      }
    } else {
      COUNT(rejected);
      lambda *= nu;
      nu *= 2.0;
    }
    // MINPACK-style tests: negligible relative reduction (actual and predicted) or step.
    if (std::isfinite(actual) && std::fabs(actual) <= o.ftol * rss_before &&
        pred <= o.ftol * rss_before && rho <= 2.0) {
      converged = true;
      break;
    }
    if (step_norm <= o.xtol * (x_norm + o.xtol)) {
      converged = true;
      break;
    }
    if (lambda > 1e30) {  // no descent left at machine precision
      converged = true;
      break;
    }
  }
  run.rss = rss;
  run.n_iter = iter;
  run.converged = converged;
  return run;
}

struct Candidate {
  double x[kMaxFitParams];
  double rss;
  int family;
};

// Best levels (a, b) of a*shape + b*(1 - shape) by weighted least squares: for each shape the
// two level parameters are linear, so ranking starts on shapes alone is exact and cheap.
bool best_levels(const double* shape, const std::vector<double>& y, const std::vector<double>& w,
                 double lo, double hi, double& a, double& b, double& rss) {
  double s11 = 0, s12 = 0, s22 = 0, r1 = 0, r2 = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double u = shape[i], v = 1.0 - shape[i];
    s11 += w[i] * u * u;
    s12 += w[i] * u * v;
    s22 += w[i] * v * v;
    r1 += w[i] * u * y[i];
    r2 += w[i] * v * y[i];
  }
  const double det = s11 * s22 - s12 * s12;
  if (!(det > 1e-12 * s11 * s22)) return false;
  a = clip((r1 * s22 - r2 * s12) / det, lo, hi);
  b = clip((s11 * r2 - s12 * r1) / det, lo, hi);
  rss = 0.0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const double d = a * shape[i] + b * (1.0 - shape[i]) - y[i];
    rss += w[i] * d * d;
  }
  return std::isfinite(rss);
}

std::vector<double> geometric_grid(double lo, double hi, int count) {
  std::vector<double> g;
  if (!(hi > lo)) {
    g.push_back(lo);
    return g;
  }
  for (int k = 0; k < count; ++k)
    g.push_back(lo * std::pow(hi / lo, static_cast<double>(k) / (count - 1)));
  return g;
}

// Time for a running mean of the data to cover 63% of the first-to-last gain (the exponential
// tau), or NaN when the curve never gets there.
double tau63_estimate(const Workspace& ws, double t0) {
  const std::size_t n = ws.y.size();
  const std::size_t m = std::max<std::size_t>(1, std::min<std::size_t>(10, n / 10));
  double first = 0, last = 0;
  for (std::size_t i = 0; i < m; ++i) {
    first += ws.y[i];
    last += ws.y[n - 1 - i];
  }
  first /= m;
  last /= m;
  const double gain = last - first;
  if (gain == 0.0) return kNaN;
  double run = 0;
  for (std::size_t i = 0; i < n; ++i) {
    run += ws.y[i];
    if (i >= m) run -= ws.y[i - m];
    if (i + 1 >= m && (run / m - first) / gain >= 0.63) {
      const std::size_t centre = i + 1 - (m + 1) / 2;
      return ws.t[centre] - t0;
    }
  }
  return kNaN;
}

std::vector<Candidate> grid_candidates(const Problem& pb, const FitOptions& o, double dt,
                                       double duration, Workspace& ws) {
  // Subsample at most kGridPoints points: every stride-th point on a uniform grid (so that the
  // subsample stays uniform and takes the fast path), else evenly spaced indices, ends included.
  const std::size_t n = pb.n;
  std::size_t m = std::min(n, kGridPoints);
  std::size_t stride = 0;
  if (pb.grid.uniform && n > kGridPoints) {
    stride = (n - 1 + kGridPoints - 2) / (kGridPoints - 1);
    m = (n - 1) / stride + 1;
  }
  ws.t_grid.resize(m);
  ws.y_grid.resize(m);
  ws.w_grid.resize(m);
  ws.shape.resize(m);
  for (std::size_t k = 0; k < m; ++k) {
    std::size_t i = k;
    if (stride > 0)
      i = k * stride;
    else if (m < n)
      i = static_cast<std::size_t>(std::llround(static_cast<double>(k) * (n - 1) / (m - 1)));
    ws.t_grid[k] = pb.t[i];
    ws.y_grid[k] = pb.y[i];
    ws.w_grid[k] = pb.w[i];
  }
  const Grid sub = stride > 0 ? Grid{ws.t_grid.data(), m, true, pb.grid.dt * stride}
                              : make_grid(ws.t_grid.data(), m);
  std::vector<Candidate> out;
  const double lev_lo = std::max(pb.lower[0], pb.lower[1]);
  const double lev_hi = std::min(pb.upper[0], pb.upper[1]);
  const FitModel model = pb.model->model();
  if (model == FitModel::kLogistic) {
    const double s_lo = std::max(pb.lower[3], dt);
    const double s_hi = std::max(s_lo, std::min(pb.upper[3], duration));
    const std::vector<double> s_grid = geometric_grid(s_lo, s_hi, 5);
    const double t_first = pb.t[0], t_last = pb.t[n - 1];
    for (int js = 0; js < static_cast<int>(s_grid.size()); ++js) {
      for (int jm = 0; jm < 7; ++jm) {
        const double t_mid = clip(t_first + (t_last - t_first) * jm / 6.0, pb.lower[2], pb.upper[2]);
        logistic_curve(ws.t_grid.data(), m, 0.0, 1.0, t_mid, s_grid[js], ws.shape.data(), nullptr);
        Candidate c{{0, 0, t_mid, s_grid[js]}, kInf, js};
        double hi_level, lo_level;  // shape multiplies r_hi, (1 - shape) multiplies r_lo
        if (!best_levels(ws.shape.data(), ws.y_grid, ws.w_grid, lev_lo, lev_hi, hi_level, lo_level, c.rss))
          continue;
        c.x[0] = clip(lo_level, pb.lower[0], pb.upper[0]);
        c.x[1] = clip(hi_level, pb.lower[1], pb.upper[1]);
        out.push_back(c);
      }
    }
    return out;
  }
  const double tau_lo = std::max(pb.lower[2], dt);
  const double tau_hi = std::max(tau_lo, std::min(pb.upper[2], 2.0 * duration));
  std::vector<double> tau_grid = geometric_grid(tau_lo, tau_hi, 7);
  const std::size_t n_shared_tau = tau_grid.size();  // the series' own tau63 follows
  const double tau63 = tau63_estimate(ws, o.t0);
  if (std::isfinite(tau63) && tau63 > 0) tau_grid.push_back(clip(tau63, pb.lower[2], pb.upper[2]));
  std::vector<double> mu_grid;
  if (model == FitModel::kOscillator) {
    for (double mu : {0.0, 0.25, 1.0, 4.0}) {
      const double v = clip(mu, pb.lower[3], pb.upper[3]);
      if (std::find(mu_grid.begin(), mu_grid.end(), v) == mu_grid.end()) mu_grid.push_back(v);
    }
  } else {
    mu_grid.push_back(0.0);
  }
  const CurveModel& cm = *pb.model;
  for (int jt = 0; jt < static_cast<int>(tau_grid.size()); ++jt) {
    for (int jm = 0; jm < static_cast<int>(mu_grid.size()); ++jm) {
      const double x[kMaxFitParams] = {1.0, 0.0, tau_grid[jt], mu_grid[jm]};
      const double* shape = nullptr;
      try {
        COUNT(grid_evals);
        shape = start_shape(cm, sub, x, o.t0, static_cast<std::size_t>(jt) < n_shared_tau, ws);
      } catch (const std::exception&) {
        continue;
      }
      Candidate c{{0, 0, tau_grid[jt], mu_grid[jm]}, kInf,
                  model == FitModel::kOscillator ? jm : jt};
      if (!best_levels(shape, ws.y_grid, ws.w_grid, lev_lo, lev_hi, c.x[0], c.x[1], c.rss))
        continue;
      c.x[0] = clip(c.x[0], pb.lower[0], pb.upper[0]);
      c.x[1] = clip(c.x[1], pb.lower[1], pb.upper[1]);
      out.push_back(c);
    }
  }
  return out;
}

void fill_nan_row(const BatchFitOutput& out, std::size_t i, int p) {
  for (int j = 0; j < p; ++j) {
    out.params[i * p + j] = kNaN;
    out.stderr_[i * p + j] = kNaN;
    out.at_bound[i * p + j] = 0;
    for (int k = 0; k < p; ++k) out.cov[(i * p + j) * p + k] = kNaN;
  }
  out.rss[i] = out.r2[i] = out.sigma2[i] = out.aic[i] = out.bic[i] = kNaN;
  if (out.r2_ceiling) out.r2_ceiling[i] = kNaN;
  if (out.r2_window) out.r2_window[i] = kNaN;
  if (out.window) out.window[i] = 0;
  out.n_iter[i] = 0;
}

void bad_input(const BatchFitOutput& out, std::size_t i, int p, const std::string& why) {
  fill_nan_row(out, i, p);
  out.status[i] = static_cast<std::int32_t>(FitStatus::kBadInput);
  (*out.reason)[i] = why;
}

// 1 - n sigma^2 / tss, sigma^2 of unit-weight noise from the residuals of the straight line
// through each point's two neighbours (Gasser et al. 1986; twin of noise_variance_local in fit.py).
double r2_noise_ceiling_local(const Problem& pb, double tss) {
  if (pb.n < 3 || !(tss > 0)) return kNaN;
  double acc = 0.0;
  for (std::size_t i = 1; i + 1 < pb.n; ++i) {
    const double h0 = pb.t[i] - pb.t[i - 1], h1 = pb.t[i + 1] - pb.t[i];
    const double a = h1 / (h0 + h1), b = 1.0 - a;
    const double e = a * pb.y[i - 1] + b * pb.y[i + 1] - pb.y[i];
    acc += e * e / (a * a / pb.w[i - 1] + b * b / pb.w[i + 1] + 1.0 / pb.w[i]);
  }
  const double sigma2 = acc / static_cast<double>(pb.n - 2);
  return 1.0 - static_cast<double>(pb.n) * sigma2 / tss;
}

// R^2 of the fit on weighted means over consecutive blocks of `win` points (windows count
// equally; twin of r2_window_means in fit.py). NaN with fewer than two windows.
double r2_window_means(const Problem& pb, const double* f, std::size_t win) {
  const std::size_t n_win = (pb.n + win - 1) / win;
  if (n_win < 2) return kNaN;
  double sum_y = 0.0, sum_y2 = 0.0, sum_d2 = 0.0;
  for (std::size_t s = 0; s < pb.n; s += win) {
    double sw = 0.0, swy = 0.0, swf = 0.0;
    for (std::size_t i = s; i < std::min(pb.n, s + win); ++i) {
      sw += pb.w[i];
      swy += pb.w[i] * pb.y[i];
      swf += pb.w[i] * f[i];
    }
    const double ym = swy / sw, fm = swf / sw;
    sum_y += ym;
    sum_y2 += ym * ym;
    sum_d2 += (ym - fm) * (ym - fm);
  }
  const double nw = static_cast<double>(n_win);
  const double tss = sum_y2 - sum_y * sum_y / nw;
  return tss > 0 ? 1.0 - sum_d2 / tss : kNaN;
}

// Writes row i of the output from the optimum `best` (its evaluation: opt and ws.f_best).
void write_statistics(const Problem& pb, const LmRun& best, const Optimum& opt,
                      const FitOptions& o, Workspace& ws, std::size_t i,
                      const BatchFitOutput& out) {
  const int p = pb.p;
  const std::size_t n = pb.n;
  (*out.reason)[i].clear();
  const double rss = opt.rss;
  const MatP& A = opt.A;
  int k_est = 0;
  int free_idx[kMaxFitParams];
  int nfree = 0;
  for (int j = 0; j < p; ++j) {
    out.params[i * p + j] = best.x[j];
    const bool fixed = pb.lower[j] == pb.upper[j];
    const bool at = best.x[j] <= pb.lower[j] || best.x[j] >= pb.upper[j];
    out.at_bound[i * p + j] = at ? 1 : 0;
    if (!fixed) ++k_est;
    if (!at) free_idx[nfree++] = j;
  }
  double sw = 0, swy = 0, sum_log_w = 0;
  for (std::size_t k = 0; k < n; ++k) {
    sw += pb.w[k];
    swy += pb.w[k] * pb.y[k];
    sum_log_w += pb.w[k] == 1.0 ? 0.0 : std::log(pb.w[k]);  // log 1 = 0: unit weights skip log
  }
  const double y_mean = swy / sw;
  double tss = 0;
  for (std::size_t k = 0; k < n; ++k) tss += pb.w[k] * (pb.y[k] - y_mean) * (pb.y[k] - y_mean);
  const double nd = static_cast<double>(n);
  const double sigma2 = rss / (nd - k_est);
  const double rss_floor = std::max(rss, 1e-300);  // keeps AIC finite on noise-free data
  const double log_lik =
      -0.5 * nd * (std::log(2.0 * kPi * rss_floor / nd) + 1.0) + 0.5 * sum_log_w;
  out.rss[i] = rss;
  out.r2[i] = 1.0 - rss / tss;
  if (out.r2_ceiling) out.r2_ceiling[i] = r2_noise_ceiling_local(pb, tss);
  if (out.r2_window || out.window) {
    const std::size_t win = o.window > 0 ? static_cast<std::size_t>(o.window)
                                         : std::max<std::size_t>(2, n / 20);
    if (out.window) out.window[i] = static_cast<std::int32_t>(win);
    if (out.r2_window) out.r2_window[i] = r2_window_means(pb, ws.f_best.data(), win);
  }
  out.sigma2[i] = sigma2;
  out.aic[i] = 2.0 * (k_est + 1) - 2.0 * log_lik;  // +1: the noise variance is estimated too
  out.bic[i] = (k_est + 1) * std::log(nd) - 2.0 * log_lik;
  out.n_iter[i] = best.n_iter;
  out.status[i] = static_cast<std::int32_t>(best.converged ? FitStatus::kConverged : FitStatus::kMaxIter);

  for (int j = 0; j < p; ++j) {
    out.stderr_[i * p + j] = kNaN;
    for (int k = 0; k < p; ++k) out.cov[(i * p + j) * p + k] = kNaN;
  }
  if (nfree == 0) return;
  // Covariance on the free parameters, from the scaled matrix so that units do not matter.
  MatP Af(nfree, nfree);
  VecP scale(nfree);
  bool singular = false;
  for (int a = 0; a < nfree; ++a) {
    const double d = A(free_idx[a], free_idx[a]);
    if (!(d > 0)) singular = true;
    scale(a) = d > 0 ? 1.0 / std::sqrt(d) : 0.0;
  }
  if (!singular) {
    for (int a = 0; a < nfree; ++a)
      for (int b = 0; b < nfree; ++b)
        Af(a, b) = A(free_idx[a], free_idx[b]) * scale(a) * scale(b);
    Eigen::SelfAdjointEigenSolver<MatP> eig(Af);
    const auto ev = eig.eigenvalues();
    if (eig.info() != Eigen::Success || !(ev.minCoeff() > o.singular_rcond * ev.maxCoeff())) {
      singular = true;
    } else {
      const MatP inv = eig.eigenvectors() * ev.cwiseInverse().asDiagonal() *
                       eig.eigenvectors().transpose();
      for (int a = 0; a < nfree; ++a) {
        for (int b = 0; b < nfree; ++b)
          out.cov[(i * p + free_idx[a]) * p + free_idx[b]] =
              sigma2 * inv(a, b) * scale(a) * scale(b);
        out.stderr_[i * p + free_idx[a]] = std::sqrt(out.cov[(i * p + free_idx[a]) * p + free_idx[a]]);
      }
    }
  }
  if (singular) {
    out.status[i] = static_cast<std::int32_t>(FitStatus::kSingular);
    (*out.reason)[i] = "J^T W J is singular at the optimum: the free parameters are not identifiable";
  }
}

void fit_one(const SeriesView& s, std::size_t i, const CurveModel& model, const FitBounds& bounds,
             const FitOptions& o, const double* p0, const BatchFitOutput& out, Workspace& ws) {
  const int p = model.num_params();
  for (int j = 0; j < p; ++j) out.lower[i * p + j] = out.upper[i * p + j] = kNaN;
  (*out.reason)[i].clear();
  // Gap removal: non-finite rewards (or weights) and zero weights are not observations.
  ws.t.clear();
  ws.y.clear();
  ws.w.clear();
  for (std::size_t k = 0; k < s.n; ++k) {
    if (!std::isfinite(s.r[k])) continue;
    const double wk = s.w ? s.w[k] : 1.0;
    if (!std::isfinite(s.t[k])) {
      out.n_points[i] = 0;
      return bad_input(out, i, p, "t: non-finite time at index " + std::to_string(k));
    }
    if (!std::isfinite(wk) || wk < 0) {
      out.n_points[i] = 0;
      return bad_input(out, i, p, "weights: negative or non-finite weight at index " + std::to_string(k));
    }
    if (wk == 0) continue;
    ws.t.push_back(s.t[k]);
    ws.y.push_back(s.r[k]);
    ws.w.push_back(wk);
  }
  const std::size_t n = ws.y.size();
  out.n_points[i] = static_cast<std::int32_t>(n);
  if (n == 0) return bad_input(out, i, p, "r: no finite points (all NaN/inf)");
  if (n < static_cast<std::size_t>(p) + 1)
    return bad_input(out, i, p, "r: " + std::to_string(n) + " finite points, need at least " +
                                    std::to_string(p + 1) + " for " + std::to_string(p) +
                                    " parameters");
  for (std::size_t k = 1; k < n; ++k)
    if (!(ws.t[k] > ws.t[k - 1]))
      return bad_input(out, i, p, "t: not strictly increasing (unsorted or duplicate times)");
  const auto [y_min_it, y_max_it] = std::minmax_element(ws.y.begin(), ws.y.end());
  const double y_min = *y_min_it, y_max = *y_max_it, span = y_max - y_min;
  if (!(span > 0)) return bad_input(out, i, p, "r: constant series (nothing to fit)");

  // Logging interval = median spacing: the shortest timescale the data can resolve.
  std::vector<double>& gaps = ws.gaps;
  gaps.resize(n - 1);
  for (std::size_t k = 1; k < n; ++k) gaps[k - 1] = ws.t[k] - ws.t[k - 1];
  std::nth_element(gaps.begin(), gaps.begin() + gaps.size() / 2, gaps.end());
  const double dt = gaps[gaps.size() / 2];
  const FitModel m = model.model();
  const double t_origin = m == FitModel::kLogistic ? ws.t[0] : std::min(ws.t[0], o.t0);
  const double duration = std::max(ws.t[n - 1] - t_origin, dt);

  Problem pb{&model, make_grid(ws.t.data(), n), ws.t.data(), ws.y.data(), ws.w.data(), n, p, {}, {}};
  const double lev_lo = y_min - o.range_widen * span, lev_hi = y_max + o.range_widen * span;
  double auto_lo[kMaxFitParams], auto_hi[kMaxFitParams];
  auto_lo[0] = auto_lo[1] = lev_lo;
  auto_hi[0] = auto_hi[1] = lev_hi;
  if (m == FitModel::kLogistic) {
    auto_lo[2] = ws.t[0] - duration;
    auto_hi[2] = ws.t[n - 1] + duration;
    auto_lo[3] = dt;
    auto_hi[3] = 1e3 * duration;
  } else {
    auto_lo[2] = dt;  // tau >= dt also forces the period 2 pi / w >= 2 pi dt (docs)
    auto_hi[2] = 1e3 * duration;
    auto_lo[3] = 0.0;
    auto_hi[3] = o.mu_max;
  }
  for (int j = 0; j < p; ++j) {
    pb.lower[j] = std::isnan(bounds.lower[j]) ? auto_lo[j] : bounds.lower[j];
    pb.upper[j] = std::isnan(bounds.upper[j]) ? auto_hi[j] : bounds.upper[j];
    out.lower[i * p + j] = pb.lower[j];
    out.upper[i * p + j] = pb.upper[j];
    if (!(pb.lower[j] <= pb.upper[j]))
      return bad_input(out, i, p, "bounds: lower > upper for parameter " +
                                      fit_model_param_names(m)[j] + " on this series");
  }

  // Starts: the user's p0 (if any), then the best grid start of each of n_starts families.
  double fallback[kMaxFitParams];
  std::vector<const double*> starts;
  std::vector<double> start_score;  // grid RSS scaled to the full series; +inf: always run
  bool has_p0 = p0 != nullptr;
  if (has_p0)
    for (int j = 0; j < p; ++j) has_p0 = has_p0 && std::isfinite(p0[j]);
  if (has_p0) {
    starts.push_back(p0);
    start_score.push_back(kInf);
  }
  std::vector<Candidate> cands = grid_candidates(pb, o, dt, duration, ws);
  std::sort(cands.begin(), cands.end(),
            [](const Candidate& a, const Candidate& b) { return a.rss < b.rss; });
  std::vector<int> families;
  for (const Candidate& c : cands) {
    if (static_cast<int>(families.size()) >= o.n_starts) break;
    if (std::find(families.begin(), families.end(), c.family) != families.end()) continue;
    families.push_back(c.family);
    starts.push_back(c.x);
    start_score.push_back(c.rss * static_cast<double>(n) / static_cast<double>(ws.t_grid.size()));
  }
  if (starts.empty()) {
    // Always at least one start: middle of the level range, the shortest resolvable timescale.
    fallback[0] = ws.y.front();
    fallback[1] = ws.y.back();
    fallback[2] = m == FitModel::kLogistic ? 0.5 * (ws.t.front() + ws.t.back()) : duration / 3;
    fallback[3] = m == FitModel::kLogistic ? duration / 8 : 0.0;
    starts.push_back(fallback);
    start_score.push_back(kInf);
  }
  LmRun best;
  bool first_grid_start = true;
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const bool from_grid = std::isfinite(start_score[k]);
    // A further family is worth a run only if its start is already nearly as good as the
    // best optimum found: far-off starts almost never end lower (docs, "Starts").
    if (from_grid && !first_grid_start && std::isfinite(best.rss) &&
        start_score[k] > o.restart_rss_ratio * best.rss)
      continue;
    if (from_grid) first_grid_start = false;
    LmRun run = run_lm(pb, starts[k], o, ws, std::isfinite(best.rss) ? &best : nullptr);
    if (run.rss < best.rss) best = run;
  }
  // Boundary escape: the oscillator's RSS is not convex in mu, and a fit that stops on mu = 0
  // (where the gradient points outside) can hide a lower interior optimum at moderate mu.
  if (m == FitModel::kOscillator && std::isfinite(best.rss) && best.x[3] <= pb.lower[3] + 0.02 &&
      pb.upper[3] > pb.lower[3]) {
    const LmRun at_boundary = best;
    for (double mu : {0.01, 0.1, 0.3}) {
      if (pb.lower[3] + mu <= at_boundary.x[3]) continue;
      double x0[kMaxFitParams] = {at_boundary.x[0], at_boundary.x[1], at_boundary.x[2],
                                  clip(pb.lower[3] + mu, pb.lower[3], pb.upper[3])};
      COUNT(escape_runs);
      LmRun run = run_lm(pb, x0, o, ws, &best);
      if (run.rss < best.rss * (1.0 - 1e-12)) best = run;
    }
  }
  // Valley polish: a run that used all its steps with an oscillating optimum is usually
  // walking the curved valley towards small tau and large mu at fixed frequency and decay
  // (a slow cosine fragment; a = 1 / (2 mu tau) and w ~ 1 / (sqrt(mu) tau) are linear in log
  // tau and log mu, so the valley is a straight line there). LM continues from that point in
  // (log tau, log mu), same objective and bounds (docs/fitting.md, "Valley polish").
  Optimum polished;
  bool have_polished = false;
  if (m == FitModel::kOscillator && std::isfinite(best.rss) && !best.converged &&
      best.x[3] > 0.25 && pb.lower[2] > 0 && pb.upper[2] > pb.lower[2] &&
      pb.upper[3] > pb.lower[3]) {
    Problem lp = pb;
    for (int j : {2, 3}) {
      lp.log_param[j] = true;
      lp.lower[j] = pb.lower[j] > 0 ? std::log(pb.lower[j]) : -kInf;
      lp.upper[j] = std::log(pb.upper[j]);
    }
    double u0[kMaxFitParams] = {best.x[0], best.x[1], std::log(best.x[2]), std::log(best.x[3])};
    LmRun run = run_lm(lp, u0, o, ws);
    if (std::isfinite(run.rss) && run.rss < best.rss * (1.0 - 1e-12)) {
      for (int j : {2, 3})  // a bound reached in logs is the bound itself (at_bound flags)
        run.x[j] = run.x[j] <= lp.lower[j]   ? pb.lower[j]
                   : run.x[j] >= lp.upper[j] ? pb.upper[j]
                                             : clip(std::exp(run.x[j]), pb.lower[j], pb.upper[j]);
      run.n_iter += best.n_iter;
      // the RSS in the model's own parameters (the exp of the logs rounds)
      if (evaluate_optimum(pb, run.x, o.t0, ws, polished)) {
        run.rss = polished.rss;
        best = run;
        have_polished = true;
      }
    }
  }
  // The statistics need the optimum's values and normal equations (LM keeps only its sums);
  // a polished optimum has them already (ws.f_best too).
  Optimum opt;
  if (have_polished) opt = polished;
  if (!std::isfinite(best.rss) || (!have_polished && !evaluate_optimum(pb, best.x, o.t0, ws, opt)))
    return bad_input(out, i, p, "r: model could not be evaluated on this series");

  // Statistics at the optimum (docs/fitting.md, "Statistics").
  write_statistics(pb, best, opt, o, ws, i, out);
  // Degenerate neighbourhood of mu = 0 (docs/fitting.md, "Identifiability at mu = 0"): at
  // mu = 0 the mu column of J equals x0 dr/dr0 - tau dr/dtau, so J^T W J is rank-deficient and
  // mu is identified only at second order (its effect beyond the reparametrisation is
  // O(mu^2 x0)). An optimum with 0 < mu <= nested_mu_max is compared with the nested
  // exponential (mu held at 0), which is reported if it is not worse by AIC.
  const double mu_hat = best.x[3];
  if (o.nested_mu0 && m == FitModel::kOscillator && pb.lower[3] == 0.0 && pb.upper[3] > 0.0 &&
      mu_hat > 0.0 && mu_hat <= o.nested_mu_max) {
    Problem nested = pb;
    nested.upper[3] = nested.lower[3];
    const LmRun run = run_lm(nested, best.x, o, ws);
    const double lr = static_cast<double>(n) * std::log(run.rss / best.rss);
    if (std::isfinite(run.rss) && lr <= 2.0) {  // AIC of the nested model is not higher
      LmRun chosen = run;
      chosen.n_iter += best.n_iter;
      Optimum nested_opt;
      if (!evaluate_optimum(pb, chosen.x, o.t0, ws, nested_opt))
        return bad_input(out, i, p, "r: model could not be evaluated on this series");
      write_statistics(pb, chosen, nested_opt, o, ws, i, out);
      char buf[256];
      std::snprintf(buf, sizeof buf,
                    "mu set to 0 (its bound): the optimum mu = %.3g lies where mu is not "
                    "identifiable to first order, and the exponential is as good by AIC (LR = %.3g)",
                    best.x[3], std::max(lr, 0.0));
      (*out.reason)[i] = buf;
    }
  }
}
}  // namespace

int fit_model_num_params(FitModel model) { return model == FitModel::kExponential ? 3 : 4; }

std::vector<std::string> fit_model_param_names(FitModel model) {
  switch (model) {
    case FitModel::kExponential:
      return {"r0", "r_inf", "tau"};
    case FitModel::kOscillator:
      return {"r0", "r_inf", "tau", "mu"};
    case FitModel::kLogistic:
      return {"r_lo", "r_hi", "t_mid", "s"};
  }
  throw std::invalid_argument("model: unknown model code");
}

FitModel fit_model_from_name(const std::string& name) {
  if (name == "exponential") return FitModel::kExponential;
  if (name == "oscillator") return FitModel::kOscillator;
  if (name == "logistic") return FitModel::kLogistic;
  throw std::invalid_argument("model: expected 'exponential', 'oscillator' or 'logistic', got '" +
                              name + "'");
}

void logistic_curve(const double* t, std::size_t n, double r_lo, double r_hi, double t_mid,
                    double s, double* value, double* jac) {
  if (!(s > 0) || !std::isfinite(s)) throw std::invalid_argument(must("s", "finite and > 0 (logistic)", s));
  if (!std::isfinite(r_lo)) throw std::invalid_argument(must("r_lo", "finite (logistic)", r_lo));
  if (!std::isfinite(r_hi)) throw std::invalid_argument(must("r_hi", "finite (logistic)", r_hi));
  if (!std::isfinite(t_mid)) throw std::invalid_argument(must("t_mid", "finite (logistic)", t_mid));
  const double gain = r_hi - r_lo;
  for (std::size_t i = 0; i < n; ++i) {
    const double u = (t[i] - t_mid) / s;
    // exp of a non-positive argument only: no overflow for any u.
    const double e = std::exp(-std::fabs(u));
    const double sig = u >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    const double one_minus = u >= 0 ? e / (1.0 + e) : 1.0 / (1.0 + e);
    value[i] = r_lo + gain * sig;
    if (jac) {
      double* J = jac + i * kJacStride;
      const double dsig_du = sig * one_minus;
      J[0] = one_minus;
      J[1] = sig;
      J[2] = -gain * dsig_du / s;
      J[3] = -gain * dsig_du * u / s;
    }
  }
}

void validate(const FitOptions& o) {
  const auto fail = [](const char* name, const std::string& rule, double value) {
    throw std::invalid_argument(must(name, rule, value));
  };
  if (o.max_iter < 1) fail("max_iter", ">= 1", o.max_iter);
  if (o.max_iter > kMaxFitIter) fail("max_iter", "<= " + std::to_string(kMaxFitIter), o.max_iter);
  if (o.n_starts < 1) fail("n_starts", ">= 1", o.n_starts);
  if (o.window < 0) fail("window", ">= 0", o.window);
  if (!std::isfinite(o.t0)) fail("t0", "finite", o.t0);
  if (!(o.ftol >= 0)) fail("ftol", ">= 0", o.ftol);
  if (!(o.xtol >= 0)) fail("xtol", ">= 0", o.xtol);
  if (!(o.gtol >= 0)) fail("gtol", ">= 0", o.gtol);
  if (!(o.range_widen >= 0) || !std::isfinite(o.range_widen)) fail("range_widen", "finite and >= 0", o.range_widen);
  if (!(o.mu_max > 0)) fail("mu_max", "> 0", o.mu_max);
  if (!(o.restart_rss_ratio > 0)) fail("restart_rss_ratio", "> 0", o.restart_rss_ratio);
  if (!(o.singular_rcond >= 0)) fail("singular_rcond", ">= 0", o.singular_rcond);
  if (!(o.nested_mu_max >= 0)) fail("nested_mu_max", ">= 0", o.nested_mu_max);
}

void fit_batch(const std::vector<SeriesView>& series, FitModel model, const FitBounds& bounds,
               const FitOptions& options, const double* p0, int threads, BatchFitOutput& out,
               Cancel* cancel) {
  const int p = fit_model_num_params(model);
  if (static_cast<int>(bounds.lower.size()) != p || static_cast<int>(bounds.upper.size()) != p)
    throw std::invalid_argument("bounds: expected " + std::to_string(p) + " lower and upper values");
  const std::vector<std::string> names = fit_model_param_names(model);
  for (int j = 0; j < p; ++j) {
    const double lo = bounds.lower[j], hi = bounds.upper[j];
    if (lo == kInf || hi == -kInf || (!std::isnan(lo) && !std::isnan(hi) && lo > hi))
      throw std::invalid_argument("bounds: invalid interval for " + names[j]);
  }
  if (model != FitModel::kLogistic) {
    if (!std::isnan(bounds.lower[2]) && !(bounds.lower[2] > 0))
      throw std::invalid_argument("bounds: tau lower bound must be > 0");
    if (p > 3 && !std::isnan(bounds.lower[3]) && !(bounds.lower[3] >= 0))
      throw std::invalid_argument("bounds: mu lower bound must be >= 0");
  } else if (!std::isnan(bounds.lower[3]) && !(bounds.lower[3] > 0)) {
    throw std::invalid_argument("bounds: s lower bound must be > 0");
  }
  validate(options);
  if (!out.params || !out.stderr_ || !out.cov || !out.lower || !out.upper || !out.at_bound ||
      !out.rss || !out.r2 || !out.sigma2 || !out.aic || !out.bic || !out.n_iter || !out.status ||
      !out.n_points || !out.reason)
    throw std::invalid_argument("out: every output array must be provided");
  out.reason->assign(series.size(), std::string());
  const CurveModel curve(model, options.t0);
  const std::size_t n_threads = resolve_threads(threads, series.size());
#ifdef GRPO_FIT_COUNTERS
  for (auto& c : g_count) c = Counters{};
#endif
  // Series are handed out in chunks of kFitChunk to whichever worker asks next: on a shared
  // machine a worker whose core is busy does less of the batch instead of holding up the call.
  // Each series is fitted from its own data only, so the assignment does not change results.
  std::atomic<std::size_t> next{0};
  run_workers(n_threads, [&](std::size_t tid) {
#ifdef GRPO_FIT_COUNTERS
    t_tid = static_cast<int>(tid % 64);
#else
    (void)tid;
#endif
    Workspace ws;
    for (;;) {
      const std::size_t begin = next.fetch_add(kFitChunk, std::memory_order_relaxed);
      if (begin >= series.size()) return;
      const std::size_t end = std::min(series.size(), begin + kFitChunk);
      for (std::size_t i = begin; i < end; ++i) {
        if (cancelled(cancel)) return;
        try {
          COUNT(fits);
          fit_one(series[i], i, curve, bounds, options, p0 ? p0 + i * p : nullptr, out, ws);
        } catch (const std::exception& e) {
          bad_input(out, i, p, std::string("r: ") + e.what());
        }
      }
    }
  }, cancel);
#ifdef GRPO_FIT_COUNTERS
  Counters c;
  for (auto& g : g_count) { c.fits += g.fits; c.lm_runs += g.lm_runs; c.iters += g.iters; c.evals_jac += g.evals_jac; c.evals_val += g.evals_val; c.grid_evals += g.grid_evals; c.escape_runs += g.escape_runs; c.gn_stop += g.gn_stop; c.rival_stop += g.rival_stop; c.rejected += g.rejected; c.pts += g.pts; }
  const double f = c.fits > 0 ? static_cast<double>(c.fits) : 1.0;
  std::fprintf(stderr, "COUNTERS fits %ld per fit: lm_runs %.2f iters %.2f evals_jac %.2f evals_val %.2f grid_evals %.2f escape_runs %.3f gn_stop %.2f rival_stop %.2f rejected %.2f pts %.0f\n", c.fits, c.lm_runs / f, c.iters / f, c.evals_jac / f, c.evals_val / f, c.grid_evals / f, c.escape_runs / f, c.gn_stop / f, c.rival_stop / f, c.rejected / f, c.pts / f);
#endif
}

}  // namespace grpo_dynamics
