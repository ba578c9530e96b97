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
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from focalbench.config import SHARED_LOSS_KEYS, compose, compose_many
from focalbench.errors import ConfigError, NotApplicable
from focalbench.identity import NON_SEMANTIC_KEYS, run_id
from focalbench.training import record


@dataclass
class Cell:
    overrides: list[str]  # this cell's overrides, sweep syntax expanded
    cfg: DictConfig  # its composed, validated config
    run_id: str
    job: int | None = None  # its position in the whole grid (Hydra's job number), skipped cells counted


@dataclass
class Skipped:
    """A combination of the grid that does not apply (``loss=ce`` with ``gamma=2``): not run."""

    job: int  # its position in the whole grid (Hydra's job number)
    overrides: list[str]
    subject: str  # the choice the key does not apply to: the loss as typed (ce, balanced_ce)
    setting: str  # the key and value: gamma=2
    reason: str  # cross-entropy has no gamma


@dataclass
class SweepPlan:
    name: str
    overrides: list[str]  # as the user typed them (plus the search path)
    cells: list[Cell]  # the grid; empty for an open-ended sweeper such as Optuna, whose trials are not known
    results_dir: Path
    sweeper: str = "basic"  # Hydra's grid sweeper, or another (hydra/sweeper=...) that picks cells as it goes
    skipped: list[Skipped] = field(default_factory=list)  # combinations that do not apply, not run

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
    skipped: list[Skipped] = []
    if sweeper == "basic":
        cells = []
        grid = expand_grid(overrides)
        errors: list[NotApplicable] = []
        for job, (cell_overrides, cfg) in enumerate(zip(grid, compose_many(grid, errors), strict=True)):
            if cfg is None:
                exc = errors[len(skipped)]
                subject = _choice(cell_overrides, "loss") or exc.subject
                skipped.append(Skipped(job, cell_overrides, subject, exc.setting, exc.reason))
                continue
            check_data_available(cfg)
            cells.append(Cell(cell_overrides, cfg, run_id(cfg), job))
        if not cells:  # nothing in the grid applies: the first reason, as `focalbench run` would say it
            raise ConfigError(f"no combination of the grid can run: {errors[0]}")
        base = cells[0].cfg
    else:
        cells = []
        base = compose(fixed_overrides(overrides))
        check_data_available(base)
    results_dir = Path(str(base.results_dir)).expanduser().resolve()
    check_writable(results_dir)
    if not re.fullmatch(r"[\w.=,+-]+", sweep_name):
        raise ConfigError(f"--name {sweep_name!r}: use letters, digits and . _ - = , + only")
    return SweepPlan(sweep_name, list(overrides), cells, results_dir, sweeper, skipped)


def _choice(overrides: list[str], group: str) -> str | None:
    """The option of ``group`` that a cell's overrides choose (``loss=balanced_ce`` -> balanced_ce)."""
    chosen = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == group]
    return chosen[-1] if chosen else None


def skipped_note(plan: SweepPlan) -> str | None:
    """One line naming the grid's combinations that do not apply and were not run, once each whatever the
    seeds: ``skipped 2 combinations that do not apply: ce × gamma=2: cross-entropy has no gamma; ...``."""
    found = list(dict.fromkeys((s.subject, s.setting, s.reason) for s in plan.skipped))
    if not found:
        return None
    listed = "; ".join(f"{subject} × {setting}: {reason}" for subject, setting, reason in found)
    cells = len(plan.skipped)
    return f"skipped {len(found)} combination(s) that do not apply ({cells} cell(s) of the grid): {listed}"


def weights_note(plan: SweepPlan) -> str | None:
    """For ``save_model=true``: one line on the grid's done records that have no weights (made without it),
    which the sweep reuses rather than trains; None when there are none."""
    from focalbench.training.runner import weights_missing_line

    wanted = {c.run_id for c in plan.cells if c.cfg.get("save_model", False)}
    lacking = [rid for rid in wanted if record.lacks_weights(record.run_dir(plan.results_dir, rid))]
    return weights_missing_line(len(lacking), "sweep") if lacking else None


