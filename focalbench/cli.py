"""The ``focalbench`` command line: a thin Typer layer over the library.

Every command takes Hydra overrides verbatim (``gamma=0,1,2,5``, ``data=cifar10_lt``, ``+foo=bar``).
Bad input of any kind prints one line, ``focalbench: error: ...``, and exits with code 2; nothing is written.
Torch is imported only by the commands that train or compute, so ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from typer.core import TyperCommand
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


# Options of the answer, shared by `sweep` and `report` (focalbench.reports.answer).
MARGIN_OPTION = typer.Option(
    None,
    "--margin",
    help="Equivalence margin in points of balanced accuracy: a cell whose 90% CI of Δ lies inside ±margin is "
    "called equivalent to the baseline (two one-sided tests). Default: none, so nothing is called equivalent.",
)
RESOLUTION_OPTION = typer.Option(
    None,
    "--resolution",
    help="For comparisons that detect no difference: how many seeds would make the 95% CI of Δ this narrow "
    "(± points of balanced accuracy; default 1).",
)
FULL_OPTION = typer.Option(
    False, "--full", help="Print every metric's table, even where the terminal is too narrow for them."
)


def _with_config_dirs(overrides: list[str], config_dirs: list[str] | None) -> list[str]:
    from focalbench.config import searchpath_overrides

    return [*searchpath_overrides(config_dirs or []), *(overrides or [])]


def _overrides(ctx: typer.Context, config_dirs: list[str] | None) -> list[str]:
    """A command's Hydra overrides (its extra arguments) after the ``--config-dir`` search path; FocalbenchError
    for an extra argument that is an option (see :func:`stray_option_message`)."""
    stray = next((i for i, arg in enumerate(ctx.args) if arg.startswith("-") and arg != "-"), None)
    if stray is not None:
        following = ctx.args[stray + 1] if stray + 1 < len(ctx.args) else None
        raise FocalbenchError(stray_option_message(ctx.command, ctx.args, ctx.args[stray], following))
    return _with_config_dirs(ctx.args, config_dirs)


def stray_option_message(command, args: list[str], arg: str, following: str | None) -> str:
    """One line for an option the command does not have (a Hydra override never starts with '-', so Hydra
    would only say 'LexerNoViableAltException'): the config key it names as ``key=value`` (``--gamma 2`` ->
    ``gamma=2``, ``--lr 0.1`` -> ``optim.lr=0.1``), else the closest option (``--job`` -> ``--jobs``), else the
    closest config key, else the command's options."""
    import difflib

    from focalbench.config import closest_key, known_keys

    name, eq, value = arg.partition("=")
    if not eq and following is not None and not following.startswith("-") and "=" not in following:
        value = following
    wanted = name.lstrip("-").replace("-", "_")
    known = known_keys([a for a in args if "=" in a and not a.startswith("-")])
    key = wanted if wanted in known else closest_key(wanted, known)
    as_override = f"unknown option '{name}': config values are key=value overrides; did you mean {key}={value or '...'}?"
    if key is not None and key.rsplit(".", 1)[-1] == wanted.rsplit(".", 1)[-1]:
        return as_override
    options = sorted({o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("--")})
    hint = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if hint:
        return f"no such option: {name}; did you mean {hint[0]}?"
    if key is not None:
        return as_override
    return f"no such option: {name}; its options are {', '.join([*options, '--help'])}, and config values are key=value overrides"


