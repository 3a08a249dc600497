"""Numba kernels of the softmax-bandit GRPO simulator (docs/simulate.md).

Private: the public API is grpo_dynamics.simulate. Every kernel has a plain per-sample NumPy
twin in _bandit_reference.py that the tests compare against statistically.

Conventions shared with the reference:
- each arm a has two reward cells: r_hi[a] with probability p_hi[a], else r_lo[a]
  (Bernoulli: r_hi = scale, r_lo = 0; fixed: r_hi = r_lo = value, p_hi = 1);
- a group of G samples is summarised by its per-arm counts n[a] and hi-counts k[a], drawn
  exactly in one of two ways (the driver picks the cheaper): G draws of the (arm, reward) cell
  from its cumulative table (_draw_group, O(G n_arms) vector compares), or the multinomial as
  sequential binomials, then binomials (_sample_group, O(n_arms) draws for any G);
- the surrogate gradient only depends on these counts: advantages depend on the reward cell,
  the importance ratio on the arm.
Codes: advantage 0 std_normalized, 1 centered (_vocabulary.ADVANTAGES); ratio 0 none, 1 token
(= sequence for one-token answers); no clip = infinite eps_low/eps_high. The optimizer is
optimizer.numba_step's source with (kind code, hyperparameter array) from
Optimizer.kernel_arguments.

Speed: the helpers called in the per-step loops allocate nothing and are compiled with
_nrt=False (Numba's option to compile without its reference-counting runtime). A Numba
function otherwise increments and decrements the reference count of every array argument,
atomically, at each call whenever its control flow defeats Numba's pruning of those pairs; at
8 arms that cost more than the step itself, and more again with threads sharing the arrays.
The RNG state is a uint64 passed by value for the same reason.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._splitmix import GOLDEN as _GOLDEN
from ._splitmix import SHIFT11 as _S11
from ._splitmix import TWO_POW_M53 as _INV53
from ._splitmix import mix64 as _mix64
from .optimizer import _numba_step as _numba_step_source


def _without_refcounts() -> dict[str, bool]:
    """{"_nrt": False} where this Numba has the option (0.59-0.68 do), else {}: the option is
    private, so a Numba without it compiles the same helpers with reference counting
    (slower, same results) instead of failing at import."""
    try:
        from numba.core.cpu import CPUTargetOptions
    except ImportError:  # pragma: no cover - a Numba that moved its options
        return {}
    return {"_nrt": False} if hasattr(CPUTargetOptions, "_nrt") else {}


_NO_NRT = _without_refcounts()
# the helpers of the per-step loops: compiled without reference counting (module docstring)
_uncounted = njit(cache=True, error_model="numpy", **_NO_NRT)  # type: ignore[call-overload]


@njit(cache=True, error_model="numpy")
def _stream_seed(seed, stream):
    """Start state of the RNG stream `stream` of `seed`: independent of thread scheduling."""
    return _mix64(_mix64(np.uint64(seed)) ^ _mix64(np.uint64(stream) + _GOLDEN))


@njit(cache=True, inline="always", error_model="numpy")
def _uniform(state):
    """(uniform in [0, 1), next state): splitmix64, the state a uint64 scalar owned by one
    replica/chunk (passed by value: no array, so no reference counting in the hot loops).
    Returned to Python the state becomes an int: typed back as uint64 here, not float."""
    state = np.uint64(state) + _GOLDEN
    return float(_mix64(state) >> _S11) * _INV53, state


@_uncounted
def _binomial(n, p, state):
    """(Binomial(n, p) draw, next state), exact by inversion: from 0 when n min(p, q) is small
    (O(np) steps, no lgamma), else searched outward from the mode (O(sqrt(npq)) steps)."""
    if n <= 0 or p <= 0.0:
        return 0, state
    if p >= 1.0:
        return n, state
    flip = p > 0.5  # draw the failures: keeps the chop-down walk short
    if flip:
        p = 1.0 - p
    q = 1.0 - p
    if n * p < 12.0:
        # chop-down inversion from k = 0; q^n >= e^-24 here, so no underflow
        f = q**n
        u, state = _uniform(state)
        k = 0
        odds = p / q
        while u >= f and k < n:
            u -= f
            k += 1
            f *= (n - k + 1.0) / k * odds
    else:
        mode = min(int((n + 1) * p), n)
        f_lo = math.exp(
            math.lgamma(n + 1.0)
            - math.lgamma(mode + 1.0)
            - math.lgamma(n - mode + 1.0)
            + mode * math.log(p)
            + (n - mode) * math.log(q)
        )
        u, state = _uniform(state)
        k = mode
        if u >= f_lo:
            u -= f_lo
            lo = mode
            hi = mode
            f_hi = f_lo
            # visit mode-1, mode+1, mode-2, ... : the cells still partition [0, 1) exactly;
            # k stays the mode only through round-off in the last ulp
            while lo > 0 or hi < n:
                if lo > 0:
                    f_lo *= lo / (n - lo + 1.0) * (q / p)
                    lo -= 1
                    if u < f_lo:
                        k = lo
                        break
                    u -= f_lo
                if hi < n:
                    f_hi *= (n - hi) / (hi + 1.0) * (p / q)
                    hi += 1
                    if u < f_hi:
                        k = hi
                        break
                    u -= f_hi
    return (n - k if flip else k), state


@_uncounted
def _softmax(theta, out):
    """out = softmax(theta); returns log of the normaliser (log pi_a = theta_a - it)."""
    top = theta[0]
    for a in range(1, theta.shape[0]):
        top = max(top, theta[a])
    total = 0.0
    for a in range(theta.shape[0]):
        x = theta[a] - top
        out[a] = 1.0 if x == 0.0 else math.exp(x)  # exp(0) = 1 exactly: no call for the top
        total += out[a]
    for a in range(theta.shape[0]):
        out[a] /= total
    return top + math.log(total)


@_uncounted
def _sample_group(pi_old, p_hi, group_size, state, n_arm, k_arm):
    """Per-arm counts of one group (multinomial as sequential binomials) and hi-reward counts;
    returns the next RNG state. O(n_arms) draws whatever G: the sampler for large groups."""
    n_arms = pi_old.shape[0]
    remaining = group_size
    mass = 1.0
    for a in range(n_arms):
        if a == n_arms - 1 or remaining == 0:
            n_arm[a] = remaining
        else:
            ratio = pi_old[a] / mass if mass > 0.0 else 1.0
            n_arm[a], state = _binomial(remaining, min(1.0, ratio), state)
        remaining -= n_arm[a]
        mass -= pi_old[a]
        k_arm[a], state = _binomial(n_arm[a], p_hi[a], state)
    return state


@_uncounted
def _cell_cdf(pi_old, p_hi, cdf):
    """Cumulative probabilities of the 2 n_arms (arm, reward) cells, cell 2a = (a, hi) with
    probability pi_old[a] p_hi[a], 2a + 1 = (a, lo); from the last cell of positive probability
    on, cdf = inf, so a uniform always lands in a cell that can occur (even when round-off
    leaves the total a few ulp below 1). Returns whether the table is ascending: a running sum
    of terms >= 0 is, unless a NaN (a diverged policy) entered it, and a NaN stays in the sum."""
    total = 0.0
    last = 0
    for a in range(pi_old.shape[0]):
        hi = pi_old[a] * p_hi[a]
        total += hi
        cdf[2 * a] = total
        total += pi_old[a] - hi
        cdf[2 * a + 1] = total
        if pi_old[a] > hi:
            last = 2 * a + 1
        elif hi > 0.0:
            last = 2 * a
    for cell in range(last, cdf.shape[0]):
        cdf[cell] = math.inf
    return not math.isnan(total)


@_uncounted
def _draw_group(cdf, ascending, group_size, state, n_arm, k_arm, cells, uniforms):
    """Per-arm counts and hi-reward counts of one group from G draws of its (arm, reward) cell
    (one uniform each; its cell is the number of cdf entries <= it, cdf from _cell_cdf);
    returns the next RNG state. O(G n_arms) branch-free compares the compiler vectorises: the
    sampler for small groups. ascending: whether cdf is (_cell_cdf's answer); uniforms: scratch
    for >= G floats.

    Two exact ways to the same counts: with G >= 2 n_arms (cells) and an ascending table, the
    G uniforms are drawn at once and each cell's count is a difference of threshold counts
    (vectors over the samples); otherwise each sample's cell is counted into cells (vectors over
    the cells). Counting sample by sample chains increments of one counter when samples share a
    cell (a store-to-load dependency per sample): 1.05x faster than the threshold counts for
    G < 2 n_arms, but 1.05-2.4x slower for larger groups (8 arms, G = 16 ... 256).
    """
    n_cells = cdf.shape[0]
    if ascending and group_size >= n_cells:
        # the same uniforms as G calls of _uniform (splitmix64 is counter-based), all at once;
        # the state typed uint64 as in _uniform (from Python it comes back as an int)
        state = np.uint64(state)
        for i in range(group_size):
            uniforms[i] = float(_mix64(state + np.uint64(i + 1) * _GOLDEN) >> _S11) * _INV53
        state = state + np.uint64(group_size) * _GOLDEN
        # the samples in cells > c are those with u >= cdf[c] (the table is ascending)
        above = group_size
        for c in range(n_cells):
            count = 0
            for i in range(group_size):
                count += uniforms[i] >= cdf[c]
            cells[c] = above - count
            above = count
    else:
        for cell in range(n_cells):
            cells[cell] = 0
        for _ in range(group_size):
            u, state = _uniform(state)
            cell = 0
            for c in range(n_cells):
                cell += cdf[c] <= u
            cells[cell] += 1
    for a in range(n_arm.shape[0]):
        k_arm[a] = cells[2 * a]
        n_arm[a] = cells[2 * a] + cells[2 * a + 1]
    return state


@_uncounted
def _accumulate_group(
    n_arm,
    k_arm,
    r_hi,
    r_lo,
    group_size,
    advantage,
    eps_std,
    adv_pos,
    adv_neg,
    cnt_pos,
    cnt_neg,
    n_total,
):
    """Add one group's advantage sums per arm and sign; return (within-group std, zero-std)."""
    n_arms = n_arm.shape[0]
    total = 0.0
    r_min = math.inf
    r_max = -math.inf
    for a in range(n_arms):
        n_hi = k_arm[a]
        n_lo = n_arm[a] - k_arm[a]
        total += n_hi * r_hi[a] + n_lo * r_lo[a]
        if n_hi > 0:
            r_min = min(r_min, r_hi[a])
            r_max = max(r_max, r_hi[a])
        if n_lo > 0:
            r_min = min(r_min, r_lo[a])
            r_max = max(r_max, r_lo[a])
        n_total[a] += n_arm[a]
    if r_max == r_min:
        # degenerate group: no reward contrast, no advantage (exactly, not up to round-off)
        return 0.0, True
    mean = total / group_size
    ss = 0.0
    for a in range(n_arms):
        ss += k_arm[a] * (r_hi[a] - mean) ** 2 + (n_arm[a] - k_arm[a]) * (r_lo[a] - mean) ** 2
    std = math.sqrt(ss / (group_size - 1))  # unbiased, as torch.std
    scale = 1.0 / (std + eps_std) if advantage == 0 else 1.0
    for a in range(n_arms):
        for cell in range(2):
            count = k_arm[a] if cell == 0 else n_arm[a] - k_arm[a]
            if count == 0:
                continue
            adv = ((r_hi[a] if cell == 0 else r_lo[a]) - mean) * scale
            if adv > 0.0:
                adv_pos[a] += count * adv
                cnt_pos[a] += count
            elif adv < 0.0:
                adv_neg[a] += count * adv
                cnt_neg[a] += count
    return std, False


