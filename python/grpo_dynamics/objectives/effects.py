"""Three effects of the objective and the optimizer (docs/objectives.md sections 5-7).

1. `prefix_bias`: the gradient on a prefix shared by the group is sum_i w_i A_i;
2. `reward_scale_invariance`: Adam/AdamW trajectories do not see a reward scale phi;
3. `clip_overshoot`: momentum keeps moving the policy after the clip has zeroed the gradient.

These are the optimizer effects of docs/model.md section 7, measured on the two-position policy.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import log_softmax

from .. import _validation as _v
from ..optimizer import ADAM_FAMILY, Optimizer, OptimizerState, numpy_step
from .policy import TwoPositionPolicy
from .specification import Objective, _token_coefficients, objective_preset, surrogate_gradient
from .training import TwoPositionRun, train_two_position

__all__ = [
    "PrefixBias",
    "prefix_bias",
    "ScaleInvariance",
    "reward_scale_invariance",
    "ClipOvershoot",
    "adam_overshoot_ratio",
    "clip_overshoot",
]


@dataclass(frozen=True)
class PrefixBias:
    """Gradient coefficient sum_i w_i A_i on a prefix shared by a group (docs/objectives.md
    section 5).

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


def _prefix_coefficient(
    objective: Objective,
    policy: TwoPositionPolicy,
    theta: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
) -> np.ndarray:
    prefixes = np.zeros_like(actions)
    tails = np.zeros((*actions.shape, max(policy.max_tail, 1)), dtype=np.int64)
    c0, _, _ = _token_coefficients(
        objective, policy, theta, theta, theta, prefixes, actions, rewards, tails
    )
    return c0.sum(axis=-1)


