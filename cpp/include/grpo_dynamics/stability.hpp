// Stability of the discrete linear model of GRPO training (docs/stability.md, docs/model.md).
//
//   x_{t+1} = x_t + beta (x_t - x_{t-1}) - c_lag x_{l(t)} - c_now x_t + e_t
//
// with lag models on-policy (l = t), refresh interval K (l = K floor(t/K)) and constant delay D
// (l = t - D). Pure C++17 + Eigen: no Python headers.
#pragma once

#include <Eigen/Dense>

#include <array>
#include <complex>
#include <cstdint>
#include <string>
#include <vector>

#include "grpo_dynamics/parallel.hpp"

namespace grpo_dynamics {

// Which policy the lagged force was computed from. On-policy is refresh with K = 1 (and delay 0).
enum class LagModel : int { kRefresh = 0, kDelay = 1 };

// Regime codes shared with Python (kInvalid marks a grid point whose inputs were rejected);
// regime_name gives the names the Python layer reports (exposed as _core.REGIME_NAMES).
enum class Regime : int { kInvalid = -1, kOverdamped = 0, kOscillatory = 1, kUnstable = 2 };
inline constexpr std::array<Regime, 4> kRegimes{Regime::kInvalid, Regime::kOverdamped,
                                                Regime::kOscillatory, Regime::kUnstable};

// Size caps: the largest lags whose computations finish in seconds (docs/stability.md).
// Refresh interval K: O(log K) per cycle map (binary powering), O(1) per K in
// critical_refresh_interval's incremental scan. Delay D: O(D^2) per Schur-Cohn count (grid points,
// critical_delay candidates). Dense (D+1)x(D+1) eigen-solve and Lyapunov solve: O(D^3), about
// 2 s and 8 s at D = 1000.
inline constexpr long kMaxRefreshInterval = 100000000;
inline constexpr long kMaxDelay = 10000;
inline constexpr long kMaxDenseDelay = 1000;

// Stability boundary of the two-dimensional maps (refresh cycle, on-policy, delay <= 1): the
// Jury quantities p(1) = det(I - M), p(-1) = det(I + M) and 1 - det(M) are formed without
// cancellation where the algebra allows (p(1) = c * [U_K (1 + beta u_{K-1}) - beta u_K U_{K-1}],
// det M = beta^K + beta c_lag (u_{K-1} U_K - u_K U_{K-1})), and the map counts as unstable when
// one of them is <= kBoundaryTolerance times its rounding scale (the sum of its terms' moduli).
// So a point within ~1e-12 of the boundary is unstable (rho >= 1 within the tolerance), while a
// tiny stiffness (c = 1e-16, rho = 1 - O(c) rounding to 1.0) is still decided exactly.
inline constexpr double kBoundaryTolerance = 1e-12;

const char* regime_name(Regime regime);
LagModel parse_lag_model(const std::string& name);

// One point of the linear model, all dimensionless (c = eta_eff * curvature).
struct LinearModel {
  double momentum = 0.0;  // beta in [0, 1)
  double c_lag = 0.0;     // stiffness of the stale (rollout-computed) force; may be < 0 (k3 KL)
  double c_now = 0.0;     // stiffness of the force evaluated at the current parameters
  LagModel lag_model = LagModel::kRefresh;
  long lag_steps = 1;     // refresh interval K >= 1, or delay D >= 0
};

// Throws std::invalid_argument naming the offending field ("momentum: must be in [0, 1), got 1").
// Lags are checked against kMaxRefreshInterval / kMaxDelay.
void validate(const LinearModel& model);

// Steps of the recurrence covered by one application of transition_matrix (K for refresh, else 1).
long steps_per_map(const LinearModel& model);

// Exact 2x2 refresh-cycle (monodromy) map (x_{nK}, x_{nK-1}) -> (x_{(n+1)K}, x_{(n+1)K-1}) in
// closed form through u_k (u_0 = 0, u_1 = 1, u_{k+1} = (1 + beta - c_now) u_k - beta u_{k-1})
// and U_k = u_1 + ... + u_k:
//   M = [[u_{K+1} - c_lag U_K, -beta u_K], [u_K - c_lag U_{K-1}, -beta u_{K-1}]],
// and the gain of the per-cycle noise e_n (drawn once per refresh), h = (U_K, U_{K-1}).
struct RefreshCycle {
  Eigen::Matrix2d monodromy;
  Eigen::Vector2d noise_gain;
};
RefreshCycle refresh_cycle(double momentum, double c_lag, double c_now, long refresh_interval);

// Companion matrix of the delay model on the state (x_t, x_{t-1}, ..., x_{t-n+1}),
// n = max(D + 1, 2); characteristic polynomial z^{D-1} (z^2 - (1+beta-c_now) z + beta) + c_lag
// for D >= 1 and z^2 - (1 + beta - c_lag - c_now) z + beta for D = 0.
Eigen::MatrixXd delay_companion(double momentum, double c_lag, double c_now, long delay);

// The matrix whose spectrum decides stability: the refresh cycle or the delay companion.
Eigen::MatrixXd transition_matrix(const LinearModel& model);

struct Spectrum {
  Eigen::VectorXcd eigenvalues;           // of transition_matrix (Eigen's real Schur solver)
  std::complex<double> dominant = 0.0;    // an eigenvalue of largest modulus (imag >= 0)
  double spectral_radius = 0.0;           // per map (per cycle for refresh)
  double decay_rate = 0.0;                // per optimizer step: rho^(1 / steps_per_map)
  Regime regime = Regime::kInvalid;
};
// Full spectrum with Eigen (dense: a delay is capped at kMaxDenseDelay).
Spectrum spectrum(const LinearModel& model);

// Fast spectral radius / dominant eigenvalue / regime without the full spectrum: closed-form
// 2x2 for refresh and small delays; for delays >= 2 Newton on the characteristic polynomial,
// verified by a Schur-Cohn count (no root outside the found radius), falling back to Eigen.
// eigenvalues is left empty.
Spectrum fast_spectrum(const LinearModel& model);

// Regime from a dominant eigenvalue: unstable if rho >= 1, oscillatory if complex or negative.
Regime classify(std::complex<double> dominant, double spectral_radius);

// Schur-Cohn test: all roots of sum_i coeffs[i] z^(n-i) strictly inside |z| < radius.
bool roots_inside_radius(const std::vector<double>& coeffs, double radius);

// Stationary variance of x per unit noise variance Var(e) = 1 (exact, discrete Lyapunov).
// Refresh: e is drawn once per cycle and held for its K steps; the variance of x at each phase
// j = 0..K-1 of the cycle is returned in per_phase and their mean in mean. Delay / on-policy:
// e is white per step, per_phase has one entry. Infinite if the system is not stable.
struct StationaryVariance {
  double mean = 0.0;
  std::vector<double> per_phase;
};
// A delay is capped at kMaxDenseDelay (dense Lyapunov solve).
StationaryVariance stationary_variance(const LinearModel& model, Cancel* cancel = nullptr);

// Solve P = F P F^T + Q by squaring (Smith's doubling); throws std::domain_error if rho(F) >= 1.
// `cancel` (may be null) is checked once per doubling; when it fires the result is meaningless.
Eigen::MatrixXd solve_discrete_lyapunov(const Eigen::MatrixXd& transition, const Eigen::MatrixXd& noise,
                                        Cancel* cancel = nullptr);

// Smallest refresh interval K in [1, max_interval] whose cycle map has rho >= 1 (0 if none).
// max_interval <= kMaxRefreshInterval. `cancel` is checked every 65536 intervals.
long critical_refresh_interval(double momentum, double c_lag, double c_now, long max_interval,
                               Cancel* cancel = nullptr);
// Smallest delay D in [0, max_delay] that is unstable (-1 if none). max_delay <= kMaxDelay
// (O(max_delay^3) in all). `cancel` is checked once per candidate.
long critical_delay(double momentum, double c_lag, double c_now, long max_delay,
                    Cancel* cancel = nullptr);

// Threshold in a common scale s of both stiffnesses (s c_lag, s c_now): the infimum of s > 0 at
// which the criterion first holds ("unstable": rho >= 1; "oscillatory": regime is not overdamped),
// located by a geometric scan with ratio scan_ratio from s where s (c_lag + c_now) = 1e-9, then
// bisection to relative 1e-13. Infinity if the criterion never holds up to s (c_lag + c_now) = 1e9.
// Requires c_lag + c_now > 0 and c_now >= 0; c_lag itself may be negative; scan_ratio in
// [kMinScanRatio, 2] (at most ~41,000 scan steps). `cancel` is checked once per evaluation.
// decoupled_decay lambda >= 0: AdamW's decoupled weight decay with s the learning rate, so the
// momentum also moves with s, beta_eff = momentum (1 - s lambda) (optimizer.effective_dynamics;
// c_lag and c_now then already include lambda's share per unit lr). The scan then starts at
// min(that s, 1 / (2 lambda)) and stops below s = 1 / lambda, which is returned if the criterion
// never holds below it (and 1 / lambda <= s_max); lambda = 0 is the plain common scale.
inline constexpr double kMinScanRatio = 1.001;
double critical_scale(const LinearModel& model, const std::string& criterion, double scan_ratio,
                      Cancel* cancel = nullptr, double decoupled_decay = 0.0);

// Grid evaluation (one fast_spectrum per point), parallel over contiguous chunks of points:
// each point is computed independently, so the result does not depend on the thread count.
// Invalid points get Regime::kInvalid and NaN outputs instead of throwing. `cancel` (may be
// null) is checked once per point; when it fires the outputs are incomplete.
struct GridOutput {
  double* spectral_radius;
  double* decay_rate;
  double* dominant_real;
  double* dominant_imag;
  std::int32_t* regime;
};
void evaluate_grid(std::size_t n_points, const double* momentum, const double* c_lag,
                   const double* c_now, const double* lag_steps, LagModel lag_model,
                   const GridOutput& out, int threads, Cancel* cancel = nullptr);

}  // namespace grpo_dynamics
