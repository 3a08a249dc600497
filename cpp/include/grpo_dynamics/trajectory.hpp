// Closed-form deterministic trajectory of the GRPO reduced-order model (docs/model.md, section
// "Closed-form trajectory") and its analytic Jacobian. Pure C++17, header-only.
//
// The continuum model  mu tau^2 x'' + tau x' + x = 0,  x = r - r_inf,  x(t0) = r0 - r_inf,
// x'(t0) = v0, is solved in the dimensionless time u = (t - t0) / tau:
//
//   r(t) = r_inf + x0 A(u; mu) + v0 tau B(u; mu)
//
// where A is the response to a unit displacement from rest and B the response to a unit initial
// velocity (both in units of u). Two exact representations are used, chosen by mu only so that
// each is free of cancellation where it is used:
//   * root form (0 <= mu <= 3/16, i.e. q = sqrt(1 - 4 mu) >= 1/2): sums of exp(l1 u), exp(l2 u)
//     with the stable roots l1 = -2 / (1 + q), l2 = -(1 + q) / (2 mu); every coefficient is
//     bounded and mu -> 0 reproduces the single exponential exactly (exp(l2 u) underflows to 0);
//   * damped hyperbolic/trigonometric form (mu > 3/16, decay alpha = 1 / (2 mu) < 8/3):
//     A = e^{-alpha u} (C(w) + alpha u S(w)), B = u e^{-alpha u} S(w), w = (alpha^2 - 2 alpha) u^2,
//     with C(w) = cosh(sqrt w), S(w) = sinh(sqrt w) / sqrt w (cos and sinc for w < 0), entire in w
//     and evaluated by their Taylor series for |w| < 1: continuous across the critical point
//     mu = 1/4 in value and in every derivative.
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>

namespace grpo_dynamics {

enum TrajectoryParam : int { kR0 = 0, kRInf = 1, kTau = 2, kMu = 3, kT0 = 4, kV0 = 5, kNumTrajectoryParams = 6 };

struct OscillatorParams {
  double r0;
  double r_inf;
  double tau;
  double mu;
  double t0 = 0.0;
  double v0 = 0.0;
};

namespace detail {

// Boundary between the root form and the hyperbolic form: q = sqrt(1 - 4 mu) = 1/2.
inline constexpr double kRootFormMaxMu = 3.0 / 16.0;
// Below this |w| the entire functions C, S, D are summed as Taylor series.
inline constexpr double kSeriesMaxAbsW = 1.0;
// Exponentials in uniform-grid recurrences are re-anchored this often (bounds the round-off drift).
inline constexpr std::size_t kReanchorEvery = 64;

inline void validate(const OscillatorParams& p) {
  auto finite = [](double v) { return std::isfinite(v); };
  if (!finite(p.r0)) throw std::invalid_argument("r0 must be finite");
  if (!finite(p.r_inf)) throw std::invalid_argument("r_inf must be finite");
  if (!finite(p.tau) || !(p.tau > 0.0)) throw std::invalid_argument("tau must be finite and > 0");
  if (!finite(p.mu) || !(p.mu >= 0.0)) throw std::invalid_argument("mu must be finite and >= 0");
  if (!finite(p.t0)) throw std::invalid_argument("t0 must be finite");
  if (!finite(p.v0)) throw std::invalid_argument("v0 must be finite");
}

// Per-mu constants of both representations.
struct ShapeConstants {
  bool root_form;
  double mu;
  // root form
  double q, inv_q, l1, l2, c1, c2, dc1_dmu, dl1_dmu, dc2_dmu, c2_dl2_dmu, mq_dl2_dmu, inv_mu;
  double mu_over_q, dmq_dmu;  // mu / q and its derivative (hoisted out of the per-point loop)
  // hyperbolic form
  double alpha, d2, sqrt_abs_d2;

