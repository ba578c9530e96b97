"""Run records as reports read them: run folders, labels, selectors and metric values.

A *run* is one folder ``<results_dir>/runs/<run_id>/`` (:mod:`focalbench.training.record`); its ``config``
here is the flattened *semantic* config: dotted keys, without ``seed`` and the keys the run id leaves out.
Labels and selectors use short names for the keys people sweep most (``loss`` for ``loss.name``, ...).
A selector (``--baseline "gamma=0 alpha=none"``, a claim's ``a:``) is space-separated ``key=value`` pairs;
values are compared after normalising numbers (``0`` == ``0.0``) and lists.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from focalbench.errors import ConfigError
from focalbench.identity import (
    GAMMA_LOSSES,
    NON_SEMANTIC_DATA_KEYS,
    NON_SEMANTIC_KEYS,
    drop_later_keys_at_default,
)
from focalbench.training import record

# fmt: off
# Short names shown in labels and accepted in selectors, for the dotted config keys people sweep most.
SHORT_NAMES = {"loss.name": "loss", "data.name": "data", "model.name": "model", "data.data_seed": "data_seed",
               "data.profile": "profile", "optim.lr": "lr", "loss.beta": "beta"}
ALIASES = {short: full for full, short in SHORT_NAMES.items()}
# Label order: the loss keys first, then the data and model, then anything else alphabetically.
KEY_ORDER = ("loss.name", "gamma", "alpha", "loss.beta", "imbalance", "data.name", "model.name")
# The keys that describe the loss (and every loss.* key): by default losses are compared within a setting.
LOSS_KEYS = frozenset({"gamma", "alpha", "alpha_start_epoch", "model.norm_classifier", "model.norm_classifier_init"})
# Where a run was made (metrics.json "environment"); --group-by names them env.device etc.
ENV_FIELDS = ("env.focalbench", "env.device", "env.precision")
OK, DIVERGED, ERROR, INCOMPLETE, MISSING = "ok", "diverged", "error", "incomplete", "missing"

# metric -> (label, number format, which is better: "higher", "lower" or None for no best cell).
METRIC_INFO: dict[str, tuple[str, str, str | None]] = {
    "accuracy":          ("top-1 acc %", "{:.2f}", "higher"),
    "top1_error":        ("top-1 error %", "{:.2f}", "lower"),   # 100 − accuracy
    "balanced_accuracy": ("bal. acc %", "{:.2f}", "higher"),
    "macro_f1":          ("macro-F1 %", "{:.2f}", "higher"),
    "many_shot_acc":     ("many-shot %", "{:.2f}", "higher"),
    "medium_shot_acc":   ("medium-shot %", "{:.2f}", "higher"),
    "few_shot_acc":      ("few-shot %", "{:.2f}", "higher"),
    "tail_acc":          ("tail % (rarest 1/5)", "{:.2f}", "higher"),
    "nll":               ("NLL", "{:.4f}", "lower"),
    "ece":               ("ECE %", "{:.2f}", "lower"),
    "nll_ts":            ("NLL after T-scaling", "{:.4f}", "lower"),
    "ece_ts":            ("ECE % after T-scaling", "{:.2f}", "lower"),
    "temperature":       ("temperature T", "{:.3f}", None),
    "wall_time_s":       ("wall time s", "{:.1f}", "lower"),
    "train_time_s":      ("train time s", "{:.1f}", "lower"),
    "images_per_s":      ("images/s", "{:.0f}", "higher"),
}
# time is never compared or ranked between cells: a fused group's members each record a share of its time
TIME_METRICS = ("wall_time_s", "train_time_s", "images_per_s")
# The metrics.json section of the metrics that are not test metrics.
SECTIONS = dict.fromkeys(("nll_ts", "ece_ts", "temperature"), "calibration") | dict.fromkeys(TIME_METRICS, "timing")
DEFAULT_METRICS = ("balanced_accuracy", "few_shot_acc", "macro_f1", "nll", "ece", "wall_time_s")
TEST_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "many_shot_acc", "medium_shot_acc", "few_shot_acc",
                "tail_acc", "nll", "ece")
# fmt: on


@dataclass
class RunRecord:
    """One run folder as read from disk."""

    run_dir: Path
    run_id: str
    status: str  # ok | diverged | error | incomplete (config.yaml but no result) | missing (no folder)
    seed: int | None
    config: dict[str, Any]  # the flattened semantic config
    metrics: dict | None = None
    message: str = ""  # why a run that is not ok is not

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def env(self) -> dict[str, Any]:
        """``env.focalbench``, ``env.device`` (its type: ``cuda:1`` is cuda) and ``env.precision``."""
        env = (self.metrics or {}).get("environment") or {}
        device = env.get("device")
        env = env | {"device": device.split(":")[0] if isinstance(device, str) else device}
        return {key: env.get(key.removeprefix("env.")) for key in ENV_FIELDS}


def collect_run_dirs(paths: list[str | Path]) -> list[Path]:
    """The run folders named by ``paths``, in order, without repeats: a sweep folder (its ``sweep.json``'s
    runs in grid order, missing folders included so that they are reported as missing), a run folder, a
    folder of run folders, or a results folder holding ``runs/``. ConfigError for anything else."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser().resolve()
        if (path / "sweep.json").is_file():
            found.extend(sweep_run_dirs(path))
        elif _is_run_dir(path):
            found.append(path)
        elif (path / "runs").is_dir() or (path.is_dir() and any(_is_run_dir(p) for p in path.iterdir())):
            parent = path / "runs" if (path / "runs").is_dir() else path
            found.extend(sorted(p for p in parent.iterdir() if _is_run_dir(p)))
        else:
            kinds = "a sweep folder (with sweep.json), a run folder (with config.yaml) or a folder of runs"
            raise ConfigError(f"{raw}: not {kinds}")
    return list(dict.fromkeys(found))


