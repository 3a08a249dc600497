"""Console logs (docs/io.md, "Console logs"): the group size read from the printed
configurations of verl, OpenRLHF and TRL, checked against what the log's own configuration
dump says (read here with a plain line search) and against the detector that needs it (a group
of one gives GRPO no signal); the steps of OpenRLHF-style tqdm progress-bar lines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import grpo_dynamics as gd

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-grpo-logs"
UQCXU9 = SHARED / "uqcxu9__qwen2.5_300step_NEW_CONSIS_RESULT__logs__train_v5_reward.log"

METRICS = "".join(
    f"step:{s} - critic/score/mean:{0.1 * s:.2f} - actor/entropy:0.5\n" for s in range(1, 9)
)


@pytest.mark.parametrize(
    ("config_line", "group_size"),
    [
        ("            'rollout_n': 8,", 8),  # verl's pretty-printed config
        ("+ python3 -m verl.trainer.main_ppo actor_rollout_ref.rollout.n=16 data.x=1", 16),
        ("--n_samples_per_prompt 4 --micro_train_batch_size 2", 4),  # OpenRLHF arguments
        ("num_generations = 6", 6),  # TRL / Unsloth banner
    ],
)
def test_console_group_size_from_printed_config(tmp_path, config_line, group_size):
    path = tmp_path / "train.log"
    path.write_text(config_line + "\n" + METRICS)
    run = gd.read_log(path)
    assert run.metadata["group_size"] == group_size
    assert len(run) == 8


@pytest.mark.parametrize(
    "config_line",
    [
        "actor_rollout_ref.rollout.n_gpus=3",  # another setting that starts like rollout.n
        "my_rollout_n: 5",  # a different name that ends like it
    ],
)
def test_console_group_size_not_read_from_lookalikes(tmp_path, config_line):
    path = tmp_path / "train.log"
    path.write_text(config_line + "\n" + METRICS)
    assert "group_size" not in gd.read_log(path).metadata


def test_verl_log_with_one_rollout_per_prompt_is_flagged():
    text = UQCXU9.read_text(errors="replace")
    printed = {int(m) for m in re.findall(r"'rollout_n': (\d+)", text)}
    assert printed == {1}  # the log's own configuration dump, read independently
    run = gd.read_log(UQCXU9)
    assert run.metadata["group_size"] == 1
    diagnosis = gd.diagnose(run)
    codes = {finding.code for finding in diagnosis.findings}
    assert "group_size_one" in codes
    assert diagnosis.worst_severity == "critical"


def _bar_line(outer: str, n: int, total: int, reward: float) -> str:
    return (
        f"{outer}:  50%|#####     | {n}/{total} [00:{n:02d}<00:30,  1.00s/it, "
        f"act_loss=0.011, reward={reward:.4f}, return={reward - 0.01:.4f}, gen_len=312, "
        f"kl=0.0012, act_lr=5e-07]"
    )


def test_openrlhf_progress_bar_counter_is_the_step(tmp_path):
    rewards = [0.2 + 0.01 * k for k in range(12)]
    path = tmp_path / "openrlhf.log"
    path.write_text(
        "\n".join(_bar_line("Train epoch [1/1]", k + 1, 12, r) for k, r in enumerate(rewards))
    )
    run = gd.read_log(path)
    steps, reward = run.series("reward")
    assert steps.tolist() == list(range(1, 13))
    assert reward.tolist() == pytest.approx(rewards)
    assert not any("no step" in w for w in run.warnings)


def test_progress_bar_restarting_each_episode_continues_the_steps(tmp_path):
    lines = [
        _bar_line(f"Episode [{e}/3]", n, 5, 0.1 * e + 0.01 * n)
        for e in (1, 2, 3)
        for n in range(1, 6)
    ]
    path = tmp_path / "episodes.log"
    path.write_text("\n".join(lines) + "\n")
    steps, reward = gd.read_log(path).series("reward")
    assert steps.tolist() == list(range(1, 16))  # (episode - 1) * 5 + n, written out
    expected = [0.1 * e + 0.01 * n for e in (1, 2, 3) for n in range(1, 6)]
    assert reward.tolist() == pytest.approx(expected)
