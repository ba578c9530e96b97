"""The report: grouping runs into cells, mean ± std, paired Δ with a t CI, best-cell marking, baselines,
the four table formats, the plots, byte-identical regeneration, and runs that failed.

A real tiny sweep (8 runs of a few epochs) checks the whole path from records on disk; hand-written records
with known numbers check the statistics exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from scipy import stats as sps

from focalbench.console import finish_sweep_report
from focalbench.errors import ConfigError, ReportError
from focalbench.reports import aggregate as agg
from focalbench.reports.report import build_report, report_for_sweep, write_report
from focalbench.reports.stats import inside_noise, paired_delta
from focalbench.sweeps.launch import run_sweep, write_sweep_list
from focalbench.sweeps.plan import plan_sweep
from tests.conftest import TINY, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FILES = ("table.md", "table.csv", "table.tex", "summary.json", "report.html")
PLOTS = (
    "delta.png",
    "metric_vs_gamma.png",
    "per_class_recall.png",
    "reliability.png",
    "loss_vs_pt.png",
    "class_mechanism.png",
    "learning_curves.png",
)


# ----------------------------------------------------------------------------------------------------------
# A real sweep
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    plan = plan_sweep(
        ["loss=focal", "gamma=0,2", "alpha=none,inverse_freq", "seed=0,1", *TINY, f"results_dir={results}"],
        name="tiny",
    )
    outcome = run_sweep(plan, "inprocess", 1, show_progress=False)
    write_sweep_list(plan, outcome)
    assert not outcome.failed
    return plan, outcome


def _metrics(plan, cell) -> dict:
    return json.loads((plan.run_dir(cell) / "metrics.json").read_text())


def test_cells_group_seeds_and_are_labelled_by_varying_keys(sweep):
    plan, _ = sweep
    report = report_for_sweep(plan.sweep_dir)
    # loss.name is focal everywhere, so only gamma and alpha label the cells; grid order is kept.
    assert [c.label for c in report.cells] == [
        "gamma=0 alpha=none",
        "gamma=0 alpha=inverse_freq",
        "gamma=2 alpha=none",
        "gamma=2 alpha=inverse_freq",
    ]
    assert all(sorted(c.seeds) == [0, 1] for c in report.cells)
    cell = report.cells[3]
    values = [
        _metrics(plan, c)["test"]["balanced_accuracy"]
        for c in plan.cells
        if c.cfg.gamma == 2 and c.cfg.alpha == "inverse_freq"
    ]
    st = cell.metrics["balanced_accuracy"]
    assert st.n == 2
    assert st.mean == pytest.approx(np.mean(values))
    assert st.std == pytest.approx(np.std(values, ddof=1))
    # No loss=ce cell, so the default baseline is gamma=0 alpha=none.
    assert report.baseline_selector == "gamma=0 alpha=none"
    assert cell.baseline == report.cells[0].label


def test_writes_all_formats_and_plots_and_regenerates_byte_identically(sweep, tmp_path):
    plan, _ = sweep
    first = write_report(report_for_sweep(plan.sweep_dir), tmp_path / "a")
    write_report(report_for_sweep(plan.sweep_dir), tmp_path / "b")
    assert sorted(p.name for p in first) == sorted((*FILES, *PLOTS))
    for name in (*FILES, *PLOTS):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in PLOTS:
        assert (tmp_path / "a" / name).read_bytes()[:8] == PNG_MAGIC
    md = (tmp_path / "a" / "table.md").read_text()
    for text in (
        "final-epoch",
        "balanced test set",
        "mean ± sample std",
        "95%",
        "many-shot: > 100",
        'reduction "mean" divides',
        "Runs not in the table",
        "None: every run finished.",
    ):
        assert text in md, text
    tex = (tmp_path / "a" / "table.tex").read_text()
    assert "\\begin{tabular}" in tex and "$\\pm$" in tex and "\\textbf{" in tex
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["plots_skipped"] == {}
    assert [c["label"] for c in summary["cells"]][0] == "gamma=0 alpha=none"
    csv = (tmp_path / "a" / "table.csv").read_text().splitlines()
    assert csv[0].startswith("cell,gamma,alpha,n,seeds,baseline,balanced_accuracy_mean")
    assert len(csv) == 5


def test_finish_sweep_report_prints_and_writes_into_the_sweep_folder(sweep):
    plan, outcome = sweep
    console = Console(record=True, width=200)
    report = finish_sweep_report(plan, outcome, console)
    text = console.export_text()
    assert "gamma=2 alpha=inverse_freq" in text and "8 of 8 runs ok" in text
    assert report is not None
    for name in FILES:
        assert (plan.sweep_dir / name).is_file()


def test_baseline_selector_errors_and_number_normalisation(sweep):
    plan, _ = sweep
    dirs = agg.sweep_run_dirs(plan.sweep_dir)
    with pytest.raises(ConfigError, match="matches no cell; the cells are: 'gamma=0 alpha=none'"):
        build_report(dirs, baseline="gamma=5 alpha=none")
    with pytest.raises(ConfigError, match="unknown key 'gama'"):
        build_report(dirs, baseline="gama=0")
    with pytest.raises(ConfigError, match="matches 2 cells"):
        build_report(dirs, baseline="gamma=0")
    with pytest.raises(ConfigError, match="not key=value"):
        build_report(dirs, baseline="gamma")
    with pytest.raises(ConfigError, match="unknown metric 'accuracyy'"):
        build_report(dirs, metrics=["accuracyy"])
    report = build_report(dirs, baseline="gamma=2.0 alpha=none loss=focal")
    assert report.cells[0].baseline == "gamma=2 alpha=none"


def test_the_mechanism_plot_reads_each_runs_class_statistics(sweep):
    from focalbench.reports.plots import class_statistics, mechanism_cells

    plan, _ = sweep
    report = report_for_sweep(plan.sweep_dir)
    cells = mechanism_cells(report)
    assert [c.full_config["alpha"] for c in cells] == ["none", "none"]  # CE (gamma = 0) and gamma = 2
    p_t, share = class_statistics(cells[0])
    assert share.sum() == pytest.approx(1.0, abs=1e-4) and ((p_t > 0) & (p_t < 1)).all()
    counts = _metrics(plan, plan.cells[0])["data"]["train_counts"]
    assert p_t[counts.index(max(counts))] > p_t[counts.index(min(counts))]  # the rarest class is harder


def test_plot_that_cannot_apply_is_skipped_with_a_reason(sweep, tmp_path):
    plan, _ = sweep
    dirs = [plan.run_dir(c) for c in plan.cells if c.cfg.gamma == 2]
    report = build_report(dirs, metrics=["accuracy", "best_val.balanced_accuracy", "ece_ts"])
    written = write_report(report, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["plots_skipped"] == {
        "metric_vs_gamma": "γ does not vary across the cells",
        # gamma = 2 without alpha is the only cell without class weights: nothing to compare it with
        "class_mechanism": "fewer than two cells of CE or focal loss without class weights recorded "
        "train_classes.csv",
    }
    assert not (tmp_path / "metric_vs_gamma.png").exists()
    assert (tmp_path / "reliability.png") in written
    assert "bal. acc % (best-val ep.)" in (tmp_path / "table.md").read_text()


# ----------------------------------------------------------------------------------------------------------
# Hand-written records with known numbers
# ----------------------------------------------------------------------------------------------------------


def write_record(
    runs: Path,
    rid: str,
    seed: int,
    status: str = "ok",
    gamma: float = 0.0,
    alpha: str = "none",
    loss: str = "ce",
    imbalance: float = 100.0,
    **test: float,
) -> Path:
    """A minimal run folder: config.yaml and metrics.json (or error.json for status='error')."""
    rdir = runs / rid
    rdir.mkdir(parents=True)
    cfg = {
        "data": {"name": "synthetic", "imbalance": imbalance, "root": None},
        "loss": {"name": loss},
        "gamma": gamma,
        "alpha": alpha,
        "seed": seed,
        "imbalance": imbalance,
        "eval": {"many_threshold": 100, "few_threshold": 20},
        "results_dir": str(runs.parent),
        "epochs": 3,
    }
    (rdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    if status == "error":
        (rdir / "error.json").write_text(json.dumps({"status": "error", "error": "RuntimeError: boom"}))
        return rdir
    metrics = {
        "status": status,
        "run_id": rid,
        "seed": seed,
        "loss": {"alpha": alpha, "alpha_resolved": None, "mean_convention": "sum over alpha"},
        "data": {
            "dataset": "synthetic",
            "imbalance": 100.0,
            "train_counts": [300, 50, 5],
            "official_copy": False,
        },
    }
    if status == "diverged":
        metrics["divergence"] = {"epoch": 2, "step": 7, "last_finite_loss": 3.0}
    else:
        metrics["test"] = {"per_class_recall": [90.0, 50.0, 10.0], **test}
        metrics["timing"] = {"wall_time_s": 1.0}
    (rdir / "metrics.json").write_text(json.dumps(metrics))
    return rdir


A = {0: 70.0, 1: 72.5, 2: 71.0}
B = {0: 60.0, 1: 61.0, 2: 63.5}


@pytest.fixture
def records(tmp_path):
    runs = tmp_path / "runs"
    dirs = []
    for s, v in B.items():
        dirs.append(write_record(runs, f"b{s}", s, balanced_accuracy=v))
    for s, v in A.items():
        dirs.append(write_record(runs, f"a{s}", s, alpha="inverse_freq", balanced_accuracy=v))
    # A third cell with seeds 0 and 1 only, and one seed of it diverged, one failed, one missing.
    dirs.append(write_record(runs, "c0", 0, gamma=2.0, loss="focal", balanced_accuracy=61.0))
    dirs.append(write_record(runs, "c1", 1, gamma=2.0, loss="focal", balanced_accuracy=60.0))
    dirs.append(write_record(runs, "c2", 2, status="diverged", gamma=2.0, loss="focal"))
    dirs.append(write_record(runs, "c3", 3, status="error", gamma=2.0, loss="focal"))
    dirs.append(runs / "gone")
    return dirs


def test_paired_delta_matches_scipy_ttest_rel():
    d = paired_delta(A, B)
    seeds = sorted(A)
    a, b = [A[s] for s in seeds], [B[s] for s in seeds]
    ci = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert d.n == 3 and d.seeds == (0, 1, 2) and not d.partial
    assert d.delta == pytest.approx(np.mean(np.subtract(a, b)))
    assert d.ci95 == (pytest.approx(ci.low), pytest.approx(ci.high))
    # by hand: diffs 10, 11.5, 7.5 -> mean 29/3, s = sqrt(((1/3)^2 + (11/6)^2 + (13/6)^2) / 2)
    s = np.sqrt(((10 - 29 / 3) ** 2 + (11.5 - 29 / 3) ** 2 + (7.5 - 29 / 3) ** 2) / 2)
    assert d.ci95[1] - d.delta == pytest.approx(sps.t.ppf(0.975, 2) * s / np.sqrt(3))


def test_report_numbers_partial_pairing_and_not_ok_runs(records, tmp_path):
    report = build_report(records, metrics=["balanced_accuracy"])
    labels = [c.label for c in report.cells]
    assert labels == [
        "loss=ce alpha=none",
        "loss=ce alpha=inverse_freq",
        "loss=focal gamma=2 alpha=none",
    ]
    assert report.baseline_selector == "loss=ce alpha=none"
    a, c = report.cells[1], report.cells[2]
    st = a.metrics["balanced_accuracy"]
    assert st.mean == pytest.approx(np.mean(list(A.values())))
    assert st.std == pytest.approx(np.std(list(A.values()), ddof=1))
    assert st.delta_vs_baseline.delta == pytest.approx(29 / 3)
    partial = c.metrics["balanced_accuracy"].delta_vs_baseline
    assert partial.n == 2 and partial.seeds == (0, 1) and partial.seeds_available == (0, 1, 2)
    assert partial.delta == pytest.approx(((61 - 60) + (60 - 61)) / 2)
    write_report(report, tmp_path, plots=False)
    md = (tmp_path / "table.md").read_text()
    assert "paired on seeds 0,1 of 0,1,2" in md
    assert "UNOFFICIAL COPY" in md
    summary = json.loads((tmp_path / "summary.json").read_text())
    not_ok = {r["run"]: r["status"] for r in summary["not_ok_runs"]}
    assert not_ok == {"c2": "diverged", "c3": "error", "gone": "missing"}
    assert "diverged at epoch 2" in md and "RuntimeError: boom" in md
    assert summary["cells"][1]["metrics"]["balanced_accuracy"]["delta_vs_baseline"]["n"] == 3


def test_best_cell_and_inside_noise_rule(records, tmp_path):
    report = build_report(records, metrics=["balanced_accuracy", "wall_time_s"])
    (note,) = [b for b in report.best if b.metric == "balanced_accuracy"]
    assert note.best.endswith("alpha=inverse_freq")
    assert note.inside_noise is False  # +9.7 with CI [~+4.7, ~+14.6] against the runner-up
    assert report.cells[1].metrics["balanced_accuracy"].best
    # The runner-up (CE, 61.5) leads focal (60.5 on seeds 0,1) by a paired Δ whose CI includes 0.
    ce, focal = report.cells[0], report.cells[2]
    inside, evidence = inside_noise(
        agg.seed_values(ce.runs, "balanced_accuracy"),
        agg.seed_values(focal.runs, "balanced_accuracy"),
        None,
        None,
    )
    assert inside is True and "n=2" in evidence
    # Unpaired (no shared seed): |Δ| against the larger std; one seed each: cannot tell.
    assert inside_noise({0: 10.0, 1: 12.0}, {5: 11.0}, np.std([10, 12], ddof=1), None)[0] is True
    assert inside_noise({0: 10.0, 1: 12.0}, {5: 20.0}, np.std([10, 12], ddof=1), None)[0] is False
    assert inside_noise({0: 10.0}, {5: 20.0}, None, None)[0] is None
    # Time is not ranked: fused members record shares of their group's time, so a "best wall time" would
    # look like a finding and mean nothing.
    assert not [b for b in report.best if b.metric == "wall_time_s"]
    write_report(report, tmp_path, formats=("md",), plots=False)
    md = (tmp_path / "table.md").read_text()
    assert "**71.17 ± 1.26**" in md and "outside the noise" in md


def test_single_seed_cell_shows_a_dash_for_std(tmp_path):
    runs = tmp_path / "runs"
    dirs = [
        write_record(runs, "x", 0, balanced_accuracy=50.0),
        write_record(runs, "y", 0, alpha="inverse_freq", balanced_accuracy=55.0),
    ]
    report = build_report(dirs, metrics=["balanced_accuracy"])
    write_report(report, tmp_path, formats=("md",), plots=False)
    md = (tmp_path / "table.md").read_text()
    assert "50.00 ± —" in md and "+5.00 (n=1, no CI)" in md


def test_collect_run_dirs_accepts_sweeps_runs_and_results_folders(records, tmp_path):
    runs = tmp_path / "runs"
    from_results = agg.collect_run_dirs([tmp_path])
    assert {p.name for p in from_results} == {"a0", "a1", "a2", "b0", "b1", "b2", "c0", "c1", "c2", "c3"}
    assert agg.collect_run_dirs([runs / "a0", runs / "a0"]) == [(runs / "a0").resolve()]
    sweep = tmp_path / "sweeps" / "s"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"runs": [{"run_id": "b1"}, {"run_id": "gone"}]}))
    assert [p.name for p in agg.collect_run_dirs([sweep])] == ["b1", "gone"]
    with pytest.raises(ConfigError, match="not a sweep folder"):
        agg.collect_run_dirs([tmp_path / "nothing"])


def test_no_ok_run_is_an_error(tmp_path):
    rdir = write_record(tmp_path / "runs", "e", 0, status="error")
    with pytest.raises(ConfigError, match="no completed run to report: e \\(error\\)"):
        build_report([rdir])


def test_baseline_per_setting_and_default_fallback(tmp_path):
    runs = tmp_path / "runs"
    dirs = []
    for rho in (10.0, 100.0):
        for alpha, value in (("none", 60.0), ("inverse_freq", 65.0)):
            for seed in (0, 1):
                rid = f"{alpha}-{rho:g}-{seed}"
                dirs.append(
                    write_record(runs, rid, seed, alpha=alpha, imbalance=rho, balanced_accuracy=value + seed)
                )
    report = build_report(dirs, metrics=["balanced_accuracy"])
    # data.imbalance follows imbalance, so it is shown once.
    assert [c.label for c in report.cells][0] == "alpha=none imbalance=10"
    assert report.settings == ["imbalance=10", "imbalance=100"]
    by_label = {c.label: c for c in report.cells}
    for cell in report.cells:
        base = by_label[cell.baseline]
        assert base.config["imbalance"] == cell.config["imbalance"] and base.config["alpha"] == "none"
    assert (
        all(by_label[b.best].config["alpha"] == "inverse_freq" for b in report.best) and len(report.best) == 2
    )
    # A baseline naming the setting picks one cell: every cell is compared with it, in one group.
    one = build_report(dirs, metrics=["balanced_accuracy"], baseline="alpha=none imbalance=100")
    assert len(one.settings) == 1 and {c.baseline for c in one.cells} == {"alpha=none imbalance=100"}
    # The default selector is ambiguous when two CE cells differ in a loss key: it falls back to the first cell.
    extra = [write_record(runs, "beta", 0, imbalance=10.0, balanced_accuracy=1.0)]
    cfg = yaml.safe_load((extra[0] / "config.yaml").read_text())
    cfg["loss"]["beta"] = 0.5
    (extra[0] / "config.yaml").write_text(yaml.safe_dump(cfg))
    mixed = build_report([*dirs[:4], *extra], metrics=["balanced_accuracy"])
    assert mixed.baseline_selector == mixed.cells[0].label


def test_group_by_decides_what_is_compared(tmp_path):
    """By default losses are compared within each setting of the other keys (here: each lr). Comparing lr
    within each loss cell (e.g. bf16 against fp32) takes ``--group-by alpha``: the groups are explicit, no
    longer inferred from whether the baseline names a loss key."""
    plan = plan_sweep(
        [
            "loss=ce",
            "alpha=none,inverse_freq",
            "optim.lr=0.1,0.05",
            "seed=0,1",
            *TINY,
            f"results_dir={tmp_path}",
        ],
        name="lr",
    )
    write_sweep_list(plan, run_sweep(plan, "inprocess", 1, show_progress=False))
    by_loss = report_for_sweep(plan.sweep_dir, baseline="alpha=none")
    cells = {c.label: c for c in by_loss.cells}
    assert set(cells) == {f"alpha={a} lr={lr}" for a in ("none", "inverse_freq") for lr in ("0.1", "0.05")}
    assert cells["alpha=inverse_freq lr=0.05"].baseline == "alpha=none lr=0.05"
    assert by_loss.settings == ["lr=0.1", "lr=0.05"]
    with pytest.raises(ConfigError, match="matches 2 cells .*compare within groups with --group-by"):
        report_for_sweep(plan.sweep_dir, baseline="optim.lr=0.1")
    by_lr = report_for_sweep(plan.sweep_dir, baseline="optim.lr=0.1", group_by=["alpha"])
    cells = {c.label: c for c in by_lr.cells}
    assert cells["alpha=inverse_freq lr=0.05"].baseline == "alpha=inverse_freq lr=0.1"
    assert cells["alpha=none lr=0.05"].baseline == "alpha=none lr=0.1"
    assert by_lr.settings == ["alpha=none", "alpha=inverse_freq"]
    # --group-by none: one setting, one baseline for all.
    one = report_for_sweep(plan.sweep_dir, baseline="optim.lr=0.1 alpha=none", group_by=[])
    assert {c.baseline for c in one.cells} == {"alpha=none lr=0.1"} and one.settings == ["all cells"]
    with pytest.raises(ConfigError, match="--group-by: unknown key 'modle'"):
        report_for_sweep(plan.sweep_dir, group_by=["modle"])


# ----------------------------------------------------------------------------------------------------------
# Regeneration, undefined metrics, mixed environments, lazy matplotlib
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_report_of_a_sweep_folder_regenerates_what_the_sweep_wrote(sweep, tmp_path):
    """`focalbench report <sweep folder>` gives the sweep's own files byte for byte (it used to retitle
    table.md "report" instead of "sweep NAME")."""
    plan, outcome = sweep
    finish_sweep_report(plan, outcome, Console(record=True, width=200))
    out = run_cli("report", str(plan.sweep_dir), "--out", str(tmp_path / "again"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    for name in (*FILES, *PLOTS):
        if name == "report.html":  # its links to the run records are relative to where the page is
            assert (tmp_path / "again" / name).is_file()
            continue
        assert (tmp_path / "again" / name).read_bytes() == (plan.sweep_dir / name).read_bytes(), name
    assert (plan.sweep_dir / "table.md").read_text().startswith(f"# Report: sweep {plan.name}\n")


def test_metrics_no_run_defines_are_left_out_of_the_tables_and_named(tmp_path):
    """Few-shot accuracy is None in every record (no class has < 20 training images): no column of dashes
    in any table, one line naming it instead."""
    runs = tmp_path / "runs"
    dirs = [write_record(runs, f"b{s}", s, balanced_accuracy=v, few_shot_acc=None) for s, v in B.items()]
    dirs += [
        write_record(runs, f"a{s}", s, alpha="inverse_freq", balanced_accuracy=v, few_shot_acc=None)
        for s, v in A.items()
    ]
    report = build_report(dirs, metrics=["balanced_accuracy", "few_shot_acc"])
    assert report.undefined_metrics == ["few_shot_acc"] and report.shown_metrics == ["balanced_accuracy"]
    write_report(report, tmp_path, plots=False)
    md, tex, csv = ((tmp_path / f).read_text() for f in ("table.md", "table.tex", "table.csv"))
    line = "Not defined for these data (no run has a value), so left out: few_shot_acc."
    assert "few-shot %" not in md and md.count(line) == 1
    assert "few-shot \\%" not in tex and f"% {line}" in tex
    assert "few_shot" not in csv.splitlines()[0]
    summary = json.loads((tmp_path / "summary.json").read_text())  # the model keeps it, with n = 0
    assert summary["cells"][0]["metrics"]["few_shot_acc"]["n"] == 0
    console = Console(record=True, width=200)
    from focalbench.reports.render import print_report

    print_report(report, console)
    text = console.export_text()
    assert "few-shot %" not in text and line in text


def test_a_cell_never_mixes_devices_precisions_or_versions(sweep, tmp_path):
    """Two seeds of one cell. One record edited to say it ran on CUDA in bf16 (its config says device=auto and
    precision=auto): it is the run device=cuda precision=bf16, as its run id resolves it, so it is another
    cell, named so. One edited to say another focalbench version made it: the report refuses to pool them,
    in one line naming the runs and the way out, unless env.focalbench is a --group-by key."""
    import shutil

    plan, _ = sweep
    cells = [c for c in plan.cells if c.cfg.gamma == 0 and c.cfg.alpha == "none"]
    assert {(c.cfg.device, c.cfg.precision) for c in cells} == {("auto", "auto")}
    runs = tmp_path / "results" / "runs"
    for cell in cells:
        shutil.copytree(plan.run_dir(cell), runs / cell.run_id)
    edited = runs / cells[1].run_id / "metrics.json"
    metrics = json.loads(edited.read_text())
    edited.write_text(
        json.dumps(
            metrics | {"environment": metrics["environment"] | {"device": "cuda:0", "precision": "bf16"}}
        )
    )
    split = build_report(sorted(runs.iterdir()))
    assert sorted(c.label for c in split.cells) == ["device=cpu precision=fp32", "device=cuda precision=bf16"]
    assert all(len(c.seeds) == 1 for c in split.cells)

    metrics["environment"]["focalbench"] = "0.0.1"
    edited.write_text(json.dumps(metrics))
    with pytest.raises(ReportError, match="mixes runs made with different focalbench") as err:
        build_report(sorted(runs.iterdir()))
    assert cells[0].run_id in str(err.value) and cells[1].run_id in str(err.value)
    assert "add env.focalbench to --group-by" in str(err.value)
    out = run_cli("report", str(runs), "--out", str(tmp_path / "out"), cwd=tmp_path)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "report them separately" in lines[0], out.stderr
    versions = build_report(sorted(runs.iterdir()), group_by=["env.focalbench"])
    assert len(versions.cells) == 2 and len(versions.settings) == 2


@pytest.mark.slow
def test_reports_import_matplotlib_only_to_draw(sweep, tmp_path):
    plan, _ = sweep
    code = (
        "import sys\nfrom focalbench.reports.report import report_for_sweep, write_report\n"
        f"write_report(report_for_sweep({str(plan.sweep_dir)!r}), {str(tmp_path)!r}, plots=False)\n"
        "print('matplotlib' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-1] == "False", out.stderr


def write_table_record(
    runs: Path, rid: str, seed: int, gamma: float, path: str, sha: str, value: float
) -> Path:
    """A finished run on your own table, its data file given as ``path`` (as typed) with content ``sha``."""
    rdir = runs / rid
    rdir.mkdir(parents=True)
    cfg = {
        "data": {"name": "table", "path": path, "target": "is_fraud", "imbalance": None},
        "loss": {"name": "focal"},
        "gamma": gamma,
        "alpha": "none",
        "seed": seed,
        "epochs": 3,
    }
    (rdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    provenance = {"path": f"/abs/{Path(path).name}", "bytes": 10, "sha256": sha}
    metrics = {
        "status": "ok",
        "run_id": rid,
        "seed": seed,
        "loss": {"alpha": "none", "alpha_resolved": None},
        "data": {"dataset": "table", "provenance": provenance, "train_counts": [90, 10]},
        "test": {"balanced_accuracy": value, "per_class_recall": [90.0, 50.0]},
        "timing": {"wall_time_s": 1.0},
    }
    (rdir / "metrics.json").write_text(json.dumps(metrics))
    return rdir


def test_one_data_file_typed_as_two_paths_is_one_cell(tmp_path):
    """Runs are reused by content; a relative path in one sweep and an absolute one in the next used to split
    each cell in two (n = 3 and n = 1)."""
    runs, same, other = tmp_path / "runs", "a" * 64, "b" * 64
    dirs = [
        write_table_record(runs, f"g{g}s{s}", s, g, path, same, 70.0 + s + 5 * g)
        for g in (0, 2)
        for s, path in (
            (0, "data/fraud.csv"),
            (1, "data/fraud.csv"),
            (2, "data/fraud.csv"),
            (3, "/home/me/data/fraud.csv"),
        )
    ]
    report = build_report(dirs, metrics=["balanced_accuracy"])
    assert [c.label for c in report.cells] == ["gamma=0", "gamma=2"]
    assert [c.metrics["balanced_accuracy"].n for c in report.cells] == [4, 4]
    # Another file is another cell, shown by its path; one path whose content changed shows its sha256 too.
    dirs.append(write_table_record(runs, "other", 0, 0, "data/other.csv", other, 60.0))
    dirs.append(write_table_record(runs, "edited", 0, 0, "data/fraud.csv", "c" * 64, 65.0))
    labels = [c.label for c in build_report(dirs, metrics=["balanced_accuracy"]).cells]
    assert labels == [
        "gamma=0 data.path=data/fraud.csv (sha256 aaaaaaaaaaaa)",
        "gamma=2 data.path=data/fraud.csv (sha256 aaaaaaaaaaaa)",
        "gamma=0 data.path=data/other.csv",
        "gamma=0 data.path=data/fraud.csv (sha256 cccccccccccc)",
    ]


def test_auto_device_and_precision_read_as_what_the_run_ran_on():
    from focalbench.reports.aggregate import resolve_auto

    config = {"device": "auto", "precision": "auto", "gamma": 2.0, "model.name": "cnn"}
    ran = {"environment": {"device": "cuda:1", "precision": "bf16"}}
    assert resolve_auto(config, ran) == {
        "device": "cuda",
        "precision": "bf16",
        "gamma": 2.0,
        "model.name": "cnn",
    }
    pinned = config | {"precision": "fp32"}
    assert resolve_auto(pinned, ran)["precision"] == "fp32"  # a value given is what the run was asked for
    assert resolve_auto(config, {}) == config  # a record that does not say where it ran: left as it is
