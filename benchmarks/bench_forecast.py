"""Benchmark: forecasts of real GRPO runs from their first 30 % and 50 %, beside baselines.

Runs: every run in ../shared/data/real-grpo-logs whose shape in LABELS.md is learn_plateau,
learn_rising or weak (a learning signal). Files are read with grpo_dynamics.read_log; the
multi-run CSVs are sliced with pandas by the column filter LABELS.md gives (``arm`` or
``label``) and turned into runs with ``as_run(frame)``.

Target of every forecast: the end-of-run mean reward, defined robustly as the mean of the
last 10 % of the logged points (k = ceil(0.1 n)); the run's gain is |end mean - start mean|
with the start mean over the first k points. Per method and prefix: the median absolute
error of the end mean as a fraction of the gain, how often the 90 % band covers the end
mean, and the median band width (fraction of the gain).

Methods (all on the same prefix, predicting the mean over the same end window):
- ``forecast``: grpo_dynamics.forecast (candidate curves weighted by rolling-origin validation)
  called as a user does, on the run read from its log with ``upto`` the prefix's last step: its
  default ``reward_range="auto"`` bounds the plateau to [0, 1] when the log's own mean and std
  up to there show a 0/1 reward (13 of the 30 runs; docs/io.md, "Reward range").
- ``forecast_norange``: the same forecast on the prefix's bare (step, reward) arrays, without
  a reward range (what the forecast did before the range was read from the log).
- ``exp``: scipy curve_fit of a - b exp(-k x), band from pcov (delta method) plus the window
  mean's noise.
- ``exp_range``: the same exponential with its limit bounded to the reward range the forecast
  used (identical to ``exp`` on runs whose log proves no range): how much of the forecast's
  gain the range alone gives a plain fit.
- ``logistic``: scipy curve_fit of L + (U - L) / (1 + exp(-k (x - x0))), same band.
- ``last_ma``: the mean of the prefix's last 10 % of points, band +-1.645 sd / sqrt(k).
- ``domhan``: a Domhan et al. (IJCAI 2015) style ensemble: pow3, exponential, logistic,
  Janoschek, Weibull, MMF each fitted by curve_fit, combined by their Gaussian likelihood
  (weights proportional to sigma_m^-n), band from the mixture of the members' delta-method
  bands. Written here from the paper's formulas, independent of grpo_dynamics.curves.

No parameter of grpo_dynamics.forecast was tuned on these runs beyond the defaults stated in
docs/forecast.md. Writes benchmarks/results/forecast.md and forecast.json.
Run: python benchmarks/bench_forecast.py

``--simulated`` instead prints the off-line check on simulated runs that docs/forecast.md
quotes (sigmoid and saturating-exponential mean curves of 80 points as in
tests/test_forecast.py, white or AR(1) noise, forecasts from the first 30 % and 50 %, 60 runs
per cell): coverage of the 90 % band of the mean of the last 8 points, its median width and
mean interval score, in reward units.
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from machine import describe_machine, machine_line
from scipy.optimize import curve_fit

from grpo_dynamics._forecast import forecast
from grpo_dynamics.io import Run, as_run, read_log

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-grpo-logs"
if not DATA.exists():
    DATA = Path("/work/shared/data/real-grpo-logs")
SHAPES = ("learn_plateau", "learn_rising", "weak")
PREFIXES = (0.3, 0.5)
LEVEL = 0.9
Z90 = 1.6448536269514722
METHODS = ("forecast", "forecast_norange", "exp", "exp_range", "logistic", "last_ma", "domhan")


def load_runs() -> list[tuple[str, str, str, np.ndarray, np.ndarray, Run]]:
    """(name, repository, shape, steps, reward, run) of every run with a learning signal."""
    out = []
    for line in (DATA / "LABELS.md").read_text().splitlines():
        m = re.match(r"\| (\S+?)(?: \[(.*?)\])? \| (\w+) \|", line)
        if not m or m.group(3) not in SHAPES:
            continue
        name, sl, shape = m.groups()
        path = DATA / name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if sl:
                found = re.match(r'(?:rows with )?(\w+)=="(.*)"', sl)
                assert found is not None, sl
                col, val = found.groups()
                frame = pd.read_csv(path)
                frame = frame[frame[col] == val].drop(columns=[col])
                frame = frame.rename(columns={"grpo_step": "step", "critic/score/mean": "reward"})
                run = as_run(frame.select_dtypes("number"))
                label = f"{name} [{val}]"
            else:
                run = read_log(path)
                label = name
        t, y = run.series("reward")
        repo = name.split("__")[0]
        out.append((label, repo, shape, t, y, run))
    return out


# ---------------------------------------------------------------------------------------------
# baselines


def _delta_band(
    f: Callable[..., np.ndarray], x_end: np.ndarray, p: np.ndarray, cov: np.ndarray
) -> float:
    """Variance of mean(f(x_end; p)) from the parameter covariance (central differences)."""
    if not np.all(np.isfinite(cov)):
        return math.inf
    g = np.empty(p.size)
    for i in range(p.size):
        h = 1e-6 * max(abs(p[i]), 1e-3)
        up, dn = p.copy(), p.copy()
        up[i] += h
        dn[i] -= h
        g[i] = (np.mean(f(x_end, *up)) - np.mean(f(x_end, *dn))) / (2 * h)
    return float(max(g @ cov @ g, 0.0))


def _exp(x, a, b, k):  # noqa: ANN001, ANN202
    return a - b * np.exp(-k * x)


def _logistic(x, lo, hi, k, x0):  # noqa: ANN001, ANN202
    return lo + (hi - lo) / (1.0 + np.exp(np.clip(-k * (x - x0), -60, 60)))


def _pow3(x, c, a, al):  # noqa: ANN001, ANN202
    return c - a * np.power(x, -al)


def _janoschek(x, a, b, k, d):  # noqa: ANN001, ANN202
    return a - (a - b) * np.exp(-k * np.power(x, d))


def _weibull(x, a, b, k, d):  # noqa: ANN001, ANN202
    return a - (a - b) * np.exp(-np.power(k * x, d))


def _mmf(x, a, b, k, d):  # noqa: ANN001, ANN202
    return a - (a - b) / (1.0 + np.power(k * x, d))


def _fit(f, x, y, p0, bounds=(-np.inf, np.inf)):  # noqa: ANN001, ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, cov = curve_fit(f, x, y, p0=p0, bounds=bounds, maxfev=5000)
    return np.asarray(p, float), np.asarray(cov, float)


def baselines(
    t: np.ndarray,
    y: np.ndarray,
    t_end: np.ndarray,
    reward_range: tuple[float, float] | None = None,
) -> dict[str, tuple[float, float, float]]:
    """(estimate, lower, upper) of the end-window mean by each baseline; ``exp_range`` is the
    scipy exponential with its limit bounded to ``reward_range`` (the plain one without it)."""
    span = float(t[-1] - t[0]) or 1.0
    x = (t - t[0]) / span
    xe = (t_end - t[0]) / span
    n, k_end = t.size, t_end.size
    k = max(3, int(math.ceil(0.1 * n)))
    first, last = float(np.mean(y[:k])), float(np.mean(y[-k:]))
    out: dict[str, tuple[float, float, float]] = {}
    sd = float(np.median(np.abs(np.diff(y))) / (0.6745 * math.sqrt(2))) if n > 2 else 0.0
    out["last_ma"] = (last, last - Z90 * sd / math.sqrt(k), last + Z90 * sd / math.sqrt(k))

    def member(f, p0, bounds=(-np.inf, np.inf), xx=x, xxe=xe):  # noqa: ANN001, ANN202
        p, cov = _fit(f, xx, y, p0, bounds)
        resid = y - f(xx, *p)
        s2 = float(resid @ resid / max(n - p.size, 1))
        pred = float(np.mean(f(xxe, *p)))
        var = _delta_band(f, xxe, p, cov) + s2 / k_end
        loglik = -0.5 * n * math.log(max(float(resid @ resid) / n, 1e-300))
        return pred, var, loglik

    lo_a, hi_a = reward_range if reward_range is not None else (-np.inf, np.inf)
    a0 = float(np.clip(last, lo_a + 1e-6, hi_a - 1e-6)) if reward_range is not None else last
    for name, f, p0, bnd in (
        ("exp", _exp, [last, last - first, 2.0], (-np.inf, np.inf)),
        (
            "exp_range",
            _exp,
            [a0, a0 - first, 2.0],
            ([lo_a, -np.inf, -np.inf], [hi_a, np.inf, np.inf]),
        ),
        ("logistic", _logistic, [first, last, 8.0, 0.3], (-np.inf, np.inf)),
    ):
        try:
            pred, var, _ = member(f, p0, bnd)
            half = Z90 * math.sqrt(var)
            out[name] = (pred, pred - half, pred + half)
        except (RuntimeError, ValueError):
            out[name] = (last, last, last)  # a failed fit falls back to the last level
    # Domhan et al. style: x in epochs starting at 1 (here: logged points, 1..n)
    xd = 1.0 + np.arange(n, dtype=float)
    xde = 1.0 + (t_end - t[0]) / (span / max(n - 1, 1))
    members = []
    candidates: list[tuple[Callable[..., np.ndarray], list[float], np.ndarray, np.ndarray]] = [
        (_pow3, [last, last - first, 0.5], xd, xde),
        (_exp, [last, last - first, 2.0], x, xe),
        (_logistic, [first, last, 8.0, 0.3], x, xe),
        (_janoschek, [last, first, 0.1, 1.0], xd, xde),
        (_weibull, [last, first, 0.1, 1.0], xd, xde),
        (_mmf, [last, first, 0.1, 1.0], xd, xde),
    ]
    for f, p0, xx, xxe in candidates:
        try:
            bounds: tuple[object, object] = (-np.inf, np.inf)
            if f in (_janoschek, _weibull, _mmf):
                bounds = ([-np.inf, -np.inf, 1e-9, 1e-3], [np.inf, np.inf, np.inf, 20.0])
            members.append(member(f, p0, bounds, xx, xxe))
        except (RuntimeError, ValueError):
            continue
    members = [m for m in members if np.isfinite(m[0]) and np.isfinite(m[1])]
    if members:
        ll = np.array([m[2] for m in members])
        w = np.exp(ll - ll.max())
        w /= w.sum()
        mu = np.array([m[0] for m in members])
        sd_m = np.sqrt(np.array([m[1] for m in members]))
        rng = np.random.default_rng(0)
        idx = rng.choice(mu.size, size=4000, p=w)
        draws = mu[idx] + sd_m[idx] * rng.standard_normal(4000)
        lo, hi = np.quantile(draws, [0.05, 0.95])
        out["domhan"] = (float(w @ mu), float(lo), float(hi))
    else:
        out["domhan"] = (last, last, last)
    return out


# ---------------------------------------------------------------------------------------------


def _short(label: str) -> str:
    """Repository and the distinguishing tail of a run's file name (for the table)."""
    if len(label) <= 70:
        return label
    return f"{label.split('__')[0]} ...{label[-55:]}"


