"""The config schema and its validation.

Every setting of a run is a Hydra config key. This module holds:

- the structured schema (dataclasses registered in Hydra's ConfigStore as ``focalbench_schema``). The top-level
  keys and the ``optim`` and ``eval`` groups are typed here, with their defaults. The ``data``, ``model`` and
  ``loss`` groups are open: each option's keys and defaults live in its YAML file (``configs/<group>/*.yaml``),
  and are checked by the validation function its module registers (``focalbench.registry``);
- one validation function per group (``validate_data``, ``validate_model``, ``validate_loss``,
  ``validate_optim``, ``validate_eval``, ``validate_run``), called by :func:`validate` at plan time, so a bad
  value anywhere fails before anything runs;
- :func:`compose`, which builds the resolved config of one grid cell from a list of overrides, through the same
  config files and search path as ``@hydra.main``, and turns Hydra's errors into one clear line;

Where each default lives (one place each): top-level, ``optim`` and ``eval`` keys in the dataclasses below;
``data``, ``model`` and ``loss`` keys in their YAML files; ``gamma`` and ``alpha`` in the loss presets.

This module imports Hydra and OmegaConf but not torch. Checks that need a component's own rules import that
component (and so torch) last, so most bad input is rejected without the torch import.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from focalbench.errors import ConfigError, NotApplicable

ALPHA_MODES = ("none", "inverse_freq", "inverse_sqrt_freq", "effective_num")
MEAN_MODES = ("weights", "batch")  # loss.mean; focalbench.losses.MEAN_MODES, repeated here to need no torch
SHARED_LOSS_KEYS = ("name", "beta", "normalize", "mean")  # every loss has them; the rest are the loss's own


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step | constant, each after a linear warm-up
    warmup_epochs: float = 1.0
    warmup_mode: str = "step"  # step: a linear ramp per step; epoch: LDAM-DRW's staircase (lr/W, 2lr/W, ...)
    milestones: list[int] = field(default_factory=list)  # schedule=step: epochs where the lr changes
    milestone_factors: list[float] = field(default_factory=list)  # lr = base lr x factor from that epoch on


@dataclass
class EvalConfig:
    many_threshold: int = 100  # many-shot: more than this many training examples
    few_threshold: int = 20  # few-shot: fewer than this many
    ece_bins: int = 15
    # samples per evaluation batch; 256 because larger batches of 32x32 activations spill the CPU caches
    # (ResNet-32 test pass, bf16: 3.2 s at 256 against 5.1-7.6 s at 1024 on a 2-core Xeon)
    batch_size: int = 256


@dataclass
class FocalbenchConfig:
    data: Any = MISSING  # open group: configs/data/<option>.yaml
    # Open groups: the chosen configs/<group>/<option>.yaml adds its name and keys to these shared keys.
    # model.norm_classifier: a cosine-logit head (for LDAM), and norm_classifier_init how it starts: linear
    # (nn.Linear's initialisation) or ldam (unit-norm class vectors, LDAM-DRW's code); every model takes both.
    model: Any = field(default_factory=lambda: {"norm_classifier": False, "norm_classifier_init": "linear"})
    # loss.beta: effective_num's beta (Cui et al. 2019); loss.normalize: class weights from a mode sum to C
    # (sum_to_C) or stay raw (none); loss.mean: reduction "mean" divides the alpha-weighted sum by
    # sum_i alpha_{y_i} (weights: PyTorch's weighted mean, LDAM-DRW's code) or by N (batch: Cui et al.'s
    # class-balanced loss code). The loss file also sets gamma and alpha.
    loss: Any = field(default_factory=lambda: {"beta": 0.9999, "normalize": "sum_to_C", "mean": "weights"})
    optim: OptimConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0  # training seed (torch, numpy, python); the data seed is data.data_seed
    gamma: float | None = MISSING  # focal loss's gamma; null for losses without one
    # none | inverse_freq | inverse_sqrt_freq | effective_num | float (binary) | [C weights]
    alpha: Any = MISSING
    # Deferred re-weighting (DRW, Cao et al. 2019): alpha applies from this epoch on (0: from the start);
    # a value in (0, 1) is a fraction of the epochs (0.8 of 200 is epoch 160, the published recipe).
    alpha_start_epoch: float = 0.0
    # imbalance ratio rho = n_max / n_min of the training set; null: keep the data's natural class counts (the
    # default of your own data, data=table|features|image_folder, whose data file sets it to null)
    imbalance: float | None = 100.0
    epochs: int = 30
    batch_size: int = 256
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast); auto: identity.resolve_precision
    channels_last: bool = True
    deterministic: bool = False
    compile: bool = False
    log_every: int = 50  # steps between progress-bar updates (each one is a host-device sync)
    results_dir: str = "${oc.env:FOCALBENCH_RESULTS,results}"
    jobs: int = 1
    # torch threads per run; 0 = auto: 1 for vector data (tiny matrices gain nothing from threads), else
    # cores // jobs. Floating-point sums depend on the thread count, so a record is bit-identical across
    # launchers when its thread count is: pin threads=N to compare records made with different --jobs.
    threads: int = 0
    name: str | None = None
    quiet: bool = False
    # keep the final weights in the run's folder (model.pt, a state dict); not part of the run id
    save_model: bool = False
    # A reproduction suite (configs/experiment/<suite>.yaml) declares its grid and claims here; see
    # focalbench.reports.claims. It does not change any run, so it is not part of the run id.
    suite: Any = None
    # Trackers that each run is also logged to (focalbench.loggers): the chosen configs/logger/<name>.yaml
    # files, one key each (logger.mlflow, logger.tensorboard, logger.wandb); null (logger=none): none. The
    # record on disk is what a run computes, so this is not part of the run id either.
    logger: Any = None


REQUIRED = object()


def config_field(cfg: Any, key: str, default: Any = REQUIRED, *, missing: str) -> Any:
    """``cfg.key`` for attribute-style configs (DictConfig, SimpleNamespace), ``cfg[key]`` for mappings;
    ``default`` when the key is absent or None; ConfigError(``missing``) when it is required."""
    value = cfg.get(key, None) if isinstance(cfg, Mapping) else getattr(cfg, key, None)
    if value is None:
        if default is REQUIRED:
            raise ConfigError(missing)
        return default
    return value


_TYPE_NAMES = {int: "integer", float: "number", bool: "boolean (true or false)", str: "string"}


def typed_field(cfg: Any, key: str, kind: type, group: str) -> Any:
    """``cfg.key`` checked to be a ``kind`` (int, float, bool or str); an int is a valid float.

    The open groups (data, model, loss) get no types from Hydra, so their modules read keys through this.
    """
    value = config_field(cfg, key, missing=f"{group}.{key} is required")
    ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok, value = True, float(value)
    if not ok:
        raise ConfigError(f"wrong type for '{group}.{key}': {value!r} is not a valid {_TYPE_NAMES[kind]}")
    return value


def register_schema() -> None:
    """Register the schema in Hydra's ConfigStore (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="focalbench_schema", node=FocalbenchConfig)


