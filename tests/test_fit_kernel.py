"""The fitter's inner loop (cpp/src/fit_kernel.cpp, docs/fitting.md "Speed").

The RSS and normal equations that Levenberg-Marquardt sees are checked against numpy sums over
the direct closed form (``gd.trajectory`` / ``gd.trajectory_jacobian``: exp/cos/sin at every
point, no recurrence), and the baseline-ISA clone against the AVX2 clone in a second process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import grpo_dynamics as gd
from grpo_dynamics import _core

# (tau, mu): both representations (root form mu <= 3/16, damped form above), the exponential
# (mu = 0), both sides of 3/16 and 1/4, the Taylor-series region near 1/4, strong oscillation,
# a timescale of one logging interval (settles within the grid) and a very slow one.
SHAPES = [
    (20.0, 0.0),
    (20.0, 1e-6),
    (20.0, 0.05),
    (20.0, 3.0 / 16.0),
    (20.0, 3.0 / 16.0 + 1e-9),
    (20.0, 0.2),
    (20.0, 0.25),
    (20.0, 0.26),
    (7.0, 1.0),
    (3.0, 40.0),
    (1.0, 0.1),
    (900.0, 0.5),
]
LENGTHS = [1, 2, 3, 4, 5, 63, 64, 65, 131]


def numpy_sums(t, y, w, r0, r_inf, tau, mu, t0, n_params, scale):
    f = gd.trajectory(t, r0, r_inf, tau, mu, t0=t0)
    J = gd.trajectory_jacobian(t, r0, r_inf, tau, mu, t0=t0)[:, :n_params] * scale[:n_params]
    d = f - y
    return float(np.sum(w * d * d)), J.T @ (w[:, None] * J), J.T @ (w * d)


def case_data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.uniform(0.0, 1.0, n)
    w = rng.uniform(0.5, 2.0, n)
    return y, w


@pytest.mark.parametrize("tau,mu", SHAPES)
def test_normal_sums_match_numpy_on_the_closed_form(tau: float, mu: float) -> None:
    dt = 1.5
    for n in LENGTHS:
        for t0 in (0.0, 4.0):  # 4.0: the first points lie before t0 (the policy at rest)
            y, w = case_data(n, n)
            t = 0.0 + dt * np.arange(n)
            for n_params in (3, 4) if mu == 0.0 else (4,):
                for scale in (None, np.array([1.0, 1.0, 20.0, 0.3])):
                    s = np.ones(4) if scale is None else scale
                    finite, rss, A, g, f = _core._fit_normal_sums(
                        0.0, dt, y, w, 0.3, 0.9, tau, mu, t0, n_params, scale
                    )
                    rss_ref, A_ref, g_ref = numpy_sums(t, y, w, 0.3, 0.9, tau, mu, t0, n_params, s)
                    assert finite
                    f_ref = gd.trajectory(t, 0.3, 0.9, tau, mu, t0=t0)
                    np.testing.assert_allclose(f, f_ref, rtol=1e-13, atol=1e-15)
                    p = n_params
                    # recurrence vs direct exp/cos/sin: ~1e-14 relative per point
                    assert rss == pytest.approx(rss_ref, rel=1e-11, abs=1e-13)
                    scale_a = max(1e-300, float(np.max(np.abs(A_ref))))
                    np.testing.assert_allclose(A[:p, :p], A_ref, rtol=0, atol=1e-11 * scale_a)
                    scale_g = max(
                        1e-300, float(np.max(np.abs(g_ref))), float(np.sqrt(rss_ref * scale_a))
                    )
                    np.testing.assert_allclose(g[:p], g_ref, rtol=0, atol=1e-11 * scale_g)
                    if p == 3:
                        assert np.all(A[3] == 0.0) and g[3] == 0.0


@pytest.mark.parametrize(
    "t_first,dt,tau,mu",
    [
        (1234.5, 0.25, 0.1, 0.05),  # tau below the logging interval: settles within a point
        (-40.0, 3.0, 1e9, 0.3),  # tau far beyond the span: no curvature
        (0.0, 1.0, 1e-300, 1e-12),  # exp(l2 du) underflows and l2 du is -inf (anchor at 0)
        (10.0, 2.0, 50.0, 1e6),  # strongly underdamped
    ],
)
def test_extreme_timescales_match_the_closed_form(t_first, dt, tau, mu) -> None:
    n = 70
    y, w = case_data(n, 5)
    t = t_first + dt * np.arange(n)
    finite, rss, A, g, f = _core._fit_normal_sums(t_first, dt, y, w, 0.2, 0.7, tau, mu, 5.0, 4)
    rss_ref, A_ref, g_ref = numpy_sums(t, y, w, 0.2, 0.7, tau, mu, 5.0, 4, np.ones(4))
    assert finite
    np.testing.assert_allclose(f, gd.trajectory(t, 0.2, 0.7, tau, mu, t0=5.0), rtol=1e-12)
    assert rss == pytest.approx(rss_ref, rel=1e-11)
    # trajectory_uniform's own recurrence (re-anchored the same way) agrees too
    value, _ = _core.trajectory_uniform(t_first, dt, n, 0.2, 0.7, tau, mu, 5.0)
    np.testing.assert_allclose(value, f, rtol=1e-12)
    scale_a = float(np.max(np.abs(A_ref)))
    np.testing.assert_allclose(A, A_ref, rtol=0, atol=1e-11 * scale_a)
    np.testing.assert_allclose(
        g, g_ref, rtol=0, atol=1e-11 * max(scale_a, float(np.max(np.abs(g_ref))))
    )


def test_non_finite_values_are_reported() -> None:
    y, w = case_data(10, 0)
    finite, *_ = _core._fit_normal_sums(0.0, 1.0, y, w, 1e308, -1e308, 5.0, 0.1, 0.0, 4)
    assert finite is False


def test_bad_arguments_are_named() -> None:
    y, w = case_data(5, 0)
    with pytest.raises(ValueError, match="n_params"):
        _core._fit_normal_sums(0.0, 1.0, y, w, 0.0, 1.0, 5.0, 0.1, 0.0, 5)
    with pytest.raises(ValueError, match="^w"):
        _core._fit_normal_sums(0.0, 1.0, y, w[:4], 0.0, 1.0, 5.0, 0.1, 0.0, 4)
    with pytest.raises(ValueError, match="dt"):
        _core._fit_normal_sums(0.0, 0.0, y, w, 0.0, 1.0, 5.0, 0.1, 0.0, 4)
    with pytest.raises(ValueError, match="mu"):
        _core._fit_normal_sums(0.0, 1.0, y, w, 0.0, 1.0, 5.0, 0.1, 0.0, 3)


_CHILD = r"""
import json, sys
import numpy as np
import grpo_dynamics as gd
from grpo_dynamics import _core
out = {"isa": _core._fit_kernel_isa(), "sums": []}
rng = np.random.default_rng(7)
for tau, mu in SHAPES:
    for n in (5, 64, 131):
        y = rng.uniform(0, 1, n); w = rng.uniform(0.5, 2, n)
        ok, rss, A, g, _ = _core._fit_normal_sums(0.0, 1.5, y, w, 0.3, 0.9, tau, mu, 4.0, 4)
        values = np.concatenate([[rss], A.ravel(), g])
        out["sums"].append([float(v).hex() for v in values])
