"""Monte Carlo softmax-bandit GRPO simulator (docs/simulate.md, docs/model.md section 6).

A policy pi = softmax(theta) over n_arms one-token actions is trained with the GRPO surrogate
(group advantages, optional PPO ratio and clip, k3 KL penalty to a reference policy) and a
PyTorch-form optimizer (optimizer.Optimizer). Time is measured in optimizer steps. The
simulator is the place where the mean-field reduction of docs/model.md section 2 is exact (two
arms: the state is one logit gap), so the stability and 1/G predictions can be checked against
it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from . import _validation as _v
from ._vocabulary import (
    ADVANTAGES,
    KL,
    LEGACY_ADVANTAGES,
    LEGACY_RATIOS,
    RATIOS,
    Advantage,
    Ratio,
    check_kl,
)
from .optimizer import ADAM_FAMILY, OPTIMIZER_KINDS, Optimizer, OptimizerKind, effective_dynamics

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

_REWARD_KINDS = ("bernoulli", "fixed")

# Size caps: the largest runs that finish in about a minute on one core and fit in memory
# (docs/reliability.md). A binomial draw of a group of G costs O(sqrt(G)) steps (2**62 hung);
# every (replica, step) cell stores 6 float64 observables (48 bytes: 25e6 cells ~ 1.2 GB); each
# refresh draws batch_prompts * n_arms binomials per replica.
MAX_GROUP_SIZE = 2**30
MAX_ARMS = 100_000
MAX_CELLS = 25_000_000  # steps * replicas
MAX_DRAWS = 2_000_000_000  # steps * replicas * batch_prompts * n_arms
# the per-step observables of a SimulationResult (also the keys of the reference simulation)
OBSERVABLES = (
    "expected_reward",
    "group_reward_std",
    "zero_std_fraction",
    "entropy",
    "kl_to_reference",
    "clip_fraction",
)


def _as_logits(value: Sequence[float] | np.ndarray | None, n_arms: int, name: str) -> tuple:
    if value is None:
        return (0.0,) * n_arms
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1 or arr.shape[0] != n_arms:
        raise ValueError(f"{name}: must have one logit per arm ({n_arms}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: must be finite, got {arr.tolist()}")
    return tuple(float(v) for v in arr)


def _check_size(values: dict[str, object], n_arms: int) -> None:
    """Rejects runs that cannot finish (the caps above), naming the argument and the cap."""
    group_size, batch_prompts = int(values["group_size"]), int(values["batch_prompts"])  # type: ignore[call-overload]
    steps, replicas = int(values["steps"]), int(values["replicas"])  # type: ignore[call-overload]
    if group_size > MAX_GROUP_SIZE:
        raise ValueError(
            f"group_size: must be <= {MAX_GROUP_SIZE} (2**30; larger groups do not finish), "
            f"got {group_size}"
        )
    if n_arms > MAX_ARMS:
        raise ValueError(f"arm_rewards: must have <= {MAX_ARMS} arms, got {n_arms}")
    if steps * replicas > MAX_CELLS:
        raise ValueError(
            f"steps: steps * replicas must be <= {MAX_CELLS} (6 float64 observables per cell), "
            f"got {steps} * {replicas} = {steps * replicas}"
        )
    draws = steps * replicas * batch_prompts * n_arms
    if draws > MAX_DRAWS:
        raise ValueError(
            f"batch_prompts: steps * replicas * batch_prompts * n_arms must be <= {MAX_DRAWS} "
            f"(binomial draws; more does not finish in minutes), got {draws}"
        )


@dataclass(frozen=True)
class BanditConfig:
    """One softmax-bandit GRPO setting (docs/model.md section 6; docs/simulate.md#the-bandit).

    arm_rewards: per arm, the success probability (reward_kind "bernoulli": the arm pays
        reward_scale with that probability, else 0) or the value (reward_kind "fixed": the
        arm always pays reward_scale * value). n_arms = len(arm_rewards) >= 2.
    group_size: G completions per prompt (>= 2, the unbiased std needs two).
    batch_prompts: B groups per rollout batch (independent copies of the bandit).
    steps: optimizer steps per replica; replicas: independent runs; seed: RNG seed in
        [0, 2**63).
    optimizer, lr, momentum, dampening, beta2, eps, weight_decay, max_grad_norm, reset_state:
        the update rule, validated and run as `to_optimizer()` (optimizer.Optimizer: kinds
        "sgd", "heavy_ball", "adam", "adamw" with PyTorch semantics). momentum is the
        heavy-ball coefficient, or Adam's beta1 (so it must be 0 for "sgd"; "heavy_ball" with
        momentum 0 is plain SGD). weight_decay is L2 for sgd/heavy_ball/adam, decoupled for
        adamw.
    advantage: "std_normalized" ((r - mean) / (unbiased std + eps_std)) or "centered"
        (r - mean); the first release's "grpo" / "dr_grpo" are accepted and stored as these.
    refresh_interval: K, optimizer steps per rollout batch (1 = on-policy).
    ratio: "none" (score at current parameters, no importance ratio), "token" or "sequence"
        (s = pi / pi_old; the two coincide for one-token answers; "ppo" is accepted as
        "token"). clip: with a ratio, use min(s A, clip(s, 1 - eps_low, 1 + eps_high) A).
    kl, kl_coef: weight kl_coef of a KL penalty to the reference policy
        softmax(reference_logits) (default uniform). kl "k3": the k3 estimator evaluated at the
        rollout samples as TRL does (with K > 1 its expected gradient depends on pi_old too);
        "k3_is": each sample's k3 weighted by pi / pi_old, whose expected gradient is exactly
        pi - pi_ref at the current parameters (the convention of docs/model.md section 6);
        "none": no KL term (kl_coef must be 0).
    initial_logits: theta at step 0 (default zeros).
    The option names are those of objectives.Objective (grpo_dynamics._vocabulary).
    """

    arm_rewards: Sequence[float] = (0.3, 0.7)
    reward_kind: Literal["bernoulli", "fixed"] = "bernoulli"
    reward_scale: float = 1.0
    group_size: int = 8
    batch_prompts: int = 1
    steps: int = 1000
    replicas: int = 64
    seed: int = 0
    optimizer: OptimizerKind = "heavy_ball"
    lr: float = 0.05
    momentum: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    advantage: Advantage = "std_normalized"
    eps_std: float = 1e-4
    refresh_interval: int = 1
    ratio: Ratio = "none"
    eps_low: float = 0.2
    eps_high: float = 0.2
    kl_coef: float = 0.0
    kl: KL = "k3"
    reference_logits: Sequence[float] | None = field(default=None)
    initial_logits: Sequence[float] | None = field(default=None)
    clip: bool = True
    dampening: float = 0.0
    max_grad_norm: float | None = None
    reset_state: bool = False

    def __post_init__(self) -> None:
        rewards = np.asarray(self.arm_rewards, dtype=float)
        if rewards.ndim != 1 or rewards.shape[0] < 2:
            raise ValueError(
                "arm_rewards: must be a 1-d sequence with at least two arms, got "
                f"{self.arm_rewards!r}"
            )
        if not np.all(np.isfinite(rewards)):
            raise ValueError(f"arm_rewards: must be finite, got {rewards.tolist()}")
        _v.choice("reward_kind", self.reward_kind, _REWARD_KINDS)
        if self.reward_kind == "bernoulli" and np.any((rewards < 0) | (rewards > 1)):
            raise ValueError(
                "arm_rewards: must be probabilities in [0, 1] for reward_kind 'bernoulli', "
                f"got {rewards.tolist()}"
            )
        n_arms = rewards.shape[0]
        advantage = LEGACY_ADVANTAGES.get(self.advantage, self.advantage)
        ratio = LEGACY_RATIOS.get(self.ratio, self.ratio)
        values: dict[str, object] = {
            "arm_rewards": tuple(float(v) for v in rewards),
            "reward_scale": _v.positive("reward_scale", self.reward_scale),
            "group_size": _v.integer("group_size", self.group_size, minimum=2),
            "batch_prompts": _v.integer("batch_prompts", self.batch_prompts, minimum=1),
            "steps": _v.integer("steps", self.steps, minimum=1),
            "replicas": _v.integer("replicas", self.replicas, minimum=1),
            "seed": _v.integer("seed", self.seed, minimum=0),
            "optimizer": _v.choice("optimizer", self.optimizer, OPTIMIZER_KINDS),
            # momentum doubles as Adam's beta1: checked here so the message names this field
            "momentum": _v.in_range("momentum", self.momentum, 0.0, 1.0, hi_open=True),
            "advantage": _v.choice("advantage", advantage, ADVANTAGES),
            "eps_std": _v.nonnegative("eps_std", self.eps_std),
            "refresh_interval": _v.integer("refresh_interval", self.refresh_interval, minimum=1),
            "ratio": _v.choice("ratio", ratio, RATIOS),
            "eps_low": _v.in_range("eps_low", self.eps_low, 0.0, 1.0, hi_open=True),
            "eps_high": _v.nonnegative("eps_high", self.eps_high),
            "kl_coef": check_kl(self.kl, self.kl_coef),
            "clip": _v.flag("clip", self.clip),
            "reference_logits": _as_logits(self.reference_logits, n_arms, "reference_logits"),
            "initial_logits": _as_logits(self.initial_logits, n_arms, "initial_logits"),
        }
        _check_size(values, n_arms)
        for name, value in values.items():
            object.__setattr__(self, name, value)
        # the update rule's own rules (lr, beta2, eps, weight decay, ...) are Optimizer's
        spec = self.to_optimizer()
        for name in (
            "lr",
            "beta2",
            "eps",
            "weight_decay",
            "dampening",
            "max_grad_norm",
            "reset_state",
        ):
            object.__setattr__(self, name, getattr(spec, name))

    def to_optimizer(self) -> Optimizer:
        """The update rule as an optimizer.Optimizer (momentum becomes beta1 for Adam)."""
        adam = self.optimizer in ADAM_FAMILY
        return Optimizer(
            kind=self.optimizer,
            lr=self.lr,
            momentum=0.0 if adam else self.momentum,
            dampening=self.dampening,
            beta1=self.momentum if adam else 0.9,
            beta2=self.beta2,
            eps=self.eps,
            weight_decay=self.weight_decay,
            max_grad_norm=self.max_grad_norm,
            reset_state=self.reset_state,
        )

    def clip_band(self) -> tuple[float, float]:
        """(eps_low, eps_high) as applied: infinite when clip is off."""
        return (self.eps_low, self.eps_high) if self.clip else (math.inf, math.inf)

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
        from scipy import special

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

    _OBSERVABLES = OBSERVABLES

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
        _v.choice("observable", observable, OBSERVABLES)
        steps = self.config.steps
        burn_in = _v.integer("burn_in", burn_in, minimum=0, maximum=steps - 4)
        return np.asarray(getattr(self, observable))[:, burn_in:]

    def autocorrelation(
        self, burn_in: int, max_lag: int, observable: str = "expected_reward"
    ) -> np.ndarray:
        """Stationary autocorrelation at lags 0..max_lag, pooled over replicas."""
        series = self._series(burn_in, observable)
        max_lag = _v.integer("max_lag", max_lag, minimum=1, maximum=series.shape[1] - 1)
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
            return StationaryStats(mean, mean_se, 0.0, variance_se, math.nan, math.nan, series.size)
        rho = _autocorrelation(series, steps - 1, mean)
        tau = 1.0
        window = steps - 1
        for lag in range(1, steps):
            tau += 2.0 * rho[lag]
            if lag >= 5.0 * tau:  # Sokal's automatic window
                window = lag
                break
        tau_se = tau * math.sqrt(2.0 * (2 * window + 1) / series.size)
        return StationaryStats(
            mean, mean_se, variance, variance_se, float(tau), tau_se, series.size
        )


def _kernel_options(config: BanditConfig) -> dict:
    """Surrogate codes of the bandit kernels (see _bandit_kernels' docstring)."""
    return dict(
        advantage=ADVANTAGES.index(config.advantage),
        ratio=0 if config.ratio == "none" else 1,  # token = sequence for one-token answers
        kl_is=config.kl == "k3_is",
    )


# Which exact sampler draws a group (docs/simulate.md#why-counts-suffice-and-why-that-is-exact):
# G draws of its (arm, reward) cell cost O(G n_arms) vector compares, the sequential binomials
# O(n_arms) draws whose walks grow with G. Measured per group-step on 1 thread (table in
# benchmarks/results/simulate.md): the cells are 1.2-1.7x faster from 5 arms on while G <= 256
# and G n_arms <= 32768; the binomials win for 2-4 arms and for large groups.
PER_SAMPLE_MIN_ARMS = 5
PER_SAMPLE_MAX_GROUP = 256
PER_SAMPLE_MAX_DRAWS = 32_768  # group_size * n_arms


def _per_sample(config: BanditConfig) -> bool:
    """Whether the kernel draws each group sample by sample (True) or as sequential binomials."""
    return (
        config.n_arms >= PER_SAMPLE_MIN_ARMS
        and config.group_size <= PER_SAMPLE_MAX_GROUP
        and config.group_size * config.n_arms <= PER_SAMPLE_MAX_DRAWS
    )


def simulate(config: BanditConfig) -> SimulationResult:
    """Simulate config.replicas independent GRPO runs of the softmax bandit.

    Parallel over replicas (Numba threads); each replica has its own RNG stream derived from
    (seed, replica), so results are identical for any thread count. Cost per step is
    O(batch_prompts * n_arms) draws at each refresh (or O(batch_prompts * G * n_arms) vector
    compares when small groups are drawn cell by cell) and O(n_arms) otherwise
    (docs/simulate.md).
    """
    if not isinstance(config, BanditConfig):
        raise ValueError(f"config: must be a BanditConfig, got {type(config).__name__}")
    return _run(config, _per_sample(config))


def _run(config: BanditConfig, per_sample: bool) -> SimulationResult:
    """simulate() with the group sampler chosen by the caller (the tests run both)."""
    from . import _bandit_kernels as _kern  # Numba: imported by a simulation only

    r_hi, r_lo, p_hi = config.reward_cells()
    shape = (config.replicas, config.steps)
    outs = [np.empty(shape) for _ in range(6)]  # the kernel writes every cell
    final = np.empty((config.replicas, config.n_arms))
    opts = _kernel_options(config)
    opt_kind, opt_hyper = config.to_optimizer().kernel_arguments()
    eps_low, eps_high = config.clip_band()
    _kern.simulate_kernel(  # type: ignore[call-arg]
        r_hi,
        r_lo,
        p_hi,
        config.group_size,
        config.batch_prompts,
        config.steps,
        config.replicas,
        config.seed,
        opt_kind,
        opt_hyper,
        config.reset_state,
        opts["advantage"],
        config.eps_std,
        config.refresh_interval,
        opts["ratio"],
        eps_low,
        eps_high,
        config.kl_coef,
        opts["kl_is"],
        np.asarray(config.reference_logits, dtype=float),
        np.asarray(config.initial_logits, dtype=float),
        bool(per_sample),
        *outs,
        final,
    )
    return SimulationResult(config, outs[0], outs[1], outs[2], outs[3], outs[4], outs[5], final)


# ---------------------------------------------------------------- exact two-arm drift


def _two_arm_terms(config: BanditConfig, gap_old: float, gap: float):
    """All (n1, k1, k0) outcomes of one two-arm group: probabilities and gap gradients.

    Arm 1 is the second arm, gap = theta_1 - theta_0. Returns (prob, d_gap, g_1) where d_gap is
    the ascent gradient of the group surrogate on theta_1 - theta_0 and g_1 the one on theta_1.
    """
    from scipy import special

    r_hi, r_lo, p_hi = config.reward_cells()
    group = config.group_size
    # expit of both signs: 1 - expit(gap) underflows to 0 for large gaps
    pi = np.array([special.expit(-gap), special.expit(gap)])
    pi_old = np.array([special.expit(-gap_old), special.expit(gap_old)])
    ref = config.reference_policy()
    n1, k1, k0 = np.meshgrid(
        np.arange(group + 1), np.arange(group + 1), np.arange(group + 1), indexing="ij"
    )
    n0 = group - n1
    valid = (k1 <= n1) & (k0 <= n0)
    n1, k1, k0, n0 = n1[valid], k1[valid], k0[valid], n0[valid]
    prob = (
        special.binom(group, n1)
        * pi_old[1] ** n1
        * pi_old[0] ** n0
        * special.binom(n1, k1)
        * p_hi[1] ** k1
        * (1 - p_hi[1]) ** (n1 - k1)
        * special.binom(n0, k0)
        * p_hi[0] ** k0
        * (1 - p_hi[0]) ** (n0 - k0)
    )
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
    scale = 1.0 / spread if config.advantage == "std_normalized" else np.ones_like(std)
    eps_low, eps_high = config.clip_band()
    weight = [np.zeros_like(mean), np.zeros_like(mean)]
    for arm, r, c in cells:
        adv = np.where(degenerate, 0.0, (r - mean) * scale)
        if config.ratio != "none":
            s = pi[arm] / pi_old[arm]
            keep = np.where(adv > 0, s <= 1 + eps_high, s >= 1 - eps_low)
            weight[arm] = weight[arm] + np.where(keep, c * s * adv, 0.0)
        else:
            weight[arm] = weight[arm] + c * adv
    n_arm = (n0, n1)
    for arm in (0, 1):
        kl_weight = config.kl_coef * n_arm[arm] * (1 - ref[arm] / pi[arm])
        if config.kl == "k3_is":
            kl_weight = kl_weight * pi[arm] / pi_old[arm]
        weight[arm] = weight[arm] - kl_weight
    w0, w1 = weight[0] / group, weight[1] / group
    g1 = w1 - pi[1] * (w0 + w1)
    g0 = w0 - pi[0] * (w0 + w1)
    return prob, g1 - g0, g1


def two_arm_expected_drift(config: BanditConfig, gap_old: float, gap: float) -> tuple[float, float]:
    """Exact expected surrogate gradient on the logit gap of a two-arm bandit, and its variance.

    gap_old: theta_1 - theta_0 of the sampling policy; gap: of the current parameters.
    Returns (mean, per-group variance) of the ascent gradient of J on theta_1 - theta_0,
    by summing over all O(G^3) outcomes (n1 ~ Binomial(G, pi_old_1), successes per arm);
    weight decay is not included. docs/model.md section 6, docs/simulate.md#two-arm-exact-drift.
    """
    if config.n_arms != 2:
        raise ValueError(f"config: arm_rewards must have two arms, got {config.n_arms}")
    prob, d_gap, _ = _two_arm_terms(config, float(gap_old), float(gap))
    mean = float(np.sum(prob * d_gap))
    return mean, float(np.sum(prob * d_gap**2) - mean**2)


# ---------------------------------------------------------------- stiffness


@dataclass(frozen=True)
class StiffnessResult:
    """Linearised drift at the fixed point along the mean-field direction (docs/model.md
    sections 2 and 6).

    The mean-field coordinate is y = direction . theta (unit direction in logit space; for two
    arms (-1, 1)/sqrt(2), the logit gap over sqrt 2). The expected update of y is
    -(kappa_lag y_old + kappa_now y) per unit effective learning rate: kappa_lag is the
    curvature of the force computed from the sampling policy's rollouts (advantage term),
    kappa_now the one evaluated at the current parameters (KL, weight decay, IS-corrected part).
    c_lag = eta_eff kappa_lag and c_now = eta_eff kappa_now are the dimensionless stiffnesses
    of docs/model.md section 2. noise_variance is the per-group variance of the gradient along
    y, so the per-step noise of y is e_t = eta_eff xi_t with
    Var(xi_t) = noise_variance / batch_prompts. Standard errors are 0 for method "exact".
    docs/simulate.md#stiffness.
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
    """Effective learning rate (docs/model.md section 1) from optimizer.effective_dynamics; Adam
    uses the preconditioner frozen at the fixed point (grad_rms = sqrt(second_moment))."""
    adam = config.optimizer in ADAM_FAMILY
    dynamics = effective_dynamics(
        config.to_optimizer(), kappa_lag=0.0, grad_rms=math.sqrt(second_moment) if adam else None
    )
    return dynamics.eta_effective


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
    raise ValueError(
        "no interior fixed point within 64 of the initial logit gap: add kl_coef or weight_decay"
    )


def _exact_stiffness(config: BanditConfig, step: float) -> StiffnessResult:
    from scipy import optimize, special  # ~0.17 s to import, a quarter of the package's: only here

    sqrt2 = math.sqrt(2.0)
    initial = np.asarray(config.initial_logits, dtype=float)
    start_gap = float(initial[1] - initial[0])
    eta = config.lr
    decay = config.weight_decay
    for _ in range(6 if config.optimizer in ADAM_FAMILY else 1):
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
    return StiffnessResult(
        kappa_lag,
        0.0,
        kappa_now + decay,
        0.0,
        eta,
        var_star / 2.0,
        logits,
        reward,
        np.array([-1.0, 1.0]) / sqrt2,
        "exact",
    )


def _probe(
    config: BanditConfig,
    theta_old_a,
    theta_a,
    theta_old_b,
    theta_b,
    direction,
    groups: int,
    seed: int,
) -> np.ndarray:
    """Per-chunk sums from the common-random-number probe kernel (see probe_kernel)."""
    from scipy import special

    from . import _bandit_kernels as _kern

    r_hi, r_lo, p_hi = config.reward_cells()
    chunks = 64
    per = max(1, groups // chunks)
    out = np.zeros((chunks, 5 + 2 * config.n_arms))
    opts = _kernel_options(config)
    _kern.probe_kernel(
        r_hi,
        r_lo,
        p_hi,
        config.group_size,
        opts["advantage"],
        config.eps_std,
        opts["ratio"],
        *config.clip_band(),
        config.kl_coef,
        opts["kl_is"],
        config.reference_policy(),
        special.softmax(theta_old_a),
        special.softmax(theta_a),
        special.softmax(theta_old_b),
        special.softmax(theta_b),
        np.ascontiguousarray(direction, dtype=float),
        per,
        chunks,
        seed,
        out,
    )
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


def _monte_carlo_stiffness(
    config: BanditConfig, step: float, groups: int, start: np.ndarray | None
) -> StiffnessResult:
    from scipy import special

    n_arms = config.n_arms
    basis = _zero_sum_basis(n_arms)
    arm_means = config.arm_means()
    seed = config.seed
    if start is None:
        # start Newton from where the simulated runs settle (mean final logits)
        warm = simulate(
            config.replace(
                refresh_interval=1, replicas=min(config.replicas, 32), steps=min(config.steps, 2000)
            )
        )
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
        mean_grad = center[:, 5 : 5 + n_arms].mean(axis=0)
        second_arm = center[:, 5 + n_arms :].mean(axis=0)
        second = float(np.mean(mean_grad**2 + (second_arm - mean_grad**2) / config.batch_prompts))
        eta = _eta_eff(config, second)
        decay = _decay_curvature(config, eta)
        force = basis @ (mean_grad - decay * theta)
        force_se = np.sqrt(np.maximum(second_arm - mean_grad**2, 0) / (groups))
        for j, e in enumerate(basis):
            col = np.empty(n_arms - 1)
            for i, ei in enumerate(basis):
                sums = _probe(
                    config,
                    theta + step * e,
                    theta + step * e,
                    theta - step * e,
                    theta - step * e,
                    ei,
                    groups // 4,
                    seed + 17 * iteration + j,
                )
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
    return StiffnessResult(
        -kappa_lag,
        kappa_lag_se,
        -kappa_now + decay,
        kappa_now_se,
        eta,
        noise,
        theta,
        float(pi @ arm_means),
        direction,
        "monte_carlo",
    )


def measure_stiffness(
    config: BanditConfig,
    method: Literal["auto", "exact", "monte_carlo"] = "auto",
    *,
    step: float | None = None,
    groups: int = 400_000,
    start_logits: Sequence[float] | None = None,
) -> StiffnessResult:
    """Curvatures kappa_lag, kappa_now of the expected drift at the fixed point (docs/model.md
    section 6).

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
        raise ValueError(f"config: must be a BanditConfig, got {type(config).__name__}")
    _v.choice("method", method, ("auto", "exact", "monte_carlo"))
    if method == "auto":
        method = "exact" if config.n_arms == 2 else "monte_carlo"
    if method == "exact" and config.n_arms != 2:
        raise ValueError(
            f"method: 'exact' needs two arms (config.arm_rewards), got {config.n_arms}"
        )
    if step is not None:
        step = _v.in_range("step", step, 0.0, 1.0, lo_open=True, hi_open=True)
    groups = _v.integer("groups", groups, minimum=6400)
    if method == "exact":
        return _exact_stiffness(config, 1e-5 if step is None else step)
    start = (
        None if start_logits is None else _as_logits(start_logits, config.n_arms, "start_logits")
    )
    return _monte_carlo_stiffness(
        config,
        0.05 if step is None else step,
        int(groups),
        None if start is None else np.array(start),
    )
