"""Stability and eigenvalue analysis: from hyperparameters to regimes, thresholds, phase diagrams.

The exact discrete model (docs/stability.md section "Discrete model", docs/model.md §2)

    x_{t+1} = x_t + beta (x_t - x_{t-1}) - c_lag x_{l(t)} - c_now x_t + e_t,   x = r - r*

is analysed through its refresh-cycle (monodromy) matrix or its delay companion matrix in the
compiled core; the continuum oscillator (docs/stability.md "Continuum mapping", docs/model.md §3)
is reported beside it, with the exact answer always labelled as such.

Units: time in optimizer steps; learning rate in the optimizer's own units; a curvature kappa is
per unit of effective learning rate, so the dimensionless step stiffness is c = eta_eff * kappa.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from . import _validation as _v
from ._delay import first_unstable_delay
from .optimizer import (
    ADAM_FAMILY,
    OPTIMIZER_KINDS,
    EffectiveDynamics,
    Optimizer,
    OptimizerKind,
    effective_dynamics,
)

if TYPE_CHECKING:
    pass

__all__ = [
    "Hyperparameters",
    "ContinuumPrediction",
    "StabilityReport",
    "StationaryVariance",
    "StabilityGrid",
    "REGIMES",
    "continuum",
    "stability",
    "critical_refresh_interval",
    "critical_delay",
    "critical_learning_rate",
    "oscillation_onset",
    "stationary_variance",
    "stability_grid",
]

OptimizerName = OptimizerKind  # the one vocabulary: optimizer.OPTIMIZER_KINDS
LagConvention = Literal["mean", "paper"]
LagModel = Literal["refresh", "delay"]

# Regime names indexed by the compiled core's regime codes (-1 marks an invalid grid point).
REGIMES: dict[int, str] = dict(_core.REGIME_NAMES)


@dataclass(frozen=True)
class Hyperparameters:
    """GRPO optimizer and sampling settings that enter the linear model (docs/stability.md).

    lr: learning rate eta (> 0). momentum: heavy-ball coefficient, or Adam beta1, in [0, 1)
    (must be 0 for "sgd"; "heavy_ball" with momentum 0 is plain SGD).
    refresh_interval: optimizer steps per batch of rollouts, K >= 1 (on-policy: 1).
    delay: staleness D >= 0 of asynchronous rollouts (exclusive with refresh_interval > 1).
    group_size: completions per prompt G >= 2 (as in simulate: a one-member group has no
    advantage). batch_prompts: prompts per step B >= 1.
    optimizer (optimizer.Optimizer, PyTorch semantics; docs/stability.md "Optimizers"):
      "sgd"         theta -= lr g                                   (beta 0, eta_eff = lr)
      "heavy_ball"  torch SGD with momentum and dampening d         (eta_eff = lr (1 - d))
      "adam"        frozen preconditioner s, coupled L2 decay        (eta_eff = lr (1 - beta1) / s)
      "adamw"       as adam with decoupled decay theta *= 1 - lr weight_decay
                    (beta_eff = beta1 (1 - lr weight_decay), c_now += lr weight_decay (1 - beta1))
    adam_preconditioner: s = sqrt(v_hat) + eps along the mean-field direction (> 0; Adam family).
    dampening: heavy-ball dampening d in [0, 1) (heavy_ball only).
    weight_decay: lambda >= 0 (1/lr units for adamw, where lr * lambda < 1; coupled L2 for the
      others), a current-parameter stiffness c_now = eta_eff lambda (coupled) added to the
      curvature's.
    The optimizer fields are validated by the one optimizer.Optimizer (to_optimizer) and mapped
    by optimizer.effective_dynamics (one source of truth); see also from_optimizer.
    """

    lr: float
    momentum: float
    refresh_interval: int = 1
    delay: int = 0
    group_size: int = 8
    batch_prompts: int = 1
    optimizer: OptimizerName = "heavy_ball"
    adam_preconditioner: float = 1.0
    dampening: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        refresh_interval = _v.integer("refresh_interval", self.refresh_interval, minimum=1)
        delay = _v.integer("delay", self.delay, minimum=0)
        if refresh_interval > 1 and delay > 0:
            raise ValueError(
                f"delay: must be 0 when refresh_interval > 1 (the model has one lag mechanism "
                f"at a time), got {delay}"
            )
        # Store normalised Python scalars (numpy integers, 0-d arrays) so results are hashable.
        values: dict[str, object] = {
            "optimizer": _v.choice("optimizer", self.optimizer, OPTIMIZER_KINDS),
            # momentum doubles as Adam's beta1: checked here so the message names this field
            "momentum": _v.in_range("momentum", self.momentum, 0.0, 1.0, hi_open=True),
            "refresh_interval": refresh_interval,
            "delay": delay,
            "group_size": _v.integer("group_size", self.group_size, minimum=2),
            "batch_prompts": _v.integer("batch_prompts", self.batch_prompts, minimum=1),
            "adam_preconditioner": _v.positive("adam_preconditioner", self.adam_preconditioner),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
        spec = self.to_optimizer()  # lr, dampening, weight decay: the Optimizer's rules
        for name in ("lr", "dampening", "weight_decay"):
            object.__setattr__(self, name, getattr(spec, name))

    @classmethod
    def from_optimizer(
        cls,
        optimizer: Optimizer,
        *,
        grad_rms: float | None = None,
        refresh_interval: int = 1,
        delay: int = 0,
        group_size: int = 8,
        batch_prompts: int = 1,
    ) -> Hyperparameters:
        """Hyperparameters of an optimizer.Optimizer (docs/stability.md "Optimizers").

        grad_rms: sqrt(v_hat) along the mean-field direction (gradient units), required for
        adam/adamw; the frozen preconditioner is grad_rms + optimizer.eps. beta2 only sets how
        fast v_hat tracks grad_rms and does not enter the linear model. max_grad_norm is
        accepted (clipping is inactive for the small deviations the linear model describes);
        reset_state=True is not a linear time-invariant update and is rejected.
        """
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer: must be an Optimizer, got {type(optimizer).__name__}")
        if optimizer.reset_state:
            raise ValueError(
                "reset_state: must be False (resetting the optimizer state at every refresh "
                "is not described by the linear model), got True"
            )
        common: dict[str, Any] = {
            "lr": optimizer.lr,
            "refresh_interval": refresh_interval,
            "delay": delay,
            "group_size": group_size,
            "batch_prompts": batch_prompts,
            "optimizer": optimizer.kind,
            "weight_decay": optimizer.weight_decay,
        }
        if optimizer.kind in ADAM_FAMILY:
            if grad_rms is None:
                raise ValueError("grad_rms: required for adam/adamw (sqrt(v_hat))")
            rms = _v.nonnegative("grad_rms", grad_rms)
            return cls(momentum=optimizer.beta1, adam_preconditioner=rms + optimizer.eps, **common)
        return cls(momentum=optimizer.momentum, dampening=optimizer.dampening, **common)

    def to_optimizer(self) -> Optimizer:
        """The optimizer.Optimizer this describes (Adam family: eps = 0, the preconditioner
        adam_preconditioner is passed as grad_rms to optimizer.effective_dynamics)."""
        if self.optimizer in ADAM_FAMILY:
            return Optimizer(
                kind=self.optimizer,
                lr=self.lr,
                beta1=self.momentum,
                eps=0.0,
                weight_decay=self.weight_decay,
                dampening=self.dampening,
            )
        return Optimizer(
            kind=self.optimizer,
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening,
            weight_decay=self.weight_decay,
        )

    def dynamics(
        self, kappa_lag: float = 0.0, kappa_now: float = 0.0, lag: float = 0.0
    ) -> EffectiveDynamics:
        """optimizer.effective_dynamics of this optimizer: beta_effective, eta_effective, c_lag,
        c_now (weight decay included), mass, damping, stiffness at effective lag L (steps)."""
        grad_rms = self.adam_preconditioner if self.optimizer in ADAM_FAMILY else None
        return effective_dynamics(
            self.to_optimizer(),
            kappa_lag=kappa_lag,
            kappa_now=kappa_now,
            lag=lag,
            grad_rms=grad_rms,
        )

    @property
    def effective_lr(self) -> float:
        """eta_eff: the step size multiplying the gradient in the heavy-ball form (docs/model.md
        section 1)."""
        return self.dynamics().eta_effective

    @property
    def effective_momentum(self) -> float:
        """beta_eff of the heavy-ball form: momentum, except adamw's beta1 (1 - lr weight_decay)."""
        return self.dynamics().beta_effective

    @property
    def weight_decay_stiffness(self) -> float:
        """c_now contributed by weight decay (dimensionless, per step)."""
        return self.dynamics().c_now

    @property
    def effective_lr_per_unit_lr(self) -> float:
        """d eta_eff / d lr (eta_eff is proportional to lr for every optimizer)."""
        return self.effective_lr / self.lr

    @property
    def lag_model(self) -> Literal["on_policy", "refresh", "delay"]:
        if self.delay > 0:
            return "delay"
        return "refresh" if self.refresh_interval > 1 else "on_policy"

    def with_changes(self, **changes: object) -> Hyperparameters:
        """A validated copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


def _curvature_split(
    curvature: float | None, curvature_lag: float | None, curvature_now: float | None
) -> tuple[float, float]:
    """(kappa_lag, kappa_now): one curvature is treated as entirely lagged (advantage term)."""
    if curvature is not None:
        if curvature_lag is not None or curvature_now is not None:
            raise ValueError(
                "curvature: pass either curvature (all lagged) "
                "or curvature_lag/curvature_now, not both"
            )
        return _v.positive("curvature", curvature), 0.0
    if curvature_lag is None and curvature_now is None:
        raise ValueError(
            "curvature: pass curvature or curvature_lag (and optionally curvature_now)"
        )
    kappa_lag = 0.0 if curvature_lag is None else _v.finite("curvature_lag", curvature_lag)
    kappa_now = 0.0 if curvature_now is None else _v.finite("curvature_now", curvature_now)
    # curvature_lag may be negative (TRL's k3 KL at stale samples): only the total must restore.
    if kappa_now < 0.0:
        raise ValueError(f"curvature_now: must be >= 0, got {_v.show(kappa_now)}")
    if kappa_lag + kappa_now <= 0.0:
        raise ValueError(
            f"curvature_lag: curvature_lag + curvature_now must be > 0, got {kappa_lag} + "
            f"{kappa_now}"
        )
    return kappa_lag, kappa_now


def _core_lag(hp: Hyperparameters) -> tuple[str, int]:
    """Lag model and steps as the compiled core sees them (on-policy is refresh with K = 1)."""
    if hp.delay > 0:
        return "delay", hp.delay
    return "refresh", hp.refresh_interval


def _effective_lag(hp: Hyperparameters, lag: str) -> float:
    if lag not in ("mean", "paper"):
        _v.choice("lag", lag, ("mean", "paper"))
    if hp.delay > 0:
        return float(hp.delay)
    if hp.refresh_interval == 1:
        return 0.0
    return float(hp.refresh_interval) if lag == "paper" else (hp.refresh_interval - 1) / 2.0


@dataclass(frozen=True)
class ContinuumPrediction:
    """The paper's damped oscillator m x'' + gamma x' + k x = F (docs/stability.md "Continuum").

    Time unit: optimizer steps. mass m, damping gamma (1/step), stiffness k (1/step^2), omega0
    (rad/step), zeta (-), tau = gamma / k (steps), mu = m k / gamma^2 (-), temperature T
    (reward^2, per unit gradient_std^2 if that was 1), stationary_variance = T / k (reward^2).
    tau and mu are the closed-form trajectory parameters (trajectory module, docs/model.md §4).
    first_order_reduction: True when mass <= 0 (only possible for a negative c_lag, c_lag L^2 <=
    -(1 + beta)): the second-order expansion has lost its inertia, so the report is that of the
    first-order part gamma x' + k x = F (omega0 NaN, zeta inf, mu 0, regime "overdamped"; tau,
    T and T / k unchanged). docs/stability.md "Negative lagged curvature".
    """

    mass: float
    damping: float
    stiffness: float
    omega0: float
    zeta: float
    tau: float
    mu: float
    temperature: float
    stationary_variance: float
    regime: str
    effective_lag: float
    lag_convention: str
    first_order_reduction: bool = False

    @property
    def stable(self) -> bool:
        return self.damping > 0.0


def _ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator in IEEE terms: x / 0 is +-inf (nan for 0 / 0), no exception."""
    if denominator == 0.0:
        return math.nan if numerator == 0.0 else math.copysign(math.inf, numerator)
    try:
        return numerator / denominator
    except OverflowError:
        return math.copysign(math.inf, numerator) * math.copysign(1.0, denominator)


