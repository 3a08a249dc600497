"""Exact first unstable delay in O(max_delay), by the argument principle on the unit circle.

The constant-delay model x_{t+1} = a x_t - beta x_{t-1} - c x_{t-D} (a = 1 + beta - c_now,
c = c_lag) has, for D >= 1, the characteristic polynomial p_D(z) = z^(D-1) q(z) + c with
q(z) = z^2 - a z + beta, of degree D + 1 (docs/model.md, "Discrete model"). It is stable iff
all D + 1 roots lie inside the unit circle, i.e. iff the winding number of p_D(e^{i theta})
over one turn equals D + 1.

That winding number is cheap for every D at once. Split the circle where |q| = |c| (the roots
of a quadratic in cos theta, independent of D). Where |q| < |c|, p = c (1 + v) with |v| <= 1,
so arg p moves by the change of arg(1 + v) between the ends, no wrap. Where |q| > |c|,
p = z^(D-1) q (1 + w) with |w| <= 1, so arg p moves by (D - 1) dtheta plus the unwrapped
change of arg q over that arc (independent of D, computed once) plus the change of
arg(1 + w) between the ends. Summing over the arcs gives the winding number of every D in
O(number of arcs) each, so the first unstable D up to max_delay costs O(max_delay) instead of
one O(D^2) Schur-Cohn count per D (tests/test_stability.py compares the two).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

__all__ = ["first_unstable_delay"]

_DENSE = 4096  # samples per arc for the D-independent unwrapped change of arg q


def _q(theta: NDArray[np.float64], a: float, beta: float) -> NDArray[np.complex128]:
    z = np.exp(1j * theta)
    return z * z - a * z + beta


def _arcs(a: float, beta: float, c: float) -> list[tuple[float, float, bool]]:
    """Arcs [t0, t1] of [0, 2 pi] and whether |q| > |c| on them ("big")."""
    # |q(e^{i theta})|^2 = 4 beta u^2 - 2 a (1 + beta) u + a^2 + (1 - beta)^2, u = cos theta
    coeffs = [4.0 * beta, -2.0 * a * (1.0 + beta), a * a + (1.0 - beta) ** 2 - c * c]
    while coeffs and coeffs[0] == 0.0:
        coeffs = coeffs[1:]
    cuts: list[float] = []
    if len(coeffs) >= 2:
        for u in np.roots(coeffs):
            if abs(u.imag) < 1e-12 and -1.0 < u.real < 1.0:
                t = math.acos(float(u.real))
                cuts.extend([t, 2.0 * math.pi - t])
    edges = [0.0, *sorted(cuts), 2.0 * math.pi]
    arcs = []
    for t0, t1 in zip(edges[:-1], edges[1:], strict=True):
        if t1 - t0 <= 0.0:
            continue
        mid = 0.5 * (t0 + t1)
        arcs.append((t0, t1, bool(abs(_q(np.array([mid]), a, beta)[0]) > abs(c))))
    return arcs


def _unwrapped_arg_change(t0: float, t1: float, a: float, beta: float) -> float:
    theta = np.linspace(t0, t1, _DENSE)
    phase = np.unwrap(np.angle(_q(theta, a, beta)))
    steps = np.abs(np.diff(phase))
    if steps.size and steps.max() > 0.5:  # too coarse for a fast turn: refine once
        theta = np.linspace(t0, t1, 64 * _DENSE)
        phase = np.unwrap(np.angle(_q(theta, a, beta)))
    return float(phase[-1] - phase[0])


def _quadratic_stable(b: float, c0: float) -> bool:
    """Both roots of z^2 + b z + c0 strictly inside the unit circle (Jury conditions)."""
    return abs(c0) < 1.0 and abs(b) < 1.0 + c0


def first_unstable_delay(momentum: float, c_lag: float, c_now: float, max_delay: int) -> int:
    """Smallest D in [0, max_delay] whose delay model is unstable, or -1 if none.

    D = 0 is on-policy (both forces at the current parameters). Inputs are validated by the
    caller (stability.critical_delay).
    """
    beta = float(momentum)
    c = float(c_lag)
    a = 1.0 + beta - float(c_now)
    # D = 0: x_{t+1} = (a - c) x_t - beta x_{t-1}
    if not _quadratic_stable(-(a - c), beta):
        return 0
    if max_delay < 1:
        return -1
    if c == 0.0:  # no delayed force: p_D = z^(D-1) q, stable iff q is
        return -1 if _quadratic_stable(-a, beta) else 1
    delays = np.arange(1, max_delay + 1, dtype=np.float64)
    winding = np.zeros_like(delays)
    for t0, t1, big in _arcs(a, beta, c):
        ends = np.array([t0, t1])
        q_ends = _q(ends, a, beta)
        # z^(D-1) at both ends, for every D: (n_delays, 2)
        rot = np.exp(1j * np.outer(delays - 1.0, ends))
        if big:
            w = c / (rot * q_ends)
            ratio = np.angle(1.0 + w)
            winding += (delays - 1.0) * (t1 - t0) + _unwrapped_arg_change(t0, t1, a, beta)
            winding += ratio[:, 1] - ratio[:, 0]
        else:
            v = rot * q_ends / c
            ratio = np.angle(1.0 + v)
            winding += ratio[:, 1] - ratio[:, 0]
    inside = np.rint(winding / (2.0 * math.pi)).astype(np.int64)
    unstable = np.nonzero(inside < delays.astype(np.int64) + 1)[0]
    return int(delays[unstable[0]]) if unstable.size else -1
