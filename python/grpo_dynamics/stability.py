"""Stability and eigenvalue analysis: from hyperparameters to regimes, thresholds, phase diagrams.

The exact discrete model (docs/stability.md section "Discrete model", MODEL.md s.3)

    x_{t+1} = x_t + beta (x_t - x_{t-1}) - c_lag x_{l(t)} - c_now x_t + e_t,   x = r - r*

is analysed through its refresh-cycle (monodromy) matrix or its delay companion matrix in the
compiled core; the continuum oscillator (docs/stability.md "Continuum mapping", MODEL.md s.4)
is reported beside it, with the exact answer always labelled as such.

Units: time in optimizer steps; learning rate in the optimizer's own units; a curvature kappa is
per unit of effective learning rate, so the dimensionless step stiffness is c = eta_eff * kappa.
"""

from __future__ import annotations

import math
import operator
import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _core
from . import objectives as _objectives

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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
    "plot_phase_diagram",
]

OptimizerName = Literal["sgd", "heavy_ball", "adam", "adamw"]
_OPTIMIZER_NAMES = ("sgd", "heavy_ball", "adam", "adamw")
LagConvention = Literal["mean", "paper"]
LagModel = Literal["refresh", "delay"]

# Regime names indexed by the compiled core's regime codes (-1 marks an invalid grid point).
REGIMES: dict[int, str] = dict(_core.REGIME_NAMES)


def _positive_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {number}")
    return number


