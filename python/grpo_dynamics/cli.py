"""The ``grpo-dynamics`` command line (docs/cli.md).

Subcommands: fit, compare, forecast, diagnose (one or many log files, globs or
directories), simulate, stability / phase-diagram, demo. Tables for people by default,
``--json`` / ``--csv`` for machines, ``--plot DIR`` for PNGs. In a batch every file gets a
row (its status says what went wrong); the exit code is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

import grpo_dynamics as gd  # lazy (PEP 562): each command loads only the modules it uses

__all__ = ["main", "build_parser"]

# Embedded demo run (docs/model.md, "Closed-form trajectory"): a visibly underdamped curve, as
# momentum + moderate lag produce, logged every step with batch noise.
DEMO_TRUTH = {"r0": 0.15, "r_inf": 0.78, "tau": 30.0, "mu": 1.5}
DEMO_STEPS = 300
DEMO_NOISE = 0.03
DEMO_LR = 1e-3
_PARAMS = ("r0", "r_inf", "tau", "mu")


class _Failure(Exception):
    """One item of a batch failed; the message goes into its row."""


# --------------------------------------------------------------------------------------------
# library access (public API only)


def _read_many(
    paths: Sequence[str], select: dict[str, str] | None = None
) -> list[tuple[str, gd.Run | Exception]]:
    """(path, Run or Exception) for every file the paths/globs/directories name.

    A CSV holding several runs gives one item per run (``path[column=value]``) unless
    ``select`` names the one to read.
    """
    with warnings.catch_warnings():
        # the reader's data-cleaning warnings are kept in Run.warnings and reported per row
        warnings.simplefilter("ignore")
        return list(gd.read_logs(list(paths), select=select, split_runs=select is None))


def _series(run: gd.Run, column: str) -> tuple[np.ndarray, np.ndarray]:
    t, r = run.series(column)
    if t.size == 0:
        raise _Failure(f"no finite {column!r} values")
    return t, r


def _params(result: gd.FitResult) -> dict[str, float]:
    return {k: float(v) for k, v in result.params.items()}


def _stderr(result: gd.FitResult) -> dict[str, float]:
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
        print(json.dumps(gd.to_jsonable(docs if docs is not None else rows), indent=1))
    elif getattr(args, "csv", False):
        import pandas as pd  # ~0.3 s: only the tables need it

        print(pd.DataFrame(rows).to_csv(index=False), end="")
    else:
        if human is not None:
            print(human())
        else:
            # people read file names, not paths, on a 100-column terminal (JSON/CSV keep paths)
            import pandas as pd

            shown = [
                {**row, "file": _short(str(row["file"]))} if "file" in row else row for row in rows
            ]
            with pd.option_context("display.width", 100, "display.max_columns", 50):
                frame = pd.DataFrame(shown)
                print(
                    frame.to_string(index=False, float_format=lambda x: f"{x:.4g}", line_width=100)
                )


def _short(path: str, width: int = 40) -> str:
    """A file's name, middle-elided to ``width`` characters (tables on a 100-column terminal).

    A run of a multi-run file keeps its ``[column=value]`` suffix whole, even with a slash."""
    base, bracket, label = path.rpartition("[") if path.endswith("]") else ("", "", path)
    name = Path(base).name + bracket + label if bracket else Path(path).name
    if len(name) <= width:
        return name
    head = (width - 1) // 2
    return name[:head] + "\u2026" + name[-(width - 1 - head) :]


def _progress(items: list, label: str):
    # only on a terminal and only for real batches: pipes and single files stay clean (and do
    # not import tqdm, ~0.1 s; tqdm's disable=None is the same isatty test)
    if len(items) <= 1 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="log", file=sys.stderr)


def _batch(
    args: argparse.Namespace,
    label: str,
    work: Callable[[str, gd.Run], tuple[dict, dict]],
    human: Callable[[list[dict[str, Any]]], str] | None = None,
) -> int:
    """Run ``work(path, run) -> (row, doc)`` on every log; errors become rows, never losses.

    Any exception of one log (an overflow on absurd values included) becomes that log's
    error row; the others are still computed and printed. ``human`` renders the rows for
    people instead of the default table.
    """
    rows, docs, failed = [], [], 0
    select = dict(args.select) if args.select else None
    for path, run in _progress(_read_many(args.paths, select), label):
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
            if run.warnings:
                doc["log_warnings"] = list(run.warnings)
        except Exception as exc:  # noqa: BLE001 - a batch keeps every item's outcome
            row = {"file": path, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
            doc = row
            failed += 1
        rows.append(row)
        docs.append(doc)
    _emit(args, rows, docs, human=None if human is None else (lambda: human(rows)))
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
    plot_dir: str, path: str, run: gd.Run, column: str, results: dict[str, gd.FitResult]
) -> str:
    figure = gd.plot_fit(results, run, column=column, title=Path(path).name)
    return str(gd.save_figure(figure, Path(plot_dir) / f"{_stem(path)}-fit.png"))


def _phase_plot(
    path: Path,
    momentum: float,
    c_lag: np.ndarray,
    c_now: float,
    lag_model: str,
    max_lag: int,
    point: tuple[float, float] | None = None,
) -> Path:
    """Both continuum conventions beside the exact regimes over (lag, c_lag); the PNG's path."""
    lags = np.arange(1 if lag_model == "refresh" else 0, max_lag + 1, dtype=float)
    grid = gd.stability_grid(
        momentum,
        c_lag[:, None],
        lags[None, :],
        c_now=c_now,
        lag_model="delay" if lag_model == "delay" else "refresh",
    )
    return gd.save_figure(gd.plot_phase_diagrams(grid, point=point), path)


