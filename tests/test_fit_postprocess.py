"""fit_many's post-processing (identification, messages, plateau bounds) against a frozen copy
of the code it replaced (docs/fitting.md, "Identification"): every field of every row of the
BatchFit must be unchanged on mixed batches (the three models, bad-input rows, rows held by
bounds, max_iter rows, rows flagged by every test, ragged series and weights).

``_old_curve_values`` and ``_old_identify`` below are the numpy implementation as it was before
the fitted curves moved into the compiled core (``_core.trajectory_rows``) and the per-row
Python was cut to the flagged rows. They are kept verbatim (renamed) as the reference; do not
edit them to make a test pass.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import grpo_dynamics as gd
from grpo_dynamics import _core, _fit
from grpo_dynamics._fit import (
    _BOUND_RTOL,
    _CRITICAL_MU,
    _END_DIRECTION,
    _END_MOVE,
    _END_WINDOW,
    _PLATEAU,
    _RANGE_GRID,
    _SAFE_PARAMS,
    _TIMESCALE,
    BatchFit,
    ModelName,
    _DataSummary,
)

# ---------------------------------------------------------------------------------------------
# the frozen reference (the code as it was)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def _old_curve_values(
    model: str, params: NDArray[np.float64], t: NDArray[np.float64], t0: float
) -> NDArray[np.float64]:
    """Fitted curves of many series at times ``t`` (n, m), vectorised over series.

    Oscillator/exponential (docs/model.md, closed-form trajectory), written for every ``mu``
    as ``r_inf + x0 e^{-a u} (C(b u) + a u S(b u))`` with ``a = 1/(2 mu tau)``,
    ``b^2 = a^2 (1 - 4 mu)`` and C, S = cosh, sinh(z)/z (cos, sin(z)/z when ``mu > 1/4``);
    ``e^{-a u} cosh(b u)`` is formed without overflow. Before ``t0`` the curve is ``r0``.
    """
    if model == "logistic":
        from scipy.special import expit

        r_lo, r_hi, t_mid, s = (params[:, j : j + 1] for j in range(4))
        with np.errstate(all="ignore"):
            return np.asarray(r_lo + (r_hi - r_lo) * expit((t - t_mid) / s))
    r0, r_inf, tau = (params[:, j : j + 1] for j in range(3))
    mu = params[:, 3:4] if model == "oscillator" else np.zeros_like(tau)
    u = np.maximum(t - t0, 0.0)
    with np.errstate(all="ignore"):
        disc = 1.0 - 4.0 * mu
        q = np.sqrt(np.abs(disc))
        over = disc >= 0
        slow = 2.0 / (tau * (1.0 + q))  # -s1, stable for small mu
        a = 1.0 / (2.0 * mu * tau)
        z = q * a * u  # b u (overdamped) or w u (oscillatory)
        big = over & (z > 20.0)
        c = np.where(over, np.cosh(np.minimum(z, 20.0)), np.cos(z))
        sh = np.where(
            z > 1e-8,
            np.where(over, np.sinh(np.minimum(z, 20.0)), np.sin(z)) / np.where(z > 0, z, 1.0),
            1.0,
        )
        direct = np.exp(-a * u) * (c + a * u * sh)
        # z > 20: e^{-a u} cosh(b u) = e^{-(a - b) u} / 2 to double precision, a - b = slow.
        asym = 0.5 * np.exp(-slow * u) * (1.0 + 1.0 / np.where(q > 0, q, 1.0))
        phi = np.where(big, asym, direct)
        phi = np.where(mu == 0, np.exp(-u / tau), phi)
    return np.asarray(r_inf + (r0 - r_inf) * phi)


def _old_identify(batch: BatchFit, data: _DataSummary) -> BatchFit:
    """Flag what the data do not identify, per series (docs/fitting.md, "Identification").

    The tests are vectorised over series; strings are assembled only for flagged rows.
    """
    model, names = batch.model, batch.param_names
    n, n_par = batch.params.shape
    col = {name: j for j, name in enumerate(names)}
    p, se, lo, hi = batch.params, batch.stderr, batch.lower, batch.upper
    fitted = batch.status != "bad_input"
    # (parameter, rows flagged, message for row i, whether it blocks "identified")
    found: list[tuple[str, NDArray[np.bool_], Callable[[int], str], bool]] = []

    def add(
        name: str, mask: NDArray[np.bool_], message: Callable[[int], str], blocks: bool
    ) -> None:
        mask = mask & fitted
        if mask.any():
            found.append((name, mask, message, blocks))

    with np.errstate(invalid="ignore"):
        width = hi - lo
        # Timescales and mu: relative to the bound itself (tau's interval spans 6 decades);
        # levels and t_mid: relative to the width of their interval.
        positive = np.array([name in ("tau", "s", "mu") for name in names])
        tol_lo = _BOUND_RTOL * np.where(positive, np.abs(lo), width)
        tol_hi = _BOUND_RTOL * np.where(positive, np.abs(hi), width)
        tol_lo = np.where(np.isfinite(tol_lo), tol_lo, 0.0)
        tol_hi = np.where(np.isfinite(tol_hi), tol_hi, 0.0)
        near_lo = np.isfinite(lo) & (p - lo <= tol_lo)
        near_hi = np.isfinite(hi) & (hi - p <= tol_hi)
        free = ~(width == 0)  # a parameter fixed by equal bounds is not estimated
        pinned = (near_lo | near_hi | batch.at_bound) & free
    if model == "oscillator":
        # mu = 0 is the physical boundary (the nested exponential), a point estimate, not an
        # artificial limit (docs/fitting.md, "Identifiability at mu = 0").
        j = col["mu"]
        pinned[:, j] &= ~(near_lo[:, j] & (lo[:, j] == 0.0))
    hints = {
        ("tau", "lo"): "faster than the logging interval can resolve",
        ("s", "lo"): "a step faster than the logging interval can resolve",
        ("tau", "hi"): "no curvature: the data look like a straight line",
        ("s", "hi"): "no curvature: the data look like a straight line",
        ("mu", "hi"): "an oscillation slower than the data: a fragment of a slow cosine",
        ("r_inf", "lo"): "the plateau would lie beyond the allowed reward range",
        ("r_inf", "hi"): "the plateau would lie beyond the allowed reward range",
        ("r_hi", "lo"): "the plateau would lie beyond the allowed reward range",
        ("r_hi", "hi"): "the plateau would lie beyond the allowed reward range",
    }
    for j, name in enumerate(names):
        for side, side_mask in (("lo", near_lo[:, j]), ("hi", near_hi[:, j])):
            mask = pinned[:, j] & side_mask
            if side == "hi":
                mask &= ~near_lo[:, j]
            hint = hints.get((name, side), "the data push it beyond the allowed range")
            word = "lower" if side == "lo" else "upper"

            def msg(i: int, j: int = j, word: str = word, hint: str = hint) -> str:
                bound = lo[i, j] if word == "lower" else hi[i, j]
                return f"at its {word} bound {_fmt(bound)} ({hint}): set by the bound, not the data"

            add(name, mask, msg, True)
        other = pinned[:, j] & ~near_lo[:, j] & ~near_hi[:, j]
        add(name, other, lambda i: "held at a bound: set by the bound, not the data", True)
        undefined = ~np.isfinite(se[:, j]) & ~pinned[:, j] & free[:, j]
        if model == "oscillator" and name == "mu":
            undefined &= ~(near_lo[:, j] & (lo[:, j] == 0.0))
        add(
            name,
            undefined,
            lambda i: "standard error undefined (the data do not determine it)",
            True,
        )

    plateau, timescale = _PLATEAU[model], _TIMESCALE[model]
    span = data.t_last - data.t_first
    # The fitted curve over the data: its range, and its change over the last part of the span.
    grid = data.t_first[:, None] + span[:, None] * np.linspace(0.0, 1.0, _RANGE_GRID)
    finite_rows = fitted & np.all(np.isfinite(p), axis=1) & np.isfinite(span)
    safe_p = np.where(finite_rows[:, None], p, _SAFE_PARAMS[model])
    safe_grid = np.where(finite_rows[:, None], grid, 0.0)
    curve = _old_curve_values(model, safe_p, safe_grid, batch.t0)
    end_t = (data.t_last - _END_WINDOW * span)[:, None]
    before_end = _old_curve_values(
        model, safe_p, np.where(finite_rows[:, None], end_t, 0.0), batch.t0
    )
    last = curve[:, -1]
    change = last - before_end[:, 0]
    f_range = curve.max(axis=1) - curve.min(axis=1)
    plat = p[:, col[plateau]]
    with np.errstate(invalid="ignore", divide="ignore"):
        moving = finite_rows & (np.abs(change) >= _END_MOVE * f_range) & (f_range > 0)
        inside = (plat >= data.r_min) & (plat <= data.r_max)
        add(
            plateau,
            moving & inside,
            lambda i: (
                f"{plateau} = {_fmt(plat[i])} lies inside the observed rewards "
                f"[{_fmt(data.r_min[i])}, {_fmt(data.r_max[i])}] while the fitted curve still "
                f"{'rises' if change[i] > 0 else 'falls'} by {abs(change[i]) / f_range[i]:.0%} "
                f"of its range over the last {_END_WINDOW:.0%} of the span: it is not where the "
                "curve is heading"
            ),
            True,
        )
        plat_se = se[:, col[plateau]]
        wide = np.isfinite(plat_se) & (4.0 * plat_se > f_range)
        add(
            plateau,
            wide,
            lambda i: (
                f"its +-2 stderr interval (+-{_fmt(2 * plat_se[i])}) is wider than the fitted "
                f"gain over the data ({_fmt(f_range[i])})"
            ),
            True,
        )
        ts, ts_se = p[:, col[timescale]], se[:, col[timescale]]
        add(
            timescale,
            np.isfinite(ts_se) & (ts - 2.0 * ts_se <= 0.0),
            lambda i: f"its +-2 stderr interval ({_fmt(ts[i])} +- {_fmt(2 * ts_se[i])}) includes 0",
            True,
        )
        if model == "logistic":
            t_mid, s = p[:, col["t_mid"]], p[:, col["s"]]
            late = data.t_last - t_mid < s
            for name in (plateau, timescale):
                add(
                    name,
                    late,
                    lambda i: (
                        f"the midpoint {_fmt(t_mid[i])} plus one width {_fmt(s[i])} lies beyond "
                        f"the last step {_fmt(data.t_last[i])}: the approach to the upper level "
                        "is not observed"
                    ),
                    True,
                )
        else:
            tau = p[:, col["tau"]]
            mu = p[:, col["mu"]] if model == "oscillator" else np.zeros(n)
            q = np.sqrt(np.abs(1.0 - 4.0 * mu))
            damping = np.where(mu > _CRITICAL_MU, 2.0 * mu * tau, tau * (1.0 + q) / 2.0)
            slow = damping > span
            for name in (plateau, timescale):
                add(
                    name,
                    slow,
                    lambda i: (
                        f"the damping time {_fmt(damping[i])} steps is longer than the observed "
                        f"span {_fmt(span[i])}: the approach to the plateau is not observed"
                    ),
                    True,
                )
            if model == "oscillator":
                omega = q / (2.0 * mu * tau)
                period = np.where(mu > _CRITICAL_MU, 2.0 * math.pi / omega, np.inf)
                add(
                    "mu",
                    (mu > _CRITICAL_MU) & (period > span),
                    lambda i: (
                        f"regime not identified: the oscillation period {_fmt(period[i])} steps "
                        f"is longer than the observed span {_fmt(span[i])}"
                    ),
                    False,
                )
                mu_se = se[:, col["mu"]]
                add(
                    "mu",
                    np.isfinite(mu_se)
                    & (mu - 2 * mu_se < _CRITICAL_MU)
                    & (mu + 2 * mu_se > _CRITICAL_MU),
                    lambda i: (
                        f"regime not identified: mu = {_fmt(mu[i])} +- 2 x "
                        f"{_fmt(mu_se[i])} contains 1/4"
                    ),
                    False,
                )

    identified = fitted.copy()
    unidentified = np.empty(n, dtype=object)
    for row in range(n):
        unidentified[row] = {}
    for name, mask, message, blocks in found:
        rows = np.flatnonzero(mask)
        if blocks:
            identified[rows] = False
        for row in rows.tolist():
            entry = unidentified[row]
            why = message(row)
            entry[name] = why if name not in entry else f"{entry[name]}; {why}"
    for row in np.flatnonzero(~fitted).tolist():
        unidentified[row] = {name: "not fitted (bad input)" for name in names}

    reason = batch.reason.copy()
    regime = batch.regime.copy()
    text = np.full(n, "", dtype=object)
    kind = np.full(n, None, dtype=object)
    value = np.full(n, np.nan)
    with np.errstate(invalid="ignore"):
        directed = ~identified & fitted & finite_rows & (np.abs(change) > _END_DIRECTION * f_range)
    directed &= f_range > 0
    rising, falling = directed & (change > 0), directed & (change < 0)
    kind[rising] = "at_least"
    kind[falling] = "at_most"
    # The conservative one of the fitted end value and the data's mean over the end window: a
    # degenerate fit can overshoot the data at its last step.
    end = np.where(np.isfinite(data.r_end), data.r_end, last)
    value[rising] = np.minimum(last, end)[rising]
    value[falling] = np.maximum(last, end)[falling]
    for i in np.flatnonzero(fitted & np.array([bool(u) for u in unidentified])).tolist():
        joined = "; ".join(f"{k}: {v}" for k, v in unidentified[i].items())
        text[i] = joined
        head = "not identified" if not identified[i] else "partly identified"
        if kind[i] is not None:
            word = "at least" if kind[i] == "at_least" else "at most"
            head += f" (plateau {word} {_fmt(value[i])})"
        reason[i] = f"{reason[i]}; {head}: {joined}" if reason[i] else f"{head}: {joined}"
        if model == "oscillator" and (not identified[i] or "mu" in unidentified[i]):
            regime[i] = "regime not identified"
    for i in np.flatnonzero(~fitted).tolist():
        text[i] = f"not fitted (bad input): {reason[i]}"
    return dataclasses.replace(
        batch,
        reason=reason,
        regime=regime,
        identified=identified,
        unidentified=unidentified,
        unidentified_reason=text,
        plateau_bound_kind=kind,
        plateau_bound=value,
    )


# ---------------------------------------------------------------------------------------------
# mixed batches

T = np.arange(0.0, 300.0, 5.0)  # 60 steps


def _rewards(seed: int, n: int = 120) -> NDArray[np.float64]:
    """Rising and falling oscillator curves (fast, slow, near-critical, long-period), logistic
    steps with early and late midpoints, very noisy rows, and bad rows (all NaN, 3 points,
    constant, with inf)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        r0, r_inf = rng.uniform(0.0, 0.3), rng.uniform(0.5, 0.9)
        if i % 5 == 4:
            r0, r_inf = r_inf, r0  # falling
        if i % 3 == 2:
            t_mid, s = rng.uniform(-50.0, 400.0), rng.uniform(3.0, 80.0)
            y = r0 + (r_inf - r0) / (1.0 + np.exp(-(T - t_mid) / s))
        else:
            tau = float(np.exp(rng.uniform(np.log(3.0), np.log(2000.0))))
            mu = float(rng.choice([0.0, 0.05, 0.2, 0.25, 0.3, 1.0, 5.0, 60.0]))
            y = gd.trajectory(T, r0, r_inf, tau, mu)
        noise = 0.3 if i % 7 == 0 else 0.02
        rows.append(y + noise * rng.standard_normal(T.size))
    R = np.array(rows)
    R[5] = np.nan
    R[11, 3:] = np.nan
    R[17] = 0.5
    R[23, 10] = np.inf
    R[29, ::2] = np.nan  # gaps, still fitted
    return R