@_uncounted
def _surrogate_gradient(
    pi,
    pi_old,
    ref_pi,
    adv_pos,
    adv_neg,
    cnt_pos,
    cnt_neg,
    n_total,
    ratio,
    eps_low,
    eps_high,
    kl_coef,
    kl_is,
    n_samples,
    grad,
):
    """Ascent gradient of J (mean over n_samples) w.r.t. the logits; returns clipped count.

    kl_is: weight each sample's k3 gradient by pi/pi_old (its expectation is then exactly
    pi - pi_ref at the current parameters); otherwise k3 at the rollout samples as in TRL.
    """
    n_arms = pi.shape[0]
    clipped = 0.0
    weight_sum = 0.0
    for a in range(n_arms):
        if n_total[a] == 0.0:
            grad[a] = 0.0  # arm not sampled: no term, and pi_old[a] may be 0
            continue
        if ratio == 0:
            weight = adv_pos[a] + adv_neg[a]
        else:
            s = pi[a] / pi_old[a]
            weight = 0.0
            # min(s A, clip(s) A): the clipped branch (zero gradient) wins outside the band
            if s <= 1.0 + eps_high:
                weight += s * adv_pos[a]
            else:
                clipped += cnt_pos[a]
            if s >= 1.0 - eps_low:
                weight += s * adv_neg[a]
            else:
                clipped += cnt_neg[a]
        # k3 = pi_ref/pi - log(pi_ref/pi) - 1 at the rollout samples; d/dlogit_a-direction
        if kl_coef != 0.0:
            kl_weight = kl_coef * n_total[a] * (1.0 - ref_pi[a] / pi[a])
            weight -= kl_weight * (pi[a] / pi_old[a] if kl_is else 1.0)
        grad[a] = weight / n_samples
        weight_sum += grad[a]
    for a in range(n_arms):
        grad[a] -= pi[a] * weight_sum  # d log pi(a) / d theta = e_a - pi
    return clipped