def continuum(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    lag: LagConvention = "mean",
    gradient_std: float = 1.0,
) -> ContinuumPrediction:
    """Continuum oscillator parameters from hyperparameters and curvature (docs/model.md §3).

    lag: effective lag L of the refresh model, "mean" (K - 1) / 2 or "paper" K (delay: L = D).
    gradient_std: per-completion gradient noise std along the mean-field direction (sets T).
    The optimizer enters through optimizer.effective_dynamics: mass and damping use its
    beta_effective, the stiffness includes weight decay's c_now. curvature_lag may be negative
    (total > 0): mass then shrinks and damping grows (see ContinuumPrediction).
    An approximation: the exact discrete answer is stability(); docs/stability.md compares them.
    """
    kappa_lag, kappa_now = _curvature_split(curvature, curvature_lag, curvature_now)
    sigma = _v.nonnegative("gradient_std", gradient_std)
    big_lag = _effective_lag(hp, lag)
    dyn = hp.dynamics(kappa_lag, kappa_now, big_lag)  # mass, damping, stiffness: docs/model.md §3
    eta_eff = dyn.eta_effective
    mass, damping, stiffness = dyn.mass, dyn.damping, dyn.stiffness
    first_order = mass <= 0.0
    if first_order:
        omega0, zeta, mu = math.nan, math.inf, 0.0
    else:
        # products, not powers, and _ratio for quotients: huge or subnormal but finite inputs
        # give inf or 0 where the arithmetic says so, never OverflowError / ZeroDivisionError
        omega0 = math.sqrt(_ratio(stiffness, mass))
        zeta = _ratio(damping, 2.0 * math.sqrt(mass) * math.sqrt(stiffness))
        mu = _ratio(mass * stiffness, damping * damping) if damping != 0.0 else math.inf
    tau = _ratio(damping, stiffness)
    noise = (eta_eff * sigma) * (eta_eff * sigma) / (hp.batch_prompts * hp.group_size)
    temperature = _ratio(noise, 2.0 * damping) if damping > 0.0 else math.inf
    if damping <= 0.0:
        regime = "unstable"
    elif first_order:
        regime = "overdamped"
    elif zeta < 1.0:
        regime = "oscillatory"
    elif zeta == 1.0:
        regime = "critical"
    else:
        regime = "overdamped"
    return ContinuumPrediction(
        mass=mass,
        damping=damping,
        stiffness=stiffness,
        omega0=omega0,
        zeta=zeta,
        tau=tau,
        mu=mu,
        temperature=temperature,
        stationary_variance=_ratio(temperature, stiffness),
        regime=regime,
        effective_lag=big_lag,
        lag_convention=lag,
        first_order_reduction=first_order,
    )