def main() -> None:
    runs = load_runs()
    rows = []
    times = []
    for label, repo, shape, t, y, run in runs:
        n = t.size
        k = max(1, int(math.ceil(0.1 * n)))
        end_mean = float(np.mean(y[-k:]))
        gain = abs(end_mean - float(np.mean(y[:k])))
        t_end = t[-k:]
        window = float(t[-1] - t[-k - 1]) if n > k else float(t[-1] - t[0] + 1)
        for frac in PREFIXES:
            m = max(int(math.ceil(frac * n)), 4)
            tp, yp = t[:m], y[:m]
            t0 = time.perf_counter()
            # as a user calls it: the run read from its log, fitted up to the prefix's last
            # step; the reward range is what the log's own numbers prove up to there
            fc = forecast(run, upto=float(tp[-1]), horizon=float(t[-1]), window=window, level=LEVEL)
            times.append(time.perf_counter() - t0)
            bare = forecast(tp, yp, horizon=float(t[-1]), window=window, reward_range=None)
            est = {
                "forecast": (fc.end.estimate, fc.end.lower, fc.end.upper),
                "forecast_norange": (bare.end.estimate, bare.end.lower, bare.end.upper),
            }
            est |= baselines(tp, yp, t_end, fc.reward_range)
            row = {
                "run": label,
                "repo": repo,
                "shape": shape,
                "prefix": frac,
                "n": n,
                "n_fit": m,
                "end_mean": end_mean,
                "gain": gain,
                "progress": fc.progress,
                "plateau_identified": fc.plateau_identified,
                "top_model": max(fc.weights, key=fc.weights.__getitem__),
                "reward_range": fc.reward_range,
            }
            for meth, (e, lo, hi) in est.items():
                row[f"{meth}_err"] = abs(e - end_mean) / gain
                row[f"{meth}_cover"] = bool(lo <= end_mean <= hi)
                row[f"{meth}_width"] = (hi - lo) / gain
                # interval score (Gneiting & Raftery 2007): width plus 2/alpha times the miss;
                # a proper score of the 90 % band, so narrow-but-wrong and wide-but-safe both pay
                miss = max(lo - end_mean, 0.0) + max(end_mean - hi, 0.0)
                row[f"{meth}_iscore"] = ((hi - lo) + 2.0 / (1.0 - LEVEL) * miss) / gain
            rows.append(row)
            print(
                f"{label[:60]:60s} {frac:.1f} "
                + " ".join(f"{meth}={row[f'{meth}_err']:.2f}" for meth in METHODS),
                flush=True,
            )
    df = pd.DataFrame(rows)
    summary = []
    resolution = []
    boot = np.random.default_rng(0)  # runs resampled with replacement: the median's resolution
    for frac in PREFIXES:
        sub = df[df["prefix"] == frac]
        picks = boot.integers(0, len(sub), size=(10_000, len(sub)))
        own = np.median(sub["forecast_err"].to_numpy()[picks], axis=1)
        # the runs are not independent (20 of 30 from one repository): resample repositories
        repos = sub["repo"].to_numpy()
        names = np.unique(repos)
        members = [np.nonzero(repos == r)[0] for r in names]
        clustered = []
        for _ in range(10_000):
            chosen = boot.integers(0, names.size, size=names.size)
            clustered.append(
                np.median(
                    sub["forecast_err"].to_numpy()[np.concatenate([members[c] for c in chosen])]
                )
            )
        resolution.append(
            {
                "prefix": frac,
                "method": "forecast",
                "median_90_runs": [float(v) for v in np.quantile(own, [0.05, 0.95])],
                "median_90_repositories": [float(v) for v in np.quantile(clustered, [0.05, 0.95])],
            }
        )
        for meth in METHODS:
            medians = np.median(sub[f"{meth}_err"].to_numpy()[picks], axis=1)
            lo_med, hi_med = (float(v) for v in np.quantile(medians, [0.05, 0.95]))
            if meth != "forecast":  # paired: the same resampled runs for both methods
                diff = np.quantile(medians - own, [0.05, 0.5, 0.95])
                resolution.append(
                    {
                        "prefix": frac,
                        "method": meth,
                        "median_minus_forecast": float(
                            np.median(sub[f"{meth}_err"]) - np.median(sub["forecast_err"])
                        ),
                        "difference_90_runs": [float(diff[0]), float(diff[2])],
                    }
                )
            wins_mask = sub["forecast_err"] < sub[f"{meth}_err"]
            wins = int(np.sum(wins_mask)) if meth != "forecast" else 0
            summary.append(
                {
                    "prefix": frac,
                    "method": meth,
                    "n": int(len(sub)),
                    "median_abs_err": float(np.median(sub[f"{meth}_err"])),
                    "median_abs_err_90": [lo_med, hi_med],
                    "mean_abs_err_capped": float(np.mean(np.minimum(sub[f"{meth}_err"], 3.0))),
                    "coverage": float(np.mean(sub[f"{meth}_cover"])),
                    "median_width": float(np.median(sub[f"{meth}_width"])),
                    "median_interval_score": float(np.median(sub[f"{meth}_iscore"])),
                    "forecast_better_in": wins,
                }
            )
    by_shape = []
    for frac in PREFIXES:
        for shape in SHAPES:
            sub = df[(df["prefix"] == frac) & (df["shape"] == shape)]
            by_shape.append(
                {"prefix": frac, "shape": shape, "n": int(len(sub))}
                | {f"{m}_median_err": float(np.median(sub[f"{m}_err"])) for m in METHODS}
                | {"forecast_coverage": float(np.mean(sub["forecast_cover"]))}
            )
    by_repo = []
    for frac in PREFIXES:
        for repo in sorted(df["repo"].unique()):
            sub = df[(df["prefix"] == frac) & (df["repo"] == repo)]
            by_repo.append(
                {"prefix": frac, "repo": repo, "n": int(len(sub))}
                | {f"{m}_median_err": float(np.median(sub[f"{m}_err"])) for m in METHODS}
                | {"forecast_coverage": float(np.mean(sub["forecast_cover"]))}
            )
    info = describe_machine()
    timing = {
        "median_s": float(np.median(times)),
        "max_s": float(np.max(times)),
        "n_forecasts": len(times),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "forecast.json").write_text(
        json.dumps(
            {
                "machine": info,
                "summary": summary,
                "resolution": resolution,
                "by_shape": by_shape,
                "by_repository": by_repo,
                "timing": timing,
                "forecasts": rows,
            },
            indent=1,
        )
    )
    lines = [
        "# Forecast benchmark: real GRPO runs (bench_forecast.py)",
        "",
        machine_line(info),
        "",
        f"{len(runs)} runs with a learning signal (LABELS.md shapes {', '.join(SHAPES)}), "
        f"{len(df)} forecasts. Target: mean of the last 10 % of the run's points; errors and "
        "band widths are fractions of the run's gain |end mean - start mean|. "
        "'better in' = forecasts where grpo_dynamics.forecast has the smaller error. The "
        "median's 90 % interval resamples the runs (bootstrap, 10,000 draws): how finely 30 "
        "forecasts resolve a median.",
        "",
        "| prefix | method | median abs error (90 % bootstrap) | mean abs error (capped at 3) "
        "| 90 % coverage | median width | median interval score | forecast better in |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        better = "" if s["method"] == "forecast" else f"{s['forecast_better_in']}/{s['n']}"
        lines.append(
            f"| {s['prefix']:.0%} | {s['method']} | {s['median_abs_err']:.3f} "
            f"({s['median_abs_err_90'][0]:.3f}-{s['median_abs_err_90'][1]:.3f}) | "
            f"{s['mean_abs_err_capped']:.3f} | {s['coverage']:.0%} | {s['median_width']:.2f} | "
            f"{s['median_interval_score']:.2f} | {better} |"
        )
    lines += [
        "",
        "How finely 30 forecasts resolve these medians (bootstrap, 10,000 draws, seed 0): the "
        "forecast's median with runs resampled and with repositories resampled (20 of the 30 "
        "runs are one repository's), and each method's median minus the forecast's, the runs "
        "resampled in pairs (an interval that holds 0 is a difference the corpus does not "
        "resolve):",
        "",
        "| prefix | method | median minus forecast's | 90 % interval |",
        "|---|---|---|---|",
    ]
    for r in resolution:
        if r["method"] == "forecast":
            a, b = r["median_90_runs"]
            c, d = r["median_90_repositories"]
            lines.append(
                f"| {r['prefix']:.0%} | forecast (its own median) | | runs {a:.3f}-{b:.3f}; "
                f"repositories {c:.3f}-{d:.3f} |"
            )
        else:
            a, b = r["difference_90_runs"]
            lines.append(
                f"| {r['prefix']:.0%} | {r['method']} | {r['median_minus_forecast']:+.3f} | "
                f"{a:+.3f} to {b:+.3f} |"
            )
    lines += [
        "",
        "Median absolute error by shape:",
        "",
        "| prefix | shape | n | " + " | ".join(METHODS) + " | forecast coverage |",
        "|---|---|---|" + "---|" * len(METHODS) + "---|",
    ]
    for b in by_shape:
        lines.append(
            f"| {b['prefix']:.0%} | {b['shape']} | {b['n']} | "
            + " | ".join(f"{b[f'{m}_median_err']:.3f}" for m in METHODS)
            + f" | {b['forecast_coverage']:.0%} |"
        )
    lines += [
        "",
        "Median absolute error by repository (20 of the 30 runs come from one repository, "
        "ShibukiZero; the other seven repositories show whether the method holds elsewhere):",
        "",
        "| prefix | repository | n | " + " | ".join(METHODS) + " | forecast coverage |",
        "|---|---|---|" + "---|" * len(METHODS) + "---|",
    ]
    for b in by_repo:
        lines.append(
            f"| {b['prefix']:.0%} | {b['repo']} | {b['n']} | "
            + " | ".join(f"{b[f'{m}_median_err']:.3f}" for m in METHODS)
            + f" | {b['forecast_coverage']:.0%} |"
        )
    for frac in PREFIXES:
        for label, keep in (("Without", df["repo"] != "ShibukiZero"), ("Only", None)):
            mask = keep if keep is not None else df["repo"] == "ShibukiZero"
            sub = df[(df["prefix"] == frac) & mask]
            lines.append(
                f"\n{label} ShibukiZero ({len(sub)} forecasts from {frac:.0%}): median abs error "
                + ", ".join(f"{m} {np.median(sub[f'{m}_err']):.3f}" for m in METHODS)
                + f"; forecast coverage {np.mean(sub['forecast_cover']):.0%}, median width "
                f"{np.median(sub['forecast_width']):.2f}, median interval score "
                f"{np.median(sub['forecast_iscore']):.2f}."
            )
    lines += [
        "",
        f"Time per forecast: median {timing['median_s'] * 1e3:.0f} ms, max "
        f"{timing['max_s'] * 1e3:.0f} ms (shared machine, see load).",
        "",
        "Per forecast (error / gain; * = band covers):",
        "",
        "| run | shape | prefix | gain | progress | top model | " + " | ".join(METHODS) + " |",
        "|---|---|---|---|---|---|" + "---|" * len(METHODS),
    ]
    for r in rows:
        lines.append(
            f"| {_short(str(r['run']))} | {r['shape']} | {r['prefix']:.0%} | {r['gain']:.3f} | "
            f"{r['progress']} | {r['top_model']} | "
            + " | ".join(f"{r[f'{m}_err']:.2f}{'*' if r[f'{m}_cover'] else ''}" for m in METHODS)
            + " |"
        )
    (RESULTS / "forecast.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:20]))


def _simulated_run(
    kind: str, seed: int, sd: float, phi: float, n: int = 80
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, rewards): the mean curves of tests/test_forecast.py plus AR(1) noise of marginal
    sd ``sd`` (white when phi = 0)."""
    rng = np.random.default_rng(seed)
    steps = np.arange(float(n))
    lo, hi = rng.uniform(0.05, 0.3), rng.uniform(0.6, 0.9)
    if kind == "sigmoid":
        k, mid = rng.uniform(0.08, 0.25), rng.uniform(15, 35)
        mean = lo + (hi - lo) / (1 + np.exp(-k * (steps - mid)))
    else:
        tau = rng.uniform(8, 30)
        mean = hi - (hi - lo) * np.exp(-steps / tau)
    e = rng.standard_normal(n)
    noise = np.empty(n)
    noise[0] = e[0]
    for i in range(1, n):
        noise[i] = phi * noise[i - 1] + math.sqrt(1 - phi**2) * e[i]
    return steps, mean + sd * noise


def simulated(n_runs: int = 60) -> None:
    """Print the simulated-run check (module docstring)."""
    print("| prefix | noise | curve | covered | median width | mean interval score |")
    print("|---|---|---|---|---|---|")
    cells = [(39, 0.05, 0.0), (39, 0.02, 0.0), (39, 0.05, 0.5), (23, 0.05, 0.0), (23, 0.05, 0.5)]
    for upto, sd, phi in cells:
        for kind in ("sigmoid", "exponential"):
            hits, widths, scores = 0, [], []
            for seed in range(n_runs):
                t, r = _simulated_run(kind, seed, sd, phi)
                fc = forecast(t, r, upto=float(upto), window=8.0)
                truth = float(np.mean(r[-8:]))
                lo, hi = fc.end.lower, fc.end.upper
                hits += bool(lo <= truth <= hi)
                widths.append(hi - lo)
                scores.append(hi - lo + 2 / (1 - LEVEL) * (max(lo - truth, 0) + max(truth - hi, 0)))
            print(
                f"| {(upto + 1) / 80:.0%} | sd {sd}, AR(1) {phi} | {kind} | {hits}/{n_runs} | "
                f"{np.median(widths):.3f} | {np.mean(scores):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    import sys

    if "--simulated" in sys.argv[1:]:
        simulated()
    else:
        main()