def sweep_run_dirs(sweep_dir: Path) -> list[Path]:
    """The run folders of a sweep (``<results>/sweeps/<name>``), in the order of ``sweep.json``'s runs."""
    listing = json.loads((Path(sweep_dir) / "sweep.json").read_text())
    ids = [r["run_id"] for r in listing.get("runs", [])] or list(listing.get("run_ids", []))
    return [record.run_dir(Path(sweep_dir).resolve().parent.parent, rid) for rid in dict.fromkeys(ids)]


def _is_run_dir(path: Path) -> bool:
    files = ("config.yaml", record.METRICS_FILE, record.ERROR_FILE)
    return path.is_dir() and any((path / f).is_file() for f in files)


def read_run(run_dir: Path) -> RunRecord:
    """Read one run folder; never raises for a failed or missing run (its status says what happened)."""
    run_dir, rid = Path(run_dir), Path(run_dir).name
    if not run_dir.is_dir():
        return RunRecord(run_dir, rid, MISSING, None, {}, message="run folder not found")
    cfg_file = run_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_file.read_text()) if cfg_file.is_file() else None
    seed, config = (cfg.get("seed"), flatten(semantic_part(cfg))) if cfg else (None, {})
    metrics, error = record.read_metrics(run_dir), record.read_error(run_dir)
    if metrics is not None:
        config = resolve_auto(config, metrics)
        status, d = metrics.get("status", OK), metrics.get("divergence") or {}
        why = f"diverged at epoch {d.get('epoch')}, step {d.get('step')}" if status == DIVERGED else ""
        return RunRecord(run_dir, rid, status, metrics.get("seed", seed), config, metrics, why)
    if error is not None:
        return RunRecord(run_dir, rid, ERROR, seed, config, None, str(error.get("error", "")))
    why = "no metrics.json (killed or still running)"
    return RunRecord(run_dir, rid, INCOMPLETE, seed, config, None, why)


def resolve_auto(config: dict[str, Any], metrics: dict) -> dict[str, Any]:
    """``config`` with ``device=auto`` and ``precision=auto`` replaced by what the run ran on and in (its
    record's ``environment``), as its run id resolves them: a run made with ``precision=auto`` on a CPU with
    native bf16 is the run ``precision=bf16``, and a claim or selector naming ``precision=bf16`` finds it."""
    env = metrics.get("environment") or {}
    resolved = {"device": str(env.get("device") or "").split(":")[0], "precision": env.get("precision")}
    return {
        key: resolved[key] if value == "auto" and key in resolved and resolved[key] else value
        for key, value in config.items()
    }


def data_file_digest(run: RunRecord, key: str) -> str | None:
    """The sha256 of the file (or folder) a run's data key ``data.<x>path`` named when it ran, from its
    record's provenance (``data.provenance``, ``data.test_provenance``, ``data.labels_provenance``)."""
    field = key.removeprefix("data.").removesuffix("path") + "provenance"
    provenance = ((run.metrics or {}).get("data") or {}).get(field)
    digest = provenance.get("sha256") if isinstance(provenance, dict) else None
    return digest if isinstance(digest, str) else None


