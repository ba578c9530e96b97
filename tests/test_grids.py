"""Grids whose keys apply to only some of their losses, cells that are one run under two names, and the
labels and notes a user reads (issue 22, part 4)."""

from __future__ import annotations

import json

import pytest

from focalbench.errors import ConfigError
from focalbench.sweeps.plan import plan_sweep, same_run_note, skipped_note
from tests.conftest import TINY, run_cli


def test_a_grid_runs_the_combinations_that_apply_and_names_the_others(tmp_path):
    plan = plan_sweep(["loss=ce,focal,logit_adjusted", "gamma=0,2", "seed=0,1", f"results_dir={tmp_path}"])
    ran = sorted({(str(c.cfg.loss.name), c.cfg.gamma) for c in plan.cells})
    # ce takes gamma=0 (its own value: plain cross-entropy); a loss without gamma accepts gamma=0 as
    # `focalbench run` does; gamma=2 applies to focal only
    assert ran == [("ce", 0), ("focal", 0), ("focal", 2), ("logit_adjusted", 0)]
    assert len(plan.skipped) == 4  # ce and logit_adjusted with gamma=2, two seeds each
    assert skipped_note(plan) == (
        "skipped 2 combination(s) that do not apply (4 cell(s) of the grid): "
        "ce × gamma=2: cross-entropy has no gamma; logit_adjusted × gamma=2: logit_adjusted has no gamma"
    )
    # each cell keeps its position in the whole grid: Hydra's job numbers count the skipped cells
    assert [c.job for c in plan.cells] == [0, 1, 4, 5, 6, 7, 8, 9]


def test_a_loss_own_key_applies_to_the_losses_that_have_it(tmp_path):
    plan = plan_sweep(["loss=ce,logit_adjusted", "loss.tau=0.5", "seed=0", f"results_dir={tmp_path}"])
    assert [str(c.cfg.loss.name) for c in plan.cells] == ["logit_adjusted"]
    assert skipped_note(plan).endswith("ce × loss.tau=0.5: loss=ce has no tau")


def test_a_grid_in_which_nothing_applies_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="no combination of the grid can run: gamma=1 with loss=ce"):
        plan_sweep(["loss=ce", "gamma=1,2", f"results_dir={tmp_path}"])
    out = run_cli("sweep", "loss=ce,balanced_ce", "gamma=1,2", *TINY, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "cross-entropy has no gamma" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "results").exists()


def test_a_typo_in_a_grid_is_still_an_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'loss.taux'"):
        plan_sweep(["loss=ce,logit_adjusted", "loss.taux=0.5", f"results_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="gamma must be >= 0"):
        plan_sweep(["loss=ce,focal", "gamma=-1,2", f"results_dir={tmp_path}"])


def test_cells_that_are_one_run_under_two_names_are_said_so(tmp_path):
    plan = plan_sweep(["loss=logit_adjusted,balanced_softmax,ce", "seed=0,1", f"results_dir={tmp_path}"])
    assert len(plan.unique_run_ids()) == 4  # balanced_softmax is logit_adjusted with tau = 1
    assert same_run_note(plan) == "logit_adjusted = balanced_softmax tau=1: the same config, one run"
    assert same_run_note(plan_sweep(["loss=ce,focal", f"results_dir={tmp_path}"])) is None


def test_dry_run_lists_the_skipped_combinations(tmp_path):
    out = run_cli(
        "sweep",
        "loss=ce,focal,balanced_softmax,logit_adjusted",
        "gamma=0,2",
        "seed=0",
        *TINY,
        "--dry-run",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "ce × gamma=2: cross-entropy has no gamma" in out.stdout
    assert "balanced_softmax × gamma=2: logit_adjusted has no gamma" in out.stdout
    assert "balanced_softmax = logit_adjusted" in out.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["inprocess", "basic"])
def test_a_sweep_skips_what_does_not_apply_with_every_launcher(tmp_path, launcher):
    out = run_cli(
        "sweep",
        "loss=ce,focal",
        "gamma=0,2",
        "seed=0",
        *TINY,
        "threads=1",
        "--launcher",
        launcher,
        "--name",
        "g",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "ce × gamma=2: cross-entropy has no gamma" in out.stdout
    runs = tmp_path / "results" / "runs"
    assert len(list(runs.glob("*/metrics.json"))) == 3 and not list(runs.glob("*/error.json"))
    listing = json.loads((tmp_path / "results" / "sweeps" / "g" / "sweep.json").read_text())
    assert [s["setting"] for s in listing["skipped"]] == ["gamma=2"]
