"""The ``grpo-dynamics`` command line (docs/cli.md).

Subcommands: demo (end-to-end on an embedded default). More (fit, compare, forecast,
diagnose, simulate, stability) arrive as the library pieces they wrap land.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["main"]

# Embedded demo run (MODEL.md s.5 parameters): a visibly underdamped curve, as momentum +
# moderate lag produce, sampled every step with batch noise.
DEMO_TRUTH = {"r0": 0.15, "r_inf": 0.78, "tau": 30.0, "mu": 1.5}
DEMO_STEPS = 300
DEMO_NOISE = 0.03


def _closed_form(t: np.ndarray, r0: float, r_inf: float, tau: float, mu: float) -> np.ndarray:
    """Stopgap NumPy closed form of MODEL.md s.5 (from rest), used until trajectory lands."""
    x0 = r0 - r_inf
    if mu == 0.0:
        return r_inf + x0 * np.exp(-t / tau)
    if abs(mu - 0.25) < 1e-9:
        return r_inf + x0 * np.exp(-2 * t / tau) * (1 + 2 * t / tau)
    if mu < 0.25:
        q = np.sqrt(1 - 4 * mu)
        s1 = -2 / (tau * (1 + q))
        s2 = -(1 + q) / (2 * mu * tau)
        return r_inf + x0 * (s2 * np.exp(s1 * t) - s1 * np.exp(s2 * t)) / (s2 - s1)
    a = 1 / (2 * mu * tau)
    w = np.sqrt(4 * mu - 1) / (2 * mu * tau)
    return r_inf + x0 * np.exp(-a * t) * (np.cos(w * t) + (a / w) * np.sin(w * t))


def _trajectory(t: np.ndarray, r0: float, r_inf: float, tau: float, mu: float) -> np.ndarray:
    import grpo_dynamics as gd

    if callable(getattr(gd, "trajectory", None)):  # the submodule until the function lands
        return np.asarray(gd.trajectory(t, r0, r_inf, tau, mu), dtype=float)
    return _closed_form(t, r0, r_inf, tau, mu)


def _fit_params(t: np.ndarray, r: np.ndarray, model: str) -> tuple[dict, object | None]:
    """(params, FitResult or None): the library fitter when present, else a scipy stopgap."""
    import grpo_dynamics as gd

    if callable(getattr(gd, "fit", None)):
        result = gd.fit(t, r, model=model)
        return dict(result.params), result
    from scipy.optimize import least_squares

    if model == "exponential":
        def resid(p: np.ndarray) -> np.ndarray:
            return _closed_form(t, p[0], p[1], p[2], 0.0) - r

        p0 = [r[:5].mean(), r[-20:].mean(), (t[-1] - t[0]) / 5]
        sol = least_squares(resid, p0, bounds=([-np.inf, -np.inf, 1e-6], np.inf))
        return dict(zip(("r0", "r_inf", "tau"), sol.x.tolist(), strict=True)) | {"mu": 0.0}, None

    def resid4(p: np.ndarray) -> np.ndarray:
        return _closed_form(t, *p) - r

    best = None
    for mu0 in (0.1, 0.5, 2.0):
        p0 = [r[:5].mean(), r[-20:].mean(), (t[-1] - t[0]) / 8, mu0]
        sol = least_squares(resid4, p0, bounds=([-np.inf, -np.inf, 1e-6, 0.0], np.inf))
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    return dict(zip(("r0", "r_inf", "tau", "mu"), best.x.tolist(), strict=True)), None


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import plotting

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    t = np.arange(DEMO_STEPS, dtype=float)
    truth = _trajectory(t, **DEMO_TRUTH)
    r = truth + DEMO_NOISE * rng.standard_normal(t.size)

    osc, _ = _fit_params(t, r, "oscillator")
    exp, _ = _fit_params(t, r, "exponential")
    print(f"grpo-dynamics demo: simulated {DEMO_STEPS} steps, noise sd {DEMO_NOISE}, seed {args.seed}")
    print(f"{'param':>8} {'truth':>10} {'oscillator':>12} {'exponential':>12}")
    for name in ("r0", "r_inf", "tau", "mu"):
        print(f"{name:>8} {DEMO_TRUTH[name]:>10.4f} {osc[name]:>12.4f} {exp.get(name, 0.0):>12.4f}")
    path = plotting.plot_fit(
        t,
        r,
        {
            "oscillator": lambda s: _trajectory(s, osc["r0"], osc["r_inf"], osc["tau"], osc["mu"]),
            "exponential": lambda s: _trajectory(s, exp["r0"], exp["r_inf"], exp["tau"], 0.0),
        },
        out / "demo-fit.png",
        title="grpo-dynamics demo: simulated run",
        truth=lambda s: _trajectory(s, **DEMO_TRUTH),
    )
    print(f"plot written to {path}")
    if args.json:
        print(json.dumps({"truth": DEMO_TRUTH, "oscillator": osc, "exponential": exp}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpo-dynamics",
        description="Fit, forecast and diagnose GRPO reward curves with a damped-oscillator model.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="end-to-end run on an embedded simulated run")
    demo.add_argument("--out", default="demo-output", help="directory for outputs (PNG, logs)")
    demo.add_argument("--seed", type=int, default=0, help="noise seed")
    demo.add_argument("--json", action="store_true", help="also print the results as JSON")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``grpo-dynamics``; returns the process exit code."""
    import matplotlib

    matplotlib.use("Agg")  # never need a display (CI, ssh)
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