def _around(c_center: float) -> np.ndarray:
    return np.geomspace(c_center / 30.0, c_center * 30.0, 80)


def _t0(args: argparse.Namespace, t: np.ndarray) -> float:
    """--t0, or the first logged step (a log that starts at step 5000 started there)."""
    return float(t[0]) if args.t0 is None and t.size else float(args.t0 or 0.0)


def _cmd_fit(args: argparse.Namespace) -> int:
    def work(path: str, run: gd.Run) -> tuple[dict, dict]:
        t, r = _series(run, args.column)
        t0 = _t0(args, t)
        result = gd.fit(t, r, args.model, t0=t0)
        params, err = _params(result), _stderr(result)
        bound = result.plateau_bound
        row = {
            "n": int(t.size),
            "model": args.model,
            "fit_status": result.status,
            "identified": result.identified,
            "regime": str(result.regime or ""),
            **params,
            **{f"{k}_stderr": v for k, v in err.items()},
            "r2": float(result.r2),
            # what the data do say when the plateau is not identified, e.g. "at_least 0.83"
            "plateau_bound": "" if bound is None else f"{bound[0]} {bound[1]:.4g}",
        }
        doc = dict(row) | {
            "params": params,
            "stderr": err,
            "unidentified": dict(result.unidentified),
            "reason": result.reason,
        }
        if args.plot:
            results = {args.model: result}
            if args.model != "exponential":
                results["exponential"] = gd.fit(t, r, "exponential", t0=t0)
            doc["plot"] = _fit_plot(args.plot, path, run, args.column, results)
        return row, doc

    return _batch(args, "fit", work)


def _cmd_compare(args: argparse.Namespace) -> int:
    def work(path: str, run: gd.Run) -> tuple[dict, dict]:
        t, r = _series(run, args.column)
        comparison = gd.compare(t, r, t0=_t0(args, t))
        row: dict[str, Any] = {"n": int(t.size), "verdict": comparison.verdict}
        for score in comparison.scores:
            if score.model != "constant":
                row[f"{score.model}_delta_aic"] = score.delta_aic
        doc = {"n": int(t.size), **comparison.to_dict()}
        if args.plot:
            order = ("oscillator", "exponential", "logistic")
            results = {m: comparison.fits[m] for m in order if m in comparison.fits}
            doc["plot"] = _fit_plot(args.plot, path, run, args.column, results)
        return row, doc

    return _batch(args, "compare", work)