@dataclass(frozen=True)
class StabilityReport:
    """Exact stability of the discrete model (docs/stability.md "Discrete model"), with the
    continuum prediction beside it.

    spectral_radius: rho of the transition matrix (per refresh cycle for the refresh model, per
    step otherwise); decay_rate = rho^(1/steps_per_map) per optimizer step; margin = 1 -
    decay_rate (> 0 iff stable, up to the rounding of rho, see below); relaxation_steps =
    -1 / ln(decay_rate) (e-folding time, steps).
    regime: "overdamped" | "oscillatory" | "unstable" (exact). continuum.regime: the approximation.
    For the two-dimensional maps (refresh cycle, on-policy, delay <= 1) "unstable" and ``stable``
    come from the Jury test of the core (p(1), p(-1), 1 - det formed without cancellation): a point
    within a relative 1e-12 of the boundary counts as unstable (e.g. lr = 3.8, momentum 0.9,
    curvature 1, whose root -1 is exact), while a tiny stiffness whose rho = 1 - O(c) rounds to
    1.0 (or just above) is still stable. The same rule decides critical_learning_rate,
    critical_refresh_interval, stationary_variance (inf when unstable) and the grid.
    momentum, c_lag, c_now: the heavy-ball form's beta_eff and step stiffnesses that were analysed
    (weight decay is part of c_now; adamw's decoupled decay lowers beta_eff).
    """

    spectral_radius: float
    decay_rate: float
    regime: str
    eigenvalues: NDArray[np.complex128]
    dominant_eigenvalue: complex
    transition_matrix: NDArray[np.float64]
    steps_per_map: int
    c_lag: float
    c_now: float
    continuum: ContinuumPrediction
    exact_source: str = field(default="discrete model (exact)")
    momentum: float = math.nan

    @property
    def stable(self) -> bool:
        return self.regime != "unstable"

    @property
    def margin(self) -> float:
        return 1.0 - self.decay_rate

    @property
    def relaxation_steps(self) -> float:
        if self.decay_rate >= 1.0:
            return math.inf
        if self.decay_rate == 0.0:
            return 0.0
        return -1.0 / math.log(self.decay_rate)


