"""Planning a sweep: expand Hydra overrides into a grid, compose and validate every cell, find what is done.

Planning happens in the parent process before anything runs, so that a bad value anywhere in the grid stops the
sweep with one line and nothing written, and so that the sweep can say "N of M runs already done".

The grid is expanded by Hydra's own BasicSweeper logic (comma lists, ``range()``, ``choice()``, cartesian
product, in Hydra's order); the same overrides are then handed to ``@hydra.main`` to run, so planning and
running agree cell for cell.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from focalbench.config import compose, compose_many
from focalbench.errors import ConfigError
from focalbench.identity import NON_SEMANTIC_KEYS, run_id
from focalbench.training import record


@dataclass
class Cell:
    overrides: list[str]  # this cell's overrides, sweep syntax expanded
    cfg: DictConfig  # its composed, validated config
    run_id: str


@dataclass
class SweepPlan:
    name: str
    overrides: list[str]  # as the user typed them (plus the search path)
    cells: list[Cell]  # the grid; empty for an open-ended sweeper such as Optuna, whose trials are not known
    results_dir: Path
    sweeper: str = "basic"  # Hydra's grid sweeper, or another (hydra/sweeper=...) that picks cells as it goes

    @property
    def open_ended(self) -> bool:
        return self.sweeper != "basic"

    @property
    def sweep_dir(self) -> Path:
        return self.results_dir / "sweeps" / self.name

    def run_dir(self, cell: Cell) -> Path:
        return record.run_dir(self.results_dir, cell.run_id)

    def done(self) -> list[Cell]:
        return [c for c in self.cells if record.is_done(self.run_dir(c))]

    @property
    def run_list(self) -> Path:
        """Where sweep workers note the run ids they ran (see focalbench.sweeps.task)."""
        return self.sweep_dir / "run_ids.txt"

    def unique_run_ids(self) -> list[str]:
        """The grid's run ids in grid order; for an open-ended sweeper, those its trials noted so far."""
        if self.open_ended:
            lines = self.run_list.read_text().split() if self.run_list.is_file() else []
            return list(dict.fromkeys(lines))
        return list(dict.fromkeys(c.run_id for c in self.cells))


def expand_grid(overrides: list[str]) -> list[list[str]]:
    """The cartesian grid of ``overrides`` as Hydra's BasicSweeper expands it: one override list per cell."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides=list(overrides))
    except Exception as exc:
        raise ConfigError(f"cannot parse the overrides: {str(exc).strip().splitlines()[0]}") from None
    for override in parsed:
        if override.is_sweep_override() and not list(override.sweep_string_iterator()):
            raise ConfigError(f"the grid is empty: '{override.input_line}' expands to no values")
    batches = BasicSweeper.split_arguments(parsed, None)
    cells = [cell for batch in batches for cell in batch]
    if not cells:
        raise ConfigError("the grid is empty: no cell to run")
    return cells


# A comparison without seeds has no spread: a grid that does not sweep `seed` runs these seeds.
DEFAULT_SEEDS = "0,1,2"


def plan_sweep(
    overrides: list[str], name: str | None = None, default_seeds: str | None = DEFAULT_SEEDS
) -> SweepPlan:
    """Expand, compose and validate every cell; check the results folder; raise ConfigError on bad input.

    A grid that sets no ``seed`` gets ``seed=<default_seeds>`` (0,1,2), so that every comparison has seeds
    and their spread; pass ``seed=0`` for a single seed, or ``default_seeds=None``.

    With another sweeper than Hydra's basic grid (``hydra/sweeper=tune``, Optuna), the cells are chosen while
    the sweep runs: only the base config (the overrides without search-space expressions) is validated here.
    """
    sweeper = sweeper_name(overrides)
    sweep_name = name or default_sweep_name(overrides)
    if sweeper == "basic" and default_seeds and not any(_key(o) == "seed" for o in overrides):
        overrides = [*overrides, f"seed={default_seeds}"]
    if sweeper == "basic":
        cells = []
        grid = expand_grid(overrides)
        for cell_overrides, cfg in zip(grid, compose_many(grid), strict=True):
            check_data_available(cfg)
            cells.append(Cell(cell_overrides, cfg, run_id(cfg)))
        base = cells[0].cfg
    else:
        cells = []
        base = compose(fixed_overrides(overrides))
        check_data_available(base)
    results_dir = Path(str(base.results_dir)).expanduser().resolve()
    check_writable(results_dir)
    if not re.fullmatch(r"[\w.=,+-]+", sweep_name):
        raise ConfigError(f"--name {sweep_name!r}: use letters, digits and . _ - = , + only")
    return SweepPlan(sweep_name, list(overrides), cells, results_dir, sweeper)


def grid_overrides(overrides: list[str]) -> list[str]:
    """The overrides that decide a sweep's grid, sorted: without those of keys that cannot change a run
    (``jobs=2``, ``quiet=true``, ``results_dir=...``; :data:`focalbench.identity.NON_SEMANTIC_KEYS`) and
    Hydra's own (``hydra.searchpath``, launcher settings)."""
    kept = [o for o in overrides if _key(o).split(".", 1)[0] not in (*NON_SEMANTIC_KEYS, "hydra")]
    return sorted(kept)


