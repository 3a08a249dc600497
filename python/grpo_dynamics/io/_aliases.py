"""Column, step and metadata names of the logs we read (docs/io.md, "Canonical names")."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

# Canonical column -> accepted names, compared after _normalise (lower case, '_' for blanks,
# leading 'train/' dropped); the first one present wins, the others keep their own names.
_COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "reward": (
        "reward",
        "rewards",
        "reward_mean",
        "rewards_mean",
        "mean_reward",
        "avg_reward",
        "average_reward",
        "reward_avg",
        "rewards_avg",
        "reward/mean",
        "train_reward",
        "critic/score/mean",  # verl: the reward function's score (before any KL penalty)
        "critic/rewards/mean",  # verl: the score minus an in-reward KL penalty, if any
    ),
    "reward_std": (
        "reward_std",
        "rewards_std",
        "reward/std",
        "std_reward",
        "reward_stddev",
    ),
    "frac_reward_zero_std": ("frac_reward_zero_std", "frac_zero_std", "zero_std_frac"),
    "entropy": (
        "entropy",
        "policy_entropy",
        "mean_entropy",
        "entropy_avg",
        "entropy_mean",
        "actor/entropy",  # verl
        "actor/entropy_loss",  # older verl: the mean token entropy under a 'loss' name
        "entropy_loss",  # OpenRLHF: the masked mean token entropy
        "token_entropy",
    ),
    "kl": (
        "kl",
        "kl_avg",
        "kl_mean",
        "mean_kl",
        "kl_ref",
        "kl_div",
        "kl_divergence",
        "objective/kl",
        "actor/kl_loss",  # verl, use_kl_loss: KL to the reference policy
        "actor/reward_kl_penalty",  # verl, KL in the reward
        "reference_kl",
    ),
    "completion_length": (
        "completion_length",
        "completions/mean_length",
        "mean_completion_length",
        "avg_completion_length",
        "completion_len",
        "response_length",
        "mean_response_length",
        "avg_response_len",
        "avg_response_length",
        "response_length/mean",  # verl
        "gen_len",  # OpenRLHF progress bar
    ),
    "clip_ratio": (
        "clip_ratio",
        "clip_ratio/region_mean",
        "clipfrac",
        "clip_frac",
        "clip_fraction",
        "actor/pg_clipfrac",  # verl
        "pg_clipfrac",
        "ppo_clip_ratio",  # OpenRLHF
    ),
    "learning_rate": ("learning_rate", "lr", "actor/lr", "actor_lr", "act_lr"),
    "eval_reward": (
        "eval_reward",
        "eval/reward",
        "eval_rewards",
        "eval_reward_mean",
        "eval/reward_mean",
        "eval/rewards",
        "val_reward",
        "test_reward",
        "heldout_reward",
        "held_out_reward",
        "gold_reward",
    ),
    "grad_norm": ("grad_norm", "gradient_norm", "grad_norm_avg", "actor/grad_norm"),
    "loss": ("loss", "actor_loss", "policy_loss", "actor/pg_loss", "act_loss"),
    "epoch": ("epoch", "training/epoch"),
    # fraction of completions cut at the maximum length (not the PPO ratio clip above)
    "truncated_ratio": (
        "truncated_ratio",
        "completions/clipped_ratio",  # TRL
        "response_length/clip_ratio",  # verl
        "clipped_ratio",
        "truncation_rate",
    ),
}
# Names with a variable part (a data source, a sample count), as full regular expressions over
# the normalised name; used only when exactly one column matches.
_PATTERN_ALIASES: dict[str, tuple[str, ...]] = {
    "eval_reward": (
        r"val_core/[^/]+/reward/mean@\d+",  # verl: val-core/<data source>/reward/mean@N
        r"val/test_score/[^/]+",  # older verl
    ),
}
#: Canonical column names, in the order a Run's table puts them (docs/io.md, "Canonical names").
CANONICAL_COLUMNS: tuple[str, ...] = tuple(_COLUMN_ALIASES)

# Last-resort names for the reward of records that only say 'mean'/'std' (per-call reward logs).
_BARE_REWARD = {"reward": "mean", "reward_std": "std"}

# Metadata key -> accepted keys of the log's config/top level (normalised like columns).
_METADATA_ALIASES: dict[str, tuple[str, ...]] = {
    "group_size": (
        "group_size",
        "num_generations",
        "n_generations",
        "generations",
        "g",
        "num_samples_per_prompt",
        "n_completions",
    ),
    "learning_rate": ("learning_rate", "lr"),
    "model_name": (
        "model_name_or_path",
        "model_name",
        "model",
        "base_model_name_or_path",
        "base_model",
        "model_id",
        "_name_or_path",
    ),
    "batch_size": (
        "per_device_train_batch_size",
        "train_batch_size",
        "batch_size",
        "total_train_batch_size",
    ),
    "num_iterations": ("num_iterations", "ppo_epochs"),
    "beta": ("beta", "kl_coef", "kl_beta"),
    "epsilon": ("epsilon", "clip_range", "cliprange"),
    "max_steps": ("max_steps", "total_steps", "total_optimization_steps"),
    "logging_steps": ("logging_steps",),
    "gradient_accumulation_steps": ("gradient_accumulation_steps",),
}

# Step column names, most specific first: W&B's own '_step' counts log calls, not optimizer steps.
_STEP_NAMES = (
    "train/global_step",
    "trainer/global_step",
    "training/global_step",  # verl
    "global_step",
    "step",
    "steps",
    "_step",
    "iteration",
    "iter",
    "it",
    "update",
    "train/step",
    "grpo_step",
)
# Entries TRL writes once at the end of training: metadata, not per-step data.
_SUMMARY_KEYS = frozenset(
    {
        "train_runtime",
        "train_samples_per_second",
        "train_steps_per_second",
        "total_flos",
        "train_loss",
    }
)
_OUR_METADATA_KEY = "grpo_dynamics_metadata"
_FORMATS = ("trl", "json", "csv", "jsonl", "tensorboard", "console")


@functools.lru_cache(maxsize=4096)
def _normalise(name: str) -> str:
    text = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    return text[len("train/") :] if text.startswith("train/") else text


def _column_order(columns: Iterable[str]) -> list[str]:
    """Canonical columns in CANONICAL_COLUMNS order, then the others by name (stable on disk)."""
    names = list(columns)
    return [c for c in CANONICAL_COLUMNS if c in names] + sorted(
        c for c in names if c not in _COLUMN_ALIASES
    )


@functools.lru_cache(maxsize=4096)
def _is_eval(name: str) -> bool:
    return str(name).lower().startswith(("eval_", "eval/", "val/", "val-core/", "val-aux/"))


def _find_step_key(keys: Iterable[str]) -> str | None:
    by_norm: dict[str, str] = {}
    for key in keys:
        by_norm.setdefault(str(key).strip().lower(), key)
    for name in _STEP_NAMES:
        if name in by_norm:
            return by_norm[name]
    return None
