"""Training runs of the two-position policy: Numba kernel and its NumPy twin (docs/objectives.md
section 3).

Every refresh_interval optimizer steps the sampling policy is refreshed and n_groups groups of
group_size sequences are drawn and reused for the whole cycle (the refresh model of
docs/model.md section 2). The compiled run (_objective_kernels) and the vectorised NumPy
reference draw the same counter-based random numbers and apply the same optimizer
(optimizer.numba_step and its twin optimizer.numpy_step), so the tests compare them to round-off.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numba
import numpy as np
from numpy.typing import ArrayLike

from .. import _objective_kernels as _k
from .. import _validation as _v
from .._splitmix import GOLDEN, ONE, SHIFT11, TWO_POW_M53, mix64_numpy
from .._vocabulary import ADVANTAGES
from ..optimizer import Optimizer, OptimizerState, numpy_step
from .policy import TwoPositionPolicy, _log_policy, _tail_mask
from .specification import OBJECTIVE_RATIOS, WEIGHTINGS, Objective, surrogate_gradient

__all__ = ["TwoPositionRun", "train_two_position"]


def _config_arrays(
    policy: TwoPositionPolicy, objective: Objective, reward_scale: float, reset_state: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The objective's (and run's) settings in the kernel layout of _objective_kernels."""
    cfg_int = np.zeros(_k.N_CFG_INT, dtype=np.int64)
    cfg_int[_k.CFG_WEIGHTING] = WEIGHTINGS.index(objective.weighting)
    cfg_int[_k.CFG_ADVANTAGE] = ADVANTAGES.index(objective.advantage)
    cfg_int[_k.CFG_RATIO] = OBJECTIVE_RATIOS.index(objective.ratio)
    cfg_int[_k.CFG_CLIP] = int(objective.clip)
    cfg_int[_k.CFG_RESET] = int(reset_state)
    cfg_int[_k.CFG_SHARED] = int(policy.prefix_mode == "shared")
    cfg_float = np.zeros(_k.N_CFG_FLOAT)
    cfg_float[_k.CFG_EPS_LOW] = objective.eps_low
    cfg_float[_k.CFG_EPS_HIGH] = objective.eps_high
    cfg_float[_k.CFG_KL_COEF] = objective.kl_coefficient
    cfg_float[_k.CFG_EPS_STD] = objective.eps_std
    cfg_float[_k.CFG_REWARD_SCALE] = reward_scale
    return cfg_int, cfg_float


