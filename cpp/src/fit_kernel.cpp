// The fitter's inner loop: RSS and normal equations of the oscillator / exponential on a
// uniform grid (see fit_kernel.hpp and docs/fitting.md, "Speed").
//
// Layout. The active points (t >= t0) run four at a time (point j = 4m + l in lane l). The
// recurrences of trajectory_uniform (geometric sequences exp(c u), the rotation by omega du) are
// re-anchored at the same points (every 64) with the same first four terms, then advanced per
// lane by the four-step factor (exp(4 c du), rotation by 4 omega du): four independent
// multiplications instead of a chain, so values agree with trajectory_uniform to rounding
// (~1e-15 relative), not bit for bit. Everything else (shape values, the Jacobian row, the sums)
// has no dependence from point to point. The sums are kept per lane and added up at the end in a
// fixed order.
//
// Same result from both clones: the four-lane code is compiled twice, for the baseline x86-64
// ISA and for AVX2 (chosen at run time), from one source with floating-point contraction off
// (-ffp-contract=off, CMakeLists.txt: GCC contracts a*b+c into an FMA by default in C++ when
// the target has one), so both perform the same IEEE operations in the same order and give the
// same bits on a given machine. (Across machines the exp/sin/cos of the C library may differ in
// their last bit, so fits may too.) Without GCC/Clang vector extensions a portable four-double
// struct stands in (built with -DGRPO_PORTABLE_VECTORS on GCC it passes
// tests/test_fit_kernel.py and gives the same bits).
#include "grpo_dynamics/fit_kernel.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