def _linear_model(
    hp: Hyperparameters,
    curvature: float | None,
    curvature_lag: float | None,
    curvature_now: float | None,
) -> tuple[float, float, float]:
    """(beta_eff, c_lag, c_now) of docs/model.md §2 via optimizer.effective_dynamics (weight decay
    included in c_now, adamw's decay in beta_eff)."""
    kappa_lag, kappa_now = _curvature_split(curvature, curvature_lag, curvature_now)
    dyn = hp.dynamics(kappa_lag, kappa_now)
    return dyn.beta_effective, dyn.c_lag, dyn.c_now


def stability(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    lag: LagConvention = "mean",
) -> StabilityReport:
    """Exact spectral radius, eigenvalues, regime and per-step decay rate (docs/model.md §2).

    Eigenvalues are those of the 2x2 refresh-cycle matrix (refresh, on-policy) or of the
    (D+1)x(D+1) delay companion matrix, computed with Eigen; `lag` only affects the continuum.
    """
    beta, c_lag, c_now = _linear_model(hp, curvature, curvature_lag, curvature_now)
    lag_model, lag_steps = _core_lag(hp)
    spec = _core.stability_spectrum(beta, c_lag, c_now, lag_model, lag_steps)
    matrix = np.asarray(_core.stability_transition_matrix(beta, c_lag, c_now, lag_model, lag_steps))
    return StabilityReport(
        spectral_radius=float(spec["spectral_radius"]),
        decay_rate=float(spec["decay_rate"]),
        regime=str(spec["regime"]),
        eigenvalues=np.asarray(spec["eigenvalues"], dtype=np.complex128),
        dominant_eigenvalue=complex(spec["dominant"]),
        transition_matrix=matrix,
        steps_per_map=lag_steps if lag_model == "refresh" else 1,
        c_lag=c_lag,
        c_now=c_now,
        momentum=beta,
        continuum=continuum(
            hp, curvature, curvature_lag=curvature_lag, curvature_now=curvature_now, lag=lag
        ),
    )


