"""focalbench.results: run records as a pandas DataFrame, one row per run."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

import focalbench.results
from focalbench.cli import main
from focalbench.errors import ConfigError
from tests.conftest import TINY


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A real sweep of the tiny synthetic task: 2 gammas x 2 seeds, in this process (about a second)."""
    results = tmp_path_factory.mktemp("results")
    code = main(
        ["sweep", *TINY, "epochs=2", "gamma=0,2", "seed=0,1", "--name", "g", f"results_dir={results}"]
    )
    assert code == 0
    return results


def test_one_row_per_run_with_config_metrics_and_timing(sweep):
    df = focalbench.results.load(sweep / "sweeps" / "g")
    assert len(df) == 4 and list(df.columns[:4]) == ["run_id", "status", "seed", "cell"]
    assert set(df["status"]) == {"ok"} and sorted(zip(df["gamma"], df["seed"], strict=True)) == [
        (0, 0),
        (0, 1),
        (2, 0),
        (2, 1),
    ]
    for column in ("loss.name", "alpha", "data.name", "data.imbalance", "model.name", "optim.lr", "epochs"):
        assert column in df.columns, column
    assert "results_dir" not in df.columns and "data.root" not in df.columns  # not semantic
    assert set(df["data.name"]) == {"synthetic"} and set(df["alpha"]) == {"none"}
    for metric in (
        "test.balanced_accuracy",
        "test.few_shot_acc",
        "test.nll",
        "test.ece",
        "val.balanced_accuracy",
        "best_val.epoch",
        "best_val.test.balanced_accuracy",
        "calibration.temperature",
        "calibration.ece_ts",
        "wall_time_s",
        "images_per_s",
    ):
        assert pd.api.types.is_numeric_dtype(df[metric]) and df[metric].notna().all(), metric
    assert not any(c.startswith("test.per_class") or "confusion" in c for c in df.columns)  # lists left out
    one = df.iloc[0]
    metrics = json.loads((sweep / "runs" / one["run_id"] / "metrics.json").read_text())
    assert one["test.balanced_accuracy"] == metrics["test"]["balanced_accuracy"]
    assert one["wall_time_s"] == metrics["timing"]["wall_time_s"]


def test_results_runs_and_run_folders_and_lists(sweep):
    by_sweep = focalbench.results.load(sweep / "sweeps" / "g")
    assert sorted(focalbench.results.load(sweep)["run_id"]) == sorted(by_sweep["run_id"])
    assert len(focalbench.results.load(sweep / "runs")) == 4
    single = focalbench.results.load(sweep / "runs" / by_sweep["run_id"][0])
    assert len(single) == 1 and single["run_id"][0] == by_sweep["run_id"][0]
    both = focalbench.results.load([sweep / "runs" / r for r in by_sweep["run_id"][:2]])
    assert list(both["run_id"]) == list(by_sweep["run_id"][:2])


def test_mean_over_seeds_against_gamma(sweep):
    df = focalbench.results.load(sweep / "sweeps" / "g")
    table = df.groupby("gamma")["test.balanced_accuracy"].agg(["mean", "std", "count"])
    assert list(table.index) == [0, 2] and list(table["count"]) == [2, 2]


def _fake_run(runs, rid, seed, alpha, status="ok"):
    rdir = runs / rid
    rdir.mkdir(parents=True)
    cfg = {
        "data": {"name": "synthetic", "root": None},
        "loss": {"name": "focal"},
        "gamma": 2.0,
        "alpha": alpha,
    }
    (rdir / "config.yaml").write_text(yaml.safe_dump({**cfg, "seed": seed, "results_dir": "x"}))
    if status == "error":
        (rdir / "error.json").write_text(json.dumps({"status": "error", "error": "RuntimeError: boom"}))
    else:
        metrics = {"status": "ok", "seed": seed, "cell": "focal", "test": {"balanced_accuracy": 50.0 + seed}}
        metrics["timing"] = {"wall_time_s": 1.5, "images_per_s": 1000.0}
        (rdir / "metrics.json").write_text(json.dumps(metrics))


def test_failed_runs_have_a_row_and_mixed_columns_become_strings(tmp_path):
    runs = tmp_path / "runs"
    _fake_run(runs, "a", 0, "none")
    _fake_run(runs, "b", 1, 0.25)
    _fake_run(runs, "c", 2, [1, 2, 3])
    _fake_run(runs, "d", 3, "none", status="error")
    df = focalbench.results.load(tmp_path)
    assert list(df["run_id"]) == ["a", "b", "c", "d"]
    assert list(df["alpha"]) == ["none", "0.25", "[1,2,3]", "none"]  # one type per column
    error = df.set_index("run_id").loc["d"]
    assert error["status"] == "error" and "boom" in error["message"]
    assert math.isnan(error["test.balanced_accuracy"]) and math.isnan(error["wall_time_s"])


def test_write_parquet_round_trips_and_is_atomic(sweep, tmp_path):
    df = focalbench.results.load(sweep)
    out = focalbench.results.write_parquet(df, tmp_path / "out" / "runs.parquet")
    back = pd.read_parquet(out)
    assert list(back.columns) == list(df.columns) and len(back) == len(df)
    assert back["test.balanced_accuracy"].tolist() == df["test.balanced_accuracy"].tolist()
    assert [p.name for p in out.parent.iterdir()] == ["runs.parquet"]  # no temporary file left


def test_a_path_that_is_not_a_results_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such sweep, run or results folder"):
        focalbench.results.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a sweep folder"):
        focalbench.results.load(tmp_path / "empty")


@pytest.mark.slow
def test_report_format_parquet_writes_the_runs_table(tmp_path):
    """`focalbench report SWEEP --format parquet` gives the same table as focalbench.results.load."""
    import pandas as pd

    from focalbench.results import load
    from tests.conftest import TINY, run_cli

    assert run_cli("sweep", "gamma=0,2", "seed=0", *TINY, "--name", "s", cwd=tmp_path).returncode == 0
    sweep = tmp_path / "results" / "sweeps" / "s"
    out = run_cli("report", str(sweep), "--format", "parquet", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    table = pd.read_parquet(sweep / "runs.parquet")
    assert len(table) == 2 and sorted(table["gamma"]) == [0, 2]
    assert table["run_id"].tolist() == load(sweep)["run_id"].tolist()
