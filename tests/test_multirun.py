"""Files that hold several runs (docs/io.md, "Several runs in one file"): a batch gives one
item per run, checked against a plain pandas split of the same CSV; the CLI's ``--select``
reads one of them; nothing is dropped and bad selections are clear errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grpo_dynamics as gd
from grpo_dynamics import cli

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-grpo-logs"
WAVE1 = SHARED / "memoryoffish__nlp_grpo__results__curves_wave1.csv"


def _rows(out: str) -> list[dict]:
    doc = json.loads(out)
    return doc if isinstance(doc, list) else doc["results"]


def test_split_runs_gives_every_run_of_a_csv_as_pandas_splits_it():
    table = pd.read_csv(WAVE1)
    expected = {
        arm: group.dropna(subset=["critic/score/mean"])
        for arm, group in table.groupby("arm", sort=False)
    }
    items = gd.read_logs([WAVE1], split_runs=True)
    assert [name for name, _ in items] == [f"{WAVE1}[arm={arm}]" for arm in expected]
    for (_, run), (arm, group) in zip(items, expected.items(), strict=True):
        assert isinstance(run, gd.Run)
        assert run.metadata["selected"] == {"arm": arm}
        steps, reward = run.series("reward")
        np.testing.assert_array_equal(steps, group["step"].to_numpy(float))
        np.testing.assert_allclose(reward, group["critic/score/mean"].to_numpy(float))


def test_without_split_a_batch_keeps_one_item_per_file(recwarn):
    items = gd.read_logs([WAVE1])
    assert len(items) == 1
    run = items[0][1]
    assert isinstance(run, gd.Run)
    assert run.metadata["runs_in_file"]["arm"][0] == run.metadata["selected"]["arm"]
    assert len(run.metadata["runs_in_file"]["arm"]) == 4


def test_split_runs_and_select_exclude_each_other():
    with pytest.raises(ValueError, match="split_runs"):
        gd.read_logs([WAVE1], split_runs=True, select={"arm": "x"})


def test_cli_reads_every_run_of_a_multi_run_csv(capsys):
    assert cli.main(["fit", str(WAVE1), "--json"]) == 0
    rows = _rows(capsys.readouterr().out)
    arms = list(pd.unique(pd.read_csv(WAVE1)["arm"]))
    assert [r["file"] for r in rows] == [f"{WAVE1}[arm={arm}]" for arm in arms]
    assert all(r["status"] == "ok" for r in rows)


def test_cli_select_reads_one_run(capsys):
    arm = "n8 [sparse, n8]"
    assert cli.main(["fit", str(WAVE1), "--select", f"arm={arm}", "--json"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert len(rows) == 1 and rows[0]["file"] == str(WAVE1)
    table = pd.read_csv(WAVE1)
    n = table.loc[table["arm"] == arm, "critic/score/mean"].notna().sum()
    assert rows[0]["n"] == n


def test_cli_select_naming_no_run_is_an_error_row(capsys):
    assert cli.main(["fit", str(WAVE1), "--select", "arm=nope", "--json"]) == 1
    (row,) = _rows(capsys.readouterr().out)
    assert row["status"] == "error"
    assert "no row matches" in row["error"] and "control [sparse, n4]" in row["error"]


def test_cli_select_needs_column_and_value(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["fit", str(WAVE1), "--select", "arm"])
    assert exit_info.value.code == 2
    assert "--select: expected COLUMN=VALUE" in capsys.readouterr().err


def test_split_runs_still_warns_about_a_single_run_file(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("reward\n0.1\n0.2\n0.3\n0.4\n")
    with pytest.warns(gd.GrpoLogWarning, match="no step column"):
        ((name, run),) = gd.read_logs([path], split_runs=True)
    assert name == str(path) and isinstance(run, gd.Run) and len(run) == 4


def test_cli_table_names_each_run_of_a_file(tmp_path, capsys):
    # two runs labelled with a slash, as sweep names often are
    lines = [f"{label},{s},{0.01 * s:.3f}" for label in ("a/1", "b/2") for s in range(30)]
    (tmp_path / "exp[3]").mkdir()  # a bracket in a directory name is not a run label
    path = tmp_path / "exp[3]" / "sweep.csv"
    path.write_text("label,step,reward\n" + "\n".join(lines) + "\n")
    assert cli.main(["fit", str(path)]) == 0
    table = capsys.readouterr().out
    assert "sweep.csv[label=a/1]" in table and "sweep.csv[label=b/2]" in table
    assert "exp[3]" not in table  # the file's name only, as for any other log


def _wandb_export(path: Path, runs: dict[str, dict[int, float]]) -> None:
    """A W&B chart export: 'Step', then '<run> - train/reward' (+ __MIN/__MAX) per run, empty
    cells where a run logged nothing at that step."""
    steps = sorted({s for values in runs.values() for s in values})
    header = ['"Step"'] + [
        f'"{name} - train/reward{suffix}"' for name in runs for suffix in ("", "__MIN", "__MAX")
    ]
    lines = [",".join(header)]
    for s in steps:
        cells = [str(s)]
        for values in runs.values():
            cells += [f"{values[s]!r}" if s in values else ""] * 3
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")


def test_wandb_export_with_runs_side_by_side_splits_into_runs(tmp_path):
    rng = np.random.default_rng(3)
    runs = {
        "grpo-lr1e-6": {s: float(rng.uniform()) for s in range(1, 41)},
        "grpo-lr3e-6": {s: float(rng.uniform()) for s in range(1, 41) if s % 3},  # gaps
        "grpo-lr1e-5": {s: float(rng.uniform()) for s in range(5, 30)},  # starts late
    }
    path = tmp_path / "wandb_export.csv"
    _wandb_export(path, runs)
    items = gd.read_logs([path], split_runs=True)
    assert [name for name, _ in items] == [f"{path}[run={name}]" for name in runs]
    for (_, run), values in zip(items, runs.values(), strict=True):
        assert isinstance(run, gd.Run)
        steps, reward = run.series("reward")
        np.testing.assert_array_equal(steps, sorted(values))
        np.testing.assert_array_equal(reward, [values[s] for s in sorted(values)])
    with pytest.warns(gd.GrpoLogWarning, match="3 runs told apart by column 'run'"):
        first = gd.read_log(path)
    np.testing.assert_array_equal(first.series("reward")[1], list(runs["grpo-lr1e-6"].values()))
    chosen = gd.read_log(path, select={"run": "grpo-lr3e-6"})
    assert chosen.series("reward")[0].tolist() == sorted(runs["grpo-lr3e-6"])


# ------------------------------------------------------------------------------------------
# split_runs parses a file once and cuts its runs from the parsed table


MULTI_RUN_CSVS = [
    WAVE1,
    SHARED / "memoryoffish__nlp_grpo__results__curves_phase1.csv",
    SHARED / (
        "ShibukiZero__assignment5-alignment__artifacts__experiments__main__ch7__"
        "grpo_learning_rate__grpo_learning_rate_eval_points.csv"
    ),
]


def _same_run(got: gd.Run | Exception, expected: gd.Run) -> None:
    assert isinstance(got, gd.Run), got
    pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True)
    assert got.metadata == expected.metadata
    assert got.original_names == expected.original_names
    assert (got.warnings, got.notes) == (expected.warnings, expected.notes)
    assert (got.source, got.format) == (expected.source, expected.format)


def _split_counting_parses(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[str, gd.Run | Exception]], int]:
    """read_logs(split_runs=True) on one file, and how many times it called pandas' parser."""
    calls = []
    parse = pd.read_csv

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return parse(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pd, "read_csv", counted)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            items = gd.read_logs([path], split_runs=True)
    return items, len(calls)