def critical_refresh_interval(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    max_interval: int = 100_000,
) -> int | None:
    """Smallest refresh interval K whose exact cycle matrix has rho >= 1 (docs/stability.md
    "Thresholds"); the largest safe interval is the result minus 1. None if every K up to
    max_interval is stable. hp.refresh_interval is ignored (it is the searched quantity);
    hp.delay must be 0. Exhaustive search over K, so windows of stability above the first
    unstable K (which do not change the answer) are not an issue.
    """
    if hp.delay > 0:
        raise ValueError(
            f"delay: must be 0 for critical_refresh_interval (refresh and delay do not "
            f"combine), got {hp.delay}"
        )
    max_interval = _v.integer("max_interval", max_interval, minimum=1)
    beta, c_lag, c_now = _linear_model(hp, curvature, curvature_lag, curvature_now)
    k = int(_core.critical_refresh_interval(beta, c_lag, c_now, max_interval))
    return k if k > 0 else None


def critical_delay(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    max_delay: int = 10_000,
) -> int | None:
    """Smallest constant delay D at which the exact model is unstable; None if none up to
    max_delay. hp.delay is ignored; hp.refresh_interval must be 1.

    Exact: the roots inside the unit circle are counted for every D at once by the argument
    principle (grpo_dynamics._delay), O(max_delay) in all; D = 10,000 takes milliseconds.
    """
    if hp.refresh_interval > 1:
        raise ValueError(
            f"refresh_interval: must be 1 for critical_delay (refresh and delay do not "
            f"combine), got {hp.refresh_interval}"
        )
    max_delay = _v.integer("max_delay", max_delay, minimum=0)
    if max_delay > _core.MAX_DELAY:  # the same bound as the delay grid's
        raise ValueError(f"max_delay: must be <= {_core.MAX_DELAY}, got {max_delay}")
    beta, c_lag, c_now = _linear_model(hp, curvature, curvature_lag, curvature_now)
    d = first_unstable_delay(beta, c_lag, c_now, max_delay)
    return d if d >= 0 else None