def _configs(model: ModelName) -> Iterator[tuple[str, Callable[[], BatchFit]]]:
    """fit_many calls covering the input forms and options that reach the post-processing."""
    R = _rewards(1)
    timescale = _TIMESCALE[model]
    plateau = _PLATEAU[model]
    yield "grid", lambda: gd.fit_many(T, R, model, threads=2)
    clean = np.delete(R, [5, 11, 17, 23], axis=0)  # every row fitted
    yield "grid, no bad rows", lambda: gd.fit_many(T, clean, model, threads=2)
    yield "grid, no nested mu = 0", lambda: gd.fit_many(T, R, model, threads=1, nested_mu0=False)
    bounds = {timescale: (20.0, 60.0), plateau: (None, 0.75)}
    if model == "oscillator":
        bounds["mu"] = (0.0, 2.0)
    yield "bounds", lambda: gd.fit_many(T, R, model, threads=2, bounds=bounds)
    yield "max_iter, t0 before the data", lambda: gd.fit_many(T, R, model, max_iter=3, t0=-20.0)
    rng = np.random.default_rng(2)
    pairs: list[Any] = []
    weights: list[Any] = []
    for i, y in enumerate(_rewards(3, 40)):
        keep = np.sort(rng.choice(T.size, size=int(rng.integers(8, T.size + 1)), replace=False))
        pairs.append((T[keep] + 1000.0, y[keep]))
        w = rng.uniform(0.5, 2.0, keep.size)
        if i == 4:
            w[:] = 0.0  # no usable point
        weights.append(w)
    pairs[7] = (T[:10], R[0, :9])  # malformed pair: 10 steps, 9 rewards
    yield "ragged, weights, t0", lambda: gd.fit_many(pairs, None, model, weights=weights, t0=1000.0)


