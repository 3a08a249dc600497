// Stability of the discrete linear model (docs/stability.md). See stability.hpp for the contracts.
#include "grpo_dynamics/stability.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "grpo_dynamics/constants.hpp"
#include "grpo_dynamics/messages.hpp"
#include "grpo_dynamics/parallel.hpp"

namespace grpo_dynamics {

namespace {

// Relative imaginary part below which an eigenvalue counts as real (rounding of a double root).
constexpr double kRealTolerance = 1e-10;

using cplx = std::complex<double>;

// |z| and z / w without the overflow-guarded library paths (hypot, __divdc3): hot in the grid.
inline double modulus(const cplx& z) { return std::sqrt(z.real() * z.real() + z.imag() * z.imag()); }
inline cplx divide(const cplx& num, const cplx& den) {
  const double norm = den.real() * den.real() + den.imag() * den.imag();
  return cplx(num.real() * den.real() + num.imag() * den.imag(),
              num.imag() * den.real() - num.real() * den.imag()) / norm;
}

// Empty string if valid, else the message naming the offending field.
std::string check(const LinearModel& model) {
  if (!std::isfinite(model.momentum) || model.momentum < 0.0 || model.momentum >= 1.0)
    return must("momentum", "in [0, 1)", model.momentum);
  if (!std::isfinite(model.c_lag)) return must("c_lag", "finite", model.c_lag);
  if (!std::isfinite(model.c_now)) return must("c_now", "finite", model.c_now);
  const auto steps = static_cast<double>(model.lag_steps);
  if (model.lag_model == LagModel::kRefresh) {
    if (model.lag_steps < 1) return must("refresh_interval", ">= 1", steps);
    if (model.lag_steps > kMaxRefreshInterval)
      return must("refresh_interval", "<= " + std::to_string(kMaxRefreshInterval), steps);
  } else {
    if (model.lag_steps < 0) return must("delay", ">= 0", steps);
    if (model.lag_steps > kMaxDelay) return must("delay", "<= " + std::to_string(kMaxDelay), steps);
  }
  return {};
}

void check_dense(const LinearModel& model) {
  if (model.lag_model == LagModel::kDelay && model.lag_steps > kMaxDenseDelay)
    throw std::invalid_argument(must("delay", "<= " + std::to_string(kMaxDenseDelay) +
                                     " for the dense eigen/Lyapunov solve", static_cast<double>(model.lag_steps)));
}

// Dominant eigenvalue of a real 2x2 matrix from its trace and determinant (stable root form).
void dominant_2x2(double trace, double det, cplx& dominant, double& radius) {
  if (!std::isfinite(trace) || !std::isfinite(det)) {
    dominant = cplx(kInf, 0.0);
    radius = kInf;
    return;
  }
  const double half = 0.5 * trace;
  const double disc = half * half - det;
  if (disc < 0.0) {
    dominant = cplx(half, std::sqrt(-disc));
    radius = std::sqrt(det);  // |z|^2 = det for a complex pair: avoids cancellation
  } else {
    // The root with the larger modulus has the sign of the trace (no cancellation).
    const double root = half + std::copysign(std::sqrt(disc), half);
    dominant = cplx(root, 0.0);
    radius = std::abs(root);
  }
}

cplx int_power(cplx z, long exponent) {
  cplx result(1.0, 0.0);
  while (exponent > 0) {
    if (exponent & 1) result *= z;
    z *= z;
    exponent >>= 1;
  }
  return result;
}

// Characteristic polynomial of the delay model (D >= 2), leading coefficient first.
std::vector<double> delay_polynomial(double momentum, double c_lag, double c_now, long delay) {
  std::vector<double> coeffs(static_cast<std::size_t>(delay) + 2, 0.0);
  coeffs[0] = 1.0;
  coeffs[1] = -(1.0 + momentum - c_now);
  coeffs[2] += momentum;
  coeffs[static_cast<std::size_t>(delay) + 1] += c_lag;
  return coeffs;
}

// Newton on p(z) = z^{D-1} q(z) + c_lag, q(z) = z^2 - a z + beta. Returns false if it fails.
bool newton_root(cplx& z, double a, double beta, double c_lag, long delay) {
  double last_step = std::numeric_limits<double>::infinity();
  for (int iter = 0; iter < 40; ++iter) {
    const cplx w = int_power(z, delay - 2);  // z^{D-2}
    const cplx q = z * z - a * z + beta;
    const cplx p = w * z * q + c_lag;
    const cplx dp = w * (static_cast<double>(delay - 1) * q + z * (2.0 * z - a));
    if (dp == 0.0) return false;
    const cplx step = divide(p, dp);
    z -= step;
    if (!std::isfinite(z.real()) || !std::isfinite(z.imag())) return false;
    const double size = modulus(step);
    if (size <= 1e-14 * modulus(z)) break;
    // Converged to rounding level once the steps stop shrinking near the root.
    if (size <= 1e-9 * modulus(z) && size >= last_step) break;
    last_step = size;
  }
  // Accept only a genuine root: residual small against the size of the polynomial's terms.
  const double r = modulus(z);
  const double scale =
      std::pow(r, static_cast<double>(delay - 1)) * (r * r + std::abs(a) * r + beta) + std::abs(c_lag);
  const cplx residual = int_power(z, delay - 1) * (z * z - a * z + beta) + c_lag;
  return std::isfinite(scale) && modulus(residual) <= 1e-11 * scale;
}

// Keep the candidate of largest modulus, preferring oscillating ones on ties.
void consider(const cplx& z, cplx& best, double& best_radius) {
  const cplx upper(z.real(), std::abs(z.imag()));  // conjugate symmetry: report imag >= 0
  const double r = modulus(upper);
  if (r > best_radius * (1.0 + 1e-12) ||
      (r >= best_radius * (1.0 - 1e-12) && classify(upper, 0.0) == Regime::kOscillatory)) {
    best = upper;
    best_radius = std::max(best_radius, r);
  }
}

// Dominant root of the delay polynomial (D >= 2). Fast path: Newton from the c_lag = 0 roots and
// from the nearest branches of the ring of D - 1 roots that c_lag creates around the origin,
// accepted only if a Schur-Cohn count finds no root outside its radius. Otherwise: bisection on
// the radius with the Schur-Cohn count (robust), then the root on that circle is located.
void delay_dominant(double momentum, double c_lag, double c_now, long delay, cplx& dominant,
                    double& radius) {
  const double a = 1.0 + momentum - c_now;
  const std::vector<double> coeffs = delay_polynomial(momentum, c_lag, c_now, delay);
  cplx best(0.0, 0.0);
  double best_radius = -1.0;
  const double half = 0.5 * a;
  const double disc = half * half - momentum;
  const auto verified = [&]() {
    if (!(best_radius > 0.0) || !std::isfinite(best_radius)) return false;
    if (!roots_inside_radius(coeffs, best_radius * (1.0 + 1e-8))) return false;
    dominant = best;
    radius = best_radius;
    return true;
  };
  const auto newton_from = [&](cplx z) {
    // Nearby real roots may have merged into a complex pair: start slightly off the real axis.
    z += cplx(0.0, 1e-3 * (std::abs(z) + 1e-3));
    if (newton_root(z, a, momentum, c_lag, delay)) consider(z, best, best_radius);
  };
  cplx q_root;
  double other_q_root = 0.0;
  if (disc < 0.0) {
    q_root = cplx(half, std::sqrt(-disc));
  } else {
    const double root = half + std::copysign(std::sqrt(disc), half);
    q_root = cplx(root, 0.0);
    if (root != 0.0) other_q_root = momentum / root;
  }
  {
    // Most often the dominant root is the slow one the continuum oscillator (docs/model.md, lag
    // L = D) predicts, z ~ exp(s), or the continuation of the largest root of q: try them first.
    const double d = static_cast<double>(delay);
    const double mass = 0.5 * (1.0 + momentum) + 0.5 * c_lag * d * d;
    const double damping = (1.0 - momentum) - c_lag * d;
    const cplx root_disc = std::sqrt(cplx(damping * damping - 4.0 * mass * (c_lag + c_now), 0.0));
    // A negative c_lag can remove the continuum's inertia (mass <= 0): use its first-order root.
    if (mass > 0.0) newton_from(std::exp((-damping + root_disc) / (2.0 * mass)));
    else if (damping > 0.0) newton_from(std::exp(-(c_lag + c_now) / damping));
    newton_from(q_root);
    if (verified()) return;
  }
  newton_from(cplx(other_q_root, 0.0));
  newton_from(cplx(1.0, 0.0));
  newton_from(cplx(-1.0, 0.0));
  const double span = static_cast<double>(delay - 1);
  if (c_lag != 0.0) {
    // Ring roots z^{D-1} = -c_lag / q(z): a few fixed-point sweeps on branch k, then Newton.
    const long k_near_q = static_cast<long>(std::lround((std::arg(q_root) * span - kPi) / (2.0 * kPi)));
    for (long k : {0L, -1L, k_near_q, k_near_q - 1, k_near_q + 1}) {
      cplx z = std::polar(0.9, (kPi + 2.0 * kPi * static_cast<double>(k)) / span);
      for (int sweep = 0; sweep < 3; ++sweep) {
        const cplx q = z * z - a * z + momentum;
        if (q == 0.0) break;
        z = std::exp((std::log(cplx(-c_lag, 0.0) / q) + cplx(0.0, 2.0 * kPi * static_cast<double>(k))) / span);
      }
      if (newton_root(z, a, momentum, c_lag, delay)) consider(z, best, best_radius);
    }
  }
  if (verified()) return;
  // Robust path. Every root lies inside the Cauchy bound 1 + max |coeff|; a found root bounds below.
  double upper = 1.0;
  for (double coeff : coeffs) upper = std::max(upper, 1.0 + std::abs(coeff));
  double lower = std::max(0.0, std::isfinite(best_radius) ? best_radius : 0.0);
  while (upper - lower > 1e-14 * upper) {
    const double mid = 0.5 * (lower + upper);
    if (roots_inside_radius(coeffs, mid)) upper = mid; else lower = mid;
  }
  radius = upper;
  const auto relative_residual = [&](cplx z) {
    const double r = std::abs(z);
    const double scale =
        std::pow(r, span) * (r * r + std::abs(a) * r + momentum) + std::abs(c_lag);
    return std::abs(int_power(z, delay - 1) * (z * z - a * z + momentum) + c_lag) / scale;
  };
  // Which root sits on that circle: scan the upper half circle, then polish with Newton.
  const long samples = 8 * (delay + 2);
  double best_residual = std::numeric_limits<double>::infinity();
  cplx on_circle(radius, 0.0);
  for (long j = 0; j <= samples; ++j) {
    const cplx z = std::polar(radius, kPi * static_cast<double>(j) / static_cast<double>(samples));
    const double residual = relative_residual(z);
    if (residual < best_residual) {
      best_residual = residual;
      on_circle = z;
    }
  }
  cplx polished = on_circle + cplx(0.0, 1e-9 * radius);
  if (newton_root(polished, a, momentum, c_lag, delay) &&
      std::abs(std::abs(polished) - radius) <= 1e-6 * radius)
    on_circle = polished;
  dominant = cplx(on_circle.real(), std::abs(on_circle.imag()));
}

// Running values of u_k and U_k (see refresh_cycle) along k.
struct USequence {
  double a, beta;
  double u_prev = 0.0, u = 1.0;    // u_{k-1}, u_k
  double big_prev = 0.0, big = 1.0;  // U_{k-1}, U_k
  USequence(double a_, double beta_) : a(a_), beta(beta_) {}  // k = 1
  double next_u() const { return a * u - beta * u_prev; }     // u_{k+1}
  void advance() {
    const double u_next = next_u();
    u_prev = u;
    u = u_next;
    big_prev = big;
    big += u_next;
  }
};

// Intervals up to which the sequence is stepped directly (O(K), fewest operations for small K);
// above it, binary powering (O(log K)). Both are exact up to rounding.
constexpr long kDirectSteps = 16;

// The state of USequence at k = K: u_{K-1}, u_K, U_{K-1}, U_K. Above kDirectSteps by binary
// powering of the one-step companion C = [[a, -beta], [1, 0]], whose powers are
// C^n = [[u_{n+1}, -beta u_n], [u_n, -beta u_{n-1}]] and whose partial sums
// S_n = I + C + ... + C^{n-1} have S_n[0][0] = U_n. By Cayley-Hamilton (C^2 = a C - beta I) both
// are x C + y I: C^n = u_n C - beta u_{n-1} I, S_n = X C + Y I. Doubling n -> 2n squares C^n and
// sets S_{2n} = S_n + C^n S_n; a set bit n -> n + 1 adds C^n to S and multiplies C^n by C.
// O(log K) operations instead of O(K) (docs/stability.md "Grid").
USequence sequence_at(double a, double beta, long refresh_interval) {
  USequence s(a, beta);
  if (refresh_interval <= kDirectSteps) {
    for (long k = 1; k < refresh_interval; ++k) s.advance();
    return s;
  }
  const auto n = static_cast<unsigned long>(refresh_interval - 1);  // C^{K-1}, S_{K-1}
  double x = 1.0, y = 0.0, big_x = 0.0, big_y = 1.0;               // n = 1: C and S_1 = I
  int bit = 0;
  while ((n >> (bit + 1)) != 0) ++bit;  // highest set bit, consumed by the start n = 1
  for (--bit; bit >= 0; --bit) {
    const double xx = x * x, x_big_x = x * big_x;
    const double next_big_x = big_x + a * x_big_x + x * big_y + y * big_x;
    big_y += y * big_y - beta * x_big_x;
    big_x = next_big_x;
    const double next_x = x * (a * x + 2.0 * y);
    y = y * y - beta * xx;
    x = next_x;
    if ((n >> bit) & 1UL) {
      big_x += x;
      big_y += y;
      const double stepped = a * x + y;
      y = -beta * x;
      x = stepped;
    }
  }
  s.u_prev = x;                 // u_{K-1}
  s.u = a * x + y;              // u_K = C^{K-1}[0][0]
  s.big_prev = a * big_x + big_y;  // U_{K-1} = S_{K-1}[0][0]
  s.big = s.big_prev + s.u;        // U_K
  return s;
}

Eigen::Matrix2d cycle_from_sequence(const USequence& s, double c_lag) {
  Eigen::Matrix2d m;
  m << s.next_u() - c_lag * s.big, -s.beta * s.u, s.u - c_lag * s.big_prev, -s.beta * s.u_prev;
  return m;
}

// Whether a value is at or past its boundary: not above the tolerance times its rounding scale.
inline bool at_or_past(double value, double scale) {
  return !(value > kBoundaryTolerance * scale);  // NaN (overflow) counts as unstable
}

// Jury test of the refresh cycle of interval K from the sequence state s at k = K: u_{K-1},
// u_K, u_{K+1}, U_{K-1}, U_K of refresh_cycle. Identities of the recurrence used to avoid
// cancellation: u_{k+1} - beta u_k = 1 - c_now U_k and u_k^2 - u_{k-1} u_{k+1} = beta^{k-1}.
bool unstable_cycle(const USequence& s, double c_lag, double c_now, long refresh_interval) {
  const double beta = s.beta;
  const double c = c_lag + c_now;
  const double steps = static_cast<double>(refresh_interval);
  const double bracket_a = s.big * (1.0 + beta * s.u_prev);
  const double bracket_b = beta * s.u * s.big_prev;
  const double p_one = c * (bracket_a - bracket_b);  // det(I - M)
  const double p_one_scale = std::abs(c) * (std::abs(bracket_a) + std::abs(bracket_b));
  const double cross = beta * c_lag * (s.u_prev * s.big - s.u * s.big_prev);
  const double det = std::pow(beta, steps) + cross;
  const double trace = s.next_u() - c_lag * s.big - beta * s.u_prev;
  const double p_minus = 1.0 + trace + det;  // det(I + M)
  const double p_minus_scale = 1.0 + std::abs(s.next_u()) + std::abs(c_lag * s.big) +
                               std::abs(beta * s.u_prev) + std::abs(det);
  const double one_minus_beta_k = beta == 0.0 ? 1.0 : -std::expm1(steps * std::log(beta));
  return at_or_past(p_one, p_one_scale) || at_or_past(p_minus, p_minus_scale) ||
         at_or_past(one_minus_beta_k - cross, one_minus_beta_k + std::abs(cross));
}

// Jury test of a two-dimensional map (refresh cycle of any K; delay 0 or 1), see
// kBoundaryTolerance. True if unstable (a root on or outside the unit circle within tolerance).
bool unstable_2x2(const LinearModel& model) {
  const double beta = model.momentum;
  const double c = model.c_lag + model.c_now;
  double p_one, p_one_scale, p_minus, p_minus_scale, one_minus_det, det_scale;
  if (model.lag_model == LagModel::kDelay) {
    const bool now = model.lag_steps == 0;
    const double trace = 1.0 + beta - model.c_now - (now ? model.c_lag : 0.0);
    const double det = beta + (now ? 0.0 : model.c_lag);
    p_one = c;  // 1 - trace + det, exactly
    p_one_scale = std::abs(model.c_lag) + std::abs(model.c_now);
    p_minus = 1.0 + trace + det;
    p_minus_scale = 1.0 + std::abs(trace) + std::abs(det);
    one_minus_det = (1.0 - beta) - (now ? 0.0 : model.c_lag);
    det_scale = (1.0 - beta) + (now ? 0.0 : std::abs(model.c_lag));
  } else {
    const USequence s = sequence_at(1.0 + beta - model.c_now, beta, model.lag_steps);
    return unstable_cycle(s, model.c_lag, model.c_now, model.lag_steps);
  }
  return at_or_past(p_one, p_one_scale) || at_or_past(p_minus, p_minus_scale) ||
         at_or_past(one_minus_det, det_scale);
}

bool unstable_point(const LinearModel& model) {
  if (model.lag_model == LagModel::kRefresh || model.lag_steps <= 1) return unstable_2x2(model);
  if (model.lag_model == LagModel::kDelay) {
    const long delay = model.lag_steps;
    std::vector<double> coeffs;
    if (delay <= 1) {
      coeffs = {1.0, -(1.0 + model.momentum - model.c_now - (delay == 0 ? model.c_lag : 0.0)),
                model.momentum + (delay == 1 ? model.c_lag : 0.0)};
    } else {
      coeffs = delay_polynomial(model.momentum, model.c_lag, model.c_now, delay);
    }
    return !roots_inside_radius(coeffs, 1.0);
  }
  return !(fast_spectrum(model).spectral_radius < 1.0);
}

}  // namespace

const char* regime_name(Regime regime) {
  switch (regime) {
    case Regime::kOverdamped: return "overdamped";
    case Regime::kOscillatory: return "oscillatory";
    case Regime::kUnstable: return "unstable";
    default: return "invalid";
  }
}

LagModel parse_lag_model(const std::string& name) {
  if (name == "refresh") return LagModel::kRefresh;
  if (name == "delay") return LagModel::kDelay;
  throw std::invalid_argument("lag_model: must be 'refresh' or 'delay', got '" + name + "'");
}

void validate(const LinearModel& model) {
  const std::string message = check(model);
  if (!message.empty()) throw std::invalid_argument(message);
}

long steps_per_map(const LinearModel& model) {
  return model.lag_model == LagModel::kRefresh ? model.lag_steps : 1;
}

Regime classify(std::complex<double> dominant, double spectral_radius) {
  if (!(spectral_radius < 1.0)) return Regime::kUnstable;
  const double modulus = std::abs(dominant);
  if (std::abs(dominant.imag()) > kRealTolerance * modulus || dominant.real() < 0.0)
    return Regime::kOscillatory;
  return Regime::kOverdamped;
}

RefreshCycle refresh_cycle(double momentum, double c_lag, double c_now, long refresh_interval) {
  validate({momentum, c_lag, c_now, LagModel::kRefresh, refresh_interval});
  const USequence s = sequence_at(1.0 + momentum - c_now, momentum, refresh_interval);
  RefreshCycle out;
  out.monodromy = cycle_from_sequence(s, c_lag);
  out.noise_gain << s.big, s.big_prev;
  return out;
}

Eigen::MatrixXd delay_companion(double momentum, double c_lag, double c_now, long delay) {
  const LinearModel model{momentum, c_lag, c_now, LagModel::kDelay, delay};
  validate(model);
  check_dense(model);
  const Eigen::Index n = std::max<Eigen::Index>(delay + 1, 2);
  Eigen::MatrixXd m = Eigen::MatrixXd::Zero(n, n);
  m(0, 0) = 1.0 + momentum - c_now;
  m(0, 1) -= momentum;
  m(0, delay) -= c_lag;  // the stale force acts on x_{t-D}
  for (Eigen::Index i = 1; i < n; ++i) m(i, i - 1) = 1.0;
  return m;
}

Eigen::MatrixXd transition_matrix(const LinearModel& model) {
  if (model.lag_model == LagModel::kRefresh)
    return refresh_cycle(model.momentum, model.c_lag, model.c_now, model.lag_steps).monodromy;
  return delay_companion(model.momentum, model.c_lag, model.c_now, model.lag_steps);
}

bool roots_inside_radius(const std::vector<double>& coeffs, double radius) {
  if (coeffs.empty() || coeffs[0] == 0.0) throw std::invalid_argument("coeffs: leading coefficient is zero");
  if (!(radius > 0.0)) return false;
  // Monic polynomial of p(radius z): coefficient i becomes coeffs[i] / (coeffs[0] radius^i).
  std::vector<double> poly(coeffs.size());
  double scale = 1.0;
  for (std::size_t i = 0; i < coeffs.size(); ++i) {
    poly[i] = coeffs[i] / coeffs[0] * scale;
    scale /= radius;
  }
  std::vector<double> next(coeffs.size());
  // Schur-Cohn step-down: |reflection| < 1 at every degree iff all roots are inside.
  for (std::size_t degree = poly.size() - 1; degree >= 1; --degree) {
    const double reflection = poly[degree] / poly[0];
    if (!(std::abs(reflection) < 1.0)) return false;
    for (std::size_t i = 0; i < degree; ++i) next[i] = poly[i] - reflection * poly[degree - i];
    const double inverse_lead = 1.0 / next[0];  // keep the polynomial monic (no under/overflow)
    for (std::size_t i = 0; i < degree; ++i) poly[i] = next[i] * inverse_lead;
  }
  return true;
}

Spectrum fast_spectrum(const LinearModel& model) {
  validate(model);
  Spectrum out;
  const long steps = steps_per_map(model);
  cplx dominant;
  double radius = 0.0;
  if (model.lag_model == LagModel::kRefresh) {
    // One pass over the sequence serves the cycle map and its Jury test.
    const USequence s = sequence_at(1.0 + model.momentum - model.c_now, model.momentum, model.lag_steps);
    const Eigen::Matrix2d m = cycle_from_sequence(s, model.c_lag);
    dominant_2x2(m.trace(), m(0, 0) * m(1, 1) - m(0, 1) * m(1, 0), dominant, radius);
    out.dominant = cplx(dominant.real(), std::abs(dominant.imag()));
    out.spectral_radius = radius;
    out.decay_rate = std::pow(radius, 1.0 / static_cast<double>(steps));
    // The 2x2 maps are decided by the Jury test (kBoundaryTolerance), not by rho rounding.
    out.regime = unstable_cycle(s, model.c_lag, model.c_now, model.lag_steps) ? Regime::kUnstable
                                                                              : classify(out.dominant, 0.0);
    return out;
  } else if (model.lag_steps <= 1) {
    const bool now = model.lag_steps == 0;
    const double trace = 1.0 + model.momentum - model.c_now - (now ? model.c_lag : 0.0);
    const double det = model.momentum + (now ? 0.0 : model.c_lag);
    dominant_2x2(trace, det, dominant, radius);
  } else if (model.lag_steps <= 3) {
    // Tiny companions: Eigen's real Schur is as cheap as the Newton search and never misses.
    Eigen::EigenSolver<Eigen::MatrixXd> solver(transition_matrix(model), false);
    if (solver.info() != Eigen::Success) throw std::domain_error("eigenvalue solver did not converge");
    radius = -1.0;
    for (Eigen::Index i = 0; i < solver.eigenvalues().size(); ++i)
      consider(solver.eigenvalues()[i], dominant, radius);
  } else {
    delay_dominant(model.momentum, model.c_lag, model.c_now, model.lag_steps, dominant, radius);
  }
  out.dominant = cplx(dominant.real(), std::abs(dominant.imag()));
  out.spectral_radius = radius;
  out.decay_rate = std::pow(radius, 1.0 / static_cast<double>(steps));
  if (model.lag_steps <= 1) {
    // The 2x2 maps are decided by the Jury test (kBoundaryTolerance), not by rho rounding.
    out.regime = unstable_2x2(model) ? Regime::kUnstable : classify(out.dominant, 0.0);
  } else {
    out.regime = classify(out.dominant, radius);
  }
  return out;
}

Spectrum spectrum(const LinearModel& model) {
  validate(model);
  check_dense(model);
  Spectrum out = fast_spectrum(model);  // dominant, radius, regime; never the eigenvalues
  const Eigen::MatrixXd matrix = transition_matrix(model);
  if (matrix.allFinite()) {
    Eigen::EigenSolver<Eigen::MatrixXd> solver(matrix, false);
    if (solver.info() != Eigen::Success) throw std::domain_error("eigenvalue solver did not converge");
    out.eigenvalues = solver.eigenvalues();
  } else {
    out.eigenvalues = Eigen::VectorXcd::Constant(matrix.rows(), cplx(kNaN, kNaN));
  }
  return out;
}

Eigen::MatrixXd solve_discrete_lyapunov(const Eigen::MatrixXd& transition, const Eigen::MatrixXd& noise,
                                        Cancel* cancel) {
  if (transition.rows() != transition.cols() || noise.rows() != transition.rows() ||
      noise.cols() != transition.cols())
    throw std::invalid_argument("transition and noise must be square matrices of the same size");
  {
    // The series sum F^k Q F^kT converges only for a stable F.
    Eigen::EigenSolver<Eigen::MatrixXd> solver(transition, false);
    if (solver.info() != Eigen::Success || !(solver.eigenvalues().cwiseAbs().maxCoeff() < 1.0))
      throw std::domain_error("transition must be stable (spectral radius < 1) for a stationary solution");
  }
  if (transition.rows() <= 4) {
    // Small systems: solve vec(P) = (I - F kron F)^{-1} vec(Q) directly.
    const Eigen::Index n = transition.rows();
    Eigen::MatrixXd kron(n * n, n * n);
    for (Eigen::Index i = 0; i < n; ++i)
      for (Eigen::Index j = 0; j < n; ++j) kron.block(i * n, j * n, n, n) = transition(i, j) * transition;
    const Eigen::MatrixXd system = Eigen::MatrixXd::Identity(n * n, n * n) - kron;
    const Eigen::VectorXd vec_q = Eigen::Map<const Eigen::VectorXd>(noise.data(), n * n);
    Eigen::VectorXd vec_p = system.fullPivLu().solve(vec_q);
    Eigen::MatrixXd p = Eigen::Map<Eigen::MatrixXd>(vec_p.data(), n, n);
    return 0.5 * (p + p.transpose());
  }
  // Smith's doubling: P_{j+1} = P_j + A_j P_j A_j^T, A_{j+1} = A_j^2 sums F^k Q F^kT in 2^j terms.
  Eigen::MatrixXd p = noise;
  Eigen::MatrixXd power = transition;
  for (int iter = 0; iter < 200; ++iter) {
    if (cancelled(cancel)) return p;
    const Eigen::MatrixXd increment = power * p * power.transpose();
    p += increment;
    if (!p.allFinite()) throw std::domain_error("Lyapunov doubling diverged: the system is not stable");
    if (increment.norm() <= 1e-17 * p.norm()) return 0.5 * (p + p.transpose());
    power = power * power;
  }
  throw std::domain_error("Lyapunov doubling did not converge: the system is (nearly) unstable");
}

StationaryVariance stationary_variance(const LinearModel& model, Cancel* cancel) {
  validate(model);
  check_dense(model);
  StationaryVariance out;
  const Spectrum spec = fast_spectrum(model);
  if (spec.regime == Regime::kUnstable || !(spec.spectral_radius < 1.0)) {
    out.mean = kInf;
    out.per_phase.assign(static_cast<std::size_t>(steps_per_map(model)), kInf);
    return out;
  }
  if (model.lag_model == LagModel::kDelay) {
    const Eigen::MatrixXd f = transition_matrix(model);
    Eigen::MatrixXd q = Eigen::MatrixXd::Zero(f.rows(), f.cols());
    q(0, 0) = 1.0;  // white noise enters x_{t+1} only
    const double variance = solve_discrete_lyapunov(f, q, cancel)(0, 0);
    out.mean = variance;
    out.per_phase = {variance};
    return out;
  }
  // Refresh: the cycle-start state y_n = (x_{nK}, x_{nK-1}) obeys y_{n+1} = M y_n + h e_n with e_n
  // independent of y_n, so P0 = M P0 M^T + h h^T; phase j then sees x = r_j y_n + U_j e_n.
  const RefreshCycle cycle = refresh_cycle(model.momentum, model.c_lag, model.c_now, model.lag_steps);
  const Eigen::Matrix2d p0 =
      solve_discrete_lyapunov(cycle.monodromy, cycle.noise_gain * cycle.noise_gain.transpose());
  USequence s(1.0 + model.momentum - model.c_now, model.momentum);
  out.per_phase.resize(static_cast<std::size_t>(model.lag_steps));
  double total = 0.0;
  for (long j = 0; j < model.lag_steps; ++j) {
    double variance;
    if (j == 0) {
      variance = p0(0, 0);
    } else {
      // s holds k = j: r_j = (u_{j+1} - c_lag U_j, -beta u_j), noise gain U_j.
      const Eigen::RowVector2d r(s.next_u() - model.c_lag * s.big, -model.momentum * s.u);
      variance = r * p0 * r.transpose() + s.big * s.big;
      s.advance();
    }
    out.per_phase[static_cast<std::size_t>(j)] = variance;
    total += variance;
  }
  out.mean = total / static_cast<double>(model.lag_steps);
  return out;
}

long critical_refresh_interval(double momentum, double c_lag, double c_now, long max_interval,
                               Cancel* cancel) {
  if (max_interval < 1) throw std::invalid_argument(must("max_interval", ">= 1", static_cast<double>(max_interval)));
  if (max_interval > kMaxRefreshInterval)
    throw std::invalid_argument(must("max_interval", "<= " + std::to_string(kMaxRefreshInterval),
                                     static_cast<double>(max_interval)));
  validate({momentum, c_lag, c_now, LagModel::kRefresh, 1});
  USequence s(1.0 + momentum - c_now, momentum);
  for (long k = 1; k <= max_interval; ++k) {
    if ((k & 0xFFFF) == 0 && cancelled(cancel)) return 0;
    if (k > 1) s.advance();
    if (unstable_cycle(s, c_lag, c_now, k)) return k;
  }
  return 0;
}

long critical_delay(double momentum, double c_lag, double c_now, long max_delay, Cancel* cancel) {
  if (max_delay < 0) throw std::invalid_argument(must("max_delay", ">= 0", static_cast<double>(max_delay)));
  if (max_delay > kMaxDelay)
    throw std::invalid_argument(must("max_delay", "<= " + std::to_string(kMaxDelay), static_cast<double>(max_delay)));
  validate({momentum, c_lag, c_now, LagModel::kDelay, 0});
  for (long d = 0; d <= max_delay; ++d) {
    if (cancelled(cancel)) return -1;
    if (unstable_point({momentum, c_lag, c_now, LagModel::kDelay, d})) return d;
  }
  return -1;
}

double critical_scale(const LinearModel& model, const std::string& criterion, double scan_ratio,
                      Cancel* cancel, double decoupled_decay) {
  validate(model);
  if (!std::isfinite(decoupled_decay) || decoupled_decay < 0.0)
    throw std::invalid_argument(must("decoupled_decay", "finite and >= 0", decoupled_decay));
  const bool oscillation = criterion == "oscillatory";
  if (!oscillation && criterion != "unstable")
    throw std::invalid_argument("criterion: must be 'unstable' or 'oscillatory', got '" + criterion + "'");
  if (!(scan_ratio >= kMinScanRatio) || !(scan_ratio <= 2.0))
    throw std::invalid_argument(must("scan_ratio", "in [1.001, 2]", scan_ratio));
  // c_lag may be negative (k3 KL at stale samples) as long as the total restoring force is positive.
  const double total = model.c_lag + model.c_now;
  if (!(total > 0.0) || model.c_now < 0.0)
    throw std::invalid_argument("c_lag + c_now: must be > 0 with c_now >= 0 (c_lag may be negative), got " +
                                format_value(model.c_lag) + " + " + format_value(model.c_now));
  const auto holds = [&](double scale) {
    if (cancelled(cancel)) return true;  // ends the scan and the bisection; result discarded
    LinearModel scaled = model;
    scaled.c_lag = scale * model.c_lag;
    scaled.c_now = scale * model.c_now;
    // AdamW: beta_eff = beta1 (1 - lr lambda) (scale = lr); max() guards 1 - lr lambda rounding
    // below 0 for an lr just under the rounded cap 1 / lambda.
    if (decoupled_decay > 0.0)
      scaled.momentum = std::max(0.0, model.momentum * (1.0 - scale * decoupled_decay));
    if (!oscillation) return unstable_point(scaled);
    return fast_spectrum(scaled).regime != Regime::kOverdamped;
  };
  // The decoupled decay allows scales below 1 / decoupled_decay only (lr lambda < 1).
  const double cap = decoupled_decay > 0.0 ? 1.0 / decoupled_decay : kInf;
  double lower = std::min(1e-9 / total, 0.5 * cap);
  if (holds(lower)) return 0.0;
  const double upper_limit = 1e9 / total;
  double upper = lower;
  while (true) {
    upper = lower * scan_ratio;
    if (upper >= cap || upper > upper_limit) return cap <= upper_limit ? cap : kInf;
    if (holds(upper)) break;
    lower = upper;
  }
  // Bisection between the last scale where the criterion fails and the first where it holds.
  while (upper - lower > 1e-13 * upper) {
    const double mid = 0.5 * (lower + upper);
    if (holds(mid)) upper = mid; else lower = mid;
  }
  return upper;
}

void evaluate_grid(std::size_t n_points, const double* momentum, const double* c_lag,
                   const double* c_now, const double* lag_steps, LagModel lag_model,
                   const GridOutput& out, int threads, Cancel* cancel) {
  const auto work = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      if (cancelled(cancel)) return;
      LinearModel model{momentum[i], c_lag[i], c_now[i], lag_model, 0};
      const double steps = lag_steps[i];
      const bool integral = std::isfinite(steps) && steps == std::floor(steps) &&
                            std::abs(steps) <= static_cast<double>(kMaxRefreshInterval);
      if (integral) model.lag_steps = static_cast<long>(steps);
      if (!integral || !check(model).empty()) {
        // Bulk evaluation never throws: the point is marked invalid.
        out.spectral_radius[i] = out.decay_rate[i] = kNaN;
        out.dominant_real[i] = out.dominant_imag[i] = kNaN;
        out.regime[i] = static_cast<std::int32_t>(Regime::kInvalid);
        continue;
      }
      Spectrum spec;
      try {
        spec = fast_spectrum(model);
      } catch (const std::exception&) {
        spec.spectral_radius = spec.decay_rate = kNaN;  // solver failure: reported, not thrown
        spec.dominant = cplx(kNaN, kNaN);
        spec.regime = Regime::kInvalid;
      }
      out.spectral_radius[i] = spec.spectral_radius;
      out.decay_rate[i] = spec.decay_rate;
      out.dominant_real[i] = spec.dominant.real();
      out.dominant_imag[i] = spec.dominant.imag();
      out.regime[i] = static_cast<std::int32_t>(spec.regime);
    }
  };
  // Contiguous chunks, at least 256 points per thread (smaller chunks are not worth a thread).
  const std::size_t n_threads = resolve_threads(threads, n_points / 256);
  const std::size_t chunk = (n_points + n_threads - 1) / n_threads;
  run_workers(n_threads, [&](std::size_t worker) {
    const std::size_t begin = std::min(n_points, worker * chunk);
    work(begin, std::min(n_points, begin + chunk));
  }, cancel);
}

}  // namespace grpo_dynamics
