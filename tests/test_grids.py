"""Grids whose keys apply to only some of their losses, cells that are one run under two names, and the
labels and notes a user reads (issue 22, part 4)."""

from __future__ import annotations

import json

import pytest

from focalbench.errors import ConfigError
from focalbench.sweeps.plan import plan_sweep, same_run_note, skipped_note
from tests.conftest import SHARED_DATA, TINY, needs_cifar10, run_cli


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


# ----------------------------------------------------------------------------------------------------------
# Labels: the loss as the user named it, without keys at their default
# ----------------------------------------------------------------------------------------------------------


def _flat(*overrides: str) -> dict:
    from omegaconf import OmegaConf

    from focalbench.config import compose
    from focalbench.reports import aggregate as agg

    tree = OmegaConf.to_container(compose(["epochs=10", *overrides]), resolve=True)
    return agg.flatten(agg.semantic_part(tree))


def test_labels_name_the_loss_preset_and_leave_out_defaults():
    from focalbench.reports import aggregate as agg

    configs = [_flat("loss=ce"), _flat("loss=ldam"), _flat("loss=ldam_drw"), _flat("loss=logit_adjusted")]
    labels = agg.readable_labels(configs, agg.varying_keys(configs))
    # before: 'loss=ldam gamma=null alpha=effective_num alpha_start_epoch=0.8 model.norm_classifier=true ...'
    assert labels == [
        "loss=ce alpha=none",  # CE has no gamma: its gamma=0 says nothing
        "loss=ldam alpha=none",
        "loss=ldam_drw",
        "loss=logit_adjusted alpha=none",
    ]
    # LDAM's head initialisation is part of the loss, not a setting that splits CE from LDAM
    assert agg.is_loss_key("model.norm_classifier_init")
    # a key that differs from the preset is shown; a gamma sweep shows every gamma, the preset's too
    configs = [_flat("loss=ldam_drw"), _flat("loss=ldam_drw", "alpha_start_epoch=0.5")]
    assert agg.readable_labels(configs, agg.varying_keys(configs), [["ldam_drw"], ["ldam_drw"]]) == [
        "alpha_start_epoch=0.8",
        "alpha_start_epoch=0.5",
    ]
    configs = [_flat("loss=focal", "gamma=0"), _flat("loss=focal", "gamma=2")]
    assert agg.readable_labels(configs, agg.varying_keys(configs)) == ["gamma=0", "gamma=2"]
    # a loss=ce,focal gamma=0,2 grid: focal's gamma=0 is shown (it is the gamma swept), CE's is not
    configs = [_flat("loss=ce"), _flat("loss=focal", "gamma=0"), _flat("loss=focal", "gamma=2")]
    assert agg.readable_labels(configs, agg.varying_keys(configs)) == [
        "loss=ce",
        "loss=focal gamma=0",
        "loss=focal gamma=2",
    ]


def test_the_losses_with_a_gamma_are_those_the_registry_says():
    """Labels leave gamma out for the losses without one; the list they use is the registry's."""
    from focalbench.identity import GAMMA_LOSSES
    from focalbench.registry import LOSSES

    assert {name for name in LOSSES.names() if LOSSES.get(name).meta.get("uses_gamma")} == GAMMA_LOSSES


def test_a_selector_may_name_a_loss_as_its_label_does():
    """``--baseline loss=ldam_drw`` and a claim's ``a: loss=balanced_ce`` select what the labels call so; the
    loss's own name still selects all of its runs, and an explicit key overrides the preset's."""
    from focalbench.reports import aggregate as agg

    configs = [_flat("loss=ce"), _flat("loss=balanced_ce"), _flat("loss=ldam"), _flat("loss=ldam_drw")]
    pick = lambda selector: agg.select(list(range(4)), configs, selector)  # noqa: E731
    assert pick("loss=ldam_drw") == [3]
    assert pick("loss=balanced_ce") == [1]
    assert pick("loss=ce alpha=none") == [0]
    assert pick("loss=ldam") == [2, 3]
    assert pick("loss=balanced_ce alpha=none") == [0]  # alpha given: the selector's value wins


def test_a_cell_typed_under_two_names_reads_as_the_first_and_the_report_says_one_run(tmp_path):
    from focalbench.reports.render import markdown
    from focalbench.reports.report import report_for_sweep
    from tests.test_reports import write_record

    runs = tmp_path / "runs"
    for seed in (0, 1):
        write_record(runs, f"ce{seed}", seed, balanced_accuracy=60.0 + seed)
        write_record(
            runs, f"la{seed}", seed, gamma=None, loss="logit_adjusted", balanced_accuracy=65.0 + seed
        )
    sweep = tmp_path / "sweeps" / "s"
    sweep.mkdir(parents=True)
    listing = [
        {"run_id": f"{rid}{seed}", "overrides": [f"loss={name}", f"seed={seed}"]}
        for name, rid in (("ce", "ce"), ("balanced_softmax", "la"), ("logit_adjusted", "la"))
        for seed in (0, 1)
    ]
    (sweep / "sweep.json").write_text(json.dumps({"name": "s", "overrides": [], "runs": listing}))
    report = report_for_sweep(sweep, metrics=["balanced_accuracy"])
    assert [c.label for c in report.cells] == ["loss=ce", "loss=balanced_softmax"]
    line = "balanced_softmax = logit_adjusted: one run, shown as 'loss=balanced_softmax'"
    assert report.notes["same_runs"] == [line]
    assert line in markdown(report)


