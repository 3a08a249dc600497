"""The option names shared by simulate and objectives (docs/objectives.md, docs/simulate.md).

One spelling per axis of the GRPO surrogate, used by both the softmax-bandit simulator
(`simulate.BanditConfig`) and the objective family (`objectives.Objective`):

- advantage: "std_normalized" (r - mean) / (unbiased std + eps_std), "centered" r - mean;
- ratio: "none" (no importance ratio: the score at the current parameters), "token"
  (s = pi/pi_old per token), "sequence" (GSPO's length-normalised sequence ratio; for the
  bandit's one-token answers it equals "token"); clip (bool) applies the PPO band to a ratio;
- kl: "none", "k3" (the k3 estimator at the rollout samples, as TRL does), "k3_is" (each
  sample's k3 weighted by pi/pi_old: its expectation is the exact KL gradient); kl_coef its
  weight.

A module may support a subset (objectives has no "none" ratio and no "k3_is"); a value means the
same thing wherever it is accepted. The optimizer kinds live in `optimizer.OPTIMIZER_KINDS`.
"""

from __future__ import annotations

from typing import Literal

from . import _validation as _v

Advantage = Literal["std_normalized", "centered"]
Ratio = Literal["none", "token", "sequence"]
KL = Literal["none", "k3", "k3_is"]

ADVANTAGES: tuple[Advantage, ...] = ("std_normalized", "centered")
RATIOS: tuple[Ratio, ...] = ("none", "token", "sequence")
KL_ESTIMATORS: tuple[KL, ...] = ("none", "k3", "k3_is")

# spellings of the first simulate release, still accepted there and stored in the new form
LEGACY_ADVANTAGES = {"grpo": "std_normalized", "dr_grpo": "centered"}
LEGACY_RATIOS = {"ppo": "token"}


def check_kl(kl: str, kl_coef: object, allowed: tuple[str, ...] = KL_ESTIMATORS) -> float:
    """Validate the (kl, kl_coef) pair: kl_coef >= 0, and 0 when kl = "none"."""
    _v.choice("kl", kl, allowed)
    coef = _v.nonnegative("kl_coef", kl_coef)
    if kl == "none" and coef != 0.0:
        raise ValueError(
            f"kl_coef: must be 0 when kl='none' (choose kl='k3' for a KL term), got {coef!r}"
        )
    return coef
