"""The command line as a user types it: help, bad input (one line, exit 2, nothing written), run, data info."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.conftest import SHARED_DATA, TINY, needs_cifar10, run_cli


def test_help_lists_the_commands(tmp_path):
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("run", "sweep", "report", "reproduce", "data", "losses"):
        assert command in out.stdout
    version = run_cli("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("focalbench ")


@pytest.mark.parametrize(
    "command", ["run", "sweep", "report", "reproduce", "losses", "data info", "examples"]
)
def test_every_command_has_help_with_examples(tmp_path, command):
    out = run_cli(*command.split(), "--help", cwd=tmp_path)
    assert out.returncode == 0 and "Examples" in out.stdout


def test_run_help_lists_the_config_groups_and_their_options(tmp_path):
    out = run_cli("run", "--help", cwd=tmp_path)
    assert out.returncode == 0 and "Config groups" in out.stdout
    listed = out.stdout.split("Config groups", 1)[1].replace(",", " ").split()
    for group, options in (
        ("data", "table features image_folder"),
        ("loss", "ce focal"),
        ("model", "mlp cnn"),
    ):
        assert group in listed and set(options.split()) <= set(listed), (group, listed)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["sweep", "--help"],
        ["sweep", "gama=0,1"],
        ["sweep", "gamma=-1,0"],
        ["run", "data=cifar11"],
        ["run", "--gamma", "2"],
    ],
)
def test_help_and_usage_errors_do_not_import_torch(argv):
    code = (
        "import sys\nfrom focalbench.cli import main\n"
        f"rc = main({argv!r})\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    rc, imported = out.stdout.split()[-2:]
    assert imported == "False", out.stdout
    assert rc == ("0" if "--help" in argv else "2")


BAD_INPUT = [
    (["sweep", "gama=0,1"], "unknown config key 'gama'; did you mean 'gamma'"),
    (["sweep", "data=cifar11"], "unknown data option 'cifar11'"),
    (["run", "epochs=abc"], "wrong type for 'epochs'"),
    (["sweep", "gamma=-1,0,1"], "gamma must be >= 0"),
    (["sweep", "data=synthetic_binary", "alpha=1.5"], r"in \[0, 1\]"),
    (["sweep", "alpha=[1,2]"], "alpha has 2 weights but the task has 10 classes"),
    (["sweep", "alpha=0.25"], "binary tasks only"),
    (["sweep", "imbalance=0.5,10"], "imbalance ratio"),
    (["run", "data.n_classes=1"], "at least 2 classes"),
    (["sweep", "seed=range(0,0)"], "the grid is empty"),
    (["sweep", "gamma=0,1", "--launcher", "nope"], "unknown launcher 'nope'"),
    (["sweep", "gamma=0", "results_dir=/dev/null/results"], "cannot be created"),
    (["sweep", "data=cifar10_lt", "data.root=/nonexistent/cifar"], "CIFAR-10 not found.*/nonexistent/cifar"),
    (["run", "gamma=[1"], "cannot parse the overrides"),
    (["run", "gamma=0,1"], "'gamma=0,1' is a sweep"),
    (["report", "/nonexistent"], "no such sweep, run or results folder"),
    (
        ["reproduce", "nosuch"],
        "unknown suite 'nosuch'; choose one of: article, article_precision, ci, cifar10_lt",
    ),
    (["sweep", "--jobs", "0"], "--jobs"),
    (["losses", "--gamma", "-1"], "gamma"),
    # Every key is checked at plan time, before any run starts (each of these used to fail inside every run).
    (["sweep", "model.hidden=[0]", "gamma=0,2"], "model.hidden must be"),
    (["sweep", "model.dropout=1.5", "gamma=0,2"], "model.dropout must be"),
    (["sweep", "data=cifar10_lt", "model=cnn", "model.widths=[8,16]"], "model.widths must be 3"),
    (["sweep", "eval.batch_size=0"], "eval.batch_size=0 is out of range"),
    (["sweep", "data.separation=0"], "data.separation must be > 0"),
    (["sweep", "imbalance=2000", "gamma=0,2"], "leaves the smallest class empty"),
    (["sweep", "model=cnn"], "model=cnn takes image input, but data=synthetic is vector data"),
    (["sweep", "loss=ldam", "loss.scale=0"], "loss.scale must be"),
    # Hints that point at the fix.
    (["run", "lr=0.01"], r"unknown config key 'lr'; did you mean 'optim\.lr'\?"),
    (
        ["run", "data.path=x.csv", "data.target=y"],
        r"unknown config key 'data\.(path|target)' for data=synthetic \(the default\): it is a key of "
        r"data=table.*; add data=table$",
    ),
    (["run", "model.widths=[8,8,8]"], r"it is a key of model=cnn.*; add model=cnn$"),
    (
        ["run", "data=table", "alpha=inverse_frequency"],
        r"\(did you mean alpha=inverse_freq\?\).*a list of one weight per class$",
    ),
    (
        ["report", "/nonexistent", "--format", "htm"],
        r"unknown report format 'htm'; choose from: .*html, parquet$",
    ),
    # An option the command does not have: the config key it names, or the closest option (not Hydra's lexer).
    (
        ["run", "--gamma", "2"],
        r"unknown option '--gamma': config values are key=value overrides; did you mean gamma=2\?",
    ),
    (["sweep", "gamma=0,1", "--job", "1"], r"no such option: --job; did you mean --jobs\?"),
    (["run", "--lr=0.01"], r"did you mean optim\.lr=0\.01\?"),
    (["data", "info", "--xyzzy"], r"no such option: --xyzzy; its options are --config-dir, --help"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(tmp_path, argv, message):
    out = run_cli(*argv, cwd=tmp_path, env={"FOCALBENCH_DATA": str(tmp_path / "no-data")})
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("focalbench: error: "), out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    import re

    assert re.search(message, lines[0]), lines[0]
    assert list(tmp_path.iterdir()) == [], "bad input must write nothing"


@pytest.mark.slow
def test_run_prints_a_metrics_table(tmp_path):
    out = run_cli("run", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "balanced accuracy" in out.stdout and "best-val epoch" in out.stdout
    assert len(list((tmp_path / "results" / "runs").iterdir())) == 1
    again = run_cli("run", *TINY, cwd=tmp_path)
    assert "already done" in again.stdout


@pytest.mark.slow
def test_results_dir_from_environment(tmp_path):
    out = run_cli("run", *TINY, cwd=tmp_path, env={"FOCALBENCH_RESULTS": str(tmp_path / "elsewhere")})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "elsewhere" / "runs").is_dir() and not (tmp_path / "results").exists()


@pytest.mark.slow
def test_data_info_synthetic(tmp_path):
    out = run_cli("data", "info", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "1000" in out.stdout and "few" in out.stdout


@pytest.mark.slow
@needs_cifar10
def test_data_info_cifar10_lt(tmp_path):
    out = run_cli(
        "data",
        "info",
        "data=cifar10_lt",
        "imbalance=100",
        cwd=tmp_path,
        env={"FOCALBENCH_DATA": str(SHARED_DATA)},
    )
    assert out.returncode == 0, out.stderr
    for count in ("5000", "2997", "50"):
        assert count in out.stdout
    assert str(SHARED_DATA) in out.stdout


@pytest.mark.slow
def test_losses_table_and_plot(tmp_path):
    out = run_cli("losses", "--gamma", "0,2", "--plot", "fig.png", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "100" in out.stdout and "6.25" in out.stdout  # CE/FL at p_t=0.9 and 0.6 for gamma=2
    assert (tmp_path / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_user_config_folder_adds_an_experiment(tmp_path):
    mine = tmp_path / "my_configs" / "experiment"
    mine.mkdir(parents=True)
    (mine / "tiny_tail.yaml").write_text(
        "# @package _global_\ndata:\n  n_max: 150\n  test_per_class: 40\nepochs: 2\n"
    )
    out = run_cli(
        "sweep", "--config-dir", "my_configs", "experiment=tiny_tail", "gamma=0,2", "seed=0", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    configs = list((tmp_path / "results" / "runs").glob("*/config.yaml"))
    assert len(configs) == 2 and all("n_max: 150" in c.read_text() for c in configs)
    # The same folder through Hydra's own search-path override.
    out = run_cli(
        "run",
        f"hydra.searchpath=[file://{tmp_path / 'my_configs'}]",
        "experiment=tiny_tail",
        "gamma=0",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "already done" in out.stdout  # the same run as the sweep's gamma=0 cell

    missing = run_cli("sweep", "--config-dir", "nope", "gamma=0", cwd=tmp_path)
    assert missing.returncode == 2 and "--config-dir nope: no such folder" in missing.stderr


def test_an_unknown_report_format_fails_before_anything_is_printed(tmp_path):
    from tests.conftest import REPO

    out = run_cli(
        "report",
        str(REPO / "results" / "ci" / "sweeps" / "ci"),
        "--out",
        "o",
        "--format",
        "nope",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and out.stdout == "", out.stdout
    assert out.stderr.strip() == (
        "focalbench: error: unknown report format 'nope'; choose from: md, csv, latex, json, html, parquet"
    )
    assert list(tmp_path.iterdir()) == []


def test_piped_output_has_no_ansi_codes_and_no_cut_cells(tmp_path):
    """`focalbench losses | cat` used to hide most of its second table behind '…' (rich assumed 80 columns)."""
    from tests.conftest import REPO

    narrow = {"COLUMNS": "80"}  # what a shell without COLUMNS gives a pipe
    out = run_cli("losses", "--gamma", "0,1,2", cwd=tmp_path, env=narrow)  # stdout is a pipe here
    assert out.returncode == 0, out.stderr
    assert "…" not in out.stdout and "\x1b[" not in out.stdout
    for label in ("FLSD-53", "logit-adjusted τ=1, most frequent class (n=5000)", "1.01e-06", "0.000101"):
        assert label in out.stdout, label
    # NO_COLOR switches every style off, even where FORCE_COLOR makes rich treat the pipe as a terminal.
    forced = run_cli("losses", "--gamma", "0", cwd=tmp_path, env={**narrow, "FORCE_COLOR": "1"})
    assert "\x1b[" in forced.stdout  # the check below can see codes
    plain = run_cli(
        "losses", "--gamma", "0", cwd=tmp_path, env={**narrow, "FORCE_COLOR": "1", "NO_COLOR": "1"}
    )
    assert plain.returncode == 0 and "\x1b[" not in plain.stdout and "…" not in plain.stdout
    # A report's tables, piped: every cell name whole.
    report = run_cli(
        "report",
        str(REPO / "results" / "ci" / "sweeps" / "ci"),
        "--out",
        "o",
        "--format",
        "md",
        cwd=tmp_path,
        env=narrow,
    )
    assert report.returncode == 0, report.stderr
    assert "…" not in report.stdout and "\x1b[" not in report.stdout
    assert "loss=logit_adjusted alpha=none" in report.stdout and re.search(
        r"loss=balanced_ce\s", report.stdout
    )
