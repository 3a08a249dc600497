"""Plain per-sample NumPy twin of the bandit simulator (docs/simulate.md#reference).

Slow and obviously correct: draws every sample of every group, forms torch-style advantages
(torch.std is unbiased), the PPO surrogate per sample and the k3 estimator per sample, and
applies the update through optimizer.numpy_step (the twin of the kernels' numba_step). Tests
compare it statistically with the Numba kernels, which sample counts instead of samples. Uses
numpy's Generator, so the two share no random stream.
"""

from __future__ import annotations

import numpy as np

from ._simulate import OBSERVABLES, BanditConfig
from .optimizer import OptimizerState, numpy_step


def _softmax(theta: np.ndarray) -> np.ndarray:
    z = np.exp(theta - theta.max())
    return z / z.sum()


def group_gradient(
    config: BanditConfig,
    arms: np.ndarray,
    rewards: np.ndarray,
    theta: np.ndarray,
    theta_old: np.ndarray,
) -> tuple[np.ndarray, int]:
    """Ascent gradient of one group's surrogate (mean over its samples) and its clipped count."""
    group = arms.shape[0]
    n_arms = theta.shape[0]
    pi = _softmax(theta)
    pi_old = _softmax(theta_old)
    ref = _softmax(np.asarray(config.reference_logits, dtype=float))
    if np.all(rewards == rewards[0]):
        adv = np.zeros(group)  # zero-std group: no contrast
    elif config.advantage == "std_normalized":
        adv = (rewards - rewards.mean()) / (rewards.std(ddof=1) + config.eps_std)
    else:
        adv = rewards - rewards.mean()
    grad = np.zeros(n_arms)
    clipped = 0
    eps_low, eps_high = config.clip_band()
    for i in range(group):
        a = arms[i]
        score = -pi.copy()
        score[a] += 1.0  # d log pi(a) / d theta
        if config.ratio != "none":
            s = pi[a] / pi_old[a]
            unclipped = s * adv[i]
            clipped_term = np.clip(s, 1 - eps_low, 1 + eps_high) * adv[i]
            if clipped_term < unclipped and (s > 1 + eps_high or s < 1 - eps_low):
                clipped += 1  # min picks the clipped, constant branch: no gradient
            else:
                grad += adv[i] * s * score  # d(s A) = A s d log pi
        else:
            grad += adv[i] * score  # loss -A log pi(a)
        # k3 = ref/pi - log(ref/pi) - 1; d/dlog pi = 1 - ref/pi
        kl_grad = config.kl_coef * (1.0 - ref[a] / pi[a]) * score
        if config.kl == "k3_is":
            kl_grad = kl_grad * pi[a] / pi_old[a]  # importance weight of the sample
        grad -= kl_grad
    return grad / group, clipped


def simulate_reference(config: BanditConfig, seed: int) -> dict[str, np.ndarray]:
    """Per-sample simulation: dict of (replicas, steps) arrays named as SimulationResult."""
    rng = np.random.default_rng(seed)
    r_hi, r_lo, p_hi = config.reward_cells()
    arm_means = config.arm_means()
    ref = _softmax(np.asarray(config.reference_logits, dtype=float))
    n_arms = config.n_arms
    shape = (config.replicas, config.steps)
    out = {name: np.empty(shape) for name in OBSERVABLES}
    for rep in range(config.replicas):
        theta = np.asarray(config.initial_logits, dtype=float).copy()
        optimizer = config.to_optimizer()
        state = OptimizerState.zeros(theta.shape)
        batch: list[tuple[np.ndarray, np.ndarray]] = []
        theta_old = theta.copy()
        for t in range(config.steps):
            pi = _softmax(theta)
            if t % config.refresh_interval == 0:
                theta_old = theta.copy()
                if config.reset_state:
                    state = OptimizerState.zeros(theta.shape)
                batch = []
                for _ in range(config.batch_prompts):
                    arms = rng.choice(n_arms, size=config.group_size, p=pi)
                    hit = rng.random(config.group_size) < p_hi[arms]
                    batch.append((arms, np.where(hit, r_hi[arms], r_lo[arms])))
            grad = np.zeros(n_arms)
            clipped = 0
            for arms, rewards in batch:
                g, c = group_gradient(config, arms, rewards, theta, theta_old)
                grad += g / config.batch_prompts
                clipped += c
            out["expected_reward"][rep, t] = pi @ arm_means
            out["group_reward_std"][rep, t] = np.mean(
                [0.0 if np.all(r == r[0]) else r.std(ddof=1) for _, r in batch]
            )
            out["zero_std_fraction"][rep, t] = np.mean([np.all(r == r[0]) for _, r in batch])
            out["entropy"][rep, t] = -np.sum(pi * np.log(pi))
            out["kl_to_reference"][rep, t] = np.sum(pi * np.log(pi / ref))
            out["clip_fraction"][rep, t] = clipped / (config.batch_prompts * config.group_size)
            numpy_step(optimizer, theta, -grad, state)
    return out