def precision_note(plan: SweepPlan) -> str | None:
    """One line when missing runs of the grid (``precision=auto``) have records made in the other precision:
    with ``precision=bf16`` or ``fp32`` pinned, on another device, or by a version whose ``auto`` meant bf16
    on a CPU with native bf16. The precision is part of the run id, so those records are not reused and the
    sweep would train the same grid again in another precision; ``precision=<other>`` reuses them (and trains
    the missing runs in that precision). None when there are none.
    """
    from omegaconf import OmegaConf

    from focalbench.identity import resolve_device_name, resolve_precision

    runs = plan.results_dir / "runs"
    if not runs.is_dir() or not any(runs.iterdir()):
        return None
    found: dict[str, tuple[str, str, str]] = {}  # run id -> (auto here, the other precision, device)
    for cell in plan.cells:
        if cell.run_id in found or cell.cfg.get("precision") != "auto" or record.is_done(plan.run_dir(cell)):
            continue
        device = resolve_device_name(cell.cfg.get("device", "cpu"))
        here = resolve_precision("auto", device)
        other = "fp32" if here == "bf16" else "bf16"
        twin = OmegaConf.to_container(cell.cfg, resolve=True)
        twin["precision"] = other
        if record.is_done(record.run_dir(plan.results_dir, run_id(twin))):
            found[cell.run_id] = (here, other, device)
    if not found:
        return None
    here, other, device = next(iter(found.values()))
    return (
        f"{len(found)} of the missing runs have records in {other} under {runs}; precision=auto means {here} "
        f"on the {device}, another run id: pass precision={other} to reuse those records"
    )


def emulated_bf16_note(plan: SweepPlan) -> str | None:
    """One line when runs still to train are bf16 on a CPU without native bf16 (``precision=bf16`` pinned):
    there their convolutions run as fp32 products rounded to bf16 (``focalbench.training.bf16_conv``), at
    about fp32's speed, while a time estimate may come from records made on a CPU with native bf16, where bf16
    trains a conv net 2-2.5x faster than fp32. Said before training, not after the first run. None otherwise."""
    from focalbench.hardware import cpu_has_native_bf16, cpu_model
    from focalbench.identity import resolve_device_name, resolve_precision

    if cpu_has_native_bf16():  # checked first: then no run's state need be read
        return None
    emulated = set()
    for cell in plan.cells:
        if run_state(plan, cell.run_id) not in (PENDING, FAILED):
            continue
        device = resolve_device_name(cell.cfg.get("device", "cpu"))
        if device == "cpu" and resolve_precision(cell.cfg.get("precision", "auto"), device) == "bf16":
            emulated.add(cell.run_id)
    if not emulated:
        return None
    return (
        f"{len(emulated)} run(s) to train are bf16 on this CPU, {cpu_model()}: without native bf16 their "
        "convolutions run as fp32 products rounded to bf16, at about fp32's speed, so a time estimate from "
        "records made on a CPU with native bf16 (2-2.5x faster there) understates it"
    )