def config_dir() -> Path:
    """The folder holding focalbench's Hydra configs: the checkout's ``configs/``, or the wheel's copy."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent / "configs", package / "_configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"focalbench's configs are missing (looked in {package.parent / 'configs'})")


# ----------------------------------------------------------------------------------------------------------
# Composition: overrides -> resolved config, with Hydra's errors turned into one line
# ----------------------------------------------------------------------------------------------------------


def searchpath_overrides(config_dirs: list[str]) -> list[str]:
    """The override that adds user config folders (``--config-dir``) to Hydra's search path."""
    if not config_dirs:
        return []
    paths = []
    for d in config_dirs:
        p = Path(d).expanduser().resolve()
        if not p.is_dir():
            raise ConfigError(f"--config-dir {d}: no such folder")
        paths.append(f"file://{p}")
    return ["hydra.searchpath=[" + ",".join(paths) + "]"]


def check_appended_keys(overrides: list[str]) -> None:
    """Refuse ``+key=value`` for a key the config does not have: Hydra would add it, and a typo
    (``+gama=5``) would train the default gamma without a word. ``+`` stays open for what it is for here:
    appending a config group (``+hydra/sweeper=optuna``) and Hydra's own ``hydra.*`` keys. ``++key=value``
    (force-add) is refused too unless the key exists, when it is the same as ``key=value``."""
    appended = [o for o in overrides if o.startswith("+") and "=" in o]
    checked = [o for o in appended if not _is_group(o) and not o.lstrip("+").startswith("hydra")]
    if not checked:
        return
    plain = [o for o in overrides if o not in checked]
    known = set(known_keys(plain))
    for override in checked:
        key = override.split("=", 1)[0].lstrip("+")
        if key in known:
            if override.startswith("++"):
                continue
            raise ConfigError(f"'{override}': {key} exists already; set it with {override.lstrip('+')}")
        hint = closest_key(key, sorted(known))
        did_you_mean = f"; did you mean '{hint}={override.split('=', 1)[1]}'?" if hint else ""
        raise ConfigError(
            f"'{override}': unknown config key '{key}' ('+' adds keys only for config groups and hydra.*)"
            f"{did_you_mean}"
        )


