"""The public surface for type checkers: one explicit import per name (``__init__.py`` loads
them lazily, from the table it keeps in step with this file; tests/test_architecture.py checks
that both name every public name)."""

from __future__ import annotations

from ._compare import Comparison, ModelScore, compare
from ._detectors import SEVERITIES, detect_all
from ._diagnose import VERDICTS, Diagnosis, Finding, diagnose, fails
from ._fit import (
    FIT_MODELS,
    FIT_STATUSES,
    BatchFit,
    FitResult,
    fit,
    fit_many,
    fit_param_names,
    noise_variance_local,
    r2_noise_ceiling,
    r2_window_means,
)
from ._forecast import Forecast, Interval, forecast, gain_step
from ._results import to_jsonable
from ._simulate import (
    BanditConfig,
    SimulationResult,
    StationaryStats,
    StiffnessResult,
    measure_stiffness,
    simulate,
    two_arm_expected_drift,
)
from ._stability import (
    REGIMES,
    ContinuumPrediction,
    ExactStability,
    Hyperparameters,
    StabilityGrid,
    StabilityReport,
    StationaryVariance,
    continuum,
    critical_delay,
    critical_learning_rate,
    critical_refresh_interval,
    exact_stability,
    oscillation_onset,
    stability,
    stability_grid,
    stationary_variance,
)
from ._sweep import SWEEP_STUDIES, sweep
from ._trajectory import (
    JACOBIAN_PARAMS,
    Regime,
    frequency_to_shape,
    physical_to_shape,
    regime,
    shape_to_frequency,
    shape_to_physical,
    trajectory,
    trajectory_jacobian,
)
from ._warmup import WARM_UP_STAGES, warm_up
from .distributed import concat_batches, fit_many_dask
from .io import (
    CANONICAL_COLUMNS,
    GrpoLogWarning,
    LogFormatError,
    Run,
    as_run,
    read_log,
    read_logs,
    write_log,
)
from .joint import (
    GroupSizeTimescales,
    JointFit,
    NoiseModel,
    ScalingFit,
    fit_joint,
    fit_noise_model,
    fit_scaling,
)
from .monitor import ForecastSummary, Monitor, Update
from .objectives import (
    OBJECTIVE_PRESETS,
    ClipOvershoot,
    EffectiveDynamics,
    Objective,
    Optimizer,
    PrefixBias,
    ScaleInvariance,
    TwoPositionPolicy,
    TwoPositionRun,
    adam_overshoot_ratio,
    clip_overshoot,
    effective_dynamics,
    objective_preset,
    prefix_bias,
    reward_scale_invariance,
    surrogate_gradient,
    surrogate_value,
    train_two_position,
)
from .optimizer import OptimizerState, numpy_step
from .plotting import (
    plot_fit,
    plot_forecast,
    plot_phase_diagram,
    plot_phase_diagrams,
    save_figure,
)
from .report import render_html, render_markdown, summary_table, write_html
from .trend import Progress, TrendTest, progress, trend_test
from .watch import watch

__version__: str

__all__ = [
    "__version__",
    # trajectory (docs/model.md)
    "JACOBIAN_PARAMS",
    "Regime",
    "trajectory",
    "trajectory_jacobian",
    "regime",
    "shape_to_physical",
    "physical_to_shape",
    "shape_to_frequency",
    "frequency_to_shape",
    # fit (docs/fitting.md)
    "FIT_MODELS",
    "FIT_STATUSES",
    "FitResult",
    "BatchFit",
    "fit",
    "fit_many",
    "fit_param_names",
    "r2_noise_ceiling",
    "r2_window_means",
    "noise_variance_local",
    "fit_many_dask",
    "concat_batches",
    "JointFit",
    "ScalingFit",
    "fit_joint",
    "fit_scaling",
    "NoiseModel",
    "GroupSizeTimescales",
    "fit_noise_model",
    # trend and model choice (docs/diagnose.md, docs/fitting.md)
    "TrendTest",
    "Progress",
    "trend_test",
    "progress",
    "Comparison",
    "ModelScore",
    "compare",
    # stability (docs/stability.md)
    "Hyperparameters",
    "ContinuumPrediction",
    "StabilityReport",
    "StationaryVariance",
    "StabilityGrid",
    "ExactStability",
    "REGIMES",
    "continuum",
    "stability",
    "exact_stability",
    "critical_refresh_interval",
    "critical_delay",
    "critical_learning_rate",
    "oscillation_onset",
    "stationary_variance",
    "stability_grid",
    # simulate (docs/simulate.md)
    "BanditConfig",
    "SimulationResult",
    "StationaryStats",
    "StiffnessResult",
    "measure_stiffness",
    "simulate",
    "two_arm_expected_drift",
    # parameter studies (docs/sweep.md)
    "sweep",
    "SWEEP_STUDIES",
    "warm_up",
    "WARM_UP_STAGES",
    # objectives (docs/objectives.md)
    "Objective",
    "OBJECTIVE_PRESETS",
    "objective_preset",
    "Optimizer",
    "OptimizerState",
    "numpy_step",
    "TwoPositionPolicy",
    "surrogate_value",
    "surrogate_gradient",
    "TwoPositionRun",
    "train_two_position",
    "PrefixBias",
    "prefix_bias",
    "ScaleInvariance",
    "reward_scale_invariance",
    "ClipOvershoot",
    "adam_overshoot_ratio",
    "clip_overshoot",
    "EffectiveDynamics",
    "effective_dynamics",
    # io (docs/io.md)
    "CANONICAL_COLUMNS",
    "GrpoLogWarning",
    "LogFormatError",
    "Run",
    "as_run",
    "read_log",
    "read_logs",
    "write_log",
    # forecast and diagnose (docs/diagnose.md)
    "Forecast",
    "Interval",
    "forecast",
    "gain_step",
    "Diagnosis",
    "Finding",
    "diagnose",
    "VERDICTS",
    "SEVERITIES",
    "fails",
    "detect_all",
    "render_html",
    "write_html",
    "render_markdown",
    "summary_table",
    # watching a run while it trains (docs/monitor.md)
    "Monitor",
    "Update",
    "ForecastSummary",
    "watch",
    # plotting (docs/cli.md)
    "plot_fit",
    "plot_forecast",
    "plot_phase_diagram",
    "plot_phase_diagrams",
    "save_figure",
    # result conventions: what every to_dict() and --json pass through
    "to_jsonable",
]

def __dir__() -> list[str]: ...
