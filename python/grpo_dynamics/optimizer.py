"""The one optimizer specification, its update step (Numba and NumPy twin) and its dynamics.

`Optimizer` names an update rule with PyTorch semantics (docs/objectives.md section 4); the
softmax-bandit simulator (`simulate.BanditConfig.to_optimizer`), the objective family
(`objectives.train_two_position`) and the linear stability model
(`stability.Hyperparameters.to_optimizer`) all run or analyse this one rule:

- "sgd":        theta -= lr g;
- "heavy_ball": torch.optim.SGD with momentum and dampening d: the first buffer is the raw
                gradient, then buf = momentum buf + (1 - d) g, theta -= lr buf. momentum = 0 is
                accepted and is plain SGD (dampening then has no effect, as in torch);
- "adam":       torch.optim.Adam, weight_decay as coupled L2 (added to g);
- "adamw":      torch.optim.AdamW, decoupled decay theta *= 1 - lr weight_decay first.

For every kind, weight_decay is coupled L2 (g += weight_decay theta) except adamw's decoupled
decay; max_grad_norm clips the global gradient norm first (torch.nn.utils.clip_grad_norm_);
reset_state zeroes the buffers and the step count at each rollout refresh.

`numba_step` is the compiled update the kernels call; `numpy_step` is its plain twin (vectorised
over leading replica axes) that the references call and the tests compare it with.
`effective_dynamics` maps a rule onto the heavy-ball form of docs/model.md section 2 (discrete
model) and the oscillator of section 3 (continuum model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from . import _validation as _v

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "OPTIMIZER_KINDS",
    "ADAM_FAMILY",
    "OptimizerKind",
    "Optimizer",
    "OptimizerState",
    "numpy_step",
    "EffectiveDynamics",
    "effective_dynamics",
]

OptimizerKind = Literal["sgd", "heavy_ball", "adam", "adamw"]
OPTIMIZER_KINDS: tuple[OptimizerKind, ...] = ("sgd", "heavy_ball", "adam", "adamw")
# the kinds with Adam's moments (beta1, beta2, eps, a preconditioner)
ADAM_FAMILY: tuple[OptimizerKind, ...] = OPTIMIZER_KINDS[2:]

# ---- kernel layout: kind code = OPTIMIZER_KINDS.index(kind); hyperparameters in one array ----
SGD, HEAVY_BALL, ADAM, ADAMW = 0, 1, 2, 3
HYPER_LR = 0
HYPER_MOMENTUM = 1
HYPER_DAMPENING = 2
HYPER_BETA1 = 3
HYPER_BETA2 = 4
HYPER_EPS = 5
HYPER_WEIGHT_DECAY = 6
HYPER_MAX_GRAD_NORM = 7  # inf = no clipping
N_HYPER = 8


@dataclass(frozen=True)
class Optimizer:
    """An update rule with PyTorch semantics (module docstring; docs/objectives.md section 4).

    kind: one of OPTIMIZER_KINDS. lr: learning rate (> 0, parameter units per step).
    momentum: heavy-ball coefficient in [0, 1) (heavy_ball only, else 0). dampening: in [0, 1)
    (heavy_ball only, else 0). beta1, beta2: Adam's moment decays in [0, 1) (ignored by
    sgd/heavy_ball). eps: Adam's denominator offset (>= 0; with eps = 0 an all-zero history
    takes no step instead of 0/0). weight_decay: >= 0, coupled L2 except for adamw (decoupled;
    lr * weight_decay < 1 there so the decay keeps theta's sign). max_grad_norm: global
    gradient-norm clipping before the update (> 0), None = off. reset_state: zero the optimizer
    state at every rollout refresh.
    """

    kind: OptimizerKind = "adamw"
    lr: float = 1e-2
    momentum: float = 0.0
    dampening: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float | None = None
    reset_state: bool = False

    def __post_init__(self) -> None:
        kind = _v.choice("kind", self.kind, OPTIMIZER_KINDS)
        lr = _v.positive("lr", self.lr)
        decay = _v.nonnegative("weight_decay", self.weight_decay)
        values: dict[str, object] = {
            "lr": lr,
            "momentum": _v.in_range("momentum", self.momentum, 0.0, 1.0, hi_open=True),
            "dampening": _v.in_range("dampening", self.dampening, 0.0, 1.0, hi_open=True),
            "beta1": _v.in_range("beta1", self.beta1, 0.0, 1.0, hi_open=True),
            "beta2": _v.in_range("beta2", self.beta2, 0.0, 1.0, hi_open=True),
            "eps": _v.nonnegative("eps", self.eps),
            "weight_decay": decay,
            "max_grad_norm": None
            if self.max_grad_norm is None
            else _v.positive("max_grad_norm", self.max_grad_norm),
            "reset_state": _v.flag("reset_state", self.reset_state),
        }
        if kind != "heavy_ball":
            for name in ("momentum", "dampening"):
                if values[name] != 0.0:
                    hint = (
                        " (Adam's momentum is beta1)"
                        if kind in ADAM_FAMILY
                        else (" (use kind='heavy_ball')")
                    )
                    raise ValueError(
                        f"{name}: must be 0 for kind={kind!r}{hint}, got {_v.show(values[name])}"
                    )
        if kind == "adamw" and lr * decay >= 1.0:
            raise ValueError(
                f"weight_decay: must satisfy lr * weight_decay < 1 for kind='adamw' (the decay "
                f"theta *= 1 - lr weight_decay keeps theta's sign), got {_v.show(lr * decay)}"
            )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def has_momentum_buffer(self) -> bool:
        """True when the rule keeps a heavy-ball buffer (heavy_ball with momentum > 0)."""
        return self.kind == "heavy_ball" and self.momentum > 0.0

    def kernel_arguments(self) -> tuple[int, np.ndarray]:
        """(kind code, hyperparameter array) in the layout numba_step reads."""
        hyper = np.zeros(N_HYPER)
        hyper[HYPER_LR] = self.lr
        hyper[HYPER_MOMENTUM] = self.momentum
        hyper[HYPER_DAMPENING] = self.dampening
        hyper[HYPER_BETA1] = self.beta1
        hyper[HYPER_BETA2] = self.beta2
        hyper[HYPER_EPS] = self.eps
        hyper[HYPER_WEIGHT_DECAY] = self.weight_decay
        hyper[HYPER_MAX_GRAD_NORM] = np.inf if self.max_grad_norm is None else self.max_grad_norm
        return OPTIMIZER_KINDS.index(self.kind), hyper


# --------------------------------------------------------------------------------------------
# the update: compiled step and its NumPy twin
# --------------------------------------------------------------------------------------------
# Numba's on-disk cache of a caller (_bandit_kernels, _objective_kernels) is keyed on the
# caller's own file only: after editing numba_step, delete their cached *.nbi/*.nbc files in
# __pycache__ or they keep running the old step.
#
# numba_step is _numba_step compiled, made on first access (module __getattr__ below): the
# kernels import it, the stability analyses and the diagnosis that import this module for
# Optimizer never do, and importing Numba costs them ~0.3 s.
def _numba_step(theta, loss_grad, buf, exp_avg, exp_avg_sq, step_count, kind, hyper):
    # pragma: no cover - compiled
    """One update of theta (1-d) in place from the loss gradient; returns the new step count.

    step_count: updates taken since the state was last zeroed (0 before the first).
    loss_grad is modified (clipping, coupled L2). buf / exp_avg / exp_avg_sq: the state.
    """
    n = theta.shape[0]
    lr = hyper[HYPER_LR]
    weight_decay = hyper[HYPER_WEIGHT_DECAY]
    max_norm = hyper[HYPER_MAX_GRAD_NORM]
    if max_norm < np.inf:
        norm = 0.0
        for k in range(n):
            norm += loss_grad[k] * loss_grad[k]
        norm = np.sqrt(norm)
        coef = max_norm / (norm + 1e-6)  # torch.nn.utils.clip_grad_norm_
        if coef < 1.0:
            for k in range(n):
                loss_grad[k] *= coef
    if kind != ADAMW and weight_decay != 0.0:  # coupled L2 (SGD, heavy ball, Adam)
        for k in range(n):
            loss_grad[k] += weight_decay * theta[k]
    momentum = hyper[HYPER_MOMENTUM]
    if kind == SGD or (kind == HEAVY_BALL and momentum == 0.0):
        for k in range(n):
            theta[k] -= lr * loss_grad[k]
        return step_count + 1
    if kind == HEAVY_BALL:
        dampening = hyper[HYPER_DAMPENING]
        for k in range(n):
            if step_count == 0:
                buf[k] = loss_grad[k]  # torch: the first buffer is the raw gradient
            else:
                buf[k] = momentum * buf[k] + (1.0 - dampening) * loss_grad[k]
            theta[k] -= lr * buf[k]
        return step_count + 1
    beta1 = hyper[HYPER_BETA1]
    beta2 = hyper[HYPER_BETA2]
    eps = hyper[HYPER_EPS]
    t = step_count + 1
    bias1 = 1.0 - beta1**t
    bias2 = 1.0 - beta2**t
    for k in range(n):
        if kind == ADAMW:
            theta[k] *= 1.0 - lr * weight_decay  # AdamW: decoupled decay before the step
        exp_avg[k] = beta1 * exp_avg[k] + (1.0 - beta1) * loss_grad[k]
        # (1 - beta2) * g^2 with g^2 rounded first, as the NumPy twin and torch compute it
        exp_avg_sq[k] = beta2 * exp_avg_sq[k] + (1.0 - beta2) * (loss_grad[k] * loss_grad[k])
        denom = np.sqrt(exp_avg_sq[k] / bias2) + eps
        if denom > 0.0:  # eps = 0 with an all-zero history: no step instead of 0/0
            theta[k] -= lr * (exp_avg[k] / bias1) / denom
    return t


if TYPE_CHECKING:
    numba_step: Callable[..., int]  # made by __getattr__ on first access


def __getattr__(name: str) -> object:
    if name == "numba_step":
        from numba import njit

        step = njit(cache=True, error_model="numpy")(_numba_step)
        globals()["numba_step"] = step
        return step
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class OptimizerState:
    """Optimizer state for numpy_step: steps taken since the last reset and the buffers (the
    heavy-ball buffer, Adam's first and second moments), each shaped like theta."""

    step: int
    buf: np.ndarray
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> OptimizerState:
        """A fresh state (no step taken) for parameters of this shape."""
        return cls(0, np.zeros(shape), np.zeros(shape), np.zeros(shape))


def numpy_step(
    optimizer: Optimizer, theta: np.ndarray, loss_grad: np.ndarray, state: OptimizerState
) -> None:
    """The NumPy twin of numba_step: one update of theta in place, vectorised over leading axes
    (each row theta[..., :] is one parameter vector with its own clipping norm)."""
    grad = np.array(loss_grad, dtype=float)
    if optimizer.max_grad_norm is not None:
        norm = np.sqrt((grad**2).sum(axis=-1, keepdims=True))
        grad = grad * np.minimum(1.0, optimizer.max_grad_norm / (norm + 1e-6))
    if optimizer.kind != "adamw" and optimizer.weight_decay:
        grad = grad + optimizer.weight_decay * theta
    lr = optimizer.lr
    if optimizer.kind == "sgd" or (optimizer.kind == "heavy_ball" and optimizer.momentum == 0.0):
        theta -= lr * grad
    elif optimizer.kind == "heavy_ball":
        state.buf = (
            grad.copy()
            if state.step == 0
            else (optimizer.momentum * state.buf + (1.0 - optimizer.dampening) * grad)
        )
        theta -= lr * state.buf
    else:
        t = state.step + 1
        if optimizer.kind == "adamw":
            theta *= 1.0 - lr * optimizer.weight_decay
        state.exp_avg = optimizer.beta1 * state.exp_avg + (1.0 - optimizer.beta1) * grad
        state.exp_avg_sq = optimizer.beta2 * state.exp_avg_sq + (1.0 - optimizer.beta2) * grad**2
        m_hat = state.exp_avg / (1.0 - optimizer.beta1**t)
        denom = np.sqrt(state.exp_avg_sq / (1.0 - optimizer.beta2**t)) + optimizer.eps
        safe = np.where(denom > 0, denom, 1.0)
        theta -= np.where(denom > 0, lr * m_hat / safe, 0.0)
    state.step += 1


# --------------------------------------------------------------------------------------------
# consequence for the dynamics model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EffectiveDynamics:
    """An optimizer mapped onto docs/model.md section 2 (discrete) and section 3 (continuum).

    beta_effective, eta_effective: the heavy-ball form x_{t+1} = x_t + beta (x_t - x_{t-1})
    - c_lag x_{l(t)} - c_now x_t with c_lag = eta_eff kappa_lag and c_now = eta_eff kappa_now
    plus the weight-decay stiffness; mass = (1 + beta)/2 + c_lag L^2/2, damping = (1 - beta)
    - c_lag L, stiffness = c_lag + c_now; zeta = damping / (2 sqrt(mass stiffness)).
    """

    kind: str
    beta_effective: float
    eta_effective: float
    c_lag: float
    c_now: float
    mass: float
    damping: float
    stiffness: float
    zeta: float


def effective_dynamics(
    optimizer: Optimizer,
    *,
    kappa_lag: float,
    kappa_now: float = 0.0,
    lag: float = 0.0,
    grad_rms: float | None = None,
) -> EffectiveDynamics:
    """Effective momentum, learning rate, mass and damping of an optimizer (docs/model.md
    sections 2-3; docs/objectives.md section 8).

    sgd: beta 0, eta_eff = lr. heavy_ball (dampening d): beta = momentum, eta_eff = lr (1 - d)
    (momentum 0: plain SGD, eta_eff = lr). adam/adamw with a frozen preconditioner
    s = grad_rms + eps (grad_rms = sqrt(v_hat), same units as the gradient): beta = beta1,
    eta_eff = lr (1 - beta1) / s. Coupled L2 lambda adds eta_eff lambda to c_now; AdamW's
    decoupled decay gives beta = beta1 (1 - lr lambda) and adds lr lambda (1 - beta1) to c_now
    (exact for the linear recurrence). kappa_lag, kappa_now: curvatures (per unit eta_eff) of
    the stale and current forces; lag: L of docs/model.md section 3 in steps.
    """
    if not isinstance(optimizer, Optimizer):
        raise ValueError(f"optimizer: must be an Optimizer, got {type(optimizer).__name__}")
    kappa_lag = _v.finite("kappa_lag", kappa_lag)
    kappa_now = _v.finite("kappa_now", kappa_now)
    lag = _v.nonnegative("lag", lag)
    lr, decay = optimizer.lr, optimizer.weight_decay
    if optimizer.kind in ADAM_FAMILY:
        if grad_rms is None:
            raise ValueError("grad_rms: required for Adam-family optimizers (sqrt(v_hat))")
        scale = _v.nonnegative("grad_rms", grad_rms) + optimizer.eps
        if scale <= 0.0:
            raise ValueError(f"grad_rms: grad_rms + eps must be > 0, got {_v.show(scale)}")
        beta = optimizer.beta1
        eta_eff = lr * (1.0 - beta) / scale
    elif optimizer.has_momentum_buffer:
        beta, eta_eff = optimizer.momentum, lr * (1.0 - optimizer.dampening)
    else:
        beta, eta_eff = 0.0, lr
    c_lag = eta_eff * kappa_lag
    c_now = eta_eff * kappa_now
    if optimizer.kind == "adamw":
        c_now += lr * decay * (1.0 - beta)
        beta = beta * (1.0 - lr * decay)
    else:
        c_now += eta_eff * decay
    mass = (1.0 + beta) / 2.0 + c_lag * lag**2 / 2.0
    damping = (1.0 - beta) - c_lag * lag
    stiffness = c_lag + c_now
    # A negative kappa_lag (k3 KL at stale samples) can make mass <= 0: zeta is then undefined.
    zeta = (
        damping / (2.0 * math.sqrt(mass * stiffness))
        if mass > 0 and stiffness > 0
        else float("nan")
    )
    return EffectiveDynamics(
        optimizer.kind, beta, eta_eff, c_lag, c_now, mass, damping, stiffness, zeta
    )