def prefix_bias(
    objective: Objective,
    *,
    lengths: ArrayLike,
    success_prob: ArrayLike,
    continuation_logits: ArrayLike | None = None,
    group_size: int = 8,
    n_groups: int = 20_000,
    seed: int = 0,
) -> PrefixBias:
    """Expected gradient on a shared prefix token, exactly and by Monte Carlo (section 5).

    One context: a prefix shared by the whole group, then action a (probability
    softmax(continuation_logits), default uniform) producing |o| = 1 + lengths[a] tokens and
    reward Bernoulli(success_prob[a]). On-policy (s = 1, so clip and KL gradients vanish).
    Uniform per-token weights (group_mean, token_sum) cancel exactly because sum_i A_i = 0;
    1/|o_i| weights do not, and the sign follows whether the correct answers are short or long.
    """
    prob = np.asarray(success_prob, dtype=float).tolist()
    policy = TwoPositionPolicy(tuple(np.asarray(lengths).tolist()), prob, "shared")
    n_act = policy.n_actions
    logits = (
        np.zeros(n_act)
        if continuation_logits is None
        else np.asarray(continuation_logits, dtype=float)
    )
    if logits.shape != (n_act,) or not np.all(np.isfinite(logits)):
        raise ValueError(
            f"continuation_logits: must be finite with shape ({n_act},), got {logits.tolist()}"
        )
    group_size = _v.integer("group_size", group_size, minimum=2)
    n_groups = _v.integer("n_groups", n_groups, minimum=2)
    seed = _v.integer("seed", seed, minimum=0)
    theta = np.concatenate([[0.0], logits])
    pi = np.exp(log_softmax(logits))
    success = np.asarray(policy.success_prob[0])
    # categories (action, reward): index 2a + r
    cat_prob = np.stack([pi * (1.0 - success), pi * success], axis=-1).reshape(-1)
    n_cat = 2 * n_act
    n_outcomes = math.comb(group_size + n_cat - 1, group_size)
    if n_outcomes > 2_000_000:
        raise ValueError(
            f"group_size: {group_size} with {n_act} actions has too many outcomes "
            f"({n_outcomes} > 2,000,000) for the exact sum"
        )
    groups = np.array(list(itertools.combinations_with_replacement(range(n_cat), group_size)))
    counts = np.stack([(groups == c).sum(axis=1) for c in range(n_cat)], axis=1)
    from scipy.stats import multinomial  # scipy.stats costs ~1 s to import: only here

    weight = multinomial.pmf(counts, group_size, cat_prob)
    exact = float(
        np.dot(
            weight,
            _prefix_coefficient(objective, policy, theta, groups // 2, (groups % 2).astype(float)),
        )
    )
    rng = np.random.default_rng(seed)
    actions = rng.choice(n_act, size=(n_groups, group_size), p=pi)
    rewards = (rng.random((n_groups, group_size)) < success[actions]).astype(float)
    sample = _prefix_coefficient(objective, policy, theta, actions, rewards)
    return PrefixBias(
        exact,
        float(sample.mean()),
        float(sample.std(ddof=1) / np.sqrt(n_groups)),
        int(n_groups),
        int(n_outcomes),
        objective,
    )


# --------------------------------------------------------------------------------------------
# effect 2: reward-scale invariance
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ScaleInvariance:
    """Two runs under common random numbers, rewards x1 and x phi (docs/objectives.md section 6).

    max_abs_difference: max |theta_phi - theta_1| over replicas, steps and logits;
    max_reward_difference: max |E r_phi - E r_1| (success probability, unscaled).
    predicted_invariant: the section 6 conditions hold (Adam/AdamW, centred advantages, no KL, no
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


def reward_scale_invariance(
    objective: Objective,
    optimizer: Optimizer,
    *,
    phi: float = 10.0,
    policy: TwoPositionPolicy | None = None,
    group_size: int = 8,
    n_groups: int = 4,
    n_steps: int = 200,
    refresh_interval: int = 1,
    n_replicas: int = 8,
    seed: int = 0,
    theta_ref: ArrayLike | None = None,
    backend: Literal["numba", "numpy"] = "numba",
) -> ScaleInvariance:
    """Train twice with the same random numbers, rewards scaled by 1 and by phi > 0 (section 6).

    With centred advantages and no KL the gradient is exactly phi times the base gradient;
    Adam's m_hat / sqrt(v_hat) cancels phi (up to eps), SGD and heavy ball move phi times faster.
    """
    phi = _v.positive("phi", phi)
    policy = _default_effect_policy() if policy is None else policy
    base, scaled = (
        train_two_position(
            policy,
            objective,
            optimizer,
            group_size=group_size,
            n_steps=n_steps,
            n_groups=n_groups,
            refresh_interval=refresh_interval,
            n_replicas=n_replicas,
            seed=seed,
            theta_ref=theta_ref,
            backend=backend,
            reward_scale=scale,
        )
        for scale in (1.0, phi)
    )
    predicted = (
        optimizer.kind in ADAM_FAMILY
        and objective.kl_coefficient == 0.0
        and objective.advantage == "centered"
        and optimizer.max_grad_norm is None
        and (optimizer.kind == "adamw" or optimizer.weight_decay == 0.0)
    )
    return ScaleInvariance(
        phi,
        float(np.max(np.abs(scaled.theta - base.theta))),
        float(np.max(np.abs(scaled.expected_reward - base.expected_reward))),
        bool(predicted),
        base,
        scaled,
    )


# --------------------------------------------------------------------------------------------
# effect 3: momentum overshoot of the clip band
# --------------------------------------------------------------------------------------------
def adam_overshoot_ratio(
    beta1: float, beta2: float, last_active_step: int, k: ArrayLike
) -> np.ndarray:
    """Exact Adam step ratio (eps -> 0) k + 1 steps after the last non-zero gradient (section 7).

    With the last non-zero gradient at Adam step n (1-based), m_{n+j} = beta1^j m_n and
    v_{n+j} = beta2^j v_n, so the bias-corrected step n + k + 1 over step n is
        (beta1/sqrt(beta2))^(k+1) (1 - beta1^n)/(1 - beta1^(n+k+1))
            * sqrt((1 - beta2^(n+k+1))/(1 - beta2^n)),
    which tends to (beta1/sqrt(beta2))^(k+1) for large n.
    """
    beta1 = _v.in_range("beta1", beta1, 0.0, 1.0, hi_open=True)
    beta2 = _v.in_range("beta2", beta2, 0.0, 1.0, lo_open=True, hi_open=True)
    last_active_step = _v.integer("last_active_step", last_active_step, minimum=1)
    k = np.asarray(k)
    if np.any(k < 0):
        raise ValueError(f"k: must be >= 0, got min {k.min()}")
    n = int(last_active_step)
    later = n + k + 1
    return (
        (beta1 / np.sqrt(beta2)) ** (k + 1)
        * (1.0 - beta1**n)
        / (1.0 - beta1**later)
        * np.sqrt((1.0 - beta2**later) / (1.0 - beta2**n))
    )


@dataclass(frozen=True, eq=False)
class ClipOvershoot:
    """Steps taken after the clip zeroed the advantage gradient (docs/objectives.md section 7).

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


def clip_overshoot(
    optimizer: Optimizer,
    *,
    objective: Objective | None = None,
    group_size: int = 8,
    n_correct: int = 3,
    initial_logit_gap: float = 0.0,
    n_steps: int = 100,
) -> ClipOvershoot:
    """Reuse one two-arm group for n_steps steps and measure the steps after the clip (section 7).

    Arms 0 (reward 0) and 1 (reward 1), one-token answers; the group has n_correct members on
    arm 1. The clipped surrogate (default GRPO without KL) stops giving gradient once every
    member's ratio has left the band in its advantage's direction; the optimizer's own state
    keeps moving the logits: Adam at the adam_overshoot_ratio law, heavy ball at beta^(k+1),
    SGD not at all. optimizer.weight_decay must be 0 (decay would move theta on its own).
    """
    objective = objective_preset("grpo", kl="none") if objective is None else objective
    if not objective.clip:
        raise ValueError("objective: clip must be True (the effect is about the clip band)")
    if objective.kl_coefficient != 0.0:
        raise ValueError("objective: kl_coef must be 0 (a KL gradient never vanishes)")
    if optimizer.weight_decay != 0.0:
        raise ValueError(
            f"optimizer: weight_decay must be 0 for clip_overshoot, got {optimizer.weight_decay}"
        )
    group_size = _v.integer("group_size", group_size, minimum=2)
    n_correct = _v.integer("n_correct", n_correct, minimum=1, maximum=group_size - 1)
    n_steps = _v.integer("n_steps", n_steps, minimum=2)
    gap0 = _v.finite("initial_logit_gap", initial_logit_gap)
    policy = TwoPositionPolicy(lengths=(1, 1), success_prob=(0.0, 1.0), prefix_mode="shared")
    actions = (np.arange(group_size) >= group_size - n_correct).astype(np.int64)[None, None, :]
    rewards = actions.astype(float)
    prefixes = np.zeros_like(actions)
    theta = np.array([[0.0, 0.0, gap0]])
    theta_old = theta.copy()
    state = OptimizerState.zeros(theta.shape)
    gaps = [gap0]
    grad_norms = np.empty(n_steps)
    for t in range(n_steps):
        grad = surrogate_gradient(
            objective,
            policy,
            theta,
            theta_old=theta_old,
            prefixes=prefixes,
            actions=actions,
            rewards=rewards,
        )
        grad_norms[t] = np.sqrt(np.sum(grad**2))
        numpy_step(optimizer, theta, -grad, state)
        gaps.append(theta[0, 2] - theta[0, 1])
    gap = np.asarray(gaps)
    steps = np.diff(gap)
    active = np.flatnonzero(grad_norms > 0.0)
    n = int(active[-1]) + 1 if active.size else 0
    k = np.arange(n_steps - n) if n else np.arange(0)
    ratios = steps[n + k] / steps[n - 1] if n else np.empty(0)
    if optimizer.kind in ADAM_FAMILY:
        asymptotic = (optimizer.beta1 / np.sqrt(optimizer.beta2)) ** (k + 1.0)
        predicted = (
            adam_overshoot_ratio(optimizer.beta1, optimizer.beta2, n, k) if n else np.empty(0)
        )
    elif optimizer.kind == "heavy_ball":
        asymptotic = predicted = optimizer.momentum ** (k + 1.0)
    else:
        asymptotic = predicted = np.zeros(k.size)

    def correct_ratio(g: float) -> float:
        # pi_1 / pi_old_1 with pi_1 = sigmoid(gap)
        return float((1.0 + np.exp(-gap0)) / (1.0 + np.exp(-g)))

    return ClipOvershoot(
        steps,
        grad_norms,
        n,
        ratios,
        np.asarray(predicted, dtype=float),
        np.asarray(asymptotic, dtype=float),
        correct_ratio(gap[n]) if n else float("nan"),
        correct_ratio(gap[-1]),
        1.0 + objective.eps_high,
        float(gap[-1] - gap[n]) if n else 0.0,
    )
