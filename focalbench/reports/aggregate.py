"""Reading run records and grouping them into grid cells.

A *run* is one folder ``<results_dir>/runs/<run_id>/`` (see :mod:`focalbench.training.record`). A *cell* is
the set of runs whose semantic config (``config.yaml`` minus ``seed`` and the non-semantic keys of
:data:`focalbench.config.NON_SEMANTIC_KEYS` / ``NON_SEMANTIC_DATA_KEYS``) is the same: the repeats of one grid
point over seeds. Cells keep the order in which their first run appears in the run list handed in (for a
sweep: the order of ``sweep.json``'s runs, which is Hydra's grid order).

Cells are labelled by the config keys that *vary* across the cells being reported, under short names
(``loss`` for ``loss.name``, ``data`` for ``data.name``, ...): ``loss=focal gamma=2 alpha=none``.

Selectors (``--baseline "gamma=0 alpha=none"``, a claim's ``a:``/``b:``) are space-separated ``key=value``
pairs matched against a cell's config: keys are short names or dotted full keys, values are compared after
normalising numbers (``0`` == ``0.0``) and lists.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from focalbench.errors import ConfigError
from focalbench.identity import NON_SEMANTIC_DATA_KEYS, NON_SEMANTIC_KEYS
from focalbench.training import record

# Short names shown in labels and accepted in selectors, for the dotted config keys people sweep most.
SHORT_NAMES = {
    "loss.name": "loss",
    "data.name": "data",
    "model.name": "model",
    "data.data_seed": "data_seed",
    "data.profile": "profile",
    "optim.lr": "lr",
    "loss.beta": "beta",
}
ALIASES = {short: full for full, short in SHORT_NAMES.items()}
# Label order: the loss keys first, then the data and model, then anything else alphabetically.
KEY_ORDER = ("loss.name", "gamma", "alpha", "loss.beta", "imbalance", "data.name", "model.name")
# Keys that describe the loss; the others describe the setting (data, model, schedule) a loss is tried in.
LOSS_KEYS = frozenset({"loss.name", "gamma", "alpha", "loss.beta", "loss.normalize"})

# Run states, from the record on disk.
OK, DIVERGED, ERROR, INCOMPLETE, MISSING = "ok", "diverged", "error", "incomplete", "missing"


@dataclass
class RunRecord:
    """One run folder as read from disk. ``config`` is the flattened semantic config (dotted keys, no seed)."""

    run_dir: Path
    run_id: str
    status: str  # ok | diverged | error | incomplete (config.yaml but no result) | missing (no folder)
    seed: int | None
    config: dict[str, Any]
    metrics: dict | None = None
    message: str = ""  # why a run that is not ok is not

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class Cell:
    """The runs of one grid point: same semantic config, different seeds (only ok runs kept in ``runs``)."""

    key: str  # canonical JSON of the semantic config: the identity of the cell
    config: dict[str, Any]  # flattened semantic config
    runs: list[RunRecord] = field(default_factory=list)
    label: str = ""

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs]


# ----------------------------------------------------------------------------------------------------------
# Finding and reading run folders
# ----------------------------------------------------------------------------------------------------------


def collect_run_dirs(paths: list[str | Path]) -> list[Path]:
    """The run folders named by ``paths``, in order, without repeats.

    Each path may be a sweep folder (its ``sweep.json`` lists the run ids, in grid order; run folders are
    ``<sweep folder>/../../runs/<run_id>``), a single run folder, a folder of run folders (a results
    folder's ``runs/``), or a results folder holding ``runs/``. A run listed by a sweep whose folder is
    gone is still returned, so that the report lists it as missing. Raises ConfigError for anything else.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if (path / "sweep.json").is_file():
            found.extend(sweep_run_dirs(path))
        elif _is_run_dir(path):
            found.append(path)
        elif (path / "runs").is_dir():
            found.extend(sorted(p for p in (path / "runs").iterdir() if _is_run_dir(p)))
        elif path.is_dir() and any(_is_run_dir(p) for p in path.iterdir()):
            found.extend(sorted(p for p in path.iterdir() if _is_run_dir(p)))
        else:
            raise ConfigError(
                f"{raw}: not a sweep folder (with sweep.json), a run folder (with config.yaml) "
                f"or a folder of runs"
            )
    return list(dict.fromkeys(found))


def sweep_run_dirs(sweep_dir: Path) -> list[Path]:
    """The run folders of a sweep, in the order of ``sweep.json``'s runs."""
    listing = json.loads((Path(sweep_dir) / "sweep.json").read_text())
    results_dir = Path(sweep_dir).resolve().parent.parent
    ids = [r["run_id"] for r in listing.get("runs", [])] or list(listing.get("run_ids", []))
    return [record.run_dir(results_dir, rid) for rid in dict.fromkeys(ids)]


def _is_run_dir(path: Path) -> bool:
    return path.is_dir() and any(
        (path / f).is_file() for f in ("config.yaml", record.METRICS_FILE, record.ERROR_FILE)
    )


def read_run(run_dir: Path) -> RunRecord:
    """Read one run folder; never raises for a failed or missing run (its status says what happened)."""
    run_dir = Path(run_dir)
    rid = run_dir.name
    if not run_dir.is_dir():
        return RunRecord(run_dir, rid, MISSING, None, {}, message="run folder not found")
    raw_cfg = _read_config(run_dir)
    seed = raw_cfg.get("seed") if raw_cfg else None
    config = flatten(semantic_part(raw_cfg)) if raw_cfg else {}
    metrics = record.read_metrics(run_dir)
    if metrics is not None:
        status = metrics.get("status", OK)
        message = ""
        if status == DIVERGED:
            d = metrics.get("divergence") or {}
            message = f"diverged at epoch {d.get('epoch')}, step {d.get('step')}"
        seed = metrics.get("seed", seed)
        return RunRecord(run_dir, rid, status, seed, config, metrics, message)
    error = record.read_error(run_dir)
    if error is not None:
        return RunRecord(run_dir, rid, ERROR, seed, config, None, str(error.get("error", "")))
    return RunRecord(
        run_dir, rid, INCOMPLETE, seed, config, None, "no metrics.json (killed or still running)"
    )


def _read_config(run_dir: Path) -> dict | None:
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def semantic_part(cfg: dict) -> dict:
    """The config minus ``seed`` and the non-semantic keys (the same keys the run id leaves out)."""
    out = {k: v for k, v in cfg.items() if k not in NON_SEMANTIC_KEYS and k != "seed"}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k not in NON_SEMANTIC_DATA_KEYS}
    return out


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys: {"data": {"name": "x"}} -> {"data.name": "x"}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