class OverridesCommand(TyperCommand):
    """A command that takes Hydra overrides: its ``--help`` ends with the config groups and their options."""

    def format_epilog(self, ctx, formatter) -> None:
        super().format_epilog(ctx, formatter)
        from focalbench.config import config_dir, group_options

        try:
            root = config_dir()
        except FileNotFoundError:
            return
        groups = sorted(
            p.name for p in root.iterdir() if p.is_dir() and p.name != "hydra" and group_options(p.name)
        )
        rows = [(group, ", ".join(group_options(group))) for group in groups]
        with formatter.section("Config groups (choose one with group=option, e.g. data=table loss=ce)"):
            formatter.write_dl(rows)


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

    Computed by the library's own focal_loss at p_t in {0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.99}, with the
    long-tail baselines that have a per-example view (FLSD-53, logit-adjusted CE) beside them.

    Examples:

      focalbench losses

      focalbench losses --gamma 0,2 --plot loss_vs_pt.png
    """
    gammas = _parse_floats(gamma, "--gamma")
    if any(g < 0 for g in gammas):
        raise FocalbenchError("--gamma values must be >= 0 (gamma = 0 is cross-entropy)")
    from rich import box
    from rich.table import Table

    from focalbench.console import make_console
    from focalbench.losses.curves import PT_GRID, baseline_rows, loss_table, plot_loss_vs_pt

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
    console = make_console()
    console.print(table)
    console.print("CE / FL: how many times smaller the focal loss is than cross-entropy at that p_t.")
    others = Table(title="Long-tail baselines at the same p_t (per-example loss, nats)", box=box.SIMPLE_HEAD)
    others.add_column(
        "loss", overflow="fold"
    )  # a narrow terminal wraps the long labels, never cuts the numbers
    for pt in PT_GRID:
        others.add_column(f"{pt:g}", justify="right", no_wrap=True)
    others.add_row("CE", *[f"{r['ce']:.3g}" for r in rows[: len(PT_GRID)]])
    for label, values in baseline_rows():
        others.add_row(label, *[f"{v:.3g}" for v in values])
    console.print(others)
    console.print(
        "Logit adjustment on CIFAR-10-LT counts (rho = 100), 10-class logits with p_t from the plain softmax: "
        "a frequent class's loss shrinks, a rare one's grows. LDAM is not shown: its loss depends on cosine "
        "logits and its scale, not on p_t alone."
    )
    if plot is not None:
        path = plot_loss_vs_pt(gammas, plot)
        console.print(f"wrote {path}")


# ----------------------------------------------------------------------------------------------------------
# focalbench run
# ----------------------------------------------------------------------------------------------------------


@app.command(context_settings=OVERRIDES, cls=OverridesCommand)
def run(
    ctx: typer.Context,
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Train again even if a complete record exists; the old record is moved to results/replaced/.",
    ),
    show_cfg: bool = typer.Option(
        False, "--cfg", help="Print the resolved config (YAML) and exit; nothing runs or is written."
    ),
) -> None:
    """Train and evaluate one run. Arguments are Hydra overrides.

    A run with a complete record of the same run id is not trained again; a run another process is
    training now is waited for.

    Examples:

      focalbench run

      focalbench run gamma=0 seed=1

      focalbench run data=cifar10_lt model=cnn loss=focal gamma=2 alpha=inverse_freq epochs=3

      focalbench run loss=balanced_ce --cfg
    """
    from focalbench.config import compose

    overrides = _overrides(ctx, config_dir)
    cfg = compose(overrides)
    if show_cfg:
        from omegaconf import OmegaConf

        typer.echo(OmegaConf.to_yaml(cfg, resolve=True), nl=False)
        return
    from focalbench.sweeps.plan import check_data_available, check_writable

    check_data_available(cfg)
    check_writable(Path(str(cfg.results_dir)).expanduser().resolve())
    from rich.markup import escape

    from focalbench.console import make_console
    from focalbench.training.runner import execute_run

    console = make_console()
    outcome = execute_run(cfg, force=force, wait=True, notify=lambda m: console.print(escape(m)))
    from focalbench.console import print_run_summary

    print_run_summary(outcome)
    if cfg.get("logger"):
        from focalbench.loggers import locations

        console.print(escape("logged to " + "; ".join(f"{k}: {v}" for k, v in locations(cfg).items())))
    if outcome.status not in ("ok", "skipped"):
        raise typer.Exit(EXIT_FAILED_RUNS)


# ----------------------------------------------------------------------------------------------------------
# focalbench sweep
# ----------------------------------------------------------------------------------------------------------


@app.command(context_settings=OVERRIDES, cls=OverridesCommand)
def sweep(
    ctx: typer.Context,
    name: str | None = typer.Option(None, "--name", help="The sweep's folder name under results/sweeps/."),
    jobs: int = typer.Option(
        1,
        "--jobs",
        "-j",
        min=1,
        help="Local worker processes (joblib launcher); fused groups are split so that each has work.",
    ),
    launcher: str | None = typer.Option(
        None,
        "--launcher",
        help="inprocess (default for --jobs 1) | basic | joblib (default for --jobs > 1) | submitit_local | "
        "submitit_slurm | slurm (a preset in configs/hydra/launcher) | ray. Each gets one job per fused group.",
    ),
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="The cell to compare against, e.g. "
        '"gamma=0 alpha=none" (default: loss=ce alpha=none, else gamma=0).',
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="List the grid: each cell's overrides, run id and status, the runs to train and an estimate of "
        "their time; train and write nothing.",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Train every run of the grid again; old records are moved to results/replaced/.",
    ),
    fuse: bool | None = typer.Option(
        None,
        "--fuse/--no-fuse",
        help="Train cells that differ only in seed, loss, gamma and alpha as one fused model (default: where "
        "it is faster: every model on CUDA, mlp on a CPU); --no-fuse trains every run alone.",
    ),
    max_fuse: int | None = typer.Option(
        None,
        "--max-fuse",
        min=1,
        help="At most this many runs per fused group (default: from free memory, and split so that every "
        "--jobs worker has a group); --max-fuse 1 trains every run alone.",
    ),
    margin: float | None = MARGIN_OPTION,
    resolution: float | None = RESOLUTION_OPTION,
    full: bool = FULL_OPTION,
) -> None:
    """Run a grid of runs (Hydra sweep syntax), resuming what is done, then print the comparison table.

    Comma lists, range() and choice() expand to the cartesian grid; seed=0,1,2 adds repeats.
    Runs are identified by the hash of their resolved config: a run with a complete record is not run again,
    and a run that another process is training is waited for, not trained twice.

    Examples:

      focalbench sweep gamma=0,1,2,5

      focalbench sweep gamma=0,1,2,5 --dry-run

      focalbench sweep loss=ce,balanced_ce seed=0,1,2 --jobs 2

      focalbench sweep data=cifar10_lt model=cnn imbalance=10,100 gamma=0,2 alpha=none,inverse_freq seed=0,1

      focalbench sweep gamma=0,2 --launcher slurm device=cuda ++hydra.launcher.partition=gpu

      focalbench sweep gamma=0,1,2,5 --launcher ray device=cpu ++hydra.launcher.address=HEAD:6379

      focalbench sweep gamma=0,1,2,5 --no-fuse      (every run alone, as before fusion)
    """
    from focalbench.sweeps.launch import (
        check_launcher_identity,
        resolve_launcher,
        run_sweep,
        write_sweep_list,
    )
    from focalbench.sweeps.plan import check_sweep_folder, plan_sweep

    overrides = _overrides(ctx, config_dir)
    chosen = resolve_launcher(launcher, jobs)
    plan = plan_sweep(overrides, name=name)
    check_sweep_folder(plan)  # never replace another grid's report
    check_launcher_identity(plan, chosen)
    from focalbench.console import make_console

    console = make_console()
    if dry_run:
        _print_dry_run(plan, chosen, jobs, console)
        _print_groups(plan, chosen, jobs, fuse, max_fuse, console)
        return
    if plan.open_ended:
        grid = f"sweeper {plan.sweeper} picks the runs as it goes"
    else:
        total = len(plan.unique_run_ids())
        done = len({c.run_id for c in plan.done()})
        grid = f"{len(plan.cells)} cells, {done} of {total} runs already done"
        if force and done:
            grid += " (--force: all are trained again)"
        if not any(o.split("=", 1)[0].lstrip("+") == "seed" for o in overrides):
            grid += " (seeds 0,1,2 by default; pass seed=0 for one)"
    console.print(
        f"sweep [bold]{plan.name}[/]: {grid}; launcher {chosen}, {jobs} job(s); "
        f"records in {plan.results_dir / 'runs'}"
    )
    _print_grid_notes(plan, console, force)
    from focalbench.preload import preload

    preload()  # the report's modules (pandas, scipy, matplotlib) load while the runs train
    if plan.cells and plan.cells[0].cfg.get("logger"):
        from focalbench.loggers import prepare

        prepare(plan.cells[0].cfg)  # MLflow's store made once here, not by parallel workers
    outcome = run_sweep(plan, chosen, jobs, force=force, fuse=fuse, max_fuse=max_fuse)
    write_sweep_list(plan, outcome)
    from focalbench.console import finish_sweep_report

    finish_sweep_report(
        plan, outcome, console, baseline=baseline, margin=margin, resolution=resolution, full=full
    )
    from rich.markup import escape

    from focalbench.loggers import log_plan

    log_plan(plan, say=lambda m: console.print(escape(m)))  # with logger=...: the report as a parent run
    if outcome.failed:
        raise typer.Exit(EXIT_FAILED_RUNS)


def _print_dry_run(plan, launcher: str, jobs: int, console, probe: bool = True) -> None:
    """sweep --dry-run: the grid, each cell's run id and status, what would train and for about how long."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from focalbench.sweeps.plan import (
        DONE,
        FAILED,
        LOCKED,
        PENDING,
        estimate_time,
        estimate_with_probes,
        run_state,
    )

    if plan.open_ended:
        console.print(
            f"sweep [bold]{escape(plan.name)}[/] (dry run): sweeper {escape(plan.sweeper)} picks the runs as "
            f"it goes, so there is no grid to list; nothing was run or written"
        )
        return
    states = {rid: run_state(plan, rid) for rid in plan.unique_run_ids()}
    seen: set[str] = set()
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("#", "cell overrides", "run id", "status"):
        table.add_column(column, no_wrap=column != "cell overrides")
    for num, cell in enumerate(plan.cells):
        status = states[cell.run_id] + (" (repeat: runs once)" if cell.run_id in seen else "")
        seen.add(cell.run_id)
        shown = [o for o in cell.overrides if not o.startswith("hydra.searchpath")]
        table.add_row(
            str(num if cell.job is None else cell.job), escape(" ".join(shown)), cell.run_id, status
        )
    console.print(
        f"sweep [bold]{escape(plan.name)}[/] (dry run): {len(plan.cells)} cells, {len(states)} runs; "
        f"launcher {launcher}, {jobs} job(s); records in {plan.results_dir / 'runs'}"
    )
    console.print(table)
    _print_grid_notes(plan, console, force=False)
    count = {s: sum(1 for v in states.values() if v == s) for s in (DONE, FAILED, LOCKED, PENDING)}
    to_train = [rid for rid, s in states.items() if s in (PENDING, FAILED)]
    estimate = estimate_with_probes(plan, to_train) if probe else estimate_time(plan, to_train)
    if not to_train:
        when = "nothing to train"
    elif estimate.estimated + estimate.probed == 0:
        when = "no estimate (no finished record of the same data, model, epochs and device"
        when += f"; probe: {'; '.join(estimate.probe_notes)})" if estimate.probe_notes else ")"
    else:
        when = f"about {_duration(estimate.seconds / max(1, jobs))}"
        if jobs > 1:
            when += f" with {jobs} jobs ({_duration(estimate.seconds)} of training)"
        sources = []
        if estimate.estimated:
            sources.append(f"the median time of similar records for {estimate.estimated} run(s)")
        if estimate.probed:
            sources.append(
                f"a timed probe for {estimate.probed} run(s) (training steps only, unfused: evaluation adds to "
                f"it; {'; '.join(estimate.probe_notes)})"
            )
        when += ", from " + " and ".join(sources)
        if estimate.unknown:
            when += f"; no estimate for the other {estimate.unknown}"
    console.print(
        f"{len(to_train)} run(s) to train ({count[PENDING]} pending, {count[FAILED]} failed to retry); "
        f"{count[DONE]} done, {count[LOCKED]} running elsewhere; {when}. Dry run: nothing was trained or written."
    )


