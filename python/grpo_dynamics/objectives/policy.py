"""The two-position toy policy (docs/objectives.md "The two-position policy").

A prefix token, then a continuation action whose choice sets the sequence length, so |o_i|
varies within a group: the smallest policy on which the length weighting of the GRPO family
matters (docs/model.md section 7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import log_softmax

from .. import _validation as _v

__all__ = ["TwoPositionPolicy"]


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
    success_prob: shape (A,) (one prefix) or (P, A), values in [0, 1]; stored as a (P, A)
    tuple of tuples.
    """

    lengths: tuple[int, ...]
    success_prob: Sequence[Sequence[float]] | Sequence[float]
    prefix_mode: Literal["shared", "sampled"] = "shared"
    tail_vocab: int = 0

    def __post_init__(self) -> None:
        lengths = np.asarray(self.lengths)
        if lengths.ndim != 1 or lengths.size < 1 or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(
                f"lengths: must be a non-empty 1-d sequence of integers, got {self.lengths!r}"
            )
        if np.any(lengths < 1):
            raise ValueError(f"lengths: must all be >= 1, got {lengths.tolist()}")
        prob = np.asarray(self.success_prob, dtype=float)
        if prob.ndim == 1:
            prob = prob[None, :]
        if prob.ndim != 2 or prob.shape[1] != lengths.size:
            raise ValueError(
                "success_prob: must have shape (A,) or (P, A) with A = len(lengths) = "
                f"{lengths.size}, got shape {prob.shape}"
            )
        if not np.all(np.isfinite(prob)) or np.any(prob < 0) or np.any(prob > 1):
            raise ValueError(f"success_prob: must lie in [0, 1], got {prob.tolist()}")
        _v.choice("prefix_mode", self.prefix_mode, ("shared", "sampled"))
        object.__setattr__(self, "tail_vocab", _v.integer("tail_vocab", self.tail_vocab, minimum=0))
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


def _log_policy(
    policy: TwoPositionPolicy, theta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """log pi_prefix (..., P), log pi_cont (..., P, A), log pi_tail (..., V)."""
    if theta.shape[-1] != policy.n_params:
        raise ValueError(
            f"theta: must have last dimension n_params = {policy.n_params}, got shape {theta.shape}"
        )
    n_pre = policy.n_prefixes
    tail_start = n_pre * (1 + policy.n_actions)
    log_pre = log_softmax(theta[..., :n_pre], axis=-1)
    cont = theta[..., n_pre:tail_start].reshape(*theta.shape[:-1], n_pre, policy.n_actions)
    tail = theta[..., tail_start:]
    log_tail = log_softmax(tail, axis=-1) if policy.tail_vocab else tail
    return log_pre, log_softmax(cont, axis=-1), log_tail


def _tail_mask(policy: TwoPositionPolicy, actions: np.ndarray) -> np.ndarray:
    """(..., n_groups, G, max_tail) True where tail token j exists and carries logits."""
    n_tail = np.asarray(policy.lengths)[actions] - 1
    mask = np.arange(max(policy.max_tail, 1)) < n_tail[..., None]
    return mask & (policy.tail_vocab > 0)