def same_run_note(plan: SweepPlan) -> str | None:
    """One line for cells that name different losses but are one run (the same config, so the same run id):
    ``balanced_softmax = logit_adjusted (loss.tau=1): one run``. None when there are none."""
    names: dict[str, list[str]] = {}
    configs: dict[str, DictConfig] = {}
    for cell in plan.cells:
        configs.setdefault(cell.run_id, cell.cfg)
        name = _choice(cell.overrides, "loss") or str(cell.cfg.loss.name)
        names.setdefault(cell.run_id, [])
        if name not in names[cell.run_id]:
            names[cell.run_id].append(name)
    found: dict[tuple[str, ...], str] = {}
    for rid, group in names.items():
        if len(group) > 1:
            own = {k: v for k, v in configs[rid].loss.items() if k not in SHARED_LOSS_KEYS}
            shown = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in own.items())
            found.setdefault(tuple(group), shown)
    if not found:
        return None
    return "; ".join(
        f"{' = '.join(group)}{' ' + own if own else ''}: the same config, one run"
        for group, own in found.items()
    )


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
    """A short, readable folder name from the overrides: the swept keys first (``gamma=0,1,2,5``), then the
    fixed ones; keys by their last part where that is unambiguous (``data.n_max=200`` -> ``n_max=200``), paths
    by their file name (``data.path=/home/me/fraud.csv`` -> ``path=fraud.csv``); settings that change no run
    (``jobs``, ``threads``, ``quiet``, ``results_dir``, Hydra's) left out. Over 60 characters it is cut and
    ends with 8 hex digits of a hash of all the overrides, so that two long grids do not share a folder."""
    # launcher settings (++hydra.launcher.partition=gpu, hydra/launcher=...) do not name a sweep
    semantic = [
        o for o in overrides if re.split(r"[./]", _key(o), maxsplit=1)[0] not in (*NON_SEMANTIC_KEYS, "hydra")
    ]
    if not semantic:
        return "default"
    swept = [o for o in semantic if _is_swept(o)]
    ordered = swept + [o for o in semantic if o not in swept]
    leaves = [_key(o).rsplit(".", 1)[-1] for o in ordered]
    parts = []
    for override, leaf in zip(ordered, leaves, strict=True):
        key, eq, value = override.partition("=")
        short = leaf if leaves.count(leaf) == 1 else key.lstrip("+~")
        if "/" in value and "," not in value:
            value = value.strip("'\"").rstrip("/").rsplit("/", 1)[-1]
        parts.append(re.sub(r"[^\w.=,+-]+", "-", f"{short}={value}" if eq else short))
    text = "_".join(parts)
    if len(text) > 60:  # whole parts only, so that a value is never cut (imbalance=10,100 to imbalance=10)
        kept = [p for i, p in enumerate(parts) if len("_".join(parts[: i + 1])) <= 51] or [parts[0][:51]]
        text = "_".join(kept) + "-" + hashlib.sha256("_".join(semantic).encode()).hexdigest()[:8]
    return text


def _is_swept(override: str) -> bool:
    """Whether an override sets several values (a comma list, ``range()``, ``choice()``, ``glob()``)."""
    value = override.partition("=")[2]
    return (
        "," in value.replace("\\,", "")
        and not value.startswith("[")
        or value.startswith(("range(", "choice(", "glob("))
    )


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
    """Runs that take about as long: same data, model, epochs, and (resolved) device and precision (bf16
    trains a conv net 2-2.5x faster than fp32 on a CPU with native bf16)."""
    from focalbench.identity import resolve_device_name, resolve_precision

    def get(tree, dotted):
        for part in dotted.split("."):
            tree = tree.get(part) if hasattr(tree, "get") else None
            if tree is None:
                return None
        return tree

    device = get(cfg, "device")
    device = resolve_device_name(device) if device is not None else None
    precision = get(cfg, "precision")
    return (
        get(cfg, "data.name"),
        get(cfg, "data.n_classes"),
        get(cfg, "model.name"),
        get(cfg, "epochs"),
        device,
        resolve_precision(precision, device or "cpu") if precision is not None else None,
    )


def record_times(results_dir: Path) -> dict[tuple, list[float]]:
    """Wall times of the finished (ok) records in ``results_dir``, by :func:`similarity_key`; records of
    earlier versions count too (the time, not the result, is what is reused). The device and precision are
    the ones the record ran in."""
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
        env = metrics.get("environment") or {}
        cfg["device"] = str(env.get("device", cfg.get("device"))).split(":")[0]
        cfg["precision"] = env.get("precision", cfg.get("precision"))  # as it ran, not as auto means here
        times.setdefault(similarity_key(cfg), []).append(float(wall))
    return times


@dataclass
class Estimate:
    seconds: float  # summed over the runs with an estimate
    estimated: int  # runs with similar records
    unknown: int  # runs without
    probed: int = 0  # runs estimated from a timed probe (counted in neither of the above)
    probe_notes: list[str] = field(default_factory=list)  # per probe: what it measured, or why it could not


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


# A dry run without similar records times a few training steps of one run per kind (similarity_key):
PROBE_WARMUP = 2  # untimed first steps (allocations, first calls)
PROBE_STEPS = 5  # timed steps
MAX_PROBES = 3  # kinds probed at most per dry run (each loads its data and builds its model)