def unify_data_paths(runs: list[RunRecord]) -> None:
    """Key your own data's files by content, not by how their path was typed (changes ``run.config``).

    Runs are identified by their data's content (:mod:`focalbench.identity`), so one file reached as
    ``data/x.csv`` in one sweep and ``/home/me/data/x.csv`` in the next gives the same runs; their records
    keep the path as typed, and cells keyed by it would split. Every ``data.*path`` value of a finished run is
    replaced by the first path seen with the same sha256 (from the record's provenance): runs of one file
    share one value, shown as the path. A path whose content differs between runs (a file changed in place)
    gets its sha256's first 12 digits appended, so that its cells stay apart and say why.
    """
    found = []  # (run, key, path as typed, digest)
    for run in runs:
        for key, value in run.config.items():
            if key.startswith("data.") and key.endswith("path") and isinstance(value, str):
                digest = data_file_digest(run, key)
                if digest is not None:
                    found.append((run, key, value, digest))
    digests_of_path: dict[str, set[str]] = {}
    for _, _, path, digest in found:
        digests_of_path.setdefault(path, set()).add(digest)
    shown: dict[str, str] = {}
    for _, _, path, digest in found:
        ambiguous = len(digests_of_path[path]) > 1
        shown.setdefault(digest, f"{path} (sha256 {digest[:12]})" if ambiguous else path)
    for run, key, _, digest in found:
        run.config[key] = shown[digest]


def semantic_part(cfg: dict) -> dict:
    """The config minus ``seed`` and the non-semantic keys (the same keys the run id leaves out), and minus the
    keys added later that hold their old value (``loss.mean=weights``), so that a record made before such a
    key existed falls in the same cell as a new record of the same run."""
    out = {k: v for k, v in cfg.items() if k not in NON_SEMANTIC_KEYS and k != "seed"}
    if isinstance(out.get("data"), dict):
        out["data"] = {k: v for k, v in out["data"].items() if k not in NON_SEMANTIC_DATA_KEYS}
    if isinstance(out.get("loss"), dict):
        out["loss"] = dict(out["loss"])  # a copy: the caller's config is left as it was
    return drop_later_keys_at_default(out)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys: {"data": {"name": "x"}} -> {"data.name": "x"}; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat |= flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return flat


def varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """The dotted keys whose value differs between ``configs``, in label order. A key whose values always
    agree with an earlier key's (``data.imbalance`` follows ``imbalance``) is left out: each difference
    is shown once."""
    columns: dict[str, list] = {}
    rank = {k: i for i, k in enumerate(KEY_ORDER)}  # known keys in KEY_ORDER, then the rest alphabetically
    for key in sorted({k for c in configs for k in c}, key=lambda k: (rank.get(k, len(rank)), k)):
        column = [canonical(c.get(key)) for c in configs]
        if len(set(column)) > 1 and column not in columns.values():
            columns[key] = column
    return list(columns)


def is_loss_key(key: str) -> bool:
    return key in LOSS_KEYS or key.startswith("loss.")


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
    """``short=value`` for each of ``keys``; with no keys, the loss keys (``loss=ce gamma=0 alpha=none``).

    A key the cell does not have (null: ``gamma`` of LDAM, ``loss.tau`` of focal loss) is left out, so each
    cell shows only its own loss's keys."""
    keys = keys or ["loss.name", "gamma", "alpha"]
    return " ".join(
        f"{short_name(k)}={format_value(config.get(k))}" for k in keys if config.get(k) is not None
    )


# Keys left out of a cell's label where they hold their default: a reader needs them only where they differ
# (``model.norm_classifier=true`` says LDAM's cosine head; ``=false`` says nothing).
LABEL_DEFAULTS: dict[str, Any] = {
    "model.norm_classifier": False,
    "model.norm_classifier_init": "linear",
    "alpha_start_epoch": 0,
    "loss.normalize": "sum_to_C",
}
# What a loss preset file leaves to the schema (focalbench.config), for comparing records with presets.
_PRESET_BASE: dict[str, Any] = {"loss.beta": 0.9999, **LABEL_DEFAULTS}
_SHARED_LOSS = ("loss.name", "loss.beta", "loss.normalize", "loss.mean")