  explicit ShapeConstants(double mu_) : mu(mu_) {
    root_form = mu <= kRootFormMaxMu;
    q = inv_q = l1 = l2 = c1 = c2 = dc1_dmu = dl1_dmu = dc2_dmu = c2_dl2_dmu = mq_dl2_dmu = inv_mu = 0.0;
    mu_over_q = dmq_dmu = 0.0;
    alpha = d2 = sqrt_abs_d2 = 0.0;
    if (root_form) {
      q = std::sqrt(1.0 - 4.0 * mu);
      inv_q = 1.0 / q;
      const double opq = 1.0 + q;
      l1 = -2.0 / opq;
      c1 = opq / (2.0 * q);
      c2 = 2.0 * mu / (q * opq);
      dc1_dmu = 1.0 / (q * q * q);
      dl1_dmu = -4.0 / (q * opq * opq);
      dc2_dmu = 2.0 / (q * opq) + 4.0 * mu * (1.0 + 2.0 * q) / (q * q * q * opq * opq);
      mu_over_q = mu / q;
      dmq_dmu = 1.0 / q + 2.0 * mu / (q * q * q);
      if (mu > 0.0) {
        inv_mu = 1.0 / mu;
        l2 = -opq * 0.5 * inv_mu;
        // Products formed analytically so that no 1/mu^2 is ever evaluated.
        c2_dl2_dmu = 2.0 / (q * q * opq) + inv_mu / q;
        mq_dl2_dmu = 1.0 / (q * q) + opq * 0.5 * inv_mu / q;
      } else {
        l2 = -std::numeric_limits<double>::infinity();
      }
    } else {
      alpha = 0.5 / mu;
      inv_mu = 1.0 / mu;
      d2 = alpha * alpha - 2.0 * alpha;
      sqrt_abs_d2 = std::sqrt(std::fabs(d2));
    }
  }
};

// Taylor coefficients of C(w) = cosh sqrt(w) = sum w^k / (2k)!, S(w) = sinh sqrt(w) / sqrt(w)
// = sum w^k / (2k+1)! and D(w) = S'(w) = (C - S) / (2 w) = sum (k+1) w^k / (2k+3)!.
// Eleven terms leave a truncation below 1e-19 for |w| < 1.
inline constexpr int kSeriesTerms = 11;
struct SeriesCoefficients {
  double c[kSeriesTerms];
  double s[kSeriesTerms];
  double d[kSeriesTerms];
  constexpr SeriesCoefficients() : c(), s(), d() {
    double factorial = 1.0;  // (2k)!
    for (int k = 0; k < kSeriesTerms; ++k) {
      if (k > 0) factorial *= (2.0 * k - 1.0) * (2.0 * k);
      c[k] = 1.0 / factorial;
      s[k] = 1.0 / (factorial * (2.0 * k + 1.0));
      d[k] = (k + 1.0) / (factorial * (2.0 * k + 1.0) * (2.0 * k + 2.0) * (2.0 * k + 3.0));
    }
  }
};
inline constexpr SeriesCoefficients kSeries{};

// C, S and D for |w| < 1 by Horner's rule (no divisions: this sits on the hot path near mu = 1/4).
inline void entire_series(double w, double& c, double& s, double& d) {
  c = kSeries.c[kSeriesTerms - 1];
  s = kSeries.s[kSeriesTerms - 1];
  d = kSeries.d[kSeriesTerms - 1];
  for (int k = kSeriesTerms - 2; k >= 0; --k) {
    c = c * w + kSeries.c[k];
    s = s * w + kSeries.s[k];
    d = d * w + kSeries.d[k];
  }
}

// Values needed by the Jacobian at one point u >= 0, with v0-related terms.
struct ShapeValues {
  double a;        // A(u)
  double b;        // B(u)
  double a_prime;  // dA/du
  double b_prime;  // dB/du
  double a_mu;     // dA/dmu
  double b_mu;     // dB/dmu
};

// Root form, given E1 = exp(l1 u) and E2 = exp(l2 u).
inline ShapeValues root_form_values(const ShapeConstants& k, double u, double e1, double e2) {
  ShapeValues v{};
  const double diff_over_q = (e1 - e2) * k.inv_q;
  v.a = k.c1 * e1 - k.c2 * e2;
  v.b = k.mu * diff_over_q;
  v.a_prime = -diff_over_q;  // A' = -B / mu
  v.b_prime = v.a - diff_over_q;
  // Terms in u * E2 / mu describe the O(mu) boundary layer; they vanish once E2 underflows.
  const double e2_terms_a = (e2 != 0.0) ? (k.dc2_dmu + u * k.c2_dl2_dmu) * e2 : 0.0;
  const double e2_terms_b = (e2 != 0.0) ? u * k.mq_dl2_dmu * e2 : 0.0;
  v.a_mu = (k.dc1_dmu + k.c1 * u * k.dl1_dmu) * e1 - e2_terms_a;
  v.b_mu = k.dmq_dmu * (e1 - e2) + k.mu_over_q * u * k.dl1_dmu * e1 - e2_terms_b;
  return v;
}

// Hyperbolic form, given ch = e^{-alpha u} C(w), sh = e^{-alpha u} S(w), dh = e^{-alpha u} D(w).
inline ShapeValues hyperbolic_form_values(const ShapeConstants& k, double u, double ch, double sh,
                                          double dh) {
  ShapeValues v{};
  const double alpha = k.alpha;
  v.a = ch + alpha * u * sh;
  v.b = u * sh;
  v.a_prime = -v.b * k.inv_mu;
  v.b_prime = v.a + v.a_prime;
  const double two_alpha_m2 = 2.0 * alpha - 2.0;
  const double da_dalpha = -u * v.a + u * sh + two_alpha_m2 * u * u * (0.5 * sh + alpha * u * dh);
  const double db_dalpha = -u * v.b + two_alpha_m2 * u * u * u * dh;
  const double dalpha_dmu = -2.0 * alpha * alpha;
  v.a_mu = dalpha_dmu * da_dalpha;
  v.b_mu = dalpha_dmu * db_dalpha;
  return v;
}

// (ch, sh, dh) at u directly from exp/cos/sin (or the series for |w| < 1).
inline void hyperbolic_primitives(const ShapeConstants& k, double u, double& ch, double& sh,
                                  double& dh) {
  const double w = k.d2 * u * u;
  if (std::fabs(w) < kSeriesMaxAbsW) {
    double c, s, d;
    entire_series(w, c, s, d);
    const double ea = std::exp(-k.alpha * u);
    ch = ea * c;
    sh = ea * s;
    dh = ea * d;
    return;
  }
  const double z = k.sqrt_abs_d2 * u;
  if (w > 0.0) {
    // z < alpha u, so both exponents are negative: no overflow for any u.
    const double ep = std::exp(z - k.alpha * u);
    const double em = std::exp(-z - k.alpha * u);
    ch = 0.5 * (ep + em);
    sh = 0.5 * (ep - em) / z;
  } else {
    const double ea = std::exp(-k.alpha * u);
    ch = ea * std::cos(z);
    sh = ea * std::sin(z) / z;
  }
  dh = (ch - sh) / (2.0 * w);
}

inline ShapeValues shape_values_direct(const ShapeConstants& k, double u) {
  if (k.root_form) {
    const double e1 = std::exp(k.l1 * u);
    const double e2 = (k.mu > 0.0) ? std::exp(k.l2 * u) : (u == 0.0 ? 1.0 : 0.0);
    return root_form_values(k, u, e1, e2);
  }
  double ch, sh, dh;
  hyperbolic_primitives(k, u, ch, sh, dh);
  return hyperbolic_form_values(k, u, ch, sh, dh);
}

// Writes the value and (optionally) the first jac_cols Jacobian columns of one point.
inline void write_point(const OscillatorParams& p, double u, const ShapeValues& v, double* value,
                        double* jac_row, int jac_cols) {
  const double x0 = p.r0 - p.r_inf;
  *value = p.r_inf + x0 * v.a + p.v0 * p.tau * v.b;
  if (jac_row == nullptr) return;
  const double slope_u = x0 * v.a_prime + p.v0 * p.tau * v.b_prime;  // dr/du
  jac_row[kR0] = v.a;
  jac_row[kRInf] = 1.0 - v.a;
  const double inv_tau = 1.0 / p.tau;  // loop-invariant: hoisted, no division per point
  jac_row[kTau] = -(u * inv_tau) * slope_u + p.v0 * v.b;
  jac_row[kMu] = x0 * v.a_mu + p.v0 * p.tau * v.b_mu;
  if (jac_cols > kT0) {
    jac_row[kT0] = -slope_u * inv_tau;
    jac_row[kV0] = p.tau * v.b;
  }
}

// Before t0 the policy is at rest: r = r0.
inline void write_before_start(const OscillatorParams& p, double* value, double* jac_row,
                               int jac_cols) {
  *value = p.r0;
  if (jac_row == nullptr) return;
  for (int j = 0; j < jac_cols; ++j) jac_row[j] = 0.0;
  jac_row[kR0] = 1.0;
}

// When (t - t0) / tau overflows the transient has long decayed: r = r_inf exactly.
inline void write_settled(const OscillatorParams& p, double* value, double* jac_row, int jac_cols) {
  *value = p.r_inf;
  if (jac_row == nullptr) return;
  for (int j = 0; j < jac_cols; ++j) jac_row[j] = 0.0;
  jac_row[kRInf] = 1.0;
}

// Once every shape value has underflowed to zero the transient is over; writing the settled
// state directly avoids inf * 0 in the tau and mu columns when u (or u^3, u / tau) overflows.
inline void write_point_or_settled(const OscillatorParams& p, double u, const ShapeValues& v, double* value,
                                   double* jac_row, int jac_cols) {
  if (std::isinf(u) || (v.a == 0.0 && v.b == 0.0 && v.a_prime == 0.0 && v.b_prime == 0.0)) {
    write_settled(p, value, jac_row, jac_cols);
  } else {
    write_point(p, u, v, value, jac_row, jac_cols);
  }
}

// Value only (no Jacobian requested) from A(u) and B(u): the fitter's start ranking and trial
// points need no derivative columns, which are most of the per-point work.
inline void write_value_only(const OscillatorParams& p, double u, double a, double b, double* value) {
  *value = std::isinf(u) ? p.r_inf : p.r_inf + (p.r0 - p.r_inf) * a + p.v0 * p.tau * b;
}

inline void check_jac_cols(int jac_cols) {
  if (jac_cols != 4 && jac_cols != kNumTrajectoryParams)
    throw std::invalid_argument("jac_cols must be 4 or 6, got " + std::to_string(jac_cols));
}

// A geometric sequence base * factor^i evaluated by multiplication, re-anchored periodically.
struct GeometricSequence {
  double start_exponent, step_exponent, current, factor;
  GeometricSequence(double start, double step)
      : start_exponent(start), step_exponent(step), current(std::exp(start)), factor(std::exp(step)) {}
  double at(std::size_t i) {
    // (i = 0: the start itself, also when the step is -inf and 0 * step would be NaN)
    if (i % kReanchorEvery == 0)
      current = std::exp(i == 0 ? start_exponent : start_exponent + static_cast<double>(i) * step_exponent);
    const double out = current;
    current *= factor;
    return out;
  }
};

}  // namespace detail

// Direct evaluation at arbitrary times. value[i] = r(t[i]); when jac != nullptr,
// jac[i * jac_cols + j] = d r(t[i]) / d param_j, params ordered (r0, r_inf, tau, mu, t0, v0),
// jac_cols in {4, 6}. For t < t0 the value is held at r0.
inline void trajectory(const double* t, std::size_t n, const OscillatorParams& p, double* value,
                       double* jac, int jac_cols = kNumTrajectoryParams) {
  detail::validate(p);
  detail::check_jac_cols(jac_cols);
  const detail::ShapeConstants k(p.mu);
  for (std::size_t i = 0; i < n; ++i) {
    double* row = jac ? jac + i * static_cast<std::size_t>(jac_cols) : nullptr;
    const double u = (t[i] - p.t0) / p.tau;
    if (!(u >= 0.0)) {
      detail::write_before_start(p, value + i, row, jac_cols);
      continue;
    }
    detail::write_point_or_settled(p, u, std::isinf(u) ? detail::ShapeValues{} : detail::shape_values_direct(k, u),
                                   value + i, row, jac_cols);
  }
}

// Same function on the uniform grid t_i = t_first + i * dt (dt > 0): the exponentials are
// advanced by multiplication (re-anchored every 64 points), which makes an evaluation a few
// multiplications per point instead of exp/cos/sin. Agrees with trajectory() to ~1e-14. The
// fitter's vectorised pass (cpp/src/fit_kernel.cpp) re-anchors the same recurrences at the same
// points and advances them four points at a time.
inline void trajectory_uniform(double t_first, double dt, std::size_t n, const OscillatorParams& p,
                               double* value, double* jac, int jac_cols = kNumTrajectoryParams) {
  detail::validate(p);
  detail::check_jac_cols(jac_cols);
  if (!std::isfinite(t_first)) throw std::invalid_argument("t_first must be finite");
  if (!std::isfinite(dt) || !(dt > 0.0)) throw std::invalid_argument("dt must be finite and > 0");
  const detail::ShapeConstants k(p.mu);
  const double du = dt / p.tau;
  // First index at or after t0.
  std::size_t first = 0;
  while (first < n && !((t_first + static_cast<double>(first) * dt - p.t0) / p.tau >= 0.0)) {
    double* row = jac ? jac + first * static_cast<std::size_t>(jac_cols) : nullptr;
    detail::write_before_start(p, value + first, row, jac_cols);
    ++first;
  }
  if (first == n) return;
  const double u_first = (t_first + static_cast<double>(first) * dt - p.t0) / p.tau;
  const double inv_tau = 1.0 / p.tau;
  auto u_at = [&](std::size_t i) { return (t_first + static_cast<double>(i) * dt - p.t0) * inv_tau; };
  auto emit = [&](std::size_t i, double u, const detail::ShapeValues& v) {
    double* row = jac ? jac + i * static_cast<std::size_t>(jac_cols) : nullptr;
    detail::write_point_or_settled(p, u, v, value + i, row, jac_cols);
  };
  if (k.root_form) {
    detail::GeometricSequence e1(k.l1 * u_first, k.l1 * du);
    const bool has_fast_mode = k.mu > 0.0;
    detail::GeometricSequence e2(has_fast_mode ? k.l2 * u_first : 0.0, has_fast_mode ? k.l2 * du : 0.0);
    for (std::size_t i = first; i < n; ++i) {
      const std::size_t j = i - first;
      const double u = u_at(i);
      const double e1_value = e1.at(j);
      double e2_value = e2.at(j);
      if (!has_fast_mode) e2_value = (u == 0.0) ? 1.0 : 0.0;
      if (jac == nullptr) {
        detail::write_value_only(p, u, k.c1 * e1_value - k.c2 * e2_value,
                                 k.mu_over_q * (e1_value - e2_value), value + i);
        continue;
      }
      emit(i, u, detail::root_form_values(k, u, e1_value, e2_value));
    }
    return;
  }
  // Hyperbolic form: e^{(-alpha +- d) u} for w > 0, e^{-alpha u} (cos, sin)(omega u) for w < 0.
  const double omega = k.sqrt_abs_d2;
  detail::GeometricSequence decay(-k.alpha * u_first, -k.alpha * du);
  detail::GeometricSequence plus(k.d2 > 0 ? (omega - k.alpha) * u_first : 0.0,
                                 k.d2 > 0 ? (omega - k.alpha) * du : 0.0);
  detail::GeometricSequence minus(k.d2 > 0 ? (-omega - k.alpha) * u_first : 0.0,
                                  k.d2 > 0 ? (-omega - k.alpha) * du : 0.0);
  const double cos_step = std::cos(omega * du), sin_step = std::sin(omega * du);
  const double inv_omega = omega > 0.0 ? 1.0 / omega : 0.0;  // omega = 0 only on the series branch
  const double half_inv_d2 = k.d2 != 0.0 ? 0.5 / k.d2 : 0.0;
  double cos_u = 0.0, sin_u = 0.0;
  for (std::size_t i = first; i < n; ++i) {
    const std::size_t j = i - first;
    const double u = u_at(i);
    const double ea = decay.at(j);
    const double ep = plus.at(j);
    const double em = minus.at(j);
    // Rotation (cos, sin)(omega u) advanced by the angle-addition formulas, re-anchored.
    if (j % detail::kReanchorEvery == 0) {
      cos_u = std::cos(omega * u);
      sin_u = std::sin(omega * u);
    }
    const double w = k.d2 * u * u;
    double ch, sh, dh;
    if (std::fabs(w) < detail::kSeriesMaxAbsW) {
      double c, s, d;
      detail::entire_series(w, c, s, d);
      ch = ea * c;
      sh = ea * s;
      dh = ea * d;
    } else {
      // One division per point: 1 / z = inv_omega / u and 1 / (2 w) = half_inv_d2 / u^2.
      const double inv_u = 1.0 / u;
      if (w > 0.0) {
        ch = 0.5 * (ep + em);
        sh = 0.5 * (ep - em) * inv_omega * inv_u;
      } else {
        ch = ea * cos_u;
        sh = ea * sin_u * inv_omega * inv_u;
      }
      dh = jac ? (ch - sh) * half_inv_d2 * inv_u * inv_u : 0.0;
    }
    if (jac == nullptr) {
      detail::write_value_only(p, u, ch + k.alpha * u * sh, u * sh, value + i);
    } else {
      emit(i, u, detail::hyperbolic_form_values(k, u, ch, sh, dh));
    }
    const double next_cos = cos_u * cos_step - sin_u * sin_step;
    sin_u = sin_u * cos_step + cos_u * sin_step;
    cos_u = next_cos;
  }
}

}  // namespace grpo_dynamics
