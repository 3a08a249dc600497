"""Numba kernels for the two-position GRPO policy (docs/objectives.md sections 2-3).

Private. The public wrapper is grpo_dynamics.objectives.train_two_position (it splits the replicas
over threads); the plain NumPy twin of every kernel here lives in the objectives package
(training._train_numpy, specification.surrogate_gradient; the optimizer update is
optimizer.numba_step with its twin optimizer.numpy_step) and the tests compare the two to
round-off under common random numbers.

Configuration arrives as two flat arrays (ints, floats) so the kernel signature stays fixed;
the index constants below are the single source of truth for both sides.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._splitmix import GOLDEN, ONE, SHIFT11, TWO_POW_M53, mix64
from .optimizer import numba_step

# ---- configuration layout (written by objectives/training.py::_config_arrays) ----
CFG_WEIGHTING = 0  # index into objectives.specification.WEIGHTINGS
CFG_ADVANTAGE = 1  # index into _vocabulary.ADVANTAGES: 0 std_normalized, 1 centered
CFG_RATIO = 2  # index into objectives.specification.OBJECTIVE_RATIOS: 0 token, 1 sequence
CFG_CLIP = 3  # 0 off, 1 on
CFG_RESET = 4  # 1: optimizer state reset at every rollout refresh
CFG_SHARED = 5  # 1: one prefix per group, shared by all members
N_CFG_INT = 6

CFG_EPS_LOW = 0
CFG_EPS_HIGH = 1
CFG_KL_COEF = 2
CFG_EPS_STD = 3
CFG_REWARD_SCALE = 4
N_CFG_FLOAT = 5
# the optimizer arrives separately as (kind code, hyperparameter array): optimizer.py's layout

# ---- counter-based RNG (splitmix64, _splitmix.py): identical streams in Numba and NumPy ----
N_FIXED_STREAMS = 4  # per member: prefix, action, reward, (spare), then one per tail token


@njit(cache=True)
def replica_key(seed, replica):  # pragma: no cover - compiled
    return mix64(seed * GOLDEN + np.uint64(replica) + ONE)


@njit(cache=True)
def uniform(key, counter):  # pragma: no cover - compiled
    z = mix64(key + (np.uint64(counter) + ONE) * GOLDEN)
    return np.float64(z >> SHIFT11) * TWO_POW_M53


@njit(cache=True)
def draw_counter(refresh, group, member, stream, n_groups, group_size, n_streams):
    # pragma: no cover - compiled
    # member == group_size addresses the group-level (shared prefix) draw
    return ((refresh * n_groups + group) * (group_size + 1) + member) * n_streams + stream


# ---- policy helpers ----
@njit(cache=True)
def log_softmax_into(theta, start, n, out, out_start):  # pragma: no cover - compiled
    top = theta[start]
    for k in range(1, n):
        if theta[start + k] > top:
            top = theta[start + k]
    total = 0.0
    for k in range(n):
        total += np.exp(theta[start + k] - top)
    log_total = np.log(total) + top
    for k in range(n):
        out[out_start + k] = theta[start + k] - log_total


@njit(cache=True)
def policy_logprobs(theta, n_prefixes, n_actions, out):  # pragma: no cover - compiled
    """out[0:P] = log pi_prefix, out[P + p*A + a] = log pi_cont(a | p), then the tail softmax
    over the remaining V entries (same layout as theta)."""
    log_softmax_into(theta, 0, n_prefixes, out, 0)
    for p in range(n_prefixes):
        start = n_prefixes + p * n_actions
        log_softmax_into(theta, start, n_actions, out, start)
    tail_start = n_prefixes * (1 + n_actions)
    if theta.shape[0] > tail_start:
        log_softmax_into(theta, tail_start, theta.shape[0] - tail_start, out, tail_start)


@njit(cache=True)
def sample_categorical(probs, start, n, u):  # pragma: no cover - compiled
    cumulative = 0.0
    for k in range(n):
        cumulative += probs[start + k]
        if u < cumulative:
            return k
    return n - 1


@njit(cache=True)
def clipped_term(s, adv, use_clip, eps_low, eps_high):  # pragma: no cover - compiled
    """(min(s A, clip(s) A), active); active = 0 where the clipped branch is strictly smaller."""
    if not use_clip:
        return s * adv, 1.0
    clipped = min(max(s, 1.0 - eps_low), 1.0 + eps_high)
    if (adv > 0.0 and s > 1.0 + eps_high) or (adv < 0.0 and s < 1.0 - eps_low):
        return clipped * adv, 0.0
    return s * adv, 1.0


@njit(cache=True)
def batch_objective_gradient(
    logp,
    logp_old,
    logp_ref,
    n_prefixes,
    n_actions,
    lengths,
    prefixes,
    actions,
    tails,
    rewards,
    cfg_int,
    cfg_float,
    grad,
    scratch,
):  # pragma: no cover - compiled
    """J averaged over the groups and dJ/dtheta (into grad, overwritten); docs/objectives.md
    section 1.

    tails[b, i, j]: tail token j of member i (used when the policy has tail logits).
    scratch: work array of length >= n_params + 2 G (no allocation inside the replica loop).
    """
    n_groups, group_size = actions.shape
    weighting = cfg_int[CFG_WEIGHTING]
    centered = cfg_int[CFG_ADVANTAGE] == 1
    sequence_ratio = cfg_int[CFG_RATIO] == 1
    use_clip = cfg_int[CFG_CLIP] == 1
    eps_low = cfg_float[CFG_EPS_LOW]
    eps_high = cfg_float[CFG_EPS_HIGH]
    beta_kl = cfg_float[CFG_KL_COEF]
    eps_std = cfg_float[CFG_EPS_STD]
    n_params = grad.shape[0]
    for k in range(n_params):
        grad[k] = 0.0
    # dJ/dlog pi of each prefix / continuation entry, summed over tokens (theta's layout)
    tail_start = n_prefixes * (1 + n_actions)
    tail_vocab = n_params - tail_start
    coef_prefix = scratch[:n_prefixes]
    coef_cont = scratch[n_prefixes:tail_start]
    coef_tail = scratch[tail_start:n_params]
    for k in range(n_params):
        scratch[k] = 0.0
    adv = scratch[n_params : n_params + group_size]
    weight = scratch[n_params + group_size : n_params + 2 * group_size]
    total = 0.0
    for b in range(n_groups):
        mean = 0.0
        for i in range(group_size):
            mean += rewards[b, i]
        mean /= group_size
        if centered:
            for i in range(group_size):
                adv[i] = rewards[b, i] - mean
        else:
            var = 0.0
            for i in range(group_size):
                var += (rewards[b, i] - mean) ** 2
            std = np.sqrt(var / (group_size - 1))  # torch.std: unbiased
            for i in range(group_size):
                # a zero-std group carries no signal; defined as 0 so eps_std = 0 is usable
                adv[i] = (rewards[b, i] - mean) / (std + eps_std) if std + eps_std > 0 else 0.0
        token_total = 0.0
        for i in range(group_size):
            token_total += 1.0 + lengths[actions[b, i]]
        for i in range(group_size):
            n_tokens = 1.0 + lengths[actions[b, i]]
            if weighting == 0:
                weight[i] = 1.0 / (group_size * n_tokens)
            elif weighting == 1:
                weight[i] = 1.0 / group_size
            else:
                weight[i] = 1.0 / token_total
        for i in range(group_size):
            p = prefixes[b, i]
            a = actions[b, i]
            idx_cont = n_prefixes + p * n_actions + a
            n_tokens = 1.0 + lengths[a]
            w = weight[i]
            n_tail = lengths[a] - 1
            d0 = logp[p] - logp_old[p]
            d1 = logp[idx_cont] - logp_old[idx_cont]
            if sequence_ratio:
                log_ratio = d0 + d1
                if tail_vocab > 0:
                    for j in range(n_tail):
                        idx = tail_start + tails[b, i, j]
                        log_ratio += logp[idx] - logp_old[idx]
                s = np.exp(log_ratio / n_tokens)  # GSPO: geometric mean over all |o_i| tokens
                term, active = clipped_term(s, adv[i], use_clip, eps_low, eps_high)
                total += w * n_tokens * term
                c0 = w * adv[i] * s * active
                c1 = c0
                if tail_vocab > 0:
                    for j in range(n_tail):
                        coef_tail[tails[b, i, j]] += c0
            else:
                s0 = np.exp(d0)
                s1 = np.exp(d1)
                term0, active0 = clipped_term(s0, adv[i], use_clip, eps_low, eps_high)
                term1, active1 = clipped_term(s1, adv[i], use_clip, eps_low, eps_high)
                total += w * (term0 + term1)
                c0 = w * adv[i] * s0 * active0
                c1 = w * adv[i] * s1 * active1
                if tail_vocab > 0:
                    for j in range(n_tail):
                        idx = tail_start + tails[b, i, j]
                        st = np.exp(logp[idx] - logp_old[idx])
                        term_t, active_t = clipped_term(st, adv[i], use_clip, eps_low, eps_high)
                        total += w * term_t
                        coef_tail[tails[b, i, j]] += w * adv[i] * st * active_t
                else:
                    # deterministic tail tokens: ratio 1, no parameters, value only
                    total += w * n_tail * adv[i]
            if beta_kl != 0.0:
                r0 = logp_ref[p] - logp[p]
                r1 = logp_ref[idx_cont] - logp[idx_cont]
                total -= beta_kl * w * ((np.exp(r0) - r0 - 1.0) + (np.exp(r1) - r1 - 1.0))
                c0 -= beta_kl * w * (1.0 - np.exp(r0))
                c1 -= beta_kl * w * (1.0 - np.exp(r1))
                if tail_vocab > 0:
                    for j in range(n_tail):
                        idx = tail_start + tails[b, i, j]
                        rt = logp_ref[idx] - logp[idx]
                        total -= beta_kl * w * (np.exp(rt) - rt - 1.0)
                        coef_tail[tails[b, i, j]] -= beta_kl * w * (1.0 - np.exp(rt))
            coef_prefix[p] += c0
            coef_cont[p * n_actions + a] += c1
    # chain rule through the softmaxes: d log pi(k) / d theta_j = 1[j = k] - pi_j
    prefix_sum = 0.0
    for p in range(n_prefixes):
        prefix_sum += coef_prefix[p]
    for p in range(n_prefixes):
        grad[p] = (coef_prefix[p] - prefix_sum * np.exp(logp[p])) / n_groups
        row_sum = 0.0
        for a in range(n_actions):
            row_sum += coef_cont[p * n_actions + a]
        for a in range(n_actions):
            idx = n_prefixes + p * n_actions + a
            grad[idx] = (coef_cont[p * n_actions + a] - row_sum * np.exp(logp[idx])) / n_groups
    tail_sum = 0.0
    for v in range(tail_vocab):
        tail_sum += coef_tail[v]
    for v in range(tail_vocab):
        idx = tail_start + v
        grad[idx] = (coef_tail[v] - tail_sum * np.exp(logp[idx])) / n_groups
    return total / n_groups


@njit(cache=True)
def train_replica(
    out,
    replica,
    theta_ref,
    n_prefixes,
    n_actions,
    lengths,
    success_prob,
    cfg_int,
    cfg_float,
    opt_kind,
    opt_hyper,
    group_size,
    n_groups,
    n_steps,
    refresh_interval,
    seed,
):  # pragma: no cover - compiled
    """One replica's trajectory into out[replica] (out[replica, 0] holds the start)."""
    n_params = out.shape[2]
    tail_start = n_prefixes * (1 + n_actions)
    tail_vocab = n_params - tail_start
    max_tail = 0
    for a in range(n_actions):
        max_tail = max(max_tail, lengths[a] - 1)
    ns = N_FIXED_STREAMS + max_tail  # random streams per member
    shared = cfg_int[CFG_SHARED] == 1
    reset = cfg_int[CFG_RESET] == 1
    reward_scale = cfg_float[CFG_REWARD_SCALE]
    key = replica_key(seed, replica)
    theta = out[replica, 0].copy()
    logp_ref = np.empty(n_params)
    policy_logprobs(theta_ref, n_prefixes, n_actions, logp_ref)
    logp = np.empty(n_params)
    logp_old = np.empty(n_params)
    probs_old = np.empty(n_params)
    grad = np.empty(n_params)
    scratch = np.empty(n_params + 2 * group_size)
    buf = np.zeros(n_params)
    exp_avg = np.zeros(n_params)
    exp_avg_sq = np.zeros(n_params)
    prefixes = np.empty((n_groups, group_size), dtype=np.int64)
    actions = np.empty((n_groups, group_size), dtype=np.int64)
    rewards = np.empty((n_groups, group_size))
    tails = np.zeros((n_groups, group_size, max(max_tail, 1)), dtype=np.int64)
    step_count = 0
    for t in range(n_steps):
        if t % refresh_interval == 0:
            refresh = t // refresh_interval
            policy_logprobs(theta, n_prefixes, n_actions, logp_old)
            for k in range(n_params):
                probs_old[k] = np.exp(logp_old[k])  # once per refresh, not per draw
            if reset:
                step_count = 0
                for k in range(n_params):
                    buf[k] = 0.0
                    exp_avg[k] = 0.0
                    exp_avg_sq[k] = 0.0
            for b in range(n_groups):
                u = uniform(key, draw_counter(refresh, b, group_size, 0, n_groups, group_size, ns))
                group_prefix = sample_categorical(probs_old, 0, n_prefixes, u)
                for i in range(group_size):
                    if shared:
                        p = group_prefix
                    else:
                        u = uniform(key, draw_counter(refresh, b, i, 0, n_groups, group_size, ns))
                        p = sample_categorical(probs_old, 0, n_prefixes, u)
                    u = uniform(key, draw_counter(refresh, b, i, 1, n_groups, group_size, ns))
                    a = sample_categorical(probs_old, n_prefixes + p * n_actions, n_actions, u)
                    u = uniform(key, draw_counter(refresh, b, i, 2, n_groups, group_size, ns))
                    prefixes[b, i] = p
                    actions[b, i] = a
                    rewards[b, i] = reward_scale * (1.0 if u < success_prob[p, a] else 0.0)
                    if tail_vocab > 0:
                        for j in range(lengths[a] - 1):
                            stream = N_FIXED_STREAMS + j
                            u = uniform(
                                key, draw_counter(refresh, b, i, stream, n_groups, group_size, ns)
                            )
                            tails[b, i, j] = sample_categorical(
                                probs_old, tail_start, tail_vocab, u
                            )
        policy_logprobs(theta, n_prefixes, n_actions, logp)
        batch_objective_gradient(
            logp,
            logp_old,
            logp_ref,
            n_prefixes,
            n_actions,
            lengths,
            prefixes,
            actions,
            tails,
            rewards,
            cfg_int,
            cfg_float,
            grad,
            scratch,
        )
        for k in range(n_params):
            grad[k] = -grad[k]  # the optimizer minimises the loss -J
        step_count = numba_step(
            theta, grad, buf, exp_avg, exp_avg_sq, step_count, opt_kind, opt_hyper
        )
        for k in range(n_params):
            out[replica, t + 1, k] = theta[k]