# ----------------------------------------------------------------------------------------------------------
# Cells and their labels
# ----------------------------------------------------------------------------------------------------------


def group_cells(runs: list[RunRecord]) -> list[Cell]:
    """Group the ok runs by semantic config, in order of first appearance; label them by the varying keys.

    Two ok runs of one cell with the same seed (possible only if records were copied by hand) keep the
    first. Runs that are not ok are not in any cell; the report lists them separately.
    """
    cells: dict[str, Cell] = {}
    for run in runs:
        if not run.ok:
            continue
        key = json.dumps(run.config, sort_keys=True, default=str)
        cell = cells.setdefault(key, Cell(key, run.config))
        if run.seed not in cell.seeds:
            cell.runs.append(run)
    out = list(cells.values())
    keys = varying_keys([c.config for c in out])
    for cell in out:
        cell.label = cell_label(cell.config, keys) if keys else default_label(cell.config)
    return out


def varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose value differs between ``configs``, in label order, without redundant keys.

    A key whose values always agree with an earlier key's (``data.imbalance`` follows ``imbalance``) is
    dropped, so each difference is shown once.
    """
    if len(configs) < 2:
        return []
    all_keys = sorted({k for c in configs for k in c}, key=_key_rank)
    varying = [k for k in all_keys if len({canonical(c.get(k)) for c in configs}) > 1]
    kept: list[str] = []
    for key in varying:
        column = [canonical(c.get(key)) for c in configs]
        if not any(column == [canonical(c.get(k)) for c in configs] for k in kept):
            kept.append(key)
    return kept


def _key_rank(key: str) -> tuple[int, str]:
    return (KEY_ORDER.index(key), "") if key in KEY_ORDER else (len(KEY_ORDER), key)


def short_name(key: str) -> str:
    return SHORT_NAMES.get(key, key)


def format_value(value: Any) -> str:
    """A config value as written in a label: numbers with %g, lists as [a,b], None as null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def cell_label(config: dict[str, Any], keys: list[str]) -> str:
    return " ".join(f"{short_name(k)}={format_value(config.get(k))}" for k in keys)