@dataclass(frozen=True, eq=False)
class TwoPositionRun:
    """Trajectories of a two-position training run (docs/objectives.md section 3).

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


@dataclass(frozen=True, eq=False)
class _Run:
    """The validated settings of one train_two_position call (both backends read them)."""

    policy: TwoPositionPolicy
    objective: Objective
    optimizer: Optimizer
    theta_ref: np.ndarray
    group_size: int
    n_groups: int
    n_steps: int
    refresh_interval: int
    seed: int
    reward_scale: float


def _train_numpy(run: _Run, theta0: np.ndarray) -> np.ndarray:
    policy, objective, optimizer = run.policy, run.objective, run.optimizer
    group_size, n_groups, refresh_interval = run.group_size, run.n_groups, run.refresh_interval
    n_rep, n_par = theta0.shape
    seed, n_steps, reward_scale, theta_ref = run.seed, run.n_steps, run.reward_scale, run.theta_ref
    keys = _replica_keys_np(seed, n_rep)[:, None, None]
    success = np.asarray(policy.success_prob)
    group_idx = np.arange(n_groups)[:, None]
    member_idx = np.arange(group_size)[None, :]
    n_streams = _k.N_FIXED_STREAMS + policy.max_tail  # same layout as the kernel
    tail_mask = np.arange(max(policy.max_tail, 1))  # tail position j

    def counter(refresh: int, member: np.ndarray, stream: int | np.ndarray) -> np.ndarray:
        slot = (refresh * n_groups + group_idx) * (group_size + 1) + member
        return slot * n_streams + stream

    out = np.empty((n_rep, n_steps + 1, n_par))
    theta = theta0.copy()
    out[:, 0] = theta
    state = OptimizerState.zeros(theta.shape)
    theta_old = theta.copy()
    prefixes = actions = rewards = tails = np.empty(0)
    rows = np.arange(n_rep)[:, None, None]
    for t in range(n_steps):
        if t % refresh_interval == 0:
            refresh = t // refresh_interval
            theta_old = theta.copy()
            if optimizer.reset_state:
                state = OptimizerState.zeros(theta.shape)
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
                    member_idx[..., None]
                )  # (B, G, 1)
                u_tail = _uniform_np(
                    keys[..., None], slot * n_streams + _k.N_FIXED_STREAMS + tail_mask
                )
                drawn = _sample_np(log_tail[:, None, None, None, :], u_tail)
                tails = np.where(_tail_mask(policy, actions), drawn, 0)
        grad = surrogate_gradient(
            objective,
            policy,
            theta,
            theta_old=theta_old,
            prefixes=prefixes,
            actions=actions,
            rewards=rewards,
            theta_ref=theta_ref,
            tails=tails,
        )
        numpy_step(optimizer, theta, -grad, state)
        out[:, t + 1] = theta
    return out


def _train_numba(run: _Run, theta0: np.ndarray) -> np.ndarray:
    policy = run.policy
    cfg_int, cfg_float = _config_arrays(
        policy, run.objective, run.reward_scale, run.optimizer.reset_state
    )
    n_rep = theta0.shape[0]
    out = np.empty((n_rep, run.n_steps + 1, policy.n_params))
    out[:, 0] = theta0
    lengths = np.asarray(policy.lengths, dtype=np.int64)
    args: tuple[object, ...] = (run.theta_ref, policy.n_prefixes, policy.n_actions, lengths)
    args += (np.asarray(policy.success_prob), cfg_int, cfg_float)
    args += (*run.optimizer.kernel_arguments(), run.group_size, run.n_groups, run.n_steps)
    args += (run.refresh_interval, np.uint64(run.seed))
    # the kernel releases the GIL: one contiguous chunk of replicas per thread; each replica's
    # random stream depends only on (seed, replica), so the split does not change the result
    n_threads = max(1, min(numba.get_num_threads(), n_rep))
    bounds = np.linspace(0, n_rep, n_threads + 1).astype(int)
    if n_threads == 1:
        _k.train_replicas(out, 0, n_rep, *args)
    else:
        with ThreadPoolExecutor(n_threads) as pool:
            jobs = [
                pool.submit(_k.train_replicas, out, int(lo), int(hi), *args)
                for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
            ]
            for job in jobs:
                job.result()
    return out


def _check_types(policy: object, objective: object, optimizer: object) -> None:
    for name, value, kind in (
        ("policy", policy, TwoPositionPolicy),
        ("objective", objective, Objective),
        ("optimizer", optimizer, Optimizer),
    ):
        if not isinstance(value, kind):
            raise ValueError(f"{name}: must be a {kind.__name__}, got {type(value).__name__}")


def train_two_position(
    policy: TwoPositionPolicy,
    objective: Objective,
    optimizer: Optimizer,
    *,
    group_size: int,
    n_steps: int,
    n_groups: int = 1,
    refresh_interval: int = 1,
    n_replicas: int = 1,
    seed: int = 0,
    theta0: ArrayLike | None = None,
    theta_ref: ArrayLike | None = None,
    reward_scale: float = 1.0,
    backend: Literal["numba", "numpy"] = "numba",
) -> TwoPositionRun:
    """Train the two-position policy with one objective and optimizer (docs/objectives.md
    section 3).

    Every refresh_interval optimizer steps the sampling policy is refreshed and n_groups groups
    of group_size sequences are drawn and reused for the whole cycle (docs/model.md section 2,
    refresh model); the loss is -J averaged over groups. Rewards are reward_scale x Bernoulli.
    theta0: start logits (n_params,) or (n_replicas, n_params), default zeros (uniform policy);
    theta_ref: KL reference logits (n_params,), default zeros. Replicas are seeded from
    (seed, replica) by a counter-based generator, so results do not depend on the thread count
    and backend="numpy" (the vectorised reference) draws the same samples.
    """
    _check_types(policy, objective, optimizer)
    group_size = _v.integer("group_size", group_size, minimum=2)
    n_steps = _v.integer("n_steps", n_steps, minimum=1)
    n_groups = _v.integer("n_groups", n_groups, minimum=1)
    refresh_interval = _v.integer("refresh_interval", refresh_interval, minimum=1)
    n_replicas = _v.integer("n_replicas", n_replicas, minimum=1)
    seed = _v.integer("seed", seed, minimum=0)
    reward_scale = _v.finite("reward_scale", reward_scale)
    _v.choice("backend", backend, ("numba", "numpy"))
    n_par = policy.n_params
    theta0_arr = np.zeros(n_par) if theta0 is None else np.asarray(theta0, dtype=float)
    if theta0_arr.shape == (n_par,):
        theta0_arr = np.tile(theta0_arr, (n_replicas, 1))
    if theta0_arr.shape != (n_replicas, n_par) or not np.all(np.isfinite(theta0_arr)):
        raise ValueError(
            f"theta0: must be finite with shape ({n_par},) or ({n_replicas}, {n_par}), got "
            f"shape {theta0_arr.shape}"
        )
    ref = np.zeros(n_par) if theta_ref is None else np.asarray(theta_ref, dtype=float)
    if ref.shape != (n_par,) or not np.all(np.isfinite(ref)):
        raise ValueError(f"theta_ref: must be finite with shape ({n_par},), got shape {ref.shape}")
    run = _Run(
        policy,
        objective,
        optimizer,
        ref,
        group_size,
        n_groups,
        n_steps,
        refresh_interval,
        seed,
        reward_scale,
    )
    theta = (_train_numba if backend == "numba" else _train_numpy)(run, theta0_arr)
    return TwoPositionRun(
        theta,
        policy.expected_reward(theta),
        policy.expected_length(theta),
        policy,
        objective,
        optimizer,
        reward_scale,
        backend,
    )