def compose_unvalidated(overrides: list[str]) -> DictConfig:
    """Compose and resolve the config of one run from Hydra overrides; ConfigError (one line) on failure."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    check_appended_keys(list(overrides))
    register_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except ConfigError:
        raise
    except Exception as exc:  # Hydra and OmegaConf raise many types; all are the user's input here
        raise not_applicable(exc, overrides) or ConfigError(explain_compose_error(exc, overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    try:
        OmegaConf.resolve(cfg)
    except Exception as exc:
        raise ConfigError(f"cannot resolve the config: {first_line(exc)}") from None
    return cfg


def compose(overrides: list[str]) -> DictConfig:
    """Compose and validate the config of one run from Hydra overrides (no sweep syntax).

    Raises ConfigError with one line for any unknown key, unknown group option, wrong type or bad value.
    """
    cfg = compose_unvalidated(overrides)
    validate(cfg)
    return cfg


def compose_many(cells: list[list[str]], not_applicable: list | None = None) -> list[DictConfig | None]:
    """``[compose(c) for c in cells]``, for the cells of a grid, with one Hydra composition per distinct set of
    config-group choices instead of one per cell (a composition costs ~0.1 s; a 12-cell grid paid ~1.3 s).

    Hydra composes a config in two stages: the defaults list (config groups, search path) is merged into a
    config, then the key overrides (``gamma=2``, ``data.n_max=200``) are applied to it, in order. Cells that
    differ only in key overrides share the first stage: it is done once (unresolved), and each cell applies its
    key overrides to a copy with Hydra's own function, then resolves and validates as ``compose`` does. A cell
    for which anything in this goes wrong is composed by ``compose`` itself (which raises the usual error).

    With a ``not_applicable`` list, a cell with a key its loss (or other choice) does not have
    (:class:`~focalbench.errors.NotApplicable`) is None in the result and its error is appended to the list;
    without, it raises like any other error.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    bases: dict[tuple[str, ...], DictConfig | None] = {}
    out: list[DictConfig | None] = []
    for cell in cells:
        try:
            out.append(_compose_cell(cell, parser, bases))
        except NotApplicable as exc:
            if not_applicable is None:
                raise
            not_applicable.append(exc)
            out.append(None)
    return out


def _compose_cell(cell: list[str], parser, bases: dict) -> DictConfig:
    """One cell of :func:`compose_many`, sharing the first stage of composition through ``bases``."""
    try:
        parsed = parser.parse_overrides(overrides=list(cell))
    except Exception:
        return compose(cell)
    structural = tuple(o.input_line for o in parsed if not _is_key_override(o))
    keys = [o for o in parsed if _is_key_override(o)]
    if structural not in bases:
        try:
            bases[structural] = _compose_raw(list(structural))
        except Exception:
            bases[structural] = None
    base = bases[structural]
    cfg = None if base is None else _apply_key_overrides(base, keys)
    if cfg is None:
        return compose(cell)
    validate(cfg)
    return cfg


def _is_key_override(override) -> bool:
    """A plain ``key=value`` on a key of the schema (``gamma``, ``data.n_max``), not a group choice."""
    if override.is_sweep_override() or override.is_delete() or override.is_add() or override.is_force_add():
        return False
    if override.package is not None or override.is_hydra_override():
        return False
    key = override.key_or_group
    top = key.split(".", 1)[0]
    schema_fields = {f.name for f in dataclasses.fields(FocalbenchConfig)}
    if top not in schema_fields:
        return False
    return "." in key or not (config_dir() / key).is_dir()