# optimizer.numba_step's source compiled without reference counting (see the module
# docstring). Not cached on its own: Numba's cache index is keyed on the source function, not on
# the compile options, so it would share (and swap) entries with optimizer.numba_step; the
# kernels that call it are cached with it linked in.
_optimizer_step = njit(error_model="numpy", **_NO_NRT)(_numba_step_source)  # type: ignore[call-overload]


@njit(cache=True, error_model="numpy")
def _run_replica(
    state,
    r_hi,
    r_lo,
    p_hi,
    group_size,
    batch_prompts,
    steps,
    opt_kind,
    opt_hyper,
    reset_state,
    advantage,
    eps_std,
    refresh_interval,
    ratio,
    eps_low,
    eps_high,
    kl_coef,
    kl_is,
    ref_logits,
    ref_pi,
    ref_log_norm,
    arm_mean,
    per_sample,
    init_logits,
    out_reward,
    out_std,
    out_zero,
    out_entropy,
    out_kl,
    out_clip,
    final_logits,
):
    """One GRPO run from RNG state `state`: fills one replica's rows of the outputs (1-d views,
    final_logits its n_arms logits). The step loop allocates nothing and calls only helpers
    compiled without reference counting (module docstring)."""
    n_arms = r_hi.shape[0]
    n_samples = float(group_size * batch_prompts)
    theta = init_logits.copy()
    pi = np.empty(n_arms)
    pi_old = np.empty(n_arms)
    buf = np.zeros(n_arms)
    exp_avg = np.zeros(n_arms)
    exp_avg_sq = np.zeros(n_arms)
    step_count = 0
    grad = np.empty(n_arms)
    adv_pos = np.zeros(n_arms)
    adv_neg = np.zeros(n_arms)
    cnt_pos = np.zeros(n_arms)
    cnt_neg = np.zeros(n_arms)
    n_total = np.zeros(n_arms)
    n_arm = np.zeros(n_arms, dtype=np.int64)
    k_arm = np.zeros(n_arms, dtype=np.int64)
    cdf = np.empty(2 * n_arms)
    cells = np.zeros(2 * n_arms, dtype=np.int64)
    uniforms = np.empty(group_size if per_sample else 0)
    std_mean = 0.0
    zero_frac = 0.0
    until_refresh = 0
    for t in range(steps):
        log_norm = _softmax(theta, pi)
        if until_refresh == 0:
            # refresh: new rollouts from the current policy, reused for the whole cycle
            until_refresh = refresh_interval
            for a in range(n_arms):
                pi_old[a] = pi[a]
                adv_pos[a] = 0.0
                adv_neg[a] = 0.0
                cnt_pos[a] = 0.0
                cnt_neg[a] = 0.0
                n_total[a] = 0.0
            if reset_state:
                step_count = 0
                for a in range(n_arms):
                    buf[a] = 0.0
                    exp_avg[a] = 0.0
                    exp_avg_sq[a] = 0.0
            ascending = _cell_cdf(pi_old, p_hi, cdf) if per_sample else False
            std_sum = 0.0
            zeros = 0
            for _ in range(batch_prompts):
                if per_sample:
                    state = _draw_group(
                        cdf, ascending, group_size, state, n_arm, k_arm, cells, uniforms
                    )
                else:
                    state = _sample_group(pi_old, p_hi, group_size, state, n_arm, k_arm)
                std, degenerate = _accumulate_group(
                    n_arm,
                    k_arm,
                    r_hi,
                    r_lo,
                    group_size,
                    advantage,
                    eps_std,
                    adv_pos,
                    adv_neg,
                    cnt_pos,
                    cnt_neg,
                    n_total,
                )
                std_sum += std
                zeros += degenerate
            std_mean = std_sum / batch_prompts
            zero_frac = zeros / batch_prompts
        until_refresh -= 1
        reward = 0.0
        entropy = 0.0
        kl = 0.0
        for a in range(n_arms):
            reward += pi[a] * arm_mean[a]
            if pi[a] > 0.0:
                # log pi from the logits: no per-arm log, exact for tiny pi
                log_pi = theta[a] - log_norm
                entropy -= pi[a] * log_pi
                kl += pi[a] * (log_pi - (ref_logits[a] - ref_log_norm))
        clipped = _surrogate_gradient(
            pi,
            pi_old,
            ref_pi,
            adv_pos,
            adv_neg,
            cnt_pos,
            cnt_neg,
            n_total,
            ratio,
            eps_low,
            eps_high,
            kl_coef,
            kl_is,
            n_samples,
            grad,
        )
        out_reward[t] = reward
        out_std[t] = std_mean
        out_zero[t] = zero_frac
        out_entropy[t] = entropy
        out_kl[t] = kl
        out_clip[t] = clipped / n_samples
        for a in range(n_arms):
            grad[a] = -grad[a]  # optimizers minimise the loss -J
        step_count = _optimizer_step(
            theta, grad, buf, exp_avg, exp_avg_sq, step_count, opt_kind, opt_hyper
        )
    for a in range(n_arms):
        final_logits[a] = theta[a]


