"""grpo-dynamics: a closed-form, compiled model of GRPO training dynamics.

The model (docs/model.md) treats the mean training reward as a noisy damped oscillator:
momentum supplies inertia, off-policy lag erodes damping, the group size sets the noise
temperature. Each concept lives in one module; this file names the public surface and loads
each name on first use (PEP 562), so that ``import grpo_dynamics`` and ``grpo-dynamics --help``
do not wait for Numba, pandas, SciPy or Matplotlib. ``__init__.pyi`` holds the same surface as
explicit imports, so that a type checker sees ``gd.fit`` as the function it is.
"""

from __future__ import annotations

import importlib
import sys
import types

# the module (relative to this package) that defines each public name; __init__.pyi imports
# the same names from the same modules (tests/test_architecture.py keeps the two in step)
_MODULES: dict[str, tuple[str, ...]] = {
    "_compare": ("Comparison", "ModelScore", "compare"),
    "_detectors": ("SEVERITIES", "detect_all"),
    "_diagnose": ("VERDICTS", "Diagnosis", "Finding", "diagnose", "fails"),
    "_fit": (
        "FIT_MODELS",
        "FIT_STATUSES",
        "BatchFit",
        "FitResult",
        "fit",
        "fit_many",
        "fit_param_names",
        "noise_variance_local",
        "r2_noise_ceiling",
        "r2_window_means",
    ),
    "_forecast": ("Forecast", "Interval", "forecast", "gain_step"),
    "_results": ("to_jsonable",),
    "_simulate": (
        "BanditConfig",
        "SimulationResult",
        "StationaryStats",
        "StiffnessResult",
        "measure_stiffness",
        "simulate",
        "two_arm_expected_drift",
    ),
    "_stability": (
        "REGIMES",
        "ContinuumPrediction",
        "ExactStability",
        "Hyperparameters",
        "StabilityGrid",
        "StabilityReport",
        "StationaryVariance",
        "continuum",
        "critical_delay",
        "critical_learning_rate",
        "critical_refresh_interval",
        "exact_stability",
        "oscillation_onset",
        "stability",
        "stability_grid",
        "stationary_variance",
    ),
    "_sweep": ("SWEEP_STUDIES", "sweep"),
    "_warmup": ("WARM_UP_STAGES", "warm_up"),
    "_trajectory": (
        "JACOBIAN_PARAMS",
        "Regime",
        "frequency_to_shape",
        "physical_to_shape",
        "regime",
        "shape_to_frequency",
        "shape_to_physical",
        "trajectory",
        "trajectory_jacobian",
    ),
    "distributed": ("concat_batches", "fit_many_dask"),
    "io": (
        "CANONICAL_COLUMNS",
        "GrpoLogWarning",
        "LogFormatError",
        "Run",
        "as_run",
        "read_log",
        "read_logs",
        "write_log",
    ),
    "joint": (
        "GroupSizeTimescales",
        "JointFit",
        "NoiseModel",
        "ScalingFit",
        "fit_joint",
        "fit_noise_model",
        "fit_scaling",
    ),
    "monitor": ("ForecastSummary", "Monitor", "Update"),
    "objectives": (
        "OBJECTIVE_PRESETS",
        "ClipOvershoot",
        "EffectiveDynamics",
        "Objective",
        "Optimizer",
        "PrefixBias",
        "ScaleInvariance",
        "TwoPositionPolicy",
        "TwoPositionRun",
        "adam_overshoot_ratio",
        "clip_overshoot",
        "effective_dynamics",
        "objective_preset",
        "prefix_bias",
        "reward_scale_invariance",
        "surrogate_gradient",
        "surrogate_value",
        "train_two_position",
    ),
    "optimizer": ("OptimizerState", "numpy_step"),
    "plotting": (
        "plot_fit",
        "plot_forecast",
        "plot_phase_diagram",
        "plot_phase_diagrams",
        "save_figure",
    ),
    "report": ("render_html", "render_markdown", "summary_table", "write_html"),
    "trend": ("Progress", "TrendTest", "progress", "trend_test"),
    "watch": ("watch",),
}
_SOURCE: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}

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
    # ahead-of-use compilation of the Numba kernels (docs/simulate.md)
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


def __getattr__(name: str) -> object:
    """Import the module that defines ``name`` on first access and keep the value."""
    if name == "__version__":
        # one source of truth: the version pyproject.toml gave the installed distribution
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: object = version("grpo-dynamics")
        except PackageNotFoundError:  # a source checkout on sys.path, never installed
            value = "0+unknown"
    elif name in _SOURCE:
        value = getattr(importlib.import_module(f".{_SOURCE[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


class _Package(types.ModuleType):
    """This package, whose public names win over its submodules of the same name.

    The import system binds each submodule on its package once loaded; ``watch`` names both a
    module and the function it defines, and ``gd.watch`` must stay the function (as it was when
    this file imported it eagerly) even when ``grpo_dynamics.watch`` is imported first.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and name in _SOURCE:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