def _compose_raw(overrides: list[str]) -> DictConfig:
    """Hydra's composition of ``overrides`` (struct mode, not resolved), as ``compose_unvalidated`` does it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    check_appended_keys(list(overrides))
    register_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides))
    finally:
        GlobalHydra.instance().clear()


def _apply_key_overrides(base: DictConfig, overrides: list) -> DictConfig | None:
    """A resolved copy of ``base`` with ``overrides`` applied by Hydra's own function; None on any error."""
    import copy

    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    cfg = copy.deepcopy(base)
    try:
        ConfigLoaderImpl._apply_overrides_to_config(overrides, cfg)
        OmegaConf.resolve(cfg)
    except Exception:
        return None
    return cfg


@cache
def _preset(group: str, name: str) -> dict:
    return OmegaConf.to_container(compose_unvalidated([f"{group}={name}"])[group])


def with_preset_defaults(group: str, cfg: Any) -> DictConfig:
    """``cfg`` (a DictConfig, dict or namespace with at least ``name``) with the keys it leaves out taken from
    ``configs/<group>/<name>.yaml``: the one place where a data source's or model's defaults live."""
    given = cfg if OmegaConf.is_config(cfg) else dict(cfg if isinstance(cfg, Mapping) else vars(cfg))
    name = config_field(given, "name", missing=f"{group}.name is required")
    if _is_composed_group(given, group):
        # cfg.data / cfg.model of a composed config: Hydra built it from this very preset file, so it has
        # every preset key already; composing the preset again would only cost ~0.1 s per group.
        return OmegaConf.create(OmegaConf.to_container(given, resolve=True))
    try:
        defaults = _preset(group, str(name))
    except ConfigError:
        defaults = {}  # not a preset file: the registry lookup that follows names the valid options
    # Resolved against the whole config it came from (data.imbalance is ${imbalance}), before it is cut loose.
    explicit = OmegaConf.to_container(given, resolve=True) if OmegaConf.is_config(given) else dict(given)
    return OmegaConf.create({**defaults, **explicit})


def _is_composed_group(node: Any, group: str) -> bool:
    """Whether ``node`` is the ``group`` node of a whole composed focalbench config."""
    if not isinstance(node, DictConfig):
        return False
    parent = node._get_parent()
    return (
        isinstance(parent, DictConfig)
        and parent._get_parent() is None
        and node._key() == group
        and all(key in parent for key in ("data", "model", "loss", "optim", "seed"))
    )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def known_keys(overrides: list[str]) -> list[str]:
    """Every dotted key of the config the overrides' group choices give, for 'did you mean' suggestions."""
    choices = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0] and _is_group(o)]
    try:
        cfg = compose_unvalidated(choices)
    except ConfigError:
        cfg = compose_unvalidated([])
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            keys.append(f"{prefix}{k}")
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return sorted(set(keys))


def closest_key(key: str, known: list[str]) -> str | None:
    """The known dotted key ``key`` most likely meant, for 'did you mean': the same name under a group
    (``lr`` -> ``optim.lr``), else the closest spelling of the whole key (``gama`` -> ``gamma``), else of
    its last part (``optim.lrr`` -> ``optim.lr``); None when nothing is close."""
    leaf = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in known if k != key and k.rsplit(".", 1)[-1] == leaf]
    if same_leaf:
        return min(same_leaf, key=lambda k: (k.count("."), k))
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if hint:
        return hint[0]
    by_leaf: dict[str, str] = {}
    for k in known:
        by_leaf.setdefault(k.rsplit(".", 1)[-1], k)
    hint = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.75)
    return by_leaf[hint[0]] if hint else None


# Which data option reads a file, by the end of its name (focalbench.data.table and .features read these).
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz")
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES
FEATURE_SUFFIXES = (".npz", ".npy", ".pt", ".pth")
DATA_KINDS = {
    "table": "a CSV or Parquet table",
    "features": "a file of feature vectors",
    "image_folder": "a folder",
}


def data_option_for(path: str | Path) -> str | None:
    """The data option that reads ``path``: ``table`` for a CSV or Parquet file, ``features`` for an
    ``.npz``/``.npy``/``.pt`` file, ``image_folder`` for an existing folder; None when the name says nothing."""
    name = str(path).lower()
    if name.endswith(TABLE_SUFFIXES):
        return "table"
    if name.endswith(FEATURE_SUFFIXES):
        return "features"
    return "image_folder" if Path(path).expanduser().is_dir() else None


def other_data_option_hint(path: str | Path, current: str) -> str:
    """'; a CSV or Parquet table is read by data=table' when another data option than ``current`` reads
    ``path`` (by its name, or because it is a folder); '' otherwise."""
    other = data_option_for(path)
    return f"; {DATA_KINDS[other]} is read by data={other}" if other not in (None, current) else ""