@njit(parallel=True, cache=True, error_model="numpy")
def simulate_kernel(
    r_hi,
    r_lo,
    p_hi,
    group_size,
    batch_prompts,
    steps,
    replicas,
    seed,
    opt_kind,
    opt_hyper,
    reset_state,
    advantage,
    eps_std,
    refresh_interval,
    ratio,
    eps_low,
    eps_high,
    kl_coef,
    kl_is,
    ref_logits,
    init_logits,
    per_sample,
    out_reward,
    out_std,
    out_zero,
    out_entropy,
    out_kl,
    out_clip,
    final_logits,
):
    """Run `replicas` independent GRPO runs; fill the (replicas, steps) output arrays.

    per_sample: draw each group as G (arm, reward) cells (_draw_group) instead of sequential
    binomials (_sample_group); the driver picks the cheaper one, both are exact.
    """
    n_arms = r_hi.shape[0]
    ref_pi = np.empty(n_arms)
    ref_log_norm = _softmax(ref_logits, ref_pi)
    arm_mean = np.empty(n_arms)
    for a in range(n_arms):  # a loop, not an array expression: that would be a second parfor
        arm_mean[a] = p_hi[a] * r_hi[a] + (1.0 - p_hi[a]) * r_lo[a]
    for rep in prange(replicas):
        _run_replica(
            _stream_seed(seed, rep),  # one stream per replica: thread-count independent
            r_hi,
            r_lo,
            p_hi,
            group_size,
            batch_prompts,
            steps,
            opt_kind,
            opt_hyper,
            reset_state,
            advantage,
            eps_std,
            refresh_interval,
            ratio,
            eps_low,
            eps_high,
            kl_coef,
            kl_is,
            ref_logits,
            ref_pi,
            ref_log_norm,
            arm_mean,
            per_sample,
            init_logits,
            out_reward[rep],
            out_std[rep],
            out_zero[rep],
            out_entropy[rep],
            out_kl[rep],
            out_clip[rep],
            final_logits[rep],
        )