def _print_grid_notes(plan, console, force: bool) -> None:
    """The grid's combinations that do not apply (skipped), the cells that are one run under two names, for
    ``save_model=true`` without ``--force`` the done records that have no weights (reused as they are), and
    the runs to train that have records in the precision ``auto`` picks on another machine, and bf16 runs to
    train on a CPU that only emulates bf16."""
    from rich.markup import escape

    from focalbench.sweeps.plan import (
        emulated_bf16_note,
        precision_note,
        same_run_note,
        skipped_note,
        weights_note,
    )

    notes = (
        skipped_note(plan),
        same_run_note(plan),
        None if force else weights_note(plan),
        precision_note(plan),
        emulated_bf16_note(plan),
    )
    for note in notes:
        if note:
            console.print(escape(note), highlight=False)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_groups(plan, launcher: str, jobs: int, fuse: bool | None, max_fuse: int | None, console) -> None:
    """``sweep --dry-run``: how the runs still to train would train (fused groups, or alone); a launcher
    other than the in-process loop gets one job per group."""
    from rich.markup import escape

    from focalbench.sweeps.fuse import describe_groups, plan_groups
    from focalbench.sweeps.launch import first_cells
    from focalbench.sweeps.plan import FAILED, PENDING, run_state

    to_train = [rid for rid in plan.unique_run_ids() if run_state(plan, rid) in (PENDING, FAILED)]
    if not to_train:
        return
    if plan.open_ended:
        console.print(f"sweeper {plan.sweeper} picks one run per job (no fused groups)")
        return
    workers = 1 if launcher == "inprocess" else jobs
    groups = plan_groups(list(first_cells(plan, to_train).values()), fuse, max_fuse, workers=workers)
    if launcher != "inprocess":
        console.print(f"launcher {launcher}: one job per group, {len(groups)} job(s)")
    for line in describe_groups(groups):
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
        "accuracy, few-shot accuracy, macro-F1, NLL, ECE, wall time). Named, they are also what the answer "
        "compares on, and the first carries its recommendation: e.g. val.balanced_accuracy for a tuning sweep.",
    ),
    baseline: str | None = typer.Option(
        None, "--baseline", help='The cell to compare against, e.g. "gamma=0 alpha=none".'
    ),
    group_by: str | None = typer.Option(
        None,
        "--group-by",
        help="Comma-separated keys that separate settings: cells are compared with a baseline, and the "
        "best is marked, only within a setting (cells sharing these keys' values). Default: every key that "
        "varies and is neither a loss key (loss, gamma, alpha, beta) nor named by --baseline, e.g. data, "
        "model, imbalance. env.device, env.precision and env.focalbench also split cells by where runs were "
        "made. 'none': one setting.",
    ),
    fmt: list[str] = typer.Option(
        None,
        "--format",
        help="md | csv | latex | json | html | parquet (repeatable; default: all but parquet). parquet writes "
        "runs.parquet: one row per run (focalbench.results.load), for pandas and other tools.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for the tables and plots (default: the sweep folder, when one sweep is reported).",
    ),
    rescore: bool = typer.Option(
        False,
        "--rescore",
        help="First recompute each run's test, validation and calibration metrics from the logits its record "
        "stores (logits.npz), with this version's metric code; records without stored logits are kept.",
    ),
    margin: float | None = MARGIN_OPTION,
    resolution: float | None = RESOLUTION_OPTION,
    full: bool = FULL_OPTION,
    open_page: bool = typer.Option(
        False, "--open", help="Open report.html in the browser where one exists; otherwise print its path."
    ),
) -> None:
    """Regenerate the comparison tables and plots from run records alone.

    Groups runs by grid cell across seeds (mean ± std, n), with a paired Δ against the baseline cell of
    each setting and its 95% confidence interval, the best cell per metric, and whether its lead is inside
    the noise. One sweep folder gives the files its sweep (or `reproduce`, with its verdicts) wrote.

    Examples:

      focalbench report results/sweeps/gamma=0,1,2,5

      focalbench report results/sweeps/my_sweep --baseline "gamma=0 alpha=none" --metrics balanced_accuracy,nll

      focalbench report results/sweeps/rho --group-by data,imbalance

      focalbench report results/runs --out my_report --format md --format latex

      focalbench report results/sweeps/my_sweep --format parquet

      focalbench report results/sweeps/my_sweep --rescore

      focalbench report results/sweeps/my_sweep --open
    """
    from focalbench.reports.render import print_report
    from focalbench.reports.report import check_formats, report_paths, write_report
    from focalbench.sweeps.reproduce import suite_of_sweep, suite_report

    formats = tuple(fmt) if fmt else ("md", "csv", "latex", "json", "html")
    check_formats(formats)  # before anything is computed or printed
    for path in paths:
        if not path.exists():
            raise FocalbenchError(f"{path}: no such sweep, run or results folder")
    chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    keys = (
        None
        if group_by is None
        else [k.strip() for k in group_by.split(",") if k.strip() not in ("", "none")]
    )
    one_sweep = len(paths) == 1 and (paths[0] / "sweep.json").is_file()
    if out is None and not one_sweep:
        raise FocalbenchError(
            "several folders or runs are reported: say where to write the tables with --out DIR"
        )
    target = out if out is not None else paths[0]  # by default, into the one sweep folder reported
    from focalbench.console import make_console

    console = make_console()
    if rescore:
        from focalbench.reports.rescore import rescore_paths

        done = rescore_paths(list(paths))
        console.print(
            f"rescored {len(done.rescored)} runs from their stored logits"
            + (f"; {len(done.without_logits)} have none (older records), kept" if done.without_logits else "")
            + (f"; {len(done.not_ok)} did not finish, skipped" if done.not_ok else "")
        )
    suite = suite_of_sweep(paths[0]) if one_sweep else None  # a folder `focalbench reproduce` wrote
    if suite is not None:
        built = suite_report(suite, paths[0], chosen, baseline, keys, margin, resolution)
    else:
        built = report_paths(paths, chosen, baseline, keys, margin, resolution)
    print_report(built, console, full=full)
    tables = tuple(f for f in formats if f != "parquet")
    written = write_report(built, target, formats=tables) if tables else []
    if "parquet" in formats:
        from focalbench.results import load, write_parquet

        written.append(write_parquet(load(list(paths)), Path(target) / "runs.parquet"))
    console.print(f"wrote {', '.join(p.name for p in written)} in {target}")
    if open_page:
        _open_in_browser(Path(target) / "report.html", console)