def options_with_key(group: str, key: str) -> list[str]:
    """The options of ``group`` whose config file has ``key`` (``data``, ``target`` -> ``["table"]``)."""
    found = []
    for option in group_options(group):
        loaded = OmegaConf.load(config_dir() / group / f"{option}.yaml")
        node = loaded.get(group, loaded)  # a "@package _global_" file nests its keys under the group
        if isinstance(node, DictConfig) and key in node:
            found.append(option)
    return found


def default_option(group: str) -> str | None:
    """The option of ``group`` that ``configs/config.yaml``'s defaults list chooses (``data`` -> synthetic)."""
    defaults = OmegaConf.load(config_dir() / "config.yaml").get("defaults") or []
    return next((d[group] for d in defaults if isinstance(d, DictConfig) and group in d), None)


def unknown_key_message(key: str, overrides: list[str]) -> str:
    """'unknown config key' with the most useful hint: the group option that has the key (``data.target`` ->
    add ``data=table``; ``data.path`` -> the option that reads the file named), else the closest key."""
    group, _, leaf = key.partition(".")
    if leaf and "." not in leaf and (config_dir() / group).is_dir():
        options = options_with_key(group, leaf)
        chosen = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == group]
        options = [o for o in options if o not in chosen[-1:]]
        if options:
            value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == key), "")
            by_file = data_option_for(value) if group == "data" and "path" in leaf and value else None
            best = by_file if by_file in options else options[0]
            where = f"{group}={chosen[-1]}" if chosen else f"{group}={default_option(group)} (the default)"
            also = (
                f" (also of {', '.join(f'{group}={o}' for o in options if o != best)})"
                if len(options) > 1
                else ""
            )
            return f"unknown config key '{key}' for {where}: it is a key of {group}={best}{also}; add {group}={best}"
    hint = closest_key(key, known_keys(overrides))
    return f"unknown config key '{key}'" + (f"; did you mean '{hint}'?" if hint else "")


def not_applicable(exc: BaseException, overrides: list[str]) -> NotApplicable | None:
    """A composition error that is a key of another option of the chosen group (``loss.tau=1`` with
    ``loss=ce``: tau is logit_adjusted's), as :class:`NotApplicable`; None for any other error."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause = exc.__cause__
    if not isinstance(cause, (ConfigAttributeError, ConfigKeyError)) or not cause.full_key:
        return None
    key = str(cause.full_key)
    group, _, leaf = key.partition(".")
    if not leaf or "." in leaf or not (config_dir() / group).is_dir():
        return None
    chosen = [o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == group]
    option = chosen[-1] if chosen else default_option(group)
    if not [o for o in options_with_key(group, leaf) if o != option]:
        return None  # a key of no option: a typo, not a key of another option
    value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+") == key), "...")
    return NotApplicable(
        unknown_key_message(key, overrides),
        subject=str(option),
        setting=f"{key}={value}",
        reason=f"{group}={option} has no {leaf}",
    )


def _is_group(override: str) -> bool:
    key = override.split("=", 1)[0].lstrip("+~")
    return (config_dir() / key).is_dir()


def group_options(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _schema_type(full_key: str) -> str:
    """The declared type of a typed schema key (``epochs`` -> int), for the wrong-type message."""
    node: Any = FocalbenchConfig
    for part in full_key.split("."):
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            return "value"
        node = {"OptimConfig": OptimConfig, "EvalConfig": EvalConfig}.get(
            fields[part].type, fields[part].type
        )
    return (
        str(node)
        .replace("list[int]", "list of integers")
        .replace("int", "integer")
        .replace("float", "number")
    )


# Hydra's own text is matched only where it gives no structured information; tests/test_config.py pins it.
AMBIGUOUS_SWEEP = "Ambiguous value for argument"


def explain_compose_error(exc: BaseException, overrides: list[str]) -> str:
    """Turn a Hydra/OmegaConf composition error into one actionable line, from the exceptions' attributes."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

    cause = exc.__cause__
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and "/" in exc.missing_cfg_file:
        group, option = exc.missing_cfg_file.rsplit("/", 1)
        options = list(exc.options or group_options(group))
        hint = difflib.get_close_matches(option, options, n=1)
        did_you_mean = f" (did you mean {group}={hint[0]}?)" if hint else ""
        return f"unknown {group} option '{option}'{did_you_mean}; choose one of: {', '.join(options)}"
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and cause.full_key:
        return unknown_key_message(str(cause.full_key), overrides)
    if isinstance(cause, ValidationError) and cause.full_key:
        key = str(cause.full_key)
        return f"wrong type for '{key}': '{cause.value}' is not a valid {_schema_type(key)}"
    if AMBIGUOUS_SWEEP in str(exc):
        swept = next((o for o in overrides if "," in o.split("=", 1)[-1]), "an override")
        return f"'{swept}' is a sweep (several values): run one value, or use focalbench sweep"
    if isinstance(exc, OverrideParseException):
        return f"cannot parse the overrides: {first_line(exc)}"
    return first_line(exc)