t = np.linspace(0, 300, 120)
shapes = [(tau, mu) for tau in (15.0, 60.0) for mu in (0.0, 0.1, 0.6, 3.0)]
R = np.array([gd.trajectory(t, 0.1, 0.8, tau, mu) for tau, mu in shapes])
R = R + 0.02 * np.random.default_rng(3).standard_normal(R.shape)
fit = gd.fit_many(t, R, threads=1)
out["fit"] = [float(v).hex() for v in np.concatenate([fit.params.ravel(), fit.rss])]
json.dump(out, sys.stdout)
"""


def _run_child(isa: str | None) -> dict:
    env = dict(os.environ)
    env.pop("GRPO_DYNAMICS_FIT_ISA", None)
    if isa is not None:
        env["GRPO_DYNAMICS_FIT_ISA"] = isa
    code = f"SHAPES = {SHAPES!r}\n" + _CHILD
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    return json.loads(done.stdout)


def test_baseline_and_avx2_clones_give_identical_bits() -> None:
    """Contraction is off, so both clones do the same IEEE operations: bit-identical sums and
    fits on this machine (an out-of-line helper compiled for the baseline ISA and called from
    the AVX2 clone with the other vector ABI returned garbage: this test caught it)."""
    default = _run_child(None)
    baseline = _run_child("baseline")
    assert baseline["isa"] == "baseline"
    if default["isa"] != "avx2":
        pytest.skip("this CPU has no AVX2: only the baseline clone runs")
    assert default["sums"] == baseline["sums"]
    assert default["fit"] == baseline["fit"]