@njit(parallel=True, cache=True, error_model="numpy")
def probe_kernel(
    r_hi,
    r_lo,
    p_hi,
    group_size,
    advantage,
    eps_std,
    ratio,
    eps_low,
    eps_high,
    kl_coef,
    kl_is,
    ref_pi,
    pi_old_a,
    pi_a,
    pi_old_b,
    pi_b,
    direction,
    groups_per_chunk,
    chunks,
    seed,
    out,
):
    """Surrogate gradient of single groups at two points with common random numbers.

    Point a = (pi_old_a, pi_a), point b = (pi_old_b, pi_b); the same uniforms drive both
    (monotone coupling), so their difference has a small variance. Per chunk, out[chunk] holds
    sums of: d.g_a, d.g_b, (d.g_a)^2, (d.g_b)^2, (d.g_a - d.g_b)^2, then n_arms sums of g_a
    and n_arms sums of g_a^2 (per-arm moments for Adam's preconditioner).
    """
    n_arms = pi_a.shape[0]
    for chunk in prange(chunks):
        grad_a = np.empty(n_arms)
        grad_b = np.empty(n_arms)
        adv_pos = np.zeros(n_arms)
        adv_neg = np.zeros(n_arms)
        cnt_pos = np.zeros(n_arms)
        cnt_neg = np.zeros(n_arms)
        n_total = np.zeros(n_arms)
        n_arm = np.zeros(n_arms, dtype=np.int64)
        k_arm = np.zeros(n_arms, dtype=np.int64)
        state = _stream_seed(seed, chunk)
        acc = np.zeros(out.shape[1])
        for _ in range(groups_per_chunk):
            saved = state
            for point in range(2):
                state = saved  # common random numbers for the two points
                adv_pos[:] = 0.0
                adv_neg[:] = 0.0
                cnt_pos[:] = 0.0
                cnt_neg[:] = 0.0
                n_total[:] = 0.0
                old = pi_old_a if point == 0 else pi_old_b
                cur = pi_a if point == 0 else pi_b
                target = grad_a if point == 0 else grad_b
                state = _sample_group(old, p_hi, group_size, state, n_arm, k_arm)
                _accumulate_group(
                    n_arm,
                    k_arm,
                    r_hi,
                    r_lo,
                    group_size,
                    advantage,
                    eps_std,
                    adv_pos,
                    adv_neg,
                    cnt_pos,
                    cnt_neg,
                    n_total,
                )
                _surrogate_gradient(
                    cur,
                    old,
                    ref_pi,
                    adv_pos,
                    adv_neg,
                    cnt_pos,
                    cnt_neg,
                    n_total,
                    ratio,
                    eps_low,
                    eps_high,
                    kl_coef,
                    kl_is,
                    float(group_size),
                    target,
                )
            proj_a = 0.0
            proj_b = 0.0
            for a in range(n_arms):
                proj_a += direction[a] * grad_a[a]
                proj_b += direction[a] * grad_b[a]
            acc[0] += proj_a
            acc[1] += proj_b
            acc[2] += proj_a * proj_a
            acc[3] += proj_b * proj_b
            acc[4] += (proj_a - proj_b) ** 2
            for a in range(n_arms):
                acc[5 + a] += grad_a[a]
                acc[5 + n_arms + a] += grad_a[a] ** 2
        out[chunk, :] = acc


@njit(parallel=True, cache=True, error_model="numpy")
def binomial_draws(n, p, size, seed, chunks, out):
    """`size` Binomial(n, p) draws (for testing the sampler against scipy.stats.binom)."""
    per = size // chunks
    for chunk in prange(chunks):
        state = _stream_seed(seed, chunk)
        for i in range(chunk * per, (chunk + 1) * per):
            out[i], state = _binomial(n, p, state)