# ----------------------------------------------------------------------------------------------------------
# Validation: one function per group, then each chosen component's own checks
# ----------------------------------------------------------------------------------------------------------


def _check_choice(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value} is not valid; choose one of: {', '.join(allowed)}")


def _check_range(
    value: Any,
    key: str,
    low: float,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    rule: str = "",
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"wrong type for '{key}': {value!r} is not a valid number")
    bad = (
        not math.isfinite(value)
        or (value <= low if open_low else value < low)
        or (high is not None and (value >= high if open_high else value > high))
    )
    if bad:
        raise ConfigError(f"{key}={value} is out of range: {rule}")


def _check_positive_int(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{key}={value} is out of range: must be a positive integer")


def validate_alpha(alpha: Any, n_classes: int | None) -> None:
    """alpha: a mode name, a float in [0,1] (binary tasks only), or a list of n_classes non-negative weights.

    ``n_classes`` None (a data source that discovers its classes from its files) skips the checks that need
    the class count; that source calls this again with the count it found.
    """
    if alpha is None or (isinstance(alpha, str) and alpha in ALPHA_MODES):
        return
    if isinstance(alpha, str):
        hint = difflib.get_close_matches(alpha, ALPHA_MODES, n=1, cutoff=0.5)
        did_you_mean = f" (did you mean alpha={hint[0]}?)" if hint else ""
        weights = "one weight per class" if n_classes is None else f"{n_classes} weights"
        raise ConfigError(
            f"alpha={alpha} is not valid{did_you_mean}; use one of {', '.join(ALPHA_MODES)}, a float in [0, 1] "
            f"(binary tasks only), or a list of {weights}"
        )
    if isinstance(alpha, bool):
        raise ConfigError(
            f"alpha={alpha} is not valid; use a mode ({', '.join(ALPHA_MODES)}), a float or a list"
        )
    if isinstance(alpha, (int, float)):
        if n_classes is not None and n_classes != 2:
            raise ConfigError(
                f"alpha={alpha}: a float alpha is for binary tasks only (this task has {n_classes} classes); "
                f"use a mode ({', '.join(m for m in ALPHA_MODES if m != 'none')}) or a list of {n_classes} weights"
            )
        _check_range(
            float(alpha), "alpha", 0.0, 1.0, rule="a float alpha is the weight of class 1, in [0, 1]"
        )
        return
    values = list(alpha)
    if n_classes is not None and len(values) != n_classes:
        raise ConfigError(f"alpha has {len(values)} weights but the task has {n_classes} classes")
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"alpha weights must be non-negative numbers; got {v}")


def validate_data(cfg: DictConfig) -> None:
    """The keys every data source has; the source's own keys are checked by its registered function."""
    d = cfg.data
    if not isinstance(d.get("name"), str):
        raise ConfigError("data.name is required: choose a data option, e.g. data=synthetic")
    _check_choice(d.get("profile", "exp"), ("exp", "step"), "data.profile")
    # null: the natural class counts (sources that generate their data, synthetic and CIFAR-LT, require a ratio)
    for key, value in (("imbalance", cfg.imbalance), ("data.imbalance", d.imbalance)):
        if value is not None:
            _check_range(value, key, 1.0, rule="the imbalance ratio n_max/n_min must be >= 1")
    _check_range(d.val_fraction, "data.val_fraction", 0.0, 1.0, open_high=True, rule="must be in [0, 1)")
    # null: discovered from the data (your own data); the source checks a given value against its labels
    n_classes = d.n_classes
    if n_classes is not None and (
        isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2
    ):
        raise ConfigError(
            f"data.n_classes={d.n_classes} is out of range: a classifier needs at least 2 classes"
        )
    if isinstance(d.data_seed, bool) or not isinstance(d.data_seed, int):
        raise ConfigError(f"wrong type for 'data.data_seed': {d.data_seed!r} is not a valid integer")