def _open_in_browser(page: Path, console) -> None:
    """Open ``page`` with the user's browser (``$BROWSER`` or the platform's), or say where it is."""
    import webbrowser

    if not page.is_file():
        console.print(f"no report.html was written (--format without html); the tables are in {page.parent}")
        return
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        console.print(f"no browser found here; open {page.resolve()}")
        return
    browser.open(page.resolve().as_uri())
    console.print(f"opened {page.resolve()}")


# ----------------------------------------------------------------------------------------------------------
# focalbench reproduce
# ----------------------------------------------------------------------------------------------------------


@app.command(context_settings=OVERRIDES, cls=OverridesCommand)
def reproduce(
    ctx: typer.Context,
    suite: str = typer.Argument(
        ...,
        help="The suite: ci, article, article_precision, cifar10_lt_cpu, cifar10_lt_cpu_precision, cifar10_lt, or "
        "one of yours (--config-dir).",
    ),
    name: str | None = typer.Option(None, "--name", help="The sweep folder's name (default: the suite's)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Local worker processes (joblib launcher)."),
    launcher: str | None = typer.Option(None, "--launcher", help="As for sweep."),
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
    report_only: bool = typer.Option(
        False,
        "--report-only",
        help="Train nothing: report and judge the records already there (a study in progress); the missing "
        "runs are listed as missing.",
    ),
) -> None:
    """Run a named suite (resumably, like any sweep) and check its claims; exit 1 unless all pass.

    A suite is a config in configs/experiment/ with a `suite:` key: a grid and claims about its results
    (a metric, two cells or a cell and a number, a direction and a margin). Each verdict line gives the
    measured effect, its CI (95%; 90% for `within`), n and the verdict: pass, FAIL, or INCONCLUSIVE (the
    seeds cannot establish it either way; exit 1 too); with --report-only on a study still running, a claim
    whose runs have no record yet is "not run yet". Extra overrides apply to every run.

    Examples:

      focalbench reproduce ci

      focalbench reproduce cifar10_lt_cpu --jobs 2

      focalbench reproduce cifar10_lt device=cuda --jobs 1

      focalbench reproduce cifar10_lt epochs=20 --name cifar10_lt_short

      focalbench reproduce article results_dir=results/article --report-only
    """
    from focalbench.sweeps.launch import resolve_launcher
    from focalbench.sweeps.reproduce import reproduce as run_reproduce

    overrides = _overrides(ctx, config_dir)
    chosen = resolve_launcher(launcher, jobs)
    code = run_reproduce(
        suite,
        overrides,
        sweep_name=name,
        launcher=chosen,
        jobs=jobs,
        report_only=report_only,
    )
    if code:
        raise typer.Exit(code)