def _cmd_forecast(args: argparse.Namespace) -> int:
    def work(path: str, run: gd.Run) -> tuple[dict, dict]:
        fc = gd.forecast(
            run,
            column=args.column,
            upto=args.upto,
            fraction=args.fraction,
            horizon=args.horizon,
            level=args.level,
            reward_range=_reward_range(args),
            seed=args.seed,
            t0=args.t0,
        )
        row: dict[str, Any] = {
            "upto": fc.upto,
            "n_fit": fc.n_fit,
            "end": fc.end.estimate,
            "end_lo": fc.end.lower,
            "end_hi": fc.end.upper,
            "progress": fc.progress,
        }
        if fc.plateau_identified and fc.plateau is not None:
            row |= {
                "plateau": fc.plateau.estimate,
                "plateau_lo": fc.plateau.lower,
                "plateau_hi": fc.plateau.upper,
            }
        else:
            bound = fc.plateau_bound
            row["plateau"] = "not identified" + (
                "" if bound is None else f" ({bound[0]} {bound[1]:.4g})"
            )
        row["step_90"] = fc.step_90
        row["warnings"] = "; ".join(fc.warnings)
        doc = fc.to_dict()
        if args.plot:
            title = f"{Path(path).name}: forecast from step {fc.upto:g}"
            figure = gd.plot_forecast(fc, run, column=args.column, title=title)
            target = Path(args.plot) / f"{_stem(path)}-forecast.png"
            doc["plot"] = str(gd.save_figure(figure, target))
        return row, doc

    return _batch(args, "forecast", work)


def _hyperparameters(args: argparse.Namespace) -> gd.Hyperparameters | None:
    """A Hyperparameters from the command line, or None when none of its options was given."""
    given = {k: getattr(args, k) for k in _HP_FIELDS if getattr(args, k, None) is not None}
    if not given:
        return None
    missing = [_flag(k) for k in _HP_REQUIRED if k not in given]
    if missing:
        raise _Failure(f"hyperparameters need {' and '.join(missing)} as well")
    try:
        return gd.Hyperparameters(**given)
    except ValueError as exc:
        raise _Failure(f"hyperparameters: {exc}") from None


def _curvatures(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k, None) for k in ("curvature", "curvature_lag", "curvature_now")}


