"""The GRPO objective family and its optimizer effects (docs/objectives.md).

One surrogate covers GRPO, Dr. GRPO, DAPO and GSPO (MODEL.md s.7, seed 004):

    J = sum_{i,t} w_{i,t} min(s_{i,t} A_i, clip(s_{i,t}, 1 - eps_low, 1 + eps_high) A_i) - beta_kl R

An `Objective` fixes each axis (weighting, advantage, ratio level, clip band, KL), an `Optimizer`
fixes the update rule (PyTorch semantics). A two-position policy (a prefix token, then an action
whose choice sets the sequence length) makes |o_i| vary within a group, which is what the three
effects of MODEL.md s.9 need:

1. `prefix_bias`: the gradient on a prefix shared by the group is sum_i w_i A_i;
2. `reward_scale_invariance`: Adam/AdamW trajectories do not see a reward scale phi;
3. `clip_overshoot`: momentum keeps moving the policy after the clip has zeroed the gradient.

`effective_dynamics` maps each optimizer onto the (beta, eta_eff, c_now) of MODEL.md s.3 and the
(mass, damping, stiffness) of s.4. Training runs use a Numba kernel (_objective_kernels); a plain
NumPy twin (backend="numpy") is kept beside it and the tests compare them.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Literal

import numba
import numpy as np
from scipy.special import log_softmax

from . import _objective_kernels as _k
from ._splitmix import GOLDEN, ONE, SHIFT11, TWO_POW_M53, mix64_numpy

__all__ = [
    "Objective",
    "OBJECTIVE_PRESETS",
    "objective_preset",
    "Optimizer",
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
]

Weighting = Literal["sequence_mean", "group_mean", "token_sum"]
Advantage = Literal["std_normalized", "centered"]
RatioLevel = Literal["token", "sequence"]
KLKind = Literal["none", "k3"]
OptimizerKind = Literal["sgd", "heavy_ball", "adam", "adamw"]

_WEIGHTINGS = ("sequence_mean", "group_mean", "token_sum")
_ADVANTAGES = ("std_normalized", "centered")
_RATIOS = ("token", "sequence")
_KLS = ("none", "k3")
_OPTIMIZERS = ("sgd", "heavy_ball", "adam", "adamw")


def _finite(name: str, value: float, *, low: float | None = None, low_open: bool = False,
            high: float | None = None, high_open: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Objective:
    """One member of the unified surrogate family (docs/objectives.md s.1).

    weighting: per-token weight w_{i,t}: "sequence_mean" 1/(G |o_i|) (GRPO, GSPO),
        "group_mean" 1/G (Dr. GRPO), "token_sum" 1/sum_j |o_j| (DAPO).
    advantage: "std_normalized" (r - mean)/(std + eps_std) with the unbiased std (0 for a
        group whose rewards are all equal, also with eps_std = 0), or "centered" r - mean.
    ratio_level: "token" s_{i,t} = pi/pi_old per token, or "sequence" (GSPO)
        s_i = (pi(o_i)/pi_old(o_i))^(1/|o_i|) shared by the tokens of o_i.
    clip: apply the PPO clip with band [1 - eps_low, 1 + eps_high].
    kl: "none" or "k3" (per-token k3 estimator to a reference policy, weighted by w_{i,t}),
        with coefficient beta_kl (dimensionless).
    """

    weighting: Weighting = "sequence_mean"
    advantage: Advantage = "std_normalized"
    ratio_level: RatioLevel = "token"
    clip: bool = True
    eps_low: float = 0.2
    eps_high: float = 0.2
    kl: KLKind = "none"
    beta_kl: float = 0.0
    eps_std: float = 1e-4

    def __post_init__(self) -> None:
        _choice("weighting", self.weighting, _WEIGHTINGS)
        _choice("advantage", self.advantage, _ADVANTAGES)
        _choice("ratio_level", self.ratio_level, _RATIOS)
        _choice("kl", self.kl, _KLS)
        if not isinstance(self.clip, bool):
            raise ValueError(f"clip must be a bool, got {self.clip!r}")
        _finite("eps_low", self.eps_low, low=0.0, high=1.0, high_open=True)
        _finite("eps_high", self.eps_high, low=0.0)
        _finite("beta_kl", self.beta_kl, low=0.0)
        _finite("eps_std", self.eps_std, low=0.0)
        if self.kl == "none" and self.beta_kl != 0.0:
            raise ValueError("beta_kl must be 0 when kl='none' (set kl='k3' to use a KL term)")

    @property
    def kl_coefficient(self) -> float:
        """The coefficient actually applied (0 when kl='none')."""
        return self.beta_kl if self.kl == "k3" else 0.0


OBJECTIVE_PRESETS: dict[str, Objective] = {
    # DeepSeekMath GRPO: per-sequence mean, std-normalised advantages, k3 KL 0.04
    "grpo": Objective("sequence_mean", "std_normalized", "token", True, 0.2, 0.2, "k3", 0.04),
    # Dr. GRPO: no length or std normalisation, no KL
    "dr_grpo": Objective("group_mean", "centered", "token", True, 0.2, 0.2, "none", 0.0),
    # DAPO: token-level sum over the group, decoupled clip-higher, no KL
    "dapo": Objective("token_sum", "std_normalized", "token", True, 0.2, 0.28, "none", 0.0),
    # GSPO: sequence-level length-normalised ratio, tight sequence-level band, no KL
    "gspo": Objective("sequence_mean", "std_normalized", "sequence", True, 3e-4, 4e-4, "none", 0.0),
}


def objective_preset(name: str, **overrides: Any) -> Objective:
    """A named member of the family ("grpo", "dr_grpo", "dapo", "gspo") with optional overrides.

    Setting kl="none" also zeroes beta_kl unless beta_kl is given. See docs/objectives.md s.1.
    """
    if name not in OBJECTIVE_PRESETS:
        raise ValueError(f"name must be one of {tuple(OBJECTIVE_PRESETS)}, got {name!r}")
    base = OBJECTIVE_PRESETS[name]
    if overrides.get("kl") == "none" and "beta_kl" not in overrides:
        overrides["beta_kl"] = 0.0
    unknown = set(overrides) - set(Objective.__dataclass_fields__)
    if unknown:
        raise ValueError(f"overrides has unknown fields {sorted(unknown)}")
    return replace(base, **overrides)


@dataclass(frozen=True)
class Optimizer:
    """An update rule with PyTorch semantics (docs/objectives.md s.4).

    kind: "sgd" (theta -= lr g), "heavy_ball" (torch SGD with momentum and dampening; the first
        buffer is the raw gradient), "adam" (weight_decay is coupled L2 added to g), "adamw"
        (decoupled decay theta *= 1 - lr weight_decay). lr in parameter units per step.
    max_grad_norm: global gradient-norm clipping (torch clip_grad_norm_) before the update;
        None = off.
    reset_state: zero momentum / moments / step count at every rollout refresh.
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
        _choice("kind", self.kind, _OPTIMIZERS)
        _finite("lr", self.lr, low=0.0, low_open=True)
        _finite("momentum", self.momentum, low=0.0, high=1.0, high_open=True)
        _finite("dampening", self.dampening, low=0.0, high=1.0)
        _finite("beta1", self.beta1, low=0.0, high=1.0, high_open=True)
        _finite("beta2", self.beta2, low=0.0, high=1.0, high_open=True)
        _finite("eps", self.eps, low=0.0)
        _finite("weight_decay", self.weight_decay, low=0.0)
        if self.max_grad_norm is not None:
            _finite("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        if self.kind == "sgd" and (self.momentum != 0.0 or self.dampening != 0.0):
            raise ValueError("momentum/dampening must be 0 for kind='sgd' (use kind='heavy_ball')")
        if self.kind == "heavy_ball" and self.momentum == 0.0:
            raise ValueError("momentum must be > 0 for kind='heavy_ball'")
        if not isinstance(self.reset_state, bool):
            raise ValueError(f"reset_state must be a bool, got {self.reset_state!r}")


# --------------------------------------------------------------------------------------------
# the two-position policy
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TwoPositionPolicy:
    """Prefix token, then a continuation action that sets the length (docs/objectives.md s.2).

    A sequence o_i is (prefix p, action a, L_a - 1 tail tokens): |o_i| = 1 + L_a.
    The prefix comes from softmax(theta[:P]); with prefix_mode="shared" one prefix is drawn per
    group and shared by all G members, with "sampled" each member draws its own. The action comes
    from the per-context softmax theta[P + p A : P + (p+1) A]. With tail_vocab = 0 the tail
    tokens have probability 1 (no parameters); with tail_vocab = V > 0 each tail token is drawn
    from one shared softmax theta[P (1 + A):] over V symbols (it carries its own ratio, clip
    and KL, but not the reward). Reward: Bernoulli(success_prob[p, a]) x the run's reward_scale.

    lengths: L_a >= 1 per action (continuation tokens, the action token included).
    success_prob: shape (A,) (one prefix) or (P, A), values in [0, 1].
    """

    lengths: tuple[int, ...]
    success_prob: tuple[tuple[float, ...], ...]
    prefix_mode: Literal["shared", "sampled"] = "shared"
    tail_vocab: int = 0

    def __post_init__(self) -> None:
        lengths = np.asarray(self.lengths)
        if lengths.ndim != 1 or lengths.size < 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError("lengths must be a non-empty 1-D sequence of integers")
        if np.any(lengths < 1):
            raise ValueError(f"lengths must all be >= 1, got {lengths.tolist()}")
        prob = np.asarray(self.success_prob, dtype=float)
        if prob.ndim == 1:
            prob = prob[None, :]
        if prob.ndim != 2 or prob.shape[1] != lengths.size:
            raise ValueError(
                "success_prob must have shape (A,) or (P, A) with A = len(lengths) = "
                f"{lengths.size}"
            )
        if not np.all(np.isfinite(prob)) or np.any(prob < 0) or np.any(prob > 1):
            raise ValueError("success_prob must lie in [0, 1]")
        _choice("prefix_mode", self.prefix_mode, ("shared", "sampled"))
        if not isinstance(self.tail_vocab, (int, np.integer)) or self.tail_vocab < 0:
            raise ValueError(f"tail_vocab must be an integer >= 0, got {self.tail_vocab!r}")
        object.__setattr__(self, "lengths", tuple(int(x) for x in lengths))
        object.__setattr__(self, "success_prob", tuple(tuple(map(float, row)) for row in prob))

    @property
    def n_prefixes(self) -> int:
        return len(self.success_prob)

    @property
    def n_actions(self) -> int:
        return len(self.lengths)

    @property
    def n_params(self) -> int:
        """Logits: P prefix, then P x A continuation (row-major), then tail_vocab tail logits."""
        return self.n_prefixes * (1 + self.n_actions) + self.tail_vocab

    @property
    def max_tail(self) -> int:
        """Longest tail (tokens after the action): max L_a - 1."""
        return max(self.lengths) - 1

    @property
    def sequence_lengths(self) -> np.ndarray:
        """|o| = 1 + L_a per action (tokens)."""
        return 1 + np.asarray(self.lengths, dtype=np.int64)

    def probabilities(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pi_prefix (..., P), pi_cont (..., P, A)) for logits theta (..., n_params)."""
        log_pre, log_cont, _ = _log_policy(self, np.asarray(theta, dtype=float))
        return np.exp(log_pre), np.exp(log_cont)

    def expected_reward(self, theta: np.ndarray) -> np.ndarray:
        """E[success] under the policy (reward_scale excluded), shape theta.shape[:-1]."""
        pre, cont = self.probabilities(theta)
        return np.einsum("...p,...pa,pa->...", pre, cont, np.asarray(self.success_prob))

    def expected_length(self, theta: np.ndarray) -> np.ndarray:
        """E|o| in tokens, shape theta.shape[:-1]."""
        pre, cont = self.probabilities(theta)
        return np.einsum("...p,...pa,a->...", pre, cont, self.sequence_lengths.astype(float))


def _log_policy(policy: TwoPositionPolicy,
                theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log pi_prefix (..., P), log pi_cont (..., P, A), log pi_tail (..., V)."""
    if theta.shape[-1] != policy.n_params:
        raise ValueError(f"theta must have last dimension n_params = {policy.n_params}")
    n_pre = policy.n_prefixes
    tail_start = n_pre * (1 + policy.n_actions)
    log_pre = log_softmax(theta[..., :n_pre], axis=-1)
    cont = theta[..., n_pre:tail_start].reshape(*theta.shape[:-1], n_pre, policy.n_actions)
    tail = theta[..., tail_start:]
    log_tail = log_softmax(tail, axis=-1) if policy.tail_vocab else tail
    return log_pre, log_softmax(cont, axis=-1), log_tail


# --------------------------------------------------------------------------------------------
# the surrogate: plain value, analytic gradient (NumPy reference)
# --------------------------------------------------------------------------------------------
def _check_batch(policy: TwoPositionPolicy, theta: np.ndarray, prefixes: Any, actions: Any,
                 rewards: Any, tails: Any | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    prefixes = np.asarray(prefixes)
    actions = np.asarray(actions)
    rewards = np.asarray(rewards, dtype=float)
    if not (prefixes.shape == actions.shape == rewards.shape) or actions.ndim < 2:
        raise ValueError("prefixes, actions and rewards must share one shape (..., n_groups, G)")
    if actions.shape[-1] < 2:
        raise ValueError("group_size (last dimension of actions) must be >= 2")
    if actions.shape[:-2] != theta.shape[:-1]:
        raise ValueError("actions leading dimensions must match theta's leading dimensions")
    if np.any((actions < 0) | (actions >= policy.n_actions)):
        raise ValueError("actions must be in [0, n_actions)")
    if np.any((prefixes < 0) | (prefixes >= policy.n_prefixes)):
        raise ValueError("prefixes must be in [0, n_prefixes)")
    if not np.all(np.isfinite(rewards)):
        raise ValueError("rewards must be finite")
    tail_shape = (*actions.shape, max(policy.max_tail, 1))
    if policy.tail_vocab == 0:
        tails = np.zeros(tail_shape, dtype=np.int64)  # deterministic tails: nothing to index
    else:
        if tails is None:
            raise ValueError("tails is required when the policy has tail_vocab > 0")
        tails = np.asarray(tails)
        if tails.shape != tail_shape:
            raise ValueError(f"tails must have shape {tail_shape} (..., n_groups, G, max_tail)")
        if np.any((tails < 0) | (tails >= policy.tail_vocab)):
            raise ValueError("tails must be in [0, tail_vocab)")
    return prefixes.astype(np.int64), actions.astype(np.int64), rewards, tails.astype(np.int64)


def _advantages(objective: Objective, rewards: np.ndarray) -> np.ndarray:
    centred = rewards - rewards.mean(axis=-1, keepdims=True)
    if objective.advantage == "centered":
        return centred
    scale = rewards.std(axis=-1, ddof=1, keepdims=True) + objective.eps_std
    # a zero-std group (all rewards equal) has zero advantage, also when eps_std = 0
    return np.divide(centred, scale, out=np.zeros_like(centred), where=scale > 0)


def _weights(objective: Objective, seq_len: np.ndarray) -> np.ndarray:
    group_size = seq_len.shape[-1]
    if objective.weighting == "sequence_mean":
        return 1.0 / (group_size * seq_len)
    if objective.weighting == "group_mean":
        return np.full(seq_len.shape, 1.0 / group_size)
    return np.broadcast_to(1.0 / seq_len.sum(axis=-1, keepdims=True), seq_len.shape)


def _tail_mask(policy: TwoPositionPolicy, actions: np.ndarray) -> np.ndarray:
    """(..., n_groups, G, max_tail) True where tail token j exists and carries logits."""
    n_tail = np.asarray(policy.lengths)[actions] - 1
    mask = np.arange(max(policy.max_tail, 1)) < n_tail[..., None]
    return mask & (policy.tail_vocab > 0)


def _gather(policy: TwoPositionPolicy, theta: np.ndarray, prefixes: np.ndarray,
            actions: np.ndarray, tails: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log pi(prefix), log pi(action | prefix) (..., n_groups, G) and log pi(tail token j)
    (..., n_groups, G, max_tail), zero where the tail token has no logits."""
    log_pre, log_cont, log_tail = _log_policy(policy, theta)
    lead = theta.shape[:-1]
    flat_pre = log_pre.reshape(-1, policy.n_prefixes)
    flat_cont = log_cont.reshape(-1, policy.n_prefixes, policy.n_actions)
    p = prefixes.reshape(flat_pre.shape[0], -1)
    a = actions.reshape(flat_pre.shape[0], -1)
    rows = np.arange(flat_pre.shape[0])[:, None]
    lp0 = flat_pre[rows, p].reshape(*lead, *actions.shape[-2:])
    lp1 = flat_cont[rows, p, a].reshape(*lead, *actions.shape[-2:])
    mask = _tail_mask(policy, actions)
    if policy.tail_vocab:
        flat_tail = log_tail.reshape(-1, policy.tail_vocab)
        v = tails.reshape(flat_pre.shape[0], -1)
        lpt = flat_tail[rows, v].reshape(tails.shape)
    else:
        lpt = np.zeros(mask.shape)
    return lp0, lp1, np.where(mask, lpt, 0.0)


def surrogate_value(objective: Objective, policy: TwoPositionPolicy, theta: Any, *,
                    theta_old: Any, prefixes: Any, actions: Any, rewards: Any,
                    theta_ref: Any | None = None, tails: Any | None = None) -> np.ndarray:
    """J of docs/objectives.md s.1, averaged over groups; plain token-by-token evaluation.

    theta, theta_old (and theta_ref, default theta_old): logits (..., n_params);
    prefixes, actions, rewards: (..., n_groups, G); tails (..., n_groups, G, max_tail) when
    policy.tail_vocab > 0. Returns J with shape theta.shape[:-1].
    This is the reference the analytic gradient is checked against by finite differences.
    """
    theta = np.asarray(theta, dtype=float)
    theta_old = np.broadcast_to(np.asarray(theta_old, dtype=float), theta.shape)
    theta_ref = theta_old if theta_ref is None else np.broadcast_to(
        np.asarray(theta_ref, dtype=float), theta.shape)
    prefixes, actions, rewards, tails = _check_batch(policy, theta, prefixes, actions, rewards,
                                                     tails)
    seq_len = policy.sequence_lengths[actions]
    t_max = int(policy.sequence_lengths.max())

    # per-token log-probabilities, zero on a deterministic tail and beyond the end
    def tokens(logits: np.ndarray) -> np.ndarray:
        lp0, lp1, lpt = _gather(policy, logits, prefixes, actions, tails)
        out = np.zeros((*actions.shape, t_max))
        out[..., 0], out[..., 1] = lp0, lp1
        out[..., 2:] = lpt[..., : t_max - 2]
        return out

    logp, logp_old, logp_ref = tokens(theta), tokens(theta_old), tokens(theta_ref)
    mask = np.arange(t_max) < seq_len[..., None]
    adv = _advantages(objective, rewards)[..., None]
    w = _weights(objective, seq_len.astype(float))[..., None]
    if objective.ratio_level == "token":
        ratio = np.exp(logp - logp_old)
    else:
        log_seq = ((logp - logp_old) * mask).sum(axis=-1, keepdims=True) / seq_len[..., None]
        ratio = np.broadcast_to(np.exp(log_seq), mask.shape)
    term = ratio * adv
    if objective.clip:
        band = np.clip(ratio, 1.0 - objective.eps_low, 1.0 + objective.eps_high)
        term = np.minimum(term, band * adv)
    per_token = w * term
    if objective.kl_coefficient:
        log_q = logp_ref - logp
        per_token = per_token - objective.kl_coefficient * w * (np.exp(log_q) - log_q - 1.0)
    return (per_token * mask).sum(axis=(-1, -2)).mean(axis=-1)


def _active(objective: Objective, adv: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """1 where the PPO clip leaves the ratio's gradient on, 0 where the clipped branch is flat
    (adv broadcast against ratio: pass adv[..., None] for tail tokens)."""
    if not objective.clip:
        return np.ones_like(ratio)
    outside = ((adv > 0) & (ratio > 1.0 + objective.eps_high)) | (
        (adv < 0) & (ratio < 1.0 - objective.eps_low))
    return (~outside).astype(float)


def _token_coefficients(objective: Objective, policy: TwoPositionPolicy, theta: np.ndarray,
                        theta_old: np.ndarray, theta_ref: np.ndarray, prefixes: np.ndarray,
                        actions: np.ndarray, rewards: np.ndarray, tails: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dJ_group/d log pi of the prefix, the action (..., n_groups, G) and each tail token
    (..., n_groups, G, max_tail; zero where the token has no logits)."""
    lp0, lp1, lpt = _gather(policy, theta, prefixes, actions, tails)
    old0, old1, oldt = _gather(policy, theta_old, prefixes, actions, tails)
    mask = _tail_mask(policy, actions)
    seq_len = policy.sequence_lengths[actions].astype(float)
    adv = _advantages(objective, rewards)
    w = _weights(objective, seq_len)

    if objective.ratio_level == "token":
        s0, s1, st = np.exp(lp0 - old0), np.exp(lp1 - old1), np.exp(lpt - oldt)
        c0 = w * adv * s0 * _active(objective, adv, s0)
        c1 = w * adv * s1 * _active(objective, adv, s1)
        ct = (w * adv)[..., None] * st * _active(objective, adv[..., None], st)
    else:
        # d s_i / d log pi_t = s_i / |o_i| and the sequence carries total weight w_i |o_i|
        log_seq = lp0 - old0 + lp1 - old1 + (lpt - oldt).sum(axis=-1)
        s = np.exp(log_seq / seq_len)
        c0 = c1 = w * adv * s * _active(objective, adv, s)
        ct = np.broadcast_to(c0[..., None], mask.shape)
    if objective.kl_coefficient:
        ref0, ref1, reft = _gather(policy, theta_ref, prefixes, actions, tails)
        # d k3 / d log pi = 1 - pi_ref / pi
        c0 = c0 - objective.kl_coefficient * w * (1.0 - np.exp(ref0 - lp0))
        c1 = c1 - objective.kl_coefficient * w * (1.0 - np.exp(ref1 - lp1))
        ct = ct - objective.kl_coefficient * w[..., None] * (1.0 - np.exp(reft - lpt))
    return c0, c1, np.where(mask, ct, 0.0)


def surrogate_gradient(objective: Objective, policy: TwoPositionPolicy, theta: Any, *,
                       theta_old: Any, prefixes: Any, actions: Any, rewards: Any,
                       theta_ref: Any | None = None, tails: Any | None = None) -> np.ndarray:
    """Analytic dJ/dtheta (..., n_params) of surrogate_value (docs/objectives.md s.1).

    Per token, dJ/d log pi_t = w A s active (token ratio; the sequence ratio gives the same form
    with s the sequence ratio) minus beta_kl w (1 - pi_ref/pi); then d log pi(k)/d theta =
    e_k - softmax(theta). At a clip boundary the unclipped branch is taken.
    """
    theta = np.asarray(theta, dtype=float)
    theta_old = np.broadcast_to(np.asarray(theta_old, dtype=float), theta.shape)
    theta_ref = theta_old if theta_ref is None else np.broadcast_to(
        np.asarray(theta_ref, dtype=float), theta.shape)
    prefixes, actions, rewards, tails = _check_batch(policy, theta, prefixes, actions, rewards,
                                                     tails)
    c0, c1, ct = _token_coefficients(objective, policy, theta, theta_old, theta_ref,
                                     prefixes, actions, rewards, tails)
    n_pre, n_act = policy.n_prefixes, policy.n_actions
    pi_pre, pi_cont = policy.probabilities(theta)
    onehot_p = np.eye(n_pre)[prefixes]  # (..., B, G, P)
    onehot_a = np.eye(n_act)[actions]  # (..., B, G, A)
    n_groups = actions.shape[-2]
    grad_pre = np.einsum("...bg,...bgp->...p", c0, onehot_p - pi_pre[..., None, None, :])
    # the continuation gradient lands on the row of the member's own prefix
    score = onehot_a - np.einsum("...bgp,...pa->...bga", onehot_p, pi_cont)
    grad_cont = np.einsum("...bg,...bgp,...bga->...pa", c1, onehot_p, score)
    parts = [grad_pre, grad_cont.reshape(*theta.shape[:-1], n_pre * n_act)]
    if policy.tail_vocab:
        pi_tail = np.exp(_log_policy(policy, theta)[2])
        onehot_v = np.eye(policy.tail_vocab)[tails]  # (..., B, G, T, V)
        parts.append(np.einsum("...bgt,...bgtv->...v", ct,
                               onehot_v - pi_tail[..., None, None, None, :]))
    return np.concatenate(parts, -1) / n_groups


# --------------------------------------------------------------------------------------------
# training runs: Numba kernel and its NumPy twin
# --------------------------------------------------------------------------------------------
def _config_arrays(policy: TwoPositionPolicy, objective: Objective, optimizer: Optimizer,
                   reward_scale: float) -> tuple[np.ndarray, np.ndarray]:
    cfg_int = np.zeros(_k.N_CFG_INT, dtype=np.int64)
    cfg_int[_k.CFG_WEIGHTING] = _WEIGHTINGS.index(objective.weighting)
    cfg_int[_k.CFG_ADVANTAGE] = _ADVANTAGES.index(objective.advantage)
    cfg_int[_k.CFG_RATIO] = _RATIOS.index(objective.ratio_level)
    cfg_int[_k.CFG_CLIP] = int(objective.clip)
    cfg_int[_k.CFG_OPT_KIND] = _OPTIMIZERS.index(optimizer.kind)
    cfg_int[_k.CFG_RESET] = int(optimizer.reset_state)
    cfg_int[_k.CFG_SHARED] = int(policy.prefix_mode == "shared")
    cfg_float = np.zeros(_k.N_CFG_FLOAT)
    cfg_float[_k.CFG_EPS_LOW] = objective.eps_low
    cfg_float[_k.CFG_EPS_HIGH] = objective.eps_high
    cfg_float[_k.CFG_BETA_KL] = objective.kl_coefficient
    cfg_float[_k.CFG_EPS_STD] = objective.eps_std
    cfg_float[_k.CFG_LR] = optimizer.lr
    cfg_float[_k.CFG_MOMENTUM] = optimizer.momentum
    cfg_float[_k.CFG_DAMPENING] = optimizer.dampening
    cfg_float[_k.CFG_BETA1] = optimizer.beta1
    cfg_float[_k.CFG_BETA2] = optimizer.beta2
    cfg_float[_k.CFG_EPS] = optimizer.eps
    cfg_float[_k.CFG_WEIGHT_DECAY] = optimizer.weight_decay
    cfg_float[_k.CFG_MAX_GRAD_NORM] = (
        np.inf if optimizer.max_grad_norm is None else optimizer.max_grad_norm)
    cfg_float[_k.CFG_REWARD_SCALE] = reward_scale
    return cfg_int, cfg_float


@dataclass(frozen=True, eq=False)
class TwoPositionRun:
    """Trajectories of a two-position training run (docs/objectives.md s.3).

    theta: logits (n_replicas, n_steps + 1, n_params), row 0 the start;
    expected_reward: E[success] per replica and step; expected_length: E|o| in tokens.
    """

    theta: np.ndarray
    expected_reward: np.ndarray
    expected_length: np.ndarray
    policy: TwoPositionPolicy
    objective: Objective
    optimizer: Optimizer
    reward_scale: float
    backend: str


def _uniform_np(keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
    z = mix64_numpy(keys + (counters.astype(np.uint64) + ONE) * GOLDEN)
    return (z >> SHIFT11).astype(np.float64) * TWO_POW_M53


def _replica_keys_np(seed: int, n_replicas: int) -> np.ndarray:
    replicas = np.arange(n_replicas, dtype=np.uint64)
    return mix64_numpy(np.full(n_replicas, seed, dtype=np.uint64) * GOLDEN + (replicas + ONE))


def _sample_np(log_probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw, same rule as the kernel: first k with u < cumsum(pi)[k]."""
    cumulative = np.cumsum(np.exp(log_probs), axis=-1)
    index = (u[..., None] >= cumulative).sum(axis=-1)
    return np.minimum(index, log_probs.shape[-1] - 1)


def _optimizer_step_np(optimizer: Optimizer, theta: np.ndarray, loss_grad: np.ndarray,
                       state: dict[str, Any]) -> None:
    """Vectorised PyTorch-semantics update over replicas (the twin of the kernel's)."""
    if optimizer.max_grad_norm is not None:
        norm = np.sqrt((loss_grad**2).sum(axis=-1, keepdims=True))
        loss_grad = loss_grad * np.minimum(1.0, optimizer.max_grad_norm / (norm + 1e-6))
    if optimizer.kind != "adamw" and optimizer.weight_decay:
        loss_grad = loss_grad + optimizer.weight_decay * theta
    step = state["step"]
    if optimizer.kind == "sgd":
        theta -= optimizer.lr * loss_grad
    elif optimizer.kind == "heavy_ball":
        state["buf"] = loss_grad.copy() if step == 0 else (
            optimizer.momentum * state["buf"] + (1.0 - optimizer.dampening) * loss_grad)
        theta -= optimizer.lr * state["buf"]
    else:
        t = step + 1
        if optimizer.kind == "adamw":
            theta *= 1.0 - optimizer.lr * optimizer.weight_decay
        state["m"] = optimizer.beta1 * state["m"] + (1.0 - optimizer.beta1) * loss_grad
        state["v"] = optimizer.beta2 * state["v"] + (1.0 - optimizer.beta2) * loss_grad**2
        m_hat = state["m"] / (1.0 - optimizer.beta1**t)
        denom = np.sqrt(state["v"] / (1.0 - optimizer.beta2**t)) + optimizer.eps
        safe = np.where(denom > 0, denom, 1.0)
        theta -= np.where(denom > 0, optimizer.lr * m_hat / safe, 0.0)
    state["step"] = step + 1


def _train_numpy(policy: TwoPositionPolicy, objective: Objective, optimizer: Optimizer,
                 theta0: np.ndarray, theta_ref: np.ndarray, group_size: int, n_groups: int,
                 n_steps: int, refresh_interval: int, seed: int,
                 reward_scale: float) -> np.ndarray:
    n_rep, n_par = theta0.shape
    keys = _replica_keys_np(seed, n_rep)[:, None, None]
    success = np.asarray(policy.success_prob)
    group_idx = np.arange(n_groups)[:, None]
    member_idx = np.arange(group_size)[None, :]
    n_streams = _k.N_FIXED_STREAMS + policy.max_tail  # same layout as the kernel
    tail_mask = np.arange(max(policy.max_tail, 1))  # tail position j

    def counter(refresh: int, member: np.ndarray, stream: Any) -> np.ndarray:
        slot = (refresh * n_groups + group_idx) * (group_size + 1) + member
        return slot * n_streams + stream

    out = np.empty((n_rep, n_steps + 1, n_par))
    theta = theta0.copy()
    out[:, 0] = theta
    state: dict[str, Any] = {}
    theta_old = theta.copy()
    prefixes = actions = rewards = tails = np.empty(0)
    rows = np.arange(n_rep)[:, None, None]
    for t in range(n_steps):
        if t % refresh_interval == 0:
            refresh = t // refresh_interval
            theta_old = theta.copy()
            if optimizer.reset_state or t == 0:
                state = {"step": 0, "buf": np.zeros_like(theta), "m": np.zeros_like(theta),
                         "v": np.zeros_like(theta)}
            log_pre, log_cont, log_tail = _log_policy(policy, theta_old)
            u_group = _uniform_np(keys, counter(refresh, np.array([[group_size]]), 0))
            group_prefix = _sample_np(log_pre[:, None, None, :], u_group)  # (R, B, 1)
            if policy.prefix_mode == "shared":
                prefixes = np.broadcast_to(group_prefix, (n_rep, n_groups, group_size))
            else:
                u_pre = _uniform_np(keys, counter(refresh, member_idx, 0))
                prefixes = _sample_np(log_pre[:, None, None, :], u_pre)
            u_act = _uniform_np(keys, counter(refresh, member_idx, 1))
            actions = _sample_np(log_cont[rows, prefixes], u_act)
            u_rew = _uniform_np(keys, counter(refresh, member_idx, 2))
            rewards = reward_scale * (u_rew < success[prefixes, actions]).astype(float)
            tails = np.zeros((n_rep, n_groups, group_size, tail_mask.size), dtype=np.int64)
            if policy.tail_vocab:
                slot = (refresh * n_groups + group_idx[..., None]) * (group_size + 1) + (
                    member_idx[..., None])  # (B, G, 1)
                u_tail = _uniform_np(keys[..., None],
                                     slot * n_streams + _k.N_FIXED_STREAMS + tail_mask)
                drawn = _sample_np(log_tail[:, None, None, None, :], u_tail)
                tails = np.where(_tail_mask(policy, actions), drawn, 0)
        grad = surrogate_gradient(objective, policy, theta, theta_old=theta_old,
                                  prefixes=prefixes, actions=actions, rewards=rewards,
                                  theta_ref=theta_ref, tails=tails)
        _optimizer_step_np(optimizer, theta, -grad, state)
        out[:, t + 1] = theta
    return out


def _train_numba(policy: TwoPositionPolicy, objective: Objective, optimizer: Optimizer,
                 theta0: np.ndarray, theta_ref: np.ndarray, group_size: int, n_groups: int,
                 n_steps: int, refresh_interval: int, seed: int,
                 reward_scale: float) -> np.ndarray:
    cfg_int, cfg_float = _config_arrays(policy, objective, optimizer, reward_scale)
    n_rep = theta0.shape[0]
    out = np.empty((n_rep, n_steps + 1, policy.n_params))
    out[:, 0] = theta0
    args = (theta_ref, policy.n_prefixes, policy.n_actions,
            np.asarray(policy.lengths, dtype=np.int64), np.asarray(policy.success_prob),
            cfg_int, cfg_float, group_size, n_groups, n_steps, refresh_interval, np.uint64(seed))
    # the kernel releases the GIL: one contiguous chunk of replicas per thread; each replica's
    # random stream depends only on (seed, replica), so the split does not change the result
    n_threads = max(1, min(numba.get_num_threads(), n_rep))
    bounds = np.linspace(0, n_rep, n_threads + 1).astype(int)
    if n_threads == 1:
        _k.train_replicas(out, 0, n_rep, *args)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            jobs = [pool.submit(_k.train_replicas, out, int(lo), int(hi), *args)
                    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
            for job in jobs:
                job.result()
    return out


def train_two_position(policy: TwoPositionPolicy, objective: Objective, optimizer: Optimizer, *,
                       group_size: int, n_steps: int, n_groups: int = 1,
                       refresh_interval: int = 1, n_replicas: int = 1, seed: int = 0,
                       theta0: Any | None = None, theta_ref: Any | None = None,
                       reward_scale: float = 1.0,
                       backend: Literal["numba", "numpy"] = "numba") -> TwoPositionRun:
    """Train the two-position policy with one objective and optimizer (docs/objectives.md s.3).

    Every refresh_interval optimizer steps the sampling policy is refreshed and n_groups groups
    of group_size sequences are drawn and reused for the whole cycle (MODEL.md s.3 refresh
    model); the loss is -J averaged over groups. Rewards are reward_scale x Bernoulli.
    theta0: start logits (n_params,) or (n_replicas, n_params), default zeros (uniform policy);
    theta_ref: KL reference logits (n_params,), default zeros. Replicas are seeded from
    (seed, replica) by a counter-based generator, so results do not depend on the thread count
    and backend="numpy" (the vectorised reference) draws the same samples.
    """
    for name, value, low in (("group_size", group_size, 2), ("n_steps", n_steps, 1),
                             ("n_groups", n_groups, 1), ("refresh_interval", refresh_interval, 1),
                             ("n_replicas", n_replicas, 1), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    reward_scale = _finite("reward_scale", reward_scale)
    _choice("backend", backend, ("numba", "numpy"))
    n_par = policy.n_params
    theta0_arr = np.zeros(n_par) if theta0 is None else np.asarray(theta0, dtype=float)
    if theta0_arr.shape == (n_par,):
        theta0_arr = np.tile(theta0_arr, (n_replicas, 1))
    if theta0_arr.shape != (n_replicas, n_par) or not np.all(np.isfinite(theta0_arr)):
        raise ValueError(f"theta0 must be finite with shape ({n_par},) or ({n_replicas}, {n_par})")
    ref = np.zeros(n_par) if theta_ref is None else np.asarray(theta_ref, dtype=float)
    if ref.shape != (n_par,) or not np.all(np.isfinite(ref)):
        raise ValueError(f"theta_ref must be finite with shape ({n_par},)")
    if backend == "numba":
        theta = _train_numba(policy, objective, optimizer, theta0_arr, ref, int(group_size),
                             int(n_groups), int(n_steps), int(refresh_interval), int(seed),
                             reward_scale)
    else:
        theta = _train_numpy(policy, objective, optimizer, theta0_arr, ref, int(group_size),
                             int(n_groups), int(n_steps), int(refresh_interval), int(seed),
                             reward_scale)
    return TwoPositionRun(theta, policy.expected_reward(theta), policy.expected_length(theta),
                          policy, objective, optimizer, reward_scale, backend)


# --------------------------------------------------------------------------------------------
# effect 1: shared-prefix bias
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrefixBias:
    """Gradient coefficient sum_i w_i A_i on a prefix shared by a group (docs/objectives.md s.5).

    The prefix logits move by this coefficient times (e_prefix - pi_prefix) per group, so a
    non-zero mean is a drift of the prefix that no reward asked for. exact_mean is the
    expectation over all group compositions (multinomial sum over n_outcomes distinct groups),
    monte_carlo_mean its estimate from n_groups sampled groups with standard_error.
    """

    exact_mean: float
    monte_carlo_mean: float
    standard_error: float
    n_groups: int
    n_outcomes: int
    objective: Objective


def _prefix_coefficient(objective: Objective, policy: TwoPositionPolicy, theta: np.ndarray,
                        actions: np.ndarray, rewards: np.ndarray) -> np.ndarray:
    prefixes = np.zeros_like(actions)
    tails = np.zeros((*actions.shape, max(policy.max_tail, 1)), dtype=np.int64)
    c0, _, _ = _token_coefficients(objective, policy, theta, theta, theta, prefixes, actions,
                                   rewards, tails)
    return c0.sum(axis=-1)


def prefix_bias(objective: Objective, *, lengths: Any, success_prob: Any,
                continuation_logits: Any | None = None, group_size: int = 8,
                n_groups: int = 20_000, seed: int = 0) -> PrefixBias:
    """Expected gradient on a shared prefix token, exactly and by Monte Carlo (s.5).

    One context: a prefix shared by the whole group, then action a (probability
    softmax(continuation_logits), default uniform) producing |o| = 1 + lengths[a] tokens and
    reward Bernoulli(success_prob[a]). On-policy (s = 1, so clip and KL gradients vanish).
    Uniform per-token weights (group_mean, token_sum) cancel exactly because sum_i A_i = 0;
    1/|o_i| weights do not, and the sign follows whether the correct answers are short or long.
    """
    policy = TwoPositionPolicy(tuple(np.asarray(lengths).tolist()), success_prob, "shared")
    n_act = policy.n_actions
    logits = np.zeros(n_act) if continuation_logits is None else np.asarray(
        continuation_logits, dtype=float)
    if logits.shape != (n_act,) or not np.all(np.isfinite(logits)):
        raise ValueError(f"continuation_logits must be finite with shape ({n_act},)")
    for name, value, low in (("group_size", group_size, 2), ("n_groups", n_groups, 2)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    theta = np.concatenate([[0.0], logits])
    pi = np.exp(log_softmax(logits))
    success = np.asarray(policy.success_prob[0])
    # categories (action, reward): index 2a + r
    cat_prob = np.stack([pi * (1.0 - success), pi * success], axis=-1).reshape(-1)
    n_cat = 2 * n_act
    n_outcomes = math.comb(group_size + n_cat - 1, group_size)
    if n_outcomes > 2_000_000:
        raise ValueError(f"group_size={group_size} with {n_act} actions has too many outcomes "
                         f"({n_outcomes}) for the exact sum")
    groups = np.array(list(itertools.combinations_with_replacement(range(n_cat), group_size)))
    counts = np.stack([(groups == c).sum(axis=1) for c in range(n_cat)], axis=1)
    from scipy.stats import multinomial  # scipy.stats costs ~1 s to import: only here

    weight = multinomial.pmf(counts, group_size, cat_prob)
    exact = float(np.dot(weight, _prefix_coefficient(
        objective, policy, theta, groups // 2, (groups % 2).astype(float))))
    rng = np.random.default_rng(seed)
    actions = rng.choice(n_act, size=(n_groups, group_size), p=pi)
    rewards = (rng.random((n_groups, group_size)) < success[actions]).astype(float)
    sample = _prefix_coefficient(objective, policy, theta, actions, rewards)
    return PrefixBias(exact, float(sample.mean()), float(sample.std(ddof=1) / np.sqrt(n_groups)),
                      int(n_groups), int(n_outcomes), objective)


# --------------------------------------------------------------------------------------------
# effect 2: reward-scale invariance
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ScaleInvariance:
    """Two runs under common random numbers, rewards x1 and x phi (docs/objectives.md s.6).

    max_abs_difference: max |theta_phi - theta_1| over replicas, steps and logits;
    max_reward_difference: max |E r_phi - E r_1| (success probability, unscaled).
    predicted_invariant: the s.6 conditions hold (Adam/AdamW, centred advantages, no KL, no
    coupled L2 for Adam, no gradient-norm clipping); then the difference is round-off plus
    O(eps / sqrt(v_hat)) per step.
    """

    phi: float
    max_abs_difference: float
    max_reward_difference: float
    predicted_invariant: bool
    base: TwoPositionRun
    scaled: TwoPositionRun


def _default_effect_policy() -> TwoPositionPolicy:
    # short answers mostly right, long ones mostly wrong: variable |o_i| within groups
    return TwoPositionPolicy(lengths=(1, 4), success_prob=(0.7, 0.3), prefix_mode="shared")


def reward_scale_invariance(objective: Objective, optimizer: Optimizer, *, phi: float = 10.0,
                            policy: TwoPositionPolicy | None = None, group_size: int = 8,
                            n_groups: int = 4, n_steps: int = 200, refresh_interval: int = 1,
                            n_replicas: int = 8, seed: int = 0, theta_ref: Any | None = None,
                            backend: Literal["numba", "numpy"] = "numba") -> ScaleInvariance:
    """Train twice with the same random numbers, rewards scaled by 1 and by phi > 0 (s.6).

    With centred advantages and no KL the gradient is exactly phi times the base gradient;
    Adam's m_hat / sqrt(v_hat) cancels phi (up to eps), SGD and heavy ball move phi times faster.
    """
    phi = _finite("phi", phi, low=0.0, low_open=True)
    policy = _default_effect_policy() if policy is None else policy
    kwargs: dict[str, Any] = dict(group_size=group_size, n_steps=n_steps, n_groups=n_groups,
                                  refresh_interval=refresh_interval, n_replicas=n_replicas,
                                  seed=seed, theta_ref=theta_ref, backend=backend)
    base = train_two_position(policy, objective, optimizer, reward_scale=1.0, **kwargs)
    scaled = train_two_position(policy, objective, optimizer, reward_scale=phi, **kwargs)
    predicted = (optimizer.kind in ("adam", "adamw") and objective.kl_coefficient == 0.0
                 and objective.advantage == "centered" and optimizer.max_grad_norm is None
                 and (optimizer.kind == "adamw" or optimizer.weight_decay == 0.0))
    return ScaleInvariance(
        phi, float(np.max(np.abs(scaled.theta - base.theta))),
        float(np.max(np.abs(scaled.expected_reward - base.expected_reward))),
        bool(predicted), base, scaled)


# --------------------------------------------------------------------------------------------
# effect 3: momentum overshoot of the clip band
# --------------------------------------------------------------------------------------------
def adam_overshoot_ratio(beta1: float, beta2: float, last_active_step: int, k: Any) -> np.ndarray:
    """Exact Adam step ratio (eps -> 0) k + 1 steps after the last non-zero gradient (s.7).

    With the last non-zero gradient at Adam step n (1-based), m_{n+j} = beta1^j m_n and
    v_{n+j} = beta2^j v_n, so the bias-corrected step n + k + 1 over step n is
        (beta1/sqrt(beta2))^(k+1) (1 - beta1^n)/(1 - beta1^(n+k+1))
            * sqrt((1 - beta2^(n+k+1))/(1 - beta2^n)),
    which tends to (beta1/sqrt(beta2))^(k+1) for large n.
    """
    beta1 = _finite("beta1", beta1, low=0.0, high=1.0, high_open=True)
    beta2 = _finite("beta2", beta2, low=0.0, low_open=True, high=1.0, high_open=True)
    if not isinstance(last_active_step, (int, np.integer)) or last_active_step < 1:
        raise ValueError(f"last_active_step must be an integer >= 1, got {last_active_step!r}")
    k = np.asarray(k)
    if np.any(k < 0):
        raise ValueError("k must be >= 0")
    n = int(last_active_step)
    later = n + k + 1
    return ((beta1 / np.sqrt(beta2)) ** (k + 1) * (1.0 - beta1**n) / (1.0 - beta1**later)
            * np.sqrt((1.0 - beta2**later) / (1.0 - beta2**n)))


@dataclass(frozen=True, eq=False)
class ClipOvershoot:
    """Steps taken after the clip zeroed the advantage gradient (docs/objectives.md s.7).

    step_sizes: change of the logit gap (correct minus wrong arm) per optimizer step;
    gradient_norms: ||dJ/dtheta|| at each step; last_active_step: 1-based optimizer step of
    the last non-zero gradient (n_steps if the gradient never vanished);
    step_ratios[k]: step n + k + 1 over step n; predicted_ratios: the exact expression
    (adam_overshoot_ratio, beta^(k+1) for heavy ball, 0 for SGD); asymptotic_ratios:
    (beta1/sqrt(beta2))^(k+1), beta^(k+1), 0; ratio_at_clip / final_ratio: importance ratio
    pi/pi_old of the correct arm at the last active step and at the end; clip_edge 1 + eps_high;
    overshoot: logit-gap displacement after the last active step.
    """

    step_sizes: np.ndarray
    gradient_norms: np.ndarray
    last_active_step: int
    step_ratios: np.ndarray
    predicted_ratios: np.ndarray
    asymptotic_ratios: np.ndarray
    ratio_at_clip: float
    final_ratio: float
    clip_edge: float
    overshoot: float


def clip_overshoot(optimizer: Optimizer, *, objective: Objective | None = None,
                   group_size: int = 8, n_correct: int = 3, initial_logit_gap: float = 0.0,
                   n_steps: int = 100) -> ClipOvershoot:
    """Reuse one two-arm group for n_steps steps and measure the steps after the clip (s.7).

    Arms 0 (reward 0) and 1 (reward 1), one-token answers; the group has n_correct members on
    arm 1. The clipped surrogate (default GRPO without KL) stops giving gradient once every
    member's ratio has left the band in its advantage's direction; the optimizer's own state
    keeps moving the logits: Adam at the adam_overshoot_ratio law, heavy ball at beta^(k+1),
    SGD not at all. optimizer.weight_decay must be 0 (decay would move theta on its own).
    """
    objective = objective_preset("grpo", kl="none") if objective is None else objective
    if not objective.clip:
        raise ValueError("objective.clip must be True: the effect is about the clip band")
    if objective.kl_coefficient != 0.0:
        raise ValueError("objective.beta_kl must be 0: a KL gradient never vanishes")
    if optimizer.weight_decay != 0.0:
        raise ValueError("optimizer.weight_decay must be 0 for clip_overshoot")
    if not isinstance(group_size, (int, np.integer)) or group_size < 2:
        raise ValueError(f"group_size must be an integer >= 2, got {group_size!r}")
    if not isinstance(n_correct, (int, np.integer)) or not 0 < n_correct < group_size:
        raise ValueError(f"n_correct must be an integer in (0, group_size), got {n_correct!r}")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 2:
        raise ValueError(f"n_steps must be an integer >= 2, got {n_steps!r}")
    gap0 = _finite("initial_logit_gap", initial_logit_gap)
    policy = TwoPositionPolicy(lengths=(1, 1), success_prob=(0.0, 1.0), prefix_mode="shared")
    actions = (np.arange(group_size) >= group_size - n_correct).astype(np.int64)[None, None, :]
    rewards = actions.astype(float)
    prefixes = np.zeros_like(actions)
    theta = np.array([[0.0, 0.0, gap0]])
    theta_old = theta.copy()
    state: dict[str, Any] = {"step": 0, "buf": np.zeros_like(theta), "m": np.zeros_like(theta),
                             "v": np.zeros_like(theta)}
    gaps = [gap0]
    grad_norms = np.empty(n_steps)
    for t in range(n_steps):
        grad = surrogate_gradient(objective, policy, theta, theta_old=theta_old,
                                  prefixes=prefixes, actions=actions, rewards=rewards)
        grad_norms[t] = np.sqrt(np.sum(grad**2))
        _optimizer_step_np(optimizer, theta, -grad, state)
        gaps.append(theta[0, 2] - theta[0, 1])
    gap = np.asarray(gaps)
    steps = np.diff(gap)
    active = np.flatnonzero(grad_norms > 0.0)
    n = int(active[-1]) + 1 if active.size else 0
    k = np.arange(n_steps - n) if n else np.arange(0)
    ratios = steps[n + k] / steps[n - 1] if n else np.empty(0)
    if optimizer.kind in ("adam", "adamw"):
        asymptotic = (optimizer.beta1 / np.sqrt(optimizer.beta2)) ** (k + 1.0)
        predicted = (adam_overshoot_ratio(optimizer.beta1, optimizer.beta2, n, k) if n
                     else np.empty(0))
    elif optimizer.kind == "heavy_ball":
        asymptotic = predicted = optimizer.momentum ** (k + 1.0)
    else:
        asymptotic = predicted = np.zeros(k.size)

    def correct_ratio(g: float) -> float:
        # pi_1 / pi_old_1 with pi_1 = sigmoid(gap)
        return float((1.0 + np.exp(-gap0)) / (1.0 + np.exp(-g)))

    return ClipOvershoot(
        steps, grad_norms, n, ratios, np.asarray(predicted, dtype=float),
        np.asarray(asymptotic, dtype=float), correct_ratio(gap[n]) if n else float("nan"),
        correct_ratio(gap[-1]), 1.0 + objective.eps_high, float(gap[-1] - gap[n]) if n else 0.0)


# --------------------------------------------------------------------------------------------
# consequence for the dynamics model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EffectiveDynamics:
    """An optimizer mapped onto MODEL.md s.3 (discrete) and s.4 (continuum); docs s.8.

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


def effective_dynamics(optimizer: Optimizer, *, kappa_lag: float, kappa_now: float = 0.0,
                       lag: float = 0.0, grad_rms: float | None = None) -> EffectiveDynamics:
    """Effective momentum, learning rate, mass and damping of an optimizer (docs s.8).

    sgd: beta 0, eta_eff = lr. heavy_ball (dampening d): beta, eta_eff = lr (1 - d).
    adam/adamw with a frozen preconditioner s = grad_rms + eps (grad_rms = sqrt(v_hat), same
    units as the gradient): beta = beta1, eta_eff = lr (1 - beta1) / s. Coupled L2 lambda adds
    eta_eff lambda to c_now; AdamW's decoupled decay gives beta = beta1 (1 - lr lambda) and adds
    lr lambda (1 - beta1) to c_now (exact for the linear recurrence). kappa_lag, kappa_now:
    curvatures (per unit eta_eff) of the stale and current forces; lag: L of MODEL.md s.4 in steps.
    """
    kappa_lag = _finite("kappa_lag", kappa_lag)
    kappa_now = _finite("kappa_now", kappa_now)
    lag = _finite("lag", lag, low=0.0)
    lr, decay = optimizer.lr, optimizer.weight_decay
    if optimizer.kind in ("adam", "adamw"):
        if grad_rms is None:
            raise ValueError("grad_rms is required for Adam-family optimizers (sqrt(v_hat))")
        scale = _finite("grad_rms", grad_rms, low=0.0) + optimizer.eps
        if scale <= 0.0:
            raise ValueError("grad_rms + eps must be > 0")
        beta = optimizer.beta1
        eta_eff = lr * (1.0 - beta) / scale
    elif optimizer.kind == "heavy_ball":
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
    zeta = (damping / (2.0 * math.sqrt(mass * stiffness)) if mass > 0 and stiffness > 0
            else float("nan"))
    return EffectiveDynamics(optimizer.kind, beta, eta_eff, c_lag, c_now, mass, damping,
                             stiffness, zeta)