def _old_curves(
    model: str, params: NDArray[np.float64], t: NDArray[np.float64], t0: float, threads: int = 1
) -> NDArray[np.float64]:
    return _old_curve_values(model, params, t, t0)


def _fit_both(
    monkeypatch: pytest.MonkeyPatch, call: Callable[[], BatchFit], *, old_curves: bool
) -> tuple[BatchFit, BatchFit]:
    """(new BatchFit, the frozen reference's BatchFit on the same fits)."""
    seen: list[tuple[BatchFit, _DataSummary]] = []
    real = _fit._identify

    def spy(batch: BatchFit, data: _DataSummary, *args: Any) -> BatchFit:
        seen.append((batch, data))
        return real(batch, data, *args)

    with monkeypatch.context() as m:
        m.setattr(_fit, "_identify", spy)
        if old_curves:
            m.setattr(_fit, "_curve_values", _old_curves)
        new = call()
    assert len(seen) == 1
    return new, _old_identify(*seen[0])


def _assert_same(new: BatchFit, old: BatchFit, what: str, plateau_rtol: float = 0.0) -> None:
    """Every field, every row; object arrays element by element with their types, dicts with
    their key order."""
    for f in dataclasses.fields(BatchFit):
        a, b = getattr(new, f.name), getattr(old, f.name)
        where = f"{what}: {f.name}"
        if not isinstance(b, np.ndarray):
            assert type(a) is type(b) and a == b, where
            continue
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        if b.dtype == object:
            for i, (x, y) in enumerate(zip(a.tolist(), b.tolist(), strict=True)):
                assert type(x) is type(y), (where, i)
                if isinstance(y, dict):
                    assert list(x.items()) == list(y.items()), (where, i)
                else:
                    assert x == y, (where, i, x, y)
        elif plateau_rtol and f.name == "plateau_bound":
            np.testing.assert_allclose(a, b, rtol=plateau_rtol, atol=0.0, err_msg=where)
        else:
            np.testing.assert_array_equal(a, b, err_msg=where, strict=True)
    assert new.unidentified is not None
    # every row has a dict of its own
    assert len({id(d) for d in new.unidentified}) == new.unidentified.size, what