def _cmd_diagnose(args: argparse.Namespace) -> int:
    hyper = _hyperparameters(args)
    diagnoses: list[gd.Diagnosis] = []

    def work(path: str, run: gd.Run) -> tuple[dict, dict]:
        d = gd.diagnose(
            run, hyper, column=args.column, name=Path(path).name, t0=args.t0, **_curvatures(args)
        )
        diagnoses.append(d)
        row = {
            "verdict": d.verdict,
            "worst": d.worst_severity or "none",
            "findings": len(d.findings),
            "n": d.n_steps,
            "headline": d.headline,
        }
        doc = d.to_dict()
        plots = []
        if args.plot and d.fit is not None:
            t, r = _series(run, args.column)
            results = {"oscillator": d.fit}
            try:
                results["exponential"] = gd.fit(t, r, "exponential", t0=_t0(args, t))
            except (ValueError, RuntimeError):
                pass  # the picture without the exponential beside it is still worth having
            plots.append(_fit_plot(args.plot, path, run, args.column, results))
        st = d.stability or {}
        if args.plot and hyper is not None and "c_lag" in st:
            # where this run's optimizer sits among the exact regimes
            lag = hyper.delay or hyper.refresh_interval
            safe = st.get("max_safe_refresh_interval") or st.get("max_safe_delay") or 2 * lag
            phase = _phase_plot(
                Path(args.plot) / f"{_stem(path)}-phase-diagram.png",
                hyper.momentum,
                _around(float(st["c_lag"])),
                float(st["c_now"]),
                "delay" if hyper.delay > 0 else "refresh",
                max(2 * int(safe), 2 * lag, 16),
                point=(float(lag), float(st["c_lag"])),
            )
            plots.append(str(phase))
        if plots:
            doc["plots"] = plots
        return row, doc

    def human(rows: list[dict[str, Any]]) -> str:
        # people get one line per run first (file names, <= 100 columns), then each story
        errors = [f"{Path(r['file']).name}: {r['error']}" for r in rows if r["status"] != "ok"]
        parts = [gd.summary_table(diagnoses, width=100)] if diagnoses else []
        parts += ["\n".join(errors)] if errors else []
        parts += [str(d) for d in diagnoses]
        return "\n\n".join(parts)

    if args.markdown:
        args.json = args.csv = False
    if args.markdown:  # the Markdown report replaces the table (errors still go to stderr)
        code = _batch(args, "diagnose", work, human=lambda rows: "")
        print(gd.render_markdown(diagnoses), end="")
    else:
        code = _batch(args, "diagnose", work, human=human)
    if args.html:
        written = gd.write_html(diagnoses, args.html)
        print(f"wrote {written}", file=sys.stderr)
    if code == 0 and args.fail_on and gd.fails(diagnoses, args.fail_on):
        return 3  # a finding at or above --fail-on (1 = a log failed, 2 = usage error)
    return code


def _add_reward_range_options(p: argparse.ArgumentParser) -> None:
    ranges = p.add_mutually_exclusive_group()
    ranges.add_argument(
        "--reward-range",
        dest="reward_range",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="the reward's possible range (bounds the plateau), e.g. 0 1 "
        "(default: the range the log's own numbers show, if any: a 0/1 reward)",
    )
    ranges.add_argument(
        "--no-reward-range",
        dest="no_reward_range",
        action="store_true",
        help="no reward range, whatever the log shows",
    )


def _reward_range(args: argparse.Namespace) -> tuple[float, ...] | Literal["auto"] | None:
    """--reward-range LO HI, --no-reward-range (None) or neither ("auto": read from the log)."""
    if args.reward_range:
        return tuple(args.reward_range)
    return None if args.no_reward_range else "auto"


