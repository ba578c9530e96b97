"""Your own data: a split per training seed (data.resplit), so that a report's CIs cover the split too.

Every file is generated into tmp_path (small CSVs built with numpy and pandas).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from focalbench.cli import main
from focalbench.config import compose
from focalbench.data import load_data, resolve_run_config, run_data_config
from focalbench.identity import identity_config, run_id
from tests.conftest import run_cli


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("FOCALBENCH_CACHE", str(tmp_path / "cache"))


def table(path: Path, counts: dict[str, int], seed: int = 0) -> Path:
    """Two numeric features (the first shifted by class) and a string label column, rows shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([[name] * n for name, n in counts.items()])
    rng.shuffle(labels)
    shift = np.array([list(counts).index(v) for v in labels], dtype=float)
    frame = pd.DataFrame(
        {"f1": rng.normal(size=len(labels)) + shift, "f2": rng.normal(size=len(labels)), "label": labels}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def overrides(path: Path, *more: str) -> list[str]:
    return ["data=table", f"data.path={path}", "data.target=label", "threads=1", *more]


SMALL = {"a": 80, "b": 40, "c": 30}  # 20% test split: 16, 8 and 6 test examples: re-split by default
LARGE = {"a": 300, "b": 160}  # 60 and 32 test examples: one split, as before data.resplit existed


def test_auto_resplits_a_small_test_split_and_keeps_one_split_for_a_large_one(tmp_path):
    small, large = table(tmp_path / "small.csv", SMALL), table(tmp_path / "large.csv", LARGE)
    assert resolve_run_config(compose(overrides(small))).data.resplit is True
    assert resolve_run_config(compose(overrides(large))).data.resplit is False
    # The rule is per class: 20 test examples of 'b' re-split, 30 (a larger test fraction) do not.
    mid = table(tmp_path / "mid.csv", {"a": 200, "b": 100})
    assert resolve_run_config(compose(overrides(mid))).data.resplit is True
    assert resolve_run_config(compose(overrides(mid, "data.test_fraction=0.3"))).data.resplit is False
    # The user's word stands either way.
    assert resolve_run_config(compose(overrides(small, "data.resplit=false"))).data.resplit is False
    assert resolve_run_config(compose(overrides(large, "data.resplit=true"))).data.resplit is True


def test_old_run_ids_are_unchanged_where_the_split_stays_fixed(tmp_path):
    large, small = table(tmp_path / "large.csv", LARGE), table(tmp_path / "small.csv", SMALL)
    cfg = compose(overrides(large))
    old = identity_config(cfg)  # a config from before the key: no data.resplit at all
    before = json.loads(json.dumps(old))
    assert "resplit" not in before["data"]
    assert run_id(cfg) == run_id(compose(overrides(large, "data.resplit=false")))
    without_key = OmegaConf.to_container(compose(overrides(large)))
    del without_key["data"]["resplit"]
    assert run_id(without_key) == run_id(cfg)
    # auto resolves before the id: a re-split run is the run of data.resplit=true, not of false
    auto, true, false = (
        compose(overrides(small, *x)) for x in ([], ["data.resplit=true"], ["data.resplit=false"])
    )
    assert run_id(auto) == run_id(true) == run_id(resolve_run_config(auto)) != run_id(false)


def test_seed_i_trains_and_tests_on_the_split_of_data_seed_plus_i(tmp_path):
    small = table(tmp_path / "small.csv", SMALL)
    base = {"name": "table", "path": str(small), "target": "label"}
    for seed in (0, 2):
        data = load_data(run_data_config(compose(overrides(small, f"seed={seed}", "data.data_seed=1"))))
        same = load_data({**base, "data_seed": 1 + seed, "resplit": False})
        assert torch.equal(data.test_x, same.test_x) and torch.equal(data.train_x, same.train_x)
        assert data.info["resplit"] is True and data.info["data_seed"] == 1 + seed
    # Without resplit every seed gets the data seed's own split.
    fixed = load_data(run_data_config(compose(overrides(small, "seed=2", "data.resplit=false"))))
    assert fixed.info["data_seed"] == 0 and fixed.info["resplit"] is False


def test_resplit_runs_never_fuse_across_seeds(tmp_path):
    from focalbench.sweeps.fuse import fusion_key

    small, large = table(tmp_path / "small.csv", SMALL), table(tmp_path / "large.csv", LARGE)
    assert fusion_key(compose(overrides(small, "seed=0"))) != fusion_key(compose(overrides(small, "seed=1")))
    assert fusion_key(compose(overrides(small, "seed=0"))) == fusion_key(
        compose(overrides(small, "seed=0", "gamma=0"))
    )
    assert fusion_key(compose(overrides(large, "seed=0"))) == fusion_key(compose(overrides(large, "seed=1")))


def test_resplit_with_a_given_test_set_or_a_bad_value_is_refused_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    train, test = table(tmp_path / "train.csv", SMALL), table(tmp_path / "test.csv", SMALL, seed=1)
    given = [*overrides(train), f"data.test_path={test}"]
    assert (
        resolve_run_config(compose(given)).data.resplit is False
    )  # auto: a given test set is never re-split
    for argv, message in (
        (
            ["sweep", *given, "data.resplit=true"],
            "data.resplit=true re-carves the test split per training seed",
        ),
        (["sweep", *overrides(train), "data.resplit=sometimes"], "data.resplit=sometimes is not valid"),
    ):
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "results").exists()


def test_data_info_says_whether_the_split_follows_the_seed(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "300")
    small = table(tmp_path / "small.csv", SMALL)
    assert main(["data", "info", *overrides(small)]) == 0
    assert "split: one per training seed (data.resplit): seed i carves the split of data seed 0+i" in (
        capsys.readouterr().out
    )
    assert main(["data", "info", *overrides(small, "data.resplit=false")]) == 0
    assert "split: one for every training seed (data seed 0; data.resplit=false)" in capsys.readouterr().out


@pytest.mark.slow
def test_a_sweep_pairs_seeds_with_their_splits_and_the_answer_says_what_the_ci_covers(tmp_path):
    small = table(tmp_path / "data" / "small.csv", SMALL)
    work = tmp_path / "work"
    work.mkdir()
    grid = [*overrides(small), "gamma=0,2", "seed=0,1", "epochs=2"]
    out = run_cli("sweep", *grid, "--name", "rs", cwd=work)
    assert out.returncode == 0, out.stderr
    assert "covers" not in out.stderr
    runs = [json.loads(p.read_text()) for p in (work / "results" / "runs").glob("*/metrics.json")]
    assert sorted((m["seed"], m["data"]["data_seed"], m["data"]["resplit"]) for m in runs) == [
        (0, 0, True),
        (0, 0, True),
        (1, 1, True),
        (1, 1, True),
    ]
    assert all("resplit: true" in p.read_text() for p in (work / "results" / "runs").glob("*/config.yaml"))
    summary = json.loads((work / "results" / "sweeps" / "rs" / "summary.json").read_text())
    assert summary["answer"]["covers"].startswith(
        "The 95% CIs cover the variation between training seeds and 2 random stratified splits of the data"
    )
    assert [c["seeds"] for c in summary["cells"]] == [[0, 1], [0, 1]]  # one cell per gamma, paired by seed
    fixed = run_cli("sweep", *grid, "data.resplit=false", "--name", "fixed", cwd=work)
    assert fixed.returncode == 0, fixed.stderr
    summary = json.loads((work / "results" / "sweeps" / "fixed" / "summary.json").read_text())
    assert (
        "between training seeds, paired by seed, on one draw of the data per setting (data seed 0)"
        in (summary["answer"]["covers"])
    )