@pytest.mark.parametrize("path", MULTI_RUN_CSVS, ids=lambda p: p.name[-30:])
def test_split_runs_parses_once_and_gives_what_reading_each_run_gives(path, monkeypatch):
    """Every item equals read_log(path, select={column: value}), the per-run reading split_runs
    did before (one parse to find the runs, one per run); now pandas parses the file once."""
    items, parses = _split_counting_parses(path, monkeypatch)
    assert parses == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = gd.read_log(path)
    ((column, labels),) = first.metadata["runs_in_file"].items()
    assert [name for name, _ in items] == [f"{path}[{column}={v}]" for v in labels]
    for (_, run), value in zip(items, labels, strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _same_run(run, gd.read_log(path, select={column: value}))


def test_split_runs_of_a_synthetic_file_against_a_pandas_groupby(tmp_path, monkeypatch):
    """Runs interleaved row by row, a metadata comment, empty cells, a text cell in one run's
    numeric column (warned with its file line) and a column that is text in one run only:
    each item against an independent pandas groupby of the same file and against reading that
    run alone."""
    rng = np.random.default_rng(11)
    labels = ["lr=1e-6", "lr=3e-6", "lr=1e-5"]
    lines = ['# grpo_dynamics_metadata: {"group_size": 8}', "label,step,reward,kl,tag"]
    for step in range(60):
        for i, label in enumerate(labels):
            if i == 2 and step >= 40:
                continue  # the last run stopped early
            reward = "" if step % 17 == 5 else f"{rng.uniform():.6f}"
            kl = "oops" if (i == 1 and step == 30) else f"{rng.uniform() / 10:.6f}"
            tag = f"t{step % 3}" if i == 0 else f"{step}"
            lines.append(f"{label},{step},{reward},{kl},{tag}")
    path = tmp_path / "sweep.csv"
    path.write_text("\n".join(lines) + "\n")
    items, parses = _split_counting_parses(path, monkeypatch)
    assert parses == 1
    table = pd.read_csv(path, comment="#")
    table["line"] = np.arange(len(table)) + 3  # file line of each row: comment, header first
    groups = list(table.groupby("label", sort=False))
    assert [name for name, _ in items] == [f"{path}[label={v}]" for v, _ in groups]
    for (_, run), (value, group) in zip(items, groups, strict=True):
        assert isinstance(run, gd.Run)
        assert run.metadata["selected"] == {"label": value}
        assert run.metadata["group_size"] == 8
        logged = group.dropna(subset=["reward"])
        steps, reward = run.series("reward")
        np.testing.assert_array_equal(steps, logged["step"].to_numpy(float))
        np.testing.assert_array_equal(reward, logged["reward"].to_numpy(float))
        kl = pd.to_numeric(group["kl"], errors="coerce").to_numpy(float)
        np.testing.assert_array_equal(
            run.frame["kl"].reindex(group["step"].to_numpy()).to_numpy(float), kl
        )
        bad = group.loc[pd.to_numeric(group["kl"], errors="coerce").isna(), "line"].tolist()
        assert [w for w in run.warnings if "non-numeric" in w] == (
            [f"column 'kl': 1 non-numeric cell(s) read as NaN at line {bad[0]} ('oops')"]
            if bad
            else []
        )
        assert ("tag" in run.frame.columns) == (value != "lr=1e-6")  # text only in run one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _same_run(run, gd.read_log(path, select={"label": value}))


def test_split_runs_keeps_the_other_runs_when_the_first_cannot_be_read(tmp_path):
    """A run without a reward is its own error item; the file's other runs still read (before,
    the whole file was one error when its first run failed)."""
    path = tmp_path / "two.csv"
    path.write_text("label,step,reward,kl\na,1,,0.1\na,2,,0.2\nb,1,0.5,0.1\nb,2,0.6,0.2\n")
    (name_a, a), (name_b, b) = gd.read_logs([path], split_runs=True)
    assert name_a == f"{path}[label=a]" and isinstance(a, gd.LogFormatError)
    assert name_b == f"{path}[label=b]" and isinstance(b, gd.Run)
    assert b.series("reward")[1].tolist() == [0.5, 0.6]