def _critical_lr(
    hp: Hyperparameters,
    curvature: float | None,
    curvature_lag: float | None,
    curvature_now: float | None,
    criterion: str,
    scan_ratio: float,
) -> float:
    ratio = _v.in_range("scan_ratio", scan_ratio, 1.0, 2.0, lo_open=True)
    kappa_lag, kappa_now = _curvature_split(curvature, curvature_lag, curvature_now)
    lag_model, lag_steps = _core_lag(hp)
    dyn = hp.dynamics(kappa_lag, kappa_now)  # c_lag and c_now are proportional to lr here
    momentum, decay = dyn.beta_effective, 0.0
    if hp.optimizer == "adamw" and hp.weight_decay > 0.0:
        # beta_eff = beta1 (1 - lr lambda) moves with lr: the core scans lr itself, moving the
        # momentum with it, and stops at lr = 1 / lambda (optimizer.effective_dynamics).
        momentum, decay = hp.momentum, hp.weight_decay
    return float(
        _core.critical_scale(
            momentum,
            dyn.c_lag / hp.lr,
            dyn.c_now / hp.lr,
            lag_model,
            lag_steps,
            criterion,
            ratio,
            decay,
        )
    )


def critical_learning_rate(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    scan_ratio: float = 1.001,
) -> float:
    """Largest learning rate lr_c such that every lr in (0, lr_c) is exactly stable, all other
    settings of hp fixed (hp.lr is ignored). Units of lr.

    For the refresh model the stable set in lr need not be an interval (rho can dip back below 1
    above the first crossing), so a plain bisection could land on a later crossing. We scan lr
    geometrically with ratio scan_ratio upward from the stable small-lr limit, then bisect the
    first bracket to relative 1e-13. An unstable window narrower than the scan ratio below lr_c
    could be missed (docs/stability.md "Thresholds"). inf if none below c = 1e9.
    adamw with weight decay: beta_eff = beta1 (1 - lr weight_decay) moves with lr, so the scan
    is in lr itself and stops at 1 / weight_decay, returned if nothing below it is unstable
    (docs/stability.md "Optimizers").
    """
    return _critical_lr(hp, curvature, curvature_lag, curvature_now, "unstable", scan_ratio)


def oscillation_onset(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    vary: Literal["learning_rate", "refresh_interval", "delay"] = "learning_rate",
    scan_ratio: float = 1.001,
    max_steps: int = 100_000,
) -> float | int | None:
    """Smallest value of `vary` at which the exact regime stops being overdamped (dominant
    eigenvalue complex or negative, or unstable), the others from hp. Learning rate: a scan +
    bisection as in critical_learning_rate (float; inf if never). Refresh interval / delay:
    exhaustive search up to max_steps (int, None if never).
    """
    if vary == "learning_rate":
        return _critical_lr(hp, curvature, curvature_lag, curvature_now, "oscillatory", scan_ratio)
    _v.choice("vary", vary, ("learning_rate", "refresh_interval", "delay"))
    max_steps = _v.integer("max_steps", max_steps, minimum=1)
    beta, c_lag, c_now = _linear_model(hp, curvature, curvature_lag, curvature_now)
    lag_model = "refresh" if vary == "refresh_interval" else "delay"
    first = 1 if lag_model == "refresh" else 0
    # The core caps the lag at what finishes (O(D^2) per delay, O(K) per interval).
    cap = _core.MAX_REFRESH_INTERVAL if lag_model == "refresh" else _core.MAX_DELAY
    last = min(max_steps, cap)
    chunk = 256
    for start in range(first, last + 1, chunk):
        steps = np.arange(start, min(start + chunk, last + 1), dtype=np.float64)
        codes = _core.stability_grid(
            np.full(steps.size, beta),
            np.full(steps.size, c_lag),
            np.full(steps.size, c_now),
            steps,
            lag_model,
            1,
        )["regime_code"]
        hits = np.flatnonzero(np.asarray(codes) != 0)
        if hits.size:
            return int(steps[hits[0]])
    if max_steps > cap:
        raise ValueError(
            f"max_steps: must be <= {cap} for vary={vary!r} (none up to it), got {max_steps}"
        )
    return None


@dataclass(frozen=True)
class StationaryVariance:
    """Stationary Var(r - r*) in reward^2 (docs/stability.md "Stationary variance").

    exact: discrete Lyapunov solution, averaged over the phase in the refresh cycle; per_phase:
    Var at phase j = 0..K-1 of the cycle (one entry without refresh); continuum: T / k;
    noise_variance: Var(e_t) = eta_eff^2 gradient_std^2 / (B G) per step (per cycle for refresh).
    """

    exact: float
    continuum: float
    per_phase: NDArray[np.float64]
    noise_variance: float