def check_sweep_folder(plan: SweepPlan) -> None:
    """ConfigError when the plan's sweep folder holds another grid's sweep (its ``sweep.json`` lists other
    overrides): running would replace that sweep's list and report. The same grid again is a resume, and a
    folder without a readable listing (or with one from before listings held overrides) is free."""
    listing = plan.sweep_dir / "sweep.json"
    try:
        theirs = json.loads(listing.read_text()).get("overrides")
    except (OSError, ValueError, AttributeError):
        return
    if not isinstance(theirs, list) or grid_overrides(theirs) == grid_overrides(plan.overrides):
        return
    shown = " ".join(grid_overrides(theirs)) or "no overrides"
    raise ConfigError(
        f"--name {plan.name}: {plan.sweep_dir} holds another sweep ({shown}), whose report this one would "
        f"replace; choose another --name"
    )


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def sweeper_name(overrides: list[str]) -> str:
    """The Hydra sweeper the overrides choose (``hydra/sweeper=NAME``), ``basic`` by default."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == "hydra/sweeper"]
    return chosen[-1] if chosen else "basic"


def fixed_overrides(overrides: list[str]) -> list[str]:
    """The overrides that set one value: search-space expressions (``interval()``, ``choice()``, comma lists)
    and the sweeper's own settings are left out, so the rest can be composed and validated."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    kept = [o for o in overrides if not o.split("=", 1)[0].lstrip("+~").startswith("hydra")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides=kept)
    except Exception as exc:
        raise ConfigError(f"cannot parse the overrides: {str(exc).strip().splitlines()[0]}") from None
    return [o.input_line for o in parsed if not o.is_sweep_override()]


def default_sweep_name(overrides: list[str]) -> str:
    """A readable folder name from the overrides (``gamma=0,1,2,5`` -> ``gamma=0,1,2,5``), hashed if long."""
    # launcher settings (++hydra.launcher.partition=gpu) do not name a sweep, with or without + or ++
    semantic = [o for o in overrides if not o.lstrip("+~").startswith(("hydra", "results_dir=", "jobs="))]
    text = "_".join(semantic) or "default"
    text = re.sub(r"[^\w.=,+-]+", "-", text)
    if len(text) > 80:
        text = text[:60] + "-" + hashlib.sha256("_".join(semantic).encode()).hexdigest()[:8]
    return text


def check_writable(folder: Path) -> None:
    """Fail with one line unless ``folder`` can be created and written; leaves nothing behind."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"results folder {folder} cannot be created: {probe} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ConfigError(f"results folder {folder} cannot be written: {exc.strerror}") from None
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"results folder {folder} cannot be written")


def check_data_available(cfg: DictConfig) -> None:
    """A data source's files (e.g. CIFAR archives) must be on disk, or a download asked for, before anything
    runs: the source's registered ``check_files``, if it has one."""
    from focalbench.registry import DATASETS

    check_files = DATASETS.get(cfg.data.name).meta.get("check_files")
    if check_files is not None:
        check_files(cfg.data)


# ----------------------------------------------------------------------------------------------------------
# What will run: each cell's status, and an estimate of the time from similar records (sweep --dry-run)
# ----------------------------------------------------------------------------------------------------------

DONE, FAILED, LOCKED, PENDING = "done", "failed", "locked", "pending"


def run_state(plan: SweepPlan, rid: str) -> str:
    """done (a reusable record), failed (error.json: it will be retried), locked (another live process is
    training it) or pending (nothing yet, or a killed attempt)."""
    from focalbench.training import lock

    rdir = record.run_dir(plan.results_dir, rid)
    status = record.status(rdir)
    if status in record.REUSABLE:
        return DONE
    held = lock.inspect(rdir)
    if held is not None and not held.stale:
        return LOCKED
    return FAILED if status == "error" else PENDING


def similarity_key(cfg: DictConfig | dict) -> tuple:
    """Runs that take about as long: same data, model, epochs and (resolved) device."""
    from focalbench.identity import resolve_device_name

    def get(tree, dotted):
        for part in dotted.split("."):
            tree = tree.get(part) if hasattr(tree, "get") else None
            if tree is None:
                return None
        return tree

    device = get(cfg, "device")
    return (
        get(cfg, "data.name"),
        get(cfg, "data.n_classes"),
        get(cfg, "model.name"),
        get(cfg, "epochs"),
        resolve_device_name(device) if device is not None else None,
    )


def record_times(results_dir: Path) -> dict[tuple, list[float]]:
    """Wall times of the finished (ok) records in ``results_dir``, by :func:`similarity_key`; records of
    earlier versions count too (the time, not the result, is what is reused). The device is the one the
    record ran on."""
    import yaml

    times: dict[tuple, list[float]] = {}
    for metrics_file in sorted(record.runs_dir(results_dir).glob(f"*/{record.METRICS_FILE}")):
        metrics = record.read_metrics(metrics_file.parent)
        config_file = metrics_file.parent / "config.yaml"
        if not metrics or metrics.get("status") != "ok" or not config_file.is_file():
            continue
        wall = (metrics.get("timing") or {}).get("wall_time_s")
        try:
            cfg = yaml.safe_load(config_file.read_text())
        except (OSError, yaml.YAMLError):
            continue
        if not isinstance(wall, (int, float)) or not isinstance(cfg, dict):
            continue
        cfg["device"] = str((metrics.get("environment") or {}).get("device", cfg.get("device"))).split(":")[0]
        times.setdefault(similarity_key(cfg), []).append(float(wall))
    return times


@dataclass
class Estimate:
    seconds: float  # summed over the runs with an estimate
    estimated: int  # runs with similar records
    unknown: int  # runs without


def estimate_time(plan: SweepPlan, run_ids: list[str]) -> Estimate:
    """The training time of ``run_ids``: per run, the median wall time of similar finished records."""
    import statistics

    times = record_times(plan.results_dir)
    cells = {}
    for cell in plan.cells:
        cells.setdefault(cell.run_id, cell)
    total, known, unknown = 0.0, 0, 0
    for rid in run_ids:
        similar = times.get(similarity_key(cells[rid].cfg))
        if similar:
            total += statistics.median(similar)
            known += 1
        else:
            unknown += 1
    return Estimate(total, known, unknown)
