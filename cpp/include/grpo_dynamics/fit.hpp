// Batched bounded Levenberg-Marquardt fits of reward curves (docs/fitting.md).
//
// Pure C++17, no Python headers. Three models share one fitter:
//   oscillator   (r0, r_inf, tau, mu)      closed form of docs/model.md (trajectory.hpp)
//   exponential  (r0, r_inf, tau)          the oscillator with mu fixed at 0 (nested exactly)
//   logistic     (r_lo, r_hi, t_mid, s)    r_lo + (r_hi - r_lo) / (1 + exp(-(t - t_mid) / s))
// Each series is fitted independently, so the batch result does not depend on the thread count.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "grpo_dynamics/parallel.hpp"

namespace grpo_dynamics {

enum class FitModel : int { kExponential = 0, kOscillator = 1, kLogistic = 2 };

// Numeric status codes; kFitStatusNames[code] is the name the Python layer reports (exposed as
// grpo_dynamics._core.FIT_STATUS_NAMES, the single definition of these names).
enum class FitStatus : int { kConverged = 0, kMaxIter = 1, kSingular = 2, kBadInput = 3 };
inline constexpr std::array<const char*, 4> kFitStatusNames{"converged", "max_iter", "singular",
                                                            "bad_input"};

constexpr int kMaxFitParams = 4;
// Largest FitOptions::max_iter: trial steps are O(n) each and a series is not interruptible.
inline constexpr int kMaxFitIter = 1000000;

int fit_model_num_params(FitModel model);
// Parameter names in column order, e.g. {"r0", "r_inf", "tau", "mu"}.
std::vector<std::string> fit_model_param_names(FitModel model);
FitModel fit_model_from_name(const std::string& name);  // throws std::invalid_argument

// Logistic curve with its analytic Jacobian (row-major n x 4, columns r_lo, r_hi, t_mid, s).
// Overflow-free for any finite t and s > 0. Throws std::invalid_argument for s <= 0.
void logistic_curve(const double* t, std::size_t n, double r_lo, double r_hi, double t_mid,
                    double s, double* value, double* jac);

struct FitOptions {
  int max_iter = 200;       // trial steps (function + Jacobian evaluations) per LM run
  double ftol = 1e-10;      // relative RSS reduction (actual and predicted) that counts as converged
  double xtol = 1e-10;      // relative scaled step that counts as converged
  double gtol = 1e-10;      // max cosine between residual and a free Jacobian column
  int n_starts = 2;         // LM runs from the best grid starts of distinct families (>= 1)
  double restart_rss_ratio = 2.0;  // run a further family only if its start RSS < ratio * best
  double t0 = 0.0;          // time origin of the oscillator/exponential (fixed, not fitted)
  double range_widen = 1.0; // auto bounds on levels: [min - w span, max + w span] of the data
  double mu_max = 1e4;      // auto upper bound on mu (numerical safety only, see docs)
  double singular_rcond = 1e-12;  // min/max eigenvalue of the scaled J^T W J below this: singular
  // Degenerate neighbourhood of mu = 0 (oscillator with mu's lower bound 0): an optimum with
  // 0 < mu <= nested_mu_max is compared with the nested exponential (mu held at 0), which is
  // reported instead, mu on its bound, if it is not worse by AIC (docs/fitting.md,
  // "Identifiability at mu = 0"). Off: the unrestricted optimum is always reported.
  bool nested_mu0 = true;
  double nested_mu_max = 1e-2;
  // Points per window for the window-means R^2; 0: max(2, n / 20) (docs/fitting.md, "R^2 and noise").
  int window = 0;
};

// Throws std::invalid_argument naming the first invalid field ("max_iter: must be >= 1, got 0").
void validate(const FitOptions& options);

// Bounds per parameter; NaN on a side means "derive from this series' data" (docs/fitting.md).
struct FitBounds {
  std::vector<double> lower;
  std::vector<double> upper;
};

// One series: times strictly increasing after NaN removal. w may be null (unit weights).
// Points with a non-finite r (or w) are gaps and are removed before fitting.
struct SeriesView {
  const double* t = nullptr;
  const double* r = nullptr;
  const double* w = nullptr;
  std::size_t n = 0;
};

// Caller-owned output arrays, one row per series (p = fit_model_num_params(model)).
struct BatchFitOutput {
  double* params = nullptr;    // (n_series, p)
  double* stderr_ = nullptr;   // (n_series, p); NaN for parameters at an active bound
  double* cov = nullptr;       // (n_series, p, p); NaN rows/cols for parameters at a bound
  double* lower = nullptr;     // (n_series, p) bounds actually used
  double* upper = nullptr;     // (n_series, p)
  std::uint8_t* at_bound = nullptr;  // (n_series, p)
  double* rss = nullptr;       // weighted residual sum of squares
  double* r2 = nullptr;        // 1 - rss / weighted total sum of squares
  // Optional (null: not computed). R^2 noise ceiling from a local smoother's residuals and
  // R^2 on window means (docs/fitting.md, "R^2 and noise").
  double* r2_ceiling = nullptr;
  double* r2_window = nullptr;
  std::int32_t* window = nullptr;  // points per window used
  double* sigma2 = nullptr;    // residual variance rss / (n - k)
  double* aic = nullptr;
  double* bic = nullptr;
  std::int32_t* n_iter = nullptr;    // trial steps over all LM runs
  std::int32_t* status = nullptr;    // FitStatus
  std::int32_t* n_points = nullptr;  // points used after gap removal
  std::vector<std::string>* reason = nullptr;  // (n_series) empty unless bad_input/singular
};

// Fits every series. p0 (n_series x p, row-major) may be null; a row containing NaN means
// "no user start" for that series. threads <= 0 means hardware concurrency. Workers take the
// series in small chunks as they free up (dynamic assignment); every series is fitted from its
// own data only, so results are identical for any thread count and any assignment.
// `cancel` (may be null) is checked once per series: when it fires the call returns early and
// the outputs are incomplete (the caller discards them).
// Throws std::invalid_argument only for global misuse (bounds sizes, options); per-series
// problems become FitStatus::kBadInput with a reason naming the argument.
void fit_batch(const std::vector<SeriesView>& series, FitModel model, const FitBounds& bounds,
               const FitOptions& options, const double* p0, int threads, BatchFitOutput& out,
               Cancel* cancel = nullptr);

}  // namespace grpo_dynamics