# ----------------------------------------------------------------------------------------------------------
# focalbench data info
# ----------------------------------------------------------------------------------------------------------


@data_app.command("info", context_settings=OVERRIDES, cls=OverridesCommand)
def data_info(
    ctx: typer.Context,
    config_dir: list[str] = typer.Option(None, "--config-dir", help="Add a folder of your own configs."),
) -> None:
    """Class counts, achieved imbalance, many/medium/few groups, split sizes and where the files were found.

    Examples:

      focalbench data info

      focalbench data info data=cifar10_lt imbalance=100
    """
    from focalbench.config import compose_unvalidated, validate

    cfg = compose_unvalidated(_overrides(ctx, config_dir))
    missing_allowed = show_missing_categories(cfg)
    validate(cfg)
    from focalbench.sweeps.plan import check_data_available

    check_data_available(cfg)
    from focalbench.console import print_data_info

    print_data_info(cfg, missing_allowed=missing_allowed)


def show_missing_categories(cfg) -> bool | None:
    """``data info`` shows what a run would refuse for missing categorical values (``data=table``): it reads
    the table with ``data.missing_as_category=true`` and returns the user's own value, to say whether runs
    refuse them; None when the data source has no such key (or its value is not a boolean: validation says so)."""
    allowed = cfg.data.get("missing_as_category")
    if not isinstance(allowed, bool):
        return None
    cfg.data.missing_as_category = True
    return allowed