namespace grpo_dynamics::detail {

namespace {

// GRPO_PORTABLE_VECTORS builds the plain-struct stand-in with GCC too (to test that path).
#if defined(__GNUC__) && !defined(GRPO_PORTABLE_VECTORS)
#define GD_INLINE inline __attribute__((always_inline))
// Lambdas are inlined too: an out-of-line copy would be compiled for the baseline ISA and called
// from the AVX2 clone with a different vector-argument ABI.
#define GD_LAMBDA_INLINE __attribute__((always_inline))
typedef double V4 __attribute__((vector_size(32)));
typedef long long M4 __attribute__((vector_size(32)));
GD_INLINE V4 bc(double x) { return V4{x, x, x, x}; }
GD_INLINE V4 sel(M4 m, V4 a, V4 b) { return m ? a : b; }
GD_INLINE bool any(M4 m) { return (m[0] | m[1] | m[2] | m[3]) != 0; }
GD_INLINE bool all(M4 m) { return (m[0] & m[1] & m[2] & m[3]) != 0; }
GD_INLINE V4 load(const double* p) {
  V4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
GD_INLINE double lane(V4 v, int l) { return v[l]; }
#else
#define GD_INLINE inline
#define GD_LAMBDA_INLINE
struct M4 {
  bool m[4];
};
struct V4 {
  double v[4];
};
#define GD_BINOP(op)                                                   \
  GD_INLINE V4 operator op(V4 a, V4 b) {                               \
    return V4{{a.v[0] op b.v[0], a.v[1] op b.v[1], a.v[2] op b.v[2], a.v[3] op b.v[3]}}; \
  }
GD_BINOP(+)
GD_BINOP(-)
GD_BINOP(*)
GD_BINOP(/)
#undef GD_BINOP
#define GD_CMP(op)                                                     \
  GD_INLINE M4 operator op(V4 a, V4 b) {                               \
    return M4{{a.v[0] op b.v[0], a.v[1] op b.v[1], a.v[2] op b.v[2], a.v[3] op b.v[3]}}; \
  }
GD_CMP(==)
GD_CMP(!=)
GD_CMP(<)
#undef GD_CMP
GD_INLINE V4 operator-(V4 a) { return V4{{-a.v[0], -a.v[1], -a.v[2], -a.v[3]}}; }
GD_INLINE M4 operator&(M4 a, M4 b) { return M4{{a.m[0] && b.m[0], a.m[1] && b.m[1], a.m[2] && b.m[2], a.m[3] && b.m[3]}}; }
GD_INLINE M4 operator|(M4 a, M4 b) { return M4{{a.m[0] || b.m[0], a.m[1] || b.m[1], a.m[2] || b.m[2], a.m[3] || b.m[3]}}; }
GD_INLINE V4 bc(double x) { return V4{{x, x, x, x}}; }
GD_INLINE V4 sel(M4 m, V4 a, V4 b) {
  return V4{{m.m[0] ? a.v[0] : b.v[0], m.m[1] ? a.v[1] : b.v[1], m.m[2] ? a.v[2] : b.v[2], m.m[3] ? a.v[3] : b.v[3]}};
}
GD_INLINE bool any(M4 m) { return m.m[0] || m.m[1] || m.m[2] || m.m[3]; }
GD_INLINE bool all(M4 m) { return m.m[0] && m.m[1] && m.m[2] && m.m[3]; }
GD_INLINE V4 load(const double* p) { return V4{{p[0], p[1], p[2], p[3]}}; }
GD_INLINE double lane(V4 v, int l) { return v.v[l]; }
#endif

constexpr std::size_t kBlock = kReanchorEvery;  // 64: a block starts at a re-anchoring point
static_assert(kBlock % 4 == 0, "blocks hold whole groups of four points");

// Per-lane sums.
struct Sums {
  V4 s = bc(0.0);
  V4 a00 = bc(0.0), a01 = bc(0.0), a02 = bc(0.0), a03 = bc(0.0), a11 = bc(0.0), a12 = bc(0.0),
     a13 = bc(0.0), a22 = bc(0.0), a23 = bc(0.0), a33 = bc(0.0);
  V4 g0 = bc(0.0), g1 = bc(0.0), g2 = bc(0.0), g3 = bc(0.0);
  bool finite = true;
};

// Adds four points: values f, Jacobian columns j0..j3 (already scaled), data y, weights w (0 on
// padding lanes, whose values are finite by construction). The order of fit.cpp's
// accumulate_normal per lane: g_j += J_j (w d), a_jk += (w J_j) J_k, rss += (w d) d.
template <int P>
GD_INLINE void add4(Sums& S, V4 f, V4 j0, V4 j1, V4 j2, V4 j3, V4 y, V4 w) {
  S.finite = S.finite && all((f - f) == bc(0.0));  // inf - inf and NaN are NaN
  const V4 d = f - y;
  S.s = S.s + w * d * d;
  const V4 wd = w * d;
  const V4 w0 = w * j0, w1 = w * j1, w2 = w * j2;
  S.g0 = S.g0 + j0 * wd;
  S.a00 = S.a00 + w0 * j0;
  S.a01 = S.a01 + w0 * j1;
  S.a02 = S.a02 + w0 * j2;
  S.g1 = S.g1 + j1 * wd;
  S.a11 = S.a11 + w1 * j1;
  S.a12 = S.a12 + w1 * j2;
  S.g2 = S.g2 + j2 * wd;
  S.a22 = S.a22 + w2 * j2;
  if constexpr (P == 4) {
    const V4 w3 = w * j3;
    S.a03 = S.a03 + w0 * j3;
    S.a13 = S.a13 + w1 * j3;
    S.a23 = S.a23 + w2 * j3;
    S.g3 = S.g3 + j3 * wd;
    S.a33 = S.a33 + w3 * j3;
  }
}

GD_INLINE double hsum(V4 v) { return (lane(v, 0) + lane(v, 1)) + (lane(v, 2) + lane(v, 3)); }

// C, S, D of trajectory.hpp's entire_series, four points at a time (Horner, same order).
GD_INLINE void entire_series4(V4 w, V4& c, V4& s, V4& d) {
  c = bc(kSeries.c[kSeriesTerms - 1]);
  s = bc(kSeries.s[kSeriesTerms - 1]);
  d = bc(kSeries.d[kSeriesTerms - 1]);
  for (int k = kSeriesTerms - 2; k >= 0; --k) {
    c = c * w + bc(kSeries.c[k]);
    s = s * w + bc(kSeries.s[k]);
    d = d * w + bc(kSeries.d[k]);
  }
}

// Four consecutive terms of the geometric sequence exp(start + j step), j = j0 .. j0 + 3: the
// first from exp (the re-anchoring of trajectory_uniform's GeometricSequence), the next three by
// multiplication. Advanced by a group (four points) with factor4 = exp(4 step): each lane is then
// its own sequence, so the four multiplications of a group are independent (no latency chain).
GD_INLINE V4 geometric_anchor(double start, double step, double factor, std::size_t j0) {
  // (j0 = 0: the start itself, also when the step is -inf and 0 * step would be NaN)
  const double e0 = std::exp(j0 == 0 ? start : start + static_cast<double>(j0) * step);
  const double e1 = e0 * factor, e2 = e1 * factor, e3 = e2 * factor;
  return V4{e0, e1, e2, e3};
}

template <int P>
GD_INLINE bool normal_sums_impl(double t_first, double dt, std::size_t n, const OscillatorParams& p,
                                const double* y, const double* w, const double* scale,
                                NormalSums& out, double* values) {
  const ShapeConstants k(p.mu);
  const double x0 = p.r0 - p.r_inf;
  const double inv_tau = 1.0 / p.tau;
  const double sc[4] = {scale ? scale[0] : 1.0, scale ? scale[1] : 1.0, scale ? scale[2] : 1.0,
                        scale ? scale[3] : 1.0};
  // Points before t0: r = r0, J = (1, 0, 0, 0), summed as a fifth lane (fixed order below).
  double s_before = 0.0, g0_before = 0.0, a00_before = 0.0;
  bool finite = std::isfinite(p.r0);
  std::size_t first = 0;
  while (first < n && !((t_first + static_cast<double>(first) * dt - p.t0) / p.tau >= 0.0)) {
    const double j0 = 1.0 * sc[0];
    const double d = p.r0 - y[first];
    s_before += w[first] * d * d;
    g0_before += j0 * (w[first] * d);
    a00_before += (w[first] * j0) * j0;
    if (values != nullptr) values[first] = p.r0;
    ++first;
  }
  Sums S;
  const std::size_t m = n - first;
  if (m > 0) {
    const double du = dt / p.tau;
    const double u_first = (t_first + static_cast<double>(first) * dt - p.t0) / p.tau;
    const V4 vx0 = bc(x0), vr_inf = bc(p.r_inf), vinv_tau = bc(inv_tau), zero = bc(0.0),
             one = bc(1.0), four = bc(4.0), inf = bc(std::numeric_limits<double>::infinity());
    const V4 vt_first = bc(t_first), vdt = bc(dt), vt0 = bc(p.t0);
    const V4 s0 = bc(sc[0]), s1 = bc(sc[1]), s2 = bc(sc[2]), s3 = bc(sc[3]);
    const bool scaled = scale != nullptr;
    // Data of the group starting at active index j (y = w = 0 beyond the end: padding lanes,
    // whose model values stay finite) and its u = (t - t0) / tau, as trajectory_uniform's u_at.
    alignas(32) double y_tail[4], w_tail[4];
    auto data = [&](std::size_t j, V4& yv, V4& wv) GD_LAMBDA_INLINE {
      const std::size_t i = first + j;
      if (j + 4 <= m) {
        yv = load(y + i);
        wv = load(w + i);
        return;
      }
      for (std::size_t l = 0; l < 4; ++l) {
        y_tail[l] = j + l < m ? y[i + l] : 0.0;
        w_tail[l] = j + l < m ? w[i + l] : 0.0;
      }
      yv = load(y_tail);
      wv = load(w_tail);
    };
    const double i_first = static_cast<double>(first);
    auto u_of = [&](const V4& index) GD_LAMBDA_INLINE { return (vt_first + index * vdt - vt0) * vinv_tau; };
    // Emits four points from their shape values (write_point with v0 = 0, or write_settled).
    auto emit = [&](std::size_t j, const V4& u, const V4& a, const V4& b, const V4& ap,
                    const V4& bp, const V4& a_mu, const V4& yv, const V4& wv) GD_LAMBDA_INLINE {
      const M4 settled = ((a == zero) & (b == zero) & (ap == zero) & (bp == zero)) | (u == inf);
      V4 f = sel(settled, vr_inf, vr_inf + vx0 * a);
      V4 j0 = sel(settled, zero, a);
      V4 j1 = sel(settled, one, one - a);
      V4 j2 = sel(settled, zero, -(u * vinv_tau) * (vx0 * ap));
      V4 j3 = sel(settled, zero, vx0 * a_mu);
      if (scaled) {
        j0 = j0 * s0;
        j1 = j1 * s1;
        j2 = j2 * s2;
        j3 = j3 * s3;
      }
      add4<P>(S, f, j0, j1, j2, j3, yv, wv);
      if (values != nullptr)
        for (std::size_t l = 0; l < 4 && j + l < m; ++l) values[first + j + l] = lane(f, static_cast<int>(l));
    };
    if (k.root_form) {
      const bool has_fast_mode = k.mu > 0.0;
      const double st1 = k.l1 * u_first, dl1 = k.l1 * du, f1 = std::exp(dl1);
      const double st2 = has_fast_mode ? k.l2 * u_first : 0.0, dl2 = has_fast_mode ? k.l2 * du : 0.0;
      const double f2 = std::exp(dl2);
      const V4 f1x4 = bc(std::exp(4.0 * dl1)), f2x4 = bc(std::exp(4.0 * dl2));
      const V4 c1 = bc(k.c1), c2 = bc(k.c2), inv_q = bc(k.inv_q), mu = bc(k.mu),
               dc1 = bc(k.dc1_dmu), dl1_dmu = bc(k.dl1_dmu), dc2 = bc(k.dc2_dmu),
               c2dl2 = bc(k.c2_dl2_dmu);
      V4 e1 = zero, e2 = zero;
      V4 index = bc(i_first) + V4{0.0, 1.0, 2.0, 3.0};
      for (std::size_t j = 0; j < m; j += 4, index = index + four) {
        if (j % kBlock == 0) {
          e1 = geometric_anchor(st1, dl1, f1, j);
          e2 = geometric_anchor(st2, dl2, f2, j);
        }
        const V4 u = u_of(index);
        // the exponential (mu = 0) has no fast mode: exp(l2 u) is its limit, 1 at u = 0 else 0
        const V4 e2v = has_fast_mode ? e2 : sel(u == zero, one, zero);
        V4 yv, wv;
        data(j, yv, wv);
        // root_form_values
        const V4 diff_over_q = (e1 - e2v) * inv_q;
        const V4 a = c1 * e1 - c2 * e2v;
        const V4 b = mu * diff_over_q;
        const V4 ap = -diff_over_q;
        const V4 bp = a - diff_over_q;
        const V4 e2_terms_a = sel(e2v != zero, (dc2 + u * c2dl2) * e2v, zero);
        const V4 a_mu = (dc1 + c1 * u * dl1_dmu) * e1 - e2_terms_a;
        emit(j, u, a, b, ap, bp, a_mu, yv, wv);
        e1 = e1 * f1x4;
        e2 = e2 * f2x4;
      }
    } else {
      // Damped (hyperbolic / trigonometric) form, as in trajectory_uniform.
      const double omega = k.sqrt_abs_d2;
      const bool real_rates = k.d2 > 0;
      const double st_d = -k.alpha * u_first, dd = -k.alpha * du, fd = std::exp(dd);
      const double st_p = real_rates ? (omega - k.alpha) * u_first : 0.0;
      const double dp = real_rates ? (omega - k.alpha) * du : 0.0, fp = std::exp(dp);
      const double st_m = real_rates ? (-omega - k.alpha) * u_first : 0.0;
      const double dm = real_rates ? (-omega - k.alpha) * du : 0.0, fm = std::exp(dm);
      const double cos_step = std::cos(omega * du), sin_step = std::sin(omega * du);
      const V4 fdx4 = bc(std::exp(4.0 * dd)), fpx4 = bc(std::exp(4.0 * dp)),
               fmx4 = bc(std::exp(4.0 * dm));
      const V4 cos4 = bc(std::cos(4.0 * omega * du)), sin4 = bc(std::sin(4.0 * omega * du));
      const double inv_omega = omega > 0.0 ? 1.0 / omega : 0.0;
      const double half_inv_d2 = k.d2 != 0.0 ? 0.5 / k.d2 : 0.0;
      const V4 alpha = bc(k.alpha), inv_mu = bc(k.inv_mu), d2 = bc(k.d2), half = bc(0.5),
               vinv_omega = bc(inv_omega), vhalf_inv_d2 = bc(half_inv_d2),
               two_alpha_m2 = bc(2.0 * k.alpha - 2.0), dalpha_dmu = bc(-2.0 * k.alpha * k.alpha),
               series_max = bc(kSeriesMaxAbsW);
      V4 ea = zero, ep = zero, em = zero, cs = zero, sn = zero;
      V4 index = bc(i_first) + V4{0.0, 1.0, 2.0, 3.0};
      for (std::size_t j = 0; j < m; j += 4, index = index + four) {
        const V4 u = u_of(index);
        if (j % kBlock == 0) {
          ea = geometric_anchor(st_d, dd, fd, j);
          if (real_rates) {
            ep = geometric_anchor(st_p, dp, fp, j);
            em = geometric_anchor(st_m, dm, fm, j);
          } else {
            // rotation (cos, sin)(omega u) anchored at the block's first point, as trajectory_uniform
            double c = std::cos(omega * lane(u, 0)), sn0 = std::sin(omega * lane(u, 0));
            double cl[4], sl[4];
            for (int l = 0; l < 4; ++l) {
              cl[l] = c;
              sl[l] = sn0;
              const double next_cos = c * cos_step - sn0 * sin_step;
              sn0 = sn0 * cos_step + c * sin_step;
              c = next_cos;
            }
            cs = V4{cl[0], cl[1], cl[2], cl[3]};
            sn = V4{sl[0], sl[1], sl[2], sl[3]};
          }
        }
        V4 yv, wv;
        data(j, yv, wv);
        const V4 ww = d2 * u * u;
        const M4 near = (ww < series_max) & (-series_max < ww);  // |w| < 1: Taylor series
        V4 ch = zero, sh = zero, dh = zero;
        if (!all(near)) {
          // One division per point: 1 / z = inv_omega / u and 1 / (2 w) = half_inv_d2 / u^2.
          // (u = 0 only where |w| < 1: its lane is replaced by the series below.)
          const V4 inv_u = one / u;
          if (real_rates) {
            ch = half * (ep + em);
            sh = half * (ep - em) * vinv_omega * inv_u;
          } else {
            ch = ea * cs;
            sh = ea * sn * vinv_omega * inv_u;
          }
          dh = (ch - sh) * vhalf_inv_d2 * inv_u * inv_u;
        }
        if (any(near)) {
          V4 c, s, d;
          entire_series4(ww, c, s, d);
          ch = sel(near, ea * c, ch);
          sh = sel(near, ea * s, sh);
          dh = sel(near, ea * d, dh);
        }
        // hyperbolic_form_values
        const V4 a = ch + alpha * u * sh;
        const V4 b = u * sh;
        const V4 ap = -b * inv_mu;
        const V4 bp = a + ap;
        const V4 da_dalpha =
            -u * a + u * sh + two_alpha_m2 * u * u * (half * sh + alpha * u * dh);
        const V4 a_mu = dalpha_dmu * da_dalpha;
        emit(j, u, a, b, ap, bp, a_mu, yv, wv);
        ea = ea * fdx4;
        ep = ep * fpx4;
        em = em * fmx4;
        const V4 next_cs = cs * cos4 - sn * sin4;
        sn = sn * cos4 + cs * sin4;
        cs = next_cs;
      }
    }
  }
  out = NormalSums{};
  out.rss = s_before + hsum(S.s);
  out.g[0] = g0_before + hsum(S.g0);
  out.g[1] = hsum(S.g1);
  out.g[2] = hsum(S.g2);
  out.g[3] = hsum(S.g3);
  out.a[0][0] = a00_before + hsum(S.a00);
  out.a[0][1] = hsum(S.a01);
  out.a[0][2] = hsum(S.a02);
  out.a[0][3] = hsum(S.a03);
  out.a[1][1] = hsum(S.a11);
  out.a[1][2] = hsum(S.a12);
  out.a[1][3] = hsum(S.a13);
  out.a[2][2] = hsum(S.a22);
  out.a[2][3] = hsum(S.a23);
  out.a[3][3] = hsum(S.a33);
  return finite && S.finite;
}

bool normal_sums_baseline(double t_first, double dt, std::size_t n, const OscillatorParams& p,
                          const double* y, const double* w, int n_params, const double* scale,
                          NormalSums& out, double* values) {
  return n_params == 4 ? normal_sums_impl<4>(t_first, dt, n, p, y, w, scale, out, values)
                       : normal_sums_impl<3>(t_first, dt, n, p, y, w, scale, out, values);
}

#if defined(__GNUC__) && defined(__x86_64__)
#define GD_HAS_AVX2_CLONE 1
__attribute__((target("avx2"))) bool normal_sums_avx2(double t_first, double dt, std::size_t n,
                                                      const OscillatorParams& p, const double* y,
                                                      const double* w, int n_params,
                                                      const double* scale, NormalSums& out,
                                                      double* values) {
  return n_params == 4 ? normal_sums_impl<4>(t_first, dt, n, p, y, w, scale, out, values)
                       : normal_sums_impl<3>(t_first, dt, n, p, y, w, scale, out, values);
}
#endif

}  // namespace

namespace {
bool use_avx2() {
#ifdef GD_HAS_AVX2_CLONE
  static const bool avx2 = [] {
    const char* isa = std::getenv("GRPO_DYNAMICS_FIT_ISA");
    if (isa != nullptr && std::strcmp(isa, "baseline") == 0) return false;
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return avx2;
#else
  return false;
#endif
}
}  // namespace

const char* fit_kernel_isa() { return use_avx2() ? "avx2" : "baseline"; }

bool oscillator_normal_sums(double t_first, double dt, std::size_t n, const OscillatorParams& p,
                            const double* y, const double* w, int n_params, const double* scale,
                            NormalSums& out, double* values) {
#ifdef GD_HAS_AVX2_CLONE
  if (use_avx2()) return normal_sums_avx2(t_first, dt, n, p, y, w, n_params, scale, out, values);
#endif
  return normal_sums_baseline(t_first, dt, n, p, y, w, n_params, scale, out, values);
}

}  // namespace grpo_dynamics::detail