def _cmd_watch(args: argparse.Namespace) -> int:
    from .watch import watch

    try:
        watch(
            args.path,
            once=args.once,
            interval=args.interval,
            idle_timeout=args.idle_timeout,
            reward_key=args.reward_key,
            reward_range=_reward_range(args),
        )
    except (ValueError, OSError) as exc:
        print(f"grpo-dynamics watch: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


# --------------------------------------------------------------------------------------------
# simulate / stability / demo


def _trajectory_run(
    n: int, truth: dict[str, float], noise: float, seed: int, metadata: dict[str, Any]
) -> gd.Run:
    """The trajectory model plus Gaussian batch noise as a logged run (steps 1..n)."""
    steps = np.arange(1, n + 1, dtype=float)
    rng = np.random.default_rng(seed)
    return gd.Run.from_arrays(
        steps.astype(np.int64),
        gd.trajectory(steps, **truth) + noise * rng.standard_normal(n),
        metadata=metadata,
        reward_std=np.full(n, noise * 8.0),  # within-group spread of a batch of 64
        entropy=0.6 + 0.02 * rng.standard_normal(n),
        frac_reward_zero_std=np.clip(0.1 + 0.02 * rng.standard_normal(n), 0, 1),
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    if args.bandit:
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
        run = gd.simulate(config).to_run(0, seed=args.seed)
        truth: dict[str, Any] = {}
    else:
        truth = {"r0": args.r0, "r_inf": args.r_inf, "tau": args.tau, "mu": args.mu}
        meta = {"simulated": "trajectory", **truth, "noise_sd": args.noise, "seed": args.seed}
        run = _trajectory_run(args.steps, truth, args.noise, args.seed, meta)
    out = gd.write_log(run, Path(args.out), format=args.format)
    doc = {
        "file": str(out),
        "steps": args.steps,
        "truth": truth,
        "noise": args.noise,
        "metadata": run.metadata,
    }
    _emit(args, [doc | truth], doc, human=lambda: f"wrote {args.steps} simulated steps to {out}")
    return 0


# Hyperparameter options: one per field of gd.Hyperparameters (type and choices read from the
# dataclass), so a new field is a new option without touching this file.
_HP_HINTS = typing.get_type_hints(gd.Hyperparameters)
_HP_FIELDS = tuple(f.name for f in dataclasses.fields(gd.Hyperparameters))
_HP_REQUIRED = tuple(
    f.name
    for f in dataclasses.fields(gd.Hyperparameters)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
)
_HP_HELP = {
    "lr": "learning rate eta",
    "momentum": "heavy-ball beta or Adam beta1, in [0, 1)",
    "refresh_interval": "K: optimizer steps per batch of rollouts (1 = on-policy)",
    "delay": "D: staleness of asynchronous rollouts (steps)",
    "group_size": "G: completions per prompt",
    "batch_prompts": "B: prompts per step",
    "dampening": "heavy ball: PyTorch SGD dampening, in [0, 1)",
    "weight_decay": "L2 (sgd, heavy ball, adam) or decoupled (adamw) weight decay",
    "adam_preconditioner": "Adam: s = sqrt(v_hat) + eps along the mean-field direction",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_hp_options(parser: argparse.ArgumentParser, *, curvature_required: bool = False) -> None:
    g = parser.add_argument_group("hyperparameters (docs/stability.md; gd.Hyperparameters)")
    for name in _HP_FIELDS:
        hint = _HP_HINTS[name]
        choices = typing.get_args(hint) if typing.get_origin(hint) is typing.Literal else None
        kind = str if choices else hint if hint in (int, float) else str
        g.add_argument(
            _flag(name),
            dest=name,
            type=kind,
            choices=choices,
            help=_HP_HELP.get(name, f"Hyperparameters.{name}"),
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
    hyper = _hyperparameters(args)
    if hyper is None:
        raise _Failure("give the hyperparameters: at least --lr and --momentum")
    curv = _curvatures(args)
    if all(v is None for v in curv.values()):
        raise _Failure("give --curvature (or --curvature-lag / --curvature-now)")
    exact = gd.exact_stability(hyper, **curv)
    doc = {"hyperparameters": dataclasses.asdict(hyper), **exact.to_dict()}
    if args.plot:
        lag = hyper.delay or hyper.refresh_interval
        doc["plot"] = str(
            _phase_plot(
                Path(args.plot) / "phase-diagram.png",
                hyper.momentum,
                _around(exact.report.c_lag),
                exact.report.c_now,
                "delay" if hyper.delay > 0 else "refresh",
                max(2 * lag, 16),
                point=(float(lag), exact.report.c_lag),
            )
        )
    rows = [{k: v for k, v in doc.items() if not isinstance(v, dict)}]

    def human() -> str:
        return "\n".join(f"{k:>28}: {v}" for k, v in rows[0].items())

    _emit(args, rows, doc, human=human)
    return 0


def _cmd_phase_diagram(args: argparse.Namespace) -> int:
    out = _phase_plot(
        Path(args.out),
        args.momentum,
        np.geomspace(args.c_min, args.c_max, 80),
        args.c_now,
        args.lag_model,
        args.max_lag,
    )
    doc = {"file": str(out), "momentum": args.momentum, "lag_model": args.lag_model}
    _emit(args, [doc], doc, human=lambda: f"phase diagram written to {out}")
    return 0


def _cmd_warm_up(args: argparse.Namespace) -> int:
    def report(stage: str, seconds: float) -> None:
        print(f"{stage}: {seconds:.2f} s", flush=True)  # one line per stage as it ends

    seconds = gd.warm_up(args.stage or None, progress=report)
    print(f"Numba kernels ready ({sum(seconds.values()):.1f} s)", flush=True)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say: Callable[..., None] = (lambda *a: None) if args.json else print
    say(
        f"grpo-dynamics demo: simulated {DEMO_STEPS} steps (truth {DEMO_TRUTH}, noise sd "
        f"{DEMO_NOISE}, seed {args.seed})"
    )
    simulated = _trajectory_run(DEMO_STEPS, DEMO_TRUTH, DEMO_NOISE, args.seed, {"simulated": True})
    # the embedded run goes through the same path as a user's log: written, then read back
    log = gd.write_log(simulated, out / "demo-trainer_state.json", format="trl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = gd.read_log(log)
    t, r = _series(run, "reward")
    if not np.array_equal(r, simulated.series("reward")[1]):
        raise _Failure("the TRL log did not read back identically")
    say(f"wrote and read back {log}")

    osc, exp = gd.fit(t, r, "oscillator"), gd.fit(t, r, "exponential")
    po, pe = _params(osc), _params(exp)
    say(f"\n{'param':>8} {'truth':>10} {'oscillator':>12} {'exponential':>12}")
    for name in _PARAMS:
        say(f"{name:>8} {DEMO_TRUTH[name]:>10.4f} {po[name]:>12.4f} {pe.get(name, 0.0):>12.4f}")
    say(f"{'r2':>8} {'':>10} {osc.r2:>12.4f} {exp.r2:>12.4f}")

    fc = gd.forecast(t, r, upto=float(t[DEMO_STEPS // 3 - 1]), seed=args.seed)
    seen = float(np.mean(r[(t > fc.window[0]) & (t <= fc.window[1])]))  # what the run did
    say(
        f"\nforecast from the first {fc.n_fit} steps: mean reward over the last steps "
        f"{fc.end.estimate:.3f} [{fc.end.lower:.3f}, {fc.end.upper:.3f}] ({fc.level:.0%} band; "
        f"the run's own last steps: {seen:.3f})"
    )
    if fc.plateau_identified and fc.plateau is not None:
        say(
            f"  plateau {fc.plateau.estimate:.3f} [{fc.plateau.lower:.3f}, "
            f"{fc.plateau.upper:.3f}] (truth {DEMO_TRUTH['r_inf']})"
        )
    elif fc.plateau_bound is not None:
        say(f"  plateau not identified yet: {fc.plateau_bound[0]} {fc.plateau_bound[1]:.3f}")
    else:
        why = next((w for w in fc.warnings if "overshoots" in w), None)
        say("  plateau not identified yet" + (f" ({why})" if why else ""))
    if fc.step_90 is not None:
        say(f"  90% of the gain by step {fc.step_90:.0f}")

    # the demo's optimizer: heavy ball 0.9, rollouts reused for 4 steps; the curvature is
    # inverted from the fitted tau, then the exact cycle matrix says how far from unstable
    hyper = gd.Hyperparameters(lr=DEMO_LR, momentum=0.9, refresh_interval=4)
    diagnosis = gd.diagnose(run, hyper)
    say(f"\ndiagnosis (lr {DEMO_LR:g}, momentum 0.9, refresh interval 4) {diagnosis}")

    def truth(s: np.ndarray) -> np.ndarray:
        return gd.trajectory(s, **DEMO_TRUTH)

    fit_figure = gd.plot_fit(
        {"oscillator": osc, "exponential": exp},
        run,
        title="grpo-dynamics demo: simulated run",
        truth=truth,
    )
    plots = [
        gd.save_figure(fit_figure, out / "demo-fit.png"),
        gd.save_figure(gd.plot_forecast(fc, run), out / "demo-forecast.png"),
    ]
    st = diagnosis.stability or {}
    if "c_lag" in st:
        k_safe = st.get("max_safe_refresh_interval") or 50
        plots.append(
            _phase_plot(
                out / "demo-phase-diagram.png",
                0.9,
                _around(float(st["c_lag"])),
                0.0,
                "refresh",
                max(2 * int(k_safe), 16),
                point=(4.0, float(st["c_lag"])),
            )
        )
    say("\nplots written: " + ", ".join(str(p) for p in plots))
    if args.json:
        summary = {
            "truth": DEMO_TRUTH,
            "log": str(log),
            "oscillator": po,
            "exponential": pe,
            "forecast": fc.to_dict(),
            "diagnosis": diagnosis.to_dict(),
            "plots": [str(p) for p in plots],
        }
        print(json.dumps(gd.to_jsonable(summary)))
    return 0


# --------------------------------------------------------------------------------------------


def _add_output_options(parser: argparse.ArgumentParser, plot: bool = True) -> None:
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (parses as one document)")
    fmt.add_argument("--csv", action="store_true", help="print CSV (one row per log)")
    if plot:
        parser.add_argument("--plot", metavar="DIR", help="write PNGs into DIR")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _select_pair(text: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise argparse.ArgumentTypeError(f"expected COLUMN=VALUE, got {text!r}")
    return column.strip(), value


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _bandit_choices(name: str) -> tuple[str, ...]:
    """The allowed values of a BanditConfig option, read from its Literal type."""
    return typing.get_args(typing.get_type_hints(gd.BanditConfig)[name])


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
    p.add_argument(
        "--select",
        type=_select_pair,
        action="append",
        metavar="COLUMN=VALUE",
        help="read only the run whose COLUMN equals VALUE from CSV/JSONL files that hold "
        "several runs (repeatable; default: every run of such a CSV, one row each)",
    )
    p.add_argument(
        "--t0",
        type=_finite_float,
        default=None,
        help="the step training started, the from-rest time of the curve models "
        "(default: the first logged step)",
    )
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
    p.add_argument("--horizon", type=float, help="step to forecast to (default: the last step)")
    p.add_argument("--level", type=float, default=0.9, help="band probability (default 0.9)")
    _add_reward_range_options(p)
    p.add_argument("--seed", type=int, default=0)

    p = _add_log_command(
        sub, "diagnose", "what went wrong in each log, how bad, and what to change", _cmd_diagnose
    )
    p.add_argument(
        "--fail-on",
        dest="fail_on",
        choices=("warning", "critical"),
        help="exit with code 3 when a log has a finding at or above this severity (for CI)",
    )
    p.add_argument("--html", metavar="FILE", help="write one self-contained HTML report")
    p.add_argument(
        "--markdown", action="store_true", help="print the report as Markdown (for an issue)"
    )
    _add_hp_options(p)

    p = sub.add_parser(
        "watch",
        help="follow a growing training log and keep a live status",
        description="Follow a log a trainer is writing (console, JSONL, CSV, trainer_state.json)"
        " and refresh one status block: reward, trend, forecast with band, findings.",
    )
    p.add_argument("path", metavar="LOG", help="the log file a trainer is writing")
    p.add_argument("--once", action="store_true", help="print the current state and exit")
    p.add_argument(
        "--interval", type=_positive_float, default=2.0, help="seconds between polls (default 2)"
    )
    p.add_argument(
        "--idle-timeout",
        dest="idle_timeout",
        type=_positive_float,
        default=300.0,
        help="exit once the file has not changed for this many seconds (default 300)",
    )
    p.add_argument("--reward-key", dest="reward_key", help="the logged metric that is the reward")
    _add_reward_range_options(p)
    p.set_defaults(func=_cmd_watch)

    p = sub.add_parser(
        "simulate",
        help="write a simulated run (trajectory + noise, or the bandit simulator) as a log",
    )
    p.add_argument("--out", required=True, help="file to write")
    p.add_argument("--format", default="trl", choices=("trl", "csv", "jsonl", "tensorboard"))
    p.add_argument("--steps", type=_positive_int, default=400)
    p.add_argument("--r0", type=float, default=0.1)
    p.add_argument("--r-inf", dest="r_inf", type=float, default=0.8)
    p.add_argument("--tau", type=float, default=40.0)
    p.add_argument("--mu", type=float, default=1.0)
    p.add_argument("--noise", type=float, default=0.03)
    p.add_argument("--seed", type=int, default=0)
    b = p.add_argument_group("bandit simulator (--bandit; docs/simulate.md)")
    b.add_argument(
        "--bandit",
        action="store_true",
        help="simulate the softmax-bandit GRPO policy instead of the trajectory model",
    )
    b.add_argument("--arm-rewards", dest="arm_rewards", type=float, nargs="+", default=[0.3, 0.7])
    b.add_argument(
        "--reward-kind",
        dest="reward_kind",
        default="bernoulli",
        choices=_bandit_choices("reward_kind"),
    )
    b.add_argument("--group-size", dest="group_size", type=int, default=8)
    b.add_argument("--batch-prompts", dest="batch_prompts", type=int, default=16)
    b.add_argument("--optimizer", default="heavy_ball", choices=_bandit_choices("optimizer"))
    b.add_argument("--lr", type=float, default=0.05)
    b.add_argument("--momentum", type=float, default=0.5)
    b.add_argument("--refresh-interval", dest="refresh_interval", type=int, default=1)
    b.add_argument("--kl-coef", dest="kl_coef", type=float, default=0.5)
    _add_output_options(p, plot=False)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser(
        "stability",
        help="exact stability, margin and largest safe K / D / learning rate (docs/stability.md)",
    )
    _add_hp_options(p, curvature_required=True)
    _add_output_options(p)
    p.set_defaults(func=_cmd_stability)

    p = sub.add_parser(
        "phase-diagram",
        help="PNG of the exact regimes with exact and continuum boundaries",
    )
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument(
        "--c-min", dest="c_min", type=_positive_float, default=1e-3, help="smallest c_lag"
    )
    p.add_argument("--c-max", dest="c_max", type=_positive_float, default=1.0, help="largest c_lag")
    p.add_argument("--c-now", dest="c_now", type=float, default=0.0)
    p.add_argument("--lag-model", dest="lag_model", default="refresh", choices=("refresh", "delay"))
    p.add_argument(
        "--max-lag", dest="max_lag", type=_positive_int, default=60, help="largest K or D"
    )
    p.add_argument("--out", default="phase-diagram.png", help="PNG to write")
    _add_output_options(p, plot=False)
    p.set_defaults(func=_cmd_phase_diagram)

    warm = sub.add_parser(
        "warm-up",
        help="compile the simulators' Numba kernels now (about 20 s once after install)",
        description="Compile the Numba kernels of the simulators and trainers into Numba's "
        "on-disk cache now, so the first simulation does not wait for them (about 20 s on a "
        "fresh install, well under a second once cached). Prints each stage as it ends.",
    )
    warm.add_argument(
        "--stage",
        action="append",
        choices=gd.WARM_UP_STAGES,
        help="only this kernel group (repeatable; default: all)",
    )
    warm.set_defaults(func=_cmd_warm_up)

    demo = sub.add_parser("demo", help="end to end on an embedded simulated run (< 1 minute)")
    demo.add_argument("--out", default="demo-output", help="directory for outputs (log, PNGs)")
    demo.add_argument("--seed", type=int, default=0, help="noise seed")
    demo.add_argument("--json", action="store_true", help="print only a JSON summary")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``grpo-dynamics``; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints them and exits 2
    try:
        return int(args.func(args))
    except _Failure as exc:
        print(f"grpo-dynamics {args.command}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        # an option value the library rejects (batches turn these into rows instead)
        parser.exit(2, f"grpo-dynamics {args.command}: error: {exc}\n")
    except BrokenPipeError:
        # `grpo-dynamics ... | head`: the reader left; not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps interpreter shutdown quiet
        return 0


if __name__ == "__main__":
    sys.exit(main())