def stationary_variance(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    gradient_std: float = 1.0,
    lag: LagConvention = "mean",
) -> StationaryVariance:
    """Exact and continuum stationary variance of the noisy linear model (docs/model.md §2, §3).

    gradient_std: per-completion gradient noise std s along the mean-field direction, so the
    noise per step is e = eta_eff xi with Var(xi) = s^2 / (B G); in the refresh model xi is drawn
    once per refresh and held for the K steps of the cycle. Both answers scale as 1 / G.
    inf when the system is unstable.
    """
    sigma = _v.nonnegative("gradient_std", gradient_std)
    beta, c_lag, c_now = _linear_model(hp, curvature, curvature_lag, curvature_now)
    lag_model, lag_steps = _core_lag(hp)
    unit_mean, unit_phase = _core.stationary_variance_unit(beta, c_lag, c_now, lag_model, lag_steps)
    noise = hp.effective_lr**2 * sigma**2 / (hp.batch_prompts * hp.group_size)
    cont = continuum(
        hp,
        curvature,
        curvature_lag=curvature_lag,
        curvature_now=curvature_now,
        lag=lag,
        gradient_std=sigma,
    )
    return StationaryVariance(
        exact=float(unit_mean) * noise,
        continuum=cont.stationary_variance,
        per_phase=np.asarray(unit_phase) * noise,
        noise_variance=noise,
    )


@dataclass(frozen=True)
class StabilityGrid:
    """Exact stability over a grid (docs/stability.md "Grid"). Arrays have the broadcast shape
    of the inputs. regime_code: -1 invalid input, 0 overdamped, 1 oscillatory, 2 unstable.
    spectral_radius is per map (refresh cycle or step), decay_rate per optimizer step;
    dominant_eigenvalue has imag >= 0. momentum, c_lag, c_now, lag_steps: the inputs, broadcast
    to that shape (what a phase diagram draws the results over).
    """

    spectral_radius: NDArray[np.float64]
    decay_rate: NDArray[np.float64]
    dominant_eigenvalue: NDArray[np.complex128]
    regime_code: NDArray[np.int32]
    lag_model: str
    momentum: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    c_lag: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    c_now: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    lag_steps: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)

    @property
    def regime(self) -> NDArray[np.str_]:
        names = np.array(["invalid", "overdamped", "oscillatory", "unstable"])
        return names[self.regime_code + 1]

    @property
    def stable(self) -> NDArray[np.bool_]:
        return np.asarray((self.regime_code == 0) | (self.regime_code == 1))


def stability_grid(
    momentum: ArrayLike,
    c_lag: ArrayLike,
    lag_steps: ArrayLike = 1,
    *,
    c_now: ArrayLike = 0.0,
    lag_model: LagModel = "refresh",
    threads: int | None = None,
) -> StabilityGrid:
    """Exact spectral radius, decay rate, dominant eigenvalue and regime at every point of a
    broadcast grid of (momentum, c_lag, c_now, lag_steps) in one compiled, multithreaded call.

    c_lag, c_now: dimensionless step stiffnesses (eta_eff * curvature). lag_steps: the refresh
    interval K (lag_model="refresh"; K = 1 is on-policy) or the delay D (lag_model="delay").
    threads: worker threads (None: all cores); results are identical for any thread count.
    Invalid points (momentum outside [0, 1), non-finite c, non-integral or out-of-range
    lag_steps) get regime_code -1 and NaN values; no point is dropped.
    """
    if lag_model not in ("refresh", "delay"):
        _v.choice("lag_model", lag_model, ("refresh", "delay"))
    threads = _v.threads(threads)
    if threads is None:
        threads = os.cpu_count() or 1
    arrays = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (momentum, c_lag, c_now, lag_steps))
    )
    shape = arrays[0].shape
    flat = [np.ascontiguousarray(a.reshape(-1)) for a in arrays]
    out = _core.stability_grid(flat[0], flat[1], flat[2], flat[3], lag_model, threads)
    dominant = np.asarray(out["dominant_real"]) + 1j * np.asarray(out["dominant_imag"])
    return StabilityGrid(
        spectral_radius=np.asarray(out["spectral_radius"]).reshape(shape),
        decay_rate=np.asarray(out["decay_rate"]).reshape(shape),
        dominant_eigenvalue=dominant.reshape(shape),
        regime_code=np.asarray(out["regime_code"], dtype=np.int32).reshape(shape),
        lag_model=lag_model,
        momentum=arrays[0],
        c_lag=arrays[1],
        c_now=arrays[2],
        lag_steps=arrays[3],
    )


# ---------------------------------------------------------------------------------------------
# The exact-stability summary that diagnose and the command line report

#: Largest delay the summary searches for the first unstable D (critical_delay's own default;
#: the argument-principle count makes the whole search take milliseconds).
DELAY_SEARCH_LIMIT = 10_000


