"""The grpo-dynamics command line: exit codes, outputs that parse, PNGs written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from grpo_dynamics.cli import DEMO_TRUTH, main


def _last_json(text: str) -> dict:
    # the JSON document is the last line of a --json run; human lines come before it
    return json.loads(text.strip().splitlines()[-1])


def test_demo_writes_plot_and_recovers_truth(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--json"]) == 0
    assert (tmp_path / "demo-fit.png").stat().st_size > 10_000
    doc = _last_json(capsys.readouterr().out)
    osc = doc["oscillator"]
    # 300 points at noise 0.03 pin the plateau to a few 1e-3 and tau, mu to ~10 %
    assert osc["r_inf"] == pytest.approx(DEMO_TRUTH["r_inf"], abs=0.02)
    assert osc["tau"] == pytest.approx(DEMO_TRUTH["tau"], rel=0.15)
    assert osc["mu"] == pytest.approx(DEMO_TRUTH["mu"], rel=0.2)


def test_console_entry_point_runs_headless(tmp_path):
    env_code = "import sys; from grpo_dynamics.cli import main; sys.exit(main())"
    proc = subprocess.run(
        [sys.executable, "-c", env_code, "demo", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, env={"MPLBACKEND": "TkAgg", "PATH": ""},
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "demo-fit.png").exists()


def test_unknown_command_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code != 0