def validate_model(cfg: DictConfig) -> None:
    if not isinstance(cfg.model.get("name"), str):
        raise ConfigError("model.name is required: choose a model option, e.g. model=mlp")
    init = cfg.model.get("norm_classifier_init", "linear")
    _check_choice(init, ("linear", "ldam"), "model.norm_classifier_init")
    if init == "ldam" and not cfg.model.get("norm_classifier", False):
        raise ConfigError("model.norm_classifier_init=ldam needs model.norm_classifier=true (a cosine head)")


def validate_loss(cfg: DictConfig) -> None:
    """The keys every loss shares: gamma, alpha (and its DRW start), beta, the weight normalisation and the
    mean's denominator."""
    loss = cfg.loss
    if not isinstance(loss.get("name"), str):
        raise ConfigError("loss.name is required: choose a loss option, e.g. loss=focal")
    _check_choice(loss.get("normalize", "sum_to_C"), ("sum_to_C", "none"), "loss.normalize")
    _check_choice(loss.get("mean", "weights"), MEAN_MODES, "loss.mean")
    _check_range(
        loss.get("beta", 0.9999),
        "loss.beta",
        0.0,
        1.0,
        open_high=True,
        rule="effective_num's beta is in [0, 1)",
    )
    if cfg.gamma is not None:
        _check_range(cfg.gamma, "gamma", 0.0, rule="gamma must be >= 0 (gamma = 0 is cross-entropy)")
    validate_alpha(cfg.alpha, cfg.data.n_classes)
    start = cfg.alpha_start_epoch
    _check_range(
        start, "alpha_start_epoch", 0.0, rule="an epoch >= 1, a fraction of the epochs in (0, 1), or 0"
    )
    if start >= 1 and (start != int(start) or start >= cfg.epochs):
        raise ConfigError(
            f"alpha_start_epoch={start:g} is out of range: a whole epoch below epochs={cfg.epochs}, "
            "or a fraction of the epochs in (0, 1)"
        )
    # A fraction is rounded to a whole epoch (training.loop.alpha_start); one that rounds to the last epoch or
    # beyond would never apply the weights: deferred re-weighting silently switched off.
    if 0 < start < 1 and round(start * cfg.epochs) >= cfg.epochs:
        raise ConfigError(
            f"alpha_start_epoch={start:g} of epochs={cfg.epochs} rounds to epoch "
            f"{round(start * cfg.epochs)}, so the class weights would never apply: use more epochs or a "
            "smaller fraction (deferred re-weighting needs at least one epoch with the weights)"
        )


def validate_optim(cfg: DictConfig) -> None:
    o = cfg.optim
    _check_choice(o.name, ("sgd",), "optim.name")
    _check_choice(o.schedule, ("cosine", "step", "constant"), "optim.schedule")
    _check_range(o.lr, "optim.lr", 0.0, open_low=True, rule="must be > 0")
    _check_range(o.momentum, "optim.momentum", 0.0, 1.0, open_high=True, rule="must be in [0, 1)")
    _check_range(o.weight_decay, "optim.weight_decay", 0.0, rule="must be >= 0")
    _check_range(o.warmup_epochs, "optim.warmup_epochs", 0.0, rule="must be >= 0")
    _check_choice(o.warmup_mode, ("step", "epoch"), "optim.warmup_mode")
    if len(o.milestones) != len(o.milestone_factors):
        raise ConfigError("optim.milestones and optim.milestone_factors must have the same length")


def validate_eval(cfg: DictConfig) -> None:
    e = cfg.eval
    if not (0 < e.few_threshold <= e.many_threshold):
        raise ConfigError("eval thresholds must satisfy 0 < eval.few_threshold <= eval.many_threshold")
    _check_positive_int(e.ece_bins, "eval.ece_bins")
    _check_positive_int(e.batch_size, "eval.batch_size")


def validate_run(cfg: DictConfig) -> None:
    """Top-level keys that are not part of a group."""
    if cfg.threads < 0:
        raise ConfigError(f"threads={cfg.threads} is out of range: 0 (auto) or a positive integer")
    for key in ("epochs", "batch_size", "log_every", "jobs"):
        _check_positive_int(cfg[key], key)
    _check_choice(cfg.device, ("auto", "cpu", "cuda"), "device")
    _check_choice(cfg.precision, ("auto", "fp32", "bf16", "fp16"), "precision")