def _finite(name: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    return number


@dataclass(frozen=True)
class Hyperparameters:
    """GRPO optimizer and sampling settings that enter the linear model (docs/stability.md).

    lr: learning rate eta (> 0). momentum: heavy-ball coefficient, or Adam beta1, in [0, 1)
    (must be 0 for "sgd").
    refresh_interval: optimizer steps per batch of rollouts, K >= 1 (on-policy: 1).
    delay: staleness D >= 0 of asynchronous rollouts (exclusive with refresh_interval > 1).
    group_size: completions per prompt G >= 1. batch_prompts: prompts per step B >= 1.
    optimizer (PyTorch semantics; docs/stability.md "Optimizers"):
      "sgd"         theta -= lr g                                   (beta 0, eta_eff = lr)
      "heavy_ball"  torch SGD with momentum and dampening d         (eta_eff = lr (1 - d))
      "adam"        frozen preconditioner s, coupled L2 decay        (eta_eff = lr (1 - beta1) / s)
      "adamw"       as adam with decoupled decay theta *= 1 - lr weight_decay
                    (beta_eff = beta1 (1 - lr weight_decay), c_now += lr weight_decay (1 - beta1))
    adam_preconditioner: s = sqrt(v_hat) + eps along the mean-field direction (> 0; Adam family).
    dampening: heavy-ball dampening d in [0, 1) (heavy_ball only).
    weight_decay: lambda >= 0 (1/lr units for adamw; coupled L2 for the others), a
      current-parameter stiffness c_now = eta_eff lambda (coupled) added to the curvature's.
    The mapping is objectives.effective_dynamics (one source of truth); see also from_optimizer.
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
        lr = _finite("lr", self.lr)
        if lr <= 0.0:
            raise ValueError(f"lr must be > 0, got {lr}")
        momentum = _finite("momentum", self.momentum)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        refresh_interval = _positive_int("refresh_interval", self.refresh_interval, 1)
        delay = _positive_int("delay", self.delay, 0)
        if refresh_interval > 1 and delay > 0:
            raise ValueError(
                "delay must be 0 when refresh_interval > 1 "
                "(the model has one lag mechanism at a time)"
            )
        group_size = _positive_int("group_size", self.group_size, 1)
        batch_prompts = _positive_int("batch_prompts", self.batch_prompts, 1)
        if self.optimizer not in _OPTIMIZER_NAMES:
            raise ValueError(f"optimizer must be one of {_OPTIMIZER_NAMES}, got {self.optimizer!r}")
        if self.optimizer == "sgd" and momentum != 0.0:
            raise ValueError(
                f"momentum must be 0 for optimizer='sgd' (use 'heavy_ball'), got {momentum}"
            )
        preconditioner = _finite("adam_preconditioner", self.adam_preconditioner)
        if preconditioner <= 0.0:
            raise ValueError(f"adam_preconditioner must be > 0, got {preconditioner}")
        dampening = _finite("dampening", self.dampening)
        if not 0.0 <= dampening < 1.0:
            raise ValueError(f"dampening must be in [0, 1), got {dampening}")
        if dampening != 0.0 and self.optimizer != "heavy_ball":
            raise ValueError(f"dampening must be 0 unless optimizer='heavy_ball', got {dampening}")
        weight_decay = _finite("weight_decay", self.weight_decay)
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if self.optimizer == "adamw" and lr * weight_decay >= 1.0:
            # theta *= 1 - lr weight_decay must keep its sign for the decay to be a decay.
            raise ValueError(
                f"weight_decay must satisfy lr * weight_decay < 1 for adamw, "
                f"got {lr * weight_decay}"
            )
        # Store normalised Python scalars (numpy integers, 0-d arrays) so results are hashable.
        for name, value in (
            ("lr", lr),
            ("momentum", momentum),
            ("refresh_interval", refresh_interval),
            ("delay", delay),
            ("group_size", group_size),
            ("batch_prompts", batch_prompts),
            ("adam_preconditioner", preconditioner),
            ("dampening", dampening),
            ("weight_decay", weight_decay),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def from_optimizer(
        cls,
        optimizer: _objectives.Optimizer,
        *,
        grad_rms: float | None = None,
        refresh_interval: int = 1,
        delay: int = 0,
        group_size: int = 8,
        batch_prompts: int = 1,
    ) -> Hyperparameters:
        """Hyperparameters of an objectives.Optimizer (docs/stability.md "Optimizers").

        grad_rms: sqrt(v_hat) along the mean-field direction (gradient units), required for
        adam/adamw; the frozen preconditioner is grad_rms + optimizer.eps. beta2 only sets how
        fast v_hat tracks grad_rms and does not enter the linear model. max_grad_norm is
        accepted (clipping is inactive for the small deviations the linear model describes);
        reset_state=True is not a linear time-invariant update and is rejected.
        """
        if not isinstance(optimizer, _objectives.Optimizer):
            raise ValueError(
                f"optimizer must be an objectives.Optimizer, got {type(optimizer).__name__}"
            )
        if optimizer.reset_state:
            raise ValueError(
                "reset_state must be False: resetting the optimizer state at every refresh "
                "is not described by the linear model"
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
        if optimizer.kind in ("adam", "adamw"):
            if grad_rms is None:
                raise ValueError("grad_rms is required for adam/adamw (sqrt(v_hat))")
            rms = _finite("grad_rms", grad_rms)
            if rms < 0.0:
                raise ValueError(f"grad_rms must be >= 0, got {rms}")
            return cls(momentum=optimizer.beta1, adam_preconditioner=rms + optimizer.eps, **common)
        if optimizer.kind == "heavy_ball":
            return cls(momentum=optimizer.momentum, dampening=optimizer.dampening, **common)
        return cls(momentum=0.0, **common)

    def to_optimizer(self) -> _objectives.Optimizer:
        """The objectives.Optimizer this describes (Adam family: eps = 0, the preconditioner
        adam_preconditioner is passed as grad_rms to objectives.effective_dynamics)."""
        kind: str = self.optimizer
        if kind == "heavy_ball" and self.momentum == 0.0:
            kind = "sgd"  # torch SGD ignores dampening without momentum
        if kind in ("adam", "adamw"):
            return _objectives.Optimizer(
                kind=kind,  # type: ignore[arg-type]
                lr=self.lr,
                beta1=self.momentum,
                eps=0.0,
                weight_decay=self.weight_decay,
            )
        return _objectives.Optimizer(
            kind=kind,  # type: ignore[arg-type]
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening if kind == "heavy_ball" else 0.0,
            weight_decay=self.weight_decay,
        )

    def dynamics(
        self, kappa_lag: float = 0.0, kappa_now: float = 0.0, lag: float = 0.0
    ) -> _objectives.EffectiveDynamics:
        """objectives.effective_dynamics of this optimizer: beta_effective, eta_effective, c_lag,
        c_now (weight decay included), mass, damping, stiffness at effective lag L (steps)."""
        grad_rms = self.adam_preconditioner if self.optimizer in ("adam", "adamw") else None
        return _objectives.effective_dynamics(
            self.to_optimizer(),
            kappa_lag=kappa_lag,
            kappa_now=kappa_now,
            lag=lag,
            grad_rms=grad_rms,
        )

    @property
    def effective_lr(self) -> float:
        """eta_eff: the step size multiplying the gradient in the heavy-ball form (MODEL.md s.2)."""
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
        kappa_lag, kappa_now = _finite("curvature", curvature), 0.0
        if kappa_lag <= 0.0:
            raise ValueError(f"curvature must be > 0, got {kappa_lag}")
        return kappa_lag, kappa_now
    if curvature_lag is None and curvature_now is None:
        raise ValueError(
            "curvature: pass curvature or curvature_lag (and optionally curvature_now)"
        )
    kappa_lag = 0.0 if curvature_lag is None else _finite("curvature_lag", curvature_lag)
    kappa_now = 0.0 if curvature_now is None else _finite("curvature_now", curvature_now)
    # curvature_lag may be negative (TRL's k3 KL at stale samples): only the total must restore.
    if kappa_now < 0.0:
        raise ValueError(f"curvature_now must be >= 0, got {kappa_now}")
    if kappa_lag + kappa_now <= 0.0:
        raise ValueError(
            f"curvature_lag + curvature_now must be > 0, got {kappa_lag} + {kappa_now}"
        )
    return kappa_lag, kappa_now


def _core_lag(hp: Hyperparameters) -> tuple[str, int]:
    """Lag model and steps as the compiled core sees them (on-policy is refresh with K = 1)."""
    if hp.delay > 0:
        return "delay", hp.delay
    return "refresh", hp.refresh_interval


def _effective_lag(hp: Hyperparameters, lag: str) -> float:
    if lag not in ("mean", "paper"):
        raise ValueError(f"lag must be 'mean' or 'paper', got {lag!r}")
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
    tau and mu are the closed-form trajectory parameters (trajectory module, MODEL.md s.5).
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


def continuum(
    hp: Hyperparameters,
    curvature: float | None = None,
    *,
    curvature_lag: float | None = None,
    curvature_now: float | None = None,
    lag: LagConvention = "mean",
    gradient_std: float = 1.0,
) -> ContinuumPrediction:
    """Continuum oscillator parameters from hyperparameters and curvature (MODEL.md s.4).

    lag: effective lag L of the refresh model, "mean" (K - 1) / 2 or "paper" K (delay: L = D).
    gradient_std: per-completion gradient noise std along the mean-field direction (sets T).
    The optimizer enters through objectives.effective_dynamics: mass and damping use its
    beta_effective, the stiffness includes weight decay's c_now. curvature_lag may be negative
    (total > 0): mass then shrinks and damping grows (see ContinuumPrediction).
    An approximation: the exact discrete answer is stability(); docs/stability.md compares them.
    """
    kappa_lag, kappa_now = _curvature_split(curvature, curvature_lag, curvature_now)
    sigma = _finite("gradient_std", gradient_std)
    if sigma < 0.0:
        raise ValueError(f"gradient_std must be >= 0, got {sigma}")
    big_lag = _effective_lag(hp, lag)
    dyn = hp.dynamics(kappa_lag, kappa_now, big_lag)  # mass, damping, stiffness: MODEL.md s.4
    eta_eff = dyn.eta_effective
    mass, damping, stiffness = dyn.mass, dyn.damping, dyn.stiffness
    first_order = mass <= 0.0
    if first_order:
        omega0, zeta, mu = math.nan, math.inf, 0.0
    else:
        omega0 = math.sqrt(stiffness / mass)
        zeta = damping / (2.0 * math.sqrt(mass * stiffness))
        mu = mass * stiffness / damping**2 if damping != 0.0 else math.inf
    tau = damping / stiffness
    noise = eta_eff**2 * sigma**2 / (hp.batch_prompts * hp.group_size)
    temperature = noise / (2.0 * damping) if damping > 0.0 else math.inf
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
        stationary_variance=temperature / stiffness,
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
    decay_rate (> 0 iff stable); relaxation_steps = -1 / ln(decay_rate) (e-folding time, steps).
    regime: "overdamped" | "oscillatory" | "unstable" (exact). continuum.regime: the approximation.
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
        return self.spectral_radius < 1.0

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
    """(beta_eff, c_lag, c_now) of MODEL.md s.3 via objectives.effective_dynamics (weight decay
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
    """Exact spectral radius, eigenvalues, regime and per-step decay rate (MODEL.md s.3).

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
            "delay must be 0 for critical_refresh_interval (refresh and delay do not combine)"
        )
    max_interval = _positive_int("max_interval", max_interval, 1)
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
    """Smallest constant delay D at which the exact model is unstable (all roots of the
    characteristic polynomial checked by a Schur-Cohn count); None if none up to max_delay.
    hp.delay is ignored; hp.refresh_interval must be 1.
    """
    if hp.refresh_interval > 1:
        raise ValueError(
            "refresh_interval must be 1 for critical_delay (refresh and delay do not combine)"
        )
    max_delay = _positive_int("max_delay", max_delay, 0)
    beta, c_lag, c_now = _linear_model(hp, curvature, curvature_lag, curvature_now)
    d = int(_core.critical_delay(beta, c_lag, c_now, max_delay))
    return d if d >= 0 else None


def _critical_lr(
    hp: Hyperparameters,
    curvature: float | None,
    curvature_lag: float | None,
    curvature_now: float | None,
    criterion: str,
    scan_ratio: float,
) -> float:
    ratio = _finite("scan_ratio", scan_ratio)
    if not 1.0 < ratio <= 2.0:
        raise ValueError(f"scan_ratio must be in (1, 2], got {ratio}")
    kappa_lag, kappa_now = _curvature_split(curvature, curvature_lag, curvature_now)
    lag_model, lag_steps = _core_lag(hp)
    if hp.optimizer == "adamw" and hp.weight_decay > 0.0:
        # beta_eff = beta1 (1 - lr lambda) moves with lr: no common stiffness scale to scan.
        return _critical_lr_scan(hp, kappa_lag, kappa_now, lag_model, lag_steps, criterion, ratio)
    dyn = hp.dynamics(kappa_lag, kappa_now)  # c_lag and c_now are proportional to lr here
    return float(
        _core.critical_scale(
            dyn.beta_effective,
            dyn.c_lag / hp.lr,
            dyn.c_now / hp.lr,
            lag_model,
            lag_steps,
            criterion,
            ratio,
        )
    )


def _criterion_holds(
    hp: Hyperparameters,
    kappa_lag: float,
    kappa_now: float,
    lrs: NDArray[np.float64],
    lag_model: str,
    lag_steps: int,
    criterion: str,
) -> NDArray[np.bool_]:
    """Whether each lr is unstable (or not overdamped) for hp with that lr (exact grid)."""
    models = [hp.with_changes(lr=float(lr)).dynamics(kappa_lag, kappa_now) for lr in lrs]
    codes = np.asarray(
        _core.stability_grid(
            np.array([m.beta_effective for m in models]),
            np.array([m.c_lag for m in models]),
            np.array([m.c_now for m in models]),
            np.full(len(models), float(lag_steps)),
            lag_model,
            1,
        )["regime_code"]
    )
    return codes == 2 if criterion == "unstable" else codes != 0


def _critical_lr_scan(
    hp: Hyperparameters,
    kappa_lag: float,
    kappa_now: float,
    lag_model: str,
    lag_steps: int,
    criterion: str,
    ratio: float,
) -> float:
    """Scan + bisection in lr itself (adamw with decay): geometric scan from total c = 1e-9 up
    to lr = 1 / weight_decay, then bisection of the first bracket to relative 1e-13. Returns
    1 / weight_decay (the largest lr the decoupled decay allows) if the criterion never holds
    below it, inf if it never holds up to total c = 1e9 (as the compiled scan)."""
    lr_cap = 1.0 / hp.weight_decay
    here = hp.dynamics(kappa_lag, kappa_now)
    total_per_lr = (here.c_lag + here.c_now) / hp.lr
    lower = min(1e-9 / total_per_lr, 0.5 * lr_cap)
    scan_limit = 1e9 / total_per_lr  # as the compiled scan: inf if nothing up to total c = 1e9

    def holds(lrs: NDArray[np.float64]) -> NDArray[np.bool_]:
        return _criterion_holds(hp, kappa_lag, kappa_now, lrs, lag_model, lag_steps, criterion)

    if holds(np.array([lower]))[0]:
        return 0.0
    chunk = 256
    while True:
        lrs = lower * ratio ** np.arange(1, chunk + 1, dtype=np.float64)
        lrs = lrs[(lrs < lr_cap) & (lrs <= scan_limit)]
        if lrs.size == 0:
            return lr_cap if lr_cap <= scan_limit else math.inf
        hits = np.flatnonzero(holds(lrs))
        if hits.size:
            upper = float(lrs[hits[0]])
            lower = float(lrs[hits[0] - 1]) if hits[0] > 0 else lower
            break
        lower = float(lrs[-1])
    while upper - lower > 1e-13 * upper:
        mid = 0.5 * (lower + upper)
        if holds(np.array([mid]))[0]:
            upper = mid
        else:
            lower = mid
    return upper


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
    if vary not in ("refresh_interval", "delay"):
        raise ValueError(
            f"vary must be 'learning_rate', 'refresh_interval' or 'delay', got {vary!r}"
        )
    max_steps = _positive_int("max_steps", max_steps, 1)
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
    """Exact and continuum stationary variance of the noisy linear model (MODEL.md s.3, s.4).

    gradient_std: per-completion gradient noise std s along the mean-field direction, so the
    noise per step is e = eta_eff xi with Var(xi) = s^2 / (B G); in the refresh model xi is drawn
    once per refresh and held for the K steps of the cycle. Both answers scale as 1 / G.
    inf when the system is unstable.
    """
    sigma = _finite("gradient_std", gradient_std)
    if sigma < 0.0:
        raise ValueError(f"gradient_std must be >= 0, got {sigma}")
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
    dominant_eigenvalue has imag >= 0.
    """

    spectral_radius: NDArray[np.float64]
    decay_rate: NDArray[np.float64]
    dominant_eigenvalue: NDArray[np.complex128]
    regime_code: NDArray[np.int32]
    lag_model: str

    @property
    def regime(self) -> NDArray[np.str_]:
        names = np.array(["invalid", "overdamped", "oscillatory", "unstable"])
        return names[self.regime_code + 1]

    @property
    def stable(self) -> NDArray[np.bool_]:
        return self.spectral_radius < 1.0


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
        raise ValueError(f"lag_model must be 'refresh' or 'delay', got {lag_model!r}")
    if threads is None:
        threads = os.cpu_count() or 1
    threads = _positive_int("threads", threads, 1)
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
    )


def plot_phase_diagram(
    momentum: float,
    c_lag: ArrayLike,
    lag_steps: ArrayLike,
    *,
    c_now: float = 0.0,
    lag_model: LagModel = "refresh",
    lag_convention: LagConvention = "mean",
    ax: Axes | None = None,
) -> Figure:
    """Phase diagram in the (lag_steps, c_lag) plane at fixed momentum (docs/stability.md "Grid").

    Colours: exact regime. Solid line: exact stability boundary (rho = 1). Dashed: continuum
    stability boundary (gamma = 0) with the chosen lag convention; dotted: continuum oscillation
    onset (zeta = 1). Returns the Figure (created without pyplot when ax is None).
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.figure import Figure as _Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    beta = _finite("momentum", momentum)
    c_values = np.asarray(c_lag, dtype=np.float64).reshape(-1)
    lag_values = np.asarray(lag_steps, dtype=np.float64).reshape(-1)
    if c_values.size < 2 or lag_values.size < 2:
        raise ValueError("c_lag and lag_steps must each hold at least 2 values")
    if lag_convention not in ("mean", "paper"):
        raise ValueError(f"lag_convention must be 'mean' or 'paper', got {lag_convention!r}")
    lag_grid, c_grid = np.meshgrid(lag_values, c_values)
    grid = stability_grid(beta, c_grid, lag_grid, c_now=c_now, lag_model=lag_model)
    if ax is None:
        figure = _Figure(figsize=(6.0, 4.5))
        ax = figure.add_subplot()
    else:
        figure = ax.figure  # type: ignore[assignment]
    colours = ["#bbbbbb", "#8fd19e", "#ffd27f", "#f28e8e"]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm([-1.5, -0.5, 0.5, 1.5, 2.5], cmap.N)
    ax.pcolormesh(lag_grid, c_grid, grid.regime_code, cmap=cmap, norm=norm, shading="nearest")
    ax.contour(lag_grid, c_grid, grid.spectral_radius, levels=[1.0], colors="black", linewidths=1.5)
    # Continuum: gamma = (1 - beta) - c L, zeta from m = (1 + beta)/2 + c L^2 / 2, k = c + c_now.
    if lag_model == "delay":
        big_lag = lag_grid
    else:
        big_lag = lag_grid if lag_convention == "paper" else (lag_grid - 1.0) / 2.0
    damping = (1.0 - beta) - c_grid * big_lag
    mass = (1.0 + beta) / 2.0 + c_grid * big_lag**2 / 2.0
    zeta = damping / (2.0 * np.sqrt(mass * (c_grid + c_now)))
    if damping.min() < 0.0 < damping.max():
        ax.contour(lag_grid, c_grid, damping, levels=[0.0], colors="tab:blue", linestyles="--")
    if zeta.min() < 1.0 < zeta.max():
        ax.contour(lag_grid, c_grid, zeta, levels=[1.0], colors="tab:purple", linestyles=":")
    if c_values.min() > 0.0 and c_values.max() / c_values.min() > 20.0:
        ax.set_yscale("log")
    ax.set_xlabel("refresh interval K" if lag_model == "refresh" else "delay D")
    ax.set_ylabel("step stiffness c_lag = eta_eff kappa_lag")
    ax.set_title(f"momentum {beta:g}, c_now {c_now:g}")
    handles = [Patch(color=colours[i + 1], label=REGIMES[i]) for i in (0, 1, 2)] + [
        Line2D([], [], color="black", label="exact boundary (rho = 1)"),
        Line2D(
            [],
            [],
            color="tab:blue",
            linestyle="--",
            label=f"continuum gamma = 0 ({lag_convention})",
        ),
        Line2D([], [], color="tab:purple", linestyle=":", label="continuum zeta = 1"),
    ]
    ax.legend(handles=handles, fontsize="small", loc="best")
    return figure