# What the mixed batches must exercise (per model, over all configurations), so that the
# comparison covers every message and every kind of row.
_MUST_SEE = {
    "all": (
        "bad_input",
        "max_iter",
        "not identified",
        "at_least",
        "at_most",
        "upper bound",
        "lower bound",
        "is wider than the fitted gain",
        "not fitted (bad input)",
    ),
    # (a concave exponential's last slope never reaches its average slope: no "lies inside")
    "oscillator": (
        "damping time",
        "oscillation period",
        "contains 1/4",
        "partly identified",
        "lies inside the observed rewards",
    ),
    "exponential": ("damping time",),
    "logistic": ("the midpoint", "lies inside the observed rewards"),
}


@pytest.mark.parametrize("model", ["oscillator", "exponential", "logistic"])
def test_postprocessing_is_unchanged(monkeypatch: pytest.MonkeyPatch, model: ModelName) -> None:
    """With the frozen numpy curves the new post-processing is bit-identical to the old one;
    with the compiled curves (exact closed form, the same numbers to rounding) every field but
    the plateau bound's value is identical, and that agrees to 1e-12 relative."""
    seen: set[str] = set()
    for name, call in _configs(model):
        new, old = _fit_both(monkeypatch, call, old_curves=True)
        if name == "grid, no bad rows":
            assert not np.any(old.status == "bad_input")
        _assert_same(new, old, f"{model}, {name}, numpy curves")
        new, old = _fit_both(monkeypatch, call, old_curves=False)
        _assert_same(new, old, f"{model}, {name}", plateau_rtol=1e-12)
        assert old.plateau_bound_kind is not None and old.unidentified_reason is not None
        text = [*old.status.tolist(), *old.reason.tolist(), *old.unidentified_reason.tolist()]
        text += [str(k) for k in old.plateau_bound_kind.tolist()]
        seen |= {
            key for key in (*_MUST_SEE["all"], *_MUST_SEE[model]) if any(key in s for s in text)
        }
    assert seen == {*_MUST_SEE["all"], *_MUST_SEE[model]}


