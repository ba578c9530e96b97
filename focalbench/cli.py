"""The ``focalbench`` command line: a thin Typer layer over the library.

Every command takes Hydra overrides verbatim (``gamma=0,1,2,5``, ``data=cifar10_lt``, ``+foo=bar``).
Bad input of any kind prints one line, ``focalbench: error: ...``, and exits with code 2; nothing is written.
Torch is imported only by the commands that train or compute, so ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.exceptions import Abort, TyperException

import focalbench
from focalbench.errors import FocalbenchError

EXIT_USAGE = 2
EXIT_FAILED_RUNS = 1

app = typer.Typer(
    name="focalbench",
    help="Does focal loss, or class-balanced cross-entropy, help on your imbalanced data? "
    "Train small classifiers across grids of gamma, alpha and seeds, and compare them honestly.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"focalbench {focalbench.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version."
    ),
) -> None:
    pass


def _with_config_dirs(overrides: list[str], config_dirs: list[str] | None) -> list[str]:
    from focalbench.config import searchpath_overrides

    return [*searchpath_overrides(config_dirs or []), *(overrides or [])]


# ----------------------------------------------------------------------------------------------------------
# focalbench losses
# ----------------------------------------------------------------------------------------------------------


def _parse_floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise FocalbenchError(f"{what} must be a comma-separated list of numbers, got '{text}'") from None
    if not values:
        raise FocalbenchError(f"{what} is empty")
    return values


@app.command()
def losses(
    gamma: str = typer.Option("0,0.5,1,2,5", "--gamma", help="Comma-separated gamma values."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the loss-against-p_t curves to this PNG."),
) -> None:
    """What gamma does: focal loss, modulating factor (1-p_t)^gamma and reduction against CE.

    Computed by the library's own focal_loss at p_t in {0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.99}.

    Examples:

      focalbench losses

      focalbench losses --gamma 0,2 --plot loss_vs_pt.png
    """
    gammas = _parse_floats(gamma, "--gamma")
    if any(g < 0 for g in gammas):
        raise FocalbenchError("--gamma values must be >= 0 (gamma = 0 is cross-entropy)")
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from focalbench.reports.loss_curves import PT_GRID, loss_table, plot_loss_vs_pt

    rows = loss_table(gammas)
    table = Table(title="Focal loss FL(p_t) = -(1 - p_t)^γ log p_t (α none), by p_t", box=box.SIMPLE_HEAD)
    table.add_column("γ", justify="right", no_wrap=True, min_width=3)
    table.add_column("p_t →", justify="left", no_wrap=True)
    for pt in PT_GRID:
        table.add_column(f"{pt:g}", justify="right", no_wrap=True)
    for g in gammas:
        cells = [r for r in rows if r["gamma"] == g]
        table.add_row(f"{g:g}", "loss", *[f"{r['loss']:.3g}" for r in cells])
        table.add_row("", "(1-p_t)^γ", *[f"{r['factor']:.3g}" for r in cells])
        table.add_row("", "CE / FL", *[f"{r['reduction']:.3g}" for r in cells], end_section=True)
    console = Console()
    console.print(table)
    console.print("CE / FL: how many times smaller the focal loss is than cross-entropy at that p_t.")
    if plot is not None:
        path = plot_loss_vs_pt(gammas, plot)
        console.print(f"wrote {path}")


# ----------------------------------------------------------------------------------------------------------
# focalbench run
# ----------------------------------------------------------------------------------------------------------


@app.command(context_settings=OVERRIDES)
def run(
    ctx: typer.Context,
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
    force: bool = typer.Option(False, "--force", help="Run again even if a complete record exists."),
) -> None:
    """Train and evaluate one run. Arguments are Hydra overrides.

    Examples:

      focalbench run

      focalbench run gamma=0 seed=1

      focalbench run data=cifar10_lt model=cnn loss=focal gamma=2 alpha=inverse_freq epochs=3
    """
    from focalbench.config import compose

    overrides = _with_config_dirs(ctx.args, config_dir)
    cfg = compose(overrides)
    from focalbench.sweeps.plan import check_data_available, check_writable

    check_data_available(cfg)
    check_writable(Path(str(cfg.results_dir)).expanduser().resolve())
    from focalbench.training.runner import execute_run

    outcome = execute_run(cfg, force=force)
    from focalbench.reports.console import print_run_summary

    print_run_summary(outcome)
    if outcome.status not in ("ok", "skipped"):
        raise typer.Exit(EXIT_FAILED_RUNS)


# ----------------------------------------------------------------------------------------------------------
# focalbench sweep
# ----------------------------------------------------------------------------------------------------------


@app.command(context_settings=OVERRIDES)
def sweep(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="The sweep's folder name under results/sweeps/."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Local worker processes (joblib launcher)."),
    launcher: str | None = typer.Option(
        None,
        "--launcher",
        help="inprocess (default for --jobs 1) | basic | joblib (default for --jobs > 1) | submitit_local | "
        "submitit_slurm | slurm (a preset in configs/hydra/launcher).",
    ),
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="The cell to compare against, e.g. "
        '"gamma=0 alpha=none" (default: loss=ce alpha=none, else gamma=0).',
    ),
    fuse: bool | None = typer.Option(
        None,
        "--fuse/--no-fuse",
        help="Train cells that differ only in seed, loss, gamma and alpha as one fused model (default: where "
        "it is faster: every model on CUDA, mlp on a CPU); --no-fuse trains every run alone.",
    ),
    max_fuse: int | None = typer.Option(
        None, "--max-fuse", min=1, help="At most this many runs per fused group (default: from free memory)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the runs and their fused groups; run nothing."
    ),
) -> None:
    """Run a grid of runs (Hydra sweep syntax), resuming what is done, then print the comparison table.

    Comma lists, range() and choice() expand to the cartesian grid; seed=0,1,2 adds repeats.
    Runs are identified by the hash of their resolved config: a run with a complete record is not run again.

    Examples:

      focalbench sweep gamma=0,1,2,5

      focalbench sweep loss=ce,balanced_ce seed=0,1,2 --jobs 2

      focalbench sweep data=cifar10_lt model=cnn imbalance=10,100 gamma=0,2 alpha=none,inverse_freq seed=0,1

      focalbench sweep gamma=0,2 --launcher slurm hydra.launcher.partition=gpu

      focalbench sweep gamma=0,1,2,5 --dry-run      (the runs and their fused groups)

      focalbench sweep gamma=0,1,2,5 --no-fuse      (every run alone, as before fusion)
    """
    from focalbench.sweeps.launch import resolve_launcher, run_sweep, write_sweep_list
    from focalbench.sweeps.plan import plan_sweep

    overrides = _with_config_dirs(ctx.args, config_dir)
    chosen = resolve_launcher(launcher, jobs)
    plan = plan_sweep(overrides, name=name)
    from rich.console import Console

    console = Console()
    if plan.open_ended:
        grid = f"sweeper {plan.sweeper} picks the runs as it goes"
    else:
        total = len(plan.unique_run_ids())
        done = len({c.run_id for c in plan.done()})
        grid = f"{len(plan.cells)} cells, {done} of {total} runs already done"
        if not any(o.split("=", 1)[0].lstrip("+") == "seed" for o in overrides):
            grid += " (seeds 0,1,2 by default; pass seed=0 for one)"
    console.print(
        f"sweep [bold]{plan.name}[/]: {grid}; launcher {chosen}, {jobs} job(s); "
        f"records in {plan.results_dir / 'runs'}"
    )
    if dry_run:
        _print_groups(console, plan, chosen, fuse, max_fuse)
        return
    from focalbench.preload import preload

    preload()  # the report's modules (pandas, scipy, matplotlib) load while the runs train
    outcome = run_sweep(plan, chosen, jobs, fuse=fuse, max_fuse=max_fuse)
    write_sweep_list(plan, outcome)
    from focalbench.reports.report import finish_sweep_report

    finish_sweep_report(plan, outcome, console, baseline=baseline)
    if outcome.failed:
        raise typer.Exit(EXIT_FAILED_RUNS)


def _print_groups(console, plan, launcher: str, fuse: bool | None, max_fuse: int | None) -> None:
    """``sweep --dry-run``: the runs still to do and how they would train (fused groups or alone)."""
    from rich.markup import escape

    from focalbench.sweeps.fuse import describe_groups, plan_groups
    from focalbench.sweeps.launch import pending_cells
    from focalbench.training import record

    pending = [r for r in plan.unique_run_ids() if not record.is_done(record.run_dir(plan.results_dir, r))]
    cells = pending_cells(plan, pending)
    if plan.open_ended or launcher != "inprocess":
        console.print(f"dry run: {len(cells)} run(s) to do; launcher {launcher} runs each alone (no fusion)")
        return
    console.print(f"dry run: {len(cells)} run(s) to do")
    for line in describe_groups(plan_groups(cells, fuse, max_fuse)):
        console.print(escape(line), highlight=False)


# ----------------------------------------------------------------------------------------------------------
# focalbench report
# ----------------------------------------------------------------------------------------------------------


@app.command()
def report(
    paths: list[Path] = typer.Argument(..., help="Sweep folders, run folders, or a results folder."),
    metrics: str | None = typer.Option(
        None,
        "--metrics",
        help="Comma-separated metrics (default: balanced "
        "accuracy, few-shot accuracy, macro-F1, NLL, ECE, wall time).",
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", help='The cell to compare against, e.g. "gamma=0 alpha=none".'
    ),
    fmt: list[str] = typer.Option(
        None, "--format", help="md | csv | latex | json (repeatable; default all)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for the tables and plots (default: the sweep folder, when one sweep is reported).",
    ),
) -> None:
    """Regenerate the comparison tables and plots from run records alone.

    Groups runs by grid cell across seeds (mean ± std, n), with a paired Δ against the baseline cell and its
    95% confidence interval, the best cell per metric, and whether its lead is inside the noise.

    Examples:

      focalbench report results/sweeps/gamma=0,1,2,5

      focalbench report results/sweeps/my_sweep --baseline "gamma=0 alpha=none" --metrics balanced_accuracy,nll

      focalbench report results/runs --out my_report --format md --format latex
    """
    from focalbench.reports.aggregate import collect_run_dirs
    from focalbench.reports.report import build_report, default_output_dir, render_console, write_report

    for path in paths:
        if not path.exists():
            raise FocalbenchError(f"{path}: no such sweep, run or results folder")
    chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    built = build_report(collect_run_dirs(paths), chosen, baseline, title="report")
    target = out if out is not None else default_output_dir(paths)
    from rich.console import Console

    console = Console()
    render_console(built, console)
    written = write_report(built, target, formats=tuple(fmt) if fmt else ("md", "csv", "latex", "json"))
    console.print(f"wrote {', '.join(p.name for p in written)} in {target}")


# ----------------------------------------------------------------------------------------------------------
# focalbench reproduce
# ----------------------------------------------------------------------------------------------------------


@app.command(context_settings=OVERRIDES)
def reproduce(
    ctx: typer.Context,
    suite: str = typer.Argument(..., help="The suite: ci, cifar10_lt, or one of yours (--config-dir)."),
    name: str | None = typer.Option(None, "--name", help="The sweep folder's name (default: the suite's)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Local worker processes (joblib launcher)."),
    launcher: str | None = typer.Option(None, "--launcher", help="As for sweep."),
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
) -> None:
    """Run a named suite (resumably, like any sweep) and check its claims; exit 1 when one fails.

    A suite is a config in configs/experiment/ with a `suite:` key: a grid and claims about its results
    (a metric, two cells or a cell and a number, a direction and a margin). Each verdict line gives the
    measured effect, its 95% CI and pass or fail. Extra overrides apply to every run.

    Examples:

      focalbench reproduce ci

      focalbench reproduce cifar10_lt device=cuda --jobs 1

      focalbench reproduce cifar10_lt epochs=20 --name cifar10_lt_short
    """
    from focalbench.reports.reproduce import reproduce as run_reproduce
    from focalbench.sweeps.launch import resolve_launcher

    chosen = resolve_launcher(launcher, jobs)
    code = run_reproduce(
        suite, _with_config_dirs(ctx.args, config_dir), sweep_name=name, launcher=chosen, jobs=jobs
    )
    if code:
        raise typer.Exit(code)


# ----------------------------------------------------------------------------------------------------------
# focalbench data info
# ----------------------------------------------------------------------------------------------------------


@data_app.command("info", context_settings=OVERRIDES)
def data_info(
    ctx: typer.Context,
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
) -> None:
    """Class counts, achieved imbalance, many/medium/few groups, split sizes and where the files were found.

    Examples:

      focalbench data info

      focalbench data info data=cifar10_lt imbalance=100
    """
    from focalbench.config import compose

    cfg = compose(_with_config_dirs(ctx.args, config_dir))
    from focalbench.sweeps.plan import check_data_available

    check_data_available(cfg)
    from focalbench.reports.console import print_data_info

    print_data_info(cfg)


# ----------------------------------------------------------------------------------------------------------
# Entry point: one line and exit code 2 for anything the user got wrong
# ----------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """The console entry point. With ``argv`` given (tests, Python callers) it returns the exit code;
    without, it reads sys.argv and exits the process with that code."""
    code = _run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        sys.exit(code)
    return code


def _run(args: list[str]) -> int:
    try:
        result = app(args=args, prog_name="focalbench", standalone_mode=False)
    except TyperException as exc:  # Typer's (vendored click's) usage errors: bad option, missing argument
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.stdout.write(exc.format_message() + "\n")
            return 0
        _error(exc.format_message())
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except FocalbenchError as exc:
        _error(str(exc))
        return exc.exit_code
    except Abort:
        _error("aborted")
        return 130
    except KeyboardInterrupt:
        _error("interrupted; rerun the same command to resume where it stopped")
        return 130
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    sys.stderr.write(
        f"focalbench: error: {message.strip().splitlines()[0] if message.strip() else message}\n"
    )


if __name__ == "__main__":
    main()
