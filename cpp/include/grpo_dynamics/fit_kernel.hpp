// The fitter's inner loop (docs/fitting.md, "Speed"): the RSS and the normal equations of the
// from-rest oscillator (v0 = 0) or the exponential on a uniform grid, in one pass over the
// points. Internal to the compiled core (cpp/src/fit.cpp is the only caller).
#pragma once

#include <cstddef>

#include "grpo_dynamics/trajectory.hpp"

namespace grpo_dynamics::detail {

// Sums over the points of w (f - y)^2, J^T W J (upper triangle) and J^T W (f - y), J the
// Jacobian in (r0, r_inf, tau[, mu]) with column j multiplied by scale[j].
struct NormalSums {
  double rss = 0.0;
  double a[4][4] = {};
  double g[4] = {};
};

// n_params is 4 (oscillator) or 3 (exponential: p.mu must be 0). p must be valid (validate()),
// dt > 0 and t_first finite. Returns false when a model value is not finite. Each point's value
// and Jacobian row are those of trajectory_uniform (the same expressions; its recurrences
// advanced per lane, so equal to rounding, ~1e-15 relative); the sums run over four interleaved
// lanes (points i = 4m + l), vectorised where the CPU allows, with the same bits from the
// baseline and AVX2 clones. values (optional, n entries) receives the model values.
bool oscillator_normal_sums(double t_first, double dt, std::size_t n, const OscillatorParams& p,
                            const double* y, const double* w, int n_params, const double* scale,
                            NormalSums& out, double* values = nullptr);

// The clone oscillator_normal_sums runs: "avx2" where the CPU has AVX2, else "baseline". The
// environment variable GRPO_DYNAMICS_FIT_ISA=baseline (read once; any other value: the automatic
// choice) forces the baseline clone, so that tests can check both give the same numbers.
const char* fit_kernel_isa();

}  // namespace grpo_dynamics::detail