TRACKER_PACKAGES = {"mlflow": "mlflow", "tensorboard": "tensorboard", "wandb": "wandb"}


def validate_logger(cfg: DictConfig) -> None:
    """The chosen trackers (``logger=``): each one's package installed (looked up, not imported: a run
    without a logger imports none of them) and wandb's mode one it has."""
    import importlib.util

    node = cfg.get("logger") or {}
    for name in node:
        package = TRACKER_PACKAGES.get(str(name))
        if package is not None and importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"logger={name}: the {package} package is not installed; pip install 'focalbench[trackers]'"
            )
    wandb = node.get("wandb")
    if wandb is not None:
        _check_choice(wandb.get("mode", "offline"), ("offline", "online", "disabled"), "logger.wandb.mode")
    mlflow = node.get("mlflow")
    uri = str(mlflow.get("tracking_uri") or "") if mlflow is not None else ""
    if "@" in uri.partition("://")[2].partition("/")[0]:
        # every run's config.yaml (often committed) would hold the password
        raise ConfigError(
            "logger.mlflow.tracking_uri holds credentials (user:password@host), which every run's config.yaml "
            "would keep; give the bare URI and set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )


def validate_components(cfg: DictConfig) -> None:
    """The chosen data source, model and loss check their own keys (imports them, and so torch)."""
    from focalbench.registry import DATASETS, LOSSES, MODELS

    data = DATASETS.get(cfg.data.name)
    model = MODELS.get(cfg.model.name)
    loss = LOSSES.get(cfg.loss.name)
    if data.meta["kind"] not in model.meta["inputs"]:
        raise ConfigError(
            f"model={cfg.model.name} takes {' or '.join(model.meta['inputs'])} input, but data={cfg.data.name} "
            f"is {data.meta['kind']} data"
        )
    if not loss.meta.get("uses_gamma") and cfg.gamma not in (None, 0):
        title = loss.meta.get("title", cfg.loss.name)
        raise NotApplicable(
            f"gamma={cfg.gamma:g} with loss={cfg.loss.name}: {title} has no gamma; use loss=focal",
            subject=str(cfg.loss.name),
            setting=f"gamma={cfg.gamma:g}",
            reason=f"{title} has no gamma",
        )
    for entry, node in ((data, cfg.data), (model, cfg.model), (loss, cfg.loss)):
        if entry.validate is not None:
            entry.validate(node, cfg)


def validate(cfg: DictConfig) -> None:
    """Check every key of a composed config; raise ConfigError naming the key and what is allowed.

    The group checks run first and need no torch; the components' own checks run last.
    """
    for check in (
        validate_run,
        validate_data,
        validate_model,
        validate_loss,
        validate_optim,
        validate_eval,
        validate_logger,
    ):
        check(cfg)
    validate_components(cfg)


# ----------------------------------------------------------------------------------------------------------
# Labels (a run's identity is focalbench.identity)
# ----------------------------------------------------------------------------------------------------------


def cell_label(cfg: DictConfig) -> str:
    """A short human label of the loss cell: the loss, gamma (when it has one), alpha, the loss's own keys, the
    mean's denominator when it is not the default and the DRW start, e.g. 'focal gamma=2 alpha=none',
    'ldam alpha=effective_num max_margin=0.5 scale=30 drw@0.8', 'ce alpha=effective_num mean=batch'."""
    alpha = cfg.alpha
    if isinstance(alpha, (list, tuple)) or OmegaConf.is_list(alpha):
        alpha = "[" + ",".join(f"{float(a):g}" for a in alpha) + "]"
    parts = [str(cfg.loss.name)]
    if cfg.gamma is not None:
        parts.append(f"gamma={float(cfg.gamma):g}")
    parts.append(f"alpha={alpha}")
    own = {k: v for k, v in cfg.loss.items() if k not in SHARED_LOSS_KEYS}
    if (
        cfg.loss.get("mean", "weights") != "weights"
    ):  # only when not the default: default labels stay as they were
        own["mean"] = cfg.loss.mean
    parts += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(own.items())]
    if cfg.get("alpha_start_epoch", 0):
        parts.append(f"drw@{float(cfg.alpha_start_epoch):g}")
    return " ".join(parts)
