"""The config schema and its validation.

Every setting of a run is a Hydra config key. This module holds:

- the structured schema (dataclasses registered in Hydra's ConfigStore as ``focalbench_schema``), which gives
  every key its type and default, so that a wrong type or an unknown key is caught when the config is composed;
- :func:`validate`, the value checks a type cannot express (gamma >= 0, alpha's shape, imbalance >= 1, ...);
- :func:`compose`, which builds the resolved config of one grid cell from a list of overrides, through the same
  config files and search path as ``@hydra.main``, and turns Hydra's errors into one clear line;

This module imports Hydra and OmegaConf but not torch, so the CLI can validate a whole grid before it starts.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from focalbench.errors import ConfigError

ALPHA_MODES = ("none", "inverse_freq", "inverse_sqrt_freq", "effective_num")
DATASETS = ("synthetic", "cifar10_lt", "cifar100_lt")
MODELS = ("mlp", "cnn", "resnet32")
LOSSES = ("ce", "focal")


@dataclass
class DataConfig:
    name: str = "synthetic"
    n_classes: int = 10
    imbalance: float = 100.0
    profile: str = "exp"
    val_fraction: float = 0.1
    data_seed: int = 0
    # synthetic tasks only
    n_features: int | None = None
    n_max: int | None = None
    separation: float | None = None
    label_noise: float | None = None
    hard_fraction: float | None = None
    test_per_class: int | None = None
    # CIFAR only
    root: str | None = None
    download: bool = False
    augment: bool = True


@dataclass
class ModelConfig:
    name: str = "mlp"
    # mlp
    hidden: list[int] | None = None
    dropout: float | None = None
    norm: str | None = None  # batch | layer | none
    # cnn
    widths: list[int] | None = None
    stem: int | None = None
    logit_scale: float | None = None


@dataclass
class LossConfig:
    name: str = "focal"
    beta: float = 0.9999  # effective_num's beta (Cui et al. 2019)
    normalize: str = "sum_to_C"  # class weights from a mode sum to C


@dataclass
class OptimConfig:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | step | constant, each after a linear warm-up
    warmup_epochs: float = 1.0
    milestones: list[int] = field(default_factory=list)  # schedule=step: epochs where the lr changes
    milestone_factors: list[float] = field(default_factory=list)  # lr = base lr x factor from that epoch on


@dataclass
class EvalConfig:
    many_threshold: int = 100  # many-shot: more than this many training examples
    few_threshold: int = 20  # few-shot: fewer than this many
    ece_bins: int = 15
    batch_size: int = 1024


@dataclass
class FocalbenchConfig:
    data: DataConfig = MISSING
    model: ModelConfig = MISSING
    loss: LossConfig = MISSING
    optim: OptimConfig = MISSING
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    gamma: float = 2.0
    alpha: Any = (
        "none"  # none | inverse_freq | inverse_sqrt_freq | effective_num | float (binary) | [C weights]
    )
    imbalance: float = 100.0
    epochs: int = 30
    batch_size: int = 256
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (autocast); auto: bf16 on CUDA, fp32 on CPU
    channels_last: bool = True
    deterministic: bool = False
    compile: bool = False
    log_every: int = 50  # steps between progress-bar updates (each one is a host-device sync)
    results_dir: str = "results"
    jobs: int = 1
    # torch threads per run; 0 = auto: 1 for vector data (tiny matrices gain nothing from threads), else
    # cores // jobs. Floating-point sums depend on the thread count, so a record is bit-identical across
    # launchers when its thread count is: pin threads=N to compare records made with different --jobs.
    threads: int = 0
    name: str | None = None
    quiet: bool = False
    # A reproduction suite (configs/experiment/<suite>.yaml) declares its grid and claims here; see
    # focalbench.reports.claims. It does not change any run, so it is not part of the run id.
    suite: Any = None


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


def compose(overrides: list[str]) -> DictConfig:
    """Compose and validate the config of one run from Hydra overrides (no sweep syntax).

    Raises ConfigError with one line for any unknown key, unknown group option, wrong type or bad value.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_schema()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=list(overrides))
    except ConfigError:
        raise
    except Exception as exc:  # Hydra and OmegaConf raise many types; all are the user's input here
        raise ConfigError(explain_compose_error(exc, overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    try:
        OmegaConf.resolve(cfg)
    except Exception as exc:
        raise ConfigError(f"cannot resolve the config: {first_line(exc)}") from None
    validate(cfg)
    return cfg


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def known_keys() -> list[str]:
    """Every dotted key of the schema, for 'did you mean' suggestions."""
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for k, v in node.items():
            dotted = f"{prefix}{k}"
            keys.append(dotted)
            if isinstance(v, dict):
                walk(v, dotted + ".")

    walk(OmegaConf.to_container(OmegaConf.structured(FocalbenchConfig), throw_on_missing=False), "")
    for group in ("data", "model", "loss", "optim"):
        schema = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig}[group]
        keys.extend(f"{group}.{k}" for k in schema.__dataclass_fields__)
    return sorted(set(keys))


def group_options(group: str) -> list[str]:
    folder = config_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def explain_compose_error(exc: BaseException, overrides: list[str]) -> str:
    """Turn a Hydra/OmegaConf composition error into one actionable line."""
    # Hydra wraps the informative OmegaConf error (type, key) as the cause of its own.
    text = "\n".join(str(e) for e in (exc, exc.__cause__) if e is not None)
    name = type(exc).__name__
    # Unknown group option, e.g. data=cifar11: Hydra says "Could not find 'data/cifar11'".
    m = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if m:
        group, option = m.group(1), m.group(2)
        options = group_options(group)
        hint = difflib.get_close_matches(option, options, n=1)
        did_you_mean = f" (did you mean {group}={hint[0]}?)" if hint else ""
        return f"unknown {group} option '{option}'{did_you_mean}; choose one of: {', '.join(options)}"
    # Unknown key: "Could not override 'gama'." / "Key 'gama' is not in struct"
    m = re.search(r"Key '([^']+)' is not in struct", text) or re.search(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        full = next((o.split("=", 1)[0].lstrip("+~") for o in overrides if key in o.split("=", 1)[0]), key)
        hint = difflib.get_close_matches(full, known_keys(), n=1, cutoff=0.6)
        did_you_mean = f"; did you mean '{hint[0]}'?" if hint else ""
        return f"unknown config key '{full}'{did_you_mean}"
    # Wrong type: "Value 'abc' of type 'str' could not be converted to Integer ... full_key: epochs"
    m = re.search(r"Value '([^']*)'.*could not be converted to (\w+)", text)
    if m:
        key = re.search(r"full_key: (\S+)", text)
        where = f" for '{key.group(1)}'" if key else ""
        return f"wrong type{where}: '{m.group(1)}' is not a valid {m.group(2).lower()}"
    m = re.search(r"Ambiguous value for argument '([^']+)'", text)
    if m:
        return f"'{m.group(1)}' is a sweep (several values): run one value, or use focalbench sweep"
    if name in ("OverrideParseException", "GrammarParsingError") or "Error parsing override" in text:
        return f"cannot parse the overrides: {first_line(exc)}"
    return first_line(exc)


# ----------------------------------------------------------------------------------------------------------
# Value validation: what types cannot express
# ----------------------------------------------------------------------------------------------------------


def _check_choice(value: Any, allowed: tuple[str, ...], key: str) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value} is not valid; choose one of: {', '.join(allowed)}")


def _check_range(
    value: float,
    key: str,
    low: float,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    rule: str = "",
) -> None:
    bad = (
        not math.isfinite(value)
        or (value <= low if open_low else value < low)
        or (high is not None and (value >= high if open_high else value > high))
    )
    if bad:
        raise ConfigError(f"{key}={value} is out of range: {rule}")


def validate_alpha(alpha: Any, n_classes: int) -> None:
    """alpha: a mode name, a float in [0,1] (binary tasks only), or a list of n_classes non-negative weights."""
    if alpha is None or (isinstance(alpha, str) and alpha in ALPHA_MODES):
        return
    if isinstance(alpha, str):
        raise ConfigError(
            f"alpha={alpha} is not valid; use one of {', '.join(ALPHA_MODES)}, a float in [0, 1] "
            f"(binary tasks only), or a list of {n_classes} weights"
        )
    if isinstance(alpha, bool):
        raise ConfigError(
            f"alpha={alpha} is not valid; use a mode ({', '.join(ALPHA_MODES)}), a float or a list"
        )
    if isinstance(alpha, (int, float)):
        if n_classes != 2:
            raise ConfigError(
                f"alpha={alpha}: a float alpha is for binary tasks only (this task has {n_classes} classes); "
                f"use a mode ({', '.join(m for m in ALPHA_MODES if m != 'none')}) or a list of {n_classes} weights"
            )
        _check_range(
            float(alpha), "alpha", 0.0, 1.0, rule="a float alpha is the weight of class 1, in [0, 1]"
        )
        return
    values = list(alpha)
    if len(values) != n_classes:
        raise ConfigError(f"alpha has {len(values)} weights but the task has {n_classes} classes")
    for v in values:
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"alpha weights must be non-negative numbers; got {v}")


