"""The ``grpo-dynamics`` command line (docs/cli.md).

Subcommands: fit, compare, forecast, diagnose (one or many log files, globs or
directories), simulate, stability / phase-diagram, demo. Tables for people by default,
``--json`` / ``--csv`` for machines, ``--plot DIR`` for PNGs. In a batch every file gets a
row (its status says what went wrong); the exit code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .diagnose import _jsonable  # the one JSON cleaner (NaN/inf -> None, NumPy -> plain)
from .fit import fit as _fit
from .trajectory import trajectory as _trajectory

__all__ = ["main", "build_parser"]

# Embedded demo run (MODEL.md s.5 parameters): a visibly underdamped curve, as momentum +
# moderate lag produce, logged every step with batch noise.
DEMO_TRUTH = {"r0": 0.15, "r_inf": 0.78, "tau": 30.0, "mu": 1.5}
DEMO_STEPS = 300
DEMO_NOISE = 0.03
DEMO_LR = 1e-3
_PARAMS = ("r0", "r_inf", "tau", "mu")


class _Failure(Exception):
    """One item of a batch failed; the message goes into its row."""


# --------------------------------------------------------------------------------------------
# library access (public API only)


def _gd():
    import grpo_dynamics

    return grpo_dynamics


def _read_many(paths: Sequence[str]) -> list[tuple[str, Any]]:
    """(path, Run or Exception) for every file the paths/globs/directories name."""
    gd = _gd()
    with warnings.catch_warnings():
        # the reader's data-cleaning warnings are kept in Run.warnings and reported per row
        warnings.simplefilter("ignore")
        return list(gd.read_logs(list(paths)))


def _series(run: Any, column: str) -> tuple[np.ndarray, np.ndarray]:
    from .forecast import run_series

    t, r = run_series(run, column=column)
    if t.size == 0:
        raise _Failure(f"no finite {column!r} values")
    return t, r


def _params(result: Any) -> dict[str, float]:
    return {k: float(v) for k, v in dict(result.params).items()}


def _stderr(result: Any) -> dict[str, float]:
    return {k: float(v) for k, v in result.stderr.items()}


# --------------------------------------------------------------------------------------------
# output


def _emit(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    docs: list[dict[str, Any]] | dict[str, Any] | None = None,
    human: Callable[[], str] | None = None,
) -> None:
    """Print rows as a table (default), CSV (--csv) or JSON (--json, full documents)."""
    if getattr(args, "json", False):
        print(json.dumps(_jsonable(docs if docs is not None else rows), indent=1))
    elif getattr(args, "csv", False):
        print(pd.DataFrame(rows).to_csv(index=False), end="")
    else:
        if human is not None:
            print(human())
        else:
            with pd.option_context("display.width", 200, "display.max_columns", 50):
                print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.4g}"))


def _progress(items: list, label: str):
    from tqdm import tqdm

    # only on a terminal and only for real batches: pipes and single files stay clean
    return tqdm(
        items, desc=label, unit="log", file=sys.stderr, disable=None if len(items) > 1 else True
    )


def _batch(
    args: argparse.Namespace, label: str, work: Callable[[str, Any], tuple[dict, dict]]
) -> int:
    """Run ``work(path, run) -> (row, doc)`` on every log; errors become rows, never losses."""
    rows, docs, failed = [], [], 0
    for path, run in _progress(_read_many(args.paths), label):
        if isinstance(run, Exception):
            row = {"file": path, "status": "error", "error": f"{type(run).__name__}: {run}"}
            rows.append(row)
            docs.append(row)
            failed += 1
            continue
        try:
            row, doc = work(path, run)
            # the batch's own status wins over any "status" a result carries
            row = {"file": path, **row, "status": "ok"}
            doc = {"file": path, **doc, "status": "ok"}
            if getattr(run, "warnings", None):
                doc["log_warnings"] = list(run.warnings)
        except (_Failure, ValueError, RuntimeError, KeyError, np.linalg.LinAlgError) as exc:
            row = {"file": path, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
            doc = row
            failed += 1
        rows.append(row)
        docs.append(doc)
    _emit(args, rows, docs)
    if failed:
        print(f"grpo-dynamics {label}: {failed} of {len(rows)} logs failed", file=sys.stderr)
    return 1 if failed else 0


def _stem(path: str) -> str:
    p = Path(path)
    name = p.name if p.name != "trainer_state.json" else f"{p.parent.name}-trainer_state"
    return name.replace(" ", "_")


# --------------------------------------------------------------------------------------------
# fit / compare / forecast / diagnose


def _fit_plot(
    plot_dir: str, path: str, t: np.ndarray, r: np.ndarray, results: dict[str, Any]
) -> str:
    from . import plotting

    curves = {name: res.predict for name, res in results.items()}
    out = plotting.plot_fit(
        t, r, curves, Path(plot_dir) / f"{_stem(path)}-fit.png", title=Path(path).name
    )
    return str(out)


def _cmd_fit(args: argparse.Namespace) -> int:
    def work(path: str, run: Any) -> tuple[dict, dict]:
        t, r = _series(run, args.column)
        result = _fit(t, r, args.model)
        params, err = _params(result), _stderr(result)
        row = {
            "n": int(t.size),
            "model": args.model,
            "fit_status": str(getattr(result, "status", "")),
            "regime": str(getattr(result, "regime", "")),
            **params,
            **{f"{k}_stderr": v for k, v in err.items()},
            "r2": float(getattr(result, "r2", float("nan"))),
        }
        doc = dict(row) | {"params": params, "stderr": err}
        if args.plot:
            results = {args.model: result}
            if args.model != "exponential":
                results["exponential"] = _fit(t, r, "exponential")
            doc["plot"] = _fit_plot(args.plot, path, t, r, results)
        return row, doc

    return _batch(args, "fit", work)


def _cmd_compare(args: argparse.Namespace) -> int:
    gd = _gd()

    def work(path: str, run: Any) -> tuple[dict, dict]:
        t, r = _series(run, args.column)
        table = gd.compare(t, r)
        verdict = str(table.attrs.get("verdict", ""))
        records = table.drop(columns=[c for c in ("preferred",) if c in table.columns])
        records = records.reset_index().to_dict(orient="records")
        row: dict[str, Any] = {"n": int(t.size), "verdict": verdict}
        for rec in records:
            if rec["model"] != "constant":
                row[f"{rec['model']}_delta_aic"] = rec.get("delta_aic")
        doc = {"n": int(t.size), "verdict": verdict, "models": records}
        if args.plot:
            results = {m: _fit(t, r, m) for m in ("oscillator", "exponential", "logistic")}
            doc["plot"] = _fit_plot(args.plot, path, t, r, results)
        return row, doc

    return _batch(args, "compare", work)


def _cmd_forecast(args: argparse.Namespace) -> int:
    from .forecast import forecast

    def work(path: str, run: Any) -> tuple[dict, dict]:
        fc = forecast(
            run,
            column=args.column,
            upto=args.upto,
            fraction=args.fraction,
            model=args.model,
            level=args.level,
            method=args.method,
            seed=args.seed,
        )
        row: dict[str, Any] = {
            "upto": fc.upto,
            "n_fit": fc.n_fit,
            "r_inf": fc.r_inf.estimate,
            "r_inf_lo": fc.r_inf.lower,
            "r_inf_hi": fc.r_inf.upper,
        }
        for g, iv in fc.gain_steps.items():
            tag = f"t{round(100 * g)}"
            row |= {tag: iv.estimate, f"{tag}_lo": iv.lower, f"{tag}_hi": iv.upper}
        row["warnings"] = "; ".join(fc.warnings)
        doc = fc.to_dict()
        if args.plot:
            from . import plotting

            t, r = _series(run, args.column)
            out = plotting.plot_forecast(
                t,
                r,
                fc.upto,
                fc.t,
                fc.mean,
                fc.lower,
                fc.upper,
                Path(args.plot) / f"{_stem(path)}-forecast.png",
                level=fc.level,
                r_inf=(fc.r_inf.estimate, fc.r_inf.lower, fc.r_inf.upper),
                title=f"{Path(path).name}: forecast from step {fc.upto:g}",
            )
            doc["plot"] = str(out)
        return row, doc

    return _batch(args, "forecast", work)


def _hyperparameters(args: argparse.Namespace) -> Any:
    """A stability.Hyperparameters from the command line, or None when none was given."""
    given: dict[str, Any] = {
        k: getattr(args, k) for k in _HP_FIELDS if getattr(args, k, None) is not None
    }
    if not given:
        return None
    missing = [f"--{k.replace('_', '-')}" for k in ("lr", "momentum") if k not in given]
    if missing:
        raise _Failure(f"hyperparameters need {' and '.join(missing)} as well")
    from .stability import Hyperparameters

    try:
        return Hyperparameters(**given)
    except ValueError as exc:
        raise _Failure(f"hyperparameters: {exc}") from None


def _curvatures(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k, None) for k in ("curvature", "curvature_lag", "curvature_now")}


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnose import diagnose

    hyper = _hyperparameters(args)
    human_blocks: list[str] = []

    def work(path: str, run: Any) -> tuple[dict, dict]:
        d = diagnose(run, hyper, column=args.column, **_curvatures(args))
        row = {
            "verdict": d.verdict,
            "n": d.n_steps,
            **{m: round(f.score, 3) for m, f in d.findings.items()},
        }
        human_blocks.append(f"== {path}\n{d}")
        doc = d.to_dict()
        plots = []
        if args.plot and d.fit is not None:
            t, r = _series(run, args.column)
            results = {"oscillator": d.fit}
            try:
                results["exponential"] = _fit(t, r, "exponential")
            except (ValueError, RuntimeError):
                pass  # the picture without the exponential beside it is still worth having
            plots.append(_fit_plot(args.plot, path, t, r, results))
        st = d.stability or {}
        if args.plot and hyper is not None and "c_lag" in st:
            # where this run's optimizer sits among the exact regimes
            lag = hyper.delay or hyper.refresh_interval
            safe = st.get("max_safe_refresh_interval") or st.get("max_safe_delay") or 2 * lag
            phase = _phase_png(
                Path(args.plot) / f"{_stem(path)}-phase-diagram.png",
                hyper.momentum,
                float(st["c_lag"]),
                float(st["c_now"]),
                "delay" if hyper.delay > 0 else "refresh",
                max(2 * int(safe), 2 * lag, 16),
                point=(float(lag), float(st["c_lag"])),
            )
            plots.append(str(phase))
        if plots:
            doc["plots"] = plots
        return row, doc

    code = _batch(args, "diagnose", work)
    if not (args.json or args.csv):
        # people get the summary table first, then the full per-mode story of each log
        print()
        print("\n\n".join(human_blocks))
    return code


# --------------------------------------------------------------------------------------------
# simulate / stability / demo


def _write_run(
    steps: np.ndarray,
    columns: dict[str, np.ndarray],
    path: Path,
    fmt: str,
    metadata: dict[str, Any] | None = None,
) -> Path:
    gd = _gd()
    run = gd.Run.from_arrays(
        steps.astype(np.int64), columns.pop("reward"), metadata=metadata or {}, **columns
    )
    return Path(gd.write_log(run, path, format=fmt))


def _simulated_columns(
    steps: np.ndarray, truth: dict[str, float], noise: float, seed: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = _trajectory(steps, **truth)
    return {
        "reward": clean + noise * rng.standard_normal(steps.size),
        "reward_std": np.full(steps.size, noise * 8.0),  # within-group spread of a batch of 64
        "entropy": 0.6 + 0.02 * rng.standard_normal(steps.size),
        "frac_reward_zero_std": np.clip(0.1 + 0.02 * rng.standard_normal(steps.size), 0, 1),
    }


def _bandit_columns(args: argparse.Namespace) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """One replica of the softmax-bandit simulator as log columns (MODEL.md s.7)."""
    gd = _gd()
    config = gd.BanditConfig(
        arm_rewards=tuple(args.arm_rewards),
        reward_kind=args.reward_kind,
        group_size=args.group_size,
        batch_prompts=args.batch_prompts,
        steps=args.steps,
        replicas=1,
        seed=args.seed,
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        refresh_interval=args.refresh_interval,
        kl_coef=args.kl_coef,
    )
    result = gd.simulate(config)
    p = np.asarray(result.expected_reward[0], dtype=float)
    n = config.group_size * config.batch_prompts
    rng = np.random.default_rng(args.seed)
    if args.reward_kind == "bernoulli" or set(args.arm_rewards) <= {0.0, 1.0}:
        # a 0/1 reward per sample: the logged batch mean is Binomial(B G, expected reward) / (B G)
        reward = rng.binomial(n, np.clip(p, 0.0, 1.0)) / n
    else:
        reward = p  # graded fixed rewards: log the expected reward itself
    cols = {
        "reward": reward,
        "reward_std": result.group_reward_std[0],
        "frac_reward_zero_std": result.zero_std_fraction[0],
        "entropy": result.entropy[0],
        "kl": result.kl_to_reference[0],
        "learning_rate": np.full(config.steps, config.lr),
    }
    meta = {
        "simulated": "bandit",
        "group_size": config.group_size,
        "learning_rate": config.lr,
        "num_iterations": config.refresh_interval,
        "beta": config.kl_coef,
        "momentum": config.momentum,
        "seed": args.seed,
    }
    return cols, meta


def _cmd_simulate(args: argparse.Namespace) -> int:
    steps = np.arange(1, args.steps + 1, dtype=float)
    if args.bandit:
        cols, meta = _bandit_columns(args)
        truth: dict[str, Any] = {}
    else:
        truth = {"r0": args.r0, "r_inf": args.r_inf, "tau": args.tau, "mu": args.mu}
        cols = _simulated_columns(steps, truth, args.noise, args.seed)
        meta = {"simulated": "trajectory", **truth, "noise_sd": args.noise, "seed": args.seed}
    out = _write_run(steps, cols, Path(args.out), args.format, meta)
    doc = {
        "file": str(out),
        "steps": args.steps,
        "truth": truth,
        "noise": args.noise,
        "metadata": meta,
    }
    _emit(args, [doc | truth], doc, human=lambda: f"wrote {args.steps} simulated steps to {out}")
    return 0


_HP_FIELDS = (
    "lr",
    "momentum",
    "refresh_interval",
    "delay",
    "group_size",
    "batch_prompts",
    "optimizer",
    "adam_preconditioner",
    "dampening",
    "weight_decay",
)


def _add_hp_options(parser: argparse.ArgumentParser, *, curvature_required: bool = False) -> None:
    g = parser.add_argument_group("hyperparameters (stability module, MODEL.md s.2-3)")
    g.add_argument("--lr", type=float, help="learning rate eta")
    g.add_argument("--momentum", type=float, help="heavy-ball beta or Adam beta1, in [0, 1)")
    g.add_argument(
        "--refresh-interval",
        dest="refresh_interval",
        type=int,
        help="K: optimizer steps per batch of rollouts (1 = on-policy)",
    )
    g.add_argument("--delay", type=int, help="D: staleness of asynchronous rollouts (steps)")
    g.add_argument("--group-size", dest="group_size", type=int, help="G: completions per prompt")
    g.add_argument("--batch-prompts", dest="batch_prompts", type=int, help="B: prompts per step")
    g.add_argument("--optimizer", choices=("sgd", "heavy_ball", "adam", "adamw"))
    g.add_argument("--dampening", type=float, help="heavy ball: PyTorch SGD dampening, in [0, 1)")
    g.add_argument(
        "--weight-decay",
        dest="weight_decay",
        type=float,
        help="L2 (sgd, heavy ball, adam) or decoupled (adamw) weight decay",
    )
    g.add_argument(
        "--adam-preconditioner",
        dest="adam_preconditioner",
        type=float,
        help="Adam: s = sqrt(v_hat) + eps along the mean-field direction",
    )
    c = parser.add_argument_group("curvature (per unit effective learning rate)")
    c.add_argument(
        "--curvature",
        type=float,
        help="kappa, all lagged" + ("" if curvature_required else " (default: from the fit)"),
    )
    c.add_argument("--curvature-lag", dest="curvature_lag", type=float, help="kappa_lag (stale)")
    c.add_argument("--curvature-now", dest="curvature_now", type=float, help="kappa_now (current)")


def _cmd_stability(args: argparse.Namespace) -> int:
    from .diagnose import _exact_stability

    hyper = _hyperparameters(args)
    if hyper is None:
        raise _Failure("give the hyperparameters: at least --lr and --momentum")
    curv = _curvatures(args)
    if all(v is None for v in curv.values()):
        raise _Failure("give --curvature (or --curvature-lag / --curvature-now)")
    doc = _exact_stability(hyper, None, **curv)
    assert doc is not None
    doc = {"hyperparameters": vars(hyper) if hasattr(hyper, "__dict__") else {}, **doc}
    if args.plot:
        doc["plot"] = str(
            _phase_png(
                Path(args.plot) / "phase-diagram.png",
                hyper.momentum,
                float(doc["c_lag"]),
                float(doc["c_now"]),
                "delay" if hyper.delay > 0 else "refresh",
                max(2 * (hyper.delay or hyper.refresh_interval), 16),
                point=(float(hyper.delay or hyper.refresh_interval), float(doc["c_lag"])),
            )
        )
    rows = [{k: v for k, v in doc.items() if not isinstance(v, dict)}]

    def human() -> str:
        return "\n".join(f"{k:>28}: {v}" for k, v in rows[0].items())

    _emit(args, rows, doc, human=human)
    return 0


def _phase_png(
    path: Path,
    momentum: float,
    c_center: float,
    c_now: float,
    lag_model: str,
    max_lag: int,
    *,
    point: tuple[float, float] | None = None,
    c_range: tuple[float, float] | None = None,
) -> Path:
    """Phase diagrams (exact regimes and boundary; continuum boundaries in both conventions)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .stability import plot_phase_diagram

    lo, hi = c_range if c_range else (c_center / 30.0, c_center * 30.0)
    c_values = np.geomspace(lo, hi, 80)
    lags = np.arange(1 if lag_model == "refresh" else 0, max_lag + 1, dtype=float)
    fig = Figure(figsize=(12.0, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    for i, convention in enumerate(("mean", "paper")):
        ax = fig.add_subplot(1, 2, i + 1)
        plot_phase_diagram(
            momentum,
            c_values,
            lags,
            c_now=c_now,
            lag_model=lag_model,  # type: ignore[arg-type]
            lag_convention=convention,  # type: ignore[arg-type]
            ax=ax,  # type: ignore[arg-type]
        )
        if point is not None:
            ax.plot(*point, marker="*", ms=14, color="k", ls="none")
        ax.set_title(f"momentum {momentum:g}, c_now {c_now:g}; continuum lag '{convention}'")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _cmd_phase_diagram(args: argparse.Namespace) -> int:
    out = _phase_png(
        Path(args.out),
        args.momentum,
        math.sqrt(args.c_min * args.c_max),
        args.c_now,
        args.lag_model,
        args.max_lag,
        c_range=(args.c_min, args.c_max),
    )
    doc = {"file": str(out), "momentum": args.momentum, "lag_model": args.lag_model}
    _emit(args, [doc], doc, human=lambda: f"phase diagram written to {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import plotting
    from .diagnose import diagnose
    from .forecast import forecast

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gd = _gd()
    steps = np.arange(1, DEMO_STEPS + 1, dtype=float)
    cols = _simulated_columns(steps, DEMO_TRUTH, DEMO_NOISE, args.seed)
    r_sim = cols["reward"].copy()
    say = (lambda *a: None) if args.json else print
    say(
        f"grpo-dynamics demo: simulated {DEMO_STEPS} steps (truth {DEMO_TRUTH}, noise sd "
        f"{DEMO_NOISE}, seed {args.seed})"
    )
    # the embedded run goes through the same path as a user's log: written, then read back
    log = _write_run(steps, cols, out / "demo-trainer_state.json", "trl", {"simulated": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = gd.read_log(log)
    t, r = _series(run, "reward")
    if not np.array_equal(r, r_sim):
        raise _Failure("the TRL log did not read back identically")
    say(f"wrote and read back {log}")

    osc, exp = _fit(t, r, "oscillator"), _fit(t, r, "exponential")
    po, pe = _params(osc), _params(exp)
    say(f"\n{'param':>8} {'truth':>10} {'oscillator':>12} {'exponential':>12}")
    for name in _PARAMS:
        say(f"{name:>8} {DEMO_TRUTH[name]:>10.4f} {po[name]:>12.4f} {pe.get(name, 0.0):>12.4f}")
    say(
        f"{'r2':>8} {'':>10} {float(getattr(osc, 'r2', np.nan)):>12.4f} "
        f"{float(getattr(exp, 'r2', np.nan)):>12.4f}"
    )

    fc = forecast(t, r, upto=float(t[DEMO_STEPS // 3 - 1]), seed=args.seed)
    say(
        f"\nforecast from the first {fc.n_fit} steps: plateau r_inf {fc.r_inf.estimate:.3f} "
        f"[{fc.r_inf.lower:.3f}, {fc.r_inf.upper:.3f}] (truth {DEMO_TRUTH['r_inf']})"
    )
    for g, iv in fc.gain_steps.items():
        say(f"  {g:.0%} of the gain at step {iv.estimate:.0f} [{iv.lower:.0f}, {iv.upper:.0f}]")

    # the demo's optimizer: heavy ball 0.9, rollouts reused for 4 steps; the curvature is
    # inverted from the fitted tau, then the exact cycle matrix says how far from unstable
    hyper = gd.Hyperparameters(lr=DEMO_LR, momentum=0.9, refresh_interval=4)
    diagnosis = diagnose(run, hyper)
    say(f"\ndiagnosis (lr {DEMO_LR:g}, momentum 0.9, refresh interval 4) {diagnosis}")

    plots = [
        plotting.plot_fit(
            t,
            r,
            {"oscillator": osc.predict, "exponential": exp.predict},
            out / "demo-fit.png",
            title="grpo-dynamics demo: simulated run",
            truth=lambda s: _trajectory(s, **DEMO_TRUTH),
        ),
        plotting.plot_forecast(
            t,
            r,
            fc.upto,
            fc.t,
            fc.mean,
            fc.lower,
            fc.upper,
            out / "demo-forecast.png",
            level=fc.level,
            r_inf=(fc.r_inf.estimate, fc.r_inf.lower, fc.r_inf.upper),
            title=f"forecast from step {fc.upto:g}",
        ),
    ]
    st = diagnosis.stability or {}
    if "c_lag" in st:
        k_safe = st.get("max_safe_refresh_interval") or 50
        plots.append(
            _phase_png(
                out / "demo-phase-diagram.png",
                0.9,
                float(st["c_lag"]),
                0.0,
                "refresh",
                max(2 * int(k_safe), 16),
                point=(4.0, float(st["c_lag"])),
            )
        )
    say("\nplots written: " + ", ".join(str(p) for p in plots))
    if args.json:
        print(
            json.dumps(
                _jsonable(
                    {
                        "truth": DEMO_TRUTH,
                        "log": str(log),
                        "oscillator": po,
                        "exponential": pe,
                        "forecast": fc.to_dict(),
                        "diagnosis": diagnosis.to_dict(),
                        "plots": [str(p) for p in plots],
                    }
                )
            )
        )
    return 0


# --------------------------------------------------------------------------------------------


def _add_output_options(parser: argparse.ArgumentParser, plot: bool = True) -> None:
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (parses as one document)")
    fmt.add_argument("--csv", action="store_true", help="print CSV (one row per log)")
    if plot:
        parser.add_argument("--plot", metavar="DIR", help="write PNGs into DIR")


def _add_log_command(sub, name: str, help_text: str, func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument(
        "paths",
        nargs="+",
        metavar="LOG",
        help="log files, directories or globs (TRL trainer_state.json, CSV, JSONL, "
        "TensorBoard, console logs)",
    )
    p.add_argument("--column", default="reward", help="the reward column (default: reward)")
    _add_output_options(p)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grpo-dynamics",
        description="Fit, forecast and diagnose GRPO reward curves with a damped-oscillator model.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _add_log_command(sub, "fit", "fit the closed-form trajectory to each log", _cmd_fit)
    p.add_argument(
        "--model", default="oscillator", choices=("oscillator", "exponential", "logistic")
    )

    _add_log_command(
        sub, "compare", "oscillator vs exponential vs logistic (AIC, BIC)", _cmd_compare
    )

    p = _add_log_command(
        sub, "forecast", "fit the first part of each log, predict the rest", _cmd_forecast
    )
    p.add_argument("--upto", type=float, help="last step used for the fit")
    p.add_argument("--fraction", type=float, help="share of the logged steps used for the fit")
    p.add_argument("--model", default="oscillator", choices=("oscillator", "exponential"))
    p.add_argument("--level", type=float, default=0.9, help="band probability (default 0.9)")
    p.add_argument("--method", default="bootstrap", choices=("bootstrap", "covariance"))
    p.add_argument("--seed", type=int, default=0)

    p = _add_log_command(sub, "diagnose", "score the failure modes of each log", _cmd_diagnose)
    _add_hp_options(p)

    p = sub.add_parser(
        "simulate",
        help="write a simulated run (trajectory + noise, or the bandit simulator) as a log",
    )
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--format", default="trl", choices=("trl", "csv", "jsonl", "tensorboard"))
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--r0", type=float, default=0.1)
    p.add_argument("--r-inf", dest="r_inf", type=float, default=0.8)
    p.add_argument("--tau", type=float, default=40.0)
    p.add_argument("--mu", type=float, default=1.0)
    p.add_argument("--noise", type=float, default=0.03)
    p.add_argument("--seed", type=int, default=0)
    b = p.add_argument_group("bandit simulator (--bandit; MODEL.md s.7)")
    b.add_argument(
        "--bandit",
        action="store_true",
        help="simulate the softmax-bandit GRPO policy instead of the trajectory model",
    )
    b.add_argument("--arm-rewards", dest="arm_rewards", type=float, nargs="+", default=[0.3, 0.7])
    b.add_argument(
        "--reward-kind", dest="reward_kind", default="bernoulli", choices=("bernoulli", "fixed")
    )
    b.add_argument("--group-size", dest="group_size", type=int, default=8)
    b.add_argument("--batch-prompts", dest="batch_prompts", type=int, default=16)
    b.add_argument(
        "--optimizer", default="heavy_ball", choices=("sgd", "heavy_ball", "adam", "adamw")
    )
    b.add_argument("--lr", type=float, default=0.05)
    b.add_argument("--momentum", type=float, default=0.5)
    b.add_argument("--refresh-interval", dest="refresh_interval", type=int, default=1)
    b.add_argument("--kl-coef", dest="kl_coef", type=float, default=0.5)
    _add_output_options(p, plot=False)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser(
        "stability",
        help="exact stability, margin and largest safe K / D / learning rate (MODEL.md s.3)",
    )
    _add_hp_options(p, curvature_required=True)
    _add_output_options(p)
    p.set_defaults(func=_cmd_stability)

    p = sub.add_parser(
        "phase-diagram",
        help="PNG of the exact regimes with exact and continuum boundaries",
    )
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--c-min", dest="c_min", type=float, default=1e-3, help="smallest c_lag")
    p.add_argument("--c-max", dest="c_max", type=float, default=1.0, help="largest c_lag")
    p.add_argument("--c-now", dest="c_now", type=float, default=0.0)
    p.add_argument("--lag-model", dest="lag_model", default="refresh", choices=("refresh", "delay"))
    p.add_argument("--max-lag", dest="max_lag", type=int, default=60, help="largest K or D")
    p.add_argument("--out", default="phase-diagram.png", help="PNG to write")
    _add_output_options(p, plot=False)
    p.set_defaults(func=_cmd_phase_diagram)

    demo = sub.add_parser("demo", help="end to end on an embedded simulated run (< 1 minute)")
    demo.add_argument("--out", default="demo-output", help="directory for outputs (log, PNGs)")
    demo.add_argument("--seed", type=int, default=0, help="noise seed")
    demo.add_argument("--json", action="store_true", help="print only a JSON summary")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``grpo-dynamics``; returns the process exit code."""
    import matplotlib

    matplotlib.use("Agg")  # never need a display (CI, ssh)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except _Failure as exc:
        print(f"grpo-dynamics {args.command}: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `grpo-dynamics ... | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        return 0


if __name__ == "__main__":
    sys.exit(main())