@dataclass(frozen=True)
class ExactStability:
    """How far one optimizer setting is from instability (docs/stability.md, "Thresholds").

    ``report`` is the exact analysis (:func:`stability`); ``curvature`` the kappa used (per unit
    effective learning rate) and ``curvature_source`` where it came from. The thresholds keep
    every other setting fixed: ``max_safe_refresh_interval`` is the largest stable K (only for
    delay 0), ``max_safe_delay`` the largest stable D up to ``delay_search_limit`` (only for
    K = 1), ``max_safe_learning_rate`` the largest stable lr (lr units). A threshold is None
    when it does not apply or when no unstable value exists within the searched range.
    """

    hyperparameters: Hyperparameters
    report: StabilityReport
    curvature: float | None
    curvature_source: str
    max_safe_refresh_interval: int | None
    max_safe_delay: int | None
    delay_search_limit: int | None
    max_safe_learning_rate: float

    @property
    def stable(self) -> bool:
        return self.report.stable

    def to_dict(self) -> dict[str, Any]:
        """Flat, JSON-ready summary (the keys diagnose and the command line print)."""
        from ._results import to_jsonable

        report = self.report
        out: dict[str, Any] = {
            "spectral_radius": report.spectral_radius,
            "decay_rate_per_step": report.decay_rate,
            "margin": report.margin,
            "stable": report.stable,
            "regime": report.regime,
            "relaxation_steps": report.relaxation_steps,
            "c_lag": report.c_lag,
            "c_now": report.c_now,
            "curvature": self.curvature,
            "curvature_source": self.curvature_source,
            "continuum_regime": report.continuum.regime,
            "continuum_zeta": report.continuum.zeta,
        }
        if self.hyperparameters.delay == 0:
            out["max_safe_refresh_interval"] = self.max_safe_refresh_interval
        if self.hyperparameters.refresh_interval == 1:
            out["max_safe_delay"] = self.max_safe_delay
            out["delay_search_limit"] = self.delay_search_limit
        out["max_safe_learning_rate"] = self.max_safe_learning_rate
        return dict(to_jsonable(out))

    def __repr__(self) -> str:
        r = self.report
        return (
            f"ExactStability({r.regime}, rho={r.spectral_radius:.6g}, margin={r.margin:.3g}, "
            f"max safe K={self.max_safe_refresh_interval}, D={self.max_safe_delay}, "
            f"lr={self.max_safe_learning_rate:.4g})"
        )


def exact_stability(
    hyperparameters: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    curvature_source: str = "given",
    max_delay: int = DELAY_SEARCH_LIMIT,
) -> ExactStability:
    """Exact spectral radius, margin and the largest safe K / D / learning rate of one setting.

    curvature: kappa with every force lagged, or curvature_lag / curvature_now (per unit
    effective learning rate), as for :func:`stability`. max_delay bounds the search for the
    first unstable delay (None in the result then means stable up to it). curvature_source is
    carried into the result (e.g. diagnose says it inverted the fitted tau). docs/stability.md,
    "Thresholds".
    """
    if not isinstance(hyperparameters, Hyperparameters):
        raise ValueError(
            f"hyperparameters: must be a Hyperparameters, got {type(hyperparameters).__name__}"
        )
    hp = hyperparameters
    lag, now = curvature_lag, curvature_now
    report = stability(hp, curvature, curvature_lag=lag, curvature_now=now)
    max_k = max_d = limit = None
    if hp.delay == 0:
        k_crit = critical_refresh_interval(hp, curvature, curvature_lag=lag, curvature_now=now)
        max_k = None if k_crit is None else k_crit - 1
    if hp.refresh_interval == 1:
        limit = _v.integer("max_delay", max_delay, minimum=0)
        d_crit = critical_delay(
            hp, curvature, curvature_lag=lag, curvature_now=now, max_delay=limit
        )
        max_d = None if d_crit is None else d_crit - 1
    return ExactStability(
        hyperparameters=hp,
        report=report,
        curvature=curvature if curvature is not None else curvature_lag,
        curvature_source=curvature_source,
        max_safe_refresh_interval=max_k,
        max_safe_delay=max_d,
        delay_search_limit=limit,
        max_safe_learning_rate=critical_learning_rate(
            hp, curvature, curvature_lag=lag, curvature_now=now
        ),
    )


__all__ += ["ExactStability", "exact_stability", "DELAY_SEARCH_LIMIT"]