def validate(cfg: DictConfig) -> None:
    """Check the values of a composed config; raise ConfigError naming the key and the allowed values."""
    d = cfg.data
    _check_choice(d.name, DATASETS, "data.name")
    _check_choice(d.profile, ("exp", "step"), "data.profile")
    _check_range(cfg.imbalance, "imbalance", 1.0, rule="the imbalance ratio n_max/n_min must be >= 1")
    _check_range(d.imbalance, "data.imbalance", 1.0, rule="the imbalance ratio n_max/n_min must be >= 1")
    _check_range(d.val_fraction, "data.val_fraction", 0.0, 1.0, open_high=True, rule="must be in [0, 1)")
    if d.n_classes < 2:
        raise ConfigError(
            f"data.n_classes={d.n_classes} is out of range: a classifier needs at least 2 classes"
        )
    if d.name == "synthetic":
        for key in ("n_features", "n_max", "test_per_class"):
            if getattr(d, key) is None or getattr(d, key) < 1:
                raise ConfigError(f"data.{key}={getattr(d, key)} is out of range: must be a positive integer")
        _check_range(d.separation, "data.separation", 0.0, rule="must be >= 0")
        _check_range(d.label_noise, "data.label_noise", 0.0, 1.0, open_high=True, rule="must be in [0, 1)")
        _check_range(d.hard_fraction, "data.hard_fraction", 0.0, 1.0, rule="must be in [0, 1]")
    else:
        expected = 10 if d.name == "cifar10_lt" else 100
        if d.n_classes != expected:
            raise ConfigError(f"data.n_classes={d.n_classes}: {d.name} has {expected} classes")
    _check_choice(cfg.model.name, MODELS, "model.name")
    _check_choice(cfg.loss.name, LOSSES, "loss.name")
    _check_choice(cfg.loss.normalize, ("sum_to_C", "none"), "loss.normalize")
    _check_range(
        cfg.loss.beta, "loss.beta", 0.0, 1.0, open_high=True, rule="effective_num's beta is in [0, 1)"
    )
    _check_range(cfg.gamma, "gamma", 0.0, rule="gamma must be >= 0 (gamma = 0 is cross-entropy)")
    if cfg.loss.name == "ce" and cfg.gamma != 0:
        raise ConfigError(f"gamma={cfg.gamma} with loss=ce: cross-entropy has no gamma; use loss=focal")
    validate_alpha(cfg.alpha, d.n_classes)
    o = cfg.optim
    _check_choice(o.name, ("sgd",), "optim.name")
    _check_choice(o.schedule, ("cosine", "step", "constant"), "optim.schedule")
    _check_range(o.lr, "optim.lr", 0.0, open_low=True, rule="must be > 0")
    _check_range(o.momentum, "optim.momentum", 0.0, 1.0, open_high=True, rule="must be in [0, 1)")
    _check_range(o.weight_decay, "optim.weight_decay", 0.0, rule="must be >= 0")
    _check_range(o.warmup_epochs, "optim.warmup_epochs", 0.0, rule="must be >= 0")
    if len(o.milestones) != len(o.milestone_factors):
        raise ConfigError("optim.milestones and optim.milestone_factors must have the same length")
    if cfg.threads < 0:
        raise ConfigError(f"threads={cfg.threads} is out of range: 0 (auto) or a positive integer")
    for key in ("epochs", "batch_size", "log_every", "jobs"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}={getattr(cfg, key)} is out of range: must be a positive integer")
    _check_choice(cfg.device, ("auto", "cpu", "cuda"), "device")
    _check_choice(cfg.precision, ("auto", "fp32", "bf16", "fp16"), "precision")
    e = cfg.eval
    if not (0 < e.few_threshold <= e.many_threshold):
        raise ConfigError("eval thresholds must satisfy 0 < eval.few_threshold <= eval.many_threshold")
    if e.ece_bins < 1:
        raise ConfigError(f"eval.ece_bins={e.ece_bins} is out of range: must be a positive integer")


# ----------------------------------------------------------------------------------------------------------
# Labels (a run's identity is focalbench.identity)
# ----------------------------------------------------------------------------------------------------------


def cell_label(cfg: DictConfig) -> str:
    """A short human label of the loss cell, e.g. 'focal gamma=2 alpha=none'."""
    alpha = cfg.alpha
    if isinstance(alpha, (list, tuple)) or OmegaConf.is_list(alpha):
        alpha = "[" + ",".join(f"{float(a):g}" for a in alpha) + "]"
    return f"{cfg.loss.name} gamma={float(cfg.gamma):g} alpha={alpha}"