@lru_cache(maxsize=1)
def loss_presets() -> dict[str, dict[str, Any]]:
    """Each loss preset of focalbench's ``configs/loss/`` (``ldam_drw``, ``balanced_ce``, ...) as the flat
    loss keys a record of it holds (``loss.*``, ``gamma``, ``alpha``, ``alpha_start_epoch``, ``model.*``):
    its file over the files its ``defaults`` name, over the schema's defaults."""
    from focalbench.config import config_dir

    folder = config_dir() / "loss"

    def load(name: str) -> dict[str, Any]:
        tree = yaml.safe_load((folder / f"{name}.yaml").read_text()) or {}
        flat = dict(_PRESET_BASE)
        for base in tree.pop("defaults", None) or []:
            if isinstance(base, str) and base != "_self_":
                flat |= load(base)
        flat |= flatten(tree)
        if flat.get("loss.mean") == "weights":  # records leave it out at this value (identity.LATER_KEYS)
            del flat["loss.mean"]
        return flat

    return {p.stem: load(p.stem) for p in sorted(folder.glob("*.yaml"))}


@lru_cache(maxsize=32)
def model_defaults(name: str) -> dict[str, Any]:
    """The keys of ``configs/model/<name>.yaml`` as flat ``model.*`` keys ({} for a model without a file)."""
    from focalbench.config import config_dir

    path = config_dir() / "model" / f"{name}.yaml"
    tree = yaml.safe_load(path.read_text()) if path.is_file() else None
    return flatten({"model": tree}) if isinstance(tree, dict) else {}


def at_default(config: dict[str, Any], key: str) -> bool:
    """Whether ``key`` holds its default in ``config``: :data:`LABEL_DEFAULTS`, or a model key at the value of
    the model's own file (``model.head_bias=false`` for the cnn)."""
    if key in LABEL_DEFAULTS:
        return canonical(config.get(key)) == canonical(LABEL_DEFAULTS[key])
    if key.startswith("model.") and key != "model.name":
        defaults = model_defaults(str(config.get("model.name")))
        return key in defaults and canonical(config.get(key)) == canonical(defaults[key])
    return False


def _matches(config: dict[str, Any], preset: dict[str, Any], keys=None) -> bool:
    return all(
        canonical(config.get(k)) == canonical(v) for k, v in preset.items() if keys is None or k in keys
    )


def preset_changes(preset_name: str) -> dict[str, Any] | None:
    """What a preset built on another loss sets apart from that loss's own preset, canonical values by key
    (``ldam_drw`` -> alpha=effective_num, alpha_start_epoch=0.8, …; {} for an alias such as
    ``balanced_softmax``); None for a loss's own preset or an unknown name. ``loss.name`` is never a key."""
    presets = loss_presets()
    flat = presets.get(preset_name)
    base = presets.get(str((flat or {}).get("loss.name")))
    if flat is None or base is None or flat.get("loss.name") == preset_name:
        return None
    return {
        k: canonical(v)
        for k, v in flat.items()
        if k != "loss.name" and canonical(v) != canonical(base.get(k))
    }


def implied_keys(preset_name: str) -> set[str]:
    """The keys a loss preset's name says (left out of a label that shows the name, where they hold the
    preset's value): the loss's own keys and the model keys; for a preset built on another (``ldam_drw`` on
    ``ldam``, ``balanced_ce`` on ``ce``) also the keys it changes (alpha, alpha_start_epoch). Never gamma or
    alpha of a loss's own preset: a gamma sweep shows every gamma."""
    flat = loss_presets()[preset_name]
    keys = {k for k in flat if k.startswith("model.") or (k.startswith("loss.") and k not in _SHARED_LOSS)}
    return (keys | set(preset_changes(preset_name) or {})) - {"loss.name"}


def loss_display_name(config: dict[str, Any], typed: list[str] | tuple[str, ...] = ()) -> str | None:
    """The loss preset a cell is, by name: the first of the names the user typed (``typed``, from the
    sweep's overrides) that is a preset of the cell's loss; else the preset the config matches exactly,
    the loss's own (``logit_adjusted``, not its alias ``balanced_softmax``) before one built on it
    (``ldam_drw``); None when there is no such preset (the label then shows ``loss.name`` and the keys)."""
    presets, loss = loss_presets(), config.get("loss.name")
    for name in typed:
        if name in presets and presets[name].get("loss.name") == loss:
            return name
    exact = [p for p, flat in presets.items() if flat.get("loss.name") == loss and _matches(config, flat)]
    if loss in exact:
        return str(loss)
    return exact[0] if exact else None