def test_empty_batch() -> None:
    batch = gd.fit_many(T, np.zeros((0, T.size)), "oscillator")
    assert batch.unidentified is not None and batch.unidentified.shape == (0,)
    assert batch.reason.shape == (0,) and batch.reason.dtype == object


# ---------------------------------------------------------------------------------------------
# the compiled curves against the numpy ones they replace


def test_trajectory_rows_matches_the_old_numpy_curves() -> None:
    """Across the regimes (mu = 0, tiny, near and at 1/4, oscillatory, very large), before t0,
    and the exponential's three columns."""
    rng = np.random.default_rng(4)
    mus = [0.0, 1e-12, 1e-8, 1e-4, 0.1, 3 / 16, 0.25 - 1e-9, 0.25, 0.25 + 1e-9, 0.5, 3.0, 1e4]
    rows = [
        [rng.uniform(-1, 1), rng.uniform(-1, 1), tau, mu]
        for mu in mus
        for tau in (0.5, 30.0, 900.0)
    ]
    params = np.array(rows)
    t = np.sort(rng.uniform(-50.0, 3000.0, (params.shape[0], 41)), axis=1)
    for model, p in (("oscillator", params), ("exponential", params[:, :3])):
        ours = _core.trajectory_rows(p, t, 2.0, 2)
        ref = _old_curve_values(model, p, t, 2.0)
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
        assert np.all(ours[t < 2.0] == np.broadcast_to(p[:, :1], t.shape)[t < 2.0])


@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf])
def test_grid_summary_without_gaps_or_with_one_non_finite_reward(bad: float | None) -> None:
    """The no-gap shortcut of the shared-grid summary (taken when every row's min and max are
    finite) against a per-series loop; one NaN or +-inf reward anywhere must leave it."""
    rng = np.random.default_rng(8)
    t = np.cumsum(rng.uniform(0.5, 2.0, 50))
    R = rng.normal(size=(30, t.size))
    if bad is not None:
        R[17, 23] = bad
    got = _fit._data_summary(t, R.reshape(-1), np.arange(31) * t.size, None)
    for i in range(R.shape[0]):
        keep = np.isfinite(R[i])
        ti, ri = t[keep], R[i][keep]
        tail = ti >= ti[-1] - 0.1 * (ti[-1] - ti[0])
        expected = [ti[0], ti[-1], ri.min(), ri.max(), ri[tail].mean()]
        row = [got.t_first[i], got.t_last[i], got.r_min[i], got.r_max[i], got.r_end[i]]
        np.testing.assert_allclose(row, expected, rtol=1e-12)