# ----------------------------------------------------------------------------------------------------------
# focalbench examples
# ----------------------------------------------------------------------------------------------------------


@app.command()
def examples(
    name: str | None = typer.Argument(
        None, help="fraud.csv, embeddings.npz or shapes (without it: list them)."
    ),
    out: Path = typer.Option(
        Path("examples"), "--out", help="The folder to write it into (default: examples/ here)."
    ),
) -> None:
    """Write one of the small example data sets the documentation uses, so its commands work anywhere.

    The files are made deterministically: the same bytes as a checkout's examples/. An existing file or
    folder is never replaced.

    Examples:

      focalbench examples

      focalbench examples fraud.csv

      focalbench examples shapes --out my_data
    """
    from focalbench.examples import EXAMPLES, example_named, write_example

    if name is None:
        for example, about in EXAMPLES.items():
            typer.echo(f"{example:<16}{about.what}")
        typer.echo("write one with: focalbench examples NAME [--out DIR]")
        return
    written = write_example(name, out)
    try_it = EXAMPLES[example_named(name)].try_it
    if Path(out) != Path("examples"):
        try_it = try_it.replace("examples/", f"{Path(out).as_posix().rstrip('/')}/")
    typer.echo(f"wrote {written}; try: {try_it}")


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
    from focalbench.console import configure_rich

    configure_rich()  # progress bars print as the tables do: no ANSI codes or cut cells in a pipe
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