class _ProbeDone(Exception):
    """Raised from the progress callback to stop the probe's training after its steps."""


@dataclass
class Probe:
    seconds: float | None  # the run's estimated training time; None when the probe could not tell
    note: str  # what was measured, or why there is no estimate


def probe_run_time(cfg: DictConfig) -> Probe:
    """Estimate how long the run ``cfg`` trains by timing :data:`PROBE_STEPS` of its training steps (after
    :data:`PROBE_WARMUP`), in this process, through the real training loop, writing nothing. The estimate is
    seconds per step x steps per epoch x epochs: training only, unfused; each epoch's evaluation adds to it.
    A run with no more steps than the probe needs is simply trained whole and its time is the estimate. Never
    raises: a probe that fails says why in its note."""
    import math
    import time

    from omegaconf import open_dict

    try:
        from focalbench.data import load_data, resolve_run_config, run_data_config
        from focalbench.training.loop import Diverged, train
        from focalbench.training.runner import prepare_run, set_up_process

        cfg = resolve_run_config(cfg).copy()
        with open_dict(cfg):
            cfg.log_every = 1  # a progress event after every step: the probe's clock
        device, precision = set_up_process(cfg)
        data = load_data(run_data_config(cfg), device)
        setup = prepare_run(cfg, "probe", data, device, precision)
        steps = max(1, math.ceil(int(data.train_y.numel()) / int(cfg.batch_size))) * int(cfg.epochs)
        ticks: list[float] = []

        def progress(event: dict) -> None:
            if event.get("event") == "step":
                if device.type == "cuda":
                    import torch

                    torch.cuda.synchronize()
                ticks.append(time.perf_counter())
                if len(ticks) == PROBE_WARMUP + PROBE_STEPS:
                    raise _ProbeDone

        start = time.perf_counter()
        try:
            train(cfg, data, setup.model, setup.alpha, device, precision, progress)
        except _ProbeDone:
            per_step = (ticks[-1] - ticks[PROBE_WARMUP - 1]) / PROBE_STEPS
            return Probe(
                per_step * steps,
                f"{cfg.data.name}/{cfg.model.name}: {per_step * 1000:.3g} ms a step over {PROBE_STEPS} timed "
                f"steps, x {steps} steps",
            )
        except Diverged:
            return Probe(None, f"{cfg.data.name}/{cfg.model.name}: the probe's loss diverged; no estimate")
        return Probe(
            time.perf_counter() - start, f"{cfg.data.name}/{cfg.model.name}: trained whole ({steps} steps)"
        )
    except Exception as exc:  # a probe is a courtesy: the dry run goes on and says why there is no estimate
        return Probe(None, f"{cfg.data.name}/{cfg.model.name}: no probe ({type(exc).__name__}: {exc})")


def estimate_with_probes(plan: SweepPlan, run_ids: list[str], probe=probe_run_time) -> Estimate:
    """:func:`estimate_time`, then for the runs without similar records a timed probe of one run per kind
    (:func:`similarity_key`; at most :data:`MAX_PROBES` kinds), its estimate used for every run of that kind."""
    estimate = estimate_time(plan, run_ids)
    if not estimate.unknown:
        return estimate
    times = record_times(plan.results_dir)
    cells: dict[str, Cell] = {}
    for cell in plan.cells:
        cells.setdefault(cell.run_id, cell)
    kinds: dict[tuple, list[str]] = {}
    for rid in run_ids:
        key = similarity_key(cells[rid].cfg)
        if key not in times:
            kinds.setdefault(key, []).append(rid)
    for i, rids in enumerate(kinds.values()):
        if i >= MAX_PROBES:
            estimate.probe_notes.append(
                f"{len(rids)} run(s) of another kind: not probed (at most {MAX_PROBES} kinds)"
            )
            continue
        result = probe(cells[rids[0]].cfg)
        estimate.probe_notes.append(result.note)
        if result.seconds is not None:
            estimate.seconds += result.seconds * len(rids)
            estimate.probed += len(rids)
            estimate.unknown -= len(rids)
    return estimate