def readable_labels(
    configs: list[dict[str, Any]], varying: list[str], typed: list[list[str]] | None = None
) -> list[str]:
    """Labels of cells that read as the user named them: ``loss=ldam_drw`` rather than ``loss=ldam
    alpha=effective_num alpha_start_epoch=0.8``; keys at their default (:data:`LABEL_DEFAULTS`) and keys
    the loss's name says (:func:`implied_keys`) left out, and so is gamma = 0 of a loss without gamma
    (:data:`GAMMA_LOSSES`). ``typed``: per cell, the loss names typed for its
    runs. Display only: run ids and selectors read the configs. Falls back to :func:`cell_label` for a cell
    whose label would be empty, and for all cells where two labels would be the same."""
    typed = typed or [[] for _ in configs]
    names = [loss_display_name(c, t) for c, t in zip(configs, typed, strict=True)]
    shown = [n or c.get("loss.name") for n, c in zip(names, configs, strict=True)]
    keys = list(varying)
    if "loss.name" not in keys and len({str(n) for n in shown}) > 1:
        keys.insert(0, "loss.name")
    labels = []
    for config, name, display in zip(configs, names, shown, strict=True):
        implied = implied_keys(name) if name and "loss.name" in keys else set()
        preset = loss_presets().get(name or "", {})
        parts = []
        for k in keys:
            value = config.get(k)
            if k == "loss.name":
                parts.append(f"loss={display}")
            elif value is None or at_default(config, k):
                continue
            elif k == "gamma" and config.get("loss.name") not in GAMMA_LOSSES and not value:
                continue  # a loss without gamma (identity.GAMMA_LOSSES): gamma=0 says nothing
            elif not (k in implied and canonical(value) == canonical(preset.get(k))):
                parts.append(f"{short_name(k)}={format_value(value)}")
        labels.append(" ".join(parts) or cell_label(config, varying))
    if len(set(labels)) < len(labels):
        return [cell_label(c, varying) for c in configs]
    return labels


def typed_loss_names(sweep_dirs: list[Path]) -> dict[str, list[str]]:
    """{run id: the loss names typed for it (``loss=balanced_softmax``)} from the sweeps' ``sweep.json``,
    in grid order; a run listed under two names (an alias: one config) has both."""
    found: dict[str, list[str]] = {}
    for sweep_dir in sweep_dirs:
        try:
            runs = json.loads((Path(sweep_dir) / "sweep.json").read_text()).get("runs") or []
        except (OSError, ValueError, AttributeError):
            continue
        for run in runs:
            if not isinstance(run, dict):
                continue
            chosen = [
                o.split("=", 1)[1]
                for o in run.get("overrides") or []
                if o.split("=", 1)[0].lstrip("+") == "loss"
            ]
            if chosen and chosen[-1] not in found.setdefault(str(run.get("run_id")), []):
                found[str(run.get("run_id"))].append(chosen[-1])
    return found


def class_names(run_dir: Path) -> list[str] | None:
    """The class names of a run, from its ``per_class.csv`` (None when the record has none)."""
    import csv

    try:
        with open(Path(run_dir) / "per_class.csv", newline="", encoding="utf-8") as f:
            names = [row.get("name") or row.get("class") or "" for row in csv.DictReader(f)]
    except OSError:
        return None
    return names or None


def alpha_per_class(weights: list[float] | None, names: list[str] | None = None) -> str:
    """Per-class weights as ``name weight`` pairs (``airplane 0.1234, automobile 0.5``), so that a reader sees
    which class gets which weight; ``[w0, w1, ...]`` without names, ``none (unweighted)`` without weights."""
    if weights is None:
        return "none (unweighted)"
    if not names or len(names) != len(weights):
        return "[" + ", ".join(f"{w:.4g}" for w in weights) + "]"
    return ", ".join(f"{name} {w:.4g}" for name, w in zip(names, weights, strict=True))