@njit(cache=True, nogil=True)
def train_replicas(out, first, last, *args):  # pragma: no cover - compiled
    """Replicas first..last-1 into out, without the GIL (training.py runs chunks on threads);
    args are train_replica's after `replica`.

    Plain threads over a nogil kernel rather than parallel=True: the parfor machinery costs
    ~10 s of compile time for no gain at this granularity (one task per chunk of replicas).
    """
    for r in range(first, last):
        train_replica(out, r, *args)


@njit(cache=True)
def objective_gradient_single(
    theta,
    theta_old,
    theta_ref,
    n_prefixes,
    n_actions,
    lengths,
    prefixes,
    actions,
    tails,
    rewards,
    cfg_int,
    cfg_float,
):  # pragma: no cover - compiled
    """Test hook: the kernel's J and dJ/dtheta for one batch of groups."""
    n_params = theta.shape[0]
    logp = np.empty(n_params)
    logp_old = np.empty(n_params)
    logp_ref = np.empty(n_params)
    policy_logprobs(theta, n_prefixes, n_actions, logp)
    policy_logprobs(theta_old, n_prefixes, n_actions, logp_old)
    policy_logprobs(theta_ref, n_prefixes, n_actions, logp_ref)
    grad = np.empty(n_params)
    scratch = np.empty(n_params + 2 * actions.shape[1])
    value = batch_objective_gradient(
        logp,
        logp_old,
        logp_ref,
        n_prefixes,
        n_actions,
        lengths,
        prefixes,
        actions,
        tails,
        rewards,
        cfg_int,
        cfg_float,
        grad,
        scratch,
    )
    return value, grad