def test_auto_sweep_names_are_short_and_readable():
    from focalbench.sweeps.plan import default_sweep_name

    assert default_sweep_name(["gamma=0,1,2,5"]) == "gamma=0,1,2,5"
    # the swept keys first; dotted keys by their last part; paths by their file name; no run-free settings
    typed = ["data=table", "data.path=/home/me/data/fraud.csv", "gamma=0,2", "seed=0", "jobs=2", "threads=1"]
    assert default_sweep_name(typed) == "gamma=0,2_data=table_path=fraud.csv_seed=0"
    long = [
        "loss=ce,focal",
        "gamma=0,2",
        "data=cifar10_lt",
        "model=cnn",
        "imbalance=10,100",
        "alpha=none,inverse_freq",
    ]
    name = default_sweep_name(long)
    assert len(name) <= 60 and name.startswith("loss=ce,focal_gamma=0,2_imbalance=10,100-")
    assert name != default_sweep_name([*long, "seed=0"])  # the hash tells long grids apart


def test_the_chance_level_stands_beside_every_accuracy_table(tmp_path):
    from rich.console import Console

    from focalbench.reports.html import render_html
    from focalbench.reports.render import markdown, print_report
    from focalbench.reports.report import build_report
    from tests.test_reports import write_record

    runs = tmp_path / "runs"
    dirs = [write_record(runs, f"r{s}", s, balanced_accuracy=34.0 + s, accuracy=60.0) for s in (0, 1)]
    for rdir in dirs:  # an imbalanced test set: 80, 15 and 5 examples
        metrics = json.loads((rdir / "metrics.json").read_text())
        metrics["test"]["confusion_matrix"] = [[70, 5, 5], [10, 5, 0], [4, 0, 1]]
        (rdir / "metrics.json").write_text(json.dumps(metrics))
    report = build_report(dirs, metrics=["balanced_accuracy", "accuracy"])
    line = (
        "Chance level: balanced accuracy 33.33 % (1/C, C = 3 classes); top-1 accuracy 80.00 % "
        "(always the test set's most frequent class: 80 of 100)."
    )
    console = Console(width=200, record=True)
    print_report(report, console)
    assert line in markdown(report) and line in console.export_text()
    assert line.replace("'", "&#39;") in render_html(report, tmp_path)
    # without top-1 accuracy, only balanced accuracy's; without an accuracy metric, none
    only = build_report(dirs, metrics=["balanced_accuracy"])
    assert "Chance level: balanced accuracy 33.33 % (1/C, C = 3 classes)." in markdown(only)
    assert "Chance level" not in markdown(build_report(dirs, metrics=["nll"]))