def canonical(value: Any) -> Any:
    """A hashable normal form: numbers as float (0 == 0.0), lists as tuples, None/'null' as None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(canonical(v) for v in value)
    return None if isinstance(value, str) and value.lower() in ("null", "~") else value


def parse_selector(text: str) -> list[tuple[str, Any]]:
    """``"gamma=0 alpha=none"`` -> [("gamma", 0.0), ("alpha", "none")]: keys as dotted keys, values read as
    YAML and normalised. ConfigError for a pair without ``=``, a seed, or an empty selector."""
    pairs = []
    for token in str(text).split():
        key, eq, value = token.partition("=")
        if not eq:
            raise ConfigError(f"selector '{text}': '{token}' is not key=value (e.g. \"gamma=0 alpha=none\")")
        if key == "seed":
            raise ConfigError(f"selector '{text}': seed cannot select a cell (a cell pools its seeds)")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        pairs.append((ALIASES.get(key, key), canonical(parsed)))
    if not pairs:
        raise ConfigError('empty selector; write key=value pairs such as "gamma=0 alpha=none"')
    return pairs


def check_keys(keys: list[str], configs: list[dict[str, Any]], what: str) -> None:
    """ConfigError for a key that no config has: a typo would otherwise select or group nothing."""
    unknown = [k for k in keys if k not in set().union(*configs)]
    if unknown:
        names = f"a short name ({', '.join(sorted(ALIASES))}), a dotted key (gamma, alpha, data.imbalance)"
        raise ConfigError(f"{what}: unknown key '{unknown[0]}'; use {names} or {', '.join(ENV_FIELDS)}")


def expand_presets(pairs: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """``loss=<preset>`` of a preset built on another loss (``ldam_drw``, ``balanced_ce``, ``balanced_softmax``:
    the names labels show) as the keys that make it: its loss's name and the keys it sets apart from that
    loss's own preset (``loss=ldam_drw`` -> loss.name=ldam alpha=effective_num alpha_start_epoch=0.8). A key
    the selector also gives keeps the selector's value. Other pairs are returned as they are."""
    given = {k for k, _ in pairs}
    out = []
    for key, value in pairs:
        changes = preset_changes(str(value)) if key == "loss.name" else None
        if changes is None:
            out.append((key, value))
            continue
        out.append(("loss.name", canonical(loss_presets()[str(value)]["loss.name"])))
        out += [(k, v) for k, v in changes.items() if k not in given]
    return out


def select(items: list, configs: list[dict[str, Any]], selector: str) -> list:
    """The items whose config matches every pair of ``selector`` (a key a config lacks reads as null);
    ``loss=<preset>`` selects the preset's runs (:func:`expand_presets`)."""
    pairs = expand_presets(parse_selector(selector))
    check_keys([k for k, _ in pairs], configs, f"selector '{selector}'")
    return [i for i, c in zip(items, configs, strict=True) if all(canonical(c.get(k)) == v for k, v in pairs)]


# Prefixes that read a test metric from another section of metrics.json: the test metrics at the best
# validation epoch, and the final validation metrics (what tuning may look at; the test set never selects).
PREFIXES = {"best_val.": ("best-val ep.", "best_val"), "val.": ("validation", "val")}


def _split_prefix(name: str) -> tuple[str | None, str]:
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return prefix, name.removeprefix(prefix)
    return None, name


def check_metric(name: str) -> None:
    """ConfigError unless ``name`` is a metric the report knows (optionally prefixed ``best_val.`` or ``val.``)."""
    prefix, base = _split_prefix(name)
    if base not in METRIC_INFO or (prefix is not None and base not in (*TEST_METRICS, "top1_error")):
        allowed = ", ".join([*METRIC_INFO, "best_val.<test metric>", "val.<test metric>"])
        raise ConfigError(f"unknown metric '{name}'; choose from: {allowed}")


def metric_info(name: str) -> tuple[str, str, str | None]:
    """(label, format, better) of a metric; ``best_val.x`` is labelled as test at the best-val epoch,
    ``val.x`` as the final validation value."""
    prefix, base = _split_prefix(name)
    label, fmt, better = METRIC_INFO[base]
    return (f"{label} ({PREFIXES[prefix][0]})" if prefix else label), fmt, better


def metric_value(metrics: dict, name: str) -> float | None:
    """One number of a run's metrics.json: a final-epoch test metric, ``top1_error`` = 100 − accuracy,
    calibration, timing, ``best_val.<m>`` (test at the best-validation epoch) or ``val.<m>`` (final validation). None when the record has
    no finite value (few-shot accuracy when no class has < 20 training images; no validation split)."""
    if name.startswith("best_val."):
        section, name = (metrics.get("best_val") or {}).get("test") or {}, name.removeprefix("best_val.")
    elif name.startswith("val."):
        section, name = metrics.get("val") or {}, name.removeprefix("val.")
    else:
        section = metrics.get(SECTIONS.get(name, "test")) or {}
    value = section.get("accuracy" if name == "top1_error" else name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return 100.0 - value if name == "top1_error" else float(value)


def seed_values(runs: list[RunRecord], metric: str) -> dict[int, float]:
    """{seed: value} of ``metric`` over the runs that have it, in run order."""
    values = {r.seed: metric_value(r.metrics or {}, metric) for r in runs}
    return {s: v for s, v in values.items() if v is not None}
