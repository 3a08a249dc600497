"""Monte Carlo softmax-bandit GRPO simulator (docs/simulate.md, MODEL.md s.7).

A policy pi = softmax(theta) over n_arms one-token actions is trained with the GRPO surrogate
(group advantages, optional PPO ratio and clip, k3 KL penalty to a reference policy) and a
PyTorch-form optimizer. Time is measured in optimizer steps. The simulator is the place where
the mean-field reduction of MODEL.md s.3 is exact (two arms: the state is one logit gap), so the
stability and 1/G predictions can be checked against it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import special

from . import _bandit_kernels as _kern

if TYPE_CHECKING:
    from .io import Run

__all__ = [
    "BanditConfig",
    "SimulationResult",
    "StationaryStats",
    "StiffnessResult",
    "measure_stiffness",
    "simulate",
    "two_arm_expected_drift",
]

_OPTIMIZERS = {"sgd": 0, "heavy_ball": 1, "adam": 2, "adamw": 3}
_ADVANTAGES = {"grpo": 0, "dr_grpo": 1}
_RATIOS = {"none": 0, "ppo": 1}
_REWARD_KINDS = ("bernoulli", "fixed")


def _as_logits(value: Sequence[float] | np.ndarray | None, n_arms: int, name: str) -> tuple:
    if value is None:
        return (0.0,) * n_arms
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1 or arr.shape[0] != n_arms:
        raise ValueError(f"{name} must have one logit per arm ({n_arms}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class BanditConfig:
    """One softmax-bandit GRPO setting (MODEL.md s.7; docs/simulate.md#configuration).

    arm_rewards: per arm, the success probability (reward_kind "bernoulli": the arm pays
        reward_scale with that probability, else 0) or the value (reward_kind "fixed": the
        arm always pays reward_scale * value). n_arms = len(arm_rewards) >= 2.
    group_size: G completions per prompt (>= 2, the unbiased std needs two).
    batch_prompts: B groups per rollout batch (independent copies of the bandit).
    steps: optimizer steps per replica; replicas: independent runs; seed: RNG seed.
    optimizer: "sgd" (momentum must be 0), "heavy_ball" (PyTorch SGD with momentum,
        dampening 0), "adam", "adamw" (PyTorch forms). momentum is beta1 for Adam.
    lr, momentum, beta2, eps, weight_decay: optimizer hyperparameters (weight decay is L2
        for sgd/heavy_ball/adam, decoupled for adamw).
    advantage: "grpo" ((r - mean) / (unbiased std + eps_std)) or "dr_grpo" (r - mean).
    refresh_interval: K, optimizer steps per rollout batch (1 = on-policy).
    ratio: "none" (score at current parameters, no importance ratio) or "ppo"
        (min(s A, clip(s, 1 - eps_low, 1 + eps_high) A), s = pi / pi_old).
    kl_coef: weight of the k3 KL estimator to the reference policy softmax(reference_logits)
        (default uniform). kl_estimator "k3": evaluated at the rollout samples as TRL does
        (with K > 1 its expected gradient depends on pi_old too); "k3_is": each sample's k3
        weighted by pi / pi_old, whose expected gradient is exactly pi - pi_ref at the current
        parameters (the convention of MODEL.md s.7).
    initial_logits: theta at step 0 (default zeros).
    """

    arm_rewards: Sequence[float] = (0.3, 0.7)
    reward_kind: Literal["bernoulli", "fixed"] = "bernoulli"
    reward_scale: float = 1.0
    group_size: int = 8
    batch_prompts: int = 1
    steps: int = 1000
    replicas: int = 64
    seed: int = 0
    optimizer: Literal["sgd", "heavy_ball", "adam", "adamw"] = "heavy_ball"
    lr: float = 0.05
    momentum: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    advantage: Literal["grpo", "dr_grpo"] = "grpo"
    eps_std: float = 1e-4
    refresh_interval: int = 1
    ratio: Literal["none", "ppo"] = "none"
    eps_low: float = 0.2
    eps_high: float = 0.2
    kl_coef: float = 0.0
    kl_estimator: Literal["k3", "k3_is"] = "k3"
    reference_logits: Sequence[float] | None = field(default=None)
    initial_logits: Sequence[float] | None = field(default=None)

    def __post_init__(self) -> None:
        rewards = np.asarray(self.arm_rewards, dtype=float)
        if rewards.ndim != 1 or rewards.shape[0] < 2:
            raise ValueError("arm_rewards must be a 1-d sequence with at least two arms")
        if not np.all(np.isfinite(rewards)):
            raise ValueError("arm_rewards must be finite")
        if self.reward_kind not in _REWARD_KINDS:
            raise ValueError(
                f"reward_kind must be one of {_REWARD_KINDS}, got {self.reward_kind!r}")
        if self.reward_kind == "bernoulli" and np.any((rewards < 0) | (rewards > 1)):
            raise ValueError(
                "arm_rewards must be probabilities in [0, 1] for reward_kind 'bernoulli'")
        object.__setattr__(self, "arm_rewards", tuple(float(v) for v in rewards))
        n_arms = rewards.shape[0]
        if not (math.isfinite(self.reward_scale) and self.reward_scale > 0):
            raise ValueError(f"reward_scale must be finite and > 0, got {self.reward_scale}")
        for name, low in (("group_size", 2), ("batch_prompts", 1), ("steps", 1),
                          ("replicas", 1), ("refresh_interval", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
            object.__setattr__(self, name, int(value))
        if (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))
                or not 0 <= self.seed < 2**63):
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {tuple(_OPTIMIZERS)}, got {self.optimizer!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.optimizer == "sgd" and self.momentum != 0:
            raise ValueError("momentum must be 0 for optimizer 'sgd' (use 'heavy_ball')")
        if not 0 <= self.beta2 < 1:
            raise ValueError(f"beta2 must be in [0, 1), got {self.beta2}")
        if not (math.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"eps must be finite and > 0, got {self.eps}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be finite and >= 0, got {self.weight_decay}")
        if self.advantage not in _ADVANTAGES:
            raise ValueError(
                f"advantage must be one of {tuple(_ADVANTAGES)}, got {self.advantage!r}")
        if not (math.isfinite(self.eps_std) and self.eps_std >= 0):
            raise ValueError(f"eps_std must be finite and >= 0, got {self.eps_std}")
        if self.ratio not in _RATIOS:
            raise ValueError(f"ratio must be one of {tuple(_RATIOS)}, got {self.ratio!r}")
        if not (math.isfinite(self.eps_low) and 0 <= self.eps_low < 1):
            raise ValueError(f"eps_low must be in [0, 1), got {self.eps_low}")
        if not (math.isfinite(self.eps_high) and self.eps_high >= 0):
            raise ValueError(f"eps_high must be finite and >= 0, got {self.eps_high}")
        if not (math.isfinite(self.kl_coef) and self.kl_coef >= 0):
            raise ValueError(f"kl_coef must be finite and >= 0, got {self.kl_coef}")
        if self.kl_estimator not in ("k3", "k3_is"):
            raise ValueError(f"kl_estimator must be 'k3' or 'k3_is', got {self.kl_estimator!r}")
        object.__setattr__(self, "reference_logits",
                           _as_logits(self.reference_logits, n_arms, "reference_logits"))
        object.__setattr__(self, "initial_logits",
                           _as_logits(self.initial_logits, n_arms, "initial_logits"))

    @property
    def n_arms(self) -> int:
        """Number of arms (actions)."""
        return len(self.arm_rewards)

    def replace(self, **changes: object) -> BanditConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def reward_cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(r_hi, r_lo, p_hi): each arm pays r_hi with probability p_hi, else r_lo."""
        rewards = np.asarray(self.arm_rewards, dtype=float)
        if self.reward_kind == "bernoulli":
            return (np.full_like(rewards, self.reward_scale), np.zeros_like(rewards), rewards)
        values = self.reward_scale * rewards
        return values, values.copy(), np.ones_like(rewards)

    def arm_means(self) -> np.ndarray:
        """Expected reward of each arm."""
        r_hi, r_lo, p_hi = self.reward_cells()
        return p_hi * r_hi + (1 - p_hi) * r_lo

    def reference_policy(self) -> np.ndarray:
        """softmax(reference_logits)."""
        return special.softmax(np.asarray(self.reference_logits, dtype=float))


@dataclass(frozen=True)
class StationaryStats:
    """Stationary statistics of one observable over replicas and steps after a burn-in.

    mean, variance: pooled over replicas and post-burn-in steps (variance around the grand
    mean); tau_int: integrated autocorrelation time in steps (1 + 2 sum of the autocorrelation,
    Sokal's automatic window); *_se: standard errors (spread over replicas for mean and
    variance, Sokal's formula for tau_int). docs/simulate.md#stationary-statistics.
    """

    mean: float
    mean_se: float
    variance: float
    variance_se: float
    tau_int: float
    tau_int_se: float
    samples: int


def _autocorrelation(series: np.ndarray, max_lag: int, mean: float | None = None) -> np.ndarray:
    """Autocorrelation of (replicas, steps) data pooled over replicas, lags 0..max_lag."""
    centred = series - (series.mean() if mean is None else mean)
    steps = centred.shape[1]
    size = 1 << int(math.ceil(math.log2(2 * steps)))
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(spectrum * spectrum.conj(), n=size, axis=1)[:, : max_lag + 1]
    acov = acov.sum(axis=0) / (centred.shape[0] * (steps - np.arange(max_lag + 1)))
    return acov / acov[0]


@dataclass(frozen=True)
class SimulationResult:
    """Per-step observables of a simulation, each an array of shape (replicas, steps).

    expected_reward: expected reward of the current policy, sum_a pi_a E[r | a] (reward units);
    group_reward_std: mean over the batch of the within-group (unbiased) reward std of the
    rollouts used at that step; zero_std_fraction: fraction of groups with zero reward std;
    entropy: policy entropy (nats); kl_to_reference: KL(pi || pi_ref) (nats); clip_fraction:
    fraction of samples whose gradient the PPO clip zeroes. Observables are recorded before
    the step's update (the policy that produced that step's gradient). final_logits:
    (replicas, n_arms) logits after the last step. docs/simulate.md#result.
    """

    config: BanditConfig
    expected_reward: np.ndarray
    group_reward_std: np.ndarray
    zero_std_fraction: np.ndarray
    entropy: np.ndarray
    kl_to_reference: np.ndarray
    clip_fraction: np.ndarray
    final_logits: np.ndarray

    _OBSERVABLES = ("expected_reward", "group_reward_std", "zero_std_fraction", "entropy",
                    "kl_to_reference", "clip_fraction")

    def __repr__(self) -> str:
        # concise: the arrays are (replicas, steps) and would print kilobytes
        replicas, steps = np.shape(self.expected_reward)
        c = self.config
        final = np.asarray(self.expected_reward)[:, -1] if steps else np.array([np.nan])
        return (f"SimulationResult({replicas} replicas x {steps} steps, {c.optimizer} "
                f"lr={c.lr:g} momentum={c.momentum:g} K={c.refresh_interval} G={c.group_size}, "
                f"final expected reward {float(np.mean(final)):.4g})")

    def to_run(self, replica: int = 0, *, seed: int | None = None) -> Run:
        """One replica as a logged run (grpo_dynamics.io.Run), as a trainer would log it.

        reward is the batch mean of the B G sampled rewards: for 0/1 rewards (bernoulli arms,
        or fixed arms valued 0 or 1) reward_scale x Binomial(B G, p) / (B G) with p the
        expected reward / reward_scale, drawn with ``seed`` (default: the config's); for graded
        fixed rewards the expected reward itself. Also reward_std, frac_reward_zero_std,
        entropy, kl and learning_rate per step (steps 1..steps), and the setting as metadata
        (docs/simulate.md#result).
        """
        from .io import Run

        c = self.config
        replicas = np.shape(self.expected_reward)[0]
        if isinstance(replica, bool) or not isinstance(replica, (int, np.integer)) \
                or not 0 <= replica < replicas:
            raise ValueError(f"replica: must be an integer in [0, {replicas - 1}], got {replica!r}")
        expected = np.asarray(self.expected_reward[replica], dtype=float)
        samples = c.group_size * c.batch_prompts
        rng = np.random.default_rng(c.seed if seed is None else seed)
        if c.reward_kind == "bernoulli" or set(map(float, c.arm_rewards)) <= {0.0, 1.0}:
            p = np.clip(expected / c.reward_scale, 0.0, 1.0)
            reward = c.reward_scale * rng.binomial(samples, p) / samples
        else:
            reward = expected  # graded fixed rewards: the expected reward itself
        steps = np.arange(1, expected.size + 1)
        metadata = {
            "simulated": "bandit",
            "group_size": c.group_size,
            "learning_rate": c.lr,
            "num_iterations": c.refresh_interval,
            "beta": c.kl_coef,
            "momentum": c.momentum,
            "seed": c.seed if seed is None else seed,
        }
        return Run.from_arrays(
            steps,
            reward,
            metadata=metadata,
            reward_std=self.group_reward_std[replica],
            frac_reward_zero_std=self.zero_std_fraction[replica],
            entropy=self.entropy[replica],
            kl=self.kl_to_reference[replica],
            learning_rate=np.full(expected.size, c.lr),
        )

    def _series(self, burn_in: int, observable: str) -> np.ndarray:
        if observable not in self._OBSERVABLES:
            raise ValueError(f"observable must be one of {self._OBSERVABLES}, got {observable!r}")
        steps = self.config.steps
        if isinstance(burn_in, bool) or not isinstance(burn_in, (int, np.integer)) \
                or not 0 <= burn_in <= steps - 4:
            raise ValueError(f"burn_in must be an integer in [0, steps - 4], got {burn_in!r}")
        return np.asarray(getattr(self, observable))[:, burn_in:]

    def autocorrelation(self, burn_in: int, max_lag: int,
                        observable: str = "expected_reward") -> np.ndarray:
        """Stationary autocorrelation at lags 0..max_lag, pooled over replicas."""
        series = self._series(burn_in, observable)
        if not 1 <= max_lag < series.shape[1]:
            raise ValueError(f"max_lag must be in [1, {series.shape[1] - 1}], got {max_lag}")
        return _autocorrelation(series, max_lag)

    def stationary(self, burn_in: int, observable: str = "expected_reward") -> StationaryStats:
        """Mean, variance and integrated autocorrelation time after `burn_in` steps."""
        series = self._series(burn_in, observable)
        replicas, steps = series.shape
        mean = float(series.mean())
        per_replica_var = ((series - mean) ** 2).mean(axis=1)
        variance = float(per_replica_var.mean())
        if replicas > 1:
            mean_se = float(series.mean(axis=1).std(ddof=1) / math.sqrt(replicas))
            variance_se = float(per_replica_var.std(ddof=1) / math.sqrt(replicas))
        else:
            mean_se = variance_se = math.nan
        if variance == 0.0:
            return StationaryStats(mean, mean_se, 0.0, variance_se, math.nan, math.nan,
                                   series.size)
        rho = _autocorrelation(series, steps - 1, mean)
        tau = 1.0
        window = steps - 1
        for lag in range(1, steps):
            tau += 2.0 * rho[lag]
            if lag >= 5.0 * tau:  # Sokal's automatic window
                window = lag
                break
        tau_se = tau * math.sqrt(2.0 * (2 * window + 1) / series.size)
        return StationaryStats(mean, mean_se, variance, variance_se, float(tau), tau_se,
                               series.size)


def _kernel_options(config: BanditConfig) -> dict:
    return dict(
        optimizer=_OPTIMIZERS[config.optimizer], advantage=_ADVANTAGES[config.advantage],
        ratio=_RATIOS[config.ratio], kl_is=config.kl_estimator == "k3_is",
    )


def simulate(config: BanditConfig) -> SimulationResult:
    """Simulate config.replicas independent GRPO runs of the softmax bandit.

    Parallel over replicas (Numba threads); each replica has its own RNG stream derived from
    (seed, replica), so results are identical for any thread count. Cost per step is
    O(batch_prompts * n_arms) at each refresh and O(n_arms) otherwise (docs/simulate.md).
    """
    if not isinstance(config, BanditConfig):
        raise ValueError(f"config must be a BanditConfig, got {type(config).__name__}")
    r_hi, r_lo, p_hi = config.reward_cells()
    shape = (config.replicas, config.steps)
    outs = [np.full(shape, np.nan) for _ in range(6)]
    final = np.empty((config.replicas, config.n_arms))
    opts = _kernel_options(config)
    _kern.simulate_kernel(  # type: ignore[call-arg]
        r_hi, r_lo, p_hi, config.group_size, config.batch_prompts, config.steps,
        config.replicas, config.seed, opts["optimizer"], config.lr, config.momentum,
        config.beta2, config.eps, config.weight_decay, opts["advantage"], config.eps_std,
        config.refresh_interval, opts["ratio"], config.eps_low, config.eps_high,
        config.kl_coef, opts["kl_is"], np.asarray(config.reference_logits, dtype=float),
        np.asarray(config.initial_logits, dtype=float), *outs, final,
    )
    return SimulationResult(config, outs[0], outs[1], outs[2], outs[3], outs[4], outs[5], final)


# ---------------------------------------------------------------- exact two-arm drift


def _two_arm_terms(config: BanditConfig, gap_old: float, gap: float):
    """All (n1, k1, k0) outcomes of one two-arm group: probabilities and gap gradients.

    Arm 1 is the second arm, gap = theta_1 - theta_0. Returns (prob, d_gap, g_1) where d_gap is
    the ascent gradient of the group surrogate on theta_1 - theta_0 and g_1 the one on theta_1.
    """
    r_hi, r_lo, p_hi = config.reward_cells()
    group = config.group_size
    # expit of both signs: 1 - expit(gap) underflows to 0 for large gaps
    pi = np.array([special.expit(-gap), special.expit(gap)])
    pi_old = np.array([special.expit(-gap_old), special.expit(gap_old)])
    ref = config.reference_policy()
    n1, k1, k0 = np.meshgrid(np.arange(group + 1), np.arange(group + 1), np.arange(group + 1),
                             indexing="ij")
    n0 = group - n1
    valid = (k1 <= n1) & (k0 <= n0)
    n1, k1, k0, n0 = n1[valid], k1[valid], k0[valid], n0[valid]
    prob = (special.binom(group, n1) * pi_old[1] ** n1 * pi_old[0] ** n0
            * special.binom(n1, k1) * p_hi[1] ** k1 * (1 - p_hi[1]) ** (n1 - k1)
            * special.binom(n0, k0) * p_hi[0] ** k0 * (1 - p_hi[0]) ** (n0 - k0))
    # cells: (arm, reward value, count)
    cells = [(1, r_hi[1], k1), (1, r_lo[1], n1 - k1), (0, r_hi[0], k0), (0, r_lo[0], n0 - k0)]
    total = sum(r * c for _, r, c in cells)
    mean = total / group
    r_max = np.max([np.where(c > 0, r, -np.inf) for _, r, c in cells], axis=0)
    r_min = np.min([np.where(c > 0, r, np.inf) for _, r, c in cells], axis=0)
    degenerate = r_max == r_min
    std = np.sqrt(sum(c * (r - mean) ** 2 for _, r, c in cells) / (group - 1))
    # degenerate groups get advantage 0 below; keep their (unused) scale finite
    spread = np.where(degenerate, 1.0, std + config.eps_std)
    scale = 1.0 / spread if config.advantage == "grpo" else np.ones_like(std)
    weight = [np.zeros_like(mean), np.zeros_like(mean)]
    for arm, r, c in cells:
        adv = np.where(degenerate, 0.0, (r - mean) * scale)
        if config.ratio == "ppo":
            s = pi[arm] / pi_old[arm]
            keep = np.where(adv > 0, s <= 1 + config.eps_high, s >= 1 - config.eps_low)
            weight[arm] = weight[arm] + np.where(keep, c * s * adv, 0.0)
        else:
            weight[arm] = weight[arm] + c * adv
    n_arm = (n0, n1)
    for arm in (0, 1):
        kl_weight = config.kl_coef * n_arm[arm] * (1 - ref[arm] / pi[arm])
        if config.kl_estimator == "k3_is":
            kl_weight = kl_weight * pi[arm] / pi_old[arm]
        weight[arm] = weight[arm] - kl_weight
    w0, w1 = weight[0] / group, weight[1] / group
    g1 = w1 - pi[1] * (w0 + w1)
    g0 = w0 - pi[0] * (w0 + w1)
    return prob, g1 - g0, g1


def two_arm_expected_drift(config: BanditConfig, gap_old: float, gap: float
                           ) -> tuple[float, float]:
    """Exact expected surrogate gradient on the logit gap of a two-arm bandit, and its variance.

    gap_old: theta_1 - theta_0 of the sampling policy; gap: of the current parameters.
    Returns (mean, per-group variance) of the ascent gradient of J on theta_1 - theta_0,
    by summing over all O(G^3) outcomes (n1 ~ Binomial(G, pi_old_1), successes per arm);
    weight decay is not included. MODEL.md s.7, docs/simulate.md#two-arm-exact-drift.
    """
    if config.n_arms != 2:
        raise ValueError(f"config.arm_rewards must have two arms, got {config.n_arms}")
    prob, d_gap, _ = _two_arm_terms(config, float(gap_old), float(gap))
    mean = float(np.sum(prob * d_gap))
    return mean, float(np.sum(prob * d_gap**2) - mean**2)


# ---------------------------------------------------------------- stiffness


@dataclass(frozen=True)
class StiffnessResult:
    """Linearised drift at the fixed point along the mean-field direction (MODEL.md s.3, s.7).

    The mean-field coordinate is y = direction . theta (unit direction in logit space; for two
    arms (-1, 1)/sqrt(2), the logit gap over sqrt 2). The expected update of y is
    -(kappa_lag y_old + kappa_now y) per unit effective learning rate: kappa_lag is the
    curvature of the force computed from the sampling policy's rollouts (advantage term),
    kappa_now the one evaluated at the current parameters (KL, weight decay, IS-corrected part).
    c_lag = eta_eff kappa_lag and c_now = eta_eff kappa_now are the dimensionless stiffnesses
    of MODEL.md s.3. noise_variance is the per-group variance of the gradient along y, so the
    per-step noise of y is e_t = eta_eff xi_t with Var(xi_t) = noise_variance / batch_prompts.
    Standard errors are 0 for method "exact". docs/simulate.md#stiffness.
    """

    kappa_lag: float
    kappa_lag_se: float
    kappa_now: float
    kappa_now_se: float
    eta_eff: float
    noise_variance: float
    fixed_point_logits: np.ndarray
    fixed_point_reward: float
    direction: np.ndarray
    method: str

    @property
    def kappa(self) -> float:
        """Total curvature kappa_lag + kappa_now."""
        return self.kappa_lag + self.kappa_now

    @property
    def c_lag(self) -> float:
        """Dimensionless lagged stiffness eta_eff * kappa_lag."""
        return self.eta_eff * self.kappa_lag

    @property
    def c_now(self) -> float:
        """Dimensionless current stiffness eta_eff * kappa_now."""
        return self.eta_eff * self.kappa_now

    @property
    def c(self) -> float:
        """Dimensionless total stiffness c_lag + c_now."""
        return self.c_lag + self.c_now


def _eta_eff(config: BanditConfig, second_moment: float) -> float:
    """Effective learning rate (MODEL.md s.2); Adam uses the frozen preconditioner at y*."""
    if config.optimizer in ("sgd", "heavy_ball"):
        return config.lr
    s = math.sqrt(second_moment) + config.eps
    return config.lr * (1 - config.momentum) / s


def _decay_curvature(config: BanditConfig, eta_eff: float) -> float:
    """Weight decay as a current curvature; AdamW's decoupled decay to first order."""
    if config.optimizer == "adamw":
        return config.lr * config.weight_decay * (1 - config.momentum) / eta_eff
    return config.weight_decay


def _bracket(func, start: float) -> tuple[float, float]:
    """A sign-changing interval of func, searched outward from start by doubling steps."""
    value = func(start)
    if value == 0.0:
        return start, start + 1e-12
    width = 0.25
    while width <= 64:
        for other in (start + width, start - width):
            if np.sign(func(other)) != np.sign(value):
                return (start, other) if other > start else (other, start)
        width *= 2
    raise ValueError("no interior fixed point within 64 of the initial logit gap: "
                     "add kl_coef or weight_decay")


def _exact_stiffness(config: BanditConfig, step: float) -> StiffnessResult:
    from scipy import optimize  # ~0.17 s to import, a quarter of the package's: only here

    sqrt2 = math.sqrt(2.0)
    initial = np.asarray(config.initial_logits, dtype=float)
    start_gap = float(initial[1] - initial[0])
    eta = config.lr
    decay = config.weight_decay
    for _ in range(1 if config.optimizer in ("sgd", "heavy_ball") else 6):
        # fixed point: expected gap drift balanced by weight decay (iterated for Adam's s)

        def balance(gap: float, decay: float = decay) -> float:
            return two_arm_expected_drift(config, gap, gap)[0] - decay * gap

        low, high = _bracket(balance, start_gap)
        gap_star = optimize.brentq(balance, low, high, xtol=1e-13, rtol=1e-14)
        prob, d_gap, g1 = _two_arm_terms(config, gap_star, gap_star)
        # Adam's per-coordinate second moment of the batch-mean gradient (g_0 = -g_1)
        m1 = float(np.sum(prob * g1))
        second = m1**2 + (float(np.sum(prob * g1**2)) - m1**2) / config.batch_prompts
        eta = _eta_eff(config, second)
        decay = _decay_curvature(config, eta)
    mean_star = float(np.sum(prob * d_gap))
    var_star = float(np.sum(prob * d_gap**2)) - mean_star**2

    def drift(gap_old: float, gap: float) -> float:
        return two_arm_expected_drift(config, gap_old, gap)[0]

    kappa_lag = -(drift(gap_star + step, gap_star) - drift(gap_star - step, gap_star)) / (2 * step)
    kappa_now = -(drift(gap_star, gap_star + step) - drift(gap_star, gap_star - step)) / (2 * step)
    logits = np.array([-gap_star / 2, gap_star / 2])
    reward = float(special.softmax(logits) @ config.arm_means())
    return StiffnessResult(kappa_lag, 0.0, kappa_now + decay, 0.0, eta, var_star / 2.0,
                           logits, reward, np.array([-1.0, 1.0]) / sqrt2, "exact")


def _probe(config: BanditConfig, theta_old_a, theta_a, theta_old_b, theta_b, direction,
           groups: int, seed: int) -> np.ndarray:
    """Per-chunk sums from the common-random-number probe kernel (see probe_kernel)."""
    r_hi, r_lo, p_hi = config.reward_cells()
    chunks = 64
    per = max(1, groups // chunks)
    out = np.zeros((chunks, 5 + 2 * config.n_arms))
    opts = _kernel_options(config)
    _kern.probe_kernel(
        r_hi, r_lo, p_hi, config.group_size, opts["advantage"], config.eps_std, opts["ratio"],
        config.eps_low, config.eps_high, config.kl_coef, opts["kl_is"], config.reference_policy(),
        special.softmax(theta_old_a), special.softmax(theta_a), special.softmax(theta_old_b),
        special.softmax(theta_b), np.ascontiguousarray(direction, dtype=float), per, chunks,
        seed, out)
    return out / per


def _difference_quotient(chunk_sums: np.ndarray, step: float) -> tuple[float, float]:
    """Central difference (a - b) / (2 step) and its standard error over the chunks."""
    diffs = (chunk_sums[:, 0] - chunk_sums[:, 1]) / (2 * step)
    return float(diffs.mean()), float(diffs.std(ddof=1) / math.sqrt(diffs.size))


def _zero_sum_basis(n_arms: int) -> np.ndarray:
    """Orthonormal basis (rows) of the logit directions that change the policy."""
    centred = np.eye(n_arms) - 1.0 / n_arms
    q, _ = np.linalg.qr(centred[:, : n_arms - 1])
    return q.T


def _monte_carlo_stiffness(config: BanditConfig, step: float, groups: int,
                           start: np.ndarray | None) -> StiffnessResult:
    n_arms = config.n_arms
    basis = _zero_sum_basis(n_arms)
    arm_means = config.arm_means()
    seed = config.seed
    if start is None:
        # start Newton from where the simulated runs settle (mean final logits)
        warm = simulate(config.replace(refresh_interval=1, replicas=min(config.replicas, 32),
                                       steps=min(config.steps, 2000)))
        theta = warm.final_logits.mean(axis=0)
    else:
        theta = np.asarray(start, dtype=float).copy()
    theta = theta - theta.mean()
    eta = config.lr
    second = 0.0
    decay = config.weight_decay
    for iteration in range(12):
        # Newton on the expected on-policy drift in the zero-sum subspace (CRN Jacobian)
        jac = np.empty((n_arms - 1, n_arms - 1))
        center = _probe(config, theta, theta, theta, theta, basis[0], groups, seed + 1000)
        mean_grad = center[:, 5:5 + n_arms].mean(axis=0)
        second_arm = center[:, 5 + n_arms:].mean(axis=0)
        second = float(np.mean(mean_grad**2 + (second_arm - mean_grad**2) / config.batch_prompts))
        eta = _eta_eff(config, second)
        decay = _decay_curvature(config, eta)
        force = basis @ (mean_grad - decay * theta)
        force_se = np.sqrt(np.maximum(second_arm - mean_grad**2, 0) / (groups))
        for j, e in enumerate(basis):
            col = np.empty(n_arms - 1)
            for i, ei in enumerate(basis):
                sums = _probe(config, theta + step * e, theta + step * e, theta - step * e,
                              theta - step * e, ei, groups // 4, seed + 17 * iteration + j)
                col[i] = _difference_quotient(sums, step)[0] - decay * (ei @ e)
            jac[:, j] = col
        try:
            move = -np.linalg.solve(jac, force)
        except np.linalg.LinAlgError as exc:
            raise ValueError("no interior fixed point found: add kl_coef or weight_decay") from exc
        length = np.linalg.norm(move)
        if length > 2.0:
            move *= 2.0 / length  # damped Newton: the drift is only locally linear
        theta = theta + basis.T @ move
        if not np.all(np.isfinite(theta)) or np.abs(theta).max() > 40:
            raise ValueError("no interior fixed point found: add kl_coef or weight_decay")
        if length < 1e-3 or np.all(np.abs(force) < 3 * force_se.max() / math.sqrt(n_arms)):
            break
    pi = special.softmax(theta)
    # mean-field direction: the logit direction that moves the expected reward fastest
    direction = pi * (arm_means - pi @ arm_means)
    norm = np.linalg.norm(direction)
    direction = direction / norm if norm > 0 else basis[0]
    plus, minus = theta + step * direction, theta - step * direction
    lag = _probe(config, plus, theta, minus, theta, direction, groups, seed + 101)
    now = _probe(config, theta, plus, theta, minus, direction, groups, seed + 202)
    center = _probe(config, theta, theta, theta, theta, direction, groups, seed + 303)
    kappa_lag, kappa_lag_se = _difference_quotient(lag, step)
    kappa_now, kappa_now_se = _difference_quotient(now, step)
    noise = float(center[:, 2].mean() - center[:, 0].mean() ** 2)
    return StiffnessResult(-kappa_lag, kappa_lag_se, -kappa_now + decay, kappa_now_se, eta,
                           noise, theta, float(pi @ arm_means), direction, "monte_carlo")


def measure_stiffness(config: BanditConfig,
                      method: Literal["auto", "exact", "monte_carlo"] = "auto", *,
                      step: float | None = None, groups: int = 400_000,
                      start_logits: Sequence[float] | None = None) -> StiffnessResult:
    """Curvatures kappa_lag, kappa_now of the expected drift at the fixed point (MODEL.md s.7).

    method "exact" (two arms only): the fixed point gap solves E[drift] = weight decay force by
    the exact O(G^3) outcome sum, and the partial derivatives with respect to the sampling
    policy (kappa_lag) and the current parameters (kappa_now) are central differences of that
    exact sum (step 1e-5). method "monte_carlo" (any config): damped Newton on a Monte Carlo
    drift finds the fixed point, then the drift along the mean-field direction is averaged
    over `groups` groups at theta +- step (default 0.05) with common random numbers and
    differenced; errors are standard errors over 64 independent chunks. "auto" = exact for two
    arms. Adam-family: eta_eff uses the preconditioner frozen at the fixed point.
    docs/simulate.md#stiffness.
    """
    if not isinstance(config, BanditConfig):
        raise ValueError(f"config must be a BanditConfig, got {type(config).__name__}")
    if method not in ("auto", "exact", "monte_carlo"):
        raise ValueError(f"method must be 'auto', 'exact' or 'monte_carlo', got {method!r}")
    if method == "auto":
        method = "exact" if config.n_arms == 2 else "monte_carlo"
    if method == "exact" and config.n_arms != 2:
        raise ValueError("method 'exact' needs two arms (config.arm_rewards)")
    if step is not None and not (math.isfinite(step) and 0 < step < 1):
        raise ValueError(f"step must be in (0, 1), got {step}")
    if not isinstance(groups, (int, np.integer)) or groups < 6400:
        raise ValueError(f"groups must be an integer >= 6400, got {groups!r}")
    if method == "exact":
        return _exact_stiffness(config, 1e-5 if step is None else step)
    start = None if start_logits is None else _as_logits(start_logits, config.n_arms,
                                                          "start_logits")
    return _monte_carlo_stiffness(config, 0.05 if step is None else step, int(groups),
                                  None if start is None else np.array(start))
