"""The GRPO objective family: its specification and the surrogate (docs/objectives.md section 1).

One surrogate covers GRPO, Dr. GRPO, DAPO and GSPO (docs/model.md section 7):

    J = sum_{i,t} w_{i,t} min(s_{i,t} A_i, clip(s_{i,t}, 1 - eps_low, 1 + eps_high) A_i) - kl_coef R

An `Objective` fixes each axis (weighting, advantage, ratio, clip band, KL) in the option names
shared with the bandit simulator (grpo_dynamics._vocabulary). `surrogate_value` evaluates J token
by token on the two-position policy and `surrogate_gradient` is its analytic gradient (the NumPy
reference the Numba kernel is checked against).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .. import _validation as _v
from .._vocabulary import ADVANTAGES, KL, Advantage, check_kl
from .policy import TwoPositionPolicy, _log_policy, _tail_mask

__all__ = [
    "Objective",
    "OBJECTIVE_PRESETS",
    "objective_preset",
    "surrogate_value",
    "surrogate_gradient",
]

Weighting = Literal["sequence_mean", "group_mean", "token_sum"]
ObjectiveRatio = Literal["token", "sequence"]

WEIGHTINGS: tuple[Weighting, ...] = ("sequence_mean", "group_mean", "token_sum")
# the subset of the shared vocabulary the objective family implements
OBJECTIVE_RATIOS: tuple[ObjectiveRatio, ...] = ("token", "sequence")
OBJECTIVE_KLS: tuple[KL, ...] = ("none", "k3")


@dataclass(frozen=True)
class Objective:
    """One member of the unified surrogate family (docs/objectives.md section 1).

    weighting: per-token weight w_{i,t}: "sequence_mean" 1/(G |o_i|) (GRPO, GSPO),
        "group_mean" 1/G (Dr. GRPO), "token_sum" 1/sum_j |o_j| (DAPO).
    advantage: "std_normalized" (r - mean)/(std + eps_std) with the unbiased std (0 for a
        group whose rewards are all equal, also with eps_std = 0), or "centered" r - mean.
    ratio: "token" s_{i,t} = pi/pi_old per token, or "sequence" (GSPO)
        s_i = (pi(o_i)/pi_old(o_i))^(1/|o_i|) shared by the tokens of o_i.
    clip: apply the PPO clip with band [1 - eps_low, 1 + eps_high].
    kl: "none" or "k3" (per-token k3 estimator to a reference policy at the rollout samples,
        weighted by w_{i,t}), with coefficient kl_coef (dimensionless; 0 when kl="none").
    """

    weighting: Weighting = "sequence_mean"
    advantage: Advantage = "std_normalized"
    ratio: ObjectiveRatio = "token"
    clip: bool = True
    eps_low: float = 0.2
    eps_high: float = 0.2
    kl: KL = "none"
    kl_coef: float = 0.0
    eps_std: float = 1e-4

    def __post_init__(self) -> None:
        _v.choice("weighting", self.weighting, WEIGHTINGS)
        _v.choice("advantage", self.advantage, ADVANTAGES)
        _v.choice("ratio", self.ratio, OBJECTIVE_RATIOS)
        values = {
            "clip": _v.flag("clip", self.clip),
            "eps_low": _v.in_range("eps_low", self.eps_low, 0.0, 1.0, hi_open=True),
            "eps_high": _v.nonnegative("eps_high", self.eps_high),
            "kl_coef": check_kl(self.kl, self.kl_coef, OBJECTIVE_KLS),
            "eps_std": _v.nonnegative("eps_std", self.eps_std),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def kl_coefficient(self) -> float:
        """The coefficient actually applied (0 when kl='none')."""
        return self.kl_coef if self.kl != "none" else 0.0


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

    Setting kl="none" also zeroes kl_coef unless kl_coef is given. See docs/objectives.md
    section 1.
    """
    _v.choice("name", name, OBJECTIVE_PRESETS)
    base = OBJECTIVE_PRESETS[name]
    if overrides.get("kl") == "none" and "kl_coef" not in overrides:
        overrides["kl_coef"] = 0.0
    unknown = set(overrides) - set(Objective.__dataclass_fields__)
    if unknown:
        raise ValueError(
            f"overrides: must name fields of Objective "
            f"({', '.join(Objective.__dataclass_fields__)}); got unknown {sorted(unknown)}"
        )
    return replace(base, **overrides)