def default_label(config: dict[str, Any]) -> str:
    """The label of a cell when nothing varies: its loss keys."""
    return cell_label(config, ["loss.name", "gamma", "alpha"])


# ----------------------------------------------------------------------------------------------------------
# Selectors
# ----------------------------------------------------------------------------------------------------------


def parse_selector(text: str) -> list[tuple[str, Any]]:
    """``"gamma=0 alpha=none"`` -> [("gamma", 0.0), ("alpha", "none")] with keys resolved to dotted keys.

    Values are parsed as YAML (so ``0``, ``0.0``, ``[1, 2]`` and ``none`` read as expected) and then
    normalised. Raises ConfigError for a pair without ``=`` or an empty selector.
    """
    pairs = []
    for token in str(text).split():
        if "=" not in token:
            raise ConfigError(f"selector '{text}': '{token}' is not key=value (e.g. \"gamma=0 alpha=none\")")
        key, value = token.split("=", 1)
        if key == "seed":
            raise ConfigError(f"selector '{text}': seed cannot select a cell (a cell pools its seeds)")
        pairs.append((ALIASES.get(key, key), canonical(_parse_value(value))))
    if not pairs:
        raise ConfigError('empty selector; write key=value pairs such as "gamma=0 alpha=none"')
    return pairs


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def canonical(value: Any) -> Any:
    """A hashable normal form: numbers as float (0 == 0.0), lists as tuples, None/'null' as None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    if isinstance(value, str) and value.lower() in ("null", "~"):
        return None
    return value


def matches(config: dict[str, Any], pairs: list[tuple[str, Any]]) -> bool:
    # A key absent from this config (but known to others: select_cells checks) reads as null.
    return all(canonical(config.get(key)) == value for key, value in pairs)


def select_cells(cells: list[Cell], selector: str) -> list[Cell]:
    """The cells whose config matches every pair of ``selector``; ConfigError listing the cells if none."""
    pairs = parse_selector(selector)
    known = set().union(*(c.config for c in cells)) if cells else set()
    for key, _ in pairs:
        if key not in known:
            raise ConfigError(
                f"selector '{selector}': unknown key '{key}'; use a short name "
                f"({', '.join(sorted(ALIASES))}) or a dotted config key such as gamma, alpha, data.imbalance"
            )
    chosen = [c for c in cells if matches(c.config, pairs)]
    if not chosen:
        hint = ""
        if ("loss.name", "balanced_ce") in pairs:
            hint = ' (balanced_ce is loss=ce with class weights: select it as "loss=ce alpha=inverse_freq")'
        raise ConfigError(f"selector '{selector}' matches no cell{hint}; the cells are: {list_cells(cells)}")
    return chosen


def list_cells(cells: list[Cell]) -> str:
    return "; ".join(f"'{c.label}'" for c in cells) or "(none)"


# ----------------------------------------------------------------------------------------------------------
# Metric values
# ----------------------------------------------------------------------------------------------------------

# metric name -> (label, unit-format, better): better is "higher", "lower" or None (no best is marked).
METRIC_INFO: dict[str, tuple[str, str, str | None]] = {
    "accuracy": ("top-1 acc %", "{:.2f}", "higher"),
    "top1_error": ("top-1 error %", "{:.2f}", "lower"),
    "balanced_accuracy": ("bal. acc %", "{:.2f}", "higher"),
    "macro_f1": ("macro-F1 %", "{:.2f}", "higher"),
    "many_shot_acc": ("many-shot %", "{:.2f}", "higher"),
    "medium_shot_acc": ("medium-shot %", "{:.2f}", "higher"),
    "few_shot_acc": ("few-shot %", "{:.2f}", "higher"),
    "nll": ("NLL", "{:.4f}", "lower"),
    "ece": ("ECE %", "{:.2f}", "lower"),
    "nll_ts": ("NLL after T-scaling", "{:.4f}", "lower"),
    "ece_ts": ("ECE % after T-scaling", "{:.2f}", "lower"),
    "temperature": ("temperature T", "{:.3f}", None),
    "wall_time_s": ("wall time s", "{:.1f}", "lower"),
    "train_time_s": ("train time s", "{:.1f}", "lower"),
    "images_per_s": ("images/s", "{:.0f}", "higher"),
}
DEFAULT_METRICS = ("balanced_accuracy", "few_shot_acc", "macro_f1", "nll", "ece", "wall_time_s")
TEST_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "many_shot_acc",
    "medium_shot_acc",
    "few_shot_acc",
    "nll",
    "ece",
)
_CALIBRATION = ("nll_ts", "ece_ts", "temperature")
_TIMING = ("wall_time_s", "train_time_s", "images_per_s")


def check_metric(name: str) -> None:
    """ConfigError unless ``name`` is a metric the report knows (optionally prefixed ``best_val.``)."""
    base = name.removeprefix("best_val.")
    if base not in METRIC_INFO or (
        name.startswith("best_val.") and base not in (*TEST_METRICS, "top1_error")
    ):
        allowed = ", ".join([*METRIC_INFO, "best_val.<test metric>"])
        raise ConfigError(f"unknown metric '{name}'; choose from: {allowed}")


def metric_info(name: str) -> tuple[str, str, str | None]:
    """(label, format, better) of a metric; ``best_val.x`` is labelled as test at the best-val epoch."""
    base = name.removeprefix("best_val.")
    label, fmt, better = METRIC_INFO[base]
    if name != base:
        label = f"{label} (best-val ep.)"
    return label, fmt, better


def metric_value(metrics: dict, name: str) -> float | None:
    """One scalar of a run's metrics.json: final-epoch test metrics, ``top1_error`` = 100 - accuracy,
    calibration (``nll_ts``, ``ece_ts``, ``temperature``), timing, or ``best_val.<metric>`` (test metrics
    at the best validation epoch). None when the record has no such value (e.g. no validation split)."""
    if name.startswith("best_val."):
        best = metrics.get("best_val") or {}
        return _test_value(best.get("test") or {}, name.removeprefix("best_val."))
    if name in _CALIBRATION:
        return _finite((metrics.get("calibration") or {}).get(name))
    if name in _TIMING:
        return _finite((metrics.get("timing") or {}).get(name))
    return _test_value(metrics.get("test") or {}, name)


def _test_value(test: dict, name: str) -> float | None:
    if name == "top1_error":
        acc = _finite(test.get("accuracy"))
        return None if acc is None else 100.0 - acc
    return _finite(test.get(name))


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def seed_values(cell: Cell, metric: str) -> dict[int, float]:
    """{seed: value} of ``metric`` over the cell's ok runs that have it."""
    out = {}
    for run in cell.runs:
        value = metric_value(run.metrics or {}, metric)
        if value is not None:
            out[run.seed] = value
    return out