def test_data_info_prints_one_imbalance_figure(tmp_path):
    out = run_cli("data", "info", "imbalance=100", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "imbalance ρ = n_max / n_min: 100 (the class counts before the validation split" in out.stdout
    assert "achieved_imbalance" not in out.stdout and "measured_imbalance" not in out.stdout


# ----------------------------------------------------------------------------------------------------------
# save_model=true: the final weights in the run's folder
# ----------------------------------------------------------------------------------------------------------


def _weights_give_the_recorded_logits(run_dir) -> None:
    """Load model.pt into a fresh model of the run's config: its test logits are the record's."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf

    from focalbench.data import load_data
    from focalbench.models import build_model
    from focalbench.training.loop import predict_logits

    state = torch.load(run_dir / "model.pt", weights_only=True)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    data = load_data(cfg.data, torch.device("cpu"))
    model = build_model(cfg.model, data.input_shape, data.n_classes)
    model.load_state_dict(state)
    logits, _ = predict_logits(model, data, "test", 256, torch.device("cpu"), "fp32", False)
    recorded = np.load(run_dir / "logits.npz", allow_pickle=False)["test_logits"]
    np.testing.assert_allclose(logits.float().numpy(), recorded, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_save_model_keeps_the_final_weights_of_a_run_and_of_each_fused_member(tmp_path):
    from focalbench.config import compose
    from focalbench.identity import run_id

    # not part of the run id: a record made with it is the record of the run without it, and the other way
    assert run_id(compose(["save_model=true"])) == run_id(compose([]))
    out = run_cli("run", *TINY, "threads=1", "save_model=true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (alone,) = (tmp_path / "results" / "runs").iterdir()
    _weights_give_the_recorded_logits(alone)
    out = run_cli(
        "sweep", "gamma=0,2", "seed=1", *TINY, "threads=1", "save_model=true", "--fuse", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    fused = [p for p in (tmp_path / "results" / "runs").iterdir() if p != alone]
    assert len(fused) == 2
    for run_dir in fused:
        assert json.loads((run_dir / "metrics.json").read_text())["fused_group"]["size"] == 2
        _weights_give_the_recorded_logits(run_dir)


@pytest.mark.slow
def test_save_model_on_a_record_without_weights_says_how_to_get_them(tmp_path):
    assert run_cli("run", *TINY, "threads=1", cwd=tmp_path).returncode == 0
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    before = (run_dir / "metrics.json").stat().st_mtime_ns
    out = run_cli("run", *TINY, "threads=1", "save_model=true", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    said = out.stdout + out.stderr
    assert "made without save_model, so no weights (model.pt) are kept" in said and "--force" in said
    assert not (run_dir / "model.pt").exists() and (run_dir / "metrics.json").stat().st_mtime_ns == before
    sweep = run_cli("sweep", "seed=0", *TINY, "threads=1", "save_model=true", "--dry-run", cwd=tmp_path)
    assert "1 of the grid's done records were made without save_model" in sweep.stdout
    forced = run_cli("run", *TINY, "threads=1", "save_model=true", "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    _weights_give_the_recorded_logits(run_dir)


# ----------------------------------------------------------------------------------------------------------
# A tuning sweep's report: the user's baseline, or CE / gamma=0, never the first trial
# ----------------------------------------------------------------------------------------------------------


def _tuning_sweep(tmp_path, gammas, sweeper="tune"):
    from tests.test_reports import write_record

    runs = tmp_path / "runs"
    ids = []
    for i, gamma in enumerate(gammas):
        for seed in (0, 1):
            ids.append(f"t{i}s{seed}")
            write_record(runs, ids[-1], seed, gamma=gamma, loss="focal", balanced_accuracy=50.0 + i + seed)
    sweep = tmp_path / "sweeps" / "tune"
    sweep.mkdir(parents=True)
    listing = {"name": "tune", "overrides": [], "sweeper": sweeper, "run_ids": ids}
    listing["runs"] = [{"run_id": rid} for rid in ids]
    (sweep / "sweep.json").write_text(json.dumps(listing))
    return sweep


def test_a_tuning_sweep_is_not_compared_with_its_first_trial(tmp_path):
    from focalbench.reports.report import NO_TUNING_BASELINE, report_for_sweep

    report = report_for_sweep(_tuning_sweep(tmp_path / "a", [2.74, 1.3, 4.0]), metrics=["balanced_accuracy"])
    assert {c.baseline for c in report.cells} == {None}  # before: 'gamma=2.74', the first trial
    assert report.baseline_selector == NO_TUNING_BASELINE
    assert all(c.metrics["balanced_accuracy"].delta_vs_baseline is None for c in report.cells)
    from focalbench.reports.report import write_report

    write_report(report, tmp_path / "a" / "out")  # every file and plot, without a baseline
    assert "a tuning sweep's trials hold no CE" in (tmp_path / "a" / "out" / "table.md").read_text()
    # gamma = 0 among the trials, or a baseline the user names, is compared with
    with_ce = report_for_sweep(_tuning_sweep(tmp_path / "b", [2.74, 0.0, 4.0]), metrics=["balanced_accuracy"])
    assert {c.baseline for c in with_ce.cells} == {"gamma=0"}
    named = report_for_sweep(
        _tuning_sweep(tmp_path / "c", [2.74, 1.3]), metrics=["balanced_accuracy"], baseline="gamma=1.3"
    )
    assert {c.baseline for c in named.cells} == {"gamma=1.3"}
    # a grid (Hydra's basic sweeper) still falls back on its first cell, as documented
    grid = report_for_sweep(
        _tuning_sweep(tmp_path / "d", [2.74, 1.3], "basic"), metrics=["balanced_accuracy"]
    )
    assert {c.baseline for c in grid.cells} == {"gamma=2.74"}


# ----------------------------------------------------------------------------------------------------------
# α per class with the class names; the γ plot names the losses without γ
# ----------------------------------------------------------------------------------------------------------


def test_alpha_is_printed_per_class_with_the_class_names(tmp_path):
    from focalbench.reports.report import build_report

    out = run_cli("run", "loss=balanced_ce", *TINY, "threads=1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "α = inverse_freq per class: class_0 0." in out.stdout and ", class_9 " in out.stdout
    info = run_cli("data", "info", "alpha=inverse_freq", cwd=tmp_path)
    assert info.returncode == 0 and "α (inverse_freq)" in info.stdout
    assert "α (" not in run_cli("data", "info", cwd=tmp_path).stdout  # unweighted: no column
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    (line,) = build_report([run_dir]).notes["alpha"]
    assert "α = inverse_freq → per class: class_0 0." in line


def test_the_gamma_plot_draws_the_losses_without_gamma_as_reference_lines(tmp_path, monkeypatch):
    from focalbench.reports import plots
    from focalbench.reports.report import build_report
    from tests.test_reports import write_record

    runs, dirs = tmp_path / "runs", []
    for seed in (0, 1):
        dirs.append(write_record(runs, f"ce{seed}", seed, gamma=0.0, balanced_accuracy=60.0 + seed))
        dirs.append(write_record(runs, f"f{seed}", seed, gamma=2.0, loss="focal", balanced_accuracy=58.0))
        dirs.append(
            write_record(runs, f"l{seed}", seed, gamma=None, loss="logit_adjusted", balanced_accuracy=66.0)
        )
    figures = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig) or path)
    plots.plot_metric_vs_gamma(build_report(dirs, metrics=["balanced_accuracy"]), tmp_path / "g.png")
    (fig,) = figures
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "loss=logit_adjusted (no γ)" in legend  # before: left out without a word
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "loss=logit_adjusted (no γ)"]
    assert list(line.get_ydata()) == [66.0, 66.0]


@needs_cifar10
def test_records_in_the_other_precision_are_named_with_the_override_that_reuses_them(tmp_path, monkeypatch):
    # A study trained in bf16 (precision=bf16, or precision=auto on a CPU with native bf16 before auto became
    # fp32 on every CPU), continued with precision=auto: the precision is part of the run id, so the sweep would
    # train the whole grid again in fp32.
    from focalbench import hardware
    from focalbench.sweeps.plan import precision_note

    grid = ["data=cifar10_lt", f"data.root={SHARED_DATA}", "model=cnn", "device=cpu", "seed=0,1"]
    grid.append(f"results_dir={tmp_path}")
    assert precision_note(plan_sweep(grid)) is None  # no records at all
    for cell in plan_sweep([*grid, "precision=bf16"]).cells:
        write_done(tmp_path, cell.run_id)

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    plan = plan_sweep(grid)
    assert plan.done() == []
    note = precision_note(plan)
    assert note is not None and note.startswith("2 of the missing runs have records in bf16")
    assert "precision=auto means fp32 on the cpu" in note and note.endswith(
        "pass precision=bf16 to reuse those records"
    )

    # the override it names does reuse them; a pinned precision gets no note, nor does a grid with its records
    pinned = plan_sweep([*grid, "precision=bf16"])
    assert len(pinned.done()) == 2 and precision_note(pinned) is None
    assert precision_note(plan_sweep([*grid, "precision=fp32"])) is None
    for cell in plan.cells:
        write_done(tmp_path, cell.run_id)
    assert precision_note(plan_sweep(grid)) is None


def test_bf16_to_train_on_a_cpu_without_native_bf16_is_said_before_training(tmp_path, monkeypatch):
    # A pinned precision=bf16 on a CPU without native bf16 trains at about fp32's speed, 2-2.5x slower than
    # where bf16 is native; the dry run's estimate may come from such records, so the sweep says so first.
    from focalbench import hardware
    from focalbench.sweeps.plan import emulated_bf16_note

    grid = ["precision=bf16", "device=cpu", "seed=0,1", f"results_dir={tmp_path}"]
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    note = emulated_bf16_note(plan_sweep(grid))
    assert note is not None and note.startswith("2 run(s) to train are bf16 on this CPU")
    assert "fp32 products rounded to bf16" in note and note.endswith("understates it")
    assert emulated_bf16_note(plan_sweep(["precision=fp32", "device=cpu", f"results_dir={tmp_path}"])) is None
    assert emulated_bf16_note(plan_sweep(["precision=auto", "device=cpu", f"results_dir={tmp_path}"])) is None
    for cell in plan_sweep(grid).cells[:1]:
        write_done(tmp_path, cell.run_id)
    assert emulated_bf16_note(plan_sweep(grid)).startswith("1 run(s) to train")  # only what is still to train
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert emulated_bf16_note(plan_sweep(grid)) is None


def write_done(results_dir, run_id: str) -> None:
    """A finished record's metrics.json, as a finished run writes it (enough for it to be reused)."""
    from focalbench.identity import RECORD_VERSION

    rdir = results_dir / "runs" / run_id
    rdir.mkdir(parents=True)
    metrics = {"status": "ok", "run_id": run_id, "record_version": RECORD_VERSION}
    (rdir / "metrics.json").write_text(json.dumps(metrics))