# --------------------------------------------------------------------------------------------
# the surrogate: plain value, analytic gradient (NumPy reference)
# --------------------------------------------------------------------------------------------
def _logits(
    theta: ArrayLike, theta_old: ArrayLike, theta_ref: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """theta as floats; theta_old and theta_ref (default theta_old) broadcast to its shape."""
    current = np.asarray(theta, dtype=float)
    old = np.broadcast_to(np.asarray(theta_old, dtype=float), current.shape)
    if theta_ref is None:
        return current, old, old
    return current, old, np.broadcast_to(np.asarray(theta_ref, dtype=float), current.shape)


def _check_batch(
    policy: TwoPositionPolicy,
    theta: np.ndarray,
    prefixes: ArrayLike,
    actions: ArrayLike,
    rewards: ArrayLike,
    tails: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    prefixes = np.asarray(prefixes)
    actions = np.asarray(actions)
    rewards = np.asarray(rewards, dtype=float)
    if not (prefixes.shape == actions.shape == rewards.shape) or actions.ndim < 2:
        raise ValueError(
            "actions: prefixes, actions and rewards must share one shape (..., n_groups, G), "
            f"got {prefixes.shape}, {actions.shape}, {rewards.shape}"
        )
    if actions.shape[-1] < 2:
        raise ValueError(
            f"group_size: the last dimension of actions must be >= 2, got {actions.shape[-1]}"
        )
    if actions.shape[:-2] != theta.shape[:-1]:
        raise ValueError(
            f"actions: leading dimensions must match theta's {theta.shape[:-1]}, got "
            f"{actions.shape[:-2]}"
        )
    if np.any((actions < 0) | (actions >= policy.n_actions)):
        raise ValueError(f"actions: must be in [0, {policy.n_actions}) (n_actions)")
    if np.any((prefixes < 0) | (prefixes >= policy.n_prefixes)):
        raise ValueError(f"prefixes: must be in [0, {policy.n_prefixes}) (n_prefixes)")
    if not np.all(np.isfinite(rewards)):
        raise ValueError("rewards: must be finite")
    tail_shape = (*actions.shape, max(policy.max_tail, 1))
    if policy.tail_vocab == 0:
        tails = np.zeros(tail_shape, dtype=np.int64)  # deterministic tails: nothing to index
    else:
        if tails is None:
            raise ValueError("tails: required when the policy has tail_vocab > 0")
        tails = np.asarray(tails)
        if tails.shape != tail_shape:
            raise ValueError(
                f"tails: must have shape {tail_shape} (..., n_groups, G, max_tail), got "
                f"{tails.shape}"
            )
        if np.any((tails < 0) | (tails >= policy.tail_vocab)):
            raise ValueError(f"tails: must be in [0, {policy.tail_vocab}) (tail_vocab)")
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


def _gather(
    policy: TwoPositionPolicy,
    theta: np.ndarray,
    prefixes: np.ndarray,
    actions: np.ndarray,
    tails: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def surrogate_value(
    objective: Objective,
    policy: TwoPositionPolicy,
    theta: ArrayLike,
    *,
    theta_old: ArrayLike,
    prefixes: ArrayLike,
    actions: ArrayLike,
    rewards: ArrayLike,
    theta_ref: ArrayLike | None = None,
    tails: ArrayLike | None = None,
) -> np.ndarray:
    """J of docs/objectives.md section 1, averaged over groups; plain token-by-token evaluation.

    theta, theta_old (and theta_ref, default theta_old): logits (..., n_params);
    prefixes, actions, rewards: (..., n_groups, G); tails (..., n_groups, G, max_tail) when
    policy.tail_vocab > 0. Returns J with shape theta.shape[:-1].
    This is the reference the analytic gradient is checked against by finite differences.
    """
    theta, theta_old, theta_ref = _logits(theta, theta_old, theta_ref)
    prefixes, actions, rewards, tails = _check_batch(
        policy, theta, prefixes, actions, rewards, tails
    )
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
    if objective.ratio == "token":
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
        (adv < 0) & (ratio < 1.0 - objective.eps_low)
    )
    return (~outside).astype(float)


def _token_coefficients(
    objective: Objective,
    policy: TwoPositionPolicy,
    theta: np.ndarray,
    theta_old: np.ndarray,
    theta_ref: np.ndarray,
    prefixes: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    tails: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dJ_group/d log pi of the prefix, the action (..., n_groups, G) and each tail token
    (..., n_groups, G, max_tail; zero where the token has no logits)."""
    lp0, lp1, lpt = _gather(policy, theta, prefixes, actions, tails)
    old0, old1, oldt = _gather(policy, theta_old, prefixes, actions, tails)
    mask = _tail_mask(policy, actions)
    seq_len = policy.sequence_lengths[actions].astype(float)
    adv = _advantages(objective, rewards)
    w = _weights(objective, seq_len)

    if objective.ratio == "token":
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


def surrogate_gradient(
    objective: Objective,
    policy: TwoPositionPolicy,
    theta: ArrayLike,
    *,
    theta_old: ArrayLike,
    prefixes: ArrayLike,
    actions: ArrayLike,
    rewards: ArrayLike,
    theta_ref: ArrayLike | None = None,
    tails: ArrayLike | None = None,
) -> np.ndarray:
    """Analytic dJ/dtheta (..., n_params) of surrogate_value (docs/objectives.md section 1).

    Per token, dJ/d log pi_t = w A s active (token ratio; the sequence ratio gives the same form
    with s the sequence ratio) minus kl_coef w (1 - pi_ref/pi); then d log pi(k)/d theta =
    e_k - softmax(theta). At a clip boundary the unclipped branch is taken.
    """
    theta, theta_old, theta_ref = _logits(theta, theta_old, theta_ref)
    prefixes, actions, rewards, tails = _check_batch(
        policy, theta, prefixes, actions, rewards, tails
    )
    c0, c1, ct = _token_coefficients(
        objective, policy, theta, theta_old, theta_ref, prefixes, actions, rewards, tails
    )
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
        parts.append(
            np.einsum("...bgt,...bgtv->...v", ct, onehot_v - pi_tail[..., None, None, None, :])
        )
    return np.concatenate(parts, -1) / n_groups
